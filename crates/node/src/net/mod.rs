//! Pod networking: a network namespace per pod, a veth pair into the node bridge, an IP from the node's podCIDR.

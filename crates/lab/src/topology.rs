//! Switches, nodes, pods and clients.
//!
//! The shape is a small "host-gateway" cluster: nodes and clients hang off a switch (a bridge in
//! its own namespace), every node has a bridge `cbr0` for its pods and a route to each other
//! node's pod CIDR via that node's switch address. Interfaces are created inside lab namespaces
//! only, so their names need to be unique per namespace and never collide with the host's.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use crate::{Cidr, Lab, LabError, Netns, ip, lock};

/// Pod CIDRs handed out when the caller names none: the /24s of the benchmark range 198.18.0.0/15.
const AUTO_POD_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
const AUTO_POD_COUNT: u32 = 512;

#[derive(Default)]
pub(crate) struct Topo {
    switches: HashMap<String, SwitchState>,
    nodes: HashMap<String, NodeState>,
    next_auto_pod_cidr: u32,
}

struct SwitchState {
    next_host: u32,
    next_port: u32,
    /// (switch address, pod CIDR, namespace) of each node, for the host-gateway routes.
    nodes: Vec<(Ipv4Addr, Cidr, String)>,
}

struct NodeState {
    next_pod: u32,
}

/// A layer-2 segment: bridge `br0` in a namespace of its own.
#[derive(Clone, Debug)]
pub struct Switch {
    netns: String,
    cidr: Cidr,
}

/// A node: `eth0` on a switch, bridge `cbr0` (address `gateway`) for its pods, forwarding on.
#[derive(Clone, Debug)]
pub struct Node {
    netns: String,
    ip: Ipv4Addr,
    pod_cidr: Cidr,
    gateway: Ipv4Addr,
}

/// A pod: `eth0` on its node's `cbr0`, default route via the node.
#[derive(Clone, Debug)]
pub struct Pod {
    netns: String,
    ip: Ipv4Addr,
    node: String,
}

/// A machine outside the cluster: `eth0` on a switch, no routes beyond it unless added.
#[derive(Clone, Debug)]
pub struct Client {
    netns: String,
    ip: Ipv4Addr,
}

impl Switch {
    pub fn cidr(&self) -> Cidr {
        self.cidr
    }
}

impl Node {
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }
    pub fn pod_cidr(&self) -> Cidr {
        self.pod_cidr
    }
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }
}

impl Pod {
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }
    /// The namespace of the pod's node.
    pub fn node(&self) -> &str {
        &self.node
    }
}

impl Client {
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }
}

macro_rules! netns {
    ($($t:ty),*) => {$(
        impl Netns for $t {
            fn netns(&self) -> &str {
                &self.netns
            }
        }
    )*};
}
netns!(Switch, Node, Pod, Client);

impl Lab {
    /// A switch for `cidr` (IPv4, at most /30); nodes and clients get addresses from it in order.
    pub fn switch(&self, name: &str, cidr: &str) -> Result<Switch, LabError> {
        let _build = lock(&self.build);
        let cidr = self.register(&v4_subnet(cidr)?.to_string())?;
        let netns = self.add_ns(name)?;
        ip(&["-n", &netns, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &netns, "link", "set", "br0", "up"])?;
        let state = SwitchState { next_host: 1, next_port: 0, nodes: Vec::new() };
        lock(&self.state).topo.switches.insert(netns.clone(), state);
        Ok(Switch { netns, cidr })
    }

    /// A node on `switch` with the next free /24 of 198.18.0.0/15 as its pod CIDR.
    pub fn node(&self, name: &str, switch: &Switch) -> Result<Node, LabError> {
        let pod_cidr = {
            let mut st = lock(&self.state);
            loop {
                let k = st.topo.next_auto_pod_cidr;
                if k >= AUTO_POD_COUNT {
                    return Err(LabError::Invalid("no automatic pod CIDRs left".into()));
                }
                st.topo.next_auto_pod_cidr += 1;
                let c: Cidr = format!("{}/24", Ipv4Addr::from(u32::from(AUTO_POD_BASE) + k * 256)).parse().unwrap();
                if !st.subnets.iter().any(|s| s.contains(c.network()) || c.contains(s.network())) {
                    break c;
                }
            }
        };
        self.node_with_pod_cidr(name, switch, &pod_cidr.to_string())
    }

    /// A node with the caller's pod CIDR (e.g. 10.244.1.0/24; safe, as no route leaves the lab).
    pub fn node_with_pod_cidr(&self, name: &str, switch: &Switch, pod_cidr: &str) -> Result<Node, LabError> {
        let _build = lock(&self.build);
        let pod_cidr = self.register(&v4_subnet(pod_cidr)?.to_string())?;
        let gateway = crate::net::host(&pod_cidr, 1).expect("v4_subnet leaves room for hosts");
        let netns = self.add_ns(name)?;
        let addr = self.attach(switch, &netns)?;
        let n = netns.as_str();
        ip(&["-n", n, "link", "add", "cbr0", "type", "bridge"])?;
        ip(&["-n", n, "addr", "add", &format!("{gateway}/{}", pod_cidr.prefix()), "dev", "cbr0"])?;
        ip(&["-n", n, "link", "set", "cbr0", "up"])?;
        self.sysctl(n, "net/ipv4/ip_forward", "1")?;
        let peers = lock(&self.state).topo.switches[&switch.netns].nodes.clone();
        for (peer_ip, peer_cidr, peer_ns) in &peers {
            ip(&["-n", n, "route", "add", &peer_cidr.to_string(), "via", &peer_ip.to_string()])?;
            ip(&["-n", peer_ns, "route", "add", &pod_cidr.to_string(), "via", &addr.to_string()])?;
        }
        let mut st = lock(&self.state);
        st.topo.switches.get_mut(&switch.netns).unwrap().nodes.push((addr, pod_cidr, netns.clone()));
        st.topo.nodes.insert(netns.clone(), NodeState { next_pod: 0 });
        Ok(Node { netns, ip: addr, pod_cidr, gateway })
    }

    /// A pod on `node`: the next address of the node's pod CIDR, default route via the node.
    pub fn pod(&self, name: &str, node: &Node) -> Result<Pod, LabError> {
        let _build = lock(&self.build);
        let k = {
            let mut st = lock(&self.state);
            let ns = st.topo.nodes.get_mut(&node.netns).ok_or_else(|| not_ours(&node.netns))?;
            ns.next_pod += 1;
            ns.next_pod
        };
        let addr = crate::net::host(&node.pod_cidr, k + 1)
            .ok_or_else(|| LabError::Invalid(format!("{} is full", node.pod_cidr)))?;
        let netns = self.add_ns(name)?;
        let port = format!("veth{k}");
        ip(&["-n", &node.netns, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &netns])?;
        ip(&["-n", &node.netns, "link", "set", &port, "master", "cbr0", "up"])?;
        ip(&["-n", &netns, "addr", "add", &format!("{addr}/{}", node.pod_cidr.prefix()), "dev", "eth0"])?;
        ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &netns, "route", "add", "default", "via", &node.gateway.to_string()])?;
        Ok(Pod { netns, ip: addr, node: node.netns.clone() })
    }

    /// An external client on `switch`; it reaches nodes directly and nothing else by default.
    pub fn client(&self, name: &str, switch: &Switch) -> Result<Client, LabError> {
        let _build = lock(&self.build);
        let netns = self.add_ns(name)?;
        let addr = self.attach(switch, &netns)?;
        Ok(Client { netns, ip: addr })
    }

    /// Adds `ip route add <cidr> via <via>` inside one of the lab's namespaces (e.g. a client's
    /// route to a service CIDR through a node). `via` must be a lab address.
    pub fn route(&self, ns: &(impl Netns + ?Sized), cidr: &str, via: IpAddr) -> Result<(), LabError> {
        let cidr: Cidr = cidr.parse().map_err(LabError::Invalid)?;
        self.check_target(via)?;
        if !self.namespaces().iter().any(|n| n == ns.netns()) {
            return Err(not_ours(ns.netns()));
        }
        ip(&["-n", ns.netns(), "route", "add", &cidr.to_string(), "via", &via.to_string()])
    }

    /// Plugs `ns` into `switch` as `eth0` with the switch's next address.
    fn attach(&self, switch: &Switch, ns: &str) -> Result<Ipv4Addr, LabError> {
        let (host, port) = {
            let mut st = lock(&self.state);
            let sw = st.topo.switches.get_mut(&switch.netns).ok_or_else(|| not_ours(&switch.netns))?;
            let host = crate::net::host(&switch.cidr, sw.next_host)
                .ok_or_else(|| LabError::Invalid(format!("{} is full", switch.cidr)))?;
            sw.next_host += 1;
            sw.next_port += 1;
            (host, format!("p{}", sw.next_port))
        };
        ip(&["-n", &switch.netns, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", ns])?;
        ip(&["-n", &switch.netns, "link", "set", &port, "master", "br0", "up"])?;
        ip(&["-n", ns, "addr", "add", &format!("{host}/{}", switch.cidr.prefix()), "dev", "eth0"])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        Ok(host)
    }
}

fn v4_subnet(cidr: &str) -> Result<Cidr, LabError> {
    let c: Cidr = cidr.parse().map_err(LabError::Invalid)?;
    if !c.network().is_ipv4() || c.prefix() > 30 {
        return Err(LabError::Invalid(format!("{c}: lab subnets are IPv4, /30 or wider")));
    }
    Ok(c)
}

fn not_ours(ns: &str) -> LabError {
    LabError::Invalid(format!("{ns} is not a namespace of this lab"))
}

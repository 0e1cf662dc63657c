//! Node registration, Lease heartbeat, and the pod sync loop (status, probes, lifecycle).

pub mod env;
pub mod files;
pub mod node;
pub mod probe;
pub mod status;

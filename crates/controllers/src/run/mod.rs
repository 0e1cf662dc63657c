//! The kube-rs loops that feed the pure reconcilers from watches and write their results
//! through the API. Controllers are API clients: they never touch the store.

mod endpoints;
pub mod nodes;
pub mod workloads;

pub use endpoints::{Options, run_service_endpoints};

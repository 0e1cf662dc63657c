//! The loops that feed the pure reconcilers from the process's shared informers and write
//! their results through the API. Controllers are API clients: they never touch the store.

mod endpoints;
pub mod nodes;
pub mod workloads;

pub use endpoints::{Options, run_service_endpoints};

//! What every Portico component that is an API client shares (the proxy, DNS, ingress, node
//! agent and controllers): one informer per kind per process with its indexes, the reconcile
//! loop, the kube client, Events, well-known labels, pod facts, the health and metrics
//! server, and the supervisor that stops the process when a component fails.

pub mod client;
pub mod encoded;
pub mod events;
pub mod http;
pub mod index;
pub mod informer;
pub mod labels;
pub mod pod;
pub mod reconcile;
pub mod supervise;

pub use informer::{Event, Informer, Informers, Subscription, Watched};
pub use reconcile::{Dirty, QueueOptions, Reconciler, Written};
pub use supervise::Supervisor;

//! The service proxy: what kube-proxy is to Kubernetes. It follows Services, EndpointSlices and
//! Nodes, folds them into one [`model`] of service ports and their endpoints, and programs the
//! node from that model through one of its data planes: [`nft`] (the default), iptables, or a
//! userspace L4 proxy.

pub mod announce;
pub mod conntrack;
pub mod conntrack_stale;
pub mod convert;
pub mod healthcheck;
pub mod iptables;
pub mod l2;
pub mod metrics;
pub mod model;
pub mod nft;
pub mod plane;
pub mod run;
pub mod userspace;

pub use run::{Mode, Options, run};

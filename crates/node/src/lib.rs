//! The node agent: Portico's kubelet. It registers its Node, heartbeats through its Lease,
//! and makes each pod bound to the node a real thing: a network namespace with its own IP
//! ([`net`]), containers run as host commands inside the pod's namespaces, each held by a
//! small supervisor process ([`sandbox`]), and the pod's status, probes and lifecycle as
//! kubelet drives them ([`agent`]), and the kubelet API that `kubectl logs`, `exec`, `attach`
//! and `port-forward` reach through the API server ([`kubelet`]).

pub mod agent;
pub mod kubelet;
pub mod net;
pub mod sandbox;
pub mod shutdown;

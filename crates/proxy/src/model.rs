//! What every data plane programs, and nothing else: a Service as the proxy sees it (addresses,
//! ports, policies) and its endpoints per port, with kube-proxy's rules for which endpoints
//! serve which traffic. Pure: no IO, no Kubernetes types (those are turned into this in
//! [`crate::convert`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use api::net::{Cidr, IpFamily};

/// The transport protocols a Service port can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The name nft and iptables use (`tcp`, `udp`, `sctp`).
    pub fn lower(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// The name Kubernetes uses (`TCP`, `UDP`, `SCTP`).
    pub fn upper(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    /// The IP protocol number (conntrack filters use it).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
}

/// A Service's namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> ServiceKey {
        ServiceKey { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One port of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// The port's name ("" for a single unnamed port); endpoints are matched to it by name.
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub node_port: Option<u16>,
}

/// A Service as the proxy programs it. Only Services the proxy handles become one of these:
/// not headless, not ExternalName, not claimed by another proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    pub cluster_ips: Vec<IpAddr>,
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip` (only when the Service is of type LoadBalancer).
    pub load_balancer_ips: Vec<IpAddr>,
    pub ports: Vec<Port>,
    /// `sessionAffinity: ClientIP`, with its timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local` (only meaningful for NodePort and LoadBalancer Services).
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    pub health_check_node_port: Option<u16>,
    pub source_ranges: Vec<Cidr>,
}

impl Service {
    /// "ns/name:port" as kube-proxy names a service port in comments and metrics (the port part
    /// is omitted for an unnamed port).
    pub fn port_name(&self, port: &Port) -> String {
        if port.name.is_empty() { self.key.to_string() } else { format!("{}:{}", self.key, port.name) }
    }

    /// Whether traffic to external addresses (NodePort, externalIPs, load balancer IPs) goes to
    /// local endpoints only. kube-proxy applies the policy only where there is external traffic.
    pub fn external_policy_local(&self) -> bool {
        self.external_local && (self.ports.iter().any(|p| p.node_port.is_some()) || !self.load_balancer_ips.is_empty())
    }

    pub fn addresses_of(&self, family: IpFamily) -> impl Iterator<Item = &IpAddr> {
        self.cluster_ips.iter().filter(move |ip| IpFamily::of(**ip) == family)
    }
}

/// One endpoint of one Service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node: Option<String>,
}

impl Endpoint {
    pub fn is_local(&self, node: &str) -> bool {
        self.node.as_deref() == Some(node)
    }
}

/// A Service with its endpoints, by port name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceState {
    pub service: Service,
    pub endpoints: BTreeMap<String, Vec<Endpoint>>,
}

/// The endpoints that serve one Service port, for each kind of traffic (kube-proxy's
/// `CategorizeEndpoints`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    /// For traffic to the ClusterIP (from pods and the node).
    pub cluster: Vec<Endpoint>,
    /// For traffic to NodePorts, externalIPs and load balancer IPs.
    pub external: Vec<Endpoint>,
    /// Ready endpoints on this node: what the externalTrafficPolicy Local health check reports.
    pub local_ready: usize,
    /// Whether the port has any endpoint at all that could serve (ready or terminating).
    pub any: bool,
}

impl ServiceState {
    pub fn endpoints_of(&self, port: &Port) -> &[Endpoint] {
        self.endpoints.get(&port.name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Which endpoints take which traffic on `node`:
    /// - ready endpoints if there are any; otherwise those that are serving while terminating,
    ///   so connections keep landing somewhere during a rolling update's last moments;
    /// - `internalTrafficPolicy: Local` restricts cluster traffic, and `externalTrafficPolicy:
    ///   Local` external traffic, to this node's endpoints (with the same fallback among them).
    pub fn targets(&self, port: &Port, node: &str) -> Targets {
        let all = self.endpoints_of(port);
        let local: Vec<Endpoint> = all.iter().filter(|e| e.is_local(node)).cloned().collect();
        let cluster_wide = usable(all);
        let local_usable = usable(&local);
        Targets {
            cluster: if self.service.internal_local { local_usable.clone() } else { cluster_wide.clone() },
            external: if self.service.external_policy_local() { local_usable } else { cluster_wide },
            local_ready: local.iter().filter(|e| e.ready).count(),
            any: all.iter().any(|e| e.ready || (e.serving && e.terminating)),
        }
    }
}

/// Ready endpoints, or failing those the serving-terminating ones; sorted, so renderings are
/// stable.
fn usable(endpoints: &[Endpoint]) -> Vec<Endpoint> {
    let mut ready: Vec<Endpoint> = endpoints.iter().filter(|e| e.ready).cloned().collect();
    if ready.is_empty() {
        ready = endpoints.iter().filter(|e| e.serving && e.terminating).cloned().collect();
    }
    ready.sort();
    ready.dedup();
    ready
}

/// Everything the proxy programs: every handled Service with its endpoints.
pub type Snapshot = BTreeMap<ServiceKey, std::sync::Arc<ServiceState>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(ip: &str, node: &str, ready: bool, terminating: bool) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port: 8080,
            ready,
            serving: ready || terminating,
            terminating,
            node: Some(node.into()),
        }
    }

    fn state(internal_local: bool, external_local: bool, eps: Vec<Endpoint>) -> (ServiceState, Port) {
        let port = Port { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port: Some(30080) };
        let service = Service {
            key: ServiceKey::new("default", "web"),
            cluster_ips: vec!["10.96.0.20".parse().unwrap()],
            external_ips: vec![],
            load_balancer_ips: vec![],
            ports: vec![port.clone()],
            affinity_timeout: None,
            external_local,
            internal_local,
            health_check_node_port: None,
            source_ranges: vec![],
        };
        (ServiceState { service, endpoints: BTreeMap::from([("http".to_string(), eps)]) }, port)
    }

    #[test]
    fn ready_endpoints_serve_both_kinds_of_traffic() {
        let (s, p) = state(false, false, vec![ep("10.0.0.2", "a", true, false), ep("10.0.0.1", "b", true, false)]);
        let t = s.targets(&p, "a");
        assert_eq!(t.cluster.len(), 2);
        assert_eq!(t.cluster[0].ip.to_string(), "10.0.0.1", "sorted");
        assert_eq!(t.external, t.cluster);
        assert_eq!(t.local_ready, 1);
    }

    #[test]
    fn terminating_endpoints_serve_only_when_none_is_ready() {
        let (s, p) = state(false, false, vec![ep("10.0.0.1", "a", false, true), ep("10.0.0.2", "a", true, false)]);
        assert_eq!(s.targets(&p, "a").cluster.iter().map(|e| e.ip.to_string()).collect::<Vec<_>>(), ["10.0.0.2"]);
        let (s, p) = state(false, false, vec![ep("10.0.0.1", "a", false, true), ep("10.0.0.2", "a", false, false)]);
        let t = s.targets(&p, "a");
        assert_eq!(t.cluster.iter().map(|e| e.ip.to_string()).collect::<Vec<_>>(), ["10.0.0.1"]);
        assert!(t.any);
    }

    #[test]
    fn unready_endpoints_that_are_not_terminating_never_serve() {
        let (s, p) = state(false, false, vec![ep("10.0.0.1", "a", false, false)]);
        let t = s.targets(&p, "a");
        assert!(t.cluster.is_empty() && !t.any);
    }

    #[test]
    fn external_local_policy_limits_external_traffic_to_this_node() {
        let (s, p) = state(false, true, vec![ep("10.0.0.1", "a", true, false), ep("10.0.0.2", "b", true, false)]);
        let t = s.targets(&p, "b");
        assert_eq!(t.cluster.len(), 2);
        assert_eq!(t.external.iter().map(|e| e.ip.to_string()).collect::<Vec<_>>(), ["10.0.0.2"]);
        let t = s.targets(&p, "c");
        assert!(t.external.is_empty());
        assert_eq!(t.local_ready, 0);
    }

    #[test]
    fn internal_local_policy_limits_cluster_traffic_to_this_node() {
        let (s, p) = state(true, false, vec![ep("10.0.0.1", "a", true, false), ep("10.0.0.2", "b", true, false)]);
        let t = s.targets(&p, "a");
        assert_eq!(t.cluster.iter().map(|e| e.ip.to_string()).collect::<Vec<_>>(), ["10.0.0.1"]);
        assert_eq!(t.external.len(), 2);
    }

    #[test]
    fn external_policy_applies_only_to_services_with_external_traffic() {
        let (mut s, _) = state(false, true, vec![]);
        s.service.ports[0].node_port = None;
        assert!(!s.service.external_policy_local());
        s.service.load_balancer_ips = vec!["198.51.100.200".parse().unwrap()];
        assert!(s.service.external_policy_local());
    }
}

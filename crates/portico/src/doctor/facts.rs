//! What the doctor read from the API, and pure questions about it: which pods a selector
//! picks, whether a pod is Ready, which port a targetPort names in a pod.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Endpoints, Event, Node, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Everything the checks look at, read once.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub namespace: String,
    pub name: String,
    pub cluster_domain: String,
    pub service: Option<Service>,
    /// Names of the other Services in the namespace.
    pub service_names: Vec<String>,
    /// Other namespaces that have a Service of this name.
    pub namespaces_with_name: Vec<String>,
    /// Pods of every namespace (the selector looks at its own namespace only; a probe client may
    /// come from any).
    pub pods: Vec<Pod>,
    /// EndpointSlices labelled `kubernetes.io/service-name=<name>` in the namespace.
    pub slices: Vec<EndpointSlice>,
    pub endpoints: Option<Endpoints>,
    pub nodes: Vec<Node>,
    /// Events of the namespace.
    pub events: Vec<Event>,
    /// kube-system/kube-dns, the cluster DNS.
    pub dns_service: Option<Service>,
}

pub fn name_of(p: &Pod) -> &str {
    p.metadata.name.as_deref().unwrap_or("")
}

pub fn namespace_of(p: &Pod) -> &str {
    p.metadata.namespace.as_deref().unwrap_or("")
}

pub fn uid_of(p: &Pod) -> &str {
    p.metadata.uid.as_deref().unwrap_or("")
}

pub fn labels_of(p: &Pod) -> BTreeMap<String, String> {
    p.metadata.labels.clone().unwrap_or_default()
}

pub fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Unknown")
}

pub fn pod_ip(p: &Pod) -> Option<IpAddr> {
    p.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
}

pub fn host_network(p: &Pod) -> bool {
    p.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
}

pub fn node_of(p: &Pod) -> &str {
    p.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("")
}

/// A pod condition's status ("True"/"False"/...), if the pod has it.
pub fn condition<'a>(p: &'a Pod, type_: &str) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

pub fn is_ready(p: &Pod) -> bool {
    condition(p, "Ready").is_some_and(|c| c.status == "True")
}

pub fn is_terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

/// `selector` matches `labels` as a Service selector does: every pair present and equal.
pub fn selector_matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `k=v,k2=v2`, as kubectl prints selectors and labels.
pub fn show_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".to_owned();
    }
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// The Service's selector, if it has a non-empty one.
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec.as_ref()?.selector.as_ref().filter(|s| !s.is_empty())
}

/// The pods of the Service's namespace its selector picks (terminating ones excluded, as the
/// endpoints controller leaves them out of the ready set).
pub fn selected_pods(f: &Facts) -> Vec<&Pod> {
    let Some(sel) = f.service.as_ref().and_then(selector) else { return vec![] };
    f.pods
        .iter()
        .filter(|p| namespace_of(p) == f.namespace && !is_terminating(p) && selector_matches(sel, &labels_of(p)))
        .collect()
}

pub fn ports(svc: &Service) -> &[ServicePort] {
    svc.spec.as_ref().and_then(|s| s.ports.as_deref()).unwrap_or(&[])
}

pub fn protocol(p: &ServicePort) -> &str {
    p.protocol.as_deref().unwrap_or("TCP")
}

/// `80/TCP`, or `http 80/TCP` for a named port.
pub fn show_port(p: &ServicePort) -> String {
    match &p.name {
        Some(n) if !n.is_empty() => format!("{n} {}/{}", p.port, protocol(p)),
        _ => format!("{}/{}", p.port, protocol(p)),
    }
}

/// The targetPort as written (defaulting to the port).
pub fn target_port(p: &ServicePort) -> IntOrString {
    p.target_port.clone().unwrap_or(IntOrString::Int(p.port))
}

pub fn show_target(t: &IntOrString) -> String {
    match t {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// How a Service port's targetPort lands in one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// A port a container of the pod declares (with its name, if any).
    Declared { port: u16, name: Option<String> },
    /// A number no container declares: allowed, the app must listen there all the same.
    Undeclared(u16),
    /// A name no container of the pod declares for this protocol: the pod gets no endpoint.
    NameNotFound(String),
}

impl Resolved {
    pub fn port(&self) -> Option<u16> {
        match self {
            Resolved::Declared { port, .. } | Resolved::Undeclared(port) => Some(*port),
            Resolved::NameNotFound(_) => None,
        }
    }
}

/// Resolves `sp`'s targetPort against the ports `pod` declares (for the port's protocol), as
/// the endpoints controller does (podutil.FindPort).
pub fn resolve(sp: &ServicePort, pod: &Pod) -> Resolved {
    let proto = protocol(sp);
    let declared: Vec<(u16, Option<String>)> =
        declared_ports(pod).into_iter().filter(|(_, _, p)| p == proto).map(|(port, name, _)| (port, name)).collect();
    match target_port(sp) {
        IntOrString::String(name) => match name.parse::<u16>() {
            // A numeric string is read as a number (intstr's IntValue).
            Ok(n) => resolve_number(n, &declared),
            Err(_) => declared
                .into_iter()
                .find(|(_, n)| n.as_deref() == Some(name.as_str()))
                .map(|(port, name)| Resolved::Declared { port, name })
                .unwrap_or(Resolved::NameNotFound(name)),
        },
        IntOrString::Int(n) => match u16::try_from(n) {
            Ok(n) => resolve_number(n, &declared),
            Err(_) => Resolved::NameNotFound(n.to_string()),
        },
    }
}

fn resolve_number(n: u16, declared: &[(u16, Option<String>)]) -> Resolved {
    match declared.iter().find(|(p, _)| *p == n) {
        Some((port, name)) => Resolved::Declared { port: *port, name: name.clone() },
        None => Resolved::Undeclared(n),
    }
}

/// (containerPort, name, protocol) of every container of the pod.
pub fn declared_ports(pod: &Pod) -> Vec<(u16, Option<String>, String)> {
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or(&[]);
    containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = u16::try_from(p.container_port).ok()?;
            Some((port, p.name.clone(), p.protocol.clone().unwrap_or_else(|| "TCP".to_owned())))
        })
        .collect()
}

/// `8080/TCP (http), 9000/UDP`.
pub fn show_declared(pod: &Pod) -> String {
    let ports = declared_ports(pod);
    if ports.is_empty() {
        return "no ports".to_owned();
    }
    ports
        .iter()
        .map(|(port, name, proto)| match name {
            Some(n) => format!("{port}/{proto} ({n})"),
            None => format!("{port}/{proto}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Service's ClusterIPs, `None` for a headless Service (or one without any yet).
pub fn cluster_ip(svc: &Service) -> Option<IpAddr> {
    svc.spec.as_ref()?.cluster_ip.as_deref()?.parse().ok()
}

pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

pub fn service_type(svc: &Service) -> &str {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP")
}

/// A node's InternalIP.
pub fn internal_ip(n: &Node) -> Option<IpAddr> {
    n.status.as_ref()?.addresses.as_ref()?.iter().find(|a| a.type_ == "InternalIP")?.address.parse().ok()
}

/// Ready and not-ready endpoint addresses of the slices (a missing `ready` condition counts as
/// ready, as the API defines).
pub fn slice_addresses(slices: &[EndpointSlice]) -> (Vec<String>, Vec<String>) {
    let (mut ready, mut not_ready) = (vec![], vec![]);
    for e in slices.iter().flat_map(|s| s.endpoints.iter()) {
        let is_ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
        let list = if is_ready { &mut ready } else { &mut not_ready };
        list.extend(e.addresses.iter().cloned());
    }
    ready.sort();
    ready.dedup();
    not_ready.sort();
    not_ready.dedup();
    (ready, not_ready)
}

/// Names among `candidates` close to `name`: one contains the other, or they are a typo apart
/// (one edit or swap per four characters, at least one).
pub fn similar_names(name: &str, candidates: &[String]) -> Vec<String> {
    let limit = (name.chars().count() / 4).max(1);
    let mut close: Vec<(usize, &String)> = candidates
        .iter()
        .filter(|c| c.as_str() != name)
        .filter_map(|c| {
            let d = edit_distance(name, c);
            (d <= limit || c.contains(name) || name.contains(c.as_str())).then_some((d, c))
        })
        .collect();
    close.sort();
    close.into_iter().take(5).map(|(_, c)| c.clone()).collect()
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbours (the usual typos) cost one each.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn port(v: serde_json::Value) -> ServicePort {
        serde_json::from_value(v).unwrap()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn web_pod() -> Pod {
        pod(json!({
            "metadata": {"name": "web-1", "labels": {"app": "web", "tier": "fe"}},
            "spec": {"containers": [{"name": "c", "ports": [
                {"containerPort": 8080, "name": "http"},
                {"containerPort": 5353, "name": "dns", "protocol": "UDP"}
            ]}]}
        }))
    }

    #[test]
    fn a_selector_needs_every_pair_and_ignores_extra_labels() {
        let labels = map(&[("app", "web"), ("tier", "fe")]);
        assert!(selector_matches(&map(&[("app", "web")]), &labels));
        assert!(!selector_matches(&map(&[("app", "web"), ("tier", "be")]), &labels));
        assert!(!selector_matches(&map(&[("app", "web"), ("env", "prod")]), &labels));
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_protocol() {
        let p = web_pod();
        let named = |t: &str, proto: &str| port(json!({"port": 80, "targetPort": t, "protocol": proto}));
        assert_eq!(resolve(&named("http", "TCP"), &p), Resolved::Declared { port: 8080, name: Some("http".into()) });
        assert_eq!(resolve(&named("htp", "TCP"), &p), Resolved::NameNotFound("htp".into()));
        assert_eq!(resolve(&named("dns", "TCP"), &p), Resolved::NameNotFound("dns".into()), "dns is a UDP port");
        assert_eq!(resolve(&named("dns", "UDP"), &p), Resolved::Declared { port: 5353, name: Some("dns".into()) });
    }

    #[test]
    fn numeric_target_ports_may_be_undeclared_and_default_to_the_port() {
        let p = web_pod();
        assert_eq!(
            resolve(&port(json!({"port": 80, "targetPort": 8080})), &p),
            Resolved::Declared { port: 8080, name: Some("http".into()) }
        );
        assert_eq!(resolve(&port(json!({"port": 80, "targetPort": 9999})), &p), Resolved::Undeclared(9999));
        assert_eq!(resolve(&port(json!({"port": 8080})), &p).port(), Some(8080), "targetPort defaults to port");
        assert_eq!(resolve(&port(json!({"port": 80, "targetPort": "8080"})), &p).port(), Some(8080));
    }

    #[test]
    fn similar_names_catch_typos_and_prefixes_but_not_strangers() {
        let names: Vec<String> =
            ["web", "web-canary", "database", "wbe2", "api"].iter().map(|s| s.to_string()).collect();
        let close = similar_names("wbe", &names);
        assert!(close.contains(&"web".to_string()) && close.contains(&"wbe2".to_string()), "{close:?}");
        assert!(!close.contains(&"database".to_string()), "{close:?}");
        assert!(similar_names("web", &names).contains(&"web-canary".to_string()));
        assert!(similar_names("web", &["db".to_string()]).is_empty(), "two edits in three letters is a stranger");
        assert_eq!(edit_distance("web", "wbe"), 1, "a swap is one typo");
    }

    #[test]
    fn slice_endpoints_without_a_ready_condition_count_as_ready() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "s"}, "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"]},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": true}}
            ]
        }))
        .unwrap();
        let (ready, not_ready) = slice_addresses(&[slice]);
        assert_eq!(ready, vec!["10.0.0.1", "10.0.0.3"]);
        assert_eq!(not_ready, vec!["10.0.0.2"]);
    }
}

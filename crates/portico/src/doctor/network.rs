//! The checks that send packets (kubernetes.io "Debug Services": does the pod answer on its
//! targetPort, does the ClusterIP, does DNS, do the NodePorts), written against a [`Prober`] so
//! that the verdicts are decided without IO and tested with a fake one. The real prober
//! ([`super::probe`]) works from inside a pod's network namespace.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};

use super::checks::{Check, Status};
use super::facts::{self, Facts};

/// How a TCP connection attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connect {
    /// Connected; for an HTTP-looking port, the status line of the answer to a GET.
    Open {
        reply: Option<String>,
    },
    Refused,
    Timeout,
    Failed(String),
}

impl Connect {
    pub fn is_open(&self) -> bool {
        matches!(self, Connect::Open { .. })
    }

    fn describe(&self) -> String {
        match self {
            Connect::Open { reply: Some(r) } => format!("answers ({r})"),
            Connect::Open { reply: None } => "accepts connections".to_owned(),
            Connect::Refused => "refuses connections".to_owned(),
            Connect::Timeout => "does not answer (timeout)".to_owned(),
            Connect::Failed(e) => format!("cannot be reached ({e})"),
        }
    }
}

/// What the cluster DNS answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsAnswer {
    pub rcode: u8,
    pub addresses: Vec<IpAddr>,
    /// CNAME targets, without the final dot.
    pub cnames: Vec<String>,
}

/// The network operations the checks need, done from the probe client's namespace.
pub trait Prober {
    /// A TCP connection to `addr`; with `http`, a `GET /` whose status line is kept.
    fn connect(&mut self, addr: SocketAddr, http: bool) -> Connect;
    /// A query for `name` (AAAA when `ipv6`, else A) to `server` over UDP.
    fn dns(&mut self, server: SocketAddr, name: &str, ipv6: bool) -> Result<DnsAnswer, String>;
    /// A connection to 127.0.0.1:`port` inside the pod's own namespace; `None` when that
    /// namespace is not on this machine.
    fn loopback_in_pod(&mut self, pod_uid: &str, port: u16) -> Option<Connect>;
}

/// The pod whose network namespace the probes run in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeClient {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// One of the Service's own pods (used only when no other pod is here).
    pub backend: bool,
}

/// A Running pod with its own network namespace on this machine (`has_netns(uid)`), preferring
/// one that is not a backend of the Service (a backend reaching its own Service through the
/// ClusterIP tests hairpin traffic too), then one of the Service's namespace.
pub fn choose_client(f: &Facts, has_netns: impl Fn(&str) -> bool) -> Option<ProbeClient> {
    let backends: BTreeSet<&str> = facts::selected_pods(f).iter().map(|p| facts::uid_of(p)).collect();
    let mut candidates: Vec<&Pod> = f
        .pods
        .iter()
        .filter(|p| facts::phase(p) == "Running" && !facts::host_network(p) && !facts::is_terminating(p))
        .filter(|p| !facts::uid_of(p).is_empty() && has_netns(facts::uid_of(p)))
        .collect();
    candidates.sort_by_key(|p| {
        (backends.contains(facts::uid_of(p)), facts::namespace_of(p) != f.namespace, facts::name_of(p).to_owned())
    });
    candidates.first().map(|p| ProbeClient {
        namespace: facts::namespace_of(p).to_owned(),
        name: facts::name_of(p).to_owned(),
        uid: facts::uid_of(p).to_owned(),
        backend: backends.contains(facts::uid_of(p)),
    })
}

/// The note every ClusterIP verdict carries.
pub const PING_NOTE: &str = "A ping to a ClusterIP never answers, working or not: it is a virtual IP programmed \
                             only for the Service's ports; test it with a connection to a port.";

/// Every network check of the Service.
pub fn network(f: &Facts, p: &mut dyn Prober) -> Vec<Check> {
    let Some(svc) = &f.service else { return vec![] };
    if facts::service_type(svc) == "ExternalName" {
        return vec![dns_check(f, svc, p)];
    }
    let mut out = vec![];
    let mut pods_fail = BTreeSet::new();
    for sp in facts::ports(svc) {
        let c = pod_port_check(f, svc, sp, p);
        if c.status == Status::Fail {
            pods_fail.insert(sp.port);
        }
        out.push(c);
    }
    out.extend(cluster_ip_checks(f, svc, &pods_fail, p));
    out.push(dns_check(f, svc, p));
    if matches!(facts::service_type(svc), "NodePort" | "LoadBalancer") {
        for sp in facts::ports(svc) {
            out.push(node_port_check(f, svc, sp, p));
        }
    }
    out
}

/// The network checks, each skipped for `why` (no pod namespace to probe from).
pub fn skipped(f: &Facts, why: &str) -> Vec<Check> {
    let Some(svc) = &f.service else { return vec![] };
    let mut names = vec!["dns"];
    if facts::service_type(svc) != "ExternalName" {
        names = vec!["pod-port", "cluster-ip", "dns"];
        if matches!(facts::service_type(svc), "NodePort" | "LoadBalancer") {
            names.push("node-port");
        }
    }
    names.into_iter().map(|n| Check::new(n, Status::Skipped, format!("Not probed: {why}."))).collect()
}

/// Whether a port is worth a `GET /` rather than a bare connection.
fn looks_http(sp: &ServicePort, target_name: Option<&str>) -> bool {
    let named = |n: Option<&str>| n.is_some_and(|n| n.to_ascii_lowercase().contains("http"));
    named(sp.name.as_deref())
        || named(sp.app_protocol.as_deref())
        || named(target_name)
        || [80, 8080].contains(&sp.port)
}

fn pod_port_check(f: &Facts, svc: &Service, sp: &ServicePort, p: &mut dyn Prober) -> Check {
    let what = format!("Port {} -> targetPort {}", facts::show_port(sp), facts::show_target(&facts::target_port(sp)));
    if facts::protocol(sp) != "TCP" {
        return Check::new(
            "pod-port",
            Status::Skipped,
            format!(
                "{what}: {} is not checked (no connection to make); try the app's own client.",
                facts::protocol(sp)
            ),
        );
    }
    if facts::selector(svc).is_none() {
        return selectorless_pod_port(f, sp, &what, p);
    }
    let ready: Vec<&Pod> = facts::selected_pods(f).into_iter().filter(|p| facts::is_ready(p)).collect();
    let mut ok = vec![];
    let mut bad = vec![];
    let mut hints = BTreeSet::new();
    for pod in &ready {
        let resolved = facts::resolve(sp, pod);
        let (Some(port), Some(ip)) = (resolved.port(), facts::pod_ip(pod)) else { continue };
        let name = match &resolved {
            facts::Resolved::Declared { name, .. } => name.clone(),
            _ => None,
        };
        let addr = SocketAddr::new(ip, port);
        let result = p.connect(addr, looks_http(sp, name.as_deref()));
        let who = format!("{} ({addr})", facts::name_of(pod));
        match result {
            Connect::Open { .. } => ok.push(format!("{who} {}", result.describe())),
            Connect::Refused => {
                let (line, hint) = refused(p, pod, addr, sp);
                bad.push(format!("{who} refuses connections: {line}"));
                hints.insert(hint);
            }
            other => {
                bad.push(format!("{who} {}", other.describe()));
                hints.insert(
                    "Something drops packets to the pod: a NetworkPolicy, a firewall in the pod, or the routes \
                     between nodes."
                        .to_owned(),
                );
            }
        }
    }
    if ok.is_empty() && bad.is_empty() {
        return Check::new("pod-port", Status::Skipped, format!("{what}: no ready pod to connect to (see pods)."));
    }
    if bad.is_empty() {
        return Check::new("pod-port", Status::Pass, format!("{what}: {}.", ok.join("; ")));
    }
    let mut message = format!("{what}: {}.", bad.join("; "));
    if !ok.is_empty() {
        message.push_str(&format!(" Fine: {}.", ok.join("; ")));
    }
    let mut c = Check::new("pod-port", Status::Fail, message);
    c.hint = Some(hints.into_iter().collect::<Vec<_>>().join(" "));
    c
}

/// Why a pod refused `addr`: the app bound to loopback, nothing listening, or unknown here.
fn refused(p: &mut dyn Prober, pod: &Pod, addr: SocketAddr, sp: &ServicePort) -> (String, String) {
    let port = addr.port();
    match p.loopback_in_pod(facts::uid_of(pod), port) {
        Some(c) if c.is_open() => (
            format!("inside the pod 127.0.0.1:{port} answers, so the app listens only on 127.0.0.1"),
            format!(
                "Make the app listen on 0.0.0.0 (all addresses), not 127.0.0.1: traffic from the Service arrives \
                 at the pod IP {}.",
                addr.ip()
            ),
        ),
        Some(_) => (
            format!("nothing listens on port {port} in the pod, not even on 127.0.0.1"),
            format!(
                "Set targetPort (now {}) to the port the app listens on (the pods declare {}), or make the app \
                 listen on {port}; the pods' logs (kubectl logs) tell whether it started.",
                facts::show_target(&facts::target_port(sp)),
                facts::show_declared(pod),
            ),
        ),
        None => (
            format!(
                "its namespace is not on this machine (node {}), so whether it listens on 127.0.0.1 is not known",
                facts::node_of(pod)
            ),
            format!(
                "Check that the app listens on 0.0.0.0:{port}: run the doctor on node {}, or kubectl exec into \
                 the pod and list its listening sockets.",
                facts::node_of(pod)
            ),
        ),
    }
}

/// A Service without a selector: its endpoints are the slices' ready addresses and ports.
fn selectorless_pod_port(f: &Facts, sp: &ServicePort, what: &str, p: &mut dyn Prober) -> Check {
    let (ready, _) = facts::slice_addresses(&f.slices);
    let port = f
        .slices
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .find(|ep| ep.name.as_deref().unwrap_or("") == sp.name.as_deref().unwrap_or(""))
        .and_then(|ep| ep.port)
        .and_then(|n| u16::try_from(n).ok());
    let Some(port) = port else {
        return Check::new("pod-port", Status::Skipped, format!("{what}: no EndpointSlice port of this name to try."));
    };
    let mut ok = vec![];
    let mut bad = vec![];
    for ip in ready.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
        let addr = SocketAddr::new(ip, port);
        let r = p.connect(addr, looks_http(sp, None));
        let line = format!("{addr} {}", r.describe());
        if r.is_open() { ok.push(line) } else { bad.push(line) }
    }
    match (ok.is_empty(), bad.is_empty()) {
        (true, true) => Check::new("pod-port", Status::Skipped, format!("{what}: no ready endpoint to connect to.")),
        (_, true) => Check::new("pod-port", Status::Pass, format!("{what}: {}.", ok.join("; "))),
        _ => Check::new("pod-port", Status::Fail, format!("{what}: {}.", bad.into_iter().chain(ok).collect::<Vec<_>>().join("; ")))
            .hint("The endpoints are yours to keep right: fix the addresses or ports in the EndpointSlice, or the server behind them."),
    }
}

/// `pods_fail`: the Service ports whose pods do not answer on the targetPort.
fn cluster_ip_checks(f: &Facts, svc: &Service, pods_fail: &BTreeSet<i32>, p: &mut dyn Prober) -> Vec<Check> {
    if facts::is_headless(svc) {
        return vec![Check::new(
            "cluster-ip",
            Status::Skipped,
            "Headless Service (clusterIP: None): there is no virtual IP; clients connect to the pod IPs DNS returns.",
        )];
    }
    let Some(ip) = facts::cluster_ip(svc) else {
        return vec![
            Check::new("cluster-ip", Status::Fail, "The Service has no ClusterIP.")
                .hint("The API server allocates one on create; recreate the Service."),
        ];
    };
    let (ready, _) = facts::slice_addresses(&f.slices);
    let mut out = vec![];
    for sp in facts::ports(svc) {
        let Ok(port) = u16::try_from(sp.port) else { continue };
        let addr = SocketAddr::new(ip, port);
        let what = format!("ClusterIP {addr} ({})", facts::show_port(sp));
        if facts::protocol(sp) == "UDP" {
            if port != 53 {
                out.push(
                    Check::new(
                        "cluster-ip",
                        Status::Skipped,
                        format!("{what}: UDP is not checked (no connection to make)."),
                    )
                    .hint(PING_NOTE),
                );
                continue;
            }
            let c = match p.dns(addr, &fqdn(f), ip.is_ipv6()) {
                Ok(_) => Check::new("cluster-ip", Status::Pass, format!("{what} answers a DNS query.")).hint(PING_NOTE),
                Err(e) => {
                    Check::new("cluster-ip", Status::Fail, format!("{what}: no DNS answer ({e}).")).hint(PING_NOTE)
                }
            };
            out.push(c);
            continue;
        }
        if facts::protocol(sp) != "TCP" {
            continue;
        }
        let result = p.connect(addr, looks_http(sp, None));
        let c = match &result {
            Connect::Open { .. } => {
                Check::new("cluster-ip", Status::Pass, format!("{what} {} from inside the cluster.", result.describe()))
                    .hint(PING_NOTE)
            }
            _ if ready.is_empty() => Check::new(
                "cluster-ip",
                Status::Fail,
                format!("{what} {}: the Service has no ready endpoints (see endpoints).", result.describe()),
            )
            .hint(format!("Make a pod ready and listed first. {PING_NOTE}")),
            _ if pods_fail.contains(&sp.port) => Check::new(
                "cluster-ip",
                Status::Fail,
                format!(
                    "{what} {}: the pods behind it do not answer on the targetPort (see pod-port).",
                    result.describe()
                ),
            )
            .hint(format!("Fix pod-port first: the ClusterIP only forwards to the pods. {PING_NOTE}")),
            _ => Check::new(
                "cluster-ip",
                Status::Fail,
                format!("{what} {} although {} endpoint(s) are ready and answer.", result.describe(), ready.len()),
            )
            .hint(format!(
                "The service proxy has not programmed this ClusterIP: read the proxy's log (portico proxy, or \
                 kube-proxy) on the client pod's node. {PING_NOTE}"
            )),
        };
        out.push(c);
    }
    out
}

fn fqdn(f: &Facts) -> String {
    format!("{}.{}.svc.{}", f.name, f.namespace, f.cluster_domain.trim_end_matches('.'))
}

fn dns_check(f: &Facts, svc: &Service, p: &mut dyn Prober) -> Check {
    let name = fqdn(f);
    let Some((server, dns_svc)) = f.dns_service.as_ref().and_then(|d| Some((dns_server(d)?, d))) else {
        return Check::new(
            "dns",
            Status::Skipped,
            format!("No cluster DNS to ask: kube-system/kube-dns is missing or has no ClusterIP, so {name} was not looked up."),
        )
        .hint("Run a cluster DNS (portico up runs one; or portico dns) behind the kube-dns Service.");
    };
    let _ = dns_svc;
    let ipv6 = facts::cluster_ip(svc).is_some_and(|ip| ip.is_ipv6());
    let answer = match p.dns(server, &name, ipv6) {
        Ok(a) => a,
        Err(e) => {
            return Check::new(
                "dns",
                Status::Fail,
                format!("The cluster DNS at {server} did not answer for {name}: {e}."),
            )
            .hint("Check that it runs and has ready endpoints: kubectl -n kube-system get endpoints kube-dns.");
        }
    };
    let (ready, _) = facts::slice_addresses(&f.slices);
    if answer.rcode == dns::wire::rcode::NXDOMAIN {
        let hint = if facts::is_headless(svc) && ready.is_empty() {
            "A headless Service has records only for its ready endpoints: make a pod ready first."
        } else {
            "The DNS does not know the Service: check that it watches Services (its log), and the cluster domain (--cluster-domain)."
        };
        return Check::new(
            "dns",
            Status::Fail,
            format!("The cluster DNS at {server} says {name} does not exist (NXDOMAIN)."),
        )
        .hint(hint);
    }
    if answer.rcode != dns::wire::rcode::NOERROR {
        return Check::new(
            "dns",
            Status::Fail,
            format!("The cluster DNS at {server} answered {name} with rcode {}.", answer.rcode),
        )
        .hint("Read the DNS server's log.");
    }
    let got: BTreeSet<String> = answer.addresses.iter().map(IpAddr::to_string).collect();
    let shown = |s: &BTreeSet<String>| {
        if s.is_empty() { "nothing".to_owned() } else { s.iter().cloned().collect::<Vec<_>>().join(", ") }
    };
    if facts::service_type(svc) == "ExternalName" {
        let want = svc.spec.as_ref().and_then(|s| s.external_name.clone()).unwrap_or_default();
        let want = want.trim_end_matches('.').to_ascii_lowercase();
        return match answer.cnames.iter().any(|c| c.to_ascii_lowercase() == want) {
            true => Check::new("dns", Status::Pass, format!("{name} is a CNAME to {want}, as the Service says.")),
            false => Check::new(
                "dns",
                Status::Fail,
                format!("{name} should be a CNAME to {want}; the DNS answered {:?}.", answer.cnames),
            )
            .hint("Read the DNS server's log."),
        };
    }
    if facts::is_headless(svc) {
        let want: BTreeSet<String> = ready.into_iter().collect();
        return if got == want {
            Check::new(
                "dns",
                Status::Pass,
                format!("{name} resolves to the ready endpoints {} (headless).", shown(&got)),
            )
        } else {
            Check::new(
                "dns",
                Status::Warn,
                format!("{name} resolves to {}; the ready endpoints are {}.", shown(&got), shown(&want)),
            )
            .hint("The DNS may be catching up with the endpoints; rerun in a few seconds.")
        };
    }
    let Some(ip) = facts::cluster_ip(svc) else {
        return Check::new("dns", Status::Skipped, format!("{name}: the Service has no ClusterIP to compare with."));
    };
    if got.contains(&ip.to_string()) {
        Check::new("dns", Status::Pass, format!("{name} resolves to the ClusterIP {ip} (asked {server})."))
    } else {
        Check::new("dns", Status::Fail, format!("{name} resolves to {}, not the ClusterIP {ip}.", shown(&got)))
            .hint("The DNS serves a stale record: read its log; a recreated Service gets a new ClusterIP.")
    }
}

/// kube-dns's ClusterIP and DNS port.
fn dns_server(d: &Service) -> Option<SocketAddr> {
    let ip = facts::cluster_ip(d)?;
    let port = facts::ports(d)
        .iter()
        .find(|p| facts::protocol(p) == "UDP")
        .and_then(|p| u16::try_from(p.port).ok())
        .unwrap_or(53);
    Some(SocketAddr::new(ip, port))
}

fn node_port_check(f: &Facts, svc: &Service, sp: &ServicePort, p: &mut dyn Prober) -> Check {
    let what = format!("NodePort {} of port {}", sp.node_port.unwrap_or(0), facts::show_port(sp));
    let Some(node_port) = sp.node_port.and_then(|n| u16::try_from(n).ok()).filter(|n| *n > 0) else {
        return Check::new(
            "node-port",
            Status::Fail,
            format!("Port {} has no nodePort allocated.", facts::show_port(sp)),
        )
        .hint("The API server allocates one for NodePort and LoadBalancer Services; recreate the Service.");
    };
    if facts::protocol(sp) != "TCP" {
        return Check::new("node-port", Status::Skipped, format!("{what}: {} is not checked.", facts::protocol(sp)));
    }
    let local = svc.spec.as_ref().and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local");
    // With externalTrafficPolicy: Local only nodes with a ready endpoint answer.
    let nodes_with_endpoints: BTreeSet<&str> = f
        .slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .filter_map(|e| e.node_name.as_deref())
        .collect();
    let (ready, _) = facts::slice_addresses(&f.slices);
    let (mut ok, mut bad, mut not_expected) = (vec![], vec![], vec![]);
    for node in &f.nodes {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let Some(ip) = facts::internal_ip(node) else { continue };
        if local && !nodes_with_endpoints.contains(name) {
            not_expected.push(name.to_owned());
            continue;
        }
        let addr = SocketAddr::new(ip, node_port);
        let r = p.connect(addr, false);
        let line = format!("node {name} ({addr}) {}", r.describe());
        if r.is_open() { ok.push(line) } else { bad.push(line) }
    }
    let mut message = format!("{what}: ");
    message.push_str(&bad.iter().chain(ok.iter()).cloned().collect::<Vec<_>>().join("; "));
    if !not_expected.is_empty() {
        message.push_str(&format!(
            "; not tried on {} (externalTrafficPolicy: Local, no ready endpoint there)",
            not_expected.join(", ")
        ));
    }
    message.push('.');
    if ok.is_empty() && bad.is_empty() {
        return Check::new("node-port", Status::Skipped, format!("{what}: no node with an InternalIP to try."));
    }
    if bad.is_empty() {
        return Check::new("node-port", Status::Pass, message);
    }
    let hint = if ready.is_empty() {
        "The Service has no ready endpoints (see endpoints): no node can answer."
    } else {
        "Those nodes' service proxies have not programmed the NodePort, or a firewall on the node drops it: read the proxy's log there."
    };
    Check::new("node-port", Status::Fail, message).hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    /// Answers from tables; records what was asked.
    #[derive(Default)]
    struct Fake {
        open: BTreeMap<SocketAddr, Connect>,
        loopback: BTreeMap<(String, u16), Connect>,
        dns: Option<Result<DnsAnswer, String>>,
        asked: Vec<SocketAddr>,
    }

    impl Prober for Fake {
        fn connect(&mut self, addr: SocketAddr, _http: bool) -> Connect {
            self.asked.push(addr);
            self.open.get(&addr).cloned().unwrap_or(Connect::Refused)
        }
        fn dns(&mut self, _server: SocketAddr, _name: &str, _ipv6: bool) -> Result<DnsAnswer, String> {
            self.dns.clone().unwrap_or(Err("timeout".into()))
        }
        fn loopback_in_pod(&mut self, uid: &str, port: u16) -> Option<Connect> {
            self.loopback.get(&(uid.to_owned(), port)).cloned()
        }
    }

    fn open() -> Connect {
        Connect::Open { reply: None }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn facts(spec: Value, pods: usize) -> Facts {
        let pods: Vec<Pod> = (1..=pods)
            .map(|i| {
                serde_json::from_value(json!({
                    "metadata": {"name": format!("web-{i}"), "namespace": "default", "uid": format!("u{i}"), "labels": {"app": "web"}},
                    "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"containerPort": 8080, "name": "http"}]}]},
                    "status": {"phase": "Running", "podIP": format!("10.0.0.{i}"), "conditions": [{"type": "Ready", "status": "True"}]}
                }))
                .unwrap()
            })
            .collect();
        let slice = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "endpoints": (1..=pods.len()).map(|i| json!({"addresses": [format!("10.0.0.{i}")], "nodeName": "n1"})).collect::<Vec<_>>()});
        Facts {
            namespace: "default".into(),
            name: "web".into(),
            cluster_domain: "cluster.local".into(),
            service: Some(
                serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec})).unwrap(),
            ),
            pods,
            slices: vec![serde_json::from_value(slice).unwrap()],
            nodes: vec![
                serde_json::from_value(json!({"metadata": {"name": "n1"}, "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.1"}]}}))
                    .unwrap(),
            ],
            dns_service: Some(
                serde_json::from_value(json!({"metadata": {"name": "kube-dns"},
                    "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53, "protocol": "UDP"}]}}))
                .unwrap(),
            ),
            ..Default::default()
        }
    }

    fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no {name} in {checks:#?}"))
    }

    #[test]
    fn a_healthy_service_passes_every_network_check() {
        let f = facts(
            json!({"type": "NodePort", "clusterIP": "10.96.0.20", "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": "http", "nodePort": 30080}]}),
            2,
        );
        let mut p = Fake {
            dns: Some(Ok(DnsAnswer { rcode: 0, addresses: vec!["10.96.0.20".parse().unwrap()], cnames: vec![] })),
            ..Default::default()
        };
        for a in ["10.0.0.1:8080", "10.0.0.2:8080", "10.96.0.20:80", "192.0.2.1:30080"] {
            p.open.insert(sa(a), open());
        }
        let checks = network(&f, &mut p);
        assert!(checks.iter().all(|c| c.status == Status::Pass), "{checks:#?}");
        assert_eq!(find(&checks, "cluster-ip").hint.as_deref(), Some(PING_NOTE));
        assert_eq!(p.asked.len(), 4, "both pods, the ClusterIP and the node: {:?}", p.asked);
    }

    #[test]
    fn a_pod_refusing_on_its_ip_but_answering_on_loopback_is_bound_to_localhost() {
        let f = facts(
            json!({"clusterIP": "10.96.0.20", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}),
            1,
        );
        let mut p = Fake::default();
        p.loopback.insert(("u1".into(), 8080), open());
        let c = find(&network(&f, &mut p), "pod-port").clone();
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.contains("listens only on 127.0.0.1"), "{c:?}");
        assert!(c.hint.unwrap().contains("0.0.0.0"));
        p.loopback.insert(("u1".into(), 8080), Connect::Refused);
        let c = find(&network(&f, &mut p), "pod-port").clone();
        assert!(c.message.contains("nothing listens on port 8080"), "{c:?}");
        p.loopback.clear();
        let c = find(&network(&f, &mut p), "pod-port").clone();
        assert!(c.message.contains("not on this machine"), "{c:?}");
    }

    #[test]
    fn dns_must_answer_the_cluster_ip() {
        let f = facts(json!({"clusterIP": "10.96.0.20", "selector": {"app": "web"}, "ports": [{"port": 80}]}), 1);
        let answer =
            |rcode, ip: &str| Some(Ok(DnsAnswer { rcode, addresses: vec![ip.parse().unwrap()], cnames: vec![] }));
        let mut p = Fake { dns: answer(0, "10.96.0.99"), ..Default::default() };
        assert_eq!(find(&network(&f, &mut p), "dns").status, Status::Fail, "a stale address");
        p.dns = Some(Ok(DnsAnswer { rcode: 3, ..Default::default() }));
        assert!(find(&network(&f, &mut p), "dns").message.contains("NXDOMAIN"));
        p.dns = None;
        assert!(find(&network(&f, &mut p), "dns").message.contains("did not answer"));
    }

    #[test]
    fn a_cluster_ip_without_ready_endpoints_is_blamed_on_them() {
        let mut f = facts(json!({"clusterIP": "10.96.0.20", "selector": {"app": "web"}, "ports": [{"port": 80}]}), 1);
        f.slices.clear();
        let c = find(&network(&f, &mut Fake::default()), "cluster-ip").clone();
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.contains("no ready endpoints") && c.hint.as_deref().unwrap().contains("ping"), "{c:?}");
    }

    #[test]
    fn local_traffic_policy_tries_only_nodes_with_endpoints() {
        let mut f = facts(
            json!({"type": "NodePort", "clusterIP": "10.96.0.20", "externalTrafficPolicy": "Local",
            "selector": {"app": "web"}, "ports": [{"port": 80, "nodePort": 30080}]}),
            1,
        );
        f.nodes.push(
            serde_json::from_value(json!({"metadata": {"name": "n2"}, "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.2"}]}}))
                .unwrap(),
        );
        let mut p = Fake::default();
        p.open.insert(sa("192.0.2.1:30080"), open());
        let checks = network(&f, &mut p);
        let c = find(&checks, "node-port");
        assert_eq!(c.status, Status::Pass, "{c:?}");
        assert!(c.message.contains("not tried on n2"), "{c:?}");
        assert!(!p.asked.contains(&sa("192.0.2.2:30080")));
    }

    #[test]
    fn the_probe_client_is_not_a_backend_when_another_pod_is_here() {
        let mut f = facts(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}), 2);
        let client = choose_client(&f, |_| true).unwrap();
        assert!(client.backend, "only backends exist");
        let mut other = f.pods[0].clone();
        other.metadata.name = Some("curl".into());
        other.metadata.uid = Some("u9".into());
        other.metadata.labels = None;
        f.pods.push(other);
        assert_eq!(choose_client(&f, |_| true).unwrap().name, "curl");
        assert_eq!(choose_client(&f, |uid| uid == "u2").unwrap().name, "web-2", "only its namespace is here");
        assert!(choose_client(&f, |_| false).is_none());
    }
}

//! LoadBalancer addresses made reachable on the node's L2 segment, as MetalLB's layer-2 mode
//! does: for each load balancer IP one node, chosen by MetalLB's hash among the nodes that can
//! serve it, answers ARP (and NDP) for it and announces it gratuitously when it takes over.
//!
//! "Can serve" means: the node is Ready, its proxy is alive, and (with
//! `externalTrafficPolicy: Local`) it has a ready endpoint of the Service. Liveness is a Lease
//! per proxy (`kube-node-lease/portico-l2-<node>`, renewed every second, valid for four), so a
//! node that stops is replaced within seconds rather than after the 40 s a Node takes to turn
//! NotReady. The announcing node records an Event and a `portico.dev/L2Announcement`
//! condition on the Service.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use component::informer::{Informer, Informers};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Service as K8sService};
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::watch;

use crate::l2::{self, Announcer};
use crate::model::{ServiceKey, Snapshot};

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const LEASE_PREFIX: &str = "portico-l2-";
pub const CONDITION: &str = "portico.dev/L2Announcement";
const RENEW: Duration = Duration::from_secs(1);
const LEASE_SECONDS: i32 = 4;

#[derive(Clone, Debug)]
pub struct Options {
    pub node_name: String,
    pub node_ip: IpAddr,
    /// Interfaces to answer on (`--lb-interfaces`); empty: the one holding `node_ip`.
    pub interfaces: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no interface holds the node address {0}; name one with --lb-interfaces")]
    NoInterface(IpAddr),
    #[error(transparent)]
    L2(#[from] l2::Error),
}

/// Which node announces each load balancer IP. Pure.
pub fn assignments(snapshot: &Snapshot, alive: &BTreeSet<String>) -> BTreeMap<IpAddr, (ServiceKey, String)> {
    let mut out = BTreeMap::new();
    for (key, state) in snapshot {
        let svc = &state.service;
        let candidates: Vec<&str> = if svc.external_policy_local() {
            let with_endpoints: BTreeSet<&str> =
                state.endpoints.values().flatten().filter(|e| e.ready).filter_map(|e| e.node.as_deref()).collect();
            alive.iter().map(String::as_str).filter(|n| with_endpoints.contains(n)).collect()
        } else {
            alive.iter().map(String::as_str).collect()
        };
        for ip in &svc.load_balancer_ips {
            if let Some(winner) = l2::announcer(*ip, &candidates) {
                out.insert(*ip, (key.clone(), winner.to_owned()));
            }
        }
    }
    out
}

/// Runs the announcer until the process ends.
pub async fn run(
    informers: Informers,
    opts: Options,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
) -> Result<(), Error> {
    let interfaces = if opts.interfaces.is_empty() {
        vec![interface_of(opts.node_ip).ok_or(Error::NoInterface(opts.node_ip))?]
    } else {
        opts.interfaces.clone()
    };
    let announcers = interfaces.iter().map(|i| Announcer::start(i)).collect::<Result<Vec<_>, _>>()?;
    tracing::info!(?interfaces, "layer-2 announcements of load balancer IPs");
    let client = informers.client().clone();
    let nodes: Informer<Node> = informers.get();
    let leases: Informer<Lease> = informers.get();
    tokio::spawn(renew(client.clone(), opts.node_name.clone()));

    let mut mine: BTreeMap<IpAddr, ServiceKey> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = snapshots.changed() => if changed.is_err() { return Ok(()) },
        }
        let alive = alive_nodes(&nodes, &leases);
        let snapshot = snapshots.borrow().clone();
        let wanted: BTreeMap<IpAddr, ServiceKey> = assignments(&snapshot, &alive)
            .into_iter()
            .filter(|(_, (_, node))| *node == opts.node_name)
            .map(|(ip, (key, _))| (ip, key))
            .collect();
        if wanted == mine {
            continue;
        }
        for a in &announcers {
            a.set(wanted.keys().copied().collect());
        }
        for (ip, key) in &wanted {
            if mine.get(ip) != Some(key) {
                tracing::info!(%ip, service = %key, "announcing");
                report(&client, key, *ip, &opts.node_name).await;
            }
        }
        mine = wanted;
    }
}

/// Nodes that are Ready and whose proxy renewed its Lease within its duration.
fn alive_nodes(nodes: &Informer<Node>, leases: &Informer<Lease>) -> BTreeSet<String> {
    let now = jiff::Timestamp::now();
    let mut out = BTreeSet::new();
    nodes.for_each(|n| {
        let name = n.metadata.name.clone().unwrap_or_default();
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let fresh = leases.get(LEASE_NAMESPACE, &format!("{LEASE_PREFIX}{name}")).is_some_and(|l| {
            let spec = l.spec.as_ref();
            let renewed = spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0);
            let seconds = spec.and_then(|s| s.lease_duration_seconds).unwrap_or(LEASE_SECONDS);
            renewed.is_some_and(|r| (now - r).total(jiff::Unit::Second).unwrap_or(f64::MAX) < seconds as f64)
        });
        if ready && fresh {
            out.insert(name);
        }
    });
    out
}

async fn renew(client: kube::Client, node: String) {
    let api: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
    let name = format!("{LEASE_PREFIX}{node}");
    let params = PatchParams::apply("portico-proxy").force();
    loop {
        let lease = serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_SECONDS,
                     "renewTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}
        });
        if let Err(e) = api.patch(&name, &params, &Patch::Apply(&lease)).await {
            tracing::warn!(error = %e, "renewing the layer-2 liveness Lease");
        }
        tokio::time::sleep(RENEW).await;
    }
}

/// An Event (MetalLB's wording) and the Service's condition naming the announcing node.
async fn report(client: &kube::Client, key: &ServiceKey, ip: IpAddr, node: &str) {
    let involved = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        namespace: Some(key.namespace.clone()),
        name: Some(key.name.clone()),
        ..Default::default()
    };
    let message = format!("announcing from node \"{node}\" with protocol \"layer2\"");
    component::events::record(client, involved, "Normal", "nodeAssigned", &message, "portico-proxy").await;
    let api: Api<K8sService> = Api::namespaced(client.clone(), &key.namespace);
    let Ok(current) = api.get_status(&key.name).await else { return };
    let mut conditions: Vec<serde_json::Value> = current
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != CONDITION)
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    conditions.push(serde_json::json!({
        "type": CONDITION, "status": "True", "reason": "Announcing",
        "message": format!("announcing {ip} from node \"{node}\""),
        "lastTransitionTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }));
    let patch = serde_json::json!({"status": {"conditions": conditions}});
    if let Err(e) = api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        tracing::warn!(error = %e, service = %key, "recording the announcing node in the Service's status");
    }
}

/// The name of the interface that holds `ip`, in this network namespace.
pub fn interface_of(ip: IpAddr) -> Option<String> {
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list that freeifaddrs releases below; it is only read in between.
    if unsafe { libc::getifaddrs(&mut addrs) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = addrs;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says which struct it is.
            let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            let addr = match family {
                libc::AF_INET => {
                    // SAFETY: AF_INET addresses are sockaddr_in.
                    let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    Some(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()))
                }
                libc::AF_INET6 => {
                    // SAFETY: AF_INET6 addresses are sockaddr_in6.
                    let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                }
                _ => None,
            };
            if addr == Some(ip) {
                // SAFETY: ifa_name is a NUL-terminated string owned by the list.
                let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
                found = Some(name.to_string_lossy().into_owned());
                break;
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: addrs came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(addrs) };
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Port, Protocol, Service, ServiceState};

    fn lb(local: bool, endpoints_on: &[&str]) -> Snapshot {
        let service = Service {
            key: ServiceKey::new("default", "web"),
            cluster_ips: vec!["10.96.0.20".parse().unwrap()],
            external_ips: vec![],
            load_balancer_ips: vec!["198.51.100.200".parse().unwrap()],
            ports: vec![Port { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port: Some(30080) }],
            affinity_timeout: None,
            external_local: local,
            internal_local: false,
            health_check_node_port: None,
            source_ranges: vec![],
        };
        let eps = endpoints_on
            .iter()
            .enumerate()
            .map(|(i, n)| Endpoint {
                ip: format!("198.19.{i}.5").parse().unwrap(),
                port: 8080,
                ready: true,
                serving: true,
                terminating: false,
                node: Some(n.to_string()),
            })
            .collect();
        let state = ServiceState { service, endpoints: BTreeMap::from([("http".into(), eps)]) };
        BTreeMap::from([(state.service.key.clone(), Arc::new(state))])
    }

    fn alive(nodes: &[&str]) -> BTreeSet<String> {
        nodes.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn one_alive_node_announces_and_another_takes_over() {
        let snap = lb(false, &["n1"]);
        let ip: IpAddr = "198.51.100.200".parse().unwrap();
        let first = assignments(&snap, &alive(&["n1", "n2", "n3"]))[&ip].1.clone();
        let rest: Vec<&str> = ["n1", "n2", "n3"].into_iter().filter(|n| *n != first).collect();
        let second = assignments(&snap, &alive(&rest))[&ip].1.clone();
        assert_ne!(first, second);
        assert!(assignments(&snap, &alive(&[])).is_empty());
    }

    #[test]
    fn local_policy_announces_only_from_nodes_with_endpoints() {
        let snap = lb(true, &["n3"]);
        let ip: IpAddr = "198.51.100.200".parse().unwrap();
        assert_eq!(assignments(&snap, &alive(&["n1", "n2", "n3"]))[&ip].1, "n3");
        assert!(assignments(&snap, &alive(&["n1", "n2"])).is_empty());
    }

    #[test]
    fn the_interface_holding_loopback_is_lo() {
        assert_eq!(interface_of("127.0.0.1".parse().unwrap()).as_deref(), Some("lo"));
        assert_eq!(interface_of("192.0.2.99".parse().unwrap()), None);
    }
}

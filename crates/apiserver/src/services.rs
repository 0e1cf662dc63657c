//! The Service registry's allocators: ClusterIPs from the service CIDR(s) and NodePorts from
//! the node port range, held in memory and derived from the store.
//!
//! A write reserves what it needs before it commits and gives the reservation back if the
//! commit fails. The allocators then follow the store's change stream: every stored Service
//! marks what it holds, every change releases what it dropped. So the allocator state is a
//! function of the stored Services plus in-flight reservations; a crash loses only those
//! reservations, and the repair pass at start (a full list) rebuilds the rest. After a
//! Service write the registry waits until the follower has seen its revision, so a client
//! that deletes a Service and recreates it with the same nodePort is never refused.

use crate::alloc::{AllocError, Cidr, IpAllocator, IpFamily, PortAllocator, PortRange};
use crate::error::{ApiError, ApiResult};
use crate::object;
use crate::registry::{ListOptions, Registry};
use api::FieldError;
use api::{json, service};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// kube-apiserver's `--service-cluster-ip-range` and `--service-node-port-range`.
#[derive(Debug, Clone)]
pub struct ServiceNetworkConfig {
    /// One or two CIDRs of different families; the first is the primary.
    pub cidrs: Vec<Cidr>,
    pub node_ports: PortRange,
}

impl Default for ServiceNetworkConfig {
    fn default() -> Self {
        ServiceNetworkConfig {
            cidrs: vec!["10.96.0.0/12".parse().expect("valid CIDR")],
            node_ports: "30000-32767".parse().expect("valid range"),
        }
    }
}

impl ServiceNetworkConfig {
    /// Parses a comma-separated `--service-cluster-ip-range` the way kube-apiserver checks it.
    pub fn parse_cidrs(s: &str) -> Result<Vec<Cidr>, String> {
        let cidrs: Vec<Cidr> = s
            .split(',')
            .map(|c| c.trim().parse::<Cidr>().map_err(|e| format!("{c}: {e}")))
            .collect::<Result<_, _>>()?;
        match cidrs.as_slice() {
            [] => Err("--service-cluster-ip-range must hold at least one CIDR".into()),
            [_] => Ok(cidrs),
            [a, b] if a.family() != b.family() => Ok(cidrs),
            [_, _] => Err("--service-cluster-ip-range: dual-stack needs one IPv4 and one IPv6 CIDR".into()),
            _ => Err("--service-cluster-ip-range may hold at most two CIDRs (one per family)".into()),
        }
    }
}

struct State {
    ips: Vec<IpAllocator>,
    ports: PortAllocator,
    /// Values reserved by writes that have not been seen committed yet; a rebuild from a
    /// fresh list keeps them.
    pending_ips: Vec<IpAddr>,
    pending_ports: Vec<u16>,
}

/// What one Service holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Holdings {
    ips: BTreeSet<IpAddr>,
    ports: BTreeSet<u16>,
}

/// Values reserved by a write that has not committed yet.
#[derive(Debug, Default)]
#[must_use = "a reservation must be released if its write fails"]
pub(crate) struct Reservation {
    ips: Vec<IpAddr>,
    ports: Vec<u16>,
}

pub(crate) struct ServiceAllocators {
    config: ServiceNetworkConfig,
    state: Mutex<State>,
    processed: tokio::sync::watch::Sender<u64>,
}

fn services() -> &'static api::ResourceType {
    api::resources::lookup("", "v1", "services").expect("services are served")
}

impl ServiceAllocators {
    pub(crate) fn new(config: ServiceNetworkConfig) -> Result<Self, String> {
        let ips = config.cidrs.iter().map(|c| IpAllocator::new(*c)).collect::<Result<Vec<_>, _>>()?;
        let ports = PortAllocator::new(config.node_ports)?;
        let (processed, _) = tokio::sync::watch::channel(0);
        let state = State { ips, ports, pending_ips: Vec::new(), pending_ports: Vec::new() };
        Ok(ServiceAllocators { config, state: Mutex::new(state), processed })
    }

    /// The first address of the primary range, which the `kubernetes` Service takes.
    pub(crate) fn kubernetes_ip(&self) -> IpAddr {
        self.state.lock().expect("allocator lock").ips[0].first()
    }

    fn api_config(&self) -> api::service::ServiceConfig {
        api::service::ServiceConfig {
            families: self
                .config
                .cidrs
                .iter()
                .map(|c| match c.family() {
                    IpFamily::V4 => api::service::IpFamily::IPv4,
                    IpFamily::V6 => api::service::IpFamily::IPv6,
                })
                .collect(),
        }
    }

    /// The repair pass: marks what every stored Service holds. Returns the revision the
    /// list was taken at, from which [`follow`](Self::follow) continues.
    pub(crate) async fn repair(&self, registry: &Registry) -> ApiResult<u64> {
        let page = registry.list(services(), None, &ListOptions::default()).await?;
        let mut st = self.state.lock().expect("allocator lock");
        for svc in &page.items {
            let h = holdings(svc);
            for ip in &h.ips {
                mark_ip(&mut st, *ip, svc);
            }
            for port in &h.ports {
                mark_port(&mut st, *port, svc);
            }
        }
        drop(st);
        self.processed.send_replace(page.revision);
        Ok(page.revision)
    }

    /// Follows Service changes from `after`, releasing what Services drop and marking what
    /// they hold. Restarts with a repair pass if the change stream ends.
    pub(crate) async fn follow(self: std::sync::Arc<Self>, registry: Registry, mut after: u64) {
        loop {
            match registry.store().watch(&services().key_prefix(), after) {
                Ok(mut stream) => {
                    while let Some(event) = stream.next().await {
                        let new = object::from_stored(&event.value, event.revision).ok();
                        let old = event.prev_value.as_deref().and_then(|p| object::from_stored(p, event.revision).ok());
                        let now = match event.kind {
                            store::EventType::Deleted => Holdings::default(),
                            _ => new.as_ref().map(holdings).unwrap_or_default(),
                        };
                        let before = old.as_ref().map(holdings).unwrap_or_default();
                        self.apply_change(&before, &now, new.as_ref());
                        after = event.revision;
                        self.processed.send_replace(event.revision);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "service allocator watch failed"),
            }
            // The stream ended (we fell behind) or could not start: rebuild from a fresh list.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let fresh = match ServiceAllocators::new(self.config.clone()) {
                Ok(f) => f,
                Err(_) => continue,
            };
            if let Ok(rev) = fresh.repair(&registry).await {
                let mut rebuilt = fresh.state.into_inner().expect("allocator lock");
                let mut st = self.state.lock().expect("allocator lock");
                for ip in &st.pending_ips {
                    if let Some(a) = rebuilt.ips.iter_mut().find(|a| a.cidr().contains(*ip)) {
                        a.mark(*ip);
                    }
                }
                for port in &st.pending_ports {
                    rebuilt.ports.mark(*port);
                }
                rebuilt.pending_ips = std::mem::take(&mut st.pending_ips);
                rebuilt.pending_ports = std::mem::take(&mut st.pending_ports);
                *st = rebuilt;
                drop(st);
                after = rev;
                self.processed.send_replace(rev);
            }
        }
    }

    fn apply_change(&self, before: &Holdings, now: &Holdings, svc: Option<&Value>) {
        let mut st = self.state.lock().expect("allocator lock");
        for ip in before.ips.difference(&now.ips) {
            if let Some(a) = st.ips.iter_mut().find(|a| a.cidr().contains(*ip)) {
                a.release(*ip);
            }
        }
        for port in before.ports.difference(&now.ports) {
            st.ports.release(*port);
        }
        if let Some(svc) = svc {
            for ip in now.ips.difference(&before.ips) {
                mark_ip(&mut st, *ip, svc);
            }
            for port in now.ports.difference(&before.ports) {
                mark_port(&mut st, *port, svc);
            }
        }
    }

    /// Waits until the follower has applied `revision` (bounded, so a stalled follower
    /// can't hang a write).
    pub(crate) async fn wait_processed(&self, revision: u64) {
        let mut rx = self.processed.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|r| *r >= revision)).await;
    }

    /// Fills in and reserves the cluster IPs and node ports a new Service needs.
    pub(crate) fn reserve_for_create(&self, svc: &mut Value) -> ApiResult<Reservation> {
        api::service::normalize_cluster_ips(svc, None);
        self.default_families(svc)?;
        let errors = api::service::validate_cluster_ips_related_fields(svc);
        if !errors.is_empty() {
            return Err(invalid(svc, errors));
        }
        self.reserve(svc, &Holdings::default())
    }

    /// Reserves what an update adds over `old`; what it drops is released when it commits.
    pub(crate) fn reserve_for_update(&self, old: &Value, new: &mut Value) -> ApiResult<Reservation> {
        api::service::normalize_cluster_ips(new, Some(old));
        let errors = api::service::init_ip_family_fields(new, Some(old), &self.api_config());
        if !errors.is_empty() {
            return Err(invalid(new, errors));
        }
        self.reserve(new, &holdings(old))
    }

    /// Ends a reservation whose write committed and has been seen by the follower, which
    /// now holds its values through the stored Service.
    pub(crate) fn commit(&self, r: Reservation) {
        let mut st = self.state.lock().expect("allocator lock");
        forget_pending(&mut st, &r);
    }

    /// Gives back a reservation whose write failed.
    pub(crate) fn release(&self, r: Reservation) {
        let mut st = self.state.lock().expect("allocator lock");
        forget_pending(&mut st, &r);
        for ip in r.ips {
            if let Some(a) = st.ips.iter_mut().find(|a| a.cidr().contains(ip)) {
                a.release(ip);
            }
        }
        for port in r.ports {
            st.ports.release(port);
        }
    }

    fn default_families(&self, svc: &mut Value) -> ApiResult<()> {
        let errors = api::service::default_ip_families(svc, &self.api_config());
        if errors.is_empty() { Ok(()) } else { Err(invalid(svc, errors)) }
    }

    fn reserve(&self, svc: &mut Value, held: &Holdings) -> ApiResult<Reservation> {
        let mut st = self.state.lock().expect("allocator lock");
        let mut r = Reservation::default();
        let result = reserve_locked(&mut st, svc, held, &mut r);
        st.pending_ips.extend(r.ips.iter().copied());
        st.pending_ports.extend(r.ports.iter().copied());
        if result.is_err() {
            drop(st);
            self.release(r);
            return result.map(|_| Reservation::default());
        }
        Ok(r)
    }

    /// The numbers behind kube-apiserver's allocator metrics.
    pub(crate) fn metrics_snapshot(&self) -> AllocatorMetrics {
        let st = self.state.lock().expect("allocator lock");
        let cidrs = st
            .ips
            .iter()
            .map(|a| {
                let s = a.stats();
                CidrMetrics {
                    cidr: a.cidr().to_string(),
                    used: a.used(),
                    free: a.free(),
                    allocations_static: s.allocations_static,
                    allocations_dynamic: s.allocations_dynamic,
                    errors_static: s.errors_static,
                    errors_dynamic: s.errors_dynamic,
                }
            })
            .collect();
        let s = st.ports.stats();
        let ports = CidrMetrics {
            cidr: String::new(),
            used: st.ports.used(),
            free: st.ports.free(),
            allocations_static: s.allocations_static,
            allocations_dynamic: s.allocations_dynamic,
            errors_static: s.errors_static,
            errors_dynamic: s.errors_dynamic,
        };
        AllocatorMetrics { cidrs, ports }
    }
}

fn forget_pending(st: &mut State, r: &Reservation) {
    for ip in &r.ips {
        if let Some(i) = st.pending_ips.iter().position(|p| p == ip) {
            st.pending_ips.swap_remove(i);
        }
    }
    for port in &r.ports {
        if let Some(i) = st.pending_ports.iter().position(|p| p == port) {
            st.pending_ports.swap_remove(i);
        }
    }
}

fn mark_ip(st: &mut State, ip: IpAddr, svc: &Value) {
    match st.ips.iter_mut().find(|a| a.cidr().contains(ip)) {
        Some(a) => {
            // Already marked is expected: the write that stored it reserved it first.
            a.mark(ip);
        }
        None => tracing::warn!(service = ?object::name(svc), %ip, "stored cluster IP is outside the service CIDRs"),
    }
}

fn mark_port(st: &mut State, port: u16, svc: &Value) {
    if st.ports.range().contains(port) {
        st.ports.mark(port);
    } else {
        tracing::warn!(service = ?object::name(svc), port, "stored nodePort is outside the node port range");
    }
}

/// Everything a stored Service holds.
fn holdings(svc: &Value) -> Holdings {
    let mut h = Holdings::default();
    if service::needs_cluster_ip(svc) {
        for ip in svc.pointer("/spec/clusterIPs").and_then(Value::as_array).into_iter().flatten() {
            if let Some(ip) = ip.as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                h.ips.insert(ip);
            }
        }
        if let Some(ip) = svc.pointer("/spec/clusterIP").and_then(Value::as_str).and_then(|s| s.parse().ok()) {
            h.ips.insert(ip);
        }
    }
    for p in svc.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
        if let Some(np) = p.get("nodePort").and_then(Value::as_u64).filter(|n| *n > 0 && *n <= 65535) {
            h.ports.insert(np as u16);
        }
    }
    if let Some(hc) = svc.pointer("/spec/healthCheckNodePort").and_then(Value::as_u64).filter(|n| *n > 0 && *n <= 65535)
    {
        h.ports.insert(hc as u16);
    }
    h
}

fn invalid(svc: &Value, causes: Vec<FieldError>) -> ApiError {
    ApiError::Invalid {
        kind: "Service".into(),
        group: String::new(),
        name: object::name(svc).unwrap_or_default().to_string(),
        causes,
    }
}

fn reserve_locked(st: &mut State, svc: &mut Value, held: &Holdings, r: &mut Reservation) -> ApiResult<()> {
    if service::allocates_cluster_ips(svc) {
        let families = json::string_items(svc.pointer("/spec/ipFamilies"));
        let mut ips = json::string_items(svc.pointer("/spec/clusterIPs"));
        let requested = ips.clone();
        for (i, family) in families.iter().enumerate() {
            let Some(alloc) = st.ips.iter_mut().find(|a| a.cidr().family().as_str() == family) else {
                return Err(invalid(
                    svc,
                    vec![FieldError::invalid(
                        format!("spec.ipFamilies[{i}]"),
                        format!("{family:?}"),
                        "not configured on this cluster",
                    )],
                ));
            };
            match ips.get(i).filter(|s| !s.is_empty()) {
                Some(ip) => {
                    let parsed: IpAddr =
                        ip.parse().map_err(|_| ApiError::Internal(format!("failed to parse service IP {ip:?}")))?;
                    if held.ips.contains(&parsed) {
                        continue;
                    }
                    alloc.allocate(parsed).map_err(|e| {
                        let value = format!(
                            "[]string{{{}}}",
                            requested.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")
                        );
                        invalid(
                            svc,
                            vec![FieldError::invalid(
                                "spec.clusterIPs",
                                value,
                                format!("failed to allocate IP {ip}: {e}"),
                            )],
                        )
                    })?;
                    r.ips.push(parsed);
                }
                None => {
                    let ip = alloc
                        .allocate_next()
                        .map_err(|e| ApiError::Internal(format!("failed to allocate a serviceIP: {e}")))?;
                    r.ips.push(ip);
                    if ips.len() > i {
                        ips[i] = ip.to_string();
                    } else {
                        ips.push(ip.to_string());
                    }
                }
            }
        }
        if let Some(first) = ips.first() {
            svc["spec"]["clusterIP"] = json!(first);
            svc["spec"]["clusterIPs"] = json!(ips);
        }
    }

    if service::needs_node_port(svc) {
        let auto = service::allocates_node_ports(svc);
        let mut by_port: Vec<(u64, u16)> = Vec::new();
        let n = svc.pointer("/spec/ports").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
        for i in 0..n {
            let port_number = svc["spec"]["ports"][i].get("port").and_then(Value::as_u64).unwrap_or(0);
            let requested = svc["spec"]["ports"][i].get("nodePort").and_then(Value::as_u64).unwrap_or(0);
            if requested > 0 {
                let np = requested as u16;
                let shared = by_port.iter().any(|(p, n)| *p == port_number && *n == np);
                if !(held.ports.contains(&np) || shared || r.ports.contains(&np)) {
                    st.ports.allocate(np).map_err(|e| port_error(svc, i, requested, e))?;
                    r.ports.push(np);
                }
                by_port.push((port_number, np));
            } else if auto {
                // The same port number for TCP and UDP shares one nodePort.
                let np = match by_port.iter().find(|(p, _)| *p == port_number) {
                    Some((_, np)) => *np,
                    None => {
                        let np = st
                            .ports
                            .allocate_next()
                            .map_err(|e| ApiError::Internal(format!("failed to allocate a nodePort: {e}")))?;
                        r.ports.push(np);
                        np
                    }
                };
                svc["spec"]["ports"][i]["nodePort"] = json!(np);
                by_port.push((port_number, np));
            }
        }
    }

    if service::needs_health_check(svc) {
        match svc.pointer("/spec/healthCheckNodePort").and_then(Value::as_u64).filter(|p| *p > 0) {
            Some(hc) => {
                let hc16 = hc as u16;
                if !held.ports.contains(&hc16) && !r.ports.contains(&hc16) {
                    st.ports.allocate(hc16).map_err(|e| {
                        invalid(
                            svc,
                            vec![FieldError::invalid(
                                "spec.healthCheckNodePort",
                                hc,
                                format!("failed to allocate requested HealthCheck NodePort {hc}: {e}"),
                            )],
                        )
                    })?;
                    r.ports.push(hc16);
                }
            }
            None => {
                let hc = st
                    .ports
                    .allocate_next()
                    .map_err(|e| ApiError::Internal(format!("failed to allocate a nodePort: {e}")))?;
                r.ports.push(hc);
                svc["spec"]["healthCheckNodePort"] = json!(hc);
            }
        }
    }
    Ok(())
}

fn port_error(svc: &Value, i: usize, port: u64, e: AllocError) -> ApiError {
    invalid(svc, vec![FieldError::invalid(format!("spec.ports[{i}].nodePort"), port, e.to_string())])
}

/// One allocator's counts (a service CIDR, or the NodePort range with an empty `cidr`).
pub(crate) struct CidrMetrics {
    pub cidr: String,
    pub used: u64,
    pub free: u64,
    pub allocations_static: u64,
    pub allocations_dynamic: u64,
    pub errors_static: u64,
    pub errors_dynamic: u64,
}

pub(crate) struct AllocatorMetrics {
    pub cidrs: Vec<CidrMetrics>,
    pub ports: CidrMetrics,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocators(range: &str, ports: &str) -> ServiceAllocators {
        ServiceAllocators::new(ServiceNetworkConfig {
            cidrs: ServiceNetworkConfig::parse_cidrs(range).unwrap(),
            node_ports: ports.parse().unwrap(),
        })
        .unwrap()
    }

    fn svc(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn a_node_port_service_gets_an_ip_and_one_node_port_per_port_number() {
        let a = allocators("10.96.0.0/12", "30000-32767");
        let mut s = svc(json!({"type": "NodePort", "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            {"name": "http", "port": 80, "protocol": "TCP"}]}));
        let r = a.reserve_for_create(&mut s).unwrap();
        assert_eq!(r.ips.len(), 1);
        assert_eq!(r.ports.len(), 2, "TCP and UDP on port 53 share one nodePort");
        assert_eq!(s["spec"]["ports"][0]["nodePort"], s["spec"]["ports"][1]["nodePort"]);
        assert_eq!(s["spec"]["clusterIPs"][0], s["spec"]["clusterIP"]);
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
    }

    #[test]
    fn a_requested_ip_outside_the_range_is_refused_with_kubernetes_message() {
        let a = allocators("10.96.0.0/12", "30000-32767");
        let mut s = svc(json!({"clusterIP": "192.168.1.1", "ports": [{"port": 80}]}));
        let err = a.reserve_for_create(&mut s).unwrap_err();
        assert!(
            err.message().contains(r#"spec.clusterIPs: Invalid value: []string{"192.168.1.1"}: failed to allocate IP 192.168.1.1: the provided IP (192.168.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"#),
            "{}",
            err.message()
        );
    }

    #[test]
    fn a_failed_reservation_leaves_nothing_allocated() {
        let a = allocators("10.96.0.0/12", "30000-32767");
        let mut first = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}));
        let _kept = a.reserve_for_create(&mut first).unwrap();
        let used_before = a.state.lock().unwrap().ips[0].used();
        let mut second = svc(
            json!({"type": "NodePort", "ports": [{"name": "a", "port": 81}, {"name": "b", "port": 80, "nodePort": 30080}]}),
        );
        let err = a.reserve_for_create(&mut second).unwrap_err();
        assert!(
            err.message().contains("spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated")
        );
        let st = a.state.lock().unwrap();
        assert_eq!(st.ips[0].used(), used_before, "the IP reserved for the failed create was given back");
        assert_eq!(st.ports.used(), 1, "only the first service's port remains");
    }

    #[test]
    fn an_exhausted_node_port_range_is_a_clear_error() {
        let a = allocators("10.96.0.0/12", "30000-30001");
        let mut s = svc(json!({"type": "NodePort", "ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]}));
        let _r = a.reserve_for_create(&mut s).unwrap();
        let mut t = svc(json!({"type": "NodePort", "ports": [{"port": 3}]}));
        let err = a.reserve_for_create(&mut t).unwrap_err();
        assert_eq!(err.message(), "Internal error occurred: failed to allocate a nodePort: range is full");
        assert_eq!(a.state.lock().unwrap().ips[0].used(), 1, "no IP kept for the refused service");
    }

    #[test]
    fn holdings_ignore_headless_and_external_name() {
        assert_eq!(holdings(&svc(json!({"clusterIP": "None", "clusterIPs": ["None"]}))), Holdings::default());
        assert_eq!(holdings(&svc(json!({"type": "ExternalName", "externalName": "x.y"}))), Holdings::default());
    }
}

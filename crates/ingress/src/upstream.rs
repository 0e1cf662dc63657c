//! A backend's endpoints, taken straight from its Service's EndpointSlices (not through the
//! ClusterIP, so the controller balances, retries and pins sessions itself), and the choice of
//! one endpoint per request.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::table::ServicePort;

#[derive(Debug)]
pub struct Upstream {
    endpoints: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Upstream {
    pub fn new(mut endpoints: Vec<SocketAddr>) -> Upstream {
        endpoints.sort();
        endpoints.dedup();
        // Controllers starting together would otherwise all send their first request to the
        // same endpoint.
        let start = if endpoints.is_empty() { 0 } else { rand::random_range(0..endpoints.len()) };
        Upstream { endpoints, next: AtomicUsize::new(start) }
    }

    pub fn endpoints(&self) -> &[SocketAddr] {
        &self.endpoints
    }

    /// Round robin over the endpoints, skipping those already tried for this request.
    pub fn pick(&self, tried: &[SocketAddr]) -> Option<SocketAddr> {
        let n = self.endpoints.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|i| self.endpoints[(first + i) % n]).find(|e| !tried.contains(e))
    }

    /// The endpoint a session cookie names, while it is still an endpoint.
    pub fn by_cookie(&self, value: &str) -> Option<SocketAddr> {
        self.endpoints.iter().copied().find(|e| cookie_value(*e) == value)
    }
}

/// The affinity cookie's value for an endpoint: a hash of its address, stable across controller
/// restarts and replicas, and not the address itself (pod IPs stay private).
pub fn cookie_value(endpoint: SocketAddr) -> String {
    // FNV-1a: stable across Rust versions, unlike std's hasher.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in endpoint.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// The ready endpoints of `service`'s port `port`, as the EndpointSlices list them.
pub fn resolve(service: &Service, slices: &[EndpointSlice], port: &ServicePort) -> Result<Vec<SocketAddr>, String> {
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let spec = service.spec.as_ref().ok_or_else(|| format!("service {name} has no spec"))?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return Err(format!("service {name} is of type ExternalName, which is not supported as a backend"));
    }
    let ports = spec.ports.as_deref().unwrap_or_default();
    let found = ports.iter().find(|p| match port {
        ServicePort::Number(n) => p.port == *n,
        ServicePort::Name(s) => p.name.as_deref() == Some(s.as_str()),
    });
    let Some(service_port) = found else {
        let wanted = match port {
            ServicePort::Number(n) => n.to_string(),
            ServicePort::Name(s) => format!("{s:?}"),
        };
        return Err(format!("service {name} has no port {wanted}"));
    };
    if service_port.protocol.as_deref().is_some_and(|p| p != "TCP") {
        return Err(format!("service {name} port {} is not TCP", service_port.port));
    }
    let port_name = service_port.name.as_deref().unwrap_or_default();
    let mut out = vec![];
    for slice in slices {
        let Some(target) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| {
                p.name.as_deref().unwrap_or_default() == port_name && p.protocol.as_deref().unwrap_or("TCP") == "TCP"
            })
            .and_then(|p| p.port)
        else {
            continue;
        };
        let Ok(target) = u16::try_from(target) else { continue };
        for e in &slice.endpoints {
            // A missing condition means ready (EndpointSlice API).
            if e.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            for a in &e.addresses {
                if let Ok(ip) = a.parse::<IpAddr>() {
                    out.push(SocketAddr::new(ip, target));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service() -> Service {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "admin", "port": 9000}]}}))
        .unwrap()
    }

    fn slice(endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "admin", "port": 9090}],
            "endpoints": endpoints}))
        .unwrap()
    }

    #[test]
    fn resolves_ready_endpoints_by_port_number_or_name() {
        let s = slice(json!([
            {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
            {"addresses": ["10.0.0.2"], "conditions": {"ready": false, "terminating": true}},
            {"addresses": ["10.0.0.3"]}
        ]));
        let got = resolve(&service(), std::slice::from_ref(&s), &ServicePort::Number(80)).unwrap();
        assert_eq!(got, vec!["10.0.0.1:8080".parse().unwrap(), "10.0.0.3:8080".parse().unwrap()]);
        let admin = resolve(&service(), &[s], &ServicePort::Name("admin".into())).unwrap();
        assert_eq!(admin[0], "10.0.0.1:9090".parse().unwrap());
    }

    #[test]
    fn a_missing_port_is_explained() {
        let err = resolve(&service(), &[], &ServicePort::Number(81)).unwrap_err();
        assert_eq!(err, "service web has no port 81");
        let err = resolve(&service(), &[], &ServicePort::Name("grpc".into())).unwrap_err();
        assert_eq!(err, "service web has no port \"grpc\"");
    }

    #[test]
    fn round_robin_skips_tried_endpoints_and_cookies_name_live_ones() {
        let eps: Vec<SocketAddr> = vec!["10.0.0.1:80".parse().unwrap(), "10.0.0.2:80".parse().unwrap()];
        let u = Upstream::new(eps.clone());
        let a = u.pick(&[]).unwrap();
        let b = u.pick(&[]).unwrap();
        assert_ne!(a, b, "round robin alternates");
        assert_eq!(u.pick(&[a]), Some(b));
        assert_eq!(u.pick(&eps), None);
        assert_eq!(u.by_cookie(&cookie_value(a)), Some(a));
        assert_eq!(u.by_cookie(&cookie_value("10.0.0.9:80".parse().unwrap())), None);
        assert_eq!(cookie_value(a), cookie_value(a), "stable");
    }
}

//! Kubernetes objects into the proxy's [`model`](crate::model), by kube-proxy's rules: which
//! Services a proxy handles, which addresses and policies count, and how EndpointSlices merge
//! into one endpoint list per Service port. Pure.

use std::collections::BTreeMap;
use std::net::IpAddr;

use api::net::Cidr;
use k8s_openapi::api::core::v1::Service as K8sService;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::{Endpoint, Port, Protocol, Service, ServiceKey, ServiceState};

/// Label that hands a Service to another proxy; kube-proxy ignores such Services.
pub const SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// Label the API puts on headless Services' EndpointSlices; kube-proxy ignores them.
pub const HEADLESS: &str = "service.kubernetes.io/headless";
/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The default of `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

/// The label selector kube-proxy lists Services and EndpointSlices with.
pub const LABEL_SELECTOR: &str = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless";

/// The Service as the proxy programs it, or `None` if the proxy leaves it alone (headless,
/// ExternalName, without a ClusterIP yet, or labelled for another proxy).
pub fn service(s: &K8sService) -> Option<Service> {
    let labels = s.metadata.labels.as_ref();
    if labels.is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME) || l.contains_key(HEADLESS)) {
        return None;
    }
    let spec = s.spec.as_ref()?;
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if kind == "ExternalName" {
        return None;
    }
    let cluster_ips: Vec<IpAddr> = match &spec.cluster_ips {
        Some(ips) if !ips.is_empty() => ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
        _ => spec.cluster_ip.iter().filter_map(|ip| ip.parse().ok()).collect(),
    };
    if cluster_ips.is_empty() {
        return None;
    }
    let exposes_node_ports = kind == "NodePort" || kind == "LoadBalancer";
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(Port {
                name: p.name.clone().unwrap_or_default(),
                protocol: Protocol::parse(p.protocol.as_deref())?,
                port: u16::try_from(p.port).ok()?,
                node_port: p.node_port.filter(|_| exposes_node_ports).and_then(|n| u16::try_from(n).ok()),
            })
        })
        .collect();
    let load_balancer_ips = if kind == "LoadBalancer" {
        s.status
            .as_ref()
            .and_then(|st| st.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            // "Proxy" means the load balancer delivers to the node with its own address as
            // destination; kube-proxy then does not capture the IP.
            .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
            .filter_map(|i| i.ip.as_deref()?.parse().ok())
            .collect()
    } else {
        vec![]
    };
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    Some(Service {
        key: ServiceKey::new(
            s.metadata.namespace.clone().unwrap_or_default(),
            s.metadata.name.clone().unwrap_or_default(),
        ),
        cluster_ips,
        external_ips: spec.external_ips.iter().flatten().filter_map(|ip| ip.parse().ok()).collect(),
        load_balancer_ips,
        ports,
        affinity_timeout,
        external_local: exposes_node_ports && spec.external_traffic_policy.as_deref() == Some("Local"),
        internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
        health_check_node_port: spec.health_check_node_port.and_then(|p| u16::try_from(p).ok()),
        source_ranges: if kind == "LoadBalancer" {
            spec.load_balancer_source_ranges
                .iter()
                .flatten()
                .filter_map(|r| Cidr::parse_network(r.trim()).ok())
                .collect()
        } else {
            vec![]
        },
    })
}

/// The Service with its endpoints from `slices` (the slices labelled with its name). An
/// endpoint is listed once per port even if several slices carry it; FQDN slices and endpoints
/// without an address are ignored; conditions default as the API documents them (ready unless
/// false, serving as ready, terminating false).
pub fn state<'a>(service: Service, slices: impl IntoIterator<Item = &'a EndpointSlice>) -> ServiceState {
    let mut endpoints: BTreeMap<String, Vec<Endpoint>> = BTreeMap::new();
    for slice in slices {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        for sp in slice.ports.iter().flatten() {
            let name = sp.name.clone().unwrap_or_default();
            let Some(port) = sp.port.and_then(|p| u16::try_from(p).ok()) else { continue };
            let protocol = Protocol::parse(sp.protocol.as_deref());
            let Some(svc_port) = service.ports.iter().find(|p| p.name == name) else { continue };
            if protocol != Some(svc_port.protocol) {
                continue;
            }
            let list = endpoints.entry(name).or_default();
            for e in &slice.endpoints {
                let Some(ip) = e.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else { continue };
                let conditions = e.conditions.as_ref();
                let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
                let endpoint = Endpoint {
                    ip,
                    port,
                    ready,
                    serving: conditions.and_then(|c| c.serving).unwrap_or(ready),
                    terminating: conditions.and_then(|c| c.terminating).unwrap_or(false),
                    node: e.node_name.clone(),
                };
                if !list.iter().any(|x| x.ip == endpoint.ip && x.port == endpoint.port) {
                    list.push(endpoint);
                }
            }
        }
    }
    ServiceState { service, endpoints }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> K8sService {
        serde_json::from_value(v).unwrap()
    }

    fn web(spec: serde_json::Value) -> K8sService {
        let mut s = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
            "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080}]}});
        for (k, v) in spec.as_object().unwrap() {
            s["spec"][k] = v.clone();
        }
        svc(s)
    }

    #[test]
    fn headless_external_name_and_foreign_services_are_ignored() {
        assert!(service(&web(json!({"clusterIP": "None", "clusterIPs": ["None"]}))).is_none());
        assert!(service(&web(json!({"type": "ExternalName", "externalName": "example.com"}))).is_none());
        let mut s = web(json!({}));
        s.metadata.labels = Some([(SERVICE_PROXY_NAME.to_string(), "other".to_string())].into());
        assert!(service(&s).is_none());
        assert!(service(&web(json!({}))).is_some());
    }

    #[test]
    fn node_ports_count_only_for_node_port_and_load_balancer_types() {
        assert_eq!(service(&web(json!({}))).unwrap().ports[0].node_port, None);
        assert_eq!(service(&web(json!({"type": "NodePort"}))).unwrap().ports[0].node_port, Some(30080));
    }

    #[test]
    fn policies_affinity_and_load_balancer_addresses() {
        let mut s = web(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "sessionAffinity": "ClientIP",
            "healthCheckNodePort": 32000, "loadBalancerSourceRanges": ["203.0.113.0/24"], "externalIPs": ["198.51.100.7"]}),
        );
        s.status = serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.200"},
            {"ip": "198.51.100.201", "ipMode": "Proxy"}]}}))
        .unwrap();
        let m = service(&s).unwrap();
        assert_eq!(m.affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT));
        assert!(m.external_local && m.external_policy_local());
        assert_eq!(m.load_balancer_ips, vec!["198.51.100.200".parse::<IpAddr>().unwrap()]);
        assert_eq!(m.external_ips.len(), 1);
        assert_eq!(m.source_ranges.len(), 1);
        assert_eq!(m.health_check_node_port, Some(32000));
    }

    #[test]
    fn slices_merge_by_port_name_and_conditions_default() {
        let m = service(&web(json!({}))).unwrap();
        let slice = |eps: serde_json::Value| -> EndpointSlice {
            serde_json::from_value(json!({"metadata": {"name": "web-x", "namespace": "default"}, "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": eps}))
            .unwrap()
        };
        let a = slice(json!([{"addresses": ["10.244.0.5"], "nodeName": "n1"},
            {"addresses": ["10.244.0.6"], "conditions": {"ready": false, "serving": true, "terminating": true}}]));
        let b = slice(json!([{"addresses": ["10.244.0.5"], "nodeName": "n1"}]));
        let st = state(m, [&a, &b]);
        let eps = &st.endpoints["http"];
        assert_eq!(eps.len(), 2, "duplicates across slices are merged");
        assert!(eps[0].ready && eps[0].serving && !eps[0].terminating);
        assert_eq!(eps[0].port, 8080);
        assert!(!eps[1].ready && eps[1].serving && eps[1].terminating);
    }

    #[test]
    fn slice_ports_of_another_protocol_do_not_match() {
        let m = service(&web(json!({}))).unwrap();
        let s: EndpointSlice = serde_json::from_value(json!({"metadata": {"name": "web-x"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "UDP"}], "endpoints": [{"addresses": ["10.244.0.5"]}]}))
        .unwrap();
        assert!(state(m, [&s]).endpoints.is_empty());
    }
}

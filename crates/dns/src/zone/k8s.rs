//! From Kubernetes objects to the zone's models: pure conversions, the same choices CoreDNS's
//! object package makes (only ready endpoints, nil readiness counts as ready, a slice without
//! ports stands for all ports, FQDN slices are ignored).

use super::{EpModel, PortModel, SliceModel, SvcKind, SvcModel};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::net::IpAddr;

pub use component::labels::SERVICE_NAME as SERVICE_NAME_LABEL;

pub fn service_model(svc: &Service) -> Option<SvcModel> {
    let spec = svc.spec.as_ref()?;
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        SvcKind::ExternalName(spec.external_name.clone().unwrap_or_default().trim_end_matches('.').to_lowercase())
    } else if spec.cluster_ip.as_deref() == Some("None") {
        SvcKind::Headless
    } else {
        let ips: Vec<IpAddr> = match &spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
            _ => spec.cluster_ip.iter().filter_map(|ip| ip.parse().ok()).collect(),
        };
        if ips.is_empty() {
            return None;
        }
        SvcKind::ClusterIp(ips)
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .map(|p| PortModel {
            name: p.name.clone().unwrap_or_default(),
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            port: u16::try_from(p.port).ok(),
        })
        .collect();
    Some(SvcModel { kind, ports })
}

/// The Service a slice belongs to, and its model; None for slices DNS does not use.
pub fn slice_model(slice: &EndpointSlice) -> Option<(String, SliceModel)> {
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
    if slice.address_type == "FQDN" {
        return None;
    }
    let ports = match &slice.ports {
        Some(ports) if !ports.is_empty() => ports
            .iter()
            .map(|p| PortModel {
                name: p.name.clone().unwrap_or_default(),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port: p.port.and_then(|n| u16::try_from(n).ok()),
            })
            .collect(),
        _ => vec![PortModel { name: String::new(), protocol: String::new(), port: None }],
    };
    let mut endpoints = Vec::new();
    for ep in &slice.endpoints {
        if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
            continue;
        }
        for addr in &ep.addresses {
            let Ok(ip) = addr.parse::<IpAddr>() else { continue };
            let hostname = match &ep.hostname {
                Some(h) if !h.is_empty() => h.to_lowercase(),
                _ => dashed(ip),
            };
            endpoints.push(EpModel { ip, hostname });
        }
    }
    Some((service, SliceModel { ports, endpoints }))
}

/// An address as one DNS label: dots (IPv4) or colons (IPv6) become dashes.
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn dual_stack_cluster_ips_and_headless_and_external_name() {
        let svc: Service = from(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7", "fd00::7"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
        }));
        let m = service_model(&svc).unwrap();
        assert_eq!(m.kind, SvcKind::ClusterIp(vec!["10.96.0.7".parse().unwrap(), "fd00::7".parse().unwrap()]));
        assert_eq!(m.ports[0].port, Some(80));
        let svc: Service = from(serde_json::json!({"spec": {"clusterIP": "None"}}));
        assert_eq!(service_model(&svc).unwrap().kind, SvcKind::Headless);
        let svc: Service =
            from(serde_json::json!({"spec": {"type": "ExternalName", "externalName": "My.Example.com."}}));
        assert_eq!(service_model(&svc).unwrap().kind, SvcKind::ExternalName("my.example.com".into()));
    }

    #[test]
    fn only_ready_endpoints_and_dashed_names() {
        let slice: EndpointSlice = from(serde_json::json!({
            "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.0.5"], "conditions": {"ready": true}},
                {"addresses": ["10.244.0.6"], "conditions": {"ready": false}},
                {"addresses": ["10.244.0.7"], "hostname": "web-1"},
            ]
        }));
        let (svc, m) = slice_model(&slice).unwrap();
        assert_eq!(svc, "web");
        let names: Vec<_> = m.endpoints.iter().map(|e| e.hostname.as_str()).collect();
        assert_eq!(names, ["10-244-0-5", "web-1"]);
        let no_ports: EndpointSlice = from(serde_json::json!({
            "metadata": {"name": "x", "labels": {"kubernetes.io/service-name": "x"}},
            "addressType": "IPv6", "endpoints": [{"addresses": ["fd00::1"]}]
        }));
        let (_, m) = slice_model(&no_ports).unwrap();
        assert_eq!(m.ports[0].port, None);
        assert_eq!(m.endpoints[0].hostname, "fd00--1");
    }
}

//! Services, Endpoints and EndpointSlices.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;

use super::{
    AGE, Column, NAME, age, column, decode, docs, format_labels, join_host_port, list_with_more,
    load_balancer_addresses, name, text, wide,
};

pub(crate) const SERVICE: &[Column] = &[
    NAME,
    column("Type", "string", docs::SERVICE_TYPE),
    column("Cluster-IP", "string", docs::SERVICE_CLUSTER_IP),
    column("External-IP", "string", docs::SERVICE_EXTERNAL_IPS),
    column("Port(s)", "string", docs::SERVICE_PORTS),
    AGE,
    wide("Selector", "string", docs::SERVICE_SELECTOR),
];

pub(crate) const ENDPOINTS: &[Column] = &[NAME, column("Endpoints", "string", docs::ENDPOINTS_SUBSETS), AGE];

pub(crate) const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    column("AddressType", "string", docs::ENDPOINT_SLICE_ADDRESS_TYPE),
    column("Ports", "string", docs::ENDPOINT_SLICE_PORTS),
    column("Endpoints", "string", docs::ENDPOINT_SLICE_ENDPOINTS),
    AGE,
];

/// At most this many endpoints are listed before "+ N more...".
const MAX_LISTED: usize = 3;

pub(crate) fn service(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let svc: Service = decode(obj)?;
    let spec = svc.spec.unwrap_or_default();
    // v1 defaulting: a stored Service always has a type and port protocols.
    let type_ = spec.type_.as_deref().filter(|t| !t.is_empty()).unwrap_or("ClusterIP");
    // The internal type only has clusterIPs; a stored object has both fields in step.
    let cluster_ip = match spec.cluster_ips.as_deref() {
        Some([first, ..]) => first.as_str(),
        _ => spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty()).unwrap_or("<none>"),
    };
    let external_ips = spec.external_ips.unwrap_or_default();
    let external = match type_ {
        "ClusterIP" | "NodePort" if external_ips.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external_ips.join(","),
        "LoadBalancer" => {
            let ingress = svc.status.and_then(|s| s.load_balancer).and_then(|lb| lb.ingress).unwrap_or_default();
            let lb = load_balancer_addresses(ingress.iter().map(|i| (&i.ip, &i.hostname)));
            if !external_ips.is_empty() {
                lb.split(',')
                    .filter(|_| !lb.is_empty())
                    .map(str::to_string)
                    .chain(external_ips)
                    .collect::<Vec<_>>()
                    .join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => text(&spec.external_name).to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = spec
        .ports
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let protocol = p.protocol.as_deref().filter(|p| !p.is_empty()).unwrap_or("TCP");
            match p.node_port {
                Some(node_port) if node_port > 0 => format!("{}:{node_port}/{protocol}", p.port),
                _ => format!("{}/{protocol}", p.port),
            }
        })
        .collect();
    let ports = if ports.is_empty() { "<none>".to_string() } else { ports.join(",") };
    Some(vec![
        name(&svc.metadata),
        type_.into(),
        cluster_ip.into(),
        external.into(),
        ports.into(),
        age(&svc.metadata, now),
        format_labels(spec.selector.as_ref()).into(),
    ])
}

/// `formatEndpoints` with no port filter: `ip:port` for every ready address and port.
pub(crate) fn endpoints(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let ep: Endpoints = decode(obj)?;
    let subsets = ep.subsets.unwrap_or_default();
    let listed = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        let mut list: Vec<String> = Vec::new();
        let mut more = false;
        let mut count = 0;
        for ss in &subsets {
            let addresses = ss.addresses.as_deref().unwrap_or_default();
            let ports = ss.ports.as_deref().unwrap_or_default();
            // Headless services may have no ports.
            let ports: Vec<Option<i32>> =
                if ports.is_empty() { vec![None] } else { ports.iter().map(|p| Some(p.port)).collect() };
            for port in ports {
                count += addresses.len();
                for a in addresses {
                    if list.len() == MAX_LISTED {
                        more = true;
                        break;
                    }
                    list.push(match port {
                        Some(port) => join_host_port(&a.ip, port),
                        None => a.ip.clone(),
                    });
                }
            }
        }
        let ret = list.join(",");
        if more { format!("{ret} + {} more...", count - MAX_LISTED) } else { ret }
    };
    Some(vec![name(&ep.metadata), listed.into(), age(&ep.metadata, now)])
}

pub(crate) fn endpoint_slice(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let slice: EndpointSlice = decode(obj)?;
    let ports: Vec<String> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| match (p.port, &p.name) {
            (Some(port), _) => port.to_string(),
            (None, Some(name)) => name.clone(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<String> = slice.endpoints.iter().flat_map(|e| e.addresses.iter().cloned()).collect();
    Some(vec![
        name(&slice.metadata),
        slice.address_type.as_str().into(),
        limited(ports).into(),
        limited(addresses).into(),
        age(&slice.metadata, now),
    ])
}

/// The first three items, then "+ N more...", or `<unset>` when there are none.
fn limited(all: Vec<String>) -> String {
    let count = all.len();
    let list: Vec<String> = all.into_iter().take(MAX_LISTED).collect();
    list_with_more(&list, count > MAX_LISTED, count, MAX_LISTED)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ago, row};
    use serde_json::{Value, json};

    fn svc(spec: Value, status: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(42)},
               "spec": spec, "status": status})
    }

    fn s(cells: &[&str]) -> Vec<Value> {
        cells.iter().map(|c| Value::from(*c)).collect()
    }

    #[test]
    fn service_rows() {
        let cases = [
            (
                json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                       "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                       "selector": {"k8s-app": "kube-dns"}}),
                json!({}),
                ["web", "ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP", "42s", "k8s-app=kube-dns"],
            ),
            (
                json!({"type": "NodePort", "clusterIPs": ["10.96.3.4"], "externalIPs": ["192.0.2.1", "192.0.2.2"],
                       "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}],
                       "selector": {"tier": "web", "app": "shop"}}),
                json!({}),
                [
                    "web",
                    "NodePort",
                    "10.96.3.4",
                    "192.0.2.1,192.0.2.2",
                    "80:30080/TCP,443/TCP",
                    "42s",
                    "app=shop,tier=web",
                ],
            ),
            (
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.7"], "ports": [{"port": 80, "nodePort": 31000}]}),
                json!({"loadBalancer": {}}),
                ["web", "LoadBalancer", "10.96.0.7", "<pending>", "80:31000/TCP", "42s", "<none>"],
            ),
            (
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.7"], "externalIPs": ["192.0.2.9"], "ports": [{"port": 80, "protocol": "TCP"}]}),
                json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.20"}, {"hostname": "lb.example.com"}, {"ip": "203.0.113.10"}]}}),
                [
                    "web",
                    "LoadBalancer",
                    "10.96.0.7",
                    "203.0.113.10,203.0.113.20,lb.example.com,192.0.2.9",
                    "80/TCP",
                    "42s",
                    "<none>",
                ],
            ),
            (
                json!({"type": "ExternalName", "externalName": "db.example.com"}),
                json!({}),
                ["web", "ExternalName", "<none>", "db.example.com", "<none>", "42s", "<none>"],
            ),
            (
                json!({"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 5432, "protocol": "TCP"}]}),
                json!({}),
                ["web", "ClusterIP", "None", "<none>", "5432/TCP", "42s", "<none>"],
            ),
        ];
        for (spec, status, want) in cases {
            assert_eq!(row("", "Service", &svc(spec.clone(), status)), s(&want), "{spec}");
        }
    }

    #[test]
    fn endpoints_rows() {
        let ep = |subsets: Value| {
            json!({"apiVersion": "v1", "kind": "Endpoints",
                   "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(7200)}, "subsets": subsets})
        };
        let cases = [
            (json!(null), "<none>"),
            (
                json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}]}]),
                "10.0.0.1:80,10.0.0.2:80",
            ),
            (
                json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}]),
                "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...",
            ),
            (json!([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 8080}]}]), "[fd00::1]:8080"),
            (json!([{"addresses": [{"ip": "10.0.0.9"}]}]), "10.0.0.9"),
            (json!([{"notReadyAddresses": [{"ip": "10.0.0.3"}], "ports": [{"port": 80}]}]), ""),
        ];
        for (subsets, want) in cases {
            assert_eq!(row("", "Endpoints", &ep(subsets.clone())), s(&["web", want, "120m"]), "{subsets}");
        }
    }

    #[test]
    fn endpoint_slice_rows() {
        let slice = |ports: Value, endpoints: Value| {
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                   "metadata": {"name": "web-abc12", "namespace": "default", "creationTimestamp": ago(30)},
                   "ports": ports, "endpoints": endpoints})
        };
        let four =
            json!([{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]);
        assert_eq!(
            row(
                "discovery.k8s.io",
                "EndpointSlice",
                &slice(json!([{"port": 80, "name": "http"}, {"name": "metrics"}, {}]), four)
            ),
            s(&["web-abc12", "IPv4", "80,metrics,*", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...", "30s"])
        );
        assert_eq!(
            row("discovery.k8s.io", "EndpointSlice", &slice(json!(null), json!([]))),
            s(&["web-abc12", "IPv4", "<unset>", "<unset>", "30s"])
        );
    }
}

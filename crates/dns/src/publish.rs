//! The `kube-dns` Service in kube-system, as kubeadm creates it for CoreDNS (same name,
//! labels, ports and the tenth address of the service range), so pods' resolv.conf and tools
//! that look for it find Portico's DNS. It has no selector: when the server is reachable at a
//! routable address its Endpoints point there (the mirroring controller makes the slice).

use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::net::IpAddr;

const MANAGER: &str = "portico-dns";

pub async fn ensure_dns_service(
    client: &Client,
    cluster_ip: IpAddr,
    endpoint: Option<IpAddr>,
    dns_port: u16,
    metrics_port: Option<u16>,
) -> Result<(), kube::Error> {
    let mut ports = vec![
        json!({"name": "dns", "port": 53, "protocol": "UDP", "targetPort": dns_port}),
        json!({"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": dns_port}),
    ];
    if let Some(m) = metrics_port {
        ports.push(json!({"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": m}));
    }
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": "kube-dns", "namespace": "kube-system",
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
            "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}
        },
        "spec": {"clusterIP": cluster_ip.to_string(), "ports": ports}
    });
    let params = PatchParams::apply(MANAGER).force();
    Api::<Service>::namespaced(client.clone(), "kube-system")
        .patch("kube-dns", &params, &Patch::Apply(&service))
        .await?;
    let Some(ip) = endpoint.filter(|ip| !ip.is_loopback() && !ip.is_unspecified()) else {
        tracing::info!("DNS listens on no routable address; the kube-dns Service gets no endpoints");
        return Ok(());
    };
    let mut ep_ports = vec![
        json!({"name": "dns", "port": dns_port, "protocol": "UDP"}),
        json!({"name": "dns-tcp", "port": dns_port, "protocol": "TCP"}),
    ];
    if let Some(m) = metrics_port {
        ep_ports.push(json!({"name": "metrics", "port": m, "protocol": "TCP"}));
    }
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "subsets": [{"addresses": [{"ip": ip.to_string()}], "ports": ep_ports}]
    });
    Api::<Endpoints>::namespaced(client.clone(), "kube-system")
        .patch("kube-dns", &params, &Patch::Apply(&endpoints))
        .await?;
    Ok(())
}

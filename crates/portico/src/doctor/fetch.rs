//! Reads what the checks need from the API, all at once.

use k8s_openapi::api::core::v1::{Endpoints, Event, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, ListParams};

use super::facts::Facts;

pub async fn gather(client: &Client, namespace: &str, name: &str, cluster_domain: &str) -> anyhow::Result<Facts> {
    let ctx = |what: &'static str| move |e: kube::Error| anyhow::anyhow!("reading {what}: {e}");
    let services: Api<Service> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), namespace);
    let nodes: Api<Node> = Api::all(client.clone());
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let by_service = ListParams::default().labels(&format!("{}={name}", component::labels::SERVICE_NAME));
    let (services, pods, slices, endpoints, nodes, events) = tokio::try_join!(
        async { services.list(&ListParams::default()).await.map_err(ctx("Services")) },
        async { pods.list(&ListParams::default()).await.map_err(ctx("Pods")) },
        async { slices.list(&by_service).await.map_err(ctx("EndpointSlices")) },
        async { endpoints.get_opt(name).await.map_err(ctx("Endpoints")) },
        async { nodes.list(&ListParams::default()).await.map_err(ctx("Nodes")) },
        async { events.list(&ListParams::default()).await.map_err(ctx("Events")) },
    )?;
    let in_ns = |s: &&Service| s.metadata.namespace.as_deref() == Some(namespace);
    let named = |s: &&Service| s.metadata.name.as_deref() == Some(name);
    let service = services.items.iter().filter(in_ns).find(named).cloned();
    let service_names = services.items.iter().filter(in_ns).filter_map(|s| s.metadata.name.clone()).collect();
    let mut namespaces_with_name: Vec<String> = services
        .items
        .iter()
        .filter(named)
        .filter_map(|s| s.metadata.namespace.clone())
        .filter(|n| n != namespace)
        .collect();
    namespaces_with_name.sort();
    let dns_service = services
        .items
        .iter()
        .find(|s| {
            s.metadata.namespace.as_deref() == Some("kube-system") && s.metadata.name.as_deref() == Some("kube-dns")
        })
        .cloned();
    Ok(Facts {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        cluster_domain: cluster_domain.to_owned(),
        service,
        service_names,
        namespaces_with_name,
        pods: pods.items,
        slices: slices.items,
        endpoints,
        nodes: nodes.items,
        events: events.items,
        dns_service,
    })
}

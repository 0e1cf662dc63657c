//! The EndpointSlice, Endpoints and EndpointSlice-mirroring controllers running inside
//! `portico server`: pods selected by a Service show up in its EndpointSlices and Endpoints,
//! readiness and deletion are followed, selectorless Services get their Endpoints mirrored,
//! and a restart never duplicates slices. Pod IPs are plain data (10.244.0.0/16).

mod common;

use common::Server;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(20);
const CONTROLLER: &str = "endpointslice-controller.k8s.io";
const MIRRORING: &str = "endpointslicemirroring-controller.k8s.io";

/// Polls `f` until it returns `Some`, failing with `what` (and the last value seen) on timeout.
async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => panic!("timed out waiting for {what}; last seen: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn slices_of(api: &Api<EndpointSlice>, service: &str, managed_by: &str) -> Vec<EndpointSlice> {
    let lp = ListParams::default()
        .labels(&format!("kubernetes.io/service-name={service},endpointslice.kubernetes.io/managed-by={managed_by}"));
    api.list(&lp).await.unwrap().items
}

/// (address, ready, serving, terminating) of every endpoint of the slices, sorted.
fn endpoint_summary(slices: &[EndpointSlice]) -> Vec<(String, bool, bool, bool)> {
    let mut out: Vec<_> = slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .map(|e| {
            let c = e.conditions.clone().unwrap_or_default();
            (
                e.addresses.join(","),
                c.ready.unwrap_or(false),
                c.serving.unwrap_or(false),
                c.terminating.unwrap_or(false),
            )
        })
        .collect();
    out.sort();
    out
}

/// (ready addresses, not-ready addresses, ports as name:port) of an Endpoints object.
fn endpoints_summary(e: &Endpoints) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    let mut ports = Vec::new();
    for s in e.subsets.iter().flatten() {
        ready.extend(s.addresses.iter().flatten().map(|a| a.ip.clone()));
        not_ready.extend(s.not_ready_addresses.iter().flatten().map(|a| a.ip.clone()));
        ports.extend(s.ports.iter().flatten().map(|p| format!("{}:{}", p.name.clone().unwrap_or_default(), p.port)));
    }
    ready.sort();
    not_ready.sort();
    ports.sort();
    (ready, not_ready, ports)
}

async fn create_pod(pods: &Api<Pod>, name: &str, app: &str) {
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.25",
                                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
}

async fn create_web_service(services: &Api<Service>, name: &str) {
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}
    }))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selected_pods_become_endpoints() {
    let server = Server::start();
    let client = server.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");

    create_web_service(&services, "web").await;
    create_pod(&pods, "web-1", "web").await;
    create_pod(&pods, "web-2", "web").await;
    create_pod(&pods, "db-1", "db").await;
    common::set_pod_status(&pods, "web-1", "10.244.0.11", true).await;
    common::set_pod_status(&pods, "web-2", "10.244.0.12", false).await;
    common::set_pod_status(&pods, "db-1", "10.244.0.13", true).await;

    // The slice: both web pods, readiness from their Ready condition, the named port resolved.
    let got = until("web's EndpointSlice", || async {
        let s = slices_of(&slices, "web", CONTROLLER).await;
        let summary = endpoint_summary(&s);
        let want =
            vec![("10.244.0.11".to_string(), true, true, false), ("10.244.0.12".to_string(), false, false, false)];
        if summary == want { Ok(s) } else { Err(format!("{summary:?}")) }
    })
    .await;
    assert_eq!(got.len(), 1, "{got:?}");
    let slice = &got[0];
    assert_eq!(slice.address_type, "IPv4");
    let ports = slice.ports.clone().unwrap_or_default();
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0].name.as_deref(), Some("http"));
    assert_eq!(ports[0].port, Some(8080));
    assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Service", "web"));
    for e in &slice.endpoints {
        let target = e.target_ref.as_ref().unwrap();
        assert_eq!(target.kind.as_deref(), Some("Pod"));
        assert!(target.name.as_deref().unwrap().starts_with("web-"));
    }

    // The Endpoints: ready and not-ready addresses apart.
    until("web's Endpoints", || async {
        let e = endpoints.get_opt("web").await.unwrap().ok_or("absent")?;
        let summary = endpoints_summary(&e);
        let want = (vec!["10.244.0.11".to_string()], vec!["10.244.0.12".to_string()], vec!["http:8080".to_string()]);
        if summary == want { Ok(()) } else { Err(format!("{summary:?}")) }
    })
    .await;

    // Readiness flips are followed by both.
    common::set_pod_status(&pods, "web-2", "10.244.0.12", true).await;
    common::set_pod_status(&pods, "web-1", "10.244.0.11", false).await;
    until("flipped readiness in the slice", || async {
        let summary = endpoint_summary(&slices_of(&slices, "web", CONTROLLER).await);
        let want =
            vec![("10.244.0.11".to_string(), false, false, false), ("10.244.0.12".to_string(), true, true, false)];
        if summary == want { Ok(()) } else { Err(format!("{summary:?}")) }
    })
    .await;
    until("flipped readiness in the Endpoints", || async {
        let e = endpoints.get_opt("web").await.unwrap().ok_or("absent")?;
        let summary = endpoints_summary(&e);
        let want = (vec!["10.244.0.12".to_string()], vec!["10.244.0.11".to_string()], vec!["http:8080".to_string()]);
        if summary == want { Ok(()) } else { Err(format!("{summary:?}")) }
    })
    .await;

    // A deleted pod leaves.
    pods.delete("web-1", &DeleteParams::default().grace_period(0)).await.unwrap();
    until("web-1 gone from the slice", || async {
        let summary = endpoint_summary(&slices_of(&slices, "web", CONTROLLER).await);
        if summary == vec![("10.244.0.12".to_string(), true, true, false)] {
            Ok(())
        } else {
            Err(format!("{summary:?}"))
        }
    })
    .await;
    until("web-1 gone from the Endpoints", || async {
        let e = endpoints.get_opt("web").await.unwrap().ok_or("absent")?;
        let summary = endpoints_summary(&e);
        let want = (vec!["10.244.0.12".to_string()], vec![], vec!["http:8080".to_string()]);
        if summary == want { Ok(()) } else { Err(format!("{summary:?}")) }
    })
    .await;

    // Deleting the Service removes its slices and its Endpoints.
    services.delete("web", &DeleteParams::default()).await.unwrap();
    until("web's slices and Endpoints gone", || async {
        let s = slices_of(&slices, "web", CONTROLLER).await;
        let e = endpoints.get_opt("web").await.unwrap();
        if s.is_empty() && e.is_none() { Ok(()) } else { Err(format!("{} slices, endpoints {e:?}", s.len())) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_without_pods_gets_a_placeholder_slice_and_empty_endpoints() {
    let server = Server::start();
    let client = server.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    create_web_service(&services, "lonely").await;
    let s = until("placeholder slice", || async {
        let s = slices_of(&slices, "lonely", CONTROLLER).await;
        if s.len() == 1 { Ok(s) } else { Err(format!("{s:?}")) }
    })
    .await;
    assert!(s[0].endpoints.is_empty(), "{s:?}");
    until("empty Endpoints", || async {
        let e = endpoints.get_opt("lonely").await.unwrap().ok_or("absent")?;
        if e.subsets.as_ref().is_none_or(|s| s.is_empty()) { Ok(()) } else { Err(format!("{e:?}")) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectorless_service_endpoints_are_mirrored() {
    let server = Server::start();
    let client = server.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");

    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "external"},
        "spec": {"ports": [{"name": "db", "port": 5432, "protocol": "TCP"}]}
    }))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
    let ep: Endpoints = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "external"},
        "subsets": [{"addresses": [{"ip": "10.244.1.5"}], "notReadyAddresses": [{"ip": "10.244.1.6"}],
                     "ports": [{"name": "db", "port": 5432, "protocol": "TCP"}]}]
    }))
    .unwrap();
    endpoints.create(&PostParams::default(), &ep).await.unwrap();

    let got = until("the mirrored slice", || async {
        let s = slices_of(&slices, "external", MIRRORING).await;
        let summary = endpoint_summary(&s);
        // As upstream, mirrored endpoints carry only the ready condition (serving unset).
        let want =
            vec![("10.244.1.5".to_string(), true, false, false), ("10.244.1.6".to_string(), false, false, false)];
        if summary == want { Ok(s) } else { Err(format!("{summary:?}")) }
    })
    .await;
    assert_eq!(got.len(), 1);
    let ports = got[0].ports.clone().unwrap_or_default();
    assert_eq!((ports[0].name.as_deref(), ports[0].port), (Some("db"), Some(5432)));
    // The selector controller leaves a selectorless Service alone, and the user's Endpoints stays.
    assert!(slices_of(&slices, "external", CONTROLLER).await.is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let e = endpoints.get("external").await.unwrap();
    assert_eq!(endpoints_summary(&e).0, vec!["10.244.1.5".to_string()]);

    // Deleting the Endpoints removes the mirror.
    endpoints.delete("external", &DeleteParams::default()).await.unwrap();
    until("the mirrored slice gone", || async {
        let s = slices_of(&slices, "external", MIRRORING).await;
        if s.is_empty() { Ok(()) } else { Err(format!("{s:?}")) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_does_not_duplicate_slices() {
    let mut server = Server::start();
    let client = server.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    create_web_service(&services, "web").await;
    create_pod(&pods, "web-1", "web").await;
    common::set_pod_status(&pods, "web-1", "10.244.0.21", true).await;
    let before = until("web's slice", || async {
        let s = slices_of(&slices, "web", CONTROLLER).await;
        if endpoint_summary(&s).len() == 1 { Ok(s) } else { Err(format!("{s:?}")) }
    })
    .await;
    assert_eq!(before.len(), 1);

    for _ in 0..2 {
        server.kill9();
        server.spawn();
        let client = server.client().await;
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
        // Give the restarted controllers time to sync and reconcile.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = slices_of(&slices, "web", CONTROLLER).await;
        let names = |v: &[EndpointSlice]| v.iter().map(|s| s.metadata.name.clone().unwrap()).collect::<Vec<_>>();
        assert_eq!(names(&after), names(&before), "slices after restart: {after:?}");
        assert_eq!(endpoint_summary(&after), endpoint_summary(&before));
    }

    // Changes made after the restart are still followed.
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    create_pod(&pods, "web-2", "web").await;
    common::set_pod_status(&pods, "web-2", "10.244.0.22", true).await;
    until("web-2 in the slice after restart", || async {
        let s = slices_of(&slices, "web", CONTROLLER).await;
        let summary = endpoint_summary(&s);
        if summary.len() == 2 && s.len() == 1 { Ok(()) } else { Err(format!("{s:?}")) }
    })
    .await;
}

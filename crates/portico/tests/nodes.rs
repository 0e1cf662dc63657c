//! The scheduler, node lifecycle, node IPAM and LoadBalancer IPAM controllers running inside
//! `portico server`. Nodes are API objects whose Leases the test renews; the LoadBalancer pool
//! (192.0.2.10-192.0.2.12, TEST-NET-1) is plain data, nothing is sent to it.

mod common;

use common::Server;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(20);

/// Polls `f` until it returns `Ok`, failing with `what` (and the last value seen) on timeout.
async fn until<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => panic!("timed out waiting for {what}; last seen: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn now_micro() -> serde_json::Value {
    serde_json::to_value(MicroTime(k8s_openapi::jiff::Timestamp::now())).unwrap()
}

async fn create_node(client: &kube::Client, name: &str, labels: serde_json::Value, ip: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": name, "labels": labels },
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let now =
        serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()))
            .unwrap();
    let status = json!({ "status": {
        "conditions": [{ "type": "Ready", "status": "True", "reason": "KubeletReady",
                         "lastHeartbeatTime": now, "lastTransitionTime": now }],
        "addresses": [{ "type": "InternalIP", "address": ip }],
    }});
    nodes.patch_status(name, &PatchParams::default(), &Patch::Strategic(status)).await.unwrap();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": name, "namespace": "kube-node-lease" },
        "spec": { "holderIdentity": name, "leaseDurationSeconds": 3, "renewTime": now_micro() },
    }))
    .unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
}

fn ready_status(node: &Node) -> String {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status.clone()).unwrap_or_default()
}

fn pod_ready(pod: &Pod) -> String {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status.clone()).unwrap_or_default()
}

async fn create_pod(pods: &Api<Pod>, name: &str, selector: serde_json::Value) {
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name },
        "spec": { "nodeSelector": selector, "containers": [{ "name": "c", "image": "nginx" }] },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
}

async fn events_for(client: &kube::Client, name: &str, reason: &str) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let list = events.list(&ListParams::default()).await.unwrap().items;
    list.into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name) && e.reason.as_deref() == Some(reason))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduler_lifecycle_node_ipam_and_lb_ipam() {
    let server = Server::start_with(&[
        "--node-monitor-grace-period-seconds",
        "3",
        "--loadbalancer-ip-pool",
        "192.0.2.10-192.0.2.12",
    ]);
    let client = server.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": "kube-node-lease" } })).unwrap();
    if let Err(kube::Error::Api(e)) = namespaces.create(&PostParams::default(), &ns).await {
        assert_eq!(e.code, 409, "creating kube-node-lease: {e:?}");
    }

    create_node(&client, "node-a", json!({ "disk": "ssd" }), "172.16.0.1").await;
    create_node(&client, "node-b", json!({ "role": "b" }), "172.16.0.2").await;

    // Renew both leases every 500ms; node-b's renewals stop when asked.
    let renew_b = Arc::new(AtomicBool::new(true));
    let renewer = {
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        let renew_b = renew_b.clone();
        tokio::spawn(async move {
            loop {
                for name in ["node-a", "node-b"] {
                    if name == "node-b" && !renew_b.load(Ordering::SeqCst) {
                        continue;
                    }
                    let patch = json!({ "spec": { "renewTime": now_micro() } });
                    let _ = leases.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    // Node IPAM: distinct /24s from 10.244.0.0/16.
    let nodes: Api<Node> = Api::all(client.clone());
    let cidrs = until("pod CIDRs on both nodes", TIMEOUT, || async {
        let mut cidrs = Vec::new();
        for name in ["node-a", "node-b"] {
            let n = nodes.get(name).await.map_err(|e| e.to_string())?;
            let spec = n.spec.unwrap_or_default();
            let cidr = spec.pod_cidr.ok_or(format!("{name} has no podCIDR"))?;
            assert_eq!(spec.pod_cidrs, Some(vec![cidr.clone()]), "podCIDRs of {name}");
            cidrs.push(cidr);
        }
        Ok(cidrs)
    })
    .await;
    for c in &cidrs {
        assert!(c.starts_with("10.244.") && c.ends_with(".0/24"), "unexpected pod CIDR {c}");
    }
    assert_ne!(cidrs[0], cidrs[1], "nodes share a pod CIDR");

    // Scheduler: nodeSelector picks the node; an unmatched one stays Pending with an event.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    create_pod(&pods, "on-ssd", json!({ "disk": "ssd" })).await;
    create_pod(&pods, "on-b", json!({ "role": "b" })).await;
    create_pod(&pods, "nowhere", json!({ "disk": "nvme" })).await;
    for (pod, node) in [("on-ssd", "node-a"), ("on-b", "node-b")] {
        until(&format!("{pod} bound to {node}"), TIMEOUT, || async {
            let p = pods.get(pod).await.map_err(|e| e.to_string())?;
            let got = p.spec.and_then(|s| s.node_name);
            if got.as_deref() == Some(node) { Ok(()) } else { Err(format!("{got:?}")) }
        })
        .await;
    }
    let event = until("FailedScheduling event for nowhere", TIMEOUT, || async {
        events_for(&client, "nowhere", "FailedScheduling").await.into_iter().next().ok_or_else(|| "none".to_string())
    })
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(
        event.message.as_deref(),
        Some("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.")
    );
    let nowhere = pods.get("nowhere").await.unwrap();
    assert_eq!(nowhere.spec.unwrap().node_name, None);
    let out = server.kubectl_ok(&["get", "pod", "nowhere", "--no-headers"]);
    assert!(out.contains("Pending"), "kubectl get pod nowhere: {out}");

    // Node lifecycle: node-b stops renewing; it goes Unknown and its pod not ready.
    let ready = json!({ "status": { "conditions": [{ "type": "Ready", "status": "True" }] } });
    pods.patch_status("on-b", &PatchParams::default(), &Patch::Strategic(ready.clone())).await.unwrap();
    pods.patch_status("on-ssd", &PatchParams::default(), &Patch::Strategic(ready)).await.unwrap();
    renew_b.store(false, Ordering::SeqCst);
    until("node-b Ready Unknown", Duration::from_secs(3 + 10), || async {
        let n = nodes.get("node-b").await.map_err(|e| e.to_string())?;
        if ready_status(&n) == "Unknown" { Ok(()) } else { Err(ready_status(&n)) }
    })
    .await;
    until("on-b Ready False", Duration::from_secs(5), || async {
        let p = pods.get("on-b").await.map_err(|e| e.to_string())?;
        if pod_ready(&p) == "False" { Ok(()) } else { Err(pod_ready(&p)) }
    })
    .await;
    let b = nodes.get("node-b").await.unwrap();
    let reason = b.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap().reason;
    assert_eq!(reason.as_deref(), Some("NodeStatusUnknown"));
    // node-a keeps heartbeating: still Ready, its pod still ready.
    assert_eq!(ready_status(&nodes.get("node-a").await.unwrap()), "True");
    assert_eq!(pod_ready(&pods.get("on-ssd").await.unwrap()), "True");

    // LB IPAM: the first Service gets the first pool address; the fourth stays pending.
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let lb = |name: &str| -> Service {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": name },
            "spec": { "type": "LoadBalancer", "selector": { "app": name }, "ports": [{ "port": 80 }] },
        }))
        .unwrap()
    };
    let lb_ips = |name: &'static str| {
        let services = services.clone();
        move || {
            let services = services.clone();
            async move {
                let s = services.get(name).await.map_err(|e| e.to_string())?;
                let ingress = s.status.and_then(|s| s.load_balancer).and_then(|l| l.ingress).unwrap_or_default();
                let ips: Vec<String> = ingress.into_iter().filter_map(|i| i.ip).collect();
                if ips.is_empty() { Err("no ingress".to_string()) } else { Ok(ips) }
            }
        }
    };
    services.create(&PostParams::default(), &lb("lb-1")).await.unwrap();
    assert_eq!(until("lb-1 ingress", TIMEOUT, lb_ips("lb-1")).await, vec!["192.0.2.10".to_string()]);
    let out = server.kubectl_ok(&["get", "svc", "lb-1", "--no-headers"]);
    assert!(out.contains("192.0.2.10"), "kubectl get svc lb-1: {out}");
    for name in ["lb-2", "lb-3"] {
        services.create(&PostParams::default(), &lb(name)).await.unwrap();
    }
    let mut got = until("lb-2 ingress", TIMEOUT, lb_ips("lb-2")).await;
    got.extend(until("lb-3 ingress", TIMEOUT, lb_ips("lb-3")).await);
    got.sort();
    assert_eq!(got, vec!["192.0.2.11".to_string(), "192.0.2.12".to_string()]);
    services.create(&PostParams::default(), &lb("lb-4")).await.unwrap();
    let event = until("event for lb-4", TIMEOUT, || async {
        events_for(&client, "lb-4", "AllocationFailed").await.into_iter().next().ok_or_else(|| "none".to_string())
    })
    .await;
    assert_eq!(event.message.as_deref(), Some("no available IPs in pool"));
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let out = server.kubectl_ok(&["get", "svc", "lb-4", "--no-headers"]);
    assert!(out.contains("<pending>"), "kubectl get svc lb-4: {out}");
    let s = services.get("lb-4").await.unwrap();
    assert!(s.status.and_then(|s| s.load_balancer).and_then(|l| l.ingress).unwrap_or_default().is_empty());

    renewer.abort();
}

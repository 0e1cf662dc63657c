//! The ReplicaSet, Deployment and StatefulSet controllers running inside `portico server`: a
//! Deployment gets a ReplicaSet and pods, scales, and rolls to a new ReplicaSet when its
//! template changes; a StatefulSet creates its pods in order. No kubelet runs, so the tests mark
//! pods Running and Ready themselves through the status subresource (pod IPs are plain data
//! from 10.244.0.0/16).

mod common;

use common::Server;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `f` until it returns `Ok`, failing with `what` (and the last value seen) on timeout.
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

/// Trims every line and collapses its runs of whitespace, so `describe` lines can be matched.
fn squash(s: &str) -> String {
    s.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join("\n")
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Marks a pod Running and Ready with the next free IP, as a kubelet would.
async fn make_ready(pods: &Api<Pod>, name: &str) {
    static NEXT_IP: AtomicU32 = AtomicU32::new(1);
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
    let ip = format!("10.244.{}.{}", n / 250, n % 250 + 1);
    let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let patch = json!({"status": {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

/// Marks every live, not-ready pod matching `selector` ready; returns how many it marked.
async fn make_all_ready(pods: &Api<Pod>, selector: &str) -> usize {
    let mut marked = 0;
    for p in live_pods(pods, selector).await {
        if !is_ready(&p) {
            make_ready(pods, &p.name_any()).await;
            marked += 1;
        }
    }
    marked
}

async fn live_pods(pods: &Api<Pod>, selector: &str) -> Vec<Pod> {
    let lp = ListParams::default().labels(selector);
    pods.list(&lp).await.unwrap().items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect()
}

fn controller_uid(p: &Pod) -> Option<String> {
    p.owner_references().iter().find(|r| r.controller == Some(true)).map(|r| r.uid.clone())
}

fn deployment_manifest(replicas: i32, image: &str) -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    })
    .to_string()
}

/// Drives pod readiness until `kubectl rollout status` reports the Deployment complete.
async fn drive_rollout(server: &Server, pods: &Api<Pod>) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        make_all_ready(pods, "app=x").await;
        let out = server.kubectl(&["rollout", "status", "deployment/x", "--timeout=1s"]);
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "rollout did not complete: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn deployment_creates_scales_and_rolls() {
    let server = Server::start();
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");

    server.apply_ok(&deployment_manifest(3, "nginx:1.25"), &[]);

    // One ReplicaSet named <deployment>-<hash>, carrying the hash label, owning 3 pods.
    let rs = until("one replicaset with 3 pods", || async {
        let list = rss.list(&ListParams::default()).await.unwrap().items;
        let [rs] = list.as_slice() else { return Err(format!("{} replicasets", list.len())) };
        let owned = live_pods(&pods, "app=x").await.into_iter().filter(|p| controller_uid(p) == rs.uid()).count();
        if owned == 3 { Ok(rs.clone()) } else { Err(format!("{owned} pods")) }
    })
    .await;
    let hash = rs.labels().get("pod-template-hash").cloned().expect("pod-template-hash label");
    assert_eq!(rs.name_any(), format!("x-{hash}"));
    let d = deployments.get("x").await.unwrap();
    assert_eq!(rs.owner_references()[0].uid, d.uid().unwrap());
    for p in live_pods(&pods, "app=x").await {
        assert_eq!(p.labels().get("pod-template-hash"), Some(&hash));
        assert!(p.name_any().starts_with(&format!("x-{hash}-")), "{}", p.name_any());
    }

    // Readiness from the "kubelet" completes the rollout.
    assert_eq!(make_all_ready(&pods, "app=x").await, 3);
    server.kubectl_ok(&["rollout", "status", "deployment/x", "--timeout=30s"]);
    let d = deployments.get("x").await.unwrap();
    assert_eq!(d.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("1"));
    let st = d.status.unwrap();
    assert_eq!((st.replicas, st.ready_replicas, st.available_replicas), (Some(3), Some(3), Some(3)));
    assert_eq!(st.observed_generation, d.metadata.generation);

    // Events as kube-controller-manager records them, shown by `kubectl describe`.
    let rs_name = rs.name_any();
    let scaled_up = "Normal ScalingReplicaSet";
    let scaled_up_msg = format!("deployment-controller Scaled up replica set {rs_name} from 0 to 3");
    until("a ScalingReplicaSet event in describe deployment", || async {
        let out = squash(&server.kubectl_ok(&["describe", "deployment", "x"]));
        let found = out.lines().any(|l| l.starts_with(scaled_up) && l.ends_with(&scaled_up_msg));
        if found { Ok(()) } else { Err(out) }
    })
    .await;
    let created_msg = format!("replicaset-controller Created pod: {rs_name}-");
    until("SuccessfulCreate events in describe rs", || async {
        let out = squash(&server.kubectl_ok(&["describe", "rs", &rs_name]));
        let n = out.lines().filter(|l| l.starts_with("Normal SuccessfulCreate") && l.contains(&created_msg)).count();
        if n == 3 { Ok(()) } else { Err(out) }
    })
    .await;

    // Scale to 5.
    server.kubectl_ok(&["scale", "deployment", "x", "--replicas=5"]);
    until("5 pods", || async {
        let n = live_pods(&pods, "app=x").await.len();
        if n == 5 { Ok(()) } else { Err(format!("{n} pods")) }
    })
    .await;
    drive_rollout(&server, &pods).await;
    assert_eq!(live_pods(&pods, "app=x").await.len(), 5);
    let scaled_to_5 = format!("Scaled up replica set {rs_name} from 3 to 5");
    let described = server.kubectl_ok(&["describe", "deployment", "x"]);
    assert!(described.contains(&scaled_to_5), "describe deployment lacks {scaled_to_5:?}:\n{described}");

    // A new image rolls to a new ReplicaSet; the old one ends at 0.
    server.kubectl_ok(&["set", "image", "deployment/x", "web=nginx:1.26"]);
    drive_rollout(&server, &pods).await;
    let list = rss.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 2, "{:?}", list.iter().map(|r| r.name_any()).collect::<Vec<_>>());
    let old = list.iter().find(|r| r.uid() == rs.uid()).expect("old replicaset kept");
    let new = list.iter().find(|r| r.uid() != rs.uid()).unwrap();
    assert_eq!(old.spec.as_ref().unwrap().replicas, Some(0));
    assert_eq!(new.spec.as_ref().unwrap().replicas, Some(5));
    assert_eq!(new.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("2"));
    until("only the new replicaset's 5 pods", || async {
        let live = live_pods(&pods, "app=x").await;
        let new_owned = live.iter().filter(|p| controller_uid(p) == new.uid()).count();
        if live.len() == 5 && new_owned == 5 { Ok(()) } else { Err(format!("{} live, {new_owned} new", live.len())) }
    })
    .await;
    for p in live_pods(&pods, "app=x").await {
        assert_eq!(p.spec.unwrap().containers[0].image.as_deref(), Some("nginx:1.26"));
    }
    let d = deployments.get("x").await.unwrap();
    assert_eq!(d.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("2"));
}

#[tokio::test]
async fn statefulset_creates_pods_in_order() {
    let server = Server::start();
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");

    let manifest = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "serviceName": "web",
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
    });
    server.apply_ok(&manifest.to_string(), &[]);

    let web0 =
        until("web-0", || async { pods.get_opt("web-0").await.unwrap().ok_or_else(|| "none".to_string()) }).await;
    let spec = web0.spec.clone().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("web"));
    assert_eq!(web0.labels().get("statefulset.kubernetes.io/pod-name").map(String::as_str), Some("web-0"));
    assert_eq!(controller_uid(&web0), sets.get("web").await.unwrap().uid());

    // web-1 waits for web-0 to be Ready: the status shows one pod and no web-1 exists.
    until("status with 1 replica", || async {
        let s = sets.get("web").await.unwrap().status.unwrap_or_default();
        if s.replicas == 1 && s.observed_generation.is_some() { Ok(()) } else { Err(format!("{s:?}")) }
    })
    .await;
    assert!(pods.get_opt("web-1").await.unwrap().is_none(), "web-1 created before web-0 was ready");

    make_ready(&pods, "web-0").await;
    let web1 =
        until("web-1", || async { pods.get_opt("web-1").await.unwrap().ok_or_else(|| "none".to_string()) }).await;
    let spec = web1.spec.unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-1"));
    assert_eq!(spec.subdomain.as_deref(), Some("web"));

    make_ready(&pods, "web-1").await;
    until("2 ready replicas", || async {
        let s = sets.get("web").await.unwrap().status.unwrap_or_default();
        if s.ready_replicas == Some(2) && s.replicas == 2 { Ok(()) } else { Err(format!("{s:?}")) }
    })
    .await;
    server.kubectl_ok(&["rollout", "status", "statefulset/web", "--timeout=30s"]);
    until("SuccessfulCreate events in describe statefulset", || async {
        let out = squash(&server.kubectl_ok(&["describe", "statefulset", "web"]));
        let want = |pod: &str| format!("statefulset-controller create Pod {pod} in StatefulSet web successful");
        let found = ["web-0", "web-1"]
            .iter()
            .all(|p| out.lines().any(|l| l.starts_with("Normal SuccessfulCreate") && l.ends_with(&want(p))));
        if found { Ok(()) } else { Err(out) }
    })
    .await;
}

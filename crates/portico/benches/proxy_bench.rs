//! Network programming latency of the service proxy (a harness, not a test), in a lab:
//! `portico server` and `portico proxy` (nftables mode) run as separate processes in a lab
//! node's namespace, as the proxy would run against any cluster.
//!
//! - Churn: BENCH_SERVICES (default 100) Services x 10 endpoints = 1,000 endpoints in
//!   EndpointSlices; a task flips one endpoint's readiness every BENCH_CHURN_MS (default 10 ms,
//!   100 changes/s), stamping `endpoints.kubernetes.io/last-change-trigger-time` as the
//!   EndpointSlice controller does. The proxy's `kubeproxy_network_programming_duration_seconds`
//!   (trigger time to rules in the kernel) gives p50/p99 over every change.
//! - End to end, under that churn: BENCH_PROBES (default 50) times, a real pod's endpoint is
//!   made Ready in the API (client-side timestamp taken just before the write) and the node
//!   connects to the Service's ClusterIP every millisecond until a connection is accepted:
//!   "endpoint Ready in the API to traffic routed".
//!
//! Compared with Kubernetes' SLO (p99 30 s) and kube-proxy nftables' reported ~7 s p99 at
//! scale. Run: `cargo bench -p portico --bench proxy_bench` as root.

#[path = "../tests/common/mod.rs"]
mod common;

use common::bench::{env_usize, percentile};
use common::eventually;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn now_trigger() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

fn slice(name: &str, svc: &str, endpoints: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": svc},
                     "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": now_trigger()}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .unwrap()
}

fn fake_endpoints(i: usize, flipped: Option<usize>) -> serde_json::Value {
    json!(
        (0..10)
            .map(|e| {
                let n = i * 10 + e;
                json!({"addresses": [format!("10.244.{}.{}", 100 + n / 250, 2 + n % 250)], "nodeName": "n1",
                   "conditions": {"ready": Some(e) != flipped}})
            })
            .collect::<Vec<_>>()
    )
}

/// The histogram's p-quantile, interpolated within its bucket (as Prometheus'
/// histogram_quantile does).
fn histogram_quantile(metrics: &str, name: &str, q: f64) -> Option<f64> {
    let buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, l.split_whitespace().last()?.parse().ok()?))
        })
        .collect();
    let total = buckets.last()?.1;
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for (le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let within = if count > prev.1 { (rank - prev.1) / (count - prev.1) } else { 1.0 };
            return Some(prev.0 + (le - prev.0) * within);
        }
        prev = (le, count);
    }
    None
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let services = env_usize("BENCH_SERVICES", 100);
    let churn_ms = env_usize("BENCH_CHURN_MS", 10) as u64;
    let probes = env_usize("BENCH_PROBES", 50);
    let Some(lab) = lab::Lab::new_or_skip("pxprog") else { return };
    let lan = lab.switch("lan", "198.51.100.0/24").unwrap();
    let node = lab.node("n1", &lan).unwrap();
    let pod = lab.pod("p1", &node).unwrap();
    lab.register("10.96.0.0/12").unwrap();
    lab.exec_ok(&node, &["ip", "route", "add", "10.96.0.0/12", "dev", "cbr0"]).unwrap();
    let mut server = Command::new("python3");
    server.args(["-m", "http.server", "8080", "--bind", "0.0.0.0"]).stdout(Stdio::null()).stderr(Stdio::null());
    lab.spawn(&pod, server).unwrap();

    let data = tempfile::tempdir().unwrap();
    let mut api = Command::new(env!("CARGO_BIN_EXE_portico"));
    api.args(["server", "--bind", "0.0.0.0:6443", "--advertise-address", &node.ip().to_string()])
        .arg("--data-dir")
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    lab.spawn(&node, api).unwrap();
    let kubeconfig = data.path().join("kubeconfig");
    let ready = eventually(Duration::from_secs(60), || {
        kubeconfig.exists()
            && lab
                .exec(&node, &["kubectl", "--kubeconfig", kubeconfig.to_str().unwrap(), "get", "--raw", "/readyz"])
                .unwrap()
                .status
                .success()
    });
    assert!(ready, "portico server did not come up");
    let mut proxy = Command::new(env!("CARGO_BIN_EXE_portico"));
    proxy
        .args(["proxy", "--kubeconfig", kubeconfig.to_str().unwrap(), "--hostname-override", "n1"])
        .args(["--node-ip", &node.ip().to_string(), "--cluster-cidr", "10.244.0.0/16", "--no-lb-announce"])
        .args(["--healthz-bind-address", "127.0.0.1:10256"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    lab.spawn(&node, proxy).unwrap();

    let pod_ip = pod.ip().to_string();
    let kubeconfig2 = kubeconfig.clone();
    let samples = lab
        .in_ns(&node, move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let config = kube::Config::from_custom_kubeconfig(
                    kube::config::Kubeconfig::read_from(&kubeconfig2).unwrap(),
                    &Default::default(),
                )
                .await
                .unwrap();
                let client = kube::Client::try_from(config).unwrap();
                let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
                let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
                let svc = |name: &str| -> Service {
                    serde_json::from_value(json!({"metadata": {"name": name},
                        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))
                    .unwrap()
                };
                for i in 0..services {
                    svcs.create(&PostParams::default(), &svc(&format!("svc-{i}"))).await.unwrap();
                    let s = slice(&format!("svc-{i}-a"), &format!("svc-{i}"), fake_endpoints(i, None));
                    slices.create(&PostParams::default(), &s).await.unwrap();
                }
                let probe = svcs.create(&PostParams::default(), &svc("probe")).await.unwrap();
                let vip = probe.spec.unwrap().cluster_ip.unwrap();
                slices.create(&PostParams::default(), &slice("probe-a", "probe", json!([]))).await.unwrap();
                tokio::time::sleep(Duration::from_secs(2)).await;

                // Churn in the background.
                let churn_slices = slices.clone();
                let churn = tokio::spawn(async move {
                    let mut k: usize = 0;
                    loop {
                        let i = k % services;
                        let flipped = (k / services) % 10;
                        let s = slice(&format!("svc-{i}-a"), &format!("svc-{i}"), fake_endpoints(i, Some(flipped)));
                        let _ =
                            churn_slices.patch(&format!("svc-{i}-a"), &PatchParams::default(), &Patch::Merge(&s)).await;
                        k += 1;
                        tokio::time::sleep(Duration::from_millis(churn_ms)).await;
                    }
                });

                let to: SocketAddr = format!("{vip}:80").parse().unwrap();
                let mut samples = vec![];
                for _ in 0..probes {
                    let ready = slice(
                        "probe-a",
                        "probe",
                        json!([{"addresses": [pod_ip], "nodeName": "n1", "conditions": {"ready": true}}]),
                    );
                    let t0 = Instant::now();
                    slices.patch("probe-a", &PatchParams::default(), &Patch::Merge(&ready)).await.unwrap();
                    let routed = tokio::task::spawn_blocking(move || {
                        let deadline = Instant::now() + Duration::from_secs(30);
                        while Instant::now() < deadline {
                            if TcpStream::connect_timeout(&to, Duration::from_millis(50)).is_ok() {
                                return Some(t0.elapsed());
                            }
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        None
                    })
                    .await
                    .unwrap()
                    .expect("traffic routed within 30 s");
                    samples.push(routed);
                    let gone = slice("probe-a", "probe", json!([]));
                    slices.patch("probe-a", &PatchParams::default(), &Patch::Merge(&gone)).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                churn.abort();
                samples
            })
        })
        .unwrap();
    let metrics = lab.exec_ok(&node, &["curl", "-s", "http://127.0.0.1:10249/metrics"]).unwrap();
    let name = "kubeproxy_network_programming_duration_seconds";
    let count = metrics
        .lines()
        .find(|l| l.starts_with(&format!("{name}_count")))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or("0")
        .to_owned();
    let p50 = histogram_quantile(&metrics, name, 0.5).unwrap_or(f64::NAN);
    let p99 = histogram_quantile(&metrics, name, 0.99).unwrap_or(f64::NAN);
    let mut sorted = samples;
    sorted.sort();
    let (e50, e99) = (percentile(&sorted, 0.5), percentile(&sorted, 0.99));
    println!(
        "network programming, {} endpoints churning at {} changes/s:\n  \
         proxy histogram ({count} changes, trigger time to rules applied): p50 {:.1} ms, p99 {:.1} ms\n  \
         end to end ({} probes, endpoint Ready written to first connection accepted): p50 {:.1} ms, p99 {:.1} ms\n  \
         vs Kubernetes' SLO p99 30 s: {:.0}x under; vs kube-proxy nftables' reported ~7 s p99: {:.0}x under",
        services * 10,
        1000 / churn_ms.max(1),
        p50 * 1000.0,
        p99 * 1000.0,
        sorted.len(),
        e50.as_secs_f64() * 1000.0,
        e99.as_secs_f64() * 1000.0,
        30.0 / e99.as_secs_f64(),
        7.0 / e99.as_secs_f64(),
    );
}

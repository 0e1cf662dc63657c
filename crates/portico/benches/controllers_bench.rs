//! Controller benchmark (a harness, not a test): N Services x M pods. Measures the time from a
//! cold start (nothing created) until every Service has EndpointSlices listing all its pods as
//! ready, then the latency from one pod's Ready flip to the matching EndpointSlice update
//! (p50/p99) while 1,000 other pods flip their Ready condition continuously.
//!
//! Run: `cargo bench -p portico --bench controllers_bench` (BENCH_SERVICES, default 10000;
//! BENCH_PODS_PER_SERVICE, default 10; BENCH_CONCURRENCY, default 32; BENCH_CHURN_PODS,
//! default 1000; BENCH_PROBES, default 200; BENCH_COMMAND, `server` (default) or `up`, which
//! also runs the cluster DNS in the measured process). Pod IPs are plain data counted up from
//! 10.244.0.0.

#[path = "../tests/common/mod.rs"]
mod common;

use common::bench::{env_usize, percentile, rss_kib};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const NS: &str = "default";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io";

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn pod_name(svc: usize, j: usize) -> String {
    format!("s{svc}-p{j}")
}

/// The k-th pod IP, counted up from 10.244.0.0 (past 65,536 pods it leaves the /16; only data).
fn pod_ip(k: usize) -> String {
    format!("10.{}.{}.{}", 244 + (k >> 16), (k >> 8) & 255, k & 255)
}

fn service(i: usize) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("s{i}")},
        "spec": {"selector": {"app": format!("s{i}")},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}
    }))
    .unwrap()
}

fn pod(svc: usize, j: usize) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name(svc, j), "labels": {"app": format!("s{svc}")}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.25",
                                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]}
    }))
    .unwrap()
}

fn ready_count(s: &EndpointSlice) -> usize {
    s.endpoints.iter().filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false)).count()
}

fn service_of(s: &EndpointSlice) -> String {
    s.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name")).cloned().unwrap_or_default()
}

/// Ready endpoints per Service, kept from a watch on the controller's EndpointSlices.
#[derive(Default)]
struct Convergence {
    slices: HashMap<String, (String, usize, usize)>, // slice name -> (service, ready, endpoints)
    per_service: HashMap<String, usize>,
    complete: usize, // Services with exactly `want` ready endpoints
    endpoints: usize,
}

impl Convergence {
    fn set(&mut self, name: String, entry: Option<(String, usize, usize)>, want: usize) {
        if let Some((svc, ready, eps)) = self.slices.remove(&name) {
            self.endpoints -= eps;
            self.adjust(&svc, ready, false, want);
        }
        if let Some((svc, ready, eps)) = entry {
            self.endpoints += eps;
            self.adjust(&svc, ready, true, want);
            self.slices.insert(name, (svc, ready, eps));
        }
    }

    fn adjust(&mut self, svc: &str, ready: usize, add: bool, want: usize) {
        let count = self.per_service.entry(svc.to_string()).or_default();
        if *count == want {
            self.complete -= 1;
        }
        if add {
            *count += ready;
        } else {
            *count -= ready;
        }
        if *count == want {
            self.complete += 1;
        }
    }
}

/// Creates the Services and their pods (create, then status Ready) from `concurrency` tasks.
async fn create_all(client: &kube::Client, services: usize, per_service: usize, concurrency: usize) {
    let svcs: Api<Service> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (svcs, pods, next) = (svcs.clone(), pods.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= services {
                    return;
                }
                svcs.create(&PostParams::default(), &service(i)).await.expect("create service");
                for j in 0..per_service {
                    pods.create(&PostParams::default(), &pod(i, j)).await.expect("create pod");
                    common::set_pod_status(&pods, &pod_name(i, j), &pod_ip(i * per_service + j), true).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Waits until every Service's slices hold `want` ready endpoints; returns (slices, endpoints).
async fn wait_converged(client: &kube::Client, services: usize, want: usize, started: Instant) -> (usize, usize) {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    let mut stream = watcher(api, watcher::Config::default().labels(MANAGED_BY)).boxed();
    let mut state = Convergence::default();
    let mut last_report = Instant::now();
    let timeout = Duration::from_secs(env_usize("BENCH_TIMEOUT_SECS", 3600) as u64);
    while state.complete < services {
        let ev = tokio::time::timeout(Duration::from_secs(30), stream.try_next()).await;
        // A quiet 30 s (no event) falls through to the progress and timeout checks.
        if let Ok(r) = ev {
            match r.expect("endpointslice watch").expect("watch ended") {
                watcher::Event::Init => state = Convergence::default(),
                watcher::Event::Apply(s) | watcher::Event::InitApply(s) => {
                    let name = s.metadata.name.clone().unwrap_or_default();
                    let entry = (service_of(&s), ready_count(&s), s.endpoints.len());
                    state.set(name, Some(entry), want);
                }
                watcher::Event::Delete(s) => state.set(s.metadata.name.clone().unwrap_or_default(), None, want),
                watcher::Event::InitDone => {}
            }
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "  .. {:.0} s: {}/{services} Services converged, {} slices, {} endpoints",
                started.elapsed().as_secs_f64(),
                state.complete,
                state.slices.len(),
                state.endpoints
            );
        }
        assert!(started.elapsed() < timeout, "not converged: {}/{services} Services", state.complete);
    }
    (state.slices.len(), state.endpoints)
}

/// Flips the Ready condition of `pods` round-robin from `workers` tasks until `stop`.
fn start_churn(
    client: &kube::Client,
    targets: Vec<(String, String)>,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<usize>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let targets = Arc::new(targets);
    let next = Arc::new(AtomicUsize::new(0));
    (0..workers)
        .map(|_| {
            let (pods, targets, next, stop) = (pods.clone(), targets.clone(), next.clone(), stop.clone());
            tokio::spawn(async move {
                let mut flips = 0;
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let (name, ip) = &targets[n % targets.len()];
                    // Each pass over the pods alternates not-ready / ready.
                    let ready = (n / targets.len()) % 2 == 1;
                    common::set_pod_status(&pods, name, ip, ready).await;
                    flips += 1;
                }
                flips
            })
        })
        .collect()
}

/// Flips the probe pod to `ready` and returns the time until its slice endpoint shows it.
async fn probe_once(client: &kube::Client, svc: &str, pod: &str, ip: &str, ready: bool) -> Duration {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let selector = format!("kubernetes.io/service-name={svc},{MANAGED_BY}");
    let rv = slices.list(&ListParams::default().labels(&selector)).await.unwrap().metadata.resource_version.unwrap();
    let mut stream = slices.watch(&WatchParams::default().labels(&selector).timeout(60), &rv).await.unwrap().boxed();
    let t = Instant::now();
    common::set_pod_status(&pods, pod, ip, ready).await;
    let deadline = Duration::from_secs(30);
    loop {
        let ev = tokio::time::timeout(deadline.saturating_sub(t.elapsed()), stream.try_next())
            .await
            .unwrap_or_else(|_| panic!("{pod} ready={ready} not seen in its slice within {deadline:?}"));
        match ev.expect("slice watch") {
            Some(WatchEvent::Added(s)) | Some(WatchEvent::Modified(s)) => {
                let seen = s.endpoints.iter().any(|e| {
                    e.addresses.iter().any(|a| a == ip)
                        && e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false) == ready
                });
                if seen {
                    return t.elapsed();
                }
            }
            Some(WatchEvent::Error(e)) => panic!("slice watch error: {e:?}"),
            Some(_) => {}
            None => panic!("slice watch ended before {pod} ready={ready} was seen"),
        }
    }
}

#[tokio::main]
async fn main() {
    let services = env_usize("BENCH_SERVICES", 10_000);
    let per_service = env_usize("BENCH_PODS_PER_SERVICE", 10);
    let concurrency = env_usize("BENCH_CONCURRENCY", 32);
    let churn_pods = env_usize("BENCH_CHURN_PODS", 1000);
    let probes = env_usize("BENCH_PROBES", 200);
    assert!(services >= 1 && per_service >= 1, "need at least one Service and one pod per Service");
    let command = std::env::var("BENCH_COMMAND").unwrap_or_else(|_| "server".to_owned());
    let (dns_port, http_port) = (common::dns::free_udp_tcp_port(), common::dns::free_tcp_port());
    // Extra flags for the server process, e.g. BENCH_SERVER_ARGS="--store-cache-mb 1024".
    let extra = std::env::var("BENCH_SERVER_ARGS").unwrap_or_default();
    let extra: Vec<&str> = extra.split_whitespace().collect();
    let (dns, http) = (format!("127.0.0.1:{dns_port}"), format!("127.0.0.1:{http_port}"));
    let mut args = extra;
    if command == "up" {
        args.extend(["--dns-listen", &dns, "--dns-upstream", "127.0.0.1:9"]);
        args.extend(["--dns-health", &http, "--dns-ready", &http, "--dns-metrics", &http]);
    }
    // BENCH_CONTROLLERS=separate: the controllers run as their own process (`portico
    // controllers`), so the API server's and the controllers' memory show apart.
    let separate = std::env::var("BENCH_CONTROLLERS").is_ok_and(|v| v == "separate");
    if separate {
        args.push("--no-controllers");
    }
    let server = common::Server::start_command(if command == "up" { "up" } else { "server" }, &args);
    let controllers = separate.then(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
            .args(["controllers", "--kubeconfig"])
            .arg(server.kubeconfig())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn portico controllers")
    });
    let controllers_rss = || {
        controllers
            .as_ref()
            .map(|c| format!(", controllers process {} MiB", rss_kib(c.id()) / 1024))
            .unwrap_or_default()
    };
    let client = server.client().await;
    let pid = server.child.as_ref().unwrap().id();
    let rss_empty = rss_kib(pid);
    let total_pods = services * per_service;

    println!(
        "# Portico controllers benchmark: portico {command}, {services} Services x {per_service} pods, {concurrency} concurrent clients"
    );

    // Phase 1: cold start to convergence.
    let started = Instant::now();
    let watch_client = client.clone();
    let converged = tokio::spawn(async move { wait_converged(&watch_client, services, per_service, started).await });
    create_all(&client, services, per_service, concurrency).await;
    let created = started.elapsed();
    let (slices, endpoints) = converged.await.unwrap();
    let converge = started.elapsed();
    println!(
        "create {services} Services + {total_pods} pods (create + status Ready): {:.2} s ({:.0} objects/s, {:.0} writes/s)",
        created.as_secs_f64(),
        (services + total_pods) as f64 / created.as_secs_f64(),
        (services + 2 * total_pods) as f64 / created.as_secs_f64(),
    );
    println!(
        "converged (every Service's slices list all its pods ready): {:.2} s from the first create, {:.2} s after the last write",
        converge.as_secs_f64(),
        converge.saturating_sub(created).as_secs_f64()
    );
    // Let the allocator settle (freed request buffers) before reading RSS.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_converged = rss_kib(pid);
    println!(
        "objects: {services} Services, {total_pods} pods, {slices} EndpointSlices ({endpoints} endpoints); resident memory {} MiB empty, {} MiB converged ({:.1} KiB per pod){}",
        rss_empty / 1024,
        rss_converged / 1024,
        rss_converged as f64 / total_pods as f64,
        controllers_rss()
    );

    // Phase 2: one probe pod's Ready flips while other pods churn.
    let others: Vec<(String, String)> = (per_service..total_pods)
        .take(churn_pods)
        .map(|k| (pod_name(k / per_service, k % per_service), pod_ip(k)))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let churn_started = Instant::now();
    let churn = if others.is_empty() { Vec::new() } else { start_churn(&client, others.clone(), 8, stop.clone()) };
    let (probe_svc, probe_pod, probe_ip) = ("s0".to_string(), pod_name(0, 0), pod_ip(0));
    let mut lat = Vec::with_capacity(probes);
    for n in 0..probes {
        let ready = n % 2 == 1; // starts Ready, so the first flip is to not-ready
        lat.push(probe_once(&client, &probe_svc, &probe_pod, &probe_ip, ready).await);
    }
    stop.store(true, Ordering::Relaxed);
    let mut flips = 0;
    for c in churn {
        flips += c.await.unwrap();
    }
    let churn_wall = churn_started.elapsed();
    lat.sort();
    println!(
        "pod Ready flip -> EndpointSlice update ({probes} flips, {} other pods churning at {:.0} flips/s): p50 {}, p99 {}, max {}",
        others.len(),
        flips as f64 / churn_wall.as_secs_f64(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap_or(&Duration::ZERO)),
    );
    println!("resident memory after churn: {} MiB{}", rss_kib(pid) / 1024, controllers_rss());
    if let Some(mut c) = controllers {
        let _ = c.kill();
        let _ = c.wait();
    }
}

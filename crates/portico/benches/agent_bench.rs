//! Node agent benchmark (a harness, not a test), in a lab: `portico up` (API server,
//! controllers, DNS and the agent) runs in a lab node's network namespace, as in
//! tests/agent.rs. Measures:
//!
//! - pod start latency: BENCH_PODS (default 100) demo pods created through kube-rs (from
//!   BENCH_CONCURRENCY tasks, default 10) on the one node, from the moment each create request
//!   is sent to the moment a watch (started before the first create) delivers the pod with
//!   its Ready condition True; client-side timestamps, taken on a thread inside the node's
//!   network namespace. Once without and once with an httpGet readiness probe (periodSeconds
//!   1). Compared with kubelet's published pod-startup SLO: 5 s p99, excluding image pulls
//!   (there are no images here).
//! - resident memory: of the `portico up` process (which also holds the API server, the
//!   controllers and DNS) before and with the pods running; and of the per-container
//!   supervisors (`portico shim`, the containerd-shim analogue) and of the demo containers.
//! - exec round trip: `kubectl exec <pod> -- true` if the API server streams exec; otherwise
//!   the agent-side primitive (`Sandbox::enter(id, ["true"])`, spawn to exit), which is only
//!   the in-node part of an exec.
//!
//! Run: `cargo bench -p portico --bench agent_bench` as root (BENCH_PODS, BENCH_CONCURRENCY,
//! BENCH_EXECS, default 100 for the in-node primitive and 20 for kubectl; BENCH_KEEP_LOG, a
//! file to copy the `portico up` log to).

#[path = "../tests/common/mod.rs"]
mod common;

use common::bench::{cpu_secs, env_usize, percentile, rss_kib};
use common::cluster::{Cluster, is_ready, s};
use common::eventually;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SLO: Duration = Duration::from_secs(5);

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Proportional set size (shared pages divided among the processes mapping them), in KiB.
fn pss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    text.lines().find(|l| l.starts_with("Pss:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
}

fn loadavg() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    l.split_whitespace().next().unwrap_or("?").to_owned()
}

fn pod(label: &str, i: usize, probe: bool) -> Pod {
    let mut container = json!({"name": "web", "image": "demo", "ports": [{"containerPort": 8080}]});
    if probe {
        container["readinessProbe"] = json!({"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1});
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{label}-{i}"), "labels": {"bench": label}},
        "spec": {"terminationGracePeriodSeconds": 2, "containers": [container]}
    }))
    .unwrap()
}

/// When the watch first saw each milestone of one pod.
#[derive(Default, Clone, Copy)]
struct Seen {
    scheduled: Option<Instant>,
    running: Option<Instant>,
    ready: Option<Instant>,
}

fn ready(p: &Pod) -> bool {
    let conds = p.status.as_ref().and_then(|s| s.conditions.as_ref());
    conds.into_iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True")
}

struct Run {
    /// Per pod: create sent -> scheduled, running, Ready.
    scheduled: Vec<Duration>,
    running: Vec<Duration>,
    ready: Vec<Duration>,
    /// First create sent -> last pod Ready.
    wall: Duration,
    creates: Duration,
    /// CPU seconds `portico up` used from the first create to the last Ready.
    cpu: f64,
    /// /proc/loadavg's 1-minute figure at the end: other work on the machine skews the run.
    load: String,
}

/// Creates `n` pods labelled `bench=<label>` and times each to Ready; runs on a thread in the
/// node's network namespace (the kube client's sockets are made there).
async fn start_pods(c: &Cluster, label: &str, n: usize, probe: bool, concurrency: usize) -> Run {
    let kubeconfig = kube::config::Kubeconfig::read_from(c.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");

    let seen: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();
    let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
    let watch = {
        let (pods, seen) = (pods.clone(), seen.clone());
        let selector = format!("bench={label}");
        tokio::spawn(async move {
            let mut stream = watcher(pods, watcher::Config::default().labels(&selector)).boxed();
            let mut synced = Some(synced_tx);
            let mut ready_count = 0;
            while ready_count < n {
                let ev = stream.try_next().await.expect("pod watch").expect("pod watch ended");
                let now = Instant::now();
                let p = match ev {
                    watcher::Event::InitDone => {
                        if let Some(tx) = synced.take() {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => p,
                    watcher::Event::Init | watcher::Event::Delete(_) => continue,
                };
                let mut seen = seen.lock().unwrap();
                let e = seen.entry(p.metadata.name.clone().unwrap_or_default()).or_default();
                if e.scheduled.is_none() && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                    e.scheduled = Some(now);
                }
                if e.running.is_none() && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                    e.running = Some(now);
                }
                if e.ready.is_none() && ready(&p) {
                    e.ready = Some(now);
                    ready_count += 1;
                }
            }
        })
    };
    synced_rx.await.expect("the pod watch never synced");

    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let pid = c.pid().unwrap();
    let cpu0 = cpu_secs(pid);
    let first = Instant::now();
    futures::stream::iter(0..n)
        .for_each_concurrent(concurrency, |i| {
            let (pods, sent) = (pods.clone(), sent.clone());
            async move {
                let p = pod(label, i, probe);
                sent.lock().unwrap().insert(p.metadata.name.clone().unwrap(), Instant::now());
                pods.create(&PostParams::default(), &p).await.expect("create pod");
            }
        })
        .await;
    let creates = first.elapsed();
    let timeout = Duration::from_secs(env_usize("BENCH_TIMEOUT_SECS", 300) as u64);
    if tokio::time::timeout(timeout, watch).await.is_err() {
        let seen = seen.lock().unwrap();
        let n_ready = seen.values().filter(|s| s.ready.is_some()).count();
        panic!("only {n_ready}/{n} pods Ready after {timeout:?}:\n{}", c.log());
    }
    let cpu = cpu_secs(pid) - cpu0;
    let (sent, seen) = (sent.lock().unwrap(), seen.lock().unwrap());
    let since = |name: &str, t: Option<Instant>| t.map(|t| t.saturating_duration_since(sent[name]));
    let collect = |f: fn(&Seen) -> Option<Instant>| {
        let mut v: Vec<Duration> = seen.iter().filter_map(|(name, s)| since(name, f(s))).collect();
        v.sort();
        v
    };
    let last_ready = seen.values().filter_map(|s| s.ready).max().unwrap();
    Run {
        scheduled: collect(|s| s.scheduled),
        running: collect(|s| s.running),
        ready: collect(|s| s.ready),
        wall: last_ready - first,
        creates,
        cpu,
        load: loadavg(),
    }
}

/// Runs [`start_pods`] on a current-thread runtime on a thread inside the node's namespace.
fn start_pods_in_node(c: &Cluster, label: &str, n: usize, probe: bool, concurrency: usize) -> Run {
    c.lab
        .in_ns(&c.node, || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(start_pods(c, label, n, probe, concurrency))
        })
        .expect("enter the node's namespace")
}

/// Memory of what runs the pods: (shim count, shim RSS, shim PSS, container RSS, container PSS).
fn pod_processes(c: &Cluster) -> (usize, u64, u64, u64, u64) {
    let sandbox = node::sandbox::Sandbox::new(c.state_dir().join("containers"), "/nonexistent".into());
    let (mut n, mut shim_rss, mut shim_pss, mut ctr_rss, mut ctr_pss) = (0, 0, 0, 0, 0);
    for st in sandbox.list().into_iter().filter(|st| st.is_running() && st.shim_alive) {
        n += 1;
        if let Some(pid) = st.shim_pid {
            shim_rss += rss_kib(pid);
            shim_pss += pss_kib(pid);
        }
        if let Some(pid) = st.pid {
            ctr_rss += rss_kib(pid);
            ctr_pss += pss_kib(pid);
        }
    }
    (n, shim_rss, shim_pss, ctr_rss, ctr_pss)
}

/// Deletes the run's pods and returns the time until the API has none left and no container
/// of theirs runs. (Not `kubectl delete --wait`: its own waiting takes ~15 s more for 100 pods
/// than the deletion does.)
fn delete_all(c: &Cluster, label: &str) -> Duration {
    let selector = format!("bench={label}");
    let t = Instant::now();
    c.kubectl_ok(&["delete", "pods", "-l", &selector, "--wait=false"]);
    let gone = eventually(Duration::from_secs(120), || c.pods(&selector).is_empty());
    assert!(gone, "pods {selector} not gone after 120 s:\n{}", c.log());
    let sandbox = node::sandbox::Sandbox::new(c.state_dir().join("containers"), "/nonexistent".into());
    let stopped = eventually(Duration::from_secs(60), || sandbox.list().iter().all(|st| !st.is_running()));
    assert!(stopped, "containers still running after their pods were deleted");
    t.elapsed()
}

fn row(what: &str, v: &[Duration]) -> String {
    format!(
        "| {what} | {} | {} | {} |",
        ms(percentile(v, 0.5)),
        ms(percentile(v, 0.99)),
        ms(v.last().copied().unwrap_or_default())
    )
}

fn print_run(title: &str, r: &Run, n: usize) {
    println!("\n### Pod start, {title}: {n} pods\n");
    println!("| create sent -> (watch) | p50 | p99 | max |");
    println!("|---|---|---|---|");
    println!("{}", row("scheduled (spec.nodeName)", &r.scheduled));
    println!("{}", row("phase Running", &r.running));
    println!("{}", row("**Ready=True**", &r.ready));
    let p99 = percentile(&r.ready, 0.99);
    let ratio = p99.as_secs_f64() / SLO.as_secs_f64();
    println!(
        "\nReady p99 {} vs kubelet's SLO (5 s p99): {ratio:.2}x the SLO ({}); all {n} created in {}, last Ready {} after the first create; `portico up` used {:.2} s of CPU meanwhile; load average {}.",
        ms(p99),
        if ratio <= 1.0 { "within" } else { "OVER" },
        ms(r.creates),
        ms(r.wall),
        r.cpu,
        r.load,
    );
}

/// `kubectl exec <pod> -- true` round trips, or `None` if exec is not served.
fn kubectl_exec(c: &Cluster, pod: &str, count: usize) -> Option<Vec<Duration>> {
    let out = c.kubectl(&["exec", pod, "--", "true"]);
    if !out.status.success() {
        println!("\n(kubectl exec is not served here: {})", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    let mut v: Vec<Duration> = (0..count)
        .map(|_| {
            let t = Instant::now();
            c.kubectl_ok(&["exec", pod, "--", "true"]);
            t.elapsed()
        })
        .collect();
    v.sort();
    Some(v)
}

/// `Sandbox::enter(id, ["true"])`: spawn to exit, the in-node part of an exec.
fn sandbox_exec(c: &Cluster, count: usize) -> Vec<Duration> {
    let sandbox = node::sandbox::Sandbox::new(c.state_dir().join("containers"), "/nonexistent".into());
    let id = sandbox.list().into_iter().find(|st| st.is_running()).expect("a running container").id;
    let argv = ["true".to_string()];
    let mut v: Vec<Duration> = (0..count)
        .map(|_| {
            let t = Instant::now();
            let status = sandbox.enter(&id, &argv).expect("enter").status().expect("spawn");
            let took = t.elapsed();
            assert!(status.success(), "true in {id}: {status}");
            took
        })
        .collect();
    v.sort();
    v
}

fn main() {
    // `cargo bench` passes --bench; this harness takes no arguments.
    let n = env_usize("BENCH_PODS", 100);
    let concurrency = env_usize("BENCH_CONCURRENCY", 10);
    let Some(c) = Cluster::start("bench", &[]) else { return };
    let node_ready = eventually(Duration::from_secs(60), || {
        let n = c.json(&["get", "node", "n1"]);
        is_ready(&n) && !s(&n["spec"]["podCIDR"]).is_empty()
    });
    assert!(node_ready, "node n1 never Ready:\n{}", c.log());
    let pid = c.pid().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let rss_empty = rss_kib(pid);

    println!(
        "# Portico node agent benchmark: {n} pods on one node (portico up in a lab node), {concurrency} concurrent creates"
    );

    // Without a readiness probe: Ready as soon as the container runs.
    let plain = start_pods_in_node(&c, "plain", n, false, concurrency);
    std::thread::sleep(Duration::from_secs(3));
    let rss_plain = rss_kib(pid);
    let (shims, shim_rss, shim_pss, ctr_rss, ctr_pss) = pod_processes(&c);

    // Exec round trip against one of these pods.
    let exec = kubectl_exec(&c, "plain-0", env_usize("BENCH_EXECS", 20)).map(|v| ("kubectl exec plain-0 -- true", v));
    let exec = exec.unwrap_or_else(|| {
        (
            "Sandbox::enter(id, [\"true\"]) spawn to exit (in-node part only)",
            sandbox_exec(&c, env_usize("BENCH_EXECS", 100)),
        )
    });

    let deleted_plain = delete_all(&c, "plain");
    std::thread::sleep(Duration::from_secs(3));
    let rss_after_delete = rss_kib(pid);

    // With an httpGet readiness probe (periodSeconds 1).
    let probed = start_pods_in_node(&c, "probed", n, true, concurrency);
    std::thread::sleep(Duration::from_secs(3));
    let rss_probed = rss_kib(pid);
    let (shims_probed, shim_rss_probed, _, _, _) = pod_processes(&c);
    let deleted_probed = delete_all(&c, "probed");

    print_run("demo server, no readiness probe", &plain, n);
    print_run("demo server, httpGet readiness probe (periodSeconds 1)", &probed, n);

    let per = |kib: u64, pods: usize| kib as f64 / pods.max(1) as f64;
    println!("\n### Memory with {n} running pods\n");
    println!("| process | empty node | {n} pods | per pod |");
    println!("|---|---|---|---|");
    println!(
        "| `portico up` RSS (agent + API server + controllers + DNS), no probes | {} MiB | {} MiB | {:.0} KiB |",
        rss_empty / 1024,
        rss_plain / 1024,
        per(rss_plain.saturating_sub(rss_empty), n)
    );
    println!(
        "| `portico up` RSS, httpGet probes | {} MiB | {} MiB | {:.0} KiB |",
        rss_empty / 1024,
        rss_probed / 1024,
        per(rss_probed.saturating_sub(rss_empty), n)
    );
    println!(
        "| `portico shim` supervisors ({shims} running), RSS sum | - | {} MiB | {:.0} KiB |",
        shim_rss / 1024,
        per(shim_rss, shims)
    );
    println!("| `portico shim` supervisors, PSS sum | - | {} MiB | {:.0} KiB |", shim_pss / 1024, per(shim_pss, shims));
    println!(
        "| demo containers (the pods' own process), RSS / PSS sum | - | {} / {} MiB | {:.0} / {:.0} KiB |",
        ctr_rss / 1024,
        ctr_pss / 1024,
        per(ctr_rss, shims),
        per(ctr_pss, shims)
    );
    println!(
        "\n`portico up` after deleting the {n} pods: {} MiB. Shims with probed pods: {shims_probed}, RSS {:.0} KiB each. \
         Deleting {n} pods (kubectl delete, until the API lists none, polled with kubectl): {} without probes, {} with.",
        rss_after_delete / 1024,
        per(shim_rss_probed, shims_probed),
        ms(deleted_plain),
        ms(deleted_probed),
    );

    // BENCH_KEEP_LOG=<file>: keep the `portico up` log (the data dir goes with the cluster).
    if let Ok(path) = std::env::var("BENCH_KEEP_LOG") {
        std::fs::write(path, c.log()).unwrap();
    }
    let (what, v) = exec;
    println!("\n### Exec round trip ({} runs)\n", v.len());
    println!("| what | p50 | p99 | max |");
    println!("|---|---|---|---|");
    println!("{}", row(what, &v));
}

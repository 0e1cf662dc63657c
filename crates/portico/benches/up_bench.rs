//! `portico up` itself (a harness, not a test), in a lab: `portico up` runs in a lab node's
//! network namespace through the same `Cluster` harness as tests/agent.rs and tests/up_nodes.rs.
//! Measures:
//!
//! - start to ready: from spawning `portico up` to the moment its log shows the "Portico is up"
//!   line (printed once every component serves; the log file is polled every 20 ms), with the
//!   figure the line itself prints (counted from inside the process, so without the exec and
//!   the store's opening) next to it. A first start on an empty data directory, BENCH_REPEAT
//!   (default 3) restarts of the empty store (Ctrl-C, then `portico up` again on the same data
//!   directory), then the same restarts with BENCH_SERVICES (default 1,000) Services in the
//!   store, each with an EndpointSlice of BENCH_ENDPOINTS (default 10) addresses.
//! - resident memory (VmRSS, with its anonymous / file-backed split, and PSS from
//!   /proc/<pid>/smaps_rollup) of Portico's own processes: idle when empty; with the Services
//!   and their slices; and with BENCH_PODS (default 100) demo pods of a Deployment Running.
//!   The pods' own processes and their supervisors (`portico shim`) are counted apart, per pod.
//! - `portico up --nodes 3`: start to ready (three nodes as namespaces, each with its own
//!   `portico agent` process), and the idle memory of `portico up` plus the three agents.
//!
//! The Services are selectorless, with hand-written slices whose addresses are inside the lab's
//! registered cluster range (198.19.128.0/17); no traffic is sent. The peer is k3s's published
//! resource profile (docs.k3s.io), printed with the ratios at the end.
//!
//! - BENCH_NOLINK_PODS (default 10) more pods with `enableServiceLinks: false`, so the cost of
//!   the Services' environment variables (in every pod of their namespace) shows apart; and
//!   where each process's memory is, by mapping (/proc/<pid>/smaps).
//!
//! Run: `cargo bench -p portico --bench up_bench` as root (BENCH_SERVICES, BENCH_ENDPOINTS,
//! BENCH_PODS, BENCH_REPEAT, BENCH_NOLINK_PODS, BENCH_NODES=0 to skip the three-node part,
//! BENCH_KEEP_LOG=<dir> to keep the `portico up` logs).

#[path = "../tests/common/mod.rs"]
mod common;

use common::bench::{cpu_secs, env_usize, rss_kib};
use common::cluster::{Cluster, is_ready, s};
use common::eventually;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use serde_json::json;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

const UP_LINE: &str = "Portico is up (";

/// k3s's published figures (docs.k3s.io, Resource Profiling and Requirements pages).
const K3S_SERVER_WITH_WORKLOAD_MIB: f64 = 1596.0;
const K3S_AGENT_MIB: f64 = 275.0;
const K3S_SERVER_MIN_RAM_MIB: f64 = 2048.0;
/// The goal for Portico's own processes.
const GOAL_MIB: f64 = 150.0;

// ---------------------------------------------------------------------------------------------
// Memory of one process.

#[derive(Clone, Copy, Default, Debug)]
struct Mem {
    rss: u64,
    anon: u64,
    file: u64,
    pss: u64,
}

impl std::ops::Add for Mem {
    type Output = Mem;
    fn add(self, o: Mem) -> Mem {
        Mem { rss: self.rss + o.rss, anon: self.anon + o.anon, file: self.file + o.file, pss: self.pss + o.pss }
    }
}

fn field_kib(text: &str, key: &str) -> u64 {
    text.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
}

fn mem(pid: u32) -> Mem {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    Mem {
        rss: rss_kib(pid),
        anon: field_kib(&status, "RssAnon:"),
        file: field_kib(&status, "RssFile:"),
        pss: field_kib(&rollup, "Pss:"),
    }
}

/// Where a process's resident memory is, from /proc/<pid>/smaps: (what, RSS KiB, of which
/// anonymous KiB) by kind of mapping, largest first; and the thread count. Anonymous pages of
/// a file mapping are its private, written pages (the binary's relocated data).
fn breakdown(pid: u32) -> (Vec<(String, u64, u64)>, u64) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut by: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let mut key = String::new();
    let num = |v: Option<&str>| v.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: range perms offset dev inode [path].
            let path = line.split_whitespace().nth(5).unwrap_or("");
            key = match path.rsplit('/').next() {
                Some(name) if path.starts_with('/') => name.to_owned(),
                _ if path.is_empty() => "anon".to_owned(),
                _ => path.to_owned(),
            };
        } else if first == "Size:" && key == "anon" {
            // glibc's per-thread malloc arenas reserve 64 MiB each; thread stacks are a few MiB.
            key = match num(f.next()) {
                s if s >= 60 * 1024 => "anon (malloc arenas)".into(),
                s if (1024..=16 * 1024).contains(&s) => "anon (1-16 MiB maps: stacks, big allocations)".into(),
                _ => "anon (other)".into(),
            };
        } else if first == "Rss:" {
            by.entry(key.clone()).or_default().0 += num(f.next());
        } else if first == "Anonymous:" {
            by.entry(key.clone()).or_default().1 += num(f.next());
        }
    }
    let mut v: Vec<(String, u64, u64)> = by.into_iter().filter(|(_, r)| r.0 > 0).map(|(k, (r, a))| (k, r, a)).collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (v, field_kib(&status, "Threads:"))
}

fn breakdown_line(what: &str, pid: Option<u32>) -> String {
    let Some(pid) = pid else { return format!("- {what}: not found") };
    let (v, threads) = breakdown(pid);
    let parts: Vec<String> = v
        .iter()
        .take(5)
        .map(|(k, r, a)| match *a {
            a if a < 103 => format!("{k} {}", mib(*r)),
            a => format!("{k} {} ({} anon)", mib(*r), mib(a)),
        })
        .collect();
    format!("- {what} ({threads} threads), RSS MiB by mapping: {}", parts.join("; "))
}

/// The size of a pod process's environment: with service links (the default), every Service
/// of the pod's namespace adds its `<NAME>_SERVICE_HOST`/`_PORT…` variables.
fn environ_line(pid: Option<u32>) -> String {
    let env = pid.and_then(|p| std::fs::read(format!("/proc/{p}/environ")).ok()).unwrap_or_default();
    let vars = env.split(|b| *b == 0).filter(|v| !v.is_empty()).count();
    format!("- one demo pod process's environment: {vars} variables, {} KiB", env.len() / 1024)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Waits (30 s at most) until the processes use under 5 % of a core over a second, so memory
/// is read at rest rather than in the middle of a sync.
fn settle(pids: &[u32]) -> Duration {
    let t = Instant::now();
    let total = || pids.iter().map(|p| cpu_secs(*p)).sum::<f64>();
    let mut last = total();
    while t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_secs(1));
        let now = total();
        if now - last < 0.05 {
            break;
        }
        last = now;
    }
    t.elapsed()
}

fn loadavg() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    l.split_whitespace().next().unwrap_or("?").to_owned()
}

// ---------------------------------------------------------------------------------------------
// Start to ready.

#[derive(Clone, Copy)]
struct Start {
    /// Spawn to the "Portico is up" line in the log.
    seen: Duration,
    /// The figure the line prints.
    printed: Option<f64>,
}

/// Spawns `portico up` (start number `n` of this cluster, whose log is `up-<n>.log`) and times
/// it to the "Portico is up" line.
fn timed_spawn(c: &mut Cluster, n: u32) -> Start {
    let log = c.data_dir.path().join(format!("up-{n}.log"));
    let t0 = Instant::now();
    let seen = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| watch_for_up(&log, t0));
        c.spawn();
        watcher.join().unwrap()
    });
    let Some((seen, line)) = seen else {
        panic!("no \"Portico is up\" line within 180 s:\n{}", c.log());
    };
    let printed =
        line.split_once(UP_LINE).and_then(|(_, r)| r.split_once(" s)")).and_then(|(v, _)| v.trim().parse::<f64>().ok());
    Start { seen, printed }
}

/// Polls the log every 20 ms, reading only what was appended, until the line shows.
fn watch_for_up(log: &Path, t0: Instant) -> Option<(Duration, String)> {
    let mut buf = Vec::new();
    let mut file = None;
    while t0.elapsed() < Duration::from_secs(180) {
        if file.is_none() {
            file = std::fs::File::open(log).ok();
        }
        if let Some(f) = file.as_mut() {
            let searched = buf.len().saturating_sub(UP_LINE.len() + 1);
            let _ = f.read_to_end(&mut buf);
            let now = t0.elapsed();
            if let Some(i) = memchr_str(&buf[searched..], UP_LINE) {
                let start = searched + i;
                let end = buf[start..].iter().position(|b| *b == b'\n').map(|e| start + e).unwrap_or(buf.len());
                return Some((now, String::from_utf8_lossy(&buf[start..end]).into_owned()));
            }
            // Keep the buffer small: only the tail can hold a partial line.
            if buf.len() > 1 << 20 {
                buf.drain(..buf.len() - 256);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn memchr_str(hay: &[u8], needle: &str) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle.as_bytes())
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn describe(starts: &[Start]) -> String {
    let seen: Vec<String> = starts.iter().map(|s| format!("{:.2}", s.seen.as_secs_f64())).collect();
    let printed: Vec<String> =
        starts.iter().map(|s| s.printed.map(|p| format!("{p:.1}")).unwrap_or_else(|| "?".into())).collect();
    format!("runs {} s; printed {} s", seen.join(", "), printed.join(", "))
}

// ---------------------------------------------------------------------------------------------
// Objects.

fn endpoint_ip(k: usize) -> String {
    // 198.19.128.1 - 198.19.254.250: inside the lab's registered CLUSTER_CIDR, above the /24s
    // node IPAM hands out from its start.
    format!("198.19.{}.{}", 128 + (k / 250) % 127, 1 + k % 250)
}

fn service(i: usize) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("s{i}"), "labels": {"bench": "up"}},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}
    }))
    .unwrap()
}

fn slice(i: usize, endpoints: usize) -> EndpointSlice {
    let eps: Vec<_> = (0..endpoints)
        .map(|j| json!({"addresses": [endpoint_ip(i * endpoints + j)], "conditions": {"ready": true}}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("s{i}-bench"), "labels": {
            "kubernetes.io/service-name": format!("s{i}"),
            "endpointslice.kubernetes.io/managed-by": "up-bench"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": eps,
    }))
    .unwrap()
}

/// Creates the Services and their slices through kube-rs, 16 at a time, from a thread inside
/// the node's network namespace; returns the time taken.
fn create_services(c: &Cluster, n: usize, endpoints: usize) -> Duration {
    c.lab
        .in_ns(&c.node, || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                use futures::StreamExt;
                let kubeconfig = kube::config::Kubeconfig::read_from(c.kubeconfig()).unwrap();
                let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
                let client = kube::Client::try_from(config).unwrap();
                let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
                let slices: Api<EndpointSlice> = Api::namespaced(client, "default");
                let t = Instant::now();
                futures::stream::iter(0..n)
                    .for_each_concurrent(16, |i| {
                        let (svcs, slices) = (svcs.clone(), slices.clone());
                        async move {
                            svcs.create(&PostParams::default(), &service(i)).await.expect("create Service");
                            if endpoints > 0 {
                                slices
                                    .create(&PostParams::default(), &slice(i, endpoints))
                                    .await
                                    .expect("create slice");
                            }
                        }
                    })
                    .await;
                t.elapsed()
            })
        })
        .expect("enter the node's namespace")
}

/// A Deployment of demo pods (no command: the built-in demo server) labelled `app=<name>`.
fn deployment(name: &str, replicas: usize, service_links: bool) -> String {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "terminationGracePeriodSeconds": 2,
                "enableServiceLinks": service_links,
                "containers": [{"name": "web", "image": "demo", "ports": [{"containerPort": 8080}]}]}}}})
    .to_string()
}

fn running(c: &Cluster, app: &str) -> usize {
    c.pods(&format!("app={app}")).iter().filter(|p| p["status"]["phase"] == "Running").count()
}

/// Memory of what runs the pods: (running containers, supervisors, the pods' own processes,
/// one supervisor's PID and one pod process's).
fn pod_processes(c: &Cluster, app: &str) -> (usize, Mem, Mem, Option<u32>, Option<u32>) {
    // Container IDs start with their pod's UID.
    let uids: Vec<String> = c.pods(&format!("app={app}")).iter().map(|p| s(&p["metadata"]["uid"])).collect();
    let sandbox = node::sandbox::Sandbox::new(c.state_dir().join("containers"), "/nonexistent".into());
    let (mut n, mut shims, mut ctrs, mut a_shim, mut a_ctr) = (0, Mem::default(), Mem::default(), None, None);
    let ours = |id: &str| uids.iter().any(|u| id.starts_with(&format!("{u}_")));
    for st in sandbox.list().into_iter().filter(|st| st.is_running() && st.shim_alive && ours(&st.id)) {
        n += 1;
        if let Some(pid) = st.shim_pid {
            shims = shims + mem(pid);
            a_shim = Some(pid);
        }
        if let Some(pid) = st.pid {
            ctrs = ctrs + mem(pid);
            a_ctr = Some(pid);
        }
    }
    (n, shims, ctrs, a_shim, a_ctr)
}

fn keep_logs(c: &Cluster, tag: &str) {
    let Ok(dir) = std::env::var("BENCH_KEEP_LOG") else { return };
    let _ = std::fs::create_dir_all(&dir);
    for e in std::fs::read_dir(c.data_dir.path()).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".log") {
            let _ = std::fs::copy(e.path(), Path::new(&dir).join(format!("{tag}-{name}")));
        }
    }
}

// ---------------------------------------------------------------------------------------------

struct MemRow {
    what: String,
    m: Mem,
}

fn main() {
    // `cargo bench` passes --bench; this harness takes no arguments.
    let n_svc = env_usize("BENCH_SERVICES", 1000);
    let n_eps = env_usize("BENCH_ENDPOINTS", 10);
    let n_pods = env_usize("BENCH_PODS", 100);
    let repeat = env_usize("BENCH_REPEAT", 3).max(1);
    let nodes = env_usize("BENCH_NODES", 3);
    let wall = Instant::now();
    println!(
        "# portico up benchmark: {n_svc} Services x {n_eps} endpoints, {n_pods} pods, {repeat} restarts per case; load average {} at the start",
        loadavg()
    );

    let mut mem_rows: Vec<MemRow> = vec![];

    // --- One node: `portico up` in the lab node, with its agent in the process. -------------
    let Some(mut c) = Cluster::new("upbench", &[]) else { return };
    let mut start_no = 0;
    let mut next = |c: &mut Cluster| {
        start_no += 1;
        timed_spawn(c, start_no)
    };
    let first = next(&mut c);
    println!("first start (empty data dir): {}", describe(&[first]));
    let node_ready = eventually(Duration::from_secs(60), || is_ready(&c.json(&["get", "node", "n1"])));
    assert!(node_ready, "node n1 never Ready:\n{}", c.log());

    let mut empty = vec![];
    for _ in 0..repeat {
        assert!(c.interrupt(), "portico up did not end on Ctrl-C:\n{}", c.log());
        empty.push(next(&mut c));
    }
    println!("restarts, empty store: {}", describe(&empty));
    let pid = c.pid().unwrap();
    settle(&[pid]);
    std::thread::sleep(Duration::from_secs(2));
    mem_rows.push(MemRow { what: "`portico up`, idle, empty store".into(), m: mem(pid) });

    let created = create_services(&c, n_svc, n_eps);
    let objects = n_svc * if n_eps > 0 { 2 } else { 1 };
    println!(
        "created {n_svc} Services + {} EndpointSlices of {n_eps} in {} ({:.0} objects/s)",
        if n_eps > 0 { n_svc } else { 0 },
        secs(created),
        objects as f64 / created.as_secs_f64()
    );
    let settled = settle(&[pid]);
    println!("settled {} after the last create", secs(settled));
    mem_rows.push(MemRow {
        what: format!("`portico up`, {n_svc} Services x {n_eps} endpoints (just created)"),
        m: mem(pid),
    });

    let mut full = vec![];
    for _ in 0..repeat {
        assert!(c.interrupt(), "portico up did not end on Ctrl-C:\n{}", c.log());
        full.push(next(&mut c));
    }
    println!("restarts, {n_svc} Services in the store: {}", describe(&full));
    let pid = c.pid().unwrap();
    settle(&[pid]);
    mem_rows.push(MemRow {
        what: format!("`portico up`, {n_svc} Services x {n_eps} endpoints (after a restart)"),
        m: mem(pid),
    });

    // The pods.
    let t = Instant::now();
    c.apply(&deployment("demo", n_pods, true));
    let all_running = eventually(Duration::from_secs(300), || running(&c, "demo") >= n_pods);
    assert!(all_running, "{}/{n_pods} pods Running after 300 s:\n{}", running(&c, "demo"), c.log());
    let pods_running = t.elapsed();
    println!("{n_pods} pods of a Deployment Running {} after the apply", secs(pods_running));
    settle(&[pid]);
    std::thread::sleep(Duration::from_secs(2));
    let up_with_pods = mem(pid);
    let (n_ctr, shims, ctrs, a_shim, a_ctr) = pod_processes(&c, "demo");
    let mut notes = vec![
        breakdown_line("`portico up`", Some(pid)),
        breakdown_line("one `portico shim` supervisor", a_shim),
        breakdown_line("one demo pod process", a_ctr),
        environ_line(a_ctr),
    ];
    mem_rows.push(MemRow { what: format!("`portico up`, {n_svc} Services + {n_pods} running pods"), m: up_with_pods });
    mem_rows.push(MemRow { what: format!("`portico shim` supervisors ({n_ctr}), sum"), m: shims });
    mem_rows.push(MemRow { what: format!("pod processes ({n_ctr} demo servers), sum"), m: ctrs });
    // A few more pods with service links off, to tell the pods' own cost from that of the
    // Services' environment variables.
    let n_quiet = env_usize("BENCH_NOLINK_PODS", 10);
    let mut quiet = None;
    if n_quiet > 0 {
        c.apply(&deployment("quiet", n_quiet, false));
        let ok = eventually(Duration::from_secs(120), || running(&c, "quiet") >= n_quiet);
        assert!(ok, "{}/{n_quiet} quiet pods Running:\n{}", running(&c, "quiet"), c.log());
        settle(&[pid]);
        let (n, shims, ctrs, a_shim, a_ctr) = pod_processes(&c, "quiet");
        notes.push(breakdown_line("one `portico shim` supervisor, service links off", a_shim));
        notes.push(environ_line(a_ctr).replace("one demo pod process's", "with links off, a pod process's"));
        quiet = Some((n, shims, ctrs));
    }
    keep_logs(&c, "one-node");
    drop(c);

    // --- `portico up --nodes 3`. -------------------------------------------------------------
    let mut nodes_starts = vec![];
    let mut nodes_mem: Option<(Mem, Mem, usize)> = None;
    if nodes > 1 {
        let Some(mut c) = Cluster::new("upbench3", &[]) else { return };
        c.nodes = nodes;
        for i in 1..=repeat as u32 {
            if i > 1 {
                assert!(c.interrupt(), "portico up --nodes did not end on Ctrl-C:\n{}", c.log());
            }
            nodes_starts.push(timed_spawn(&mut c, i));
        }
        println!("portico up --nodes {nodes}: {}", describe(&nodes_starts));
        let names: Vec<String> = (1..=nodes).map(|i| format!("node-{i}")).collect();
        let agents: Vec<u32> = names.iter().filter_map(|n| c.local_agent_pid(n)).map(|p| p as u32).collect();
        let up = c.pid().unwrap();
        let mut all = agents.clone();
        all.push(up);
        settle(&all);
        std::thread::sleep(Duration::from_secs(2));
        let agents_mem = agents.iter().fold(Mem::default(), |acc, p| acc + mem(*p));
        notes.push(breakdown_line("one idle `portico agent` of --nodes", agents.first().copied()));
        nodes_mem = Some((mem(up), agents_mem, agents.len()));
        keep_logs(&c, "nodes");
        drop(c);
    }

    // --- Report. ------------------------------------------------------------------------------
    println!("\n### Start to ready (spawn -> \"Portico is up\" in the log)\n");
    println!("| case | median | runs | printed by portico up |");
    println!("|---|---|---|---|");
    let row = |what: &str, v: &[Start]| {
        let seen: Vec<String> = v.iter().map(|s| format!("{:.2}", s.seen.as_secs_f64())).collect();
        let printed: Vec<String> =
            v.iter().map(|s| s.printed.map(|p| format!("{p:.1}")).unwrap_or_else(|| "?".into())).collect();
        println!(
            "| {what} | {} | {} s | {} s |",
            secs(median(v.iter().map(|s| s.seen).collect())),
            seen.join(", "),
            printed.join(", ")
        );
    };
    row("first start, empty data dir", &[first]);
    row("restart, empty store", &empty);
    row(&format!("restart, {n_svc} Services x {n_eps} endpoints in the store"), &full);
    if !nodes_starts.is_empty() {
        row(&format!("`portico up --nodes {nodes}` (first, then restarts: nodes made anew)"), &nodes_starts);
    }

    println!("\n### Resident memory (MiB)\n");
    println!("| process | RSS | anon | file | PSS |");
    println!("|---|---|---|---|---|");
    for r in &mem_rows {
        println!("| {} | {} | {} | {} | {} |", r.what, mib(r.m.rss), mib(r.m.anon), mib(r.m.file), mib(r.m.pss));
    }
    if let Some((up, agents, n)) = nodes_mem {
        println!(
            "| `portico up --nodes {nodes}` (control plane), idle | {} | {} | {} | {} |",
            mib(up.rss),
            mib(up.anon),
            mib(up.file),
            mib(up.pss)
        );
        println!(
            "| its {n} `portico agent` processes (agent + proxy each), idle, sum | {} | {} | {} | {} |",
            mib(agents.rss),
            mib(agents.anon),
            mib(agents.file),
            mib(agents.pss)
        );
        let t = up + agents;
        println!(
            "| `portico up --nodes {nodes}`, all Portico processes | {} | {} | {} | {} |",
            mib(t.rss),
            mib(t.anon),
            mib(t.file),
            mib(t.pss)
        );
    }
    let per_pod = shims + ctrs;
    let n = n_ctr.max(1) as f64;
    println!(
        "\nPer running pod (supervisor + pod process): RSS {:.2} MiB, PSS {:.2} MiB ({} pods; supervisors {:.2} / {:.2}, pod processes {:.2} / {:.2} MiB RSS / PSS each).",
        per_pod.rss as f64 / 1024.0 / n,
        per_pod.pss as f64 / 1024.0 / n,
        n_ctr,
        shims.rss as f64 / 1024.0 / n,
        shims.pss as f64 / 1024.0 / n,
        ctrs.rss as f64 / 1024.0 / n,
        ctrs.pss as f64 / 1024.0 / n,
    );

    if let Some((q, qs, qc)) = quiet {
        let qn = q.max(1) as f64;
        println!(
            "With enableServiceLinks: false ({q} more pods, no Service variables in their environment): RSS {:.2} MiB, PSS {:.2} MiB per pod (supervisors {:.2} / {:.2}, pod processes {:.2} / {:.2}).",
            (qs + qc).rss as f64 / 1024.0 / qn,
            (qs + qc).pss as f64 / 1024.0 / qn,
            qs.rss as f64 / 1024.0 / qn,
            qs.pss as f64 / 1024.0 / qn,
            qc.rss as f64 / 1024.0 / qn,
            qc.pss as f64 / 1024.0 / qn,
        );
    }
    println!(
        "\nWhere the memory is (at the {n_pods}-pod point; anon = heap, file = the mapped binary and libraries):\n"
    );
    for line in &notes {
        println!("{line}");
    }

    println!("\n### Against the goal and k3s's published figures\n");
    let own_rss = up_with_pods.rss as f64 / 1024.0;
    let own_pss = up_with_pods.pss as f64 / 1024.0;
    println!(
        "Portico's own process with {n_svc} Services x {n_eps} endpoints and {n_pods} pods: {own_rss:.1} MiB RSS ({own_pss:.1} PSS); goal {GOAL_MIB:.0} MiB: {}.",
        if own_rss <= GOAL_MIB { "met" } else { "NOT met" }
    );
    println!(
        "k3s server with a workload, Min RAM with Kine/SQLite (docs.k3s.io/reference/resource-profiling): {K3S_SERVER_WITH_WORKLOAD_MIB:.0} M -> Portico uses {:.3}x ({:.0}x less)",
        own_rss / K3S_SERVER_WITH_WORKLOAD_MIB,
        K3S_SERVER_WITH_WORKLOAD_MIB / own_rss
    );
    println!(
        "k3s server minimum RAM (docs.k3s.io/installation/requirements): 2 GB -> {:.3}x",
        own_rss / K3S_SERVER_MIN_RAM_MIB
    );
    if let Some((_, agents, n)) = nodes_mem {
        let per_agent = agents.rss as f64 / 1024.0 / n.max(1) as f64;
        println!(
            "k3s agent (resource profiling): {K3S_AGENT_MIB:.0} M -> a `portico agent` idle, {per_agent:.1} MiB RSS: {:.3}x",
            per_agent / K3S_AGENT_MIB
        );
    }
    println!("\nWall time of the whole run: {}; load average {} at the end.", secs(wall.elapsed()), loadavg());
}

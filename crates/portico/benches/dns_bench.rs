//! Cluster DNS benchmark (a harness, not a test). Loads BENCH_SERVICES (default 10,000)
//! ClusterIP Services with BENCH_ENDPOINTS (default 10) endpoints each through the API, starts
//! `portico dns` against it, and measures with dnsperf, in the same run and on the same
//! names, Portico and Unbound serving those names from memory (`local-data`):
//!
//! - cluster names (`s<i>.bench.svc.cluster.local A`);
//! - forwarded names (`f<i>.example.test A`): Portico forwards them to that same Unbound and
//!   answers from its cache after one warm-up pass; Unbound answers them from local-data.
//!
//! Each server gets BENCH_THREADS (default 1) threads, dnsperf one: on this 2-core machine
//! that gives every side a core. Throughput is the median of BENCH_ROUNDS (3) runs of
//! BENCH_SECONDS (10) at full speed, the servers taking turns; p99 comes from a rate-limited
//! run (BENCH_P99_QPS, default 20,000/s) with dnsperf's per-query latencies.
//! Also reported: zone sync time and resident memory with everything loaded.
//!
//! Run: `cargo bench -p portico --bench dns_bench` (needs dnsperf and unbound from Debian).

#[path = "../tests/common/mod.rs"]
mod common;

use common::bench::{env_usize, rss_kib};

use common::dns::{free_tcp_port, free_udp_tcp_port, http_get};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NS: &str = "bench";

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The k-th endpoint address (data only: nothing is sent to it).
fn endpoint_ip(k: usize) -> String {
    format!("10.{}.{}.{}", 244 + (k >> 16), (k >> 8) & 255, k & 255)
}

async fn load(client: &kube::Client, services: usize, per_service: usize) {
    let svcs: Api<Service> = Api::namespaced(client.clone(), NS);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    futures::stream::iter(0..services)
        .for_each_concurrent(32, |i| {
            let (svcs, slices) = (svcs.clone(), slices.clone());
            async move {
                let svc = serde_json::from_value(json!({
                    "metadata": {"name": format!("s{i}")},
                    "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
                }))
                .unwrap();
                svcs.create(&PostParams::default(), &svc).await.expect("create Service");
                let endpoints: Vec<_> = (0..per_service)
                    .map(|j| json!({"addresses": [endpoint_ip(i * per_service + j)], "conditions": {"ready": true}}))
                    .collect();
                let slice = serde_json::from_value(json!({
                    "metadata": {"name": format!("s{i}-1"), "labels": {"kubernetes.io/service-name": format!("s{i}")}},
                    "addressType": "IPv4",
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                    "endpoints": endpoints
                }))
                .unwrap();
                slices.create(&PostParams::default(), &slice).await.expect("create EndpointSlice");
            }
        })
        .await;
}

fn zone_objects(metrics: SocketAddr) -> (u64, u64) {
    let body = http_get(metrics, "/metrics").1;
    let get = |kind: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("portico_dns_zone_objects{{kind=\"{kind}\"}} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("services"), get("endpoints"))
}

struct Perf {
    qps: f64,
    avg_ms: f64,
    lost: String,
}

fn dnsperf(addr: SocketAddr, file: &std::path::Path, seconds: u32) -> Perf {
    let out = Command::new("dnsperf")
        .args(["-s", &addr.ip().to_string(), "-p", &addr.port().to_string(), "-d", file.to_str().unwrap()])
        .args(["-l", &seconds.to_string(), "-c", "4", "-T", "1", "-q", "256"])
        .output()
        .expect("dnsperf is installed (apt-get install dnsperf)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |key: &str| text.lines().find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_owned()));
    let qps = field("Queries per second:").and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let avg_ms = field("Average Latency (s):")
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|s| s * 1000.0)
        .unwrap_or(0.0);
    let lost = field("Queries lost:").unwrap_or_default();
    Perf { qps, avg_ms, lost }
}

/// p50/p99 in ms from per-query latencies at a fixed rate.
fn latency(addr: SocketAddr, file: &std::path::Path, qps: usize) -> (f64, f64) {
    let out = Command::new("dnsperf")
        .args(["-s", &addr.ip().to_string(), "-p", &addr.port().to_string(), "-d", file.to_str().unwrap()])
        .args(["-l", "3", "-c", "4", "-T", "1", "-Q", &qps.to_string(), "-v"])
        .output()
        .expect("dnsperf");
    let mut lat: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("> "))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pick = |p: f64| lat.get(((lat.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(0.0) * 1000.0;
    (pick(0.5), pick(0.99))
}

fn wait_answering(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if common::dns::try_ask(addr, "example.test", dns::wire::rtype::SOA, false).is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{addr} never answered");
}

#[tokio::main]
async fn main() {
    let services = env_usize("BENCH_SERVICES", 10_000);
    let per_service = env_usize("BENCH_ENDPOINTS", 10);
    let threads = env_usize("BENCH_THREADS", 1);
    let p99_qps = env_usize("BENCH_P99_QPS", 20_000);
    let rounds = env_usize("BENCH_ROUNDS", 3).max(1);
    let seconds = env_usize("BENCH_SECONDS", 10) as u32;
    let forwarded = 1000;
    println!("dns_bench: {services} Services x {per_service} endpoints, {threads} server thread(s) each");

    let server = common::Server::start();
    let client = server.client().await;
    server.kubectl_ok(&["create", "namespace", NS]);
    let t = Instant::now();
    load(&client, services, per_service).await;
    println!("  loaded through the API in {:.1} s", t.elapsed().as_secs_f64());

    let work = server.data_dir().join("dns-bench");
    std::fs::create_dir_all(&work).unwrap();
    // Unbound: the peer for both name sets, and Portico's upstream for example.test.
    let svcs: Api<Service> = Api::namespaced(client.clone(), NS);
    let list = svcs.list(&ListParams::default()).await.unwrap();
    let mut conf = String::new();
    let ub_port = free_udp_tcp_port();
    conf.push_str(&format!(
        "server:\n  interface: 127.0.0.1\n  port: {ub_port}\n  do-daemonize: no\n  chroot: \"\"\n  username: \"\"\n  directory: \"{}\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  num-threads: {threads}\n  so-reuseport: yes\n  access-control: 127.0.0.0/8 allow\n  do-ip6: no\n  local-zone: \"cluster.local.\" static\n  local-zone: \"example.test.\" static\n",
        work.display()
    ));
    let mut cluster_queries = String::new();
    for s in &list.items {
        let name = s.metadata.name.clone().unwrap();
        let ip = s.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
        conf.push_str(&format!("  local-data: \"{name}.{NS}.svc.cluster.local. 5 IN A {ip}\"\n"));
        cluster_queries.push_str(&format!("{name}.{NS}.svc.cluster.local A\n"));
    }
    let mut fwd_queries = String::new();
    for i in 0..forwarded {
        conf.push_str(&format!("  local-data: \"f{i}.example.test. 300 IN A 192.0.2.{}\"\n", i % 250 + 1));
        fwd_queries.push_str(&format!("f{i}.example.test A\n"));
    }
    let conf_path = work.join("unbound.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let (cluster_file, fwd_file) = (work.join("cluster.txt"), work.join("forwarded.txt"));
    std::fs::write(&cluster_file, cluster_queries).unwrap();
    std::fs::write(&fwd_file, fwd_queries).unwrap();
    let unbound = Proc(
        Command::new("unbound")
            .args(["-d", "-c", conf_path.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unbound is installed (apt-get install unbound)"),
    );
    let ub: SocketAddr = ([127, 0, 0, 1], ub_port).into();
    wait_answering(ub);

    let dns_addr: SocketAddr = ([127, 0, 0, 1], free_udp_tcp_port()).into();
    let http: SocketAddr = ([127, 0, 0, 1], free_tcp_port()).into();
    let t = Instant::now();
    let portico = Proc(
        Command::new(env!("CARGO_BIN_EXE_portico"))
            .args(["dns", "--kubeconfig", server.kubeconfig().to_str().unwrap()])
            .args(["--listen", &dns_addr.to_string(), "--upstream", &ub.to_string()])
            .args([
                "--udp-sockets",
                &threads.to_string(),
                "--health",
                "",
                "--ready",
                "",
                "--metrics",
                &http.to_string(),
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let want = (services as u64, (services * per_service) as u64);
    while zone_objects(http).0 < want.0 + 1 || zone_objects(http).1 < want.1 {
        assert!(t.elapsed() < Duration::from_secs(300), "zone never loaded: {:?}", zone_objects(http));
        std::thread::sleep(Duration::from_millis(20));
    }
    let sync = t.elapsed();
    wait_answering(dns_addr);
    let portico_rss = rss_kib(portico.0.id());
    println!(
        "  portico dns: zone of {} Services / {} endpoints loaded in {:.2} s, RSS {:.1} MiB",
        want.0,
        want.1,
        sync.as_secs_f64(),
        portico_rss as f64 / 1024.0
    );
    println!(
        "  unbound with the same {} names as local-data: RSS {:.1} MiB",
        services + forwarded,
        rss_kib(unbound.0.id()) as f64 / 1024.0
    );

    // Warm Portico's cache with one pass over the forwarded names.
    let _ = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &dns_addr.port().to_string(), "-d", fwd_file.to_str().unwrap(), "-n", "1"])
        .output();

    println!();
    println!("| names | server | qps | avg latency | p50 / p99 at {p99_qps} qps | lost |");
    println!("|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for (label, file) in [("cluster", &cluster_file), ("forwarded (cached)", &fwd_file)] {
        // Alternate the two servers for `rounds` runs each and keep each one's median run, so
        // a passing disturbance on the machine hits both alike.
        let mut runs: [Vec<Perf>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (i, addr) in [dns_addr, ub].into_iter().enumerate() {
                runs[i].push(dnsperf(addr, file, seconds));
            }
        }
        let mut qps = Vec::new();
        for (i, (who, addr)) in [("portico", dns_addr), ("unbound", ub)].into_iter().enumerate() {
            runs[i].sort_by(|a, b| a.qps.partial_cmp(&b.qps).unwrap());
            let all: Vec<String> = runs[i].iter().map(|p| format!("{:.0}", p.qps)).collect();
            let p = &runs[i][runs[i].len() / 2];
            let (p50, p99) = latency(addr, file, p99_qps);
            println!(
                "| {label} | {who} | {:.0} (runs: {}) | {:.3} ms | {p50:.3} / {p99:.3} ms | {} |",
                p.qps,
                all.join(", "),
                p.avg_ms,
                p.lost
            );
            qps.push(p.qps);
        }
        ratios.push((label, qps[0] / qps[1].max(1.0)));
    }
    println!();
    for (label, r) in ratios {
        println!("  {label}: portico / unbound throughput = {r:.2}x");
    }
    println!("  portico dns RSS after the runs: {:.1} MiB", rss_kib(portico.0.id()) as f64 / 1024.0);
}

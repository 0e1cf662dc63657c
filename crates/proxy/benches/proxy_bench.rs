//! Service proxy benchmark (a harness, not a test), in a lab namespace. As root:
//! `cargo bench -p proxy --bench proxy_bench`.
//!
//! - **nftables sync** at PROXY_BENCH_SCALES (default 100,1000,10000) Services x 10 endpoints:
//!   a full sync, one Service added, one endpoint changed; each timed from rendering to `nft -f`
//!   returning. The peer is kube-proxy's nftables layout for the same Services, rendered as
//!   `pkg/proxy/nftables/proxier.go` builds it (a `service-ips` verdict map, a chain per
//!   service port with `numgen ... vmap` into a chain per endpoint that DNATs) and loaded with
//!   `nft -f` in the same namespace, in the same run; its one-Service and one-endpoint changes
//!   are the transactions kube-proxy sends (new chains and rules, the service chain flushed and
//!   rewritten, the old endpoint chain deleted).
//! - **iptables sync** at PROXY_BENCH_IPTABLES_SCALES (default 100,1000): kube-proxy's
//!   iptables layout (Portico renders exactly that) through `iptables-restore --noflush`: full
//!   and one Service added (a partial restore).
//! - **first-packet latency**: TCP connects (SYN to SYN-ACK through DNAT) from the node to a
//!   ClusterIP whose endpoint is a pod, with 10 and with 10,000 Services in the table.
//! - **userspace and DNAT throughput** (when `wrk` and `haproxy` are installed): `wrk` from an
//!   external client namespace against (a) the userspace engine, (b) HAProxy in TCP mode with
//!   the same backends, (c) a NodePort DNATed by the nftables mode, (d) the backend pods
//!   directly. Backends are small HTTP servers in two pod namespaces.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::net::IpFamily;
use lab::{Lab, Netns};
use proxy::model::{Endpoint, Port, Protocol, Service, ServiceKey, ServiceState, Snapshot};
use proxy::nft::render::{Config, Mode};
use proxy::nft::state::Table;

fn scales(var: &str, default: &str) -> Vec<usize> {
    std::env::var(var).unwrap_or_else(|_| default.into()).split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

fn vip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + 16 + i as u32)
}

fn pod_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 244, 0, 0)) + 2 + i as u32)
}

fn state(i: usize, endpoints: Vec<Ipv4Addr>) -> ServiceState {
    let service = Service {
        key: ServiceKey::new("bench", format!("svc-{i}")),
        cluster_ips: vec![IpAddr::V4(vip(i))],
        external_ips: vec![],
        load_balancer_ips: vec![],
        ports: vec![Port { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port: None }],
        affinity_timeout: None,
        external_local: false,
        internal_local: false,
        health_check_node_port: None,
        source_ranges: vec![],
    };
    let eps = endpoints
        .into_iter()
        .map(|ip| Endpoint {
            ip: IpAddr::V4(ip),
            port: 8080,
            ready: true,
            serving: true,
            terminating: false,
            // On other nodes, as in a cluster big enough for 10,000 Services (every endpoint
            // on this node would also put 100,000 pods in its hairpin set).
            node: Some("n2".into()),
        })
        .collect();
    ServiceState { service, endpoints: BTreeMap::from([("http".to_string(), eps)]) }
}

fn snapshot(n: usize) -> Snapshot {
    (0..n)
        .map(|i| {
            let s = state(i, (0..10).map(|e| pod_ip(i * 10 + e)).collect());
            (s.service.key.clone(), Arc::new(s))
        })
        .collect()
}

fn config() -> Config {
    Config {
        family: IpFamily::V4,
        node_name: "n1".into(),
        nodeport_ips: vec!["198.51.100.1".parse().unwrap()],
        cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
        service_cidr: Some("10.96.0.0/12".parse().unwrap()),
        mode: Mode::Kernel,
    }
}

fn nft(lab: &Lab, ns: &impl Netns, text: String) -> Duration {
    let t = Instant::now();
    lab.in_ns(ns, move || proxy::nft::apply::run(&text)).unwrap().unwrap_or_else(|e| panic!("{e}"));
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

// ---- kube-proxy's nftables layout (the peer) ----

fn kp_hash(s: &str) -> String {
    // kube-proxy: base32(sha256(...))[:8]; any stable 8 characters cost the same.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    format!("{:08X}", h as u32)
}

fn kp_service_chain(i: usize) -> String {
    let id = format!("bench/svc-{i}/tcp/http");
    format!("service-{}-{id}", kp_hash(&id))
}

fn kp_endpoint_chain(i: usize, ep: Ipv4Addr) -> String {
    let id = format!("bench/svc-{i}/tcp/http__{ep}/8080");
    format!("endpoint-{}-{id}", kp_hash(&id))
}

/// Chains and rules of one service port, as `add` commands (kube-proxy's partial sync form).
fn kp_service(out: &mut String, i: usize, eps: &[Ipv4Addr]) {
    let svc = kp_service_chain(i);
    let _ = writeln!(out, "add chain ip kube-proxy {svc}");
    let _ = writeln!(out, "flush chain ip kube-proxy {svc}");
    let _ = writeln!(
        out,
        "add rule ip kube-proxy {svc} ip daddr {} tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
        vip(i)
    );
    let vmap: Vec<String> =
        eps.iter().enumerate().map(|(n, ep)| format!("{n} : goto {}", kp_endpoint_chain(i, *ep))).collect();
    for ep in eps {
        let c = kp_endpoint_chain(i, *ep);
        let _ = writeln!(out, "add chain ip kube-proxy {c}");
        let _ = writeln!(out, "flush chain ip kube-proxy {c}");
        let _ = writeln!(out, "add rule ip kube-proxy {c} ip saddr {ep} jump mark-for-masquerade");
        let _ = writeln!(out, "add rule ip kube-proxy {c} meta l4proto tcp dnat to {ep}:8080");
    }
    let _ =
        writeln!(out, "add rule ip kube-proxy {svc} numgen random mod {} vmap {{ {} }}", eps.len(), vmap.join(", "));
    let _ = writeln!(out, "add element ip kube-proxy service-ips {{ {} . tcp . 80 : goto {svc} }}", vip(i));
    let _ = writeln!(out, "add element ip kube-proxy cluster-ips {{ {} }}", vip(i));
}

fn kp_full(n: usize) -> String {
    let mut t = String::from(
        "add table ip kube-proxy\ndelete table ip kube-proxy\ntable ip kube-proxy {\n\
         \tmap service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }\n\
         \tset cluster-ips { type ipv4_addr; }\n\
         \tchain mark-for-masquerade { meta mark set meta mark | 0x4000; }\n\
         \tchain services { ip daddr . meta l4proto . th dport vmap @service-ips; }\n\
         \tchain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; jump services; }\n\
         \tchain nat-output { type nat hook output priority -100; policy accept; jump services; }\n}\n",
    );
    for i in 0..n {
        let eps: Vec<Ipv4Addr> = (0..10).map(|e| pod_ip(i * 10 + e)).collect();
        kp_service(&mut t, i, &eps);
    }
    t
}

fn kp_delete() -> String {
    "add table ip kube-proxy\ndelete table ip kube-proxy\n".into()
}

// ---- sections ----

fn nft_sync(lab: &Lab, node: &lab::Node, report: &mut Vec<String>) {
    for n in scales("PROXY_BENCH_SCALES", "100,1000,10000") {
        let snap = snapshot(n);
        let none = |_: &ServiceKey, _: &Port| None;
        let mut table = Table::new(config());
        let t = Instant::now();
        let text = table.full(&snap, &none);
        let render = t.elapsed();
        let full = render + nft(lab, node, text);

        // Five of each change, the median reported.
        const REPS: usize = 5;
        let mut current = snap.clone();
        let mut adds = vec![];
        for r in 0..REPS {
            let i = n + r;
            let added = state(i, (0..10).map(|e| pod_ip(i * 10 + e)).collect());
            let key = added.service.key.clone();
            current.insert(key.clone(), Arc::new(added));
            let t = Instant::now();
            let text = table.partial(&current, [&key], &none);
            adds.push(t.elapsed() + nft(lab, node, text));
        }
        let mut changes = vec![];
        let key0 = ServiceKey::new("bench", "svc-0");
        let mut eps: Vec<Ipv4Addr> = (0..10).map(pod_ip).collect();
        for r in 0..REPS {
            eps[3] = Ipv4Addr::new(10, 245, 0, r as u8 + 1);
            current.insert(key0.clone(), Arc::new(state(0, eps.clone())));
            let t = Instant::now();
            let text = table.partial(&current, [&key0], &none);
            changes.push(t.elapsed() + nft(lab, node, text));
        }
        let add_one = median(adds);
        let change_ep = median(changes);
        nft(lab, node, proxy::nft::render::delete_table(&config()));

        // The peer, in the same namespace.
        let t = Instant::now();
        let text = kp_full(n);
        let kp_full_t = t.elapsed() + nft(lab, node, text);
        let mut kp_adds = vec![];
        for r in 0..REPS {
            let i = n + r;
            let mut text = String::new();
            kp_service(&mut text, i, &(0..10).map(|e| pod_ip(i * 10 + e)).collect::<Vec<_>>());
            kp_adds.push(nft(lab, node, text));
        }
        let mut kp_changes = vec![];
        let mut eps: Vec<Ipv4Addr> = (0..10).map(pod_ip).collect();
        for r in 0..REPS {
            let old = eps[3];
            eps[3] = Ipv4Addr::new(10, 245, 0, r as u8 + 1);
            let mut text = String::new();
            kp_service(&mut text, 0, &eps);
            let _ = writeln!(text, "delete chain ip kube-proxy {}", kp_endpoint_chain(0, old));
            kp_changes.push(nft(lab, node, text));
        }
        let kp_add = median(kp_adds);
        let kp_change = median(kp_changes);
        nft(lab, node, kp_delete());

        let line = format!(
            "nftables {n:>6} Services x 10: full {} (kube-proxy layout {}, {:.1}x faster) | add one Service {} \
             (kube-proxy {}, {:.1}x) | change one endpoint {} (kube-proxy {}, {:.1}x)",
            ms(full),
            ms(kp_full_t),
            kp_full_t.as_secs_f64() / full.as_secs_f64(),
            ms(add_one),
            ms(kp_add),
            kp_add.as_secs_f64() / add_one.as_secs_f64(),
            ms(change_ep),
            ms(kp_change),
            kp_change.as_secs_f64() / change_ep.as_secs_f64(),
        );
        println!("{line}");
        report.push(line);
    }
}

fn iptables_sync(lab: &Lab, node: &lab::Node, report: &mut Vec<String>) {
    use proxy::iptables;
    for n in scales("PROXY_BENCH_IPTABLES_SCALES", "100,1000") {
        let snap = snapshot(n);
        let config = iptables::Config {
            node_name: "n1".into(),
            node_ips: vec!["198.51.100.1".parse().unwrap()],
            cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
            service_cidr: Some("10.96.0.0/12".parse().unwrap()),
            masquerade_bit: 14,
            family: IpFamily::V4,
        };
        let apply = |text: String| {
            let t = Instant::now();
            lab.in_ns(node, move || iptables::apply(&text, IpFamily::V4)).unwrap().unwrap();
            t.elapsed()
        };
        let t = Instant::now();
        let full = iptables::render_sync(&snap, &config, None, &Default::default());
        let full_t = t.elapsed() + apply(full.text);
        let mut grown = snap.clone();
        let added = state(n, (0..10).map(|e| pod_ip(n * 10 + e)).collect());
        let key = added.service.key.clone();
        grown.insert(key.clone(), Arc::new(added));
        let t = Instant::now();
        let partial = iptables::render_partial(&grown, &config, &[key].into(), &full.active_chains);
        let add_t = t.elapsed() + apply(partial.text);
        lab.in_ns(node, || iptables::cleanup(IpFamily::V4)).unwrap().unwrap();
        let line = format!(
            "iptables {n:>6} Services x 10 (kube-proxy's layout, iptables-restore): full {} | add one Service {}",
            ms(full_t),
            ms(add_t)
        );
        println!("{line}");
        report.push(line);
    }
}

/// A tiny HTTP server for the throughput runs: answers every request on a kept-alive
/// connection with a fixed body. Runs in the calling thread's namespace, forever.
fn http_server(port: u16) {
    let listener = TcpListener::bind(("0.0.0.0", port)).unwrap();
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let mut conn = conn;
            let _ = conn.set_nodelay(true);
            let mut buf = [0u8; 4096];
            let mut pending = Vec::new();
            loop {
                let n = match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    pending.drain(..end + 4);
                    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nHello World!";
                    if conn.write_all(reply).is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// Runs `f` on a thread of its own inside the network namespace `ns` (for servers that live as
/// long as the benchmark; the lab deletes the namespace at the end either way).
fn spawn_in(ns: &impl Netns, f: impl FnOnce() + Send + 'static) {
    let path = format!("/run/netns/{}", ns.netns());
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on this thread only, with a namespace file descriptor we hold open.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}");
        f();
    });
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn first_packet(lab: &Lab, node: &lab::Node, pod: &lab::Pod, report: &mut Vec<String>) {
    let connects = 2000;
    let measure = |lab: &Lab| -> (Duration, Duration) {
        let to = SocketAddr::new(IpAddr::V4(vip(0)), 80);
        let mut times = lab
            .in_ns(node, move || {
                (0..connects)
                    .map(|_| {
                        let t = Instant::now();
                        let s = TcpStream::connect_timeout(&to, Duration::from_secs(2)).expect("connect through DNAT");
                        let d = t.elapsed();
                        drop(s);
                        d
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap();
        times.sort();
        (percentile(&times, 0.5), percentile(&times, 0.99))
    };
    let none = |_: &ServiceKey, _: &Port| None;
    let mut results = vec![];
    for n in [10, 10_000] {
        let mut snap = snapshot(n);
        let real = state(0, vec![pod.ip()]);
        snap.insert(real.service.key.clone(), Arc::new(real));
        let mut table = Table::new(config());
        nft(lab, node, table.full(&snap, &none));
        measure(lab); // warm up (ARP, caches)
        results.push((n, measure(lab)));
    }
    nft(lab, node, proxy::nft::render::delete_table(&config()));
    let ((_, (p50a, p99a)), (_, (p50b, p99b))) = (results[0], results[1]);
    let line = format!(
        "first packet (TCP connect through DNAT, {connects} connects): 10 Services p50 {:.0} us p99 {:.0} us | \
         10,000 Services p50 {:.0} us p99 {:.0} us | ratio p50 {:.2}, p99 {:.2}",
        p50a.as_secs_f64() * 1e6,
        p99a.as_secs_f64() * 1e6,
        p50b.as_secs_f64() * 1e6,
        p99b.as_secs_f64() * 1e6,
        p50b.as_secs_f64() / p50a.as_secs_f64(),
        p99b.as_secs_f64() / p99a.as_secs_f64(),
    );
    println!("{line}");
    report.push(line);
}

fn have(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// wrk's requests/s and p99 latency against `url` from `client`.
fn wrk(lab: &Lab, client: &lab::Client, url: &str) -> (f64, String) {
    let out = lab.exec(client, &["wrk", "-t", "2", "-c", "32", "-d", "5s", "--latency", url]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    let p99 = text
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    (rps, p99)
}

fn throughput(lab: &Lab, report: &mut Vec<String>) {
    if !have("wrk") || !have("haproxy") {
        let line = "throughput: skipped (needs wrk and haproxy: apt-get install wrk haproxy)".to_string();
        println!("{line}");
        report.push(line);
        return;
    }
    let lan = lab.switch("tlan", "198.51.100.0/24").unwrap();
    let node = lab.node("tn1", &lan).unwrap();
    let client = lab.client("tc", &lan).unwrap();
    let pods: Vec<lab::Pod> = (0..2).map(|i| lab.pod(&format!("tp{i}"), &node).unwrap()).collect();
    lab.route(&client, &node.pod_cidr().to_string(), IpAddr::V4(node.ip())).unwrap();
    for p in &pods {
        spawn_in(p, || http_server(8080));
    }
    std::thread::sleep(Duration::from_millis(300));
    let backends: Vec<SocketAddr> = pods.iter().map(|p| SocketAddr::new(IpAddr::V4(p.ip()), 8080)).collect();

    // (a) The userspace engine, on a runtime whose threads live in the node's namespace.
    let engine_port = {
        let (tx, rx) = std::sync::mpsc::channel();
        let backends2 = backends.clone();
        spawn_in(&node, move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let engine = proxy::userspace::Engine::new("0.0.0.0".parse().unwrap(), Duration::from_millis(250));
                let ports = engine
                    .update(vec![proxy::userspace::Frontend {
                        name: "bench/web:http".into(),
                        protocol: proxy::userspace::Protocol::Tcp,
                        backends: backends2,
                        affinity: None,
                    }])
                    .await
                    .unwrap();
                tx.send(*ports.values().next().unwrap()).unwrap();
                std::future::pending::<()>().await;
            });
        });
        rx.recv().unwrap()
    };
    // (b) HAProxy in TCP mode, round robin over the same backends.
    let cfg = format!(
        "global\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n\
         listen web\n  bind 0.0.0.0:18080\n  balance roundrobin\n{}",
        backends.iter().enumerate().map(|(i, b)| format!("  server b{i} {b}\n")).collect::<String>()
    );
    let cfg_path = std::env::temp_dir().join(format!("portico-bench-haproxy-{}.cfg", std::process::id()));
    std::fs::write(&cfg_path, cfg).unwrap();
    let mut cmd = std::process::Command::new("haproxy");
    cmd.arg("-f").arg(&cfg_path).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    lab.spawn(&node, cmd).unwrap();
    // (c) A NodePort DNATed by the nftables mode.
    let mut svc = state(0, pods.iter().map(|p| p.ip()).collect());
    svc.service.ports[0].node_port = Some(30080);
    let snap: Snapshot = [(svc.service.key.clone(), Arc::new(svc))].into();
    let mut c = config();
    c.nodeport_ips = vec![IpAddr::V4(node.ip())];
    c.cluster_cidr = Some(node.pod_cidr().to_string().parse().unwrap());
    let mut table = Table::new(c.clone());
    nft(lab, &node, table.full(&snap, &|_, _| None));
    std::thread::sleep(Duration::from_millis(500));

    let ip = node.ip();
    let runs = [
        ("userspace engine", format!("http://{ip}:{engine_port}/")),
        ("HAProxy (tcp mode)", format!("http://{ip}:18080/")),
        ("nftables NodePort (DNAT)", format!("http://{ip}:30080/")),
        ("direct to one pod", format!("http://{}:8080/", pods[0].ip())),
    ];
    let mut results = vec![];
    for (name, url) in &runs {
        let (rps, p99) = wrk(lab, &client, url);
        println!("  {name:<26} {rps:>10.0} req/s  p99 {p99}");
        results.push((name, rps, p99));
    }
    let _ = std::fs::remove_file(&cfg_path);
    let line = format!(
        "throughput (wrk -t2 -c32 -d5s from an external client): userspace {:.0} req/s p99 {} vs HAProxy {:.0} req/s p99 {} \
         (ratio {:.2}) | nftables DNAT {:.0} req/s p99 {} vs direct {:.0} req/s p99 {} (ratio {:.2})",
        results[0].1,
        results[0].2,
        results[1].1,
        results[1].2,
        results[0].1 / results[1].1,
        results[2].1,
        results[2].2,
        results[3].1,
        results[3].2,
        results[2].1 / results[3].1,
    );
    println!("{line}");
    report.push(line);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs nothing here.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some(lab) = Lab::new_or_skip("pxbench") else { return };
    let lan = lab.switch("lan", "198.51.100.0/24").unwrap();
    let node = lab.node("n1", &lan).unwrap();
    let pod = lab.pod("p1", &node).unwrap();
    lab.register("10.96.0.0/12").unwrap();
    lab.exec_ok(&node, &["ip", "route", "add", "10.96.0.0/12", "dev", "cbr0"]).unwrap();
    spawn_in(&pod, || http_server(8080));

    let mut report = vec![];
    let only = std::env::var("PROXY_BENCH_ONLY").unwrap_or_default();
    let wanted = |s: &str| only.is_empty() || only.split(',').any(|o| o == s);
    if wanted("nft") {
        nft_sync(&lab, &node, &mut report);
    }
    if wanted("iptables") {
        iptables_sync(&lab, &node, &mut report);
    }
    if wanted("first-packet") {
        first_packet(&lab, &node, &pod, &mut report);
    }
    if wanted("throughput") {
        throughput(&lab, &mut report);
    }
    println!("\n== summary");
    for l in report {
        println!("{l}");
    }
}

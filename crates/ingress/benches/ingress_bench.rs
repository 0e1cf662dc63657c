//! Ingress benchmark (a harness, not a test): `cargo bench -p ingress --bench ingress_bench`.
//! Needs `wrk` and `nginx` (apt-get install wrk nginx-light). Everything listens on 127.0.0.1.
//!
//! Portico's ingress data path (the same `server::serve` and `proxy::handle` that
//! `portico ingress` runs, with a configuration compiled from Ingress specs) against nginx
//! configured the way ingress-nginx configures it: the same 10 hosts x 5 paths, the same
//! forwarding headers, an upstream keep-alive pool, access logs off on both. One worker each:
//! Portico on a single-threaded tokio runtime, nginx with `worker_processes 1`. Both proxy to
//! the same backend (a small hyper server in this process). Cases: keep-alive and a new
//! connection per request (`Connection: close`), over HTTP and HTTPS (TLS 1.3, one ECDSA
//! certificate for both). `wrk` reports requests/s and the latency percentiles.
//!
//! Each proxy gets a core of its own (CPU 0; Portico's thread and nginx's worker are pinned to
//! it); wrk and the backend share CPU 1. Each case runs three times, alternating the servers,
//! and the median run is reported.
//!
//! BENCH_SECONDS (default 6) per run; BENCH_CASES (e.g. `1,3`) runs only those cases.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use ingress::annotations::Annotations;
use ingress::certs::{self, CertStore};
use ingress::config::{Config, Settings};
use ingress::metrics::Metrics;
use ingress::proxy::Shared;
use ingress::table::{IngressInput, IngressRef, Table};
use ingress::upstream::Upstream;

const HOSTS: usize = 10;
const PATHS: usize = 5;
/// The request every case sends: a host and path in the middle of the table.
const HOST: &str = "h5.example.com";
const PATH: &str = "/p3/item";

/// Pins the calling thread to one CPU.
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, filled by CPU_SET and read by the call.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn free_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

fn have(cmd: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {cmd}")]).output().is_ok_and(|o| o.status.success())
}

/// The backend both proxies use: HTTP/1.1 keep-alive, a small fixed answer.
fn start_backend() -> SocketAddr {
    let listener = free_listener();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        pin_to(1);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let _ = tcp.set_nodelay(true);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_req| async {
                        Ok::<_, Infallible>(hyper::Response::new(http_body_util::Full::new(Bytes::from_static(
                            b"hello from the backend\n",
                        ))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
    });
    addr
}

fn ingress_spec() -> serde_json::Value {
    let rules: Vec<serde_json::Value> = (0..HOSTS)
        .map(|h| {
            let paths: Vec<serde_json::Value> = (0..PATHS)
                .map(|p| {
                    serde_json::json!({"path": format!("/p{p}"), "pathType": "Prefix",
                        "backend": {"service": {"name": "backend", "port": {"number": 80}}}})
                })
                .collect();
            serde_json::json!({"host": format!("h{h}.example.com"), "http": {"paths": paths}})
        })
        .collect();
    serde_json::json!({"rules": rules})
}

/// Portico's ingress on one thread, with the configuration the controller would compile.
fn start_portico(http: TcpListener, https: TcpListener, backend: SocketAddr, crt: &str, key: &str) {
    let cert = certs::from_pem(crt.as_bytes(), key.as_bytes()).unwrap();
    std::thread::spawn(move || {
        pin_to(0);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let r = IngressRef { namespace: "default".into(), name: "bench".into() };
            let payload = Arc::new(Settings { ingress: r.clone(), annotations: Annotations::default() });
            let input = IngressInput {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                created: None,
                spec: serde_json::from_value(ingress_spec()).unwrap(),
                regex: false,
                payload,
            };
            let (table, problems) = Table::build(vec![input]);
            assert!(problems.is_empty(), "{problems:?}");
            let upstreams: HashMap<_, _> =
                table.backends().map(|b| (b.clone(), Arc::new(Upstream::new(vec![backend])))).collect();
            let mut store = CertStore::new(cert.clone());
            for h in 0..HOSTS {
                store.insert(&format!("h{h}.example.com"), cert.clone());
            }
            let store = Arc::new(store);
            let config = Config { table, upstreams, certs: store.clone() };
            let shared = Arc::new(Shared::new(config, Metrics::new().0));
            let acceptor = tokio_rustls::TlsAcceptor::from(ingress::tls::server_config(Arc::new(RwLock::new(store))));
            let listen = |l: TcpListener| {
                l.set_nonblocking(true).unwrap();
                tokio::net::TcpListener::from_std(l).unwrap()
            };
            tokio::spawn(ingress::server::serve(listen(http), None, shared.clone()));
            ingress::server::serve(listen(https), Some(acceptor), shared).await;
        });
    });
}

/// nginx as ingress-nginx configures a server per host and a location per path.
fn nginx_config(dir: &Path, http: u16, https: u16, backend: SocketAddr) -> String {
    let d = dir.display();
    let mut conf = format!(
        "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         keepalive_requests 10000;\n  ssl_protocols TLSv1.2 TLSv1.3;\n\
         upstream backend {{ server {backend}; keepalive 320; }}\n"
    );
    for h in 0..HOSTS {
        let _ = write!(
            conf,
            "  server {{\n    listen 127.0.0.1:{http};\n    listen 127.0.0.1:{https} ssl http2;\n\
             server_name h{h}.example.com;\n    ssl_certificate {d}/tls.crt;\n    ssl_certificate_key {d}/tls.key;\n"
        );
        for p in 0..PATHS {
            let _ = write!(
                conf,
                "    location /p{p} {{\n      proxy_pass http://backend;\n      proxy_http_version 1.1;\n\
                 proxy_set_header Connection \"\";\n      proxy_set_header Host $host;\n\
                 proxy_set_header X-Request-ID $request_id;\n      proxy_set_header X-Real-IP $remote_addr;\n\
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                 proxy_set_header X-Forwarded-Host $host;\n      proxy_set_header X-Forwarded-Port $server_port;\n\
                 proxy_set_header X-Forwarded-Proto $scheme;\n      proxy_set_header X-Forwarded-Scheme $scheme;\n\
                 proxy_set_header X-Scheme $scheme;\n      proxy_connect_timeout 5s;\n      proxy_read_timeout 60s;\n\
                 proxy_send_timeout 60s;\n      client_max_body_size 1m;\n    }}\n"
            );
        }
        conf.push_str("  }\n");
    }
    conf.push_str("}\n");
    conf
}

/// Ends nginx when the benchmark ends: SIGTERM to its process group (the master and its
/// workers, which a SIGKILLed master would leave behind), SIGKILL if it lingers.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let group = -(self.0.id() as libc::pid_t);
        // SAFETY: kill(2) on the process group this benchmark created for nginx.
        unsafe { libc::kill(group, libc::SIGTERM) };
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: as above; workers that outlived the master go too.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn start_nginx(dir: &Path, http: u16, https: u16, backend: SocketAddr) -> Nginx {
    std::fs::write(dir.join("nginx.conf"), nginx_config(dir, http, https, backend)).unwrap();
    let child = Command::new("taskset")
        .args([
            "-c",
            "0",
            "nginx",
            "-p",
            dir.to_str().unwrap(),
            "-c",
            dir.join("nginx.conf").to_str().unwrap(),
            "-e",
            "stderr",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("nginx starts");
    Nginx(child)
}

fn wait_answering(port: u16) {
    for _ in 0..100 {
        let ok = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--resolve"])
            .arg(format!("{HOST}:{port}:127.0.0.1"))
            .arg(format!("http://{HOST}:{port}{PATH}"))
            .output()
            .is_ok_and(|o| o.stdout == b"200");
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing answers 200 on port {port}");
}

#[derive(Debug, Clone, Copy)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// wrk's duration with unit ("512.00us", "1.20ms", "2.01s") in milliseconds.
fn millis(s: &str) -> f64 {
    let (num, factor) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (s, 1.0)
    };
    num.parse::<f64>().unwrap_or(f64::NAN) * factor
}

fn wrk(port: u16, tls: bool, close: bool, seconds: u64) -> Run {
    let scheme = if tls { "https" } else { "http" };
    // wrk connects to the URL's host: 127.0.0.1, with the Ingress host in the Host header (and
    // in SNI for HTTPS, which wrk takes from the URL: so the URL names the host, resolved by
    // /etc/hosts-free means: wrk's own resolver would fail, hence the IP and the header).
    let url = format!("{scheme}://127.0.0.1:{port}{PATH}");
    let mut cmd = Command::new("taskset");
    cmd.args([
        "-c",
        "1",
        "wrk",
        "-t",
        "1",
        "-c",
        if close { "16" } else { "64" },
        "-d",
        &format!("{seconds}s"),
        "--latency",
    ])
    .args(["-H", &format!("Host: {HOST}")]);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    let out = cmd.arg(&url).output().expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str, n: usize| -> Option<String> {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(n))
            .map(str::to_owned)
    };
    let errors = text
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .flat_map(|l| l.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u64>().ok()))
        .sum();
    Run {
        rps: field("Requests/sec:", 1).and_then(|v| v.parse().ok()).unwrap_or(0.0),
        p50_ms: field("50%", 1).map(|v| millis(&v)).unwrap_or(f64::NAN),
        p99_ms: field("99%", 1).map(|v| millis(&v)).unwrap_or(f64::NAN),
        errors,
    }
}

fn main() {
    if !have("wrk") || !have("nginx") {
        println!("ingress benchmark skipped: needs wrk and nginx (apt-get install wrk nginx-light)");
        return;
    }
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    let dir = tempfile::tempdir().unwrap();
    // One ECDSA P-256 certificate for both, as rcgen makes by default.
    let key = rcgen::KeyPair::generate().unwrap();
    let hosts: Vec<String> = (0..HOSTS).map(|h| format!("h{h}.example.com")).collect();
    let cert = rcgen::CertificateParams::new(hosts).unwrap().self_signed(&key).unwrap();
    let (crt_pem, key_pem) = (cert.pem(), key.serialize_pem());
    std::fs::write(dir.path().join("tls.crt"), &crt_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &key_pem).unwrap();

    let backend = start_backend();
    let (p_http, p_https) = (free_listener(), free_listener());
    let (portico_http, portico_https) = (p_http.local_addr().unwrap().port(), p_https.local_addr().unwrap().port());
    start_portico(p_http, p_https, backend, &crt_pem, &key_pem);
    let (nginx_http, nginx_https) = {
        let (a, b) = (free_listener(), free_listener());
        (a.local_addr().unwrap().port(), b.local_addr().unwrap().port())
    };
    let _nginx = start_nginx(dir.path(), nginx_http, nginx_https, backend);
    wait_answering(portico_http);
    wait_answering(nginx_http);

    println!("ingress: {HOSTS} hosts x {PATHS} paths, GET http(s)://{HOST}{PATH}, one worker each, {seconds}s per run");
    println!(
        "{:<28} {:>12} {:>9} {:>9} | {:>12} {:>9} {:>9} | {:>6}",
        "case", "portico r/s", "p50 ms", "p99 ms", "nginx r/s", "p50 ms", "p99 ms", "ratio"
    );
    let only: Vec<usize> = std::env::var("BENCH_CASES")
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_default();
    for (i, (name, tls, close)) in [
        ("HTTP keep-alive", false, false),
        ("HTTP new connection", false, true),
        ("HTTPS keep-alive", true, false),
        ("HTTPS new connection", true, true),
    ]
    .into_iter()
    .enumerate()
    {
        if !only.is_empty() && !only.contains(&(i + 1)) {
            continue;
        }
        let (pp, np) = if tls { (portico_https, nginx_https) } else { (portico_http, nginx_http) };
        let median = |mut runs: Vec<Run>| {
            runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
            runs[runs.len() / 2]
        };
        let (mut ps, mut ns) = (vec![], vec![]);
        for _ in 0..3 {
            ps.push(wrk(pp, tls, close, seconds));
            ns.push(wrk(np, tls, close, seconds));
        }
        let (p, n) = (median(ps), median(ns));
        println!(
            "{name:<28} {:>12.0} {:>9.2} {:>9.2} | {:>12.0} {:>9.2} {:>9.2} | {:>5.2}x{}",
            p.rps,
            p.p50_ms,
            p.p99_ms,
            n.rps,
            n.p50_ms,
            n.p99_ms,
            p.rps / n.rps,
            if p.errors + n.errors > 0 {
                format!("  (errors: portico {}, nginx {})", p.errors, n.errors)
            } else {
                String::new()
            }
        );
    }
}

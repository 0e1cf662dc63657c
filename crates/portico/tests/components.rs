//! The component runtime seen from outside: one watch per resource in `portico up`; the
//! controllers and the DNS, as separate API clients, ride out an API server crash (resuming
//! from their resourceVersion, relisting on 410) without duplicate writes; a kubeconfig that
//! cannot work ends a component in seconds with one line saying why.

mod common;

use common::Server;
use common::dns::{DnsProcess, FakeUpstream, ask, free_tcp_port, free_udp_tcp_port, http_get, summary};
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `apiserver_request_total` summed by (verb, resource).
fn requests(server: &Server) -> BTreeMap<(String, String), u64> {
    let metrics = server.kubectl_ok(&["get", "--raw", "/metrics"]);
    let mut out = BTreeMap::new();
    for line in metrics.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let label = |name: &str| {
            let start = line.find(&format!("{name}=\"")).map(|i| i + name.len() + 2)?;
            let len = line[start..].find('"')?;
            Some(line[start..start + len].to_owned())
        };
        let n: u64 = line.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
        *out.entry((label("verb").unwrap_or_default(), label("resource").unwrap_or_default())).or_default() += n;
    }
    out
}

fn watches(server: &Server) -> BTreeMap<String, u64> {
    requests(server).into_iter().filter(|((verb, _), _)| verb == "WATCH").map(|((_, r), n)| (r, n)).collect()
}

#[test]
fn portico_up_watches_each_resource_at_most_once() {
    let upstream = FakeUpstream::start();
    let dns: SocketAddr = ([127, 0, 0, 1], free_udp_tcp_port()).into();
    let http: SocketAddr = ([127, 0, 0, 1], free_tcp_port()).into();
    let (dns_s, http_s, upstream_s) = (dns.to_string(), http.to_string(), upstream.addr.to_string());
    let server = Server::start_command(
        "up",
        &[
            "--dns-listen",
            &dns_s,
            "--dns-upstream",
            &upstream_s,
            "--dns-health",
            &http_s,
            "--dns-ready",
            &http_s,
            "--dns-metrics",
            &http_s,
        ],
    );
    assert!(common::eventually(Duration::from_secs(20), || http_get(http, "/ready").0 == 200));
    // The controllers and the DNS have all synced; give any late watch a moment to show.
    std::thread::sleep(Duration::from_millis(500));
    let watches = watches(&server);
    for resource in ["services", "endpointslices", "pods", "nodes", "namespaces", "endpoints", "replicasets"] {
        assert_eq!(watches.get(resource), Some(&1), "{resource} watched once: {watches:?}");
    }
    let repeated: Vec<_> = watches.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "watched more than once: {repeated:?}");
}

/// A `portico controllers` process against a kubeconfig.
struct Controllers(Child);

impl Controllers {
    fn start(kubeconfig: &std::path::Path, log: &std::path::Path) -> Controllers {
        let child = Command::new(env!("CARGO_BIN_EXE_portico"))
            .args(["controllers", "--kubeconfig"])
            .arg(kubeconfig)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("spawn portico controllers");
        Controllers(child)
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {clusterIP: None, selector: {app: db}, ports: [{port: 5432}]}
"#;

fn pod_manifest(name: &str, app: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\nspec: {{containers: [{{name: c, image: x}}]}}\n"
    )
}

/// LIST requests for endpointslices this test made itself (kept apart from the components').
static OWN_SLICE_LISTS: AtomicU64 = AtomicU64::new(0);

/// (slice name, resourceVersion, ready addresses) of each slice of `service`.
async fn slices_of(api: &Api<EndpointSlice>, service: &str) -> Vec<(String, String, Vec<String>)> {
    OWN_SLICE_LISTS.fetch_add(1, Ordering::SeqCst);
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    let Ok(list) = api.list(&lp).await else { return vec![] };
    list.items
        .into_iter()
        .map(|s| {
            let mut ips: Vec<String> = s
                .endpoints
                .iter()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                .flat_map(|e| e.addresses.clone())
                .collect();
            ips.sort();
            (s.metadata.name.unwrap_or_default(), s.metadata.resource_version.unwrap_or_default(), ips)
        })
        .collect()
}

fn db_answers(dns: SocketAddr) -> Vec<String> {
    let mut a = summary(&ask(dns, "db.default.svc.cluster.local", 1, false)).answer;
    a.sort();
    a
}

async fn eventually_async<F: Future<Output = bool>>(timeout: Duration, mut f: impl FnMut() -> F) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn controllers_and_dns_ride_out_an_api_server_crash_without_duplicate_writes() {
    let mut server = Server::start_with(&["--no-controllers"]);
    let logs = server.data_dir().to_path_buf();
    let upstream = FakeUpstream::start();
    let mut controllers = Controllers::start(&server.kubeconfig(), &logs.join("controllers.log"));
    let dns = DnsProcess::start(&server.kubeconfig(), upstream.addr, &[], &logs.join("dns.log"));
    dns.wait_ready();

    server.apply_ok(SERVICES, &[]);
    for (name, app) in [("web-1", "web"), ("db-1", "db"), ("db-2", "db")] {
        server.apply_ok(&pod_manifest(name, app), &[]);
    }
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (name, ip) in [("web-1", "10.244.0.11"), ("db-1", "10.244.0.21"), ("db-2", "10.244.0.22")] {
        common::set_pod_status(&pods, name, ip, true).await;
    }
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    assert!(
        eventually_async(Duration::from_secs(20), || async {
            slices_of(&slices, "db").await.iter().map(|s| s.2.len()).sum::<usize>() == 2
                && slices_of(&slices, "web").await.iter().map(|s| s.2.len()).sum::<usize>() == 1
        })
        .await
    );
    let two = |ip| format!("db.default.svc.cluster.local. 5 IN A {ip}");
    assert!(common::eventually(Duration::from_secs(10), || db_answers(dns.addr).len() == 2));
    let web_before = slices_of(&slices, "web").await;
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let ready_addresses = |e: &Endpoints| e.subsets.iter().flatten().flat_map(|s| s.addresses.iter().flatten()).count();
    assert!(
        eventually_async(Duration::from_secs(20), || async {
            endpoints.get("web").await.is_ok_and(|e| ready_addresses(&e) == 1)
        })
        .await
    );
    let web_endpoints_rv = endpoints.get("web").await.unwrap().metadata.resource_version;

    // Crash 1: the store keeps its history, so every watch resumes from its resourceVersion.
    server.kill9();
    std::thread::sleep(Duration::from_secs(1));
    assert!(controllers.alive(), "controllers exited when the API went away");
    assert_eq!(db_answers(dns.addr), vec![two("10.244.0.21"), two("10.244.0.22")], "DNS answers from memory meanwhile");
    server.spawn();
    OWN_SLICE_LISTS.store(0, Ordering::SeqCst);
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    server.apply_ok(&pod_manifest("db-3", "db"), &[]);
    common::set_pod_status(&pods, "db-3", "10.244.0.23", true).await;
    assert!(
        eventually_async(Duration::from_secs(30), || async {
            let s = slices_of(&slices, "db").await;
            s.len() == 1 && s[0].2.len() == 3
        })
        .await,
        "the controllers saw the change after the restart: {:?}",
        slices_of(&slices, "db").await
    );
    assert!(common::eventually(Duration::from_secs(20), || db_answers(dns.addr).len() == 3), "DNS followed");
    let after = requests(&server);
    let lists = |resource: &str| after.get(&("LIST".to_owned(), resource.to_owned())).copied().unwrap_or(0);
    for resource in ["services", "pods", "namespaces", "endpoints", "nodes"] {
        assert_eq!(lists(resource), 0, "{resource} resumed without a relist");
    }
    assert_eq!(lists("endpointslices"), OWN_SLICE_LISTS.load(Ordering::SeqCst), "slices resumed without a relist");
    assert_eq!(slices_of(&slices, "web").await, web_before, "the untouched Service's slice was not rewritten");
    assert_eq!(endpoints.get("web").await.unwrap().metadata.resource_version, web_endpoints_rv);
    assert_eq!(after.get(&("POST".to_owned(), "endpointslices".to_owned())), None, "no slice created anew");

    // Crash 2: restarted with a history of one event, so every watch gets 410 Gone and relists.
    server.kill9();
    server.extra_args.extend(["--watch-history".to_owned(), "1".to_owned()]);
    server.spawn();
    OWN_SLICE_LISTS.store(0, Ordering::SeqCst);
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    pods.delete("db-1", &Default::default()).await.unwrap();
    assert!(
        eventually_async(Duration::from_secs(30), || async {
            let s = slices_of(&slices, "db").await;
            s.len() == 1 && s[0].2 == ["10.244.0.22", "10.244.0.23"]
        })
        .await,
        "the controllers relisted and saw the delete: {:?}",
        slices_of(&slices, "db").await
    );
    assert!(
        common::eventually(Duration::from_secs(20), || db_answers(dns.addr)
            == vec![two("10.244.0.22"), two("10.244.0.23")]),
        "DNS relisted and followed: {:?}",
        db_answers(dns.addr)
    );
    // A watch whose resourceVersion fell out of the one-event window got 410 and relisted: the
    // pods' last event (db-3's status) was followed by the controllers' writes, so theirs did.
    let after = requests(&server);
    assert!(after.contains_key(&("LIST".to_owned(), "pods".to_owned())), "pods relisted after 410: {after:?}");
    assert_eq!(slices_of(&slices, "web").await, web_before, "still not rewritten");
    assert_eq!(after.get(&("POST".to_owned(), "endpointslices".to_owned())), None, "no slice created anew");
    assert!(controllers.alive());
}

/// Runs `portico <args>` to its end (at most 20 s); (exit success, stderr lines, seconds).
fn run_to_end(args: &[&str]) -> (bool, Vec<String>, f64) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(args)
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("portico {args:?} still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&out.stderr).lines().map(str::to_owned).collect();
    (out.status.success(), lines, started.elapsed().as_secs_f64())
}

#[test]
fn unusable_kubeconfigs_end_a_component_in_seconds_with_one_line() {
    let server = Server::start_with(&["--no-controllers"]);
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(server.kubeconfig()).unwrap();
    let token = good.lines().find_map(|l| l.trim().strip_prefix("token: ")).unwrap().to_owned();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let bad_token = write("bad-token", &good.replace(&token, "not-the-token"));
    let missing = dir.path().join("missing").to_str().unwrap().to_owned();
    let garbage = write("garbage", "this: [is not a kubeconfig");
    let no_ca = write(
        "no-ca",
        &good
            .lines()
            .filter(|l| !l.trim_start().starts_with("certificate-authority-data"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let cases: [(&str, &str); 4] = [
        (&bad_token, "refuses these credentials: 401"),
        (&missing, "cannot use kubeconfig"),
        (&garbage, "cannot use kubeconfig"),
        (&no_ca, "cannot talk to the Kubernetes API"),
    ];
    for (kubeconfig, says) in cases {
        for component in ["controllers", "dns"] {
            let mut args = vec![component, "--kubeconfig", kubeconfig];
            if component == "dns" {
                args.extend(["--listen", "127.0.0.1:0", "--health", "", "--ready", "", "--metrics", ""]);
            }
            let (ok, lines, secs) = run_to_end(&args);
            assert!(!ok, "{args:?} exited 0");
            assert_eq!(lines.len(), 1, "{args:?}: one line, got {lines:?}");
            assert!(lines[0].starts_with("error: ") && lines[0].contains(says), "{args:?}: {lines:?}");
            assert!(secs < 10.0, "{args:?} took {secs:.1} s");
        }
    }
}

#[test]
fn a_failing_component_stops_the_server_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (data_dir, bind) = (dir.path().to_str().unwrap().to_owned(), format!("127.0.0.1:{port}"));
    let args = ["server", "--data-dir", &data_dir, "--bind", &bind, "--cluster-cidr", "10.244.0.0/33"];
    let (ok, lines, secs) = run_to_end(&args);
    assert!(!ok, "the server ran on without its node controllers");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("error: node controllers failed: bad cluster CIDR 10.244.0.0/33"), "{lines:?}");
    assert!(secs < 15.0, "took {secs:.1} s");
}

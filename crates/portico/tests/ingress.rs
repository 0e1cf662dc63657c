//! The ingress controller end to end: `portico up` on n1 (with its ingress controller on :80
//! and :443), `portico agent` on n2, pods on both, and an external client that reaches the
//! ingress by the node's address as `curl --resolve` does. Needs root; under CI=true a lab that
//! cannot be built fails the test.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::cluster::{Cluster, is_ready, s};
use common::eventually;
use serde_json::{Value, json};

/// Each backend pod: HTTP/1.1 on 8080 answering JSON with its name, the path and the
/// forwarding headers it got; `/slow` streams 2 MiB over about 3 s; a WebSocket upgrade is
/// answered with 101 and then every line is echoed back after the pod's name.
const BACKEND: &str = r#"
import socket, json, time, http.server
name = socket.gethostname()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a):
        pass
    def do_GET(self):
        if self.headers.get('Upgrade', '').lower() == 'websocket':
            self.send_response(101)
            self.send_header('Upgrade', 'websocket')
            self.send_header('Connection', 'Upgrade')
            self.end_headers()
            self.wfile.flush()
            for line in self.rfile:
                self.wfile.write(name.encode() + b' ' + line)
                self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith('/slow'):
            chunk = b'x' * 65536
            self.send_response(200)
            self.send_header('Content-Length', str(len(chunk) * 32))
            self.end_headers()
            for i in range(32):
                self.wfile.write(chunk)
                self.wfile.flush()
                time.sleep(0.1)
            return
        h = self.headers
        body = json.dumps({'pod': name, 'path': self.path, 'host': h.get('Host'), 'xff': h.get('X-Forwarded-For'),
                           'real': h.get('X-Real-IP'), 'proto': h.get('X-Forwarded-Proto'),
                           'fhost': h.get('X-Forwarded-Host')}).encode() + b'\n'
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(('', 8080), H).serve_forever()
"#;

fn backend(app: &str, replicas: u32) -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": app},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}}, "spec": {
                "terminationGracePeriodSeconds": 2,
                "containers": [{"name": "app", "image": "python", "command": ["python3", "-c", BACKEND],
                    "ports": [{"containerPort": 8080, "name": "http"}],
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}
    })
    .to_string()
}

fn service(name: &str) -> String {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    .to_string()
}

fn ingress(name: &str, annotations: Value, spec: Value) -> String {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "annotations": annotations}, "spec": spec})
    .to_string()
}

fn path(p: &str, kind: &str, svc: &str) -> Value {
    json!({"path": p, "pathType": kind, "backend": {"service": {"name": svc, "port": {"number": 80}}}})
}

struct Lab {
    c: Cluster,
    client: lab::Client,
    ip: String,
    dir: tempfile::TempDir,
}

/// An HTTP answer as curl saw it.
#[derive(Debug)]
struct Answer {
    code: u16,
    body: String,
    headers: String,
    http_version: String,
    size: u64,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
    fn pod(&self) -> String {
        s(&self.json()["pod"])
    }
}

impl Lab {
    fn start() -> Option<Lab> {
        let mut c = Cluster::start("ing", &[])?;
        c.join("n2");
        let client = c.client("ext");
        let ip = c.node.ip().to_string();
        let ok = eventually(Duration::from_secs(90), || {
            let n = c.json(&["get", "nodes"]);
            n["items"].as_array().is_some_and(|i| i.len() == 2 && i.iter().all(is_ready))
        });
        assert!(ok, "two Ready nodes:\n{}", c.log());
        Some(Lab { c, client, ip, dir: tempfile::tempdir().unwrap() })
    }

    fn wait_ready(&self, app: &str, n: usize) -> Vec<Value> {
        self.c.wait_ready(app, n)
    }

    /// curl from the external client; `--resolve` sends `host` to the node, as the README does.
    fn curl(&self, url: &str, extra: &[&str]) -> Result<Answer, i32> {
        let (scheme, rest) = url.split_once("://").unwrap();
        let host = rest.split('/').next().unwrap();
        let port = if scheme == "https" { 443 } else { 80 };
        let resolve = format!("{host}:{port}:{}", self.ip);
        let headers = self.dir.path().join(format!("headers-{}", rand_suffix()));
        let mut argv = vec!["curl", "-s", "--max-time", "10", "--resolve", &resolve, "-D"];
        let hp = headers.to_str().unwrap().to_owned();
        argv.push(&hp);
        argv.extend(["-w", "\n%{http_code} %{http_version} %{size_download}"]);
        argv.extend_from_slice(extra);
        argv.push(url);
        let out = self.c.lab.exec(&self.client, &argv).unwrap();
        if !out.status.success() {
            return Err(out.status.code().unwrap_or(-1));
        }
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, tail) = stdout.rsplit_once('\n').unwrap();
        let mut tail = tail.split(' ');
        let (code, version, size) = (tail.next().unwrap(), tail.next().unwrap(), tail.next().unwrap());
        let headers = std::fs::read_to_string(&headers).unwrap_or_default();
        Ok(Answer {
            code: code.parse().unwrap(),
            body: body.to_owned(),
            headers,
            http_version: version.to_owned(),
            size: size.parse().unwrap(),
        })
    }

    fn get(&self, url: &str) -> Answer {
        self.curl(url, &[]).unwrap_or_else(|code| panic!("GET {url}: curl exit {code}\n{}", self.c.log()))
    }

    /// Waits until `url` answers `code` (the controller applies changes within moments).
    fn until(&self, url: &str, extra: &[&str], what: &str, f: impl Fn(&Answer) -> bool) -> Answer {
        let mut last = None;
        let ok = eventually(Duration::from_secs(15), || {
            last = self.curl(url, extra).ok();
            last.as_ref().is_some_and(&f)
        });
        assert!(ok, "{what}: {url} answered {last:?}\n{}", ingress_log(&self.c));
        last.unwrap()
    }

    fn events(&self, ingress: &str) -> String {
        self.c.kubectl_ok(&["get", "events", "--field-selector", &format!("involvedObject.name={ingress}")])
    }

    /// A certificate for `hosts` signed by a fresh CA: (CA file, certificate file, key file).
    fn certificate(&self, name: &str, hosts: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(vec![]).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} CA"));
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>()).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let write = |suffix: &str, body: String| {
            let p = self.dir.path().join(format!("{name}.{suffix}"));
            std::fs::write(&p, body).unwrap();
            p
        };
        (write("ca.crt", ca.pem()), write("crt", cert.pem()), write("key", key.serialize_pem()))
    }

    fn tls_secret(&self, name: &str, crt: &Path, key: &Path) {
        let yaml = self.c.kubectl_ok(&[
            "create",
            "secret",
            "tls",
            name,
            "--cert",
            crt.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--dry-run=client",
            "-o",
            "yaml",
        ]);
        self.c.apply(&yaml);
    }

    fn node_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip.parse().unwrap(), port)
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn ingress_log(c: &Cluster) -> String {
    c.log().lines().filter(|l| l.contains("ingress")).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_ingress_controller_routes_by_host_and_path_with_tls() {
    let Some(l) = Lab::start() else { return };
    let c = &l.c;
    for app in ["a", "b"] {
        c.apply(&backend(app, 2));
        c.apply(&service(app));
    }
    l.wait_ready("a", 2);
    l.wait_ready("b", 2);

    // portico up made its IngressClass, the cluster default.
    let classes = c.kubectl_ok(&["get", "ingressclass"]);
    assert!(classes.contains("portico") && classes.contains("portico.dev/ingress-controller"), "{classes}");

    readme_example(&l);
    virtual_hosts_and_fan_out(&l);
    default_backend_and_classes(&l);
    tls_by_sni_with_rotation(&l);
    websocket_upgrade(&l);
    cookie_affinity(&l);
    rewrite_target(&l);
    annotations_that_fail_keep_the_last_good_route(&l);
    invalid_ingresses_are_rejected_by_the_api_server(&l);
    malformed_http_gets_400_and_a_close(&l);
    endpoint_removed_mid_traffic(&l);
    config_change_during_a_long_download(&l);
    status_and_metrics(&l);
}

/// README: `kubectl apply -f examples/ingress.yaml`, then curl --resolve.
fn readme_example(l: &Lab) {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/ingress.yaml")).unwrap();
    l.c.apply(&manifest);
    l.wait_ready("web", 2);
    l.wait_ready("api", 2);
    let web = l.until("http://www.example.com/", &[], "README: www", |a| a.code == 200);
    assert!(web.body.starts_with("Hello World!\nweb-"), "{web:?}");
    let api = l.until("http://www.example.com/api/users", &[], "README: /api", |a| a.code == 200);
    assert!(api.body.starts_with("Hello World!\napi-"), "{api:?}");
    let host = l.get("http://api.example.com/");
    assert!(host.body.starts_with("Hello World!\napi-"), "{host:?}");
    // `/apis` is not under `/api`: it goes to `/`.
    assert!(l.get("http://www.example.com/apis").body.starts_with("Hello World!\nweb-"));
    l.c.kubectl_ok(&["delete", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/ingress.yaml")]);
    // The kubectl above runs in the node's namespace, which sees the same file system.
}

fn virtual_hosts_and_fan_out(l: &Lab) {
    l.c.apply(&ingress(
        "vhosts",
        json!({}),
        json!({"rules": [
            {"host": "a.example.com", "http": {"paths": [path("/", "Prefix", "a")]}},
            {"host": "b.example.com", "http": {"paths": [path("/", "Prefix", "b")]}},
            {"host": "fan.example.com", "http": {"paths": [path("/one", "Prefix", "a"), path("/two", "Exact", "b")]}}
        ]}),
    ));
    let a = l.until("http://a.example.com/x", &[], "vhost a", |a| a.code == 200);
    assert!(a.pod().starts_with("a-"), "{a:?}");
    assert_eq!(s(&a.json()["path"]), "/x");
    assert_eq!(s(&a.json()["host"]), "a.example.com");
    // The backend learns who asked and how.
    let client_ip = l.client.ip().to_string();
    assert_eq!(s(&a.json()["xff"]), client_ip);
    assert_eq!(s(&a.json()["real"]), client_ip);
    assert_eq!(s(&a.json()["proto"]), "http");
    assert_eq!(s(&a.json()["fhost"]), "a.example.com");
    assert!(l.get("http://B.Example.com/").pod().starts_with("b-"), "hosts are case-insensitive");

    // Fan-out by path: Prefix element-wise, Exact whole.
    assert!(l.get("http://fan.example.com/one").pod().starts_with("a-"));
    assert!(l.get("http://fan.example.com/one/more").pod().starts_with("a-"));
    assert!(l.get("http://fan.example.com/two").pod().starts_with("b-"));
    assert_eq!(l.get("http://fan.example.com/onething").code, 404, "/one never matches /onething");
    assert_eq!(l.get("http://fan.example.com/two/").code, 404, "Exact is the whole path");
    let none = l.get("http://nothing.example.com/");
    assert_eq!(none.code, 404, "no rule and no default backend: 404");

    // Round robin over both endpoints, straight to the pods.
    let pods: BTreeSet<String> = (0..8).map(|_| l.get("http://a.example.com/").pod()).collect();
    assert_eq!(pods.len(), 2, "both endpoints serve: {pods:?}");

    // HTTP/2 with prior knowledge on :80 (h2c).
    let h2 = l.curl("http://a.example.com/", &["--http2-prior-knowledge"]).unwrap();
    assert_eq!((h2.code, h2.http_version.as_str()), (200, "2"), "{h2:?}");
}

fn default_backend_and_classes(l: &Lab) {
    l.c.apply(&ingress(
        "fallback",
        json!({}),
        json!({"defaultBackend": {"service": {"name": "b", "port": {"number": 80}}}}),
    ));
    let d = l.until("http://unknown.example.com/any", &[], "defaultBackend", |a| a.code == 200);
    assert!(d.pod().starts_with("b-"), "{d:?}");
    // Another controller's class is not served; the legacy annotation names classes too.
    l.c.apply(&ingress(
        "other-class",
        json!({}),
        json!({"ingressClassName": "nginx", "rules": [{"host": "other.example.com", "http": {"paths": [path("/", "Prefix", "a")]}}]}),
    ));
    l.c.apply(&ingress(
        "legacy-class",
        json!({"kubernetes.io/ingress.class": "portico"}),
        json!({"rules": [{"host": "legacy.example.com", "http": {"paths": [path("/", "Prefix", "a")]}}]}),
    ));
    let legacy = l.until("http://legacy.example.com/", &[], "legacy class", |a| a.code == 200);
    assert!(legacy.pod().starts_with("a-"));
    let other = l.get("http://other.example.com/");
    assert!(other.pod().starts_with("b-"), "an Ingress of class nginx is not ours: the default backend answers");
    l.c.kubectl_ok(&["delete", "ingress", "fallback", "other-class", "legacy-class"]);
    l.until("http://unknown.example.com/", &[], "default backend removed", |a| a.code == 404);
}

fn tls_by_sni_with_rotation(l: &Lab) {
    let (ca_a, crt_a, key_a) = l.certificate("a", &["secure.example.com"]);
    let (ca_w, crt_w, key_w) = l.certificate("wild", &["*.shop.example.com"]);
    l.tls_secret("a-tls", &crt_a, &key_a);
    l.tls_secret("wild-tls", &crt_w, &key_w);
    l.c.apply(&ingress(
        "tls",
        json!({}),
        json!({
            "tls": [{"hosts": ["secure.example.com"], "secretName": "a-tls"}, {"hosts": ["*.shop.example.com"], "secretName": "wild-tls"}],
            "rules": [
                {"host": "secure.example.com", "http": {"paths": [path("/secure", "Prefix", "a")]}},
                {"host": "*.shop.example.com", "http": {"paths": [path("/", "Prefix", "b")]}}
            ]}),
    ));
    let ca_a_s = ca_a.to_str().unwrap();
    // The certificate chosen by SNI verifies against its own CA only (curl checks the name).
    let a = l.until("https://secure.example.com/secure", &["--cacert", ca_a_s], "TLS a", |a| a.code == 200);
    assert!(a.pod().starts_with("a-"));
    assert_eq!(s(&a.json()["proto"]), "https");
    assert_eq!(a.http_version, "2", "HTTP/2 by ALPN");
    let w = l.get_with("https://eu.shop.example.com/", &["--cacert", ca_w.to_str().unwrap()]);
    assert!(w.pod().starts_with("b-"), "{w:?}");
    assert!(
        l.curl("https://eu.shop.example.com/", &["--cacert", ca_a_s]).is_err(),
        "the wildcard host gets its own cert"
    );
    // Other names get the self-signed default certificate.
    let fake = l.curl("https://nothing.example.com/", &["-k", "-v"]).unwrap();
    assert_eq!(fake.code, 404);
    // HTTP to a TLS host: 308 to https, same path and query.
    let r = l.get("http://secure.example.com/secure/x?y=1");
    assert_eq!(r.code, 308, "{r:?}");
    assert!(r.headers.to_lowercase().contains("location: https://secure.example.com/secure/x?y=1"), "{}", r.headers);

    // Rotation: a new certificate from another CA, picked up without a restart.
    let (ca_a2, crt_a2, key_a2) = l.certificate("a2", &["secure.example.com"]);
    l.tls_secret("a-tls", &crt_a2, &key_a2);
    l.until("https://secure.example.com/secure", &["--cacert", ca_a2.to_str().unwrap()], "rotated", |a| a.code == 200);
    assert!(l.curl("https://secure.example.com/secure", &["--cacert", ca_a_s]).is_err(), "the old certificate is gone");
}

impl Lab {
    fn get_with(&self, url: &str, extra: &[&str]) -> Answer {
        self.curl(url, extra).unwrap_or_else(|code| panic!("GET {url}: curl exit {code}\n{}", ingress_log(&self.c)))
    }
}

fn websocket_upgrade(l: &Lab) {
    let mut tcp = l.c.lab.connect_tcp(&l.client, l.node_addr(80)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        tcp,
        "GET /chat HTTP/1.1\r\nHost: a.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(tcp.try_clone().unwrap());
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    // The tunnel carries both ways, several times, to the same pod.
    let mut pods = BTreeSet::new();
    for msg in ["hello", "again"] {
        writeln!(tcp, "{msg}").unwrap();
        let mut echo = String::new();
        r.read_line(&mut echo).unwrap();
        let (pod, text) = echo.trim().split_once(' ').unwrap();
        assert_eq!(text, msg);
        pods.insert(pod.to_owned());
    }
    assert_eq!(pods.len(), 1);
}

fn cookie_affinity(l: &Lab) {
    l.c.apply(&ingress(
        "sticky",
        json!({"nginx.ingress.kubernetes.io/affinity": "cookie", "nginx.ingress.kubernetes.io/session-cookie-name": "route",
               "nginx.ingress.kubernetes.io/session-cookie-max-age": "3600"}),
        json!({"rules": [{"host": "sticky.example.com", "http": {"paths": [path("/", "Prefix", "a")]}}]}),
    ));
    let first = l.until("http://sticky.example.com/", &[], "sticky", |a| a.code == 200);
    assert!(first.headers.contains("set-cookie: route="), "{}", first.headers);
    assert!(first.headers.contains("Max-Age=3600"), "{}", first.headers);
    let jar = l.dir.path().join("jar");
    let jar_s = jar.to_str().unwrap();
    let pinned: BTreeSet<String> =
        (0..8).map(|_| l.get_with("http://sticky.example.com/", &["-b", jar_s, "-c", jar_s]).pod()).collect();
    assert_eq!(pinned.len(), 1, "a client with the cookie stays on one pod: {pinned:?}");
    let free: BTreeSet<String> = (0..8).map(|_| l.get("http://sticky.example.com/").pod()).collect();
    assert_eq!(free.len(), 2, "clients without it are balanced: {free:?}");
}

fn rewrite_target(l: &Lab) {
    l.c.apply(&ingress(
        "rewrite",
        json!({"nginx.ingress.kubernetes.io/use-regex": "true", "nginx.ingress.kubernetes.io/rewrite-target": "/$2"}),
        json!({"rules": [{"host": "rewrite.example.com", "http": {"paths": [path("/something(/|$)(.*)", "ImplementationSpecific", "a")]}}]}),
    ));
    let r = l.until("http://rewrite.example.com/something/new?q=1", &[], "rewrite", |a| a.code == 200);
    assert_eq!(s(&r.json()["path"]), "/new?q=1");
    assert_eq!(s(&l.get("http://rewrite.example.com/something").json()["path"]), "/");
    // app-root and permanent-redirect, validated values only.
    l.c.apply(&ingress(
        "redirects",
        json!({"nginx.ingress.kubernetes.io/app-root": "/app1"}),
        json!({"rules": [{"host": "root.example.com", "http": {"paths": [path("/", "Prefix", "a")]}}]}),
    ));
    let root = l.until("http://root.example.com/", &[], "app-root", |a| a.code == 302);
    assert!(root.headers.contains("location: /app1"), "{}", root.headers);
}

fn annotations_that_fail_keep_the_last_good_route(l: &Lab) {
    let good = ingress(
        "tuned",
        json!({"nginx.ingress.kubernetes.io/proxy-read-timeout": "30", "nginx.ingress.kubernetes.io/server-snippet": "return 200;"}),
        json!({"rules": [{"host": "tuned.example.com", "http": {"paths": [path("/v1", "Prefix", "a")]}}]}),
    );
    l.c.apply(&good);
    l.until("http://tuned.example.com/v1", &[], "tuned", |a| a.code == 200);
    let ok = eventually(Duration::from_secs(10), || l.events("tuned").contains("UnsupportedAnnotation"));
    assert!(ok, "an unsupported annotation is reported:\n{}", l.events("tuned"));
    assert!(l.events("tuned").contains("server-snippet"));
    // A bad value (and a new path) in one update: the Event names it, the old route stays.
    l.c.apply(&ingress(
        "tuned",
        json!({"nginx.ingress.kubernetes.io/proxy-read-timeout": "6o"}),
        json!({"rules": [{"host": "tuned.example.com", "http": {"paths": [path("/v2", "Prefix", "a")]}}]}),
    ));
    let ok = eventually(Duration::from_secs(10), || l.events("tuned").contains("InvalidAnnotation"));
    assert!(ok, "an invalid annotation is reported:\n{}", l.events("tuned"));
    assert!(l.events("tuned").contains("proxy-read-timeout"), "{}", l.events("tuned"));
    assert_eq!(l.get("http://tuned.example.com/v1").code, 200, "the previous working route stays");
    assert_eq!(l.get("http://tuned.example.com/v2").code, 404, "the broken version is not served");
    // Fixed: the new version takes over.
    l.c.apply(&ingress(
        "tuned",
        json!({"nginx.ingress.kubernetes.io/proxy-read-timeout": "60"}),
        json!({"rules": [{"host": "tuned.example.com", "http": {"paths": [path("/v2", "Prefix", "a")]}}]}),
    ));
    l.until("http://tuned.example.com/v2", &[], "fixed", |a| a.code == 200);
    assert_eq!(l.get("http://tuned.example.com/v1").code, 404);
    // A resource backend is reported, never silently dropped.
    l.c.apply(&ingress(
        "resource",
        json!({}),
        json!({"rules": [{"host": "res.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "b"}}}
        ]}}]}),
    ));
    let ok =
        eventually(Duration::from_secs(10), || l.events("resource").contains("resource backends are not supported"));
    assert!(ok, "{}", l.events("resource"));
}

fn invalid_ingresses_are_rejected_by_the_api_server(l: &Lab) {
    let bad_path = ingress(
        "bad-path",
        json!({}),
        json!({"rules": [{"host": "x.example.com", "http": {"paths": [path("x", "Prefix", "a")]}}]}),
    );
    let out = l.c.kubectl_stdin(&["apply"], Some(&bad_path));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.rules[0].http.paths[0].path: Invalid value: \"x\": must be an absolute path"), "{err}");
    let bad_host = ingress(
        "bad-host",
        json!({}),
        json!({"rules": [{"host": "a.*.example.com", "http": {"paths": [path("/", "Prefix", "a")]}}]}),
    );
    let out = l.c.kubectl_stdin(&["apply"], Some(&bad_host));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.rules[0].host: Invalid value: \"a.*.example.com\""), "{err}");
}

fn malformed_http_gets_400_and_a_close(l: &Lab) {
    for garbage in
        ["GARBAGE\r\n\r\n", "GET / HTTP/1.1\r\nHost: a.example.com\r\nBad Header\r\n\r\n", "GET / HTTP/9.9\r\n\r\n"]
    {
        let mut tcp = l.c.lab.connect_tcp(&l.client, l.node_addr(80)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.write_all(garbage.as_bytes()).unwrap();
        let mut answer = Vec::new();
        // read_to_end returns only once the controller closed the connection.
        tcp.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{garbage:?}: {answer}");
    }
    // The controller is still there.
    assert_eq!(l.get("http://a.example.com/").code, 200);
}

/// Requests run while endpoints go (pods deleted without any preStop grace): none fails, the
/// controller sends a request whose connection fails to the next endpoint.
fn endpoint_removed_mid_traffic(l: &Lab) {
    l.c.kubectl_ok(&["scale", "deployment", "a", "--replicas", "3"]);
    let pods = l.wait_ready("a", 3);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (ok, failed) = std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            let (mut ok, mut failed) = (0, vec![]);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match l.curl("http://a.example.com/", &[]) {
                    Ok(a) if a.code == 200 => ok += 1,
                    Ok(a) => failed.push(format!("{} {}", a.code, a.body)),
                    Err(code) => failed.push(format!("curl exit {code}")),
                }
            }
            (ok, failed)
        });
        std::thread::sleep(Duration::from_secs(1));
        for p in &pods[..2] {
            l.c.kubectl_ok(&["delete", "pod", &s(&p["metadata"]["name"]), "--wait=false"]);
            std::thread::sleep(Duration::from_secs(1));
        }
        l.wait_ready("a", 3);
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        load.join().unwrap()
    });
    eprintln!("endpoints removed under load: {ok} requests succeeded, {} failed", failed.len());
    assert!(ok > 10, "requests kept flowing ({ok})");
    assert!(failed.is_empty(), "{failed:?}\n{}", ingress_log(&l.c));
    l.c.kubectl_ok(&["scale", "deployment", "a", "--replicas", "2"]);
    l.wait_ready("a", 2);
}

/// A long download keeps going while the configuration changes under it (no reload).
fn config_change_during_a_long_download(l: &Lab) {
    let done = std::thread::scope(|scope| {
        let download = scope.spawn(|| l.curl("http://a.example.com/slow", &["-o", "/dev/null"]));
        std::thread::sleep(Duration::from_millis(500));
        l.c.apply(&ingress(
            "vhosts",
            json!({}),
            json!({"rules": [
                {"host": "a.example.com", "http": {"paths": [path("/", "Prefix", "a"), path("/new", "Prefix", "b")]}},
                {"host": "b.example.com", "http": {"paths": [path("/", "Prefix", "b")]}}
            ]}),
        ));
        l.until("http://a.example.com/new", &[], "the new path", |a| a.code == 200 && a.pod().starts_with("b-"));
        download.join().unwrap()
    });
    let answer = done.expect("the download finished");
    assert_eq!(answer.code, 200);
    assert_eq!(answer.size, 32 * 65536, "the whole body arrived");
}

fn status_and_metrics(l: &Lab) {
    let ok = eventually(Duration::from_secs(10), || {
        l.c.kubectl_ok(&["get", "ingress", "vhosts"]).lines().nth(1).is_some_and(|row| row.contains(&l.ip))
    });
    assert!(ok, "kubectl get ingress shows the ADDRESS:\n{}", l.c.kubectl_ok(&["get", "ingress"]));
    let table = l.c.kubectl_ok(&["get", "ingress", "vhosts"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("portico") || table.contains("<none>"), "{table}");
    let metrics =
        l.c.lab
            .exec_ok(&l.client, &["curl", "-s", "--max-time", "5", &format!("http://{}:10254/metrics", l.ip)])
            .unwrap();
    let line = metrics
        .lines()
        .find(|m| {
            m.starts_with("nginx_ingress_controller_requests{")
                && m.contains(
                    "ingress=\"vhosts\",service=\"a\",host=\"a.example.com\",path=\"/\",method=\"GET\",status=\"200\"",
                )
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 5.0, "{line}");
    assert!(metrics.contains("nginx_ingress_controller_request_duration_seconds_bucket{"), "{metrics}");
    let healthz =
        l.c.lab
            .exec_ok(&l.client, &["curl", "-s", "--max-time", "5", &format!("http://{}:10254/healthz", l.ip)])
            .unwrap();
    assert_eq!(healthz, "OK");
}

//! The service proxy end to end, in a lab of three nodes and an external client: `portico up`
//! on n1, `portico agent` (with its proxy) on n2 and n3, pods on every node, real kubectl.
//! The same battery runs in every proxy mode that carries the feature. Needs root; under
//! CI=true a lab that cannot be built fails the test.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, is_ready, s};
use common::eventually;
use serde_json::{Value, json};

/// Each pod: HTTP on 8080 answering "<pod name> <client address>", a line echo on 9000 (for
/// long-lived connections) and UDP on 5353 answering its name.
const WHOAMI: &str = r#"
import socket, socketserver, threading
name = socket.gethostname()
class TCP(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
class UDP(socketserver.ThreadingUDPServer):
    allow_reuse_address = True
class Http(socketserver.StreamRequestHandler):
    def handle(self):
        self.rfile.readline()
        body = ('%s %s\n' % (name, self.client_address[0])).encode()
        self.wfile.write(b'HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n' % len(body) + body)
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(name.encode() + b' ' + line)
class Udp(socketserver.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(name.encode())
threading.Thread(target=UDP(('', 5353), Udp).serve_forever, daemon=True).start()
threading.Thread(target=TCP(('', 9000), Echo).serve_forever, daemon=True).start()
TCP(('', 8080), Http).serve_forever()
"#;

fn pod_template(app: &str, node: Option<&str>) -> Value {
    let mut spec = json!({
        "terminationGracePeriodSeconds": 5,
        "containers": [{
            "name": "whoami", "image": "python", "command": ["python3", "-c", WHOAMI],
            "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 5353, "name": "dns", "protocol": "UDP"}],
            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
            // Serve a little past the deletion, until the proxies have dropped the endpoint.
            "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}}
        }]
    });
    if let Some(node) = node {
        spec["nodeSelector"] = json!({"kubernetes.io/hostname": node});
    }
    json!({"metadata": {"labels": {"app": app}}, "spec": spec})
}

fn deployment(app: &str, replicas: u32, node: Option<&str>) -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": app},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}}, "template": pod_template(app, node),
                 "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}}
    })
    .to_string()
}

fn service(name: &str, app: &str, extra: Value) -> String {
    let mut svc = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    });
    for (k, v) in extra.as_object().unwrap() {
        svc["spec"][k] = v.clone();
    }
    svc.to_string()
}

struct Lab3 {
    c: Cluster,
    nodes: Vec<(String, String)>,
    client: lab::Client,
}

impl Lab3 {
    fn start(name: &str, mode: &str) -> Option<Lab3> {
        let pool = "198.51.100.200-198.51.100.210";
        let mut c = Cluster::start(name, &["--proxy-mode", mode, "--loadbalancer-ip-pool", pool])?;
        let n2 = c.join_with("n2", &["--proxy-mode", mode]);
        let n3 = c.join_with("n3", &["--proxy-mode", mode]);
        let client = c.client("ext");
        let nodes = vec![
            ("n1".to_string(), c.node.ip().to_string()),
            ("n2".to_string(), n2.ip().to_string()),
            ("n3".to_string(), n3.ip().to_string()),
        ];
        let ok = eventually(Duration::from_secs(90), || {
            let n = c.json(&["get", "nodes"]);
            n["items"].as_array().is_some_and(|i| i.len() == 3 && i.iter().all(is_ready))
        });
        assert!(ok, "three Ready nodes:\n{}\n{}", c.kubectl_ok(&["get", "nodes"]), c.log());
        c.lab.register("10.96.0.0/12").unwrap();
        Some(Lab3 { c, nodes, client })
    }

    fn ip(&self, node: &str) -> &str {
        &self.nodes.iter().find(|(n, _)| n == node).unwrap().1
    }

    fn cluster_ip(&self, svc: &str) -> String {
        s(&self.c.json(&["get", "svc", svc])["spec"]["clusterIP"])
    }

    fn wait_ready(&self, app: &str, n: usize) -> Vec<Value> {
        let ok = eventually(Duration::from_secs(120), || {
            let pods = self.c.pods(&format!("app={app}"));
            pods.iter().filter(|p| is_ready(p) && p["metadata"]["deletionTimestamp"].is_null()).count() == n
        });
        assert!(ok, "{app}: {n} ready pods:\n{}\n{}", self.c.kubectl_ok(&["get", "pods", "-o", "wide"]), self.c.log());
        self.c.pods(&format!("app={app}")).into_iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).collect()
    }

    /// curl from a lab namespace (a node's or the client's); `Err(curl exit code)` on failure.
    fn curl_from(&self, ns: &dyn lab::Netns, url: &str, timeout_s: &str) -> Result<String, i32> {
        let out = self.c.lab.exec(ns, &["curl", "-s", "--max-time", timeout_s, url]).unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(out.status.code().unwrap_or(-1))
        }
    }

    fn node_ns(&self, node: &str) -> Named {
        Named(format!("{}-{node}", self.c.lab.prefix()))
    }

    /// Pod names that answered `n` requests to `url` from node `node`.
    fn answers_from_node(&self, node: &str, url: &str, n: usize) -> BTreeSet<String> {
        let ns = self.node_ns(node);
        (0..n)
            .map(|_| {
                let body = self.curl_from(&ns, url, "3").unwrap_or_else(|code| panic!("{url} from {node}: curl {code}"));
                body.split(' ').next().unwrap().to_owned()
            })
            .collect()
    }

    fn kubectl_exec(&self, pod: &str, argv: &[&str]) -> std::process::Output {
        let mut args = vec!["exec", pod, "--"];
        args.extend_from_slice(argv);
        self.c.kubectl(&args)
    }
}

struct Named(String);
impl lab::Netns for Named {
    fn netns(&self) -> &str {
        &self.0
    }
}

fn node_port(c: &Cluster, svc: &str) -> u16 {
    c.json(&["get", "svc", svc])["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16
}

/// curl exit code 7: could not connect (refused); 28: timed out.
const REFUSED: i32 = 7;
const TIMED_OUT: i32 = 28;

fn battery(mode: &str, short: &str) {
    let Some(mut l) = Lab3::start(&format!("px{short}"), mode) else { return };
    let c = &l.c;
    c.apply(&deployment("web", 6, None));
    c.apply(&service("web", "web", json!({})));
    let pods = l.wait_ready("web", 6);
    let on_nodes: BTreeSet<String> = pods.iter().map(|p| s(&p["spec"]["nodeName"])).collect();
    assert_eq!(on_nodes.len(), 3, "pods on every node: {on_nodes:?}");
    let vip = l.cluster_ip("web");
    let url = format!("http://{vip}/");

    // ClusterIP from every node, landing on several pods.
    for node in ["n1", "n2", "n3"] {
        let seen = eventually_set(|| l.answers_from_node(node, &url, 12), 3);
        assert!(seen.len() >= 3, "{mode}: ClusterIP from {node} reached only {seen:?}");
    }
    // From a pod, by name through the cluster DNS (the kube-dns Service goes through the proxy).
    let pod = s(&pods[0]["metadata"]["name"]);
    let out = l.kubectl_exec(&pod, &["curl", "-s", "--max-time", "5", "http://web/"]);
    assert!(out.status.success(), "{mode}: curl http://web/ in a pod: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("web-"), "{}", String::from_utf8_lossy(&out.stdout));
    let out = l.kubectl_exec(&pod, &["curl", "-s", "--max-time", "5", "http://web.default.svc.cluster.local/"]);
    assert!(out.status.success(), "{mode}: the Service's full name");

    // A pod reaches itself through its Service (hairpin).
    let me = pod.clone();
    let hit_self = eventually(Duration::from_secs(20), || {
        let out = l.kubectl_exec(&me, &["curl", "-s", "--max-time", "3", &url]);
        String::from_utf8_lossy(&out.stdout).starts_with(&format!("{me} "))
    });
    assert!(hit_self, "{mode}: {me} never reached itself through its Service");

    // Multi-port: a second port appears, then goes.
    c.apply(&service("web", "web", json!({"ports": [{"name": "http", "port": 80, "targetPort": "http"},
        {"name": "alt", "port": 8081, "targetPort": 8080}]})));
    let alt = format!("http://{vip}:8081/");
    let n1 = l.node_ns("n1");
    assert!(eventually(Duration::from_secs(10), || l.curl_from(&n1, &alt, "2").is_ok()), "{mode}: port added");
    c.apply(&service("web", "web", json!({})));
    assert!(
        eventually(Duration::from_secs(10), || l.curl_from(&n1, &alt, "2") == Err(REFUSED)),
        "{mode}: a removed port is refused"
    );

    // No endpoints: refused at once.
    c.apply(&service("empty", "nothing", json!({})));
    let empty = format!("http://{}/", l.cluster_ip("empty"));
    assert!(eventually(Duration::from_secs(10), || l.curl_from(&n1, &empty, "5") == Err(REFUSED)));
    let t = Instant::now();
    assert_eq!(l.curl_from(&n1, &empty, "5"), Err(REFUSED));
    assert!(t.elapsed() < Duration::from_secs(1), "{mode}: refused, not timed out");

    // NodePort on every node's address, from the external client.
    c.apply(&service("web", "web", json!({"type": "NodePort"})));
    let np = node_port(c, "web");
    for node in ["n1", "n2", "n3"] {
        let url = format!("http://{}:{np}/", l.ip(node));
        assert!(
            eventually(Duration::from_secs(10), || l.curl_from(&l.client, &url, "2").is_ok()),
            "{mode}: NodePort {url} from outside"
        );
    }

    // Session affinity: 15 requests in a row land on one pod; switched off, they spread.
    c.apply(&service("web", "web", json!({"type": "NodePort", "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 3}}})));
    std::thread::sleep(Duration::from_millis(500));
    let sticky = l.answers_from_node("n2", &url, 15);
    assert_eq!(sticky.len(), 1, "{mode}: affinity held for 15 requests: {sticky:?}");
    std::thread::sleep(Duration::from_secs(4));
    let after_timeout = eventually_set(|| l.answers_from_node("n2", &url, 1), 2);
    assert!(after_timeout.len() >= 2, "{mode}: a new pod is chosen once the affinity timed out: {after_timeout:?}");
    c.apply(&service("web", "web", json!({"type": "NodePort"})));
    std::thread::sleep(Duration::from_millis(500));
    assert!(l.answers_from_node("n2", &url, 15).len() >= 2, "{mode}: affinity switched off");

    if mode == "userspace" {
        return;
    }

    // LoadBalancer: an address from the pool, reachable from the client on the same L2 segment
    // with no route for it, announced by one node; again after that node's agent stops.
    c.apply(&service("web", "web", json!({"type": "LoadBalancer"})));
    let lb = wait_lb_ip(c, "web");
    let lb_url = format!("http://{lb}/");
    c.lab.register(&format!("{lb}/32")).unwrap();
    assert!(
        eventually(Duration::from_secs(15), || l.curl_from(&l.client, &lb_url, "2").is_ok()),
        "{mode}: LoadBalancer IP {lb} from the client\n{}",
        c.log()
    );
    let announcer = wait_announcer(c, "web");
    assert!(
        c.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=web"]).contains("nodeAssigned"),
        "{mode}: an Event names the announcing node"
    );
    if announcer != "n1" {
        l.c.kill_agent(&announcer);
        let c = &l.c;
        assert!(
            eventually(Duration::from_secs(20), || {
                wait_announcer_now(c, "web").is_some_and(|n| n != announcer)
                    && l.curl_from(&l.client, &lb_url, "2").is_ok()
            }),
            "{mode}: another node takes {lb} over from {announcer}"
        );
    }
}

fn eventually_set(mut f: impl FnMut() -> BTreeSet<String>, want: usize) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && all.len() < want {
        all.extend(f());
    }
    all
}

fn wait_lb_ip(c: &Cluster, svc: &str) -> String {
    let mut ip = String::new();
    let ok = eventually(Duration::from_secs(20), || {
        ip = s(&c.json(&["get", "svc", svc])["status"]["loadBalancer"]["ingress"][0]["ip"]);
        !ip.is_empty()
    });
    assert!(ok, "{svc} got no load balancer IP");
    ip
}

fn wait_announcer_now(c: &Cluster, svc: &str) -> Option<String> {
    let v = c.json(&["get", "svc", svc]);
    v["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "portico.dev/L2Announcement" && c["status"] == "True")
        .map(|c| s(&c["message"]).rsplit(' ').next().unwrap_or_default().trim_matches('"').to_owned())
}

fn wait_announcer(c: &Cluster, svc: &str) -> String {
    let mut who = None;
    assert!(eventually(Duration::from_secs(15), || {
        who = wait_announcer_now(c, svc);
        who.is_some()
    }));
    who.unwrap()
}

#[test]
fn nftables_mode_carries_every_service_feature() {
    battery("nftables", "nf");
}

#[test]
fn userspace_mode_carries_cluster_ips_node_ports_and_affinity() {
    battery("userspace", "us");
}

#[test]
fn ipvs_mode_is_refused_with_the_reason() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["proxy", "--proxy-mode", "ipvs", "--kubeconfig", "/nonexistent"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("IP_VS"), "{err}");
}

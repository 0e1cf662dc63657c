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
            "lifecycle": {"preStop": {"exec": {"command": ["sleep", "2"]}}}
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
        self.c
            .pods(&format!("app={app}"))
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect()
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
                let body =
                    self.curl_from(&ns, url, "3").unwrap_or_else(|code| panic!("{url} from {node}: curl {code}"));
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

/// One three-node cluster at a time: on two cores, two at once make every timing in them slow.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn battery(mode: &str, short: &str) {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
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
    // A pod on n1, whose own node address is the kube-dns endpoint: its lookups are DNATed to
    // a local address (and one on another node is checked by the hairpin step below).
    let pod = pods.iter().find(|p| s(&p["spec"]["nodeName"]) == "n1").map(|p| s(&p["metadata"]["name"])).unwrap();
    let mut out = l.kubectl_exec(&pod, &["curl", "-s", "--max-time", "5", "http://web/"]);
    for _ in 0..2 {
        if out.status.success() {
            break;
        }
        // The resolver's retry comes after curl's 5 s: say so, then try again.
        eprintln!(
            "{mode}: curl http://web/ in {pod} failed ({}); retrying",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        out = l.kubectl_exec(&pod, &["curl", "-s", "--max-time", "10", "http://web/"]);
    }
    if !out.status.success() {
        let node = pods
            .iter()
            .find(|p| s(&p["metadata"]["name"]) == pod)
            .map(|p| s(&p["spec"]["nodeName"]))
            .unwrap_or_default();
        let logs = format!("{}\n{}\n{}", c.log(), c.agent_log("n2"), c.agent_log("n3"));
        let errors: Vec<&str> = logs.lines().filter(|l| l.contains("ERROR") || l.contains("WARN")).take(20).collect();
        panic!(
            "{mode}: curl http://web/ in {pod} on {node}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            errors.join("\n")
        );
    }
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
    c.apply(&service(
        "web",
        "web",
        json!({"ports": [{"name": "http", "port": 80, "targetPort": "http"},
        {"name": "alt", "port": 8081, "targetPort": 8080}]}),
    ));
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
    c.apply(&service(
        "web",
        "web",
        json!({"type": "NodePort", "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 2}}}),
    ));
    std::thread::sleep(Duration::from_millis(500));
    let sticky = l.answers_from_node("n2", &url, 15);
    assert_eq!(sticky.len(), 1, "{mode}: affinity held for 15 requests: {sticky:?}");
    // Each time the affinity has timed out, the next request is a fresh choice (1 in 6 that it
    // is the same pod; five rounds all alike would be a broken timeout).
    let mut fresh = sticky.clone();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(2600));
        fresh.extend(l.answers_from_node("n2", &url, 1));
    }
    assert!(fresh.len() >= 2, "{mode}: a new pod is chosen once the affinity timed out: {fresh:?}");
    // A long affinity to a pod that then goes: the client moves to a live pod at once
    // (its remembered endpoint is forgotten), not after the timeout.
    c.apply(&service(
        "web",
        "web",
        json!({"type": "NodePort", "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}}}),
    ));
    std::thread::sleep(Duration::from_millis(500));
    let sticky = l.answers_from_node("n2", &url, 3);
    assert_eq!(sticky.len(), 1, "{mode}: {sticky:?}");
    let gone = sticky.into_iter().next().unwrap();
    c.kubectl_ok(&["delete", "pod", &gone, "--grace-period=0", "--force"]);
    let moved = eventually(Duration::from_secs(10), || {
        l.curl_from(&l.node_ns("n2"), &url, "1").is_ok_and(|a| !a.starts_with(&format!("{gone} ")))
    });
    assert!(moved, "{mode}: a client whose pod went is sent to a live one");
    let again = l.answers_from_node("n2", &url, 5);
    assert_eq!(again.len(), 1, "{mode}: and sticks to it: {again:?}");
    l.wait_ready("web", 6);

    c.apply(&service("web", "web", json!({"type": "NodePort"})));
    std::thread::sleep(Duration::from_millis(500));
    assert!(l.answers_from_node("n2", &url, 15).len() >= 2, "{mode}: affinity switched off");

    udp_survives_endpoint_replacement(&l, mode);
    rolling_update_fails_no_request(&l, mode, &url);
    external_ips_and_type_changes(&l, mode);
    terminating_endpoints_serve_when_none_is_ready(&l, mode);
    metrics_and_health(&l, mode);
    if mode == "userspace" {
        // The engine holds the connections it relays (a restart ends them) and sees no
        // difference between local and remote endpoints.
        return;
    }
    established_connections_survive_a_proxy_restart(&mut l, mode, &vip);
    local_policies_load_balancer_and_failover(&mut l, mode);
}

/// A UDP Service with one endpoint: after the pod is replaced, the same client (same source
/// port, so the same conntrack entry) reaches the new pod within seconds.
fn udp_survives_endpoint_replacement(l: &Lab3, mode: &str) {
    let c = &l.c;
    c.apply(&deployment("udp", 1, Some("n2")));
    c.apply(
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "udp"},
            "spec": {"selector": {"app": "udp"}, "ports": [{"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"}]}})
        .to_string(),
    );
    let first = s(&l.wait_ready("udp", 1)[0]["metadata"]["name"]);
    let vip = l.cluster_ip("udp");
    let ask = |timeout: &str| -> Option<String> {
        let script = format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('',40053))\ns.settimeout({timeout})\ns.sendto(b'x',('{vip}',53))\nprint(s.recvfrom(100)[0].decode())"
        );
        let out = c.lab.exec(&l.node_ns("n1"), &["python3", "-c", &script]).unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let mut got = None;
    assert!(
        eventually(Duration::from_secs(15), || {
            got = ask("1");
            got.is_some()
        }),
        "{mode}: the UDP Service answers"
    );
    assert_eq!(got.as_deref(), Some(first.as_str()));
    c.kubectl_ok(&["delete", "pod", &first, "--grace-period=0", "--force"]);
    let second = s(&l.wait_ready("udp", 1)[0]["metadata"]["name"]);
    assert_ne!(first, second);
    let t = Instant::now();
    let ok = eventually(Duration::from_secs(10), || ask("0.5").as_deref() == Some(second.as_str()));
    assert!(ok, "{mode}: the same UDP client reaches the new pod {second} (stale conntrack entries deleted)");
    eprintln!("{mode}: UDP client moved to the new pod {:?} after it was Ready", t.elapsed());
}

/// A rolling update of the Deployment under continuous requests fails none of them.
fn rolling_update_fails_no_request(l: &Lab3, mode: &str, url: &str) {
    let c = &l.c;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (ok, failed) = std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            let (mut ok, mut failed) = (0, vec![]);
            let ns = l.node_ns("n1");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let at = std::time::SystemTime::now();
                match l.curl_from(&ns, url, "3") {
                    Ok(_) => ok += 1,
                    Err(code) => failed.push((code, jiff::Timestamp::try_from(at).unwrap().to_string())),
                }
            }
            (ok, failed)
        });
        c.kubectl_ok(&["set", "env", "deployment/web", "ROLL=1"]);
        let done = eventually(Duration::from_secs(180), || {
            let d = c.json(&["get", "deployment", "web"]);
            let st = &d["status"];
            st["updatedReplicas"] == 6
                && st["availableReplicas"] == 6
                && st["replicas"] == 6
                && d["metadata"]["generation"] == st["observedGeneration"]
        });
        assert!(done, "{mode}: the rollout finished:\n{}", c.kubectl_ok(&["get", "pods", "-o", "wide"]));
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        load.join().unwrap()
    });
    eprintln!("{mode}: rolling update under load: {ok} requests succeeded, {} failed", failed.len());
    assert!(ok > 20, "{mode}: requests kept flowing ({ok})");
    if !failed.is_empty() {
        // What the proxy and the agents did around the failures.
        let interesting = |log: String| -> String {
            log.lines()
                .filter(|l| ["synced", "Killing", "probe", "pod"].iter().any(|w| l.contains(w)))
                .collect::<Vec<_>>()
                .join("\n")
        };
        eprintln!("{mode}: n1:\n{}", interesting(c.log()));
        for n in ["n2", "n3"] {
            eprintln!("{mode}: {n}:\n{}", interesting(c.agent_log(n)));
        }
        eprintln!("{}", c.kubectl_ok(&["get", "pods", "-o", "wide"]));
    }
    assert!(
        failed.is_empty(),
        "{mode}: {} of {} requests failed during the rollout: {failed:?}",
        failed.len(),
        ok + failed.len()
    );
    l.wait_ready("web", 6);
}

/// externalIPs answer from outside (the client routes them to a node, as the user must), and
/// a Service moves through ClusterIP -> NodePort -> LoadBalancer -> ExternalName.
fn external_ips_and_type_changes(l: &Lab3, mode: &str) {
    let c = &l.c;
    c.apply(&service("types", "web", json!({"externalIPs": ["198.51.100.50"]})));
    c.lab.register("198.51.100.50/32").unwrap();
    c.lab.route(&l.client, "198.51.100.50/32", l.ip("n2").parse().unwrap()).unwrap();
    let ext = "http://198.51.100.50/";
    assert!(eventually(Duration::from_secs(10), || l.curl_from(&l.client, ext, "2").is_ok()), "{mode}: externalIP");
    let vip = l.cluster_ip("types");
    let cluster = format!("http://{vip}/");
    let n1 = l.node_ns("n1");
    assert!(l.curl_from(&n1, &cluster, "2").is_ok());

    c.apply(&service("types", "web", json!({"type": "NodePort"})));
    let np = format!("http://{}:{}/", l.ip("n3"), node_port(c, "types"));
    assert!(eventually(Duration::from_secs(10), || l.curl_from(&l.client, &np, "2").is_ok()), "{mode}: -> NodePort");
    assert!(
        eventually(Duration::from_secs(10), || l.curl_from(&l.client, ext, "2").is_err()),
        "{mode}: externalIP removed"
    );

    c.apply(&service("types", "web", json!({"type": "LoadBalancer"})));
    let lb = wait_lb_ip(c, "types");
    c.lab.register(&format!("{lb}/32")).unwrap();
    let lb_url = format!("http://{lb}/");
    assert!(
        eventually(Duration::from_secs(15), || l.curl_from(&l.client, &lb_url, "2").is_ok()),
        "{mode}: -> LoadBalancer {lb}"
    );
    assert!(l.curl_from(&l.client, &np, "2").is_ok(), "{mode}: a LoadBalancer keeps its NodePort");

    // The API clears the ClusterIP and NodePorts when the type becomes ExternalName.
    c.apply(
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "types"},
        "spec": {"type": "ExternalName", "externalName": "example.com"}})
        .to_string(),
    );
    assert!(
        eventually(Duration::from_secs(10), || l.curl_from(&l.client, &np, "2").is_err()
            && l.curl_from(&n1, &cluster, "2").is_err()),
        "{mode}: -> ExternalName: its old addresses no longer lead anywhere"
    );
}

/// A Service whose only pod is terminating (still serving during its preStop) keeps
/// answering from it: serving-terminating endpoints are used when none is ready.
fn terminating_endpoints_serve_when_none_is_ready(l: &Lab3, mode: &str) {
    let c = &l.c;
    let mut pod = pod_template("solo", Some("n3"));
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");
    pod["metadata"]["name"] = json!("solo");
    pod["spec"]["terminationGracePeriodSeconds"] = json!(30);
    pod["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"] = json!(["sleep", "12"]);
    c.apply(&pod.to_string());
    c.apply(&service("solo", "solo", json!({})));
    l.wait_ready("solo", 1);
    let url = format!("http://{}/", l.cluster_ip("solo"));
    let n1 = l.node_ns("n1");
    assert!(eventually(Duration::from_secs(10), || l.curl_from(&n1, &url, "2").is_ok()));
    c.kubectl_ok(&["delete", "pod", "solo", "--wait=false"]);
    // The slice marks it terminating (ready false, serving true); the proxy keeps it.
    let terminating = eventually(Duration::from_secs(10), || {
        let slices = c.json(&["get", "endpointslices", "-l", "kubernetes.io/service-name=solo"]);
        slices["items"][0]["endpoints"][0]["conditions"]["terminating"] == true
    });
    assert!(terminating, "{mode}: the endpoint is marked terminating");
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        let answer = l.curl_from(&n1, &url, "2");
        assert!(
            answer.as_ref().is_ok_and(|a| a.starts_with("solo ")),
            "{mode}: a terminating, serving endpoint still serves: {answer:?}"
        );
    }
}

/// A connection through a ClusterIP, established before the node's proxy is killed and
/// restarted (a full sync rewrites its table), goes on working: NAT state lives in conntrack.
fn established_connections_survive_a_proxy_restart(l: &mut Lab3, mode: &str, vip: &str) {
    use std::io::{BufRead, BufReader, Write};
    l.c.apply(&service(
        "web",
        "web",
        json!({"ports": [{"name": "http", "port": 80, "targetPort": "http"},
        {"name": "echo", "port": 9000, "targetPort": 9000}]}),
    ));
    let to: std::net::SocketAddr = format!("{vip}:9000").parse().unwrap();
    let n2 = l.node_ns("n2");
    let mut conn = None;
    assert!(eventually(Duration::from_secs(10), || {
        conn = l.c.lab.connect_tcp(&n2, to).ok();
        conn.is_some()
    }));
    let conn = conn.unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut writer = conn;
    let mut line = String::new();
    writer.write_all(b"one\n").unwrap();
    reader.read_line(&mut line).unwrap();
    assert!(line.ends_with(" one\n"), "{line:?}");
    let pod = line.split(' ').next().unwrap().to_owned();

    l.c.kill_agent("n2");
    std::thread::sleep(Duration::from_millis(500));
    l.c.start_agent("n2");
    // The restarted proxy has synced once it serves /healthz again.
    let healthy = eventually(Duration::from_secs(30), || {
        // 503 with an empty lastUpdated until the first sync.
        l.curl_from(&n2, "http://127.0.0.1:10256/healthz", "1")
            .is_ok_and(|b| b.contains("\"nodeEligible\":true") && !b.contains("\"lastUpdated\":\"\""))
    });
    assert!(healthy, "{mode}: the restarted proxy is healthy:\n{}", l.c.agent_log("n2"));
    line.clear();
    writer.write_all(b"two\n").unwrap();
    reader.read_line(&mut line).expect("the connection survived the proxy's restart");
    assert_eq!(line, format!("{pod} two\n"), "{mode}: same pod, same connection");
}

/// kube-proxy's operational surface: /healthz, /livez and /metrics under its names.
fn metrics_and_health(l: &Lab3, mode: &str) {
    let n1 = l.node_ns("n1");
    assert!(l.curl_from(&n1, "http://127.0.0.1:10256/healthz", "2").is_ok_and(|b| b.contains("\"nodeEligible\":true")));
    let health = l.curl_from(&n1, "http://127.0.0.1:10256/livez", "2").expect("/livez");
    let health: Value = serde_json::from_str(&health).expect("kube-proxy's JSON");
    assert!(health["lastUpdated"].as_str().is_some_and(|t| !t.is_empty()), "{health}");
    assert!(health["currentTime"].is_string(), "{health}");
    let metrics = l.curl_from(&n1, "http://127.0.0.1:10249/metrics", "2").expect("metrics");
    for name in [
        "kubeproxy_sync_proxy_rules_duration_seconds_bucket",
        "kubeproxy_sync_partial_proxy_rules_duration_seconds_count",
        "kubeproxy_network_programming_duration_seconds_count",
        "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
        "kubeproxy_sync_proxy_rules_endpoint_changes_total",
        "kubeproxy_sync_proxy_rules_service_changes_total",
    ] {
        assert!(metrics.contains(name), "{mode}: {name} in\n{metrics}");
    }
    let programmed = metrics
        .lines()
        .find(|l| l.starts_with("kubeproxy_network_programming_duration_seconds_count"))
        .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(programmed > 0.0, "{mode}: network programming latency was measured");
}

/// externalTrafficPolicy Local (client IP kept, local endpoints only, the health check node
/// port says which nodes have them), internalTrafficPolicy Local, and a LoadBalancer IP
/// announced by a node with endpoints, taken over by the other when that node stops.
fn local_policies_load_balancer_and_failover(l: &mut Lab3, mode: &str) {
    let c = &l.c;
    c.apply(&deployment("edge-a", 1, Some("n2")).replace("\"app\":\"edge-a\"", "\"app\":\"edge\",\"leg\":\"a\""));
    c.apply(&deployment("edge-b", 1, Some("n3")).replace("\"app\":\"edge-b\"", "\"app\":\"edge\",\"leg\":\"b\""));
    let pods = l.wait_ready("edge", 2);
    let on = |node: &str| s(&pods.iter().find(|p| s(&p["spec"]["nodeName"]) == node).unwrap()["metadata"]["name"]);
    c.apply(&service("edge", "edge", json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local"})));
    let lb = wait_lb_ip(c, "edge");
    c.lab.register(&format!("{lb}/32")).unwrap();
    let svc = c.json(&["get", "svc", "edge"]);
    let np = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    let hc = svc["spec"]["healthCheckNodePort"].as_u64().expect("a healthCheckNodePort");

    // NodePort on n2: only n2's pod, and it sees the client's own address.
    let url = format!("http://{}:{np}/", l.ip("n2"));
    let mut answer = Err(0);
    assert!(
        eventually(Duration::from_secs(10), || {
            answer = l.curl_from(&l.client, &url, "2");
            answer.is_ok()
        }),
        "{mode}: ETP Local NodePort on a node with an endpoint"
    );
    for _ in 0..5 {
        let a = l.curl_from(&l.client, &url, "2").unwrap();
        assert_eq!(a, format!("{} {}\n", on("n2"), l.client.ip()), "{mode}: local endpoint, client address kept");
    }
    // n1 has no endpoint: its NodePort drops, its health check says 503, n2's says 200.
    let n1_url = format!("http://{}:{np}/", l.ip("n1"));
    assert_eq!(l.curl_from(&l.client, &n1_url, "2"), Err(TIMED_OUT), "{mode}: no local endpoint, dropped");
    let hc_of = |node: &str| {
        let out = c
            .lab
            .exec(
                &l.client,
                &[
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--max-time",
                    "2",
                    &format!("http://{}:{hc}/healthz", l.ip(node)),
                ],
            )
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(eventually(Duration::from_secs(5), || hc_of("n2") == "200"), "{mode}: health check on n2");
    assert_eq!(hc_of("n1"), "503", "{mode}: health check on n1");
    let body = l.curl_from(&l.client, &format!("http://{}:{hc}/", l.ip("n3")), "2").unwrap();
    assert!(body.contains("\"localEndpoints\":1"), "{body}");

    // internalTrafficPolicy Local: from n2 only n2's pod; from n1 (none local) nothing.
    c.apply(&service("itp", "edge", json!({"internalTrafficPolicy": "Local"})));
    let itp = format!("http://{}/", l.cluster_ip("itp"));
    assert!(eventually(Duration::from_secs(10), || l.curl_from(&l.node_ns("n2"), &itp, "2").is_ok()));
    assert_eq!(l.answers_from_node("n2", &itp, 5), BTreeSet::from([on("n2")]), "{mode}: ITP Local");
    assert_eq!(l.curl_from(&l.node_ns("n1"), &itp, "2"), Err(TIMED_OUT), "{mode}: ITP Local without local endpoints");

    // The load balancer IP from the client on the same segment, no route configured: one of
    // n2 and n3 (the nodes with endpoints) answers ARP for it.
    let lb_url = format!("http://{lb}/");
    assert!(
        eventually(Duration::from_secs(15), || l.curl_from(&l.client, &lb_url, "2").is_ok()),
        "{mode}: LoadBalancer IP {lb} from the client\n{}",
        c.log()
    );
    let announcer = wait_announcer(c, "edge");
    assert!(announcer == "n2" || announcer == "n3", "{mode}: announced by {announcer}");
    let a = l.curl_from(&l.client, &lb_url, "2").unwrap();
    assert_eq!(a, format!("{} {}\n", on(&announcer), l.client.ip()), "{mode}: served by the announcing node");
    // loadBalancerSourceRanges: a range without the client drops it; with it, it passes.
    c.apply(&service(
        "edge",
        "edge",
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
        "loadBalancerSourceRanges": ["203.0.113.0/24"]}),
    ));
    assert!(
        eventually(Duration::from_secs(10), || l.curl_from(&l.client, &lb_url, "1") == Err(TIMED_OUT)),
        "{mode}: a client outside loadBalancerSourceRanges is dropped"
    );
    c.apply(&service(
        "edge",
        "edge",
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
        "loadBalancerSourceRanges": ["203.0.113.0/24", "198.51.100.0/24"]}),
    ));
    assert!(
        eventually(Duration::from_secs(10), || l.curl_from(&l.client, &lb_url, "2").is_ok()),
        "{mode}: a client inside loadBalancerSourceRanges passes"
    );
    let events = c.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=edge"]);
    assert!(events.contains("nodeAssigned"), "{mode}: an Event names the announcing node:\n{events}");

    // The announcing node's agent stops: the other node takes the address over within seconds.
    let other = if announcer == "n2" { "n3" } else { "n2" };
    let t = Instant::now();
    l.c.kill_agent(&announcer);
    let c = &l.c;
    let moved = eventually(Duration::from_secs(20), || {
        l.curl_from(&l.client, &lb_url, "1").is_ok_and(|a| a.starts_with(&on(other)))
    });
    assert!(moved, "{mode}: {other} takes {lb} over from {announcer}");
    eprintln!("{mode}: {lb} moved from {announcer} to {other} in {:?}", t.elapsed());
    assert!(eventually(Duration::from_secs(10), || wait_announcer_now(c, "edge").as_deref() == Some(other)));
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
fn iptables_mode_carries_every_service_feature() {
    battery("iptables", "ip");
}

#[test]
fn userspace_mode_carries_cluster_ips_node_ports_external_ips_and_affinity() {
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

/// `portico proxy` alone, against a `portico server` it shares no process with (as it would
/// run against any cluster's API), then `--cleanup` takes every rule away.
#[test]
fn a_standalone_proxy_follows_a_separate_api_server_and_cleans_up() {
    let Some(lab) = lab::Lab::new_or_skip("pxsa") else { return };
    let lan = lab.switch("lan", "198.51.100.0/24").unwrap();
    let n1 = lab.node("n1", &lan).unwrap();
    let p1 = lab.pod("p1", &n1).unwrap();
    lab.register("10.96.0.0/12").unwrap();
    lab.exec_ok(&n1, &["ip", "route", "add", "10.96.0.0/12", "dev", "cbr0"]).unwrap();
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", WHOAMI]);
    lab.spawn(&p1, cmd).unwrap();

    let data = tempfile::tempdir().unwrap();
    let log = |name: &str| std::fs::File::create(data.path().join(name)).unwrap();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_portico"));
    server
        .args(["server", "--bind", "0.0.0.0:6443", "--advertise-address", &n1.ip().to_string()])
        .arg("--data-dir")
        .arg(data.path())
        .stderr(log("server.log"));
    lab.spawn(&n1, server).unwrap();
    let kubeconfig = data.path().join("kubeconfig");
    let kubectl = |args: &[&str]| {
        let mut argv = vec!["kubectl", "--kubeconfig", kubeconfig.to_str().unwrap()];
        argv.extend_from_slice(args);
        lab.exec(&n1, &argv).unwrap()
    };
    assert!(eventually(Duration::from_secs(60), || kubeconfig.exists()
        && kubectl(&["get", "--raw", "/readyz"]).status.success()));

    let mut proxy = std::process::Command::new(env!("CARGO_BIN_EXE_portico"));
    proxy
        .args(["proxy", "--kubeconfig", kubeconfig.to_str().unwrap(), "--hostname-override", "n1"])
        .args(["--node-ip", &n1.ip().to_string(), "--cluster-cidr", "198.18.0.0/15"])
        .args(["--healthz-bind-address", "127.0.0.1:10256"])
        .env("RUST_LOG", "info")
        .stderr(log("proxy.log"));
    let running = lab.spawn(&n1, proxy).unwrap();

    let manifest = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext", "namespace": "default"},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "ext-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "ext"}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
         "endpoints": [{"addresses": [p1.ip().to_string()], "nodeName": "n1"}]}
    ]});
    let path = data.path().join("ext.json");
    std::fs::write(&path, manifest.to_string()).unwrap();
    let out = kubectl(&["apply", "-f", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svc: Value = serde_json::from_slice(&kubectl(&["get", "svc", "ext", "-o", "json"]).stdout).unwrap();
    let url = format!("http://{}/", s(&svc["spec"]["clusterIP"]));
    let curl = || lab.exec(&n1, &["curl", "-s", "--max-time", "2", &url]).unwrap();
    let ok = eventually(Duration::from_secs(20), || curl().status.success());
    assert!(
        ok,
        "the ClusterIP answers:\n{}",
        std::fs::read_to_string(data.path().join("proxy.log")).unwrap_or_default()
    );
    // The lab pod shares the machine's hostname; its answer names the caller: the node's bridge.
    let body = String::from_utf8_lossy(&curl().stdout).into_owned();
    assert!(body.ends_with(&format!(" {}\n", n1.gateway())), "{body}");
    let tables = lab.exec_ok(&n1, &["nft", "list", "tables"]).unwrap();
    assert!(tables.contains("table ip portico"), "{tables}");

    running.kill().unwrap();
    let out = lab.exec(&n1, &[env!("CARGO_BIN_EXE_portico"), "proxy", "--cleanup"]).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tables = lab.exec_ok(&n1, &["nft", "list", "tables"]).unwrap();
    assert!(!tables.contains("portico"), "cleanup removed the tables: {tables}");
    let saved = lab.exec_ok(&n1, &["iptables-save"]).unwrap();
    assert!(!saved.contains("KUBE-"), "{saved}");
    assert!(!curl().status.success(), "no rule leads to the pod any more");
}

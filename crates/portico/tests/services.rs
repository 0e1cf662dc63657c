//! The Service registry as kube-apiserver runs it: ClusterIPs from `--service-cluster-ip-range`,
//! NodePorts from `--service-node-port-range`, Service defaulting and validation, the
//! `kubernetes` Service, and the allocator metrics. Proven through the real kubectl (v1.32)
//! for what a user types and sees, and through kube-rs for concurrency, exhaustion and
//! crashes. Each test starts its own server.

mod common;

use common::Server;
use common::kubectl::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// kube-apiserver's defaults.
const DEFAULT_CIDR: &str = "10.96.0.0/12";
const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;
/// Usable addresses of 10.96.0.0/12: all but the network and broadcast addresses.
const DEFAULT_CIDR_SIZE: u64 = (1 << 20) - 2;

// ---------------------------------------------------------------------------------------------
// kubectl helpers (as in kubectl.rs)

/// A Service in the default namespace.
fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

/// `kubectl create -f -` of one object, which must succeed.
fn create(s: &Server, obj: &Value) -> String {
    ok_in(s, &["create", "-f", "-"], Some(&obj.to_string()))
}

/// `kubectl create -f -` of one object, which must fail; returns stderr.
fn create_fails(s: &Server, obj: &Value) -> String {
    fails(s, &["create", "-f", "-"], Some(&obj.to_string()))
}

/// `kubectl patch svc <name>` with a strategic merge patch, which must succeed.
fn patch(s: &Server, name: &str, patch: Value) -> String {
    ok(s, &["patch", "svc", name, "-p", &patch.to_string()])
}

fn patch_fails(s: &Server, name: &str, patch: Value) -> String {
    fails(s, &["patch", "svc", name, "-p", &patch.to_string()], None)
}

/// `kubectl get <args> -o json`, parsed.
fn get_json(s: &Server, args: &[&str]) -> Value {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&ok(s, &full)).expect("kubectl -o json prints JSON")
}

/// A Service of the default namespace as `kubectl get svc <name> -o json` prints it.
fn svc(s: &Server, name: &str) -> Value {
    get_json(s, &["svc", name])
}

/// Whether `kubectl get <args>` finds the object; any failure but NotFound fails the test.
fn exists(s: &Server, args: &[&str]) -> bool {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    let out = run(s, &full, None);
    if out.status.success() {
        return true;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(NotFound)"), "{}", show(&full, &out));
    false
}

/// Asserts that `text` contains every one of `wanted`.
#[track_caller]
fn assert_has(text: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(text.contains(w), "expected {w:?} in:\n{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Reading kubectl's tables (as in kubectl.rs)

#[derive(Debug)]
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn parse(text: &str) -> Table {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = lines.next().unwrap_or_else(|| panic!("no header line in {text:?}"));
        let starts = column_starts(header);
        let cut = |line: &str| -> Vec<String> {
            (0..starts.len())
                .map(|i| {
                    let from = starts[i].min(line.len());
                    let to = starts.get(i + 1).copied().unwrap_or(line.len()).min(line.len());
                    line[from..to].trim().to_string()
                })
                .collect()
        };
        Table { columns: cut(header), rows: lines.map(cut).collect() }
    }

    fn columns(&self) -> Vec<&str> {
        self.columns.iter().map(String::as_str).collect()
    }

    fn row(&self, name: &str) -> Vec<&str> {
        self.rows
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("no row {name:?} in {self:?}"))
            .iter()
            .map(String::as_str)
            .collect()
    }
}

/// Where each column title starts: the first character, and any character after two spaces.
fn column_starts(header: &str) -> Vec<usize> {
    let b = header.as_bytes();
    (0..b.len()).filter(|&i| b[i] != b' ' && (i == 0 || (i >= 2 && b[i - 1] == b' ' && b[i - 2] == b' '))).collect()
}

/// kubectl's human durations: `5s`, `2m3s`, `10m`, `3h`, `4d`.
fn is_age(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_digit()) && s.ends_with(['s', 'm', 'h', 'd', 'y'])
}

/// `kubectl get svc <name> [-n ns] -o wide`, as one row.
fn wide_row(s: &Server, ns: &str, name: &str) -> Vec<String> {
    let table = Table::parse(&ok(s, &["get", "svc", name, "-n", ns, "-o", "wide"]));
    assert_eq!(table.columns(), ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]);
    table.row(name).into_iter().map(String::from).collect()
}

// ---------------------------------------------------------------------------------------------
// Reading Services and metrics

/// Whether `ip` is inside `cidr`.
fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let (net, bits) = cidr.split_once('/').expect("a CIDR");
    let bits: u32 = bits.parse().expect("a prefix length");
    match (ip, net.parse::<IpAddr>().expect("a network address")) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `spec.clusterIPs` of a Service (JSON), parsed; "None" and absent give nothing.
fn cluster_ips(svc: &Value) -> Vec<IpAddr> {
    svc["spec"]["clusterIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.as_str())
        .filter(|ip| *ip != "None")
        .map(|ip| ip.parse().unwrap_or_else(|_| panic!("clusterIPs holds {ip:?}")))
        .collect()
}

/// The single cluster IP of a single-stack Service, checked against `spec.clusterIP`.
#[track_caller]
fn cluster_ip(svc: &Value) -> IpAddr {
    let ips = cluster_ips(svc);
    assert_eq!(ips.len(), 1, "one cluster IP: {}", svc["spec"]);
    assert_eq!(svc["spec"]["clusterIP"], ips[0].to_string(), "clusterIP is clusterIPs[0]: {}", svc["spec"]);
    ips[0]
}

/// The nodePort of every port (0 for none), in port order.
fn node_ports(svc: &Value) -> Vec<u16> {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["nodePort"].as_u64().map(|n| u16::try_from(n).expect("a port number")).unwrap_or(0))
        .collect()
}

/// The text of /metrics, with lookups of single series.
struct Metrics(String);

impl Metrics {
    fn get(s: &Server) -> Metrics {
        Metrics(ok(s, &["get", "--raw", "/metrics"]))
    }

    async fn fetch(client: &kube::Client) -> Metrics {
        let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
        Metrics(client.request_text(req).await.expect("GET /metrics"))
    }

    /// The value of one series, e.g. `name{cidr="10.96.0.0/12"}` or `name`.
    #[track_caller]
    fn value(&self, series: &str) -> u64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.rsplit_once(' ').filter(|(k, _)| *k == series).map(|(_, v)| v))
            .map(|v| v.parse::<f64>().unwrap_or_else(|_| panic!("{series} = {v:?}")) as u64)
            .unwrap_or_else(|| panic!("no series {series} in /metrics:\n{}", self.0))
    }

    /// The sum over every series of `name` (every CIDR).
    fn sum(&self, name: &str) -> u64 {
        self.0
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .map(|v| v as u64)
            .sum()
    }

    fn allocated_ips(&self, cidr: &str) -> u64 {
        self.value(&format!("kube_apiserver_clusterip_allocator_allocated_ips{{cidr=\"{cidr}\"}}"))
    }

    fn available_ips(&self, cidr: &str) -> u64 {
        self.value(&format!("kube_apiserver_clusterip_allocator_available_ips{{cidr=\"{cidr}\"}}"))
    }

    fn allocated_ports(&self) -> u64 {
        self.value("kube_apiserver_nodeport_allocator_allocated_ports")
    }

    fn available_ports(&self) -> u64 {
        self.value("kube_apiserver_nodeport_allocator_available_ports")
    }
}

// ---------------------------------------------------------------------------------------------
// The Service page of the Kubernetes docs
// (https://kubernetes.io/docs/concepts/services-networking/service/), every pattern under its
// own name so they can live side by side.

const DOCS: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: prod
---
# Defining a Service
apiVersion: v1
kind: Service
metadata:
  name: my-service
spec:
  selector:
    app.kubernetes.io/name: MyApp
  ports:
    - protocol: TCP
      port: 80
      targetPort: 9376
---
# Port definitions: a Pod's named port as targetPort
apiVersion: v1
kind: Pod
metadata:
  name: nginx
  labels:
    app.kubernetes.io/name: proxy
spec:
  containers:
  - name: nginx
    image: nginx:stable
    ports:
      - containerPort: 80
        name: http-web-svc
---
apiVersion: v1
kind: Service
metadata:
  name: nginx-service
spec:
  selector:
    app.kubernetes.io/name: proxy
  ports:
  - name: name-of-service-port
    protocol: TCP
    port: 80
    targetPort: http-web-svc
---
# Services without selectors, and their EndpointSlice
apiVersion: v1
kind: Service
metadata:
  name: selectorless
spec:
  ports:
    - name: http
      protocol: TCP
      port: 80
      targetPort: 9376
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: selectorless-1
  labels:
    kubernetes.io/service-name: selectorless
addressType: IPv4
ports:
  - name: http
    appProtocol: http
    protocol: TCP
    port: 9376
endpoints:
  - addresses:
      - "10.4.5.6"
  - addresses:
      - "10.1.2.3"
---
# Multi-port Services
apiVersion: v1
kind: Service
metadata:
  name: multi-port
spec:
  selector:
    app.kubernetes.io/name: MyApp
  ports:
    - name: http
      protocol: TCP
      port: 80
      targetPort: 9376
    - name: https
      protocol: TCP
      port: 443
      targetPort: 9377
---
# type: NodePort, the control plane choosing the port
apiVersion: v1
kind: Service
metadata:
  name: node-port
spec:
  type: NodePort
  selector:
    app.kubernetes.io/name: MyApp
  ports:
    - port: 80
---
# type: NodePort, choosing your own port
apiVersion: v1
kind: Service
metadata:
  name: node-port-fixed
spec:
  type: NodePort
  selector:
    app.kubernetes.io/name: MyApp
  ports:
    - port: 80
      # By default and for convenience, the `targetPort` is set to
      # the same value as the `port` field.
      targetPort: 80
      # Optional field
      nodePort: 30007
---
# type: LoadBalancer (the docs' example has a clusterIP outside the default range and a
# status: see `allocation_errors_have_kubernetes_messages`)
apiVersion: v1
kind: Service
metadata:
  name: load-balancer
spec:
  selector:
    app.kubernetes.io/name: MyApp
  ports:
    - name: http
      protocol: TCP
      port: 80
      targetPort: 9376
    - name: https
      protocol: TCP
      port: 443
      targetPort: 9377
  type: LoadBalancer
---
# type: ExternalName
apiVersion: v1
kind: Service
metadata:
  name: my-service
  namespace: prod
spec:
  type: ExternalName
  externalName: my.database.example.com
---
# External IPs
apiVersion: v1
kind: Service
metadata:
  name: external-ips
spec:
  selector:
    app.kubernetes.io/name: MyApp
  ports:
    - name: http
      protocol: TCP
      port: 80
      targetPort: 49152
  externalIPs:
    - 198.51.100.32
---
# Headless Services
apiVersion: v1
kind: Service
metadata:
  name: headless
spec:
  clusterIP: None
  selector:
    app.kubernetes.io/name: MyApp
  ports:
    - port: 80
---
# Session stickiness
apiVersion: v1
kind: Service
metadata:
  name: sticky
spec:
  selector:
    app.kubernetes.io/name: MyApp
  sessionAffinity: ClientIP
  ports:
    - port: 80
      targetPort: 9376
---
# Multiple protocols on one port number (as kube-dns): one nodePort for both.
apiVersion: v1
kind: Service
metadata:
  name: dns
spec:
  type: NodePort
  selector:
    k8s-app: kube-dns
  ports:
    - name: dns
      port: 53
      protocol: UDP
    - name: dns-tcp
      port: 53
      protocol: TCP
"#;

/// What `kubectl apply -f DOCS` prints, in manifest order.
const DOCS_OBJECTS: &[&str] = &[
    "namespace/prod",
    "service/my-service",
    "pod/nginx",
    "service/nginx-service",
    "service/selectorless",
    "endpointslice.discovery.k8s.io/selectorless-1",
    "service/multi-port",
    "service/node-port",
    "service/node-port-fixed",
    "service/load-balancer",
    "service/my-service",
    "service/external-ips",
    "service/headless",
    "service/sticky",
    "service/dns",
];

// ---------------------------------------------------------------------------------------------
// kubectl: what a user sees

/// Every pattern of the docs' Service page applies, and `kubectl get svc -o wide` and
/// `-o json` show what kube-apiserver would.
#[test]
fn docs_service_patterns_show_as_kubernetes_shows_them() {
    let s = Server::start();
    let out = apply(&s, DOCS);
    let expected: Vec<String> = DOCS_OBJECTS.iter().map(|o| format!("{o} created")).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{out}");

    let json: BTreeMap<&str, Value> = [
        "kubernetes",
        "my-service",
        "nginx-service",
        "selectorless",
        "multi-port",
        "node-port",
        "node-port-fixed",
        "load-balancer",
        "external-ips",
        "headless",
        "sticky",
        "dns",
    ]
    .into_iter()
    .map(|n| (n, svc(&s, n)))
    .collect();

    // Every Service that needs one has its own address from 10.96.0.0/12; 10.96.0.1 is the
    // `kubernetes` Service's.
    let mut ips = BTreeMap::new();
    for (name, v) in &json {
        if *name == "headless" {
            continue;
        }
        let ip = cluster_ip(v);
        assert!(in_cidr(ip, DEFAULT_CIDR), "{name}: {ip} is outside {DEFAULT_CIDR}");
        if *name != "kubernetes" {
            assert_ne!(ip.to_string(), "10.96.0.1", "{name} took the kubernetes Service's address");
        }
        if let Some(other) = ips.insert(ip, *name) {
            panic!("{name} and {other} share {ip}");
        }
    }
    assert_eq!(json["kubernetes"]["spec"]["clusterIP"], "10.96.0.1");

    // Node ports: from the range, one per port number, never shared between Services.
    let np = |name: &str| node_ports(&json[name]);
    let auto = np("node-port")[0];
    let (lb_http, lb_https) = (np("load-balancer")[0], np("load-balancer")[1]);
    let dns = np("dns");
    assert_eq!(np("node-port-fixed"), [30007]);
    assert_eq!(dns[0], dns[1], "UDP and TCP on port 53 share one nodePort");
    let all_ports = [auto, 30007, lb_http, lb_https, dns[0]];
    for p in all_ports {
        assert!(NODE_PORTS.contains(&p), "nodePort {p} is outside 30000-32767");
    }
    assert_eq!(all_ports.iter().collect::<BTreeSet<_>>().len(), all_ports.len(), "nodePorts are unique: {all_ports:?}");
    for name in ["kubernetes", "my-service", "nginx-service", "selectorless", "multi-port", "external-ips", "sticky"] {
        assert!(np(name).iter().all(|p| *p == 0), "{name} is not a NodePort Service: {}", json[name]["spec"]);
    }

    // `kubectl get svc -o wide`, row by row (AGE aside).
    let ip = |name: &str| json[name]["spec"]["clusterIP"].as_str().unwrap().to_string();
    let myapp = "app.kubernetes.io/name=MyApp";
    let rows: Vec<(&str, &str, [String; 6])> = vec![
        (
            "default",
            "kubernetes",
            ["ClusterIP".into(), "10.96.0.1".into(), "<none>".into(), "443/TCP".into(), "<none>".into(), String::new()],
        ),
        (
            "default",
            "my-service",
            ["ClusterIP".into(), ip("my-service"), "<none>".into(), "80/TCP".into(), myapp.into(), String::new()],
        ),
        (
            "default",
            "nginx-service",
            [
                "ClusterIP".into(),
                ip("nginx-service"),
                "<none>".into(),
                "80/TCP".into(),
                "app.kubernetes.io/name=proxy".into(),
                String::new(),
            ],
        ),
        (
            "default",
            "selectorless",
            ["ClusterIP".into(), ip("selectorless"), "<none>".into(), "80/TCP".into(), "<none>".into(), String::new()],
        ),
        (
            "default",
            "multi-port",
            [
                "ClusterIP".into(),
                ip("multi-port"),
                "<none>".into(),
                "80/TCP,443/TCP".into(),
                myapp.into(),
                String::new(),
            ],
        ),
        (
            "default",
            "node-port",
            [
                "NodePort".into(),
                ip("node-port"),
                "<none>".into(),
                format!("80:{auto}/TCP"),
                myapp.into(),
                String::new(),
            ],
        ),
        (
            "default",
            "node-port-fixed",
            [
                "NodePort".into(),
                ip("node-port-fixed"),
                "<none>".into(),
                "80:30007/TCP".into(),
                myapp.into(),
                String::new(),
            ],
        ),
        (
            "default",
            "load-balancer",
            [
                "LoadBalancer".into(),
                ip("load-balancer"),
                "<pending>".into(),
                format!("80:{lb_http}/TCP,443:{lb_https}/TCP"),
                myapp.into(),
                String::new(),
            ],
        ),
        (
            "default",
            "external-ips",
            [
                "ClusterIP".into(),
                ip("external-ips"),
                "198.51.100.32".into(),
                "80/TCP".into(),
                myapp.into(),
                String::new(),
            ],
        ),
        (
            "default",
            "headless",
            ["ClusterIP".into(), "None".into(), "<none>".into(), "80/TCP".into(), myapp.into(), String::new()],
        ),
        (
            "default",
            "sticky",
            ["ClusterIP".into(), ip("sticky"), "<none>".into(), "80/TCP".into(), myapp.into(), String::new()],
        ),
        (
            "default",
            "dns",
            [
                "NodePort".into(),
                ip("dns"),
                "<none>".into(),
                format!("53:{}/UDP,53:{}/TCP", dns[0], dns[1]),
                "k8s-app=kube-dns".into(),
                String::new(),
            ],
        ),
        (
            "prod",
            "my-service",
            [
                "ExternalName".into(),
                "<none>".into(),
                "my.database.example.com".into(),
                "<none>".into(),
                "<none>".into(),
                String::new(),
            ],
        ),
    ];
    let default_table = Table::parse(&ok(&s, &["get", "svc", "-o", "wide"]));
    assert_eq!(default_table.columns(), ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]);
    let prod_table = Table::parse(&ok(&s, &["get", "svc", "-n", "prod", "-o", "wide"]));
    for (ns, name, [type_, cluster, external, ports, selector, _]) in &rows {
        let table = if *ns == "prod" { &prod_table } else { &default_table };
        let row = table.row(name);
        assert_eq!(
            [row[1], row[2], row[3], row[4], row[6]],
            [type_.as_str(), cluster, external, ports, selector],
            "{ns}/{name}: {row:?}"
        );
        assert!(is_age(row[5]), "{ns}/{name}: {row:?}");
    }
    // A single Service by name prints the same row.
    assert_eq!(wide_row(&s, "default", "node-port-fixed")[4], "80:30007/TCP");
    let kubernetes = Table::parse(&ok(&s, &["get", "svc", "kubernetes"]));
    assert_eq!(kubernetes.columns(), ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]);
    assert_eq!(kubernetes.row("kubernetes")[1..5], ["ClusterIP", "10.96.0.1", "<none>", "443/TCP"]);

    // `-o json`: Kubernetes' defaults.
    for (name, v) in &json {
        let spec = &v["spec"];
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]), "{name}: {spec}");
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack", "{name}: {spec}");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster", "{name}: {spec}");
        if *name != "sticky" {
            assert_eq!(spec["sessionAffinity"], "None", "{name}: {spec}");
            assert!(spec.get("sessionAffinityConfig").is_none(), "{name}: {spec}");
        }
        let externally_reachable = ["node-port", "node-port-fixed", "load-balancer", "dns", "external-ips"];
        if externally_reachable.contains(name) {
            assert_eq!(spec["externalTrafficPolicy"], "Cluster", "{name}: {spec}");
        } else {
            assert!(spec.get("externalTrafficPolicy").is_none(), "{name} is not reachable from outside: {spec}");
        }
        for p in spec["ports"].as_array().unwrap() {
            assert!(p["protocol"] == "TCP" || p["protocol"] == "UDP", "{name}: {p}");
        }
    }
    let spec = |name: &str| json[name]["spec"].clone();
    assert_eq!(spec("my-service")["type"], "ClusterIP");
    assert_eq!(spec("my-service")["ports"], json!([{"port": 80, "protocol": "TCP", "targetPort": 9376}]));
    assert_eq!(
        spec("nginx-service")["ports"],
        json!([{"name": "name-of-service-port", "port": 80, "protocol": "TCP", "targetPort": "http-web-svc"}])
    );
    assert!(spec("selectorless").get("selector").is_none(), "{}", spec("selectorless"));
    assert_eq!(
        spec("multi-port")["ports"],
        json!([
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 9376},
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 9377},
        ])
    );
    assert_eq!(
        spec("node-port")["ports"],
        json!([{"port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": auto}]),
        "targetPort defaults to port"
    );
    assert_eq!(
        spec("dns")["ports"][0],
        json!({"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53, "nodePort": dns[0]})
    );
    assert_eq!(spec("load-balancer")["allocateLoadBalancerNodePorts"], true);
    assert_eq!(spec("external-ips")["externalIPs"], json!(["198.51.100.32"]));
    assert_eq!(spec("headless")["clusterIP"], "None");
    assert_eq!(spec("headless")["clusterIPs"], json!(["None"]));
    assert_eq!(spec("sticky")["sessionAffinity"], "ClientIP");
    assert_eq!(spec("sticky")["sessionAffinityConfig"], json!({"clientIP": {"timeoutSeconds": 10800}}));
    assert_eq!(
        spec("kubernetes")["ports"],
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
    );
    assert_eq!(json["kubernetes"]["metadata"]["labels"], json!({"component": "apiserver", "provider": "kubernetes"}));

    // ExternalName: no address, no families.
    let ext = get_json(&s, &["svc", "my-service", "-n", "prod"]);
    assert_eq!(ext["spec"]["type"], "ExternalName");
    assert_eq!(ext["spec"]["externalName"], "my.database.example.com");
    for absent in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "ports", "externalTrafficPolicy"] {
        assert!(ext["spec"].get(absent).is_none(), "an ExternalName Service has no {absent}: {}", ext["spec"]);
    }

    // The allocator metrics count exactly this: 11 addresses, 5 node ports.
    let m = Metrics::get(&s);
    assert_eq!(m.allocated_ips(DEFAULT_CIDR), ips.len() as u64);
    assert_eq!(m.allocated_ips(DEFAULT_CIDR), 11);
    assert_eq!(m.allocated_ips(DEFAULT_CIDR) + m.available_ips(DEFAULT_CIDR), DEFAULT_CIDR_SIZE);
    assert_eq!(m.allocated_ports(), 5);
    assert_eq!(m.allocated_ports() + m.available_ports(), NODE_PORTS.len() as u64);

    // Applying the same manifest again changes nothing: no new addresses or ports.
    let out = apply(&s, DOCS);
    let unchanged: Vec<String> = DOCS_OBJECTS.iter().map(|o| format!("{o} unchanged")).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), unchanged, "{out}");
    assert_eq!(svc(&s, "node-port")["spec"], json["node-port"]["spec"]);
    assert_eq!(svc(&s, "load-balancer")["spec"], json["load-balancer"]["spec"]);
    let m = Metrics::get(&s);
    assert_eq!((m.allocated_ips(DEFAULT_CIDR), m.allocated_ports()), (11, 5));
}

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
"#;

/// Changing `type` allocates what the new type needs and releases what it no longer needs,
/// as kube-apiserver's Service REST storage does.
#[test]
fn type_transitions_allocate_and_release() {
    let s = Server::start();
    apply(&s, WEB);
    let ip0 = cluster_ip(&svc(&s, "web"));
    assert!(in_cidr(ip0, DEFAULT_CIDR), "{ip0}");
    assert_eq!(Metrics::get(&s).allocated_ips(DEFAULT_CIDR), 2, "kubernetes and web");

    // ClusterIP -> NodePort (kubectl apply of the edited manifest): a nodePort is allocated,
    // the cluster IP kept.
    let out = apply(&s, &WEB.replace("spec:\n", "spec:\n  type: NodePort\n"));
    assert_eq!(out.trim(), "service/web configured");
    let v = svc(&s, "web");
    assert_eq!(v["spec"]["type"], "NodePort");
    assert_eq!(cluster_ip(&v), ip0, "the cluster IP is kept");
    let [np] = node_ports(&v)[..] else { panic!("one port: {}", v["spec"]) };
    assert!(NODE_PORTS.contains(&np), "{np}");
    assert_eq!(v["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(wide_row(&s, "default", "web")[1..5], ["NodePort", &ip0.to_string(), "<none>", &format!("80:{np}/TCP")]);
    let m = Metrics::get(&s);
    assert_eq!((m.allocated_ips(DEFAULT_CIDR), m.allocated_ports()), (2, 1));

    // NodePort -> LoadBalancer: the same nodePort and address, an external IP pending.
    patch(&s, "web", json!({"spec": {"type": "LoadBalancer"}}));
    let v = svc(&s, "web");
    assert_eq!(v["spec"]["type"], "LoadBalancer");
    assert_eq!((cluster_ip(&v), node_ports(&v)), (ip0, vec![np]));
    assert_eq!(v["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(
        wide_row(&s, "default", "web")[1..5],
        ["LoadBalancer", &ip0.to_string(), "<pending>", &format!("80:{np}/TCP")]
    );

    // ... and back: still the same, and allocateLoadBalancerNodePorts is dropped.
    patch(&s, "web", json!({"spec": {"type": "NodePort"}}));
    let v = svc(&s, "web");
    assert_eq!(v["spec"]["type"], "NodePort");
    assert_eq!((cluster_ip(&v), node_ports(&v)), (ip0, vec![np]));
    assert!(v["spec"].get("allocateLoadBalancerNodePorts").is_none(), "{}", v["spec"]);
    assert_eq!(wide_row(&s, "default", "web")[1..5], ["NodePort", &ip0.to_string(), "<none>", &format!("80:{np}/TCP")]);
    let m = Metrics::get(&s);
    assert_eq!((m.allocated_ips(DEFAULT_CIDR), m.allocated_ports()), (2, 1));

    // NodePort -> ClusterIP: the nodePort (and externalTrafficPolicy) are wiped and the port
    // is released; the address is kept.
    patch(&s, "web", json!({"spec": {"type": "ClusterIP"}}));
    let v = svc(&s, "web");
    assert_eq!(v["spec"]["type"], "ClusterIP");
    assert_eq!((cluster_ip(&v), node_ports(&v)), (ip0, vec![0]));
    assert!(v["spec"].get("externalTrafficPolicy").is_none(), "{}", v["spec"]);
    assert_eq!(wide_row(&s, "default", "web")[1..5], ["ClusterIP", &ip0.to_string(), "<none>", "80/TCP"]);
    assert_eq!(Metrics::get(&s).allocated_ports(), 0);
    // Released: another Service may take it.
    create(&s, &service("taker-port", json!({"type": "NodePort", "ports": [{"port": 81, "nodePort": np}]})));
    assert_eq!(node_ports(&svc(&s, "taker-port")), [np]);
    let m = Metrics::get(&s);
    assert_eq!((m.allocated_ips(DEFAULT_CIDR), m.allocated_ports()), (3, 1));

    // ClusterIP -> ExternalName: the cluster IP (and the families) are wiped and released.
    patch(&s, "web", json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}}));
    let v = svc(&s, "web");
    assert_eq!(v["spec"]["type"], "ExternalName");
    for absent in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        assert!(v["spec"].get(absent).is_none(), "ExternalName keeps no {absent}: {}", v["spec"]);
    }
    assert_eq!(wide_row(&s, "default", "web")[1..5], ["ExternalName", "<none>", "db.example.com", "80/TCP"]);
    assert_eq!(Metrics::get(&s).allocated_ips(DEFAULT_CIDR), 2, "web's address was released");
    create(&s, &service("taker-ip", json!({"clusterIP": ip0.to_string(), "ports": [{"port": 80}]})));
    assert_eq!(cluster_ip(&svc(&s, "taker-ip")), ip0);

    // ExternalName -> ClusterIP: a new address is allocated (the old one is taken now).
    patch(&s, "web", json!({"spec": {"type": "ClusterIP", "externalName": null}}));
    let v = svc(&s, "web");
    assert_eq!(v["spec"]["type"], "ClusterIP");
    let ip1 = cluster_ip(&v);
    assert!(in_cidr(ip1, DEFAULT_CIDR), "{ip1}");
    assert_ne!(ip1, ip0);
    assert_ne!(ip1.to_string(), "10.96.0.1");
    assert_eq!(v["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(v["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(wide_row(&s, "default", "web")[1..5], ["ClusterIP", &ip1.to_string(), "<none>", "80/TCP"]);
    let m = Metrics::get(&s);
    assert_eq!((m.allocated_ips(DEFAULT_CIDR), m.allocated_ports()), (4, 1));

    // ClusterIP -> LoadBalancer directly: a nodePort per port.
    patch(&s, "web", json!({"spec": {"type": "LoadBalancer"}}));
    let v = svc(&s, "web");
    let [lb] = node_ports(&v)[..] else { panic!("one port: {}", v["spec"]) };
    assert!(NODE_PORTS.contains(&lb) && lb != np, "{lb}");
    assert_eq!(cluster_ip(&v), ip1);
    assert_eq!(Metrics::get(&s).allocated_ports(), 2);

    // The load balancer's address is written to status (by a cloud controller), and shows.
    ok(
        &s,
        &[
            "patch",
            "svc",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.127"}]}}}"#,
        ],
    );
    assert_eq!(
        wide_row(&s, "default", "web")[1..5],
        ["LoadBalancer", &ip1.to_string(), "192.0.2.127", &format!("80:{lb}/TCP")]
    );
    assert_eq!(
        (cluster_ip(&svc(&s, "web")), node_ports(&svc(&s, "web"))),
        (ip1, vec![lb]),
        "status writes allocate nothing"
    );

    // LoadBalancer -> ClusterIP: node ports released, the load balancer status cleared.
    patch(&s, "web", json!({"spec": {"type": "ClusterIP"}}));
    let v = svc(&s, "web");
    assert_eq!((cluster_ip(&v), node_ports(&v)), (ip1, vec![0]));
    assert!(v["status"]["loadBalancer"].get("ingress").is_none(), "{}", v["status"]);
    assert_eq!(wide_row(&s, "default", "web")[1..5], ["ClusterIP", &ip1.to_string(), "<none>", "80/TCP"]);
    assert_eq!(Metrics::get(&s).allocated_ports(), 1, "taker-port");
}

/// A LoadBalancer with `externalTrafficPolicy: Local` gets a healthCheckNodePort from the
/// node port range, on create and when switched to Local; switching back releases it.
#[test]
fn local_load_balancers_get_a_health_check_node_port() {
    let s = Server::start();
    // On create, requested or allocated.
    create(
        &s,
        &service(
            "fixed-hc",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000, "ports": [{"port": 80}]}),
        ),
    );
    assert_eq!(svc(&s, "fixed-hc")["spec"]["healthCheckNodePort"], 31000);
    let err =
        create_fails(&s, &service("dup-hc", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]})));
    assert_has(&err, &["spec.ports[0].nodePort: Invalid value: 31000: provided port is already allocated"]);
    create(
        &s,
        &service("auto-hc", json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]})),
    );
    let v = svc(&s, "auto-hc");
    let hc = v["spec"]["healthCheckNodePort"].as_u64().expect("a healthCheckNodePort") as u16;
    assert!(NODE_PORTS.contains(&hc) && hc != 31000 && !node_ports(&v).contains(&hc), "{}", v["spec"]);
    assert_eq!(Metrics::get(&s).allocated_ports(), 4);

    // On update to Local, and released when back to Cluster.
    create(&s, &service("web", json!({"type": "LoadBalancer", "ports": [{"port": 80}]})));
    let np = node_ports(&svc(&s, "web"))[0];
    patch(&s, "web", json!({"spec": {"externalTrafficPolicy": "Local"}}));
    let v = svc(&s, "web");
    let hc = v["spec"]["healthCheckNodePort"].as_u64().expect("a healthCheckNodePort") as u16;
    assert!(NODE_PORTS.contains(&hc) && hc != np, "{hc}");
    assert_eq!(node_ports(&v), [np]);
    assert_eq!(Metrics::get(&s).allocated_ports(), 6);
    patch(&s, "web", json!({"spec": {"externalTrafficPolicy": "Cluster"}}));
    let v = svc(&s, "web");
    assert!(v["spec"].get("healthCheckNodePort").is_none(), "{}", v["spec"]);
    assert_eq!(Metrics::get(&s).allocated_ports(), 5);
    create(&s, &service("taker-hc", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": hc}]})));
}

/// Changing a nodePort in place releases the old one and takes the new one; an update that
/// loses a conflict or is a dry run holds on to nothing.
#[test]
fn node_port_updates_release_what_they_drop() {
    let s = Server::start();
    create(&s, &service("web", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30100}]})));

    patch(&s, "web", json!({"spec": {"ports": [{"port": 80, "nodePort": 30101}]}}));
    assert_eq!(node_ports(&svc(&s, "web")), [30101]);
    assert_eq!(Metrics::get(&s).allocated_ports(), 1, "30100 released");
    create(&s, &service("old-port", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30100}]})));
    let err =
        create_fails(&s, &service("new-port", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30101}]})));
    assert_has(&err, &["spec.ports[0].nodePort: Invalid value: 30101: provided port is already allocated"]);
    // Moving onto a taken port is refused, and keeps what the Service had.
    let err = patch_fails(&s, "web", json!({"spec": {"ports": [{"port": 80, "nodePort": 30100}]}}));
    assert_has(&err, &["spec.ports[0].nodePort: Invalid value: 30100: provided port is already allocated"]);
    assert_eq!(node_ports(&svc(&s, "web")), [30101]);

    // A dry-run update shows a new allocation but keeps nothing.
    create(&s, &service("plain", json!({"ports": [{"port": 80}]})));
    let out =
        ok(&s, &["patch", "svc", "plain", "--dry-run=server", "-o", "json", "-p", r#"{"spec":{"type":"NodePort"}}"#]);
    let dry: Value = serde_json::from_str(&out).unwrap();
    let dry_port = node_ports(&dry)[0];
    assert!(NODE_PORTS.contains(&dry_port), "{}", dry["spec"]);
    assert_eq!(svc(&s, "plain")["spec"]["type"], "ClusterIP");
    assert_eq!(Metrics::get(&s).allocated_ports(), 2, "a dry run holds nothing");
    create(&s, &service("dry-port", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": dry_port}]})));

    // An update that loses on resourceVersion gives back what it reserved.
    let stale = svc(&s, "plain");
    patch(&s, "plain", json!({"metadata": {"labels": {"touched": "yes"}}}));
    let mut edited = stale.clone();
    edited["spec"]["type"] = json!("NodePort");
    edited["spec"]["ports"][0]["nodePort"] = json!(30200);
    let err = fails(&s, &["replace", "-f", "-"], Some(&edited.to_string()));
    assert_has(&err, &["Error from server (Conflict)"]);
    assert_eq!(svc(&s, "plain")["spec"]["type"], "ClusterIP");
    assert_eq!(Metrics::get(&s).allocated_ports(), 3, "web, old-port, dry-port");
    create(&s, &service("after-conflict", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30200}]})));

    // So does a create that finds the name taken.
    let before = Metrics::get(&s);
    let err = create_fails(
        &s,
        &service(
            "web",
            json!({"type": "NodePort", "clusterIP": "10.96.40.40", "ports": [{"port": 80, "nodePort": 30201}]}),
        ),
    );
    assert_has(&err, &[r#"services "web" already exists"#]);
    let after = Metrics::get(&s);
    assert_eq!(
        (after.allocated_ips(DEFAULT_CIDR), after.allocated_ports()),
        (before.allocated_ips(DEFAULT_CIDR), before.allocated_ports())
    );
    create(
        &s,
        &service(
            "after-exists",
            json!({"type": "NodePort", "clusterIP": "10.96.40.40", "ports": [{"port": 80, "nodePort": 30201}]}),
        ),
    );
}

/// Deleting a namespace deletes its Services, and their addresses and ports come back.
#[test]
fn namespace_deletion_releases_its_services() {
    let s = Server::start();
    ok_in(
        &s,
        &["create", "-f", "-"],
        Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}}).to_string()),
    );
    let mut obj = service(
        "web",
        json!({"type": "NodePort", "clusterIP": "10.96.20.20", "ports": [{"port": 80, "nodePort": 30300}]}),
    );
    obj["metadata"]["namespace"] = json!("doomed");
    create(&s, &obj);
    let m = Metrics::get(&s);
    assert_eq!((m.allocated_ips(DEFAULT_CIDR), m.allocated_ports()), (2, 1));

    ok(&s, &["delete", "namespace", "doomed", "--wait=false"]);
    let released = common::eventually(Duration::from_secs(30), || {
        let m = Metrics::get(&s);
        !exists(&s, &["namespace", "doomed"]) && (m.allocated_ips(DEFAULT_CIDR), m.allocated_ports()) == (1, 0)
    });
    let m = Metrics::get(&s);
    assert!(
        released,
        "namespace still there or values held: {:?}",
        (m.allocated_ips(DEFAULT_CIDR), m.allocated_ports())
    );
    create(
        &s,
        &service(
            "web",
            json!({"type": "NodePort", "clusterIP": "10.96.20.20", "ports": [{"port": 80, "nodePort": 30300}]}),
        ),
    );
}

/// Deleting a Service releases its address and node ports at once: recreating it with the
/// same fixed values right after the delete returns succeeds, every time.
#[test]
fn deleting_releases_ip_and_node_ports() {
    let s = Server::start();
    let pinned = service(
        "pinned",
        json!({"type": "NodePort", "clusterIP": "10.96.10.10", "ports": [
            {"name": "http", "port": 80, "nodePort": 30080},
            {"name": "https", "port": 443, "nodePort": 30443},
        ]}),
    );
    for round in 0..5 {
        create(&s, &pinned);
        let v = svc(&s, "pinned");
        assert_eq!(cluster_ip(&v).to_string(), "10.96.10.10", "round {round}");
        assert_eq!(node_ports(&v), [30080, 30443], "round {round}");
        assert_eq!(
            wide_row(&s, "default", "pinned")[1..5],
            ["NodePort", "10.96.10.10", "<none>", "80:30080/TCP,443:30443/TCP"],
            "round {round}"
        );
        let m = Metrics::get(&s);
        assert_eq!((m.allocated_ips(DEFAULT_CIDR), m.allocated_ports()), (2, 2), "round {round}");

        // While it exists, both are taken.
        let err = create_fails(&s, &service("copy", json!({"clusterIP": "10.96.10.10", "ports": [{"port": 80}]})));
        assert_has(&err, &["provided IP is already allocated"]);
        let err =
            create_fails(&s, &service("copy", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30443}]})));
        assert_has(&err, &["spec.ports[0].nodePort: Invalid value: 30443: provided port is already allocated"]);
        assert!(!exists(&s, &["svc", "copy"]));

        let out = ok(&s, &["delete", "svc", "pinned"]);
        assert_eq!(out.trim(), r#"service "pinned" deleted"#);
        let m = Metrics::get(&s);
        assert_eq!((m.allocated_ips(DEFAULT_CIDR), m.allocated_ports()), (1, 0), "round {round}: released");
    }

    // Through kube-rs as well: delete, then create at once.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api: Api<Service> = Api::default_namespaced(s.client().await);
        let obj: Service = serde_json::from_value(pinned.clone()).unwrap();
        for round in 0..20 {
            let created =
                api.create(&PostParams::default(), &obj).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(created.spec.as_ref().unwrap().cluster_ip.as_deref(), Some("10.96.10.10"));
            api.delete("pinned", &DeleteParams::default()).await.unwrap();
        }
    });
}

/// The allocators' refusals carry kube-apiserver's messages, and a refused create holds on to
/// nothing.
#[test]
fn allocation_errors_have_kubernetes_messages() {
    let s = Server::start();
    create(&s, &service("fixed", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30007}]})));
    let before = Metrics::get(&s);
    assert_eq!((before.allocated_ips(DEFAULT_CIDR), before.allocated_ports()), (2, 1));

    // A nodePort outside --service-node-port-range.
    let err = create_fails(
        &s,
        &service("out-of-range", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 40000}]})),
    );
    assert_has(
        &err,
        &[
            r#"The Service "out-of-range" is invalid"#,
            "spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767",
        ],
    );
    // One already allocated, also as the second port.
    let err =
        create_fails(&s, &service("dup", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30007}]})));
    assert_has(
        &err,
        &[
            r#"The Service "dup" is invalid"#,
            "spec.ports[0].nodePort: Invalid value: 30007: provided port is already allocated",
        ],
    );
    let err = create_fails(
        &s,
        &service(
            "dup2",
            json!({"type": "LoadBalancer", "ports": [{"name": "a", "port": 81}, {"name": "b", "port": 82, "nodePort": 30007}]}),
        ),
    );
    assert_has(&err, &["spec.ports[1].nodePort: Invalid value: 30007: provided port is already allocated"]);

    // A clusterIP outside --service-cluster-ip-range.
    let err = create_fails(&s, &service("wrong-net", json!({"clusterIP": "192.168.1.1", "ports": [{"port": 80}]})));
    assert_has(
        &err,
        &[
            r#"The Service "wrong-net" is invalid"#,
            r#"spec.clusterIPs: Invalid value: []string{"192.168.1.1"}: failed to allocate IP 192.168.1.1: the provided IP (192.168.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"#,
        ],
    );
    // The docs' LoadBalancer example as printed, with its clusterIP from another cluster.
    let docs_lb = r#"
apiVersion: v1
kind: Service
metadata:
  name: my-service
spec:
  selector:
    app.kubernetes.io/name: MyApp
  ports:
    - protocol: TCP
      port: 80
      targetPort: 9376
  clusterIP: 10.0.171.239
  type: LoadBalancer
status:
  loadBalancer:
    ingress:
    - ip: 192.0.2.127
"#;
    let err = fails(&s, &["apply", "-f", "-"], Some(docs_lb));
    assert_has(
        &err,
        &["the provided IP (10.0.171.239) is not in the valid range. The range of valid IPs is 10.96.0.0/12"],
    );
    assert!(!exists(&s, &["svc", "my-service"]));
    // An address in use: the kubernetes Service's.
    let err = create_fails(&s, &service("taken", json!({"clusterIP": "10.96.0.1", "ports": [{"port": 80}]})));
    assert_has(
        &err,
        &[
            r#"The Service "taken" is invalid"#,
            r#"spec.clusterIPs: Invalid value: []string{"10.96.0.1"}: failed to allocate IP 10.96.0.1: provided IP is already allocated"#,
        ],
    );
    // Not an address at all.
    let err = create_fails(&s, &service("garbage", json!({"clusterIP": "10.96.0.300", "ports": [{"port": 80}]})));
    assert_has(&err, &[r#"The Service "garbage" is invalid"#, "spec.clusterIPs[0]: Invalid value: \"10.96.0.300\""]);

    // None of them was stored or holds anything.
    for name in ["out-of-range", "dup", "dup2", "wrong-net", "my-service", "taken", "garbage"] {
        assert!(!exists(&s, &["svc", name]), "{name} was stored");
    }
    let after = Metrics::get(&s);
    assert_eq!((after.allocated_ips(DEFAULT_CIDR), after.allocated_ports()), (2, 1), "refused creates hold nothing");

    // A dry run allocates nothing either, but shows what would be allocated.
    let out = ok_in(
        &s,
        &["create", "-f", "-", "--dry-run=server", "-o", "json"],
        Some(&service("dry", json!({"type": "NodePort", "ports": [{"port": 80}]})).to_string()),
    );
    let dry: Value = serde_json::from_str(&out).unwrap();
    assert!(in_cidr(cluster_ip(&dry), DEFAULT_CIDR), "{}", dry["spec"]);
    assert!(NODE_PORTS.contains(&node_ports(&dry)[0]), "{}", dry["spec"]);
    assert!(!exists(&s, &["svc", "dry"]));
    let after = Metrics::get(&s);
    assert_eq!((after.allocated_ips(DEFAULT_CIDR), after.allocated_ports()), (2, 1), "a dry run holds nothing");
    // What the dry run showed is still free.
    create(
        &s,
        &service(
            "real",
            json!({"type": "NodePort", "clusterIP": dry["spec"]["clusterIP"], "ports": [{"port": 80, "nodePort": node_ports(&dry)[0]}]}),
        ),
    );

    // The docs' example without its foreign clusterIP: the status it carries is the cloud
    // provider's to write and is dropped on create, so the external IP is pending.
    apply(&s, &docs_lb.replace("  clusterIP: 10.0.171.239\n", ""));
    let lb = svc(&s, "my-service");
    assert!(lb["status"]["loadBalancer"].get("ingress").is_none(), "{}", lb["status"]);
    let row = wide_row(&s, "default", "my-service");
    let np = node_ports(&lb)[0];
    assert_eq!(row[1..5], ["LoadBalancer", &cluster_ip(&lb).to_string(), "<pending>", &format!("80:{np}/TCP")]);
}

/// Service validation with kube-apiserver's messages; nothing invalid is stored.
#[test]
fn validation_errors_have_kubernetes_messages() {
    let s = Server::start();
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            service("cip-with-node-port", json!({"ports": [{"port": 80, "nodePort": 30080}]})),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
        ),
        (
            service("1-web", json!({"ports": [{"port": 80}]})),
            vec![
                r#"metadata.name: Invalid value: "1-web": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
            ],
        ),
        (
            service("web.v1", json!({"ports": [{"port": 80}]})),
            vec![r#"metadata.name: Invalid value: "web.v1": a DNS-1035 label must consist of"#],
        ),
        (
            service(&"a".repeat(64), json!({"ports": [{"port": 80}]})),
            vec!["metadata.name: Invalid value:", "must be no more than 63 characters"],
        ),
        (
            service("unnamed-ports", json!({"ports": [{"port": 80}, {"port": 443}]})),
            vec!["spec.ports[0].name: Required value", "spec.ports[1].name: Required value"],
        ),
        (
            service("bad-port-name", json!({"ports": [{"name": "Http", "port": 80}]})),
            vec![
                r#"spec.ports[0].name: Invalid value: "Http": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"#,
            ],
        ),
        (
            service("dup-names", json!({"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 8080}]})),
            vec![r#"spec.ports[1].name: Duplicate value: "http""#],
        ),
        (
            service(
                "dup-ports",
                json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80, "targetPort": 8080}]}),
            ),
            vec!["spec.ports[1]: Duplicate value: ", "Port:80"],
        ),
        (service("no-ports", json!({"selector": {"app": "x"}})), vec!["spec.ports: Required value"]),
        (
            service("port-zero", json!({"ports": [{"port": 0}]})),
            vec!["spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"],
        ),
        (
            service("bad-type", json!({"type": "Magic", "ports": [{"port": 80}]})),
            vec![r#"spec.type: Unsupported value: "Magic""#],
        ),
        (service("ext-no-name", json!({"type": "ExternalName"})), vec!["spec.externalName: Required value"]),
        (
            service(
                "bad-affinity",
                json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}, "ports": [{"port": 80}]}),
            ),
            vec![
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400",
            ],
        ),
    ];
    for (obj, wanted) in &cases {
        let err = create_fails(&s, obj);
        let name = obj["metadata"]["name"].as_str().unwrap();
        assert_has(&err, &[&format!(r#"The Service "{name}" is invalid"#)]);
        assert_has(&err, wanted);
        let listed = ok(&s, &["get", "svc", "-o", "name"]);
        assert_eq!(listed.trim(), "service/kubernetes", "{name} was stored");
    }
    let m = Metrics::get(&s);
    assert_eq!((m.allocated_ips(DEFAULT_CIDR), m.allocated_ports()), (1, 0), "refused creates hold nothing");

    // Same port number, different protocols, is fine.
    create(
        &s,
        &service(
            "udp-and-tcp",
            json!({"ports": [{"name": "a", "port": 53, "protocol": "UDP"}, {"name": "b", "port": 53}]}),
        ),
    );
}

/// `spec.clusterIP(s)` may not change once allocated, however the change is sent; the
/// refused address is not consumed. (kube-apiserver says `may not change once set` since
/// dual-stack Services, 1.20; the older `spec.clusterIP: ... field is immutable` is gone.)
#[test]
fn cluster_ip_is_immutable() {
    let s = Server::start();
    apply(&s, WEB);
    let ip = cluster_ip(&svc(&s, "web"));
    let other = if ip.to_string() == "10.96.0.50" { "10.96.0.51" } else { "10.96.0.50" };
    let refused = format!(r#"spec.clusterIPs[0]: Invalid value: []string{{"{other}"}}: may not change once set"#);

    // kubectl patch of clusterIP only, and of both fields.
    let err = patch_fails(&s, "web", json!({"spec": {"clusterIP": other}}));
    assert_has(&err, &[r#"The Service "web" is invalid"#, &refused]);
    let err = patch_fails(&s, "web", json!({"spec": {"clusterIP": other, "clusterIPs": [other]}}));
    assert_has(&err, &[r#"The Service "web" is invalid"#, &refused]);
    // kubectl apply of a manifest naming another address.
    let err =
        fails(&s, &["apply", "-f", "-"], Some(&WEB.replace("spec:\n", &format!("spec:\n  clusterIP: {other}\n"))));
    assert_has(&err, &[&refused]);
    // kubectl replace of the live object with the address edited.
    let mut live = svc(&s, "web");
    live["spec"]["clusterIP"] = json!(other);
    live["spec"]["clusterIPs"] = json!([other]);
    let err = fails(&s, &["replace", "-f", "-"], Some(&live.to_string()));
    assert_has(&err, &[&refused]);
    // Clearing it on a ClusterIP Service is refused too.
    let err = patch_fails(&s, "web", json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"]}}));
    assert_has(&err, &[r#"The Service "web" is invalid"#]);

    // Unchanged, and the refused address was not consumed.
    assert_eq!(cluster_ip(&svc(&s, "web")), ip);
    assert_eq!(Metrics::get(&s).allocated_ips(DEFAULT_CIDR), 2);
    create(&s, &service("other", json!({"clusterIP": other, "ports": [{"port": 80}]})));

    // Sending the same address (or leaving it out, as a PUT of an old client does) is fine.
    patch(&s, "web", json!({"spec": {"clusterIP": ip.to_string()}}));
    let mut live = svc(&s, "web");
    live["spec"].as_object_mut().unwrap().remove("clusterIP");
    live["spec"].as_object_mut().unwrap().remove("clusterIPs");
    live["metadata"]["labels"] = json!({"edited": "yes"});
    ok_in(&s, &["replace", "-f", "-"], Some(&live.to_string()));
    let v = svc(&s, "web");
    assert_eq!((cluster_ip(&v), &v["metadata"]["labels"]["edited"]), (ip, &json!("yes")));
    assert_eq!(Metrics::get(&s).allocated_ips(DEFAULT_CIDR), 3);
}

/// `--service-cluster-ip-range 10.96.0.0/16,fd00:10:96::/112`: dual-stack Services get an
/// address of each family, in the order of `ipFamilies`.
#[test]
fn dual_stack_services() {
    const V4: &str = "10.96.0.0/16";
    const V6: &str = "fd00:10:96::/112";
    let s = Server::start_with(&["--service-cluster-ip-range", &format!("{V4},{V6}")]);
    assert_eq!(svc(&s, "kubernetes")["spec"]["clusterIPs"], json!(["10.96.0.1"]));

    let manifest = r#"
apiVersion: v1
kind: Service
metadata:
  name: single
spec:
  selector: {app: x}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: prefer
spec:
  ipFamilyPolicy: PreferDualStack
  selector: {app: x}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: require-v6-first
spec:
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv6, IPv4]
  selector: {app: x}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: v6-only
spec:
  ipFamilies: [IPv6]
  selector: {app: x}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: headless-dual
spec:
  clusterIP: None
  ipFamilyPolicy: PreferDualStack
  selector: {app: x}
  ports: [{port: 80}]
"#;
    apply(&s, manifest);

    let single = svc(&s, "single");
    assert_eq!(single["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(single["spec"]["ipFamilies"], json!(["IPv4"]), "the first range is the default family");
    assert!(in_cidr(cluster_ip(&single), V4));

    let prefer = svc(&s, "prefer");
    let ips = cluster_ips(&prefer);
    assert_eq!(ips.len(), 2, "{}", prefer["spec"]);
    assert!(in_cidr(ips[0], V4) && in_cidr(ips[1], V6), "{ips:?}");
    assert_eq!(prefer["spec"]["clusterIP"], ips[0].to_string());
    assert_eq!(prefer["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    assert_eq!(prefer["spec"]["ipFamilyPolicy"], "PreferDualStack");

    let require = svc(&s, "require-v6-first");
    let rips = cluster_ips(&require);
    assert_eq!(rips.len(), 2, "{}", require["spec"]);
    assert!(in_cidr(rips[0], V6) && in_cidr(rips[1], V4), "{rips:?}");
    assert_eq!(require["spec"]["clusterIP"], rips[0].to_string());
    assert_eq!(require["spec"]["ipFamilies"], json!(["IPv6", "IPv4"]));

    let v6 = svc(&s, "v6-only");
    assert_eq!(v6["spec"]["ipFamilyPolicy"], "SingleStack");
    assert!(in_cidr(cluster_ip(&v6), V6));

    let headless = svc(&s, "headless-dual");
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    assert_eq!(headless["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));

    // No address is handed out twice.
    let all: Vec<IpAddr> = ["kubernetes", "single", "prefer", "require-v6-first", "v6-only"]
        .iter()
        .flat_map(|n| cluster_ips(&svc(&s, n)))
        .collect();
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), all.len(), "{all:?}");

    // kubectl shows the primary address.
    assert_eq!(wide_row(&s, "default", "prefer")[2], ips[0].to_string());
    assert_eq!(wide_row(&s, "default", "require-v6-first")[2], rips[0].to_string());
    let described = ok(&s, &["describe", "svc", "prefer"]);
    let squashed: Vec<String> = described.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    for line in [
        format!("IPs: {},{}", ips[0], ips[1]),
        "IP Family Policy: PreferDualStack".into(),
        "IP Families: IPv4,IPv6".into(),
    ] {
        assert!(squashed.contains(&line), "describe lacks {line:?}:\n{described}");
    }

    // Per-range metrics.
    let m = Metrics::get(&s);
    assert_eq!(m.allocated_ips(V4), 4, "kubernetes, single, prefer, require-v6-first");
    assert_eq!(m.allocated_ips(V6), 3, "prefer, require-v6-first, v6-only");
    assert_eq!(m.allocated_ips(V4) + m.available_ips(V4), (1 << 16) - 2);
    assert_eq!(
        m.allocated_ips(V6) + m.available_ips(V6),
        (1 << 16) - 1,
        "IPv6 reserves only the subnet-router anycast address"
    );

    // Upgrade to dual-stack by policy (docs: "Switching Services between single-stack and
    // dual-stack"): the IPv4 address is kept, an IPv6 one added.
    let v4 = cluster_ip(&single);
    patch(&s, "single", json!({"spec": {"ipFamilyPolicy": "PreferDualStack"}}));
    let up = svc(&s, "single");
    let up_ips = cluster_ips(&up);
    assert_eq!(up_ips.len(), 2, "{}", up["spec"]);
    assert_eq!(up_ips[0], v4);
    assert!(in_cidr(up_ips[1], V6), "{up_ips:?}");
    assert_eq!(up["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    assert_eq!(Metrics::get(&s).allocated_ips(V6), 4);

    // And down again: only the primary is kept, the secondary released.
    patch(&s, "single", json!({"spec": {"ipFamilyPolicy": "SingleStack"}}));
    let down = svc(&s, "single");
    assert_eq!(cluster_ips(&down), [v4]);
    assert_eq!(down["spec"]["ipFamilies"], json!(["IPv4"]));
    let m = Metrics::get(&s);
    assert_eq!((m.allocated_ips(V4), m.allocated_ips(V6)), (4, 3));

    // The primary family may not change.
    let err = patch_fails(&s, "v6-only", json!({"spec": {"ipFamilies": ["IPv4"]}}));
    assert_has(&err, &[r#"The Service "v6-only" is invalid"#]);
    assert_eq!(svc(&s, "v6-only")["spec"]["ipFamilies"], json!(["IPv6"]));

    // Deleting a dual-stack Service releases both addresses.
    ok(&s, &["delete", "svc", "prefer", "require-v6-first"]);
    let m = Metrics::get(&s);
    assert_eq!((m.allocated_ips(V4), m.allocated_ips(V6)), (2, 1));
}

/// On a single-stack cluster, RequireDualStack and a family that is not configured are
/// refused; PreferDualStack falls back to one family.
#[test]
fn single_stack_server_refuses_dual_stack_requirements() {
    let s = Server::start();
    let err = create_fails(
        &s,
        &service(
            "dual",
            json!({"ipFamilyPolicy": "RequireDualStack", "selector": {"app": "x"}, "ports": [{"port": 80}]}),
        ),
    );
    assert_has(
        &err,
        &[
            r#"The Service "dual" is invalid"#,
            r#"spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services"#,
        ],
    );
    let err = create_fails(
        &s,
        &service("v6", json!({"ipFamilies": ["IPv6"], "selector": {"app": "x"}, "ports": [{"port": 80}]})),
    );
    assert_has(
        &err,
        &[
            r#"The Service "v6" is invalid"#,
            r#"spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster"#,
        ],
    );
    let err = create_fails(&s, &service("v6-ip", json!({"clusterIP": "fd00::10", "ports": [{"port": 80}]})));
    assert_has(&err, &[r#"The Service "v6-ip" is invalid"#, "IPv6 is not configured on this cluster"]);
    assert_eq!(Metrics::get(&s).allocated_ips(DEFAULT_CIDR), 1, "refused creates hold nothing");

    create(
        &s,
        &service(
            "prefer",
            json!({"ipFamilyPolicy": "PreferDualStack", "selector": {"app": "x"}, "ports": [{"port": 80}]}),
        ),
    );
    let v = svc(&s, "prefer");
    assert!(in_cidr(cluster_ip(&v), DEFAULT_CIDR));
    assert_eq!(v["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(v["spec"]["ipFamilyPolicy"], "PreferDualStack");

    // Kubernetes' special case: a headless Service without a selector defaults to
    // RequireDualStack with both families, even on a single-stack cluster.
    create(&s, &service("headless-selectorless", json!({"clusterIP": "None", "ports": [{"port": 80}]})));
    let v = svc(&s, "headless-selectorless");
    assert_eq!(v["spec"]["ipFamilyPolicy"], "RequireDualStack");
    assert_eq!(v["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    assert_eq!(v["spec"]["clusterIPs"], json!(["None"]));
}

/// A NodePort range of ten ports: the eleventh nodePort is refused with kube-apiserver's
/// message, and the refused Service holds nothing (not even the address it would have had).
#[test]
fn node_port_exhaustion_is_a_clear_error_and_leaks_nothing() {
    let s = Server::start_with(&["--service-node-port-range", "30000-30009"]);
    let m = Metrics::get(&s);
    assert_eq!((m.allocated_ports(), m.available_ports()), (0, 10));

    // Fill the range: four Services of two ports, two of one.
    let mut taken = Vec::new();
    for i in 0..6 {
        let ports =
            if i < 4 { json!([{"name": "a", "port": 80}, {"name": "b", "port": 443}]) } else { json!([{"port": 80}]) };
        create(&s, &service(&format!("np-{i}"), json!({"type": "NodePort", "ports": ports})));
        taken.extend(node_ports(&svc(&s, &format!("np-{i}"))));
    }
    taken.sort();
    assert_eq!(taken, (30000..=30009).collect::<Vec<u16>>(), "every port of the range, each once");
    let full = Metrics::get(&s);
    assert_eq!((full.allocated_ports(), full.available_ports()), (10, 0));
    let ips_before = full.allocated_ips(DEFAULT_CIDR);
    assert_eq!(ips_before, 7);

    // The next one, NodePort or LoadBalancer, is refused.
    for (name, type_) in [("one-too-many", "NodePort"), ("lb-too-many", "LoadBalancer")] {
        let err = create_fails(&s, &service(name, json!({"type": type_, "ports": [{"port": 80}]})));
        assert_has(&err, &["Internal error occurred: failed to allocate a nodePort: range is full"]);
        assert!(!exists(&s, &["svc", name]), "{name} was stored");
    }
    // As is turning an existing Service into one.
    create(&s, &service("plain", json!({"ports": [{"port": 80}]})));
    let err = patch_fails(&s, "plain", json!({"spec": {"type": "NodePort"}}));
    assert_has(&err, &["failed to allocate a nodePort: range is full"]);
    assert_eq!(svc(&s, "plain")["spec"]["type"], "ClusterIP");
    let m = Metrics::get(&s);
    assert_eq!(m.allocated_ips(DEFAULT_CIDR), ips_before + 1, "only `plain` holds a new address");
    assert_eq!((m.allocated_ports(), m.available_ports()), (10, 0));

    // Services that need no nodePort still work.
    create(
        &s,
        &service(
            "lb-no-node-ports",
            json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}),
        ),
    );
    assert_eq!(node_ports(&svc(&s, "lb-no-node-ports")), [0]);

    // Freeing one port (a one-port Service) makes room for one, not two: a two-port Service is
    // refused without keeping the one port it could have had.
    let freed = node_ports(&svc(&s, "np-5"))[0];
    ok(&s, &["delete", "svc", "np-5"]);
    assert_eq!(Metrics::get(&s).available_ports(), 1);
    let err = create_fails(
        &s,
        &service("two", json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 443}]})),
    );
    assert_has(&err, &["failed to allocate a nodePort: range is full"]);
    assert_eq!(Metrics::get(&s).available_ports(), 1, "the failed create gave back its first port");
    create(&s, &service("one", json!({"type": "NodePort", "ports": [{"port": 80}]})));
    assert_eq!(node_ports(&svc(&s, "one")), [freed]);
    let m = Metrics::get(&s);
    assert_eq!((m.allocated_ports(), m.available_ports()), (10, 0));
    assert_eq!(m.allocated_ips(DEFAULT_CIDR), ips_before + 2, "plain, lb-no-node-ports and one, less np-5");
}

// ---------------------------------------------------------------------------------------------
// kube-rs: concurrency and crashes

fn api_service(name: &str, node_port: bool) -> Service {
    let spec = if node_port {
        json!({"type": "NodePort", "selector": {"app": name}, "ports": [{"port": 80}]})
    } else {
        json!({"selector": {"app": name}, "ports": [{"port": 80}]})
    };
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}))
        .unwrap()
}

async fn create_namespace(client: &kube::Client, ns: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
}

/// What one stored Service holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    uid: String,
    ips: Vec<String>,
    node_ports: Vec<i32>,
}

fn held(svc: &Service) -> Held {
    let spec = svc.spec.clone().unwrap_or_default();
    Held {
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        ips: spec.cluster_ips.unwrap_or_default().into_iter().filter(|ip| ip != "None").collect(),
        node_ports: spec.ports.unwrap_or_default().iter().filter_map(|p| p.node_port).filter(|n| *n != 0).collect(),
    }
}

/// Every Service in the cluster, by namespace/name.
async fn all_services(client: &kube::Client) -> BTreeMap<String, Held> {
    let api: Api<Service> = Api::all(client.clone());
    let list = api.list(&ListParams::default()).await.expect("list services");
    list.items
        .iter()
        .map(|s| {
            let key =
                format!("{}/{}", s.metadata.namespace.as_deref().unwrap_or(""), s.metadata.name.as_deref().unwrap());
            (key, held(s))
        })
        .collect()
}

/// Asserts that no two Services share an address or a nodePort; returns (addresses, ports).
#[track_caller]
fn assert_unique(services: &BTreeMap<String, Held>) -> (usize, usize) {
    let mut ips: HashMap<&str, &str> = HashMap::new();
    let mut ports: HashMap<i32, &str> = HashMap::new();
    for (name, h) in services {
        for ip in &h.ips {
            if let Some(other) = ips.insert(ip, name) {
                panic!("{name} and {other} share cluster IP {ip}");
            }
        }
        for p in &h.node_ports {
            if let Some(other) = ports.insert(*p, name) {
                panic!("{name} and {other} share nodePort {p}");
            }
        }
    }
    (ips.len(), ports.len())
}

/// How many Services `concurrent_creates_never_share_an_ip_or_node_port` creates: 10,000 take
/// about 5 s in a debug build on 2 cores. Override with PORTICO_SERVICE_SCALE.
fn scale_count() -> usize {
    std::env::var("PORTICO_SERVICE_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

/// Thousands of Services created by 32 concurrent clients: every one gets its own address,
/// and every NodePort Service its own port. Half are NodePort, up to what the range holds
/// (2,768 ports): with 10,000 Services the range is filled exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_share_an_ip_or_node_port() {
    let total = scale_count();
    let range = NODE_PORTS.len();
    let node_port_services = (total / 2).min(range);
    let s = Server::start_with(&["--service-node-port-range", "30000-32767"]);
    let client = s.client().await;
    create_namespace(&client, "scale").await;
    let api: Api<Service> = Api::namespaced(client.clone(), "scale");

    let started = Instant::now();
    let results: Vec<Result<Service, String>> = futures::stream::iter(0..total)
        .map(|i| {
            let api = api.clone();
            // Alternate while NodePort Services remain, then ClusterIP only.
            let node_port = i % 2 == 0 && i / 2 < node_port_services;
            async move {
                api.create(&PostParams::default(), &api_service(&format!("svc-{i}"), node_port))
                    .await
                    .map_err(|e| format!("svc-{i}: {e}"))
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let elapsed = started.elapsed();
    eprintln!("{total} Services ({node_port_services} NodePort) created by 32 clients in {elapsed:?}");
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(errors.is_empty(), "{} creates failed, e.g. {:?}", errors.len(), &errors[..errors.len().min(5)]);

    // What the creates answered and what a list shows agree, and nothing is shared.
    let answered: BTreeMap<String, Held> = results
        .iter()
        .map(|r| r.as_ref().unwrap())
        .map(|created| (format!("scale/{}", created.metadata.name.as_deref().unwrap()), held(created)))
        .collect();
    let listed = all_services(&client).await;
    assert_eq!(listed.len(), total + 1, "the Services and `kubernetes`");
    for (name, h) in &answered {
        assert_eq!(listed.get(name), Some(h), "{name} as created vs as listed");
        assert_eq!(h.ips.len(), 1, "{name}: {h:?}");
        let ip: IpAddr = h.ips[0].parse().unwrap();
        assert!(in_cidr(ip, DEFAULT_CIDR) && h.ips[0] != "10.96.0.1", "{name}: {ip}");
    }
    let (ips, ports) = assert_unique(&listed);
    assert_eq!(ips, total + 1);
    assert_eq!(ports, node_port_services);
    for h in listed.values() {
        assert!(h.node_ports.iter().all(|p| NODE_PORTS.contains(&(*p as u16))), "{h:?}");
    }

    let m = Metrics::fetch(&client).await;
    assert_eq!(m.allocated_ips(DEFAULT_CIDR), (total + 1) as u64);
    assert_eq!(m.allocated_ports(), node_port_services as u64);
    if node_port_services == range {
        // The range is exactly full: the next NodePort Service is refused.
        assert_eq!(m.available_ports(), 0);
        match api.create(&PostParams::default(), &api_service("one-more", true)).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 500, "{e:?}");
                assert!(e.message.contains("failed to allocate a nodePort: range is full"), "{e:?}");
            }
            other => panic!("expected the range to be full: {other:?}"),
        }
        assert_eq!(Metrics::fetch(&client).await.allocated_ips(DEFAULT_CIDR), (total + 1) as u64);
    }
    assert!(elapsed < Duration::from_secs(120), "{total} creates took {elapsed:?}");
}

/// Many clients asking at once for the same fixed address or nodePort: exactly one wins, the
/// others get kube-apiserver's refusal, and the losers hold nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_requests_for_one_value_have_one_winner() {
    let s = Server::start();
    let client = s.client().await;
    let api: Api<Service> = Api::default_namespaced(client.clone());
    for round in 0..5 {
        let ip = format!("10.96.30.{}", 10 + round);
        let node_port = 30400 + round;
        let results: Vec<Result<Service, kube::Error>> = futures::stream::iter(0..32)
            .map(|i| {
                let api = api.clone();
                // Half race for the address, half for the port.
                let spec = if i % 2 == 0 {
                    json!({"clusterIP": ip, "ports": [{"port": 80}]})
                } else {
                    json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": node_port}]})
                };
                let obj: Service = serde_json::from_value(service(&format!("r{round}-{i}"), spec)).unwrap();
                async move { api.create(&PostParams::default(), &obj).await }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        let mut won = (0, 0);
        for r in &results {
            match r {
                Ok(created) => {
                    let spec = created.spec.as_ref().unwrap();
                    if spec.type_.as_deref() == Some("NodePort") {
                        won.1 += 1;
                    } else {
                        assert_eq!(spec.cluster_ip.as_deref(), Some(ip.as_str()));
                        won.0 += 1;
                    }
                }
                Err(kube::Error::Api(e)) => {
                    assert_eq!(e.code, 422, "{e:?}");
                    assert!(
                        e.message.contains("provided IP is already allocated")
                            || e.message
                                .contains(&format!("Invalid value: {node_port}: provided port is already allocated")),
                        "{e:?}"
                    );
                }
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(won, (1, 1), "round {round}: one winner per value");
    }
    let listed = all_services(&client).await;
    assert_eq!(listed.len(), 1 + 10);
    let (ips, ports) = assert_unique(&listed);
    let m = Metrics::fetch(&client).await;
    assert_eq!((m.allocated_ips(DEFAULT_CIDR), m.allocated_ports()), (ips as u64, ports as u64));
    assert_eq!((ips, ports), (11, 5));
}

/// SIGKILL in the middle of a burst of concurrent Service creates: after the restart every
/// acknowledged Service is there with what it was given, no two Services share an address
/// or a port, and the allocators hold exactly what the stored Services hold (whatever was
/// reserved for creates that never committed is free again).
#[tokio::test(flavor = "multi_thread")]
async fn kill9_during_service_burst_keeps_acknowledged_and_leaks_nothing() {
    let mut server = Server::start();
    let client = server.client().await;
    create_namespace(&client, "burst").await;

    let acked: Arc<Mutex<Vec<Service>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..16 {
        let api: Api<Service> = Api::namespaced(client.clone(), "burst");
        let acked = acked.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            let mut failures = 0;
            while !stop.load(Ordering::Relaxed) {
                let svc = api_service(&format!("t{t}-{i}"), (t + i) % 2 == 0);
                i += 1;
                match tokio::time::timeout(Duration::from_secs(10), api.create(&PostParams::default(), &svc)).await {
                    Ok(Ok(created)) => acked.lock().unwrap().push(created),
                    // Once the server is gone every request fails; keep trying a little so
                    // that creates racing the kill are exercised, then stop.
                    _ => {
                        failures += 1;
                        if failures > 3 {
                            break;
                        }
                    }
                }
            }
        }));
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 200 {
        assert!(Instant::now() < deadline, "the burst made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t).await.expect("creator task ends").unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());

    server.spawn();
    let client = server.client().await;
    let stored = all_services(&client).await;
    let mut missing = Vec::new();
    for svc in &acked {
        let name = format!("burst/{}", svc.metadata.name.as_deref().unwrap());
        match stored.get(&name) {
            Some(h) => assert_eq!(h, &held(svc), "{name} changed across the crash"),
            None => missing.push(name),
        }
    }
    assert!(missing.is_empty(), "{} of {} acknowledged creates lost: {missing:?}", missing.len(), acked.len());
    let (ips, ports) = assert_unique(&stored);
    eprintln!("{} acknowledged creates, {} Services stored after the crash", acked.len(), stored.len());

    // What the stored Services hold is taken after the restart: asking for it is refused.
    let api: Api<Service> = Api::namespaced(client.clone(), "burst");
    let with_port =
        acked.iter().map(held).find(|h| !h.node_ports.is_empty()).expect("a NodePort Service was acknowledged");
    for spec in [
        json!({"clusterIP": with_port.ips[0], "ports": [{"port": 80}]}),
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": with_port.node_ports[0]}]}),
    ] {
        let obj: Service = serde_json::from_value(service("copy", spec.clone())).unwrap();
        match api.create(&PostParams::default(), &obj).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{e:?}");
                assert!(e.message.contains("already allocated"), "{e:?}");
            }
            other => panic!("{spec} was not refused after the restart: {other:?}"),
        }
    }

    // The allocators hold what the stored Services hold: nothing more, nothing less.
    let m = Metrics::fetch(&client).await;
    assert_eq!(m.allocated_ips(DEFAULT_CIDR), ips as u64, "allocated IPs vs Services with a cluster IP");
    assert_eq!(m.sum("kube_apiserver_clusterip_allocator_allocated_ips"), ips as u64);
    assert_eq!(m.allocated_ports(), ports as u64, "allocated ports vs nodePorts of stored Services");

    // New Services after the restart do not collide with those from before it.
    let after: Vec<Service> =
        futures::stream::iter(0..100)
            .map(|i| {
                let api = api.clone();
                async move {
                    api.create(&PostParams::default(), &api_service(&format!("after-{i}"), i % 2 == 0)).await.unwrap()
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
    assert_eq!(after.len(), 100);
    let stored = all_services(&client).await;
    let (ips_now, ports_now) = assert_unique(&stored);
    assert_eq!((ips_now, ports_now), (ips + 100, ports + 50));
    let m = Metrics::fetch(&client).await;
    assert_eq!((m.allocated_ips(DEFAULT_CIDR), m.allocated_ports()), ((ips + 100) as u64, (ports + 50) as u64));

    // And deleting releases: the metric follows.
    let first = acked.first().expect("something was acknowledged");
    api.delete(first.metadata.name.as_deref().unwrap(), &DeleteParams::default()).await.unwrap();
    let m = Metrics::fetch(&client).await;
    assert_eq!(m.allocated_ips(DEFAULT_CIDR), (ips + 99) as u64);
    assert_eq!(m.allocated_ports(), (ports + 50 - held(first).node_ports.len()) as u64);
}

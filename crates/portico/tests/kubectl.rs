//! The real kubectl (v1.32) against a real `portico server` process: what a Kubernetes user
//! types, and what kube-apiserver would make kubectl print. Each test starts its own server.

mod common;

use common::kubectl::*;
use common::{Server, eventually};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long anything asynchronous (controllers, watches) may take.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// kubectl helpers

/// `kubectl create -f -` of a ConfigMap: a JSON body. (`kubectl create configmap` sends
/// protobuf, which `imperative_create_commands` covers.)
fn create_cm(s: &Server, ns: &str, name: &str, data: &[(&str, &str)]) -> String {
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    });
    ok_in(s, &["create", "-f", "-"], Some(&cm.to_string()))
}

fn create_ns(s: &Server, name: &str) -> String {
    ok_in(
        s,
        &["create", "-f", "-"],
        Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}).to_string()),
    )
}

/// `kubectl get <args> -o json`, parsed.
fn get_json(s: &Server, args: &[&str]) -> Value {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&ok(s, &full)).expect("kubectl -o json prints JSON")
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

/// Collapses runs of whitespace on every line, so `describe` output can be matched as
/// `Port: http 80/TCP` whatever the alignment.
fn squash(text: &str) -> String {
    text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join("\n")
}

// ---------------------------------------------------------------------------------------------
// Reading kubectl's tables

/// One table as kubectl prints it: column titles and cells, cut at the header's column starts
/// (kubectl's tabwriter left-aligns every cell under its title, and empty cells stay empty).
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

    fn cell(&self, name: &str, column: &str) -> String {
        let i =
            self.columns.iter().position(|c| c == column).unwrap_or_else(|| panic!("no column {column} in {self:?}"));
        self.row(name)[i].to_string()
    }

    fn names(&self) -> Vec<&str> {
        self.rows.iter().map(|r| r[0].as_str()).collect()
    }
}

/// Where each column title starts: the first character, and any character after two spaces
/// (titles such as `NOMINATED NODE` contain a single space).
fn column_starts(header: &str) -> Vec<usize> {
    let b = header.as_bytes();
    (0..b.len()).filter(|&i| b[i] != b' ' && (i == 0 || (i >= 2 && b[i - 1] == b' ' && b[i - 2] == b' '))).collect()
}

/// kubectl's human durations: `5s`, `2m3s`, `10m`, `3h`, `4d`.
fn is_age(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_digit()) && s.ends_with(['s', 'm', 'h', 'd', 'y'])
}

// ---------------------------------------------------------------------------------------------
// Manifests

const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  labels:
    app: web
    tier: frontend
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
  - name: https
    port: 443
    targetPort: 8443
---
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: shop
spec:
  selector:
    app: db
  ports:
  - port: 5432
---
apiVersion: v1
kind: Pod
metadata:
  name: web-0
  namespace: shop
  labels:
    app: web
spec:
  containers:
  - name: web
    image: nginx:1.25
    ports:
    - containerPort: 8080
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-manual
  namespace: shop
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
ports:
- name: http
  port: 8080
  protocol: TCP
endpoints:
- addresses:
  - 10.244.0.5
  conditions:
    ready: true
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
spec:
  ingressClassName: nginx
  rules:
  - host: shop.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port:
              number: 80
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.25
      - name: sidecar
        image: busybox:1.36
        command: ["sleep", "infinity"]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  mode: production
  level: info
"#;

/// What `kubectl apply` prints for SHOP, in manifest order.
const SHOP_OBJECTS: &[&str] = &[
    "namespace/shop",
    "service/web",
    "service/db",
    "pod/web-0",
    "endpointslice.discovery.k8s.io/web-manual",
    "ingress.networking.k8s.io/web",
    "deployment.apps/web",
    "configmap/settings",
];

/// SHOP edited: the web Service's `tier` label changed and its https port removed, the
/// Deployment's web image and replicas changed, the ConfigMap's `level` key removed.
fn shop_edited() -> String {
    let edited = SHOP
        .replace("    tier: frontend\n", "    tier: edge\n")
        .replace("  - name: https\n    port: 443\n    targetPort: 8443\n", "")
        .replace("  replicas: 2\n", "  replicas: 4\n")
        .replace("      - name: web\n        image: nginx:1.25\n", "      - name: web\n        image: nginx:1.27\n")
        .replace("  level: info\n", "");
    assert_ne!(edited, SHOP);
    assert_eq!(edited.matches("nginx:1.27").count(), 1, "only the Deployment's image changes");
    edited
}

fn with_verb(verb: &str) -> Vec<String> {
    SHOP_OBJECTS.iter().map(|o| format!("{o} {verb}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn apply_creates_then_is_unchanged_then_configures_edits() {
    let s = Server::start();

    let out = apply(&s, SHOP);
    let created = with_verb("created");
    assert_eq!(out.lines().collect::<Vec<_>>(), created.iter().map(String::as_str).collect::<Vec<_>>(), "{out}");

    let out = apply(&s, SHOP);
    let unchanged = with_verb("unchanged");
    assert_eq!(out.lines().collect::<Vec<_>>(), unchanged.iter().map(String::as_str).collect::<Vec<_>>(), "{out}");

    let svc_before = get_json(&s, &["svc", "web", "-n", "shop"]);
    let deploy_before = get_json(&s, &["deployment", "web", "-n", "shop"]);

    let edited = shop_edited();
    let out = apply(&s, &edited);
    let expected: Vec<String> = SHOP_OBJECTS
        .iter()
        .map(|o| {
            let verb = if ["service/web", "deployment.apps/web", "configmap/settings"].contains(o) {
                "configured"
            } else {
                "unchanged"
            };
            format!("{o} {verb}")
        })
        .collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected.iter().map(String::as_str).collect::<Vec<_>>(), "{out}");

    // The Service: label changed, the removed port gone (a strategic merge patch with a
    // `$patch: delete` directive keyed on `port`), the remaining port intact.
    let svc = get_json(&s, &["svc", "web", "-n", "shop"]);
    assert_eq!(svc["metadata"]["labels"], json!({"app": "web", "tier": "edge"}));
    let ports = svc["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0]["name"], "http");
    assert_eq!(ports[0]["port"], 80);
    assert_eq!(ports[0]["targetPort"], 8080);
    assert_eq!(ports[0]["protocol"], "TCP");
    assert_eq!(svc["metadata"]["uid"], svc_before["metadata"]["uid"], "patched in place, not recreated");
    assert_eq!(svc["spec"]["clusterIP"], svc_before["spec"]["clusterIP"], "clusterIP kept");
    assert_ne!(svc["metadata"]["resourceVersion"], svc_before["metadata"]["resourceVersion"]);
    let last_applied: Value = serde_json::from_str(
        svc["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(last_applied["metadata"]["labels"]["tier"], "edge");

    // The Deployment: containers merged by name, so the sidecar keeps its command.
    let deploy = get_json(&s, &["deployment", "web", "-n", "shop"]);
    assert_eq!(deploy["spec"]["replicas"], 4);
    let containers = deploy["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    let names: Vec<&str> = containers.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["web", "sidecar"]);
    assert_eq!(containers[0]["image"], "nginx:1.27");
    assert_eq!(containers[1]["image"], "busybox:1.36");
    assert_eq!(containers[1]["command"], json!(["sleep", "infinity"]));
    assert_eq!(
        deploy["metadata"]["generation"].as_i64().unwrap(),
        deploy_before["metadata"]["generation"].as_i64().unwrap() + 1,
        "a spec change bumps generation"
    );

    // The ConfigMap: the key dropped from the manifest is deleted.
    let cm = get_json(&s, &["cm", "settings", "-n", "shop"]);
    assert_eq!(cm["data"], json!({"mode": "production"}));

    // Applying the edited manifest again changes nothing.
    let out = apply(&s, &edited);
    assert_eq!(out.lines().collect::<Vec<_>>(), unchanged.iter().map(String::as_str).collect::<Vec<_>>(), "{out}");
    let svc_again = get_json(&s, &["svc", "web", "-n", "shop"]);
    assert_eq!(svc_again["metadata"]["resourceVersion"], svc["metadata"]["resourceVersion"]);
}

#[test]
fn get_prints_kubernetes_tables() {
    let s = Server::start();
    apply(&s, SHOP);

    let svc = Table::parse(&ok(&s, &["get", "svc", "-n", "shop"]));
    assert_eq!(svc.columns(), ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]);
    assert_eq!(svc.names(), ["db", "web"], "sorted by name");
    let web = svc.row("web");
    assert_eq!(web[1], "ClusterIP");
    assert_eq!(web[3], "<none>");
    assert_eq!(web[4], "80/TCP,443/TCP");
    assert!(is_age(web[5]), "{web:?}");
    assert_eq!(svc.cell("db", "PORT(S)"), "5432/TCP");

    let wide = Table::parse(&ok(&s, &["get", "svc", "-n", "shop", "-o", "wide"]));
    assert_eq!(wide.columns(), ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]);
    assert_eq!(wide.cell("web", "SELECTOR"), "app=web");
    assert_eq!(wide.cell("db", "SELECTOR"), "app=db");

    let pods = Table::parse(&ok(&s, &["get", "pods", "-n", "shop"]));
    assert_eq!(pods.columns(), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let pod = pods.row("web-0");
    assert_eq!(&pod[1..4], ["0/1", "Pending", "0"]);
    assert!(is_age(pod[4]), "{pod:?}");
    let pods_wide = Table::parse(&ok(&s, &["get", "pods", "-n", "shop", "-o", "wide"]));
    assert_eq!(
        pods_wide.columns(),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    );
    assert_eq!(pods_wide.cell("web-0", "READINESS GATES"), "<none>");

    let slices = Table::parse(&ok(&s, &["get", "endpointslices", "-n", "shop"]));
    assert_eq!(slices.columns(), ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]);
    assert_eq!(&slices.row("web-manual")[1..4], ["IPv4", "8080", "10.244.0.5"]);
    // As on Kubernetes, the EndpointSlice controller adds one slice per selector Service; with
    // web-0 still Pending (no IP) and no db pods, both are empty placeholders.
    let controller_slices = |s: &Server| -> Vec<Vec<String>> {
        let t = Table::parse(&ok(s, &["get", "endpointslices", "-n", "shop"]));
        let mut rows: Vec<Vec<String>> = t
            .rows
            .iter()
            .filter(|r| r[0] != "web-manual")
            .map(|r| {
                let service = r[0].rsplit_once('-').map_or("", |(svc, _)| svc).to_string();
                vec![service, r[1].clone(), r[2].clone(), r[3].clone()]
            })
            .collect();
        rows.sort();
        rows
    };
    let want = [["db", "IPv4", "<unset>", "<unset>"], ["web", "IPv4", "<unset>", "<unset>"]];
    assert!(eventually(WAIT, || controller_slices(&s) == want), "{:?}", controller_slices(&s));
    // And the Endpoints controller one Endpoints per selector Service, with no addresses yet.
    let endpoints_rows = |s: &Server| -> Vec<Vec<String>> {
        let out = ok(s, &["get", "endpoints", "-n", "shop"]);
        if out.trim().is_empty() {
            return Vec::new();
        }
        Table::parse(&out).rows.iter().map(|r| r[..2].to_vec()).collect()
    };
    let want = [["db", "<none>"], ["web", "<none>"]];
    assert!(eventually(WAIT, || endpoints_rows(&s) == want), "{:?}", endpoints_rows(&s));

    let deploys = Table::parse(&ok(&s, &["get", "deploy", "-n", "shop"]));
    assert_eq!(deploys.columns(), ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert!(deploys.cell("web", "READY").ends_with("/2"), "{deploys:?}");
    let deploys_wide = Table::parse(&ok(&s, &["get", "deploy", "-n", "shop", "-o", "wide"]));
    assert_eq!(
        deploys_wide.columns(),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    );
    assert_eq!(deploys_wide.cell("web", "CONTAINERS"), "web,sidecar");
    assert_eq!(deploys_wide.cell("web", "IMAGES"), "nginx:1.25,busybox:1.36");
    assert_eq!(deploys_wide.cell("web", "SELECTOR"), "app=web");

    let ns = Table::parse(&ok(&s, &["get", "ns"]));
    assert_eq!(ns.columns(), ["NAME", "STATUS", "AGE"]);
    for name in ["default", "kube-system", "kube-public", "kube-node-lease", "shop"] {
        assert_eq!(ns.cell(name, "STATUS"), "Active");
    }

    let cms = Table::parse(&ok(&s, &["get", "cm", "-n", "shop"]));
    assert_eq!(cms.columns(), ["NAME", "DATA", "AGE"]);
    assert_eq!(cms.cell("settings", "DATA"), "2");

    let ing = Table::parse(&ok(&s, &["get", "ingress", "-n", "shop"]));
    assert_eq!(ing.columns(), ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]);
    assert_eq!(ing.row("web")[1..5], ["nginx", "shop.example.com", "", "80"]);

    // `all` is the category: pods, services and apps workloads, but not config or networking.
    let all = ok(&s, &["get", "all", "-n", "shop"]);
    for name in ["pod/web-0", "service/db", "service/web", "deployment.apps/web"] {
        assert!(all.lines().any(|l| l.starts_with(&format!("{name} "))), "{name} missing from get all:\n{all}");
    }
    for absent in ["configmap/", "ingress", "endpointslice", "namespace/"] {
        assert!(!all.contains(absent), "{absent} should not be in get all:\n{all}");
    }
    let headers: Vec<&str> = all.lines().filter(|l| l.starts_with("NAME ")).collect();
    assert!(headers.len() >= 3, "one table per kind:\n{all}");

    // Empty results.
    let out = run(&s, &["get", "pods", "-n", "default"], None);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "No resources found in default namespace.");
}

#[test]
fn get_yaml_round_trips_and_describe_works() {
    let s = Server::start();
    apply(&s, SHOP);

    let yaml = ok(&s, &["get", "cm", "settings", "-n", "shop", "-o", "yaml"]);
    let live = get_json(&s, &["cm", "settings", "-n", "shop"]);
    let uid = live["metadata"]["uid"].as_str().unwrap();
    let rv = live["metadata"]["resourceVersion"].as_str().unwrap();
    assert_eq!(uid.len(), 36, "a UUID: {uid}");
    assert!(rv.parse::<u64>().is_ok(), "{rv}");
    assert!(yaml.contains("apiVersion: v1\n") && yaml.contains("kind: ConfigMap\n"), "{yaml}");
    assert!(yaml.contains(&format!("  uid: {uid}\n")), "{yaml}");
    assert!(yaml.contains(&format!("  resourceVersion: \"{rv}\"\n")), "{yaml}");
    let created = live["metadata"]["creationTimestamp"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 20, "RFC 3339 seconds in UTC: {created}");
    assert!(yaml.contains(&format!("  creationTimestamp: \"{created}\"\n")), "{yaml}");

    // The printed object goes back in as is (optimistic concurrency on its resourceVersion).
    let edited = yaml.replace("mode: production", "mode: staging");
    assert_ne!(edited, yaml);
    let out = ok_in(&s, &["replace", "-f", "-"], Some(&edited));
    assert_eq!(out.trim(), "configmap/settings replaced");
    let after = get_json(&s, &["cm", "settings", "-n", "shop"]);
    assert_eq!(after["data"]["mode"], "staging");
    assert_eq!(after["metadata"]["uid"], uid);
    assert_eq!(after["metadata"]["creationTimestamp"], created);
    // The original printout is now stale.
    let err = fails(&s, &["replace", "-f", "-"], Some(&yaml));
    assert!(err.contains("Error from server (Conflict)"), "{err}");
    assert!(
        err.contains(r#"Operation cannot be fulfilled on configmaps "settings": the object has been modified; please apply your changes to the latest version and try again"#),
        "{err}"
    );
    assert_eq!(get_json(&s, &["cm", "settings", "-n", "shop"])["data"]["mode"], "staging");

    let svc = squash(&ok(&s, &["describe", "svc", "web", "-n", "shop"]));
    for line in [
        "Name: web",
        "Namespace: shop",
        "Labels: app=web",
        "tier=frontend",
        "Annotations: <none>",
        "Selector: app=web",
        "Type: ClusterIP",
        "Port: http 80/TCP",
        "TargetPort: 8080/TCP",
        "Port: https 443/TCP",
        "TargetPort: 8443/TCP",
        "Session Affinity: None",
        "Events: <none>",
    ] {
        assert!(svc.lines().any(|l| l == line), "describe svc lacks {line:?}:\n{svc}");
    }

    let pod = squash(&ok(&s, &["describe", "pod", "web-0", "-n", "shop"]));
    for line in ["Name: web-0", "Namespace: shop", "Labels: app=web", "Status: Pending", "Image: nginx:1.25"] {
        assert!(pod.lines().any(|l| l == line), "describe pod lacks {line:?}:\n{pod}");
    }
    // With no nodes the scheduler may already have reported why the pod stays Pending.
    assert!(
        pod.lines().any(|l| l == "Events: <none>") || pod.contains("FailedScheduling"),
        "describe pod events:\n{pod}"
    );
    assert!(pod.contains("QoS Class: BestEffort"), "{pod}");

    let err = fails(&s, &["describe", "svc", "nope", "-n", "shop"], None);
    assert!(err.contains(r#"services "nope" not found"#), "{err}");
}

#[test]
fn label_and_annotate() {
    let s = Server::start();
    apply(&s, SHOP);
    let labels = |s: &Server| get_json(s, &["svc", "web", "-n", "shop"])["metadata"]["labels"].clone();
    let annotations = |s: &Server| get_json(s, &["svc", "web", "-n", "shop"])["metadata"]["annotations"].clone();

    assert_eq!(ok(&s, &["label", "svc", "web", "-n", "shop", "team=payments"]).trim(), "service/web labeled");
    assert_eq!(labels(&s), json!({"app": "web", "tier": "frontend", "team": "payments"}));

    let err = fails(&s, &["label", "svc", "web", "-n", "shop", "team=search"], None);
    assert!(err.contains("'team' already has a value (payments), and --overwrite is false"), "{err}");
    assert_eq!(labels(&s)["team"], "payments");

    assert_eq!(
        ok(&s, &["label", "svc", "web", "-n", "shop", "team=search", "--overwrite"]).trim(),
        "service/web labeled"
    );
    assert_eq!(labels(&s)["team"], "search");

    assert_eq!(ok(&s, &["label", "svc", "web", "-n", "shop", "team-"]).trim(), "service/web unlabeled");
    assert_eq!(labels(&s), json!({"app": "web", "tier": "frontend"}));

    // Label selectors see the change.
    ok(&s, &["label", "pod", "web-0", "-n", "shop", "track=canary"]);
    let pods = ok(&s, &["get", "pods", "-n", "shop", "-l", "track=canary", "-o", "name"]);
    assert_eq!(pods.trim(), "pod/web-0");
    let out = run(&s, &["get", "pods", "-n", "shop", "-l", "track=stable", "-o", "name"], None);
    assert!(out.status.success() && out.stdout.is_empty(), "{}", show(&["get"], &out));

    // An invalid label value is refused by the server's validation.
    let err = fails(&s, &["label", "svc", "web", "-n", "shop", "bad=has space"], None);
    assert!(err.contains("invalid label value") || err.contains("Invalid value"), "{err}");

    assert_eq!(
        ok(&s, &["annotate", "svc", "web", "-n", "shop", "example.com/owner=alice"]).trim(),
        "service/web annotated"
    );
    assert_eq!(annotations(&s)["example.com/owner"], "alice");
    let err = fails(&s, &["annotate", "svc", "web", "-n", "shop", "example.com/owner=bob"], None);
    assert!(err.contains("already has a value (alice)"), "{err}");
    assert_eq!(annotations(&s)["example.com/owner"], "alice");
    ok(&s, &["annotate", "svc", "web", "-n", "shop", "example.com/owner=bob", "--overwrite"]);
    assert_eq!(annotations(&s)["example.com/owner"], "bob");
    assert_eq!(ok(&s, &["annotate", "svc", "web", "-n", "shop", "example.com/owner-"]).trim(), "service/web annotated");
    let after = annotations(&s);
    assert!(after.get("example.com/owner").is_none(), "{after}");
    assert!(after.get("kubectl.kubernetes.io/last-applied-configuration").is_some(), "other annotations kept: {after}");
}

#[test]
fn patch_merge_json_and_strategic() {
    let s = Server::start();
    apply(&s, SHOP);
    let data = |s: &Server| get_json(s, &["cm", "settings", "-n", "shop"])["data"].clone();

    // JSON merge patch: null deletes a key.
    let out = ok(
        &s,
        &["patch", "cm", "settings", "-n", "shop", "--type=merge", "-p", r#"{"data":{"mode":"canary","level":null}}"#],
    );
    assert_eq!(out.trim(), "configmap/settings patched");
    assert_eq!(data(&s), json!({"mode": "canary"}));

    // The same patch again changes nothing, and the server says so by keeping the object.
    let out = ok(&s, &["patch", "cm", "settings", "-n", "shop", "--type=merge", "-p", r#"{"data":{"mode":"canary"}}"#]);
    assert_eq!(out.trim(), "configmap/settings patched (no change)");

    // JSON patch.
    let out = ok(
        &s,
        &[
            "patch",
            "cm",
            "settings",
            "-n",
            "shop",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/data/extra","value":"1"},{"op":"remove","path":"/data/mode"}]"#,
        ],
    );
    assert_eq!(out.trim(), "configmap/settings patched");
    assert_eq!(data(&s), json!({"extra": "1"}));
    let err = fails(
        &s,
        &[
            "patch",
            "cm",
            "settings",
            "-n",
            "shop",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/data/extra","value":"2"},{"op":"remove","path":"/data/extra"}]"#,
        ],
        None,
    );
    assert!(err.contains("is invalid") && err.contains("test"), "{err}");
    assert_eq!(data(&s), json!({"extra": "1"}), "a failed test op applies nothing");
    let err = fails(
        &s,
        &["patch", "cm", "settings", "-n", "shop", "--type=json", "-p", r#"[{"op":"remove","path":"/data/missing"}]"#],
        None,
    );
    assert!(err.contains("is invalid"), "{err}");

    // Strategic merge patch (kubectl's default): containers merge by name.
    let before = get_json(&s, &["deploy", "web", "-n", "shop"]);
    let out = ok(
        &s,
        &[
            "patch",
            "deploy",
            "web",
            "-n",
            "shop",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.27"}]}}}}"#,
        ],
    );
    assert_eq!(out.trim(), "deployment.apps/web patched");
    let deploy = get_json(&s, &["deploy", "web", "-n", "shop"]);
    let containers = deploy["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2, "{containers:?}");
    assert_eq!((containers[0]["name"].as_str(), containers[0]["image"].as_str()), (Some("web"), Some("nginx:1.27")));
    assert_eq!(
        (containers[1]["name"].as_str(), containers[1]["image"].as_str()),
        (Some("sidecar"), Some("busybox:1.36"))
    );
    assert_eq!(deploy["metadata"]["generation"].as_i64(), before["metadata"]["generation"].as_i64().map(|g| g + 1));

    // `$patch: delete` removes one element by its merge key.
    ok(
        &s,
        &[
            "patch",
            "deploy",
            "web",
            "-n",
            "shop",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}"#,
        ],
    );
    let deploy = get_json(&s, &["deploy", "web", "-n", "shop"]);
    let names: Vec<&str> = deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web"]);

    // Service ports merge on `port`: a new port is added, an existing one updated in place.
    ok(
        &s,
        &[
            "patch",
            "svc",
            "web",
            "-n",
            "shop",
            "-p",
            r#"{"spec":{"ports":[{"name":"alt","port":8080},{"port":80,"targetPort":9090}]}}"#,
        ],
    );
    let svc = get_json(&s, &["svc", "web", "-n", "shop"]);
    let ports: Vec<(i64, Value)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_i64().unwrap(), p["targetPort"].clone()))
        .collect();
    assert_eq!(ports.len(), 3, "{ports:?}");
    assert!(ports.contains(&(80, json!(9090))), "{ports:?}");
    assert!(ports.contains(&(443, json!(8443))), "{ports:?}");
    assert!(ports.contains(&(8080, json!(8080))), "targetPort defaults to port: {ports:?}");

    // With --type=merge the list is replaced wholesale instead.
    ok(
        &s,
        &[
            "patch",
            "svc",
            "web",
            "-n",
            "shop",
            "--type=merge",
            "-p",
            r#"{"spec":{"ports":[{"name":"only","port":81}]}}"#,
        ],
    );
    let svc = get_json(&s, &["svc", "web", "-n", "shop"]);
    assert_eq!(svc["spec"]["ports"].as_array().unwrap().len(), 1);
    assert_eq!(svc["spec"]["ports"][0]["port"], 81);

    // A patch that breaks validation is refused and changes nothing.
    let err = fails(
        &s,
        &["patch", "svc", "web", "-n", "shop", "--type=merge", "-p", r#"{"spec":{"ports":[{"port":0}]}}"#],
        None,
    );
    assert!(err.contains(r#"The Service "web" is invalid"#), "{err}");
    assert!(err.contains("spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"), "{err}");
    assert_eq!(get_json(&s, &["svc", "web", "-n", "shop"])["spec"]["ports"][0]["port"], 81);

    let err = fails(&s, &["patch", "cm", "missing", "-n", "shop", "--type=merge", "-p", "{}"], None);
    assert!(err.contains(r#"configmaps "missing" not found"#), "{err}");
}

#[test]
fn server_side_apply_creates_and_updates() {
    let s = Server::start();
    let cm = |mode: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: default\ndata:\n  mode: {mode}\n"
        )
    };
    let out = ok_in(&s, &["apply", "--server-side", "-f", "-"], Some(&cm("blue")));
    assert_eq!(out.trim(), "configmap/ssa serverside-applied");
    let first = get_json(&s, &["cm", "ssa"]);
    assert_eq!(first["data"], json!({"mode": "blue"}));

    let out = ok_in(&s, &["apply", "--server-side", "-f", "-"], Some(&cm("green")));
    assert_eq!(out.trim(), "configmap/ssa serverside-applied");
    let second = get_json(&s, &["cm", "ssa"]);
    assert_eq!(second["data"], json!({"mode": "green"}));
    assert_eq!(second["metadata"]["uid"], first["metadata"]["uid"]);

    // A Deployment through server-side apply, then scaled by a second apply.
    let deploy = SHOP
        .split("---")
        .find(|d| d.contains("kind: Deployment"))
        .unwrap()
        .replace("namespace: shop", "namespace: default");
    let out = ok_in(&s, &["apply", "--server-side", "-f", "-"], Some(&deploy));
    assert_eq!(out.trim(), "deployment.apps/web serverside-applied");
    let out = ok_in(&s, &["apply", "--server-side", "-f", "-"], Some(&deploy.replace("replicas: 2", "replicas: 5")));
    assert_eq!(out.trim(), "deployment.apps/web serverside-applied");
    let d = get_json(&s, &["deploy", "web"]);
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 2);
}

#[test]
fn create_of_an_existing_object_fails() {
    let s = Server::start();
    apply(&s, SHOP);
    let cm = SHOP.split("---").find(|d| d.contains("kind: ConfigMap")).unwrap();
    let err = fails(&s, &["create", "-f", "-"], Some(cm));
    assert!(err.contains("Error from server (AlreadyExists)"), "{err}");
    assert!(err.contains(r#"configmaps "settings" already exists"#), "{err}");

    let deploy = SHOP.split("---").find(|d| d.contains("kind: Deployment")).unwrap().replace("nginx:1.25", "nginx:2");
    let err = fails(&s, &["create", "-f", "-"], Some(&deploy));
    assert!(err.contains(r#"deployments.apps "web" already exists"#), "{err}");
    // The original is untouched.
    let d = get_json(&s, &["deploy", "web", "-n", "shop"]);
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.25");

    // A new name is created.
    assert_eq!(create_cm(&s, "shop", "fresh", &[("a", "1")]).trim(), "configmap/fresh created");
    assert_eq!(get_json(&s, &["cm", "fresh", "-n", "shop"])["data"], json!({"a": "1"}));
}

#[test]
fn unknown_fields_are_rejected_by_strict_validation() {
    let s = Server::start();
    let svc =
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: colourful\nspec:\n  colour: red\n  ports:\n  - port: 80\n";

    for verb in ["apply", "create"] {
        let err = fails(&s, &[verb, "-f", "-"], Some(svc));
        assert!(err.contains(r#"unknown field "spec.colour""#), "{verb}: {err}");
        assert!(err.contains("Error from server (BadRequest)"), "{verb}: {err}");
        assert!(!exists(&s, &["svc", "colourful"]), "{verb} stored the rejected object");
    }

    // Nested unknown fields are named with their full path.
    let deploy = SHOP
        .split("---")
        .find(|d| d.contains("kind: Deployment"))
        .unwrap()
        .replace("namespace: shop", "namespace: default")
        .replace("        image: nginx:1.25\n", "        image: nginx:1.25\n        imagePullPolicyy: Always\n");
    let err = fails(&s, &["create", "-f", "-"], Some(&deploy));
    assert!(err.contains(r#"unknown field "spec.template.spec.containers[0].imagePullPolicyy""#), "{err}");
    assert!(!exists(&s, &["deploy", "web"]));

    // Editing an existing object to add an unknown field is refused too, and nothing changes.
    let good = "apiVersion: v1\nkind: Service\nmetadata:\n  name: plain\nspec:\n  ports:\n  - port: 80\n";
    apply(&s, good);
    let before = get_json(&s, &["svc", "plain"]);
    let err = fails(&s, &["apply", "-f", "-"], Some(&good.replace("spec:\n", "spec:\n  colour: red\n")));
    assert!(err.contains(r#"unknown field "spec.colour""#), "{err}");
    let after = get_json(&s, &["svc", "plain"]);
    assert_eq!(after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"]);

    // With validation off the field is dropped (with a warning at most) and the object stored.
    let out = ok_in(&s, &["apply", "--validate=false", "-f", "-"], Some(svc));
    assert_eq!(out.trim(), "service/colourful created");
    let stored = get_json(&s, &["svc", "colourful"]);
    assert!(stored["spec"].get("colour").is_none(), "{stored}");
}

#[test]
fn delete_service_and_deployment() {
    let s = Server::start();
    apply(&s, SHOP);

    assert_eq!(ok(&s, &["delete", "svc", "web", "-n", "shop"]).trim(), r#"service "web" deleted"#);
    assert!(!exists(&s, &["svc", "web", "-n", "shop"]));
    assert!(exists(&s, &["svc", "db", "-n", "shop"]), "only the named service goes");

    assert_eq!(ok(&s, &["delete", "deployment", "web", "-n", "shop"]).trim(), r#"deployment.apps "web" deleted"#);
    assert!(!exists(&s, &["deployment", "web", "-n", "shop"]));

    let err = fails(&s, &["delete", "svc", "web", "-n", "shop"], None);
    assert!(err.contains(r#"Error from server (NotFound): services "web" not found"#), "{err}");
    let out = ok(&s, &["delete", "svc", "web", "-n", "shop", "--ignore-not-found"]);
    assert_eq!(out.trim(), "");

    // By label selector.
    let out = ok(&s, &["delete", "pods,svc", "-n", "shop", "-l", "app=web"]);
    assert_eq!(out.trim(), r#"pod "web-0" deleted"#);
    assert!(!exists(&s, &["pod", "web-0", "-n", "shop"]));
    assert!(exists(&s, &["svc", "db", "-n", "shop"]));

    // Re-creating a deleted name gives a new object.
    apply(&s, SHOP);
    assert!(exists(&s, &["svc", "web", "-n", "shop"]));
}

#[test]
fn delete_namespace_removes_everything_and_refuses_new_content() {
    let s = Server::start();
    apply(&s, &SHOP.replace("shop", "doomed"));
    // A finalizer on one object holds the namespace in Terminating until it is removed.
    let held = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: doomed\n  finalizers:\n  - example.com/hold\ndata:\n  a: \"1\"\n";
    apply(&s, held);

    let out = ok(&s, &["delete", "namespace", "doomed", "--wait=false"]);
    assert_eq!(out.trim(), r#"namespace "doomed" deleted"#);

    let ns = Table::parse(&ok(&s, &["get", "ns", "doomed"]));
    assert_eq!(ns.cell("doomed", "STATUS"), "Terminating");
    let err = fails(&s, &["create", "-f", "-"], Some(&held.replace("name: held", "name: late")));
    assert!(
        err.contains(r#"configmaps "late" is forbidden: unable to create new content in namespace doomed because it is being terminated"#),
        "{err}"
    );
    let err = fails(&s, &["apply", "-f", "-"], Some(&held.replace("name: held", "name: late2")));
    assert!(err.contains("because it is being terminated"), "{err}");
    assert!(!exists(&s, &["cm", "late", "-n", "doomed"]) && !exists(&s, &["cm", "late2", "-n", "doomed"]));

    // The namespace controller empties it: everything but the held object goes.
    let left = |s: &Server| -> Vec<String> {
        let out = ok(s, &["get", "pods,svc,deploy,cm,endpointslices,ingress", "-n", "doomed", "-o", "name"]);
        out.lines().map(String::from).collect()
    };
    assert!(eventually(WAIT, || left(&s) == ["configmap/held"]), "left: {:?}", left(&s));
    let held_obj = get_json(&s, &["cm", "held", "-n", "doomed"]);
    assert!(held_obj["metadata"]["deletionTimestamp"].is_string(), "{held_obj}");
    assert!(exists(&s, &["ns", "doomed"]), "still terminating while content remains");

    // Releasing the finalizer lets the object, then the namespace, go.
    ok(
        &s,
        &[
            "patch",
            "cm",
            "held",
            "-n",
            "doomed",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
    );
    assert!(eventually(WAIT, || !exists(&s, &["ns", "doomed"])), "namespace never went away");
    assert!(!exists(&s, &["cm", "held", "-n", "doomed"]));
    let ns = Table::parse(&ok(&s, &["get", "ns"]));
    assert!(!ns.names().contains(&"doomed"), "{ns:?}");

    // The name can be used again, and comes back empty.
    assert_eq!(create_ns(&s, "doomed").trim(), "namespace/doomed created");
    let out = run(&s, &["get", "all", "-n", "doomed"], None);
    assert!(out.status.success() && out.stdout.is_empty(), "{}", show(&["get", "all"], &out));

    // A plain `kubectl delete namespace` waits until the namespace is gone.
    apply(&s, &SHOP.replace("shop", "quick"));
    assert_eq!(ok(&s, &["delete", "namespace", "quick"]).trim(), r#"namespace "quick" deleted"#);
    assert!(!exists(&s, &["ns", "quick"]));
    assert!(!exists(&s, &["cm", "settings", "-n", "quick"]));
}

/// A kubectl child process killed (by its own PID) when dropped, even if the test panics.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watcher {
    fn start(s: &Server, args: &[&str]) -> Watcher {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(s.kubeconfig())
            .args(["--cache-dir", &cache_dir(s)])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Watcher { child, lines, seen: Vec::new() }
    }

    /// Waits for a new line whose whitespace-separated fields satisfy `pred`.
    fn expect(&mut self, what: &str, pred: impl Fn(&[&str]) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let hit = pred(&fields);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!("watch never printed {what}; it printed:\n{}", self.seen.join("\n")),
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn get_watch_prints_rows_as_objects_change() {
    let s = Server::start();
    assert_eq!(create_ns(&s, "watch").trim(), "namespace/watch created");
    create_cm(&s, "watch", "early", &[("a", "1")]);

    let mut plain = Watcher::start(&s, &["get", "configmaps", "-n", "watch", "-w"]);
    let mut events = Watcher::start(&s, &["get", "configmaps", "-n", "watch", "-w", "--output-watch-events"]);

    // The initial list, under one header.
    plain.expect("the header", |f| f == ["NAME", "DATA", "AGE"]);
    plain.expect("the existing row", |f| f.len() == 3 && f[0] == "early" && f[1] == "1" && is_age(f[2]));
    events.expect("the header", |f| f == ["EVENT", "NAME", "DATA", "AGE"]);
    events.expect("the existing row", |f| f.len() == 4 && f[..3] == ["ADDED", "early", "1"]);

    create_cm(&s, "watch", "watched", &[("a", "1")]);
    plain.expect("the created row", |f| f.len() == 3 && f[..2] == ["watched", "1"] && is_age(f[2]));
    events.expect("ADDED", |f| f.len() == 4 && f[..3] == ["ADDED", "watched", "1"]);

    ok(&s, &["patch", "cm", "watched", "-n", "watch", "--type=merge", "-p", r#"{"data":{"b":"2"}}"#]);
    plain.expect("the modified row", |f| f.len() == 3 && f[..2] == ["watched", "2"]);
    events.expect("MODIFIED", |f| f.len() == 4 && f[..3] == ["MODIFIED", "watched", "2"]);

    ok(&s, &["delete", "cm", "watched", "-n", "watch"]);
    events.expect("DELETED", |f| f.len() == 4 && f[..3] == ["DELETED", "watched", "2"]);

    // Other namespaces are not in this watch; headers are printed once.
    create_cm(&s, "default", "elsewhere", &[("a", "1")]);
    create_cm(&s, "watch", "marker", &[]);
    events.expect("the marker", |f| f.len() == 4 && f[..3] == ["ADDED", "marker", "0"]);
    assert!(!events.seen.iter().any(|l| l.contains("elsewhere")), "{:?}", events.seen);
    assert_eq!(events.seen.iter().filter(|l| l.starts_with("EVENT")).count(), 1, "{:?}", events.seen);
    assert_eq!(plain.seen.iter().filter(|l| l.starts_with("NAME")).count(), 1, "{:?}", plain.seen);

    // Only these two kubectl processes are killed (by PID) when the watchers drop.
    drop(plain);
    drop(events);
}

#[test]
fn scale_uses_the_scale_subresource() {
    let s = Server::start();
    apply(&s, SHOP);

    assert_eq!(
        ok(&s, &["scale", "deployment", "web", "-n", "shop", "--replicas=3"]).trim(),
        "deployment.apps/web scaled"
    );
    let d = get_json(&s, &["deploy", "web", "-n", "shop"]);
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["metadata"]["generation"], 2);

    let scale: Value =
        serde_json::from_str(&ok(&s, &["get", "--raw", "/apis/apps/v1/namespaces/shop/deployments/web/scale"]))
            .unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["metadata"]["name"], "web");
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "app=web");

    // The precondition is checked against the live value.
    let err = fails(&s, &["scale", "deployment", "web", "-n", "shop", "--current-replicas=5", "--replicas=1"], None);
    assert!(err.contains("Expected replicas to be 5, was 3"), "{err}");
    ok(&s, &["scale", "deployment", "web", "-n", "shop", "--current-replicas=3", "--replicas=0"]);
    assert_eq!(get_json(&s, &["deploy", "web", "-n", "shop"])["spec"]["replicas"], 0);

    let err = fails(&s, &["scale", "deployment", "nope", "-n", "shop", "--replicas=1"], None);
    assert!(err.contains(r#"deployments.apps "nope" not found"#), "{err}");
}

#[test]
fn discovery_lists_the_served_kinds() {
    let s = Server::start();

    let api: Value = serde_json::from_str(&ok(&s, &["get", "--raw", "/api"])).unwrap();
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));

    let apis: Value = serde_json::from_str(&ok(&s, &["get", "--raw", "/apis"])).unwrap();
    assert_eq!(apis["kind"], "APIGroupList");
    let groups: Vec<&str> = apis["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    for g in ["apps", "coordination.k8s.io", "discovery.k8s.io", "networking.k8s.io"] {
        assert!(groups.contains(&g), "{g} missing from {groups:?}");
    }
    let apps = apis["groups"].as_array().unwrap().iter().find(|g| g["name"] == "apps").unwrap();
    assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");

    let core: Value = serde_json::from_str(&ok(&s, &["get", "--raw", "/api/v1"])).unwrap();
    assert_eq!(core["kind"], "APIResourceList");
    let names: Vec<&str> = core["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    for n in ["services", "services/status", "pods", "pods/status", "configmaps", "namespaces", "endpoints"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }

    let table = Table::parse(&ok(&s, &["api-resources"]));
    assert_eq!(table.columns(), ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]);
    for (name, short, version, namespaced, kind) in [
        ("namespaces", "ns", "v1", "false", "Namespace"),
        ("services", "svc", "v1", "true", "Service"),
        ("pods", "po", "v1", "true", "Pod"),
        ("configmaps", "cm", "v1", "true", "ConfigMap"),
        ("deployments", "deploy", "apps/v1", "true", "Deployment"),
        ("endpointslices", "", "discovery.k8s.io/v1", "true", "EndpointSlice"),
        ("ingresses", "ing", "networking.k8s.io/v1", "true", "Ingress"),
        ("ingressclasses", "", "networking.k8s.io/v1", "false", "IngressClass"),
    ] {
        assert_eq!(table.row(name), [name, short, version, namespaced, kind]);
    }

    let cluster = ok(&s, &["api-resources", "--namespaced=false", "-o", "name"]);
    assert!(cluster.lines().any(|l| l == "namespaces"), "{cluster}");
    assert!(!cluster.lines().any(|l| l == "services"), "{cluster}");

    let versions = ok(&s, &["api-versions"]);
    for v in ["v1", "apps/v1", "discovery.k8s.io/v1", "networking.k8s.io/v1"] {
        assert!(versions.lines().any(|l| l == v), "{v} missing from:\n{versions}");
    }

    let err = fails(&s, &["get", "widgets"], None);
    assert!(err.contains(r#"the server doesn't have a resource type "widgets""#), "{err}");
}

#[test]
fn owner_references_drive_garbage_collection() {
    let s = Server::start();
    let dependent = |name: &str, owner: &str, uid: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: {owner}\n    uid: {uid}\n    blockOwnerDeletion: true\ndata:\n  a: \"1\"\n"
        )
    };
    let create_pair = |owner: &str, dep: &str| {
        create_cm(&s, "default", owner, &[("a", "1")]);
        let uid = get_json(&s, &["cm", owner])["metadata"]["uid"].as_str().unwrap().to_string();
        apply(&s, &dependent(dep, owner, &uid));
        uid
    };

    // Background (the default): the owner goes at once, the dependent after it.
    create_pair("owner", "dep");
    assert_eq!(ok(&s, &["delete", "cm", "owner"]).trim(), r#"configmap "owner" deleted"#);
    assert!(eventually(WAIT, || !exists(&s, &["cm", "dep"])), "the dependent was not collected");

    // Orphan: the dependent stays, without its ownerReference.
    let uid = create_pair("owner2", "dep2");
    assert_eq!(get_json(&s, &["cm", "dep2"])["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
    ok(&s, &["delete", "cm", "owner2", "--cascade=orphan"]);
    assert!(eventually(WAIT, || !exists(&s, &["cm", "owner2"])));
    assert!(
        eventually(WAIT, || get_json(&s, &["cm", "dep2"])["metadata"]
            .get("ownerReferences")
            .is_none_or(|r| r == &json!([]))),
        "{}",
        get_json(&s, &["cm", "dep2"])
    );
    assert!(exists(&s, &["cm", "dep2"]));

    // Foreground: kubectl waits for the owner, which goes only after its blocking dependent.
    create_pair("owner3", "dep3");
    ok(&s, &["delete", "cm", "owner3", "--cascade=foreground"]);
    assert!(!exists(&s, &["cm", "owner3"]));
    assert!(!exists(&s, &["cm", "dep3"]), "foreground deletion removes the dependent first");

    // A dependent whose owner never existed (wrong uid) is collected too.
    apply(&s, &dependent("stray", "ghost", "00000000-0000-0000-0000-000000000000"));
    assert!(eventually(WAIT, || !exists(&s, &["cm", "stray"])), "a dependent of a missing owner was not collected");

    // The orphaned one is still there after all that.
    assert!(exists(&s, &["cm", "dep2"]));
}

/// `kubectl create namespace|configmap|secret|deployment|service|serviceaccount` go through
/// client-go's typed clientsets, which send protobuf bodies (`application/vnd.kubernetes.protobuf`)
/// and, unlike for CBOR, do not fall back to JSON on a 415.
#[test]
fn imperative_create_commands() {
    let s = Server::start();
    assert_eq!(ok(&s, &["create", "namespace", "imp"]).trim(), "namespace/imp created");
    let out = ok(&s, &["create", "configmap", "cfg", "-n", "imp", "--from-literal=a=1", "--from-literal=b=two"]);
    assert_eq!(out.trim(), "configmap/cfg created");
    assert_eq!(get_json(&s, &["cm", "cfg", "-n", "imp"])["data"], json!({"a": "1", "b": "two"}));

    let out = ok(&s, &["create", "secret", "generic", "pw", "-n", "imp", "--from-literal=password=hunter2"]);
    assert_eq!(out.trim(), "secret/pw created");
    let secret = get_json(&s, &["secret", "pw", "-n", "imp"]);
    assert_eq!(secret["data"], json!({"password": "aHVudGVyMg=="}));
    assert_eq!(secret["type"], "Opaque");

    let out = ok(&s, &["create", "deployment", "web", "-n", "imp", "--image=nginx:1.27", "--replicas=2", "--port=80"]);
    assert_eq!(out.trim(), "deployment.apps/web created");
    let d = get_json(&s, &["deploy", "web", "-n", "imp"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["selector"], json!({"matchLabels": {"app": "web"}}));
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!((c["name"].as_str(), c["image"].as_str()), (Some("nginx"), Some("nginx:1.27")));
    assert_eq!(c["ports"][0]["containerPort"], 80);

    let out = ok(&s, &["create", "service", "clusterip", "web", "-n", "imp", "--tcp=80:8080"]);
    assert_eq!(out.trim(), "service/web created");
    let svc = get_json(&s, &["svc", "web", "-n", "imp"]);
    assert_eq!(svc["spec"]["ports"], json!([{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}]));
    assert_eq!(svc["spec"]["selector"], json!({"app": "web"}));

    assert_eq!(ok(&s, &["create", "serviceaccount", "bot", "-n", "imp"]).trim(), "serviceaccount/bot created");

    let err = fails(&s, &["create", "configmap", "cfg", "-n", "imp"], None);
    assert!(err.contains(r#"configmaps "cfg" already exists"#), "{err}");
}

/// kube-apiserver allocates every non-headless Service a cluster IP from the service CIDR
/// (10.96.0.0/12 by default) and keeps it for the Service's life.
#[test]
fn services_get_cluster_ips() {
    let s = Server::start();
    apply(&s, SHOP);
    let table = Table::parse(&ok(&s, &["get", "svc", "-n", "shop"]));
    let ip = |name: &str| -> std::net::Ipv4Addr {
        let cell = table.cell(name, "CLUSTER-IP");
        cell.parse().unwrap_or_else(|_| panic!("{name} has no cluster IP: {cell:?}"))
    };
    let (web, db) = (ip("web"), ip("db"));
    assert_ne!(web, db);
    for a in [web, db] {
        assert!(a.octets()[0] == 10 && a.octets()[1] & 0xf0 == 96, "{a} is outside 10.96.0.0/12");
    }

    let svc = get_json(&s, &["svc", "web", "-n", "shop"]);
    assert_eq!(svc["spec"]["clusterIP"], web.to_string());
    assert_eq!(svc["spec"]["clusterIPs"], json!([web.to_string()]));
    assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(svc["spec"]["ipFamilyPolicy"], "SingleStack");
    let described = squash(&ok(&s, &["describe", "svc", "web", "-n", "shop"]));
    for line in [
        format!("IP: {web}"),
        format!("IPs: {web}"),
        "IP Family Policy: SingleStack".into(),
        "IP Families: IPv4".into(),
    ] {
        assert!(described.lines().any(|l| l == line), "describe svc lacks {line:?}:\n{described}");
    }

    // Kept when the Service is edited.
    apply(&s, &shop_edited());
    assert_eq!(get_json(&s, &["svc", "web", "-n", "shop"])["spec"]["clusterIP"], web.to_string());

    // A taken address cannot be requested; a headless Service gets none.
    let taken = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: copy\n  namespace: shop\nspec:\n  clusterIP: {web}\n  ports:\n  - port: 80\n"
    );
    let err = fails(&s, &["apply", "-f", "-"], Some(&taken));
    assert!(err.contains("provided IP is already allocated"), "{err}");
    let headless = "apiVersion: v1\nkind: Service\nmetadata:\n  name: headless\n  namespace: shop\nspec:\n  clusterIP: None\n  ports:\n  - port: 80\n";
    apply(&s, headless);
    let table = Table::parse(&ok(&s, &["get", "svc", "headless", "-n", "shop"]));
    assert_eq!(table.cell("headless", "CLUSTER-IP"), "None");
}

#[test]
fn server_side_apply_tracks_field_ownership() {
    let s = Server::start();
    let manifest = r#"
apiVersion: v1
kind: Service
metadata:
  name: owned
  labels: {a: "1", b: "2"}
spec:
  selector: {app: x}
  ports:
  - {name: http, port: 80}
  - {name: https, port: 443}
"#;
    let out = ok_in(&s, &["apply", "--server-side", "-f", "-"], Some(manifest));
    assert!(out.contains("service/owned serverside-applied"), "{out}");

    // Dropping a label and a port from the applied manifest removes them from the object.
    let trimmed = manifest.replace(r#", b: "2""#, "").replace("  - {name: https, port: 443}\n", "");
    ok_in(&s, &["apply", "--server-side", "-f", "-"], Some(&trimmed));
    let svc: Value =
        serde_json::from_str(&ok(&s, &["get", "svc", "owned", "-o", "json", "--show-managed-fields"])).unwrap();
    assert_eq!(svc["metadata"]["labels"], json!({"a": "1"}));
    let ports: Vec<&str> =
        svc["spec"]["ports"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(ports, ["http"]);
    let managers: Vec<&str> =
        svc["metadata"]["managedFields"].as_array().unwrap().iter().map(|m| m["manager"].as_str().unwrap()).collect();
    assert_eq!(managers, ["kubectl"]);

    // Another manager changing an owned field conflicts, unless it forces.
    let rival = trimmed.replace(r#"a: "1""#, r#"a: "9""#);
    let err = fails(&s, &["apply", "--server-side", "--field-manager=rival", "-f", "-"], Some(&rival));
    assert!(err.contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .metadata.labels.a"#), "{err}");
    ok_in(&s, &["apply", "--server-side", "--field-manager=rival", "--force-conflicts", "-f", "-"], Some(&rival));
    assert_eq!(ok(&s, &["get", "svc", "owned", "-o", "jsonpath={.metadata.labels.a}"]), "9");
}

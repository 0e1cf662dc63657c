//! `portico ingress` alone against a separate API server (as it runs against a real cluster), in
//! one lab node (EndpointSlices may not point at loopback): a selectorless Service whose
//! EndpointSlice names a backend on the node's address, Ingresses of its class, of no class and
//! of another class. Needs root; under CI=true a lab that cannot be built fails the test.

mod common;

use std::process::Command;
use std::time::Duration;

use common::eventually;
use serde_json::json;

#[test]
fn portico_ingress_serves_its_class_from_a_separate_api_server() {
    let Some(lab) = lab::Lab::new_or_skip("ings") else { return };
    let lan = lab.switch("lan", "198.51.100.0/24").unwrap();
    let n1 = lab.node("n1", &lan).unwrap();
    let ip = n1.ip().to_string();
    let (http, backend) = (8080u16, 9090u16);
    let data = tempfile::tempdir().unwrap();
    let log = |name: &str| std::fs::File::create(data.path().join(name)).unwrap();

    let mut files = Command::new("python3");
    files.args(["-m", "http.server", "--bind", &ip, &backend.to_string()]).current_dir(env!("CARGO_MANIFEST_DIR"));
    let _files = lab.spawn(&n1, files).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_portico"));
    server.args(["server", "--bind", "0.0.0.0:6443", "--advertise-address", &ip]).arg("--data-dir").arg(data.path());
    server.stderr(log("server.log"));
    let _server = lab.spawn(&n1, server).unwrap();
    let kubeconfig = data.path().join("kubeconfig");
    let kubectl = |args: &[&str], stdin: Option<&str>| {
        let mut argv = vec!["kubectl", "--kubeconfig", kubeconfig.to_str().unwrap()];
        argv.extend_from_slice(args);
        let file = data.path().join("manifest.json");
        if let Some(input) = stdin {
            std::fs::write(&file, input).unwrap();
            argv.extend(["-f", file.to_str().unwrap()]);
        }
        let out = lab.exec(&n1, &argv).unwrap();
        assert!(out.status.success() || stdin.is_none(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(eventually(Duration::from_secs(60), || kubeconfig.exists()
        && lab
            .exec(&n1, &["kubectl", "--kubeconfig", kubeconfig.to_str().unwrap(), "get", "--raw", "/readyz"])
            .unwrap()
            .status
            .success()));

    let mut ingress = Command::new(env!("CARGO_BIN_EXE_portico"));
    ingress
        .args(["ingress", "--kubeconfig", kubeconfig.to_str().unwrap()])
        .args(["--ingress-http-bind", &format!("{ip}:{http}"), "--ingress-https-bind", &format!("{ip}:8443")])
        .args(["--ingress-metrics-bind", &format!("{ip}:10254"), "--publish-status-address", "192.0.2.10"])
        .env("RUST_LOG", "info")
        .stderr(log("ingress.log"));
    let _ingress = lab.spawn(&n1, ingress).unwrap();
    let curl = |host: &str, path: &str| -> (u16, String) {
        let url = format!("http://{ip}:{http}{path}");
        let out = lab
            .exec(&n1, &["curl", "-s", "--max-time", "5", "-w", "\n%{http_code}", "-H", &format!("Host: {host}"), &url])
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.parse().unwrap_or(0), body.to_owned())
    };

    let backend_slice = |name: &str| {
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": "files"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": backend, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip.clone()], "conditions": {"ready": true}}]})
    };
    let ingress = |name: &str, class: Option<&str>, host: &str| {
        let mut spec = json!({"rules": [{"host": host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "files", "port": {"name": "http"}}}}]}}]});
        if let Some(c) = class {
            spec["ingressClassName"] = json!(c);
        }
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name, "namespace": "default"}, "spec": spec})
    };
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "files", "namespace": "default"},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": backend}]}},
        backend_slice("files-1"),
        ingress("ours", Some("portico"), "ours.test"),
        ingress("classless", None, "classless.test"),
        ingress("theirs", Some("nginx"), "theirs.test"),
    ]});
    kubectl(&["apply"], Some(&list.to_string()));

    let ok = eventually(Duration::from_secs(20), || curl("ours.test", "/Cargo.toml").0 == 200);
    let log = || std::fs::read_to_string(data.path().join("ingress.log")).unwrap_or_default();
    assert!(ok, "the Ingress of class portico is served:\n{}", log());
    assert!(curl("ours.test", "/Cargo.toml").1.contains("name = \"portico\""));
    // No default IngressClass exists, so a class-less Ingress is not ours; nor is nginx's.
    assert_eq!(curl("classless.test", "/").0, 404);
    assert_eq!(curl("theirs.test", "/").0, 404);

    // An IngressClass of our controller marked default takes the class-less Ingress in.
    kubectl(
        &["apply"],
        Some(
            &json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "web", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": "portico.dev/ingress-controller"}})
            .to_string(),
        ),
    );
    let ok = eventually(Duration::from_secs(10), || curl("classless.test", "/Cargo.toml").0 == 200);
    assert!(ok, "the default class serves class-less Ingresses:\n{}", log());
    assert_eq!(curl("theirs.test", "/").0, 404);

    // kube-apiserver's DefaultIngressClass admission: a class-less Ingress created now gets the
    // default class; with two defaults such a create is refused.
    kubectl(&["apply"], Some(&ingress("later", None, "later.test").to_string()));
    assert_eq!(kubectl(&["get", "ingress", "later", "-o", "jsonpath={.spec.ingressClassName}"], None), "web");
    assert_eq!(curl("later.test", "/Cargo.toml").0, 200);
    let second_default = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "web2", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "example.com/other"}});
    kubectl(&["apply"], Some(&second_default.to_string()));
    std::fs::write(data.path().join("refused.json"), ingress("refused", None, "refused.test").to_string()).unwrap();
    let refused = lab
        .exec(
            &n1,
            &[
                "kubectl",
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "apply",
                "-f",
                data.path().join("refused.json").to_str().unwrap(),
            ],
        )
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains("2 default IngressClasses were found, only 1 allowed"), "{err}");
    kubectl(&["delete", "ingressclass", "web2"], None);

    // The endpoint goes: 503, not a hang or a crash; it comes back: 200.
    kubectl(&["delete", "endpointslice", "files-1"], None);
    assert!(eventually(Duration::from_secs(10), || curl("ours.test", "/").0 == 503));
    kubectl(&["apply"], Some(&backend_slice("files-2").to_string()));
    assert!(eventually(Duration::from_secs(10), || curl("ours.test", "/").0 == 200));

    // Status names the published address; kubectl shows it.
    let ok = eventually(Duration::from_secs(10), || kubectl(&["get", "ingress", "ours"], None).contains("192.0.2.10"));
    assert!(ok, "{}", kubectl(&["get", "ingress"], None));
    assert!(
        !kubectl(&["get", "ingress", "theirs"], None).contains("192.0.2.10"),
        "another class's status is left alone"
    );
}

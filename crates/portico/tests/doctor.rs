//! `portico doctor` against a real cluster in a lab: a healthy ClusterIP and NodePort Service,
//! and the classic faults (a wrong targetPort, an app bound to 127.0.0.1, a selector that
//! matches nothing, a Service that does not exist), from examples/doctor-*.yaml. The doctor runs
//! in the lab node's namespace as kubectl does, and probes from inside a pod's namespace there.
//! Needs root; under CI=true a lab that cannot be built fails the test.

mod common;

use std::process::Output;
use std::time::Duration;

use common::cluster::Cluster;
use common::eventually;
use serde_json::Value;

const HEALTHY: &str = include_str!("../../../examples/doctor-healthy.yaml");
const BROKEN: &str = include_str!("../../../examples/doctor-broken.yaml");

fn doctor(c: &Cluster, args: &[&str]) -> Output {
    let kc = c.kubeconfig();
    let prefix = format!("{}-pod-", c.lab.prefix());
    let mut argv = vec![env!("CARGO_BIN_EXE_portico"), "doctor"];
    argv.extend_from_slice(args);
    argv.extend(["--kubeconfig", kc.to_str().unwrap(), "--netns-prefix", &prefix, "--probe-timeout-ms", "1500"]);
    c.lab.exec(&c.node, &argv).unwrap()
}

/// `doctor <svc> -o json`: the parsed report and whether it exited 0.
fn doctor_json(c: &Cluster, svc: &str) -> (Value, bool, String) {
    let out = doctor(c, &[svc, "-o", "json"]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("doctor {svc}: {e}\n{text}"));
    (v, out.status.success(), text)
}

/// The checks named `name` (one per port for the per-port checks).
fn checks<'a>(report: &'a Value, name: &str) -> Vec<&'a Value> {
    report["checks"].as_array().unwrap().iter().filter(|c| c["name"] == name).collect()
}

fn one<'a>(report: &'a Value, name: &str) -> &'a Value {
    let found = checks(report, name);
    assert_eq!(found.len(), 1, "one {name} check in {report:#}");
    found[0]
}

#[test]
fn doctor_finds_what_is_wrong_with_services() {
    let Some(c) = Cluster::start("doctor", &[]) else { return };
    c.lab.register("10.96.0.0/12").unwrap();
    c.apply(HEALTHY);
    c.apply(BROKEN);
    let shop = c.wait_ready("shop", 2);
    c.wait_ready("notes", 1);
    let shop_uids: Vec<&str> = shop.iter().map(|p| p["metadata"]["uid"].as_str().unwrap()).collect();
    assert_eq!(shop_uids.len(), 2);

    // (a) Healthy ClusterIP Service: exit 0 once the proxy and DNS have caught up.
    let mut last = (Value::Null, false, String::new());
    let ok = eventually(Duration::from_secs(30), || {
        last = doctor_json(&c, "svc/shop");
        last.1
    });
    let (report, _, text) = &last;
    assert!(ok, "doctor svc/shop never came out healthy:\n{text}\n{}", c.log());
    assert_eq!(report["healthy"], true);
    assert_eq!((report["service"].as_str(), report["namespace"].as_str()), (Some("shop"), Some("default")));
    for name in ["service", "selector", "pods", "endpoints", "target-port", "pod-port", "cluster-ip", "dns"] {
        assert_eq!(one(report, name)["status"], "pass", "{name}: {report:#}");
    }
    assert!(one(report, "pod-port")["message"].as_str().unwrap().contains("HTTP/1."), "{report:#}");
    assert!(one(report, "cluster-ip")["hint"].as_str().unwrap().contains("ping"), "{report:#}");
    // The probes ran from a pod that is not one of the Service's (notes is here).
    assert_eq!(report["probedFrom"], "default/notes", "{report:#}");

    // The text form, as the README shows it (printed with --nocapture).
    let out = doctor(&c, &["svc/shop"]);
    assert!(out.status.success());
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));

    // (b) A numeric targetPort nothing listens on: warned as undeclared, failed on connect.
    let (report, success, text) = doctor_json(&c, "svc/shop-wrong-port");
    assert!(!success, "a broken Service exits non-zero:\n{text}");
    let tp = one(&report, "target-port");
    assert_eq!(tp["status"], "warn", "{report:#}");
    assert!(tp["message"].as_str().unwrap().contains("9090"), "{report:#}");
    let pp = one(&report, "pod-port");
    assert_eq!(pp["status"], "fail", "{report:#}");
    let msg = pp["message"].as_str().unwrap();
    assert!(msg.contains("targetPort 9090") && msg.contains("nothing listens on port 9090"), "{report:#}");
    assert!(pp["hint"].as_str().unwrap().contains("8080/TCP (http)"), "{report:#}");
    assert_eq!(one(&report, "endpoints")["status"], "pass", "the pods are listed all the same: {report:#}");
    let cip = one(&report, "cluster-ip");
    assert_eq!(cip["status"], "fail", "{report:#}");
    assert!(cip["message"].as_str().unwrap().contains("see pod-port"), "blamed on the pods: {report:#}");

    // (c) The app bound to 127.0.0.1.
    eprintln!("{}", String::from_utf8_lossy(&doctor(&c, &["svc/shop-wrong-port"]).stdout));
    let (report, success, text) = doctor_json(&c, "svc/notes");
    assert!(!success, "{text}");
    let pp = one(&report, "pod-port");
    assert_eq!(pp["status"], "fail", "{report:#}");
    assert!(pp["message"].as_str().unwrap().contains("listens only on 127.0.0.1"), "{report:#}");
    assert!(pp["hint"].as_str().unwrap().contains("0.0.0.0"), "{report:#}");

    // (d) A selector with a typo, in the text output.
    let out = doctor(&c, &["svc/shop-typo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("[FAIL] selector"), "{text}");
    assert!(text.contains(r#"Pod shop-"#) && text.contains(r#"app is "shop", not "shpo""#), "near misses: {text}");
    let shop_at = text.find("Pod shop-").unwrap();
    assert!(text.find("Pod notes").is_none_or(|notes| notes > shop_at), "the typo ranks first: {text}");
    assert!(text.contains("NOT healthy"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("check(s) failed"));

    // (e) NodePort: the node answers on the nodePort.
    let (report, success, text) = doctor_json(&c, "svc/shop-public");
    assert!(success, "{text}");
    let np = one(&report, "node-port");
    assert_eq!(np["status"], "pass", "{report:#}");
    assert!(np["message"].as_str().unwrap().contains(&c.node.ip().to_string()), "{report:#}");

    // No pod namespace here under that prefix: the network checks are skipped, saying why.
    let kc = c.kubeconfig();
    let bin = env!("CARGO_BIN_EXE_portico");
    let argv =
        [bin, "doctor", "svc/shop", "-o", "json", "--kubeconfig", kc.to_str().unwrap(), "--netns-prefix", "nope-"];
    let out = c.lab.exec(&c.node, &argv).unwrap();
    assert!(out.status.success(), "skipped checks are not failures: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for name in ["pod-port", "cluster-ip", "dns"] {
        let c = one(&report, name);
        assert_eq!(c["status"], "skipped", "{report:#}");
        assert!(c["message"].as_str().unwrap().contains("/run/netns/nope-"), "{report:#}");
    }
    assert_eq!(report["probedFrom"], Value::Null);

    // A Service that does not exist: its look-alikes.
    let (report, success, _) = doctor_json(&c, "svc/shopp");
    assert!(!success);
    let s = one(&report, "service");
    assert_eq!(s["status"], "fail");
    assert!(s["hint"].as_str().unwrap().contains("shop"), "{report:#}");
}

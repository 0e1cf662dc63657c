//! ReplicationControllers, Jobs and DaemonSets in a whole cluster (`portico up` in a lab node,
//! pods run by the node agent), driven by the real kubectl: an RC keeps its pods Ready and
//! scales with `kubectl scale`; Jobs whose pods run `sh -c` complete (`2/2`) or fail with
//! BackoffLimitExceeded (restartPolicy Never and OnFailure), and `kubectl create job` works; a DaemonSet runs one pod on the node,
//! bound through node affinity, `kubectl rollout restart` / `rollout status` work, and a node
//! that joins gets its own daemon pod. Needs root; under CI=true a lab that cannot be built
//! fails the test.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, s};
use common::eventually;
use serde_json::{Value, json};

/// A demo-server container (no command) with a quick readiness probe.
fn demo_container(name: &str) -> Value {
    json!({"name": name, "image": "demo", "ports": [{"containerPort": 8080}],
           "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}})
}

fn job(name: &str, script: &str, extra: Value) -> String {
    let mut spec = json!({"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}]}}});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}).to_string()
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_ && c["status"] == "True")
}

/// Waits up to `secs` for the Job to get a True `type_` condition; returns the Job.
fn wait_job(c: &Cluster, name: &str, type_: &str, secs: u64) -> Value {
    let mut last = Value::Null;
    let ok = eventually(Duration::from_secs(secs), || {
        last = c.json(&["get", "job", name]);
        condition(&last, type_).is_some()
    });
    let log: Vec<String> = c.log().lines().filter(|l| l.contains(name)).map(str::to_owned).collect();
    assert!(
        ok,
        "job {name} never {type_}: {last:#}\n{}\n{}",
        c.kubectl_ok(&["get", "pods", "-o", "wide"]),
        log.join("\n")
    );
    last
}

#[test]
fn replication_controllers_jobs_and_daemon_sets_run_in_a_cluster() {
    let started = Instant::now();
    let Some(mut c) = Cluster::start("wlmore", &[]) else { return };
    let node = s(&c.json(&["get", "nodes"])["items"][0]["metadata"]["name"]);

    // Everything is created up front so the waits overlap.
    c.apply(
        &json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rcweb"},
            "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "rcweb"}},
                "spec": {"containers": [demo_container("web")]}}}})
        .to_string(),
    );
    c.apply(&job("done", "echo done", json!({"completions": 2, "parallelism": 1})));
    c.apply(&job("boom", "exit 1", json!({"backoffLimit": 1})));
    let crash = job("crash", "exit 1", json!({"backoffLimit": 1})).replace(r#""Never""#, r#""OnFailure""#);
    c.apply(&crash);
    c.apply(
        &json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [demo_container("agent")]}}}})
        .to_string(),
    );
    c.kubectl_ok(&["create", "job", "quick", "--image=busybox", "--", "sh", "-c", "echo hi"]);

    // ReplicationController: defaults, two Ready pods, then three after `kubectl scale`.
    let rc = c.json(&["get", "rc", "rcweb"]);
    assert_eq!(rc["spec"]["selector"], json!({"app": "rcweb"}), "selector defaulted from the template");
    let pods = c.wait_ready("rcweb", 2);
    assert!(pods.iter().all(|p| p["metadata"]["ownerReferences"][0]["kind"] == "ReplicationController"));
    c.kubectl_ok(&["scale", "rc", "rcweb", "--replicas=3"]);
    c.wait_ready("rcweb", 3);
    let ok = eventually(Duration::from_secs(20), || {
        let st = &c.json(&["get", "rc", "rcweb"])["status"];
        st["readyReplicas"] == 3 && st["availableReplicas"] == 3 && st["fullyLabeledReplicas"] == 3
    });
    assert!(ok, "rc status: {:#}", c.json(&["get", "rc", "rcweb"])["status"]);
    let table = c.kubectl_ok(&["get", "rc", "rcweb"]);
    assert!(table.starts_with("NAME"), "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..4], ["rcweb", "3", "3", "3"], "{table}");
    let scale: Value = serde_json::from_str(&c.kubectl_ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/replicationcontrollers/rcweb/scale",
    ]))
    .unwrap();
    assert_eq!(scale["status"], json!({"replicas": 3, "selector": "app=rcweb"}));

    // Jobs.
    let done = wait_job(&c, "done", "Complete", 40);
    assert_eq!(done["status"]["succeeded"], 2);
    assert!(condition(&done, "SuccessCriteriaMet").is_some());
    assert!(done["status"]["completionTime"].is_string());
    let table = c.kubectl_ok(&["get", "job", "done"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..3], ["done", "Complete", "2/2"], "{table}");
    let logs = c.kubectl_ok(&["logs", "-l", "job-name=done"]);
    assert!(logs.contains("done"), "job pod logs: {logs}");
    wait_job(&c, "quick", "Complete", 30);
    // 422s with kube-apiserver's field paths and messages.
    let always = job("always", "true", json!({})).replace(r#""Never""#, r#""Always""#);
    let out = c.kubectl_stdin(&["apply"], Some(&always));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a Job with restartPolicy Always is rejected");
    assert!(
        err.contains(r#"spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#),
        "{err}"
    );
    let out = c.kubectl(&["patch", "job", "done", "--type=merge", "-p", r#"{"spec":{"completions":5}}"#]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.completions: Invalid value: 5: field is immutable"), "{err}");
    // Deleting a Job takes its pods with it (the garbage collector, background propagation).
    c.kubectl_ok(&["delete", "job", "quick"]);
    let gone = eventually(Duration::from_secs(20), || c.pods("job-name=quick").is_empty());
    assert!(gone, "pods of a deleted job: {:?}", c.pods("job-name=quick"));

    let boom = wait_job(&c, "boom", "Failed", 45);
    assert_eq!(condition(&boom, "Failed").unwrap()["reason"], "BackoffLimitExceeded");
    assert_eq!(boom["status"]["failed"], 2, "backoffLimit 1 allows one retry");
    // OnFailure: the agent restarts the container in place; a restart reaches backoffLimit 1,
    // and the running pod is deleted.
    let crash = wait_job(&c, "crash", "Failed", 45);
    assert_eq!(condition(&crash, "Failed").unwrap()["reason"], "BackoffLimitExceeded");
    let gone = eventually(Duration::from_secs(20), || c.pods("job-name=crash").is_empty());
    assert!(gone, "pods of the failed OnFailure job: {:?}", c.pods("job-name=crash"));
    // startTime is set once, when the Job starts, and kept through every status write.
    for j in [&done, &boom, &crash] {
        let at = |v: &Value| s(v).parse::<k8s_openapi::jiff::Timestamp>().unwrap();
        let late = at(&j["status"]["startTime"]).duration_since(at(&j["metadata"]["creationTimestamp"]));
        assert!(late.as_secs() <= 2, "startTime {late:?} after creation: {:#}", j["status"]);
    }
    let table = c.kubectl_ok(&["get", "job", "boom"]);
    assert!(table.lines().nth(1).unwrap().split_whitespace().nth(1) == Some("Failed"), "{table}");

    // DaemonSet: one pod, bound to the node by the scheduler through node affinity.
    let pods = c.wait_ready("agent", 1);
    assert_eq!(s(&pods[0]["spec"]["nodeName"]), node);
    let term = &pods[0]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        [0];
    assert_eq!(term["matchFields"][0], json!({"key": "metadata.name", "operator": "In", "values": [node]}));
    let old_hash = s(&pods[0]["metadata"]["labels"]["controller-revision-hash"]);
    assert!(!old_hash.is_empty());
    let ok = eventually(Duration::from_secs(20), || {
        let st = &c.json(&["get", "ds", "agent"])["status"];
        st["desiredNumberScheduled"] == 1 && st["numberReady"] == 1 && st["numberAvailable"] == 1
    });
    assert!(ok, "ds status: {:#}", c.json(&["get", "ds", "agent"])["status"]);
    c.kubectl_ok(&["rollout", "restart", "ds/agent"]);
    c.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    let pods = c.wait_ready("agent", 1);
    assert_ne!(s(&pods[0]["metadata"]["labels"]["controller-revision-hash"]), old_hash, "the pod was replaced");
    let ds = c.json(&["get", "ds", "agent"]);
    assert_eq!(ds["status"]["updatedNumberScheduled"], 1);
    assert_eq!(ds["status"]["observedGeneration"], ds["metadata"]["generation"]);

    // A second node gets its own daemon pod.
    c.join("n2");
    let pods = c.wait_ready("agent", 2);
    let mut nodes: Vec<String> = pods.iter().map(|p| s(&p["spec"]["nodeName"])).collect();
    nodes.sort();
    let mut want = vec![node.clone(), "n2".to_string()];
    want.sort();
    assert_eq!(nodes, want);
    let ok = eventually(Duration::from_secs(20), || {
        let st = &c.json(&["get", "ds", "agent"])["status"];
        st["desiredNumberScheduled"] == 2 && st["currentNumberScheduled"] == 2 && st["numberAvailable"] == 2
    });
    assert!(ok, "ds status: {:#}", c.json(&["get", "ds", "agent"])["status"]);

    // kubectl's view of all three.
    let all = c.kubectl_ok(&["get", "ds,rc,jobs"]);
    for name in ["daemonset.apps/agent", "replicationcontroller/rcweb", "job.batch/done", "job.batch/boom"] {
        assert!(all.contains(name), "{all}");
    }
    let ds_table = c.kubectl_ok(&["get", "ds"]);
    let ds_header: Vec<&str> = ds_table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        ds_header,
        ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE", "SELECTOR", "AGE"]
    );
    for what in ["ds/agent", "rc/rcweb", "job/done"] {
        c.kubectl_ok(&["describe", what]);
    }
    // Settled objects are not rewritten: the controllers write a status only when it changes.
    let versions = || -> Vec<String> {
        ["ds/agent", "rc/rcweb", "job/done", "job/boom"]
            .iter()
            .map(|o| c.kubectl_ok(&["get", o, "-o", "jsonpath={.metadata.resourceVersion}"]))
            .collect()
    };
    let before = versions();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(versions(), before, "no status rewrites once settled");
    eprintln!("workloads_more: {:?}", started.elapsed());
}

//! `portico up --nodes 3` in a lab node: three nodes as network namespaces with their own agent
//! processes, a Deployment spread over them reachable by ClusterIP, DNS name and every node's
//! NodePort; a node whose agent is killed goes NotReady with its pod's endpoint, traffic keeps
//! flowing, and the node rejoins when started again; Ctrl-C removes every node. Needs root; under
//! CI=true a lab that cannot be built fails the test.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, NODES_CIDR, s};
use common::eventually;
use serde_json::json;

const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];

fn node_ip(n: usize) -> String {
    // The host has the first address of NODES_CIDR, node-<n> the n+1st.
    let base = NODES_CIDR.split('/').next().unwrap().rsplit_once('.').unwrap().0.to_owned();
    format!("{base}.{}", n + 1)
}

fn node_ready(c: &Cluster, name: &str) -> Option<bool> {
    let n = c.json(&["get", "node", name]);
    let cond = n["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?.clone();
    Some(cond["status"] == "True")
}

/// The endpoint of `pod` in the web Service's slices: its `ready` condition.
fn endpoint_ready(c: &Cluster, pod: &str) -> Option<bool> {
    let slices = c.json(&["get", "endpointslices", "-l", "kubernetes.io/service-name=web"]);
    slices["items"]
        .as_array()?
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .find_map(|e| (e["targetRef"]["name"] == pod).then(|| e["conditions"]["ready"].as_bool().unwrap_or(false)))
}

fn portico(c: &Cluster, args: &[&str]) -> std::process::Output {
    let mut argv = vec![env!("CARGO_BIN_EXE_portico")];
    argv.extend_from_slice(args);
    argv.extend(["--data-dir", c.data_dir.path().to_str().unwrap()]);
    c.lab.exec(&c.node, &argv).unwrap()
}

/// Each of `n` GETs to `url` from inside the pod with `uid`; the bodies of the answers.
fn gets_from_pod(c: &Cluster, uid: &str, url: &str, n: usize) -> Vec<String> {
    (0..n)
        .filter_map(|_| {
            let out = c.exec_in_pod(uid, &["curl", "-s", "--max-time", "3", url]);
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .collect()
}

#[test]
fn three_local_nodes_serve_a_spread_deployment_and_survive_a_node_failure() {
    let Some(mut c) = Cluster::new("nodes3", &["--node-monitor-grace-period-seconds", "15"]) else { return };
    c.nodes = 3;
    let started = Instant::now();
    c.spawn();
    let ok = eventually(Duration::from_secs(90), || c.log().contains("Portico is up"));
    assert!(ok, "every node ready:\n{}", c.log());
    eprintln!("portico up --nodes 3: up in {:.1} s", started.elapsed().as_secs_f64());
    for n in NODES {
        assert!(c.log().contains(&format!("ready  {n} agent")), "{n}:\n{}", c.log());
        assert!(c.log().contains(&format!("ready  {n} proxy")), "{n}:\n{}", c.log());
        assert_eq!(node_ready(&c, n), Some(true), "{n} is Ready");
    }
    // The agents are separate processes, one per node, each in its node's namespace.
    let pids: Vec<i32> = NODES.iter().map(|n| c.local_agent_pid(n).expect("a running agent")).collect();
    assert_eq!(pids.iter().collect::<std::collections::HashSet<_>>().len(), 3);
    let out = portico(&c, &["node", "list"]);
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(list.contains("node-3") && list.contains(&node_ip(3)) && list.contains("pid"), "{list}");

    c.apply(
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [{"name": "web", "image": "demo", "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}})
        .to_string(),
    );
    c.apply(
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
        .to_string(),
    );
    let pods = c.wait_ready("web", 3);
    let mut placed: Vec<String> = pods.iter().map(|p| s(&p["spec"]["nodeName"])).collect();
    placed.sort();
    assert_eq!(placed, NODES, "one replica per node");
    let svc = c.json(&["get", "svc", "web"]);
    let cluster_ip = s(&svc["spec"]["clusterIP"]);
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16;
    c.lab.register("10.96.0.0/12").unwrap();

    // From a pod on every node: by ClusterIP and by name through the cluster DNS; all three
    // pods answer somewhere.
    let mut answered = std::collections::BTreeSet::new();
    for p in &pods {
        let uid = s(&p["metadata"]["uid"]);
        let by_ip = gets_from_pod(&c, &uid, &format!("http://{cluster_ip}/"), 6);
        assert_eq!(by_ip.len(), 6, "ClusterIP from {}: {by_ip:?}\n{}", s(&p["spec"]["nodeName"]), c.log());
        // kubectl exec, so the pod's own resolv.conf (nameserver 10.96.0.10) is read.
        let name = s(&p["metadata"]["name"]);
        let by_name: Vec<String> = (0..3)
            .filter_map(|_| {
                let out = c.kubectl(&["exec", &name, "--", "curl", "-s", "--max-time", "5", "http://web/"]);
                out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            })
            .collect();
        assert_eq!(by_name.len(), 3, "DNS name from {}: {by_name:?}\n{}", s(&p["spec"]["nodeName"]), c.log());
        answered.extend(by_ip.into_iter().chain(by_name));
    }
    assert!(answered.iter().filter(|a| a.contains("web-")).count() >= 2, "several pods answer: {answered:?}");
    // From the machine: every node's NodePort, and the ClusterIP (routed via a Ready node).
    for i in 1..=3 {
        let ip = node_ip(i);
        let ok = eventually(Duration::from_secs(10), || c.curl(&ip, node_port).is_some_and(|b| b.contains("web-")));
        assert!(ok, "NodePort {node_port} on node-{i} ({ip})");
    }
    let ok = eventually(Duration::from_secs(10), || c.curl(&cluster_ip, 80).is_some());
    assert!(ok, "the ClusterIP from the machine\n{}", c.log());

    // portico doctor, probing from a pod on one of the nodes, finds the Service healthy and
    // every node answering its NodePort.
    let kc = c.kubeconfig();
    let prefix = format!("{}-pod-", c.lab.prefix());
    let argv = [env!("CARGO_BIN_EXE_portico"), "doctor", "svc/web", "-o", "json", "--kubeconfig", kc.to_str().unwrap()];
    let mut argv = argv.to_vec();
    argv.extend(["--netns-prefix", &prefix]);
    let mut report = serde_json::Value::Null;
    let healthy = eventually(Duration::from_secs(20), || {
        let out = c.lab.exec(&c.node, &argv).unwrap();
        report = serde_json::from_slice(&out.stdout).unwrap_or_default();
        out.status.success() && report["healthy"] == true
    });
    assert!(healthy, "doctor: {report:#}");
    let node_check = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "node-port").unwrap().clone();
    assert_eq!(node_check["status"], "pass", "{node_check}");
    for i in 1..=3 {
        assert!(node_check.to_string().contains(&node_ip(i)), "node-{i} probed: {node_check}");
    }

    // Node failure: node-3's agent (and its proxy) dies.
    let victim = pods.iter().find(|p| p["spec"]["nodeName"] == "node-3").unwrap();
    let victim_name = s(&victim["metadata"]["name"]);
    let client = pods.iter().find(|p| p["spec"]["nodeName"] == "node-1").unwrap();
    let client_uid = s(&client["metadata"]["uid"]);
    // SAFETY: kill(2) on the agent this test's `portico up` started (checked by its command line).
    unsafe { libc::kill(pids[2], libc::SIGKILL) };
    let killed = Instant::now();
    let ok = eventually(Duration::from_secs(40), || {
        node_ready(&c, "node-3") == Some(false) && endpoint_ready(&c, &victim_name) == Some(false)
    });
    assert!(ok, "node-3 and its pod's endpoint go not ready\n{}", c.kubectl_ok(&["get", "nodes,endpointslices"]));
    eprintln!(
        "node-3 NotReady and its endpoint not ready {:.1} s after its agent died",
        killed.elapsed().as_secs_f64()
    );
    // The other two keep serving, from a pod and from the machine.
    let answers = gets_from_pod(&c, &client_uid, &format!("http://{cluster_ip}/"), 10);
    assert_eq!(answers.len(), 10, "every request answered with node-3 down: {answers:?}");
    assert!(answers.iter().all(|a| !a.contains(&victim_name)), "node-3's pod is out of rotation: {answers:?}");
    for i in 1..=2 {
        assert!(c.curl(&node_ip(i), node_port).is_some(), "NodePort on node-{i} with node-3 down");
    }

    // The node comes back and adopts its pod.
    let out = portico(&c, &["node", "start", "node-3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ok = eventually(Duration::from_secs(60), || {
        node_ready(&c, "node-3") == Some(true) && endpoint_ready(&c, &victim_name) == Some(true)
    });
    assert!(ok, "node-3 rejoins\n{}", c.kubectl_ok(&["get", "nodes,pods", "-o", "wide"]));
    let names: Vec<String> = c.wait_ready("web", 3).iter().map(|p| s(&p["metadata"]["name"])).collect();
    assert!(names.contains(&victim_name), "the same pod runs on: {names:?}");

    // Ctrl-C takes every node away: agents, pods, namespaces, the bridge.
    let agent_pids: Vec<i32> = NODES.iter().filter_map(|n| c.local_agent_pid(n)).collect();
    assert_eq!(agent_pids.len(), 3);
    assert!(c.interrupt(), "portico up ends on Ctrl-C:\n{}", c.log());
    for n in NODES {
        assert!(c.local_agent_pid(n).is_none(), "{n}'s agent ended");
    }
    let netns =
        String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned();
    assert!(!netns.contains(&format!("{}-pod-", c.lab.prefix())), "namespaces left: {netns}");
    let bridge = c.lab.exec(&c.node, &["ip", "link", "show", "portico-nodes"]).unwrap();
    assert!(!bridge.status.success(), "the node bridge is gone");
    let ps = String::from_utf8_lossy(&Command::new("ps").args(["-eo", "args"]).output().unwrap().stdout).into_owned();
    let data = c.data_dir.path().display().to_string();
    assert!(!ps.lines().any(|l| l.contains(&data) && !l.starts_with("ps")), "processes left:\n{ps}");
}

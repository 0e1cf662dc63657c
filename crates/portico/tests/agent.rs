//! The node agent end to end, inside a lab: `portico up` (API server, controllers, DNS and the
//! agent) runs in a lab node's network namespace, so the pod bridge, the pods' namespaces and
//! the masquerade rules all live in the lab and go with it. kubectl runs in the same namespace.
//! Needs root; under CI=true a lab that cannot be built fails the test.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, WEB_REPLICASET, is_ready, netns_exists, s};
use common::eventually;

const MYAPP_SVC: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: myapp-svc}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

#[test]
fn pods_run_with_their_own_ips_files_env_probes_and_survive_an_agent_restart() {
    let Some(mut c) = Cluster::start("agent", &[]) else { return };

    // The node registers, gets a pod CIDR from node IPAM, and turns Ready.
    let ok = eventually(Duration::from_secs(60), || {
        let n = c.json(&["get", "node", "n1"]);
        s(&n["spec"]["podCIDR"]).starts_with("198.19.") && is_ready(&n)
    });
    assert!(ok, "node n1 never became Ready with a pod CIDR:\n{}", c.log());
    let leased = eventually(Duration::from_secs(5), || {
        c.kubectl(&["get", "lease", "-n", "kube-node-lease", "n1"]).status.success()
    });
    assert!(leased, "no Lease for n1:\n{}", c.log());

    // Three pods of a ReplicaSet: distinct IPs, each answers from the node and from the others.
    c.apply(WEB_REPLICASET);
    c.apply(MYAPP_SVC);
    let ok = eventually(Duration::from_secs(90), || {
        let pods = c.pods("app=web");
        pods.len() == 3 && pods.iter().all(is_ready)
    });
    assert!(ok, "web pods never all Ready: {}\n{}", c.kubectl_ok(&["get", "pods", "-o", "wide"]), c.log());
    let pods = c.pods("app=web");
    let ips: Vec<String> = pods.iter().map(|p| s(&p["status"]["podIP"])).collect();
    let mut distinct = ips.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{ips:?}");
    let wide = c.kubectl_ok(&["get", "pods", "-o", "wide"]);
    for ip in &ips {
        assert!(wide.contains(ip.as_str()), "{wide}");
    }
    for p in &pods {
        let (name, ip) = (s(&p["metadata"]["name"]), s(&p["status"]["podIP"]));
        let body = c.curl(&ip, 8080).unwrap_or_else(|| panic!("{name} at {ip} does not answer from the node"));
        assert_eq!(body, format!("Hello World!\n{name}\n"));
        for q in &pods {
            let uid = s(&q["metadata"]["uid"]);
            let got = c.curl_from_pod(&uid, &ip, 8080);
            assert_eq!(got.as_deref(), Some(body.as_str()), "from {} to {name}", s(&q["metadata"]["name"]));
        }
    }
    // The Service's EndpointSlice lists the three ready pods.
    let ok = eventually(Duration::from_secs(20), || {
        let slices = c.json(&["get", "endpointslices", "-l", "kubernetes.io/service-name=myapp-svc"]);
        let ready: Vec<String> = slices["items"][0]["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["conditions"]["ready"] == true)
            .map(|e| s(&e["addresses"][0]))
            .collect();
        ready.len() == 3
    });
    assert!(ok, "the Service's slice does not list 3 ready endpoints");

    // The agent's health and kubelet-named metrics.
    let get = |path: &str| {
        let out =
            c.lab.exec(&c.node, &["curl", "-s", "--max-time", "3", &format!("http://127.0.0.1:10248{path}")]).unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(get("/healthz"), "OK");
    let metrics = get("/metrics");
    assert!(metrics.contains("kubelet_running_pods 3"), "{metrics}");
    assert!(metrics.contains("kubelet_running_containers{container_state=\"running\"} 3"), "{metrics}");
    assert!(metrics.contains("kubelet_pod_start_duration_seconds_count 3"), "{metrics}");
    assert!(
        metrics.contains("prober_probe_total{probe_type=\"Readiness\",result=\"successful\",container=\"web\""),
        "{metrics}"
    );

    // A pod's own hostname, resolv.conf, hosts and Service variables; the host's files stay.
    let host_resolv = std::fs::read("/etc/resolv.conf").unwrap();
    let host_hosts = std::fs::read("/etc/hosts").unwrap();
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: probe-me}
spec:
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "hostname; cat /etc/resolv.conf; cat /etc/hosts; env; sleep 3600"]
"#,
    );
    let ok =
        eventually(Duration::from_secs(60), || c.pods("!app").iter().any(|p| s(&p["status"]["phase"]) == "Running"));
    assert!(ok, "probe-me never Running:\n{}", c.log());
    let pod = c.json(&["get", "pod", "probe-me"]);
    let uid = s(&pod["metadata"]["uid"]);
    let ok = eventually(Duration::from_secs(10), || c.container_log(&uid, "c").contains("MYAPP_SVC_SERVICE_HOST="));
    let log = c.container_log(&uid, "c");
    assert!(ok, "container log: {log}");
    assert!(log.contains(" stdout F probe-me\n") || log.contains(" stdout P probe-me"), "hostname: {log}");
    assert!(log.contains("nameserver 10.96.0.10"), "{log}");
    assert!(log.contains("search default.svc.cluster.local svc.cluster.local cluster.local"), "{log}");
    assert!(log.contains("options ndots:5"), "{log}");
    assert!(log.contains("# Kubernetes-managed hosts file."), "{log}");
    let svc_ip = s(&c.json(&["get", "svc", "myapp-svc"])["spec"]["clusterIP"]);
    assert!(log.contains(&format!("MYAPP_SVC_SERVICE_HOST={svc_ip}")), "{log}");
    assert!(log.contains(&format!("MYAPP_SVC_PORT=tcp://{svc_ip}:80")), "{log}");
    assert!(log.contains("KUBERNETES_SERVICE_HOST=10.96.0.1"), "{log}");
    // The same, the way a user looks: kubectl exec through the kubelet API.
    assert_eq!(c.kubectl_ok(&["exec", "probe-me", "--", "hostname"]), "probe-me\n");
    let resolv = c.kubectl_ok(&["exec", "probe-me", "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 10.96.0.10") && resolv.contains("options ndots:5"), "{resolv}");
    let env = c.kubectl_ok(&["exec", "probe-me", "--", "env"]);
    assert!(env.contains(&format!("MYAPP_SVC_SERVICE_HOST={svc_ip}")), "{env}");
    assert_eq!(std::fs::read("/etc/resolv.conf").unwrap(), host_resolv, "the host's resolv.conf changed");
    assert_eq!(std::fs::read("/etc/hosts").unwrap(), host_hosts, "the host's hosts file changed");

    // An app listening on 127.0.0.1 only answers inside its pod, not from other pods.
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: local-only}
spec:
  containers:
  - name: c
    image: python
    command: ["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"]
"#,
    );
    let ok = eventually(Duration::from_secs(60), || {
        s(&c.json(&["get", "pod", "local-only"])["status"]["phase"]) == "Running"
    });
    assert!(ok, "local-only never Running");
    let local = c.json(&["get", "pod", "local-only"]);
    let (local_uid, local_ip) = (s(&local["metadata"]["uid"]), s(&local["status"]["podIP"]));
    assert!(
        eventually(Duration::from_secs(10), || c.curl_from_pod(&local_uid, "127.0.0.1", 8000).is_some()),
        "no answer inside the pod"
    );
    let other = s(&pods[0]["metadata"]["uid"]);
    assert_eq!(c.curl_from_pod(&other, &local_ip, 8000), None, "a loopback-only app answered another pod");

    // Readiness: an exec probe that starts failing takes the pod out of the slice, without a
    // restart; back in after success. Liveness failure restarts the container.
    let marks = c.marks.path().to_str().unwrap().to_owned();
    std::fs::write(c.marks.path().join("ready"), "").unwrap();
    std::fs::write(c.marks.path().join("alive"), "").unwrap();
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: flip, labels: {{app: flip}}}}
spec:
  containers:
  - name: c
    image: demo
    ports: [{{containerPort: 8080}}]
    readinessProbe: {{exec: {{command: ["test", "-f", "{marks}/ready"]}}, periodSeconds: 1, failureThreshold: 1}}
    livenessProbe: {{exec: {{command: ["test", "-f", "{marks}/alive"]}}, periodSeconds: 1, failureThreshold: 2}}
---
apiVersion: v1
kind: Service
metadata: {{name: flip}}
spec:
  selector: {{app: flip}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
    ));
    let slice_ready = |c: &Cluster| -> Option<bool> {
        let slices = c.json(&["get", "endpointslices", "-l", "kubernetes.io/service-name=flip"]);
        slices["items"][0]["endpoints"][0]["conditions"]["ready"].as_bool()
    };
    assert!(eventually(Duration::from_secs(60), || slice_ready(&c) == Some(true)), "flip never ready:\n{}", c.log());
    std::fs::remove_file(c.marks.path().join("ready")).unwrap();
    let t = Instant::now();
    assert!(eventually(Duration::from_secs(10), || slice_ready(&c) == Some(false)), "flip never left the slice");
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "readiness failure took {took:?} to reach the slice");
    let pod = c.json(&["get", "pod", "flip"]);
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0, "readiness failure must not restart");
    // `kubectl describe` shows kubelet's events: the start, and the failing probe's output.
    let ok = eventually(Duration::from_secs(10), || {
        let d = c.kubectl_ok(&["describe", "pod", "flip"]);
        d.contains("Started container c") && d.contains("Readiness probe failed: command exited with 1")
    });
    assert!(ok, "{}", c.kubectl_ok(&["describe", "pod", "flip"]));
    std::fs::write(c.marks.path().join("ready"), "").unwrap();
    assert!(eventually(Duration::from_secs(10), || slice_ready(&c) == Some(true)), "flip never came back");
    std::fs::remove_file(c.marks.path().join("alive")).unwrap();
    let ok = eventually(Duration::from_secs(30), || {
        c.json(&["get", "pod", "flip"])["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(0) >= 1
    });
    assert!(ok, "a failing liveness probe did not restart the container:\n{}", c.log());
    std::fs::write(c.marks.path().join("alive"), "").unwrap();

    // Init containers run first, to completion; a hostNetwork pod has the node's address.
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: hostnet}}
spec:
  hostNetwork: true
  initContainers:
  - name: init
    image: busybox
    command: ["sh", "-c", "echo ran > {marks}/init"]
  containers:
  - name: c
    image: demo
    ports: [{{containerPort: 18080}}]
"#
    ));
    let ok =
        eventually(Duration::from_secs(60), || s(&c.json(&["get", "pod", "hostnet"])["status"]["phase"]) == "Running");
    assert!(ok, "hostnet never Running: {}", c.json(&["get", "pod", "hostnet"])["status"]);
    let pod = c.json(&["get", "pod", "hostnet"]);
    assert_eq!(std::fs::read_to_string(c.marks.path().join("init")).unwrap(), "ran\n");
    assert_eq!(pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
    let node_ip = c.node.ip().to_string();
    assert_eq!(s(&pod["status"]["podIP"]), node_ip);
    let ok = eventually(Duration::from_secs(10), || c.curl(&node_ip, 18080).is_some());
    assert!(ok, "the hostNetwork pod does not answer on the node's address");
    assert_eq!(c.curl(&node_ip, 18080).unwrap(), "Hello World!\nhostnet\n");

    // A command that does not exist: a waiting or terminated container with a clear message.
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: nosuch}
spec:
  containers:
  - name: c
    image: x
    command: ["definitely-not-a-command"]
"#,
    );
    // kubelet's shape of it: the start error in lastState, then CrashLoopBackOff.
    let ok = eventually(Duration::from_secs(30), || {
        let p = c.json(&["get", "pod", "nosuch"]);
        let cs = &p["status"]["containerStatuses"][0];
        let last = &cs["lastState"]["terminated"];
        last["reason"] == "StartError"
            && last["exitCode"] == 128
            && s(&last["message"]).contains(r#"exec: "definitely-not-a-command": executable file not found in $PATH"#)
            && cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
            && cs["restartCount"].as_i64().unwrap_or(0) >= 1
    });
    assert!(ok, "no clear reason for a missing command: {}", c.json(&["get", "pod", "nosuch"])["status"]);

    // Agent (and API server) kill -9 and restart: pods keep running with their IPs, and are
    // not restarted.
    let before = c.pods("app=web");
    c.kill9();
    for p in &before {
        let ip = s(&p["status"]["podIP"]);
        assert!(c.curl(&ip, 8080).is_some(), "{ip} stopped answering while the agent was down");
    }
    c.spawn();
    std::thread::sleep(Duration::from_secs(3));
    let after = c.pods("app=web");
    for p in &before {
        let name = s(&p["metadata"]["name"]);
        let q = after.iter().find(|q| s(&q["metadata"]["name"]) == name).expect("pod kept");
        assert_eq!(q["status"]["podIP"], p["status"]["podIP"], "{name} changed its IP");
        assert_eq!(q["status"]["containerStatuses"][0]["restartCount"], 0, "{name} was restarted");
    }
    // A new pod after the restart gets an address no other pod has.
    c.kubectl_ok(&["scale", "rs", "web", "--replicas", "4"]);
    let ok = eventually(Duration::from_secs(60), || {
        let pods = c.pods("app=web");
        pods.len() == 4 && pods.iter().all(is_ready)
    });
    assert!(ok, "the fourth pod never became Ready:\n{}", c.log());
    let mut all: Vec<String> =
        c.pods("").iter().map(|p| s(&p["status"]["podIP"])).filter(|ip| !ip.is_empty()).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "an IP was handed out twice");

    // Each resource is watched at most once with the agent running too (before any kubectl
    // --wait, which watches as a client of its own).
    let metrics = c.kubectl_ok(&["get", "--raw", "/metrics"]);
    for line in metrics.lines().filter(|l| l.starts_with("apiserver_request_total") && l.contains("verb=\"WATCH\"")) {
        let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(count <= 1.0, "watched more than once: {line}");
    }

    // Deleting a pod removes its namespace, veth and IP record.
    let victim = &c.pods("app=web")[0];
    let (name, uid) = (s(&victim["metadata"]["name"]), s(&victim["metadata"]["uid"]));
    let ns = format!("{}-pod-{uid}", c.lab.prefix());
    assert!(netns_exists(&ns), "{ns} missing while the pod runs");
    c.kubectl_ok(&["delete", "pod", &name, "--wait=true", "--timeout=60s"]);
    assert!(eventually(Duration::from_secs(10), || !netns_exists(&ns)), "{ns} left behind");
    let ip = s(&victim["status"]["podIP"]);
    assert!(!c.state_dir().join("net").join("ips").join(&ip).exists(), "the IP record of {ip} is left");
    // One veth on the bridge per pod namespace: the victim's went with it.
    let ok = eventually(Duration::from_secs(30), || {
        let links = c.lab.exec(&c.node, &["ip", "-o", "link"]).unwrap();
        let veths = String::from_utf8_lossy(&links.stdout).matches("master portico0").count();
        let prefix = format!("{}-pod-", c.lab.prefix());
        let namespaces = std::fs::read_dir("/run/netns")
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .count();
        veths == namespaces
    });
    assert!(ok, "veths and pod namespaces disagree after a delete");
}

#[test]
fn a_second_node_joins_and_pods_reach_each_other_across_nodes() {
    let Some(mut c) = Cluster::start("agent2", &[]) else { return };
    c.join("n2");
    let ready = |c: &Cluster, name: &str| is_ready(&c.json(&["get", "node", name]));
    assert!(
        eventually(Duration::from_secs(60), || ready(&c, "n1") && ready(&c, "n2")),
        "nodes not Ready:\n{}",
        c.kubectl_ok(&["get", "nodes", "-o", "wide"])
    );
    c.apply(
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: spread}
spec:
  replicas: 4
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      containers:
      - name: web
        image: demo
        ports: [{containerPort: 8080}]
"#,
    );
    let ok = eventually(Duration::from_secs(90), || {
        let pods = c.pods("app=spread");
        pods.len() == 4 && pods.iter().all(is_ready)
    });
    assert!(ok, "spread pods never Ready: {}", c.kubectl_ok(&["get", "pods", "-o", "wide"]));
    let pods = c.pods("app=spread");
    let on = |n: &str| pods.iter().filter(|p| p["spec"]["nodeName"] == n).cloned().collect::<Vec<_>>();
    let (one, two) = (on("n1"), on("n2"));
    assert!(
        !one.is_empty() && !two.is_empty(),
        "all pods on one node: {}",
        c.kubectl_ok(&["get", "pods", "-o", "wide"])
    );
    // Pod CIDRs differ per node, and pods reach each other both ways (host-gateway routes).
    let cidr = |n: &str| s(&c.json(&["get", "node", n])["spec"]["podCIDR"]);
    assert_ne!(cidr("n1"), cidr("n2"));
    for (from, to) in [(&one[0], &two[0]), (&two[0], &one[0])] {
        let (uid, ip, name) = (s(&from["metadata"]["uid"]), s(&to["status"]["podIP"]), s(&to["metadata"]["name"]));
        let got = c.curl_from_pod(&uid, &ip, 8080);
        assert_eq!(got, Some(format!("Hello World!\n{name}\n")), "{} -> {name}", s(&from["metadata"]["name"]));
    }
}

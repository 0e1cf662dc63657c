//! `portico up` as a new user meets it, in a lab node: on a machine whose port 53 is already
//! taken (a local resolver), and started a second time on the same data directory. Needs root;
//! under CI=true a lab that cannot be built fails the test.

mod common;

use std::process::Command;
use std::time::Duration;

use common::cluster::{Cluster, s};
use common::eventually;
use serde_json::{Value, json};

/// Holds UDP and TCP port 53 on `addr` until killed, as a resolver would.
fn squatter(addr: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        &format!(
            "import socket,time\nu=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nu.bind(('{addr}',53))\n\
             t=socket.socket()\nt.bind(('{addr}',53))\nt.listen()\ntime.sleep(3600)"
        ),
    ]);
    cmd
}

fn kube_dns_endpoint(c: &Cluster) -> Option<(String, u64)> {
    let slices = c.json(&["get", "endpointslices", "-n", "kube-system", "-l", "kubernetes.io/service-name=kube-dns"]);
    let slice = slices["items"].as_array()?.first()?.clone();
    let ip = s(&slice["endpoints"][0]["addresses"][0]);
    let port = slice["ports"].as_array()?.iter().find(|p| p["protocol"] == "UDP")?["port"].as_u64()?;
    Some((ip, port))
}

fn web(c: &Cluster) {
    c.apply(
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "demo",
                    "ports": [{"containerPort": 8080}], "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}})
        .to_string(),
    );
    c.apply(
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
        .to_string(),
    );
}

fn ready_pods(c: &Cluster, n: usize) -> Vec<Value> {
    c.wait_ready("web", n)
}

/// From a pod, by name through the cluster DNS (10.96.0.10) and the ClusterIP.
fn curl_by_name(c: &Cluster, pod: &str) -> String {
    let mut last = String::new();
    for _ in 0..3 {
        let out = c.kubectl(&["exec", pod, "--", "curl", "-s", "--max-time", "5", "http://web/"]);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
    }
    panic!("curl http://web/ from {pod}: {last}\n{}", c.log());
}

#[test]
fn up_starts_when_port_53_is_taken_and_everything_resolves_through_kube_dns() {
    let Some(mut c) = Cluster::new("updns", &[]) else { return };
    c.auto_dns = true;
    let node_ip = c.node.ip().to_string();
    // dnsmasq-style: port 53 held on every address of the machine; and a development server on
    // 8080, where the DNS's /health would go.
    let sq = c.lab.spawn(&c.node, squatter("0.0.0.0")).unwrap();
    let mut dev = Command::new("python3");
    dev.args(["-m", "http.server", "--bind", "0.0.0.0", "8080"]);
    let _dev = c.lab.spawn(&c.node, dev).unwrap();
    let held = eventually(Duration::from_secs(5), || {
        let udp = c.lab.exec(&c.node, &["ss", "-Hlun", "sport = :53"]).is_ok_and(|o| !o.stdout.is_empty());
        let tcp = c.lab.exec(&c.node, &["ss", "-Hltn", "sport = :8080"]).is_ok_and(|o| !o.stdout.is_empty());
        udp && tcp
    });
    assert!(held, "the stand-ins hold ports 53 and 8080");
    c.spawn();
    // Each component as it is ready, then one line with the next command.
    let ok = eventually(Duration::from_secs(60), || c.log().contains("Portico is up"));
    assert!(ok, "the status line:\n{}", c.log());
    for line in ["ready  node agent", "ready  service proxy", "ready  ingress controller", "export KUBECONFIG="] {
        assert!(c.log().contains(line), "{line}:\n{}", c.log());
    }

    let ok = eventually(Duration::from_secs(30), || kube_dns_endpoint(&c) == Some((node_ip.clone(), 10053)));
    assert!(ok, "kube-dns points at the DNS on {node_ip}:10053: {:?}\n{}", kube_dns_endpoint(&c), c.log());
    assert!(c.log().contains("cluster DNS listens on"), "{}", c.log());
    assert!(c.log().contains("runs without /health, /ready and /metrics"), "{}", c.log());
    // The machine itself asks 10.96.0.10:53 and the proxy takes it to 10053.
    c.lab.register("10.96.0.0/12").unwrap();
    let ok = eventually(Duration::from_secs(15), || {
        let out = c.lab.exec(
            &c.node,
            &["dig", "+short", "+time=1", "+tries=1", "@10.96.0.10", "kubernetes.default.svc.cluster.local"],
        );
        out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "10.96.0.1")
    });
    assert!(ok, "dig @10.96.0.10 from the node\n{}", c.log());
    // And a pod, whose resolv.conf names 10.96.0.10.
    web(&c);
    let pods = ready_pods(&c, 2);
    let answer = curl_by_name(&c, &s(&pods[0]["metadata"]["name"]));
    assert!(answer.contains("web-"), "{answer}");
    drop(sq);
}

#[test]
fn a_second_up_on_the_same_data_dir_resumes_the_cluster_and_its_pods() {
    let Some(mut c) = Cluster::new("upres", &[]) else { return };
    c.auto_dns = true;
    // systemd-resolved-style: only 127.0.0.53 holds port 53, so the node's address still has it.
    let _resolved = c.lab.spawn(&c.node, squatter("127.0.0.53")).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    c.spawn();
    let node_ip = c.node.ip().to_string();
    let ok = eventually(Duration::from_secs(30), || kube_dns_endpoint(&c) == Some((node_ip.clone(), 53)));
    assert!(ok, "kube-dns points at {node_ip}:53: {:?}", kube_dns_endpoint(&c));
    web(&c);
    let before: Vec<String> = ready_pods(&c, 2).iter().map(|p| s(&p["metadata"]["name"])).collect();
    c.apply(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept"}, "data": {"a": "1"}}).to_string(),
    );

    // Ctrl-C, then up again on the same data directory.
    assert!(c.interrupt(), "portico up ends on Ctrl-C:\n{}", c.log());
    // The node went with it: no pod namespace, bridge, nft table or container is left.
    assert_node_is_clean(&c);
    c.spawn();
    assert_eq!(c.kubectl_ok(&["get", "configmap", "kept", "-o", "jsonpath={.data.a}"]), "1");
    let after = ready_pods(&c, 2);
    let names: Vec<String> = after.iter().map(|p| s(&p["metadata"]["name"])).collect();
    assert_eq!(names.len(), 2);
    for p in &before {
        assert!(names.contains(p), "the same pods run again: {before:?} -> {names:?}");
    }
    let answer = curl_by_name(&c, &names[0]);
    assert!(answer.contains("web-"), "{answer}");
}

/// With the DNS on the wildcard address, a pod on the DNS's own node still resolves through
/// 10.96.0.10: the answer leaves from the node address the proxy sent the query to, so
/// conntrack maps it back.
#[test]
fn a_wildcard_dns_answers_pods_on_its_own_node() {
    let Some(mut c) = Cluster::new("updnsw", &["--dns-listen", "0.0.0.0:53"]) else { return };
    c.auto_dns = true;
    c.spawn();
    web(&c);
    let pods = ready_pods(&c, 2);
    for p in &pods {
        assert_eq!(s(&p["spec"]["nodeName"]), "n1");
        let answer = curl_by_name(&c, &s(&p["metadata"]["name"]));
        assert!(answer.contains("web-"), "{answer}");
    }
}

/// Nothing of the node `portico up` ran is left: pod namespaces, the bridge, nft tables,
/// container records and supervisors.
fn assert_node_is_clean(c: &Cluster) {
    let pod_prefix = format!("{}-pod-", c.lab.prefix());
    let netns =
        String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned();
    assert!(!netns.contains(&pod_prefix), "pod namespaces left: {netns}");
    assert!(
        !c.lab.exec(&c.node, &["ip", "link", "show", "portico0"]).unwrap().status.success(),
        "the bridge is gone:\n{}",
        c.log()
    );
    let tables = c.lab.exec_ok(&c.node, &["nft", "list", "tables"]).unwrap();
    assert!(!tables.contains("portico"), "nft tables left: {tables}");
    let containers = std::fs::read_dir(c.state_dir().join("containers")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(containers, 0, "container records left");
    let ps = String::from_utf8_lossy(&Command::new("ps").args(["-eo", "args"]).output().unwrap().stdout).into_owned();
    assert!(!ps.lines().any(|l| l.contains("shim") && l.contains(&c.state_dir().display().to_string())), "{ps}");
}

/// After a crash (kill -9) the pods keep running, as kubelet's do; `portico down` removes them
/// and everything else the node had.
#[test]
fn portico_down_removes_what_a_crashed_up_left() {
    let Some(mut c) = Cluster::new("updown", &[]) else { return };
    c.auto_dns = true;
    c.spawn();
    web(&c);
    let pods = ready_pods(&c, 2);
    c.kill9();
    let ip = s(&pods[0]["status"]["podIP"]);
    assert!(c.curl(&ip, 8080).is_some(), "pods outlive a crashed portico up");
    let prefix = format!("{}-pod-", c.lab.prefix());
    let out = c
        .lab
        .exec(
            &c.node,
            &[
                env!("CARGO_BIN_EXE_portico"),
                "down",
                "--data-dir",
                c.data_dir.path().to_str().unwrap(),
                "--netns-prefix",
                &prefix,
            ],
        )
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed the pods"));
    assert_node_is_clean(&c);
    assert!(c.curl(&ip, 8080).is_none(), "the pod no longer answers");
}

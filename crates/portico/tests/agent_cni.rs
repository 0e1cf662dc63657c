//! The node agent with CNI pod networking, inside a lab: `portico up --cni-conf-dir` with a
//! bridge + host-local conflist (Debian's containernetworking-plugins in /usr/lib/cni). The
//! same ReplicaSet as tests/agent.rs: three demo pods with an httpGet readiness probe turn
//! Ready with distinct IPs in the node's pod CIDR, answer from the node and from each other,
//! and a deleted pod gives its host-local address back.
//! Needs root; under CI=true a lab that cannot be built fails the test.

mod common;

use std::path::Path;
use std::time::Duration;

use common::cluster::{Cluster, WEB_REPLICASET, is_ready, netns_exists, s};
use common::eventually;

/// The CNI network's name; host-local keeps its leases in `<dataDir>/<name>/<ip>`.
const NETWORK: &str = "portico-lab";
/// Node IPAM gives the first node the first /24 of the harness's cluster CIDR (198.19.0.0/16).
const POD_CIDR: &str = "198.19.0.0/24";
const PLUGINS: &str = "/usr/lib/cni";

fn conflist(data_dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [{
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": true,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": POD_CIDR}]],
                "dataDir": data_dir,
            },
        }],
    })
    .to_string()
}

fn in_cidr(ip: &str) -> bool {
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    ip.octets()[..3] == [198, 19, 0]
}

#[test]
fn a_replicaset_runs_on_cni_bridge_and_host_local() {
    if !Path::new(PLUGINS).join("bridge").is_file() || !Path::new(PLUGINS).join("host-local").is_file() {
        let why = format!("no CNI bridge/host-local plugins in {PLUGINS} (Debian: containernetworking-plugins)");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}; CI=true forbids skipping");
        eprintln!("skipped: {why}");
        return;
    }
    let conf = tempfile::tempdir().unwrap();
    let ipam = tempfile::tempdir().unwrap();
    std::fs::write(conf.path().join("10-portico.conflist"), conflist(ipam.path())).unwrap();
    let conf_dir = conf.path().to_str().unwrap().to_owned();
    let Some(c) = Cluster::start("cni", &["--cni-conf-dir", &conf_dir, "--cni-bin-dir", PLUGINS]) else { return };

    // The conflist's subnet must be what node IPAM gave the node.
    let ok = eventually(Duration::from_secs(60), || {
        let n = c.json(&["get", "node", "n1"]);
        s(&n["spec"]["podCIDR"]) == POD_CIDR && is_ready(&n)
    });
    assert!(ok, "node n1 never got pod CIDR {POD_CIDR}: {}\n{}", c.json(&["get", "node", "n1"]), c.log());

    c.apply(WEB_REPLICASET);
    let ok = eventually(Duration::from_secs(90), || {
        let pods = c.pods("app=web");
        pods.len() == 3 && pods.iter().all(is_ready)
    });
    assert!(ok, "web pods never all Ready: {}\n{}", c.kubectl_ok(&["get", "pods", "-o", "wide"]), c.log());
    assert!(c.log().contains("pod attached via CNI"), "the pods were not networked through CNI:\n{}", c.log());

    let pods = c.pods("app=web");
    let ips: Vec<String> = pods.iter().map(|p| s(&p["status"]["podIP"])).collect();
    let mut distinct = ips.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{ips:?}");
    let leases = ipam.path().join(NETWORK);
    for ip in &ips {
        assert!(in_cidr(ip), "{ip} is outside {POD_CIDR}");
        assert_ne!(ip, "198.19.0.1", "a pod got the gateway's address");
        assert!(leases.join(ip).exists(), "host-local has no lease file for {ip} in {}", leases.display());
    }
    // The gateway is the CNI bridge in the node's namespace.
    let addr = c.lab.exec_ok(&c.node, &["ip", "-o", "-4", "addr", "show", "dev", "cni0"]).unwrap();
    assert!(addr.contains("198.19.0.1/24"), "cni0: {addr}");

    for p in &pods {
        let (name, ip) = (s(&p["metadata"]["name"]), s(&p["status"]["podIP"]));
        let body = c.curl(&ip, 8080).unwrap_or_else(|| panic!("{name} at {ip} does not answer from the node"));
        assert_eq!(body, format!("Hello World!\n{name}\n"));
        for q in &pods {
            // The agent names a CNI pod's namespace `<prefix><uid>` as it does its own.
            let uid = s(&q["metadata"]["uid"]);
            assert!(netns_exists(&format!("{}-pod-{uid}", c.lab.prefix())), "no namespace for pod {uid}");
            let got = c.curl_from_pod(&uid, &ip, 8080);
            assert_eq!(got.as_deref(), Some(body.as_str()), "from {} to {name}", s(&q["metadata"]["name"]));
        }
    }

    // Deleting a pod runs CNI DEL: the namespace, the cached result and the lease go.
    let victim = &pods[0];
    let (name, uid, ip) =
        (s(&victim["metadata"]["name"]), s(&victim["metadata"]["uid"]), s(&victim["status"]["podIP"]));
    let ns = format!("{}-pod-{uid}", c.lab.prefix());
    c.kubectl_ok(&["delete", "pod", &name, "--wait=true", "--timeout=60s"]);
    assert!(eventually(Duration::from_secs(10), || !netns_exists(&ns)), "{ns} left behind");
    assert!(
        eventually(Duration::from_secs(10), || !leases.join(&ip).exists()),
        "host-local still holds {ip} after the pod was deleted"
    );
    let cached = c.state_dir().join("net").join("cni").join(format!("{uid}.json"));
    assert!(!cached.exists(), "the CNI result cache of {uid} is left");

    // The ReplicaSet's replacement gets an address through CNI too, and answers.
    let ok = eventually(Duration::from_secs(60), || {
        let pods = c.pods("app=web");
        pods.len() == 3 && pods.iter().all(is_ready) && !pods.iter().any(|p| s(&p["metadata"]["uid"]) == uid)
    });
    assert!(ok, "no Ready replacement pod:\n{}", c.log());
    for p in c.pods("app=web") {
        let (name, ip) = (s(&p["metadata"]["name"]), s(&p["status"]["podIP"]));
        assert!(in_cidr(&ip) && leases.join(&ip).exists(), "{name}: {ip}");
        assert_eq!(c.curl(&ip, 8080), Some(format!("Hello World!\n{name}\n")));
    }
}

//! The nftables data plane on real packets, without an API server: a lab node with pods on
//! two nodes, rules rendered from a hand-built snapshot and loaded with `nft -f`, traffic from
//! the node, from pods and from an external client. Runs as root; under CI=true a missing lab
//! fails instead of skipping.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::net::IpFamily;
use lab::{Lab, Netns};
use proxy::model::{Endpoint, Port, Protocol, Service, ServiceKey, ServiceState, Snapshot};
use proxy::nft::render::{Config, Mode};
use proxy::nft::state::Table;

const SERVICE_CIDR: &str = "10.96.0.0/12";

/// A TCP server in `ns` on `port` that answers every connection with `name` and closes.
fn serve_name(lab: &Lab, ns: &impl Netns, name: &str, port: u16) {
    let script = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('0.0.0.0',{port}))\ns.listen(64)\nwhile True:\n c,a=s.accept()\n c.sendall(b'{name} '+a[0].encode())\n c.close()\n"
    );
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &script]);
    lab.spawn(ns, cmd).unwrap();
}

/// What the server at `to` says, seen from `from`; the error kind if connecting fails.
fn ask(lab: &Lab, from: &impl Netns, to: SocketAddr) -> Result<String, std::io::ErrorKind> {
    let mut s = lab.connect_tcp(from, to).map_err(|e| match e {
        lab::LabError::Io(e) => e.kind(),
        other => panic!("{other}"),
    })?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.kind())?;
    Ok(out)
}

fn ep(ip: IpAddr, node: &str) -> Endpoint {
    Endpoint { ip, port: 8080, ready: true, serving: true, terminating: false, node: Some(node.into()) }
}

fn service(name: &str, ip: &str, node_port: Option<u16>) -> Service {
    Service {
        key: ServiceKey::new("default", name),
        cluster_ips: vec![ip.parse().unwrap()],
        external_ips: vec![],
        load_balancer_ips: vec![],
        ports: vec![Port { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port }],
        affinity_timeout: None,
        external_local: false,
        internal_local: false,
        health_check_node_port: None,
        source_ranges: vec![],
    }
}

fn snapshot(states: Vec<ServiceState>) -> Snapshot {
    states.into_iter().map(|s| (s.service.key.clone(), Arc::new(s))).collect()
}

fn load(lab: &Lab, node: &impl Netns, text: &str) {
    let text = text.to_owned();
    lab.in_ns(node, move || proxy::nft::apply::run(&text)).unwrap().unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn cluster_ips_node_ports_rejects_and_partial_syncs_on_real_packets() {
    let Some(lab) = Lab::new_or_skip("nft") else { return };
    let lan = lab.switch("lan", "198.51.100.0/24").unwrap();
    let n1 = lab.node("n1", &lan).unwrap();
    let n2 = lab.node("n2", &lan).unwrap();
    let p1 = lab.pod("p1", &n1).unwrap();
    let p2 = lab.pod("p2", &n2).unwrap();
    let client = lab.client("c", &lan).unwrap();
    lab.register(SERVICE_CIDR).unwrap();
    // Locally generated traffic needs a route for the service range before NAT happens.
    lab.exec_ok(&n1, &["ip", "route", "add", SERVICE_CIDR, "dev", "cbr0"]).unwrap();
    // As the node agent does for its pods: with br_netfilter a pod's own DNATed frame is
    // bridged back to its port, which a bridge only does in hairpin mode.
    lab.exec_ok(&n1, &["ip", "link", "set", "veth1", "type", "bridge_slave", "hairpin", "on"]).unwrap();
    for (pod, name) in [(&p1, "p1"), (&p2, "p2")] {
        serve_name(&lab, pod, name, 8080);
    }
    std::thread::sleep(Duration::from_millis(500));

    let mut table = Table::new(Config {
        family: IpFamily::V4,
        node_name: "n1".into(),
        nodeport_ips: vec![n1.ip().into()],
        cluster_cidr: Some("198.18.0.0/15".parse().unwrap()),
        service_cidr: Some(SERVICE_CIDR.parse().unwrap()),
        mode: Mode::Kernel,
    });
    let none = |_: &ServiceKey, _: &Port| None;
    let web = |eps: Vec<Endpoint>| ServiceState {
        service: service("web", "10.96.0.20", Some(30080)),
        endpoints: BTreeMap::from([("http".into(), eps)]),
    };
    let empty = ServiceState { service: service("empty", "10.96.0.21", None), endpoints: BTreeMap::new() };
    let both = vec![ep(p1.ip().into(), "n1"), ep(p2.ip().into(), "n2")];
    let snap = snapshot(vec![web(both.clone()), empty.clone()]);
    load(&lab, &n1, &table.full(&snap, &none));

    let vip: SocketAddr = "10.96.0.20:80".parse().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let answer = ask(&lab, &n1, vip).expect("the ClusterIP answers from the node");
        seen.insert(answer.split(' ').next().unwrap().to_owned());
    }
    assert_eq!(seen, ["p1", "p2"].map(String::from).into(), "both endpoints, on both nodes, serve");

    // From a pod: a pod reaching itself through the Service is masqueraded (hairpin), so the
    // server sees the node's bridge address, not its own.
    let mut hairpin = None;
    for _ in 0..30 {
        let answer = ask(&lab, &p1, vip).unwrap_or_else(|e| {
            let rules = lab.exec(&n1, &["nft", "list", "ruleset"]).unwrap();
            let ct = lab.exec(&n1, &["conntrack", "-L"]).unwrap();
            if std::env::var("PAUSE_ON_FAIL").is_ok() {
                eprintln!("lab {} paused", lab.prefix());
                std::thread::sleep(Duration::from_secs(120));
            }
            panic!(
                "the ClusterIP answers from a pod: {e:?}\n{}\n{}",
                String::from_utf8_lossy(&rules.stdout),
                String::from_utf8_lossy(&ct.stdout)
            )
        });
        if answer.starts_with("p1 ") {
            hairpin = Some(answer);
            break;
        }
    }
    let hairpin = hairpin.expect("p1 reached itself");
    assert_eq!(hairpin, format!("p1 {}", n1.gateway()), "hairpin traffic is masqueraded");

    // NodePort from outside: masqueraded (externalTrafficPolicy Cluster).
    let np = SocketAddr::new(n1.ip().into(), 30080);
    let answer = ask(&lab, &client, np).expect("the NodePort answers from outside");
    assert!(answer.ends_with(&n1.ip().to_string()) || answer.ends_with(&n1.gateway().to_string()), "{answer}");

    // No endpoints: refused at once, not a timeout.
    let t = Instant::now();
    assert_eq!(ask(&lab, &n1, "10.96.0.21:80".parse().unwrap()), Err(std::io::ErrorKind::ConnectionRefused));
    assert!(t.elapsed() < Duration::from_secs(1));
    // A port no Service uses on a ClusterIP: refused; an address no Service has: dropped.
    assert_eq!(ask(&lab, &n1, "10.96.0.20:81".parse().unwrap()), Err(std::io::ErrorKind::ConnectionRefused));
    assert_eq!(ask(&lab, &p1, "10.96.0.99:80".parse().unwrap()), Err(std::io::ErrorKind::TimedOut));

    // Partial sync: the endpoint on n2 goes; only p1 answers, and the change is elements only.
    let snap = snapshot(vec![web(vec![ep(p1.ip().into(), "n1")]), empty]);
    let key = ServiceKey::new("default", "web");
    let text = table.partial(&snap, [&key], &none);
    assert!(!text.contains("delete table"), "{text}");
    load(&lab, &n1, &text);
    for _ in 0..10 {
        assert!(ask(&lab, &n1, vip).unwrap().starts_with("p1 "));
    }
    let mut client_conn = lab.connect_tcp(&client, np).unwrap();
    let mut out = String::new();
    client_conn.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("p1 "));
    let _ = client_conn.write_all(b"");
}

//! Lab tests of the native pod network: `PodNetwork` runs inside a lab node's namespace and
//! makes real namespaces, veths, routes and nft rules there; reachability is checked with real
//! TCP connections. Needs root; under CI=true a missing lab fails instead of skipping.

use std::fs::File;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lab::{Lab, Netns, Node};
use node::net::{Attachment, CniConfig, CniNetwork, NetConfig, NetError, Network, PodNetwork, PodRef};

const TIMEOUT: Duration = Duration::from_secs(3);

/// The pod namespaces the code under test makes, under `<lab prefix>-p-`: the lab's guard
/// deletes every namespace with its prefix, these included.
struct PodNamespaces(String);

impl PodNamespaces {
    fn of(lab: &Lab) -> PodNamespaces {
        PodNamespaces(format!("{}-p-", lab.prefix()))
    }

    fn list(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir("/run/netns") else { return Vec::new() };
        let mut names: Vec<String> = dir
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&self.0))
            .collect();
        names.sort();
        names
    }
}

fn config(pods: &PodNamespaces, pod_cidr: &str, state: &Path) -> NetConfig {
    let mut cfg = NetConfig::new(pod_cidr.parse().unwrap(), state);
    cfg.cluster_cidr = Some("198.19.0.0/16".parse().unwrap());
    cfg.netns_prefix = pods.0.clone();
    cfg
}

fn pod(uid: &str) -> PodRef {
    PodRef { uid: uid.into(), namespace: "default".into(), name: format!("pod-{uid}") }
}

/// Runs an async block on a current-thread runtime on a thread inside `node`'s namespace,
/// which is how `PodNetwork` learns which namespace is "the host".
fn on_node<T: Send, F: Future<Output = T>>(lab: &Lab, node: &Node, f: impl FnOnce() -> F + Send) -> T {
    lab.in_ns(node, || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f()))
        .expect("enter the node namespace")
}

/// Runs `f` on a thread inside a pod namespace made by the code under test (the lab only
/// enters its own namespaces). Only namespaces under this test's prefix are entered.
fn in_pod<T: Send>(pods: &PodNamespaces, netns: &Path, f: impl FnOnce() -> T + Send) -> T {
    let name = netns.file_name().unwrap().to_string_lossy();
    assert!(name.starts_with(&pods.0), "{name} is not one of this test's pod namespaces");
    let file = File::open(netns).unwrap_or_else(|e| panic!("open {}: {e}", netns.display()));
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns(2) on an open namespace file; only this thread changes namespace.
            assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {name}");
            f()
        })
        .join()
        .unwrap()
    })
}

/// A TCP server bound in `listener`'s namespace answering each connection with the address it
/// sees the client at; it serves `n` connections or gives up after 10 s.
fn serve_peer_addr(listener: TcpListener, n: usize) -> JoinHandle<()> {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut served = 0;
        while served < n && Instant::now() < deadline {
            match listener.accept() {
                Ok((mut s, peer)) => {
                    let _ = s.write_all(peer.ip().to_string().as_bytes());
                    served += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    })
}

fn listen_in_pod(pods: &PodNamespaces, att: &Attachment, n: usize) -> (SocketAddr, JoinHandle<()>) {
    let listener = in_pod(pods, &att.netns, || TcpListener::bind((att.ip, 0)).unwrap());
    (listener.local_addr().unwrap(), serve_peer_addr(listener, n))
}

fn read_all(mut s: TcpStream) -> String {
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Connects from a pod namespace to `to` (a lab address: checked with the lab first) and
/// returns what the server saw as our address.
fn from_pod(lab: &Lab, pods: &PodNamespaces, att: &Attachment, to: SocketAddr) -> Result<String, String> {
    lab.check_target(to.ip()).map_err(|e| e.to_string())?;
    in_pod(pods, &att.netns, || TcpStream::connect_timeout(&to, TIMEOUT))
        .map(read_all)
        .map_err(|e| format!("{} -> {to}: {e}", att.ip))
}

fn from_lab_ns(lab: &Lab, ns: &(impl Netns + ?Sized), to: SocketAddr) -> String {
    read_all(lab.connect_tcp(ns, to).unwrap_or_else(|e| panic!("{} -> {to}: {e}", ns.netns())))
}

fn ip_of(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("not an address: {s:?}"))
}

#[test]
fn three_pods_on_one_node_reach_each_other_and_the_node() {
    let Some(lab) = Lab::new_or_skip("net-three") else { return };
    let pods = PodNamespaces::of(&lab);
    let state = tempfile::tempdir().unwrap();
    let sw = lab.switch("sw", "192.0.2.0/24").unwrap();
    let node = lab.node("n1", &sw).unwrap();
    lab.register("198.19.1.0/24").unwrap();
    let cfg = config(&pods, "198.19.1.0/24", state.path());

    let atts = on_node(&lab, &node, || async {
        let net = PodNetwork::new(cfg).await.unwrap();
        let mut atts = Vec::new();
        for uid in ["a", "b", "c"] {
            atts.push(net.attach(&pod(uid)).await.unwrap());
        }
        atts
    });

    let ips: Vec<IpAddr> = atts.iter().map(|a| a.ip).collect();
    assert_eq!(ips, ["198.19.1.2", "198.19.1.3", "198.19.1.4"].map(ip_of));
    for a in &atts {
        assert_eq!(a.gateway, ip_of("198.19.1.1"));
        assert!(a.netns.exists(), "{}", a.netns.display());
    }
    assert_eq!(pods.list().len(), 3);
    let ports = lab.exec_ok(&node, &["ip", "-o", "link", "show", "master", "portico0"]).unwrap();
    for a in &atts {
        assert!(ports.contains(&format!(" {}@", a.host_veth)), "{} not on portico0: {ports}", a.host_veth);
    }

    // Each pod serves the two other pods and the node.
    let servers: Vec<_> = atts.iter().map(|a| listen_in_pod(&pods, a, 3)).collect();
    for (i, from) in atts.iter().enumerate() {
        for (j, (addr, _)) in servers.iter().enumerate() {
            if i != j {
                assert_eq!(ip_of(&from_pod(&lab, &pods, from, *addr).unwrap()), from.ip, "pod {i} -> pod {j}");
            }
        }
    }
    for (addr, _) in &servers {
        // The node reaches pods over the bridge, from the gateway address.
        assert_eq!(ip_of(&from_lab_ns(&lab, &node, *addr)), ip_of("198.19.1.1"));
    }
    for (_, t) in servers {
        t.join().unwrap();
    }

    // Loopback is up in the pod: a connection to 127.0.0.1 inside it works.
    let seen = in_pod(&pods, &atts[0].netns, || {
        let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = l.local_addr().unwrap();
        let t = serve_peer_addr(l, 1);
        let seen = read_all(TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect over the pod's loopback"));
        t.join().unwrap();
        seen
    });
    assert_eq!(seen, "127.0.0.1");
}

#[test]
fn attach_is_idempotent_and_survives_an_agent_restart() {
    let Some(lab) = Lab::new_or_skip("net-restart") else { return };
    let pods = PodNamespaces::of(&lab);
    let state = tempfile::tempdir().unwrap();
    let sw = lab.switch("sw", "192.0.2.0/24").unwrap();
    let node = lab.node("n1", &sw).unwrap();
    lab.register("198.19.1.0/24").unwrap();
    let cfg = config(&pods, "198.19.1.0/24", state.path());

    let (first, again, listed) = on_node(&lab, &node, || async {
        let net = PodNetwork::new(cfg.clone()).await.unwrap();
        let first = vec![net.attach(&pod("a")).await.unwrap(), net.attach(&pod("b")).await.unwrap()];
        let again = net.attach(&pod("a")).await.unwrap();
        (first, again, net.attachments())
    });
    assert_eq!(again, first[0], "a second attach of one uid changes nothing");
    assert_eq!(listed, first);

    // A new PodNetwork over the same state dir: the agent restarted.
    let (adopted, reattached, new_pod) = on_node(&lab, &node, || async {
        let net = PodNetwork::new(cfg).await.unwrap();
        let adopted = net.attachments();
        let reattached = net.attach(&pod("b")).await.unwrap();
        let new_pod = net.attach(&pod("c")).await.unwrap();
        (adopted, reattached, new_pod)
    });
    assert_eq!(adopted, first, "the restarted network adopts what the state dir records");
    assert_eq!(reattached, first[1]);
    assert!(!first.iter().any(|a| a.ip == new_pod.ip), "{} was handed out twice", new_pod.ip);
    assert_eq!(pods.list().len(), 3);
    // No duplicate veths from the repeated attaches.
    let ports = lab.exec_ok(&node, &["ip", "-o", "link", "show", "master", "portico0"]).unwrap();
    assert_eq!(ports.lines().count(), 3, "{ports}");

    // The re-attached pod still works end to end.
    let (addr, t) = listen_in_pod(&pods, &first[1], 1);
    assert_eq!(ip_of(&from_pod(&lab, &pods, &first[0], addr).unwrap()), first[0].ip);
    t.join().unwrap();
}

#[test]
fn detach_removes_netns_veth_and_record_and_the_ip_is_not_reused_at_once() {
    let Some(lab) = Lab::new_or_skip("net-detach") else { return };
    let pods = PodNamespaces::of(&lab);
    let state = tempfile::tempdir().unwrap();
    let sw = lab.switch("sw", "192.0.2.0/24").unwrap();
    let node = lab.node("n1", &sw).unwrap();
    lab.register("198.19.1.0/24").unwrap();
    let cfg = config(&pods, "198.19.1.0/24", state.path());
    let record = |ip: IpAddr| state.path().join("ips").join(ip.to_string());

    let (a, b) = on_node(&lab, &node, || async {
        let net = PodNetwork::new(cfg.clone()).await.unwrap();
        (net.attach(&pod("a")).await.unwrap(), net.attach(&pod("b")).await.unwrap())
    });
    assert!(record(a.ip).exists());
    lab.exec_ok(&node, &["ip", "link", "show", &a.host_veth]).unwrap();

    let listed = on_node(&lab, &node, || async {
        let net = PodNetwork::new(cfg.clone()).await.unwrap();
        net.detach("a").await.unwrap();
        net.detach("a").await.expect("detach is idempotent");
        net.detach("never-attached").await.expect("detaching an unknown uid is fine");
        net.attachments()
    });
    assert!(!a.netns.exists(), "{} still exists", a.netns.display());
    assert!(!pods.list().iter().any(|n| a.netns.ends_with(n)));
    let gone = lab.exec(&node, &["ip", "link", "show", &a.host_veth]).unwrap();
    assert!(!gone.status.success(), "{} still exists", a.host_veth);
    assert!(!record(a.ip).exists());
    let c = on_node(&lab, &node, || async { PodNetwork::new(cfg).await.unwrap().attach(&pod("c")).await.unwrap() });
    assert_eq!(listed, vec![b.clone()]);
    assert_ne!(c.ip, a.ip, "a just-released address is not handed out again at once (stale neighbour entries)");
    assert_eq!(std::fs::read_to_string(record(c.ip)).unwrap(), "c\n");
    assert!(c.netns.exists() && b.netns.exists());
    assert_eq!(pods.list().len(), 2);
}

#[test]
fn pods_on_two_nodes_reach_each_other_through_peer_routes() {
    let Some(lab) = Lab::new_or_skip("net-peers") else { return };
    let pods = PodNamespaces::of(&lab);
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sw = lab.switch("sw", "192.0.2.0/24").unwrap();
    let (na, nb) = (lab.node("na", &sw).unwrap(), lab.node("nb", &sw).unwrap());
    let (cidr_a, cidr_b) = (lab.register("198.19.1.0/24").unwrap(), lab.register("198.19.2.0/24").unwrap());
    let (cfg_a, cfg_b) =
        (config(&pods, "198.19.1.0/24", state_a.path()), config(&pods, "198.19.2.0/24", state_b.path()));
    let route_to = |c: lab::Cidr| c.to_string().parse::<api::net::Cidr>().unwrap();
    let (to_b, to_a) = ((route_to(cidr_b), IpAddr::V4(nb.ip())), (route_to(cidr_a), IpAddr::V4(na.ip())));

    let pa = on_node(&lab, &na, || async {
        let net = PodNetwork::new(cfg_a.clone()).await.unwrap();
        net.set_peer_routes(&[to_b]).await.unwrap();
        net.set_peer_routes(&[to_b]).await.expect("setting the same routes again is fine");
        net.attach(&pod("pa")).await.unwrap()
    });
    let pb = on_node(&lab, &nb, || async {
        let net = PodNetwork::new(cfg_b).await.unwrap();
        net.set_peer_routes(&[to_a]).await.unwrap();
        net.attach(&pod("pb")).await.unwrap()
    });
    let routes = lab.exec_ok(&na, &["ip", "route", "show", "proto", "156"]).unwrap();
    assert_eq!(routes.trim(), format!("198.19.2.0/24 via {} dev eth0", nb.ip()));

    // Inside the cluster CIDR nothing is masqueraded: B sees A's pod address.
    let (addr, t) = listen_in_pod(&pods, &pb, 1);
    assert_eq!(ip_of(&from_pod(&lab, &pods, &pa, addr).unwrap()), pa.ip);
    t.join().unwrap();

    // An empty set removes this module's routes and nothing else (the lab's own stay).
    let lab_routes_before = lab.exec_ok(&na, &["ip", "route", "show", "proto", "boot"]).unwrap();
    let err = on_node(&lab, &na, || async {
        let net = PodNetwork::new(cfg_a).await.unwrap();
        net.set_peer_routes(&[]).await.unwrap();
        let own = ("198.19.1.128/25".parse().unwrap(), IpAddr::V4(nb.ip()));
        net.set_peer_routes(&[own]).await.unwrap_err()
    });
    assert!(err.to_string().contains("overlaps this node's pod CIDR 198.19.1.0/24"), "{err}");
    assert_eq!(lab.exec_ok(&na, &["ip", "route", "show", "proto", "156"]).unwrap(), "");
    assert!(!lab_routes_before.is_empty());
    assert_eq!(lab.exec_ok(&na, &["ip", "route", "show", "proto", "boot"]).unwrap(), lab_routes_before);
    // The server thread gives up on its own; joining it would only wait for that.
    let (addr, _server) = listen_in_pod(&pods, &pb, 1);
    assert!(from_pod(&lab, &pods, &pa, addr).is_err(), "without the peer route B's pods are unreachable");
}

#[test]
fn egress_is_masqueraded_by_the_nodes_table() {
    let Some(lab) = Lab::new_or_skip("net-masq") else { return };
    let pods = PodNamespaces::of(&lab);
    let state = tempfile::tempdir().unwrap();
    let sw = lab.switch("sw", "192.0.2.0/24").unwrap();
    let node = lab.node("n1", &sw).unwrap();
    let outside = lab.client("ext", &sw).unwrap();
    lab.register("198.19.1.0/24").unwrap();
    let cfg = config(&pods, "198.19.1.0/24", state.path());

    let p = on_node(&lab, &node, || async {
        let net = PodNetwork::new(cfg.clone()).await.unwrap();
        net.attach(&pod("p")).await.unwrap()
    });
    let table = lab.exec_ok(&node, &["nft", "list", "table", "ip", "portico_node"]).unwrap();
    assert!(
        table.contains("ip saddr 198.19.1.0/24 ip daddr != 198.19.0.0/16 oifname != \"portico0\" masquerade"),
        "{table}"
    );
    assert!(table.contains("type nat hook postrouting priority srcnat"), "{table}");

    // A machine outside the cluster (no route to pod CIDRs) sees the node's address.
    let listener = lab.in_ns(&outside, || TcpListener::bind((outside.ip(), 0)).unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let t = serve_peer_addr(listener, 1);
    assert_eq!(ip_of(&from_pod(&lab, &pods, &p, addr).unwrap()), IpAddr::V4(node.ip()));
    t.join().unwrap();

    // `masquerade: false` removes the table (and only it).
    on_node(&lab, &node, || async {
        PodNetwork::new(NetConfig { masquerade: false, ..cfg }).await.unwrap();
    });
    let tables = lab.exec_ok(&node, &["nft", "list", "tables"]).unwrap();
    assert!(!tables.contains("portico_node"), "{tables}");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let Some(lab) = Lab::new_or_skip("net-bad") else { return };
    let pods = PodNamespaces::of(&lab);
    let state = tempfile::tempdir().unwrap();
    let sw = lab.switch("sw", "192.0.2.0/24").unwrap();
    let node = lab.node("n1", &sw).unwrap();
    let cfg = config(&pods, "198.19.1.0/24", state.path());
    let errs = on_node(&lab, &node, || async {
        let mut errs = Vec::new();
        let mut bad = cfg.clone();
        bad.bridge = "a/b".into();
        errs.push(PodNetwork::new(bad).await.unwrap_err().to_string());
        let net = PodNetwork::new(cfg).await.unwrap();
        errs.push(net.attach(&pod("../x")).await.unwrap_err().to_string());
        errs.push(net.detach("").await.unwrap_err().to_string());
        let v6 = ("fd00::/64".parse().unwrap(), "192.0.2.9".parse().unwrap());
        errs.push(net.set_peer_routes(&[v6]).await.unwrap_err().to_string());
        errs
    });
    assert!(errs[0].contains("bridge name \"a/b\""), "{errs:?}");
    assert!(errs[1].contains("invalid pod uid \"../x\""), "{errs:?}");
    assert!(errs[2].contains("invalid pod uid \"\""), "{errs:?}");
    assert!(errs[3].contains("address families differ"), "{errs:?}");
    assert!(pods.list().is_empty());
}

#[test]
fn cni_bridge_and_host_local_plugins_network_pods() {
    let bin = Path::new("/usr/lib/cni");
    if !bin.join("bridge").exists() || !bin.join("host-local").exists() {
        let why = "needs Debian's containernetworking-plugins in /usr/lib/cni";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true forbids skipping: {why}");
        eprintln!("skipped: {why}");
        return;
    }
    let Some(lab) = Lab::new_or_skip("net-cni") else { return };
    let pods = PodNamespaces::of(&lab);
    let (state, conf, ipam) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sw = lab.switch("sw", "192.0.2.0/24").unwrap();
    let node = lab.node("n1", &sw).unwrap();
    lab.register("198.19.5.0/24").unwrap();
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "portico-test",
        "plugins": [{
            "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "198.19.5.0/24"}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": ipam.path(),
            }
        }]
    });
    std::fs::write(conf.path().join("10-portico.conflist"), conflist.to_string()).unwrap();
    let cfg = CniConfig {
        conf_dir: conf.path().into(),
        bin_dirs: vec![bin.into()],
        netns_prefix: pods.0.clone(),
        state_dir: state.path().into(),
    };

    let (a, b, again, listed) = on_node(&lab, &node, || async {
        let net = Network::Cni(CniNetwork::new(cfg.clone()).await.unwrap());
        let a = net.attach(&pod("a")).await.unwrap();
        let b = net.attach(&pod("b")).await.unwrap();
        let again = net.attach(&pod("a")).await.unwrap();
        let Network::Cni(cni) = &net else { unreachable!() };
        cni.check(&pod("a")).await.expect("CNI CHECK of a healthy pod passes");
        (a, b, again, net.attachments())
    });
    assert_eq!(again, a, "attach is idempotent");
    assert_eq!(listed, vec![a.clone(), b.clone()]);
    assert_ne!(a.ip, b.ip);
    let subnet: api::net::Cidr = "198.19.5.0/24".parse().unwrap();
    assert!(subnet.contains(a.ip) && subnet.contains(b.ip), "{a:?} {b:?}");
    assert_eq!(a.gateway, ip_of("198.19.5.1"));
    let ports = lab.exec_ok(&node, &["ip", "-o", "link", "show", "master", "cni0"]).unwrap();
    assert!(!a.host_veth.is_empty() && ports.contains(&format!(" {}@", a.host_veth)), "{a:?}: {ports}");
    assert!(ipam.path().join("portico-test").join(a.ip.to_string()).exists());

    let (addr, t) = listen_in_pod(&pods, &b, 2);
    assert_eq!(ip_of(&from_pod(&lab, &pods, &a, addr).unwrap()), a.ip);
    assert_eq!(ip_of(&from_lab_ns(&lab, &node, addr)), ip_of("198.19.5.1"));
    t.join().unwrap();

    // CHECK finds a pod whose interface was taken away.
    let pod_ns = a.netns.file_name().unwrap().to_str().unwrap().to_owned();
    let del = std::process::Command::new("ip").args(["-n", &pod_ns, "link", "del", "eth0"]).status().unwrap();
    assert!(del.success());
    let broken = on_node(&lab, &node, || async {
        let cni = CniNetwork::new(cfg.clone()).await.unwrap();
        cni.check(&pod("a")).await
    });
    assert!(matches!(broken, Err(NetError::Cni(ref m)) if m.contains("CHECK")), "{broken:?}");

    let listed = on_node(&lab, &node, || async {
        let net = Network::Cni(CniNetwork::new(cfg).await.unwrap());
        net.detach("a").await.unwrap();
        net.detach("a").await.expect("detach is idempotent");
        net.attachments()
    });
    assert_eq!(listed, vec![b.clone()]);
    assert!(!a.netns.exists());
    assert!(!ipam.path().join("portico-test").join(a.ip.to_string()).exists(), "host-local released the address");
    assert!(!lab.exec(&node, &["ip", "link", "show", &a.host_veth]).unwrap().status.success());
}

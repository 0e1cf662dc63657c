//! The lab harness against the real kernel (needs root; fails instead of skipping under CI=true).
//!
//! All traffic here stays inside namespaces the tests create; the addresses outside the lab
//! appear only to check that the lab refuses them before anything is sent.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lab::{Lab, LabError, Netns};

/// Tests that watch the machine-wide namespace list (or leave leftovers on purpose) run one at a
/// time, and other tests only build labs outside those windows, so a parallel `Lab::new` (which
/// sweeps leftovers) cannot blur what they observe.
static WATCHING: Mutex<()> = Mutex::new(());

fn watching() -> MutexGuard<'static, ()> {
    WATCHING.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_lab(name: &str) -> Option<Lab> {
    let _w = watching();
    Lab::new_or_skip(name)
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn netns_list() -> BTreeSet<String> {
    run("ip", &["netns", "list"]).lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect()
}

/// The namespaces that belong to no lab. Labs (of this or another test process) come and go
/// at any time, so these, plus the absence of one lab's own names, are what a test can pin.
fn non_lab_netns() -> BTreeSet<String> {
    netns_list().into_iter().filter(|n| lab::owner_pid(n).is_none()).collect()
}

fn with_prefix(prefix: &str) -> Vec<String> {
    netns_list().into_iter().filter(|n| n.starts_with(prefix)).collect()
}

fn root_links() -> String {
    run("ip", &["-o", "link"])
}

/// A TCP round trip from `from` to the listener at `to`, checking that the server sees the
/// client's own address (no NAT anywhere in the lab).
fn tcp_round_trip(lab: &Lab, from: &(impl Netns + ?Sized), from_ip: Ipv4Addr, listener: &TcpListener) {
    let to = listener.local_addr().unwrap();
    let what = format!("{} -> {to}", from.netns());
    let mut client = lab.connect_tcp(from, to).unwrap_or_else(|e| panic!("{what}: {e}"));
    let (mut server, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), IpAddr::V4(from_ip), "{what}");
    for s in [&client, &server] {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    }
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping", "{what}");
    server.write_all(b"pong").unwrap();
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong", "{what}");
}

#[test]
fn three_nodes_with_two_pods_each_reach_each_other_and_nothing_else() {
    let Some(lab) = new_lab("mesh") else { return };
    let started = Instant::now();
    let forward_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();

    let lan = lab.switch("lan", "198.51.100.0/24").unwrap();
    let nodes: Vec<_> = (0..3).map(|i| lab.node(&format!("n{i}"), &lan).unwrap()).collect();
    let pods: Vec<_> = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| (0..2).map(move |j| (i, j, n)))
        .map(|(i, j, n)| lab.pod(&format!("n{i}-p{j}"), n).unwrap())
        .collect();
    let client = lab.client("client", &lan).unwrap();
    assert_eq!(lab.namespaces().len(), 1 + 3 + 6 + 1);
    assert_eq!(nodes[1].pod_cidr().to_string(), "198.18.1.0/24");
    assert_eq!(pods[3].ip(), Ipv4Addr::new(198, 18, 1, 3));
    assert_eq!(client.ip(), Ipv4Addr::new(198, 51, 100, 4));

    // Listeners opened inside each pod and node namespace keep that namespace.
    let listen = |ns: &str, ip: Ipv4Addr| lab.in_ns(ns, || TcpListener::bind((ip, 8080))).unwrap().unwrap();
    let pod_listeners: Vec<_> = pods.iter().map(|p| listen(p.netns(), p.ip())).collect();
    let node_listeners: Vec<_> = nodes.iter().map(|n| listen(n.netns(), n.ip())).collect();

    for (a, pa) in pods.iter().enumerate() {
        for (b, pb) in pods.iter().enumerate().filter(|&(b, _)| b != a) {
            tcp_round_trip(&lab, pa, pa.ip(), &pod_listeners[b]);
            lab.ping(pa, pb.ip().into()).unwrap_or_else(|e| panic!("ping {} -> {}: {e}", pa.netns(), pb.ip()));
        }
    }
    for node in &nodes {
        for (b, pod) in pods.iter().enumerate() {
            // The kernel picks the address of the interface facing the pod as the source.
            let src = if pod.node() == node.netns() { node.gateway() } else { node.ip() };
            tcp_round_trip(&lab, node, src, &pod_listeners[b]);
            lab.ping(node, pod.ip().into()).unwrap();
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        tcp_round_trip(&lab, &client, client.ip(), &node_listeners[i]);
        lab.ping(&client, node.ip().into()).unwrap();
    }
    // The checks can fail: no host behind an address, no listener, no route (until added).
    let nobody = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 200));
    assert!(matches!(lab.ping(&client, nobody), Err(LabError::Io(e)) if e.kind() == ErrorKind::TimedOut));
    let closed = SocketAddr::new(pods[0].ip().into(), 9);
    assert!(
        matches!(lab.connect_tcp(&pods[1], closed), Err(LabError::Io(e)) if e.kind() == ErrorKind::ConnectionRefused)
    );
    assert!(lab.ping(&client, pods[0].ip().into()).is_err(), "the client has no route to pods yet");
    lab.route(&client, &nodes[0].pod_cidr().to_string(), nodes[0].ip().into()).unwrap();
    lab.ping(&client, pods[0].ip().into()).unwrap();
    tcp_round_trip(&lab, &client, client.ip(), &pod_listeners[0]);

    // Loopback inside a namespace is allowed, and brought up by the lab.
    let lo = lab.in_ns(&pods[0], || TcpListener::bind("127.0.0.1:0")).unwrap().unwrap();
    tcp_round_trip(&lab, &pods[0], Ipv4Addr::LOCALHOST, &lo);
    lab.ping(&pods[0], Ipv4Addr::LOCALHOST.into()).unwrap();

    // The refusal: checked before any packet is built, for private and public addresses alike.
    for addr in ["10.0.0.1", "8.8.8.8", "192.168.1.1", "172.16.0.1", "203.0.113.7", "198.18.200.1"] {
        let ip: IpAddr = addr.parse().unwrap();
        let refused = |r: Result<(), LabError>| matches!(r, Err(LabError::OutsideLab { addr, .. }) if addr == ip);
        assert!(refused(lab.check_target(ip)), "{addr}");
        assert!(refused(lab.connect_tcp(&pods[0], SocketAddr::new(ip, 80)).map(drop)), "{addr}");
        assert!(refused(lab.ping(&nodes[0], ip).map(drop)), "{addr}");
    }
    assert!(lab.register("0.0.0.0/0").is_err());
    lab.register("10.96.0.0/16").unwrap();
    lab.check_target("10.96.0.10".parse().unwrap()).unwrap();
    assert!(lab.in_ns("not-a-lab-namespace", || ()).is_err());

    // Structure: no namespace but the pods has a default route, and the pods' leads to a node.
    for ns in lab.namespaces() {
        let lookup = lab.exec(&ns, &["ip", "route", "get", "8.8.8.8"]).unwrap(); // a lookup, no packet
        let is_pod = pods.iter().any(|p| p.netns() == ns);
        assert_eq!(lookup.status.success(), is_pod, "{ns}: {}", String::from_utf8_lossy(&lookup.stdout));
    }
    assert_eq!(lab.exec_ok(&nodes[2], &["cat", "/proc/sys/net/ipv4/ip_forward"]).unwrap().trim(), "1");
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(), forward_before);
    assert!(lab.exec_ok(&pods[5], &["ip", "-o", "addr"]).unwrap().contains("198.18.2.3/24"));

    // Spawned processes live in the namespace and die with the lab.
    let mut cmd = Command::new("sleep");
    cmd.arg("300");
    let sleeper = lab.spawn(&pods[1], cmd).unwrap();
    let ns_of = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let pod_ns = lab.in_ns(&pods[1], || std::fs::read_link("/proc/thread-self/ns/net").unwrap()).unwrap();
    assert_eq!(ns_of(sleeper.pid()), pod_ns);
    assert_ne!(ns_of(std::process::id()), pod_ns);
    assert!(sleeper.try_wait().unwrap().is_none());

    let prefix = lab.prefix().to_string();
    eprintln!("mesh of {} namespaces checked in {:?}", lab.namespaces().len(), started.elapsed());
    drop(lab);
    assert_eq!(sleeper.try_wait().unwrap().and_then(|s| s.signal()), Some(9));
    assert_eq!(with_prefix(&prefix), Vec::<String>::new(), "left behind");
}

const PANIC_CHILD: &str = "LAB_TEST_PANIC_CHILD";
const KILL_CHILD: &str = "LAB_TEST_KILL_CHILD";

/// Builds a lab (with a running `sleep` in its pod if `spawn`) and writes its prefix, that PID
/// (or 0) and its namespaces to the file named by `var`; `None` when not started by a parent.
fn child_lab(var: &str, name: &str, spawn: bool) -> Option<Lab> {
    let report = std::env::var(var).ok()?;
    let lab = Lab::new(name).expect("the parent checked that labs can be built");
    let lan = lab.switch("lan", "192.0.2.0/24").unwrap();
    let node = lab.node_with_pod_cidr("node", &lan, "10.244.7.0/24").unwrap();
    let pod = lab.pod("pod", &node).unwrap();
    lab.client("client", &lan).unwrap();
    lab.connect_tcp(&pod, SocketAddr::new(node.ip().into(), 1)).unwrap_err(); // refused by the node, in the lab
    let mut pid = 0;
    if spawn {
        let mut cmd = Command::new("sleep");
        cmd.arg("300");
        pid = lab.spawn(&pod, cmd).unwrap().pid();
    }
    std::fs::write(report, format!("{}\n{pid}\n{}\n", lab.prefix(), lab.namespaces().join(" "))).unwrap();
    Some(lab)
}

#[test]
#[ignore = "run by cleanup_runs_when_a_test_panics in a child process"]
fn child_builds_a_lab_then_panics() {
    let Some(lab) = child_lab(PANIC_CHILD, "panicky", true) else { return };
    panic!("deliberate panic with lab {} alive", lab.prefix());
}

#[test]
#[ignore = "run by leftovers_of_a_killed_test_are_removed_by_the_next_lab in a child process"]
fn child_builds_a_lab_then_is_killed() {
    // No spawned process: it would outlive the killed child, and only its starter may end it.
    let Some(_lab) = child_lab(KILL_CHILD, "killed", false) else { return };
    // SAFETY: SIGKILL to this very process, the way a test runner's timeout would end it.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
}

struct ChildRun {
    status: std::process::ExitStatus,
    output: String,
    prefix: String,
    pid: u32,
    namespaces: Vec<String>,
}

fn run_child(test: &str, var: &str) -> ChildRun {
    let report = std::env::temp_dir().join(format!("lab-{test}-{}", std::process::id()));
    let _ = std::fs::remove_file(&report);
    let exe = std::env::current_exe().unwrap();
    let out =
        Command::new(exe).args(["--exact", test, "--ignored", "--test-threads=1"]).env(var, &report).output().unwrap();
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("child wrote no report ({e}): {output}"));
    std::fs::remove_file(&report).unwrap();
    let mut lines = text.lines();
    let prefix = lines.next().unwrap().to_string();
    let pid = lines.next().unwrap().parse().unwrap();
    let namespaces = lines.next().unwrap().split(' ').map(String::from).collect();
    ChildRun { status: out.status, output, prefix, pid, namespaces }
}

/// The child's `sleep 300` is gone (reaped, or at least no longer that process).
fn gone(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).map_or(true, |c| c != b"sleep\x00300\x00")
}

#[test]
fn cleanup_runs_when_a_test_panics() {
    let _w = watching();
    if !lab::require_root_or_skip() {
        return;
    }
    let (netns_before, links_before) = (non_lab_netns(), root_links());

    let child = run_child("child_builds_a_lab_then_panics", PANIC_CHILD);
    assert!(!child.status.success(), "the child should have panicked: {}", child.output);
    assert!(child.output.contains("deliberate panic with lab"), "{}", child.output);
    assert_eq!(child.namespaces.len(), 4);
    assert_eq!(with_prefix(&child.prefix), Vec::<String>::new(), "the child's drop guard left namespaces");
    assert_eq!(non_lab_netns(), netns_before);
    assert_eq!(root_links(), links_before, "the lab changed the root namespace's links");
    assert!(gone(child.pid), "the child's spawned process {} survived", child.pid);
}

#[test]
fn leftovers_of_a_killed_test_are_removed_by_the_next_lab() {
    let _w = watching();
    if !lab::require_root_or_skip() {
        return;
    }
    let (netns_before, links_before) = (non_lab_netns(), root_links());

    let child = run_child("child_builds_a_lab_then_is_killed", KILL_CHILD);
    assert_eq!(child.status.signal(), Some(libc::SIGKILL), "{}", child.output);
    let after_kill = netns_list();
    for ns in &child.namespaces {
        assert!(after_kill.contains(ns), "{ns} should be left behind by the killed child");
    }
    assert_eq!(root_links(), links_before, "the lab changed the root namespace's links");

    let lab = Lab::new("sweeper").unwrap();
    assert_eq!(with_prefix(&child.prefix), Vec::<String>::new(), "leftovers survived the sweep");
    drop(lab);
    assert_eq!(non_lab_netns(), netns_before);
    assert_eq!(root_links(), links_before);
}

const NOROOT_CHILD: &str = "LAB_TEST_NOROOT_CHILD";

#[test]
#[ignore = "run by without_root_a_lab_skips_outside_ci_and_fails_under_ci in a child process"]
fn child_without_root() {
    if std::env::var(NOROOT_CHILD).is_err() {
        return;
    }
    // SAFETY: drops this child process to nobody (glibc applies it to every thread).
    assert_eq!(unsafe { libc::setuid(65534) }, 0);
    assert!(Lab::new_or_skip("noroot").is_none());
    println!("new_or_skip returned None");
}

#[test]
fn without_root_a_lab_skips_outside_ci_and_fails_under_ci() {
    if !lab::require_root_or_skip() {
        return; // cannot drop privileges without having them
    }
    let run = |ci: Option<&str>| {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "child_without_root", "--ignored", "--nocapture"]).env(NOROOT_CHILD, "1");
        match ci {
            Some(v) => cmd.env("CI", v),
            None => cmd.env_remove("CI"),
        };
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, out) = run(None);
    assert!(ok && out.contains("skipped: needs root") && out.contains("returned None"), "{out}");
    let (ok, out) = run(Some("true"));
    assert!(!ok && out.contains("CI=true forbids skipping"), "{out}");
}

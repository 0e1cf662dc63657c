//! Lab tests of `node::sandbox` with the real `portico` binary (its hidden `shim` and `demo`
//! subcommands): containers run in a lab pod's network namespace, with their own hostname and
//! /etc files, and outlive the process that started them. They live here rather than in
//! crates/node because only a test of the binary's own crate gets `CARGO_BIN_EXE_portico`, so
//! the shim under test is always the one just built.
//!
//! Needs root (skips otherwise, fails under CI=true). Every test kills what it started, by pid,
//! also when it fails: the fixture's drop guard stops the containers and reaps their shims,
//! then the lab's guard deletes the namespaces.

use lab::{Lab, Netns, Node, Pod};
use node::sandbox::log::{Stream, parse_record};
use node::sandbox::{
    ContainerSpec, ContainerState, DEFAULT_PATH, Mount, Protocol, REASON_COMPLETED, REASON_ERROR, REASON_START_ERROR,
    Sandbox, SandboxError, Signal,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PORTICO: &str = env!("CARGO_BIN_EXE_portico");
const RESOLV: &str =
    "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n";
const HELPER_ENV: &str = "PORTICO_SANDBOX_TEST_HELPER";

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime").block_on(f)
}

/// A lab pod to run containers in, and a sandbox state dir. Dropping it kills every container
/// and shim it started, then (field order) the lab deletes its namespaces.
struct Fixture {
    sandbox: Sandbox,
    tmp: tempfile::TempDir,
    pod: Pod,
    node: Node,
    lab: Lab,
}

impl Fixture {
    fn new(name: &str) -> Option<Fixture> {
        let lab = Lab::new_or_skip(name)?;
        let switch = lab.switch("sw", "198.51.100.0/24").expect("switch");
        let node = lab.node("node", &switch).expect("node");
        let pod = lab.pod("pod", &node).expect("pod");
        // Shims are orphaned on purpose (the launcher exits at once); as a subreaper this test
        // process adopts them and can reap them, even where pid 1 does not reap orphans.
        // SAFETY: prctl(2) with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let tmp = tempfile::tempdir().expect("tempdir");
        let sandbox = Sandbox::new(tmp.path().join("containers"), PathBuf::from(PORTICO));
        Some(Fixture { sandbox, tmp, pod, node, lab })
    }

    fn spec(&self, id: &str, argv: &[&str]) -> ContainerSpec {
        let hostname = format!("{id}-host");
        ContainerSpec {
            id: id.into(),
            netns: Path::new("/run/netns").join(self.pod.netns()),
            hosts: format!("127.0.0.1\tlocalhost\n{}\t{hostname}\n", self.pod.ip()),
            hostname,
            resolv_conf: RESOLV.into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            pod_name: format!("{id}-pod"),
            ..Default::default()
        }
    }

    fn start(&self, spec: &ContainerSpec) -> Result<ContainerState, SandboxError> {
        block_on(self.sandbox.start(spec))
    }

    fn wait_ended(&self, id: &str, within: Duration) -> ContainerState {
        let start = Instant::now();
        loop {
            let st = self.sandbox.state(id).unwrap_or_else(|| panic!("{id}: no state"));
            if st.has_ended() {
                return st;
            }
            assert!(start.elapsed() < within, "{id} still running after {within:?}: {st:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the shim of an ended container is gone, so its log is complete.
    fn run_to_end(&self, spec: &ContainerSpec) -> ContainerState {
        self.start(spec).unwrap_or_else(|e| panic!("start: {e}"));
        let st = self.wait_ended(&spec.id, Duration::from_secs(10));
        self.wait_shim_gone(&st);
        st
    }

    fn wait_shim_gone(&self, st: &ContainerState) {
        let start = Instant::now();
        while self.sandbox.state(&st.id).is_some_and(|s| s.shim_alive) {
            assert!(start.elapsed() < Duration::from_secs(5), "shim of {} does not exit", st.id);
            std::thread::sleep(Duration::from_millis(10));
        }
        if let (Some(pid), Some(t)) = (st.shim_pid, st.shim_start_time) {
            reap_if_zombie(pid, t);
        }
    }

    /// The container's log as (stream, partial, content).
    fn log(&self, id: &str) -> Vec<(Stream, bool, String)> {
        let bytes = std::fs::read(self.sandbox.log_path(id)).unwrap_or_default();
        bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let r =
                    parse_record(l).unwrap_or_else(|| panic!("not a CRI log line: {:?}", String::from_utf8_lossy(l)));
                (r.stream, r.partial, String::from_utf8_lossy(r.content).into_owned())
            })
            .collect()
    }

    fn stdout(&self, id: &str) -> Vec<String> {
        self.log(id).into_iter().filter(|(s, _, _)| *s == Stream::Stdout).map(|(_, _, c)| c).collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for st in self.sandbox.list() {
            if st.is_running() {
                let _ = self.sandbox.signal(&st.id, Signal::SIGKILL);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.sandbox.state(&st.id).is_some_and(|s| s.shim_alive) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if let (Some(pid), Some(t)) = (st.shim_pid, st.shim_start_time) {
                if is_alive(pid, t) {
                    eprintln!("killing shim {pid} of {}, which did not exit", st.id);
                    // SAFETY: kill(2) of a process this test started (pid and start time match).
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    std::thread::sleep(Duration::from_millis(50));
                }
                reap_if_zombie(pid, t);
            }
        }
    }
}

/// (state, start time) of a process from /proc/<pid>/stat.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    Some((f.next()?.chars().next()?, f.nth(18)?.parse().ok()?))
}

fn is_alive(pid: u32, start: u64) -> bool {
    matches!(proc_stat(pid), Some((s, t)) if t == start && s != 'Z')
}

/// Reaps `pid` only if it is that very process and a zombie, so a reused pid is never touched.
fn reap_if_zombie(pid: u32, start: u64) {
    if matches!(proc_stat(pid), Some(('Z', t)) if t == start) {
        // SAFETY: waitpid(2) on a zombie child; WNOHANG in case it is not ours.
        unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), libc::WNOHANG) };
    }
}

fn host_view() -> Vec<(String, Vec<u8>)> {
    ["/etc/resolv.conf", "/etc/hosts", "/etc/hostname", "/proc/sys/kernel/hostname"]
        .into_iter()
        .map(|p| (p.to_string(), std::fs::read(p).unwrap_or_default()))
        .collect()
}

#[test]
fn container_has_its_own_hostname_etc_files_and_volumes_while_the_host_keeps_its_own() {
    let Some(fx) = Fixture::new("sbx-uts") else { return };
    let before = host_view();
    let src = fx.tmp.path().join("volume");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("data.txt"), "from the volume\n").unwrap();
    let target = fx.tmp.path().join("mnt/nested/vol");
    let script = format!(
        "hostname; echo --; cat /etc/resolv.conf; echo --; cat /etc/hosts; echo --; cat /etc/hostname; echo --; \
         cat {t}/data.txt; touch {t}/new 2>/dev/null && echo writable || echo read-only; \
         ip -o -4 addr show dev eth0",
        t = target.display()
    );
    let mut spec = fx.spec("uts", &["sh", "-c", &script]);
    spec.mounts = vec![Mount { source: src.clone(), target: target.clone(), read_only: true }];
    let st = fx.run_to_end(&spec);
    assert_eq!((st.exit_code, st.reason.as_deref()), (Some(0), Some(REASON_COMPLETED)), "{st:?} {:?}", fx.log("uts"));

    let out = fx.stdout("uts");
    let text = out.join("\n");
    let expected = format!("uts-host\n--\n{RESOLV}--\n{}--\nuts-host\n--\nfrom the volume\nread-only", spec.hosts);
    assert!(text.starts_with(&expected), "container saw:\n{text}\nexpected to start with:\n{expected}");
    assert!(text.contains(&format!("inet {}/", fx.pod.ip())), "not in the pod's network namespace:\n{text}");

    assert_eq!(host_view(), before, "the host's /etc files or hostname changed");
    // The mount point was made (that is on the host's filesystem), but the mount stayed inside.
    assert!(target.is_dir());
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "the volume mount leaked to the host");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(fx.tmp.path().to_str().unwrap()), "a container mount is visible on the host");
}

#[test]
fn env_working_dir_log_and_exit_code_are_as_given() {
    let Some(fx) = Fixture::new("sbx-env") else { return };
    let mut spec = fx.spec("env", &["env"]);
    spec.env = vec![("GREETING".into(), "hello world".into()), ("PATH".into(), "/usr/bin:/bin".into())];
    let st = fx.run_to_end(&spec);
    assert_eq!((st.exit_code, st.reason.as_deref()), (Some(0), Some(REASON_COMPLETED)));
    let mut env = fx.stdout("env");
    env.sort();
    assert_eq!(
        env,
        ["GREETING=hello world", "PATH=/usr/bin:/bin"],
        "the container's environment is not exactly the spec's"
    );

    let mut spec = fx.spec("nobody", &["sh", "-c", "id -u; id -g; id -G"]);
    (spec.run_as_user, spec.run_as_group) = (Some(65534), Some(65533));
    fx.run_to_end(&spec);
    assert_eq!(
        fx.stdout("nobody"),
        ["65534", "65533", "65533"],
        "runAsUser/runAsGroup not applied (or root's groups kept)"
    );

    let workdir = fx.tmp.path().join("work");
    std::fs::create_dir(&workdir).unwrap();
    let mut spec = fx.spec("exit3", &["sh", "-c", "pwd; echo $PATH; echo out; echo err >&2; printf tail; exit 3"]);
    spec.working_dir = Some(workdir.clone());
    let st = fx.run_to_end(&spec);
    assert_eq!((st.exit_code, st.signal, st.reason.as_deref()), (Some(3), None, Some(REASON_ERROR)), "{st:?}");
    assert!(st.started_at.unwrap() <= st.finished_at.unwrap());
    let log = fx.log("exit3");
    let line = |stream, text: &str| (stream, false, text.to_string());
    for want in [
        line(Stream::Stdout, workdir.to_str().unwrap()),
        line(Stream::Stdout, DEFAULT_PATH),
        line(Stream::Stdout, "out"),
        line(Stream::Stderr, "err"),
        line(Stream::Stdout, "tail"),
    ] {
        assert!(log.contains(&want), "{want:?} missing from the CRI log {log:?}");
    }
    let raw = std::fs::read_to_string(fx.sandbox.log_path("exit3")).unwrap();
    assert!(raw.lines().any(|l| l.ends_with("Z stderr F err")), "not the CRI format:\n{raw}");
}

#[test]
fn a_missing_command_is_a_start_error_not_a_hang() {
    let Some(fx) = Fixture::new("sbx-err") else { return };
    let started = Instant::now();
    let err = fx.start(&fx.spec("nosuch", &["portico-no-such-command", "x"])).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    match &err {
        SandboxError::StartFailed { id, message } => {
            assert_eq!(id, "nosuch");
            assert_eq!(message, "exec: \"portico-no-such-command\": executable file not found in $PATH");
        }
        other => panic!("expected StartFailed, got {other}"),
    }
    assert!(err.to_string().contains("container nosuch: failed to start"), "{err}");
    let st = fx.sandbox.state("nosuch").expect("state");
    assert_eq!((st.exit_code, st.reason.as_deref()), (Some(128), Some(REASON_START_ERROR)));
    fx.wait_shim_gone(&st);

    let mut spec = fx.spec("baddir", &["true"]);
    spec.working_dir = Some("/portico-no-such-dir".into());
    let err = fx.start(&spec).unwrap_err().to_string();
    assert!(
        err.contains("chdir to cwd (\"/portico-no-such-dir\")") && err.contains("no such file or directory"),
        "{err}"
    );

    let mut spec = fx.spec("badns", &["true"]);
    spec.netns = "/run/netns/portico-no-such-netns".into();
    let err = fx.start(&spec).unwrap_err().to_string();
    assert!(err.contains("opening network namespace /run/netns/portico-no-such-netns"), "{err}");

    let err = fx.start(&fx.spec("bad/id", &["true"])).unwrap_err();
    assert!(matches!(err, SandboxError::InvalidSpec { .. }), "{err}");
    for st in fx.sandbox.list() {
        fx.wait_shim_gone(&st);
    }
}

#[test]
fn demo_server_answers_http_and_echoes_udp_from_the_node() {
    let Some(fx) = Fixture::new("sbx-demo") else { return };
    let mut spec = fx.spec("demo", &[]);
    spec.pod_name = "hello-pod".into();
    spec.demo_ports = vec![(8080, Protocol::Tcp), (9000, Protocol::Udp)];
    let st = fx.start(&spec).unwrap_or_else(|e| panic!("{e}"));
    assert!(st.is_running(), "{st:?}");

    let addr = SocketAddr::from((fx.pod.ip(), 8080));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut conn = loop {
        match fx.lab.connect_tcp(&fx.node, addr) {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("demo server not reachable at {addr}: {e}; log {:?}", fx.log("demo")),
        }
    };
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"GET /some/path HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    conn.read_to_string(&mut all).unwrap();
    assert_eq!(all.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{all}");
    assert_eq!(all.matches("\r\n\r\nHello World!\nhello-pod\n").count(), 2, "HEAD must carry no body: {all}");

    fx.lab.check_target(fx.pod.ip().into()).unwrap();
    let pod_udp = SocketAddr::from((fx.pod.ip(), 9000));
    let echoed = fx
        .lab
        .in_ns(&fx.node, || {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.set_read_timeout(Some(Duration::from_millis(500)))?;
            let mut buf = [0u8; 64];
            // UDP may be lost while the server is still binding; retry a few times.
            for _ in 0..10 {
                s.send_to(b"ping portico", pod_udp)?;
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    return Ok::<_, std::io::Error>((buf[..n].to_vec(), from));
                }
            }
            Err(std::io::ErrorKind::TimedOut.into())
        })
        .unwrap()
        .expect("UDP echo");
    assert_eq!(echoed, (b"ping portico".to_vec(), pod_udp));
    assert!(fx.stdout("demo").iter().any(|l| l.contains("demo server for pod hello-pod")), "{:?}", fx.log("demo"));
}

/// Not a test on its own: the stand-in agent of `shim_outlives_a_killed_agent`, run in a child
/// process that the test SIGKILLs once the container is up.
#[test]
#[ignore = "helper process of shim_outlives_a_killed_agent"]
fn agent_helper_process() {
    let Ok(spec) = std::env::var(HELPER_ENV) else { return };
    let spec: ContainerSpec = serde_json::from_str(&spec).expect("spec");
    let state_dir = std::env::var("PORTICO_SANDBOX_TEST_STATE_DIR").expect("state dir");
    let sandbox = Sandbox::new(state_dir.into(), PathBuf::from(PORTICO));
    let st = block_on(sandbox.start(&spec)).expect("start");
    println!("STARTED {}", st.pid.unwrap_or_default());
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn shim_outlives_a_killed_agent_and_stops_on_sigterm() {
    let Some(fx) = Fixture::new("sbx-surv") else { return };
    let spec = fx.spec("survivor", &["sleep", "600"]);
    let mut agent = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "agent_helper_process", "--ignored", "--nocapture", "--test-threads=1"])
        .env(HELPER_ENV, serde_json::to_string(&spec).unwrap())
        .env("PORTICO_SANDBOX_TEST_STATE_DIR", fx.sandbox.state_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("helper agent");
    let out = agent.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            // libtest may have printed "test ... " on the same line first.
            match line.split_once("STARTED ").map(|(_, pid)| pid) {
                Some(pid) => drop(tx.send(pid.trim().parse::<u32>().ok())),
                None => eprintln!("helper agent: {line}"),
            }
        }
    });
    let started = rx.recv_timeout(Duration::from_secs(20));
    // SIGKILL, as an agent crash or OOM kill would; std's kill() is SIGKILL of this one pid.
    agent.kill().unwrap();
    let status = agent.wait().unwrap();
    let pid = started.expect("the helper agent did not report a started container").expect("pid");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));

    std::thread::sleep(Duration::from_millis(300));
    let all = fx.sandbox.list();
    assert_eq!(all.len(), 1, "{all:?}");
    let st = &all[0];
    assert_eq!(st.id, "survivor");
    assert!(st.is_running() && st.shim_alive, "the container or its shim died with the agent: {st:?}");
    assert_eq!(st.pid, Some(pid));
    assert!(is_alive(pid, st.pid_start_time.unwrap()), "container process {pid} is gone");

    fx.sandbox.signal("survivor", Signal::SIGTERM).unwrap();
    let st = fx.wait_ended("survivor", Duration::from_secs(10));
    assert_eq!((st.signal, st.exit_code, st.reason.as_deref()), (Some(libc::SIGTERM), Some(143), Some(REASON_ERROR)));
    assert!(st.finished_at.is_some());
    fx.wait_shim_gone(&st);
    assert!(!is_alive(pid, st.pid_start_time.unwrap()));
    assert!(matches!(fx.sandbox.signal("survivor", Signal::SIGTERM), Err(SandboxError::NotRunning { .. })));
}

#[test]
fn enter_runs_commands_inside_a_running_container() {
    let Some(fx) = Fixture::new("sbx-enter") else { return };
    let workdir = fx.tmp.path().join("wd");
    std::fs::create_dir(&workdir).unwrap();
    let mut spec = fx.spec("entered", &["sleep", "600"]);
    spec.env = vec![("FOO".into(), "bar".into())];
    spec.working_dir = Some(workdir.clone());
    spec.stdin = true;
    let st = fx.start(&spec).unwrap_or_else(|e| panic!("{e}"));
    assert!(st.is_running());

    let argv: Vec<String> = ["sh", "-c", "hostname; echo $FOO; pwd; cat /etc/hostname; ip -o -4 addr show dev eth0"]
        .map(String::from)
        .into();
    let out = fx.sandbox.enter("entered", &argv).unwrap().stdin(Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..4], ["entered-host", "bar", workdir.to_str().unwrap(), "entered-host"], "{text}");
    assert!(lines[4].contains(&format!("inet {}/", fx.pod.ip())), "{text}");
    // The container's stdin is its fifo, open, not /dev/null.
    let stdin = std::fs::read_link(format!("/proc/{}/fd/0", st.pid.unwrap())).unwrap();
    assert_eq!(stdin, fx.sandbox.state_dir().join("entered/stdin"));
    assert_ne!(std::fs::read("/proc/sys/kernel/hostname").unwrap(), b"entered-host\n");

    assert!(matches!(fx.sandbox.remove("entered"), Err(SandboxError::StillRunning { .. })));
    // SIGTERM to the shim reaches the container.
    let shim = st.shim_pid.unwrap();
    assert!(is_alive(shim, st.shim_start_time.unwrap()));
    // SAFETY: kill(2) of the shim this test started, checked alive with its start time above.
    unsafe { libc::kill(shim as i32, libc::SIGTERM) };
    let st = fx.wait_ended("entered", Duration::from_secs(10));
    assert_eq!(st.signal, Some(libc::SIGTERM), "{st:?}");
    fx.wait_shim_gone(&st);
    assert!(matches!(fx.sandbox.enter("entered", &argv), Err(SandboxError::NotRunning { .. })));
    fx.sandbox.remove("entered").unwrap();
    assert!(fx.sandbox.state("entered").is_none());
    assert!(fx.sandbox.list().is_empty());
}

//! kubectl's streaming commands against a whole Portico in a lab (`portico up` in a lab node's
//! network namespace, kubectl run there too): `logs` (plain, --tail, -f, --previous, -c),
//! `exec` (output, exit codes, stdin, a tty), `cp`, `attach`, `run -it --rm`, and
//! `port-forward` to a pod and a Service; and the kubelet API refusing callers without the
//! API server's client certificate. Needs root; under CI=true a lab that cannot be built fails.

mod common;

use std::process::Output;
use std::time::Duration;

use common::cluster::{Cluster, is_ready, s};
use common::eventually;
use std::process::{Command, Stdio};

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A shell command line run in the node's namespace (kubectl with the cluster's kubeconfig).
fn sh(c: &Cluster, script: &str) -> Output {
    let script = script.replace("KUBECTL", &format!("kubectl --kubeconfig {}", c.kubeconfig().display()));
    c.lab.exec(&c.node, &["sh", "-c", &script]).unwrap()
}

fn wait_ready(c: &Cluster, name: &str) {
    let ok = eventually(Duration::from_secs(90), || {
        let out = c.kubectl(&["get", "pod", name, "-o", "json"]);
        out.status.success() && is_ready(&serde_json::from_slice(&out.stdout).unwrap_or_default())
    });
    assert!(ok, "pod {name} never Ready: {}\n{}", c.kubectl_ok(&["get", "pods", "-o", "wide"]), c.log());
}

fn two_containers(marks: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: two}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: busybox
    command: [sh, -c, 'echo start-a; i=0; while true; do i=$((i+1)); echo line-$i; sleep 0.5; done']
  - name: b
    image: busybox
    command: [sh, -c, 'echo hello-b >&2; exec sleep 3600']
---
apiVersion: v1
kind: Pod
metadata: {{name: crash}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'n=$(cat {marks}/runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > {marks}/runs; echo run-$n; sleep 1; exit 1']
"#
    )
}

#[test]
fn kubectl_logs_reads_the_container_logs_through_the_kubelet_api() {
    let Some(c) = Cluster::start("slogs", &[]) else { return };
    c.apply(&two_containers(c.marks.path().to_str().unwrap()));
    wait_ready(&c, "two");

    // Plain, with -c; the first line is the container's first output.
    let ok = eventually(Duration::from_secs(10), || out(&c.kubectl(&["logs", "two", "-c", "a"])).contains("line-3"));
    assert!(ok, "{}", c.kubectl_ok(&["logs", "two", "-c", "a"]));
    let a = c.kubectl_ok(&["logs", "two", "-c", "a"]);
    assert!(a.starts_with("start-a\nline-1\n"), "{a}");
    assert_eq!(c.kubectl_ok(&["logs", "two", "-c", "b"]), "hello-b\n", "stderr is in the log too");

    // --tail and --timestamps.
    let tail = c.kubectl_ok(&["logs", "two", "-c", "a", "--tail=2"]);
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 2, "{tail}");
    assert!(lines.iter().all(|l| l.starts_with("line-")), "{tail}");
    let ts = c.kubectl_ok(&["logs", "two", "-c", "b", "--timestamps"]);
    let (stamp, rest) = ts.trim_end().split_once(' ').unwrap();
    assert!(stamp.parse::<jiff_like::Stamp>().is_ok() && rest == "hello-b", "{ts}");
    assert_eq!(c.kubectl_ok(&["logs", "two", "-c", "a", "--limit-bytes=5"]), "start");
    let since = c.kubectl_ok(&["logs", "two", "-c", "a", "--since=1s"]);
    assert!(!since.contains("start-a") && since.len() < a.len(), "{since}");

    // -f sees lines written after it started, until cut off.
    let before = c.kubectl_ok(&["logs", "two", "-c", "a"]).lines().count();
    let f = sh(&c, "timeout 3 KUBECTL logs -f two -c a");
    assert_eq!(f.status.code(), Some(124), "logs -f ended by itself: {}", err(&f));
    assert!(out(&f).lines().count() > before + 2, "logs -f saw no new lines: {}", out(&f));

    // Errors, as kube-apiserver words them.
    let raw = c.kubectl(&["get", "--raw", "/api/v1/namespaces/default/pods/two/log"]);
    assert!(!raw.status.success());
    assert!(
        err(&raw).contains("a container name must be specified for pod two, choose one of: [a b]"),
        "{}",
        err(&raw)
    );
    let nope = c.kubectl(&["logs", "two", "-c", "nope"]);
    assert!(err(&nope).contains("container nope is not valid for pod two"), "{}", err(&nope));

    // --previous after a restart: the run before the current one.
    let ok = eventually(Duration::from_secs(60), || {
        let p = c.json(&["get", "pod", "crash"]);
        p["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(0) >= 1
    });
    assert!(ok, "crash never restarted: {}", c.log());
    let p = c.json(&["get", "pod", "crash"]);
    let restarts = p["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap();
    let prev = c.kubectl_ok(&["logs", "crash", "--previous"]);
    assert_eq!(prev, format!("run-{restarts}\n"));
    let none = c.kubectl(&["logs", "two", "-c", "b", "--previous"]);
    assert!(err(&none).contains("previous terminated container \"b\" in pod \"two\" not found"), "{}", err(&none));
}

/// RFC 3339 check without another dependency: `YYYY-MM-DDTHH:MM:SS[.frac]Z`.
mod jiff_like {
    pub struct Stamp;
    impl std::str::FromStr for Stamp {
        type Err = ();
        fn from_str(s: &str) -> Result<Stamp, ()> {
            let b = s.as_bytes();
            let ok = s.len() >= 20
                && s.ends_with('Z')
                && b[4] == b'-'
                && b[7] == b'-'
                && b[10] == b'T'
                && b[13] == b':'
                && b[16] == b':';
            if ok { Ok(Stamp) } else { Err(()) }
        }
    }
}

#[test]
fn kubectl_exec_streams_output_exit_codes_stdin_and_a_tty() {
    let Some(c) = Cluster::start("sexec", &[]) else { return };
    c.apply(&two_containers(c.marks.path().to_str().unwrap()));
    wait_ready(&c, "two");

    // exec: output, the pod's hostname, exit codes.
    assert_eq!(c.kubectl_ok(&["exec", "two", "-c", "b", "--", "hostname"]), "two\n");
    let three = c.kubectl(&["exec", "two", "-c", "b", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(three.status.code(), Some(3), "{}", err(&three));
    assert_eq!(out(&three), "out\n");
    assert!(err(&three).contains("err\n"), "{}", err(&three));
    let missing = c.kubectl(&["exec", "two", "-c", "b", "--", "/no/such/command"]);
    assert_eq!(missing.status.code(), Some(127), "{}", err(&missing));

    // exec -i: stdin reaches the command and its end ends it.
    let cat = sh(&c, "printf 'one\\ntwo\\n' | KUBECTL exec -i two -c b -- sh -c 'wc -l; cat /dev/null'");
    assert!(cat.status.success(), "{}", err(&cat));
    assert_eq!(out(&cat).trim(), "2");

    // exec -it through a pty: a terminal inside.
    let tty = sh(&c, "printf 'tty; exit 5\\n' | script -qec 'KUBECTL exec -it two -c b -- sh' /dev/null");
    assert!(out(&tty).contains("/dev/pts/"), "{} {}", out(&tty), err(&tty));
    assert_eq!(tty.status.code(), Some(5), "{} {}", out(&tty), err(&tty));
}

const ATTACH: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: att}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: sh
    image: busybox
    command: [sh]
    stdin: true
"#;

#[test]
fn kubectl_cp_attach_and_run_it_stream_through_the_kubelet_api() {
    let Some(c) = Cluster::start("scp", &[]) else { return };
    let marks = c.marks.path().to_str().unwrap().to_owned();
    c.apply(&two_containers(&marks));
    c.apply(ATTACH);
    wait_ready(&c, "two");
    wait_ready(&c, "att");

    // cp: tar through exec, into the pod and back out.
    let local = c.data_dir.path().join("cp-in.txt");
    std::fs::write(&local, "copied through exec\n").unwrap();
    let into = format!("two:{marks}/in-pod.txt");
    let cp = c.kubectl(&["cp", local.to_str().unwrap(), &into, "-c", "b"]);
    assert!(cp.status.success(), "cp into the pod: {}", err(&cp));
    assert_eq!(std::fs::read_to_string(c.marks.path().join("in-pod.txt")).unwrap(), "copied through exec\n");
    let back = c.data_dir.path().join("cp-out.txt");
    let cp = c.kubectl(&["cp", &into, back.to_str().unwrap(), "-c", "b"]);
    assert!(cp.status.success(), "cp out of the pod: {}", err(&cp));
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "copied through exec\n");

    // attach -i: stdin goes to the container's own stdin, its new output comes back, and the
    // session ends with the container.
    let att = sh(&c, "(sleep 1; echo 'echo attached-$((40+2)); exit 0') | KUBECTL attach -i att");
    assert!(att.status.success(), "{} {}", out(&att), err(&att));
    assert!(out(&att).contains("attached-42"), "{} {}", out(&att), err(&att));
    let ok =
        eventually(Duration::from_secs(30), || s(&c.json(&["get", "pod", "att"])["status"]["phase"]) == "Succeeded");
    assert!(ok, "att did not finish");

    // run -it --rm through a terminal: the shell runs what is typed, exits, and the pod goes.
    let run = sh(
        &c,
        "(sleep 6; printf 'echo hi-$((40+2))\\nexit\\n'; sleep 5) | \
         script -qec 'KUBECTL run testnet -it --rm --image=busybox --restart=Never -- sh' /dev/null",
    );
    assert!(run.status.success(), "{} {}", out(&run), err(&run));
    assert!(out(&run).contains("hi-42"), "{}", out(&run));
    assert!(out(&run).contains("pod \"testnet\" deleted"), "{}", out(&run));
    let ok = eventually(Duration::from_secs(30), || !c.kubectl(&["get", "pod", "testnet"]).status.success());
    assert!(ok, "testnet still there");
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: demo
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-svc}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

/// Runs `kubectl port-forward <target> <ports>` in the node's namespace until `until` has
/// checked what it carries; `env` set for kubectl (e.g. to turn its WebSocket tunnel off).
fn port_forward(c: &Cluster, target: &str, ports: &str, env: &[(&str, &str)], local: u16) -> Vec<Option<String>> {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig").arg(c.kubeconfig()).args(["port-forward", target, ports]);
    cmd.envs(env.iter().copied()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let proc = c.lab.spawn(&c.node, cmd).unwrap();
    let mut got = vec![];
    let ok = eventually(Duration::from_secs(20), || c.curl("127.0.0.1", local).is_some());
    if ok {
        // Two more connections over the same session.
        got.push(c.curl("127.0.0.1", local));
        got.push(c.curl("127.0.0.1", local));
    }
    proc.kill().unwrap();
    assert!(ok, "port-forward {target} {ports} never carried a request");
    got
}

#[test]
fn kubectl_port_forward_reaches_pods_and_the_kubelet_api_refuses_other_callers() {
    let Some(c) = Cluster::start("spf", &[]) else { return };
    c.apply(WEB);
    let ok = eventually(Duration::from_secs(90), || {
        let pods = c.pods("app=web");
        pods.len() == 1 && pods.iter().all(is_ready)
    });
    assert!(ok, "web never Ready: {}", c.log());
    let pod = s(&c.pods("app=web")[0]["metadata"]["name"]);
    let hello = format!("Hello World!\n{pod}\n");

    for (target, ports, env, local) in [
        (format!("pod/{pod}"), "18080:8080", vec![], 18080),
        ("svc/web-svc".to_owned(), "18081:80", vec![], 18081),
        ("deploy/web".to_owned(), "18082:http", vec![], 18082),
        // kubectl's fallback: SPDY upgraded directly, no WebSocket tunnel.
        (format!("pod/{pod}"), "18083:8080", vec![("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")], 18083),
    ] {
        let got = port_forward(&c, &target, ports, &env, local);
        for g in got {
            assert_eq!(g.as_deref(), Some(hello.as_str()), "port-forward {target} {ports} {env:?}");
        }
    }
    let sessions: Vec<String> =
        c.log().lines().filter(|l| l.contains("port-forward session")).map(|l| l.to_owned()).collect();
    // kubectl's default tunnels SPDY in a WebSocket; the fallback upgrades to SPDY directly.
    let ws = sessions.iter().filter(|l| l.contains("\"websocket\"")).count();
    let spdy = sessions.iter().filter(|l| l.contains("\"spdy\"")).count();
    assert_eq!((ws, spdy), (3, 1), "{sessions:#?}");
    // A port nothing listens on: kubectl hears the kubelet's error, the session survives.
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig").arg(c.kubeconfig()).args(["port-forward", &format!("pod/{pod}"), "18084:9"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let proc = c.lab.spawn(&c.node, cmd).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.curl("127.0.0.1", 18084), None);
    std::thread::sleep(Duration::from_millis(500));
    proc.kill().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut proc.take_stderr().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("failed to connect to localhost:9"), "{stderr}");

    // The kubelet API itself: only the API server's client certificate gets in.
    let node_ip = c.node.ip().to_string();
    let url = format!("https://{node_ip}:10250/containerLogs/default/{pod}/web");
    let pki = c.data_dir.path().join("pki");
    let token = std::fs::read_to_string(pki.join("admin.token")).unwrap();
    let curl = |extra: &[&str]| {
        let mut argv = vec!["curl", "-sk", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}"];
        argv.extend_from_slice(extra);
        argv.push(&url);
        let o = c.lab.exec(&c.node, &argv).unwrap();
        (o.status.code(), out(&o))
    };
    // Refused in the TLS handshake: no HTTP answer at all.
    let (anonymous, code) = curl(&[]);
    assert!(anonymous != Some(0) && code == "000", "an anonymous caller got in: {code}");
    let bearer = format!("Authorization: Bearer {}", token.trim());
    let (with_token, code) = curl(&["-H", &bearer]);
    assert!(with_token != Some(0) && code == "000", "a bearer token without a client certificate got in: {code}");
    let (cert, key) = (pki.join("apiserver.crt"), pki.join("apiserver.key"));
    let (serving, code) = curl(&["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert!(serving != Some(0) && code == "000", "a certificate not made for client auth got in: {code}");
    let (cert, key) = (pki.join("apiserver-kubelet-client.crt"), pki.join("apiserver-kubelet-client.key"));
    let (ok, code) = curl(&["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert_eq!((ok, code.as_str()), (Some(0), "200"), "the API server's client certificate was refused");
}

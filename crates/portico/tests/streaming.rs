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
    let ok = eventually(Duration::from_secs(10), || c.kubectl_ok(&["logs", "two", "-c", "a"]).contains("line-3"));
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
    eprintln!("PREV {prev:?} restarts {restarts} F {:?}", out(&f).lines().count());
    assert_eq!(prev, format!("run-{restarts}\n"));
    let none = c.kubectl(&["logs", "two", "-c", "b", "--previous"]);
    assert!(
        err(&none).contains("previous terminated container \"b\" in pod \"two\" not found"),
        "{}",
        err(&none)
    );
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
fn kubectl_exec_cp_attach_and_run_stream_through_the_kubelet_api() {
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
    eprintln!("TTY OUT: {:?} ERR: {:?}", out(&tty), err(&tty));
    assert_eq!(tty.status.code(), Some(5), "{} {}", out(&tty), err(&tty));
}

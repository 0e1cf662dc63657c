//! A whole Portico cluster in a lab: `portico up` (API server, controllers, DNS and the node
//! agent) runs in a lab node's network namespace, so the pod bridge, the pods' namespaces and
//! the masquerade rules all live in the lab and go with it. kubectl runs in the same namespace.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use lab::Lab;
use serde_json::Value;

use super::eventually;

/// The cluster CIDR node IPAM carves the agent's pod CIDR from (inside the lab's benchmark
/// range, apart from the /24s the lab hands its own nodes).
pub const CLUSTER_CIDR: &str = "198.19.0.0/16";

/// The node network of `portico up --nodes N` in the lab node (`--nodes-cidr`).
pub const NODES_CIDR: &str = "198.18.250.0/24";

pub struct Cluster {
    pub lab: Lab,
    pub node: lab::Node,
    pub data_dir: tempfile::TempDir,
    /// The test's marker directory on the host filesystem (pods run on it).
    pub marks: tempfile::TempDir,
    up: Option<lab::Proc>,
    starts: u32,
    extra: Vec<String>,
    lan: lab::Switch,
    /// `portico agent` processes of the nodes that joined, by node name.
    agents: Vec<(String, lab::Proc)>,
    /// How each joined node's agent was started, so it can be restarted.
    joined: Vec<(String, lab::Node, Vec<String>)>,
    /// Let `portico up` choose where its DNS listens (no `--dns-listen`).
    pub auto_dns: bool,
    /// `portico up --nodes` when above 1: the nodes are namespaces `portico up` makes, each
    /// with its own agent process, on [`NODES_CIDR`].
    pub nodes: usize,
}

impl Cluster {
    /// A lab with one node running `portico up` with `extra` arguments.
    pub fn start(name: &str, extra: &[&str]) -> Option<Cluster> {
        let mut c = Cluster::new(name, extra)?;
        c.spawn();
        Some(c)
    }

    /// The lab and its node, `portico up` not started yet ([`Cluster::spawn`] starts it).
    pub fn new(name: &str, extra: &[&str]) -> Option<Cluster> {
        let lab = Lab::new_or_skip(name)?;
        let lan = lab.switch("lan", "198.51.100.0/24").unwrap();
        let node = lab.node("n1", &lan).unwrap();
        lab.register(CLUSTER_CIDR).unwrap();
        lab.register(NODES_CIDR).unwrap();
        let c = Cluster {
            lab,
            node,
            data_dir: tempfile::tempdir().unwrap(),
            marks: tempfile::tempdir().unwrap(),
            up: None,
            starts: 0,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            lan,
            agents: vec![],
            joined: vec![],
            auto_dns: false,
            nodes: 1,
        };
        Some(c)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.data_dir.path().join("agent")
    }

    /// A second machine: a lab node on the same switch whose `portico agent` joins the cluster
    /// with the API server's URL, the admin token and the cluster CA.
    pub fn join(&mut self, name: &str) -> lab::Node {
        self.join_with(name, &[])
    }

    /// [`Cluster::join`] with extra `portico agent` arguments.
    pub fn join_with(&mut self, name: &str, extra: &[&str]) -> lab::Node {
        let node = self.lab.node(name, &self.lan).unwrap();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        self.joined.push((name.to_owned(), node.clone(), extra));
        self.start_agent(name);
        node
    }

    /// An external client on the nodes' switch (no routes beyond it).
    pub fn client(&self, name: &str) -> lab::Client {
        self.lab.client(name, &self.lan).unwrap()
    }

    /// Kills a joined node's agent (and the proxy in it) with SIGKILL.
    pub fn kill_agent(&mut self, name: &str) {
        if let Some(i) = self.agents.iter().position(|(n, _)| n == name) {
            let (_, p) = self.agents.remove(i);
            p.kill().unwrap();
        }
    }

    /// (Re)starts a joined node's agent.
    pub fn start_agent(&mut self, name: &str) {
        let (_, node, extra) = self.joined.iter().find(|(n, _, _)| n == name).cloned().expect("a joined node");
        let token = std::fs::read_to_string(self.data_dir.path().join("pki/admin.token")).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.path().join(format!("agent-{name}.log")))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portico"));
        cmd.arg("agent")
            .args(["--server", &format!("https://{}:6443", self.node.ip())])
            .arg("--certificate-authority")
            .arg(self.data_dir.path().join("pki/ca.crt"))
            .args(["--node-name", name, "--node-ip", &node.ip().to_string(), "--cluster-cidr", CLUSTER_CIDR])
            .arg("--agent-state-dir")
            .arg(self.data_dir.path().join(format!("agent-{name}")))
            .arg("--netns-prefix")
            .arg(format!("{}-pod-", self.lab.prefix()))
            .args(&extra)
            .env("PORTICO_TOKEN", token.trim())
            .env("RUST_LOG", "info,proxy=debug")
            .stdout(Stdio::null())
            .stderr(log);
        self.agents.push((name.to_owned(), self.lab.spawn(&node, cmd).unwrap()));
    }

    /// The log of a joined node's agent.
    pub fn agent_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.data_dir.path().join(format!("agent-{name}.log"))).unwrap_or_default()
    }

    /// Every agent's state directory (this node's and the joined ones').
    fn state_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.state_dir()];
        for e in std::fs::read_dir(self.data_dir.path()).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with("agent-") && e.path().is_dir() {
                dirs.push(e.path());
            }
        }
        dirs.extend(self.local_node_dirs());
        dirs
    }

    /// The state directories of the nodes of `portico up --nodes` (`<data>/nodes/node-<i>`).
    pub fn local_node_dirs(&self) -> Vec<PathBuf> {
        let dir = self.data_dir.path().join("nodes");
        let mut dirs: Vec<PathBuf> =
            std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        dirs
    }

    /// The PID of a local node's agent (`portico up --nodes`), if it runs: the recorded PID,
    /// checked against its command line.
    pub fn local_agent_pid(&self, node: &str) -> Option<i32> {
        let dir = self.data_dir.path().join("nodes").join(node);
        let pid: i32 = std::fs::read_to_string(dir.join("agent.pid")).ok()?.trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z'));
        let ours = String::from_utf8_lossy(&cmdline).contains(dir.to_str().unwrap());
        (ours && !zombie).then_some(pid)
    }

    /// The network namespace of the pod with `uid`, wherever its node put it.
    pub fn pod_netns(&self, uid: &str) -> String {
        let suffix = format!("-{uid}");
        std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with(self.lab.prefix()) && n.ends_with(&suffix))
            .unwrap_or_else(|| format!("{}-pod-{uid}", self.lab.prefix()))
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.path().join("kubeconfig")
    }

    /// (Re)starts `portico up` in the node's namespace on the same data directory.
    pub fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.data_dir.path().join(format!("up-{}.log", self.starts))).unwrap();
        let node_ip = self.node.ip().to_string();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portico"));
        cmd.arg("up").arg("--data-dir").arg(self.data_dir.path()).args(["--bind", "0.0.0.0:6443"]);
        match self.nodes {
            1 => cmd.args(["--advertise-address", &node_ip, "--node-ip", &node_ip, "--node-name", "n1"]),
            n => cmd.args(["--nodes", &n.to_string(), "--nodes-cidr", NODES_CIDR]),
        };
        cmd.args(["--cluster-cidr", CLUSTER_CIDR])
            // On the node's address, so the kube-dns Service gets the node as its endpoint and pods
            // resolve through the proxy. Not the wildcard: the DNS answers from the address the
            // route back chooses, and for a pod on this node that is the bridge's, not the one
            // the proxy DNATed to, so conntrack would not translate the answer (README gap).
            .args(match self.auto_dns || self.nodes > 1 {
                true => vec![],
                false => vec!["--dns-listen".to_owned(), format!("{node_ip}:53")],
            })
            .args(["--dns-upstream", "127.0.0.1:9"])
            .args([
                "--dns-health",
                "127.0.0.1:8080",
                "--dns-ready",
                "127.0.0.1:8080",
                "--dns-metrics",
                "127.0.0.1:8080",
            ])
            .arg("--netns-prefix")
            .arg(format!("{}-pod-", self.lab.prefix()))
            .args(&self.extra)
            .env("RUST_LOG", "info,proxy=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.up = Some(self.lab.spawn(&self.node, cmd).unwrap());
        let ok = eventually(Duration::from_secs(60), || {
            self.kubeconfig().exists() && self.kubectl(&["get", "--raw", "/readyz"]).status.success()
        });
        assert!(ok, "portico up did not come up:\n{}", self.log());
    }

    /// The PID of the running `portico up` (API server, controllers, DNS and agent).
    pub fn pid(&self) -> Option<u32> {
        self.up.as_ref().map(lab::Proc::pid)
    }

    /// Ctrl-C: SIGINT to `portico up`; true when it ended by itself within 30 s (it is
    /// SIGKILLed otherwise).
    pub fn interrupt(&mut self) -> bool {
        let Some(p) = self.up.take() else { return false };
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(p.pid() as libc::pid_t, libc::SIGINT) };
        let ended = p.wait_timeout(Duration::from_secs(30)).ok().flatten().is_some();
        if !ended {
            p.kill().unwrap();
        }
        ended
    }

    pub fn kill9(&mut self) {
        if let Some(p) = self.up.take() {
            p.kill().unwrap();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join(format!("up-{}.log", self.starts))).unwrap_or_default()
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let kc = self.kubeconfig();
        let mut argv = vec!["kubectl", "--kubeconfig", kc.to_str().unwrap()];
        argv.extend_from_slice(args);
        match stdin {
            None => self.lab.exec(&self.node, &argv).unwrap(),
            Some(input) => {
                let path = self.data_dir.path().join("stdin.yaml");
                std::fs::write(&path, input).unwrap();
                argv.extend(["-f", path.to_str().unwrap()]);
                self.lab.exec(&self.node, &argv).unwrap()
            }
        }
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?}: {}\n{}", String::from_utf8_lossy(&out.stderr), self.log());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn apply(&self, manifest: &str) {
        let out = self.kubectl_stdin(&["apply"], Some(manifest));
        assert!(out.status.success(), "apply: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&a)).unwrap()
    }

    /// Waits (2 min at most) until exactly `n` pods labelled `app=<app>` and not being deleted
    /// are Ready; returns those not being deleted.
    pub fn wait_ready(&self, app: &str, n: usize) -> Vec<Value> {
        let live = |pods: Vec<Value>| -> Vec<Value> {
            pods.into_iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).collect()
        };
        let ok = eventually(Duration::from_secs(120), || {
            live(self.pods(&format!("app={app}"))).iter().filter(|p| is_ready(p)).count() == n
        });
        assert!(ok, "{app}: {n} ready pods:\n{}\n{}", self.kubectl_ok(&["get", "pods", "-o", "wide"]), self.log());
        live(self.pods(&format!("app={app}")))
    }

    pub fn pods(&self, selector: &str) -> Vec<Value> {
        self.json(&["get", "pods", "-l", selector])["items"].as_array().cloned().unwrap_or_default()
    }

    /// The pod's log file, written by its container supervisor.
    pub fn container_log(&self, uid: &str, container: &str) -> String {
        let dir = self.state_dir().join("containers");
        let mut out = String::new();
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("{uid}_{container}_")) {
                for f in ["log", "container.log"] {
                    out.push_str(&std::fs::read_to_string(e.path().join(f)).unwrap_or_default());
                }
            }
        }
        out
    }

    /// An HTTP GET from the node to `ip:port` (curl in the node's namespace).
    pub fn curl(&self, ip: &str, port: u16) -> Option<String> {
        self.lab.check_target(ip.parse().unwrap()).unwrap();
        let url = format!("http://{ip}:{port}/");
        let out = self.lab.exec(&self.node, &["curl", "-s", "--max-time", "3", &url]).unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `argv` inside the pod with `uid` (its network namespace only).
    pub fn exec_in_pod(&self, uid: &str, argv: &[&str]) -> Output {
        let ns = self.pod_netns(uid);
        Command::new("ip").args(["netns", "exec", &ns]).args(argv).output().unwrap()
    }

    /// An HTTP GET from inside the pod whose namespace is `netns`.
    pub fn curl_from_pod(&self, uid: &str, ip: &str, port: u16) -> Option<String> {
        self.lab.check_target(ip.parse().unwrap()).unwrap();
        let ns = self.pod_netns(uid);
        let url = format!("http://{ip}:{port}/");
        let out =
            Command::new("ip").args(["netns", "exec", &ns, "curl", "-s", "--max-time", "3", &url]).output().unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Cluster {
    /// Pods' container supervisors outlive the agent by design: end the ones this cluster's
    /// agent started (their PIDs are in its state directory) before the lab goes.
    fn drop(&mut self) {
        self.kill9();
        // The agents of `portico up --nodes` run in sessions of their own, out of the lab's reach.
        for dir in self.local_node_dirs() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(pid) = self.local_agent_pid(&name) {
                // SAFETY: kill(2) on an agent this test's `portico up` started (checked above).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        for (_, a) in self.agents.drain(..) {
            let _ = a.kill();
        }
        let states = self
            .state_dirs()
            .into_iter()
            .flat_map(|d| node::sandbox::Sandbox::new(d.join("containers"), PathBuf::from("/nonexistent")).list());
        for st in states.collect::<Vec<_>>() {
            if st.has_ended() && !st.shim_alive {
                continue;
            }
            // The container leads its own process group (its children too, with no PID
            // namespace to end them); then its supervisor.
            // SAFETY: kill(2) on PIDs this test's agent recorded for processes it started.
            if let Some(pid) = st.pid {
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            }
            if let Some(pid) = st.shim_pid {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

/// Three demo pods (no command: the built-in server on 8080) with an HTTP readiness probe.
pub const WEB_REPLICASET: &str = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: demo
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
"#;

/// Whether an object's (pod's or node's) Ready condition is True.
pub fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

pub fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

pub fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

//! `portico up --nodes N`: a cluster of N nodes on one machine, without containers.
//!
//! Each node is a network namespace `<prefix>node-<i>` with `eth0` on a bridge in the host's
//! namespace (`portico-nodes`, the first address of `--nodes-cidr`), and runs its own
//! `portico agent` process (agent and service proxy): killing that process is a node failure,
//! as stopping a kubelet is. The nodes have no default route, so nothing leaves them for the
//! machine's real network; the host reaches every node's IP (NodePorts answer on each) and,
//! through routes this module keeps, every node's pods and the Service range. The API server,
//! controllers, cluster DNS and ingress controller stay in the `portico up` process on the host,
//! like a control plane outside its worker nodes.
//!
//! What a run set up is recorded under `<data dir>/nodes/` (the layout in `cluster.json`, each
//! agent's PID), so `portico node stop|start`, `portico down` and the next `portico up` find it
//! even after a crash.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api::net::Cidr;
use component::Informers;
use k8s_openapi::api::core::v1::Node;

/// The host side of the node network.
pub const BRIDGE: &str = "portico-nodes";
/// How long a stopping agent gets before SIGKILL.
const AGENT_STOP_GRACE: Duration = Duration::from_secs(5);

/// The machine's share of the layout: addresses, names and where each node keeps its state.
#[derive(Clone, Debug)]
pub struct Layout {
    pub cidr: Cidr,
    pub netns_prefix: String,
    pub data_dir: PathBuf,
    pub nodes: Vec<LocalNode>,
}

#[derive(Clone, Debug)]
pub struct LocalNode {
    pub name: String,
    pub ip: Ipv4Addr,
    /// `/run/netns/<netns>`.
    pub netns: String,
    /// The host end of the node's `eth0`, on [`BRIDGE`].
    pub host_veth: String,
    pub state_dir: PathBuf,
}

/// How every node's `portico agent` is started (recorded, so `portico node start` restarts one
/// the same way).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AgentLaunch {
    pub api_port: u16,
    pub cluster_cidr: String,
    pub service_cluster_ip_range: String,
    pub cluster_dns: String,
    pub cluster_domain: String,
    pub proxy_mode: String,
    pub no_proxy: bool,
    pub log_format: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    nodes: usize,
    cidr: String,
    netns_prefix: String,
    launch: AgentLaunch,
}

impl Layout {
    pub fn new(count: usize, cidr: &str, netns_prefix: &str, data_dir: &Path) -> anyhow::Result<Layout> {
        let cidr: Cidr = cidr.parse().map_err(|e| anyhow::anyhow!("--nodes-cidr {cidr}: {e}"))?;
        let IpAddr::V4(network) = cidr.network() else { bail!("--nodes-cidr must be an IPv4 range") };
        // The network address, the host, the nodes, and the broadcast address.
        let room = (cidr.last() - cidr.first()).saturating_sub(2);
        if count < 2 || count as u128 > room.min(250) {
            bail!("--nodes {count}: a local cluster has 2 to {} nodes in {cidr}", room.min(250));
        }
        let nodes = (1..=count)
            .map(|i| {
                let name = format!("node-{i}");
                LocalNode {
                    ip: Ipv4Addr::from(u32::from(network) + 1 + i as u32),
                    netns: format!("{netns_prefix}{name}"),
                    host_veth: format!("portico-n{i}"),
                    state_dir: data_dir.join("nodes").join(&name),
                    name,
                }
            })
            .collect();
        Ok(Layout { cidr, netns_prefix: netns_prefix.to_owned(), data_dir: data_dir.to_owned(), nodes })
    }

    /// The layout an earlier `portico up --nodes` recorded in `data_dir`, with its launch.
    pub fn recorded(data_dir: &Path) -> anyhow::Result<Option<(Layout, AgentLaunch)>> {
        let path = data_dir.join("nodes/cluster.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let r: Record = serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        Ok(Some((Layout::new(r.nodes, &r.cidr, &r.netns_prefix, data_dir)?, r.launch)))
    }

    fn record(&self, launch: &AgentLaunch) -> anyhow::Result<()> {
        let r = Record {
            nodes: self.nodes.len(),
            cidr: self.cidr.to_string(),
            netns_prefix: self.netns_prefix.clone(),
            launch: launch.clone(),
        };
        let dir = self.data_dir.join("nodes");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("cluster.json"), serde_json::to_vec_pretty(&r)?)?;
        Ok(())
    }

    fn forget(&self) {
        let _ = std::fs::remove_file(self.data_dir.join("nodes/cluster.json"));
    }

    /// The host's address on the node network: the API server, DNS and ingress are reached there.
    pub fn host_ip(&self) -> Ipv4Addr {
        let IpAddr::V4(network) = self.cidr.network() else { unreachable!("checked in new") };
        Ipv4Addr::from(u32::from(network) + 1)
    }

    pub fn node(&self, name: &str) -> Option<&LocalNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Refuses a node range the machine already uses for something else (its own bridge from
    /// an earlier run is fine).
    pub fn check_free(&self) -> anyhow::Result<()> {
        let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 || f[0] == BRIDGE {
                continue;
            }
            let parse = |h: &str| u32::from_str_radix(h, 16).ok().map(|v| Ipv4Addr::from(u32::from_be(v)));
            let (Some(dst), Some(mask)) = (parse(f[1]), parse(f[7])) else { continue };
            let prefix = u32::from(mask).count_ones() as u8;
            // The default route covers everything and says nothing about use.
            if prefix == 0 {
                continue;
            }
            let Some(route) = Cidr::new(IpAddr::V4(dst), prefix) else { continue };
            if route.first() <= self.cidr.last() && self.cidr.first() <= route.last() {
                bail!(
                    "the node range {} (--nodes-cidr) overlaps {route} on this machine's {}; choose another with --nodes-cidr",
                    self.cidr,
                    f[0]
                );
            }
        }
        Ok(())
    }

    /// Builds what is missing of the node network: the bridge with the host's address, and
    /// for each node its namespace, `eth0` with its address, and loopback.
    pub fn create(&self) -> anyhow::Result<()> {
        let prefix = self.cidr.prefix();
        if !link_exists(None, BRIDGE) {
            ip(&["link", "add", BRIDGE, "type", "bridge"])?;
            ip(&["addr", "add", &format!("{}/{prefix}", self.host_ip()), "dev", BRIDGE])?;
        }
        ip(&["link", "set", BRIDGE, "up"])?;
        for n in &self.nodes {
            if !Path::new(node::net::NETNS_DIR).join(&n.netns).exists() {
                ip(&["netns", "add", &n.netns])?;
            }
            if !link_exists(Some(&n.netns), "eth0") {
                if link_exists(None, &n.host_veth) {
                    ip(&["link", "del", &n.host_veth])?;
                }
                ip(&["link", "add", &n.host_veth, "type", "veth", "peer", "name", "eth0", "netns", &n.netns])?;
                ip(&["-n", &n.netns, "addr", "add", &format!("{}/{prefix}", n.ip), "dev", "eth0"])?;
            }
            ip(&["link", "set", &n.host_veth, "master", BRIDGE, "up"])?;
            ip(&["-n", &n.netns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &n.netns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Starts the agents that are not running, records the layout, and returns each node's
    /// agent PID.
    pub fn start_agents(&self, launch: &AgentLaunch) -> anyhow::Result<Vec<(String, u32)>> {
        self.record(launch)?;
        let mut pids = vec![];
        for n in &self.nodes {
            let pid = match agent_pid(n) {
                Some(pid) => {
                    tracing::info!(node = %n.name, pid, "its agent is still running from an earlier start; keeping it");
                    pid
                }
                None => start_agent(self, n, launch)?,
            };
            pids.push((n.name.clone(), pid));
        }
        Ok(pids)
    }

    /// Everything [`Layout::create`] and the agents made goes: the agents end, the pods end and
    /// their namespaces go, then the nodes' namespaces (their bridges, routes and rules with
    /// them) and the host's bridge.
    pub async fn remove(&self) -> Vec<String> {
        let mut problems = vec![];
        for n in &self.nodes {
            if let Err(e) = stop_agent(n) {
                problems.push(format!("{}: {e}", n.name));
            }
        }
        for n in &self.nodes {
            let cfg = teardown_config(n);
            problems.extend(node::agent::stop_pods(&cfg).await);
            problems.extend(node::net::teardown(None, &cfg.netns_prefix, &cfg.state_dir.join("net")).await);
            if Path::new(node::net::NETNS_DIR).join(&n.netns).exists()
                && let Err(e) = ip(&["netns", "del", &n.netns])
            {
                problems.push(e.to_string());
            }
        }
        if link_exists(None, BRIDGE)
            && let Err(e) = ip(&["link", "del", BRIDGE])
        {
            problems.push(e.to_string());
        }
        if let Err(e) = node::net::set_host_routes(&[]).await {
            problems.push(format!("removing the routes to the nodes: {e}"));
        }
        if problems.is_empty() {
            self.forget();
        }
        problems
    }
}

/// The agent configuration that only says where a node's pods and their records are.
fn teardown_config(n: &LocalNode) -> node::agent::Config {
    node::agent::Config {
        node_name: n.name.clone(),
        node_ip: IpAddr::V4(n.ip),
        kubelet_port: 10250,
        state_dir: n.state_dir.clone(),
        exe: std::env::current_exe().unwrap_or_default(),
        cluster_dns: node::agent::files::ClusterDns { nameserver: String::new(), domain: String::new() },
        cluster_cidr: None,
        service_cidrs: vec![],
        bridge: String::new(),
        netns_prefix: pod_netns_prefix(n),
        masquerade: false,
        cni: None,
        healthz_bind: None,
    }
}

/// Pods of node-1 are `/run/netns/<prefix>node-1-<uid>`: apart from every other node's.
fn pod_netns_prefix(n: &LocalNode) -> String {
    format!("{}-", n.netns)
}

fn pid_file(n: &LocalNode) -> PathBuf {
    n.state_dir.join("agent.pid")
}

/// The PID of the node's agent if it runs: the recorded PID, checked against the process's
/// command line so a reused PID is never taken for it.
pub fn agent_pid(n: &LocalNode) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(n)).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let state = n.state_dir.to_string_lossy();
    let ours = args.contains(&b"agent".as_slice())
        && args.windows(2).any(|w| w[0] == b"--agent-state-dir" && w[1] == state.as_bytes());
    // A zombie (ended, not yet reaped by its parent) is not running.
    let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = status.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'));
    (ours && !zombie).then_some(pid)
}

/// Starts `portico agent` for node `n` inside its namespace, in a session of its own (it
/// outlives a crashed `portico up`, as a kubelet outlives its API server), logging to
/// `<state dir>/agent.log`.
pub fn start_agent(layout: &Layout, n: &LocalNode, launch: &AgentLaunch) -> anyhow::Result<u32> {
    std::fs::create_dir_all(&n.state_dir)?;
    let pki = layout.data_dir.join("pki");
    let token = std::fs::read_to_string(pki.join("admin.token")).context("reading the admin token")?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(n.state_dir.join("agent.log"))?;
    let netns_path = Path::new(node::net::NETNS_DIR).join(&n.netns);
    let netns = std::fs::File::open(&netns_path).with_context(|| format!("opening {}", netns_path.display()))?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["--log-format", &launch.log_format, "agent"])
        .args(["--server", &format!("https://{}:{}", layout.host_ip(), launch.api_port)])
        .arg("--certificate-authority")
        .arg(pki.join("ca.crt"))
        .args(["--node-name", &n.name, "--node-ip", &n.ip.to_string()])
        .args(["--cluster-cidr", &launch.cluster_cidr])
        .args(["--service-cluster-ip-range", &launch.service_cluster_ip_range])
        .args(["--cluster-dns", &launch.cluster_dns, "--cluster-domain", &launch.cluster_domain])
        .arg("--agent-state-dir")
        .arg(&n.state_dir)
        .args(["--netns-prefix", &pod_netns_prefix(n)])
        .args(["--proxy-mode", &launch.proxy_mode])
        .args(launch.no_proxy.then_some("--no-proxy"))
        .env("PORTICO_TOKEN", token.trim())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let fd = netns.as_raw_fd();
    // SAFETY: only async-signal-safe calls (setsid, setns) between fork and exec; `netns` stays
    // open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| format!("starting the agent of {}", n.name))?;
    let pid = child.id();
    std::fs::write(pid_file(n), pid.to_string())?;
    // Reaped by a thread, so an agent that ends is not left a zombie of `portico up`.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    tracing::info!(node = %n.name, pid, ip = %n.ip, "started the node's agent");
    Ok(pid)
}

/// SIGTERM to the node's agent, SIGKILL after [`AGENT_STOP_GRACE`]. The agent leaves its pods
/// running, as a stopped kubelet does.
pub fn stop_agent(n: &LocalNode) -> anyhow::Result<bool> {
    let Some(pid) = agent_pid(n) else { return Ok(false) };
    // SAFETY: kill(2) on the agent this machine's `portico up` started, checked by agent_pid.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + AGENT_STOP_GRACE;
    while agent_pid(n).is_some() {
        if Instant::now() > deadline {
            // SAFETY: as above.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(pid_file(n));
    Ok(true)
}

/// Keeps the host's routes: each node's pod CIDR via the node, and the Service range via the
/// first node whose agent (and so its proxy) is Ready, so this machine reaches ClusterIPs.
pub async fn follow_routes(informers: Informers, layout: Layout, service_cidrs: Vec<Cidr>) {
    let nodes = informers.get::<Node>();
    let mut events = nodes.subscribe();
    let mut last: Option<Vec<(Cidr, IpAddr)>> = None;
    loop {
        let mut routes = vec![];
        let mut service_via = None;
        for n in &layout.nodes {
            let Some(obj) = nodes.get("", &n.name) else { continue };
            if let Some(cidr) = obj.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).and_then(|c| c.parse().ok()) {
                routes.push((cidr, IpAddr::V4(n.ip)));
            }
            if service_via.is_none() && crate::progress::is_ready(&obj) {
                service_via = Some(IpAddr::V4(n.ip));
            }
        }
        if let Some(via) = service_via {
            routes.extend(service_cidrs.iter().filter(|c| matches!(c.network(), IpAddr::V4(_))).map(|c| (*c, via)));
        }
        if last.as_ref() != Some(&routes) {
            match node::net::set_host_routes(&routes).await {
                Ok(()) => {
                    tracing::info!(routes = routes.len(), "routes to the nodes' pods and Services updated");
                    last = Some(routes);
                }
                Err(e) => tracing::warn!(error = %e, "updating the routes to the nodes failed"),
            }
        }
        tokio::select! {
            next = events.next() => if next.is_none() { return },
            // A failed update is retried.
            _ = tokio::time::sleep(Duration::from_secs(5)), if last.is_none() => {}
        }
    }
}

/// `ip` with the node network's arguments; its stderr is the error.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn link_exists(netns: Option<&str>, name: &str) -> bool {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["link", "show", "dev", name]).stdout(Stdio::null()).stderr(Stdio::null());
    cmd.status().is_ok_and(|s| s.success())
}

/// `portico node list|stop|start`: the nodes of this machine's `portico up --nodes`.
pub fn node_command(data_dir: &Path, action: &NodeAction) -> anyhow::Result<()> {
    let Some((layout, launch)) = Layout::recorded(data_dir)? else {
        bail!("no local cluster in {} (start one with `portico up --nodes N`)", data_dir.display());
    };
    let find = |name: &str| {
        layout.node(name).ok_or_else(|| {
            let names: Vec<&str> = layout.nodes.iter().map(|n| n.name.as_str()).collect();
            anyhow::anyhow!("no node {name} here; the nodes are {}", names.join(", "))
        })
    };
    match action {
        NodeAction::List => {
            println!("{:<10} {:<16} {:<10} NETNS", "NAME", "IP", "AGENT");
            for n in &layout.nodes {
                let agent = agent_pid(n).map(|p| format!("pid {p}")).unwrap_or_else(|| "stopped".into());
                println!("{:<10} {:<16} {:<10} {}", n.name, n.ip, agent, n.netns);
            }
        }
        NodeAction::Stop { name } => {
            let n = find(name)?;
            match stop_agent(n)? {
                true => println!(
                    "stopped the agent of {name}; its pods keep running until the node is deleted or started again"
                ),
                false => println!("the agent of {name} is not running"),
            }
        }
        NodeAction::Start { name } => {
            let n = find(name)?;
            if let Some(pid) = agent_pid(n) {
                println!("the agent of {name} is already running (pid {pid})");
            } else {
                let pid = start_agent(&layout, n, &launch)?;
                println!("started the agent of {name} (pid {pid}); log: {}", n.state_dir.join("agent.log").display());
            }
        }
    }
    Ok(())
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum NodeAction {
    /// The nodes and whether their agents run.
    List,
    /// Stop a node's agent (and its service proxy), as a node failure: its pods keep running,
    /// and the node goes NotReady after the node monitor grace period.
    Stop { name: String },
    /// Start a stopped node's agent again: the node rejoins and adopts its pods.
    Start { name: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_consecutive_addresses_after_the_host() {
        let l = Layout::new(3, "10.255.0.0/24", "portico-", Path::new("/var/lib/portico")).unwrap();
        assert_eq!(l.host_ip(), Ipv4Addr::new(10, 255, 0, 1));
        let ips: Vec<String> = l.nodes.iter().map(|n| n.ip.to_string()).collect();
        assert_eq!(ips, ["10.255.0.2", "10.255.0.3", "10.255.0.4"]);
        assert_eq!(l.nodes[2].netns, "portico-node-3");
        assert_eq!(l.nodes[2].host_veth, "portico-n3");
        assert_eq!(pod_netns_prefix(&l.nodes[0]), "portico-node-1-");
        assert_eq!(l.nodes[1].state_dir, Path::new("/var/lib/portico/nodes/node-2"));
    }

    #[test]
    fn a_range_too_small_or_one_node_is_refused() {
        let err = Layout::new(3, "10.255.0.0/30", "portico-", Path::new("/d")).unwrap_err().to_string();
        assert_eq!(err, "--nodes 3: a local cluster has 2 to 1 nodes in 10.255.0.0/30");
        assert!(Layout::new(1, "10.255.0.0/24", "portico-", Path::new("/d")).is_err());
        assert!(Layout::new(2, "fd00::/64", "portico-", Path::new("/d")).is_err());
        assert!(Layout::new(250, "10.255.0.0/24", "p-", Path::new("/d")).is_ok());
    }

    #[test]
    fn veth_names_fit_the_kernel_limit() {
        let l = Layout::new(250, "10.255.0.0/24", "portico-", Path::new("/d")).unwrap();
        assert!(l.nodes.iter().all(|n| n.host_veth.len() <= 15));
    }
}

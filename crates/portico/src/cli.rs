//! Command-line interface: configuration parsing and the subcommands.

use crate::dns_args::{DnsArgs, UpDnsArgs};
use crate::ingress_args::{IngressArgs, IngressCommandArgs};
use crate::progress;
use crate::proxy_args::{ProxyArgs, ProxyCommandArgs};
use clap::{Args, Parser, Subcommand};
use component::{Informers, Supervisor};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "portico", version, about = "Kubernetes Services, for real, in one binary")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text")]
    pub log_format: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run everything on this machine with the embedded store: the API server, the
    /// controllers and the cluster DNS.
    Up(Box<UpArgs>),
    /// Run the API server (with the controllers) alone.
    Server(ServerArgs),
    /// Run the cluster DNS against a Kubernetes API (Portico's or any cluster's).
    Dns(DnsArgs),
    /// Run the controllers alone against a Kubernetes API (kube-controller-manager's jobs).
    Controllers(ControllersArgs),
    /// Run the node agent (Portico's kubelet) for this machine against an API server: it
    /// registers the Node and runs the pods bound to it. Needs root.
    Agent(Box<AgentCommandArgs>),
    /// Run the service proxy (Portico's kube-proxy) for this machine against a Kubernetes API:
    /// it programs ClusterIPs, NodePorts, externalIPs and load balancer IPs. Needs root.
    Proxy(Box<ProxyCommandArgs>),
    /// Run the ingress controller against a Kubernetes API: it serves the Ingresses of its
    /// IngressClass on :80 and :443.
    Ingress(Box<IngressCommandArgs>),
    /// Remove what a `portico up` on this machine left after a crash or a kill: its pods'
    /// processes, the pod namespaces, veths, bridge, routes and masquerade table, and the
    /// service proxy's rules; with `--nodes`, the nodes' agents and namespaces too. The store
    /// is kept (the next `portico up` resumes from it).
    Down(Box<DownArgs>),
    /// The nodes of a local multi-node cluster (`portico up --nodes N`): list them, stop a
    /// node's agent (a node failure) or start it again.
    Node {
        #[command(subcommand)]
        action: crate::local::NodeAction,
        /// Where the store, certificates and kubeconfig live (default: <user data dir>/portico).
        #[arg(long, env = "PORTICO_DATA_DIR", global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Check a Service the way kubernetes.io's "Debug Services" teaches: selector, pods,
    /// endpoints, targetPorts, pod IPs, ClusterIP, DNS and NodePorts, each with what to do.
    Doctor(Box<crate::doctor::DoctorArgs>),
    /// Print the version the API server reports.
    Version,
    /// Container supervisor, started by the node agent for each container (internal).
    #[command(hide = true)]
    Shim {
        /// The container's state directory (holds spec.json).
        dir: PathBuf,
    },
    /// The built-in demo server that containers without a command run (internal).
    #[command(hide = true)]
    Demo {
        #[arg(long)]
        pod_name: String,
        /// TCP ports to answer HTTP on.
        #[arg(long, value_delimiter = ',')]
        tcp: Vec<u16>,
        /// UDP ports to echo on.
        #[arg(long, value_delimiter = ',')]
        udp: Vec<u16>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub dns: UpDnsArgs,
    #[command(flatten)]
    pub agent: AgentArgs,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    #[command(flatten)]
    pub ingress: IngressArgs,
    /// Nodes: 1 runs the node components in this process on this machine's network; more makes
    /// a local multi-node cluster, each node a network namespace with its own agent process.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// The address range of the nodes of `--nodes N`: the first address is this machine's on
    /// their bridge, the next ones are the nodes'.
    #[arg(long, default_value = "10.255.0.0/24")]
    pub nodes_cidr: String,
    /// Run no node components: no node agent (no pods run), no service proxy and no ingress
    /// controller. `portico up` without root runs none of them.
    #[arg(long)]
    pub no_agent: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Where the store, certificates and kubeconfig live (default: <user data dir>/portico).
    #[arg(long, env = "PORTICO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address and port of the HTTPS API (kube-apiserver's --bind-address and --secure-port).
    #[arg(long, default_value = "0.0.0.0:6443")]
    pub bind: SocketAddr,
    /// IP address this server is reached at: written into the kubeconfig and, when not
    /// loopback, published as the endpoints of the `kubernetes` Service (default 127.0.0.1).
    #[arg(long)]
    pub advertise_address: Option<std::net::IpAddr>,
    /// Extra DNS names or IPs for the serving certificate (made at first start).
    #[arg(long, value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// Number of past events kept so that watches can resume.
    #[arg(long, default_value_t = 100_000)]
    pub watch_history: u64,
    /// Service ClusterIP range(s): one CIDR, or an IPv4 and an IPv6 CIDR for dual-stack.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: String,
    /// Port range for NodePort Services.
    #[arg(long, default_value = "30000-32767")]
    pub service_node_port_range: String,
    /// The embedded store's page cache, in MiB.
    #[arg(long, default_value_t = 16)]
    pub store_cache_mb: usize,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 60)]
    pub bookmark_interval_seconds: u64,
    /// Run the API server without the controllers (run them with `portico controllers`).
    #[arg(long)]
    pub no_controllers: bool,
    #[command(flatten)]
    pub controllers: ControllerArgs,
}

/// The controllers' settings (kube-controller-manager's flags of the same names).
#[derive(Args, Debug, Clone)]
pub struct ControllerArgs {
    /// Most endpoints per EndpointSlice (kube-controller-manager's flag of the same name).
    #[arg(long, default_value_t = controllers::endpointslice::DEFAULT_MAX_ENDPOINTS_PER_SLICE)]
    pub max_endpoints_per_slice: usize,
    /// Pod network that node IPAM carves per-node /24s from.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// Seconds a node may miss heartbeats before it is marked Unknown.
    #[arg(long, default_value_t = 40)]
    pub node_monitor_grace_period_seconds: u64,
    /// LoadBalancer address pool: comma list of CIDRs, ranges (a-b) or addresses; unset uses node addresses.
    #[arg(long, value_delimiter = ',')]
    pub loadbalancer_ip_pool: Option<Vec<String>>,
}

#[derive(Args, Debug, Clone)]
pub struct ControllersArgs {
    /// kubeconfig of the cluster to run against (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub controllers: ControllerArgs,
}

/// `portico down`: the flags `portico up` was given that say where its node lives.
#[derive(Args, Debug, Clone)]
pub struct DownArgs {
    /// Where the store, certificates and kubeconfig live (default: <user data dir>/portico).
    #[arg(long, env = "PORTICO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub agent: AgentArgs,
}

/// How the node agent runs (`portico agent`, and the one in `portico up`).
#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// The Node's name (default: this machine's hostname).
    #[arg(long)]
    pub node_name: Option<String>,
    /// The Node's InternalIP (default: the first non-loopback IPv4 address of an interface that is up).
    #[arg(long)]
    pub node_ip: Option<std::net::IpAddr>,
    /// Container state, IPAM records and volumes (default: <data dir>/agent).
    #[arg(long)]
    pub agent_state_dir: Option<PathBuf>,
    /// The bridge pods are plugged into.
    #[arg(long, default_value = "portico0")]
    pub bridge: String,
    /// Pod network namespaces are /run/netns/<prefix><pod uid>.
    #[arg(long, default_value = "portico-")]
    pub netns_prefix: String,
    /// Masquerade pod traffic that leaves the cluster network.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub masquerade_egress: bool,
    /// The port of the kubelet API the Node advertises.
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Network pods with the CNI plugins configured here (a *.conflist), instead of the
    /// built-in bridge.
    #[arg(long)]
    pub cni_conf_dir: Option<PathBuf>,
    /// `/healthz` and `/metrics` of the agent (kubelet's healthz port).
    #[arg(long, default_value = "127.0.0.1:10248")]
    pub healthz_bind: std::net::SocketAddr,
    /// Where the CNI plugin binaries are.
    #[arg(long, default_value = "/usr/lib/cni,/opt/cni/bin", value_delimiter = ',')]
    pub cni_bin_dir: Vec<PathBuf>,
}

/// How a node component (`portico agent`, `portico proxy`) reaches the API server.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// kubeconfig of the cluster (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, conflicts_with = "server")]
    pub kubeconfig: Option<PathBuf>,
    /// The API server's URL, with --token (e.g. https://192.0.2.1:6443).
    #[arg(long, requires = "token")]
    pub server: Option<String>,
    /// Bearer token for --server.
    #[arg(long, env = "PORTICO_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA bundle that signs the API server's certificate (with --server).
    #[arg(long)]
    pub certificate_authority: Option<PathBuf>,
}

impl ApiArgs {
    pub async fn connect(&self) -> anyhow::Result<kube::Client> {
        Ok(match (&self.server, &self.token) {
            (Some(server), Some(token)) => {
                component::client::connect_token(server, token, self.certificate_authority.as_deref()).await?
            }
            _ => component::client::connect(self.kubeconfig.as_deref()).await?,
        })
    }
}

#[derive(Args, Debug, Clone)]
pub struct AgentCommandArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The cluster's pod network, for egress masquerade.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// The cluster DNS address pods' resolv.conf names (ClusterFirst).
    #[arg(long, default_value = "10.96.0.10")]
    pub cluster_dns: String,
    /// The cluster domain of pods' search path.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Where the agent's state lives when --agent-state-dir is not given.
    #[arg(long, env = "PORTICO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The Service ClusterIP range(s), routed into the pod bridge and guarded by the proxy.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: String,
    #[command(flatten)]
    pub agent: AgentArgs,
    #[command(flatten)]
    pub proxy: ProxyArgs,
}

impl AgentArgs {
    fn config(
        &self,
        data_dir: &std::path::Path,
        cluster_cidr: &str,
        service_cidrs: &str,
        cluster_dns: node::agent::files::ClusterDns,
    ) -> anyhow::Result<node::agent::Config> {
        let node_name = match &self.node_name {
            Some(n) => n.clone(),
            None => hostname()?,
        };
        let node_ip = match self.node_ip {
            Some(ip) => ip,
            None => first_interface_ip()
                .ok_or_else(|| anyhow::anyhow!("no interface address for the node; pass --node-ip"))?,
        };
        let cluster_cidr = cluster_cidr.parse().map_err(|e| anyhow::anyhow!("--cluster-cidr: {e}"))?;
        Ok(node::agent::Config {
            node_name,
            node_ip,
            kubelet_port: self.kubelet_port,
            state_dir: self.agent_state_dir.clone().unwrap_or_else(|| data_dir.join("agent")),
            exe: std::env::current_exe()?,
            cluster_dns,
            cluster_cidr: Some(cluster_cidr),
            service_cidrs: service_cidrs
                .split(',')
                .map(|c| c.trim().parse().map_err(|e| anyhow::anyhow!("--service-cluster-ip-range: {e}")))
                .collect::<anyhow::Result<Vec<_>>>()?,
            bridge: self.bridge.clone(),
            netns_prefix: self.netns_prefix.clone(),
            masquerade: self.masquerade_egress,
            cni: self.cni_conf_dir.clone().map(|d| (d, self.cni_bin_dir.clone())),
            healthz_bind: Some(self.healthz_bind),
        })
    }
}

/// This machine's hostname, lowercased as a Node name must be.
fn hostname() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    Ok(name.trim().to_lowercase())
}

/// The first non-loopback IPv4 address of an interface that is up (the address kubelet would
/// pick for a node without --node-ip is the default route's; reading it needs no traffic).
fn first_interface_ip() -> Option<std::net::IpAddr> {
    let text = std::fs::read_to_string("/proc/net/fib_trie").ok()?;
    // "/32 host LOCAL" leaves name the machine's own addresses.
    let mut last: Option<std::net::Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("|-- ").and_then(|a| a.parse().ok()) {
            last = Some(addr);
        } else if t.contains("/32 host LOCAL")
            && let Some(a) = last
            && !a.is_loopback()
        {
            return Some(std::net::IpAddr::V4(a));
        }
    }
    None
}

/// `--data-dir`, or `<user data dir>/portico`.
fn default_data_dir(given: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(d) => Ok(d.clone()),
        None => Ok(dirs::data_dir()
            .ok_or_else(|| anyhow::anyhow!("no user data directory; pass --data-dir"))?
            .join("portico")),
    }
}

impl ServerArgs {
    fn config(&self) -> anyhow::Result<apiserver::Config> {
        let mut config = apiserver::Config::new(default_data_dir(&self.data_dir)?);
        config.bind = self.bind;
        config.advertise = self.advertise_address;
        config.extra_sans = self.tls_san.clone();
        config.watch_history = self.watch_history;
        config.store_cache_bytes = self.store_cache_mb << 20;
        config.bookmark_interval = Duration::from_secs(self.bookmark_interval_seconds.max(1));
        self.check_ranges(None, None)?;
        config.service_network = apiserver::services::ServiceNetworkConfig {
            cidrs: apiserver::services::ServiceNetworkConfig::parse_cidrs(&self.service_cluster_ip_range)
                .map_err(|e| anyhow::anyhow!("--service-cluster-ip-range: {e}"))?,
            node_ports: self
                .service_node_port_range
                .parse()
                .map_err(|e| anyhow::anyhow!("--service-node-port-range: {e}"))?,
        };
        Ok(config)
    }
}

impl ServerArgs {
    /// Refuses overlapping pod and service ranges, and a node address inside either. A range
    /// that does not parse is left to the component that reads it, which names it.
    fn check_ranges(&self, node_ip: Option<(IpAddr, &str)>, node_range: Option<&str>) -> anyhow::Result<()> {
        let mut ranges = vec![];
        if let Some(cidr) = node_range.and_then(|r| r.parse::<api::net::Cidr>().ok()) {
            ranges.push(crate::ranges::Range { what: "node range", flag: "--nodes-cidr", cidr });
        }
        if let Ok(cidr) = self.controllers.cluster_cidr.parse::<api::net::Cidr>() {
            ranges.push(crate::ranges::Range { what: "pod range", flag: "--cluster-cidr", cidr });
        }
        let services =
            apiserver::services::ServiceNetworkConfig::parse_cidrs(&self.service_cluster_ip_range).unwrap_or_default();
        for cidr in services {
            ranges.push(crate::ranges::Range { what: "service range", flag: "--service-cluster-ip-range", cidr });
        }
        let mut nodes: Vec<(IpAddr, &str)> = node_ip.into_iter().collect();
        if let Some(ip) = self.advertise_address.filter(|ip| !ip.is_loopback()) {
            nodes.push((ip, "--advertise-address"));
        }
        crate::ranges::check(&ranges, &nodes).map_err(|e| anyhow::anyhow!(e))
    }
}

impl Cli {
    /// Runs the hidden subcommands, which never return. They must run before logging and the
    /// async runtime start: the shim forks, which is only sound in a single-threaded process.
    pub fn run_hidden(&self) {
        match &self.command {
            Command::Shim { dir } => node::sandbox::shim_main(dir),
            Command::Demo { pod_name, tcp, udp } => node::sandbox::demo_main(pod_name, tcp, udp),
            _ => {}
        }
    }

    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Up(args) => run_up(*args, &self.log_format).await,
            Command::Server(args) => {
                let running = apiserver::start(args.config()?).await?;
                let mut components = Supervisor::new();
                if !args.no_controllers {
                    let informers = Informers::new(component::client::connect(Some(&running.kubeconfig)).await?);
                    components.watch_informers(&informers);
                    start_controllers(&mut components, &informers, &args);
                }
                print_server(&running);
                let result = components.run_until(wait_for_shutdown()).await;
                tracing::info!("shutting down");
                running.shutdown();
                Ok(result?)
            }
            Command::Dns(args) => {
                let config = args.config()?;
                let informers = Informers::new(component::client::connect(args.kubeconfig.as_deref()).await?);
                // The DNS is this process's only reader of Services and EndpointSlices.
                dns::feed::trim_for_dns_only(&informers);
                let dns = dns::start(&informers, config).await?;
                println!("Portico DNS on {} (UDP and TCP)", dns.addr);
                let mut components = Supervisor::new();
                components.watch_informers(&informers);
                let result = components.run_until(wait_for_shutdown()).await;
                tracing::info!("shutting down");
                dns.shutdown();
                Ok(result?)
            }
            Command::Controllers(args) => {
                let informers = Informers::new(component::client::connect(args.kubeconfig.as_deref()).await?);
                let mut components = Supervisor::new();
                components.watch_informers(&informers);
                spawn_controllers(&mut components, &informers, &args.controllers);
                let result = components.run_until(wait_for_shutdown()).await;
                tracing::info!("shutting down");
                Ok(result?)
            }
            Command::Agent(args) => {
                node::agent::check_privileges().map_err(|e| anyhow::anyhow!(e))?;
                let data_dir = default_data_dir(&args.data_dir)?;
                let dns = node::agent::files::ClusterDns {
                    nameserver: args.cluster_dns.clone(),
                    domain: args.cluster_domain.clone(),
                };
                let config = args.agent.config(&data_dir, &args.cluster_cidr, &args.service_cluster_ip_range, dns)?;
                let proxy = match args.proxy.no_proxy {
                    true => None,
                    false => Some(args.proxy.options(
                        &config.node_name,
                        config.node_ip,
                        Some(&args.cluster_cidr),
                        &args.service_cluster_ip_range,
                    )?),
                };
                let client = args.api.connect().await?;
                let informers = Informers::new(client);
                // This process reads only its node's pods, as kubelet watches them.
                informers.select::<component::pod::LeanPod>(&format!("spec.nodeName={}", config.node_name));
                let mut components = Supervisor::new();
                components.watch_informers(&informers);
                println!("Portico node agent for node {} ({})", config.node_name, config.node_ip);
                if let Some(opts) = proxy {
                    components.spawn("service proxy", proxy::run(informers.clone(), opts));
                }
                components.spawn("node agent", node::agent::run(informers, config));
                let result = components.run_until(wait_for_shutdown()).await;
                tracing::info!("shutting down");
                Ok(result?)
            }
            Command::Proxy(args) => run_proxy(*args).await,
            Command::Down(args) => run_down(*args).await,
            Command::Node { action, data_dir } => crate::local::node_command(&default_data_dir(&data_dir)?, &action),
            Command::Ingress(args) => run_ingress(*args).await,
            Command::Doctor(args) => crate::doctor::run(*args).await,
            Command::Version => {
                println!("{}", serde_json_pretty(&apiserver::version_info()));
                Ok(())
            }
            Command::Shim { .. } | Command::Demo { .. } => {
                anyhow::bail!("internal subcommand reached the async runtime; main must call run_hidden first")
            }
        }
    }
}

/// `portico up`: the whole cluster on this machine.
async fn run_up(mut args: UpArgs, log_format: &str) -> anyhow::Result<()> {
    let node_range = (args.nodes > 1).then_some(args.nodes_cidr.as_str());
    match args.agent.node_ip {
        Some(ip) => args.server.check_ranges(Some((ip, "--node-ip")), node_range)?,
        None => args.server.check_ranges(None, node_range)?,
    }
    let local = match args.nodes {
        0 => anyhow::bail!("--nodes 0: a cluster needs a node (--no-agent runs none in this process)"),
        1 => None,
        _ => Some(local_nodes(&mut args).await?),
    };
    // The DNS addresses are bound first, so a taken port fails before anything runs.
    let dns = match args.dns.no_dns {
        true => None,
        false => {
            let node_ip = match &local {
                Some(layout) => Some(IpAddr::V4(layout.host_ip())),
                None => args
                    .agent
                    .node_ip
                    .or(args.server.advertise_address.filter(|ip| !ip.is_loopback()))
                    .or_else(first_interface_ip),
            };
            Some(bind_dns(&args.dns, node_ip).await?)
        }
    };
    let running = apiserver::start(args.server.config()?).await?;
    let informers = Informers::new(component::client::connect(Some(&running.kubeconfig)).await?);
    let mut components = Supervisor::new();
    components.watch_informers(&informers);
    start_controllers(&mut components, &informers, &args.server);
    print_server(&running);
    let dns = match dns {
        Some((bound, config)) => Some(start_dns(bound, config, &args.server, &informers).await?),
        None => None,
    };
    let mut node_config = None;
    let mut proxy_runs = false;
    let mut waiting = vec![];
    if let Some(layout) = &local {
        waiting = start_local_nodes(&args, layout, log_format, &informers, &mut components)?;
    } else if !args.no_agent {
        match node::agent::check_privileges() {
            Ok(()) => {
                let data_dir = default_data_dir(&args.server.data_dir)?;
                let dns = node::agent::files::ClusterDns {
                    nameserver: cluster_dns_ip(&args.server)?.to_string(),
                    domain: args.dns.cluster_domain.clone(),
                };
                let server = &args.server;
                let mut config = args.agent.config(
                    &data_dir,
                    &server.controllers.cluster_cidr,
                    &server.service_cluster_ip_range,
                    dns,
                )?;
                if args.agent.node_ip.is_none()
                    && let Some(ip) = server.advertise_address
                {
                    config.node_ip = ip;
                }
                if !args.proxy.no_proxy {
                    let opts = args.proxy.options(
                        &config.node_name,
                        config.node_ip,
                        Some(&server.controllers.cluster_cidr),
                        &server.service_cluster_ip_range,
                    )?;
                    components.spawn("service proxy", proxy::run(informers.clone(), opts));
                }
                spawn_ingress(&args, config.node_ip, &informers, &mut components);
                node_config = Some(config.clone());
                proxy_runs = !args.proxy.no_proxy;
                waiting = node_components(&args, &config);
                components.spawn("node agent", node::agent::run(informers.clone(), config));
            }
            Err(why) => {
                tracing::warn!("no node agent, so no pod will run (and no proxy or ingress): {why}")
            }
        }
    }
    tokio::spawn(progress::report(informers.clone(), waiting, running.kubeconfig.clone()));
    let result = components.run_until(wait_for_shutdown()).await;
    tracing::info!("shutting down");
    // The nodes go with the process: their pods stop and everything set up in the kernel is
    // removed; the objects stay in the store for the next `portico up`.
    if let Some(config) = node_config {
        tracing::info!(node = %config.node_name, "stopping the pods and removing the pod network");
        for problem in node::agent::teardown(&config).await {
            tracing::warn!("cleaning up the node: {problem}");
        }
    }
    if let Some(layout) = &local {
        tracing::info!(nodes = layout.nodes.len(), "stopping the nodes' agents and pods and removing the nodes");
        for problem in layout.remove().await {
            tracing::warn!("cleaning up the nodes: {problem}");
        }
    }
    if proxy_runs && let Err(e) = proxy::plane::cleanup() {
        tracing::warn!("removing the service proxy's rules: {e}");
    }
    if let Some(dns) = dns {
        dns.shutdown();
    }
    running.shutdown();
    Ok(result?)
}

/// `portico up --nodes N`, before anything runs: the nodes' network exists (what an earlier
/// run of another shape left is removed first), and the API server is reached and named on
/// the host's address in it.
async fn local_nodes(args: &mut UpArgs) -> anyhow::Result<crate::local::Layout> {
    if args.agent.node_name.is_some() || args.agent.node_ip.is_some() {
        anyhow::bail!(
            "--node-name and --node-ip name the one node `portico up` runs in its own process; with --nodes the nodes are node-1 to node-N"
        );
    }
    if args.no_agent {
        anyhow::bail!("--no-agent runs no node, --nodes several: choose one");
    }
    node::agent::check_privileges().map_err(|why| anyhow::anyhow!("portico up --nodes needs root: {why}"))?;
    let data_dir = default_data_dir(&args.server.data_dir)?;
    let layout = crate::local::Layout::new(args.nodes, &args.nodes_cidr, &args.agent.netns_prefix, &data_dir)?;
    if let Some((old, _)) = crate::local::Layout::recorded(&data_dir)?
        && (old.nodes.len() != layout.nodes.len() || old.cidr != layout.cidr || old.netns_prefix != layout.netns_prefix)
    {
        println!("removing the {} nodes an earlier `portico up --nodes` left", old.nodes.len());
        for problem in old.remove().await {
            tracing::warn!("cleaning up the earlier nodes: {problem}");
        }
    }
    layout.check_free()?;
    layout.create()?;
    let host = IpAddr::V4(layout.host_ip());
    args.server.advertise_address.get_or_insert(host);
    args.server.tls_san.push(host.to_string());
    Ok(layout)
}

/// Starts (or keeps) every node's agent, the host's routes to the nodes, and the ingress
/// controller on the host; returns what the progress report waits for.
fn start_local_nodes(
    args: &UpArgs,
    layout: &crate::local::Layout,
    log_format: &str,
    informers: &Informers,
    components: &mut Supervisor,
) -> anyhow::Result<Vec<progress::Component>> {
    let launch = crate::local::AgentLaunch {
        api_port: args.server.bind.port(),
        cluster_cidr: args.server.controllers.cluster_cidr.clone(),
        service_cluster_ip_range: args.server.service_cluster_ip_range.clone(),
        cluster_dns: cluster_dns_ip(&args.server)?.to_string(),
        cluster_domain: args.dns.cluster_domain.clone(),
        proxy_mode: args.proxy.proxy_mode.clone(),
        no_proxy: args.proxy.no_proxy,
        log_format: log_format.to_owned(),
    };
    let service_cidrs = apiserver::services::ServiceNetworkConfig::parse_cidrs(&args.server.service_cluster_ip_range)
        .map_err(|e| anyhow::anyhow!("--service-cluster-ip-range: {e}"))?;
    layout.start_agents(&launch)?;
    tokio::spawn(crate::local::follow_routes(informers.clone(), layout.clone(), service_cidrs));
    spawn_ingress(args, IpAddr::V4(layout.host_ip()), informers, components);
    let mut waiting = vec![];
    for n in &layout.nodes {
        waiting.push(progress::Component {
            name: format!("{} agent", n.name),
            ready: progress::Ready::Node(n.name.clone()),
            detail: format!("node {} ({}) Ready, log {}", n.name, n.ip, n.state_dir.join("agent.log").display()),
        });
        if !args.proxy.no_proxy {
            waiting.push(progress::Component {
                name: format!("{} proxy", n.name),
                ready: progress::Ready::Http(std::net::SocketAddr::from((n.ip, 10256)), "/healthz"),
                detail: format!("{} rules synced", args.proxy.proxy_mode),
            });
        }
    }
    if !args.ingress.no_ingress {
        waiting.push(ingress_component(args));
    }
    Ok(waiting)
}

fn spawn_ingress(args: &UpArgs, node_ip: IpAddr, informers: &Informers, components: &mut Supervisor) {
    if args.ingress.no_ingress {
        return;
    }
    let client = informers.client().clone();
    let class = args.ingress.ingress_class.clone();
    tokio::spawn(async move { ingress::run::ensure_default_class(&client, &class).await });
    let opts = args.ingress.options(Some(node_ip));
    components.spawn("ingress controller", ingress_in_up(informers.clone(), opts));
}

/// The ingress controller of `portico up`: a web server already holding :80 or :443 on this
/// machine should not stop the whole cluster, so a port that cannot be had is reported and the
/// rest runs on (`portico ingress` alone fails instead).
async fn ingress_in_up(informers: Informers, opts: ingress::Options) -> Result<(), ingress::Error> {
    match ingress::run(informers, opts).await {
        Err(ingress::Error::Listen { addr, source }) => {
            tracing::warn!(
                "the ingress controller cannot listen on {addr} ({source}), so no Ingress is served; \
                 free the port, or choose others with --ingress-http-bind / --ingress-https-bind (or --no-ingress)"
            );
            std::future::pending().await
        }
        other => other,
    }
}

/// What `portico up`'s progress report waits for on its node.
fn node_components(args: &UpArgs, config: &node::agent::Config) -> Vec<progress::Component> {
    let mut waiting = vec![progress::Component {
        name: "node agent".into(),
        ready: progress::Ready::Node(config.node_name.clone()),
        detail: format!("node {} ({}) Ready", config.node_name, config.node_ip),
    }];
    if !args.proxy.no_proxy {
        waiting.push(progress::Component {
            name: "service proxy".into(),
            ready: progress::Ready::Http(progress::local(args.proxy.healthz_bind_address), "/healthz"),
            detail: format!("{} rules synced", args.proxy.proxy_mode),
        });
    }
    if !args.ingress.no_ingress {
        waiting.push(ingress_component(args));
    }
    waiting
}

fn ingress_component(args: &UpArgs) -> progress::Component {
    progress::Component {
        name: "ingress controller".into(),
        ready: progress::Ready::Http(progress::local(args.ingress.ingress_metrics_bind), "/healthz"),
        detail: format!(
            "HTTP {}, HTTPS {}, IngressClass {}",
            args.ingress.ingress_http_bind, args.ingress.ingress_https_bind, args.ingress.ingress_class
        ),
    }
}

/// `portico down`: what a crashed `portico up` left on this machine goes.
async fn run_down(args: DownArgs) -> anyhow::Result<()> {
    node::agent::check_privileges().map_err(|why| anyhow::anyhow!("portico down needs root: {why}"))?;
    let data_dir = default_data_dir(&args.data_dir)?;
    let dns = node::agent::files::ClusterDns { nameserver: String::new(), domain: String::new() };
    let mut agent = args.agent.clone();
    // Nothing here talks to the network: any address does.
    agent.node_ip = agent.node_ip.or(Some(IpAddr::from([127, 0, 0, 1])));
    agent.node_name = agent.node_name.or(Some("down".into()));
    let config = agent.config(&data_dir, "10.244.0.0/16", "10.96.0.0/12", dns)?;
    let mut problems = vec![];
    // A multi-node run's nodes first: their pods' namespaces share the single node's prefix.
    if let Some((layout, _)) = crate::local::Layout::recorded(&data_dir)? {
        problems.extend(layout.remove().await);
        println!("removed the {} nodes of the local cluster", layout.nodes.len());
    }
    problems.extend(node::agent::teardown(&config).await);
    if let Err(e) = proxy::plane::cleanup() {
        problems.push(format!("removing the service proxy's rules: {e}"));
    }
    if problems.is_empty() {
        println!("removed the pods, the pod network and the proxy's rules of {}", data_dir.display());
        Ok(())
    } else {
        anyhow::bail!("some of what portico up left could not be removed:\n  {}", problems.join("\n  "))
    }
}

/// `portico ingress`: the ingress controller alone.
async fn run_ingress(args: IngressCommandArgs) -> anyhow::Result<()> {
    let informers = Informers::new(args.api.connect().await?);
    let mut components = Supervisor::new();
    components.watch_informers(&informers);
    let opts = args.ingress.options(None);
    println!("Portico ingress controller for IngressClass {}", opts.class);
    components.spawn("ingress controller", ingress::run(informers, opts));
    let result = components.run_until(wait_for_shutdown()).await;
    tracing::info!("shutting down");
    Ok(result?)
}

/// `portico proxy`: the service proxy alone.
async fn run_proxy(args: ProxyCommandArgs) -> anyhow::Result<()> {
    if node::agent::check_privileges().is_err() {
        anyhow::bail!("the service proxy needs root (CAP_NET_ADMIN, to program nftables)");
    }
    if args.cleanup {
        proxy::plane::cleanup().map_err(|e| anyhow::anyhow!(e))?;
        println!("removed the service proxy's rules");
        return Ok(());
    }
    // The mode is checked before anything connects (ipvs, typos).
    let _: proxy::Mode = args.proxy.proxy_mode.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let client = args.api.connect().await?;
    let node_name = match &args.hostname_override {
        Some(n) => n.clone(),
        None => hostname()?,
    };
    let node_ip = match args.node_ip {
        Some(ip) => ip,
        None => node_internal_ip(&client, &node_name).await?,
    };
    let opts = args.proxy.options(&node_name, node_ip, args.cluster_cidr.as_deref(), &args.service_cluster_ip_range)?;
    let informers = Informers::new(client);
    let mut components = Supervisor::new();
    components.watch_informers(&informers);
    println!("Portico service proxy ({}) for node {node_name} ({node_ip})", args.proxy.proxy_mode);
    components.spawn("service proxy", proxy::run(informers, opts));
    let result = components.run_until(wait_for_shutdown()).await;
    tracing::info!("shutting down");
    Ok(result?)
}

/// The Node's InternalIP (kube-proxy's default for its node address).
async fn node_internal_ip(client: &kube::Client, node: &str) -> anyhow::Result<std::net::IpAddr> {
    let api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let n = api
        .get(node)
        .await
        .map_err(|e| anyhow::anyhow!("reading Node {node} for its address: {e} (pass --node-ip)"))?;
    n.status
        .and_then(|s| s.addresses)
        .into_iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .and_then(|a| a.address.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("Node {node} has no InternalIP; pass --node-ip"))
}

/// The controllers of `portico server` and `up`, unless `--no-controllers`.
fn start_controllers(components: &mut Supervisor, informers: &Informers, args: &ServerArgs) {
    if !args.no_controllers {
        spawn_controllers(components, informers, &args.controllers);
    }
}

/// The controllers, as components of this process on its shared informers.
fn spawn_controllers(components: &mut Supervisor, informers: &Informers, args: &ControllerArgs) {
    let opts = controllers::run::Options { max_endpoints_per_slice: args.max_endpoints_per_slice };
    components.spawn("endpoints controllers", controllers::run::run_service_endpoints(informers.clone(), opts));
    components.spawn("workload controllers", controllers::run::workloads::run_workloads(informers.clone()));
    let node_opts = controllers::run::nodes::NodeOptions {
        cluster_cidr: args.cluster_cidr.clone(),
        node_monitor_grace: Duration::from_secs(args.node_monitor_grace_period_seconds),
        lb_pool: args.loadbalancer_ip_pool.clone(),
    };
    components.spawn("node controllers", controllers::run::nodes::run_nodes(informers.clone(), node_opts));
}

fn print_server(running: &apiserver::Running) {
    println!("Portico API server on https://{}", running.addr);
    println!("kubectl --kubeconfig {} get namespaces", running.kubeconfig.display());
}

/// The cluster DNS's Service address: the tenth of the service range (10.96.0.10 by default),
/// as kubeadm sets it up.
fn cluster_dns_ip(server: &ServerArgs) -> anyhow::Result<std::net::IpAddr> {
    let cidrs = apiserver::services::ServiceNetworkConfig::parse_cidrs(&server.service_cluster_ip_range)
        .map_err(|e| anyhow::anyhow!("--service-cluster-ip-range: {e}"))?;
    cidrs[0].nth(10).ok_or_else(|| {
        anyhow::anyhow!("--service-cluster-ip-range {} has no tenth address for the cluster DNS", cidrs[0])
    })
}

/// Binds the sockets of `portico up`'s cluster DNS.
/// Binds the cluster DNS of `portico up`: where `--dns-listen` says, or else on the node's
/// address, port 53, falling back to 10053 when that port is taken there (a local resolver on
/// the wildcard address) or needs root. Binding the node's address rather than the wildcard
/// leaves 127.0.0.53 to systemd-resolved, and makes UDP answers leave from the address the
/// proxy sent the query to.
async fn bind_dns(args: &UpDnsArgs, node_ip: Option<IpAddr>) -> anyhow::Result<(dns::Bound, dns::Config)> {
    let mut config = args.to_dns_args().config()?;
    let candidates: Vec<SocketAddr> = match args.dns_listen {
        Some(given) => vec![given],
        None => {
            let ip = node_ip.unwrap_or(IpAddr::from([127, 0, 0, 1]));
            vec![SocketAddr::new(ip, 53), SocketAddr::new(ip, 10053)]
        }
    };
    let advice = "choose other addresses with --dns-listen, --dns-health, --dns-ready and --dns-metrics, \
                  or run without DNS with --no-dns";
    let mut i = 0;
    while let Some(addr) = candidates.get(i) {
        config.listen = *addr;
        match dns::bind(config.clone()).await {
            // A taken health or metrics port (8080 often is) costs those endpoints, not the DNS.
            Err(e @ dns::Error::Bind { what: "HTTP", .. })
                if config.health.or(config.ready).or(config.metrics).is_some() =>
            {
                tracing::warn!(
                    "{e}: the cluster DNS runs without /health, /ready and /metrics \
                     (choose other addresses with --dns-health, --dns-ready and --dns-metrics)"
                );
                (config.health, config.ready, config.metrics) = (None, None, None);
            }
            Ok(bound) => {
                if i > 0 {
                    tracing::warn!(
                        "port 53 on {} cannot be had, so the cluster DNS listens on {addr}; pods and this machine reach it as the kube-dns Service",
                        addr.ip()
                    );
                }
                return Ok((bound, config));
            }
            Err(e @ dns::Error::Bind { what: "UDP" | "TCP", .. }) if i + 1 < candidates.len() => {
                tracing::info!("{e}; trying the next address");
                i += 1;
            }
            Err(e) => return Err(anyhow::anyhow!("{e} ({advice})")),
        }
    }
    Err(anyhow::anyhow!("no address for the cluster DNS ({advice})"))
}

/// Starts the cluster DNS of `portico up` behind the kube-dns Service at the tenth address of
/// the service range (10.96.0.10 by default), as kubeadm sets it up.
async fn start_dns(
    bound: dns::Bound,
    config: dns::Config,
    server: &ServerArgs,
    informers: &Informers,
) -> anyhow::Result<dns::Running> {
    let client = informers.client().clone();
    let dns = bound.start(informers);
    let cluster_ip = cluster_dns_ip(server)?;
    let endpoint = server.advertise_address.filter(|_| dns.addr.ip().is_unspecified()).or(Some(dns.addr.ip()));
    let metrics_port = config.metrics.map(|m| m.port());
    if let Err(e) = dns::publish::ensure_dns_service(&client, cluster_ip, endpoint, dns.addr.port(), metrics_port).await
    {
        tracing::warn!(error = %e, "could not write the kube-dns Service");
    }
    println!("Portico DNS on {} (kube-dns Service {cluster_ip})", dns.addr);
    Ok(dns)
}

fn serde_json_pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

async fn wait_for_shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// clap checks a command's arguments only when it is built: a duplicate flag between the
    /// flattened argument groups of `up` would otherwise panic at the first `portico up`.
    #[test]
    fn every_subcommand_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn up_agent_and_hidden_commands_parse() {
        let cli =
            Cli::try_parse_from(["portico", "up", "--node-name", "n1", "--netns-prefix", "x-", "--no-agent"]).unwrap();
        assert!(matches!(cli.command, Command::Up(ref a) if a.no_agent && a.agent.node_name.as_deref() == Some("n1")));
        let cli =
            Cli::try_parse_from(["portico", "agent", "--server", "https://192.0.2.1:6443", "--token", "t"]).unwrap();
        assert!(
            matches!(cli.command, Command::Agent(ref a) if a.cluster_dns == "10.96.0.10" && a.agent.masquerade_egress)
        );
        assert!(
            Cli::try_parse_from(["portico", "agent", "--server", "https://192.0.2.1:6443"]).is_err(),
            "--server needs --token"
        );
    }
}

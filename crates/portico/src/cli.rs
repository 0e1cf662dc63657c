//! Command-line interface: configuration parsing and the subcommands.

use crate::dns_args::{DnsArgs, UpDnsArgs};
use clap::{Args, Parser, Subcommand};
use component::{Informers, Supervisor};
use std::net::SocketAddr;
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
    Up(UpArgs),
    /// Run the API server (with the controllers) alone.
    Server(ServerArgs),
    /// Run the cluster DNS against a Kubernetes API (Portico's or any cluster's).
    Dns(DnsArgs),
    /// Run the controllers alone against a Kubernetes API (kube-controller-manager's jobs).
    Controllers(ControllersArgs),
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

impl ServerArgs {
    fn config(&self) -> anyhow::Result<apiserver::Config> {
        let data_dir = match &self.data_dir {
            Some(d) => d.clone(),
            None => dirs::data_dir()
                .ok_or_else(|| anyhow::anyhow!("no user data directory; pass --data-dir"))?
                .join("portico"),
        };
        let mut config = apiserver::Config::new(data_dir);
        config.bind = self.bind;
        config.advertise = self.advertise_address;
        config.extra_sans = self.tls_san.clone();
        config.watch_history = self.watch_history;
        config.store_cache_bytes = self.store_cache_mb << 20;
        config.bookmark_interval = Duration::from_secs(self.bookmark_interval_seconds.max(1));
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
            Command::Up(args) => {
                // The DNS addresses are bound first, so a taken port fails before anything runs.
                let dns = match args.dns.no_dns {
                    true => None,
                    false => Some(bind_dns(&args.dns).await?),
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
                let result = components.run_until(wait_for_shutdown()).await;
                tracing::info!("shutting down");
                if let Some(dns) = dns {
                    dns.shutdown();
                }
                running.shutdown();
                Ok(result?)
            }
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

/// Binds the sockets of `portico up`'s cluster DNS.
async fn bind_dns(args: &UpDnsArgs) -> anyhow::Result<(dns::Bound, dns::Config)> {
    let config = args.to_dns_args().config()?;
    let bound = dns::bind(config.clone()).await.map_err(|e| {
        anyhow::anyhow!(
            "{e} (choose other addresses with --dns-listen, --dns-health, --dns-ready and --dns-metrics, \
             or run without DNS with --no-dns)"
        )
    })?;
    Ok((bound, config))
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
    let cidrs = apiserver::services::ServiceNetworkConfig::parse_cidrs(&server.service_cluster_ip_range)
        .map_err(|e| anyhow::anyhow!("--service-cluster-ip-range: {e}"))?;
    let cluster_ip = cidrs[0].nth(10).ok_or_else(|| {
        anyhow::anyhow!("--service-cluster-ip-range {} has no tenth address for the cluster DNS", cidrs[0])
    })?;
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

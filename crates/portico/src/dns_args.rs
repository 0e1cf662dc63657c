//! Flags of `portico dns` (CoreDNS's kubernetes, forward, cache, health, ready and prometheus
//! options) and the smaller set `portico up` takes for its built-in DNS.

use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct DnsArgs {
    /// kubeconfig of the cluster to serve (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// UDP and TCP address to answer on.
    #[arg(long, default_value = "0.0.0.0:53")]
    pub listen: SocketAddr,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// TTL of answers.
    #[arg(long, default_value_t = 5)]
    pub ttl: u32,
    /// TTL of NXDOMAIN / NODATA (the SOA minimum; default: --ttl, as CoreDNS).
    #[arg(long)]
    pub negative_ttl: Option<u32>,
    /// Pod records: disabled, insecure (kubeadm's default) or verified.
    #[arg(long, default_value = "insecure")]
    pub pods: dns::PodMode,
    /// Answer only for these namespaces (default: all).
    #[arg(long, value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Upstream resolvers (ip or ip:port), instead of the nameservers of --resolv-conf.
    #[arg(long, value_delimiter = ',')]
    pub upstream: Vec<String>,
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// The Service this server sits behind (namespace/name), whose cluster IP NS records name.
    #[arg(long, default_value = "kube-system/kube-dns")]
    pub dns_service: String,
    /// UDP sockets (one thread each) sharing the port (default: one per core).
    #[arg(long)]
    pub udp_sockets: Option<usize>,
    /// Forwarded queries in flight at most; more are REFUSED.
    #[arg(long, default_value_t = 1000)]
    pub max_concurrent: usize,
    /// Forwarded answers kept in the cache.
    #[arg(long, default_value_t = 10_000)]
    pub cache_size: usize,
    /// /health address ("" to disable).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub health: String,
    /// /ready address ("" to disable).
    #[arg(long, default_value = "0.0.0.0:8181")]
    pub ready: String,
    /// /metrics address ("" to disable).
    #[arg(long, default_value = "0.0.0.0:9153")]
    pub metrics: String,
}

/// The DNS flags of `portico up`.
#[derive(Args, Debug, Clone)]
pub struct UpDnsArgs {
    /// Do not run the cluster DNS.
    #[arg(long)]
    pub no_dns: bool,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// UDP and TCP address of the cluster DNS (default: the node's address, port 53, or port
    /// 10053 when 53 is taken there, as by a local resolver). Pods and this machine reach it as
    /// the kube-dns Service, 10.96.0.10, whatever it listens on.
    #[arg(long)]
    pub dns_listen: Option<SocketAddr>,
    /// Upstream resolvers for other names (default: the nameservers of /etc/resolv.conf).
    #[arg(long, value_delimiter = ',')]
    pub dns_upstream: Vec<String>,
    /// DNS /health address ("" to disable).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub dns_health: String,
    /// DNS /ready address ("" to disable).
    #[arg(long, default_value = "0.0.0.0:8181")]
    pub dns_ready: String,
    /// DNS /metrics address ("" to disable).
    #[arg(long, default_value = "0.0.0.0:9153")]
    pub dns_metrics: String,
}

impl UpDnsArgs {
    /// The same settings as `portico dns` with its defaults for everything `up` does not expose
    /// (`up` connects the DNS to its own API server itself).
    pub fn to_dns_args(&self) -> DnsArgs {
        DnsArgs {
            kubeconfig: None,
            listen: self.dns_listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 53))),
            cluster_domain: self.cluster_domain.clone(),
            ttl: 5,
            negative_ttl: None,
            pods: dns::PodMode::Insecure,
            namespaces: vec![],
            upstream: self.dns_upstream.clone(),
            resolv_conf: "/etc/resolv.conf".into(),
            dns_service: "kube-system/kube-dns".into(),
            udp_sockets: None,
            max_concurrent: 1000,
            cache_size: 10_000,
            health: self.dns_health.clone(),
            ready: self.dns_ready.clone(),
            metrics: self.dns_metrics.clone(),
        }
    }
}

fn optional_addr(flag: &str, s: &str) -> anyhow::Result<Option<SocketAddr>> {
    if s.is_empty() {
        return Ok(None);
    }
    Ok(Some(s.parse().map_err(|e| anyhow::anyhow!("--{flag} {s:?}: {e}"))?))
}

fn upstream_addr(s: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip: IpAddr = s.parse().map_err(|e| anyhow::anyhow!("--upstream {s:?}: {e}"))?;
    Ok(SocketAddr::new(ip, 53))
}

impl DnsArgs {
    pub fn config(&self) -> anyhow::Result<dns::Config> {
        let mut zone =
            dns::ZoneConfig::new(&self.cluster_domain).map_err(|e| anyhow::anyhow!("--cluster-domain: {e}"))?;
        zone.ttl = self.ttl;
        zone.negative_ttl = self.negative_ttl;
        zone.pods = self.pods;
        if !self.namespaces.is_empty() {
            zone.namespaces = Some(self.namespaces.iter().cloned().collect());
        }
        zone.dns_service = match self.dns_service.split_once('/') {
            Some((ns, name)) => Some((ns.to_owned(), name.to_owned())),
            None if self.dns_service.is_empty() => None,
            None => anyhow::bail!("--dns-service must be namespace/name"),
        };
        let upstreams = if self.upstream.is_empty() {
            let text = std::fs::read_to_string(&self.resolv_conf).unwrap_or_default();
            dns::server::forward::resolv_conf_upstreams(&text)
        } else {
            self.upstream.iter().map(|u| upstream_addr(u)).collect::<anyhow::Result<_>>()?
        };
        let mut config = dns::Config::new(self.listen, zone, upstreams);
        if let Some(n) = self.udp_sockets {
            config.udp_sockets = n.max(1);
        }
        config.max_concurrent = self.max_concurrent;
        config.cache_size = self.cache_size;
        config.health = optional_addr("health", &self.health)?;
        config.ready = optional_addr("ready", &self.ready)?;
        config.metrics = optional_addr("metrics", &self.metrics)?;
        Ok(config)
    }
}

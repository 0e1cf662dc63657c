//! Flags of `portico proxy` (kube-proxy's names where they mean the same) and the smaller set
//! `portico up` and `portico agent` take for the proxy they run.

use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The proxy flags every command that runs a proxy takes.
#[derive(Args, Debug, Clone)]
pub struct ProxyArgs {
    /// Data plane: nftables (default), iptables or userspace. (ipvs is not available on this
    /// kernel.)
    #[arg(long, default_value = "nftables")]
    pub proxy_mode: String,
    /// Run no service proxy (ClusterIPs reach nothing).
    #[arg(long)]
    pub no_proxy: bool,
    /// Addresses NodePorts answer on (default: the node's IP). Never 127.0.0.1.
    #[arg(long, value_delimiter = ',')]
    pub nodeport_addresses: Vec<IpAddr>,
    /// Shortest time between two syncs; changes arriving meanwhile are batched.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub min_sync_period: Duration,
    /// Longest time between two syncs.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub sync_period: Duration,
    /// `/healthz` and `/livez` of the proxy.
    #[arg(long, default_value = "0.0.0.0:10256")]
    pub healthz_bind_address: SocketAddr,
    /// `/metrics` of the proxy.
    #[arg(long, default_value = "127.0.0.1:10249")]
    pub metrics_bind_address: SocketAddr,
    /// Interfaces that answer ARP/NDP for load balancer IPs (default: the one holding the
    /// node's IP).
    #[arg(long, value_delimiter = ',')]
    pub lb_interfaces: Vec<String>,
    /// Announce no load balancer IPs on the local network (MetalLB's layer-2 mode).
    #[arg(long)]
    pub no_lb_announce: bool,
    /// How long the userspace proxy keeps an idle UDP session.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    pub udp_timeout: Duration,
}

/// `portico proxy`: the proxy alone, against any Kubernetes API.
#[derive(Args, Debug, Clone)]
pub struct ProxyCommandArgs {
    #[command(flatten)]
    pub api: crate::cli::ApiArgs,
    /// The node this proxy runs on (default: this machine's hostname).
    #[arg(long)]
    pub hostname_override: Option<String>,
    /// The node's IP (default: the Node's InternalIP).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// The pod network: traffic from outside it to a ClusterIP is masqueraded.
    #[arg(long)]
    pub cluster_cidr: Option<String>,
    /// The Service ClusterIP range(s); addresses in it that no Service has are dropped.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: String,
    /// Remove everything the proxy installed and exit.
    #[arg(long)]
    pub cleanup: bool,
    #[command(flatten)]
    pub proxy: ProxyArgs,
}

/// "250ms", "1s", "2m", "1h" or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map(|i| s.split_at(i)).unwrap_or((s, "s"));
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
    };
    Ok(Duration::from_secs_f64(secs))
}

impl ProxyArgs {
    /// The proxy's options for node `node_name` at `node_ip`.
    pub fn options(
        &self,
        node_name: &str,
        node_ip: IpAddr,
        cluster_cidr: Option<&str>,
        service_cidrs: &str,
    ) -> anyhow::Result<proxy::Options> {
        let mode: proxy::Mode = self.proxy_mode.parse().map_err(|e: String| anyhow::anyhow!(e))?;
        let cluster_cidr =
            cluster_cidr.map(|c| c.parse().map_err(|e| anyhow::anyhow!("--cluster-cidr: {e}"))).transpose()?;
        let service_cidrs = service_cidrs
            .split(',')
            .map(|c| c.trim().parse().map_err(|e| anyhow::anyhow!("--service-cluster-ip-range: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let nodeport_addresses =
            if self.nodeport_addresses.is_empty() { vec![node_ip] } else { self.nodeport_addresses.clone() };
        if nodeport_addresses.iter().any(|ip| ip.is_loopback()) {
            anyhow::bail!("--nodeport-addresses: loopback addresses cannot serve NodePorts");
        }
        Ok(proxy::Options {
            mode,
            node_name: node_name.to_owned(),
            nodeport_addresses,
            cluster_cidr,
            service_cidrs,
            min_sync_period: self.min_sync_period,
            sync_period: self.sync_period,
            full_sync_period: Duration::from_secs(3600),
            healthz_bind: Some(self.healthz_bind_address),
            metrics_bind: Some(self.metrics_bind_address),
            health_check_address: IpAddr::from([0, 0, 0, 0]),
            udp_idle_timeout: self.udp_timeout,
            announce: (!self.no_lb_announce).then(|| proxy::announce::Options {
                node_name: node_name.to_owned(),
                node_ip,
                interfaces: self.lb_interfaces.clone(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_kube_proxy_flags() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("3 parsecs").is_err());
    }
}

//! Cluster DNS for Portico: the Kubernetes DNS-Based Service Discovery specification (schema
//! 1.1.0) with CoreDNS's kubernetes-plugin behaviour, served from an in-memory zone fed by
//! watches on the API, and forwarding with a cache for every other name.
//!
//! Rooms: `wire` (the DNS message format), `zone` (the zone data and the pure answer
//! function), `feed` (watches → zone), `server` (sockets, cache, forwarder, metrics, health).

pub mod feed;
pub mod publish;
pub mod server;
pub mod wire;
pub mod zone;

use server::http::Endpoint;
use server::{Shared, cache::Cache, forward::Forwarder, metrics::Metrics};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

pub use zone::{PodMode, ZoneConfig};

#[derive(Debug, Clone)]
pub struct Config {
    /// UDP and TCP address of the DNS service (CoreDNS listens on :53).
    pub listen: SocketAddr,
    /// UDP sockets (and threads) sharing the port with SO_REUSEPORT.
    pub udp_sockets: usize,
    pub zone: ZoneConfig,
    pub upstreams: Vec<SocketAddr>,
    /// Forwarded queries in flight at most (REFUSED past it).
    pub max_concurrent: usize,
    pub cache_size: usize,
    pub forward_timeout: Duration,
    pub health: Option<SocketAddr>,
    pub ready: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
}

impl Config {
    pub fn new(listen: SocketAddr, zone: ZoneConfig, upstreams: Vec<SocketAddr>) -> Config {
        Config {
            listen,
            udp_sockets: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            zone,
            upstreams,
            max_concurrent: 1000,
            cache_size: 10_000,
            forward_timeout: Duration::from_secs(2),
            health: None,
            ready: None,
            metrics: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen for DNS {what} on {addr}: {source}")]
    Bind { what: &'static str, addr: SocketAddr, source: std::io::Error },
}

/// A running DNS server.
pub struct Running {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Binds every socket (so a bad address fails here, before anything runs), then starts the
/// watches, the UDP threads and the TCP and HTTP tasks.
pub async fn start(client: kube::Client, mut config: Config) -> Result<Running, Error> {
    let bind_err = |what, addr| move |source| Error::Bind { what, addr, source };
    let sockets = server::udp::bind(config.listen, config.udp_sockets).map_err(bind_err("UDP", config.listen))?;
    let addr = sockets[0].local_addr().map_err(bind_err("UDP", config.listen))?;
    let tcp = TcpListener::bind(addr).await.map_err(bind_err("TCP", addr))?;

    let mut http: BTreeMap<SocketAddr, Vec<Endpoint>> = BTreeMap::new();
    for (a, e) in
        [(config.health, Endpoint::Health), (config.ready, Endpoint::Ready), (config.metrics, Endpoint::Metrics)]
    {
        if let Some(a) = a {
            http.entry(a).or_default().push(e);
        }
    }
    let mut listeners = Vec::new();
    for (a, endpoints) in http {
        listeners.push((TcpListener::bind(a).await.map_err(bind_err("HTTP", a))?, endpoints));
    }

    if config.zone.local_ips.is_empty() && !addr.ip().is_unspecified() {
        config.zone.local_ips.push(addr.ip());
    }
    let watch_pods = config.zone.pods == PodMode::Verified;
    let forwarder = Forwarder::new(config.upstreams.clone(), addr, config.max_concurrent, config.forward_timeout);
    let metrics = Metrics::new(format!("dns://{addr}"), &forwarder.upstream_addrs());
    let shared = Shared::new(config.zone, Cache::new(config.cache_size), forwarder, metrics);
    feed::spawn(client, shared.clone(), watch_pods);

    let stop = Arc::new(AtomicBool::new(false));
    server::udp::spawn(sockets, shared.clone(), stop.clone());
    let mut tasks = vec![tokio::spawn(server::tcp::serve(tcp, shared.clone()))];
    for (listener, endpoints) in listeners {
        tasks.push(tokio::spawn(server::http::serve(listener, shared.clone(), endpoints)));
    }
    tracing::info!(%addr, upstreams = ?shared.forwarder.upstream_addrs(), zone = %shared.config.zone, "cluster DNS serving");
    Ok(Running { addr, shared, stop, tasks })
}

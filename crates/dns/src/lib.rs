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

/// Sockets bound and not yet served: binding first lets a caller fail on a taken address
/// before it starts anything else.
pub struct Bound {
    config: Config,
    addr: SocketAddr,
    udp: Vec<std::net::UdpSocket>,
    tcp: TcpListener,
    http: Vec<(TcpListener, Vec<Endpoint>)>,
}

/// Binds the UDP sockets, the TCP listener and the HTTP endpoints of `config`.
pub async fn bind(config: Config) -> Result<Bound, Error> {
    let bind_err = |what, addr| move |source| Error::Bind { what, addr, source };
    let udp = server::udp::bind(config.listen, config.udp_sockets).map_err(bind_err("UDP", config.listen))?;
    let addr = udp[0].local_addr().map_err(bind_err("UDP", config.listen))?;
    let tcp = TcpListener::bind(addr).await.map_err(bind_err("TCP", addr))?;
    let mut by_addr: BTreeMap<SocketAddr, Vec<Endpoint>> = BTreeMap::new();
    for (a, e) in
        [(config.health, Endpoint::Health), (config.ready, Endpoint::Ready), (config.metrics, Endpoint::Metrics)]
    {
        if let Some(a) = a {
            by_addr.entry(a).or_default().push(e);
        }
    }
    let mut http = Vec::new();
    for (a, endpoints) in by_addr {
        http.push((TcpListener::bind(a).await.map_err(bind_err("HTTP", a))?, endpoints));
    }
    Ok(Bound { config, addr, udp, tcp, http })
}

impl Bound {
    /// The UDP and TCP address bound (with the port chosen, when the config said 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts following the informers, the UDP threads and the TCP and HTTP tasks.
    pub fn start(self, informers: &component::Informers) -> Running {
        let Bound { mut config, addr, udp, tcp, http } = self;
        if config.zone.local_ips.is_empty() && !addr.ip().is_unspecified() {
            config.zone.local_ips.push(addr.ip());
        }
        let watch_pods = config.zone.pods == PodMode::Verified;
        let forwarder = Forwarder::new(config.upstreams.clone(), addr, config.max_concurrent, config.forward_timeout);
        let metrics = Metrics::new(format!("dns://{addr}"), &forwarder.upstream_addrs());
        let shared = Shared::new(config.zone, Cache::new(config.cache_size), forwarder, metrics);
        feed::spawn(informers, shared.clone(), watch_pods);

        let stop = Arc::new(AtomicBool::new(false));
        server::udp::spawn(udp, shared.clone(), stop.clone());
        let mut tasks = vec![tokio::spawn(server::tcp::serve(tcp, shared.clone()))];
        for (listener, endpoints) in http {
            tasks.push(tokio::spawn(component::http::serve(listener, server::http::routes(&shared, &endpoints))));
        }
        tracing::info!(%addr, upstreams = ?shared.forwarder.upstream_addrs(), zone = %shared.config.zone, "cluster DNS serving");
        Running { addr, shared, stop, tasks }
    }
}

/// Binds every socket (so a bad address fails here, before anything runs), then starts.
pub async fn start(informers: &component::Informers, config: Config) -> Result<Running, Error> {
    Ok(bind(config).await?.start(informers))
}

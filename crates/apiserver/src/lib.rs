//! Kubernetes REST over the store: discovery, CRUD, list/watch, patch/apply, tables,
//! OpenAPI, bearer-token authentication, and the API machinery's background work
//! (namespace deletion, garbage collection).

mod body;
pub mod error;
mod gc;
mod metrics;
pub mod object;
pub mod pki;
pub mod registry;
pub mod request;
mod router;
mod server;
mod table;
mod watch;

use anyhow::Context;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use router::version_info;

/// How to run the API server.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Where to listen (kube-apiserver's --secure-port on --bind-address).
    pub bind: SocketAddr,
    /// Host (and port) written into the kubeconfig; defaults to 127.0.0.1 and the bound port.
    pub advertise: Option<String>,
    /// Extra names or addresses for the serving certificate.
    pub extra_sans: Vec<String>,
    /// Events kept for watch resumption.
    pub watch_history: u64,
    pub bookmark_interval: Duration,
}

impl Config {
    pub fn new(data_dir: PathBuf) -> Self {
        Config {
            data_dir,
            bind: "0.0.0.0:6443".parse().expect("valid address"),
            advertise: None,
            extra_sans: Vec::new(),
            watch_history: store::Options::default().history,
            bookmark_interval: Duration::from_secs(60),
        }
    }
}

/// A started API server.
pub struct Running {
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    pub registry: registry::Registry,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops serving (open connections end with their tasks).
    pub fn shutdown(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// The namespaces every cluster starts with.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Opens the store, makes first-start credentials, writes the kubeconfig and starts serving.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    install_crypto_provider();
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating {}", config.data_dir.display()))?;
    let pki = pki::Pki::new(&config.data_dir);
    pki.ensure(&config.extra_sans)?;
    let store = store::Store::open_embedded(&config.data_dir, store::Options { history: config.watch_history })
        .context("opening the embedded store")?;
    let registry = registry::Registry::new(store);
    bootstrap(&registry).await?;

    let listener = tokio::net::TcpListener::bind(config.bind).await.with_context(|| format!("binding {}", config.bind))?;
    let addr = listener.local_addr()?;
    let host = config.advertise.clone().unwrap_or_else(|| format!("127.0.0.1:{}", addr.port()));
    let kubeconfig = config.data_dir.join("kubeconfig");
    pki.write_kubeconfig(&kubeconfig, &format!("https://{host}"))?;

    let router = Arc::new(router::Router {
        registry: registry.clone(),
        token: pki.token()?,
        server_address: host.clone(),
        bookmark_interval: config.bookmark_interval,
        metrics: metrics::Metrics::default(),
    });
    let tls = pki.server_config()?;
    let tasks = vec![
        tokio::spawn(server::serve(listener, tls, router)),
        tokio::spawn(gc::run_namespace_controller(registry.clone())),
        tokio::spawn(gc::run_garbage_collector(registry.clone())),
    ];
    tracing::info!(%addr, kubeconfig = %kubeconfig.display(), "API server serving");
    Ok(Running { addr, kubeconfig, registry, tasks })
}

/// rustls needs one process-wide crypto provider; Portico uses ring everywhere.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn bootstrap(registry: &registry::Registry) -> anyhow::Result<()> {
    let namespaces = api::resources::lookup("", "v1", "namespaces").expect("namespaces are served");
    for ns in SYSTEM_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        match registry.create(namespaces, None, obj, &registry::WriteOptions::default()).await {
            Ok(_) | Err(error::ApiError::AlreadyExists { .. }) => {}
            Err(e) => anyhow::bail!("creating namespace {ns}: {e}"),
        }
    }
    Ok(())
}

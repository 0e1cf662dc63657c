//! Kubernetes REST over the store: discovery, CRUD, list/watch, patch/apply, tables,
//! OpenAPI, bearer-token authentication, and the API machinery's background work
//! (namespace deletion, garbage collection).

pub mod alloc;
mod body;
pub(crate) mod error;
mod gc;
mod metrics;
pub(crate) mod object;
pub(crate) mod pki;
pub(crate) mod registry;
pub(crate) mod request;
mod router;
mod server;
pub mod services;
mod streaming;
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
    /// The address other members of the cluster reach this server at (kube-apiserver's
    /// `--advertise-address`): written into the kubeconfig and, unless it is a loopback
    /// address, published as the `kubernetes` Service's endpoints. Default 127.0.0.1.
    pub advertise: Option<std::net::IpAddr>,
    /// Extra names or addresses for the serving certificate.
    pub extra_sans: Vec<String>,
    /// Events kept for watch resumption.
    pub watch_history: u64,
    /// The embedded store's page cache, in bytes.
    pub store_cache_bytes: usize,
    pub bookmark_interval: Duration,
    /// Service CIDRs and the NodePort range.
    pub service_network: services::ServiceNetworkConfig,
}

impl Config {
    pub fn new(data_dir: PathBuf) -> Self {
        Config {
            data_dir,
            bind: "0.0.0.0:6443".parse().expect("valid address"),
            advertise: None,
            extra_sans: Vec::new(),
            watch_history: store::Options::default().history,
            store_cache_bytes: store::Options::default().cache_bytes,
            bookmark_interval: Duration::from_secs(60),
            service_network: services::ServiceNetworkConfig::default(),
        }
    }
}

/// A started API server.
pub struct Running {
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
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
    let mut sans = config.extra_sans.clone();
    sans.extend(config.advertise.map(|ip| ip.to_string()));
    pki.ensure(&sans)?;
    let store = store::Store::open_embedded(
        &config.data_dir,
        store::Options { history: config.watch_history, cache_bytes: config.store_cache_bytes },
    )
    .context("opening the embedded store")?;
    let allocators =
        Arc::new(services::ServiceAllocators::new(config.service_network.clone()).map_err(|e| anyhow::anyhow!(e))?);
    let registry = registry::Registry::new(store).with_service_allocators(allocators.clone());
    let repaired_at =
        allocators.repair(&registry).await.map_err(|e| anyhow::anyhow!("service allocator repair: {e}"))?;
    let follower = tokio::spawn(allocators.clone().follow(registry.clone(), repaired_at));
    bootstrap(&registry, &allocators).await?;
    publish_root_ca(&registry, &pki.ca_pem()?).await;

    let listener =
        tokio::net::TcpListener::bind(config.bind).await.with_context(|| format!("binding {}", config.bind))?;
    let addr = listener.local_addr()?;
    let advertise = config.advertise.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let host = match advertise {
        std::net::IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
        ip => format!("{ip}:{}", addr.port()),
    };
    publish_endpoints(&registry, advertise, addr.port()).await;
    let kubeconfig = config.data_dir.join("kubeconfig");
    pki.write_kubeconfig(&kubeconfig, &format!("https://{host}"))?;

    let router = Arc::new(router::Router {
        registry: registry.clone(),
        token: pki.token()?,
        server_address: host.clone(),
        bookmark_interval: config.bookmark_interval,
        metrics: metrics::Metrics::new(Some(allocators.clone())),
        kubelets: streaming::Kubelets { tls: pki.kubelet_client_config()? },
    });
    let tls = pki.server_config()?;
    let tasks = vec![
        follower,
        tokio::spawn(server::serve(listener, tls, router)),
        tokio::spawn(gc::run_namespace_controller(registry.clone())),
        tokio::spawn(gc::run_garbage_collector(registry.clone())),
    ];
    tracing::info!(%addr, kubeconfig = %kubeconfig.display(), "API server serving");
    Ok(Running { addr, kubeconfig, tasks })
}

/// Points the `kubernetes` Service at this server, as kube-apiserver's endpoint reconciler
/// does: an Endpoints (not mirrored) and an EndpointSlice named `kubernetes`. A loopback
/// address is not published (Kubernetes forbids loopback endpoints).
async fn publish_endpoints(registry: &registry::Registry, ip: std::net::IpAddr, port: u16) {
    if ip.is_loopback() || ip.is_unspecified() {
        tracing::info!(%ip, "advertise address is not routable; the kubernetes Service gets no endpoints");
        return;
    }
    let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": ip.to_string()}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    });
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": family,
        "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    for (group, plural, obj) in [("", "endpoints", endpoints), ("discovery.k8s.io", "endpointslices", slice)] {
        let rt = api::resources::lookup(group, "v1", plural).expect("served");
        let opts = registry::WriteOptions::default();
        let result = match registry.create(rt, Some("default"), obj.clone(), &opts).await {
            Err(error::ApiError::AlreadyExists { .. }) => {
                registry.update(rt, Some("default"), "kubernetes", registry::Subresource::Main, obj, &opts).await
            }
            other => other,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, plural, "could not publish the kubernetes endpoints");
        }
    }
}

/// Publishes the cluster CA as `kube-system/kube-root-ca.crt` (`ca.crt`), the ConfigMap a
/// real cluster's root-CA publisher keeps in every namespace. Node agents trust it for callers
/// of their kubelet API (the API server's kubelet client certificate chains to it).
async fn publish_root_ca(registry: &registry::Registry, ca_pem: &str) {
    let rt = api::resources::lookup("", "v1", "configmaps").expect("configmaps are served");
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kube-root-ca.crt", "namespace": "kube-system",
            "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
        "data": {"ca.crt": ca_pem}});
    let opts = registry::WriteOptions::default();
    let result = match registry.create(rt, Some("kube-system"), obj.clone(), &opts).await {
        Err(error::ApiError::AlreadyExists { .. }) => {
            match registry.get(rt, Some("kube-system"), "kube-root-ca.crt").await {
                Ok(cur) if cur["data"]["ca.crt"] == ca_pem => Ok(()),
                _ => registry
                    .update(rt, Some("kube-system"), "kube-root-ca.crt", registry::Subresource::Main, obj, &opts)
                    .await
                    .map(|_| ()),
            }
        }
        other => other.map(|_| ()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not publish kube-system/kube-root-ca.crt");
    }
}

/// rustls needs one process-wide crypto provider; Portico uses ring everywhere.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn bootstrap(registry: &registry::Registry, allocators: &services::ServiceAllocators) -> anyhow::Result<()> {
    let namespaces = api::resources::lookup("", "v1", "namespaces").expect("namespaces are served");
    for ns in SYSTEM_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        match registry.create(namespaces, None, obj, &registry::WriteOptions::default()).await {
            Ok(_) | Err(error::ApiError::AlreadyExists { .. }) => {}
            Err(e) => anyhow::bail!("creating namespace {ns}: {e}"),
        }
    }
    // The `kubernetes` Service takes the first address of the primary service range, as
    // kube-apiserver's controlplane reconciler makes it.
    let services = api::resources::lookup("", "v1", "services").expect("services are served");
    let svc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": allocators.kubernetes_ip().to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
            "sessionAffinity": "None",
        },
    });
    match registry.create(services, Some("default"), svc, &registry::WriteOptions::default()).await {
        Ok(_) | Err(error::ApiError::AlreadyExists { .. }) => {}
        Err(e) => tracing::warn!(error = %e, "could not create the kubernetes Service"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn registry() -> (tempfile::TempDir, registry::Registry) {
        let dir = tempfile::tempdir().unwrap();
        let store = store::Store::open_embedded(dir.path(), store::Options::default()).unwrap();
        let allocators = Arc::new(services::ServiceAllocators::new(Default::default()).unwrap());
        let registry = registry::Registry::new(store).with_service_allocators(allocators.clone());
        let rev = allocators.repair(&registry).await.unwrap();
        tokio::spawn(allocators.clone().follow(registry.clone(), rev));
        bootstrap(&registry, &allocators).await.unwrap();
        (dir, registry)
    }

    #[tokio::test]
    async fn the_kubernetes_service_takes_the_first_address_and_points_at_the_advertised_server() {
        let (_dir, registry) = registry().await;
        let services = api::resources::lookup("", "v1", "services").unwrap();
        let svc = registry.get(services, Some("default"), "kubernetes").await.unwrap();
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
        assert_eq!(svc["spec"]["ports"][0]["port"], 443);

        // Only written into objects: nothing is sent to this documentation address.
        let ip: std::net::IpAddr = "192.0.2.10".parse().unwrap();
        publish_endpoints(&registry, ip, 6443).await;
        publish_endpoints(&registry, ip, 6443).await; // idempotent on restart
        let endpoints = api::resources::lookup("", "v1", "endpoints").unwrap();
        let ep = registry.get(endpoints, Some("default"), "kubernetes").await.unwrap();
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "192.0.2.10");
        assert_eq!(ep["subsets"][0]["ports"][0]["port"], 6443);
        let slices = api::resources::lookup("discovery.k8s.io", "v1", "endpointslices").unwrap();
        let slice = registry.get(slices, Some("default"), "kubernetes").await.unwrap();
        assert_eq!(slice["endpoints"][0]["addresses"][0], "192.0.2.10");
        assert_eq!(slice["metadata"]["labels"]["kubernetes.io/service-name"], "kubernetes");
    }

    #[tokio::test]
    async fn a_loopback_advertise_address_publishes_no_endpoints() {
        let (_dir, registry) = registry().await;
        publish_endpoints(&registry, "127.0.0.1".parse().unwrap(), 6443).await;
        let endpoints = api::resources::lookup("", "v1", "endpoints").unwrap();
        assert!(registry.get(endpoints, Some("default"), "kubernetes").await.is_err());
    }
}

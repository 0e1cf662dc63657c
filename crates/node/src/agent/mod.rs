//! The node agent's loop: register the Node, keep its Lease fresh, wait for the pod CIDR node
//! IPAM assigns, set up the node side of the pod network, route to the other nodes' pod CIDRs,
//! and run one worker per pod bound to this node.

pub mod env;
pub mod files;
pub mod metrics;
pub mod node;
pub mod pods;
pub mod probe;
pub mod status;
pub mod volumes;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api::net::Cidr;
use component::index::{self, BY_NAMESPACE, BY_NODE};
use component::informer::{Event, Informers, Key};
use component::pod::LeanPod;
use k8s_openapi::api::core::v1::{Node, Service};
use tokio::sync::Notify;

use crate::net::{CniConfig, CniNetwork, NetConfig, Network, PodNetwork};
use crate::sandbox::Sandbox;

/// How the agent is set up (`portico agent` and `portico up`).
#[derive(Clone, Debug)]
pub struct Config {
    pub node_name: String,
    pub node_ip: IpAddr,
    pub kubelet_port: u16,
    /// IPAM records, container state, volumes.
    pub state_dir: PathBuf,
    /// The portico binary (the container supervisor and demo server are its hidden commands).
    pub exe: PathBuf,
    pub cluster_dns: files::ClusterDns,
    pub cluster_cidr: Option<Cidr>,
    /// Service ClusterIP ranges, routed into the pod bridge for the proxy's rules.
    pub service_cidrs: Vec<Cidr>,
    pub bridge: String,
    pub netns_prefix: String,
    pub masquerade: bool,
    /// Delegate pod networking to CNI plugins: (configuration dir, plugin dirs).
    pub cni: Option<(PathBuf, Vec<PathBuf>)>,
    /// `/healthz` and `/metrics` (kubelet's healthz port is 10248).
    pub healthz_bind: Option<std::net::SocketAddr>,
}

/// Why the agent cannot run here, if it cannot: it needs root (network and mount namespaces).
pub fn check_privileges() -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err("the node agent needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN, for network and mount namespaces)".into())
    }
}

/// Runs the agent until the process ends; an `Err` says why it cannot go on.
pub async fn run(informers: Informers, cfg: Config) -> Result<(), String> {
    check_privileges()?;
    let client = informers.client().clone();
    let info = node::NodeInfo { name: cfg.node_name.clone(), internal_ip: cfg.node_ip, kubelet_port: cfg.kubelet_port };
    // The API may still be starting: register with back-off.
    let mut delay = Duration::from_millis(200);
    while let Err(e) = node::register(&client, &info, false).await {
        tracing::warn!(node = %info.name, error = %e, "registering the node failed; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }

    let nodes = informers.get::<Node>();
    nodes.ready().await;
    let lease_client = client.clone();
    let lease_nodes = nodes.clone();
    let lease_name = cfg.node_name.clone();
    tokio::spawn(async move {
        loop {
            // Until the Node shows in the store (it was just registered), look again soon:
            // the Lease is the heartbeat and must not wait a whole interval.
            let Some(n) = lease_nodes.get("", &lease_name) else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            if let Err(e) = node::renew_lease(&lease_client, &n).await {
                tracing::warn!(node = %lease_name, error = %e, "renewing the node lease failed");
            }
            tokio::time::sleep(node::lease_interval()).await;
        }
    });

    let pod_cidr = wait_for_pod_cidr(&nodes, &cfg.node_name).await;
    tracing::info!(node = %cfg.node_name, %pod_cidr, "pod CIDR assigned");
    let net = match &cfg.cni {
        None => Network::Native(
            PodNetwork::new(NetConfig {
                pod_cidr,
                cluster_cidr: cfg.cluster_cidr,
                bridge: cfg.bridge.clone(),
                netns_prefix: cfg.netns_prefix.clone(),
                state_dir: cfg.state_dir.join("net"),
                masquerade: cfg.masquerade,
                service_cidrs: cfg.service_cidrs.clone(),
            })
            .await
            .map_err(|e| format!("setting up the pod network: {e}"))?,
        ),
        Some((conf_dir, bin_dirs)) => Network::Cni(
            CniNetwork::new(CniConfig {
                conf_dir: conf_dir.clone(),
                bin_dirs: bin_dirs.clone(),
                netns_prefix: cfg.netns_prefix.clone(),
                state_dir: cfg.state_dir.join("net"),
            })
            .await
            .map_err(|e| format!("setting up CNI pod networking: {e}"))?,
        ),
    };
    if let Err(e) = node::report(&client, &info, true).await {
        tracing::warn!(node = %info.name, error = %e, "reporting the node ready failed");
    }
    let status_client = client.clone();
    let status_info = info.clone();
    tokio::spawn(async move {
        // kubelet's nodeStatusReportFrequency: the Lease is the heartbeat, this the report.
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            if let Err(e) = node::report(&status_client, &status_info, true).await {
                tracing::warn!(node = %status_info.name, error = %e, "reporting node status failed");
            }
        }
    });

    let sandbox = Sandbox::new(cfg.state_dir.join("containers"), cfg.exe.clone());
    let (metrics, registry) = metrics::Metrics::new(sandbox.clone());
    if let Some(addr) = cfg.healthz_bind {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("binding --healthz-bind {addr}: {e}"))?;
        let routes = component::http::Routes::new()
            .route("/healthz", component::http::Route::Live)
            .route("/metrics", component::http::Route::Metrics(Arc::new(registry)));
        tokio::spawn(component::http::serve(listener, routes));
    }
    let host_resolv = files::Resolv::parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let shared = Arc::new(pods::Shared {
        client: client.clone(),
        node_name: cfg.node_name.clone(),
        host_ip: cfg.node_ip,
        net,
        sandbox,
        metrics,
        pods: informers.get::<LeanPod>(),
        services: informers.get::<Service>(),
        dns: cfg.cluster_dns.clone(),
        host_resolv,
        state_dir: cfg.state_dir.clone(),
    });

    // The kubelet API (logs, exec, attach, port-forward), once the pod network is up.
    let kubelet = crate::kubelet::Kubelet { sandbox: shared.sandbox.clone(), pods: shared.pods.clone() };
    let kubelet_addr = std::net::SocketAddr::new(cfg.node_ip, cfg.kubelet_port);
    let kubelet_dir = cfg.state_dir.join("kubelet");
    let kubelet_client = client.clone();
    tokio::spawn(async move {
        let ca = crate::kubelet::fetch_client_ca(&kubelet_client).await;
        if let Err(e) = crate::kubelet::serve(kubelet_addr, &kubelet_dir, &ca, kubelet).await {
            tracing::error!(error = %e, "the kubelet API is not served");
        }
    });
    // Indexes other components of the process may share (the scheduler files pods by node).
    shared.pods.index(BY_NODE, index::pod_node);
    shared.services.index(BY_NAMESPACE, index::namespace::<Service>);
    tokio::spawn(follow_peers(nodes.clone(), shared.clone()));
    shared.services.ready().await;
    follow_pods(shared).await;
    Err("the pod feed ended".into())
}

/// How long [`teardown`] lets containers end on SIGTERM before it kills them.
const TEARDOWN_GRACE: Duration = Duration::from_secs(10);

/// Takes the node [`run`] set up away again (`portico up` on Ctrl-C): no container starts any
/// more, the running ones get SIGTERM and, after [`TEARDOWN_GRACE`], SIGKILL, their records go,
/// and so does the pod network (namespaces, veths, bridge, routes, masquerade table, address
/// records). The Pods stay in the API: the next start of the agent runs them again. Returns
/// what could not be removed.
pub async fn teardown(cfg: &Config) -> Vec<String> {
    let mut problems = stop_pods(cfg).await;
    let bridge = cfg.cni.is_none().then_some(cfg.bridge.as_str());
    problems.extend(crate::net::teardown(bridge, &cfg.netns_prefix, &cfg.state_dir.join("net")).await);
    problems
}

/// The part of [`teardown`] that does not depend on the node's network namespace: the pods'
/// processes end (SIGTERM, then SIGKILL after the grace period) and their records go. A host of
/// several nodes (`portico up --nodes`) deletes each node's namespace after this, which takes
/// its bridge, routes and rules along.
pub async fn stop_pods(cfg: &Config) -> Vec<String> {
    use nix::sys::signal::Signal;
    crate::shutdown::begin();
    let sandbox = Sandbox::new(cfg.state_dir.join("containers"), cfg.exe.clone());
    let running = || -> Vec<String> {
        sandbox.list().into_iter().filter(|s| !s.has_ended() && s.shim_alive).map(|s| s.id).collect()
    };
    let wait = |limit: Duration| async move {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline && !running().is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    for id in running() {
        let _ = sandbox.signal(&id, Signal::SIGTERM);
    }
    wait(TEARDOWN_GRACE).await;
    for id in running() {
        let _ = sandbox.signal(&id, Signal::SIGKILL);
    }
    wait(Duration::from_secs(5)).await;
    let mut problems = vec![];
    for st in sandbox.list() {
        if let Err(e) = sandbox.remove(&st.id) {
            problems.push(e.to_string());
        }
    }
    problems
}

/// Waits until node IPAM has given this node a pod CIDR.
async fn wait_for_pod_cidr(nodes: &component::Informer<Node>, name: &str) -> Cidr {
    let mut events = nodes.subscribe();
    loop {
        let cidr =
            nodes.get("", name).and_then(|n| n.spec.as_ref()?.pod_cidr.clone()).and_then(|c| c.parse::<Cidr>().ok());
        if let Some(c) = cidr {
            return c;
        }
        if events.next().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}

/// Host-gateway routes: every other node's pod CIDR via its InternalIP.
async fn follow_peers(nodes: component::Informer<Node>, shared: Arc<pods::Shared>) {
    let mut events = nodes.subscribe();
    let mut last: Vec<(Cidr, IpAddr)> = vec![];
    loop {
        let mut routes: Vec<(Cidr, IpAddr)> = vec![];
        nodes.for_each(|n| {
            if n.metadata.name.as_deref() == Some(shared.node_name.as_str()) {
                return;
            }
            let cidr = n.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).and_then(|c| c.parse::<Cidr>().ok());
            let ip = n
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
                .and_then(|a| a.address.parse::<IpAddr>().ok());
            if let (Some(c), Some(ip)) = (cidr, ip) {
                routes.push((c, ip));
            }
        });
        routes.sort_by_key(|(c, ip)| (c.to_string(), *ip));
        if routes != last {
            match shared.net.set_peer_routes(&routes).await {
                Ok(()) => {
                    tracing::info!(routes = routes.len(), "routes to other nodes' pods updated");
                    last = routes;
                }
                Err(e) => tracing::warn!(error = %e, "updating routes to other nodes failed"),
            }
        }
        if events.next().await.is_none() {
            return;
        }
    }
}

/// Starts a worker for each pod bound to this node and wakes it on every change of its pod.
async fn follow_pods(shared: Arc<pods::Shared>) {
    let mut events = shared.pods.subscribe();
    let mut workers: HashMap<String, (Key, Arc<Notify>, tokio::task::JoinHandle<()>)> = HashMap::new();
    let mine = |p: &LeanPod| p.node_name() == Some(shared.node_name.as_str());
    let mut orphans_checked = false;
    while let Some(event) = events.next().await {
        let mut touched: Vec<Arc<LeanPod>> = vec![];
        match event {
            Event::Apply { new, .. } => touched.push(new),
            Event::Delete(p) => touched.push(p),
            Event::Synced => {
                touched.extend(shared.pods.indexed(BY_NODE, &shared.node_name));
                // Workers whose pod is gone from a relist.
                for (_, (_, wake, _)) in workers.iter() {
                    wake.notify_one();
                }
                if !orphans_checked {
                    orphans_checked = true;
                    tokio::spawn(remove_orphans(shared.clone()));
                }
            }
        }
        workers.retain(|_, (_, _, task)| !task.is_finished());
        for p in touched {
            let Some(uid) = p.uid.as_deref() else { continue };
            if let Some((_, wake, _)) = workers.get(uid) {
                wake.notify_one();
                continue;
            }
            if !mine(&p) || shared.pods.get_key(&component::Watched::key(&*p)).is_none() {
                continue;
            }
            if matches!(p.phase(), "Succeeded" | "Failed") && p.deletion_timestamp.is_none() {
                // A finished pod this agent never ran (or ran before a restart): nothing to do
                // until it is deleted.
                let prefix = format!("{uid}_");
                if !shared.sandbox.list().iter().any(|s| s.id.starts_with(&prefix)) {
                    continue;
                }
            }
            let key = component::Watched::key(&*p);
            let wake = Arc::new(Notify::new());
            let task = tokio::spawn(pods::work(shared.clone(), key.clone(), uid.to_owned(), wake.clone()));
            workers.insert(uid.to_owned(), (key, wake, task));
        }
    }
}

/// After the first list: containers and pod networks of pods the API no longer has (deleted
/// while the agent was away) are removed.
async fn remove_orphans(shared: Arc<pods::Shared>) {
    let mut live = std::collections::HashSet::new();
    shared.pods.for_each(|p| {
        if let Some(uid) = p.uid.as_deref() {
            live.insert(uid.to_owned());
        }
    });
    for st in shared.sandbox.list() {
        let uid = st.id.split('_').next().unwrap_or_default();
        if !live.contains(uid) {
            if !st.has_ended() {
                let _ = shared.sandbox.signal(&st.id, nix::sys::signal::Signal::SIGKILL);
            }
            let _ = shared.sandbox.remove(&st.id);
            tracing::info!(id = %st.id, "removed an orphaned container");
        }
    }
    for a in shared.net.attachments() {
        if !live.contains(&a.uid) {
            let _ = shared.net.detach(&a.uid).await;
            tracing::info!(uid = %a.uid, "removed an orphaned pod network");
        }
    }
}

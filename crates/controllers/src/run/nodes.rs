//! One loop running the scheduler, the node lifecycle controller, node IPAM and LoadBalancer
//! IPAM inside `portico server`.
//!
//! Reflectors keep Pods, Nodes, Leases and Services in memory. A single worker runs a full pass
//! over them shortly after any event and at least every [`TICK`] (the lifecycle check is time
//! driven): nodes without a pod CIDR get one, nodes whose kubelet went silent get their
//! conditions marked `Unknown` and their pods not ready, pending pods get a node (or a
//! `FailedScheduling` event) and LoadBalancer Services get addresses (or an event saying why not).
//!
//! Binding: the API server does not serve `pods/binding`, so a pod is bound by a merge patch of
//! `spec.nodeName`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use component::index::{self, BY_NODE};
use component::informer::{Event, Informer, Informers};
use component::pod::LeanPod;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;

use super::follow;

use crate::lbipam::{self, Assignment, Pool, PoolState};
use crate::nodelifecycle::{
    DEFAULT_NODE_CIDR_MASK_SIZE_V4, NodeHealth, PodCidrAllocator, mark_unknown, node_health, pod_cidr_patch,
    pod_not_ready_patch,
};
use crate::scheduler::pick_node;

/// Settings of the node controllers.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Pod network the node IPAM allocator carves /24s from (`--cluster-cidr`).
    pub cluster_cidr: String,
    /// How long a node may stay silent before it is marked `Unknown`.
    pub node_monitor_grace: Duration,
    /// LoadBalancer address pool (CIDRs, ranges, addresses); `None` uses the nodes' addresses.
    pub lb_pool: Option<Vec<String>>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            cluster_cidr: crate::nodelifecycle::DEFAULT_CLUSTER_CIDR.to_owned(),
            node_monitor_grace: Duration::from_secs(40),
            lb_pool: None,
        }
    }
}

/// Namespace of the node heartbeat Leases.
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Scheduler name a pod without `spec.schedulerName` gets.
const DEFAULT_SCHEDULER: &str = "default-scheduler";
/// Longest time between passes (the lifecycle check needs a clock, not events).
const TICK: Duration = Duration::from_secs(1);
/// Wait after an event before a pass, so bursts collapse into one.
const DEBOUNCE: Duration = Duration::from_millis(50);

struct Stores {
    pods: Informer<LeanPod>,
    nodes: Informer<Node>,
    leases: Informer<Lease>,
    services: Informer<Service>,
}

/// Runs the scheduler, node lifecycle, node IPAM and LB IPAM until the process ends.
pub async fn run_nodes(informers: Informers, opts: NodeOptions) -> Result<(), String> {
    let cidrs = PodCidrAllocator::new(&opts.cluster_cidr, DEFAULT_NODE_CIDR_MASK_SIZE_V4)
        .map_err(|e| format!("bad cluster CIDR {}: {e}", opts.cluster_cidr))?;
    let pool =
        opts.lb_pool.as_deref().map(Pool::parse).transpose().map_err(|e| format!("bad LoadBalancer pool: {e}"))?;
    let pool = PoolState::new(pool);
    let (tx, rx) = mpsc::unbounded_channel();
    let stores =
        Stores { pods: informers.get(), nodes: informers.get(), leases: informers.get(), services: informers.get() };
    stores.pods.index(BY_NODE, index::pod_node);
    follow(&stores.pods, &tx, |_| vec![()]);
    follow(&stores.nodes, &tx, |_| vec![()]);
    follow(&stores.leases, &tx, |_: Event<Lease>| vec![()]);
    follow(&stores.services, &tx, |_| vec![()]);
    drop(tx);
    tokio::join!(stores.pods.ready(), stores.nodes.ready(), stores.leases.ready(), stores.services.ready());
    tracing::info!("node controllers synced; reconciling");
    let mut worker = Worker {
        client: informers.client().clone(),
        grace: opts.node_monitor_grace,
        stores,
        cidrs,
        node_cidrs: BTreeMap::new(),
        pool,
        lb_services: BTreeMap::new(),
        bound: BTreeMap::new(),
        reported: BTreeMap::new(),
        unschedulable: HashMap::new(),
    };
    worker.run(rx).await;
    Err("the node controllers' event feed ended".to_owned())
}

struct Worker {
    client: Client,
    grace: Duration,
    stores: Stores,
    cidrs: PodCidrAllocator,
    /// Node name to the pod CIDR it holds (as written or seen).
    node_cidrs: BTreeMap<String, String>,
    pool: PoolState,
    /// `namespace/name` of Services that went through the LB allocator, for releasing.
    lb_services: BTreeMap<String, Service>,
    /// Pod UID to the node it was bound to, until the reflector shows it.
    bound: BTreeMap<String, String>,
    /// Object UID to the last warning event message written for it (no repeats).
    reported: BTreeMap<String, String>,
    /// Pod UID to the (nodes, pod resourceVersion) it was found unschedulable at: neither
    /// changed, so the answer would not either. Passes run on every pod event; without this
    /// each one re-ran the filters for every pending pod.
    unschedulable: HashMap<String, (u64, String)>,
}

impl Worker {
    async fn run(&mut self, mut rx: mpsc::UnboundedReceiver<()>) {
        loop {
            self.pass().await;
            let tick = tokio::time::sleep(TICK);
            tokio::select! {
                d = rx.recv() => {
                    if d.is_none() {
                        return;
                    }
                    tokio::time::sleep(DEBOUNCE).await;
                    while rx.try_recv().is_ok() {}
                }
                _ = tick => {}
            }
        }
    }

    async fn pass(&mut self) {
        self.node_ipam().await;
        self.node_lifecycle().await;
        self.schedule().await;
        self.lb_ipam().await;
    }

    async fn node_ipam(&mut self) {
        let nodes = self.stores.nodes.state();
        let names: BTreeSet<String> = nodes.iter().map(|n| n.name_any()).collect();
        // Free what deleted nodes held.
        let gone: Vec<String> = self.node_cidrs.keys().filter(|n| !names.contains(*n)).cloned().collect();
        for name in gone {
            if let Some(cidr) = self.node_cidrs.remove(&name) {
                let _ = self.cidrs.release(&cidr);
            }
        }
        // Record what nodes already have before handing out anything new.
        for node in &nodes {
            let has = node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).is_some_and(|c| !c.is_empty());
            if has && !self.node_cidrs.contains_key(&node.name_any()) {
                match self.cidrs.allocate(node) {
                    Ok(cidr) => {
                        self.node_cidrs.insert(node.name_any(), cidr);
                    }
                    Err(e) => tracing::debug!(node = %node.name_any(), error = %e, "pod CIDR outside the cluster CIDR"),
                }
            }
        }
        let api: Api<Node> = Api::all(self.client.clone());
        for node in &nodes {
            let name = node.name_any();
            let has = node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).is_some_and(|c| !c.is_empty());
            if has || node.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let cidr = match self.node_cidrs.get(&name) {
                Some(c) => c.clone(),
                None => match self.cidrs.allocate(node) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(node = %name, error = %e, "no pod CIDR for node");
                        continue;
                    }
                },
            };
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(pod_cidr_patch(&cidr))).await {
                Ok(_) => {
                    tracing::info!(node = %name, cidr = %cidr, "allocated pod CIDR");
                    self.node_cidrs.insert(name, cidr);
                }
                Err(e) => {
                    tracing::warn!(node = %name, error = %e, "writing pod CIDR failed; retrying");
                    if !self.node_cidrs.contains_key(&name) {
                        let _ = self.cidrs.release(&cidr);
                    }
                }
            }
        }
    }

    async fn node_lifecycle(&mut self) {
        let now = jiff::Timestamp::now();
        let nodes = self.stores.nodes.state();
        let node_api: Api<Node> = Api::all(self.client.clone());
        for node in &nodes {
            let name = node.name_any();
            let lease = self.stores.leases.get(LEASE_NAMESPACE, &name);
            if node_health(node, lease.as_deref(), now, self.grace) != NodeHealth::Stale {
                continue;
            }
            if let Some(patch) = mark_unknown(node, now) {
                match node_api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch)).await {
                    Ok(_) => tracing::info!(node = %name, "node stopped heartbeating; conditions marked Unknown"),
                    Err(e) => {
                        tracing::warn!(node = %name, error = %e, "marking node Unknown failed; retrying");
                        continue;
                    }
                }
            }
            for pod in self.stores.pods.indexed(BY_NODE, &name) {
                let Some(patch) = pod_not_ready_patch(&pod.to_pod(), now) else { continue };
                let ns = &*pod.namespace;
                let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
                if let Err(e) = api.patch_status(&pod.name, &PatchParams::default(), &Patch::Strategic(patch)).await {
                    tracing::warn!(namespace = %ns, pod = %pod.name, error = %e, "marking pod not ready failed");
                }
            }
        }
    }

    async fn schedule(&mut self) {
        let nodes: Vec<Node> = self.stores.nodes.state().iter().map(|n| (**n).clone()).collect();
        let pods = self.stores.pods.state();
        // Runs on every pod event: borrow, never copy, what is read from each of the pods.
        let nodes_version = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for n in &nodes {
                std::hash::Hash::hash(&(n.metadata.name.as_deref(), n.metadata.resource_version.as_deref()), &mut h);
            }
            std::hash::Hasher::finish(&h)
        };
        if !self.bound.is_empty() || !self.reported.is_empty() || !self.unschedulable.is_empty() {
            let uids: HashSet<&str> = pods.iter().filter_map(|p| p.uid.as_deref()).collect();
            self.bound.retain(|uid, _| uids.contains(uid.as_str()));
            self.unschedulable.retain(|uid, _| uids.contains(uid.as_str()));
            let service_uids: BTreeSet<String> = self.lb_services.values().filter_map(|s| s.uid()).collect();
            self.reported.retain(|uid, _| uids.contains(uid.as_str()) || service_uids.contains(uid));
        }
        let mut per_node = HashMap::<&str, usize>::new();
        for pod in &pods {
            let node = pod.node_name();
            let node = node.or_else(|| pod.uid.as_deref().and_then(|u| self.bound.get(u)).map(String::as_str));
            if let Some(n) = node {
                *per_node.entry(n).or_default() += 1;
            }
        }
        let mut per_node: BTreeMap<String, usize> = per_node.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        for pod in &pods {
            let uid = pod.uid.as_deref().unwrap_or_default().to_owned();
            let terminal = matches!(pod.phase(), "Succeeded" | "Failed");
            if pod.node_name().is_some()
                || pod.deletion_timestamp.is_some()
                || terminal
                || pod.scheduler_name.as_deref().is_some_and(|s| s != DEFAULT_SCHEDULER)
                || self.bound.contains_key(&uid)
            {
                continue;
            }
            let pod_version = pod.resource_version.as_deref().unwrap_or_default().to_owned();
            if self.unschedulable.get(&uid).is_some_and(|(n, rv)| *n == nodes_version && *rv == pod_version) {
                continue;
            }
            let ns = pod.namespace.to_string();
            let name = pod.name.to_string();
            match pick_node(&pod.scheduling_pod(), &nodes, &per_node) {
                Ok(node) => {
                    let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
                    let patch = json!({ "metadata": { "uid": uid }, "spec": { "nodeName": node } });
                    match api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await {
                        Ok(_) => {
                            tracing::info!(namespace = %ns, pod = %name, node = %node, "bound pod");
                            *per_node.entry(node.clone()).or_default() += 1;
                            self.bound.insert(uid.clone(), node);
                            self.reported.remove(&uid);
                        }
                        Err(e) => tracing::warn!(namespace = %ns, pod = %name, error = %e, "binding failed; retrying"),
                    }
                }
                Err(unschedulable) => {
                    let msg = unschedulable.to_string();
                    if self.warn_once(pod.object_ref(), "FailedScheduling", &msg, "default-scheduler").await {
                        self.unschedulable.insert(uid, (nodes_version, pod_version));
                    }
                }
            }
        }
    }

    async fn lb_ipam(&mut self) {
        let nodes: Vec<Node> = self.stores.nodes.state().iter().map(|n| (**n).clone()).collect();
        let mut services = self.stores.services.state();
        let keys: BTreeSet<String> = services.iter().map(|s| lbipam::service_key(s)).collect();
        let gone: Vec<String> = self.lb_services.keys().filter(|k| !keys.contains(*k)).cloned().collect();
        for key in gone {
            if let Some(svc) = self.lb_services.remove(&key) {
                lbipam::release(&svc, &mut self.pool);
            }
        }
        // Services already showing addresses first, so they keep them across restarts.
        services.sort_by_key(|s| (status_ips(s).is_empty(), lbipam::service_key(s)));
        for svc in &services {
            let key = lbipam::service_key(svc);
            match lbipam::assign(svc, &mut self.pool, &nodes) {
                Assignment::NotOurs => {
                    self.lb_services.remove(&key);
                }
                Assignment::Ingress(ips) => {
                    self.lb_services.insert(key, (**svc).clone());
                    if status_ips(svc) == ips {
                        continue;
                    }
                    let ns = svc.namespace().unwrap_or_default();
                    let api: Api<Service> = Api::namespaced(self.client.clone(), &ns);
                    let patch = Patch::Strategic(lbipam::ingress_status(&ips));
                    match api.patch_status(&svc.name_any(), &PatchParams::default(), &patch).await {
                        Ok(_) => {
                            tracing::info!(namespace = %ns, service = %svc.name_any(), ips = ?ips, "assigned LoadBalancer addresses");
                            if let Some(uid) = svc.uid() {
                                self.reported.remove(&uid);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(namespace = %ns, service = %svc.name_any(), error = %e, "writing LoadBalancer status failed")
                        }
                    }
                }
                Assignment::Pending(msg) => {
                    self.lb_services.insert(key, (**svc).clone());
                    self.warn_once(svc.object_ref(&()), "AllocationFailed", &msg, "lbipam-controller").await;
                }
            }
        }
    }

    /// Writes a Warning event about the object unless the same message was already written;
    /// true once the API holds one.
    async fn warn_once(&mut self, object: ObjectReference, reason: &str, message: &str, component: &str) -> bool {
        let uid = object.uid.clone().unwrap_or_default();
        if self.reported.get(&uid).map(String::as_str) == Some(message) {
            return true;
        }
        let ns = object.namespace.clone().unwrap_or_default();
        if component::events::record(&self.client, object, "Warning", reason, message, component).await {
            tracing::info!(namespace = %ns, reason, message, "event");
            self.reported.insert(uid, message.to_owned());
            return true;
        }
        false
    }
}

fn status_ips(svc: &Service) -> Vec<String> {
    let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
    ingress.into_iter().flatten().filter_map(|i| i.ip.clone()).collect()
}

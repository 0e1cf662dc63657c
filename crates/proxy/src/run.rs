//! The proxy's loop: follow Services and EndpointSlices, keep the [`Snapshot`] up to date for
//! the Services that changed, and sync the data plane at most once per `min_sync_period`
//! (partially: only what changed), with a full resync every `full_sync_period` and after any
//! failure, so drift (someone flushing the table) is repaired.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::net::Cidr;
use component::encoded::Encoded;
use component::informer::{Event, Informer, Informers};
use component::{http, index};
use k8s_openapi::api::core::v1::Service as K8sService;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::sync::Notify;

use crate::healthcheck::{HealthChecks, Report};
use crate::metrics::Metrics;
use crate::model::{ServiceKey, ServiceState, Snapshot};
use crate::plane::Plane;
use crate::{conntrack_stale, convert};

/// Which data plane carries Service traffic (`--proxy-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Nftables,
    Iptables,
    Userspace,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "" | "nftables" => Ok(Mode::Nftables),
            "iptables" => Ok(Mode::Iptables),
            "userspace" => Ok(Mode::Userspace),
            "ipvs" => Err("proxy mode ipvs is not available: this kernel has no IP_VS module (ipvsadm fails); \
                 use nftables (the default), iptables or userspace"
                .into()),
            other => Err(format!("unknown proxy mode {other:?}: use nftables, iptables or userspace")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub mode: Mode,
    pub node_name: String,
    /// The addresses NodePorts answer on (`--nodeport-addresses`, default the node's IPs).
    pub nodeport_addresses: Vec<IpAddr>,
    pub cluster_cidr: Option<Cidr>,
    pub service_cidrs: Vec<Cidr>,
    pub min_sync_period: Duration,
    /// How often to sync even without changes (kube-proxy's `--sync-period`).
    pub sync_period: Duration,
    /// How often a sync rewrites everything instead of only what changed.
    pub full_sync_period: Duration,
    pub healthz_bind: Option<SocketAddr>,
    pub metrics_bind: Option<SocketAddr>,
    /// Where `healthCheckNodePort` servers listen.
    pub health_check_address: IpAddr,
    /// How long the userspace proxy keeps an idle UDP session (`--udp-timeout`).
    pub udp_idle_timeout: Duration,
    /// Layer-2 announcement of load balancer IPs; `None` turns it off.
    pub announce: Option<crate::announce::Options>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Plane(String),
    #[error("layer-2 announcements: {0}")]
    Announce(#[from] crate::announce::Error),
}

/// Changes not yet synced.
#[derive(Default)]
struct Pending {
    keys: BTreeSet<ServiceKey>,
    all: bool,
    /// `endpoints.kubernetes.io/last-change-trigger-time` of the slices that changed.
    triggers: Vec<jiff::Timestamp>,
    service_changes: u64,
    endpoint_changes: u64,
}

/// Health of the proxy for `/healthz`: the last successful sync and whether one is overdue.
#[derive(Default)]
struct Health {
    last_sync: Option<Instant>,
    pending_since: Option<Instant>,
}

/// Runs the proxy on the process's shared informers until an error stops it.
pub async fn run(informers: Informers, opts: Options) -> Result<(), Error> {
    let services: Informer<K8sService> = informers.get();
    let slices: Informer<Encoded<EndpointSlice>> = informers.get();
    slices.index(index::BY_SERVICE, index::service_name::<Encoded<EndpointSlice>>);

    let pending = Arc::new(Mutex::new(Pending { all: true, ..Default::default() }));
    let wake = Arc::new(Notify::new());
    let health = Arc::new(Mutex::new(Health::default()));
    follow_services(&services, pending.clone(), wake.clone());
    follow_slices(&slices, pending.clone(), wake.clone());

    let (metrics, registry) = Metrics::new();
    let registry = Arc::new(registry);
    if let Some(addr) = opts.metrics_bind {
        let l = tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Listen { addr, source })?;
        let routes = http::Routes::new().route("/metrics", http::Route::Metrics(registry.clone()));
        tokio::spawn(http::serve(l, routes));
    }
    if let Some(addr) = opts.healthz_bind {
        let l = tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Listen { addr, source })?;
        let h = health.clone();
        let overdue = opts.sync_period * 2 + opts.min_sync_period;
        // kube-proxy's body: when the rules were last synced, now, and whether the node may
        // take load balancer traffic (always, here: node deletion and taints are not followed).
        let answer = Arc::new(move || {
            let h = h.lock().unwrap_or_else(|e| e.into_inner());
            let now = jiff::Timestamp::now();
            let last = h.last_sync.map(|t| now - jiff::SignedDuration::try_from(t.elapsed()).unwrap_or_default());
            let body = serde_json::json!({
                "lastUpdated": last.map(|t| t.to_string()).unwrap_or_default(),
                "currentTime": now.to_string(),
                "nodeEligible": true,
            });
            let status = match healthy(&h, overdue) {
                Ok(()) => http::StatusCode::OK,
                Err(_) => http::StatusCode::SERVICE_UNAVAILABLE,
            };
            (status, body.to_string())
        });
        let routes = http::Routes::new()
            .route("/healthz", http::Route::Json(answer.clone()))
            .route("/livez", http::Route::Json(answer));
        tokio::spawn(http::serve(l, routes));
    }

    services.ready().await;
    slices.ready().await;
    tracing::info!(mode = ?opts.mode, node = %opts.node_name, "service proxy syncing");

    let mut plane = Plane::new(&opts).await.map_err(Error::Plane)?;
    let (published, announce_rx) = tokio::sync::watch::channel(Arc::new(Snapshot::new()));
    let mut announcing =
        opts.announce.clone().map(|a| tokio::spawn(crate::announce::run(informers.clone(), a, announce_rx)));
    let mut health_checks = HealthChecks::new(opts.health_check_address);
    let mut snapshot = Snapshot::new();
    let mut last_full: Option<Instant> = None;
    let mut last_sync = Instant::now() - opts.min_sync_period;
    let mut failed = false;
    loop {
        let since = last_sync.elapsed();
        if since < opts.min_sync_period {
            tokio::time::sleep(opts.min_sync_period - since).await;
        }
        let batch = std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()));
        let full = batch.all || failed || last_full.is_none_or(|t| t.elapsed() >= opts.full_sync_period);
        let started = Instant::now();
        let changed: BTreeSet<ServiceKey> = if batch.all {
            let mut keys: BTreeSet<ServiceKey> = snapshot.keys().cloned().collect();
            services.for_each(|s| {
                keys.insert(ServiceKey::new(
                    s.metadata.namespace.clone().unwrap_or_default(),
                    s.metadata.name.clone().unwrap_or_default(),
                ));
            });
            keys
        } else {
            batch.keys
        };
        let mut previous: HashMap<ServiceKey, Arc<ServiceState>> = HashMap::new();
        for key in &changed {
            let old = match state_of(&services, &slices, key) {
                Some(s) => snapshot.insert(key.clone(), Arc::new(s)),
                None => snapshot.remove(key),
            };
            if let Some(old) = old {
                previous.insert(key.clone(), old);
            }
        }
        metrics.service_changes.inc_by(batch.service_changes);
        metrics.endpoint_changes.inc_by(batch.endpoint_changes);

        let result = plane.sync(&snapshot, &changed, full).await;
        let took = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                failed = false;
                metrics.sync_duration.observe(took);
                if full {
                    last_full = Some(started);
                    metrics.sync_full_duration.observe(took);
                } else {
                    metrics.sync_partial_duration.observe(took);
                }
                let now = jiff::Timestamp::now();
                for t in &batch.triggers {
                    metrics.network_programming_duration.observe((now - *t).total(jiff::Unit::Second).unwrap_or(0.0));
                }
                metrics.last_sync_timestamp.set(now.as_millisecond() as f64 / 1000.0);
                {
                    let mut h = health.lock().unwrap_or_else(|e| e.into_inner());
                    h.last_sync = Some(Instant::now());
                    h.pending_since = None;
                }
                let filters = conntrack_stale::filters(&previous, &snapshot, &changed, &opts);
                if !filters.is_empty() {
                    match tokio::task::spawn_blocking(move || crate::conntrack::delete(&filters)).await {
                        Ok(Ok(n)) => {
                            metrics.conntrack_deleted.inc_by(n as u64);
                        }
                        Ok(Err(e)) => tracing::warn!(error = %e, "could not delete stale conntrack entries"),
                        Err(e) => tracing::warn!(error = %e, "conntrack cleanup panicked"),
                    }
                }
                health_checks.set(health_check_reports(&snapshot, &opts.node_name)).await;
                if announcing.is_some() {
                    published.send_replace(Arc::new(snapshot.clone()));
                }
                tracing::debug!(full, changed = changed.len(), seconds = took, "synced");
            }
            Err(e) => {
                failed = true;
                metrics.sync_failures.get_or_create(&vec![("mode", format!("{:?}", opts.mode))]).inc();
                tracing::error!(error = %e, "sync failed; the next sync rewrites everything");
            }
        }
        last_sync = Instant::now();

        if let Some(task) = announcing.take_if(|t| t.is_finished()) {
            match task.await {
                Ok(Err(e)) => return Err(e.into()),
                _ => return Err(Error::Plane("the layer-2 announcer stopped".into())),
            }
        }

        // Sleep until something changes or the periodic sync is due.
        let idle = pending.lock().map(|p| p.keys.is_empty() && !p.all).unwrap_or(true);
        if idle && !failed {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(opts.sync_period) => {}
            }
        } else if failed {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

fn healthy(h: &Health, overdue: Duration) -> Result<(), String> {
    match (h.last_sync, h.pending_since) {
        (None, _) => Err("the proxy has not synced yet".into()),
        (Some(_), Some(p)) if p.elapsed() > overdue => Err(format!("a change has waited {:?} for a sync", p.elapsed())),
        _ => Ok(()),
    }
}

/// The Service as the proxy programs it now, or `None` if it is gone or not the proxy's.
fn state_of(
    services: &Informer<K8sService>,
    slices: &Informer<Encoded<EndpointSlice>>,
    key: &ServiceKey,
) -> Option<ServiceState> {
    let s = services.get(&key.namespace, &key.name)?;
    let service = convert::service(&s)?;
    let decoded: Vec<EndpointSlice> = slices
        .indexed(index::BY_SERVICE, &format!("{}/{}", key.namespace, key.name))
        .iter()
        .map(|e| e.decode())
        .collect();
    Some(convert::state(service, decoded.iter().filter(|s| !has_label(s, convert::HEADLESS))))
}

fn has_label(s: &EndpointSlice, label: &str) -> bool {
    s.metadata.labels.as_ref().is_some_and(|l| l.contains_key(label))
}

fn health_check_reports(snapshot: &Snapshot, node: &str) -> HashMap<u16, Report> {
    let mut out = HashMap::new();
    for state in snapshot.values() {
        let svc = &state.service;
        let Some(port) = svc.health_check_node_port.filter(|_| svc.external_policy_local()) else { continue };
        let local_endpoints = state
            .endpoints
            .values()
            .flatten()
            .filter(|e| e.ready && e.is_local(node))
            .map(|e| e.ip)
            .collect::<BTreeSet<_>>()
            .len();
        out.insert(port, Report { service: svc.key.clone(), local_endpoints });
    }
    out
}

fn mark(pending: &Mutex<Pending>, wake: &Notify, f: impl FnOnce(&mut Pending)) {
    f(&mut pending.lock().unwrap_or_else(|e| e.into_inner()));
    wake.notify_one();
}

fn key_of(ns: Option<&String>, name: Option<&String>) -> ServiceKey {
    ServiceKey::new(ns.cloned().unwrap_or_default(), name.cloned().unwrap_or_default())
}

fn follow_services(informer: &Informer<K8sService>, pending: Arc<Mutex<Pending>>, wake: Arc<Notify>) {
    let mut sub = informer.subscribe();
    tokio::spawn(async move {
        while let Some(event) = sub.next().await {
            mark(&pending, &wake, |p| match event {
                Event::Apply { new: s, .. } | Event::Delete(s) => {
                    p.keys.insert(key_of(s.metadata.namespace.as_ref(), s.metadata.name.as_ref()));
                    p.service_changes += 1;
                }
                Event::Synced => p.all = true,
            });
        }
    });
}

fn follow_slices(informer: &Informer<Encoded<EndpointSlice>>, pending: Arc<Mutex<Pending>>, wake: Arc<Notify>) {
    let mut sub = informer.subscribe();
    tokio::spawn(async move {
        while let Some(event) = sub.next().await {
            mark(&pending, &wake, |p| match event {
                Event::Apply { new, old } => {
                    for s in std::iter::once(&new).chain(old.iter()) {
                        if let Some(key) = slice_service(s) {
                            p.keys.insert(key);
                        }
                    }
                    if let Some(t) = trigger_time(&new) {
                        p.triggers.push(t);
                    }
                    p.endpoint_changes += 1;
                }
                Event::Delete(s) => {
                    if let Some(key) = slice_service(&s) {
                        p.keys.insert(key);
                    }
                    p.endpoint_changes += 1;
                }
                Event::Synced => p.all = true,
            });
        }
    });
}

fn slice_service(s: &Encoded<EndpointSlice>) -> Option<ServiceKey> {
    let name = s.labels().find(|(k, _)| *k == convert::SERVICE_NAME).map(|(_, v)| v.to_owned())?;
    Some(ServiceKey::new(s.namespace(), name))
}

fn trigger_time(s: &Encoded<EndpointSlice>) -> Option<jiff::Timestamp> {
    let slice = s.decode();
    slice.metadata.annotations?.get("endpoints.kubernetes.io/last-change-trigger-time")?.parse().ok()
}

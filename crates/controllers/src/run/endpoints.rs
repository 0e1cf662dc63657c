//! One loop running the EndpointSlice, Endpoints and EndpointSlice-mirroring controllers.
//!
//! Reflectors keep Services, Pods, EndpointSlices, Endpoints and Nodes in memory; every event
//! marks the Services it may affect as dirty; a single worker drains the dirty set (after a
//! short debounce), runs the pure reconcilers on what the reflectors hold and writes the
//! plans with create / replace / delete. After writing, the worker waits until the reflectors
//! have seen its own writes, so the next reconcile of the same Service never works from a
//! stale view (which could otherwise create duplicate slices).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::endpoints::{LAST_CHANGE_TRIGGER_TIME_ANNOTATION, desired_endpoints, needs_update};
use crate::endpointslice::{self, format_trigger_time, selects};
use crate::mirroring;

use super::index::Index;
use super::shared::{Ev, PodFeed};

/// Settings of the controllers.
#[derive(Clone, Debug)]
pub struct Options {
    /// Most endpoints per EndpointSlice (kube-controller-manager's `--max-endpoints-per-slice`).
    pub max_endpoints_per_slice: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_endpoints_per_slice: endpointslice::DEFAULT_MAX_ENDPOINTS_PER_SLICE }
    }
}

/// Wait after an event before reconciling, so bursts collapse into one pass.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Delay before retrying a Service whose writes failed or conflicted.
const RETRY: Duration = Duration::from_millis(500);
/// How long to wait for the reflectors to show the worker's own writes.
const OWN_WRITES_TIMEOUT: Duration = Duration::from_secs(5);
/// Services reconciled at once (each waits on its own API writes).
const CONCURRENCY: usize = 16;

/// A Service, by namespace and name.
type Key = (String, String);

/// What an event makes dirty.
enum Dirty {
    Service(Key),
    /// Everything (a relist finished, or node zones changed).
    All,
}

fn ix(index: &Mutex<Index>) -> std::sync::MutexGuard<'_, Index> {
    index.lock().unwrap_or_else(|e| e.into_inner())
}

fn key_of<K: Resource>(o: &K) -> Key {
    (o.namespace().unwrap_or_default(), o.name_any())
}

fn selector_of(s: &Service) -> Option<BTreeMap<String, String>> {
    s.spec.as_ref().and_then(|spec| spec.selector.clone())
}

fn slice_entry(s: &EndpointSlice) -> Option<(String, String)> {
    let svc = s.labels().get(endpointslice::LABEL_SERVICE_NAME)?.clone();
    Some((svc, s.resource_version().unwrap_or_default()))
}

struct Stores {
    services: Store<Service>,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
    endpoints: Store<Endpoints>,
    nodes: Store<Node>,
}

/// Runs the EndpointSlice, Endpoints and mirroring controllers until the process ends.
pub async fn run_service_endpoints(client: Client, opts: Options, pods: PodFeed) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pods_ready = pods.ready();
    let index = Arc::new(Mutex::new(Index::default()));
    let (i1, i2, i3) = (index.clone(), index.clone(), index.clone());
    let stores = Stores {
        services: watch::<Service>(&client, &tx, move |ev| match ev {
            Ev::Apply(s) => {
                ix(&i1).set_service(key_of(s), selector_of(s));
                vec![Dirty::Service(key_of(s))]
            }
            Ev::Delete(s) => {
                ix(&i1).set_service(key_of(s), None);
                vec![Dirty::Service(key_of(s))]
            }
            Ev::Relisted(store) => {
                let mut index = ix(&i1);
                index.clear_services();
                for s in store.state() {
                    index.set_service(key_of(&*s), selector_of(&s));
                }
                vec![]
            }
        }),
        pods: pods.follow(&tx, move |ev| match ev {
            Ev::Apply(p) => {
                let labels = p.metadata.labels.clone().unwrap_or_default();
                ix(&i2).set_pod(key_of(p), Some(labels)).into_iter().map(Dirty::Service).collect()
            }
            Ev::Delete(p) => ix(&i2).set_pod(key_of(p), None).into_iter().map(Dirty::Service).collect(),
            Ev::Relisted(store) => {
                let mut index = ix(&i2);
                index.clear_pods();
                for p in store.state() {
                    index.set_pod(key_of(&*p), Some(p.metadata.labels.clone().unwrap_or_default()));
                }
                vec![]
            }
        }),
        slices: watch::<EndpointSlice>(&client, &tx, move |ev| match ev {
            Ev::Apply(s) => ix(&i3).set_slice(key_of(s), slice_entry(s)).into_iter().map(Dirty::Service).collect(),
            Ev::Delete(s) => ix(&i3).set_slice(key_of(s), None).into_iter().map(Dirty::Service).collect(),
            Ev::Relisted(store) => {
                let mut index = ix(&i3);
                index.clear_slices();
                for s in store.state() {
                    index.set_slice(key_of(&*s), slice_entry(&s));
                }
                vec![]
            }
        }),
        endpoints: watch::<Endpoints>(&client, &tx, |ev| match ev {
            Ev::Apply(e) | Ev::Delete(e) => vec![Dirty::Service(key_of(e))],
            Ev::Relisted(_) => vec![],
        }),
        nodes: watch::<Node>(&client, &tx, |ev| match ev {
            Ev::Apply(_) | Ev::Delete(_) => vec![Dirty::All],
            Ev::Relisted(_) => vec![],
        }),
    };
    drop(tx);
    pods_ready.await;
    for ready in [
        stores.services.wait_until_ready().await,
        stores.slices.wait_until_ready().await,
        stores.endpoints.wait_until_ready().await,
        stores.nodes.wait_until_ready().await,
    ] {
        if ready.is_err() {
            tracing::error!("endpoints controllers: a reflector stopped before its first sync");
            return;
        }
    }
    tracing::info!("endpoints controllers synced; reconciling");
    Worker { client, opts, stores, index, pending: BTreeMap::new() }.run(rx).await;
}

/// Starts a reflector for `K`; `on` keeps the index in step and says what each event makes
/// dirty (a finished relist also makes everything dirty).
fn watch<K>(
    client: &Client,
    tx: &mpsc::UnboundedSender<Dirty>,
    mut on: impl FnMut(Ev<'_, K>) -> Vec<Dirty> + Send + 'static,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(Api::<K>::all(client.clone()), watcher::Config::default()))
        .default_backoff();
    let tx = tx.clone();
    let store = reader.clone();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let dirty = match event {
                Ok(watcher::Event::Apply(o)) => on(Ev::Apply(&o)),
                Ok(watcher::Event::Delete(o)) => on(Ev::Delete(&o)),
                Ok(watcher::Event::InitDone) => {
                    let mut d = on(Ev::Relisted(&store));
                    d.push(Dirty::All);
                    d
                }
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => Vec::new(),
                Err(e) => {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                    Vec::new()
                }
            };
            for d in dirty {
                if tx.send(d).is_err() {
                    return;
                }
            }
        }
    });
    reader
}

struct Worker {
    client: Client,
    opts: Options,
    stores: Stores,
    index: Arc<Mutex<Index>>,
    /// Dirty Services and when they are due.
    pending: BTreeMap<Key, Instant>,
}

/// Outcome of writing one object.
enum Write {
    /// Written; the reflector should eventually show this name at this resourceVersion.
    Stored(String, String),
    /// Deleted (or already gone); the reflector should eventually not show this name.
    Gone(String),
    /// Conflict or not found: the view was stale; retry later.
    Retry,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Dirty>) {
        self.mark_all(Instant::now());
        loop {
            let next = self.pending.values().min().copied();
            tokio::select! {
                d = rx.recv() => match d {
                    Some(d) => self.mark(d, Instant::now() + DEBOUNCE),
                    None => return,
                },
                _ = sleep_until(next) => {
                    let now = Instant::now();
                    let due: Vec<Key> = self.pending.iter().filter(|(_, t)| **t <= now).map(|(k, _)| k.clone()).collect();
                    for key in &due {
                        self.pending.remove(key);
                    }
                    let this = &self;
                    let results: Vec<(Key, bool)> = futures::stream::iter(due)
                        .map(|key| async move {
                            let ok = this.sync(&key).await;
                            (key, ok)
                        })
                        .buffer_unordered(CONCURRENCY)
                        .collect()
                        .await;
                    for (key, ok) in results {
                        if !ok {
                            self.pending.entry(key).or_insert_with(|| Instant::now() + RETRY);
                        }
                    }
                }
            }
        }
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        ix(&self.index)
    }

    fn mark(&mut self, d: Dirty, due: Instant) {
        match d {
            Dirty::Service(k) => self.mark_key(k, due),
            Dirty::All => self.mark_all(due),
        }
    }

    fn mark_key(&mut self, k: Key, due: Instant) {
        let t = self.pending.entry(k).or_insert(due);
        if due < *t {
            *t = due;
        }
    }

    /// Every Service, and every name a slice or Endpoints refers to (their Service may be gone).
    fn mark_all(&mut self, due: Instant) {
        let mut keys = BTreeSet::new();
        for s in self.stores.services.state() {
            keys.insert((s.namespace().unwrap_or_default(), s.name_any()));
        }
        keys.extend(self.index().services_with_slices().cloned());
        for e in self.stores.endpoints.state() {
            keys.insert((e.namespace().unwrap_or_default(), e.name_any()));
        }
        for k in keys {
            self.mark_key(k, due);
        }
    }

    /// Reconciles one Service; false when it must be retried.
    async fn sync(&self, key: &Key) -> bool {
        let (ns, name) = key;
        let service = self.stores.services.get(&reflector::ObjectRef::new(name).within(ns));
        let slice_names = self.index().slices_for(key);
        let slices: Vec<EndpointSlice> = slice_names
            .iter()
            .filter_map(|n| self.stores.slices.get(&reflector::ObjectRef::new(n).within(ns)))
            .filter(|s| s.labels().get(endpointslice::LABEL_SERVICE_NAME) == Some(name))
            .map(|s| (*s).clone())
            .collect();
        let managed_by = |s: &EndpointSlice, who: &str| {
            s.labels().get(endpointslice::LABEL_MANAGED_BY).map(String::as_str) == Some(who)
        };
        let endpoints = self.stores.endpoints.get(&reflector::ObjectRef::new(name).within(ns));
        let trigger = format_trigger_time(jiff::Timestamp::now());

        let mut ok = true;
        let mut slice_writes = Vec::new();
        let mut endpoints_writes = Vec::new();
        match &service {
            None => {
                // The Service is gone: its slices go (garbage collection would get there too)
                // and so does the Endpoints this controller made for it.
                for s in slices.iter().filter(|s| {
                    managed_by(s, endpointslice::CONTROLLER_NAME) || managed_by(s, mirroring::CONTROLLER_NAME)
                }) {
                    slice_writes.push(self.delete_slice(ns, s).await);
                }
                if let Some(e) = endpoints.as_deref().filter(|e| made_by_controller(e)) {
                    endpoints_writes.push(self.delete_endpoints(ns, e).await);
                }
            }
            Some(service) => {
                let candidates = match selector_of(service) {
                    Some(sel) => self.index().pods_for(ns, &sel),
                    None => vec![],
                };
                let pods: Vec<Pod> = candidates
                    .iter()
                    .filter_map(|n| self.stores.pods.get(&reflector::ObjectRef::new(n).within(ns)))
                    .filter(|p| selects(service, p))
                    .map(|p| (*p).clone())
                    .collect();
                let zones: BTreeMap<String, String> = self
                    .stores
                    .nodes
                    .state()
                    .into_iter()
                    .filter_map(|n| {
                        n.labels().get(endpointslice::LABEL_TOPOLOGY_ZONE).map(|z| (n.name_any(), z.clone()))
                    })
                    .collect();

                // EndpointSlices for the selector.
                let managed: Vec<EndpointSlice> =
                    slices.iter().filter(|s| managed_by(s, endpointslice::CONTROLLER_NAME)).cloned().collect();
                let plan = endpointslice::reconcile(&endpointslice::Input {
                    service,
                    pods: &pods,
                    existing: &managed,
                    node_zones: &zones,
                    max_endpoints_per_slice: self.opts.max_endpoints_per_slice,
                    trigger_time: Some(&trigger),
                });
                if !plan.is_empty() {
                    tracing::info!(namespace = %ns, service = %name, create = plan.create.len(), update = plan.update.len(), delete = plan.delete.len(), "endpointslices");
                }
                for s in &plan.delete {
                    slice_writes.push(self.delete_slice(ns, s).await);
                }
                for s in &plan.update {
                    slice_writes.push(self.replace_slice(ns, s).await);
                }
                for s in &plan.create {
                    slice_writes.push(self.create_slice(ns, s).await);
                }

                // Mirrored slices for a selectorless Service's Endpoints.
                let plan = mirroring::reconcile_mirrored(service, endpoints.as_deref(), &slices);
                if !plan.is_empty() {
                    tracing::info!(namespace = %ns, service = %name, create = plan.create.len(), update = plan.update.len(), delete = plan.delete.len(), "mirrored endpointslices");
                }
                for s in &plan.delete {
                    slice_writes.push(self.delete_slice(ns, s).await);
                }
                for s in &plan.update {
                    slice_writes.push(self.replace_slice(ns, s).await);
                }
                for s in &plan.create {
                    slice_writes.push(self.create_slice(ns, s).await);
                }

                // The Endpoints object.
                match (desired_endpoints(service, &pods, Some(&trigger)), endpoints.as_deref()) {
                    (Some(desired), None) => endpoints_writes.push(self.create_endpoints(ns, &desired).await),
                    (Some(mut desired), Some(current)) => {
                        if needs_update(current, &desired) {
                            desired.metadata.resource_version = current.metadata.resource_version.clone();
                            desired.metadata.uid = current.metadata.uid.clone();
                            desired.metadata.creation_timestamp = current.metadata.creation_timestamp.clone();
                            endpoints_writes.push(self.replace_endpoints(ns, &desired).await);
                        }
                    }
                    (None, Some(current)) if made_by_controller(current) => {
                        endpoints_writes.push(self.delete_endpoints(ns, current).await);
                    }
                    (None, _) => {}
                }
            }
        }
        ok &= slice_writes.iter().all(|w| !matches!(w, Write::Retry));
        ok &= endpoints_writes.iter().all(|w| !matches!(w, Write::Retry));
        // Slices are read through the index, so the index must show our slice writes.
        let index = self.index.clone();
        ok &= wait_until_seen(ns, &slice_writes, |name| {
            ix(&index).slice_version(&(ns.to_owned(), name.to_owned())).map(str::to_owned)
        })
        .await;
        let store = &self.stores.endpoints;
        ok &= wait_until_seen(ns, &endpoints_writes, |name| {
            store.get(&reflector::ObjectRef::new(name).within(ns)).map(|o| o.resource_version().unwrap_or_default())
        })
        .await;
        ok
    }

    fn slices_api(&self, ns: &str) -> Api<EndpointSlice> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn endpoints_api(&self, ns: &str) -> Api<Endpoints> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn create_slice(&self, ns: &str, s: &EndpointSlice) -> Write {
        stored(ns, "create endpointslice", self.slices_api(ns).create(&PostParams::default(), s).await)
    }

    async fn replace_slice(&self, ns: &str, s: &EndpointSlice) -> Write {
        let name = s.name_any();
        stored(ns, "replace endpointslice", self.slices_api(ns).replace(&name, &PostParams::default(), s).await)
    }

    async fn delete_slice(&self, ns: &str, s: &EndpointSlice) -> Write {
        deleted(
            ns,
            "delete endpointslice",
            &s.name_any(),
            self.slices_api(ns).delete(&s.name_any(), &delete_params(s.uid())).await.map(|_| ()),
        )
    }

    async fn create_endpoints(&self, ns: &str, e: &Endpoints) -> Write {
        stored(ns, "create endpoints", self.endpoints_api(ns).create(&PostParams::default(), e).await)
    }

    async fn replace_endpoints(&self, ns: &str, e: &Endpoints) -> Write {
        let name = e.name_any();
        stored(ns, "replace endpoints", self.endpoints_api(ns).replace(&name, &PostParams::default(), e).await)
    }

    async fn delete_endpoints(&self, ns: &str, e: &Endpoints) -> Write {
        deleted(
            ns,
            "delete endpoints",
            &e.name_any(),
            self.endpoints_api(ns).delete(&e.name_any(), &delete_params(e.uid())).await.map(|_| ()),
        )
    }
}

/// Endpoints this controller wrote carry the last-change-trigger-time annotation; those a user
/// wrote for a selectorless Service (usually) do not and are left alone.
fn made_by_controller(e: &Endpoints) -> bool {
    e.annotations().contains_key(LAST_CHANGE_TRIGGER_TIME_ANNOTATION)
}

fn delete_params(uid: Option<String>) -> DeleteParams {
    DeleteParams {
        preconditions: uid.map(|uid| Preconditions { uid: Some(uid), resource_version: None }),
        ..DeleteParams::default()
    }
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

fn stored<K: Resource>(ns: &str, what: &str, r: Result<K, kube::Error>) -> Write {
    match r {
        Ok(o) => {
            let meta = o.meta();
            tracing::debug!(namespace = %ns, name = ?meta.name, "{what}");
            Write::Stored(meta.name.clone().unwrap_or_default(), meta.resource_version.clone().unwrap_or_default())
        }
        Err(e) => {
            match api_code(&e) {
                Some(404 | 409) => tracing::debug!(namespace = %ns, error = %e, "{what}: stale view; requeued"),
                _ => tracing::warn!(namespace = %ns, error = %e, "{what} failed; requeued"),
            }
            Write::Retry
        }
    }
}

fn deleted(ns: &str, what: &str, name: &str, r: Result<(), kube::Error>) -> Write {
    match r {
        Ok(_) => Write::Gone(name.to_string()),
        Err(e) if api_code(&e) == Some(404) => Write::Gone(name.to_string()),
        Err(e) => {
            match api_code(&e) {
                Some(409) => tracing::debug!(namespace = %ns, name, error = %e, "{what}: stale view; requeued"),
                _ => tracing::warn!(namespace = %ns, name, error = %e, "{what} failed; requeued"),
            }
            Write::Retry
        }
    }
}

/// Waits until `current` (name -> resourceVersion held) shows the worker's own writes;
/// false on timeout.
async fn wait_until_seen(ns: &str, writes: &[Write], current: impl Fn(&str) -> Option<String>) -> bool {
    if writes.iter().all(|w| matches!(w, Write::Retry)) {
        return true;
    }
    let deadline = Instant::now() + OWN_WRITES_TIMEOUT;
    loop {
        let seen = writes.iter().all(|w| match w {
            Write::Retry => true,
            Write::Stored(name, rv) => at_least(current(name).as_deref(), rv),
            Write::Gone(name) => current(name).is_none(),
        });
        if seen {
            return true;
        }
        if Instant::now() >= deadline {
            tracing::warn!(namespace = %ns, "watches did not show our writes in time; requeued");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether resource version `seen` is `wanted` or newer (numeric when both parse, else equal).
fn at_least(seen: Option<&str>, wanted: &str) -> bool {
    let Some(seen) = seen else { return false };
    match (seen.parse::<u64>(), wanted.parse::<u64>()) {
        (Ok(a), Ok(b)) => a >= b,
        _ => seen == wanted,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

//! One loop running the ReplicaSet, Deployment and StatefulSet controllers.
//!
//! Reflectors keep Pods, ReplicaSets, Deployments and StatefulSets in memory; every event marks
//! the objects it may affect as dirty (a pod its controller owner, a ReplicaSet itself and its
//! Deployment owner); a single worker drains the dirty set (after a short debounce), runs the
//! pure reconcilers of [`crate::workloads`] on what the reflectors hold and writes the plans:
//! pods are created (`generateName` for ReplicaSets, fixed names for StatefulSets) and deleted,
//! ReplicaSets created and scaled (merge patch of `spec.replicas`), revision annotations set,
//! and statuses written through the status subresource when they changed. After writing, the
//! worker waits until the reflectors show its own writes, so the next reconcile of the same
//! object never works from a stale view (which could otherwise create duplicate pods).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::record_event;
use crate::workloads::{deployment, replicaset, statefulset};

/// Wait after an event before reconciling, so bursts collapse into one pass.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Delay before retrying an object whose writes failed or conflicted.
const RETRY: Duration = Duration::from_millis(500);
/// How long to wait for the reflectors to show the worker's own writes.
const OWN_WRITES_TIMEOUT: Duration = Duration::from_secs(5);
/// `source.component` of the events each controller records (as kube-controller-manager names them).
const REPLICASET_CONTROLLER: &str = "replicaset-controller";
const DEPLOYMENT_CONTROLLER: &str = "deployment-controller";
const STATEFULSET_CONTROLLER: &str = "statefulset-controller";

/// The kinds of controller objects reconciled here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    ReplicaSet,
    Deployment,
    StatefulSet,
}

/// A controller object, by kind, namespace and name.
type Key = (Kind, String, String);

/// What an event makes dirty.
enum Dirty {
    Key(Key),
    /// Everything (a relist finished).
    All,
}

struct Stores {
    pods: Store<Pod>,
    replica_sets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    stateful_sets: Store<StatefulSet>,
}

/// Pods by the UID of their controller, kept by the pod feed so that a reconcile reads only
/// the pods it controls (the reconcilers look at no others) instead of copying every pod of
/// the namespace, with each pod's resourceVersion so that own writes are checked against
/// what the reconciles read.
#[derive(Default)]
struct Owned {
    by_owner: HashMap<String, BTreeSet<(String, String)>>,
    pods: HashMap<(String, String), (Option<String>, String)>,
}

impl Owned {
    fn set(&mut self, key: (String, String), now: Option<(Option<String>, String)>) {
        let old = match &now {
            Some(v) => self.pods.insert(key.clone(), v.clone()),
            None => self.pods.remove(&key),
        };
        if let Some((Some(uid), _)) = old
            && let Some(set) = self.by_owner.get_mut(&uid)
        {
            set.remove(&key);
            if set.is_empty() {
                self.by_owner.remove(&uid);
            }
        }
        if let Some((Some(uid), _)) = now {
            self.by_owner.entry(uid).or_default().insert(key);
        }
    }

    fn reset<'a>(&mut self, pods: impl Iterator<Item = &'a Pod>) {
        self.by_owner.clear();
        self.pods.clear();
        for p in pods {
            self.set(pod_key(p), Some(pod_entry(p)));
        }
    }
}

fn pod_key(p: &Pod) -> (String, String) {
    (p.metadata.namespace.clone().unwrap_or_default(), p.metadata.name.clone().unwrap_or_default())
}

fn pod_entry(p: &Pod) -> (Option<String>, String) {
    let owner =
        p.metadata.owner_references.iter().flatten().find(|r| r.controller == Some(true)).map(|r| r.uid.clone());
    (owner, p.metadata.resource_version.clone().unwrap_or_default())
}

fn owned(index: &Mutex<Owned>) -> std::sync::MutexGuard<'_, Owned> {
    index.lock().unwrap_or_else(|e| e.into_inner())
}

/// The controller owner of an object, as a key, when it is of a kind reconciled here.
fn owner_key(meta: &kube::api::ObjectMeta) -> Option<Key> {
    let owner = meta.owner_references.iter().flatten().find(|r| r.controller == Some(true))?;
    let kind = match (owner.api_version.as_str(), owner.kind.as_str()) {
        ("apps/v1", "ReplicaSet") => Kind::ReplicaSet,
        ("apps/v1", "Deployment") => Kind::Deployment,
        ("apps/v1", "StatefulSet") => Kind::StatefulSet,
        _ => return None,
    };
    Some((kind, meta.namespace.clone().unwrap_or_default(), owner.name.clone()))
}

fn key_of<K: Resource>(kind: Kind, o: &K) -> Key {
    (kind, o.meta().namespace.clone().unwrap_or_default(), o.meta().name.clone().unwrap_or_default())
}

/// Runs the ReplicaSet, Deployment and StatefulSet controllers until the process ends.
pub async fn run_workloads(client: Client, pods: super::PodFeed) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pods_ready = pods.ready();
    let index = Arc::new(Mutex::new(Owned::default()));
    let ix = index.clone();
    let stores = Stores {
        pods: pods.follow(&tx, move |ev| match ev {
            super::shared::Ev::Apply(p) => {
                owned(&ix).set(pod_key(p), Some(pod_entry(p)));
                owner_key(&p.metadata).map(Dirty::Key).into_iter().collect()
            }
            super::shared::Ev::Delete(p) => {
                owned(&ix).set(pod_key(p), None);
                owner_key(&p.metadata).map(Dirty::Key).into_iter().collect()
            }
            super::shared::Ev::Relisted(store) => {
                let all = store.state();
                owned(&ix).reset(all.iter().map(|p| p.as_ref()));
                vec![Dirty::All]
            }
        }),
        replica_sets: watch::<ReplicaSet>(&client, &tx, |rs| {
            let mut out = vec![Dirty::Key(key_of(Kind::ReplicaSet, rs))];
            out.extend(owner_key(&rs.metadata).map(Dirty::Key));
            out
        }),
        deployments: watch::<Deployment>(&client, &tx, |d| vec![Dirty::Key(key_of(Kind::Deployment, d))]),
        stateful_sets: watch::<StatefulSet>(&client, &tx, |s| vec![Dirty::Key(key_of(Kind::StatefulSet, s))]),
    };
    drop(tx);
    pods_ready.await;
    for ready in [
        stores.replica_sets.wait_until_ready().await,
        stores.deployments.wait_until_ready().await,
        stores.stateful_sets.wait_until_ready().await,
    ] {
        if ready.is_err() {
            tracing::error!("workload controllers: a reflector stopped before its first sync");
            return;
        }
    }
    tracing::info!("workload controllers synced; reconciling");
    Worker { client, stores, owned: index, pending: BTreeMap::new() }.run(rx).await;
}

/// Starts a reflector for `K` and forwards what each event makes dirty.
fn watch<K>(
    client: &Client,
    tx: &mpsc::UnboundedSender<Dirty>,
    affected: impl Fn(&K) -> Vec<Dirty> + Send + 'static,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(Api::<K>::all(client.clone()), watcher::Config::default()))
        .default_backoff();
    let tx = tx.clone();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let dirty = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => affected(&o),
                Ok(watcher::Event::InitDone) => vec![Dirty::All],
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
    stores: Stores,
    owned: Arc<Mutex<Owned>>,
    /// Dirty objects and when they are due.
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
                    Some(Dirty::Key(k)) => self.mark_key(k, Instant::now() + DEBOUNCE),
                    Some(Dirty::All) => self.mark_all(Instant::now() + DEBOUNCE),
                    None => return,
                },
                _ = sleep_until(next) => {
                    let now = Instant::now();
                    let due: Vec<Key> = self.pending.iter().filter(|(_, t)| **t <= now).map(|(k, _)| k.clone()).collect();
                    for key in due {
                        self.pending.remove(&key);
                        if !self.sync(&key).await {
                            self.pending.entry(key).or_insert_with(|| Instant::now() + RETRY);
                        }
                    }
                }
            }
        }
    }

    fn mark_key(&mut self, k: Key, due: Instant) {
        let t = self.pending.entry(k).or_insert(due);
        if due < *t {
            *t = due;
        }
    }

    fn mark_all(&mut self, due: Instant) {
        let mut keys = Vec::new();
        keys.extend(self.stores.replica_sets.state().iter().map(|o| key_of(Kind::ReplicaSet, o.as_ref())));
        keys.extend(self.stores.deployments.state().iter().map(|o| key_of(Kind::Deployment, o.as_ref())));
        keys.extend(self.stores.stateful_sets.state().iter().map(|o| key_of(Kind::StatefulSet, o.as_ref())));
        for k in keys {
            self.mark_key(k, due);
        }
    }

    /// Reconciles one object; false when it must be retried.
    async fn sync(&self, key: &Key) -> bool {
        let (kind, ns, name) = key;
        match kind {
            Kind::ReplicaSet => self.sync_replica_set(ns, name).await,
            Kind::Deployment => self.sync_deployment(ns, name).await,
            Kind::StatefulSet => self.sync_stateful_set(ns, name).await,
        }
    }

    /// The pods `uid` controls.
    fn pods_of(&self, uid: Option<String>) -> Vec<Pod> {
        let Some(uid) = uid else { return vec![] };
        let keys: Vec<(String, String)> =
            owned(&self.owned).by_owner.get(&uid).into_iter().flatten().cloned().collect();
        keys.iter()
            .filter_map(|(ns, name)| self.stores.pods.get(&reflector::ObjectRef::new(name).within(ns)))
            .map(|p| (*p).clone())
            .collect()
    }

    /// Waits until the owner index (which the reconciles read) shows our pod writes.
    async fn finish_pods(&self, ns: &str, writes: &[Write]) -> bool {
        let ok = writes.iter().all(|w| !matches!(w, Write::Retry));
        let index = self.owned.clone();
        let current =
            move |name: &str| owned(&index).pods.get(&(ns.to_owned(), name.to_owned())).map(|(_, rv)| rv.clone());
        wait_until(ns, writes, current).await && ok
    }

    async fn sync_replica_set(&self, ns: &str, name: &str) -> bool {
        let Some(rs) = self.stores.replica_sets.get(&reflector::ObjectRef::new(name).within(ns)) else {
            return true;
        };
        if rs.metadata.deletion_timestamp.is_some() {
            return true;
        }
        let pods = self.pods_of(rs.uid());
        let now = jiff::Timestamp::now().to_string();
        let plan = replicaset::reconcile_at(&rs, &pods, Some(&now));
        if !plan.create.is_empty() || !plan.delete.is_empty() {
            tracing::info!(namespace = %ns, replicaset = %name, create = plan.create.len(), delete = plan.delete.len(), "replicaset pods");
        }
        let pod_writes =
            self.write_pods(ns, &pods, &plan.create, &plan.delete, Kind::ReplicaSet, rs.object_ref(&())).await;
        let mut own_writes = Vec::new();
        let mut status = plan.status;
        status.observed_generation = rs.metadata.generation;
        if rs.status.as_ref() != Some(&status) {
            let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
            own_writes.push(stored(
                ns,
                "replicaset status",
                patch_status(&api, name, rs.status.as_ref(), &status).await,
            ));
        }
        self.finish_pods(ns, &pod_writes).await & self.finish(ns, &own_writes, &self.stores.replica_sets).await
    }

    async fn sync_stateful_set(&self, ns: &str, name: &str) -> bool {
        let Some(set) = self.stores.stateful_sets.get(&reflector::ObjectRef::new(name).within(ns)) else {
            return true;
        };
        if set.metadata.deletion_timestamp.is_some() {
            return true;
        }
        let pods = self.pods_of(set.uid());
        let now = jiff::Timestamp::now().to_string();
        let plan = statefulset::reconcile_at(&set, &pods, Some(&now));
        if !plan.create.is_empty() || !plan.delete.is_empty() {
            tracing::info!(namespace = %ns, statefulset = %name, create = plan.create.len(), delete = plan.delete.len(), "statefulset pods");
        }
        let pod_writes =
            self.write_pods(ns, &pods, &plan.create, &plan.delete, Kind::StatefulSet, set.object_ref(&())).await;
        let mut own_writes = Vec::new();
        let mut status = plan.status;
        status.observed_generation = set.metadata.generation;
        if set.status.as_ref() != Some(&status) {
            let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
            own_writes.push(stored(
                ns,
                "statefulset status",
                patch_status(&api, name, set.status.as_ref(), &status).await,
            ));
        }
        self.finish_pods(ns, &pod_writes).await & self.finish(ns, &own_writes, &self.stores.stateful_sets).await
    }

    async fn sync_deployment(&self, ns: &str, name: &str) -> bool {
        let Some(d) = self.stores.deployments.get(&reflector::ObjectRef::new(name).within(ns)) else {
            return true;
        };
        if d.metadata.deletion_timestamp.is_some() {
            return true;
        }
        let rss: Vec<ReplicaSet> = self
            .stores
            .replica_sets
            .state()
            .into_iter()
            .filter(|rs| rs.namespace().as_deref() == Some(ns))
            .map(|rs| (*rs).clone())
            .collect();
        let now = jiff::Timestamp::now().to_string();
        let plan = deployment::reconcile(&d, &rss, &now);
        let rs_api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
        let pp = PatchParams::default();
        let mut rs_writes = Vec::new();
        let involved = d.object_ref(&());
        if let Some(rs) = &plan.create_rs {
            tracing::info!(namespace = %ns, deployment = %name, replicaset = ?rs.metadata.name, "create replicaset");
            let created = rs_api.create(&PostParams::default(), rs).await;
            let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            if let Ok(created) = &created
                && replicas > 0
            {
                let message = format!("Scaled up replica set {} from 0 to {replicas}", created.name_any());
                self.event(involved.clone(), "ScalingReplicaSet", &message, DEPLOYMENT_CONTROLLER).await;
            }
            rs_writes.push(stored(ns, "create replicaset", created));
        }
        for (rs, replicas) in &plan.scale {
            tracing::info!(namespace = %ns, deployment = %name, replicaset = %rs, replicas, "scale replicaset");
            let old = rss
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(rs.as_str()))
                .and_then(|r| r.spec.as_ref())
                .and_then(|s| s.replicas)
                .unwrap_or(1);
            let patch = json!({"spec": {"replicas": replicas}});
            let scaled = rs_api.patch(rs, &pp, &Patch::Merge(&patch)).await;
            if scaled.is_ok() && old != *replicas {
                let direction = if *replicas > old { "up" } else { "down" };
                let message = format!("Scaled {direction} replica set {rs} from {old} to {replicas}");
                self.event(involved.clone(), "ScalingReplicaSet", &message, DEPLOYMENT_CONTROLLER).await;
            }
            rs_writes.push(stored(ns, "scale replicaset", scaled));
        }
        if let Some((rs, revision)) = &plan.update_revision {
            let patch = json!({"metadata": {"annotations": {deployment::ANNOTATION_REVISION: revision}}});
            rs_writes.push(stored(ns, "replicaset revision", rs_api.patch(rs, &pp, &Patch::Merge(&patch)).await));
        }
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let mut own_writes = Vec::new();
        if let Some(revision) = &plan.revision
            && d.annotations().get(deployment::ANNOTATION_REVISION) != Some(revision)
        {
            let patch = json!({"metadata": {"annotations": {deployment::ANNOTATION_REVISION: revision}}});
            own_writes.push(stored(ns, "deployment revision", api.patch(name, &pp, &Patch::Merge(&patch)).await));
        }
        let mut status = plan.status;
        status.observed_generation = d.metadata.generation;
        if d.status.as_ref() != Some(&status) {
            own_writes.push(stored(
                ns,
                "deployment status",
                patch_status(&api, name, d.status.as_ref(), &status).await,
            ));
        }
        self.finish(ns, &rs_writes, &self.stores.replica_sets).await
            & self.finish(ns, &own_writes, &self.stores.deployments).await
    }

    /// Creates and deletes pods; `pods` is the view the plan was made from (for UIDs). Each
    /// successful create and delete is recorded as an event on `owner` (a ReplicaSet or a
    /// StatefulSet, as `kind` says), worded as kube-controller-manager words it.
    async fn write_pods(
        &self,
        ns: &str,
        pods: &[Pod],
        create: &[Pod],
        delete: &[String],
        kind: Kind,
        owner: ObjectReference,
    ) -> Vec<Write> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let set = owner.name.clone().unwrap_or_default();
        let mut writes = Vec::new();
        for name in delete {
            let uid = pods.iter().find(|p| p.metadata.name.as_deref() == Some(name.as_str())).and_then(|p| p.uid());
            let result = api.delete(name, &delete_params(uid)).await.map(|_| ());
            if result.is_ok() {
                let (message, component) = match kind {
                    Kind::StatefulSet => {
                        (format!("delete Pod {name} in StatefulSet {set} successful"), STATEFULSET_CONTROLLER)
                    }
                    _ => (format!("Deleted pod: {name}"), REPLICASET_CONTROLLER),
                };
                self.event(owner.clone(), "SuccessfulDelete", &message, component).await;
            }
            writes.push(deleted(ns, "delete pod", name, result));
        }
        for pod in create {
            let result = api.create(&PostParams::default(), pod).await;
            if let Ok(created) = &result {
                let name = created.name_any();
                let (message, component) = match kind {
                    Kind::StatefulSet => {
                        (format!("create Pod {name} in StatefulSet {set} successful"), STATEFULSET_CONTROLLER)
                    }
                    _ => (format!("Created pod: {name}"), REPLICASET_CONTROLLER),
                };
                self.event(owner.clone(), "SuccessfulCreate", &message, component).await;
            }
            writes.push(stored(ns, "create pod", result));
        }
        writes
    }

    /// Records a Normal event about `involved` (best effort).
    async fn event(&self, involved: ObjectReference, reason: &str, message: &str, component: &str) {
        record_event(&self.client, involved, "Normal", reason, message, component).await;
    }

    /// Whether all writes succeeded and the reflector shows them.
    async fn finish<K>(&self, ns: &str, writes: &[Write], store: &Store<K>) -> bool
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        let ok = writes.iter().all(|w| !matches!(w, Write::Retry));
        wait_for_writes(store, ns, writes).await && ok
    }
}

/// Merge-patches the status subresource to `status`; top-level fields the current status has and
/// the new one lacks are sent as `null`, so they are cleared rather than kept.
async fn patch_status<K, S>(api: &Api<K>, name: &str, current: Option<&S>, status: &S) -> Result<K, kube::Error>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    S: serde::Serialize,
{
    let mut body = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
    if let (Some(serde_json::Value::Object(cur)), serde_json::Value::Object(new)) =
        (current.and_then(|c| serde_json::to_value(c).ok()), &mut body)
    {
        for k in cur.keys() {
            new.entry(k.clone()).or_insert(serde_json::Value::Null);
        }
    }
    let patch = json!({ "status": body });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await
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

/// Waits until the reflector shows the worker's own writes; false on timeout.
async fn wait_for_writes<K>(store: &Store<K>, ns: &str, writes: &[Write]) -> bool
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let current = |name: &str| {
        store
            .get(&reflector::ObjectRef::new(name).within(ns))
            .map(|o| o.meta().resource_version.clone().unwrap_or_default())
    };
    wait_until(ns, writes, current).await
}

/// Waits until `current` (name -> resourceVersion held) shows our writes; false on timeout.
async fn wait_until(ns: &str, writes: &[Write], current: impl Fn(&str) -> Option<String>) -> bool {
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
        tokio::time::sleep(Duration::from_millis(10)).await;
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

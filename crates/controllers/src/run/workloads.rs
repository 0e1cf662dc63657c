//! The ReplicaSet, ReplicationController, Deployment, StatefulSet, DaemonSet and Job
//! controllers, on the process's shared informers (DaemonSets and Jobs in the submodules).
//!
//! Every event marks the objects it may affect as dirty (a pod its controller owner, a
//! ReplicaSet itself and its Deployment owner, a node every DaemonSet when its labels, taints
//! or existence change); the reconcile queue runs the pure reconcilers
//! of [`crate::workloads`] on what the informers hold and writes the plans: pods are created
//! (`generateName` for ReplicaSets, fixed names for StatefulSets) and deleted, ReplicaSets
//! created and scaled (merge patch of `spec.replicas`), revision annotations set, and statuses
//! written through the status subresource when they changed. After writing, a reconcile waits
//! until the informers show its own writes, so the next reconcile of the same object never
//! works from a stale view (which could otherwise create duplicate pods).

mod daemonset;
mod job;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use component::index::{self, BY_NAMESPACE, BY_OWNER};
use component::informer::{Event, Informer, Informers};
use component::pod::LeanPod;
use component::reconcile::{self, Dirty, QueueOptions, Reconciler, Written, delete_params};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;

use super::follow;
use crate::workloads::{deployment, replicaset, replication, statefulset};

/// `source.component` of the events each controller records (as kube-controller-manager names them).
const REPLICASET_CONTROLLER: &str = "replicaset-controller";
const DEPLOYMENT_CONTROLLER: &str = "deployment-controller";
const STATEFULSET_CONTROLLER: &str = "statefulset-controller";
const REPLICATION_CONTROLLER: &str = "replication-controller";
const DAEMONSET_CONTROLLER: &str = "daemonset-controller";
const JOB_CONTROLLER: &str = "job-controller";

/// The kinds of controller objects reconciled here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    ReplicaSet,
    Deployment,
    StatefulSet,
    ReplicationController,
    DaemonSet,
    Job,
}

/// A controller object, by kind, namespace and name.
type Key = (Kind, String, String);

/// The controller owner of an object, as a key, when it is of a kind reconciled here.
fn owner_key(meta: &kube::api::ObjectMeta) -> Option<Key> {
    let owner = meta.owner_references.iter().flatten().find(|r| r.controller == Some(true))?;
    controller_key(meta.namespace.as_deref().unwrap_or(""), owner)
}

fn pod_owner_key(pod: &LeanPod) -> Option<Key> {
    controller_key(&pod.namespace, pod.controller()?)
}

fn controller_key(ns: &str, owner: &OwnerReference) -> Option<Key> {
    let kind = match (owner.api_version.as_str(), owner.kind.as_str()) {
        ("apps/v1", "ReplicaSet") => Kind::ReplicaSet,
        ("apps/v1", "Deployment") => Kind::Deployment,
        ("apps/v1", "StatefulSet") => Kind::StatefulSet,
        ("v1", "ReplicationController") => Kind::ReplicationController,
        ("apps/v1", "DaemonSet") => Kind::DaemonSet,
        ("batch/v1", "Job") => Kind::Job,
        _ => return None,
    };
    Some((kind, ns.to_owned(), owner.name.clone()))
}

fn key_of<K: Resource>(kind: Kind, o: &K) -> Key {
    (kind, o.meta().namespace.clone().unwrap_or_default(), o.meta().name.clone().unwrap_or_default())
}

struct Worker {
    client: Client,
    pods: Informer<LeanPod>,
    replica_sets: Informer<ReplicaSet>,
    deployments: Informer<Deployment>,
    stateful_sets: Informer<StatefulSet>,
    replication_controllers: Informer<ReplicationController>,
    daemon_sets: Informer<DaemonSet>,
    jobs: Informer<Job>,
    nodes: Informer<Node>,
    /// Feeds keys back into the queue after a delay (Job backoffs, deadlines, TTLs).
    requeue: mpsc::UnboundedSender<Dirty<Key>>,
    /// Per Job UID: the failure count last seen and when it was first seen (the pod backoff).
    job_failures: Mutex<HashMap<String, (i32, jiff::Timestamp)>>,
}

/// Runs the workload controllers until the process ends.
pub async fn run_workloads(informers: Informers) -> Result<(), String> {
    let (tx, rx) = mpsc::unbounded_channel();
    let w = Worker {
        client: informers.client().clone(),
        pods: informers.get(),
        replica_sets: informers.get(),
        deployments: informers.get(),
        stateful_sets: informers.get(),
        replication_controllers: informers.get(),
        daemon_sets: informers.get(),
        jobs: informers.get(),
        nodes: informers.get(),
        requeue: tx.clone(),
        job_failures: Mutex::new(HashMap::new()),
    };
    w.pods.index(BY_OWNER, index::pod_controller_uid);
    w.replica_sets.index(BY_NAMESPACE, index::namespace::<ReplicaSet>);
    follow(&w.pods, &tx, |ev| match ev {
        Event::Apply { new, old } => {
            let keys: BTreeSet<Key> =
                [Some(&new), old.as_ref()].into_iter().flatten().filter_map(|p| pod_owner_key(p)).collect();
            keys.into_iter().map(Dirty::Key).collect()
        }
        Event::Delete(p) => pod_owner_key(&p).map(Dirty::Key).into_iter().collect(),
        Event::Synced => vec![Dirty::All],
    });
    follow(&w.replica_sets, &tx, |ev| match ev {
        Event::Apply { new: rs, .. } | Event::Delete(rs) => {
            let mut out = vec![Dirty::Key(key_of(Kind::ReplicaSet, &*rs))];
            out.extend(owner_key(&rs.metadata).map(Dirty::Key));
            out
        }
        Event::Synced => vec![Dirty::All],
    });
    follow(&w.deployments, &tx, |ev| match ev {
        Event::Apply { new: d, .. } | Event::Delete(d) => vec![Dirty::Key(key_of(Kind::Deployment, &*d))],
        Event::Synced => vec![Dirty::All],
    });
    follow(&w.stateful_sets, &tx, |ev| match ev {
        Event::Apply { new: s, .. } | Event::Delete(s) => vec![Dirty::Key(key_of(Kind::StatefulSet, &*s))],
        Event::Synced => vec![Dirty::All],
    });
    follow(&w.replication_controllers, &tx, |ev| match ev {
        Event::Apply { new: o, .. } | Event::Delete(o) => vec![Dirty::Key(key_of(Kind::ReplicationController, &*o))],
        Event::Synced => vec![Dirty::All],
    });
    follow(&w.daemon_sets, &tx, |ev| match ev {
        Event::Apply { new: o, .. } | Event::Delete(o) => vec![Dirty::Key(key_of(Kind::DaemonSet, &*o))],
        Event::Synced => vec![Dirty::All],
    });
    follow(&w.jobs, &tx, |ev| match ev {
        Event::Apply { new: o, .. } | Event::Delete(o) => vec![Dirty::Key(key_of(Kind::Job, &*o))],
        Event::Synced => vec![Dirty::All],
    });
    let daemon_sets = w.daemon_sets.clone();
    follow(&w.nodes, &tx, move |ev| {
        let relevant = match &ev {
            Event::Apply { new, old: Some(old) } => daemonset::node_changed(old, new),
            Event::Apply { old: None, .. } | Event::Delete(_) | Event::Synced => true,
        };
        let mut keys = Vec::new();
        if relevant {
            daemon_sets.for_each(|o| keys.push(Dirty::Key(key_of(Kind::DaemonSet, o))));
        }
        keys
    });
    drop(tx);
    tokio::join!(
        w.pods.ready(),
        w.replica_sets.ready(),
        w.deployments.ready(),
        w.stateful_sets.ready(),
        w.replication_controllers.ready(),
        w.daemon_sets.ready(),
        w.jobs.ready(),
        w.nodes.ready()
    );
    tracing::info!("workload controllers synced; reconciling");
    reconcile::run(&w, rx, QueueOptions::default()).await;
    Err("the workload controllers' event feed ended".to_owned())
}

impl Reconciler for Worker {
    type Key = Key;

    fn all(&self) -> Vec<Key> {
        let mut keys = Vec::new();
        self.replica_sets.for_each(|o| keys.push(key_of(Kind::ReplicaSet, o)));
        self.deployments.for_each(|o| keys.push(key_of(Kind::Deployment, o)));
        self.stateful_sets.for_each(|o| keys.push(key_of(Kind::StatefulSet, o)));
        self.replication_controllers.for_each(|o| keys.push(key_of(Kind::ReplicationController, o)));
        self.daemon_sets.for_each(|o| keys.push(key_of(Kind::DaemonSet, o)));
        self.jobs.for_each(|o| keys.push(key_of(Kind::Job, o)));
        keys
    }

    async fn reconcile(&self, key: &Key) -> bool {
        self.sync(key).await
    }
}

impl Worker {
    /// Reconciles one object; false when it must be retried.
    async fn sync(&self, key: &Key) -> bool {
        let (kind, ns, name) = key;
        match kind {
            Kind::ReplicaSet => self.sync_replica_set(ns, name).await,
            Kind::Deployment => self.sync_deployment(ns, name).await,
            Kind::StatefulSet => self.sync_stateful_set(ns, name).await,
            Kind::ReplicationController => self.sync_replication_controller(ns, name).await,
            Kind::DaemonSet => self.sync_daemon_set(ns, name).await,
            Kind::Job => self.sync_job(ns, name).await,
        }
    }

    /// Marks `key` dirty again after `delay`.
    fn requeue_after(&self, key: Key, delay: Duration) {
        let tx = self.requeue.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Dirty::Key(key));
        });
    }

    async fn sync_replication_controller(&self, ns: &str, name: &str) -> bool {
        let Some(rc) = self.replication_controllers.get(ns, name) else {
            return true;
        };
        if rc.metadata.deletion_timestamp.is_some() {
            return true;
        }
        let pods = self.pods_of(rc.uid());
        let now = jiff::Timestamp::now().to_string();
        let plan = replication::reconcile_at(&rc, &pods, Some(&now));
        let writes = PodPlan { pods: &pods, create: &plan.create, delete: &plan.delete };
        let (informer, current) = (&self.replication_controllers, rc.status.as_ref());
        self.write_plan(informer, &rc, Kind::ReplicationController, writes, current, &plan.status).await
    }

    /// The pods `uid` controls.
    fn pods_of(&self, uid: Option<String>) -> Vec<Pod> {
        let Some(uid) = uid else { return vec![] };
        self.pods.indexed(BY_OWNER, &uid).iter().map(|p| p.to_pod()).collect()
    }

    async fn sync_replica_set(&self, ns: &str, name: &str) -> bool {
        let Some(rs) = self.replica_sets.get(ns, name) else {
            return true;
        };
        if rs.metadata.deletion_timestamp.is_some() {
            return true;
        }
        let pods = self.pods_of(rs.uid());
        let now = jiff::Timestamp::now().to_string();
        let plan = replicaset::reconcile_at(&rs, &pods, Some(&now));
        let mut status = plan.status;
        status.observed_generation = rs.metadata.generation;
        let current = rs.status.as_ref();
        let writes = PodPlan { pods: &pods, create: &plan.create, delete: &plan.delete };
        self.write_plan(&self.replica_sets, &rs, Kind::ReplicaSet, writes, current, &status).await
    }

    async fn sync_stateful_set(&self, ns: &str, name: &str) -> bool {
        let Some(set) = self.stateful_sets.get(ns, name) else {
            return true;
        };
        if set.metadata.deletion_timestamp.is_some() {
            return true;
        }
        let pods = self.pods_of(set.uid());
        let now = jiff::Timestamp::now().to_string();
        let plan = statefulset::reconcile_at(&set, &pods, Some(&now));
        let mut status = plan.status;
        status.observed_generation = set.metadata.generation;
        let current = set.status.as_ref();
        let writes = PodPlan { pods: &pods, create: &plan.create, delete: &plan.delete };
        self.write_plan(&self.stateful_sets, &set, Kind::StatefulSet, writes, current, &status).await
    }

    async fn sync_deployment(&self, ns: &str, name: &str) -> bool {
        let Some(d) = self.deployments.get(ns, name) else {
            return true;
        };
        if d.metadata.deletion_timestamp.is_some() {
            return true;
        }
        let rss: Vec<ReplicaSet> =
            self.replica_sets.indexed(BY_NAMESPACE, ns).into_iter().map(Arc::unwrap_or_clone).collect();
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
            rs_writes.push(Written::stored(ns, "create replicaset", created));
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
            rs_writes.push(Written::stored(ns, "scale replicaset", scaled));
        }
        if let Some((rs, revision)) = &plan.update_revision {
            let patch = json!({"metadata": {"annotations": {deployment::ANNOTATION_REVISION: revision}}});
            rs_writes.push(Written::stored(
                ns,
                "replicaset revision",
                rs_api.patch(rs, &pp, &Patch::Merge(&patch)).await,
            ));
        }
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let mut own_writes = Vec::new();
        if let Some(revision) = &plan.revision
            && d.annotations().get(deployment::ANNOTATION_REVISION) != Some(revision)
        {
            let patch = json!({"metadata": {"annotations": {deployment::ANNOTATION_REVISION: revision}}});
            own_writes.push(Written::stored(
                ns,
                "deployment revision",
                api.patch(name, &pp, &Patch::Merge(&patch)).await,
            ));
        }
        let mut status = plan.status;
        status.observed_generation = d.metadata.generation;
        if d.status.as_ref() != Some(&status) {
            own_writes.push(Written::stored(
                ns,
                "deployment status",
                patch_status(&api, name, d.status.as_ref(), &status).await,
            ));
        }
        reconcile::settled(&self.replica_sets, ns, &rs_writes).await
            & reconcile::settled(&self.deployments, ns, &own_writes).await
    }

    /// Applies a pod plan (creates and deletes, logged and recorded as events) and writes the
    /// owner's status when it changed; true when every write succeeded and the informers show
    /// them.
    async fn write_plan<K, S>(
        &self,
        informer: &Informer<K>,
        owner: &K,
        kind: Kind,
        plan: PodPlan<'_>,
        current: Option<&S>,
        status: &S,
    ) -> bool
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + component::informer::Watched,
        S: serde::Serialize + PartialEq,
    {
        let ns = owner.meta().namespace.clone().unwrap_or_default();
        let name = owner.meta().name.clone().unwrap_or_default();
        let what = K::kind(&()).to_ascii_lowercase();
        if !plan.create.is_empty() || !plan.delete.is_empty() {
            tracing::info!(namespace = %ns, kind = %what, name = %name, create = plan.create.len(), delete = plan.delete.len(), "pods");
        }
        let pod_writes = self.write_pods(&ns, plan.pods, plan.create, plan.delete, kind, owner.object_ref(&())).await;
        let mut own_writes = Vec::new();
        if current != Some(status) {
            let api: Api<K> = Api::namespaced(self.client.clone(), &ns);
            let written = patch_status(&api, &name, current, status).await;
            own_writes.push(Written::stored(&ns, &format!("{what} status"), written));
        }
        reconcile::settled(&self.pods, &ns, &pod_writes).await & reconcile::settled(informer, &ns, &own_writes).await
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
    ) -> Vec<Written> {
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
                    other => (format!("Deleted pod: {name}"), pods_component(other)),
                };
                self.event(owner.clone(), "SuccessfulDelete", &message, component).await;
            }
            writes.push(Written::deleted(ns, "delete pod", name, result));
        }
        for pod in create {
            let result = api.create(&PostParams::default(), pod).await;
            if let Ok(created) = &result {
                let name = created.name_any();
                let (message, component) = match kind {
                    Kind::StatefulSet => {
                        (format!("create Pod {name} in StatefulSet {set} successful"), STATEFULSET_CONTROLLER)
                    }
                    other => (format!("Created pod: {name}"), pods_component(other)),
                };
                self.event(owner.clone(), "SuccessfulCreate", &message, component).await;
            }
            writes.push(Written::stored(ns, "create pod", result));
        }
        writes
    }

    /// Records a Normal event about `involved` (best effort).
    async fn event(&self, involved: ObjectReference, reason: &str, message: &str, component: &str) {
        component::events::record(&self.client, involved, "Normal", reason, message, component).await;
    }
}

/// A pod plan to write: the pods it was made from (for UIDs), what to create and delete.
struct PodPlan<'a> {
    pods: &'a [Pod],
    create: &'a [Pod],
    delete: &'a [String],
}

/// The component that reports pod creations and deletions of a kind (as kube-controller-manager
/// names its controllers).
fn pods_component(kind: Kind) -> &'static str {
    match kind {
        Kind::ReplicationController => REPLICATION_CONTROLLER,
        Kind::DaemonSet => DAEMONSET_CONTROLLER,
        Kind::Job => JOB_CONTROLLER,
        Kind::StatefulSet => STATEFULSET_CONTROLLER,
        Kind::ReplicaSet | Kind::Deployment => REPLICASET_CONTROLLER,
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

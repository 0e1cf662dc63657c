//! Deployment: roll ReplicaSets (upstream `pkg/controller/deployment`: `sync.go`, `rolling.go`,
//! `recreate.go`, `progress.go`, `util/deployment_util.go`).
//!
//! - Owned ReplicaSets are those with a controller reference to the Deployment's UID. The *new*
//!   one is the oldest whose template equals the Deployment's ignoring the `pod-template-hash`
//!   label; all others are *old*.
//! - Without a new ReplicaSet one is created, named `<deployment>-<hash>` where the hash is
//!   [`template_hash`] (mixed with `status.collisionCount` when set), its template and selector
//!   carrying `pod-template-hash: <hash>`, annotated `deployment.kubernetes.io/revision` = highest
//!   old revision + 1. A reused new ReplicaSet (rollback) whose revision is lower gets the new
//!   revision through [`Plan::update_revision`]. A name taken by a different ReplicaSet bumps
//!   `status.collisionCount` and creates nothing this sync (upstream retries the same way).
//! - RollingUpdate (default, maxSurge/maxUnavailable 25%, surge rounded up, unavailable down, both
//!   0 means unavailable 1): the new ReplicaSet grows to at most `replicas + maxSurge` pods in
//!   total (`NewRSNewReplicas`); old ReplicaSets first lose their unavailable pods, then shrink,
//!   oldest first, as long as `replicas - maxUnavailable` pods stay available.
//! - Recreate: old ReplicaSets go to 0; once none of them reports pods, the new one is created (or
//!   scaled) at full size.
//! - Status (`calculateStatus`) is summed from the ReplicaSets after this sync's scaling:
//!   `replicas`/`readyReplicas`/`availableReplicas` from their statuses, `updatedReplicas` from the
//!   new one's, `unavailableReplicas` = sum of spec replicas - available. Conditions: `Available`
//!   (MinimumReplicasAvailable / MinimumReplicasUnavailable) and `Progressing`
//!   (NewReplicaSetCreated, ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded
//!   after `progressDeadlineSeconds`, 600 when unset), with upstream's timestamp rules.
//!
//! Not done (differences from upstream): proportional scaling of several active ReplicaSets when
//! `spec.replicas` changes mid-rollout (the rolling logic still converges, just not
//! proportionally) and the `desired-replicas`/`max-replicas` annotations it relies on; paused
//! Deployments only get a status (upstream still scales them); cleanup of old ReplicaSets beyond
//! `revisionHistoryLimit`; copying the Deployment's annotations onto ReplicaSets; the
//! ReplicaFailure condition; adoption of orphaned ReplicaSets; hashes differ from upstream's
//! (JSON instead of Go's spew dump is hashed), so a Portico controller will not recognize
//! ReplicaSets a real kube-controller-manager made by name, only by template.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::{compute_hash, controller_ref, is_controlled_by, parse_now};

/// Label tying a ReplicaSet and its pods to one Deployment template.
pub const LABEL_POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Annotation with a ReplicaSet's (and its Deployment's) revision.
pub const ANNOTATION_REVISION: &str = "deployment.kubernetes.io/revision";
/// Condition types.
pub const CONDITION_AVAILABLE: &str = "Available";
/// See [`CONDITION_AVAILABLE`].
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Condition reasons, as upstream's `deploymentutil` constants.
pub const REASON_MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
/// See [`REASON_MINIMUM_REPLICAS_AVAILABLE`].
pub const REASON_MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
/// See [`REASON_MINIMUM_REPLICAS_AVAILABLE`].
pub const REASON_NEW_RS_CREATED: &str = "NewReplicaSetCreated";
/// See [`REASON_MINIMUM_REPLICAS_AVAILABLE`].
pub const REASON_RS_UPDATED: &str = "ReplicaSetUpdated";
/// See [`REASON_MINIMUM_REPLICAS_AVAILABLE`].
pub const REASON_NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// See [`REASON_MINIMUM_REPLICAS_AVAILABLE`].
pub const REASON_TIMED_OUT: &str = "ProgressDeadlineExceeded";
/// Default `spec.progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;

/// What to write.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// A new ReplicaSet to create (with a name, not a generateName).
    pub create_rs: Option<ReplicaSet>,
    /// `(ReplicaSet name, new spec.replicas)`, at most one entry per ReplicaSet; ReplicaSets
    /// whose replicas stay unchanged are not listed.
    pub scale: Vec<(String, i32)>,
    /// `(ReplicaSet name, revision)`: set the revision annotation of a reused new ReplicaSet.
    pub update_revision: Option<(String, String)>,
    /// The value for the Deployment's own `deployment.kubernetes.io/revision` annotation (that of
    /// the new ReplicaSet), when there is a new ReplicaSet.
    pub revision: Option<String>,
    /// The status to record.
    pub status: DeploymentStatus,
}

/// The `pod-template-hash` of a Deployment template (no collision count).
pub fn template_hash(template: &PodTemplateSpec) -> String {
    compute_hash(template, None)
}

/// Resolve an absolute or percent value against `total` (upstream
/// `intstr.GetScaledValueFromIntOrPercent`); garbage reads as 0.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> i32 {
    match v {
        IntOrString::Int(i) => *i,
        IntOrString::String(s) => {
            let Some(pct) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else { return 0 };
            let x = pct * i64::from(total);
            let v = if round_up { (x + 99).div_euclid(100) } else { x.div_euclid(100) };
            i32::try_from(v).unwrap_or(0)
        }
    }
}

fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()) == Some("Recreate")
}

/// `(maxSurge, maxUnavailable)` resolved against `spec.replicas` (upstream `ResolveFenceposts`).
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
    let quarter = IntOrString::String("25%".into());
    let surge = ru.and_then(|r| r.max_surge.as_ref()).unwrap_or(&quarter);
    let unavailable = ru.and_then(|r| r.max_unavailable.as_ref()).unwrap_or(&quarter);
    let surge = scaled_value(surge, replicas(d), true);
    let unavailable = scaled_value(unavailable, replicas(d), false);
    if surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) }
}

/// Upstream `MaxUnavailable`: 0 for Recreate or no replicas, else at most `spec.replicas`.
fn max_unavailable(d: &Deployment) -> i32 {
    if is_recreate(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

fn rs_name(rs: &ReplicaSet) -> &str {
    rs.metadata.name.as_deref().unwrap_or_default()
}
fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}
fn rs_status(rs: &ReplicaSet) -> ReplicaSetStatus {
    rs.status.clone().unwrap_or_default()
}
fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION_REVISION)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(LABEL_POD_TEMPLATE_HASH);
    }
    t
}

/// Upstream `EqualIgnoreHash`.
fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

/// Working state of one sync: the owned ReplicaSets as they will be after the plan.
struct Sync<'a> {
    d: &'a Deployment,
    all: Vec<ReplicaSet>,
    new: Option<usize>,
    plan: Plan,
}

impl Sync<'_> {
    fn set_replicas(&mut self, i: usize, n: i32) {
        if spec_replicas(&self.all[i]) == n {
            return;
        }
        self.all[i].spec.get_or_insert_with(Default::default).replicas = Some(n);
        let name = rs_name(&self.all[i]).to_string();
        match self.plan.scale.iter_mut().find(|(rs, _)| *rs == name) {
            Some(entry) => entry.1 = n,
            None => self.plan.scale.push((name, n)),
        }
    }

    fn old(&self) -> Vec<usize> {
        (0..self.all.len()).filter(|i| Some(*i) != self.new).collect()
    }

    fn total_spec(&self, idx: &[usize]) -> i32 {
        idx.iter().map(|i| spec_replicas(&self.all[*i])).sum()
    }

    /// Upstream `NewRSNewReplicas` for a new ReplicaSet currently at `current` replicas.
    fn new_rs_new_replicas(&self, current: i32) -> i32 {
        if is_recreate(self.d) {
            return replicas(self.d);
        }
        let all: Vec<usize> = (0..self.all.len()).collect();
        let pods = self.total_spec(&all);
        let max_total = replicas(self.d) + fenceposts(self.d).0;
        if pods >= max_total {
            return current;
        }
        current + (max_total - pods).min(replicas(self.d) - current).max(0)
    }

    fn create_new(&mut self, status: &mut DeploymentStatus, now: Timestamp, revision: i64) {
        let d = self.d;
        let mut template = d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        let hash = compute_hash(&template, status.collision_count);
        let name = format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or_default());
        // All owned ReplicaSets are in `self.all`; a same-named one there is not the new one.
        if self.all.iter().any(|rs| rs_name(rs) == name) {
            status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
            return;
        }
        let labels = template.metadata.get_or_insert_with(Default::default).labels.get_or_insert_with(Default::default);
        labels.insert(LABEL_POD_TEMPLATE_HASH.into(), hash.clone());
        let labels = labels.clone();
        let mut selector = d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        selector.match_labels.get_or_insert_with(Default::default).insert(LABEL_POD_TEMPLATE_HASH.into(), hash);
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: d.metadata.namespace.clone(),
                labels: Some(labels),
                annotations: Some(BTreeMap::from([(ANNOTATION_REVISION.into(), revision.to_string())])),
                owner_references: Some(vec![controller_ref("apps/v1", "Deployment", &d.metadata)]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: d.spec.as_ref().and_then(|s| s.min_ready_seconds),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        self.all.push(rs);
        let i = self.all.len() - 1;
        self.new = Some(i);
        let n = self.new_rs_new_replicas(0);
        self.all[i].spec.get_or_insert_with(Default::default).replicas = Some(n);
        self.plan.create_rs = Some(self.all[i].clone());
        set_condition(
            status,
            condition(
                CONDITION_PROGRESSING,
                "True",
                REASON_NEW_RS_CREATED,
                format!("Created new replica set \"{name}\""),
                now,
            ),
        );
    }

    /// Upstream `reconcileNewReplicaSet`.
    fn reconcile_new(&mut self) {
        let Some(i) = self.new else { return };
        let current = spec_replicas(&self.all[i]);
        let want = replicas(self.d);
        if current > want {
            self.set_replicas(i, want);
        } else if current < want {
            let n = self.new_rs_new_replicas(current);
            self.set_replicas(i, n);
        }
    }

    /// Upstream `reconcileOldReplicaSets` (with `cleanupUnhealthyReplicas` and
    /// `scaleDownOldReplicaSetsForRollingUpdate`).
    fn reconcile_old(&mut self) {
        let old = self.old();
        if self.total_spec(&old) == 0 {
            return;
        }
        let all: Vec<usize> = (0..self.all.len()).collect();
        let min_available = replicas(self.d) - fenceposts(self.d).1;
        let new_unavailable =
            self.new.map(|i| spec_replicas(&self.all[i]) - rs_status(&self.all[i]).available_replicas.unwrap_or(0));
        let max_scaled_down = self.total_spec(&all) - min_available - new_unavailable.unwrap_or(0);
        if max_scaled_down <= 0 {
            return;
        }
        // Old ReplicaSets are in creation order (see `reconcile`).
        let mut cleaned = 0;
        for &i in &old {
            if cleaned >= max_scaled_down {
                break;
            }
            let spec = spec_replicas(&self.all[i]);
            let unhealthy = spec - rs_status(&self.all[i]).available_replicas.unwrap_or(0);
            if spec == 0 || unhealthy <= 0 {
                continue;
            }
            let n = (max_scaled_down - cleaned).min(unhealthy);
            cleaned += n;
            self.set_replicas(i, spec - n);
        }
        let available: i32 = self.all.iter().map(|rs| rs_status(rs).available_replicas.unwrap_or(0)).sum();
        if available <= min_available {
            return;
        }
        let total = available - min_available;
        let mut scaled = 0;
        for &i in &old {
            if scaled >= total {
                break;
            }
            let spec = spec_replicas(&self.all[i]);
            if spec == 0 {
                continue;
            }
            let n = spec.min(total - scaled);
            scaled += n;
            self.set_replicas(i, spec - n);
        }
    }

    /// Upstream `rolloutRecreate` minus the new ReplicaSet creation; true when the new
    /// ReplicaSet may be created or scaled up.
    fn recreate_scale_down_old(&mut self) -> bool {
        let mut scaled = false;
        for i in self.old() {
            if spec_replicas(&self.all[i]) != 0 {
                self.set_replicas(i, 0);
                scaled = true;
            }
        }
        !scaled && self.old().iter().all(|i| rs_status(&self.all[*i]).replicas == 0)
    }
}

fn condition(type_: &str, status: &str, reason: &str, message: String, now: Timestamp) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

fn get_condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.iter().flatten().find(|c| c.type_ == type_)
}

fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = status.conditions.as_mut() {
        c.retain(|c| c.type_ != type_);
    }
}

/// Upstream `SetDeploymentCondition`: no-op when status and reason are unchanged; keeps the
/// transition time when only the reason changes.
fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(current) = get_condition(status, &cond.type_) {
        if current.status == cond.status && current.reason == cond.reason {
            return;
        }
        if current.status == cond.status {
            cond.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &cond.type_);
    status.conditions.get_or_insert_with(Vec::new).push(cond);
}

/// Reconcile a Deployment against all candidate ReplicaSets (those it does not control are
/// ignored). `now` (RFC 3339) stamps conditions and decides progress-deadline timeouts.
pub fn reconcile(d: &Deployment, replica_sets: &[ReplicaSet], now: &str) -> Plan {
    let now = parse_now(now);
    let meta = &d.metadata;
    let mut all: Vec<ReplicaSet> = replica_sets
        .iter()
        .filter(|rs| is_controlled_by(&rs.metadata, meta.namespace.as_deref(), meta.uid.as_deref()))
        .cloned()
        .collect();
    let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    all.sort_by(|a, b| created(a).cmp(&created(b)).then_with(|| rs_name(a).cmp(rs_name(b))));
    let template = d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let new = all.iter().position(|rs| {
        rs.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| equal_ignore_hash(t, &template))
    });
    let mut status = d.status.clone().unwrap_or_default();
    let max_old_revision =
        all.iter().enumerate().filter(|(i, _)| Some(*i) != new).map(|(_, rs)| revision(rs)).max().unwrap_or(0);
    let next_revision = max_old_revision + 1;
    let mut sync = Sync { d, all, new, plan: Plan::default() };

    if let Some(i) = new
        && revision(&sync.all[i]) < next_revision
    {
        let rs = &mut sync.all[i];
        rs.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ANNOTATION_REVISION.into(), next_revision.to_string());
        sync.plan.update_revision = Some((rs_name(rs).to_string(), next_revision.to_string()));
    }

    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    if !paused && meta.deletion_timestamp.is_none() {
        if is_recreate(d) {
            if sync.recreate_scale_down_old() {
                match sync.new {
                    None => sync.create_new(&mut status, now, next_revision),
                    Some(i) => sync.set_replicas(i, replicas(d)),
                }
            }
        } else {
            match sync.new {
                None => sync.create_new(&mut status, now, next_revision),
                Some(_) => sync.reconcile_new(),
            }
            sync.reconcile_old();
        }
    }

    sync.plan.revision = sync.new.map(|i| revision(&sync.all[i]).to_string());
    sync.plan.status = calculate_status(&sync, status, now);
    sync.plan
}

/// Upstream `calculateStatus` followed by `syncRolloutStatus`.
fn calculate_status(sync: &Sync<'_>, mut status: DeploymentStatus, now: Timestamp) -> DeploymentStatus {
    let d = sync.d;
    let old_status = d.status.clone().unwrap_or_default();
    let sum = |f: &dyn Fn(&ReplicaSetStatus) -> i32| sync.all.iter().map(|rs| f(&rs_status(rs))).sum::<i32>();
    let available = sum(&|s| s.available_replicas.unwrap_or(0));
    let total_spec: i32 = sync.all.iter().map(spec_replicas).sum();
    status.observed_generation = d.metadata.generation;
    status.replicas = Some(sum(&|s| s.replicas));
    status.updated_replicas = Some(sync.new.map(|i| rs_status(&sync.all[i]).replicas).unwrap_or(0));
    status.ready_replicas = Some(sum(&|s| s.ready_replicas.unwrap_or(0)));
    status.available_replicas = Some(available);
    status.unavailable_replicas = Some((total_spec - available).max(0));
    status.terminating_replicas = None;

    let want = replicas(d);
    if available >= want - max_unavailable(d) {
        let msg = "Deployment has minimum availability.".to_string();
        set_condition(&mut status, condition(CONDITION_AVAILABLE, "True", REASON_MINIMUM_REPLICAS_AVAILABLE, msg, now));
    } else {
        let msg = "Deployment does not have minimum availability.".to_string();
        set_condition(
            &mut status,
            condition(CONDITION_AVAILABLE, "False", REASON_MINIMUM_REPLICAS_UNAVAILABLE, msg, now),
        );
    }

    let deadline =
        d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS);
    if deadline == i32::MAX {
        remove_condition(&mut status, CONDITION_PROGRESSING);
        return status;
    }
    let subject = match sync.new {
        Some(i) => format!("ReplicaSet \"{}\"", rs_name(&sync.all[i])),
        None => format!("Deployment \"{}\"", d.metadata.name.as_deref().unwrap_or_default()),
    };
    let current = get_condition(&status, CONDITION_PROGRESSING).cloned();
    let reason_is = |r: &str| current.as_ref().and_then(|c| c.reason.as_deref()) == Some(r);
    let n = |v: Option<i32>| v.unwrap_or(0);
    let complete = status.replicas == status.updated_replicas && reason_is(REASON_NEW_RS_AVAILABLE);
    if complete {
        return status;
    }
    let deployment_complete = n(status.updated_replicas) == want
        && n(status.replicas) == want
        && n(status.available_replicas) == want
        && status.observed_generation >= d.metadata.generation;
    let progressing = n(status.updated_replicas) > n(old_status.updated_replicas)
        || n(status.replicas) - n(status.updated_replicas) < n(old_status.replicas) - n(old_status.updated_replicas)
        || n(status.ready_replicas) > n(old_status.ready_replicas)
        || n(status.available_replicas) > n(old_status.available_replicas);
    let timed_out = current.as_ref().is_some_and(|c| {
        !reason_is(REASON_NEW_RS_AVAILABLE)
            && (reason_is(REASON_TIMED_OUT)
                || c.last_update_time.as_ref().is_some_and(|t| t.0.as_second() + i64::from(deadline) < now.as_second()))
    });
    if deployment_complete {
        let msg = format!("{subject} has successfully progressed.");
        set_condition(&mut status, condition(CONDITION_PROGRESSING, "True", REASON_NEW_RS_AVAILABLE, msg, now));
    } else if progressing {
        let mut cond =
            condition(CONDITION_PROGRESSING, "True", REASON_RS_UPDATED, format!("{subject} is progressing."), now);
        if let Some(c) = current.as_ref().filter(|c| c.status == "True") {
            cond.last_transition_time = c.last_transition_time.clone();
        }
        // Always replaced, so lastUpdateTime records the latest progress.
        remove_condition(&mut status, CONDITION_PROGRESSING);
        status.conditions.get_or_insert_with(Vec::new).push(cond);
    } else if timed_out {
        let msg = format!("{subject} has timed out progressing.");
        set_condition(&mut status, condition(CONDITION_PROGRESSING, "False", REASON_TIMED_OUT, msg, now));
    }
    status
}

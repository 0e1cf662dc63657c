//! ReplicaSet: keep `spec.replicas` active pods (upstream `manageReplicas` and
//! `calculateStatus`).
//!
//! - Owned pods are those with a controller reference to the ReplicaSet's UID; active ones are not
//!   Succeeded/Failed and not being deleted.
//! - Too few: create the difference (at most [`BURST_REPLICAS`] per sync) from the template, with
//!   `generateName: <rs>-` and a controller reference.
//! - Too many: delete the lowest-ranked pods as `controller.ActivePodsWithRanks` orders them:
//!   unassigned < assigned; Pending < Unknown < Running; not ready < ready; lower
//!   `controller.kubernetes.io/pod-deletion-cost` first; more pods of this ReplicaSet on the
//!   same node first; ready for less time first; more container restarts first; newer first;
//!   then by name (upstream ends on UID and buckets ready times logarithmically; here ties fall
//!   to exact times and the name, so plans are deterministic).
//! - Status: `replicas` = active pods, `fullyLabeledReplicas` = active pods carrying all template
//!   labels, `readyReplicas`, `availableReplicas` (ready for `minReadySeconds`),
//!   `observedGeneration`; existing conditions are kept (the ReplicaFailure condition, set by
//!   upstream on API errors, is the caller's business).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::{controller_ref, is_controlled_by, is_pod_active, is_pod_available, is_pod_ready, phase, ready_since};

/// Most pods created or deleted in one sync (kube-controller-manager's `burstReplicas`).
pub const BURST_REPLICAS: usize = 500;
/// Annotation with a pod's deletion cost; lower cost is deleted first.
pub const ANNOTATION_POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// What to write: pods to create (no name, `generateName` `<rs>-`), names of pods to delete,
/// and the status to record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub create: Vec<Pod>,
    pub delete: Vec<String>,
    pub status: ReplicaSetStatus,
}

/// [`reconcile_at`] without a clock: pods count as available when ready and `minReadySeconds`
/// is 0; with `minReadySeconds > 0` no pod is available.
pub fn reconcile(rs: &ReplicaSet, pods: &[Pod]) -> Plan {
    reconcile_at(rs, pods, None)
}

/// Reconcile a ReplicaSet against all candidate pods (those it does not control are ignored);
/// `now` (RFC 3339) decides availability under `minReadySeconds`.
pub fn reconcile_at(rs: &ReplicaSet, pods: &[Pod], now: Option<&str>) -> Plan {
    let now = now.map(super::parse_now);
    let meta = &rs.metadata;
    let owned: Vec<&Pod> =
        pods.iter().filter(|p| is_controlled_by(&p.metadata, meta.namespace.as_deref(), meta.uid.as_deref())).collect();
    let active: Vec<&Pod> = owned.iter().copied().filter(|p| is_pod_active(p)).collect();
    let spec = rs.spec.as_ref();
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as usize;
    let min_ready_seconds = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);

    let mut plan = Plan { status: status(rs, &active, min_ready_seconds, now), ..Default::default() };
    if rs.metadata.deletion_timestamp.is_some() {
        return plan;
    }
    match active.len().cmp(&desired) {
        Ordering::Less => {
            let template = spec.and_then(|s| s.template.clone()).unwrap_or_default();
            let owner = controller_ref("apps/v1", "ReplicaSet", meta);
            let count = (desired - active.len()).min(BURST_REPLICAS);
            plan.create = (0..count)
                .map(|_| {
                    let mut pod = super::pod_from_template(&template, meta.namespace.as_deref(), owner.clone());
                    pod.metadata.generate_name = Some(format!("{}-", meta.name.as_deref().unwrap_or_default()));
                    pod
                })
                .collect();
        }
        Ordering::Greater => {
            let count = (active.len() - desired).min(BURST_REPLICAS);
            plan.delete = pods_to_delete(&active, count).into_iter().map(|p| name(p).to_string()).collect();
        }
        Ordering::Equal => {}
    }
    plan
}

fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

fn node(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or_default()
}

fn status(rs: &ReplicaSet, active: &[&Pod], min_ready_seconds: i32, now: Option<Timestamp>) -> ReplicaSetStatus {
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone());
    let fully_labeled = active
        .iter()
        .filter(|p| {
            template_labels.iter().flatten().all(|(k, v)| p.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
        })
        .count();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    ReplicaSetStatus {
        replicas: count(active.len()),
        fully_labeled_replicas: Some(count(fully_labeled)),
        ready_replicas: Some(count(active.iter().filter(|p| is_pod_ready(p)).count())),
        available_replicas: Some(count(active.iter().filter(|p| is_pod_available(p, min_ready_seconds, now)).count())),
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        ..Default::default()
    }
}

/// The `count` pods to delete first, lowest rank first (see the module docs).
pub fn pods_to_delete<'a>(active: &[&'a Pod], count: usize) -> Vec<&'a Pod> {
    let mut on_node: BTreeMap<&str, usize> = BTreeMap::new();
    for p in active {
        if !node(p).is_empty() {
            *on_node.entry(node(p)).or_default() += 1;
        }
    }
    let rank = |p: &Pod| if node(p).is_empty() { 0 } else { on_node[node(p)] };
    let mut sorted = active.to_vec();
    sorted.sort_by(|a, b| deletion_order(a, rank(a), b, rank(b)));
    sorted.truncate(count);
    sorted
}

fn phase_rank(pod: &Pod) -> u8 {
    match phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_POD_DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

/// `Less` when `a` should be deleted before `b` (upstream `ActivePodsWithRanks.Less`).
fn deletion_order(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> Ordering {
    let assigned = |p: &Pod| !node(p).is_empty();
    assigned(a)
        .cmp(&assigned(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_pod_ready(a).cmp(&is_pod_ready(b)))
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        .then_with(|| rank_b.cmp(&rank_a))
        .then_with(|| {
            // Ready for less time first; a ready pod without a transition time counts as just ready.
            if is_pod_ready(a) && is_pod_ready(b) {
                let since = |p: &Pod| ready_since(p).unwrap_or(Timestamp::MAX);
                since(b).cmp(&since(a))
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| max_restarts(b).cmp(&max_restarts(a)))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            match (created(a), created(b)) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => y.cmp(&x),
            }
        })
        .then_with(|| name(a).cmp(name(b)))
}

//! StatefulSet: pods with stable ordinal identities (upstream `pkg/controller/statefulset`:
//! `stateful_set_control.go`, `stateful_set_utils.go`).
//!
//! - Owned pods are those with a controller reference to the set's UID; a pod named
//!   `<set>-<ordinal>` with an ordinal in `[start, start + replicas)` (`spec.ordinals.start`,
//!   default 0) fills that slot, any other owned pod is *condemned*.
//! - Pods are built from the template named `<set>-<ordinal>`, with `hostname` = the name,
//!   `subdomain` = `spec.serviceName`, labels `statefulset.kubernetes.io/pod-name`,
//!   `apps.kubernetes.io/pod-index` and `controller-revision-hash` (= `<set>-<hash of the
//!   template>`), and a volume per `volumeClaimTemplates` entry pointing at claim
//!   `<template>-<set>-<ordinal>`.
//! - Slots are walked in ordinal order: a Failed/Succeeded pod is deleted (to be recreated next
//!   sync), a missing pod is created. With `podManagementPolicy: OrderedReady` (the default) the
//!   walk stops after any such action, at a terminating pod, and at a pod that is not Running and
//!   Ready (and available for `minReadySeconds`); with `Parallel` it carries on.
//! - Only when the walk got through: condemned pods are deleted from the highest ordinal down
//!   (OrderedReady: one per sync, waiting for terminating ones and for unhealthy ones, except
//!   that the highest unhealthy condemned pod may go), then with the RollingUpdate strategy
//!   (default) the highest pod at or above `partition` whose revision is not the current one is
//!   deleted (one per sync, only when all pods are healthy) so it is recreated from the new
//!   template.
//! - Status: `replicas` (created pods, including the ones created now), `readyReplicas`,
//!   `availableReplicas`, `currentReplicas`/`updatedReplicas` (pods of the update revision;
//!   here current = update revision, see below), `currentRevision`, `updateRevision`,
//!   `observedGeneration`.
//!
//! Not done: ControllerRevision objects and history (the revision is just the template hash, and
//! `currentRevision` always equals `updateRevision`), PersistentVolumeClaim creation and
//! retention policy, the OnDelete-vs-RollingUpdate `maxUnavailable` field, adoption.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Pod, Volume};
use k8s_openapi::jiff::Timestamp;

use super::{compute_hash, controller_ref, is_controlled_by, is_pod_available, is_pod_ready, parse_now, phase};

/// Label with the pod's name.
pub const LABEL_POD_NAME: &str = "statefulset.kubernetes.io/pod-name";
/// Label with the pod's ordinal.
pub const LABEL_POD_INDEX: &str = "apps.kubernetes.io/pod-index";
/// Label with the revision the pod was made from.
pub const LABEL_REVISION_HASH: &str = "controller-revision-hash";

/// What to write: pods to create (named), names of pods to delete, the status to record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub create: Vec<Pod>,
    pub delete: Vec<String>,
    pub status: StatefulSetStatus,
}

/// [`reconcile_at`] without a clock (no pod is available under `minReadySeconds > 0`).
pub fn reconcile(set: &StatefulSet, pods: &[Pod]) -> Plan {
    reconcile_at(set, pods, None)
}

/// The ordinal of a pod named `<parent>-<ordinal>` (upstream `getParentNameAndOrdinal`).
pub fn ordinal(set_name: &str, pod_name: &str) -> Option<i32> {
    let (parent, ord) = pod_name.rsplit_once('-')?;
    if parent != set_name || ord.is_empty() || !ord.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    ord.parse().ok()
}

/// The `controller-revision-hash` value of the set's current template.
pub fn update_revision(set: &StatefulSet) -> String {
    let template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let name = set.metadata.name.as_deref().unwrap_or_default();
    format!("{name}-{}", compute_hash(&template, set.status.as_ref().and_then(|s| s.collision_count)))
}

fn pod_revision(pod: &Pod) -> &str {
    pod.metadata.labels.as_ref().and_then(|l| l.get(LABEL_REVISION_HASH)).map(String::as_str).unwrap_or_default()
}

fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// Reconcile a StatefulSet against all candidate pods (those it does not control are ignored);
/// `now` (RFC 3339) decides availability under `minReadySeconds`.
pub fn reconcile_at(set: &StatefulSet, pods: &[Pod], now: Option<&str>) -> Plan {
    let now: Option<Timestamp> = now.map(parse_now);
    let meta = &set.metadata;
    let name = meta.name.as_deref().unwrap_or_default();
    let spec = set.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");
    let revision = update_revision(set);
    let healthy = |p: &Pod| phase(p) == "Running" && is_pod_available(p, min_ready, now);

    let mut slots: BTreeMap<i32, &Pod> = BTreeMap::new();
    let mut condemned: Vec<(i32, &Pod)> = Vec::new();
    for p in pods.iter().filter(|p| is_controlled_by(&p.metadata, meta.namespace.as_deref(), meta.uid.as_deref())) {
        match ordinal(name, p.metadata.name.as_deref().unwrap_or_default()) {
            Some(o) if o >= start && o < start + replicas => {
                slots.insert(o, p);
            }
            Some(o) => condemned.push((o, p)),
            None => condemned.push((i32::MIN, p)),
        }
    }
    condemned.sort_by_key(|(o, _)| *o);

    let mut plan = Plan::default();
    let mut status = status(set, pods, &revision, min_ready, now);
    if meta.deletion_timestamp.is_some() {
        plan.status = status;
        return plan;
    }

    let mut halted = false;
    for ord in start..start + replicas {
        let Some(pod) = slots.get(&ord) else {
            plan.create.push(new_pod(set, ord, &revision));
            status.replicas += 1;
            status.updated_replicas = Some(status.updated_replicas.unwrap_or(0) + 1);
            status.current_replicas = status.updated_replicas;
            if monotonic {
                halted = true;
                break;
            }
            continue;
        };
        if matches!(phase(pod), "Failed" | "Succeeded") {
            if !terminating(pod) {
                plan.delete.push(pod_name(pod));
            }
            if monotonic {
                halted = true;
                break;
            }
            continue;
        }
        if monotonic && (terminating(pod) || !healthy(pod)) {
            halted = true;
            break;
        }
    }

    if !halted {
        let first_unhealthy = condemned.iter().rev().find(|(_, p)| !healthy(p)).map(|(_, p)| pod_name(p));
        for (_, pod) in condemned.iter().rev() {
            if terminating(pod) {
                if monotonic {
                    halted = true;
                    break;
                }
                continue;
            }
            if monotonic && !healthy(pod) && Some(pod_name(pod)) != first_unhealthy {
                halted = true;
                break;
            }
            plan.delete.push(pod_name(pod));
            if monotonic {
                halted = true;
                break;
            }
        }
    }

    let rolling =
        spec.update_strategy.as_ref().and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate") == "RollingUpdate";
    if !halted && rolling && plan.create.is_empty() && plan.delete.is_empty() {
        let partition = spec
            .update_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0);
        let all_healthy = slots.values().all(|p| healthy(p) && !terminating(p));
        let outdated =
            slots.range(start + partition.max(0)..).rev().map(|(_, p)| *p).find(|p| pod_revision(p) != revision);
        if let Some(pod) = outdated.filter(|_| all_healthy) {
            plan.delete.push(pod_name(pod));
        }
    }

    plan.status = status;
    plan
}

fn status(
    set: &StatefulSet,
    pods: &[Pod],
    revision: &str,
    min_ready: i32,
    now: Option<Timestamp>,
) -> StatefulSetStatus {
    let meta = &set.metadata;
    let owned: Vec<&Pod> =
        pods.iter().filter(|p| is_controlled_by(&p.metadata, meta.namespace.as_deref(), meta.uid.as_deref())).collect();
    let count = |f: &dyn Fn(&Pod) -> bool| i32::try_from(owned.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX);
    let updated = count(&|p| pod_revision(p) == revision);
    StatefulSetStatus {
        replicas: count(&|_| true),
        ready_replicas: Some(count(&|p| phase(p) == "Running" && is_pod_ready(p))),
        available_replicas: Some(count(&|p| phase(p) == "Running" && is_pod_available(p, min_ready, now))),
        current_replicas: Some(updated),
        updated_replicas: Some(updated),
        current_revision: Some(revision.to_string()),
        update_revision: Some(revision.to_string()),
        observed_generation: meta.generation,
        collision_count: set.status.as_ref().and_then(|s| s.collision_count),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
    }
}

/// The pod for one ordinal (upstream `newVersionedStatefulSetPod`).
pub fn new_pod(set: &StatefulSet, ordinal: i32, revision: &str) -> Pod {
    let meta = &set.metadata;
    let set_name = meta.name.as_deref().unwrap_or_default();
    let spec = set.spec.clone().unwrap_or_default();
    let name = format!("{set_name}-{ordinal}");
    let mut pod = super::pod_from_template(
        &spec.template,
        meta.namespace.as_deref(),
        controller_ref("apps/v1", "StatefulSet", meta),
    );
    pod.metadata.name = Some(name.clone());
    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(LABEL_POD_NAME.into(), name.clone());
    labels.insert(LABEL_POD_INDEX.into(), ordinal.to_string());
    labels.insert(LABEL_REVISION_HASH.into(), revision.into());
    let pod_spec = pod.spec.get_or_insert_with(Default::default);
    pod_spec.hostname = Some(name);
    pod_spec.subdomain = spec.service_name.clone().filter(|s| !s.is_empty());
    for claim in spec.volume_claim_templates.iter().flatten() {
        let claim_template = claim.metadata.name.clone().unwrap_or_default();
        let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
        volumes.retain(|v| v.name != claim_template);
        volumes.push(Volume {
            name: claim_template.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: format!("{claim_template}-{set_name}-{ordinal}"),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    pod
}

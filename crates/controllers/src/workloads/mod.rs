//! The pure cores of kube-controller-manager's workload controllers: ReplicaSet
//! (`pkg/controller/replicaset`), ReplicationController (`pkg/controller/replication`),
//! Deployment (`pkg/controller/deployment`), StatefulSet (`pkg/controller/statefulset`),
//! DaemonSet (`pkg/controller/daemon`) and Job (`pkg/controller/job`). Each module has a
//! `reconcile` function from the observed object and the objects it owns to a `Plan` of writes
//! plus the status to record. No IO happens here; a kube-rs loop feeds them from watches and
//! applies their plans.
//!
//! Ownership: an object owns the children whose `metadata.ownerReferences` hold an entry with
//! `controller: true` and the object's UID (and that live in its namespace). Every reconcile takes
//! all candidate children and filters them itself; adoption and orphaning of children that match
//! the selector without an owner reference are not done here.
//!
//! Time: functions that need "now" take it as an RFC 3339 string (`jiff::Timestamp` syntax), so
//! they stay pure; an unparsable `now` is treated as the Unix epoch.

pub mod daemonset;
pub mod deployment;
pub mod job;
pub mod replicaset;
pub mod replication;
pub mod statefulset;

#[cfg(test)]
mod tests;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;

/// Whether `child` has a controller owner reference to `uid` and lives in `namespace`.
pub fn is_controlled_by(child: &ObjectMeta, namespace: Option<&str>, uid: Option<&str>) -> bool {
    let Some(uid) = uid else { return false };
    child.namespace.as_deref().unwrap_or_default() == namespace.unwrap_or_default()
        && child.owner_references.iter().flatten().any(|r| r.controller == Some(true) && r.uid == uid)
}

/// A controller owner reference (`controller` and `blockOwnerDeletion` true), as upstream's
/// `metav1.NewControllerRef`.
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A pod built from a template the way upstream's `controller.GetPodFromTemplate` does: labels,
/// annotations, finalizers and spec copied, namespace and controller reference set. The caller
/// sets `name` or `generateName`.
pub fn pod_from_template(template: &PodTemplateSpec, namespace: Option<&str>, owner: OwnerReference) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            namespace: namespace.map(Into::into),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Parse an RFC 3339 "now"; garbage reads as the epoch.
pub(crate) fn parse_now(now: &str) -> Timestamp {
    now.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

pub(crate) fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default()
}

/// Upstream's `controller.IsPodActive`: not Succeeded, not Failed, not being deleted.
pub fn is_pod_active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// Upstream's `podutil.IsPodReady`: the Ready condition is True.
pub use component::pod::is_ready as is_pod_ready;
use component::pod::ready_since;

/// Upstream's `podutil.IsPodAvailable`: ready, and (when `min_ready_seconds > 0`) ready for at
/// least that long at `now`. With `now == None` a pod needing `min_ready_seconds > 0` is not
/// available.
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Option<Timestamp>) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    match (ready_since(pod), now) {
        (Some(since), Some(now)) => since.as_second().saturating_add(i64::from(min_ready_seconds)) <= now.as_second(),
        _ => false,
    }
}

/// 32-bit FNV-1a, as Go's `hash/fnv.New32a`.
pub(crate) fn fnv32a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// Upstream's `rand.SafeEncodeString` over the decimal form of `n`: each digit mapped onto an
/// alphabet without vowels (so hashes never spell words) and without look-alike characters.
pub(crate) fn safe_encode(n: u32) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    n.to_string().bytes().map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char).collect()
}

/// Hash of a pod template (plus an optional collision count), shaped like upstream's
/// `controller.ComputeHash`: FNV-1a 32 of the object, then the collision count's little-endian
/// bytes, safe-encoded. The object is hashed as its JSON serialization rather than Go's
/// `spew` dump, so values differ from a real kube-controller-manager's.
pub(crate) fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut data = serde_json::to_vec(template).unwrap_or_default();
    if let Some(c) = collision_count {
        data.extend_from_slice(&(c as u32).to_le_bytes());
    }
    safe_encode(fnv32a(&data))
}

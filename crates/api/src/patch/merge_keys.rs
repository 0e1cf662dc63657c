//! Patch metadata for strategic merge patch: which lists of the served kinds merge instead of
//! being replaced, and by which key. Transcribed from the `patchStrategy:"merge"` /
//! `patchMergeKey` struct tags in k8s.io/api (core/v1, apps/v1) and k8s.io/apimachinery
//! (meta/v1 ObjectMeta, Condition). Every list not named here is replaced wholesale by a patch,
//! and every map is merged key by key.
//!
//! Paths are dotted field names; list elements do not add a segment, so
//! `containers.ports` is the `ports` list of any element of `containers`.

use crate::resources::ResourceType;

/// A list whose patch strategy is `merge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeList {
    /// Path of the list relative to the type the table describes.
    pub field: &'static str,
    /// patchMergeKey; empty for a merged list of primitives (a set).
    pub key: &'static str,
}

const fn m(field: &'static str, key: &'static str) -> MergeList {
    MergeList { field, key }
}

/// metav1.ObjectMeta.
pub(crate) const OBJECT_META: &[MergeList] = &[m("finalizers", ""), m("ownerReferences", "uid")];

/// core/v1 PodSpec, with the lists of Container and EphemeralContainer nested in it.
pub(crate) const POD_SPEC: &[MergeList] = &[
    m("volumes", "name"), // merge,retainKeys
    m("initContainers", "name"),
    m("initContainers.ports", "containerPort"),
    m("initContainers.env", "name"),
    m("initContainers.volumeMounts", "mountPath"),
    m("initContainers.volumeDevices", "devicePath"),
    m("containers", "name"),
    m("containers.ports", "containerPort"),
    m("containers.env", "name"),
    m("containers.volumeMounts", "mountPath"),
    m("containers.volumeDevices", "devicePath"),
    m("ephemeralContainers", "name"),
    m("ephemeralContainers.ports", "containerPort"),
    m("ephemeralContainers.env", "name"),
    m("ephemeralContainers.volumeMounts", "mountPath"),
    m("ephemeralContainers.volumeDevices", "devicePath"),
    m("imagePullSecrets", "name"),
    m("hostAliases", "ip"),
    m("topologySpreadConstraints", "topologyKey"),
    m("schedulingGates", "name"),
    m("resourceClaims", "name"), // merge,retainKeys
];

/// core/v1 PodStatus.
pub(crate) const POD_STATUS: &[MergeList] =
    &[m("conditions", "type"), m("podIPs", "ip"), m("hostIPs", "ip"), m("resourceClaimStatuses", "name")];

/// Any status whose only merged list is `conditions` by `type` (ServiceStatus, NamespaceStatus,
/// DeploymentStatus, ReplicaSetStatus, StatefulSetStatus).
pub(crate) const CONDITIONS: &[MergeList] = &[m("conditions", "type")];

/// core/v1 ServiceSpec.
pub(crate) const SERVICE_SPEC: &[MergeList] = &[m("ports", "port")];

/// core/v1 NodeSpec.
pub(crate) const NODE_SPEC: &[MergeList] = &[m("podCIDRs", "")];

/// core/v1 NodeStatus.
pub(crate) const NODE_STATUS: &[MergeList] = &[m("conditions", "type"), m("addresses", "type")];

/// Top-level lists of core/v1 ServiceAccount.
pub(crate) const SERVICE_ACCOUNT: &[MergeList] = &[m("secrets", "name")];

/// The tables that apply to one kind, each anchored at a path prefix ("" for the object root).
pub fn tables(rt: &ResourceType) -> &'static [(&'static str, &'static [MergeList])] {
    rt.strategy.merge_tables()
}

/// The merge metadata of the list at `path` (dotted, from the object root), if it merges.
pub fn lookup(rt: &ResourceType, path: &str) -> Option<MergeList> {
    for (prefix, table) in tables(rt) {
        let rest =
            if prefix.is_empty() { Some(path) } else { path.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) };
        if let Some(rest) = rest
            && let Some(entry) = table.iter().find(|e| e.field == rest)
        {
            return Some(*entry);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;

    #[test]
    fn pod_template_lists_merge_like_pod_lists() {
        let deploy = by_kind("apps", "Deployment").unwrap();
        assert_eq!(lookup(deploy, "spec.template.spec.containers.env").unwrap().key, "name");
        assert_eq!(lookup(deploy, "spec.template.metadata.finalizers").unwrap().key, "");
        assert_eq!(lookup(deploy, "status.conditions").unwrap().key, "type");
        assert_eq!(lookup(deploy, "spec.containers"), None);
        let pod = by_kind("", "Pod").unwrap();
        assert_eq!(lookup(pod, "spec.containers.ports").unwrap().key, "containerPort");
        assert_eq!(lookup(pod, "spec.tolerations"), None);
        let sa = by_kind("", "ServiceAccount").unwrap();
        assert_eq!(lookup(sa, "secrets").unwrap().key, "name");
        assert_eq!(lookup(sa, "imagePullSecrets"), None);
    }
}

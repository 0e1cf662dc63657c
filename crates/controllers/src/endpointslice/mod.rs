//! The pure core of Kubernetes' EndpointSlice controller (`pkg/controller/endpointslice` and
//! `staging/src/k8s.io/endpointslice`): from a Service, the Pods in its namespace and the
//! EndpointSlices this controller already manages for it, compute which slices to create,
//! update and delete. No IO happens here; the kube-rs loop that feeds [`reconcile`] and
//! applies its [`Plan`] lives elsewhere.
//!
//! What follows upstream:
//! - Services of type ExternalName and Services without a selector get nothing (empty plan).
//! - Pods are those the Service [`selects`]; terminal pods (Failed/Succeeded) and pods without
//!   an IP are skipped; terminating pods stay, with `ready = publishNotReadyAddresses ||
//!   (serving && !terminating)`, `serving` = the pod's Ready condition, `terminating` =
//!   `deletionTimestamp` set.
//! - Endpoints are grouped by address type (from `spec.ipFamilies`, falling back to the family of
//!   the cluster IP, or both families for headless Services) and by the set of ports resolved for
//!   the pod (named target ports are looked up per pod; a port the pod lacks is left out of that
//!   pod's port set, which puts the pod in another group).
//! - Packing is upstream's `reconcileByPortMapping` plus `finalize`: keep desired endpoints where
//!   they are, drop undesired ones, fill slices already being updated (fullest first), then the
//!   unchanged slice that ends closest to full, then new slices; creates are turned into updates
//!   of slices that would otherwise be deleted; an empty placeholder slice exists when a Service
//!   has no endpoints; no creates while the Service is being deleted.
//!
//! Where this differs from upstream (all deliberate, for a pure function):
//! - Upstream pops endpoints out of a hash set in arbitrary order; here they are taken in a
//!   stable order (sorted by the endpoint identity), so plans are deterministic.
//! - Zones come from [`Input::node_zones`]; a pod on a node missing from that map is *not*
//!   skipped (upstream skips pods whose Node is not in its informer cache unless
//!   publishNotReadyAddresses is set), it just gets no zone.
//! - Pod addresses come from `status.podIPs`, falling back to `status.podIP` when `podIPs` is
//!   empty (upstream reads `podIPs` only; the apiserver keeps both in step).
//! - A create turned into an update of a to-be-deleted slice keeps that slice's `name`, `uid`,
//!   `resourceVersion` and `creationTimestamp`, so it can be sent as a conditional replace.
//! - Topology hints / `trafficDistribution` are not computed; hints are dropped from endpoints
//!   that are rewritten anyway and never cause an update on their own.

mod reconcile;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

pub use reconcile::{format_trigger_time, reconcile};

/// `endpointslice.kubernetes.io/managed-by` value of slices this controller owns.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
// The labels and annotation slices carry (declared once, in `component::labels`).
pub use component::labels::{
    ENDPOINTSLICE_MANAGED_BY as LABEL_MANAGED_BY, HEADLESS as LABEL_HEADLESS,
    LAST_CHANGE_TRIGGER_TIME as ANNOTATION_LAST_CHANGE_TRIGGER_TIME, SERVICE_NAME as LABEL_SERVICE_NAME,
    TOPOLOGY_ZONE as LABEL_TOPOLOGY_ZONE,
};
/// kube-controller-manager's default `--max-endpoints-per-slice`.
pub const DEFAULT_MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// Address types (`EndpointSlice.addressType`) this controller produces.
pub const ADDRESS_TYPE_IPV4: &str = "IPv4";
/// See [`ADDRESS_TYPE_IPV4`].
pub const ADDRESS_TYPE_IPV6: &str = "IPv6";

/// Everything [`reconcile`] looks at.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The Service being reconciled.
    pub service: &'a Service,
    /// Candidate pods. Pods the Service does not [`select`](selects) (other namespace, labels not
    /// matching) are ignored, so passing every pod of the namespace is fine.
    pub pods: &'a [Pod],
    /// Slices this controller manages for the Service (label `kubernetes.io/service-name` = the
    /// Service's name and `endpointslice.kubernetes.io/managed-by` = [`CONTROLLER_NAME`]).
    /// Those not owned by the Service's UID are deleted (left over from an older Service of the
    /// same name).
    pub existing: &'a [EndpointSlice],
    /// Node name to zone (the node's `topology.kubernetes.io/zone` label).
    pub node_zones: &'a BTreeMap<String, String>,
    /// Most endpoints per slice ([`DEFAULT_MAX_ENDPOINTS_PER_SLICE`] upstream); 0 is treated as 1.
    pub max_endpoints_per_slice: usize,
    /// Value for the `endpoints.kubernetes.io/last-change-trigger-time` annotation on slices
    /// created or updated (see [`format_trigger_time`]); `None` removes it from them.
    pub trigger_time: Option<&'a str>,
}

/// What to write. Slices in `create` have `generateName` `<service>-` and no name; slices in
/// `update` and `delete` carry the name (and, for updates, the resourceVersion) of an existing
/// slice. Unchanged slices appear nowhere.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

impl Plan {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Whether the Service's selector picks the pod: same namespace, a non-empty selector, and every
/// selector label present on the pod with the same value. A Service without a selector (or with an
/// empty one, which the API cannot tell apart from none) selects nothing.
pub fn selects(service: &Service, pod: &Pod) -> bool {
    let same_namespace = service.metadata.namespace.as_deref().unwrap_or_default()
        == pod.metadata.namespace.as_deref().unwrap_or_default();
    let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()).filter(|s| !s.is_empty()) else {
        return false;
    };
    let labels = pod.metadata.labels.as_ref();
    same_namespace && selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

//! Well-known labels and annotations (k8s.io/api/core/v1/well_known_labels.go,
//! discovery/v1/well_known_labels.go), declared once for every component.

/// The Service an EndpointSlice belongs to.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Who manages an EndpointSlice.
pub const ENDPOINTSLICE_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// Set on the EndpointSlices of headless Services.
pub const HEADLESS: &str = "service.kubernetes.io/headless";
/// The proxy that should serve a Service (kube-proxy's `--service-proxy-name` filter).
pub const SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// A node's zone.
pub const TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";
/// A node's hostname.
pub const HOSTNAME: &str = "kubernetes.io/hostname";
/// `kubectl apply`'s record of the last applied manifest; no controller reads it.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// When the change that an Endpoints/EndpointSlice write reflects happened.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

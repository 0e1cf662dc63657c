//! The resource kinds Portico serves, and what the API machinery needs to know about each:
//! names for discovery and URLs, scope, subresources, and the typed round-trip that turns
//! client JSON into the exact wire JSON kube-apiserver stores.

use serde_json::Value;

pub use crate::strategy::Normalized;
use crate::strategy::{self as s, Strategy};

/// One served resource, as discovery describes it.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; empty for the legacy core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub(crate) singular: &'static str,
    pub namespaced: bool,
    pub(crate) short_names: &'static [&'static str],
    pub(crate) categories: &'static [&'static str],
    /// Serves a `/status` subresource (spec and status written separately).
    pub status: bool,
    /// Serves a `/scale` subresource (autoscaling/v1 Scale).
    pub scale: bool,
    /// The kind's rules: defaults, validation, status/spec split, printing, selectors, ...
    pub strategy: &'static dyn Strategy,
}

const ALL: &[&str] = &["all"];

/// Every served resource, core group first, in discovery order.
pub static RESOURCES: &[ResourceType] = &[
    rt("", "v1", "Namespace", "namespaces", false, &["ns"], &[], true, false, &s::Namespace),
    rt("", "v1", "Service", "services", true, &["svc"], ALL, true, false, &s::Service),
    rt("", "v1", "Endpoints", "endpoints", true, &["ep"], &[], false, false, &s::Endpoints),
    rt("", "v1", "Pod", "pods", true, &["po"], ALL, true, false, &s::Pod),
    rt("", "v1", "Node", "nodes", false, &["no"], &[], true, false, &s::Node),
    rt("", "v1", "Secret", "secrets", true, &[], &[], false, false, &s::Secret),
    rt("", "v1", "ConfigMap", "configmaps", true, &["cm"], &[], false, false, &s::ConfigMap),
    rt("", "v1", "Event", "events", true, &["ev"], &[], false, false, &s::Event),
    rt("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"], &[], false, false, &s::ServiceAccount),
    rt(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        true,
        &["rc"],
        ALL,
        true,
        true,
        &s::ReplicationController,
    ),
    rt("apps", "v1", "Deployment", "deployments", true, &["deploy"], ALL, true, true, &s::Deployment),
    rt("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"], ALL, true, true, &s::ReplicaSet),
    rt("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"], ALL, true, true, &s::StatefulSet),
    rt("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"], ALL, true, false, &s::DaemonSet),
    rt("batch", "v1", "Job", "jobs", true, &[], ALL, true, false, &s::Job),
    rt("coordination.k8s.io", "v1", "Lease", "leases", true, &[], &[], false, false, &s::Lease),
    rt("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, &[], &[], false, false, &s::EndpointSlice),
    rt("networking.k8s.io", "v1", "Ingress", "ingresses", true, &["ing"], &[], true, false, &s::Ingress),
    rt("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false, &[], &[], false, false, &s::IngressClass),
];

#[allow(clippy::too_many_arguments)]
const fn rt(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    status: bool,
    scale: bool,
    strategy: &'static dyn Strategy,
) -> ResourceType {
    ResourceType {
        group,
        version,
        kind,
        plural,
        singular: "",
        namespaced,
        short_names,
        categories,
        status,
        scale,
        strategy,
    }
}

impl ResourceType {
    /// `v1` for core, `apps/v1` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    /// Lower-case kind, which is what kube-apiserver reports as the singular name.
    pub(crate) fn singular_name(&self) -> String {
        if self.singular.is_empty() { self.kind.to_ascii_lowercase() } else { self.singular.to_string() }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Storage key prefix for all objects of this resource, ending in `/`.
    pub fn key_prefix(&self) -> String {
        let group = if self.group.is_empty() { "core" } else { self.group };
        format!("/registry/{group}/{}/", self.plural)
    }

    /// Storage key prefix for the objects of one namespace (or all, when cluster-scoped).
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.key_prefix()),
            _ => self.key_prefix(),
        }
    }

    /// Storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.namespace_prefix(namespace))
    }

    /// Parses client JSON into this kind's typed form and back, so that what is stored is
    /// exactly the wire JSON Kubernetes produces. Fields the type does not know are returned
    /// (as dotted paths) for strict field validation rather than silently dropped.
    pub fn normalize(&self, value: Value) -> Result<Normalized, String> {
        self.strategy.normalize(value)
    }
}

/// Finds a resource by group, version and plural (or singular or short) name.
pub fn lookup(group: &str, version: &str, resource: &str) -> Option<&'static ResourceType> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == resource)
}

/// Finds a resource by group and kind (any version).
pub fn by_kind(group: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES.iter().find(|r| r.group == group && r.kind == kind)
}

/// Splits an apiVersion into (group, version).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The API groups served, in discovery order (core excluded), with their versions.
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_reported_with_their_path() {
        let svc = lookup("", "v1", "services").unwrap();
        let n = svc
            .normalize(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"},
                "spec": {"ports": [{"port": 80, "bogus": 1}], "colour": "red"}}))
            .unwrap();
        assert_eq!(n.unknown_fields, vec!["spec.ports[0].bogus".to_string(), "spec.colour".to_string()]);
    }

    #[test]
    fn wrong_kind_is_rejected() {
        let svc = lookup("", "v1", "services").unwrap();
        assert!(svc.normalize(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}})).is_err());
    }

    #[test]
    fn keys_separate_namespaces() {
        let pods = lookup("", "v1", "pods").unwrap();
        assert_eq!(pods.key(Some("default"), "web"), "/registry/core/pods/default/web");
        let nodes = lookup("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(Some("ignored"), "n1"), "/registry/core/nodes/n1");
    }
}

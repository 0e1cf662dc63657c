//! core/v1: pkg/registry/core/*/strategy.go.

use k8s_openapi::api::core::v1 as core;
use serde_json::{Map, Value, json};

use super::{META, MergeTables, Strategy, keep_status, typed};
use crate::field::ErrorList;
use crate::json::{pointer_bool, pointer_str};
use crate::patch::merge_keys::{
    CONDITIONS, NODE_SPEC, NODE_STATUS, POD_SPEC, POD_STATUS, SERVICE_ACCOUNT, SERVICE_SPEC,
};
use crate::selector::field::{allow_field_labels, pod_ip};
use crate::table::{self, Printer};
use crate::validation::{NameRule, kinds};
use crate::{defaults, service};

/// Fallback `value` for an empty string.
fn or(value: String, fallback: &str) -> String {
    if value.is_empty() { fallback.to_string() } else { value }
}

#[derive(Debug)]
pub(crate) struct Namespace;

impl Strategy for Namespace {
    typed!(core::Namespace);

    fn apply_defaults(&self, obj: &mut Map<String, Value>) {
        defaults::namespace(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> ErrorList {
        // Namespace updates: metadata only.
        if old.is_none() { kinds::namespace(obj) } else { ErrorList::new() }
    }

    fn name_rule(&self) -> NameRule {
        NameRule::DnsLabel
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        let phase = or(pointer_str(obj, "/status/phase").to_string(), "Active");
        // "This is a bug, but we need to support it for backward compatibility."
        vec![("status.phase", phase), ("name", pointer_str(obj, "/metadata/name").to_string())]
    }

    fn convert_field_label(&self, label: &str) -> Result<String, String> {
        allow_field_labels(&["status.phase", "metadata.name"], label)
    }

    fn printer(&self) -> Option<Printer> {
        Some((table::config::NAMESPACE, table::config::namespace))
    }

    fn merge_tables(&self) -> MergeTables {
        &[META, ("status", CONDITIONS)]
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        // Defaulting sets phase Active and the `kubernetes` finalizer on a status-less namespace.
        super::clear_status(obj);
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        keep_status(new, old);
        if let Some(f) = old.pointer("/spec/finalizers") {
            new["spec"]["finalizers"] = f.clone();
        }
    }

    fn serves_finalize(&self) -> bool {
        true
    }

    fn prepare_for_finalize(&self, new: &Value, old: &Value) -> Value {
        let mut out = old.clone();
        out["spec"]["finalizers"] = new.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
        out
    }

    fn serves_delete_collection(&self) -> bool {
        false
    }

    fn deleted_by_controller(&self) -> bool {
        true
    }

    fn prepare_for_delete(&self, obj: &mut Value) {
        obj["status"]["phase"] = json!("Terminating");
    }

    fn returns_deleted_object(&self) -> bool {
        true
    }
}

#[derive(Debug)]
pub(crate) struct Service;

impl Strategy for Service {
    typed!(core::Service);

    fn apply_defaults(&self, obj: &mut Map<String, Value>) {
        service::default_service_fields(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> ErrorList {
        service::validate_kind(obj, old)
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Dns1035Label
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        let type_ = or(pointer_str(obj, "/spec/type").to_string(), "ClusterIP");
        vec![("spec.clusterIP", pointer_str(obj, "/spec/clusterIP").to_string()), ("spec.type", type_)]
    }

    fn convert_field_label(&self, label: &str) -> Result<String, String> {
        allow_field_labels(&["metadata.namespace", "metadata.name", "spec.clusterIP", "spec.type"], label)
    }

    fn printer(&self) -> Option<Printer> {
        Some((table::service::SERVICE, table::service::service))
    }

    fn merge_tables(&self) -> MergeTables {
        &[META, ("spec", SERVICE_SPEC), ("status", CONDITIONS)]
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        crate::json::set(obj, "status", json!({"loadBalancer": {}}));
        service::prepare_for_create(obj);
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        keep_status(new, old);
        service::prepare_for_update(new, old);
        service::patch_allocated_values(new, old);
    }

    fn returns_deleted_object(&self) -> bool {
        true
    }

    fn allocates_service_addresses(&self) -> bool {
        true
    }
}

#[derive(Debug)]
pub(crate) struct Endpoints;

impl Strategy for Endpoints {
    typed!(core::Endpoints);

    fn apply_defaults(&self, obj: &mut Map<String, Value>) {
        defaults::endpoints(obj);
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> ErrorList {
        kinds::endpoints(obj)
    }

    fn printer(&self) -> Option<Printer> {
        Some((table::service::ENDPOINTS, table::service::endpoints))
    }
}

#[derive(Debug)]
pub(crate) struct Pod;

impl Strategy for Pod {
    typed!(core::Pod);

    fn apply_defaults(&self, obj: &mut Map<String, Value>) {
        defaults::pod(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> ErrorList {
        kinds::pod(obj, old)
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        let s = |ptr: &str| pointer_str(obj, ptr).to_string();
        let service_account =
            Some(s("/spec/serviceAccountName")).filter(|v| !v.is_empty()).unwrap_or_else(|| s("/spec/serviceAccount"));
        vec![
            ("spec.nodeName", s("/spec/nodeName")),
            ("spec.restartPolicy", s("/spec/restartPolicy")),
            ("spec.schedulerName", s("/spec/schedulerName")),
            ("spec.serviceAccountName", service_account),
            ("spec.hostNetwork", pointer_bool(obj, "/spec/hostNetwork").to_string()),
            ("status.phase", s("/status/phase")),
            ("status.podIP", pod_ip(obj).to_string()),
            ("status.nominatedNodeName", s("/status/nominatedNodeName")),
        ]
    }

    fn convert_field_label(&self, label: &str) -> Result<String, String> {
        if label == "spec.host" {
            // For old v1 clients.
            return Ok("spec.nodeName".to_string());
        }
        allow_field_labels(
            &[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            ],
            label,
        )
    }

    fn printer(&self) -> Option<Printer> {
        Some((table::pod::COLUMNS, table::pod::cells))
    }

    fn row_conditions(&self, obj: &Value) -> Vec<Value> {
        table::pod::row_conditions(obj)
    }

    fn merge_tables(&self) -> MergeTables {
        &[META, ("spec", POD_SPEC), ("status", POD_STATUS)]
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        let status = json!({"phase": "Pending", "qosClass": qos_class(obj.get("spec"))});
        crate::json::set(obj, "status", status);
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        keep_status(new, old);
    }

    fn graceful_deletion<'a>(&self, obj: &'a Value, requested: Option<i64>) -> Option<(i64, &'a str)> {
        let grace = requested.unwrap_or_else(|| {
            obj.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30)
        });
        if grace <= 0 || matches!(pointer_str(obj, "/status/phase"), "Failed" | "Succeeded") {
            return None;
        }
        let node = pointer_str(obj, "/spec/nodeName");
        (!node.is_empty()).then_some((grace, node))
    }

    fn returns_deleted_object(&self) -> bool {
        true
    }
}

/// A pod's QoS class from its containers' requests and limits.
fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers = spec.and_then(|s| s.get("containers")).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        let has_both = |res: &str| limits.is_some_and(|l| l.contains_key(res));
        if !(has_both("cpu") && has_both("memory")) {
            guaranteed = false;
        }
        if let (Some(r), Some(l)) = (requests, limits) {
            for (k, v) in r {
                if l.get(k) != Some(v) {
                    guaranteed = false;
                }
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed && !containers.is_empty() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[derive(Debug)]
pub(crate) struct Node;

impl Strategy for Node {
    typed!(core::Node);

    fn apply_defaults(&self, obj: &mut Map<String, Value>) {
        defaults::node(obj);
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        vec![("spec.unschedulable", pointer_bool(obj, "/spec/unschedulable").to_string())]
    }

    fn convert_field_label(&self, label: &str) -> Result<String, String> {
        allow_field_labels(&["metadata.name", "spec.unschedulable"], label)
    }

    fn printer(&self) -> Option<Printer> {
        Some((table::node::COLUMNS, table::node::cells))
    }

    fn merge_tables(&self) -> MergeTables {
        &[META, ("spec", NODE_SPEC), ("status", NODE_STATUS)]
    }

    // A node agent registers its Node with its status: nothing is reset on create.

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        keep_status(new, old);
    }

    fn returns_deleted_object(&self) -> bool {
        true
    }
}

#[derive(Debug)]
pub(crate) struct Secret;

impl Strategy for Secret {
    typed!(core::Secret);

    fn apply_defaults(&self, obj: &mut Map<String, Value>) {
        defaults::secret(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> ErrorList {
        kinds::secret(obj, old)
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        vec![("type", or(pointer_str(obj, "/type").to_string(), "Opaque"))]
    }

    fn convert_field_label(&self, label: &str) -> Result<String, String> {
        allow_field_labels(&["type", "metadata.namespace", "metadata.name"], label)
    }

    fn printer(&self) -> Option<Printer> {
        Some((table::config::SECRET, table::config::secret))
    }
}

#[derive(Debug)]
pub(crate) struct ConfigMap;

impl Strategy for ConfigMap {
    typed!(core::ConfigMap);

    fn validate(&self, obj: &Value, old: Option<&Value>) -> ErrorList {
        kinds::config_map(obj, old)
    }

    fn printer(&self) -> Option<Printer> {
        Some((table::config::CONFIG_MAP, table::config::config_map))
    }
}

#[derive(Debug)]
pub(crate) struct Event;

impl Strategy for Event {
    typed!(core::Event);

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> ErrorList {
        kinds::event(obj)
    }

    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn checks_kube_finalizer_names(&self) -> bool {
        false
    }

    fn validates_meta_after_kind(&self) -> bool {
        true
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        let s = |ptr: &str| pointer_str(obj, ptr).to_string();
        let source = Some(s("/source/component")).filter(|v| !v.is_empty()).unwrap_or_else(|| s("/reportingComponent"));
        vec![
            ("involvedObject.kind", s("/involvedObject/kind")),
            ("involvedObject.namespace", s("/involvedObject/namespace")),
            ("involvedObject.name", s("/involvedObject/name")),
            ("involvedObject.uid", s("/involvedObject/uid")),
            ("involvedObject.apiVersion", s("/involvedObject/apiVersion")),
            ("involvedObject.resourceVersion", s("/involvedObject/resourceVersion")),
            ("involvedObject.fieldPath", s("/involvedObject/fieldPath")),
            ("reason", s("/reason")),
            ("reportingComponent", s("/reportingComponent")),
            ("source", source),
            ("type", s("/type")),
        ]
    }

    fn convert_field_label(&self, label: &str) -> Result<String, String> {
        allow_field_labels(
            &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
                "metadata.namespace",
                "metadata.name",
            ],
            label,
        )
    }

    fn printer(&self) -> Option<Printer> {
        Some((table::event::COLUMNS, table::event::cells))
    }
}

#[derive(Debug)]
pub(crate) struct ServiceAccount;

impl Strategy for ServiceAccount {
    typed!(core::ServiceAccount);

    fn printer(&self) -> Option<Printer> {
        Some((table::config::SERVICE_ACCOUNT, table::config::service_account))
    }

    fn merge_tables(&self) -> MergeTables {
        &[META, ("", SERVICE_ACCOUNT)]
    }
}

/// pkg/registry/core/replicationcontroller/strategy.go: the workload of the legacy group, with
/// `/status` and `/scale` like a ReplicaSet.
#[derive(Debug)]
pub(crate) struct ReplicationController;

impl Strategy for ReplicationController {
    typed!(core::ReplicationController);

    fn apply_defaults(&self, obj: &mut Map<String, Value>) {
        defaults::replication_controller(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> ErrorList {
        crate::validation::workloads::replication_controller(obj, old)
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        let replicas = obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0);
        vec![("status.replicas", replicas.to_string())]
    }

    fn convert_field_label(&self, label: &str) -> Result<String, String> {
        allow_field_labels(&["metadata.name", "metadata.namespace", "status.replicas"], label)
    }

    fn printer(&self) -> Option<Printer> {
        Some((table::workloads::REPLICATION_CONTROLLER, table::workloads::replication_controller))
    }

    super::workload!();
}

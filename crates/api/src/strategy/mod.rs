//! One strategy per served kind, after kube-apiserver's `rest.RESTCreateStrategy` /
//! `RESTUpdateStrategy` (pkg/registry/*/strategy.go): everything the generic registry needs to
//! know about a kind. [`crate::resources::RESOURCES`] names each kind's strategy, so adding a
//! kind is one entry there and one implementation here.
//!
//! The registry calls a strategy in kube-apiserver's order: [`Strategy::normalize`] (the typed
//! round trip), [`Strategy::prepare_for_create`] / [`Strategy::prepare_for_update`] (the
//! status/spec split), [`Strategy::apply_defaults`], allocation (Services, in the IO crate),
//! then validation ([`crate::validation::validate`], which calls [`Strategy::validate`]).
//! Nothing here does IO; every method has the behaviour of a kind without special rules as
//! its default.

mod apps;
pub(crate) mod batch;
mod core;
mod networking;

pub(crate) use apps::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
pub(crate) use batch::Job;
pub(crate) use core::{
    ConfigMap, Endpoints, Event, Namespace, Node, Pod, ReplicationController, Secret, Service, ServiceAccount,
};
pub(crate) use networking::{EndpointSlice, Ingress, IngressClass, Lease};

use std::fmt::Debug;

use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use crate::field::ErrorList;
use crate::patch::merge_keys::{CONDITIONS, MergeList, OBJECT_META, POD_SPEC};
use crate::table::Printer;
use crate::validation::NameRule;

/// Merge-key tables of a kind, each anchored at a path prefix ("" for the object root).
pub type MergeTables = &'static [(&'static str, &'static [MergeList])];

/// `metadata`'s merge keys, which every kind has.
pub(crate) const META: (&str, &[MergeList]) = ("metadata", OBJECT_META);

/// The per-kind rules, on wire JSON.
pub trait Strategy: Debug + Sync {
    /// Parses client JSON into the kind's typed form and back, so that what is stored is
    /// exactly the wire JSON Kubernetes produces; unknown fields are reported by path.
    fn normalize(&self, value: Value) -> Result<Normalized, String>;

    /// The SetObjectDefaults_* of the kind (applying twice changes nothing).
    fn apply_defaults(&self, _obj: &mut Map<String, Value>) {}

    /// The kind's own checks past ObjectMeta, on create (`old` is `None`) or update.
    fn validate(&self, _obj: &Value, _old: Option<&Value>) -> ErrorList {
        ErrorList::new()
    }

    /// The rule `metadata.name` must follow.
    fn name_rule(&self) -> NameRule {
        NameRule::DnsSubdomain
    }

    /// Whether ObjectMeta validation adds pkg/apis/core/validation's finalizer-name rule.
    fn checks_kube_finalizer_names(&self) -> bool {
        true
    }

    /// core/v1 Events: the kind's legacy checks run first, ObjectMeta validation of a create
    /// only once they pass.
    fn validates_meta_after_kind(&self) -> bool {
        false
    }

    /// Selectable fields beyond `metadata.name` / `metadata.namespace`, with their values.
    fn selectable_fields(&self, _obj: &Value) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// The kind's registered field-label conversion; the default is
    /// runtime.DefaultMetaV1FieldSelectorConversion.
    fn convert_field_label(&self, label: &str) -> Result<String, String> {
        crate::selector::field::default_field_label(label)
    }

    /// The kind's table printer; `None` prints the default Name / Created At table.
    fn printer(&self) -> Option<Printer> {
        None
    }

    /// A table row's `conditions`.
    fn row_conditions(&self, _obj: &Value) -> Vec<Value> {
        Vec::new()
    }

    /// Strategic-merge keys of the kind's lists.
    fn merge_tables(&self) -> MergeTables {
        &[META]
    }

    /// Whether `metadata.generation` counts spec changes.
    fn tracks_generation(&self) -> bool {
        false
    }

    /// PrepareForCreate: what a new object starts with (its status). Kinds without a status
    /// subresource have nothing to reset.
    fn prepare_for_create(&self, _obj: &mut Value) {}

    /// PrepareForUpdate of the main resource: what a spec write keeps from `old` (the status,
    /// for kinds with a status subresource). System metadata is kept by the registry.
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}

    /// The status strategy's PrepareForUpdate: a `/status` write keeps everything of `old`
    /// but the status.
    fn prepare_for_status_update(&self, mut new: Value, old: &Value) -> Value {
        let mut out = old.clone();
        match new.get_mut("status").map(Value::take) {
            Some(status) => out["status"] = status,
            None => {
                crate::json::remove(&mut out, "status");
            }
        }
        out
    }

    /// Serves `/finalize` (Namespaces).
    fn serves_finalize(&self) -> bool {
        false
    }

    /// What a `/finalize` write takes from `new` (Namespaces: `spec.finalizers` only).
    fn prepare_for_finalize(&self, _new: &Value, old: &Value) -> Value {
        old.clone()
    }

    /// Whether the kind serves `deletecollection`.
    fn serves_delete_collection(&self) -> bool {
        true
    }

    /// Deletion is finished by a controller through `/finalize` (Namespaces): the registry
    /// never removes the object itself, and a delete marks it instead.
    fn deleted_by_controller(&self) -> bool {
        false
    }

    /// What a graceful delete changes besides the deletion timestamp.
    fn prepare_for_delete(&self, _obj: &mut Value) {}

    /// The grace period of a delete, and the node that must exist for it to apply (Pods bound
    /// to a node are finished by its agent); `None` deletes at once.
    fn graceful_deletion<'a>(&self, _obj: &'a Value, _requested: Option<i64>) -> Option<(i64, &'a str)> {
        None
    }

    /// Whether a delete answers with the deleted object rather than a Status
    /// (ReturnDeletedObject).
    fn returns_deleted_object(&self) -> bool {
        false
    }

    /// Whether writes take cluster IPs and node ports from the Service allocators.
    fn allocates_service_addresses(&self) -> bool {
        false
    }
}

impl PartialEq for dyn Strategy {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(self, other)
    }
}

impl Eq for dyn Strategy {}

/// The result of a typed round trip.
#[derive(Debug)]
pub struct Normalized {
    pub value: Value,
    /// Dotted paths of fields the schema does not have, e.g. `spec.foo`.
    pub unknown_fields: Vec<String>,
}

/// The typed round trip through `T`.
pub(crate) fn round_trip<T: Serialize + DeserializeOwned>(value: Value) -> Result<Normalized, String> {
    let mut unknown_fields = Vec::new();
    let typed: T =
        serde_ignored::deserialize(value, |path| unknown_fields.push(field_path(&path))).map_err(|e| e.to_string())?;
    let value = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    Ok(Normalized { value, unknown_fields })
}

/// Renders an ignored field's path the way Kubernetes' strict decoding reports it: `spec.ports[0].bogus`.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        P::Map { parent, key } => {
            let parent = field_path(parent);
            if parent.is_empty() { key.clone() } else { format!("{parent}.{key}") }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => field_path(parent),
    }
}

/// A kind with a status subresource: a new object starts without status.
pub(crate) fn clear_status(obj: &mut Value) {
    crate::json::remove(obj, "status");
}

/// A kind with a status subresource: a spec write keeps the stored status.
pub(crate) fn keep_status(new: &mut Value, old: &Value) {
    match old.get("status") {
        Some(s) => {
            crate::json::set(new, "status", s.clone());
        }
        None => {
            crate::json::remove(new, "status");
        }
    }
}

/// Implements [`Strategy::normalize`] as the typed round trip through `$ty`.
macro_rules! typed {
    ($ty:ty) => {
        fn normalize(&self, value: serde_json::Value) -> Result<$crate::strategy::Normalized, String> {
            $crate::strategy::round_trip::<$ty>(value)
        }
    };
}
pub(crate) use typed;

/// Implements [`Strategy::prepare_for_create`] and [`Strategy::prepare_for_update`] for a kind
/// whose only rule there is its status subresource: a new object starts without status, and a
/// spec write keeps the stored one.
macro_rules! status_subresource {
    () => {
        fn prepare_for_create(&self, obj: &mut serde_json::Value) {
            $crate::strategy::clear_status(obj);
        }

        fn prepare_for_update(&self, new: &mut serde_json::Value, old: &serde_json::Value) {
            $crate::strategy::keep_status(new, old);
        }
    };
}
pub(crate) use status_subresource;

/// A workload's lists: its own metadata, its pod template's, and status conditions.
pub(crate) const WORKLOAD: MergeTables =
    &[META, ("spec.template.metadata", OBJECT_META), ("spec.template.spec", POD_SPEC), ("status", CONDITIONS)];

/// What every workload's strategy shares: the merge keys above, `metadata.generation` counting
/// spec changes, and the status subresource.
macro_rules! workload {
    () => {
        fn merge_tables(&self) -> $crate::strategy::MergeTables {
            $crate::strategy::WORKLOAD
        }

        fn tracks_generation(&self) -> bool {
            true
        }

        $crate::strategy::status_subresource!();
    };
}
pub(crate) use workload;

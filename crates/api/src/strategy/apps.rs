//! apps/v1: pkg/registry/apps/*/strategy.go. Workloads count spec changes in
//! `metadata.generation` and serve `/status` and `/scale`.

use k8s_openapi::api::apps::v1 as apps;
use serde_json::{Map, Value};

use super::{META, MergeTables, Strategy, status_subresource, typed};
use crate::defaults;
use crate::field::ErrorList;
use crate::patch::merge_keys::{CONDITIONS, OBJECT_META, POD_SPEC};
use crate::table::{Printer, workloads};
use crate::validation::{NameRule, kinds};

/// A workload's lists: its own metadata, its pod template's, and status conditions.
const WORKLOAD: MergeTables =
    &[META, ("spec.template.metadata", OBJECT_META), ("spec.template.spec", POD_SPEC), ("status", CONDITIONS)];

/// What every workload's strategy shares: the merge keys above, `metadata.generation` counting
/// spec changes, and the status subresource.
macro_rules! workload {
    () => {
        fn merge_tables(&self) -> MergeTables {
            WORKLOAD
        }

        fn tracks_generation(&self) -> bool {
            true
        }

        status_subresource!();
    };
}

#[derive(Debug)]
pub(crate) struct Deployment;

impl Strategy for Deployment {
    typed!(apps::Deployment);

    fn apply_defaults(&self, obj: &mut Map<String, Value>) {
        defaults::deployment(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> ErrorList {
        kinds::deployment(obj, old)
    }

    fn printer(&self) -> Option<Printer> {
        Some((workloads::DEPLOYMENT, workloads::deployment))
    }

    workload!();
}

#[derive(Debug)]
pub(crate) struct ReplicaSet;

impl Strategy for ReplicaSet {
    typed!(apps::ReplicaSet);

    fn apply_defaults(&self, obj: &mut Map<String, Value>) {
        defaults::replica_set(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> ErrorList {
        kinds::replica_set(obj, old)
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        let replicas = obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0);
        vec![("status.replicas", replicas.to_string())]
    }

    // No registered field-label conversion: upstream issue 135136 (status.replicas is rejected).

    fn printer(&self) -> Option<Printer> {
        Some((workloads::REPLICA_SET, workloads::replica_set))
    }

    workload!();
}

#[derive(Debug)]
pub(crate) struct StatefulSet;

impl Strategy for StatefulSet {
    typed!(apps::StatefulSet);

    fn apply_defaults(&self, obj: &mut Map<String, Value>) {
        defaults::stateful_set(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> ErrorList {
        kinds::stateful_set(obj, old)
    }

    fn name_rule(&self) -> NameRule {
        NameRule::DnsLabel
    }

    fn printer(&self) -> Option<Printer> {
        Some((workloads::STATEFUL_SET, workloads::stateful_set))
    }

    workload!();
}

//! apps/v1: pkg/registry/apps/*/strategy.go. Workloads count spec changes in
//! `metadata.generation` and serve `/status` (and, but for DaemonSets, `/scale`).

use k8s_openapi::api::apps::v1 as apps;
use serde_json::{Map, Value};

use super::{Strategy, typed, workload};
use crate::defaults;
use crate::field::ErrorList;
use crate::table::{Printer, workloads};
use crate::validation::{NameRule, kinds};

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

#[derive(Debug)]
pub(crate) struct DaemonSet;

impl Strategy for DaemonSet {
    typed!(apps::DaemonSet);

    fn apply_defaults(&self, obj: &mut Map<String, Value>) {
        defaults::daemon_set(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> ErrorList {
        crate::validation::workloads::daemon_set(obj, old)
    }

    fn printer(&self) -> Option<Printer> {
        Some((workloads::DAEMON_SET, workloads::daemon_set))
    }

    workload!();
}

//! batch/v1 Jobs: pkg/registry/batch/job/strategy.go. A Job counts spec changes in
//! `metadata.generation`, serves `/status`, and on create gets the selector and pod template
//! labels that tie its pods to it (unless `spec.manualSelector` is true).

use k8s_openapi::api::batch::v1 as batch;
use serde_json::{Map, Value, json};

use super::{Strategy, typed};
use crate::defaults;
use crate::field::ErrorList;
use crate::json::{object_mut, str_of};
use crate::table::{Printer, workloads};

/// The label with the Job's UID that the generated selector matches (batch.ControllerUidLabel).
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The label with the Job's name (batch.JobNameLabel).
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The unprefixed labels older clients select on (batch.LegacyControllerUidLabel, LegacyJobNameLabel).
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";

#[derive(Debug)]
pub(crate) struct Job;

impl Strategy for Job {
    typed!(batch::Job);

    fn apply_defaults(&self, obj: &mut Map<String, Value>) {
        defaults::job(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> ErrorList {
        crate::validation::workloads::job(obj, old)
    }

    fn printer(&self) -> Option<Printer> {
        Some((workloads::JOB, workloads::job))
    }

    fn merge_tables(&self) -> super::MergeTables {
        super::WORKLOAD
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    /// PrepareForCreate plus the generateSelector that upstream's Validate does once the UID is
    /// set (here the registry sets the UID before this runs).
    fn prepare_for_create(&self, obj: &mut Value) {
        super::clear_status(obj);
        generate_selector(obj);
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        super::keep_status(new, old);
    }
}

/// generateSelector: the job-name and controller-uid labels (both spellings) on the template
/// where the user has not set them, and `batch.kubernetes.io/controller-uid` in the selector's
/// `matchLabels`. A conflicting user value is left for validation to reject.
fn generate_selector(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else { return };
    let meta = map.get("metadata").cloned().unwrap_or_default();
    let (name, uid) = (str_of(&meta, "name").to_string(), str_of(&meta, "uid").to_string());
    let spec = object_mut(map, "spec");
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let labels = object_mut(object_mut(object_mut(spec, "template"), "metadata"), "labels");
    for key in [LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL] {
        labels.entry(key).or_insert_with(|| json!(name));
    }
    for key in [LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL] {
        labels.entry(key).or_insert_with(|| json!(uid));
    }
    let match_labels = object_mut(object_mut(spec, "selector"), "matchLabels");
    match_labels.entry(CONTROLLER_UID_LABEL).or_insert_with(|| json!(uid));
}

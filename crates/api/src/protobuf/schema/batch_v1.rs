// Generated from the protobuf descriptors embedded in kubectl 1.32 (`k8s.io/api/batch/v1/generated.proto`),
// with field presence from the gogoproto `nullable` options and required fields from k8s-openapi.
// Regenerate rather than hand-edit when adding types.

use super::{Message, T, list, list_req, omit, opt, req};

pub(super) static POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT: Message = Message {
    name: "batch.v1.PodFailurePolicyOnExitCodesRequirement",
    fields: &[opt(1, "containerName", T::String), req(2, "operator", T::String), list_req(3, "values", T::Int32)],
};

pub(super) static POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN: Message = Message {
    name: "batch.v1.PodFailurePolicyOnPodConditionsPattern",
    fields: &[req(1, "type", T::String), req(2, "status", T::String)],
};

pub(super) static POD_FAILURE_POLICY_RULE: Message = Message {
    name: "batch.v1.PodFailurePolicyRule",
    fields: &[
        req(1, "action", T::String),
        opt(2, "onExitCodes", T::Message(&POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT)),
        list(3, "onPodConditions", T::Message(&POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN)),
    ],
};

pub(super) static POD_FAILURE_POLICY: Message = Message {
    name: "batch.v1.PodFailurePolicy",
    fields: &[list_req(1, "rules", T::Message(&POD_FAILURE_POLICY_RULE))],
};

pub(super) static SUCCESS_POLICY_RULE: Message = Message {
    name: "batch.v1.SuccessPolicyRule",
    fields: &[opt(1, "succeededIndexes", T::String), opt(2, "succeededCount", T::Int32)],
};

pub(super) static SUCCESS_POLICY: Message =
    Message { name: "batch.v1.SuccessPolicy", fields: &[list_req(1, "rules", T::Message(&SUCCESS_POLICY_RULE))] };

pub(super) static JOB_SPEC: Message = Message {
    name: "batch.v1.JobSpec",
    fields: &[
        opt(1, "parallelism", T::Int32),
        opt(2, "completions", T::Int32),
        opt(3, "activeDeadlineSeconds", T::Int64),
        opt(11, "podFailurePolicy", T::Message(&POD_FAILURE_POLICY)),
        opt(16, "successPolicy", T::Message(&SUCCESS_POLICY)),
        opt(7, "backoffLimit", T::Int32),
        opt(12, "backoffLimitPerIndex", T::Int32),
        opt(13, "maxFailedIndexes", T::Int32),
        opt(4, "selector", T::Message(&super::meta_v1::LABEL_SELECTOR)),
        opt(5, "manualSelector", T::Bool),
        req(6, "template", T::Message(&super::core_v1::POD_TEMPLATE_SPEC)),
        opt(8, "ttlSecondsAfterFinished", T::Int32),
        opt(9, "completionMode", T::String),
        opt(10, "suspend", T::Bool),
        opt(14, "podReplacementPolicy", T::String),
        opt(15, "managedBy", T::String),
    ],
};

pub(super) static JOB_CONDITION: Message = Message {
    name: "batch.v1.JobCondition",
    fields: &[
        req(1, "type", T::String),
        req(2, "status", T::String),
        omit(3, "lastProbeTime", T::Time),
        omit(4, "lastTransitionTime", T::Time),
        omit(5, "reason", T::String),
        omit(6, "message", T::String),
    ],
};

pub(super) static UNCOUNTED_TERMINATED_PODS: Message = Message {
    name: "batch.v1.UncountedTerminatedPods",
    fields: &[list(1, "succeeded", T::String), list(2, "failed", T::String)],
};

pub(super) static JOB_STATUS: Message = Message {
    name: "batch.v1.JobStatus",
    fields: &[
        list(1, "conditions", T::Message(&JOB_CONDITION)),
        opt(2, "startTime", T::Time),
        opt(3, "completionTime", T::Time),
        omit(4, "active", T::Int32),
        omit(5, "succeeded", T::Int32),
        omit(6, "failed", T::Int32),
        opt(11, "terminating", T::Int32),
        omit(7, "completedIndexes", T::String),
        opt(10, "failedIndexes", T::String),
        opt(8, "uncountedTerminatedPods", T::Message(&UNCOUNTED_TERMINATED_PODS)),
        opt(9, "ready", T::Int32),
    ],
};

pub(super) static JOB: Message = Message {
    name: "batch.v1.Job",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        omit(2, "spec", T::Message(&JOB_SPEC)),
        omit(3, "status", T::Message(&JOB_STATUS)),
    ],
};

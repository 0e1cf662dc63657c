// Generated from the protobuf descriptors embedded in kubectl 1.33 (`k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto`),
// with field presence from the gogoproto `nullable` options and required fields from k8s-openapi.
// Regenerate rather than hand-edit when adding types.

use super::{Message, T, list, omit, opt, req};

pub(super) static OWNER_REFERENCE: Message = Message {
    name: "meta.v1.OwnerReference",
    fields: &[
        req(5, "apiVersion", T::String),
        req(1, "kind", T::String),
        req(3, "name", T::String),
        req(4, "uid", T::String),
        opt(6, "controller", T::Bool),
        opt(7, "blockOwnerDeletion", T::Bool),
    ],
};

pub(super) static MANAGED_FIELDS_ENTRY: Message = Message {
    name: "meta.v1.ManagedFieldsEntry",
    fields: &[
        omit(1, "manager", T::String),
        omit(2, "operation", T::String),
        omit(3, "apiVersion", T::String),
        opt(4, "time", T::Time),
        omit(6, "fieldsType", T::String),
        opt(7, "fieldsV1", T::RawJson),
        omit(8, "subresource", T::String),
    ],
};

pub(super) static OBJECT_META: Message = Message {
    name: "meta.v1.ObjectMeta",
    fields: &[
        omit(1, "name", T::String),
        omit(2, "generateName", T::String),
        omit(3, "namespace", T::String),
        omit(4, "selfLink", T::String),
        omit(5, "uid", T::String),
        omit(6, "resourceVersion", T::String),
        omit(7, "generation", T::Int64),
        omit(8, "creationTimestamp", T::Time),
        opt(9, "deletionTimestamp", T::Time),
        opt(10, "deletionGracePeriodSeconds", T::Int64),
        omit(11, "labels", T::Map(&T::String)),
        omit(12, "annotations", T::Map(&T::String)),
        list(13, "ownerReferences", T::Message(&OWNER_REFERENCE)),
        list(14, "finalizers", T::String),
        list(17, "managedFields", T::Message(&MANAGED_FIELDS_ENTRY)),
    ],
};

pub(super) static CONDITION: Message = Message {
    name: "meta.v1.Condition",
    fields: &[
        req(1, "type", T::String),
        req(2, "status", T::String),
        omit(3, "observedGeneration", T::Int64),
        req(4, "lastTransitionTime", T::Time),
        req(5, "reason", T::String),
        req(6, "message", T::String),
    ],
};

pub(super) static LABEL_SELECTOR_REQUIREMENT: Message = Message {
    name: "meta.v1.LabelSelectorRequirement",
    fields: &[req(1, "key", T::String), req(2, "operator", T::String), list(3, "values", T::String)],
};

pub(super) static LABEL_SELECTOR: Message = Message {
    name: "meta.v1.LabelSelector",
    fields: &[
        omit(1, "matchLabels", T::Map(&T::String)),
        list(2, "matchExpressions", T::Message(&LABEL_SELECTOR_REQUIREMENT)),
    ],
};

pub(super) static PRECONDITIONS: Message = Message {
    name: "meta.v1.Preconditions",
    fields: &[opt(1, "uid", T::String), opt(2, "resourceVersion", T::String)],
};

pub(super) static DELETE_OPTIONS: Message = Message {
    name: "meta.v1.DeleteOptions",
    fields: &[
        opt(1, "gracePeriodSeconds", T::Int64),
        opt(2, "preconditions", T::Message(&PRECONDITIONS)),
        opt(3, "orphanDependents", T::Bool),
        opt(4, "propagationPolicy", T::String),
        list(5, "dryRun", T::String),
        opt(6, "ignoreStoreReadErrorWithClusterBreakingPotential", T::Bool),
    ],
};

// Generated from the protobuf descriptors embedded in kubectl 1.33 (`k8s.io/api/autoscaling/v1/generated.proto`),
// with field presence from the gogoproto `nullable` options and required fields from k8s-openapi.
// Regenerate rather than hand-edit when adding types.

use super::{Message, T, omit, req};

pub(super) static SCALE_SPEC: Message =
    Message { name: "autoscaling.v1.ScaleSpec", fields: &[omit(1, "replicas", T::Int32)] };

pub(super) static SCALE_STATUS: Message = Message {
    name: "autoscaling.v1.ScaleStatus",
    fields: &[req(1, "replicas", T::Int32), omit(2, "selector", T::String)],
};

pub(super) static SCALE: Message = Message {
    name: "autoscaling.v1.Scale",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        omit(2, "spec", T::Message(&SCALE_SPEC)),
        omit(3, "status", T::Message(&SCALE_STATUS)),
    ],
};

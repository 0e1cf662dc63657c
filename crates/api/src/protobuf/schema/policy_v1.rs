// Generated from the protobuf descriptors embedded in kubectl 1.33 (`k8s.io/api/policy/v1/generated.proto`),
// with field presence from the gogoproto `nullable` options and required fields from k8s-openapi.
// Regenerate rather than hand-edit when adding types.

use super::{Message, T, opt, req};

pub(super) static EVICTION: Message = Message {
    name: "policy.v1.Eviction",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        opt(2, "deleteOptions", T::Message(&super::meta_v1::DELETE_OPTIONS)),
    ],
};

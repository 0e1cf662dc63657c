// Generated from the protobuf descriptors embedded in kubectl 1.33 (`k8s.io/api/coordination/v1/generated.proto`),
// with field presence from the gogoproto `nullable` options and required fields from k8s-openapi.
// Regenerate rather than hand-edit when adding types.

use super::{Message, T, omit, opt, req};

pub(super) static LEASE_SPEC: Message = Message {
    name: "coordination.v1.LeaseSpec",
    fields: &[
        opt(1, "holderIdentity", T::String),
        opt(2, "leaseDurationSeconds", T::Int32),
        opt(3, "acquireTime", T::MicroTime),
        opt(4, "renewTime", T::MicroTime),
        opt(5, "leaseTransitions", T::Int32),
        opt(6, "strategy", T::String),
        opt(7, "preferredHolder", T::String),
    ],
};

pub(super) static LEASE: Message = Message {
    name: "coordination.v1.Lease",
    fields: &[req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)), omit(2, "spec", T::Message(&LEASE_SPEC))],
};

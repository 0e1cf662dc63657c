// Generated from the protobuf descriptors embedded in kubectl 1.33 (`k8s.io/api/discovery/v1/generated.proto`),
// with field presence from the gogoproto `nullable` options and required fields from k8s-openapi.
// Regenerate rather than hand-edit when adding types.

use super::{Message, T, list, list_req, omit, opt, req};

pub(super) static ENDPOINT_CONDITIONS: Message = Message {
    name: "discovery.v1.EndpointConditions",
    fields: &[opt(1, "ready", T::Bool), opt(2, "serving", T::Bool), opt(3, "terminating", T::Bool)],
};

pub(super) static FOR_ZONE: Message = Message { name: "discovery.v1.ForZone", fields: &[req(1, "name", T::String)] };

pub(super) static FOR_NODE: Message = Message { name: "discovery.v1.ForNode", fields: &[req(1, "name", T::String)] };

pub(super) static ENDPOINT_HINTS: Message = Message {
    name: "discovery.v1.EndpointHints",
    fields: &[list(1, "forZones", T::Message(&FOR_ZONE)), list(2, "forNodes", T::Message(&FOR_NODE))],
};

pub(super) static ENDPOINT: Message = Message {
    name: "discovery.v1.Endpoint",
    fields: &[
        list_req(1, "addresses", T::String),
        omit(2, "conditions", T::Message(&ENDPOINT_CONDITIONS)),
        opt(3, "hostname", T::String),
        opt(4, "targetRef", T::Message(&super::core_v1::OBJECT_REFERENCE)),
        omit(5, "deprecatedTopology", T::Map(&T::String)),
        opt(6, "nodeName", T::String),
        opt(7, "zone", T::String),
        opt(8, "hints", T::Message(&ENDPOINT_HINTS)),
    ],
};

pub(super) static ENDPOINT_PORT: Message = Message {
    name: "discovery.v1.EndpointPort",
    fields: &[
        opt(1, "name", T::String),
        opt(2, "protocol", T::String),
        opt(3, "port", T::Int32),
        opt(4, "appProtocol", T::String),
    ],
};

pub(super) static ENDPOINT_SLICE: Message = Message {
    name: "discovery.v1.EndpointSlice",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        req(4, "addressType", T::String),
        list_req(2, "endpoints", T::Message(&ENDPOINT)),
        list(3, "ports", T::Message(&ENDPOINT_PORT)),
    ],
};

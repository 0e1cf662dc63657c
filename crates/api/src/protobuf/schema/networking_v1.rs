// Generated from the protobuf descriptors embedded in kubectl 1.33 (`k8s.io/api/networking/v1/generated.proto`),
// with field presence from the gogoproto `nullable` options and required fields from k8s-openapi.
// Regenerate rather than hand-edit when adding types.

use super::{Message, T, inline, list, list_req, omit, opt, req};

pub(super) static SERVICE_BACKEND_PORT: Message = Message {
    name: "networking.v1.ServiceBackendPort",
    fields: &[omit(1, "name", T::String), omit(2, "number", T::Int32)],
};

pub(super) static INGRESS_SERVICE_BACKEND: Message = Message {
    name: "networking.v1.IngressServiceBackend",
    fields: &[req(1, "name", T::String), omit(2, "port", T::Message(&SERVICE_BACKEND_PORT))],
};

pub(super) static INGRESS_BACKEND: Message = Message {
    name: "networking.v1.IngressBackend",
    fields: &[
        opt(4, "service", T::Message(&INGRESS_SERVICE_BACKEND)),
        opt(3, "resource", T::Message(&super::core_v1::TYPED_LOCAL_OBJECT_REFERENCE)),
    ],
};

pub(super) static INGRESS_TLS: Message = Message {
    name: "networking.v1.IngressTLS",
    fields: &[list(1, "hosts", T::String), omit(2, "secretName", T::String)],
};

pub(super) static HTTP_INGRESS_PATH: Message = Message {
    name: "networking.v1.HTTPIngressPath",
    fields: &[
        omit(1, "path", T::String),
        opt(3, "pathType", T::String),
        req(2, "backend", T::Message(&INGRESS_BACKEND)),
    ],
};

pub(super) static HTTP_INGRESS_RULE_VALUE: Message = Message {
    name: "networking.v1.HTTPIngressRuleValue",
    fields: &[list_req(1, "paths", T::Message(&HTTP_INGRESS_PATH))],
};

pub(super) static INGRESS_RULE_VALUE: Message =
    Message { name: "networking.v1.IngressRuleValue", fields: &[opt(1, "http", T::Message(&HTTP_INGRESS_RULE_VALUE))] };

pub(super) static INGRESS_RULE: Message = Message {
    name: "networking.v1.IngressRule",
    fields: &[omit(1, "host", T::String), inline(2, &INGRESS_RULE_VALUE)],
};

pub(super) static INGRESS_SPEC: Message = Message {
    name: "networking.v1.IngressSpec",
    fields: &[
        opt(4, "ingressClassName", T::String),
        opt(1, "defaultBackend", T::Message(&INGRESS_BACKEND)),
        list(2, "tls", T::Message(&INGRESS_TLS)),
        list(3, "rules", T::Message(&INGRESS_RULE)),
    ],
};

pub(super) static INGRESS_PORT_STATUS: Message = Message {
    name: "networking.v1.IngressPortStatus",
    fields: &[req(1, "port", T::Int32), req(2, "protocol", T::String), opt(3, "error", T::String)],
};

pub(super) static INGRESS_LOAD_BALANCER_INGRESS: Message = Message {
    name: "networking.v1.IngressLoadBalancerIngress",
    fields: &[
        omit(1, "ip", T::String),
        omit(2, "hostname", T::String),
        list(4, "ports", T::Message(&INGRESS_PORT_STATUS)),
    ],
};

pub(super) static INGRESS_LOAD_BALANCER_STATUS: Message = Message {
    name: "networking.v1.IngressLoadBalancerStatus",
    fields: &[list(1, "ingress", T::Message(&INGRESS_LOAD_BALANCER_INGRESS))],
};

pub(super) static INGRESS_STATUS: Message = Message {
    name: "networking.v1.IngressStatus",
    fields: &[omit(1, "loadBalancer", T::Message(&INGRESS_LOAD_BALANCER_STATUS))],
};

pub(super) static INGRESS: Message = Message {
    name: "networking.v1.Ingress",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        omit(2, "spec", T::Message(&INGRESS_SPEC)),
        omit(3, "status", T::Message(&INGRESS_STATUS)),
    ],
};

pub(super) static INGRESS_CLASS_PARAMETERS_REFERENCE: Message = Message {
    name: "networking.v1.IngressClassParametersReference",
    fields: &[
        opt(1, "apiGroup", T::String),
        req(2, "kind", T::String),
        req(3, "name", T::String),
        opt(4, "scope", T::String),
        opt(5, "namespace", T::String),
    ],
};

pub(super) static INGRESS_CLASS_SPEC: Message = Message {
    name: "networking.v1.IngressClassSpec",
    fields: &[omit(1, "controller", T::String), opt(2, "parameters", T::Message(&INGRESS_CLASS_PARAMETERS_REFERENCE))],
};

pub(super) static INGRESS_CLASS: Message = Message {
    name: "networking.v1.IngressClass",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        omit(2, "spec", T::Message(&INGRESS_CLASS_SPEC)),
    ],
};

//! Table-driven tests mirroring TestValidateServiceCreate, TestValidateServiceUpdate,
//! TestValidateServiceExternalTrafficPolicy and the registry/storage behaviour of kube-apiserver.
//! Every invalid row asserts the exact rendered errors, field paths included.

use serde_json::{Value, json};

use super::*;
use crate::field::ErrorList;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const INVALID_IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const INVALID_CIDR_MSG: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

/// makeValidService: a defaulted, valid ClusterIP Service without allocated IPs.
fn valid() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "valid", "namespace": "default", "labels": {}, "annotations": {}},
        "spec": {
            "selector": {"key": "val"},
            "sessionAffinity": "None",
            "type": "ClusterIP",
            "ports": [{"name": "p", "protocol": "TCP", "port": 8675, "targetPort": 8675}],
            "internalTrafficPolicy": "Cluster"
        }
    })
}

/// The valid Service with a JSON merge patch applied (`null` removes a field).
fn with(patch: Value) -> Value {
    let mut svc = valid();
    json_patch::merge(&mut svc, &patch);
    svc
}

fn spec_patch(spec: Value) -> Value {
    with(json!({"spec": spec}))
}

/// A valid LoadBalancer with a spec patch on top.
fn load_balancer(spec: Value) -> Value {
    let mut svc = spec_patch(json!({"type": "LoadBalancer", "externalTrafficPolicy": "Cluster",
        "allocateLoadBalancerNodePorts": true}));
    json_patch::merge(&mut svc, &json!({"spec": spec}));
    svc
}

fn rendered(errs: ErrorList) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

/// Runs every row and reports all mismatches at once.
fn assert_rows(rows: Vec<(&str, Vec<String>, &[&str])>) {
    let failures: Vec<String> = rows
        .into_iter()
        .filter(|(_, got, want)| got.iter().map(String::as_str).ne(want.iter().copied()))
        .map(|(name, got, want)| format!("{name}\n   want: {want:#?}\n    got: {got:#?}"))
        .collect();
    assert!(failures.is_empty(), "{} row(s) failed:\n{}", failures.len(), failures.join("\n"));
}

fn created(
    rows: Vec<(&'static str, Value, &'static [&'static str])>,
) -> Vec<(&'static str, Vec<String>, &'static [&'static str])> {
    rows.into_iter().map(|(name, svc, want)| (name, rendered(validate_create(&svc)), want)).collect()
}

// ---- ValidateServiceCreate ------------------------------------------------------------------

#[test]
fn metadata_names_and_annotations_are_validated_on_create() {
    assert_rows(created(vec![
        ("the base service is valid", valid(), &[]),
        (
            "a Service name must be a DNS-1035 label",
            with(json!({"metadata": {"name": "1web"}})),
            &[
                "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
            ],
        ),
        (
            "a name longer than 63 characters is too long",
            with(json!({"metadata": {"name": "a".repeat(64)}})),
            &[
                "metadata.name: Invalid value: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": must be no more than 63 characters",
            ],
        ),
        (
            "the namespace is required",
            with(json!({"metadata": {"namespace": null}})),
            &["metadata.namespace: Required value"],
        ),
        (
            "mismatched topology annotations are rejected",
            with(json!({"metadata": {"annotations": {
                "service.kubernetes.io/topology-aware-hints": "original",
                "service.kubernetes.io/topology-mode": "different"}}})),
            &[
                "metadata.annotations[service.kubernetes.io/topology-mode]: Invalid value: \"different\": must match annotations[service.kubernetes.io/topology-aware-hints] when both are specified",
            ],
        ),
        (
            "matching topology annotations are fine",
            with(json!({"metadata": {"annotations": {
                "service.kubernetes.io/topology-aware-hints": "Auto",
                "service.kubernetes.io/topology-mode": "Auto"}}})),
            &[],
        ),
    ]));
    assert!(DNS1035_LABEL_MSG.starts_with("a DNS-1035 label"));
}

#[test]
fn ports_are_validated_on_create() {
    assert_rows(created(vec![
        ("ports are required", spec_patch(json!({"ports": null})), &["spec.ports: Required value"]),
        (
            "a headless service needs no ports",
            spec_patch(json!({"ports": null, "clusterIP": "None", "clusterIPs": ["None"]})),
            &[],
        ),
        (
            "an ExternalName service needs no ports",
            spec_patch(json!({"ports": null, "type": "ExternalName", "externalName": "foo.bar.example.com"})),
            &[],
        ),
        (
            "a single port may be unnamed",
            spec_patch(json!({"ports": [{"protocol": "TCP", "port": 8675, "targetPort": 8675}]})),
            &[],
        ),
        (
            "every port needs a name when there are several",
            spec_patch(json!({"ports": [{"name": "p", "protocol": "TCP", "port": 8675, "targetPort": 8675},
                {"protocol": "TCP", "port": 12345, "targetPort": 12345}]})),
            &["spec.ports[1].name: Required value"],
        ),
        (
            "a port name must be a DNS-1123 label",
            spec_patch(json!({"ports": [{"name": "INVALID", "protocol": "TCP", "port": 8675, "targetPort": 8675}]})),
            &[
                "spec.ports[0].name: Invalid value: \"INVALID\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            ],
        ),
        (
            "port names must be unique",
            spec_patch(json!({"ports": [{"name": "p", "protocol": "TCP", "port": 8675, "targetPort": 8675},
                {"name": "p", "protocol": "TCP", "port": 12345, "targetPort": 12345}]})),
            &["spec.ports[1].name: Duplicate value: \"p\""],
        ),
        (
            "the protocol is required",
            spec_patch(json!({"ports": [{"name": "p", "port": 8675, "targetPort": 8675}]})),
            &["spec.ports[0].protocol: Required value"],
        ),
        (
            "the protocol must be TCP, UDP or SCTP",
            spec_patch(json!({"ports": [{"name": "p", "protocol": "INVALID", "port": 8675, "targetPort": 8675}]})),
            &["spec.ports[0].protocol: Unsupported value: \"INVALID\": supported values: \"SCTP\", \"TCP\", \"UDP\""],
        ),
        (
            "port 0 is out of range",
            spec_patch(json!({"ports": [{"name": "p", "protocol": "TCP", "port": 0, "targetPort": 8675}]})),
            &["spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"],
        ),
        (
            "port 65536 is out of range",
            spec_patch(json!({"ports": [{"name": "p", "protocol": "TCP", "port": 65536, "targetPort": 8675}]})),
            &["spec.ports[0].port: Invalid value: 65536: must be between 1 and 65535, inclusive"],
        ),
        (
            "a numeric target port must be in range",
            spec_patch(json!({"ports": [{"name": "p", "protocol": "TCP", "port": 8675, "targetPort": 65536}]})),
            &["spec.ports[0].targetPort: Invalid value: 65536: must be between 1 and 65535, inclusive"],
        ),
        (
            "a named target port is fine",
            spec_patch(json!({"ports": [{"name": "p", "protocol": "TCP", "port": 8675, "targetPort": "http"}]})),
            &[],
        ),
        (
            "a named target port is an IANA service name of at most 15 characters",
            spec_patch(
                json!({"ports": [{"name": "p", "protocol": "TCP", "port": 8675, "targetPort": "a-very-long-port-name"}]}),
            ),
            &["spec.ports[0].targetPort: Invalid value: \"a-very-long-port-name\": must be no more than 15 characters"],
        ),
        (
            "a named target port needs a letter and no double hyphen",
            spec_patch(json!({"ports": [{"name": "p", "protocol": "TCP", "port": 8675, "targetPort": "80--80"}]})),
            &[
                "spec.ports[0].targetPort: Invalid value: \"80--80\": must contain at least one letter (a-z)",
                "spec.ports[0].targetPort: Invalid value: \"80--80\": must not contain consecutive hyphens",
            ],
        ),
        (
            "a headless service tolerates a target port that differs from the port",
            spec_patch(json!({"clusterIP": "None", "clusterIPs": ["None"],
                "ports": [{"name": "p", "protocol": "TCP", "port": 11722, "targetPort": "target"}]})),
            &[],
        ),
        (
            "a custom appProtocol is a qualified name",
            spec_patch(json!({"ports": [{"protocol": "TCP", "port": 12345, "targetPort": 12345,
                "appProtocol": "example.com/protocol"}]})),
            &[],
        ),
        (
            "an invalid appProtocol is rejected",
            spec_patch(json!({"ports": [{"protocol": "TCP", "port": 12345, "targetPort": 12345,
                "appProtocol": "example.com/protocol_with{invalid}[characters]"}]})),
            &[
                "spec.ports[0].appProtocol: Invalid value: \"example.com/protocol_with{invalid}[characters]\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            ],
        ),
        (
            "the same port and protocol may not appear twice",
            spec_patch(json!({"ports": [{"name": "q", "protocol": "TCP", "port": 12345, "targetPort": 8080},
                {"name": "r", "protocol": "TCP", "port": 12345, "targetPort": 80}]})),
            &[
                "spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:12345, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
            ],
        ),
        (
            "the same port number with different protocols is fine",
            spec_patch(json!({"ports": [{"name": "q", "protocol": "TCP", "port": 12345, "targetPort": 8080},
                {"name": "r", "protocol": "UDP", "port": 12345, "targetPort": 80},
                {"name": "s", "protocol": "SCTP", "port": 12345, "targetPort": 8088}]})),
            &[],
        ),
        (
            "a ClusterIP service may not have node ports",
            spec_patch(json!({"ports": [{"name": "p", "protocol": "TCP", "port": 8675, "targetPort": 8675},
                {"name": "q", "protocol": "TCP", "port": 12345, "nodePort": 12345, "targetPort": 12345}]})),
            &["spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
        ),
        (
            "node ports must be unique per protocol",
            spec_patch(json!({"type": "NodePort", "externalTrafficPolicy": "Cluster", "ports": [
                {"name": "q", "protocol": "TCP", "port": 1, "nodePort": 1, "targetPort": 1},
                {"name": "r", "protocol": "TCP", "port": 2, "nodePort": 1, "targetPort": 2}]})),
            &["spec.ports[1].nodePort: Duplicate value: 1"],
        ),
        (
            "the same node port with different protocols is fine",
            spec_patch(json!({"type": "NodePort", "externalTrafficPolicy": "Cluster", "ports": [
                {"name": "q", "protocol": "TCP", "port": 1, "nodePort": 1, "targetPort": 1},
                {"name": "r", "protocol": "UDP", "port": 2, "nodePort": 1, "targetPort": 2},
                {"name": "s", "protocol": "SCTP", "port": 3, "nodePort": 1, "targetPort": 3}]})),
            &[],
        ),
    ]));
    assert!(DNS1123_LABEL_MSG.contains("RFC 1123 label"));
    assert!(QUALIFIED_NAME_PART_MSG.starts_with("name part"));
}

#[test]
fn selector_session_affinity_and_type_are_validated_on_create() {
    assert_rows(created(vec![
        ("a nil selector is fine", spec_patch(json!({"selector": null})), &[]),
        (
            "selector keys must be qualified names",
            spec_patch(json!({"selector": {"NoSpecialCharsLike=Equals": "bar"}})),
            &[
                "spec.selector: Invalid value: \"NoSpecialCharsLike=Equals\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            ],
        ),
        (
            "selector values must be label values",
            spec_patch(json!({"selector": {"key": "-val"}})),
            &[
                "spec.selector: Invalid value: \"-val\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ],
        ),
        (
            "session affinity is required",
            spec_patch(json!({"sessionAffinity": null})),
            &["spec.sessionAffinity: Required value"],
        ),
        (
            "session affinity must be None or ClientIP",
            spec_patch(json!({"sessionAffinity": "Sticky"})),
            &["spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\""],
        ),
        (
            "ClientIP affinity with a timeout of a day is fine",
            spec_patch(json!({"sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86400}}})),
            &[],
        ),
        (
            "a negative ClientIP timeout is rejected",
            spec_patch(json!({"sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": -1}}})),
            &[
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: -1: must be greater than 0 and less than 86400",
            ],
        ),
        (
            "a ClientIP timeout over a day is rejected",
            spec_patch(json!({"sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}})),
            &[
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be greater than 0 and less than 86400",
            ],
        ),
        (
            "ClientIP affinity needs its config",
            spec_patch(json!({"sessionAffinity": "ClientIP"})),
            &["spec.sessionAffinityConfig: Required value: when session affinity type is ClientIP"],
        ),
        (
            "ClientIP affinity needs the clientIP config",
            spec_patch(json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {}})),
            &["spec.sessionAffinityConfig.clientIP: Required value: when session affinity type is ClientIP"],
        ),
        (
            "ClientIP affinity needs a timeout",
            spec_patch(json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {}}})),
            &[
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Required value: when session affinity type is ClientIP",
            ],
        ),
        (
            "affinity config is forbidden with affinity None",
            spec_patch(json!({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 90}}})),
            &["spec.sessionAffinityConfig: Forbidden: must not be set when session affinity is None"],
        ),
        ("the type is required", spec_patch(json!({"type": null})), &["spec.type: Required value"]),
        (
            "the type must be a known one",
            spec_patch(json!({"type": "Foo"})),
            &[
                "spec.type: Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            ],
        ),
    ]));
}

#[test]
fn cluster_ips_and_ip_families_are_validated_on_create() {
    assert_rows(created(vec![
        (
            "a single cluster IP is fine",
            spec_patch(json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ipFamilyPolicy": "SingleStack"})),
            &[],
        ),
        (
            "a cluster IP must be an IP",
            spec_patch(json!({"clusterIP": "invalid", "clusterIPs": ["invalid"]})),
            &[
                "spec.clusterIPs[0]: Invalid value: \"invalid\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ],
        ),
        (
            "clusterIP without clusterIPs is incomplete",
            spec_patch(json!({"clusterIP": "10.0.0.1"})),
            &["spec.clusterIPs: Required value"],
        ),
        (
            "the first of clusterIPs must be clusterIP",
            spec_patch(json!({"clusterIP": "10.0.0.10", "clusterIPs": ["10.0.0.1"]})),
            &["spec.clusterIPs: Invalid value: []string{\"10.0.0.1\"}: first value must match `clusterIP`"],
        ),
        (
            "clusterIPs without clusterIP is rejected",
            spec_patch(json!({"clusterIPs": ["10.0.0.1"]})),
            &[
                "spec.clusterIPs: Invalid value: []string{\"10.0.0.1\"}: must be empty when `clusterIP` is not specified",
            ],
        ),
        (
            "None must be the only cluster IP",
            spec_patch(
                json!({"ipFamilyPolicy": "RequireDualStack", "clusterIP": "None", "clusterIPs": ["None", "2001::1"]}),
            ),
            &[
                "spec.clusterIPs: Invalid value: []string{\"None\", \"2001::1\"}: 'None' must be the first and only value",
            ],
        ),
        (
            "None is not a secondary cluster IP",
            spec_patch(
                json!({"ipFamilyPolicy": "RequireDualStack", "clusterIP": "2001::1", "clusterIPs": ["2001::1", "None"]}),
            ),
            &[
                "spec.clusterIPs[1]: Invalid value: \"None\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ],
        ),
        (
            "an empty primary cluster IP with a secondary is rejected twice",
            spec_patch(json!({"ipFamilyPolicy": "RequireDualStack", "clusterIPs": ["", "2001::1"]})),
            &[
                "spec.clusterIPs: Invalid value: []string{\"\", \"2001::1\"}: must be empty when `clusterIP` is not specified",
                "spec.clusterIPs[0]: Invalid value: \"\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ],
        ),
        (
            "at most two cluster IPs",
            spec_patch(json!({"ipFamilyPolicy": "RequireDualStack", "clusterIP": "10.0.0.1",
                "clusterIPs": ["10.0.0.1", "2001::1", "10.0.0.10"], "ipFamilies": ["IPv4", "IPv6"]})),
            &[
                "spec.clusterIPs: Invalid value: []string{\"10.0.0.1\", \"2001::1\", \"10.0.0.10\"}: may only hold up to 2 values",
            ],
        ),
        (
            "two cluster IPs must be of different families",
            spec_patch(json!({"ipFamilyPolicy": "RequireDualStack", "clusterIP": "2001::1",
                "clusterIPs": ["2001::1", "2001::4"], "ipFamilies": ["IPv4", "IPv6"]})),
            &[
                "spec.clusterIPs: Invalid value: []string{\"2001::1\", \"2001::4\"}: may specify no more than one IP for each IP family",
                "spec.clusterIPs[0]: Invalid value: \"2001::1\": expected an IPv4 value as indicated by `ipFamilies[0]`",
            ],
        ),
        (
            "a cluster IP must match its IPv6 family",
            spec_patch(json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv6"]})),
            &[
                "spec.clusterIPs[0]: Invalid value: \"10.0.0.1\": expected an IPv6 value as indicated by `ipFamilies[0]`",
            ],
        ),
        (
            "a cluster IP must match its IPv4 family",
            spec_patch(json!({"clusterIP": "2001::1", "clusterIPs": ["2001::1"], "ipFamilies": ["IPv4"]})),
            &["spec.clusterIPs[0]: Invalid value: \"2001::1\": expected an IPv4 value as indicated by `ipFamilies[0]`"],
        ),
        (
            "dual-stack cluster IPs in IPv6-first order are fine",
            spec_patch(json!({"ipFamilyPolicy": "RequireDualStack", "clusterIP": "2001::1",
                "clusterIPs": ["2001::1", "10.0.0.1"], "ipFamilies": ["IPv6", "IPv4"]})),
            &[],
        ),
        (
            "two cluster IPs with one family and PreferDualStack are fine",
            spec_patch(json!({"ipFamilyPolicy": "PreferDualStack", "clusterIP": "10.0.0.1",
                "clusterIPs": ["10.0.0.1", "2001::1"], "ipFamilies": ["IPv4"]})),
            &[],
        ),
        (
            "a headless selectorless service may list two families",
            spec_patch(json!({"ipFamilyPolicy": "RequireDualStack", "clusterIP": "None", "clusterIPs": ["None"],
                "ipFamilies": ["IPv4", "IPv6"], "selector": null})),
            &[],
        ),
        (
            "IP families must be IPv4 or IPv6",
            spec_patch(json!({"ipFamilies": ["not-a-valid-ip-family"]})),
            &["spec.ipFamilies[0]: Unsupported value: \"not-a-valid-ip-family\": supported values: \"IPv4\", \"IPv6\""],
        ),
        (
            "IP families may not repeat",
            spec_patch(json!({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6", "IPv6"]})),
            &["spec.ipFamilies[1]: Duplicate value: \"IPv6\""],
        ),
        (
            "the IP family policy must be a known one",
            spec_patch(json!({"ipFamilyPolicy": "DualStack"})),
            &[
                "spec.ipFamilyPolicy: Unsupported value: \"DualStack\": supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\"",
            ],
        ),
        (
            "SingleStack with two families is left to allocation",
            spec_patch(json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"]})),
            &[],
        ),
        (
            "a LoadBalancer cannot be headless",
            load_balancer(json!({"clusterIP": "None", "clusterIPs": ["None"]})),
            &["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for LoadBalancer services"],
        ),
        (
            "a NodePort service cannot be headless",
            spec_patch(json!({"type": "NodePort", "externalTrafficPolicy": "Cluster", "clusterIP": "None",
                "clusterIPs": ["None"]})),
            &["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"],
        ),
    ]));
    assert!(INVALID_IP_MSG.starts_with("must be a valid IP"));
}

#[test]
fn external_name_and_external_ips_are_validated_on_create() {
    let external = |extra: Value| {
        let mut svc = spec_patch(json!({"type": "ExternalName", "externalName": "foo.bar.example.com"}));
        json_patch::merge(&mut svc, &json!({"spec": extra}));
        svc
    };
    assert_rows(created(vec![
        ("an ExternalName service is valid", external(json!({})), &[]),
        ("an external name may end in a dot", external(json!({"externalName": "foo.bar.example.com."})), &[]),
        (
            "an ExternalName service needs a name",
            external(json!({"externalName": null})),
            &["spec.externalName: Required value"],
        ),
        (
            "a lone dot is no external name",
            external(json!({"externalName": "."})),
            &["spec.externalName: Required value"],
        ),
        (
            "the external name must be a DNS subdomain",
            external(json!({"externalName": "-123"})),
            &[
                "spec.externalName: Invalid value: \"-123\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ],
        ),
        (
            "the external name must be lower case, shown without its trailing dot",
            external(json!({"externalName": "Foo.Example.com."})),
            &[
                "spec.externalName: Invalid value: \"Foo.Example.com\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ],
        ),
        (
            "an ExternalName service has no cluster IPs",
            external(json!({"clusterIP": "1.2.3.4", "clusterIPs": ["1.2.3.4"]})),
            &["spec.clusterIPs: Forbidden: may not be set for ExternalName services"],
        ),
        (
            "an ExternalName service has no IP families or policy",
            external(json!({"ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"})),
            &[
                "spec.ipFamilies: Forbidden: may not be set for ExternalName services",
                "spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services",
            ],
        ),
        (
            "an ExternalName service tolerates an absent internalTrafficPolicy",
            external(json!({"internalTrafficPolicy": null})),
            &[],
        ),
        (
            "external IPs are fine on a ClusterIP service",
            spec_patch(json!({"externalTrafficPolicy": "Cluster", "externalIPs": ["1.2.3.4", "2001:db8::1"]})),
            &[],
        ),
        (
            "an external IP must be an IP",
            spec_patch(json!({"externalTrafficPolicy": "Cluster", "externalIPs": ["myhost.mydomain"]})),
            &[
                "spec.externalIPs[0]: Invalid value: \"myhost.mydomain\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ],
        ),
        (
            "an external IP may not be loopback",
            spec_patch(json!({"externalTrafficPolicy": "Cluster", "externalIPs": ["127.0.0.1"]})),
            &[
                "spec.externalIPs[0]: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            ],
        ),
        (
            "an IPv6 external IP may not be loopback",
            spec_patch(json!({"externalTrafficPolicy": "Cluster", "externalIPs": ["::1"]})),
            &["spec.externalIPs[0]: Invalid value: \"::1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"],
        ),
        (
            "an external IP may not be unspecified",
            spec_patch(json!({"externalTrafficPolicy": "Cluster", "externalIPs": ["0.0.0.0"]})),
            &["spec.externalIPs[0]: Invalid value: \"0.0.0.0\": may not be unspecified (0.0.0.0)"],
        ),
        (
            "an external IP may not be link-local",
            spec_patch(json!({"externalTrafficPolicy": "Cluster", "externalIPs": ["169.254.169.254"]})),
            &[
                "spec.externalIPs[0]: Invalid value: \"169.254.169.254\": may not be in the link-local range (169.254.0.0/16, fe80::/10)",
            ],
        ),
        (
            "an external IP may not be link-local multicast",
            spec_patch(json!({"externalTrafficPolicy": "Cluster", "externalIPs": ["224.0.0.1"]})),
            &[
                "spec.externalIPs[0]: Invalid value: \"224.0.0.1\": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
            ],
        ),
        (
            "an IPv4-mapped loopback external IP is loopback",
            spec_patch(json!({"externalTrafficPolicy": "Cluster", "externalIPs": ["::ffff:127.0.0.1"]})),
            &[
                "spec.externalIPs[0]: Invalid value: \"::ffff:127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            ],
        ),
        (
            "external IPs make a ClusterIP service need an external traffic policy",
            spec_patch(json!({"externalIPs": ["1.2.3.4"]})),
            &["spec.externalTrafficPolicy: Required value"],
        ),
    ]));
    assert!(DNS1123_SUBDOMAIN_MSG.contains("RFC 1123 subdomain"));
}

#[test]
fn load_balancer_fields_are_validated_on_create() {
    let lb_annotated = |value: &str| {
        let mut svc = load_balancer(json!({}));
        json_patch::merge(
            &mut svc,
            &json!({"metadata": {"annotations": {"service.beta.kubernetes.io/load-balancer-source-ranges": value}}}),
        );
        svc
    };
    assert_rows(created(vec![
        ("a LoadBalancer is valid", load_balancer(json!({})), &[]),
        (
            "a LoadBalancer may opt out of node ports",
            load_balancer(json!({"allocateLoadBalancerNodePorts": false})),
            &[],
        ),
        (
            "a LoadBalancer needs allocateLoadBalancerNodePorts (reported without spec.)",
            load_balancer(json!({"allocateLoadBalancerNodePorts": null})),
            &["allocateLoadBalancerNodePorts: Required value"],
        ),
        (
            "allocateLoadBalancerNodePorts is for LoadBalancers only",
            spec_patch(json!({"allocateLoadBalancerNodePorts": true})),
            &["spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is 'LoadBalancer'"],
        ),
        (
            "source ranges may be space padded",
            load_balancer(json!({"loadBalancerSourceRanges": ["1.2.3.0/24  ", " 5.6.0.0/16"]})),
            &[],
        ),
        (
            "a source range must be a CIDR",
            load_balancer(json!({"loadBalancerSourceRanges": ["1.2.3.4/33"]})),
            &[
                "spec.LoadBalancerSourceRanges[0]: Invalid value: \"1.2.3.4/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ],
        ),
        (
            "a blank source range is rejected",
            load_balancer(json!({"loadBalancerSourceRanges": ["   "]})),
            &[
                "spec.LoadBalancerSourceRanges[0]: Invalid value: \"\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ],
        ),
        (
            "source ranges are for LoadBalancers only",
            spec_patch(json!({"loadBalancerSourceRanges": ["1.2.3.0/24", "5.6.0.0/16"]})),
            &["spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'"],
        ),
        ("the source-ranges annotation may list CIDRs", lb_annotated("1.2.3.0/24,  5.6.0.0/16"), &[]),
        ("the source-ranges annotation may be blank", lb_annotated("  "), &[]),
        (
            "the source-ranges annotation must hold CIDRs",
            lb_annotated("foo.bar"),
            &[
                "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]: Invalid value: \"foo.bar\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ],
        ),
        (
            "the source-ranges annotation is for LoadBalancers only, even when empty",
            with(json!({"metadata": {"annotations": {"service.beta.kubernetes.io/load-balancer-source-ranges": ""}}})),
            &[
                "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]: Forbidden: may only be used when `type` is 'LoadBalancer'",
            ],
        ),
        (
            "the source-ranges annotation is ignored when the field is set",
            {
                let mut svc = lb_annotated("foo.bar");
                json_patch::merge(&mut svc, &json!({"spec": {"loadBalancerSourceRanges": ["1.2.3.0/24"]}}));
                svc
            },
            &[],
        ),
        (
            "a load balancer class is a qualified name",
            load_balancer(json!({"loadBalancerClass": "test.com/test-load-balancer-class"})),
            &[],
        ),
        (
            "an invalid load balancer class is rejected",
            load_balancer(json!({"loadBalancerClass": "Bad/LoadBalancerClass"})),
            &[
                "spec.loadBalancerClass: Invalid value: \"Bad/LoadBalancerClass\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ],
        ),
        (
            "a load balancer class is for LoadBalancers only",
            spec_patch(json!({"loadBalancerClass": "test.com/test-load-balancer-class"})),
            &["spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'"],
        ),
    ]));
    assert!(INVALID_CIDR_MSG.starts_with("must be a valid CIDR"));
}

#[test]
fn traffic_policies_and_distribution_are_validated_on_create() {
    assert_rows(created(vec![
        (
            "a Local LoadBalancer with a health check node port is fine",
            load_balancer(json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": 34567})),
            &[],
        ),
        (
            "a NodePort service may be Local",
            spec_patch(json!({"type": "NodePort", "externalTrafficPolicy": "Local"})),
            &[],
        ),
        (
            "a NodePort service needs an external traffic policy",
            spec_patch(json!({"type": "NodePort"})),
            &["spec.externalTrafficPolicy: Required value"],
        ),
        (
            "a LoadBalancer needs an external traffic policy",
            load_balancer(json!({"externalTrafficPolicy": null})),
            &["spec.externalTrafficPolicy: Required value"],
        ),
        (
            "the external traffic policy must be Cluster or Local",
            load_balancer(json!({"externalTrafficPolicy": "invalid"})),
            &["spec.externalTrafficPolicy: Unsupported value: \"invalid\": supported values: \"Cluster\", \"Local\""],
        ),
        (
            "a ClusterIP service takes neither an external traffic policy nor a health check port",
            spec_patch(json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": 34567})),
            &[
                "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services",
                "spec.healthCheckNodePort: Invalid value: 34567: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ],
        ),
        (
            "an ExternalName service takes no external traffic policy",
            spec_patch(
                json!({"type": "ExternalName", "externalName": "foo.bar.com", "externalTrafficPolicy": "Local"}),
            ),
            &[
                "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services",
            ],
        ),
        (
            "a Cluster LoadBalancer takes no health check node port",
            load_balancer(json!({"healthCheckNodePort": 34567})),
            &[
                "spec.healthCheckNodePort: Invalid value: 34567: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ],
        ),
        (
            "a NodePort service takes no health check node port",
            spec_patch(json!({"type": "NodePort", "externalTrafficPolicy": "Local", "healthCheckNodePort": 34567})),
            &[
                "spec.healthCheckNodePort: Invalid value: 34567: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ],
        ),
        (
            "a Local LoadBalancer needs a health check node port",
            load_balancer(json!({"externalTrafficPolicy": "Local"})),
            &["spec.healthCheckNodePort: Required value"],
        ),
        (
            "a negative health check node port is rejected",
            load_balancer(json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": -1})),
            &["spec.healthCheckNodePort: Invalid value: -1: must be between 1 and 65535, inclusive"],
        ),
        (
            "the internal traffic policy is required",
            spec_patch(json!({"internalTrafficPolicy": null})),
            &["spec.internalTrafficPolicy: Required value"],
        ),
        ("the internal traffic policy may be Local", spec_patch(json!({"internalTrafficPolicy": "Local"})), &[]),
        (
            "the internal traffic policy must be Cluster or Local",
            spec_patch(json!({"internalTrafficPolicy": "invalid"})),
            &["spec.internalTrafficPolicy: Unsupported value: \"invalid\": supported values: \"Cluster\", \"Local\""],
        ),
        ("traffic distribution may be PreferClose", spec_patch(json!({"trafficDistribution": "PreferClose"})), &[]),
        (
            "traffic distribution must be PreferClose",
            spec_patch(json!({"trafficDistribution": "Random"})),
            &["spec.trafficDistribution: Unsupported value: \"Random\": supported values: \"PreferClose\""],
        ),
    ]));
}

// ---- ValidateServiceUpdate ------------------------------------------------------------------

/// (name, old patch, new patch, expected errors) against the valid Service.
type UpdateRow = (&'static str, Value, Value, &'static [&'static str]);

fn updated(rows: Vec<UpdateRow>) -> Vec<(&'static str, Vec<String>, &'static [&'static str])> {
    rows.into_iter()
        .map(|(name, old, new, want)| {
            let (old, new) = (spec_patch(old), spec_patch(new));
            (name, rendered(validate_update(&new, &old)), want)
        })
        .collect()
}

fn ip(addr: &str) -> Value {
    json!({"clusterIP": addr, "clusterIPs": [addr]})
}

#[test]
fn cluster_ips_are_immutable_on_update() {
    assert_rows(updated(vec![
        ("an unchanged service is valid", json!({}), json!({}), &[]),
        ("an allocated cluster IP may be kept", ip("1.2.3.4"), ip("1.2.3.4"), &[]),
        (
            "an allocated cluster IP cannot change",
            ip("1.2.3.4"),
            ip("1.2.3.5"),
            &["spec.clusterIPs[0]: Invalid value: []string{\"1.2.3.5\"}: may not change once set"],
        ),
        ("an empty cluster IP may be set", json!({}), ip("1.2.3.5"), &[]),
        (
            "an allocated cluster IP cannot change along with the type",
            ip("1.2.3.4"),
            json!({"clusterIP": "1.2.3.5", "clusterIPs": ["1.2.3.5"], "type": "NodePort", "externalTrafficPolicy": "Cluster"}),
            &["spec.clusterIPs[0]: Invalid value: []string{\"1.2.3.5\"}: may not change once set"],
        ),
        (
            "None cannot become an IP",
            ip("None"),
            ip("1.2.3.4"),
            &["spec.clusterIPs[0]: Invalid value: []string{\"1.2.3.4\"}: may not change once set"],
        ),
        (
            "None cannot be removed",
            ip("None"),
            json!({}),
            &["spec.clusterIPs[0]: Invalid value: []string(nil): primary clusterIP can not be unset"],
        ),
        (
            "an IP cannot become None",
            ip("1.2.3.4"),
            ip("None"),
            &["spec.clusterIPs[0]: Invalid value: []string{\"None\"}: may not change once set"],
        ),
        (
            "an ExternalName service may get any cluster IP when it changes type",
            json!({"type": "ExternalName", "externalName": "foo.example.com", "clusterIP": "1.2.3.4", "clusterIPs": ["1.2.3.4"]}),
            ip("1.2.3.5"),
            &[],
        ),
        (
            "a secondary cluster IP may be added",
            json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}),
            json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "2001::1"], "ipFamilies": ["IPv4", "IPv6"],
                "ipFamilyPolicy": "RequireDualStack"}),
            &[],
        ),
        (
            "releasing the secondary cluster IP needs SingleStack",
            json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "2001::1"], "ipFamilies": ["IPv4", "IPv6"],
                "ipFamilyPolicy": "RequireDualStack"}),
            json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "RequireDualStack"}),
            &[
                "spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": must be set to 'SingleStack' when releasing the secondary clusterIP",
                "spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": must be set to 'SingleStack' when releasing the secondary ipFamily",
            ],
        ),
        (
            "releasing the secondary cluster IP with SingleStack is fine",
            json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "2001::1"], "ipFamilies": ["IPv4", "IPv6"],
                "ipFamilyPolicy": "RequireDualStack"}),
            json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}),
            &[],
        ),
        (
            "the primary IP family cannot change",
            json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}),
            json!({"clusterIP": "2001::1", "clusterIPs": ["2001::1"], "ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack"}),
            &[
                "spec.clusterIPs[0]: Invalid value: []string{\"2001::1\"}: may not change once set",
                "spec.ipFamilies[0]: Invalid value: []core.IPFamily{\"IPv6\"}: may not change once set",
            ],
        ),
        (
            "converting to ExternalName without clearing the IP fields is rejected",
            json!({"clusterIP": "10.0.0.10", "clusterIPs": ["10.0.0.10"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}),
            json!({"type": "ExternalName", "externalName": "foo", "clusterIP": "10.0.0.10", "clusterIPs": ["10.0.0.10"],
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}),
            &[
                "spec.clusterIPs: Forbidden: may not be set for ExternalName services",
                "spec.ipFamilies: Forbidden: may not be set for ExternalName services",
                "spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services",
            ],
        ),
    ]));
}

#[test]
fn load_balancer_class_and_health_check_port_are_immutable_on_update() {
    let lb = |extra: Value| {
        let mut spec =
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Cluster", "allocateLoadBalancerNodePorts": true});
        json_patch::merge(&mut spec, &extra);
        spec
    };
    assert_rows(updated(vec![
        (
            "a load balancer class cannot change",
            lb(json!({"loadBalancerClass": "test.com/test-old"})),
            lb(json!({"loadBalancerClass": "test.com/test-new"})),
            &["spec.loadBalancerClass: Invalid value: \"test.com/test-new\": may not change once set"],
        ),
        (
            "a load balancer class cannot be unset",
            lb(json!({"loadBalancerClass": "test.com/test-old"})),
            lb(json!({})),
            &["spec.loadBalancerClass: Invalid value: \"null\": may not change once set"],
        ),
        (
            "a load balancer class cannot be added to a LoadBalancer",
            lb(json!({})),
            lb(json!({"loadBalancerClass": "test.com/test-new"})),
            &["spec.loadBalancerClass: Invalid value: \"test.com/test-new\": may not change once set"],
        ),
        (
            "a load balancer class may come with the change to LoadBalancer",
            json!({}),
            lb(json!({"loadBalancerClass": "test.com/test-load-balancer-class"})),
            &[],
        ),
        (
            "a class on a ClusterIP service is reported twice, as upstream does",
            json!({}),
            json!({"loadBalancerClass": "test.com/test-load-balancer-class"}),
            &[
                "spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'",
                "spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'",
            ],
        ),
        (
            "allocateLoadBalancerNodePorts may change",
            lb(json!({})),
            lb(json!({"allocateLoadBalancerNodePorts": false})),
            &[],
        ),
        (
            "the health check node port cannot change",
            lb(json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": 31000})),
            lb(json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": 31001})),
            &["spec.healthCheckNodePort: Forbidden: field is immutable"],
        ),
        (
            "the internal traffic policy may change",
            json!({"internalTrafficPolicy": "Cluster"}),
            json!({"internalTrafficPolicy": "Local"}),
            &[],
        ),
    ]));
}

#[test]
fn metadata_rules_apply_on_update() {
    let old = valid();
    let renamed = with(json!({"metadata": {"name": "other"}}));
    assert_eq!(
        rendered(validate_update(&renamed, &old)),
        ["metadata.name: Invalid value: \"other\": field is immutable"]
    );
    let bad_label = with(json!({"metadata": {"labels": {"a": "-b"}}}));
    let label_msg = "metadata.labels: Invalid value: \"-b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
    // ValidateServiceUpdate runs ValidateObjectMetaUpdate and then ValidateService, whose
    // ValidateObjectMeta reports the label again.
    assert_eq!(rendered(validate_update(&bad_label, &old)), [label_msg, label_msg]);
}

// ---- ValidateServiceStatusUpdate ------------------------------------------------------------

#[test]
fn load_balancer_status_entries_are_validated() {
    let lb = load_balancer(json!({}));
    let status = |svc: &Value, ingress: Value| {
        let mut svc = svc.clone();
        svc["status"] = json!({"loadBalancer": {"ingress": ingress}});
        rendered(validate_status_update(&svc, &lb))
    };
    let cluster_ip = valid();
    assert_rows(vec![
        ("an IP with VIP mode is fine", status(&lb, json!([{"ip": "1.2.3.4", "ipMode": "VIP"}])), &[]),
        ("a hostname is fine", status(&lb, json!([{"hostname": "lb.example.com"}])), &[]),
        (
            "an IP needs an ipMode",
            status(&lb, json!([{"ip": "1.2.3.4"}])),
            &["status.loadBalancer.ingress[0].ipMode: Required value: must be specified when `ip` is set"],
        ),
        (
            "an ipMode needs an IP",
            status(&lb, json!([{"hostname": "lb.example.com", "ipMode": "Proxy"}])),
            &["status.loadBalancer.ingress[0].ipMode: Forbidden: may not be specified when `ip` is not set"],
        ),
        (
            "the ipMode must be VIP or Proxy",
            status(&lb, json!([{"ip": "1.2.3.4", "ipMode": "Direct"}])),
            &[
                "status.loadBalancer.ingress[0].ipMode: Unsupported value: \"Direct\": supported values: \"Proxy\", \"VIP\"",
            ],
        ),
        (
            "the IP must be an IP",
            status(&lb, json!([{"ip": "1.2.3", "ipMode": "VIP"}])),
            &[
                "status.loadBalancer.ingress[0].ip: Invalid value: \"1.2.3\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ],
        ),
        (
            "the hostname may not be an IP",
            status(&lb, json!([{"hostname": "1.2.3.4"}])),
            &[
                "status.loadBalancer.ingress[0].hostname: Invalid value: \"1.2.3.4\": must be a DNS name, not an IP address",
            ],
        ),
        (
            "the hostname must be a DNS subdomain",
            status(&lb, json!([{}, {"hostname": "Foo_bar"}])),
            &[
                "status.loadBalancer.ingress[1].hostname: Invalid value: \"Foo_bar\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ],
        ),
        (
            "ingress entries are for LoadBalancers only",
            status(&cluster_ip, json!([{"ip": "1.2.3.4", "ipMode": "VIP"}])),
            &["status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is 'LoadBalancer'"],
        ),
        ("an empty load balancer status is fine anywhere", status(&cluster_ip, json!([])), &[]),
    ]);
    let mut renamed = lb.clone();
    renamed["metadata"]["name"] = json!("other");
    assert_eq!(
        rendered(validate_status_update(&renamed, &lb)),
        ["metadata.name: Invalid value: \"other\": field is immutable"]
    );
}

// ---- the crate::validation dispatch ---------------------------------------------------------

#[test]
fn the_generic_validator_checks_services_as_the_registry_sees_them() {
    let rt = crate::resources::by_kind("", "Service").unwrap();
    let check = |svc: Value, old: Option<Value>| rendered(crate::validation::validate(rt, &svc, old.as_ref()));
    // clusterIP alone is normalized to clusterIPs before validation.
    assert!(check(spec_patch(json!({"clusterIP": "10.0.0.1"})), None).is_empty());
    assert!(check(spec_patch(json!({"clusterIP": "None", "ports": null})), None).is_empty());
    assert_eq!(
        check(spec_patch(json!({"type": "Bogus"})), None),
        [
            "spec.type: Unsupported value: \"Bogus\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
        ]
    );
    // A resubmitted manifest keeps the allocated IP; a changed one is immutable.
    let stored = spec_patch(ip("10.0.0.1"));
    assert!(check(valid(), Some(stored.clone())).is_empty());
    assert_eq!(
        check(spec_patch(json!({"clusterIP": "10.0.0.2"})), Some(stored)),
        ["spec.clusterIPs[0]: Invalid value: []string{\"10.0.0.2\"}: may not change once set",]
    );
}

// ---- defaulting -----------------------------------------------------------------------------

#[test]
fn defaulting_follows_set_defaults_service() {
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "a bare service becomes a ClusterIP service with TCP ports",
            json!({"spec": {"ports": [{"port": 80}, {"port": 443, "targetPort": "https", "protocol": "UDP"}]}}),
            json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80},
                {"port": 443, "targetPort": "https", "protocol": "UDP"}],
                "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster"}}),
        ),
        (
            "an empty or zero target port becomes the port",
            json!({"spec": {"ports": [{"port": 80, "targetPort": ""}, {"port": 81, "targetPort": 0}]}}),
            json!({"spec": {"ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"},
                {"port": 81, "targetPort": 81, "protocol": "TCP"}],
                "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster"}}),
        ),
        (
            "ClientIP affinity gets a three hour timeout",
            json!({"spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}}),
            json!({"spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                "type": "ClusterIP", "internalTrafficPolicy": "Cluster"}}),
        ),
        (
            "a ClusterIP service with external IPs gets an external traffic policy",
            json!({"spec": {"externalIPs": ["1.2.3.4"]}}),
            json!({"spec": {"externalIPs": ["1.2.3.4"], "sessionAffinity": "None", "type": "ClusterIP",
                "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster"}}),
        ),
        (
            "a NodePort service gets an external traffic policy",
            json!({"spec": {"type": "NodePort"}}),
            json!({"spec": {"type": "NodePort", "sessionAffinity": "None",
                "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster"}}),
        ),
        (
            "a LoadBalancer gets node ports and VIP ingress entries",
            json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
                "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"hostname": "lb.example.com"}]}}}),
            json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster", "allocateLoadBalancerNodePorts": true},
                "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ipMode": "VIP"}, {"hostname": "lb.example.com"}]}}}),
        ),
        (
            "an ExternalName service gets no traffic policies and loses an affinity config",
            json!({"spec": {"type": "ExternalName", "externalName": "x.example.com",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}}),
            json!({"spec": {"type": "ExternalName", "externalName": "x.example.com", "sessionAffinity": "None"}}),
        ),
    ];
    for (name, mut svc, want) in cases {
        default_service(&mut svc);
        assert_eq!(svc, want, "{name}");
        let mut again = svc.clone();
        default_service(&mut again);
        assert_eq!(again, svc, "{name}: defaulting twice changes nothing");
    }
}

#[test]
fn the_crate_defaulter_uses_service_defaulting() {
    let rt = crate::resources::by_kind("", "Service").unwrap();
    let mut via_crate = json!({"spec": {"type": "LoadBalancer"}});
    crate::defaults::apply(rt, &mut via_crate);
    let mut direct = json!({"spec": {"type": "LoadBalancer"}});
    default_service(&mut direct);
    assert_eq!(via_crate, direct);
    assert_eq!(direct["spec"]["allocateLoadBalancerNodePorts"], true);
}

// ---- registry strategy ----------------------------------------------------------------------

#[test]
fn create_starts_with_an_empty_status() {
    let mut svc = with(json!({"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}));
    prepare_for_create(&mut svc);
    assert_eq!(svc["status"], json!({"loadBalancer": {}}));
}

#[test]
fn updates_drop_fields_the_new_type_does_not_use() {
    let node_port = spec_patch(json!({"type": "NodePort", "externalTrafficPolicy": "Cluster", "clusterIP": "10.0.0.1",
        "clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
        "ports": [{"name": "p", "protocol": "TCP", "port": 80, "targetPort": 80, "nodePort": 30080}]}));
    let local_lb = spec_patch(
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000,
        "allocateLoadBalancerNodePorts": true, "loadBalancerClass": "example.com/lb", "clusterIP": "10.0.0.1",
        "clusterIPs": ["10.0.0.1"], "ports": [{"name": "p", "protocol": "TCP", "port": 80, "targetPort": 80, "nodePort": 30080}]}),
    );
    let mut local_lb_with_status = local_lb.clone();
    local_lb_with_status["status"] = json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ipMode": "VIP"}]}});

    // (name, old, change applied to a copy of old, expected spec fields afterwards, validation errors)
    type Row = (&'static str, Value, Value, Value, &'static [&'static str]);
    let rows: Vec<Row> = vec![
        (
            "NodePort to ClusterIP drops the unchanged node ports and external traffic policy",
            node_port.clone(),
            json!({"spec": {"type": "ClusterIP"}}),
            json!({"type": "ClusterIP", "ports": [{"name": "p", "protocol": "TCP", "port": 80, "targetPort": 80}],
                "externalTrafficPolicy": null}),
            &[],
        ),
        (
            "NodePort to ClusterIP keeps a net-new node port, which validation rejects",
            node_port.clone(),
            json!({"spec": {"type": "ClusterIP", "ports": [{"name": "p", "protocol": "TCP", "port": 80, "targetPort": 80, "nodePort": 30081}]}}),
            json!({"ports": [{"name": "p", "protocol": "TCP", "port": 80, "targetPort": 80, "nodePort": 30081}]}),
            &["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
        ),
        (
            "NodePort to ExternalName drops the cluster IP fields too",
            node_port.clone(),
            json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
            json!({"clusterIP": null, "clusterIPs": null, "ipFamilies": null, "ipFamilyPolicy": null,
                "externalTrafficPolicy": null}),
            &[],
        ),
        (
            "to ExternalName keeps cluster IPs the client changed, which validation rejects",
            node_port.clone(),
            json!({"spec": {"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "10.0.0.2",
                "clusterIPs": ["10.0.0.2"]}}),
            json!({"clusterIP": "10.0.0.2", "ipFamilies": null}),
            &["spec.clusterIPs: Forbidden: may not be set for ExternalName services"],
        ),
        (
            "LoadBalancer to ClusterIP drops LoadBalancer fields and clears the status",
            local_lb_with_status.clone(),
            json!({"spec": {"type": "ClusterIP"}}),
            json!({"healthCheckNodePort": null, "allocateLoadBalancerNodePorts": null, "loadBalancerClass": null,
                "externalTrafficPolicy": null, "clusterIP": "10.0.0.1",
                "ports": [{"name": "p", "protocol": "TCP", "port": 80, "targetPort": 80}]}),
            &[],
        ),
        (
            "Local to Cluster drops the health check node port",
            local_lb.clone(),
            json!({"spec": {"externalTrafficPolicy": "Cluster"}}),
            json!({"healthCheckNodePort": null, "externalTrafficPolicy": "Cluster", "loadBalancerClass": "example.com/lb"}),
            &[],
        ),
    ];
    for (name, old, change, want, errors) in rows {
        let mut new = old.clone();
        new.as_object_mut().unwrap().remove("status");
        json_patch::merge(&mut new, &change);
        prepare_for_update(&mut new, &old);
        for (key, value) in want.as_object().unwrap() {
            assert_eq!(new["spec"].get(key).unwrap_or(&Value::Null), value, "{name}: spec.{key}");
        }
        let want_status = if new["spec"]["type"] == "LoadBalancer" {
            old.get("status").cloned().unwrap_or(json!({"loadBalancer": {}}))
        } else {
            json!({"loadBalancer": {}})
        };
        assert_eq!(new["status"], want_status, "{name}: status");
        assert_eq!(rendered(validate_update(&new, &old)), errors, "{name}: validation");
    }
}

#[test]
fn updates_keep_the_stored_status_and_status_updates_keep_the_stored_spec() {
    let mut old = with(json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Cluster",
        "allocateLoadBalancerNodePorts": true}}));
    old["status"] = json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ipMode": "VIP"}]}});
    let mut new = old.clone();
    new["status"] = json!({"loadBalancer": {}});
    new["spec"]["sessionAffinity"] = json!("ClientIP");
    prepare_for_update(&mut new, &old);
    assert_eq!(new["status"], old["status"]);
    assert_eq!(new["spec"]["sessionAffinity"], "ClientIP");

    let mut status_write = old.clone();
    status_write["spec"]["type"] = json!("ClusterIP");
    status_write["status"] = json!({"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}});
    prepare_for_status_update(&mut status_write, &old);
    assert_eq!(status_write["spec"], old["spec"]);
    assert_eq!(status_write["status"]["loadBalancer"]["ingress"][0]["hostname"], "lb.example.com");
}

// ---- storage: normalizeClusterIPs, patchAllocatedValues, defaultOnRead ----------------------

#[test]
fn cluster_ip_and_cluster_ips_are_kept_in_step() {
    // (name, old spec, new spec, clusterIPs afterwards)
    type Row = (&'static str, Option<Value>, Value, Value);
    let rows: Vec<Row> = vec![
        ("a create with only clusterIP gets clusterIPs", None, json!({"clusterIP": "10.0.0.1"}), json!(["10.0.0.1"])),
        ("a create with None gets [None]", None, json!({"clusterIP": "None"}), json!(["None"])),
        ("a create with neither stays empty", None, json!({}), Value::Null),
        (
            "a create with both keeps clusterIPs as given",
            None,
            json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.2"]}),
            json!(["10.0.0.2"]),
        ),
        (
            "an old client that drops clusterIPs keeps the stored ones",
            Some(json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "2001::1"]})),
            json!({"clusterIP": "10.0.0.1"}),
            json!(["10.0.0.1", "2001::1"]),
        ),
        (
            "clearing clusterIP alone clears clusterIPs",
            Some(json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"]})),
            json!({"clusterIPs": ["10.0.0.1"]}),
            Value::Null,
        ),
        (
            "changing clusterIP alone replaces clusterIPs",
            Some(json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "2001::1"]})),
            json!({"clusterIP": "10.0.0.2", "clusterIPs": ["10.0.0.1", "2001::1"]}),
            json!(["10.0.0.2"]),
        ),
        (
            "changing both leaves them to validation",
            Some(json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"]})),
            json!({"clusterIP": "10.0.0.2", "clusterIPs": ["10.0.0.3"]}),
            json!(["10.0.0.3"]),
        ),
    ];
    for (name, old, new, want) in rows {
        let old = old.map(|s| json!({"spec": s}));
        let mut new = json!({"spec": new});
        normalize_cluster_ips(&mut new, old.as_ref());
        assert_eq!(new["spec"].get("clusterIPs").unwrap_or(&Value::Null), &want, "{name}");
    }
}

#[test]
fn a_resubmitted_manifest_keeps_allocated_values() {
    let old = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000,
        "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"],
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "https", "port": 443, "nodePort": 30443}]}});
    let mut new = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
        "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443, "nodePort": 30080}, {"name": "extra", "port": 8080}]}});
    patch_allocated_values(&mut new, &old);
    assert_eq!(new["spec"]["clusterIP"], "10.0.0.1");
    assert_eq!(new["spec"]["clusterIPs"], json!(["10.0.0.1"]));
    assert_eq!(new["spec"]["healthCheckNodePort"], 31000);
    // 30080 is now used by "https", so "http" does not get it back; "extra" had none.
    assert_eq!(
        new["spec"]["ports"],
        json!([{"name": "http", "port": 80}, {"name": "https", "port": 443, "nodePort": 30080}, {"name": "extra", "port": 8080}])
    );

    let mut to_external = json!({"spec": {"type": "ExternalName", "externalName": "x.example.com"}});
    patch_allocated_values(&mut to_external, &old);
    assert!(to_external["spec"].get("clusterIP").is_none(), "ExternalName gets no cluster IP back");
}

#[test]
fn stored_services_are_completed_on_read() {
    let v4 = ServiceConfig { families: vec![IpFamily::IPv4] };
    let v6_dual = ServiceConfig { families: vec![IpFamily::IPv6, IpFamily::IPv4] };
    // (name, config, stored spec, expected fields)
    let rows: Vec<(&str, &ServiceConfig, Value, Value)> = vec![
        (
            "an old single-IP service gets clusterIPs, families and SingleStack",
            &v4,
            json!({"type": "ClusterIP", "clusterIP": "10.0.0.1", "selector": {"a": "b"}}),
            json!({"clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}),
        ),
        (
            "an old headless selectorless service is dual-stack from the primary family",
            &v6_dual,
            json!({"type": "ClusterIP", "clusterIP": "None"}),
            json!({"clusterIPs": ["None"], "ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "RequireDualStack"}),
        ),
        (
            "an old headless service with a selector is single-stack",
            &v4,
            json!({"type": "ClusterIP", "clusterIP": "None", "selector": {"a": "b"}}),
            json!({"ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}),
        ),
        (
            "an ExternalName service loses its internal traffic policy",
            &v4,
            json!({"type": "ExternalName", "externalName": "x.example.com", "internalTrafficPolicy": "Cluster"}),
            json!({"internalTrafficPolicy": null, "ipFamilies": null}),
        ),
    ];
    for (name, cfg, spec, want) in rows {
        let mut svc = json!({"spec": spec});
        default_on_read(&mut svc, cfg);
        for (key, value) in want.as_object().unwrap() {
            assert_eq!(svc["spec"].get(key).unwrap_or(&Value::Null), value, "{name}: spec.{key}");
        }
    }
}

// ---- IP family defaulting (initIPFamilyFields) ----------------------------------------------

#[test]
fn ip_families_default_from_the_cluster_configuration() {
    let v4 = ServiceConfig { families: vec![IpFamily::IPv4] };
    let dual = ServiceConfig { families: vec![IpFamily::IPv4, IpFamily::IPv6] };
    // (name, config, spec patch, expected policy, expected families, errors)
    type Row = (&'static str, &'static str, Value, Value, Value, &'static [&'static str]);
    let rows: Vec<Row> = vec![
        (
            "a service defaults to single-stack on the primary family",
            "v4",
            json!({}),
            json!("SingleStack"),
            json!(["IPv4"]),
            &[],
        ),
        (
            "PreferDualStack gets both families on a dual-stack cluster",
            "dual",
            json!({"ipFamilyPolicy": "PreferDualStack"}),
            json!("PreferDualStack"),
            json!(["IPv4", "IPv6"]),
            &[],
        ),
        (
            "PreferDualStack stays single on a single-stack cluster",
            "v4",
            json!({"ipFamilyPolicy": "PreferDualStack"}),
            json!("PreferDualStack"),
            json!(["IPv4"]),
            &[],
        ),
        (
            "a requested cluster IP decides the family",
            "dual",
            json!({"clusterIP": "2001::1", "clusterIPs": ["2001::1"]}),
            json!("SingleStack"),
            json!(["IPv6"]),
            &[],
        ),
        (
            "a headless selectorless service is RequireDualStack with both families",
            "v4",
            json!({"clusterIP": "None", "clusterIPs": ["None"], "selector": null}),
            json!("RequireDualStack"),
            json!(["IPv4", "IPv6"]),
            &[],
        ),
        (
            "a headless service with a selector is single-stack",
            "v4",
            json!({"clusterIP": "None", "clusterIPs": ["None"]}),
            json!("SingleStack"),
            json!(["IPv4"]),
            &[],
        ),
        (
            "RequireDualStack needs a dual-stack cluster",
            "v4",
            json!({"ipFamilyPolicy": "RequireDualStack"}),
            json!("RequireDualStack"),
            Value::Null,
            &[
                "spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services",
            ],
        ),
        (
            "a requested family must be configured",
            "v4",
            json!({"ipFamilies": ["IPv6"]}),
            json!("SingleStack"),
            json!(["IPv6"]),
            &["spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"],
        ),
        (
            "a requested cluster IP's family must be configured",
            "v4",
            json!({"clusterIP": "2001::1", "clusterIPs": ["2001::1"]}),
            json!("SingleStack"),
            Value::Null,
            &["spec.clusterIPs[0]: Invalid value: []string{\"2001::1\"}: IPv6 is not configured on this cluster"],
        ),
        (
            "SingleStack cannot have two cluster IPs",
            "dual",
            json!({"ipFamilyPolicy": "SingleStack", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "2001::1"]}),
            json!("SingleStack"),
            Value::Null,
            &[
                "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
            ],
        ),
        (
            "SingleStack cannot have two families",
            "dual",
            json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"]}),
            json!("SingleStack"),
            json!(["IPv4", "IPv6"]),
            &[
                "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
            ],
        ),
        (
            "malformed cluster IPs are reported before anything is defaulted",
            "v4",
            json!({"clusterIP": "garbage", "clusterIPs": ["garbage"]}),
            json!("SingleStack"),
            Value::Null,
            &[
                "spec.clusterIPs[0]: Invalid value: \"garbage\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ],
        ),
        (
            "ExternalName services are left alone",
            "v4",
            json!({"type": "ExternalName", "externalName": "x.example.com"}),
            Value::Null,
            Value::Null,
            &[],
        ),
    ];
    for (name, cluster, patch, policy, families, errors) in rows {
        let cfg = if cluster == "dual" { &dual } else { &v4 };
        let mut svc = spec_patch(patch);
        let errs = rendered(default_ip_families(&mut svc, cfg));
        assert_eq!(errs, errors, "{name}: errors");
        assert_eq!(svc["spec"].get("ipFamilyPolicy").unwrap_or(&Value::Null), &policy, "{name}: policy");
        assert_eq!(svc["spec"].get("ipFamilies").unwrap_or(&Value::Null), &families, "{name}: families");
    }
}

#[test]
fn ip_family_updates_follow_the_dual_stack_rules() {
    let dual = ServiceConfig { families: vec![IpFamily::IPv4, IpFamily::IPv6] };
    let v4 = ServiceConfig { families: vec![IpFamily::IPv4] };
    let dual_svc = spec_patch(json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "2001::1"],
        "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack"}));

    // Releasing the secondary IP without SingleStack (the policy is taken over from the old object).
    let mut new =
        spec_patch(json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv4", "IPv6"]}));
    assert_eq!(
        rendered(init_ip_family_fields(&mut new, Some(&dual_svc), &dual)),
        [
            "spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": must be 'SingleStack' to release the secondary cluster IP",
        ]
    );

    // Switching to SingleStack with the IP fields untouched downgrades them.
    let mut new = dual_svc.clone();
    new["spec"]["ipFamilyPolicy"] = json!("SingleStack");
    assert!(init_ip_family_fields(&mut new, Some(&dual_svc), &dual).is_empty());
    assert_eq!(new["spec"]["clusterIPs"], json!(["10.0.0.1"]));
    assert_eq!(new["spec"]["ipFamilies"], json!(["IPv4"]));

    // An unchanged PreferDualStack service is not upgraded when the cluster became dual-stack.
    let prefer = spec_patch(json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "PreferDualStack"}));
    let mut new = prefer.clone();
    assert!(init_ip_family_fields(&mut new, Some(&prefer), &dual).is_empty());
    assert_eq!(new, prefer);

    // An update without a policy keeps the stored one.
    let single = spec_patch(json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack"}));
    let mut new = spec_patch(json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"]}));
    assert!(init_ip_family_fields(&mut new, Some(&single), &v4).is_empty());
    assert_eq!(new["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(new["spec"]["ipFamilies"], json!(["IPv4"]));
}

// ---- IP parsing the way Kubernetes does ----------------------------------------------------

#[test]
fn ips_and_cidrs_parse_like_go_parse_ip_sloppy() {
    let ips: &[(&str, Option<&str>)] = &[
        ("10.0.0.1", Some("IPv4")),
        ("010.000.000.001", Some("IPv4")),
        ("2001:db8::1", Some("IPv6")),
        ("::", Some("IPv6")),
        ("::ffff:10.0.0.1", Some("IPv4")),
        ("::1.2.3.4", Some("IPv6")),
        ("00001::", Some("IPv6")),
        ("1.2.3", None),
        ("1.2.3.256", None),
        ("1.2.3.4.5", None),
        ("1:2:3:4:5:6:7:8:9", None),
        ("1::2::3", None),
        ("fe80::1%eth0", None),
        ("", None),
        ("None", None),
    ];
    for (ip, family) in ips {
        let got = parse_ip_sloppy(ip).map(|_| family_of(ip));
        assert_eq!(got, *family, "{ip}");
    }
    for (cidr, ok) in [
        ("10.0.0.0/8", true),
        ("10.0.0.1/32", true),
        ("2001:db8::/64", true),
        ("::/0", true),
        ("10.0.0.0/08", true),
        ("10.0.0.0/33", false),
        ("2001:db8::/129", false),
        ("10.0.0.0", false),
        ("10.0.0.0/", false),
        ("foo.bar", false),
    ] {
        assert_eq!(is_valid_cidr(cidr), ok, "{cidr}");
    }
}

use serde_json::{Value, json};

use super::*;
use crate::defaults;
use crate::resources::by_kind;

fn rt(group: &str, kind: &str) -> &'static ResourceType {
    by_kind(group, kind).unwrap()
}

/// Defaults then validates, as the server does, and renders the errors.
fn check(group: &str, kind: &str, mut obj: Value) -> Vec<String> {
    defaults::apply(rt(group, kind), &mut obj);
    validate(rt(group, kind), &obj, None).iter().map(ToString::to_string).collect()
}

fn check_update(group: &str, kind: &str, mut obj: Value, mut old: Value) -> Vec<String> {
    defaults::apply(rt(group, kind), &mut obj);
    defaults::apply(rt(group, kind), &mut old);
    validate(rt(group, kind), &obj, Some(&old)).iter().map(ToString::to_string).collect()
}

fn meta(rt: &ResourceType, meta: Value) -> Vec<String> {
    validate_object_meta(rt, &meta, &Path::new("metadata")).iter().map(ToString::to_string).collect()
}

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn deployment(selector: Value, labels: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": selector, "template": {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
}

#[test]
fn name_is_required_unless_generated() {
    let pods = rt("", "Pod");
    assert_eq!(
        meta(pods, json!({"namespace": "default"})),
        vec!["metadata.name: Required value: name or generateName is required"]
    );
    assert!(meta(pods, json!({"namespace": "default", "generateName": "web-"})).is_empty());
    assert_eq!(
        meta(pods, json!({"namespace": "default", "generateName": "Web-"})),
        vec![format!("metadata.generateName: Invalid value: \"Web-\": {DNS1123_SUBDOMAIN_MSG}")]
    );
    assert_eq!(
        meta(pods, json!({"name": "Web", "namespace": "default"})),
        vec![format!("metadata.name: Invalid value: \"Web\": {DNS1123_SUBDOMAIN_MSG}")]
    );
}

#[test]
fn name_rules_per_kind() {
    let svc = meta(rt("", "Service"), json!({"name": "1web", "namespace": "default"}));
    assert_eq!(
        svc,
        vec![
            "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        ]
    );
    assert_eq!(
        meta(rt("", "Namespace"), json!({"name": "team.a"})),
        vec!["metadata.name: Invalid value: \"team.a\": must not contain dots"]
    );
    assert_eq!(
        meta(rt("apps", "StatefulSet"), json!({"name": "db.0", "namespace": "default"})),
        vec!["metadata.name: Invalid value: \"db.0\": must not contain dots"]
    );
    assert!(meta(rt("apps", "Deployment"), json!({"name": "web.v2", "namespace": "default"})).is_empty());
    assert!(meta(rt("", "Node"), json!({"name": "node-1.example.com"})).is_empty());
    assert!(
        meta(rt("coordination.k8s.io", "Lease"), json!({"name": "kube-scheduler", "namespace": "kube-system"}))
            .is_empty()
    );
    // core/v1 Events only need to be a path segment.
    assert!(meta(rt("", "Event"), json!({"name": "web.17a8b3c2D", "namespace": "default"})).is_empty());
    assert_eq!(
        meta(rt("", "Event"), json!({"name": "a/b", "namespace": "default"})),
        vec!["metadata.name: Invalid value: \"a/b\": may not contain '/'"]
    );
}

#[test]
fn namespace_is_required_for_namespaced_kinds_only() {
    assert_eq!(meta(rt("", "ConfigMap"), json!({"name": "c"})), vec!["metadata.namespace: Required value"]);
    assert_eq!(
        meta(rt("", "ConfigMap"), json!({"name": "c", "namespace": "Team"}))[0],
        "metadata.namespace: Invalid value: \"Team\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    );
    assert!(meta(rt("", "Node"), json!({"name": "n1", "namespace": "ignored"})).is_empty());
}

#[test]
fn labels_annotations_and_generation() {
    let errs = meta(
        rt("", "ConfigMap"),
        json!({"name": "c", "namespace": "default", "generation": -1,
            "labels": {"app": "web", "bad key!": "x", "tier": "-front"}, "annotations": {"Example.com/OK": "", "a/b/c": "x"}}),
    );
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert_eq!(errs[0], "metadata.generation: Invalid value: -1: must be greater than or equal to 0");
    assert!(errs[1].starts_with(
        "metadata.labels: Invalid value: \"bad key!\": name part must consist of alphanumeric characters"
    ));
    assert!(errs[2].starts_with("metadata.labels: Invalid value: \"-front\": a valid label must be an empty string"));
    assert!(errs[3].starts_with("metadata.annotations: Invalid value: \"a/b/c\": a qualified name must consist of"));

    let big = "x".repeat(TOTAL_ANNOTATION_SIZE);
    let errs = meta(rt("", "ConfigMap"), json!({"name": "c", "namespace": "default", "annotations": {"a": big}}));
    assert_eq!(errs, vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]);
}

const TOTAL_ANNOTATION_SIZE: usize = meta::TOTAL_ANNOTATION_SIZE_LIMIT;

#[test]
fn owner_references_and_finalizers() {
    let errs = meta(
        rt("", "Pod"),
        json!({"name": "p", "namespace": "default",
            "ownerReferences": [{"apiVersion": "apps/", "kind": "", "name": "", "uid": ""},
                {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "1"}],
            "finalizers": ["example.com/cleanup", "cleanup", "orphan", "foregroundDeletion"]}),
    );
    assert_eq!(
        errs,
        vec![
            "metadata.ownerReferences.apiVersion: Invalid value: \"apps/\": version must not be empty",
            "metadata.ownerReferences.kind: Invalid value: \"\": must not be empty",
            "metadata.ownerReferences.name: Invalid value: \"\": must not be empty",
            "metadata.ownerReferences.uid: Invalid value: \"\": must not be empty",
            "metadata.ownerReferences: Invalid value: v1.OwnerReference{APIVersion:\"v1\", Kind:\"Event\", Name:\"e\", UID:\"1\", Controller:(*bool)(nil), BlockOwnerDeletion:(*bool)(nil)}: /v1, Kind=Event is disallowed from being an owner",
            "metadata.finalizers: Invalid value: []string{\"example.com/cleanup\", \"cleanup\", \"orphan\", \"foregroundDeletion\"}: finalizer orphan and foregroundDeletion cannot be both set",
            "metadata.finalizers[1]: Invalid value: \"cleanup\": name is neither a standard finalizer name nor is it fully qualified",
        ]
    );
    // Leases are validated by apimachinery alone, without the standard-finalizer rule.
    assert!(
        meta(
            rt("coordination.k8s.io", "Lease"),
            json!({"name": "l", "namespace": "default", "finalizers": ["cleanup"]})
        )
        .is_empty()
    );
}

#[test]
fn two_controllers_are_rejected() {
    let errs = meta(
        rt("", "Pod"),
        json!({"name": "p", "namespace": "default", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": true},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "2", "controller": true}]}),
    );
    assert_eq!(errs.len(), 1);
    assert!(errs[0].ends_with(
        "Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/a and ReplicaSet/b"
    ));
}

#[test]
fn pod_containers() {
    let errs = check("", "Pod", json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {}}));
    assert_eq!(errs, vec!["spec.containers: Required value"]);

    let errs = check(
        "",
        "Pod",
        json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {
            "volumes": [{"name": "data"}],
            "containers": [
                {"name": "app", "image": "nginx", "ports": [{"containerPort": 0}, {"containerPort": 70000, "name": "http"}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cache", "mountPath": "/data"}]},
                {"name": "app", "image": ""},
                {"name": "App_1", "image": "x", "env": [{"name": "A=B"}]}],
            "initContainers": [{"name": "app", "image": "busybox"}]}}),
    );
    assert_eq!(
        errs,
        vec![
            "spec.containers[0].ports[0].containerPort: Required value",
            "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].volumeMounts[1].name: Not found: \"cache\"",
            "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/data\": must be unique",
            "spec.containers[1].image: Required value",
            "spec.containers[1].name: Duplicate value: \"app\"",
            "spec.containers[2].name: Invalid value: \"App_1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            "spec.containers[2].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
            "spec.initContainers[0].name: Duplicate value: \"app\"",
        ]
    );
}

#[test]
fn deployment_selector_must_match_template() {
    let ok = check(
        "apps",
        "Deployment",
        deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web", "tier": "fe"})),
    );
    assert!(ok.is_empty(), "{ok:#?}");

    let errs = check("apps", "Deployment", deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "api"})));
    assert_eq!(
        errs,
        vec![
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"api\"}: `selector` does not match template `labels`"
        ]
    );

    let mut no_selector = deployment(Value::Null, json!({"app": "web"}));
    no_selector["spec"].as_object_mut().unwrap().remove("selector");
    assert_eq!(
        check("apps", "Deployment", no_selector),
        vec![
            "spec.selector: Required value",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
        ]
    );

    assert_eq!(
        check("apps", "Deployment", deployment(json!({}), json!({"app": "web"}))),
        vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
        ]
    );

    let expressions = json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]},
        {"key": "canary", "operator": "DoesNotExist"}]});
    assert!(check("apps", "Deployment", deployment(expressions, json!({"app": "api"}))).is_empty());

    let bad_operator = json!({"matchExpressions": [{"key": "app", "operator": "Equals", "values": ["web"]}]});
    let errs = check("apps", "Deployment", deployment(bad_operator, json!({"app": "web"})));
    assert_eq!(
        errs[0],
        "spec.selector.matchExpressions[0].operator: Invalid value: \"Equals\": not a valid selector operator"
    );
    assert!(errs[1].starts_with("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"app\", Operator:\"Equals\", Values:[]string{\"web\"}}}}: invalid label selector"));
}

#[test]
fn deployment_spec_numbers_and_strategy() {
    let mut d = deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web"}));
    d["spec"]["replicas"] = json!(-1);
    d["spec"]["minReadySeconds"] = json!(700);
    d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}});
    assert_eq!(
        check("apps", "Deployment", d),
        vec![
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0",
            "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds",
        ]
    );
    let mut recreate = deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web"}));
    recreate["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {}});
    assert_eq!(
        check("apps", "Deployment", recreate),
        vec!["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]
    );
}

#[test]
fn replica_set_and_stateful_set() {
    let mut rs = deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web"}));
    rs["kind"] = json!("ReplicaSet");
    rs["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    assert_eq!(
        check("apps", "ReplicaSet", rs),
        vec!["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]
    );

    let sts = json!({"metadata": {"name": "db", "namespace": "default"}, "spec": {"serviceName": "db",
        "selector": {"matchLabels": {"app": "db"}}, "template": {"metadata": {"labels": {"app": "db"}},
            "spec": {"containers": [{"name": "db", "image": "postgres"}]}}}});
    assert!(check("apps", "StatefulSet", sts.clone()).is_empty());
    let mut bad = sts.clone();
    bad["spec"]["podManagementPolicy"] = json!("Random");
    bad["spec"]["selector"] = json!({});
    assert_eq!(
        check("apps", "StatefulSet", bad),
        vec![
            "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for statefulset",
        ]
    );

    let mut changed = sts.clone();
    changed["metadata"]["resourceVersion"] = json!("2");
    changed["spec"]["replicas"] = json!(5);
    assert!(check_update("apps", "StatefulSet", changed.clone(), sts.clone()).is_empty());
    changed["spec"]["serviceName"] = json!("other");
    assert_eq!(
        check_update("apps", "StatefulSet", changed, sts),
        vec![
            "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
        ]
    );
}

#[test]
fn updates_keep_identity_and_selectors() {
    let old = deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web"}));
    let mut old = old;
    old["metadata"]["uid"] = json!("1111");
    old["metadata"]["creationTimestamp"] = json!("2024-05-01T10:00:00Z");

    let mut new = old.clone();
    new["metadata"].as_object_mut().unwrap().remove("uid");
    new["metadata"].as_object_mut().unwrap().remove("creationTimestamp");
    new["spec"]["replicas"] = json!(4);
    assert!(check_update("apps", "Deployment", new.clone(), old.clone()).is_empty(), "omitted fields are carried over");

    new["metadata"]["name"] = json!("web2");
    new["metadata"]["uid"] = json!("2222");
    new["metadata"]["creationTimestamp"] = json!("2025-01-01T00:00:00Z");
    new["spec"]["selector"] = json!({"matchLabels": {"app": "web2"}});
    new["spec"]["template"]["metadata"]["labels"] = json!({"app": "web2"});
    assert_eq!(
        check_update("apps", "Deployment", new, old),
        vec![
            "metadata.name: Invalid value: \"web2\": field is immutable",
            "metadata.uid: Invalid value: \"2222\": field is immutable",
            "metadata.creationTimestamp: Invalid value: 2025-01-01 00:00:00 +0000 UTC: field is immutable",
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable",
        ]
    );
}

#[test]
fn no_new_finalizers_while_deleting() {
    let old = json!({"metadata": {"name": "c", "namespace": "default", "deletionTimestamp": "2024-05-01T10:00:00Z",
        "finalizers": ["example.com/a"]}});
    let new =
        json!({"metadata": {"name": "c", "namespace": "default", "finalizers": ["example.com/a", "example.com/b"]}});
    assert_eq!(
        check_update("", "ConfigMap", new, old),
        vec![
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/b\"}"
        ]
    );
}

#[test]
fn config_map_and_secret_keys() {
    let cm = json!({"metadata": {"name": "c", "namespace": "default"}, "data": {"ok.txt": "1", "bad/key": "2", "dup": "x"},
        "binaryData": {"dup": "eA=="}});
    assert_eq!(
        check("", "ConfigMap", cm),
        vec![
            "data[bad/key]: Invalid value: \"bad/key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            "data[dup]: Invalid value: \"dup\": duplicate of key present in binaryData",
        ]
    );

    let secret = json!({"metadata": {"name": "s", "namespace": "default"}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": "eA=="}, "stringData": {"..x": "y"}});
    assert_eq!(
        check("", "Secret", secret),
        vec!["data[..x]: Invalid value: \"..x\": must not start with '..'", "data[tls.key]: Required value"]
    );

    let immutable =
        json!({"metadata": {"name": "s", "namespace": "default"}, "immutable": true, "data": {"a": "eA=="}});
    let mut changed = immutable.clone();
    changed["data"]["a"] = json!("eQ==");
    changed["type"] = json!("kubernetes.io/basic-auth");
    assert_eq!(
        check_update("", "Secret", changed, immutable),
        vec![
            "type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable",
            "data: Forbidden: field is immutable when `immutable` is set",
            "data[username]: Required value",
            "data[password]: Required value",
        ]
    );
}

#[test]
fn service_ports_are_required_unless_headless_or_external_name() {
    let svc = |spec: Value| json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec});
    assert_eq!(check("", "Service", svc(json!({"selector": {"app": "web"}}))), vec!["spec.ports: Required value"]);
    assert!(check("", "Service", svc(json!({"clusterIP": "None"}))).is_empty());
    assert!(check("", "Service", svc(json!({"type": "ExternalName", "externalName": "db.example.com"}))).is_empty());
    assert!(check("", "Service", svc(json!({"ports": [{"port": 80}]}))).is_empty());
}

#[test]
fn service_ports_are_validated_like_upstream() {
    let svc = |ports: Value| json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"ports": ports}});
    let ok_ports = json!([{"name": "http", "port": 80}, {"name": "https", "port": 443, "targetPort": "tls"}]);
    assert!(check("", "Service", svc(ok_ports)).is_empty());
    assert_eq!(
        check("", "Service", svc(json!([{"port": 0}]))),
        vec![
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
        ]
    );
    assert_eq!(
        check("", "Service", svc(json!([{"port": 80}, {"name": "b", "port": 81, "protocol": "HTTP"}]))),
        vec![
            "spec.ports[0].name: Required value",
            "spec.ports[1].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        ]
    );
    assert_eq!(
        check("", "Service", svc(json!([{"name": "a", "port": 80}, {"name": "a", "port": 81, "targetPort": 70000}]))),
        vec![
            "spec.ports[1].name: Duplicate value: \"a\"",
            "spec.ports[1].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ]
    );
}

#[test]
fn namespaces_and_nodes() {
    assert!(check("", "Namespace", json!({"metadata": {"name": "team-a"}})).is_empty());
    assert_eq!(
        check("", "Namespace", json!({"metadata": {"name": "team-a"}, "spec": {"finalizers": ["custom"]}})),
        vec![
            "spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"
        ]
    );
    assert!(check("", "Node", json!({"metadata": {"name": "node-1"}})).is_empty());
}

#[test]
fn ingress_basics() {
    let ing = |spec: Value| json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec});
    assert_eq!(
        check("networking.k8s.io", "Ingress", ing(json!({}))),
        vec![
            "spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"
        ]
    );
    let errs = check(
        "networking.k8s.io",
        "Ingress",
        ing(json!({"rules": [{"host": "10.0.0.1", "http": {"paths": [
            {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
            {"path": "api", "pathType": "Prefix", "backend": {"service": {"name": "web"}}},
            {"path": "/x", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"name": "http", "number": 80}}}}]}}]})),
    );
    assert_eq!(
        errs,
        vec![
            "spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address",
            "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
            "spec.rules[0].http.paths[1].path: Invalid value: \"api\": must be an absolute path",
            "spec.rules[0].http.paths[1].backend: Required value: port name or number is required",
            "spec.rules[0].http.paths[2].backend: Invalid value: \"\": cannot set both port name & port number",
        ]
    );
    assert!(
        check(
            "networking.k8s.io",
            "Ingress",
            ing(json!({"ingressClassName": "nginx", "rules": [{"host": "*.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}]}))
        )
        .is_empty()
    );
}

#[test]
fn ingress_class_controller() {
    let class = |controller: &str| json!({"metadata": {"name": "nginx"}, "spec": {"controller": controller}});
    assert!(check("networking.k8s.io", "IngressClass", class("k8s.io/ingress-nginx")).is_empty());
    assert_eq!(
        check("networking.k8s.io", "IngressClass", class("nginx")),
        vec!["spec.controller: Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")"]
    );
    assert_eq!(
        check_update("networking.k8s.io", "IngressClass", class("k8s.io/other"), class("k8s.io/ingress-nginx")),
        vec!["spec.controller: Invalid value: \"k8s.io/other\": field is immutable"]
    );
}

#[test]
fn endpoint_slices_and_endpoints() {
    let slice = json!({"metadata": {"name": "web-abc", "namespace": "default"}, "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.1.2.3", "fe80::1"]}, {"addresses": []}],
        "ports": [{"name": "http", "port": 80, "protocol": "HTTP"}]});
    assert_eq!(
        check("discovery.k8s.io", "EndpointSlice", slice),
        vec![
            "endpoints[0].addresses[1]: Invalid value: \"fe80::1\": must be a valid IPv4 address",
            "endpoints[0].addresses[1]: Invalid value: \"fe80::1\": may not be in the link-local range (169.254.0.0/16, fe80::/10)",
            "endpoints[1].addresses: Required value: must contain at least 1 address",
            "ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        ]
    );
    assert_eq!(
        check("discovery.k8s.io", "EndpointSlice", json!({"metadata": {"name": "s", "namespace": "default"}})),
        vec!["addressType: Required value"]
    );

    let ep = json!({"metadata": {"name": "web", "namespace": "default"}, "subsets": [
        {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 80}, {"port": 443}]}, {"ports": [{"port": 80}]}]});
    assert_eq!(
        check("", "Endpoints", ep),
        vec![
            "subsets[0].addresses[0].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            "subsets[0].ports[0].name: Required value",
            "subsets[0].ports[1].name: Required value",
            "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
        ]
    );
}

#[test]
fn events_get_legacy_checks_then_generic_metadata() {
    let event = |ns: &str, involved: &str| {
        json!({"metadata": {"name": "web.1", "namespace": ns}, "involvedObject": {"kind": "Pod", "namespace": involved},
            "reason": "Started"})
    };
    assert!(check("", "Event", event("default", "default")).is_empty());
    assert_eq!(
        check("", "Event", event("default", "other")),
        vec!["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
    );
    let mut unnamed = event("default", "default");
    unnamed["metadata"].as_object_mut().unwrap().remove("name");
    assert_eq!(check("", "Event", unnamed), vec!["metadata.name: Required value: name or generateName is required"]);
}

#[test]
fn leases() {
    let lease = json!({"metadata": {"name": "l", "namespace": "kube-system"}, "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}});
    assert_eq!(
        check("coordination.k8s.io", "Lease", lease),
        vec![
            "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
            "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
        ]
    );
}

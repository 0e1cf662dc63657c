use serde_json::{Value, json};

use super::*;
use crate::resources::by_kind;

/// One apply of a scenario: manager, force, config.
type Step = (&'static str, bool, Value);

enum Want {
    /// The object after the last apply (without managedFields) and its managedFields as
    /// (manager, operation, fieldsV1), in order.
    Object(Value, Vec<(&'static str, &'static str, Value)>),
    /// The last apply fails with this message.
    Conflict(&'static str),
}

struct Case {
    name: &'static str,
    kind: (&'static str, &'static str),
    /// The object before the first step (with any managedFields of other managers).
    live: Option<Value>,
    steps: Vec<Step>,
    want: Want,
}

fn time(i: usize) -> String {
    format!("2024-01-01T00:00:{i:02}Z")
}

fn run(case: &Case) -> Result<Value, Vec<Conflict>> {
    let rt = by_kind(case.kind.0, case.kind.1).unwrap();
    let mut live = case.live.clone();
    for (i, (manager, force, config)) in case.steps.iter().enumerate() {
        live = Some(apply(rt, live.as_ref(), config, manager, *force, &time(i))?);
    }
    Ok(live.unwrap())
}

fn split_managed(mut obj: Value) -> (Value, Vec<(String, String, Value)>) {
    let entries = obj["metadata"]
        .as_object_mut()
        .and_then(|m| m.shift_remove("managedFields"))
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let managed = entries
        .iter()
        .map(|e| {
            assert_eq!(e["fieldsType"], "FieldsV1", "{e}");
            (e["manager"].as_str().unwrap().into(), e["operation"].as_str().unwrap().into(), e["fieldsV1"].clone())
        })
        .collect();
    (obj, managed)
}

fn cm(labels: Value, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d", "labels": labels}, "data": data})
}

fn svc(ports: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "d"}, "spec": {"ports": ports}})
}

fn deploy(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "d"}, "spec": spec})
}

/// A live Deployment with 1 replica and label `tier: web`, both owned by
/// kubectl-client-side-apply (Update).
fn csa_deploy() -> Value {
    let mut d = deploy(json!({"replicas": 1, "paused": false}));
    d["metadata"]["labels"] = json!({"tier": "web"});
    d["metadata"]["managedFields"] = json!([{
        "manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1",
        "time": "2023-06-01T00:00:00Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {"f:tier": {}}}, "f:spec": {"f:replicas": {}}}
    }]);
    d
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "creating an object makes the config the object with one Apply entry",
            kind: ("", "Service"),
            live: None,
            steps: vec![("kubectl", false, {
                let mut s = svc(json!([{"port": 80}]));
                s["metadata"]["labels"] = json!({"app": "web"});
                s
            })],
            want: Want::Object(
                {
                    let mut s = svc(json!([{"port": 80}]));
                    s["metadata"]["labels"] = json!({"app": "web"});
                    s
                },
                vec![(
                    "kubectl",
                    "Apply",
                    json!({"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:port":{}}}}}),
                )],
            ),
        },
        Case {
            name: "removing a label from the config removes it from the object",
            kind: ("", "ConfigMap"),
            live: None,
            steps: vec![
                ("kubectl", false, cm(json!({"app": "web", "tier": "front"}), json!({"k": "v"}))),
                ("kubectl", false, cm(json!({"app": "web"}), json!({"k": "v"}))),
            ],
            want: Want::Object(
                cm(json!({"app": "web"}), json!({"k": "v"})),
                vec![("kubectl", "Apply", json!({"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}))],
            ),
        },
        Case {
            name: "removing every label removes the labels map",
            kind: ("", "ConfigMap"),
            live: None,
            steps: vec![
                ("kubectl", false, cm(json!({"app": "web"}), json!({"k": "v"}))),
                (
                    "kubectl",
                    false,
                    json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c", "namespace": "d"}, "data": {"k": "v"}}),
                ),
            ],
            want: Want::Object(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"}, "data": {"k": "v"}}),
                vec![("kubectl", "Apply", json!({"f:data": {"f:k": {}}}))],
            ),
        },
        Case {
            name: "removing a Service port removes that item by port and protocol but keeps items another manager owns",
            kind: ("", "Service"),
            live: None,
            steps: vec![
                (
                    "a",
                    false,
                    svc(json!([
                        {"port": 53, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}, {"port": 8080, "targetPort": 80}
                    ])),
                ),
                ("b", false, svc(json!([{"port": 8080, "targetPort": 80}]))),
                ("a", false, svc(json!([{"port": 53, "protocol": "TCP"}]))),
            ],
            want: Want::Object(
                svc(json!([{"port": 53, "protocol": "TCP"}, {"port": 8080, "targetPort": 80}])),
                vec![
                    (
                        "b",
                        "Apply",
                        json!({"f:spec": {"f:ports": {"k:{\"port\":8080,\"protocol\":\"TCP\"}":
                        {".": {}, "f:port": {}, "f:targetPort": {}}}}}),
                    ),
                    (
                        "a",
                        "Apply",
                        json!({"f:spec": {"f:ports": {"k:{\"port\":53,\"protocol\":\"TCP\"}":
                        {".": {}, "f:port": {}, "f:protocol": {}}}}}),
                    ),
                ],
            ),
        },
        Case {
            name: "two managers own different labels and both survive",
            kind: ("", "ConfigMap"),
            live: None,
            steps: vec![
                ("a", false, cm(json!({"a": "1"}), json!({"k": "v"}))),
                ("b", false, json!({"metadata": {"name": "c", "labels": {"b": "2"}}})),
                ("a", false, cm(json!({"a": "1"}), json!({"k": "v"}))),
            ],
            want: Want::Object(
                cm(json!({"a": "1", "b": "2"}), json!({"k": "v"})),
                vec![
                    ("b", "Apply", json!({"f:metadata": {"f:labels": {"f:b": {}}}})),
                    ("a", "Apply", json!({"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:a": {}}}})),
                ],
            ),
        },
        Case {
            name: "a different value for a field an Update manager owns is a conflict",
            kind: ("apps", "Deployment"),
            live: Some(csa_deploy()),
            steps: vec![("kubectl", false, deploy(json!({"replicas": 3})))],
            want: Want::Conflict(
                "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas",
            ),
        },
        Case {
            name: "a different value for a field another applier owns is a conflict",
            kind: ("", "ConfigMap"),
            live: None,
            steps: vec![("a", false, cm(json!({"x": "1"}), json!({}))), ("b", false, cm(json!({"x": "2"}), json!({})))],
            want: Want::Conflict("Apply failed with 1 conflict: conflict with \"a\": .metadata.labels.x"),
        },
        Case {
            name: "several conflicts are listed by manager",
            kind: ("apps", "Deployment"),
            live: Some(csa_deploy()),
            steps: vec![("kubectl", false, {
                let mut d = deploy(json!({"replicas": 3}));
                d["metadata"]["labels"] = json!({"tier": "db"});
                d
            })],
            want: Want::Conflict(
                "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1\n\
                 - .metadata.labels.tier\n- .spec.replicas",
            ),
        },
        Case {
            name: "an equal value for a field another manager owns becomes shared ownership",
            kind: ("apps", "Deployment"),
            live: Some(csa_deploy()),
            steps: vec![("kubectl", false, deploy(json!({"replicas": 1})))],
            want: Want::Object(
                {
                    let mut d = deploy(json!({"replicas": 1, "paused": false}));
                    d["metadata"]["labels"] = json!({"tier": "web"});
                    d
                },
                vec![
                    ("kubectl", "Apply", json!({"f:spec": {"f:replicas": {}}})),
                    (
                        "kubectl-client-side-apply",
                        "Update",
                        json!({"f:metadata": {"f:labels": {"f:tier": {}}}, "f:spec": {"f:replicas": {}}}),
                    ),
                ],
            ),
        },
        Case {
            name: "force takes ownership of the conflicting fields",
            kind: ("apps", "Deployment"),
            live: Some(csa_deploy()),
            steps: vec![("kubectl", true, deploy(json!({"replicas": 3})))],
            want: Want::Object(
                {
                    let mut d = deploy(json!({"replicas": 3, "paused": false}));
                    d["metadata"]["labels"] = json!({"tier": "web"});
                    d
                },
                vec![
                    ("kubectl", "Apply", json!({"f:spec": {"f:replicas": {}}})),
                    ("kubectl-client-side-apply", "Update", json!({"f:metadata": {"f:labels": {"f:tier": {}}}})),
                ],
            ),
        },
        Case {
            name: "an atomic list is replaced wholesale and associative lists nested in lists merge by key",
            kind: ("apps", "Deployment"),
            live: None,
            steps: vec![
                (
                    "kubectl",
                    false,
                    deploy(json!({"template": {"spec": {"containers": [
                        {"name": "app", "args": ["a", "b", "c"], "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
                    ]}}})),
                ),
                (
                    "kubectl",
                    false,
                    deploy(json!({"template": {"spec": {"containers": [
                        {"name": "app", "args": ["x"], "env": [{"name": "B", "value": "2"}]}
                    ]}}})),
                ),
            ],
            want: Want::Object(
                deploy(json!({"template": {"spec": {"containers": [
                    {"name": "app", "args": ["x"], "env": [{"name": "B", "value": "2"}]}
                ]}}})),
                vec![(
                    "kubectl",
                    "Apply",
                    json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                        ".": {}, "f:args": {}, "f:env": {"k:{\"name\":\"B\"}": {".": {}, "f:name": {}, "f:value": {}}},
                        "f:name": {}
                    }}}}}}),
                )],
            ),
        },
        Case {
            name: "removing a finalizer removes that set item",
            kind: ("", "ConfigMap"),
            live: None,
            steps: vec![
                ("kubectl", false, json!({"metadata": {"name": "c", "finalizers": ["x/a", "x/b"]}})),
                ("kubectl", false, json!({"metadata": {"name": "c", "finalizers": ["x/b"]}})),
            ],
            want: Want::Object(
                json!({"metadata": {"name": "c", "finalizers": ["x/b"]}}),
                vec![("kubectl", "Apply", json!({"f:metadata": {"f:finalizers": {"v:\"x/b\"": {}}}}))],
            ),
        },
        Case {
            name: "status of a kind with a status subresource is neither owned nor applied",
            kind: ("apps", "Deployment"),
            live: Some(deploy(json!({"replicas": 1}))),
            steps: vec![("kubectl", false, {
                let mut d = deploy(json!({"replicas": 2}));
                d["status"] = json!({"replicas": 9});
                d
            })],
            want: Want::Object(
                deploy(json!({"replicas": 2})),
                vec![("kubectl", "Apply", json!({"f:spec": {"f:replicas": {}}}))],
            ),
        },
    ]
}

#[test]
fn apply_cases() {
    let mut failures = Vec::new();
    for case in cases() {
        let failure = match (&case.want, run(&case)) {
            (Want::Object(object, managed), Ok(got)) => {
                let (obj, entries) = split_managed(got);
                let want: Vec<(String, String, Value)> =
                    managed.iter().map(|(m, o, f)| (m.to_string(), o.to_string(), f.clone())).collect();
                if &obj != object {
                    Some(format!("object\n  got:  {obj}\n  want: {object}"))
                } else if entries != want {
                    Some(format!("managedFields\n  got:  {entries:?}\n  want: {want:?}"))
                } else {
                    None
                }
            }
            (Want::Conflict(message), Err(conflicts)) => {
                let got = conflict_message(&conflicts);
                (got != *message).then(|| format!("conflict message\n  got:  {got}\n  want: {message}"))
            }
            (Want::Object(..), Err(c)) => Some(format!("unexpected conflicts {c:?}")),
            (Want::Conflict(_), Ok(o)) => Some(format!("expected a conflict, got {o}")),
        };
        if let Some(f) = failure {
            failures.push(format!("{}: {f}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reapplying_the_same_config_changes_nothing_but_the_time() {
    let rt = by_kind("", "Service").unwrap();
    let config = svc(json!([{"port": 80, "targetPort": 8080}]));
    let first = apply(rt, None, &config, "kubectl", false, &time(1)).unwrap();
    let second = apply(rt, Some(&first), &config, "kubectl", false, &time(2)).unwrap();
    assert_eq!(second["metadata"]["managedFields"][0]["time"], time(2));
    let mut first = first;
    first["metadata"]["managedFields"][0]["time"] = json!(time(2));
    assert_eq!(first, second);
    assert_eq!(first["metadata"]["managedFields"][0]["apiVersion"], "v1");
}

#[test]
fn a_conflict_carries_the_field_and_manager_kube_apiserver_reports() {
    let rt = by_kind("apps", "Deployment").unwrap();
    let err = apply(rt, Some(&csa_deploy()), &deploy(json!({"replicas": 3})), "kubectl", false, &time(0)).unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].manager, "kubectl-client-side-apply");
    assert_eq!(err[0].field, ".spec.replicas");
    assert_eq!(err[0].cause_message(), "conflict with \"kubectl-client-side-apply\" using apps/v1");
}

#[test]
fn fieldset_of_names_list_items_by_key_and_value() {
    let pod = by_kind("", "Pod").unwrap();
    let config = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a"]},
        "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}], "resources": {}}], "tolerations": [{"key": "k"}]}});
    assert_eq!(
        fieldset_of(pod, &config),
        json!({
            "f:metadata": {"f:finalizers": {"v:\"a\"": {}}},
            "f:spec": {
                "f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:name": {}, "f:ports": {
                    "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}
                }, "f:resources": {}}},
                "f:tolerations": {}
            }
        })
    );
}

#[test]
fn fields_v1_parses_back_to_the_same_set() {
    let v = json!({"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:port":{}}}}});
    let set = FieldSet::from_fields_v1(&v);
    assert_eq!(set.to_fields_v1(), v);
    let paths: Vec<String> = set.members().iter().map(|p| display(p)).collect();
    assert_eq!(
        paths,
        [".metadata.labels.app", ".spec.ports[port=80,protocol=\"TCP\"]", ".spec.ports[port=80,protocol=\"TCP\"].port"]
    );
}

//! ReplicaSets, Deployments and StatefulSets.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use super::{AGE, CONTAINERS, Column, IMAGES, NAME, age, column, container_cells, decode, docs, name, wide};
use crate::selector::label::Selector;

pub(crate) const REPLICA_SET: &[Column] = &[
    NAME,
    column("Desired", "integer", docs::REPLICA_SET_SPEC_REPLICAS),
    column("Current", "integer", docs::REPLICA_SET_STATUS_REPLICAS),
    column("Ready", "integer", docs::REPLICA_SET_READY_REPLICAS),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", docs::REPLICA_SET_SELECTOR),
];

pub(crate) const DEPLOYMENT: &[Column] = &[
    NAME,
    column("Ready", "string", docs::READY_PODS),
    column("Up-to-date", "string", docs::DEPLOYMENT_UPDATED_REPLICAS),
    column("Available", "string", docs::DEPLOYMENT_AVAILABLE_REPLICAS),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", docs::DEPLOYMENT_SELECTOR),
];

pub(crate) const STATEFUL_SET: &[Column] =
    &[NAME, column("Ready", "string", docs::READY_PODS), AGE, CONTAINERS, IMAGES];

/// `spec.replicas`, which apps/v1 defaulting sets to 1 when a client leaves it out.
fn desired(replicas: Option<i32>) -> i64 {
    i64::from(replicas.unwrap_or(1))
}

fn containers(template: &PodTemplateSpec) -> (Value, Value) {
    container_cells(template.spec.as_ref().map_or(&[][..], |s| s.containers.as_slice()))
}

pub(crate) fn replica_set(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let rs: ReplicaSet = decode(obj)?;
    let spec = rs.spec.unwrap_or_default();
    let status = rs.status.unwrap_or_default();
    let (names, images) = containers(spec.template.as_ref().unwrap_or(&PodTemplateSpec::default()));
    // metav1.FormatLabelSelector.
    let selector = match Selector::from_label_selector(&spec.selector) {
        Ok(s) if s.to_string().is_empty() => "<none>".to_string(),
        Ok(s) => s.to_string(),
        Err(_) => "<error>".to_string(),
    };
    Some(vec![
        name(&rs.metadata),
        desired(spec.replicas).into(),
        i64::from(status.replicas).into(),
        i64::from(status.ready_replicas.unwrap_or(0)).into(),
        age(&rs.metadata, now),
        names,
        images,
        selector.into(),
    ])
}

pub(crate) fn deployment(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let d: Deployment = decode(obj)?;
    let spec = d.spec.unwrap_or_default();
    let status = d.status.unwrap_or_default();
    let (names, images) = containers(&spec.template);
    let selector =
        Selector::from_label_selector(&spec.selector).map_or_else(|_| "<invalid>".to_string(), |s| s.to_string());
    Some(vec![
        name(&d.metadata),
        format!("{}/{}", status.ready_replicas.unwrap_or(0), desired(spec.replicas)).into(),
        i64::from(status.updated_replicas.unwrap_or(0)).into(),
        i64::from(status.available_replicas.unwrap_or(0)).into(),
        age(&d.metadata, now),
        names,
        images,
        selector.into(),
    ])
}

pub(crate) fn stateful_set(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let sts: StatefulSet = decode(obj)?;
    let spec = sts.spec.unwrap_or_default();
    let status = sts.status.unwrap_or_default();
    let (names, images) = containers(&spec.template);
    Some(vec![
        name(&sts.metadata),
        format!("{}/{}", status.ready_replicas.unwrap_or(0), desired(spec.replicas)).into(),
        age(&sts.metadata, now),
        names,
        images,
    ])
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ago, row};
    use serde_json::{Value, json};

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}},
               "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "fluent-bit:3"}]}})
    }

    #[test]
    fn replica_set_rows() {
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-7d4b9c", "namespace": "default", "creationTimestamp": ago(600)},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c"}}, "template": template()},
            "status": {"replicas": 3, "readyReplicas": 2}});
        assert_eq!(
            row("apps", "ReplicaSet", &rs),
            [
                json!("web-7d4b9c"),
                json!(3),
                json!(3),
                json!(2),
                json!("10m"),
                json!("web,log"),
                json!("nginx:1.27,fluent-bit:3"),
                json!("app=web,pod-template-hash=7d4b9c")
            ]
        );
        let bare =
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"}, "spec": {"selector": {}}});
        assert_eq!(
            row("apps", "ReplicaSet", &bare),
            [json!("r"), json!(1), json!(0), json!(0), json!("<unknown>"), json!(""), json!(""), json!("<none>")]
        );
    }

    #[test]
    fn deployment_rows() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(2 * 86400 + 3600)},
            "spec": {"replicas": 3, "template": template(),
                     "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db", "cache"]}]}},
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            row("apps", "Deployment", &d),
            [
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("2d1h"),
                json!("web,log"),
                json!("nginx:1.27,fluent-bit:3"),
                json!("app=web,tier notin (cache,db)")
            ]
        );
        let scaled_to_zero = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "idle"},
            "spec": {"replicas": 0, "selector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}, "template": {}}});
        assert_eq!(
            row("apps", "Deployment", &scaled_to_zero),
            [
                json!("idle"),
                json!("0/0"),
                json!(0),
                json!(0),
                json!("<unknown>"),
                json!(""),
                json!(""),
                json!("<invalid>")
            ]
        );
    }

    #[test]
    fn stateful_set_rows() {
        let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "default", "creationTimestamp": ago(45)},
            "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": {"spec": {"containers": [{"name": "postgres", "image": "postgres:17"}]}}},
            "status": {"replicas": 2, "readyReplicas": 1}});
        assert_eq!(
            row("apps", "StatefulSet", &sts),
            [json!("db"), json!("1/2"), json!("45s"), json!("postgres"), json!("postgres:17")]
        );
    }
}

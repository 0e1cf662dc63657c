//! ReplicaSets, Deployments, StatefulSets, DaemonSets, ReplicationControllers and Jobs.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PodTemplateSpec, ReplicationController};
use serde_json::Value;

use super::{
    AGE, CONTAINERS, Column, IMAGES, NAME, age, column, container_cells, decode, docs, format_labels, human_duration,
    name, time, wide,
};
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
    let selector = label_selector(&spec.selector);
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

pub(crate) const REPLICATION_CONTROLLER: &[Column] = &[
    NAME,
    column("Desired", "integer", docs::REPLICATION_CONTROLLER_SPEC_REPLICAS),
    column("Current", "integer", docs::REPLICATION_CONTROLLER_STATUS_REPLICAS),
    column("Ready", "integer", docs::REPLICATION_CONTROLLER_READY_REPLICAS),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", docs::REPLICATION_CONTROLLER_SELECTOR),
];

pub(crate) fn replication_controller(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let rc: ReplicationController = decode(obj)?;
    let spec = rc.spec.unwrap_or_default();
    let status = rc.status.unwrap_or_default();
    let (names, images) = containers(spec.template.as_ref().unwrap_or(&PodTemplateSpec::default()));
    Some(vec![
        name(&rc.metadata),
        desired(spec.replicas).into(),
        i64::from(status.replicas).into(),
        i64::from(status.ready_replicas.unwrap_or(0)).into(),
        age(&rc.metadata, now),
        names,
        images,
        format_labels(spec.selector.as_ref()).into(),
    ])
}

pub(crate) const DAEMON_SET: &[Column] = &[
    NAME,
    column("Desired", "integer", docs::DAEMON_SET_DESIRED),
    column("Current", "integer", docs::DAEMON_SET_CURRENT),
    column("Ready", "integer", docs::DAEMON_SET_READY),
    column("Up-to-date", "integer", docs::DAEMON_SET_UP_TO_DATE),
    column("Available", "integer", docs::DAEMON_SET_AVAILABLE),
    column("Node Selector", "string", docs::POD_NODE_SELECTOR),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", docs::DAEMON_SET_SELECTOR),
];

pub(crate) fn daemon_set(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let ds: DaemonSet = decode(obj)?;
    let spec = ds.spec.unwrap_or_default();
    let status = ds.status.unwrap_or_default();
    let (names, images) = containers(&spec.template);
    let node_selector = spec.template.spec.as_ref().and_then(|s| s.node_selector.as_ref());
    Some(vec![
        name(&ds.metadata),
        i64::from(status.desired_number_scheduled).into(),
        i64::from(status.current_number_scheduled).into(),
        i64::from(status.number_ready).into(),
        i64::from(status.updated_number_scheduled.unwrap_or(0)).into(),
        i64::from(status.number_available.unwrap_or(0)).into(),
        format_labels(node_selector).into(),
        age(&ds.metadata, now),
        names,
        images,
        label_selector(&spec.selector).into(),
    ])
}

/// metav1.FormatLabelSelector.
fn label_selector(selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector) -> String {
    match Selector::from_label_selector(selector) {
        Ok(s) if s.to_string().is_empty() => "<none>".to_string(),
        Ok(s) => s.to_string(),
        Err(_) => "<error>".to_string(),
    }
}

pub(crate) const JOB: &[Column] = &[
    NAME,
    column("Status", "string", docs::JOB_STATUS),
    column("Completions", "string", docs::JOB_SUCCEEDED),
    column("Duration", "string", docs::JOB_DURATION),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", docs::JOB_SELECTOR),
];

pub(crate) fn job(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let job: Job = decode(obj)?;
    let spec = job.spec.unwrap_or_default();
    let status = job.status.unwrap_or_default();
    let succeeded = status.succeeded.unwrap_or(0);
    let completions = match (spec.completions, spec.parallelism.unwrap_or(0)) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, p) if p > 1 => format!("{succeeded}/1 of {p}"),
        (None, _) => format!("{succeeded}/1"),
    };
    let duration = match (time(&status.start_time), time(&status.completion_time)) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now.duration_since(start)),
        (Some(start), Some(done)) => human_duration(done.duration_since(start)),
    };
    let has = |type_: &str| status.conditions.iter().flatten().any(|c| c.type_ == type_ && c.status == "True");
    let state = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if job.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = containers(&spec.template);
    let selector = spec.selector.as_ref().map_or_else(|| "<none>".to_string(), label_selector);
    Some(vec![
        name(&job.metadata),
        state.into(),
        completions.into(),
        duration.into(),
        age(&job.metadata, now),
        names,
        images,
        selector.into(),
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

    #[test]
    fn replication_controller_rows() {
        let rc = json!({"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(120)},
            "spec": {"replicas": 3, "selector": {"app": "web", "tier": "fe"}, "template": template()},
            "status": {"replicas": 2, "readyReplicas": 1}});
        assert_eq!(
            row("", "ReplicationController", &rc),
            [
                json!("web"),
                json!(3),
                json!(2),
                json!(1),
                json!("2m"),
                json!("web,log"),
                json!("nginx:1.27,fluent-bit:3"),
                json!("app=web,tier=fe")
            ]
        );
    }

    #[test]
    fn daemon_set_rows() {
        let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default", "creationTimestamp": ago(3600)},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"spec": {"nodeSelector": {"role": "edge", "os": "linux"},
                                           "containers": [{"name": "a", "image": "agent:1"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                       "updatedNumberScheduled": 1, "numberAvailable": 2, "numberMisscheduled": 0}});
        assert_eq!(
            row("apps", "DaemonSet", &ds),
            [
                json!("agent"),
                json!(3),
                json!(3),
                json!(2),
                json!(1),
                json!(2),
                json!("os=linux,role=edge"),
                json!("60m"),
                json!("a"),
                json!("agent:1"),
                json!("app=agent")
            ]
        );
    }

    #[test]
    fn job_rows_show_status_completions_and_duration() {
        let job = |status: Value, completions: Value, parallelism: i64| {
            json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "pi", "namespace": "default", "creationTimestamp": ago(300)},
                "spec": {"completions": completions, "parallelism": parallelism,
                         "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
                         "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}}},
                "status": status})
        };
        let done = job(
            json!({"succeeded": 2, "startTime": ago(300), "completionTime": ago(290),
                   "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}),
            json!(2),
            1,
        );
        let cells = row("batch", "Job", &done);
        assert_eq!(cells[..5], [json!("pi"), json!("Complete"), json!("2/2"), json!("10s"), json!("5m")]);
        assert_eq!(cells[7], json!("batch.kubernetes.io/controller-uid=u1"));
        let running = job(json!({"active": 1, "startTime": ago(30)}), Value::Null, 3);
        assert_eq!(
            row("batch", "Job", &running)[..4],
            [json!("pi"), json!("Running"), json!("0/1 of 3"), json!("30s")]
        );
        let failed = job(
            json!({"failed": 2, "startTime": ago(60), "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}),
            json!(1),
            1,
        );
        assert_eq!(row("batch", "Job", &failed)[1], json!("Failed"));
        let suspended = job(json!({"conditions": [{"type": "Suspended", "status": "True"}]}), json!(1), 1);
        assert_eq!(row("batch", "Job", &suspended)[1..4], [json!("Suspended"), json!("0/1"), json!("")]);
    }
}

//! Pods: `printPod`, including the STATUS reason logic kubectl users read every day.

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus};
use serde_json::Value;

use super::{AGE, Column, NAME, age, column, decode, docs, name, since, text, time, wide};

pub(crate) const COLUMNS: &[Column] = &[
    NAME,
    column("Ready", "string", docs::POD_READY),
    column("Status", "string", docs::POD_STATUS),
    column("Restarts", "string", docs::POD_RESTARTS),
    AGE,
    wide("IP", "string", docs::POD_IP),
    wide("Node", "string", docs::POD_NODE_NAME),
    wide("Nominated Node", "string", docs::POD_NOMINATED_NODE_NAME),
    wide("Readiness Gates", "string", docs::POD_READINESS_GATES),
];

/// `node.NodeUnreachablePodReason`.
const NODE_LOST: &str = "NodeLost";

pub(crate) fn cells(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let pod: Pod = decode(obj)?;
    let default_spec = PodSpec::default();
    let default_status = PodStatus::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let status = pod.status.as_ref().unwrap_or(&default_status);
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let init_specs = spec.init_containers.as_deref().unwrap_or_default();

    let mut restarts: i64 = 0;
    let mut restartable_init_restarts: i64 = 0;
    let mut total = spec.containers.len();
    let mut ready = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_restartable_init_restart: Option<Timestamp> = None;

    let phase = text(&status.phase);
    let mut reason = match text(&status.reason) {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    if conditions.iter().any(|c| c.type_ == "PodScheduled" && text(&c.reason) == "SchedulingGated") {
        reason = "SchedulingGated".to_string();
    }

    let init_containers: HashMap<&str, &Container> = init_specs.iter().map(|c| (c.name.as_str(), c)).collect();
    total += init_specs.iter().filter(|c| is_restartable(c)).count();
    let restartable = |s: &ContainerStatus| init_containers.get(s.name.as_str()).is_some_and(|c| is_restartable(c));

    let mut initializing = false;
    for (i, c) in status.init_container_statuses.iter().flatten().enumerate() {
        restarts += i64::from(c.restart_count);
        later(&mut last_restart, last_terminated_at(c));
        if restartable(c) {
            restartable_init_restarts += i64::from(c.restart_count);
            later(&mut last_restartable_init_restart, last_terminated_at(c));
        }
        let state = c.state.as_ref();
        let terminated = state.and_then(|s| s.terminated.as_ref());
        let waiting_reason = state.and_then(|s| s.waiting.as_ref()).map(|w| text(&w.reason));
        if terminated.is_some_and(|t| t.exit_code == 0) {
            continue;
        } else if restartable(c) && c.started == Some(true) {
            if c.ready {
                ready += 1;
            }
            continue;
        } else if let Some(t) = terminated {
            // Initialization failed.
            reason = match text(&t.reason) {
                "" if t.signal.unwrap_or(0) != 0 => format!("Init:Signal:{}", t.signal.unwrap_or(0)),
                "" => format!("Init:ExitCode:{}", t.exit_code),
                r => format!("Init:{r}"),
            };
        } else if let Some(w) = waiting_reason.filter(|w| !w.is_empty() && *w != "PodInitializing") {
            reason = format!("Init:{w}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(conditions, "Initialized") {
        restarts = restartable_init_restarts;
        last_restart = last_restartable_init_restart;
        let mut has_running = false;
        for c in status.container_statuses.iter().flatten().rev() {
            restarts += i64::from(c.restart_count);
            later(&mut last_restart, last_terminated_at(c));
            let state = c.state.as_ref();
            let waiting = state.and_then(|s| s.waiting.as_ref()).map(|w| text(&w.reason)).filter(|r| !r.is_empty());
            let terminated = state.and_then(|s| s.terminated.as_ref());
            if let Some(w) = waiting {
                reason = w.to_string();
            } else if let Some(t) = terminated {
                reason = match text(&t.reason) {
                    "" if t.signal.unwrap_or(0) != 0 => format!("Signal:{}", t.signal.unwrap_or(0)),
                    "" => format!("ExitCode:{}", t.exit_code),
                    r => r.to_string(),
                };
            } else if c.ready && state.is_some_and(|s| s.running.is_some()) {
                has_running = true;
                ready += 1;
            }
        }
        // At least one container still running: the pod is not Completed yet.
        if reason == "Completed" && has_running {
            reason = if condition_true_any(conditions, "Ready") { "Running" } else { "NotReady" }.to_string();
        }
    }

    if pod.metadata.deletion_timestamp.is_some() {
        if text(&status.reason) == NODE_LOST {
            reason = "Unknown".to_string();
        } else if phase != "Failed" && phase != "Succeeded" {
            reason = "Terminating".to_string();
        }
    }

    let restarts_cell = match last_restart {
        Some(at) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(at), now)),
        _ => restarts.to_string(),
    };

    let ip = match text(&status.pod_ip) {
        "" => status.pod_ips.iter().flatten().next().map_or("", |p| p.ip.as_str()),
        ip => ip,
    };
    let gates = spec.readiness_gates.as_deref().unwrap_or_default();
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates
            .iter()
            .filter(|g| conditions.iter().find(|c| c.type_ == g.condition_type).is_some_and(|c| c.status == "True"))
            .count();
        format!("{met}/{}", gates.len())
    };
    let or_none = |s: &str| if s.is_empty() { "<none>".to_string() } else { s.to_string() };

    Some(vec![
        name(&pod.metadata),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_cell.into(),
        age(&pod.metadata, now),
        or_none(ip).into(),
        or_none(text(&spec.node_name)).into(),
        or_none(text(&status.nominated_node_name)).into(),
        readiness_gates.into(),
    ])
}

/// A sidecar: an init container with `restartPolicy: Always`.
fn is_restartable(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn last_terminated_at(c: &ContainerStatus) -> Option<Timestamp> {
    c.last_state.as_ref().and_then(|s| s.terminated.as_ref()).and_then(|t| time(&t.finished_at))
}

/// Keeps the later of the two times (`lastRestartDate.Before(&terminatedDate)`).
fn later(current: &mut Option<Timestamp>, candidate: Option<Timestamp>) {
    if let Some(c) = candidate
        && current.is_none_or(|cur| cur < c)
    {
        *current = Some(c);
    }
}

/// The first condition of this type decides (`isPodInitializedConditionTrue`).
fn condition_true(conditions: &[PodCondition], type_: &str) -> bool {
    conditions.iter().find(|c| c.type_ == type_).is_some_and(|c| c.status == "True")
}

/// Any condition of this type being true is enough (`hasPodReadyCondition`).
fn condition_true_any(conditions: &[PodCondition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

/// A pod that succeeded or failed is marked `Completed`.
pub(crate) fn row_conditions(obj: &Value) -> Vec<Value> {
    let (reason, message) = match obj.pointer("/status/phase").and_then(Value::as_str) {
        Some("Succeeded") => ("Succeeded", "The pod has completed successfully."),
        Some("Failed") => ("Failed", "The pod failed."),
        _ => return Vec::new(),
    };
    vec![serde_json::json!({"type": "Completed", "status": "True", "reason": reason, "message": message})]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ago, row};
    use serde_json::{Value, json};

    fn pod(spec: Value, status: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": ago(300)},
            "spec": spec, "status": status,
        })
    }

    fn containers(names: &[&str]) -> Value {
        Value::Array(names.iter().map(|n| json!({"name": n, "image": "nginx"})).collect())
    }

    fn running(name: &str, ready: bool, restarts: i32) -> Value {
        json!({"name": name, "ready": ready, "restartCount": restarts, "image": "nginx", "imageID": "",
               "state": {"running": {"startedAt": ago(200)}}})
    }

    /// The default-width cells: NAME READY STATUS RESTARTS AGE.
    fn short(obj: &Value) -> Vec<Value> {
        row("", "Pod", obj)[..5].to_vec()
    }

    fn s(cells: &[&str]) -> Vec<Value> {
        cells.iter().map(|c| Value::from(*c)).collect()
    }

    #[test]
    fn running_pod_prints_all_columns() {
        let obj = pod(
            json!({"containers": containers(&["web", "log"]), "nodeName": "n1",
                   "readinessGates": [{"conditionType": "example.com/lb"}]}),
            json!({"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
                   "conditions": [{"type": "Ready", "status": "True"}, {"type": "example.com/lb", "status": "True"}],
                   "containerStatuses": [running("web", true, 0), running("log", true, 0)]}),
        );
        assert_eq!(
            row("", "Pod", &obj),
            s(&["web-1", "2/2", "Running", "0", "5m", "10.244.1.5", "n1", "<none>", "1/1"])
        );
    }

    #[test]
    fn status_reasons_follow_upstream() {
        let two = containers(&["a", "b"]);
        let waiting = |r: &str| json!({"name": "a", "ready": false, "restartCount": 0, "image": "", "imageID": "", "state": {"waiting": {"reason": r}}});
        let terminated = |reason: Option<&str>, code: i32, signal: i32| {
            let mut t = json!({"exitCode": code, "signal": signal});
            if let Some(r) = reason {
                t["reason"] = r.into();
            }
            json!({"name": "a", "ready": false, "restartCount": 0, "image": "", "imageID": "", "state": {"terminated": t}})
        };
        let cases = [
            (json!({"phase": "Pending"}), "0/2", "Pending"),
            (json!({"phase": "Pending", "reason": "Evicted"}), "0/2", "Evicted"),
            (
                json!({"phase": "Pending", "containerStatuses": [waiting("ContainerCreating")]}),
                "0/2",
                "ContainerCreating",
            ),
            (
                json!({"phase": "Running", "containerStatuses": [waiting("CrashLoopBackOff"), running("b", true, 0)]}),
                "1/2",
                "CrashLoopBackOff",
            ),
            (
                json!({"phase": "Running", "containerStatuses": [terminated(Some("OOMKilled"), 137, 0)]}),
                "0/2",
                "OOMKilled",
            ),
            (json!({"phase": "Running", "containerStatuses": [terminated(None, 2, 0)]}), "0/2", "ExitCode:2"),
            (json!({"phase": "Running", "containerStatuses": [terminated(None, 0, 9)]}), "0/2", "Signal:9"),
            (
                json!({"phase": "Succeeded", "containerStatuses": [terminated(Some("Completed"), 0, 0)]}),
                "0/2",
                "Completed",
            ),
            (
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                       "containerStatuses": [terminated(Some("Completed"), 0, 0), running("b", true, 0)]}),
                "1/2",
                "NotReady",
            ),
            (
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [terminated(Some("Completed"), 0, 0), running("b", true, 0)]}),
                "1/2",
                "Running",
            ),
            (
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
                "0/2",
                "SchedulingGated",
            ),
        ];
        for (status, ready, want) in cases {
            let obj = pod(json!({"containers": two}), status.clone());
            assert_eq!(short(&obj), s(&["web-1", ready, want, "0", "5m"]), "{status}");
        }
    }

    #[test]
    fn init_containers_report_progress_and_failures() {
        let spec = json!({"initContainers": containers(&["init-a", "init-b"]), "containers": containers(&["app"])});
        let done = json!({"name": "init-a", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                          "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        let pending = |n: &str| {
            json!({"name": n, "ready": false, "restartCount": 0, "image": "", "imageID": "",
                                       "state": {"waiting": {"reason": "PodInitializing"}}})
        };
        let failing = json!({"name": "init-b", "ready": false, "restartCount": 3, "image": "", "imageID": "",
                             "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                             "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(90)}}});
        let errored = json!({"name": "init-b", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                             "state": {"terminated": {"exitCode": 1}}});
        let cases = [
            (json!([pending("init-a"), pending("init-b")]), "Init:0/2", "0"),
            (json!([done, pending("init-b")]), "Init:1/2", "0"),
            (json!([done, failing]), "Init:CrashLoopBackOff", "3 (90s ago)"),
            (json!([done, errored]), "Init:ExitCode:1", "0"),
        ];
        for (statuses, want, restarts) in cases {
            let obj = pod(spec.clone(), json!({"phase": "Pending", "initContainerStatuses": statuses}));
            assert_eq!(short(&obj), s(&["web-1", "0/1", want, restarts, "5m"]), "{want}");
        }
    }

    #[test]
    fn sidecars_count_towards_ready_and_restarts() {
        let spec = json!({
            "initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
            "containers": containers(&["app"]),
        });
        let proxy = json!({"name": "proxy", "ready": true, "started": true, "restartCount": 1, "image": "", "imageID": "",
                           "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(600)}}});
        let app = json!({"name": "app", "ready": true, "restartCount": 2, "image": "", "imageID": "",
                         "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(120)}}});
        let obj = pod(
            spec,
            json!({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                   "initContainerStatuses": [proxy], "containerStatuses": [app]}),
        );
        assert_eq!(short(&obj), s(&["web-1", "2/2", "Running", "3 (2m ago)", "5m"]));
    }

    #[test]
    fn deleted_pods_show_terminating_or_unknown() {
        let mut obj = pod(
            json!({"containers": containers(&["web"])}),
            json!({"phase": "Running", "containerStatuses": [running("web", true, 0)]}),
        );
        obj["metadata"]["deletionTimestamp"] = ago(1).into();
        assert_eq!(short(&obj)[2], "Terminating");
        obj["status"]["reason"] = "NodeLost".into();
        assert_eq!(short(&obj)[2], "Unknown");
        obj["status"] = json!({"phase": "Succeeded"});
        assert_eq!(short(&obj)[2], "Succeeded");
    }

    #[test]
    fn wide_columns_fall_back_to_none() {
        let obj = pod(
            json!({"containers": containers(&["web"]), "readinessGates": [{"conditionType": "a"}, {"conditionType": "b"}]}),
            json!({"phase": "Pending", "conditions": [{"type": "a", "status": "True"}, {"type": "b", "status": "False"}]}),
        );
        assert_eq!(row("", "Pod", &obj)[5..], s(&["<none>", "<none>", "<none>", "1/2"]));
        let no_status = json!({"metadata": {"name": "bare"}, "spec": {"containers": containers(&["x"])}});
        assert_eq!(
            row("", "Pod", &no_status),
            s(&["bare", "0/1", "", "0", "<unknown>", "<none>", "<none>", "<none>", "<none>"])
        );
        let dual = pod(
            json!({"containers": []}),
            json!({"podIPs": [{"ip": "fd00::1"}, {"ip": "10.0.0.1"}], "nominatedNodeName": "n2"}),
        );
        assert_eq!(row("", "Pod", &dual)[5..8], s(&["fd00::1", "<none>", "n2"]));
    }
}

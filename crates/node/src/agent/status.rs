//! A pod's status from what its containers are doing (kubelet's `generateAPIPodStatus`): phase,
//! conditions, and one status per container.

use serde_json::{Value, json};

/// Where one container is, as the agent tracks it.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    Waiting { reason: String, message: Option<String> },
    Running { started_at: String },
    Terminated(Terminated),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: String,
}

/// One container of the pod.
#[derive(Clone, Debug, PartialEq)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub container_id: Option<String>,
    pub state: State,
    pub last_termination: Option<Terminated>,
    pub restart_count: i32,
    pub ready: bool,
    /// The startup probe passed (or there is none) while running.
    pub started: bool,
}

/// Everything the status is made from.
#[derive(Clone, Debug)]
pub struct PodView<'a> {
    pub restart_policy: &'a str,
    pub sandbox_ready: bool,
    pub init_containers: &'a [Container],
    pub containers: &'a [Container],
    pub pod_ips: &'a [std::net::IpAddr],
    pub host_ip: std::net::IpAddr,
    pub start_time: &'a str,
    /// The conditions the pod holds now, so a transition time moves only on a change.
    pub previous_conditions: &'a [Value],
    pub now: &'a str,
}

fn terminated_json(t: &Terminated) -> Value {
    let mut v = json!({"exitCode": t.exit_code, "reason": t.reason, "finishedAt": t.finished_at});
    if let Some(s) = t.signal {
        v["signal"] = json!(s);
    }
    if let Some(m) = &t.message {
        v["message"] = json!(m);
    }
    v["startedAt"] = json!(t.started_at);
    v
}

fn state_json(s: &State) -> Value {
    match s {
        State::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if let Some(m) = message {
                w["message"] = json!(m);
            }
            json!({"waiting": w})
        }
        State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
        State::Terminated(t) => json!({"terminated": terminated_json(t)}),
    }
}

fn container_json(c: &Container) -> Value {
    let mut v = json!({
        "name": c.name, "image": c.image, "imageID": "", "ready": c.ready, "restartCount": c.restart_count,
        "started": matches!(c.state, State::Running { .. }) && c.started,
        "state": state_json(&c.state),
        "lastState": c.last_termination.as_ref().map(|t| json!({"terminated": terminated_json(t)})).unwrap_or(json!({})),
    });
    if let Some(id) = &c.container_id {
        v["containerID"] = json!(id);
    }
    v
}

/// kubelet's `getPhase`.
pub fn phase(restart_policy: &str, init: &[Container], containers: &[Container]) -> &'static str {
    let init_done = init.iter().all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0));
    if !init_done {
        let failed = init.iter().any(|c| matches!(&c.state, State::Terminated(t) if t.exit_code != 0));
        return if failed && restart_policy == "Never" { "Failed" } else { "Pending" };
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            // A container waiting to restart has run before: the pod is still Running.
            State::Waiting { .. } if c.last_termination.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped == containers.len() && !containers.is_empty() {
        if restart_policy == "Always" {
            "Running"
        } else if succeeded == stopped {
            "Succeeded"
        } else if restart_policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    }
}

/// The status subresource's content.
pub fn pod_status(v: &PodView) -> Value {
    let phase = phase(v.restart_policy, v.init_containers, v.containers);
    let initialized = v.init_containers.iter().all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0));
    let containers_ready = !v.containers.is_empty() && v.containers.iter().all(|c| c.ready);
    let condition = |type_: &str, ok: bool, reason: Option<&str>| {
        let status = if ok { "True" } else { "False" };
        let since = v
            .previous_conditions
            .iter()
            .find(|c| c["type"] == type_ && c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or(v.now);
        let mut c = json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
        if let Some(r) = reason.filter(|_| !ok) {
            c["reason"] = json!(r);
        }
        c
    };
    let not_ready = |what: &str, cs: &[Container]| {
        let names: Vec<&str> = cs.iter().filter(|c| !c.ready).map(|c| c.name.as_str()).collect();
        format!("{what} with unready status: [{}]", names.join(" "))
    };
    let mut conditions = vec![
        condition("PodReadyToStartContainers", v.sandbox_ready, None),
        condition("Initialized", initialized, Some("ContainersNotInitialized")),
        condition("Ready", containers_ready, Some("ContainersNotReady")),
        condition("ContainersReady", containers_ready, Some("ContainersNotReady")),
    ];
    if !containers_ready {
        conditions[2]["message"] = json!(not_ready("containers", v.containers));
        conditions[3]["message"] = json!(not_ready("containers", v.containers));
    }
    conditions.push(condition("PodScheduled", true, None));
    let ips: Vec<Value> = v.pod_ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": v.host_ip.to_string(),
        "hostIPs": [{"ip": v.host_ip.to_string()}],
        "startTime": v.start_time,
        "containerStatuses": v.containers.iter().map(container_json).collect::<Vec<_>>(),
        "qosClass": "BestEffort",
    });
    if !v.init_containers.is_empty() {
        status["initContainerStatuses"] = json!(v.init_containers.iter().map(container_json).collect::<Vec<_>>());
    }
    if let Some(first) = v.pod_ips.first() {
        status["podIP"] = json!(first.to_string());
        status["podIPs"] = json!(ips);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, state: State, ready: bool) -> Container {
        Container {
            name: name.into(),
            image: "busybox".into(),
            container_id: None,
            state,
            last_termination: None,
            restart_count: 0,
            ready,
            started: true,
        }
    }

    fn running() -> State {
        State::Running { started_at: "t".into() }
    }

    fn exited(code: i32) -> State {
        State::Terminated(Terminated {
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed".into() } else { "Error".into() },
            message: None,
            started_at: None,
            finished_at: "t".into(),
        })
    }

    #[test]
    fn phase_follows_kubelet() {
        let waiting = State::Waiting { reason: "ContainerCreating".into(), message: None };
        assert_eq!(phase("Always", &[], &[c("a", waiting.clone(), false)]), "Pending");
        assert_eq!(phase("Always", &[], &[c("a", running(), true), c("b", exited(1), false)]), "Running");
        assert_eq!(phase("Never", &[], &[c("a", exited(0), false)]), "Succeeded");
        assert_eq!(phase("Never", &[], &[c("a", exited(0), false), c("b", exited(2), false)]), "Failed");
        assert_eq!(phase("OnFailure", &[], &[c("a", exited(2), false)]), "Running");
        assert_eq!(phase("Always", &[c("init", running(), false)], &[c("a", waiting.clone(), false)]), "Pending");
        assert_eq!(phase("Never", &[c("init", exited(1), false)], &[c("a", waiting.clone(), false)]), "Failed");
        let mut backing_off = c("a", State::Waiting { reason: "CrashLoopBackOff".into(), message: None }, false);
        backing_off.last_termination = Some(Terminated {
            exit_code: 1,
            signal: None,
            reason: "Error".into(),
            message: None,
            started_at: None,
            finished_at: "t".into(),
        });
        assert_eq!(phase("Always", &[], &[backing_off]), "Running");
    }

    #[test]
    fn status_carries_ips_conditions_and_keeps_transition_times() {
        let containers = [c("web", running(), true)];
        let ips = ["10.244.0.5".parse().unwrap()];
        let previous = [json!({"type": "Ready", "status": "True", "lastTransitionTime": "earlier"})];
        let v = PodView {
            restart_policy: "Always",
            sandbox_ready: true,
            init_containers: &[],
            containers: &containers,
            pod_ips: &ips,
            host_ip: "192.0.2.10".parse().unwrap(),
            start_time: "start",
            previous_conditions: &previous,
            now: "now",
        };
        let s = pod_status(&v);
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.244.0.5");
        assert_eq!(s["podIPs"], json!([{"ip": "10.244.0.5"}]));
        let ready = s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!((ready["status"].as_str(), ready["lastTransitionTime"].as_str()), (Some("True"), Some("earlier")));
        assert_eq!(s["containerStatuses"][0]["state"]["running"]["startedAt"], "t");
        let unready = [c("web", running(), false)];
        let s = pod_status(&PodView { containers: &unready, ..v });
        let ready = s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["reason"], "ContainersNotReady");
        assert_eq!(ready["message"], "containers with unready status: [web]");
        assert_eq!(ready["lastTransitionTime"], "now");
    }
}

//! Pod facts more than one component reads.

use k8s_openapi::api::core::v1::{Pod, PodCondition};

fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

/// `podutil.IsPodReady`: the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When the pod's Ready condition last turned True (`None` when not ready or unknown).
pub fn ready_since(pod: &Pod) -> Option<jiff::Timestamp> {
    ready_condition(pod).filter(|c| c.status == "True").and_then(|c| c.last_transition_time.as_ref()).map(|t| t.0)
}

/// The pod's phase, "" when unset.
pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Succeeded or Failed: the pod will not run again.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    #[test]
    fn ready_only_when_the_ready_condition_is_true() {
        assert!(is_ready(&pod(json!({"conditions": [{"type": "Ready", "status": "True"}]}))));
        assert!(!is_ready(&pod(json!({"conditions": [{"type": "Ready", "status": "False"}]}))));
        assert!(!is_ready(&pod(json!({"conditions": [{"type": "ContainersReady", "status": "True"}]}))));
        assert!(!is_ready(&pod(json!({}))));
    }

    #[test]
    fn terminal_phases() {
        assert!(is_terminal(&pod(json!({"phase": "Failed"}))));
        assert!(!is_terminal(&pod(json!({"phase": "Running"}))));
        assert_eq!(phase(&pod(json!({}))), "");
    }
}

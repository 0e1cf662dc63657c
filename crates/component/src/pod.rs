//! Pod facts more than one component reads.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, ContainerStatus, Pod, PodCondition, PodIP, PodSpec, PodStatus, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

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

/// A pod as the shared informers hold it: only what the components read (controllers,
/// scheduler, DNS), deserialized straight from the API's JSON, so the rest of the object is
/// never allocated. A `k8s_openapi` Pod is 2 KiB before any field is set and each container
/// another 2 KiB; at 100,000 pods that was most of the controllers' memory. Code that wants the
/// full type gets one with [`LeanPod::to_pod`] (the pure reconcilers take `&[Pod]`).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeanPod {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: LeanSpec,
    #[serde(default)]
    pub status: LeanStatus,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeanSpec {
    pub node_name: Option<String>,
    pub hostname: Option<String>,
    pub subdomain: Option<String>,
    pub scheduler_name: Option<String>,
    pub node_selector: Option<BTreeMap<String, String>>,
    pub affinity: Option<Box<Affinity>>,
    pub tolerations: Option<Vec<Toleration>>,
    pub containers: Option<Vec<LeanContainer>>,
    pub init_containers: Option<Vec<LeanContainer>>,
}

/// What the EndpointSlice controller reads of a container: its named ports (and, for init
/// containers, whether it is a sidecar).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeanContainer {
    #[serde(default)]
    pub name: String,
    pub ports: Option<Vec<ContainerPort>>,
    pub restart_policy: Option<String>,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeanStatus {
    pub phase: Option<String>,
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pub pod_ips: Option<Vec<PodIP>>,
    #[serde(rename = "hostIP")]
    pub host_ip: Option<String>,
    /// The Ready condition only: no component reads the others.
    #[serde(default, rename = "conditions", deserialize_with = "ready_only")]
    pub ready: Option<PodCondition>,
    pub container_statuses: Option<Vec<LeanContainerStatus>>,
}

/// Restart counts rank pods for deletion (ReplicaSet scale-down).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeanContainerStatus {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub restart_count: i32,
}

fn ready_only<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PodCondition>, D::Error> {
    let conditions: Option<Vec<PodCondition>> = serde::Deserialize::deserialize(d)?;
    Ok(conditions.into_iter().flatten().find(|c| c.type_ == "Ready"))
}

impl kube::Resource for LeanPod {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl LeanPod {
    /// The full type with what this one holds.
    pub fn to_pod(&self) -> Pod {
        let container = |c: &LeanContainer| Container {
            name: c.name.clone(),
            ports: c.ports.clone(),
            restart_policy: c.restart_policy.clone(),
            ..Container::default()
        };
        let s = &self.spec;
        let st = &self.status;
        Pod {
            metadata: self.metadata.clone(),
            spec: Some(PodSpec {
                node_name: s.node_name.clone(),
                hostname: s.hostname.clone(),
                subdomain: s.subdomain.clone(),
                scheduler_name: s.scheduler_name.clone(),
                node_selector: s.node_selector.clone(),
                affinity: s.affinity.as_deref().cloned(),
                tolerations: s.tolerations.clone(),
                containers: s.containers.iter().flatten().map(container).collect(),
                init_containers: s.init_containers.as_ref().map(|cs| cs.iter().map(container).collect()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: st.phase.clone(),
                pod_ip: st.pod_ip.clone(),
                pod_ips: st.pod_ips.clone(),
                host_ip: st.host_ip.clone(),
                conditions: st.ready.clone().map(|c| vec![c]),
                container_statuses: st.container_statuses.as_ref().map(|cs| {
                    cs.iter()
                        .map(|c| ContainerStatus {
                            name: c.name.clone(),
                            ready: c.ready,
                            restart_count: c.restart_count,
                            ..ContainerStatus::default()
                        })
                        .collect()
                }),
                ..PodStatus::default()
            }),
        }
    }

    /// A pod with only what scheduling reads (node selector, affinity, tolerations): the
    /// scheduler looks at every pending pod on every pass, so this must be cheap.
    pub fn scheduling_pod(&self) -> Pod {
        let s = &self.spec;
        Pod {
            spec: Some(PodSpec {
                node_selector: s.node_selector.clone(),
                affinity: s.affinity.as_deref().cloned(),
                tolerations: s.tolerations.clone(),
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    pub fn node_name(&self) -> Option<&str> {
        self.spec.node_name.as_deref().filter(|n| !n.is_empty())
    }

    pub fn phase(&self) -> &str {
        self.status.phase.as_deref().unwrap_or("")
    }

    pub fn is_ready(&self) -> bool {
        self.status.ready.as_ref().is_some_and(|c| c.status == "True")
    }

    /// The pod's IPs (`podIPs`, else `podIP`), parsed.
    pub fn ips(&self) -> Vec<std::net::IpAddr> {
        let mut ips: Vec<std::net::IpAddr> =
            self.status.pod_ips.iter().flatten().filter_map(|p| p.ip.parse().ok()).collect();
        if ips.is_empty() {
            ips.extend(self.status.pod_ip.as_deref().and_then(|ip| ip.parse::<std::net::IpAddr>().ok()));
        }
        ips
    }
}

#[cfg(test)]
mod lean_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lean_pod_keeps_what_components_read_and_round_trips_it() {
        let full = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "ns", "labels": {"app": "web"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "u1", "controller": true}]},
            "spec": {"nodeName": "n1", "hostname": "h", "subdomain": "s", "schedulerName": "default-scheduler",
                     "nodeSelector": {"disk": "ssd"}, "tolerations": [{"key": "k", "operator": "Exists"}],
                     "containers": [{"name": "c", "image": "nginx", "env": [{"name": "A", "value": "1"}],
                                     "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}],
                     "initContainers": [{"name": "side", "image": "x", "restartPolicy": "Always"}],
                     "volumes": [{"name": "v", "emptyDir": {}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}], "hostIP": "192.0.2.1",
                       "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "c", "ready": true, "restartCount": 3, "image": "nginx", "imageID": ""}]}
        });
        let lean: LeanPod = serde_json::from_value(full.clone()).unwrap();
        assert!(lean.is_ready());
        assert_eq!(lean.node_name(), Some("n1"));
        assert_eq!(lean.ips(), vec!["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
        let pod = lean.to_pod();
        let original: Pod = serde_json::from_value(full).unwrap();
        assert_eq!(pod.metadata, original.metadata);
        let (spec, want) = (pod.spec.unwrap(), original.spec.unwrap());
        assert_eq!(spec.containers[0].ports, want.containers[0].ports);
        assert!(spec.containers[0].env.is_none() && spec.volumes.is_none());
        assert_eq!(spec.init_containers.unwrap()[0].restart_policy.as_deref(), Some("Always"));
        assert_eq!((spec.node_selector, spec.tolerations), (want.node_selector, want.tolerations));
        let status = pod.status.unwrap();
        assert_eq!(status.conditions.unwrap().iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), ["Ready"]);
        assert_eq!(status.container_statuses.unwrap()[0].restart_count, 3);
        assert!(is_ready(&lean.to_pod()));
    }
}

//! Pod facts more than one component reads.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, LazyLock, Mutex};

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, ContainerStatus, ObjectReference, Pod, PodCondition, PodIP, PodSpec, PodStatus,
    Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use crate::informer::{Key, Watched};

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
/// scheduler, DNS), in a compact form. At 100,000 pods the pod store is most of a controller
/// process's memory: a `k8s_openapi` Pod is 2 KiB before any field is set, its ObjectMeta
/// alone (with a one-entry label map, a 544-byte B-tree node) over 1 KiB. Here strings are
/// boxed, the few low-cardinality ones (namespace, label keys, phase, protocols) shared, IPs
/// parsed, and what most pods lack (owner, scheduling constraints) boxed behind an `Option`.
/// Code that wants the full type gets one with [`LeanPod::to_pod`] (the pure reconcilers take
/// `&[Pod]`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeanPod {
    pub namespace: Arc<str>,
    pub name: Box<str>,
    pub uid: Option<Box<str>>,
    pub resource_version: Option<Box<str>>,
    pub creation_timestamp: Option<Time>,
    pub deletion_timestamp: Option<Time>,
    /// Sorted by key, as the API's map is.
    pub labels: Box<[(Arc<str>, Box<str>)]>,
    pub owner_references: Option<Box<[OwnerReference]>>,
    pub node_name: Option<Box<str>>,
    pub hostname: Option<Box<str>>,
    pub subdomain: Option<Box<str>>,
    pub scheduler_name: Option<Arc<str>>,
    /// Node selector, affinity and tolerations; `None` when the pod has none.
    pub scheduling: Option<Box<Scheduling>>,
    pub containers: Box<[LeanContainer]>,
    pub init_containers: Option<Box<[LeanContainer]>>,
    pub phase: Option<Arc<str>>,
    /// `status.podIPs` (or `podIP`), parsed.
    pub ips: Box<[IpAddr]>,
    pub host_ip: Option<IpAddr>,
    /// The Ready condition: its status and when it last changed. No component reads the others.
    pub ready: Option<(Arc<str>, Option<Time>)>,
    pub container_statuses: Box<[LeanContainerStatus]>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scheduling {
    pub node_selector: Option<BTreeMap<String, String>>,
    pub affinity: Option<Affinity>,
    pub tolerations: Option<Vec<Toleration>>,
}

/// What the EndpointSlice controller reads of a container: its ports (and, for init
/// containers, whether it is a sidecar).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeanContainer {
    pub name: Box<str>,
    pub ports: Box<[LeanPort]>,
    pub restart_policy: Option<Arc<str>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeanPort {
    pub name: Option<Box<str>>,
    pub container_port: i32,
    pub protocol: Option<Arc<str>>,
}

/// Restart counts rank pods for deletion (ReplicaSet scale-down).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeanContainerStatus {
    pub name: Box<str>,
    pub ready: bool,
    pub restart_count: i32,
}

/// One copy of each of the strings many pods share (namespaces, label keys, phases,
/// protocols). Bounded: past `INTERN_MAX` distinct strings each gets its own copy.
fn intern(s: &str) -> Arc<str> {
    const INTERN_MAX: usize = 16_384;
    static TABLE: LazyLock<Mutex<HashSet<Arc<str>>>> = LazyLock::new(Mutex::default);
    let mut table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = table.get(s) {
        return s.clone();
    }
    let s: Arc<str> = Arc::from(s);
    if table.len() < INTERN_MAX {
        table.insert(s.clone());
    }
    s
}

fn boxed(s: Option<String>) -> Option<Box<str>> {
    s.map(String::into_boxed_str)
}

/// The pod as the watch deserializes it: only the fields [`LeanPod`] keeps are read from
/// the JSON; the rest of the object is skipped, never allocated.
pub mod wire {
    use super::*;

    #[derive(Clone, Debug, Default, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Pod {
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: Spec,
        #[serde(default)]
        pub status: Status,
    }

    #[derive(Clone, Debug, Default, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Spec {
        pub node_name: Option<String>,
        pub hostname: Option<String>,
        pub subdomain: Option<String>,
        pub scheduler_name: Option<String>,
        pub node_selector: Option<BTreeMap<String, String>>,
        pub affinity: Option<Affinity>,
        pub tolerations: Option<Vec<Toleration>>,
        pub containers: Option<Vec<Container>>,
        pub init_containers: Option<Vec<Container>>,
    }

    #[derive(Clone, Debug, Default, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Container {
        #[serde(default)]
        pub name: String,
        pub ports: Option<Vec<ContainerPort>>,
        pub restart_policy: Option<String>,
    }

    #[derive(Clone, Debug, Default, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Status {
        pub phase: Option<String>,
        #[serde(rename = "podIP")]
        pub pod_ip: Option<String>,
        #[serde(rename = "podIPs")]
        pub pod_ips: Option<Vec<PodIP>>,
        #[serde(rename = "hostIP")]
        pub host_ip: Option<String>,
        #[serde(default, rename = "conditions", deserialize_with = "ready_only")]
        pub ready: Option<PodCondition>,
        pub container_statuses: Option<Vec<ContainerStatus>>,
    }

    #[derive(Clone, Debug, Default, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ContainerStatus {
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

    impl kube::Resource for Pod {
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
}

impl Watched for LeanPod {
    type Wire = wire::Pod;

    fn from_wire(p: wire::Pod) -> LeanPod {
        let (m, spec, st) = (p.metadata, p.spec, p.status);
        let container = |c: wire::Container| LeanContainer {
            name: c.name.into_boxed_str(),
            ports: c
                .ports
                .into_iter()
                .flatten()
                .map(|p| LeanPort {
                    name: boxed(p.name),
                    container_port: p.container_port,
                    protocol: p.protocol.as_deref().map(intern),
                })
                .collect(),
            restart_policy: c.restart_policy.as_deref().map(intern),
        };
        let mut ips: Vec<IpAddr> = st.pod_ips.iter().flatten().filter_map(|p| p.ip.parse().ok()).collect();
        if ips.is_empty() {
            ips.extend(st.pod_ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok()));
        }
        let scheduling =
            Scheduling { node_selector: spec.node_selector, affinity: spec.affinity, tolerations: spec.tolerations };
        LeanPod {
            namespace: intern(m.namespace.as_deref().unwrap_or("")),
            name: m.name.unwrap_or_default().into_boxed_str(),
            uid: boxed(m.uid),
            resource_version: boxed(m.resource_version),
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            labels: m.labels.into_iter().flatten().map(|(k, v)| (intern(&k), v.into_boxed_str())).collect(),
            owner_references: m.owner_references.filter(|o| !o.is_empty()).map(Vec::into_boxed_slice),
            node_name: boxed(spec.node_name),
            hostname: boxed(spec.hostname),
            subdomain: boxed(spec.subdomain),
            scheduler_name: spec.scheduler_name.as_deref().map(intern),
            scheduling: (scheduling != Scheduling::default()).then(|| Box::new(scheduling)),
            containers: spec.containers.into_iter().flatten().map(container).collect(),
            init_containers: spec.init_containers.map(|cs| cs.into_iter().map(container).collect()),
            phase: st.phase.as_deref().map(intern),
            ips: ips.into_boxed_slice(),
            host_ip: st.host_ip.and_then(|ip| ip.parse().ok()),
            ready: st.ready.map(|c| (intern(&c.status), c.last_transition_time)),
            container_statuses: st
                .container_statuses
                .into_iter()
                .flatten()
                .map(|c| LeanContainerStatus {
                    name: c.name.into_boxed_str(),
                    ready: c.ready,
                    restart_count: c.restart_count,
                })
                .collect(),
        }
    }

    fn key(&self) -> Key {
        crate::informer::key(&self.namespace, &self.name)
    }

    fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }
}

impl LeanPod {
    /// The metadata this pod holds, as the API type.
    pub fn metadata(&self) -> ObjectMeta {
        let labels = (!self.labels.is_empty())
            .then(|| self.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        ObjectMeta {
            namespace: (!self.namespace.is_empty()).then(|| self.namespace.to_string()),
            name: Some(self.name.to_string()),
            uid: self.uid.as_deref().map(str::to_owned),
            resource_version: self.resource_version.as_deref().map(str::to_owned),
            creation_timestamp: self.creation_timestamp.clone(),
            deletion_timestamp: self.deletion_timestamp.clone(),
            labels,
            owner_references: self.owner_references.as_deref().map(<[_]>::to_vec),
            ..ObjectMeta::default()
        }
    }

    /// The full type with what this one holds.
    pub fn to_pod(&self) -> Pod {
        let container = |c: &LeanContainer| Container {
            name: c.name.to_string(),
            ports: (!c.ports.is_empty()).then(|| {
                c.ports
                    .iter()
                    .map(|p| ContainerPort {
                        name: p.name.as_deref().map(str::to_owned),
                        container_port: p.container_port,
                        protocol: p.protocol.as_deref().map(str::to_owned),
                        ..ContainerPort::default()
                    })
                    .collect()
            }),
            restart_policy: c.restart_policy.as_deref().map(str::to_owned),
            ..Container::default()
        };
        let ips: Vec<String> = self.ips.iter().map(IpAddr::to_string).collect();
        let mut pod = self.scheduling_pod();
        pod.metadata = self.metadata();
        let spec = pod.spec.get_or_insert_default();
        spec.node_name = self.node_name.as_deref().map(str::to_owned);
        spec.hostname = self.hostname.as_deref().map(str::to_owned);
        spec.subdomain = self.subdomain.as_deref().map(str::to_owned);
        spec.scheduler_name = self.scheduler_name.as_deref().map(str::to_owned);
        spec.containers = self.containers.iter().map(container).collect();
        spec.init_containers = self.init_containers.as_ref().map(|cs| cs.iter().map(container).collect());
        pod.status = Some(PodStatus {
            phase: self.phase.as_deref().map(str::to_owned),
            pod_ip: ips.first().cloned(),
            pod_ips: (!ips.is_empty()).then(|| ips.into_iter().map(|ip| PodIP { ip }).collect()),
            host_ip: self.host_ip.map(|ip| ip.to_string()),
            conditions: self.ready.as_ref().map(|(status, since)| {
                vec![PodCondition {
                    type_: "Ready".to_owned(),
                    status: status.to_string(),
                    last_transition_time: since.clone(),
                    ..PodCondition::default()
                }]
            }),
            container_statuses: (!self.container_statuses.is_empty()).then(|| {
                self.container_statuses
                    .iter()
                    .map(|c| ContainerStatus {
                        name: c.name.to_string(),
                        ready: c.ready,
                        restart_count: c.restart_count,
                        ..ContainerStatus::default()
                    })
                    .collect()
            }),
            ..PodStatus::default()
        });
        pod
    }

    /// A pod with only what scheduling reads (node selector, affinity, tolerations): the
    /// scheduler looks at every pending pod on every pass, so this must be cheap.
    pub fn scheduling_pod(&self) -> Pod {
        let s = self.scheduling.as_deref();
        Pod {
            spec: Some(PodSpec {
                node_selector: s.and_then(|s| s.node_selector.clone()),
                affinity: s.and_then(|s| s.affinity.clone()),
                tolerations: s.and_then(|s| s.tolerations.clone()),
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    pub fn node_name(&self) -> Option<&str> {
        self.node_name.as_deref().filter(|n| !n.is_empty())
    }

    pub fn phase(&self) -> &str {
        self.phase.as_deref().unwrap_or("")
    }

    pub fn is_ready(&self) -> bool {
        self.ready.as_ref().is_some_and(|(status, _)| &**status == "True")
    }

    /// The value of label `k`.
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels.iter().find(|(key, _)| &**key == k).map(|(_, v)| &**v)
    }

    /// The pod's IPs (`podIPs`, else `podIP`).
    pub fn ips(&self) -> Vec<IpAddr> {
        self.ips.to_vec()
    }

    /// The UID of its controller owner.
    pub fn controller_uid(&self) -> Option<&str> {
        self.controller().map(|o| o.uid.as_str())
    }

    pub fn controller(&self) -> Option<&OwnerReference> {
        self.owner_references.iter().flatten().find(|o| o.controller == Some(true))
    }

    /// A reference to the pod, for Events.
    pub fn object_ref(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Pod".to_owned()),
            namespace: Some(self.namespace.to_string()),
            name: Some(self.name.to_string()),
            uid: self.uid.as_deref().map(str::to_owned),
            resource_version: self.resource_version.as_deref().map(str::to_owned),
            ..ObjectReference::default()
        }
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
        let lean = LeanPod::from_wire(serde_json::from_value(full.clone()).unwrap());
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

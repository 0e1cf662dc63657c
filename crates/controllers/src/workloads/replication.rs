//! ReplicationController: upstream's `pkg/controller/replication` is the ReplicaSet controller
//! run on ReplicationControllers converted to ReplicaSets (`conversion.go`), and so is this one:
//! the RC becomes a ReplicaSet whose selector's `matchLabels` is the RC's equality selector,
//! [`super::replicaset::reconcile_at`] decides, and the plan is converted back (pods owned by
//! `v1` `ReplicationController`, status as ReplicationControllerStatus).

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, ReplicationController, ReplicationControllerStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{controller_ref, replicaset};

/// What to write: pods to create (`generateName` `<rc>-`), names of pods to delete, the status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub create: Vec<Pod>,
    pub delete: Vec<String>,
    pub status: ReplicationControllerStatus,
}

/// Reconcile a ReplicationController against all candidate pods (those it does not control
/// are ignored); `now` (RFC 3339) decides availability under `minReadySeconds`.
pub fn reconcile_at(rc: &ReplicationController, pods: &[Pod], now: Option<&str>) -> Plan {
    let plan = replicaset::reconcile_at(&as_replica_set(rc), pods, now);
    let owner = controller_ref("v1", "ReplicationController", &rc.metadata);
    let create = plan
        .create
        .into_iter()
        .map(|mut pod| {
            pod.metadata.owner_references = Some(vec![owner.clone()]);
            pod
        })
        .collect();
    Plan { create, delete: plan.delete, status: same_shape(&plan.status) }
}

/// Convert_v1_ReplicationController_To_apps_ReplicaSet, as far as the controller reads it: the
/// equality selector becomes `matchLabels`; status and conditions have the same wire shape.
pub fn as_replica_set(rc: &ReplicationController) -> ReplicaSet {
    let spec = rc.spec.clone().unwrap_or_default();
    ReplicaSet {
        metadata: rc.metadata.clone(),
        spec: Some(ReplicaSetSpec {
            replicas: spec.replicas,
            min_ready_seconds: spec.min_ready_seconds,
            selector: LabelSelector { match_labels: spec.selector, match_expressions: None },
            template: spec.template,
        }),
        status: rc.status.as_ref().map(same_shape),
    }
}

/// One status type as another with the same JSON fields (those the target lacks are dropped).
fn same_shape<A: Serialize, B: DeserializeOwned + Default>(a: &A) -> B {
    serde_json::to_value(a).ok().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{
        Container, PodSpec, PodStatus, PodTemplateSpec, ReplicationController, ReplicationControllerSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn labels() -> Option<BTreeMap<String, String>> {
        Some([("app".to_string(), "web".to_string())].into())
    }

    fn rc(replicas: i32) -> ReplicationController {
        ReplicationController {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("rc-uid".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicationControllerSpec {
                replicas: Some(replicas),
                selector: labels(),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta { labels: labels(), ..Default::default() }),
                    spec: Some(PodSpec {
                        containers: vec![Container { name: "web".into(), ..Default::default() }],
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn owned_pod(name: &str, ready: bool) -> Pod {
        let mut pod = super::super::pod_from_template(
            rc(1).spec.unwrap().template.as_ref().unwrap(),
            Some("default"),
            controller_ref("v1", "ReplicationController", &rc(1).metadata),
        );
        pod.metadata.name = Some(name.into());
        pod.status = Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![k8s_openapi::api::core::v1::PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        pod
    }

    #[test]
    fn replication_controller_creates_pods_owned_by_the_rc_with_the_replica_set_logic() {
        let plan = reconcile_at(&rc(3), &[owned_pod("web-a", true)], None);
        assert_eq!(plan.create.len(), 2);
        let owner = &plan.create[0].metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.api_version.as_str(), owner.kind.as_str(), owner.uid.as_str()),
            ("v1", "ReplicationController", "rc-uid")
        );
        assert_eq!(plan.create[0].metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(plan.create[0].metadata.labels, labels());
        assert_eq!(plan.status.replicas, 1);
        assert_eq!(plan.status.ready_replicas, Some(1));
        assert_eq!(plan.status.fully_labeled_replicas, Some(1));
        assert_eq!(plan.status.observed_generation, Some(3));
    }

    #[test]
    fn replication_controller_scale_down_deletes_unready_pods_first() {
        let pods = [owned_pod("web-a", true), owned_pod("web-b", false), owned_pod("web-c", true)];
        let plan = reconcile_at(&rc(2), &pods, None);
        assert!(plan.create.is_empty());
        assert_eq!(plan.delete, vec!["web-b".to_string()]);
        assert_eq!((plan.status.replicas, plan.status.ready_replicas), (3, Some(2)));
    }

    #[test]
    fn pods_of_a_replica_set_with_the_same_name_are_not_the_rcs() {
        let mut foreign = owned_pod("web-x", true);
        foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "rs-uid".into();
        let plan = reconcile_at(&rc(1), &[foreign], None);
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.status.replicas, 0);
    }

    #[test]
    fn status_conditions_survive_the_conversion_to_a_replica_set_and_back() {
        let mut with_condition = rc(1);
        with_condition.status = Some(ReplicationControllerStatus {
            replicas: 1,
            conditions: Some(vec![k8s_openapi::api::core::v1::ReplicationControllerCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some("FailedCreate".into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let as_rs = as_replica_set(&with_condition);
        assert_eq!(as_rs.spec.as_ref().unwrap().selector.match_labels, labels());
        assert_eq!(
            as_rs.status.as_ref().unwrap().conditions.as_ref().unwrap()[0].reason.as_deref(),
            Some("FailedCreate")
        );
        let plan = reconcile_at(&with_condition, &[owned_pod("web-a", true)], None);
        assert_eq!(plan.status.conditions, with_condition.status.unwrap().conditions);
    }
}

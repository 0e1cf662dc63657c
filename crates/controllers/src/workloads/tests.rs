use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStatus, DeploymentStrategy, ReplicaSet, ReplicaSetSpec, ReplicaSetStatus,
    RollingUpdateDeployment, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, PersistentVolumeClaim, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;

const NS: &str = "default";
const NOW: &str = "2025-01-01T00:10:00Z";

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn time(s: &str) -> Time {
    Time(s.parse().unwrap())
}

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: labels(&[("app", "web")]), ..Default::default() }),
        spec: Some(PodSpec {
            containers: vec![Container { name: "main".into(), image: Some(image.into()), ..Default::default() }],
            ..Default::default()
        }),
    }
}

fn owner(kind: &str, name: &str) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    let meta = ObjectMeta { name: Some(name.into()), uid: Some(format!("{name}-uid")), ..Default::default() };
    vec![controller_ref("apps/v1", kind, &meta)]
}

/// A pod owned by `owner_name`'s UID, in `phase`, ready or not, on `node` ("" = unassigned).
fn pod(name: &str, kind: &str, owner_name: &str, phase: &str, ready: bool, node: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            labels: labels(&[("app", "web")]),
            owner_references: Some(owner(kind, owner_name)),
            creation_timestamp: Some(time("2025-01-01T00:00:00Z")),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()).filter(|n: &String| !n.is_empty()),
            containers: vec![Container { name: "main".into(), ..Default::default() }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                last_transition_time: Some(time("2025-01-01T00:01:00Z")),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter().map(|p| p.metadata.name.clone().unwrap_or_default()).collect()
}

// ---------------------------------------------------------------- ReplicaSet

fn replica_set(name: &str, replicas: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            uid: Some(format!("{name}-uid")),
            generation: Some(3),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector { match_labels: labels(&[("app", "web")]), ..Default::default() },
            template: Some(template("nginx:1")),
            ..Default::default()
        }),
        status: None,
    }
}

fn rs_pod(name: &str, phase: &str, ready: bool, node: &str) -> Pod {
    pod(name, "ReplicaSet", "web", phase, ready, node)
}

#[test]
fn replica_set_scale_up_creates_the_missing_pods_from_the_template_with_generate_name_and_owner() {
    let rs = replica_set("web", 3);
    let plan = replicaset::reconcile(&rs, &[rs_pod("web-a", "Running", true, "n1")]);
    assert_eq!(plan.create.len(), 2);
    assert!(plan.delete.is_empty());
    let p = &plan.create[0];
    assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(p.metadata.name, None);
    assert_eq!(p.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(p.metadata.labels, labels(&[("app", "web")]));
    let r = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (r.kind.as_str(), r.name.as_str(), r.uid.as_str(), r.controller),
        ("ReplicaSet", "web", "web-uid", Some(true))
    );
    assert_eq!(p.spec.as_ref().unwrap().containers[0].image.as_deref(), Some("nginx:1"));
}

#[test]
fn replica_set_ignores_pods_it_does_not_control_and_replaces_terminal_or_terminating_ones() {
    let rs = replica_set("web", 2);
    let mut deleting = rs_pod("web-d", "Running", true, "n1");
    deleting.metadata.deletion_timestamp = Some(time("2025-01-01T00:05:00Z"));
    let pods = [
        pod("other", "ReplicaSet", "api", "Running", true, "n1"),
        rs_pod("web-f", "Failed", false, "n1"),
        deleting,
        rs_pod("web-a", "Running", true, "n1"),
    ];
    let plan = replicaset::reconcile(&rs, &pods);
    assert_eq!(plan.create.len(), 1);
    assert_eq!(plan.status.replicas, 1);
}

#[test]
fn replica_set_scale_down_deletes_unassigned_then_pending_then_unready_pods_first() {
    let rs = replica_set("web", 1);
    let pods = [
        rs_pod("ready", "Running", true, "n1"),
        rs_pod("unready", "Running", false, "n2"),
        rs_pod("pending", "Pending", false, "n3"),
        rs_pod("unknown", "Unknown", false, "n4"),
        rs_pod("unassigned", "Pending", false, ""),
    ];
    for (replicas, expected) in [
        (4, vec!["unassigned"]),
        (3, vec!["unassigned", "pending"]),
        (2, vec!["unassigned", "pending", "unknown"]),
        (1, vec!["unassigned", "pending", "unknown", "unready"]),
        (0, vec!["unassigned", "pending", "unknown", "unready", "ready"]),
    ] {
        let mut rs = rs.clone();
        rs.spec.as_mut().unwrap().replicas = Some(replicas);
        let plan = replicaset::reconcile(&rs, &pods);
        assert_eq!(plan.delete, expected, "replicas {replicas}");
        assert!(plan.create.is_empty());
    }
}

#[test]
fn replica_set_scale_down_among_equals_prefers_low_deletion_cost_doubled_up_nodes_restarts_and_newer_pods() {
    let rs = replica_set("web", 1);
    let with_cost = |mut p: Pod, cost: &str| {
        p.metadata.annotations =
            Some([(replicaset::ANNOTATION_POD_DELETION_COST.to_string(), cost.to_string())].into());
        p
    };
    let plan = replicaset::reconcile(
        &rs,
        &[with_cost(rs_pod("expensive", "Running", true, "n1"), "10"), rs_pod("cheap", "Running", true, "n2")],
    );
    assert_eq!(plan.delete, ["cheap"]);

    let plan = replicaset::reconcile(
        &rs,
        &[rs_pod("alone", "Running", true, "n1"), rs_pod("crowded", "Running", true, "n2")]
            .into_iter()
            .chain([rs_pod("crowded-2", "Running", true, "n2")])
            .collect::<Vec<_>>(),
    );
    assert_eq!(plan.delete, ["crowded", "crowded-2"]);

    let mut restarted = rs_pod("restarted", "Running", true, "n2");
    restarted.status.as_mut().unwrap().container_statuses =
        Some(vec![ContainerStatus { name: "main".into(), restart_count: 5, ..Default::default() }]);
    let plan = replicaset::reconcile(&rs, &[rs_pod("steady", "Running", true, "n1"), restarted]);
    assert_eq!(plan.delete, ["restarted"]);

    let mut newer = rs_pod("newer", "Running", true, "n2");
    newer.metadata.creation_timestamp = Some(time("2025-01-01T00:03:00Z"));
    let plan = replicaset::reconcile(&rs, &[rs_pod("older", "Running", true, "n1"), newer]);
    assert_eq!(plan.delete, ["newer"]);
}

#[test]
fn replica_set_status_counts_active_fully_labeled_ready_and_available_pods() {
    let rs = replica_set("web", 3);
    let mut unlabeled = rs_pod("unlabeled", "Running", true, "n1");
    unlabeled.metadata.labels = None;
    let pods = [rs_pod("a", "Running", true, "n1"), rs_pod("b", "Pending", false, "n1"), unlabeled];
    let plan = replicaset::reconcile(&rs, &pods);
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    let s = plan.status;
    assert_eq!(s.replicas, 3);
    assert_eq!(s.fully_labeled_replicas, Some(2));
    assert_eq!(s.ready_replicas, Some(2));
    assert_eq!(s.available_replicas, Some(2));
    assert_eq!(s.observed_generation, Some(3));
}

#[test]
fn replica_set_pods_are_available_only_after_min_ready_seconds() {
    let mut rs = replica_set("web", 1);
    rs.spec.as_mut().unwrap().min_ready_seconds = Some(120);
    let pods = [rs_pod("a", "Running", true, "n1")]; // ready since 00:01:00
    let at = |now| replicaset::reconcile_at(&rs, &pods, Some(now)).status.available_replicas;
    assert_eq!(at("2025-01-01T00:02:00Z"), Some(0));
    assert_eq!(at("2025-01-01T00:03:00Z"), Some(1));
    assert_eq!(replicaset::reconcile(&rs, &pods).status.available_replicas, Some(0));
    assert_eq!(replicaset::reconcile(&rs, &pods).status.ready_replicas, Some(1));
}

// ---------------------------------------------------------------- Deployment

fn deployment(replicas: i32, image: &str) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some(NS.into()),
            uid: Some("web-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector { match_labels: labels(&[("app", "web")]), ..Default::default() },
            template: template(image),
            ..Default::default()
        }),
        status: None,
    }
}

/// The cluster as a Deployment controller sees it: its ReplicaSets, and the last status written.
struct Cluster {
    d: Deployment,
    rss: Vec<ReplicaSet>,
    clock: u32,
}

impl Cluster {
    fn new(d: Deployment) -> Self {
        Cluster { d, rss: Vec::new(), clock: 0 }
    }

    /// One sync: apply the plan, record the status, then (when `settle`) let every ReplicaSet's
    /// pods come up ready (status = spec).
    fn sync(&mut self, settle: bool) -> deployment::Plan {
        self.clock += 1;
        let now = format!("2025-01-01T01:{:02}:00Z", self.clock);
        let plan = deployment::reconcile(&self.d, &self.rss, &now);
        if let Some(mut rs) = plan.create_rs.clone() {
            rs.metadata.uid = Some(format!("rs-{}", self.clock));
            rs.metadata.creation_timestamp = Some(time(&now));
            self.rss.push(rs);
        }
        for (name, n) in &plan.scale {
            let rs = self.rss.iter_mut().find(|rs| rs.metadata.name.as_ref() == Some(name)).unwrap();
            rs.spec.as_mut().unwrap().replicas = Some(*n);
        }
        if let Some((name, rev)) = &plan.update_revision {
            let rs = self.rss.iter_mut().find(|rs| rs.metadata.name.as_ref() == Some(name)).unwrap();
            rs.metadata.annotations.as_mut().unwrap().insert(deployment::ANNOTATION_REVISION.into(), rev.clone());
        }
        self.d.status = Some(plan.status.clone());
        if settle {
            self.settle();
        }
        plan
    }

    fn settle(&mut self) {
        for rs in &mut self.rss {
            let n = rs.spec.as_ref().unwrap().replicas.unwrap();
            rs.status = Some(ReplicaSetStatus {
                replicas: n,
                ready_replicas: Some(n),
                available_replicas: Some(n),
                ..Default::default()
            });
        }
    }

    fn spec_replicas(&self) -> Vec<(String, i32)> {
        self.rss
            .iter()
            .map(|rs| (rs.metadata.name.clone().unwrap(), rs.spec.as_ref().unwrap().replicas.unwrap()))
            .collect()
    }

    fn status(&self) -> DeploymentStatus {
        self.d.status.clone().unwrap()
    }

    fn set_image(&mut self, image: &str) {
        self.d.spec.as_mut().unwrap().template = template(image);
        self.d.metadata.generation = Some(self.d.metadata.generation.unwrap() + 1);
    }
}

fn cond<'a>(s: &'a DeploymentStatus, type_: &str) -> (&'a str, &'a str) {
    let c = s.conditions.iter().flatten().find(|c| c.type_ == type_).expect(type_);
    (c.status.as_str(), c.reason.as_deref().unwrap_or_default())
}

/// What `kubectl rollout status` checks for success.
fn rollout_done(d: &Deployment) -> bool {
    let s = d.status.clone().unwrap_or_default();
    let want = d.spec.as_ref().unwrap().replicas.unwrap();
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas == Some(want)
        && s.replicas == Some(want)
        && s.available_replicas == Some(want)
}

#[test]
fn template_hash_is_deterministic_safe_encoded_and_differs_per_template() {
    let a = deployment::template_hash(&template("nginx:1"));
    assert_eq!(a, deployment::template_hash(&template("nginx:1")));
    assert_ne!(a, deployment::template_hash(&template("nginx:2")));
    assert!(!a.is_empty() && a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)), "{a}");
}

#[test]
fn deployment_first_sync_creates_a_new_replica_set_with_the_template_hash_label_selector_and_revision_1() {
    let d = deployment(3, "nginx:1");
    let plan = deployment::reconcile(&d, &[], NOW);
    let hash = deployment::template_hash(&template("nginx:1"));
    let rs = plan.create_rs.expect("a new ReplicaSet");
    assert_eq!(rs.metadata.name, Some(format!("web-{hash}")));
    assert_eq!(rs.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(rs.metadata.labels, labels(&[("app", "web"), ("pod-template-hash", &hash)]));
    assert_eq!(rs.metadata.annotations.as_ref().unwrap()[deployment::ANNOTATION_REVISION], "1");
    assert_eq!(rs.metadata.owner_references.as_ref().unwrap()[0].uid, "web-uid");
    let spec = rs.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.selector.match_labels, labels(&[("app", "web"), ("pod-template-hash", &hash)]));
    assert_eq!(
        spec.template.unwrap().metadata.unwrap().labels,
        labels(&[("app", "web"), ("pod-template-hash", &hash)])
    );
    assert!(plan.scale.is_empty());
    assert_eq!(plan.revision.as_deref(), Some("1"));
    let s = plan.status;
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(
        (s.replicas, s.updated_replicas, s.available_replicas, s.unavailable_replicas),
        (Some(0), Some(0), Some(0), Some(3))
    );
    assert_eq!(cond(&s, "Available"), ("False", "MinimumReplicasUnavailable"));
    assert_eq!(cond(&s, "Progressing"), ("True", "NewReplicaSetCreated"));
}

#[test]
fn deployment_becomes_available_and_complete_once_the_new_replica_set_is_ready() {
    let mut c = Cluster::new(deployment(3, "nginx:1"));
    c.sync(true);
    assert!(!rollout_done(&c.d));
    let plan = c.sync(false);
    assert!(plan.create_rs.is_none() && plan.scale.is_empty());
    assert!(rollout_done(&c.d));
    let s = c.status();
    assert_eq!((s.ready_replicas, s.unavailable_replicas), (Some(3), Some(0)));
    assert_eq!(cond(&s, "Available"), ("True", "MinimumReplicasAvailable"));
    assert_eq!(cond(&s, "Progressing"), ("True", "NewReplicaSetAvailable"));
    // A further sync changes nothing.
    let again = c.sync(false);
    assert!(again.create_rs.is_none() && again.scale.is_empty());
    assert_eq!(again.status, s);
}

#[test]
fn deployment_template_change_rolls_within_max_surge_and_max_unavailable_until_old_replica_sets_reach_zero() {
    let mut d = deployment(4, "nginx:1");
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(1)),
            max_unavailable: Some(IntOrString::Int(1)),
        }),
    });
    let mut c = Cluster::new(d);
    c.sync(true);
    c.sync(true);
    assert!(rollout_done(&c.d));
    let old = c.rss[0].metadata.name.clone().unwrap();

    c.set_image("nginx:2");
    let plan = c.sync(false);
    let new_rs = plan.create_rs.clone().expect("new ReplicaSet for the new template");
    let new = new_rs.metadata.name.clone().unwrap();
    assert_eq!(new_rs.metadata.annotations.as_ref().unwrap()[deployment::ANNOTATION_REVISION], "2");
    assert_eq!(plan.revision.as_deref(), Some("2"));
    // Surge 1 up front; old pods all available so one may go (4 - 1 unavailable).
    assert_eq!(new_rs.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(plan.scale, [(old.clone(), 3)]);
    assert_eq!(cond(&plan.status, "Progressing"), ("True", "NewReplicaSetCreated"));
    assert!(!rollout_done(&c.d));

    let mut steps = vec![c.spec_replicas()];
    for _ in 0..20 {
        // Pods come up one sync later: check the invariants on what the controller asked for.
        c.settle();
        let total: i32 = c.spec_replicas().iter().map(|(_, n)| n).sum();
        assert!(total <= 5, "more than replicas + maxSurge: {:?}", c.spec_replicas());
        let plan = c.sync(false);
        let available: i32 = c.rss.iter().map(|rs| rs.status.as_ref().unwrap().available_replicas.unwrap()).sum();
        assert!(available >= 3, "below replicas - maxUnavailable");
        if plan.create_rs.is_none() && plan.scale.is_empty() && rollout_done(&c.d) {
            break;
        }
        assert!(plan.create_rs.is_none());
        if !plan.scale.is_empty() {
            steps.push(c.spec_replicas());
        }
        let s = c.status();
        if !rollout_done(&c.d) {
            assert_eq!(cond(&s, "Progressing"), ("True", "ReplicaSetUpdated"));
        }
    }
    assert_eq!(
        steps,
        [
            // Each sync surges the new one by one and, counting its new pod as unavailable,
            // drops one old pod (5 pods - 3 minimum available - 1 unavailable new).
            vec![(old.clone(), 3), (new.clone(), 1)],
            vec![(old.clone(), 2), (new.clone(), 2)],
            vec![(old.clone(), 1), (new.clone(), 3)],
            vec![(old.clone(), 0), (new.clone(), 4)],
        ]
    );
    assert!(rollout_done(&c.d));
    let s = c.status();
    assert_eq!((s.replicas, s.updated_replicas, s.available_replicas), (Some(4), Some(4), Some(4)));
    assert_eq!(cond(&s, "Available"), ("True", "MinimumReplicasAvailable"));
    assert_eq!(cond(&s, "Progressing"), ("True", "NewReplicaSetAvailable"));
    assert_eq!(s.observed_generation, Some(2));
}

#[test]
fn deployment_default_strategy_rolls_with_25_percent_surge_and_unavailability() {
    let mut c = Cluster::new(deployment(10, "nginx:1"));
    c.sync(true);
    c.set_image("nginx:2");
    let plan = c.sync(false);
    // 25% of 10: surge rounds up to 3, unavailable rounds down to 2.
    assert_eq!(plan.create_rs.unwrap().spec.unwrap().replicas, Some(3));
    assert_eq!(plan.scale.len(), 1);
    assert_eq!(plan.scale[0].1, 8);
    for _ in 0..30 {
        c.settle();
        c.sync(false);
        let total: i32 = c.spec_replicas().iter().map(|(_, n)| n).sum();
        assert!(total <= 13);
    }
    c.settle();
    c.sync(false);
    assert!(rollout_done(&c.d));
    assert_eq!(c.spec_replicas().iter().map(|(_, n)| *n).collect::<Vec<_>>(), [0, 10]);
}

#[test]
fn deployment_rollout_waits_while_new_pods_are_unavailable() {
    let mut c = Cluster::new(deployment(4, "nginx:1"));
    c.sync(true);
    c.set_image("nginx:2");
    c.sync(false); // new at 1 (surge 1), old at 3
    // The old ReplicaSet catches up, the new one's pod never becomes available.
    let old_n = c.rss[0].spec.as_ref().unwrap().replicas.unwrap();
    c.rss[0].status = Some(ReplicaSetStatus {
        replicas: old_n,
        ready_replicas: Some(old_n),
        available_replicas: Some(old_n),
        ..Default::default()
    });
    c.rss[1].status = Some(ReplicaSetStatus { replicas: 1, ..Default::default() });
    let old = c.rss[0].metadata.name.clone().unwrap();
    let new = c.rss[1].metadata.name.clone().unwrap();
    // Surge room remains for one more new pod, but no old pod may go: 3 available is the minimum.
    let plan = c.sync(false);
    assert_eq!(plan.scale, [(new.clone(), 2)]);
    let plan = c.sync(false);
    assert!(plan.scale.is_empty(), "{:?}", plan.scale);
    assert_eq!(c.spec_replicas(), [(old, 3), (new, 2)]);
    assert_eq!(cond(&c.status(), "Available"), ("True", "MinimumReplicasAvailable"));
}

#[test]
fn deployment_scaling_scales_the_new_replica_set() {
    let mut c = Cluster::new(deployment(3, "nginx:1"));
    c.sync(true);
    c.sync(true);
    let name = c.rss[0].metadata.name.clone().unwrap();
    c.d.spec.as_mut().unwrap().replicas = Some(5);
    let plan = c.sync(true);
    assert!(plan.create_rs.is_none());
    assert_eq!(plan.scale, [(name.clone(), 5)]);
    c.sync(true);
    assert!(rollout_done(&c.d));
    c.d.spec.as_mut().unwrap().replicas = Some(2);
    let plan = c.sync(true);
    assert_eq!(plan.scale, [(name, 2)]);
    c.sync(true);
    assert!(rollout_done(&c.d));
}

#[test]
fn deployment_rollback_reuses_the_old_replica_set_and_gives_it_the_next_revision() {
    let mut c = Cluster::new(deployment(2, "nginx:1"));
    c.sync(true);
    c.set_image("nginx:2");
    for _ in 0..10 {
        c.sync(true);
    }
    assert!(rollout_done(&c.d));
    let first = c.rss[0].metadata.name.clone().unwrap();
    c.set_image("nginx:1");
    let plan = c.sync(true);
    assert!(plan.create_rs.is_none());
    assert_eq!(plan.update_revision, Some((first.clone(), "3".into())));
    assert_eq!(plan.revision.as_deref(), Some("3"));
    for _ in 0..10 {
        c.sync(true);
    }
    assert!(rollout_done(&c.d));
    assert_eq!(c.rss.len(), 2);
    assert_eq!(c.spec_replicas()[0], (first, 2));
}

#[test]
fn deployment_recreate_scales_old_replica_sets_to_zero_before_creating_the_new_one() {
    let mut d = deployment(3, "nginx:1");
    d.spec.as_mut().unwrap().strategy =
        Some(DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None });
    let mut c = Cluster::new(d);
    c.sync(true);
    c.set_image("nginx:2");
    let plan = c.sync(false);
    assert!(plan.create_rs.is_none());
    assert_eq!(plan.scale.len(), 1);
    assert_eq!(plan.scale[0].1, 0);
    // Old pods still running: wait.
    let plan = c.sync(false);
    assert!(plan.create_rs.is_none() && plan.scale.is_empty());
    c.settle();
    let plan = c.sync(true);
    assert_eq!(plan.create_rs.unwrap().spec.unwrap().replicas, Some(3));
    c.sync(true);
    assert!(rollout_done(&c.d));
}

#[test]
fn deployment_without_progress_past_the_deadline_reports_progress_deadline_exceeded() {
    let mut d = deployment(2, "nginx:1");
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(60);
    let plan = deployment::reconcile(&d, &[], "2025-01-01T00:00:00Z");
    let mut rs = plan.create_rs.unwrap();
    rs.metadata.uid = Some("rs-uid".into());
    d.status = Some(plan.status);
    let plan = deployment::reconcile(&d, std::slice::from_ref(&rs), "2025-01-01T00:00:30Z");
    assert_eq!(cond(&plan.status, "Progressing"), ("True", "NewReplicaSetCreated"));
    d.status = Some(plan.status);
    let plan = deployment::reconcile(&d, std::slice::from_ref(&rs), "2025-01-01T00:02:00Z");
    assert_eq!(cond(&plan.status, "Progressing"), ("False", "ProgressDeadlineExceeded"));
}

#[test]
fn deployment_ignores_replica_sets_it_does_not_control_and_paused_deployments_only_get_status() {
    let mut other = replica_set("api-123", 2);
    other.metadata.owner_references = Some(owner("Deployment", "api"));
    let mut d = deployment(2, "nginx:1");
    let plan = deployment::reconcile(&d, std::slice::from_ref(&other), NOW);
    assert!(plan.create_rs.is_some());
    assert!(plan.scale.is_empty());
    d.spec.as_mut().unwrap().paused = Some(true);
    let plan = deployment::reconcile(&d, &[other], NOW);
    assert!(plan.create_rs.is_none() && plan.scale.is_empty());
    assert_eq!(plan.status.observed_generation, Some(1));
}

// ---------------------------------------------------------------- StatefulSet

fn stateful_set(replicas: i32) -> StatefulSet {
    StatefulSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some(NS.into()),
            uid: Some("web-uid".into()),
            generation: Some(2),
            ..Default::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some("nginx".into()),
            selector: LabelSelector { match_labels: labels(&[("app", "web")]), ..Default::default() },
            template: template("nginx:1"),
            ..Default::default()
        }),
        status: None,
    }
}

/// Make created pods exist, in `phase`/`ready`.
fn materialize(created: &[Pod], phase: &str, ready: bool) -> Vec<Pod> {
    created
        .iter()
        .map(|p| {
            let mut p = p.clone();
            let proto = pod("x", "StatefulSet", "web", phase, ready, "n1");
            p.status = proto.status;
            p
        })
        .collect()
}

#[test]
fn stateful_set_creates_web_0_first_and_web_1_only_after_web_0_is_running_and_ready() {
    let set = stateful_set(3);
    let plan = statefulset::reconcile(&set, &[]);
    assert_eq!(names(&plan.create), ["web-0"]);
    assert_eq!(plan.status.replicas, 1);

    let pending = materialize(&plan.create, "Pending", false);
    assert!(statefulset::reconcile(&set, &pending).create.is_empty());
    let unready = materialize(&plan.create, "Running", false);
    assert!(statefulset::reconcile(&set, &unready).create.is_empty());

    let mut pods = materialize(&plan.create, "Running", true);
    let plan = statefulset::reconcile(&set, &pods);
    assert_eq!(names(&plan.create), ["web-1"]);
    pods.extend(materialize(&plan.create, "Running", true));
    let plan = statefulset::reconcile(&set, &pods);
    assert_eq!(names(&plan.create), ["web-2"]);
    pods.extend(materialize(&plan.create, "Running", true));
    let plan = statefulset::reconcile(&set, &pods);
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    let s = plan.status;
    assert_eq!((s.replicas, s.ready_replicas, s.available_replicas), (3, Some(3), Some(3)));
    assert_eq!((s.current_replicas, s.updated_replicas), (Some(3), Some(3)));
    assert_eq!(s.observed_generation, Some(2));
    assert_eq!(s.update_revision, Some(statefulset::update_revision(&set)));
}

#[test]
fn stateful_set_pods_carry_hostname_subdomain_identity_labels_owner_and_claims() {
    let mut set = stateful_set(1);
    set.spec.as_mut().unwrap().volume_claim_templates = Some(vec![PersistentVolumeClaim {
        metadata: ObjectMeta { name: Some("data".into()), ..Default::default() },
        ..Default::default()
    }]);
    let plan = statefulset::reconcile(&set, &[]);
    let p = &plan.create[0];
    assert_eq!(p.metadata.name.as_deref(), Some("web-0"));
    assert_eq!(p.metadata.generate_name, None);
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let l = p.metadata.labels.as_ref().unwrap();
    assert_eq!(l["app"], "web");
    assert_eq!(l[statefulset::LABEL_POD_NAME], "web-0");
    assert_eq!(l[statefulset::LABEL_POD_INDEX], "0");
    assert_eq!(l[statefulset::LABEL_REVISION_HASH], statefulset::update_revision(&set));
    let r = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((r.kind.as_str(), r.uid.as_str(), r.controller), ("StatefulSet", "web-uid", Some(true)));
    let v = &spec.volumes.as_ref().unwrap()[0];
    assert_eq!(v.name, "data");
    assert_eq!(v.persistent_volume_claim.as_ref().unwrap().claim_name, "data-web-0");
}

fn running_set(set: &StatefulSet, n: i32) -> Vec<Pod> {
    let rev = statefulset::update_revision(set);
    (0..n).map(|i| statefulset::new_pod(set, i, &rev)).collect::<Vec<_>>().pipe(|p| materialize(&p, "Running", true))
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

#[test]
fn stateful_set_scale_down_deletes_the_highest_ordinal_first_one_at_a_time() {
    let set = stateful_set(1);
    let mut pods = running_set(&set, 3);
    let plan = statefulset::reconcile(&set, &pods);
    assert_eq!(plan.delete, ["web-2"]);
    // While web-2 terminates nothing else happens.
    pods[2].metadata.deletion_timestamp = Some(time("2025-01-01T00:05:00Z"));
    assert!(statefulset::reconcile(&set, &pods).delete.is_empty());
    pods.pop();
    assert_eq!(statefulset::reconcile(&set, &pods).delete, ["web-1"]);
    pods.pop();
    let plan = statefulset::reconcile(&set, &pods);
    assert!(plan.delete.is_empty() && plan.create.is_empty());
}

#[test]
fn stateful_set_parallel_policy_creates_and_deletes_all_at_once() {
    let mut set = stateful_set(3);
    set.spec.as_mut().unwrap().pod_management_policy = Some("Parallel".into());
    assert_eq!(names(&statefulset::reconcile(&set, &[]).create), ["web-0", "web-1", "web-2"]);
    let pods = running_set(&set, 5);
    assert_eq!(statefulset::reconcile(&set, &pods).delete, ["web-4", "web-3"]);
}

#[test]
fn stateful_set_deletes_a_failed_pod_so_it_is_recreated_under_the_same_name() {
    let set = stateful_set(2);
    let mut pods = running_set(&set, 2);
    pods[0].status.as_mut().unwrap().phase = Some("Failed".into());
    let plan = statefulset::reconcile(&set, &pods);
    assert_eq!(plan.delete, ["web-0"]);
    assert!(plan.create.is_empty());
    let plan = statefulset::reconcile(&set, &pods[1..]);
    assert_eq!(names(&plan.create), ["web-0"]);
}

#[test]
fn stateful_set_template_change_replaces_pods_from_the_highest_ordinal_down() {
    let set = stateful_set(3);
    let mut pods = running_set(&set, 3);
    let mut new_set = set.clone();
    new_set.spec.as_mut().unwrap().template = template("nginx:2");
    let new_rev = statefulset::update_revision(&new_set);
    for expected in ["web-2", "web-1", "web-0"] {
        let plan = statefulset::reconcile(&new_set, &pods);
        assert_eq!(plan.delete, [expected]);
        let i = pods.iter().position(|p| p.metadata.name.as_deref() == Some(expected)).unwrap();
        pods.remove(i);
        let plan = statefulset::reconcile(&new_set, &pods);
        assert_eq!(names(&plan.create), [expected]);
        assert_eq!(plan.create[0].metadata.labels.as_ref().unwrap()[statefulset::LABEL_REVISION_HASH], new_rev);
        assert_eq!(plan.create[0].spec.as_ref().unwrap().containers[0].image.as_deref(), Some("nginx:2"));
        pods.extend(materialize(&plan.create, "Running", true));
    }
    let plan = statefulset::reconcile(&new_set, &pods);
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    assert_eq!(plan.status.updated_replicas, Some(3));
}

#[test]
fn stateful_set_ignores_pods_it_does_not_control() {
    let set = stateful_set(1);
    let stranger = pod("web-0", "StatefulSet", "other", "Running", true, "n1");
    let plan = statefulset::reconcile(&set, &[stranger]);
    assert_eq!(names(&plan.create), ["web-0"]);
    assert_eq!(plan.status.replicas, 1);
}

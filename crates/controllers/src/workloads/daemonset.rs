//! DaemonSet: one pod on every node that should run it (upstream `pkg/controller/daemon`,
//! `manage`, `rollingUpdate` and `updateDaemonSetStatus`), as a pure step from the DaemonSet,
//! the nodes, its pods and the clock to a [`Plan`].
//!
//! - Which nodes: those whose labels match the template's `nodeSelector` and required node
//!   affinity, and whose `NoSchedule`/`NoExecute` taints the template tolerates once the
//!   DaemonSet tolerations below are added. A pod already on a node keeps running there unless
//!   the node no longer matches or has an untolerated `NoExecute` taint
//!   (`shouldContinueRunning`). Pods on nodes that are gone are deleted (upstream leaves them to
//!   the pod garbage collector).
//! - Pods are created like upstream's: template labels plus `controller-revision-hash`, the
//!   tolerations `node.kubernetes.io/{not-ready,unreachable}:NoExecute` and
//!   `{disk-pressure,memory-pressure,pid-pressure,unschedulable}:NoSchedule` (and
//!   `network-unavailable:NoSchedule` with hostNetwork), and the required node affinity
//!   replaced by `matchFields metadata.name In [node]`, so the scheduler binds each to its node.
//! - Failed pods are deleted (and replaced on the next pass); of several active pods on one
//!   node the oldest is kept.
//! - Rolling update by template hash (`controller-revision-hash`, computed like the Deployment's
//!   `pod-template-hash`; no ControllerRevision objects are kept): with `maxSurge` 0, old pods
//!   that are unavailable go at once and available ones while fewer than `maxUnavailable` nodes
//!   are unavailable; with `maxSurge` > 0, a new pod is started beside an old one (at most
//!   `maxSurge` nodes at a time) and the old one is deleted when the new one is available.
//!   `OnDelete` replaces nothing.
//! - Status: desired / current / misscheduled counts per node, ready / available / updated
//!   counts of the node's pod, `observedGeneration`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::{compute_hash, controller_ref, is_controlled_by, is_pod_active, is_pod_available, is_pod_ready, phase};
use crate::scheduler::{matches_node_affinity, tolerates};

/// The label holding the template hash of a daemon pod.
pub const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";

/// What to write for one DaemonSet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Pods to create, each tied to its node by node affinity (`generateName: <ds>-`).
    pub create: Vec<Pod>,
    /// Names of pods to delete.
    pub delete: Vec<String>,
    pub status: DaemonSetStatus,
}

/// The hash of the DaemonSet's current template (its `controller-revision-hash`).
pub fn template_hash(ds: &DaemonSet) -> String {
    let spec = ds.spec.as_ref();
    let template = spec.map(|s| s.template.clone()).unwrap_or_default();
    compute_hash(&template, ds.status.as_ref().and_then(|s| s.collision_count))
}

/// The tolerations the DaemonSet controller adds to every daemon pod
/// (`util.AddOrUpdateDaemonPodTolerations`).
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    let mut out = vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        out.push(t("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    out
}

/// The daemon pod for `node` (upstream `NewPod` plus the hash label and the node-name
/// affinity), not yet named.
pub fn new_pod(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let meta = &ds.metadata;
    let template = ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let mut pod =
        super::pod_from_template(&template, meta.namespace.as_deref(), controller_ref("apps/v1", "DaemonSet", meta));
    pod.metadata.generate_name = Some(format!("{}-", meta.name.as_deref().unwrap_or_default()));
    pod.metadata.labels.get_or_insert_default().insert(CONTROLLER_REVISION_HASH.into(), hash.into());
    let spec = pod.spec.get_or_insert_default();
    let tolerations = spec.tolerations.get_or_insert_default();
    for t in daemon_tolerations(spec.host_network == Some(true)) {
        if !tolerations.iter().any(|x| x.key == t.key && x.effect == t.effect) {
            tolerations.push(t);
        }
    }
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
        }],
    });
    pod
}

/// Whether a daemon pod should be started on the node, and whether one already there may keep
/// running (`NodeShouldRunDaemonPod`).
pub fn node_should_run(ds: &DaemonSet, node: &Node) -> (bool, bool) {
    let template = ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let mut pod = Pod { metadata: Default::default(), spec: template.spec, status: None };
    let spec = pod.spec.get_or_insert_default();
    let host_network = spec.host_network == Some(true);
    spec.tolerations.get_or_insert_default().extend(daemon_tolerations(host_network));
    if !matches_node_affinity(&pod, node) {
        return (false, false);
    }
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default();
    let untolerated = |t: &&Taint| {
        (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerations.iter().any(|x| tolerates(x, t))
    };
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    let blocking: Vec<&Taint> = taints.iter().filter(untolerated).collect();
    let should_run = blocking.is_empty();
    let should_continue = !blocking.iter().any(|t| t.effect == "NoExecute");
    (should_run, should_continue)
}

/// The node a daemon pod is for: `spec.nodeName`, else its node-name affinity (upstream
/// `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(node);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().flat_map(|t| t.match_fields.iter().flatten()).find_map(|r| {
        match (r.key.as_str(), r.operator.as_str(), r.values.as_deref()) {
            ("metadata.name", "In", Some([node])) => Some(node.as_str()),
            _ => None,
        }
    })
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn hash_of(pod: &Pod) -> Option<&str> {
    pod.metadata.labels.as_ref()?.get(CONTROLLER_REVISION_HASH).map(String::as_str)
}

/// An int-or-percent against `total`, percentages rounded up (as upstream for DaemonSets).
fn scaled(v: Option<&IntOrString>, total: usize) -> usize {
    match v {
        Some(IntOrString::Int(n)) => usize::try_from(*n).unwrap_or(0),
        Some(IntOrString::String(s)) => {
            let pct: usize = s.trim_end_matches('%').parse().unwrap_or(0);
            (pct * total).div_ceil(100)
        }
        None => 0,
    }
}

/// Reconciles a DaemonSet against the nodes and all candidate pods at `now` (RFC 3339, for
/// `minReadySeconds`).
pub fn reconcile(ds: &DaemonSet, nodes: &[Node], pods: &[Pod], now: Option<&str>) -> Plan {
    let now: Option<Timestamp> = now.map(super::parse_now);
    let meta = &ds.metadata;
    let spec = ds.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let hash = template_hash(ds);
    let available = |p: &Pod| is_pod_available(p, min_ready, now);
    let updated = |p: &Pod| hash_of(p) == Some(hash.as_str());

    // Owned, not-deleting pods by target node (oldest first); failed ones are deleted.
    let mut plan = Plan::default();
    let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for pod in pods.iter().filter(|p| is_controlled_by(&p.metadata, meta.namespace.as_deref(), meta.uid.as_deref())) {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if phase(pod) == "Failed" {
            plan.delete.push(name(pod));
            continue;
        }
        if !is_pod_active(pod) {
            continue;
        }
        by_node.entry(target_node(pod).unwrap_or("")).or_default().push(pod);
    }
    for list in by_node.values_mut() {
        list.sort_by_key(|p| (p.metadata.creation_timestamp.as_ref().map(|t| t.0), name(p)));
    }

    let mut status = DaemonSetStatus {
        observed_generation: meta.generation,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
        ..Default::default()
    };
    let (mut desired, mut current, mut misscheduled) = (0, 0, 0);
    let (mut ready, mut avail, mut updated_n) = (0, 0, 0);
    // Nodes that should run a pod, with their current pods (for the rolling update).
    let mut running: Vec<(&str, Vec<&Pod>)> = Vec::new();
    for node in nodes {
        let node_name = node.metadata.name.as_deref().unwrap_or_default();
        let (should_run, should_continue) = node_should_run(ds, node);
        let on_node = by_node.remove(node_name).unwrap_or_default();
        if should_run {
            desired += 1;
        }
        if !on_node.is_empty() {
            if should_run {
                current += 1;
                let pod = on_node[0];
                ready += i32::from(is_pod_ready(pod));
                avail += i32::from(available(pod));
                updated_n += i32::from(on_node.iter().any(|p| updated(p)));
            } else {
                misscheduled += 1;
            }
        }
        if meta.deletion_timestamp.is_some() {
            continue;
        }
        match (should_run, on_node.is_empty()) {
            (true, true) => plan.create.push(new_pod(ds, node_name, &hash)),
            (_, false) if !should_continue => {
                plan.delete.extend(on_node.iter().map(|p| name(p)));
            }
            (true, false) => running.push((node_name, on_node)),
            _ => {}
        }
    }
    // Pods for nodes that are gone (or unassigned with no target).
    if meta.deletion_timestamp.is_none() {
        plan.delete.extend(by_node.values().flatten().map(|p| name(p)));
    }

    if meta.deletion_timestamp.is_none() {
        // Extra pods on one node: keep the updated one if any, else the oldest.
        for (_, pods) in &mut running {
            if pods.len() > 1 && !rolling_surge(&spec) {
                let keep = pods.iter().position(|p| updated(p) && available(p)).unwrap_or(0);
                let kept = pods[keep];
                plan.delete.extend(pods.iter().filter(|p| !std::ptr::eq(**p, kept)).map(|p| name(p)));
                *pods = vec![kept];
            }
        }
        rolling_update(ds, &spec, &hash, &running, &available, &updated, desired, &mut plan);
    }

    status.desired_number_scheduled = desired;
    status.current_number_scheduled = current;
    status.number_misscheduled = misscheduled;
    status.number_ready = ready;
    status.number_available = Some(avail);
    status.number_unavailable = Some((desired - avail).max(0));
    status.updated_number_scheduled = Some(updated_n);
    plan.status = status;
    plan.delete.sort();
    plan.delete.dedup();
    plan
}

fn rolling_surge(spec: &k8s_openapi::api::apps::v1::DaemonSetSpec) -> bool {
    let strategy = spec.update_strategy.as_ref();
    strategy.and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate") == "RollingUpdate"
        && scaled(strategy.and_then(|s| s.rolling_update.as_ref()).and_then(|r| r.max_surge.as_ref()), 1) > 0
}

/// Replaces old pods within `maxUnavailable` / `maxSurge` (see the module docs).
#[allow(clippy::too_many_arguments)]
fn rolling_update(
    ds: &DaemonSet,
    spec: &k8s_openapi::api::apps::v1::DaemonSetSpec,
    hash: &str,
    running: &[(&str, Vec<&Pod>)],
    available: &dyn Fn(&Pod) -> bool,
    updated: &dyn Fn(&Pod) -> bool,
    desired: i32,
    plan: &mut Plan,
) {
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if strategy.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return;
    }
    let ru = strategy.rolling_update.unwrap_or_default();
    let total = usize::try_from(desired).unwrap_or(0);
    let max_surge = scaled(ru.max_surge.as_ref(), total);
    let mut max_unavailable = scaled(ru.max_unavailable.as_ref(), total);
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    if max_surge == 0 {
        // Nodes whose (only) pod is unavailable count against the budget.
        let mut unavailable = running.iter().filter(|(_, pods)| !pods.iter().any(|p| available(p))).count();
        for (_, pods) in running {
            let Some(old) = pods.iter().find(|p| !updated(p)) else { continue };
            if !available(old) {
                plan.delete.push(name(old));
            } else if unavailable < max_unavailable {
                unavailable += 1;
                plan.delete.push(name(old));
            }
        }
        return;
    }
    let mut surging =
        running.iter().filter(|(_, pods)| pods.iter().any(|p| updated(p)) && pods.iter().any(|p| !updated(p))).count();
    for (node, pods) in running {
        let new = pods.iter().find(|p| updated(p));
        let olds: Vec<&&Pod> = pods.iter().filter(|p| !updated(p)).collect();
        if olds.is_empty() {
            continue;
        }
        match new {
            Some(new) if available(new) => plan.delete.extend(olds.iter().map(|p| name(p))),
            Some(_) => {}
            None if olds.iter().all(|p| !available(p)) => {
                plan.delete.extend(olds.iter().map(|p| name(p)));
            }
            None if surging < max_surge => {
                surging += 1;
                plan.create.push(new_pod(ds, node, hash));
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet};
    use k8s_openapi::api::core::v1::{Container, NodeSpec, PodCondition, PodSpec, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn ds(image: &str) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                name: Some("agent".into()),
                namespace: Some("default".into()),
                uid: Some("ds-uid".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: Some(DaemonSetSpec {
                selector: LabelSelector { match_labels: labels(&[("app", "agent")]), match_expressions: None },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta { labels: labels(&[("app", "agent")]), ..Default::default() }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "a".into(),
                            image: Some(image.into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                update_strategy: Some(DaemonSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDaemonSet {
                        max_unavailable: Some(IntOrString::Int(1)),
                        max_surge: Some(IntOrString::Int(0)),
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn node(name: &str, node_labels: &[(&str, &str)], taints: Vec<Taint>) -> Node {
        Node {
            metadata: ObjectMeta { name: Some(name.into()), labels: labels(node_labels), ..Default::default() },
            spec: Some(NodeSpec { taints: Some(taints), ..Default::default() }),
            status: None,
        }
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint { key: key.into(), effect: effect.into(), ..Default::default() }
    }

    /// A created pod as the cluster would show it: named, bound, running, ready or not.
    fn running(mut pod: Pod, name: &str, ready: bool) -> Pod {
        let node = target_node(&pod).unwrap().to_string();
        pod.metadata.name = Some(name.into());
        pod.metadata.creation_timestamp = Some(Time("2025-01-01T00:00:00Z".parse().unwrap()));
        pod.spec.as_mut().unwrap().node_name = Some(node);
        pod.status = Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        pod
    }

    fn nodes_of(plan: &Plan) -> Vec<String> {
        plan.create.iter().map(|p| target_node(p).unwrap().to_string()).collect()
    }

    #[test]
    fn one_pod_per_eligible_node_bound_by_node_affinity_with_daemon_tolerations() {
        let mut d = ds("agent:1");
        d.spec.as_mut().unwrap().template.spec.as_mut().unwrap().node_selector = labels(&[("role", "edge")]);
        let nodes = [
            node("n1", &[("role", "edge")], vec![]),
            node("n2", &[("role", "core")], vec![]),
            node("n3", &[("role", "edge")], vec![taint("dedicated", "NoSchedule")]),
            // Tolerated by the tolerations every daemon pod gets.
            node("n4", &[("role", "edge")], vec![taint("node.kubernetes.io/not-ready", "NoExecute")]),
        ];
        let plan = reconcile(&d, &nodes, &[], None);
        assert_eq!(nodes_of(&plan), vec!["n1", "n4"]);
        let pod = &plan.create[0];
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("agent-"));
        assert_eq!(pod.metadata.labels.as_ref().unwrap()[CONTROLLER_REVISION_HASH], template_hash(&d));
        assert!(pod.spec.as_ref().unwrap().node_name.is_none(), "the scheduler binds it");
        let tolerations = pod.spec.as_ref().unwrap().tolerations.as_ref().unwrap();
        assert_eq!(tolerations.len(), 6);
        assert!(tolerations.iter().any(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable")
            && t.effect.as_deref() == Some("NoExecute")
            && t.operator.as_deref() == Some("Exists")));
        assert_eq!(plan.status.desired_number_scheduled, 2);
        assert_eq!(plan.status.current_number_scheduled, 0);
        assert_eq!(plan.status.observed_generation, Some(2));
        // The scheduler honours the affinity: only n1 fits the first pod.
        assert!(crate::scheduler::matches_node_affinity(pod, &nodes[0]));
        assert!(!crate::scheduler::matches_node_affinity(pod, &nodes[3]));
    }

    #[test]
    fn status_counts_and_pods_on_removed_or_unsuitable_nodes_are_deleted() {
        let d = ds("agent:1");
        let hash = template_hash(&d);
        let on = |n: &str, name: &str, ready: bool| running(new_pod(&d, n, &hash), name, ready);
        let nodes = [
            node("n1", &[], vec![]),
            node("n2", &[], vec![]),
            node("n3", &[], vec![taint("evict", "NoExecute")]),
            node("n4", &[], vec![taint("drain", "NoSchedule")]),
        ];
        let pods = [
            on("n1", "agent-a", true),
            on("n2", "agent-b", false),
            on("n3", "agent-c", true),
            on("n4", "agent-d", true),
            on("gone", "agent-e", true),
        ];
        let plan = reconcile(&d, &nodes, &pods, None);
        assert!(plan.create.is_empty());
        assert_eq!(plan.delete, vec!["agent-c".to_string(), "agent-e".to_string()]);
        let s = &plan.status;
        assert_eq!((s.desired_number_scheduled, s.current_number_scheduled, s.number_misscheduled), (2, 2, 2));
        assert_eq!((s.number_ready, s.number_available, s.updated_number_scheduled), (1, Some(1), Some(2)));
        assert_eq!(s.number_unavailable, Some(1));
    }

    #[test]
    fn failed_and_duplicate_pods_are_deleted_keeping_the_oldest() {
        let d = ds("agent:1");
        let hash = template_hash(&d);
        let mut failed = running(new_pod(&d, "n1", &hash), "agent-f", false);
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        let mut newer = running(new_pod(&d, "n2", &hash), "agent-y", true);
        newer.metadata.creation_timestamp = Some(Time("2025-01-01T00:05:00Z".parse().unwrap()));
        let pods = [failed, running(new_pod(&d, "n2", &hash), "agent-x", true), newer];
        let plan = reconcile(&d, &[node("n1", &[], vec![]), node("n2", &[], vec![])], &pods, None);
        assert_eq!(nodes_of(&plan), vec!["n1"]);
        assert_eq!(plan.delete, vec!["agent-f".to_string(), "agent-y".to_string()]);
    }

    #[test]
    fn template_change_rolls_one_node_at_a_time_with_max_unavailable_1() {
        let old = ds("agent:1");
        let old_hash = template_hash(&old);
        let new = ds("agent:2");
        assert_ne!(template_hash(&new), old_hash);
        let nodes = [node("n1", &[], vec![]), node("n2", &[], vec![])];
        let pods = [
            running(new_pod(&old, "n1", &old_hash), "agent-a", true),
            running(new_pod(&old, "n2", &old_hash), "agent-b", true),
        ];
        let plan = reconcile(&new, &nodes, &pods, None);
        assert_eq!(plan.delete, vec!["agent-a".to_string()], "one old pod at a time");
        assert_eq!(plan.status.updated_number_scheduled, Some(0));

        // n1 got its new pod, not ready yet: n2's old pod must wait.
        let fresh = running(new_pod(&new, "n1", &template_hash(&new)), "agent-c", false);
        let plan = reconcile(&new, &nodes, &[fresh.clone(), pods[1].clone()], None);
        assert!(plan.delete.is_empty() && plan.create.is_empty());
        assert_eq!(plan.status.updated_number_scheduled, Some(1));
        // Once it is ready, n2 follows.
        let ready = running(new_pod(&new, "n1", &template_hash(&new)), "agent-c", true);
        let plan = reconcile(&new, &nodes, &[ready, pods[1].clone()], None);
        assert_eq!(plan.delete, vec!["agent-b".to_string()]);

        let mut on_delete = new.clone();
        on_delete.spec.as_mut().unwrap().update_strategy =
            Some(DaemonSetUpdateStrategy { type_: Some("OnDelete".into()), rolling_update: None });
        assert!(reconcile(&on_delete, &nodes, &pods, None).delete.is_empty());
    }

    #[test]
    fn max_surge_starts_the_new_pod_beside_the_old_one() {
        let old = ds("agent:1");
        let old_hash = template_hash(&old);
        let mut new = ds("agent:2");
        new.spec.as_mut().unwrap().update_strategy.as_mut().unwrap().rolling_update = Some(RollingUpdateDaemonSet {
            max_unavailable: Some(IntOrString::Int(0)),
            max_surge: Some(IntOrString::Int(1)),
        });
        let nodes = [node("n1", &[], vec![]), node("n2", &[], vec![])];
        let pods = [
            running(new_pod(&old, "n1", &old_hash), "agent-a", true),
            running(new_pod(&old, "n2", &old_hash), "agent-b", true),
        ];
        let plan = reconcile(&new, &nodes, &pods, None);
        assert_eq!(nodes_of(&plan), vec!["n1"]);
        assert!(plan.delete.is_empty());
        let surged = running(new_pod(&new, "n1", &template_hash(&new)), "agent-c", true);
        let plan = reconcile(&new, &nodes, &[pods[0].clone(), pods[1].clone(), surged], None);
        assert_eq!(plan.delete, vec!["agent-a".to_string()]);
        assert!(plan.create.is_empty(), "n2 waits for the surge budget");
    }
}

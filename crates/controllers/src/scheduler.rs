//! The pure core of a minimal kube-scheduler: filter the nodes a Pod may run on, then pick the
//! least-loaded one. No IO happens here; the loop that watches unscheduled pods, calls
//! [`pick_node`] and posts the [`binding`] lives elsewhere.
//!
//! Filters, in the order of the default scheduler's plugins (the first failing filter is the
//! reason a node is counted under, as upstream's `RunFilterPlugins` stops at the first failure):
//! 1. NodeUnschedulable: `spec.unschedulable` nodes are out unless the pod tolerates
//!    `node.kubernetes.io/unschedulable:NoSchedule` — "node(s) were unschedulable".
//! 2. Readiness (not a default plugin any more; upstream relies on the `node.kubernetes.io/not-ready`
//!    taint the node lifecycle controller puts on such nodes): nodes whose `Ready` condition is not
//!    `True` are out — "node(s) were not ready" (the old `CheckNodeCondition` wording).
//! 3. TaintToleration: a `NoSchedule`/`NoExecute` taint the pod does not tolerate —
//!    "node(s) had untolerated taint {key: value}" (the first such taint).
//! 4. NodeAffinity: `spec.nodeSelector` and the required node affinity terms (`matchExpressions`
//!    on labels, `matchFields` on `metadata.name`; operators In, NotIn, Exists, DoesNotExist, Gt,
//!    Lt) — "node(s) didn't match Pod's node affinity/selector".
//!
//! Scoring is deliberately simple: fewest pods (from `pods_per_node`, missing = 0), ties by node
//! name. Not modelled: resources, host ports, volumes, inter-pod affinity, topology spread,
//! preemption (so the " preemption: ..." tail of upstream's message is never added).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Toleration;
use k8s_openapi::api::core::v1::{
    Binding, Node, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference, Pod, Taint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::nodelifecycle::node_ready;

/// Taint key the NodeUnschedulable filter checks tolerations against.
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// Reason for nodes with `spec.unschedulable` (upstream `ErrReasonUnschedulable`).
pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// Reason for nodes whose `Ready` condition is not `True`.
pub const REASON_NOT_READY: &str = "node(s) were not ready";
/// Reason for nodes failing nodeSelector / required node affinity (upstream `ErrReasonPod`).
pub const REASON_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";

/// No node fits the pod. [`Display`](fmt::Display) gives the `FailedScheduling` event message in
/// the format of upstream's `FitError.Error()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unschedulable {
    /// How many nodes were considered.
    pub num_all_nodes: usize,
    /// Reason to how many nodes failed for it.
    pub reasons: BTreeMap<String, usize>,
}

impl fmt::Display for Unschedulable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_all_nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        // Upstream sorts the "<count> <reason>" strings themselves (so "10 ..." sorts before "2 ...").
        let mut histogram: Vec<String> = self.reasons.iter().map(|(reason, n)| format!("{n} {reason}")).collect();
        histogram.sort();
        if !histogram.is_empty() {
            write!(f, " {}.", histogram.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for Unschedulable {}

/// Upstream `Toleration.ToleratesTaint`: an empty effect matches every effect, an empty key (only
/// valid with `Exists`) matches every key, `Exists` ignores the value, `Equal` (or no operator)
/// compares it. Unknown operators tolerate nothing.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => toleration.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default(),
        "Exists" => true,
        _ => false,
    }
}

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default()
}

/// The first `NoSchedule`/`NoExecute` taint of the node the pod does not tolerate.
pub fn untolerated_taint<'a>(pod: &Pod, node: &'a Node) -> Option<&'a Taint> {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerations(pod).iter().any(|tol| tolerates(tol, t)))
}

fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value.and_then(|v| v.parse::<i64>().ok()), values) else {
                return false;
            };
            let Ok(bound) = bound.parse::<i64>() else { return false };
            if req.operator == "Gt" { v > bound } else { v < bound }
        }
        _ => false,
    }
}

fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    // A term with no requirements matches no objects (upstream `nodeaffinity`).
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    exprs.iter().all(|r| requirement_matches(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields.iter().all(|r| r.key == "metadata.name" && requirement_matches(r, node.metadata.name.as_deref()))
}

/// NodeAffinity filter: every `spec.nodeSelector` label matches, and (if present) at least one of
/// the required node affinity terms matches.
pub fn matches_node_affinity(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return true };
    let labels = node.metadata.labels.as_ref();
    let selector_ok =
        spec.node_selector.as_ref().is_none_or(|sel| sel.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v)));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref());
    selector_ok && required.is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, node)))
}

/// Why the node cannot take the pod, or `None` if it can.
pub fn filter(pod: &Pod, node: &Node) -> Option<String> {
    let unschedulable = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    if unschedulable {
        let taint = Taint { key: TAINT_NODE_UNSCHEDULABLE.into(), effect: "NoSchedule".into(), ..Default::default() };
        if !tolerations(pod).iter().any(|t| tolerates(t, &taint)) {
            return Some(REASON_UNSCHEDULABLE.into());
        }
    }
    if !node_ready(node) {
        return Some(REASON_NOT_READY.into());
    }
    if let Some(taint) = untolerated_taint(pod, node) {
        return Some(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or_default()
        ));
    }
    if !matches_node_affinity(pod, node) {
        return Some(REASON_AFFINITY.into());
    }
    None
}

/// Picks the node for the pod: among the nodes passing [`filter`], the one with the fewest pods
/// in `pods_per_node` (keyed by node name; missing = 0), ties broken by the smaller name.
pub fn pick_node(pod: &Pod, nodes: &[Node], pods_per_node: &BTreeMap<String, usize>) -> Result<String, Unschedulable> {
    let mut reasons = BTreeMap::<String, usize>::new();
    let mut best: Option<(usize, &str)> = None;
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        match filter(pod, node) {
            Some(reason) => *reasons.entry(reason).or_default() += 1,
            None => {
                let candidate = (pods_per_node.get(name).copied().unwrap_or(0), name);
                if best.is_none_or(|b| candidate < b) {
                    best = Some(candidate);
                }
            }
        }
    }
    match best {
        Some((_, name)) => Ok(name.to_owned()),
        None => Err(Unschedulable { num_all_nodes: nodes.len(), reasons }),
    }
}

/// The `pods/binding` subresource body the default binder posts: the pod's name, namespace and
/// UID, targeting the node.
pub fn binding(pod: &Pod, node: &str) -> Binding {
    Binding {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference { kind: Some("Node".into()), name: Some(node.into()), ..Default::default() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Affinity, NodeAffinity, NodeCondition, NodeSelector, NodeSpec, NodeStatus, PodSpec,
    };

    fn node(name: &str, labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn tainted(mut n: Node, key: &str, value: &str, effect: &str) -> Node {
        let taint = Taint { key: key.into(), value: Some(value.into()), effect: effect.into(), ..Default::default() };
        n.spec.get_or_insert_default().taints.get_or_insert_default().push(taint);
        n
    }

    fn cordoned(mut n: Node) -> Node {
        n.spec.get_or_insert_default().unschedulable = Some(true);
        n
    }

    fn not_ready(mut n: Node) -> Node {
        n.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "Unknown".into();
        n
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-0".into()),
                namespace: Some("default".into()),
                uid: Some("uid-1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            ..Default::default()
        }
    }

    fn with_selector(mut p: Pod, labels: &[(&str, &str)]) -> Pod {
        p.spec.as_mut().unwrap().node_selector =
            Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        p
    }

    fn with_toleration(mut p: Pod, key: &str, op: &str, value: &str, effect: &str) -> Pod {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        p.spec.as_mut().unwrap().tolerations.get_or_insert_default().push(Toleration {
            key: opt(key),
            operator: opt(op),
            value: opt(value),
            effect: opt(effect),
            ..Default::default()
        });
        p
    }

    /// (key, operator, values) of a node selector requirement.
    type Expr<'a> = (&'a str, &'a str, &'a [&'a str]);

    fn with_required(mut p: Pod, exprs: &[Expr]) -> Pod {
        let term = NodeSelectorTerm {
            match_expressions: Some(
                exprs
                    .iter()
                    .map(|(k, op, vals)| NodeSelectorRequirement {
                        key: k.to_string(),
                        operator: op.to_string(),
                        values: Some(vals.iter().map(|v| v.to_string()).collect()),
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        p.spec.as_mut().unwrap().affinity = Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![term],
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        p
    }

    fn load(entries: &[(&str, usize)]) -> BTreeMap<String, usize> {
        entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn least_loaded_node_wins_and_ties_go_to_the_smaller_name() {
        let nodes = [node("c", &[]), node("a", &[]), node("b", &[])];
        assert_eq!(pick_node(&pod(), &nodes, &load(&[("a", 3), ("b", 1), ("c", 1)])), Ok("b".into()));
        assert_eq!(pick_node(&pod(), &nodes, &load(&[])), Ok("a".into()));
    }

    #[test]
    fn message_counts_reasons_like_the_default_schedulers_fit_error() {
        let nodes = [node("a", &[]), cordoned(node("b", &[])), cordoned(node("c", &[]))];
        let err = pick_node(&with_selector(pod(), &[("disk", "ssd")]), &nodes, &load(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
             2 node(s) were unschedulable."
        );
    }

    #[test]
    fn no_nodes_at_all_gives_upstreams_no_nodes_message() {
        let err = pick_node(&pod(), &[], &load(&[])).unwrap_err();
        assert_eq!(err.to_string(), "no nodes available to schedule pods");
    }

    #[test]
    fn not_ready_nodes_are_filtered_out() {
        let nodes = [not_ready(node("a", &[])), node("b", &[])];
        assert_eq!(pick_node(&pod(), &nodes, &load(&[("b", 50)])), Ok("b".into()));
        let err = pick_node(&pod(), &nodes[..1], &load(&[])).unwrap_err();
        assert_eq!(err.to_string(), "0/1 nodes are available: 1 node(s) were not ready.");
    }

    #[test]
    fn untolerated_no_schedule_taint_is_reported_with_key_and_value() {
        let nodes = [tainted(node("cp", &[]), "node-role.kubernetes.io/control-plane", "", "NoSchedule")];
        let err = pick_node(&pod(), &nodes, &load(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/1 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }."
        );
    }

    #[test]
    fn prefer_no_schedule_taints_do_not_filter() {
        let nodes = [tainted(node("a", &[]), "dedicated", "gpu", "PreferNoSchedule")];
        assert_eq!(pick_node(&pod(), &nodes, &load(&[])), Ok("a".into()));
    }

    #[test]
    fn toleration_matching_follows_upstream_key_operator_value_and_effect_rules() {
        let taint = |k: &str, v: &str, e: &str| Taint {
            key: k.into(),
            value: Some(v.into()),
            effect: e.into(),
            ..Default::default()
        };
        let tol = |k: &str, op: &str, v: &str, e: &str| {
            let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
            Toleration { key: opt(k), operator: opt(op), value: opt(v), effect: opt(e), ..Default::default() }
        };
        let cases = [
            (tol("dedicated", "Equal", "gpu", "NoSchedule"), taint("dedicated", "gpu", "NoSchedule"), true),
            (tol("dedicated", "", "gpu", "NoSchedule"), taint("dedicated", "gpu", "NoSchedule"), true),
            (tol("dedicated", "Equal", "cpu", "NoSchedule"), taint("dedicated", "gpu", "NoSchedule"), false),
            (tol("dedicated", "Exists", "", ""), taint("dedicated", "gpu", "NoExecute"), true),
            (tol("dedicated", "Exists", "", "NoSchedule"), taint("dedicated", "gpu", "NoExecute"), false),
            (tol("", "Exists", "", ""), taint("anything", "x", "NoSchedule"), true),
            (tol("other", "Exists", "", ""), taint("dedicated", "gpu", "NoSchedule"), false),
            (tol("dedicated", "Sometimes", "gpu", ""), taint("dedicated", "gpu", "NoSchedule"), false),
        ];
        for (i, (t, taint, want)) in cases.iter().enumerate() {
            assert_eq!(tolerates(t, taint), *want, "case {i}");
        }
    }

    #[test]
    fn tolerated_taint_lets_the_pod_onto_the_node() {
        let nodes = [tainted(node("gpu-1", &[]), "dedicated", "gpu", "NoExecute")];
        let p = with_toleration(pod(), "dedicated", "Equal", "gpu", "");
        assert_eq!(pick_node(&p, &nodes, &load(&[])), Ok("gpu-1".into()));
    }

    #[test]
    fn cordoned_node_is_usable_by_a_pod_tolerating_the_unschedulable_taint() {
        let nodes = [cordoned(node("a", &[]))];
        let p = with_toleration(pod(), TAINT_NODE_UNSCHEDULABLE, "Exists", "", "NoSchedule");
        assert_eq!(pick_node(&p, &nodes, &load(&[])), Ok("a".into()));
    }

    #[test]
    fn node_selector_requires_every_label() {
        let nodes = [node("a", &[("disk", "ssd")]), node("b", &[("disk", "ssd"), ("zone", "z1")])];
        let p = with_selector(pod(), &[("disk", "ssd"), ("zone", "z1")]);
        assert_eq!(pick_node(&p, &nodes, &load(&[("b", 9)])), Ok("b".into()));
    }

    #[test]
    fn required_node_affinity_operators_match_like_upstream() {
        let n = node("a", &[("zone", "z1"), ("cores", "8")]);
        let cases: [(&[Expr], bool); 10] = [
            (&[("zone", "In", &["z1", "z2"])], true),
            (&[("zone", "In", &["z3"])], false),
            (&[("zone", "NotIn", &["z3"])], true),
            (&[("missing", "NotIn", &["z3"])], true),
            (&[("zone", "Exists", &[])], true),
            (&[("zone", "DoesNotExist", &[])], false),
            (&[("cores", "Gt", &["4"])], true),
            (&[("cores", "Lt", &["4"])], false),
            (&[("zone", "Gt", &["4"])], false),
            (&[("zone", "In", &["z1"]), ("cores", "In", &["16"])], false),
        ];
        for (i, (exprs, want)) in cases.iter().enumerate() {
            assert_eq!(matches_node_affinity(&with_required(pod(), exprs), &n), *want, "case {i}");
        }
    }

    #[test]
    fn binding_targets_the_node_with_the_pods_identity() {
        let b = binding(&pod(), "node-a");
        assert_eq!(b.metadata.name.as_deref(), Some("web-0"));
        assert_eq!(b.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(b.metadata.uid.as_deref(), Some("uid-1"));
        assert_eq!(b.target.kind.as_deref(), Some("Node"));
        assert_eq!(b.target.name.as_deref(), Some("node-a"));
    }
}

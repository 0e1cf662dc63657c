//! The pure core of kube-controller-manager's node lifecycle controller
//! (`pkg/controller/nodelifecycle`) and node IPAM controller (`pkg/controller/nodeipam`, range
//! allocator): decide whether a node's kubelet is still heartbeating, the status patches that mark
//! a silent node's conditions `Unknown` and its pods not ready, and hand out per-node pod CIDRs.
//!
//! Patches are strategic merge patches for the `status` subresource (node and pod conditions merge
//! on `type`). Not modelled: taint-based eviction, zone disruption states, rate limiting.

use std::collections::BTreeSet;

use api::net::{Cidr, IpFamily, from_u128};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

/// kube-controller-manager's default `--node-monitor-grace-period` (50s since v1.32, 40s before).
pub const DEFAULT_NODE_MONITOR_GRACE_PERIOD: Duration = Duration::from_secs(50);
/// Default `--cluster-cidr` handed to the node IPAM allocator here.
pub const DEFAULT_CLUSTER_CIDR: &str = "10.244.0.0/16";
/// Default `--node-cidr-mask-size` for IPv4.
pub const DEFAULT_NODE_CIDR_MASK_SIZE_V4: u8 = 24;
/// Default `--node-cidr-mask-size` for IPv6.
pub const DEFAULT_NODE_CIDR_MASK_SIZE_V6: u8 = 64;

/// Node conditions the controller sets to `Unknown` when the kubelet goes silent.
pub const NODE_CONDITION_TYPES: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Whether the node's `Ready` condition is `True`.
pub fn node_ready(node: &Node) -> bool {
    ready_condition(node).is_some_and(|c| c.status == "True")
}

fn ready_condition(node: &Node) -> Option<&k8s_openapi::api::core::v1::NodeCondition> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

/// Whether the kubelet has been heard from within the grace period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeHealth {
    Healthy,
    Stale,
}

/// The node's last sign of life: the later of its Lease's `spec.renewTime` and its `Ready`
/// condition's `lastHeartbeatTime`; a node that has never posted either counts from its
/// `creationTimestamp` (as upstream, which starts the probe clock when it first sees the node).
pub fn last_heartbeat(node: &Node, lease: Option<&Lease>) -> Option<jiff::Timestamp> {
    let renew = lease.and_then(|l| l.spec.as_ref()?.renew_time.as_ref()).map(|t| t.0);
    let heartbeat = ready_condition(node).and_then(|c| c.last_heartbeat_time.as_ref()).map(|t| t.0);
    renew.max(heartbeat).or_else(|| node.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// `Stale` once `now` is past the last heartbeat plus `grace` (or when there is no timestamp at
/// all), else `Healthy`.
pub fn node_health(node: &Node, lease: Option<&Lease>, now: jiff::Timestamp, grace: Duration) -> NodeHealth {
    let Some(last) = last_heartbeat(node, lease) else { return NodeHealth::Stale };
    let Ok(grace) = jiff::SignedDuration::try_from(grace) else { return NodeHealth::Healthy };
    match last.checked_add(grace) {
        Ok(deadline) if now > deadline => NodeHealth::Stale,
        _ => NodeHealth::Healthy,
    }
}

fn fmt_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Status patch marking a silent node's conditions `Unknown`, as upstream `tryUpdateNodeHealth`:
/// each of [`NODE_CONDITION_TYPES`] not already `Unknown` becomes `Unknown`, reason
/// `NodeStatusUnknown`, message "Kubelet stopped posting node status.", `lastTransitionTime` now
/// (the last heartbeat is kept); a missing one is added with reason `NodeStatusNeverUpdated`,
/// message "Kubelet never posted node status." and the node's creation time as heartbeat.
/// `None` when every condition is already `Unknown`.
pub fn mark_unknown(node: &Node, now: jiff::Timestamp) -> Option<Value> {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let now = fmt_time(now);
    let patches: Vec<Value> = NODE_CONDITION_TYPES
        .iter()
        .filter_map(|&type_| match conditions.iter().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => None,
            Some(_) => Some(json!({
                "type": type_,
                "status": "Unknown",
                "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
                "lastTransitionTime": now,
            })),
            None => {
                let created = node.metadata.creation_timestamp.as_ref().map(|t| fmt_time(t.0));
                Some(json!({
                    "type": type_,
                    "status": "Unknown",
                    "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.",
                    "lastHeartbeatTime": created,
                    "lastTransitionTime": now,
                }))
            }
        })
        .collect();
    (!patches.is_empty()).then(|| json!({ "status": { "conditions": patches } }))
}

/// Status patch setting the pod's `Ready` condition to `False` (upstream `MarkPodsNotReady` on the
/// pods of a node whose Ready went Unknown). `None` when the pod has no `Ready` condition or it is
/// already `False`. Reason and message are left as they are, as upstream does.
pub fn pod_not_ready_patch(pod: &Pod, now: jiff::Timestamp) -> Option<Value> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    (ready.status != "False").then(|| {
        json!({ "status": { "conditions": [{
            "type": "Ready",
            "status": "False",
            "lastTransitionTime": fmt_time(now),
        }] } })
    })
}

/// Node IPAM errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("invalid CIDR {0:?}")]
    Invalid(String),
    #[error("node CIDR mask size {mask} does not fit cluster CIDR {cluster}")]
    BadMaskSize { cluster: String, mask: u8 },
    #[error("CIDR {cidr} is not a /{mask} inside cluster CIDR {cluster}")]
    OutOfRange { cidr: String, cluster: String, mask: u8 },
    /// Upstream's `ErrCIDRRangeNoCIDRsRemaining` message.
    #[error("CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range")]
    Full,
}

/// Parses "address/prefix" into (network address as u128, prefix, is IPv4); the address must be the
/// network address (no host bits).
fn parse_cidr(s: &str) -> Result<(u128, u8, bool), CidrError> {
    let cidr = Cidr::parse_network(s).map_err(|_| CidrError::Invalid(s.to_owned()))?;
    Ok((cidr.first(), cidr.prefix(), cidr.family() == IpFamily::V4))
}

fn format_ip(value: u128, v4: bool) -> String {
    from_u128(if v4 { IpFamily::V4 } else { IpFamily::V6 }, value).to_string()
}

/// The range allocator: carves `--cluster-cidr` into subnets of `--node-cidr-mask-size` and hands
/// one to each node, lowest free first (upstream rotates from the last allocation; both are
/// valid, lowest-first is deterministic).
#[derive(Clone, Debug)]
pub struct PodCidrAllocator {
    cluster: String,
    base: u128,
    v4: bool,
    mask: u8,
    /// log2 of the number of subnets.
    subnet_bits: u8,
    used: BTreeSet<u128>,
}

impl Default for PodCidrAllocator {
    /// 10.244.0.0/16 in /24s.
    fn default() -> Self {
        Self::new(DEFAULT_CLUSTER_CIDR, DEFAULT_NODE_CIDR_MASK_SIZE_V4).expect("default cluster CIDR is valid")
    }
}

impl PodCidrAllocator {
    /// An allocator over `cluster_cidr` handing out `/node_mask` subnets. Like upstream, the mask
    /// must not be shorter than the cluster prefix and at most 16 bits longer (65536 subnets).
    pub fn new(cluster_cidr: &str, node_mask: u8) -> Result<Self, CidrError> {
        let (base, prefix, v4) = parse_cidr(cluster_cidr)?;
        let bits = if v4 { 32 } else { 128 };
        if node_mask < prefix || node_mask > bits || node_mask - prefix > 16 {
            return Err(CidrError::BadMaskSize { cluster: cluster_cidr.to_owned(), mask: node_mask });
        }
        Ok(Self {
            cluster: cluster_cidr.to_owned(),
            base,
            v4,
            mask: node_mask,
            subnet_bits: node_mask - prefix,
            used: BTreeSet::new(),
        })
    }

    fn bits(&self) -> u8 {
        if self.v4 { 32 } else { 128 }
    }

    fn capacity(&self) -> u128 {
        1u128 << self.subnet_bits
    }

    fn cidr(&self, index: u128) -> String {
        let addr = self.base + (index << (self.bits() - self.mask));
        format!("{}/{}", format_ip(addr, self.v4), self.mask)
    }

    fn index(&self, cidr: &str) -> Result<u128, CidrError> {
        let out_of_range =
            || CidrError::OutOfRange { cidr: cidr.to_owned(), cluster: self.cluster.clone(), mask: self.mask };
        let (value, prefix, v4) = parse_cidr(cidr)?;
        if v4 != self.v4 || prefix != self.mask || value < self.base {
            return Err(out_of_range());
        }
        let index = (value - self.base) >> (self.bits() - self.mask);
        if index >= self.capacity() {
            return Err(out_of_range());
        }
        Ok(index)
    }

    /// The node's pod CIDR: the one in its `spec.podCIDRs`/`spec.podCIDR` that belongs to this
    /// cluster CIDR (marked as used), or else a newly allocated free subnet.
    pub fn allocate(&mut self, node: &Node) -> Result<String, CidrError> {
        let spec = node.spec.as_ref();
        let existing = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
        let existing = existing.into_iter().chain(spec.and_then(|s| s.pod_cidr.clone()));
        for cidr in existing {
            if let Ok(index) = self.index(&cidr) {
                self.used.insert(index);
                return Ok(self.cidr(index));
            }
        }
        let free = (0..self.capacity()).find(|i| !self.used.contains(i)).ok_or(CidrError::Full)?;
        self.used.insert(free);
        Ok(self.cidr(free))
    }

    /// Marks a CIDR (e.g. found on an existing node at startup) as used.
    pub fn mark(&mut self, cidr: &str) -> Result<(), CidrError> {
        let index = self.index(cidr)?;
        self.used.insert(index);
        Ok(())
    }

    /// Frees a CIDR (its node was deleted). Releasing a free CIDR is a no-op.
    pub fn release(&mut self, cidr: &str) -> Result<(), CidrError> {
        let index = self.index(cidr)?;
        self.used.remove(&index);
        Ok(())
    }

    /// How many subnets are handed out.
    pub fn used(&self) -> usize {
        self.used.len()
    }
}

/// Node patch recording the allocated pod CIDR (`spec.podCIDR` and `spec.podCIDRs`).
pub fn pod_cidr_patch(cidr: &str) -> Value {
    json!({ "spec": { "podCIDR": cidr, "podCIDRs": [cidr] } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn node_with_ready(status: &str, heartbeat: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                creation_timestamp: Some(Time(ts("2026-01-01T00:00:00Z"))),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: status.into(),
                    last_heartbeat_time: heartbeat.map(|h| Time(ts(h))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn lease(renew: &str) -> Lease {
        Lease {
            spec: Some(LeaseSpec { renew_time: Some(MicroTime(ts(renew))), ..Default::default() }),
            ..Default::default()
        }
    }

    const GRACE: Duration = Duration::from_secs(40);

    #[test]
    fn fresh_lease_keeps_a_node_healthy_even_with_an_old_status_heartbeat() {
        let n = node_with_ready("True", Some("2026-01-01T10:00:00Z"));
        let l = lease("2026-01-01T10:05:00Z");
        assert_eq!(node_health(&n, Some(&l), ts("2026-01-01T10:05:30Z"), GRACE), NodeHealth::Healthy);
    }

    #[test]
    fn node_is_stale_once_past_the_grace_period_and_not_at_it() {
        let l = lease("2026-01-01T10:00:00Z");
        let n = node_with_ready("True", None);
        assert_eq!(node_health(&n, Some(&l), ts("2026-01-01T10:00:40Z"), GRACE), NodeHealth::Healthy);
        assert_eq!(node_health(&n, Some(&l), ts("2026-01-01T10:00:41Z"), GRACE), NodeHealth::Stale);
    }

    #[test]
    fn without_a_lease_the_ready_heartbeat_is_used() {
        let n = node_with_ready("True", Some("2026-01-01T10:00:00Z"));
        assert_eq!(node_health(&n, None, ts("2026-01-01T10:00:30Z"), GRACE), NodeHealth::Healthy);
        assert_eq!(node_health(&n, None, ts("2026-01-01T10:01:00Z"), GRACE), NodeHealth::Stale);
    }

    #[test]
    fn node_that_never_reported_counts_from_its_creation_and_without_it_is_stale() {
        let mut n = node_with_ready("Unknown", None);
        assert_eq!(node_health(&n, None, ts("2026-01-01T00:00:10Z"), GRACE), NodeHealth::Healthy);
        n.metadata.creation_timestamp = None;
        assert_eq!(node_health(&n, None, ts("2026-01-01T00:00:10Z"), GRACE), NodeHealth::Stale);
    }

    #[test]
    fn mark_unknown_sets_ready_unknown_and_adds_missing_conditions() {
        let n = node_with_ready("True", Some("2026-01-01T10:00:00Z"));
        let patch = mark_unknown(&n, ts("2026-01-01T10:01:00Z")).unwrap();
        let conds = patch["status"]["conditions"].as_array().unwrap();
        assert_eq!(conds.len(), 4);
        assert_eq!(
            conds[0],
            json!({
                "type": "Ready",
                "status": "Unknown",
                "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
                "lastTransitionTime": "2026-01-01T10:01:00Z",
            })
        );
        assert_eq!(conds[1]["type"], "MemoryPressure");
        assert_eq!(conds[1]["reason"], "NodeStatusNeverUpdated");
        assert_eq!(conds[1]["lastHeartbeatTime"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn mark_unknown_is_none_when_everything_is_already_unknown() {
        let mut n = node_with_ready("Unknown", None);
        let conds = n.status.as_mut().unwrap().conditions.as_mut().unwrap();
        for t in &NODE_CONDITION_TYPES[1..] {
            conds.push(NodeCondition { type_: t.to_string(), status: "Unknown".into(), ..Default::default() });
        }
        assert_eq!(mark_unknown(&n, ts("2026-01-01T10:01:00Z")), None);
    }

    fn pod_ready(status: Option<&str>) -> Pod {
        Pod {
            status: Some(PodStatus {
                conditions: status.map(|s| {
                    vec![
                        PodCondition { type_: "PodScheduled".into(), status: "True".into(), ..Default::default() },
                        PodCondition { type_: "Ready".into(), status: s.into(), ..Default::default() },
                    ]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn ready_pod_gets_a_ready_false_patch_and_others_get_none() {
        let now = ts("2026-01-01T10:01:00Z");
        assert_eq!(
            pod_not_ready_patch(&pod_ready(Some("True")), now),
            Some(json!({ "status": { "conditions": [{
                "type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T10:01:00Z"
            }] } }))
        );
        assert_eq!(pod_not_ready_patch(&pod_ready(Some("False")), now), None);
        assert_eq!(pod_not_ready_patch(&pod_ready(None), now), None);
    }

    #[test]
    fn allocator_hands_out_consecutive_24s_from_the_default_cluster_cidr() {
        let mut a = PodCidrAllocator::default();
        let n = Node::default();
        assert_eq!(a.allocate(&n).unwrap(), "10.244.0.0/24");
        assert_eq!(a.allocate(&n).unwrap(), "10.244.1.0/24");
        a.mark("10.244.2.0/24").unwrap();
        assert_eq!(a.allocate(&n).unwrap(), "10.244.3.0/24");
        a.release("10.244.1.0/24").unwrap();
        assert_eq!(a.allocate(&n).unwrap(), "10.244.1.0/24");
        assert_eq!(a.used(), 4);
    }

    #[test]
    fn allocator_keeps_a_nodes_existing_cidr() {
        let mut a = PodCidrAllocator::default();
        let n = Node {
            spec: Some(NodeSpec { pod_cidr: Some("10.244.7.0/24".into()), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(a.allocate(&n).unwrap(), "10.244.7.0/24");
        assert_eq!(a.used(), 1);
        assert_eq!(
            pod_cidr_patch("10.244.7.0/24"),
            json!({"spec": {"podCIDR": "10.244.7.0/24", "podCIDRs": ["10.244.7.0/24"]}})
        );
    }

    #[test]
    fn allocator_errors_when_full() {
        let mut a = PodCidrAllocator::new("10.244.0.0/23", 24).unwrap();
        a.allocate(&Node::default()).unwrap();
        a.allocate(&Node::default()).unwrap();
        assert_eq!(a.allocate(&Node::default()), Err(CidrError::Full));
    }

    #[test]
    fn allocator_rejects_invalid_and_foreign_cidrs() {
        assert!(matches!(PodCidrAllocator::new("10.244.0.1/16", 24), Err(CidrError::Invalid(_))));
        assert!(matches!(PodCidrAllocator::new("not-a-cidr", 24), Err(CidrError::Invalid(_))));
        assert!(matches!(PodCidrAllocator::new("10.244.0.0/16", 8), Err(CidrError::BadMaskSize { .. })));
        let mut a = PodCidrAllocator::default();
        assert!(matches!(a.mark("192.0.2.0/24"), Err(CidrError::OutOfRange { .. })));
        assert!(matches!(a.mark("10.244.0.0/25"), Err(CidrError::OutOfRange { .. })));
        assert!(matches!(a.release("2001:db8::/64"), Err(CidrError::OutOfRange { .. })));
    }

    #[test]
    fn allocator_works_for_ipv6() {
        let mut a = PodCidrAllocator::new("2001:db8::/56", DEFAULT_NODE_CIDR_MASK_SIZE_V6).unwrap();
        assert_eq!(a.allocate(&Node::default()).unwrap(), "2001:db8::/64");
        assert_eq!(a.allocate(&Node::default()).unwrap(), "2001:db8:0:1::/64");
    }
}

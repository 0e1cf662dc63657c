//! The pure core of a LoadBalancer IP allocator in the style of MetalLB (an address pool) and
//! k3s ServiceLB (no pool: the ready nodes' own addresses). No IO happens here; the loop that
//! watches Services, calls [`assign`] and writes [`ingress_status`] lives elsewhere.
//!
//! Rules:
//! - Only Services of type `LoadBalancer` that are not being deleted, with no
//!   `spec.loadBalancerClass` or the class configured on the [`PoolState`], are handled; anything
//!   else is [`Assignment::NotOurs`], and whatever it held is released (type changed away, deleted).
//! - Requested addresses come from the `metallb.io/loadBalancerIPs` annotation (comma separated),
//!   else the deprecated `spec.loadBalancerIP`; each must be in the pool and not held by another
//!   Service, else the Service stays pending with a message.
//! - Otherwise a Service keeps what it holds; with nothing held it adopts free pool addresses
//!   already in its `status.loadBalancer.ingress` (controller restart), else gets the lowest free
//!   address of each family in `spec.ipFamilies` (IPv4 when unset; one family unless the policy
//!   is `PreferDualStack`/`RequireDualStack`).
//! - Without a pool, every ready node contributes its ExternalIP addresses, or its InternalIP
//!   addresses when it has no ExternalIP (k3s ServiceLB), filtered to the Service's families.

use std::collections::BTreeMap;
use std::net::IpAddr;

use api::net::{self, Cidr, IpFamily};

use k8s_openapi::api::core::v1::{Node, Service};
use serde_json::{Value, json};

use crate::nodelifecycle::node_ready;

/// MetalLB's annotation requesting specific addresses (comma separated).
pub const ANNOTATION_LOAD_BALANCER_IPS: &str = "metallb.io/loadBalancerIPs";
/// Pending message when the pool has no free address of a wanted family.
pub const MSG_POOL_EXHAUSTED: &str = "no available IPs in pool";

/// A pool definition that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("invalid address range {0:?}: want a CIDR, a single address or \"first-last\" of one family")]
    Invalid(String),
    #[error("address pool is empty")]
    Empty,
}

/// Inclusive address ranges, IPv4 and IPv6 kept as u128 with a family flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    ranges: Vec<Range>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    v4: bool,
    first: u128,
    last: u128,
}

fn to_u128(ip: IpAddr) -> (u128, bool) {
    (net::to_u128(ip), ip.is_ipv4())
}

fn from_u128(value: u128, v4: bool) -> IpAddr {
    net::from_u128(if v4 { IpFamily::V4 } else { IpFamily::V6 }, value)
}

fn parse_range(s: &str) -> Result<Range, PoolError> {
    let invalid = || PoolError::Invalid(s.to_owned());
    let s = s.trim();
    if s.contains('/') {
        // Like MetalLB, host bits in the address are ignored (the whole network is the range).
        let cidr: Cidr = s.replace(' ', "").parse().map_err(|_| invalid())?;
        Ok(Range { v4: cidr.family() == IpFamily::V4, first: cidr.first(), last: cidr.last() })
    } else {
        let (first, last) = s.split_once('-').unwrap_or((s, s));
        let (first, v4) = to_u128(first.trim().parse().map_err(|_| invalid())?);
        let (last, last_v4) = to_u128(last.trim().parse().map_err(|_| invalid())?);
        if v4 != last_v4 || first > last {
            return Err(invalid());
        }
        Ok(Range { v4, first, last })
    }
}

impl Pool {
    /// Parses CIDRs ("198.51.100.0/28"), ranges ("192.0.2.10-192.0.2.20") and single addresses,
    /// IPv4 or IPv6, allocated in the order given.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, PoolError> {
        let ranges = entries.iter().map(|e| parse_range(e.as_ref())).collect::<Result<Vec<_>, _>>()?;
        if ranges.is_empty() {
            return Err(PoolError::Empty);
        }
        Ok(Self { ranges })
    }

    /// Whether the address is in one of the ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (value, v4) = to_u128(ip);
        self.ranges.iter().any(|r| r.v4 == v4 && (r.first..=r.last).contains(&value))
    }
}

/// The allocator's state: the pool (or none, for node addresses), the handled
/// `loadBalancerClass`, and which Service (`namespace/name`) holds which address.
#[derive(Clone, Debug, Default)]
pub struct PoolState {
    pool: Option<Pool>,
    class: Option<String>,
    allocated: BTreeMap<IpAddr, String>,
}

impl PoolState {
    /// State over a pool; `None` hands out node addresses instead.
    pub fn new(pool: Option<Pool>) -> Self {
        Self { pool, class: None, allocated: BTreeMap::new() }
    }

    /// Also handle Services with this `spec.loadBalancerClass`.
    pub fn with_class(mut self, class: impl Into<String>) -> Self {
        self.class = Some(class.into());
        self
    }

    /// Addresses held by the Service with this `namespace/name` key, in address order.
    pub fn held_by(&self, key: &str) -> Vec<IpAddr> {
        self.allocated.iter().filter(|(_, k)| *k == key).map(|(ip, _)| *ip).collect()
    }

    fn release_key(&mut self, key: &str) {
        self.allocated.retain(|_, k| k != key);
    }

    fn free(&self, ip: IpAddr, key: &str) -> bool {
        self.allocated.get(&ip).is_none_or(|k| k == key)
    }

    /// Lowest free pool address of the family.
    fn next_free(&self, v4: bool) -> Option<IpAddr> {
        let pool = self.pool.as_ref()?;
        pool.ranges.iter().filter(|r| r.v4 == v4).find_map(|r| {
            // At most `allocated.len() + 1` steps per range, so huge IPv6 ranges are fine.
            let mut value = r.first;
            loop {
                let ip = from_u128(value, v4);
                if !self.allocated.contains_key(&ip) {
                    return Some(ip);
                }
                if value == r.last {
                    return None;
                }
                value += 1;
            }
        })
    }
}

/// What the Service should get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Assignment {
    /// Addresses for `status.loadBalancer.ingress` (see [`ingress_status`]).
    Ingress(Vec<String>),
    /// Nothing can be assigned now; the message is meant for an event on the Service.
    Pending(String),
    /// Not a Service this allocator handles (anything it held has been released).
    NotOurs,
}

/// `namespace/name` of the Service.
pub fn service_key(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Releases whatever the Service holds (it was deleted or is no longer a LoadBalancer).
pub fn release(svc: &Service, pool: &mut PoolState) {
    pool.release_key(&service_key(svc));
}

fn families(svc: &Service) -> Vec<bool> {
    let spec = svc.spec.as_ref();
    let mut fams: Vec<bool> =
        spec.and_then(|s| s.ip_families.as_ref()).map(|f| f.iter().map(|f| f != "IPv6").collect()).unwrap_or_default();
    if fams.is_empty() {
        fams.push(true);
    }
    let dual = matches!(spec.and_then(|s| s.ip_family_policy.as_deref()), Some("PreferDualStack" | "RequireDualStack"));
    if !dual {
        fams.truncate(1);
    }
    fams
}

fn requested(svc: &Service) -> Result<Vec<IpAddr>, String> {
    let annotation = svc.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION_LOAD_BALANCER_IPS));
    let raw: Vec<&str> = match annotation {
        Some(list) => list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect(),
        None => svc
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_ip.as_deref())
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect(),
    };
    raw.into_iter().map(|s| s.parse().map_err(|_| format!("invalid requested IP {s:?}"))).collect()
}

fn is_ours(svc: &Service, class: Option<&str>) -> bool {
    let Some(spec) = svc.spec.as_ref() else { return false };
    spec.type_.as_deref() == Some("LoadBalancer")
        && svc.metadata.deletion_timestamp.is_none()
        && spec.load_balancer_class.as_deref().is_none_or(|c| Some(c) == class)
}

/// Addresses for the Service; see the module docs for the rules. Mutates `pool` to record
/// allocations and releases.
pub fn assign(svc: &Service, pool: &mut PoolState, nodes: &[Node]) -> Assignment {
    let key = service_key(svc);
    if !is_ours(svc, pool.class.as_deref()) {
        pool.release_key(&key);
        return Assignment::NotOurs;
    }
    let families = families(svc);
    if pool.pool.is_none() {
        return node_addresses(nodes, &families);
    }
    let wanted = match requested(svc) {
        Ok(w) => w,
        Err(msg) => return Assignment::Pending(msg),
    };
    let chosen = if !wanted.is_empty() {
        for ip in &wanted {
            if !pool.pool.as_ref().is_some_and(|p| p.contains(*ip)) {
                return Assignment::Pending(format!("requested IP {ip} is not in the pool"));
            }
            if let Some(owner) = pool.allocated.get(ip).filter(|k| **k != key) {
                return Assignment::Pending(format!("requested IP {ip} is already allocated to {owner}"));
            }
        }
        wanted
    } else {
        let held = pool.held_by(&key);
        if !held.is_empty() {
            held
        } else {
            let adopted = status_ips(svc)
                .into_iter()
                .filter(|ip| pool.pool.as_ref().is_some_and(|p| p.contains(*ip)) && pool.free(*ip, &key));
            let mut chosen: Vec<IpAddr> = Vec::new();
            for ip in adopted {
                if families.contains(&ip.is_ipv4()) && !chosen.iter().any(|c| c.is_ipv4() == ip.is_ipv4()) {
                    chosen.push(ip);
                }
            }
            for &v4 in &families {
                if chosen.iter().any(|c| c.is_ipv4() == v4) {
                    continue;
                }
                match pool.next_free(v4) {
                    Some(ip) => chosen.push(ip),
                    None => return Assignment::Pending(MSG_POOL_EXHAUSTED.to_owned()),
                }
            }
            chosen
        }
    };
    pool.release_key(&key);
    for ip in &chosen {
        pool.allocated.insert(*ip, key.clone());
    }
    Assignment::Ingress(chosen.iter().map(IpAddr::to_string).collect())
}

fn status_ips(svc: &Service) -> Vec<IpAddr> {
    let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
    ingress.into_iter().flatten().filter_map(|i| i.ip.as_deref()?.parse().ok()).collect()
}

fn node_addresses(nodes: &[Node], families: &[bool]) -> Assignment {
    let mut ips: Vec<IpAddr> = Vec::new();
    for node in nodes.iter().filter(|n| node_ready(n)) {
        let addrs = node.status.as_ref().and_then(|s| s.addresses.as_deref()).unwrap_or_default();
        let of = |t: &str| -> Vec<IpAddr> {
            addrs.iter().filter(|a| a.type_ == t).filter_map(|a| a.address.parse().ok()).collect()
        };
        let external = of("ExternalIP");
        let picked = if external.is_empty() { of("InternalIP") } else { external };
        ips.extend(picked.into_iter().filter(|ip| families.contains(&ip.is_ipv4())));
    }
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        return Assignment::Pending("no ready nodes with addresses".to_owned());
    }
    Assignment::Ingress(ips.iter().map(IpAddr::to_string).collect())
}

/// Status patch for the Service: `status.loadBalancer.ingress` with `ipMode: VIP` per address.
pub fn ingress_status(ips: &[String]) -> Value {
    let ingress: Vec<Value> = ips.iter().map(|ip| json!({ "ip": ip, "ipMode": "VIP" })).collect();
    json!({ "status": { "loadBalancer": { "ingress": ingress } } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, NodeAddress, NodeCondition, NodeStatus, ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn svc(name: &str) -> Service {
        Service {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some("default".into()), ..Default::default() },
            spec: Some(ServiceSpec { type_: Some("LoadBalancer".into()), ..Default::default() }),
            ..Default::default()
        }
    }

    fn state(entries: &[&str]) -> PoolState {
        PoolState::new(Some(Pool::parse(entries).unwrap()))
    }

    fn ingress(ips: &[&str]) -> Assignment {
        Assignment::Ingress(ips.iter().map(|s| s.to_string()).collect())
    }

    fn node(ready: bool, addrs: &[(&str, &str)]) -> Node {
        Node {
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                addresses: Some(
                    addrs.iter().map(|(t, a)| NodeAddress { type_: t.to_string(), address: a.to_string() }).collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn pool_parses_cidrs_ranges_and_single_addresses_of_both_families() {
        let p = Pool::parse(&["192.0.2.10-192.0.2.20", "198.51.100.0/28", "2001:db8::1", "2001:db8:1::/120"]).unwrap();
        for ip in ["192.0.2.10", "192.0.2.20", "198.51.100.0", "198.51.100.15", "2001:db8::1", "2001:db8:1::ff"] {
            assert!(p.contains(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["192.0.2.9", "192.0.2.21", "198.51.100.16", "2001:db8::2", "2001:db8:1::100"] {
            assert!(!p.contains(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn pool_rejects_malformed_mixed_family_reversed_and_empty_definitions() {
        for bad in ["192.0.2.300", "192.0.2.0/33", "192.0.2.20-192.0.2.10", "192.0.2.1-2001:db8::1", "pool", ""] {
            assert_eq!(Pool::parse(&[bad]), Err(PoolError::Invalid(bad.into())), "{bad}");
        }
        assert_eq!(Pool::parse::<&str>(&[]), Err(PoolError::Empty));
    }

    #[test]
    fn services_get_the_lowest_free_address_and_keep_it() {
        let mut st = state(&["192.0.2.10-192.0.2.11"]);
        assert_eq!(assign(&svc("a"), &mut st, &[]), ingress(&["192.0.2.10"]));
        assert_eq!(assign(&svc("b"), &mut st, &[]), ingress(&["192.0.2.11"]));
        assert_eq!(assign(&svc("a"), &mut st, &[]), ingress(&["192.0.2.10"]));
    }

    #[test]
    fn exhausted_pool_leaves_the_service_pending_until_an_address_is_released() {
        let mut st = state(&["192.0.2.10"]);
        assert_eq!(assign(&svc("a"), &mut st, &[]), ingress(&["192.0.2.10"]));
        assert_eq!(assign(&svc("b"), &mut st, &[]), Assignment::Pending(MSG_POOL_EXHAUSTED.into()));
        release(&svc("a"), &mut st);
        assert_eq!(assign(&svc("b"), &mut st, &[]), ingress(&["192.0.2.10"]));
    }

    #[test]
    fn requested_address_is_honoured_from_the_annotation_or_the_deprecated_field() {
        let mut st = state(&["198.51.100.0/28"]);
        let mut a = svc("a");
        a.spec.as_mut().unwrap().load_balancer_ip = Some("198.51.100.5".into());
        assert_eq!(assign(&a, &mut st, &[]), ingress(&["198.51.100.5"]));
        let mut b = svc("b");
        b.metadata.annotations = Some([(ANNOTATION_LOAD_BALANCER_IPS.to_string(), "198.51.100.7".to_string())].into());
        assert_eq!(assign(&b, &mut st, &[]), ingress(&["198.51.100.7"]));
        assert_eq!(st.held_by("default/b"), vec!["198.51.100.7".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn requested_address_outside_the_pool_taken_or_malformed_is_pending() {
        let mut st = state(&["198.51.100.0/28"]);
        let with_ip = |name: &str, ip: &str| {
            let mut s = svc(name);
            s.spec.as_mut().unwrap().load_balancer_ip = Some(ip.into());
            s
        };
        assert_eq!(
            assign(&with_ip("a", "192.0.2.1"), &mut st, &[]),
            Assignment::Pending("requested IP 192.0.2.1 is not in the pool".into())
        );
        assign(&with_ip("a", "198.51.100.1"), &mut st, &[]);
        assert_eq!(
            assign(&with_ip("b", "198.51.100.1"), &mut st, &[]),
            Assignment::Pending("requested IP 198.51.100.1 is already allocated to default/a".into())
        );
        assert_eq!(
            assign(&with_ip("c", "nope"), &mut st, &[]),
            Assignment::Pending("invalid requested IP \"nope\"".into())
        );
    }

    #[test]
    fn type_change_deletion_and_foreign_classes_are_not_ours_and_release_addresses() {
        let mut st = state(&["192.0.2.10"]);
        let mut a = svc("a");
        assign(&a, &mut st, &[]);
        a.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        assert_eq!(assign(&a, &mut st, &[]), Assignment::NotOurs);
        assert!(st.held_by("default/a").is_empty());

        let mut b = svc("b");
        assign(&b, &mut st, &[]);
        b.metadata.deletion_timestamp = Some(Time("2026-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(assign(&b, &mut st, &[]), Assignment::NotOurs);
        assert!(st.held_by("default/b").is_empty());

        let mut c = svc("c");
        c.spec.as_mut().unwrap().load_balancer_class = Some("example.com/other".into());
        assert_eq!(assign(&c, &mut st, &[]), Assignment::NotOurs);
        let mut st = st.with_class("example.com/other");
        assert_eq!(assign(&c, &mut st, &[]), ingress(&["192.0.2.10"]));
    }

    #[test]
    fn dual_stack_services_get_one_address_per_family() {
        let mut st = state(&["2001:db8::/126", "192.0.2.0/30"]);
        let mut s = svc("a");
        let spec = s.spec.as_mut().unwrap();
        spec.ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
        spec.ip_family_policy = Some("PreferDualStack".into());
        assert_eq!(assign(&s, &mut st, &[]), ingress(&["2001:db8::", "192.0.2.0"]));
        let mut single = svc("b");
        single.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".into()]);
        assert_eq!(assign(&single, &mut st, &[]), ingress(&["2001:db8::1"]));
    }

    #[test]
    fn addresses_already_in_the_status_are_adopted_after_a_restart() {
        let mut st = state(&["192.0.2.10-192.0.2.20"]);
        let mut s = svc("a");
        s.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress { ip: Some("192.0.2.15".into()), ..Default::default() }]),
            }),
            ..Default::default()
        });
        assert_eq!(assign(&s, &mut st, &[]), ingress(&["192.0.2.15"]));
    }

    #[test]
    fn without_a_pool_ready_nodes_external_or_else_internal_addresses_are_used() {
        let mut st = PoolState::new(None);
        let nodes = [
            node(true, &[("InternalIP", "10.244.0.10"), ("ExternalIP", "198.51.100.2")]),
            node(true, &[("InternalIP", "192.0.2.3"), ("Hostname", "n2")]),
            node(false, &[("ExternalIP", "198.51.100.9")]),
            node(true, &[("InternalIP", "2001:db8::3")]),
        ];
        assert_eq!(assign(&svc("a"), &mut st, &nodes), ingress(&["192.0.2.3", "198.51.100.2"]));
        assert_eq!(
            assign(&svc("a"), &mut st, &nodes[2..3]),
            Assignment::Pending("no ready nodes with addresses".into())
        );
    }

    #[test]
    fn ingress_status_sets_vip_ip_mode() {
        assert_eq!(
            ingress_status(&["192.0.2.10".into()]),
            json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ipMode": "VIP"}]}}})
        );
    }
}

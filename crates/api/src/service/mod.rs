//! Service semantics as kube-apiserver implements them, on wire JSON: defaulting
//! (pkg/apis/core/v1/defaults.go SetDefaults_Service), the registry strategy
//! (pkg/registry/core/service/strategy.go), the storage layer's field fix-ups
//! (pkg/registry/core/service/storage/storage.go and alloc.go) and validation
//! (pkg/apis/core/validation ValidateService*, with upstream's field paths and messages).
//!
//! Nothing here allocates cluster IPs or node ports; that is the caller's job. A create runs,
//! in kube-apiserver's order:
//!
//! 1. [`default_service`] (decoding defaults),
//! 2. [`normalize_cluster_ips`]`(svc, None)` and [`default_ip_families`] (the storage layer's
//!    BeginCreate; an error list from the latter is a 422 Invalid),
//! 3. IP and node-port allocation (elsewhere),
//! 4. [`prepare_for_create`] and [`validate_create`].
//!
//! An update runs [`default_service`] on the new object, [`default_on_read`] on the stored one,
//! [`patch_allocated_values`], [`normalize_cluster_ips`]`(new, Some(old))`,
//! [`init_ip_family_fields`]`(new, Some(old), cfg)`, allocation, [`prepare_for_update`] and
//! [`validate_update`]. A `/status` write runs [`prepare_for_status_update`] and
//! [`validate_status_update`].

mod defaults;
mod validation;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use crate::json::{int_of, list, ptr_str, spec, str_of, strings};

pub(crate) use defaults::default_service_fields;
pub use defaults::{
    default_ip_families, default_on_read, default_service, init_ip_family_fields, normalize_cluster_ips,
    prepare_for_status_update,
};
pub(crate) use defaults::{patch_allocated_values, prepare_for_create, prepare_for_update};
pub(crate) use validation::{non_special_ip, validate_kind};
pub use validation::{validate_cluster_ips_related_fields, validate_create, validate_status_update, validate_update};

/// An IP family a cluster serves Service IPs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    IPv4,
    IPv6,
}

impl IpFamily {
    /// The wire value: `IPv4` or `IPv6`.
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::IPv4 => "IPv4",
            IpFamily::IPv6 => "IPv6",
        }
    }

    /// The other family (storage.go otherFamily).
    pub fn other(self) -> IpFamily {
        match self {
            IpFamily::IPv4 => IpFamily::IPv6,
            IpFamily::IPv6 => IpFamily::IPv4,
        }
    }
}

/// The cluster configuration Service defaulting depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// The families of the configured service CIDRs, primary (`--service-cluster-ip-range[0]`) first.
    pub families: Vec<IpFamily>,
}

impl ServiceConfig {
    /// The primary family; IPv4 when nothing is configured.
    pub fn primary(&self) -> IpFamily {
        self.families.first().copied().unwrap_or(IpFamily::IPv4)
    }

    fn serves(&self, family: &str) -> bool {
        self.families.iter().any(|f| f.as_str() == family)
    }
}

// ---- Service vocabulary ---------------------------------------------------------------------

const CLUSTER_IP: &str = "ClusterIP";
const NODE_PORT: &str = "NodePort";
const LOAD_BALANCER: &str = "LoadBalancer";
const EXTERNAL_NAME: &str = "ExternalName";
const CLUSTER_IP_NONE: &str = "None";
const IPV4: &str = "IPv4";
const IPV6: &str = "IPv6";
const SINGLE_STACK: &str = "SingleStack";
const PREFER_DUAL_STACK: &str = "PreferDualStack";
const REQUIRE_DUAL_STACK: &str = "RequireDualStack";
const LOCAL: &str = "Local";

fn svc_type(svc: &Value) -> &str {
    str_of(spec(svc), "type")
}

fn cluster_ips(svc: &Value) -> Vec<&str> {
    strings(spec(svc), "clusterIPs")
}

fn ip_families(svc: &Value) -> Vec<&str> {
    strings(spec(svc), "ipFamilies")
}

fn ip_family_policy(svc: &Value) -> Option<&str> {
    ptr_str(spec(svc), "ipFamilyPolicy")
}

/// isHeadlessService: `clusterIPs` is exactly `["None"]`.
fn is_headless(svc: &Value) -> bool {
    cluster_ips(svc) == [CLUSTER_IP_NONE]
}

/// apiservice.ExternallyAccessible
fn externally_accessible(svc: &Value) -> bool {
    let t = svc_type(svc);
    t == LOAD_BALANCER || t == NODE_PORT || (t == CLUSTER_IP && !list(spec(svc), "externalIPs").is_empty())
}

/// apiservice.NeedsHealthCheck (also the registry's needsHCNodePort): a health-check node port.
pub fn needs_health_check(svc: &Value) -> bool {
    svc_type(svc) == LOAD_BALANCER && str_of(spec(svc), "externalTrafficPolicy") == LOCAL
}

/// Whether a Service of its type has cluster IPs (all but ExternalName).
pub fn needs_cluster_ip(svc: &Value) -> bool {
    svc_type(svc) != EXTERNAL_NAME
}

/// Whether a Service of its type has node ports (NodePort and LoadBalancer).
pub fn needs_node_port(svc: &Value) -> bool {
    matches!(svc_type(svc), NODE_PORT | LOAD_BALANCER)
}

/// Whether the allocators must find cluster IPs for a Service: it has them and is not headless.
pub fn allocates_cluster_ips(svc: &Value) -> bool {
    needs_cluster_ip(svc) && str_of(spec(svc), "clusterIP") != CLUSTER_IP_NONE
}

/// Whether ports without a `nodePort` are given one: NodePort Services, and LoadBalancers
/// unless `allocateLoadBalancerNodePorts` is false.
pub fn allocates_node_ports(svc: &Value) -> bool {
    match svc_type(svc) {
        NODE_PORT => true,
        LOAD_BALANCER => spec(svc).get("allocateLoadBalancerNodePorts").and_then(Value::as_bool).unwrap_or(true),
        _ => false,
    }
}

/// The non-zero `nodePort`s of a Service's ports.
fn node_ports(svc: &Value) -> Vec<i64> {
    list(spec(svc), "ports").iter().map(|p| int_of(p, "nodePort")).filter(|&n| n != 0).collect()
}

fn same_load_balancer_class(a: &Value, b: &Value) -> bool {
    ptr_str(spec(a), "loadBalancerClass") == ptr_str(spec(b), "loadBalancerClass")
}

// ---- Go value rendering ---------------------------------------------------------------------
//
// field.Error prints bad values that are not plain strings or numbers with `%#v`, and
// dereferences pointers (a nil pointer prints as the string "null").

fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// A `[]string` field as `%#v` prints it.
fn go_strings(v: Option<&Value>) -> String {
    go_slice("[]string", v)
}

/// A `[]core.IPFamily` field as `%#v` prints it.
fn go_families(v: Option<&Value>) -> String {
    go_slice("[]core.IPFamily", v)
}

fn go_slice(type_name: &str, v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        None => format!("{type_name}(nil)"),
        Some(items) => {
            let inner: Vec<String> = items.iter().map(|s| quote(s.as_str().unwrap_or(""))).collect();
            format!("{type_name}{{{}}}", inner.join(", "))
        }
    }
}

/// A `*string`-like field as field.Error prints it: the quoted value, or `"null"` when unset.
fn go_str_ptr(v: Option<&str>) -> String {
    quote(v.unwrap_or("null"))
}

// ---- IP addresses, the way k8s.io/utils/net parses them --------------------------------------
//
// ParseIPSloppy and ParseCIDRSloppy are Go 1.16's net.ParseIP and net.ParseCIDR: IPv4 octets may
// have leading zeros, IPv6 groups may have more than four hex digits as long as the value fits.
// IPv4-mapped IPv6 addresses are IPv4 addresses for every check Kubernetes makes (`To4`), so
// they are returned as such.

/// netutils.ParseIPSloppy
fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    match s.bytes().find(|&c| c == b'.' || c == b':')? {
        b'.' => parse_ipv4(s).map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        _ => parse_ipv6(s).map(unmap),
    }
}

/// netutils.ParseCIDRSloppy succeeds.
fn is_valid_cidr(s: &str) -> bool {
    let Some((addr, mask)) = s.split_once('/') else { return false };
    let bits = if parse_ipv4(addr).is_some() {
        32
    } else if parse_ipv6(addr).is_some() {
        128
    } else {
        return false;
    };
    matches!(dtoi(mask), Some((n, used)) if used == mask.len() && n <= bits)
}

/// netutils.IsIPv6String: parses, and is not an IPv4 (or IPv4-mapped) address.
fn is_ipv6(s: &str) -> bool {
    matches!(parse_ip_sloppy(s), Some(IpAddr::V6(_)))
}

/// The family of an IP (alloc.go familyOf).
fn family_of(ip: &str) -> &'static str {
    match parse_ip_sloppy(ip) {
        Some(IpAddr::V4(_)) => IPV4,
        Some(IpAddr::V6(_)) => IPV6,
        None => "unknown",
    }
}

fn unmap(octets: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(octets);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

const BIG: u64 = 0xFF_FFFF;

/// Go's dtoi: decimal digits at the start of `s`, and how many were used.
fn dtoi(s: &str) -> Option<(u64, usize)> {
    let mut n = 0u64;
    let mut i = 0;
    for c in s.bytes() {
        if !c.is_ascii_digit() {
            break;
        }
        n = n * 10 + u64::from(c - b'0');
        if n >= BIG {
            return None;
        }
        i += 1;
    }
    (i > 0).then_some((n, i))
}

/// Go's xtoi: hexadecimal digits at the start of `s`, and how many were used.
fn xtoi(s: &str) -> Option<(u64, usize)> {
    let mut n = 0u64;
    let mut i = 0;
    for c in s.bytes() {
        let Some(d) = (c as char).to_digit(16) else { break };
        n = n * 16 + u64::from(d);
        if n >= BIG {
            return None;
        }
        i += 1;
    }
    (i > 0).then_some((n, i))
}

/// Go 1.16 parseIPv4.
fn parse_ipv4(mut s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    for (i, octet) in out.iter_mut().enumerate() {
        if i > 0 {
            s = s.strip_prefix('.')?;
        }
        let (n, used) = dtoi(s)?;
        if n > 0xFF {
            return None;
        }
        *octet = n as u8;
        s = &s[used..];
    }
    s.is_empty().then_some(out)
}

/// Go 1.16 parseIPv6 without zones.
fn parse_ipv6(mut s: &str) -> Option<[u8; 16]> {
    let mut ip = [0u8; 16];
    let mut ellipsis: Option<usize> = None;
    if s.starts_with("::") {
        ellipsis = Some(0);
        s = &s[2..];
        if s.is_empty() {
            return Some(ip);
        }
    }
    let mut i = 0;
    while i < 16 {
        let (n, used) = xtoi(s)?;
        if n > 0xFFFF {
            return None;
        }
        if s.as_bytes().get(used) == Some(&b'.') {
            if ellipsis.is_none() && i != 12 {
                return None;
            }
            if i + 4 > 16 {
                return None;
            }
            let v4 = parse_ipv4(s)?;
            ip[i..i + 4].copy_from_slice(&v4);
            s = "";
            i += 4;
            break;
        }
        ip[i] = (n >> 8) as u8;
        ip[i + 1] = n as u8;
        i += 2;
        s = &s[used..];
        if s.is_empty() {
            break;
        }
        if !s.starts_with(':') || s.len() == 1 {
            return None;
        }
        s = &s[1..];
        if s.starts_with(':') {
            if ellipsis.is_some() {
                return None;
            }
            ellipsis = Some(i);
            s = &s[1..];
            if s.is_empty() {
                break;
            }
        }
    }
    if !s.is_empty() {
        return None;
    }
    if i < 16 {
        let e = ellipsis?;
        let n = 16 - i;
        for j in (e..i).rev() {
            ip[j + n] = ip[j];
        }
        for b in &mut ip[e..e + n] {
            *b = 0;
        }
    } else if ellipsis.is_some() {
        return None;
    }
    Some(ip)
}

#[cfg(test)]
mod tests;

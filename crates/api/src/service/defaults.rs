//! Everything that changes a Service before it is validated: SetDefaults_Service, the registry
//! strategy's PrepareFor* (with dropTypeDependentFields), and the storage layer's
//! normalizeClusterIPs, patchAllocatedValues, initIPFamilyFields and defaultOnRead.
//!
//! Go zero values are written the way the v1 JSON encoding shows them: an emptied string, zero
//! port or nil slice or pointer is a removed key.

use serde_json::{Map, Value, json};

use super::validation::validate_cluster_ips_related_fields;
use super::{
    CLUSTER_IP, CLUSTER_IP_NONE, EXTERNAL_NAME, LOAD_BALANCER, NODE_PORT, PREFER_DUAL_STACK, REQUIRE_DUAL_STACK,
    SINGLE_STACK, ServiceConfig, cluster_ips, externally_accessible, family_of, go_str_ptr, go_strings, ip_families,
    ip_family_policy, is_ipv6, needs_cluster_ip, needs_health_check, needs_node_port, node_ports,
    same_load_balancer_class, svc_type,
};
use crate::field::{ErrorList, FieldError, Path};
use crate::json::{field, int_of, is_nil, is_zero, items_mut, list, object_mut, set_str, set_strings, spec, str_of};

/// core.DefaultClientIPServiceAffinitySeconds
const DEFAULT_CLIENT_IP_AFFINITY_SECONDS: i64 = 10800;

/// The `spec` of a Service, created when absent.
fn spec_mut(svc: &mut Value) -> Option<&mut Map<String, Value>> {
    svc.as_object_mut().map(|m| object_mut(m, "spec"))
}

// ---- SetDefaults_Service --------------------------------------------------------------------

/// SetDefaults_Service: `sessionAffinity: None` (dropping `sessionAffinityConfig`), or for
/// `ClientIP` a 10800 s timeout; `type: ClusterIP`; per port `protocol: TCP` and `targetPort`
/// = `port`; `externalTrafficPolicy: Cluster` for externally-accessible Services (NodePort,
/// LoadBalancer, ClusterIP with `externalIPs`); `internalTrafficPolicy: Cluster` for all but
/// ExternalName; for LoadBalancer `allocateLoadBalancerNodePorts: true` and `ipMode: VIP` on
/// status ingress entries with an `ip`. Idempotent.
pub fn default_service(svc: &mut Value) {
    if let Some(obj) = svc.as_object_mut() {
        default_service_fields(obj);
    }
}

/// [`default_service`] on the object's map (for [`crate::defaults::apply`]).
pub(crate) fn default_service_fields(obj: &mut Map<String, Value>) {
    let spec = object_mut(obj, "spec");
    if is_zero(spec, "sessionAffinity") {
        spec.insert("sessionAffinity".into(), json!("None"));
    }
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.shift_remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": DEFAULT_CLIENT_IP_AFFINITY_SECONDS}}),
                );
            }
        }
        _ => {}
    }
    if is_zero(spec, "type") {
        spec.insert("type".into(), json!(CLUSTER_IP));
    }
    for port in items_mut(spec, "ports") {
        if is_zero(port, "protocol") {
            port.insert("protocol".into(), json!("TCP"));
        }
        if is_zero(port, "targetPort") {
            let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
            port.insert("targetPort".into(), json!(number));
        }
    }
    let service_type = spec.get("type").and_then(Value::as_str).unwrap_or("").to_string();
    let has_external_ips = spec.get("externalIPs").and_then(Value::as_array).is_some_and(|ips| !ips.is_empty());
    let accessible =
        matches!(service_type.as_str(), LOAD_BALANCER | NODE_PORT) || (service_type == CLUSTER_IP && has_external_ips);
    if accessible && is_zero(spec, "externalTrafficPolicy") {
        spec.insert("externalTrafficPolicy".into(), json!("Cluster"));
    }
    if is_nil(spec, "internalTrafficPolicy") && matches!(service_type.as_str(), NODE_PORT | LOAD_BALANCER | CLUSTER_IP)
    {
        spec.insert("internalTrafficPolicy".into(), json!("Cluster"));
    }
    if service_type == LOAD_BALANCER {
        if is_nil(spec, "allocateLoadBalancerNodePorts") {
            spec.insert("allocateLoadBalancerNodePorts".into(), json!(true));
        }
        let ingress = obj
            .get_mut("status")
            .and_then(|s| s.get_mut("loadBalancer"))
            .and_then(|lb| lb.get_mut("ingress"))
            .and_then(Value::as_array_mut);
        for ing in ingress.into_iter().flatten().filter_map(Value::as_object_mut) {
            if ing.get("ip").and_then(Value::as_str).is_some_and(|ip| !ip.is_empty()) && is_nil(ing, "ipMode") {
                ing.insert("ipMode".into(), json!("VIP"));
            }
        }
    }
}

// ---- registry strategy ----------------------------------------------------------------------

/// The empty ServiceStatus as the v1 encoding prints it.
fn empty_status() -> Value {
    json!({"loadBalancer": {}})
}

/// svcStrategy.PrepareForCreate: the status starts empty (no feature-gated fields are dropped:
/// every Service feature gate of kube-apiserver 1.33 that the strategy checks is GA).
pub fn prepare_for_create(svc: &mut Value) {
    if let Some(obj) = svc.as_object_mut() {
        obj.insert("status".into(), empty_status());
    }
}

/// svcStrategy.PrepareForUpdate: the status is carried over from `old`, then fields the new
/// `type` no longer uses are cleared when the client left them as they were (dropTypeDependentFields):
/// `clusterIP`/`clusterIPs`, `ipFamilies` and `ipFamilyPolicy` when changing to ExternalName;
/// node ports when changing to ClusterIP or ExternalName (unless net-new ones were added);
/// `healthCheckNodePort` when it is no longer needed; `allocateLoadBalancerNodePorts` and
/// `loadBalancerClass` when leaving LoadBalancer; `externalTrafficPolicy` when no longer
/// externally accessible; and `status.loadBalancer` for anything but LoadBalancer.
pub fn prepare_for_update(new: &mut Value, old: &Value) {
    if let Some(obj) = new.as_object_mut() {
        obj.insert("status".into(), old.get("status").filter(|s| !s.is_null()).cloned().unwrap_or_else(empty_status));
    }
    drop_type_dependent_fields(new, old);
}

/// serviceStatusStrategy.PrepareForUpdate: a status write cannot change the spec.
pub fn prepare_for_status_update(new: &mut Value, old: &Value) {
    if let Some(obj) = new.as_object_mut() {
        match old.get("spec") {
            Some(s) => obj.insert("spec".into(), s.clone()),
            None => obj.shift_remove("spec"),
        };
    }
}

/// sameClusterIPs of the strategy: singular and plural both unchanged.
fn same_cluster_ips_and_ip(old: &Value, new: &Value) -> bool {
    str_of(spec(old), "clusterIP") == str_of(spec(new), "clusterIP") && cluster_ips(old) == cluster_ips(new)
}

/// reflect.DeepEqual of `ipFamilies`: a nil slice differs from an empty one.
fn same_ip_families_deep(old: &Value, new: &Value) -> bool {
    let get = |svc: &Value| field(spec(svc), "ipFamilies").cloned();
    get(old) == get(new)
}

/// dropTypeDependentFields
fn drop_type_dependent_fields(new: &mut Value, old: &Value) {
    let drop_ips = needs_cluster_ip(old) && !needs_cluster_ip(new);
    let drop_cluster_ips = drop_ips && same_cluster_ips_and_ip(old, new);
    let drop_families = drop_ips && same_ip_families_deep(old, new);
    let drop_policy = drop_ips && ip_family_policy(old).unwrap_or("") == ip_family_policy(new).unwrap_or("");
    // sameNodePorts: the user added no net-new node port.
    let old_node_ports = node_ports(old);
    let drop_node_ports =
        needs_node_port(old) && !needs_node_port(new) && node_ports(new).iter().all(|p| old_node_ports.contains(p));
    let drop_hc = needs_health_check(old)
        && !needs_health_check(new)
        && int_of(spec(old), "healthCheckNodePort") == int_of(spec(new), "healthCheckNodePort");
    let leaving_lb = svc_type(old) == LOAD_BALANCER && svc_type(new) != LOAD_BALANCER;
    let drop_allocate = leaving_lb && {
        let (o, n) = (spec(old).get("allocateLoadBalancerNodePorts"), spec(new).get("allocateLoadBalancerNodePorts"));
        matches!((o.and_then(Value::as_bool), n.and_then(Value::as_bool)), (Some(a), Some(b)) if a == b)
    };
    let drop_class = leaving_lb && same_load_balancer_class(old, new);
    let drop_etp = externally_accessible(old)
        && !externally_accessible(new)
        && str_of(spec(old), "externalTrafficPolicy") == str_of(spec(new), "externalTrafficPolicy");
    let clear_lb_status = svc_type(new) != LOAD_BALANCER;

    if let Some(s) = spec_mut(new) {
        if drop_cluster_ips {
            s.shift_remove("clusterIP");
            s.shift_remove("clusterIPs");
        }
        if drop_families {
            s.shift_remove("ipFamilies");
        }
        if drop_policy {
            s.shift_remove("ipFamilyPolicy");
        }
        if drop_node_ports {
            for port in items_mut(s, "ports") {
                port.shift_remove("nodePort");
            }
        }
        if drop_hc {
            s.shift_remove("healthCheckNodePort");
        }
        if drop_allocate {
            s.shift_remove("allocateLoadBalancerNodePorts");
        }
        if drop_class {
            s.shift_remove("loadBalancerClass");
        }
        if drop_etp {
            s.shift_remove("externalTrafficPolicy");
        }
    }
    if clear_lb_status && let Some(obj) = new.as_object_mut() {
        object_mut(obj, "status").insert("loadBalancer".into(), json!({}));
    }
}

// ---- storage layer --------------------------------------------------------------------------

/// normalizeClusterIPs: keeps `clusterIP` and `clusterIPs` in step for clients that only know
/// the singular field. On create (`old` is `None`) a lone `clusterIP` becomes `clusterIPs:
/// [clusterIP]`. On update, `clusterIPs` dropped by an old client (same `clusterIP`) is restored
/// from `old`; clearing `clusterIP` with `clusterIPs` untouched clears `clusterIPs`; changing
/// `clusterIP` with `clusterIPs` untouched sets `clusterIPs: [clusterIP]` (validation then
/// rejects the change).
pub fn normalize_cluster_ips(new: &mut Value, old: Option<&Value>) {
    let new_ip = str_of(spec(new), "clusterIP").to_string();
    let new_ips: Vec<String> = cluster_ips(new).into_iter().map(str::to_string).collect();
    let Some(old) = old else {
        if !new_ip.is_empty()
            && new_ips.is_empty()
            && let Some(s) = spec_mut(new)
        {
            set_strings(s, "clusterIPs", Some(vec![new_ip.as_str()]));
        }
        return;
    };
    let old_ip = str_of(spec(old), "clusterIP");
    let old_ips = cluster_ips(old);
    let Some(s) = spec_mut(new) else { return };
    let mut ips = new_ips;
    if !old_ips.is_empty() && ips.is_empty() && old_ip == new_ip {
        ips = old_ips.iter().map(|ip| ip.to_string()).collect();
        set_strings(s, "clusterIPs", Some(old_ips.clone()));
    }
    if old_ip != new_ip {
        // storage.go's sameClusterIPs compares the plural field only.
        let same = ips.iter().map(String::as_str).eq(old_ips.iter().copied());
        if !old_ip.is_empty() && new_ip.is_empty() {
            if same {
                set_strings(s, "clusterIPs", None);
            }
        } else if same {
            set_strings(s, "clusterIPs", Some(vec![new_ip.as_str()]));
        }
    }
}

/// patchAllocatedValues: an update that omits values the server allocated (cluster IPs, node
/// ports matched by port name, the health-check node port) keeps them, so resubmitting the
/// original manifest works.
pub(crate) fn patch_allocated_values(new: &mut Value, old: &Value) {
    let both_ip = needs_cluster_ip(old) && needs_cluster_ip(new);
    let both_np = needs_node_port(old) && needs_node_port(new);
    let both_hc = needs_health_check(old) && needs_health_check(new);
    let old_spec = spec(old);
    let new_node_ports = node_ports(new);
    let Some(s) = spec_mut(new) else { return };

    if both_ip {
        if s.get("clusterIP").and_then(Value::as_str).unwrap_or("").is_empty() {
            set_str(s, "clusterIP", str_of(old_spec, "clusterIP"));
        }
        let new_empty = s.get("clusterIPs").and_then(Value::as_array).is_none_or(Vec::is_empty);
        let old_ips = list(old_spec, "clusterIPs");
        if new_empty && !old_ips.is_empty() {
            s.insert("clusterIPs".into(), Value::Array(old_ips.to_vec()));
        }
    }
    if both_np {
        let old_ports = list(old_spec, "ports");
        let used: Vec<i64> =
            old_ports.iter().map(|p| int_of(p, "nodePort")).filter(|n| *n != 0 && new_node_ports.contains(n)).collect();
        // Later ports win, as they do in the Go map built from the old ports.
        let by_name = |name: &str| {
            old_ports.iter().rev().find(|p| str_of(p, "name") == name).map_or(0, |p| int_of(p, "nodePort"))
        };
        for port in items_mut(s, "ports") {
            if port.get("nodePort").and_then(Value::as_i64).unwrap_or(0) == 0 {
                let name = port.get("name").and_then(Value::as_str).unwrap_or("");
                let old_value = by_name(name);
                if old_value != 0 && !used.contains(&old_value) {
                    port.insert("nodePort".into(), json!(old_value));
                }
            }
        }
    }
    if both_hc && s.get("healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0) == 0 {
        let hc = int_of(old_spec, "healthCheckNodePort");
        if hc != 0 {
            s.insert("healthCheckNodePort".into(), json!(hc));
        }
    }
}

/// [`init_ip_family_fields`] for a create: defaults `ipFamilyPolicy` (SingleStack, or
/// RequireDualStack for a selectorless headless Service) and `ipFamilies` (from `clusterIPs`,
/// else the cluster's primary family, plus the secondary one for dual-stack policies on a
/// dual-stack cluster). Returns upstream's errors, e.g. `spec.ipFamilies[0]: Invalid value:
/// "IPv6": not configured on this cluster`; the caller answers 422 Invalid with them.
pub fn default_ip_families(svc: &mut Value, cfg: &ServiceConfig) -> ErrorList {
    init_ip_family_fields(svc, None, cfg)
}

fn policy_path() -> Path {
    Path::new("spec").child("ipFamilyPolicy")
}

/// alloc.go initIPFamilyFields, for a create (`old` is `None`) or an update. Expects
/// [`normalize_cluster_ips`] to have run.
pub fn init_ip_family_fields(svc: &mut Value, old: Option<&Value>, cfg: &ServiceConfig) -> ErrorList {
    if svc_type(svc) == EXTERNAL_NAME || is_matching_prefer_dual_stack(svc, old) {
        return ErrorList::new();
    }
    let headless_selectorless = str_of(spec(svc), "clusterIP") == CLUSTER_IP_NONE
        && spec(svc).get("selector").and_then(Value::as_object).is_none_or(|m| m.is_empty());
    if ip_family_policy(svc).is_none() {
        let policy = match old.and_then(ip_family_policy) {
            Some(p) => p.to_string(),
            None if headless_selectorless => REQUIRE_DUAL_STACK.to_string(),
            None => SINGLE_STACK.to_string(),
        };
        if let Some(s) = spec_mut(svc) {
            s.insert("ipFamilyPolicy".into(), json!(policy));
        }
    }

    let el = validate_cluster_ips_related_fields(svc);
    if !el.is_empty() {
        return el;
    }

    let policy = ip_family_policy(svc).unwrap_or("").to_string();
    let mut ips: Vec<String> = cluster_ips(svc).into_iter().map(str::to_string).collect();
    let mut families: Vec<String> = ip_families(svc).into_iter().map(str::to_string).collect();
    let mut el = ErrorList::new();

    if let Some(old) = old {
        if policy == SINGLE_STACK {
            if cluster_ips(old) == ips && ips.len() > 1 {
                ips.truncate(1);
            }
            if ip_families(old) == families && families.len() > 1 {
                families.truncate(1);
            }
        } else {
            if !ips.is_empty() && ips.len() < cluster_ips(old).len() {
                el.push(FieldError::invalid(
                    policy_path(),
                    go_str_ptr(ip_family_policy(svc)),
                    "must be 'SingleStack' to release the secondary cluster IP",
                ));
            }
            if !families.is_empty() && families.len() < ip_families(old).len() {
                el.push(FieldError::invalid(
                    policy_path(),
                    go_str_ptr(ip_family_policy(svc)),
                    "must be 'SingleStack' to release the secondary IP family",
                ));
            }
        }
    }

    if policy == SINGLE_STACK {
        if ips.len() == 2 {
            el.push(FieldError::invalid(
                policy_path(),
                go_str_ptr(Some(policy.as_str())),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
            ));
        }
        if families.len() == 2 {
            el.push(FieldError::invalid(
                policy_path(),
                go_str_ptr(Some(policy.as_str())),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
            ));
        }
    }

    for (i, ip) in ips.iter().enumerate() {
        if ip == CLUSTER_IP_NONE {
            break;
        }
        let family = family_of(ip);
        if i >= families.len() {
            if cfg.serves(family) {
                families.push(family.to_string());
            } else {
                el.push(FieldError::invalid(
                    Path::new("spec").child("clusterIPs").index(i),
                    go_strings(Some(&json!(ips))),
                    format!("{family} is not configured on this cluster"),
                ));
            }
        }
    }

    let write_back = |svc: &mut Value, ips: &[String], families: &[String]| {
        if let Some(s) = spec_mut(svc) {
            if s.get("clusterIPs").and_then(Value::as_array).map_or(0, Vec::len) != ips.len() {
                set_strings(s, "clusterIPs", Some(ips.iter().map(String::as_str).collect()));
            }
            if !families.is_empty() {
                set_strings(s, "ipFamilies", Some(families.iter().map(String::as_str).collect()));
            }
        }
    };

    if !el.is_empty() {
        return el;
    }

    if headless_selectorless {
        if families.is_empty() {
            families.push(cfg.primary().as_str().to_string());
        }
        if families.len() < 2 && policy != SINGLE_STACK {
            families.push(other_family(&families[0]).to_string());
        }
        write_back(svc, &ips, &families);
        return el;
    }

    if policy == REQUIRE_DUAL_STACK && cfg.families.len() < 2 {
        el.push(FieldError::invalid(
            policy_path(),
            go_str_ptr(Some(policy.as_str())),
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, family) in families.iter().enumerate() {
        if !cfg.serves(family) {
            el.push(FieldError::invalid(
                Path::new("spec").child("ipFamilies").index(i),
                super::quote(family),
                "not configured on this cluster",
            ));
        }
    }
    if !el.is_empty() {
        return el;
    }
    if families.is_empty() {
        families.push(cfg.primary().as_str().to_string());
    }
    if policy != SINGLE_STACK && families.len() == 1 && cfg.families.len() == 2 {
        families.push(other_family(&families[0]).to_string());
    }
    write_back(svc, &ips, &families);
    el
}

fn other_family(family: &str) -> &'static str {
    if family == super::IPV4 { super::IPV6 } else { super::IPV4 }
}

/// isMatchingPreferDualStackClusterIPFields: an update of a PreferDualStack Service that
/// changes none of the IP fields is left alone, even if the cluster's dual-stackness changed.
fn is_matching_prefer_dual_stack(svc: &Value, old: Option<&Value>) -> bool {
    let Some(old) = old else { return false };
    let Some(policy) = ip_family_policy(svc) else { return false };
    svc_type(old) == svc_type(svc)
        && matches!(svc_type(svc), CLUSTER_IP | NODE_PORT | LOAD_BALANCER)
        && policy == PREFER_DUAL_STACK
        && ip_family_policy(old).is_none_or(|p| p == PREFER_DUAL_STACK)
        && cluster_ips(old) == cluster_ips(svc)
        && ip_families(old) == ip_families(svc)
}

/// defaultOnReadService: what kube-apiserver fills in on every read of a stored Service
/// written before these fields existed: `clusterIPs` from `clusterIP`, `ipFamilies` and
/// `ipFamilyPolicy` (from the cluster IPs, or for headless Services from the cluster's primary
/// family), and no `internalTrafficPolicy` on ExternalName Services.
pub fn default_on_read(svc: &mut Value, cfg: &ServiceConfig) {
    normalize_cluster_ips(svc, None);
    if needs_cluster_ip(svc) && ip_families(svc).is_empty() {
        let primary = cfg.primary();
        let (policy, families): (Option<&str>, Vec<&str>) = if str_of(spec(svc), "clusterIP") == CLUSTER_IP_NONE {
            if spec(svc).get("selector").and_then(Value::as_object).is_none_or(|m| m.is_empty()) {
                (Some(REQUIRE_DUAL_STACK), vec![primary.as_str(), primary.other().as_str()])
            } else {
                (Some(SINGLE_STACK), vec![primary.as_str()])
            }
        } else {
            let families: Vec<&str> =
                cluster_ips(svc).iter().map(|ip| if is_ipv6(ip) { super::IPV6 } else { super::IPV4 }).collect();
            let policy = match families.len() {
                1 => Some(SINGLE_STACK),
                2 => Some(REQUIRE_DUAL_STACK),
                _ => None,
            };
            (policy, families)
        };
        if let Some(s) = spec_mut(svc) {
            if let Some(policy) = policy {
                s.insert("ipFamilyPolicy".into(), json!(policy));
            }
            if !families.is_empty() {
                set_strings(s, "ipFamilies", Some(families));
            }
        }
    }
    if svc_type(svc) == EXTERNAL_NAME
        && let Some(s) = spec_mut(svc)
    {
        s.shift_remove("internalTrafficPolicy");
    }
}

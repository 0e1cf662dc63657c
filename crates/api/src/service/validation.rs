//! pkg/apis/core/validation: ValidateService, ValidateServiceCreate, ValidateServiceUpdate,
//! ValidateServiceStatusUpdate and their helpers, in upstream's order and with upstream's field
//! paths and messages (including its quirks, e.g. `spec.LoadBalancerSourceRanges` and the
//! spec-less `allocateLoadBalancerNodePorts` path).

use std::net::IpAddr;

use serde_json::Value;

use super::defaults::{normalize_cluster_ips, patch_allocated_values};
use super::{
    CLUSTER_IP, CLUSTER_IP_NONE, EXTERNAL_NAME, IPV4, IPV6, LOAD_BALANCER, NODE_PORT, PREFER_DUAL_STACK,
    REQUIRE_DUAL_STACK, SINGLE_STACK, cluster_ips, externally_accessible, go_families, go_str_ptr, go_strings,
    ip_families, ip_family_policy, is_headless, is_ipv6, is_valid_cidr, needs_health_check, parse_ip_sloppy, quote,
    same_load_balancer_class, svc_type,
};
use crate::field::{ErrorList, FieldError, Path};
use crate::json::{field, int_of, list, metadata, ptr_str, spec, str_of};
use crate::resources::{ResourceType, by_kind};
use crate::validation::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_label_value, is_valid_port_name,
    is_valid_port_num, validate_object_meta, validate_object_meta_update,
};

/// core.MaxClientIPServiceAffinitySeconds
const MAX_CLIENT_IP_AFFINITY_SECONDS: i64 = 86400;
const SUPPORTED_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const SUPPORTED_SESSION_AFFINITY: &[&str] = &["ClientIP", "None"];
const SUPPORTED_TYPES: &[&str] = &[CLUSTER_IP, EXTERNAL_NAME, LOAD_BALANCER, NODE_PORT];
const SUPPORTED_TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
const SUPPORTED_IP_FAMILIES: &[&str] = &[IPV4, IPV6];
const SUPPORTED_IP_FAMILY_POLICIES: &[&str] = &[PREFER_DUAL_STACK, REQUIRE_DUAL_STACK, SINGLE_STACK];
const SUPPORTED_IP_MODES: &[&str] = &["Proxy", "VIP"];
const PREFER_CLOSE: &str = "PreferClose";
const ANNOTATION_TOPOLOGY_AWARE_HINTS: &str = "service.kubernetes.io/topology-aware-hints";
const ANNOTATION_TOPOLOGY_MODE: &str = "service.kubernetes.io/topology-mode";
const ANNOTATION_LB_SOURCE_RANGES: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";
const INVALID_IP: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const INVALID_CIDR: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
const ONLY_FOR_LOAD_BALANCER: &str = "may only be used when `type` is 'LoadBalancer'";

fn services() -> &'static ResourceType {
    by_kind("", "Service").expect("Service is a served kind")
}

fn spec_path() -> Path {
    Path::new("spec")
}

// ---- entry points ---------------------------------------------------------------------------

/// ValidateServiceCreate (= ValidateService): object metadata (a DNS-1035 name) and the spec.
/// Expects a defaulted Service whose `clusterIPs` were normalized ([`super::normalize_cluster_ips`]).
pub fn validate_create(svc: &Value) -> ErrorList {
    let mut errs = validate_object_meta(services(), metadata(svc), &Path::new("metadata"));
    errs.extend(validate_service_body(svc));
    errs
}

/// ValidateServiceUpdate: metadata update rules, the cluster IP and IP family upgrade /
/// downgrade rules (`clusterIPs` and the primary family are immutable, releasing the secondary
/// needs `ipFamilyPolicy: SingleStack`), `loadBalancerClass` immutability, `healthCheckNodePort`
/// immutability, then everything ValidateService checks (metadata included, as upstream does).
pub fn validate_update(new: &Value, old: &Value) -> ErrorList {
    let mut errs = validate_object_meta_update(services(), metadata(new), metadata(old), &Path::new("metadata"));
    errs.extend(update_rules(new, old));
    errs.extend(validate_create(new));
    errs
}

/// ValidateServiceStatusUpdate: metadata update rules and `status.loadBalancer`
/// (ValidateLoadBalancerStatus against the Service's own spec).
pub fn validate_status_update(new: &Value, old: &Value) -> ErrorList {
    let mut errs = validate_object_meta_update(services(), metadata(new), metadata(old), &Path::new("metadata"));
    let lb = new.get("status").and_then(|s| s.get("loadBalancer")).unwrap_or(&Value::Null);
    errs.extend(validate_load_balancer_status(lb, &Path::new("status").child("loadBalancer"), svc_type(new)));
    errs
}

/// The Service part of [`crate::validation::validate`], which has validated the metadata
/// already (ValidateObjectMeta on create, ValidateObjectMetaUpdate on update): everything else
/// [`validate_create`] / [`validate_update`] check. The object is checked as the registry sees
/// it, i.e. after [`super::patch_allocated_values`] (update) and [`super::normalize_cluster_ips`],
/// which are idempotent, so a `clusterIP` set without `clusterIPs` is not an error here.
pub(crate) fn validate_kind(svc: &Value, old: Option<&Value>) -> ErrorList {
    let mut svc = svc.clone();
    if let Some(old) = old {
        patch_allocated_values(&mut svc, old);
    }
    normalize_cluster_ips(&mut svc, old);
    match old {
        None => validate_service_body(&svc),
        Some(old) => {
            let mut errs = update_rules(&svc, old);
            errs.extend(validate_object_meta(services(), metadata(&svc), &Path::new("metadata")));
            errs.extend(validate_service_body(&svc));
            errs
        }
    }
}

/// The update-only part of ValidateServiceUpdate.
fn update_rules(new: &Value, old: &Value) -> ErrorList {
    let mut errs = upgrade_downgrade_cluster_ips(old, new);
    errs.extend(upgrade_downgrade_ip_families(old, new));
    errs.extend(load_balancer_class(Some(old), new));
    // validateServiceExternalTrafficFieldsUpdate
    if needs_health_check(old)
        && needs_health_check(new)
        && int_of(spec(old), "healthCheckNodePort") != int_of(spec(new), "healthCheckNodePort")
    {
        errs.push(FieldError::forbidden(spec_path().child("healthCheckNodePort"), "field is immutable"));
    }
    errs
}

// ---- ValidateService ------------------------------------------------------------------------

/// ValidateService after ValidateObjectMeta.
fn validate_service_body(svc: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let spec = spec(svc);
    let sp = spec_path();
    let annotations = metadata(svc).get("annotations").and_then(Value::as_object);
    let annotation = |key: &str| annotations.and_then(|a| a.get(key)).map(|v| v.as_str().unwrap_or(""));

    if let (Some(mode), Some(hints)) =
        (annotation(ANNOTATION_TOPOLOGY_MODE), annotation(ANNOTATION_TOPOLOGY_AWARE_HINTS))
        && mode != hints
    {
        errs.push(FieldError::invalid_str(
            Path::new("metadata").child("annotations").key(ANNOTATION_TOPOLOGY_MODE),
            mode,
            format!("must match annotations[{ANNOTATION_TOPOLOGY_AWARE_HINTS}] when both are specified"),
        ));
    }

    let service_type = svc_type(svc);
    let headless = is_headless(svc);
    let ports = list(spec, "ports");
    if ports.is_empty() && !headless && service_type != EXTERNAL_NAME {
        errs.push(FieldError::required(sp.child("ports"), ""));
    }

    match service_type {
        LOAD_BALANCER | NODE_PORT if headless => errs.push(FieldError::invalid_str(
            sp.child("clusterIPs").index(0),
            CLUSTER_IP_NONE,
            format!("may not be set to 'None' for {service_type} services"),
        )),
        EXTERNAL_NAME => {
            if !cluster_ips(svc).is_empty() {
                errs.push(FieldError::forbidden(sp.child("clusterIPs"), "may not be set for ExternalName services"));
            }
            if !ip_families(svc).is_empty() {
                errs.push(FieldError::forbidden(sp.child("ipFamilies"), "may not be set for ExternalName services"));
            }
            if ip_family_policy(svc).is_some() {
                errs.push(FieldError::forbidden(
                    sp.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            // The value (a CNAME) may have a trailing dot to denote it as fully qualified.
            let external_name = str_of(spec, "externalName");
            let cname = external_name.strip_suffix('.').unwrap_or(external_name);
            if cname.is_empty() {
                errs.push(FieldError::required(sp.child("externalName"), ""));
            } else {
                for msg in is_dns1123_subdomain(cname) {
                    errs.push(FieldError::invalid_str(sp.child("externalName"), cname, msg));
                }
            }
        }
        _ => {}
    }

    let mut names: Vec<&str> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        errs.extend(service_port(port, ports.len() > 1, &mut names, &sp.child("ports").index(i)));
    }

    if let Some(selector) = field(spec, "selector").and_then(Value::as_object) {
        errs.extend(validate_labels(selector, &sp.child("selector")));
    }

    let affinity = str_of(spec, "sessionAffinity");
    if affinity.is_empty() {
        errs.push(FieldError::required(sp.child("sessionAffinity"), ""));
    } else if !SUPPORTED_SESSION_AFFINITY.contains(&affinity) {
        errs.push(FieldError::not_supported(sp.child("sessionAffinity"), affinity, SUPPORTED_SESSION_AFFINITY));
    }
    let config_path = sp.child("sessionAffinityConfig");
    match affinity {
        "ClientIP" => errs.extend(client_ip_affinity_config(field(spec, "sessionAffinityConfig"), &config_path)),
        "None" if field(spec, "sessionAffinityConfig").is_some() => {
            errs.push(FieldError::forbidden(config_path, "must not be set when session affinity is None"));
        }
        _ => {}
    }

    errs.extend(validate_cluster_ips_related_fields(svc));

    for (i, ip) in list(spec, "externalIPs").iter().enumerate() {
        let ip = ip.as_str().unwrap_or("");
        let path = sp.child("externalIPs").index(i);
        match parse_ip_sloppy(ip) {
            None => errs.push(FieldError::invalid_str(path, ip, INVALID_IP)),
            Some(addr) => errs.extend(non_special_ip(ip, addr, &path)),
        }
    }

    if service_type.is_empty() {
        errs.push(FieldError::required(sp.child("type"), ""));
    } else if !SUPPORTED_TYPES.contains(&service_type) {
        errs.push(FieldError::not_supported(sp.child("type"), service_type, SUPPORTED_TYPES));
    }

    if service_type == CLUSTER_IP {
        for (i, port) in ports.iter().enumerate() {
            if int_of(port, "nodePort") != 0 {
                errs.push(FieldError::forbidden(
                    sp.child("ports").index(i).child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }

    // Duplicate node ports, considering (protocol, nodePort) pairs.
    let mut seen: Vec<(&str, i64)> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let node_port = int_of(port, "nodePort");
        if node_port == 0 {
            continue;
        }
        let key = (str_of(port, "protocol"), node_port);
        if seen.contains(&key) {
            errs.push(FieldError::duplicate(sp.child("ports").index(i).child("nodePort"), node_port));
        }
        seen.push(key);
    }

    // Duplicate ports, considering (protocol, port) pairs.
    let mut seen: Vec<(&str, i64)> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let key = (str_of(port, "protocol"), int_of(port, "port"));
        if seen.contains(&key) {
            errs.push(FieldError::duplicate(sp.child("ports").index(i), go_service_port_key(key.0, key.1)));
        }
        seen.push(key);
    }

    errs.extend(source_ranges(spec, service_type, annotation(ANNOTATION_LB_SOURCE_RANGES)));

    let allocate_set = field(spec, "allocateLoadBalancerNodePorts").is_some();
    if allocate_set && service_type != LOAD_BALANCER {
        errs.push(FieldError::forbidden(sp.child("allocateLoadBalancerNodePorts"), ONLY_FOR_LOAD_BALANCER));
    }
    if service_type == LOAD_BALANCER && !allocate_set {
        // Upstream reports this one without the `spec.` prefix.
        errs.push(FieldError::required(Path::new("allocateLoadBalancerNodePorts"), ""));
    }

    errs.extend(load_balancer_class(None, svc));
    errs.extend(external_traffic_policy(svc));
    errs.extend(internal_traffic_policy(svc));

    if let Some(distribution) = ptr_str(spec, "trafficDistribution")
        && distribution != PREFER_CLOSE
    {
        errs.push(FieldError::not_supported(sp.child("trafficDistribution"), distribution, &[PREFER_CLOSE]));
    }
    errs
}

/// A (protocol, port) key as `%#v` prints the core.ServicePort upstream reports duplicates with.
fn go_service_port_key(protocol: &str, port: i64) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, \
         TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        quote(protocol)
    )
}

/// ValidateLabels (apimachinery): keys are qualified names, values label values; errors are
/// reported at the map's path.
fn validate_labels(labels: &serde_json::Map<String, Value>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut entries: Vec<(&String, &Value)> = labels.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in entries {
        errs.extend(is_qualified_name(k).into_iter().map(|msg| FieldError::invalid_str(path, k, msg)));
        let v = v.as_str().unwrap_or("");
        errs.extend(is_valid_label_value(v).into_iter().map(|msg| FieldError::invalid_str(path, v, msg)));
    }
    errs
}

/// validateServicePort: names are required when there is more than one port, DNS-1123 labels
/// and unique; port numbers 1-65535; protocols TCP, UDP or SCTP; the target port a number or
/// an IANA service name; the app protocol a qualified name.
fn service_port<'a>(port: &'a Value, require_name: bool, names: &mut Vec<&'a str>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let name = str_of(port, "name");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else if !name.is_empty() {
        errs.extend(is_dns1123_label(name).into_iter().map(|m| FieldError::invalid_str(path.child("name"), name, m)));
        if names.contains(&name) {
            errs.push(FieldError::duplicate(path.child("name"), quote(name)));
        } else {
            names.push(name);
        }
    }

    let number = int_of(port, "port");
    errs.extend(is_valid_port_num(number).into_iter().map(|m| FieldError::invalid(path.child("port"), number, m)));

    let protocol = str_of(port, "protocol");
    if protocol.is_empty() {
        errs.push(FieldError::required(path.child("protocol"), ""));
    } else if !SUPPORTED_PROTOCOLS.contains(&protocol) {
        errs.push(FieldError::not_supported(path.child("protocol"), protocol, SUPPORTED_PROTOCOLS));
    }

    // ValidatePortNumOrName; an absent targetPort is the integer 0.
    let target_path = path.child("targetPort");
    match port.get("targetPort") {
        Some(Value::String(s)) => {
            errs.extend(is_valid_port_name(s).into_iter().map(|m| FieldError::invalid_str(&target_path, s, m)));
        }
        other => {
            let n = other.and_then(Value::as_i64).unwrap_or(0);
            errs.extend(is_valid_port_num(n).into_iter().map(|m| FieldError::invalid(&target_path, n, m)));
        }
    }

    if let Some(app) = ptr_str(port, "appProtocol") {
        errs.extend(
            is_qualified_name(app).into_iter().map(|m| FieldError::invalid_str(path.child("appProtocol"), app, m)),
        );
    }
    errs
}

/// validateClientIPAffinityConfig
fn client_ip_affinity_config(config: Option<&Value>, path: &Path) -> ErrorList {
    let detail = "when session affinity type is ClientIP";
    let Some(config) = config else {
        return vec![FieldError::required(path, detail)];
    };
    let Some(client_ip) = field(config, "clientIP") else {
        return vec![FieldError::required(path.child("clientIP"), detail)];
    };
    let timeout_path = path.child("clientIP").child("timeoutSeconds");
    let Some(timeout) = field(client_ip, "timeoutSeconds") else {
        return vec![FieldError::required(timeout_path, detail)];
    };
    let timeout = timeout.as_i64().unwrap_or(0);
    if timeout <= 0 || timeout > MAX_CLIENT_IP_AFFINITY_SECONDS {
        return vec![FieldError::invalid(
            timeout_path,
            timeout,
            format!("must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}"),
        )];
    }
    ErrorList::new()
}

/// ValidateNonSpecialIP for an address that parsed.
pub(crate) fn non_special_ip(ip: &str, addr: IpAddr, path: &Path) -> ErrorList {
    let (unspecified, loopback, link_local, link_local_multicast) = match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            (a.is_unspecified(), o[0] == 127, o[0] == 169 && o[1] == 254, o[0] == 224 && o[1] == 0 && o[2] == 0)
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            (
                a.is_unspecified(),
                a.is_loopback(),
                o[0] == 0xfe && o[1] & 0xc0 == 0x80,
                o[0] == 0xff && o[1] & 0x0f == 0x02,
            )
        }
    };
    let mut errs = ErrorList::new();
    if unspecified {
        errs.push(FieldError::invalid_str(path, ip, format!("may not be unspecified ({ip})")));
    }
    if loopback {
        errs.push(FieldError::invalid_str(path, ip, "may not be in the loopback range (127.0.0.0/8, ::1/128)"));
    }
    if link_local {
        errs.push(FieldError::invalid_str(path, ip, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"));
    }
    if link_local_multicast {
        errs.push(FieldError::invalid_str(
            path,
            ip,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    errs
}

/// `loadBalancerSourceRanges` (reported as `spec.LoadBalancerSourceRanges`, as upstream does),
/// or else the legacy annotation: LoadBalancer only, and valid CIDRs (space padding allowed).
fn source_ranges(spec: &Value, service_type: &str, annotation: Option<&str>) -> ErrorList {
    let mut errs = ErrorList::new();
    let ranges = list(spec, "loadBalancerSourceRanges");
    if !ranges.is_empty() {
        let path = spec_path().child("LoadBalancerSourceRanges");
        if service_type != LOAD_BALANCER {
            errs.push(FieldError::forbidden(&path, ONLY_FOR_LOAD_BALANCER));
        }
        for (i, value) in ranges.iter().enumerate() {
            let value = value.as_str().unwrap_or("").trim();
            if !is_valid_cidr(value) {
                errs.push(FieldError::invalid_str(path.index(i), value, INVALID_CIDR));
            }
        }
    } else if let Some(value) = annotation {
        let path = Path::new("metadata").child("annotations").key(ANNOTATION_LB_SOURCE_RANGES);
        if service_type != LOAD_BALANCER {
            errs.push(FieldError::forbidden(&path, ONLY_FOR_LOAD_BALANCER));
        }
        let value = value.trim();
        if !value.is_empty() {
            for cidr in value.split(',').map(str::trim) {
                if !is_valid_cidr(cidr) {
                    errs.push(FieldError::invalid_str(&path, cidr, INVALID_CIDR));
                }
            }
        }
    }
    errs
}

/// validateLoadBalancerClassField: LoadBalancer only, a qualified name, and not changed while
/// the Service stays a LoadBalancer.
fn load_balancer_class(old: Option<&Value>, svc: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let path = spec_path().child("loadBalancerClass");
    let class = ptr_str(spec(svc), "loadBalancerClass");
    if let Some(old) = old
        && svc_type(old) == LOAD_BALANCER
        && svc_type(svc) == LOAD_BALANCER
        && !same_load_balancer_class(old, svc)
    {
        errs.push(FieldError::invalid(&path, go_str_ptr(class), "may not change once set"));
    }
    match class {
        Some(class) if svc_type(svc) == LOAD_BALANCER => {
            errs.extend(is_qualified_name(class).into_iter().map(|m| FieldError::invalid_str(&path, class, m)));
        }
        Some(_) => errs.push(FieldError::forbidden(&path, ONLY_FOR_LOAD_BALANCER)),
        None => {}
    }
    errs
}

/// validateServiceExternalTrafficPolicy: `externalTrafficPolicy` only and always for
/// externally-accessible Services; `healthCheckNodePort` only and always for LoadBalancers with
/// `externalTrafficPolicy: Local`.
fn external_traffic_policy(svc: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let spec = spec(svc);
    let path = spec_path().child("externalTrafficPolicy");
    let policy = str_of(spec, "externalTrafficPolicy");
    if !externally_accessible(svc) {
        if !policy.is_empty() {
            errs.push(FieldError::invalid_str(&path, policy, "may only be set for externally-accessible services"));
        }
    } else if policy.is_empty() {
        errs.push(FieldError::required(&path, ""));
    } else if !SUPPORTED_TRAFFIC_POLICIES.contains(&policy) {
        errs.push(FieldError::not_supported(&path, policy, SUPPORTED_TRAFFIC_POLICIES));
    }

    let hc_path = spec_path().child("healthCheckNodePort");
    let hc = int_of(spec, "healthCheckNodePort");
    if !needs_health_check(svc) {
        if hc != 0 {
            errs.push(FieldError::invalid(
                &hc_path,
                hc,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if hc == 0 {
        errs.push(FieldError::required(&hc_path, ""));
    } else {
        errs.extend(is_valid_port_num(hc).into_iter().map(|m| FieldError::invalid(&hc_path, hc, m)));
    }
    errs
}

/// validateServiceInternalTrafficFieldsValue: required for ClusterIP, NodePort and
/// LoadBalancer (tolerated, not required, on ExternalName), and Cluster or Local.
fn internal_traffic_policy(svc: &Value) -> ErrorList {
    let path = spec_path().child("internalTrafficPolicy");
    match ptr_str(spec(svc), "internalTrafficPolicy") {
        None if matches!(svc_type(svc), NODE_PORT | LOAD_BALANCER | CLUSTER_IP) => {
            vec![FieldError::required(path, "")]
        }
        Some(policy) if !SUPPORTED_TRAFFIC_POLICIES.contains(&policy) => {
            vec![FieldError::not_supported(path, policy, SUPPORTED_TRAFFIC_POLICIES)]
        }
        _ => ErrorList::new(),
    }
}

// ---- cluster IPs and IP families ------------------------------------------------------------

/// ValidateServiceClusterIPsRelatedFields: `clusterIPs[0]` must equal `clusterIP` (and be
/// empty without it); `ipFamilies` IPv4/IPv6 without duplicates; a supported `ipFamilyPolicy`;
/// valid IPs, `None` only alone; at most two, of different families; and each IP of the family
/// `ipFamilies` names for it. Nothing for ExternalName Services.
pub fn validate_cluster_ips_related_fields(svc: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    if svc_type(svc) == EXTERNAL_NAME {
        return errs;
    }
    let spec = spec(svc);
    let ips_path = spec_path().child("clusterIPs");
    let families_path = spec_path().child("ipFamilies");
    let cluster_ip = str_of(spec, "clusterIP");
    let ips = cluster_ips(svc);
    let rendered_ips = || go_strings(spec.get("clusterIPs"));

    if !cluster_ip.is_empty() {
        if ips.is_empty() {
            errs.push(FieldError::required(&ips_path, ""));
        } else if ips[0] != cluster_ip {
            errs.push(FieldError::invalid(&ips_path, rendered_ips(), "first value must match `clusterIP`"));
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid(&ips_path, rendered_ips(), "must be empty when `clusterIP` is not specified"));
    }

    let families = ip_families(svc);
    for (i, family) in families.iter().enumerate() {
        if !SUPPORTED_IP_FAMILIES.contains(family) {
            errs.push(FieldError::not_supported(families_path.index(i), family, SUPPORTED_IP_FAMILIES));
        }
        if families[..i].contains(family) {
            errs.push(FieldError::duplicate(families_path.index(i), quote(family)));
        }
    }

    if let Some(policy) = ip_family_policy(svc)
        && !SUPPORTED_IP_FAMILY_POLICIES.contains(&policy)
    {
        errs.push(FieldError::not_supported(spec_path().child("ipFamilyPolicy"), policy, SUPPORTED_IP_FAMILY_POLICIES));
    }

    let mut has_invalid_ips = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && *ip == CLUSTER_IP_NONE {
            if ips.len() > 1 {
                has_invalid_ips = true;
                errs.push(FieldError::invalid(&ips_path, rendered_ips(), "'None' must be the first and only value"));
            }
            continue;
        }
        if parse_ip_sloppy(ip).is_none() {
            has_invalid_ips = true;
            errs.push(FieldError::invalid_str(ips_path.index(i), ip, INVALID_IP));
        }
    }
    if ips.len() > 2 {
        errs.push(FieldError::invalid(&ips_path, rendered_ips(), "may only hold up to 2 values"));
    }
    if has_invalid_ips {
        return errs;
    }

    if ips.len() > 1 {
        let v6 = ips.iter().filter(|ip| is_ipv6(ip)).count();
        let dual_stack = v6 > 0 && v6 < ips.len();
        if !dual_stack {
            errs.push(FieldError::invalid(
                &ips_path,
                rendered_ips(),
                "may specify no more than one IP for each IP family",
            ));
        }
    }

    if !is_headless(svc) && !ips.is_empty() && !families.is_empty() {
        for (i, ip) in ips.iter().enumerate().take(families.len()) {
            if families[i] == IPV4 && is_ipv6(ip) {
                errs.push(FieldError::invalid_str(
                    ips_path.index(i),
                    ip,
                    format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if families[i] == IPV6 && !is_ipv6(ip) {
                errs.push(FieldError::invalid_str(
                    ips_path.index(i),
                    ip,
                    format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    errs
}

/// validateUpgradeDowngradeClusterIPs: the primary cluster IP never changes once set; the
/// secondary may be added, or released together with `ipFamilyPolicy: SingleStack`.
fn upgrade_downgrade_cluster_ips(old: &Value, new: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    if svc_type(new) == EXTERNAL_NAME || svc_type(old) == EXTERNAL_NAME || (is_headless(old) && is_headless(new)) {
        return errs;
    }
    let path = spec_path().child("clusterIPs");
    let rendered = || go_strings(spec(new).get("clusterIPs"));
    let (old_ips, new_ips) = (cluster_ips(old), cluster_ips(new));
    if old_ips.len() == new_ips.len() {
        for (i, ip) in old_ips.iter().enumerate() {
            if *ip != new_ips[i] {
                errs.push(FieldError::invalid(path.index(i), rendered(), "may not change once set"));
            }
        }
    } else if old_ips.len() > new_ips.len() {
        if new_ips.is_empty() {
            errs.push(FieldError::invalid(path.index(0), rendered(), "primary clusterIP can not be unset"));
        }
        if !old_ips.is_empty() && !new_ips.is_empty() && new_ips[0] != old_ips[0] {
            errs.push(FieldError::invalid(path.index(0), rendered(), "may not change once set"));
        }
        if new_ips.len() == 1 && ip_family_policy(new) != Some(SINGLE_STACK) {
            errs.push(FieldError::invalid(
                spec_path().child("ipFamilyPolicy"),
                go_str_ptr(ip_family_policy(new)),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
        errs.push(FieldError::invalid(path.index(0), rendered(), "may not change once set"));
    }
    errs
}

/// validateUpgradeDowngradeIPFamilies: the same for `ipFamilies`, except around headless
/// Services (which may change families). Upstream's reported values are kept as they are,
/// including `clusterIPs` shown for a changed primary family.
fn upgrade_downgrade_ip_families(old: &Value, new: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    if svc_type(new) == EXTERNAL_NAME || svc_type(old) == EXTERNAL_NAME || is_headless(old) || is_headless(new) {
        return errs;
    }
    let path = spec_path().child("ipFamilies").index(0);
    let families = || go_families(spec(new).get("ipFamilies"));
    let ips = || go_strings(spec(new).get("clusterIPs"));
    let (old_families, new_families) = (ip_families(old), ip_families(new));
    if old_families.len() == new_families.len() {
        for (i, family) in old_families.iter().enumerate() {
            if *family != new_families[i] {
                errs.push(FieldError::invalid(&path, families(), "may not change once set"));
            }
        }
    } else if old_families.len() > new_families.len() {
        if cluster_ips(new).is_empty() {
            errs.push(FieldError::invalid(&path, families(), "primary ipFamily can not be unset"));
        }
        if !new_families.is_empty() && new_families[0] != old_families[0] {
            errs.push(FieldError::invalid(&path, ips(), "may not change once set"));
        }
        if new_families.len() == 1 && ip_family_policy(new) != Some(SINGLE_STACK) {
            errs.push(FieldError::invalid(
                spec_path().child("ipFamilyPolicy"),
                go_str_ptr(ip_family_policy(new)),
                "must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if !old_families.is_empty() && new_families[0] != old_families[0] {
        errs.push(FieldError::invalid(&path, ips(), "may not change once set"));
    }
    errs
}

// ---- status ---------------------------------------------------------------------------------

/// ValidateLoadBalancerStatus (AllowServiceLBStatusOnNonLB off, LoadBalancerIPMode on): ingress
/// entries only for LoadBalancers; an `ip` must be valid and come with an `ipMode` (VIP or
/// Proxy); a `hostname` must be a DNS-1123 subdomain and not an IP.
fn validate_load_balancer_status(lb: &Value, path: &Path, service_type: &str) -> ErrorList {
    let mut errs = ErrorList::new();
    let ingress_path = path.child("ingress");
    let ingress = list(lb, "ingress");
    if service_type != LOAD_BALANCER && !ingress.is_empty() {
        errs.push(FieldError::forbidden(ingress_path, "may only be used when `spec.type` is 'LoadBalancer'"));
        return errs;
    }
    for (i, ing) in ingress.iter().enumerate() {
        let p = ingress_path.index(i);
        let ip = str_of(ing, "ip");
        if !ip.is_empty() && parse_ip_sloppy(ip).is_none() {
            errs.push(FieldError::invalid_str(p.child("ip"), ip, INVALID_IP));
        }
        match ptr_str(ing, "ipMode") {
            None if !ip.is_empty() => {
                errs.push(FieldError::required(p.child("ipMode"), "must be specified when `ip` is set"));
            }
            Some(_) if ip.is_empty() => {
                errs.push(FieldError::forbidden(p.child("ipMode"), "may not be specified when `ip` is not set"));
            }
            Some(mode) if !SUPPORTED_IP_MODES.contains(&mode) => {
                errs.push(FieldError::not_supported(p.child("ipMode"), mode, SUPPORTED_IP_MODES));
            }
            _ => {}
        }
        let hostname = str_of(ing, "hostname");
        if !hostname.is_empty() {
            errs.extend(
                is_dns1123_subdomain(hostname)
                    .into_iter()
                    .map(|m| FieldError::invalid_str(p.child("hostname"), hostname, m)),
            );
            if parse_ip_sloppy(hostname).is_some() {
                errs.push(FieldError::invalid_str(
                    p.child("hostname"),
                    hostname,
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
    errs
}

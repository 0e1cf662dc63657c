//! Pure core of the Endpoints controller (upstream `pkg/controller/endpoint`): from a Service
//! and the pods its selector matches, compute the `Endpoints` object the API should hold.
//!
//! Mirrors `syncService`: pods are filtered as `ShouldPodBeInEndpoints` does (terminal pods,
//! pods without an IP and — unless `publishNotReadyAddresses` — terminating pods are left
//! out), each pod contributes one address per Service port whose target port it resolves
//! (named target ports are looked up per pod), ready pods land in `addresses` and the rest in
//! `notReadyAddresses`, and the subsets are repacked (`RepackSubsets`) and truncated to
//! [`MAX_CAPACITY`] addresses (ready ones first) with the over-capacity annotation.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service, ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

#[cfg(test)]
mod tests;

/// Most addresses (ready plus not ready) one Endpoints object carries.
pub const MAX_CAPACITY: usize = 1000;
/// Annotation set to [`TRUNCATED`] when addresses were dropped to fit [`MAX_CAPACITY`].
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
/// Value of [`OVER_CAPACITY_ANNOTATION`].
pub const TRUNCATED: &str = "truncated";
/// Annotation carrying the time of the last pod or service change that triggered a sync.
pub use component::labels::LAST_CHANGE_TRIGGER_TIME as LAST_CHANGE_TRIGGER_TIME_ANNOTATION;
/// Label put on the Endpoints of headless Services (those without a cluster IP).
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

const CLUSTER_IP_NONE: &str = "None";
const DEFAULT_PROTOCOL: &str = "TCP";

/// The Endpoints object the controller wants for `service`, given the pods its selector
/// matches (the caller lists them; they are not re-filtered by labels here).
///
/// Returns `None` for Services this controller leaves alone: `ExternalName` Services and
/// Services without a selector (their Endpoints are written by users, and mirrored into
/// EndpointSlices by [`crate::mirroring`]).
///
/// `trigger_time` is the RFC 3339 time of the change that caused this sync; when given it is
/// written to [`LAST_CHANGE_TRIGGER_TIME_ANNOTATION`].
pub fn desired_endpoints(service: &Service, pods: &[Pod], trigger_time: Option<&str>) -> Option<Endpoints> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    if spec.selector.as_ref().is_none_or(BTreeMap::is_empty) {
        return None;
    }
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let service_ports = spec.ports.as_deref().unwrap_or_default();
    let headless = !is_service_ip_set(service);

    let mut subsets = Vec::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let Some(mut address) = pod_to_endpoint_address(service, pod) else {
            continue;
        };
        if should_set_hostname(pod, service) {
            address.hostname = pod.spec.as_ref().and_then(|s| s.hostname.clone());
        }
        let ready = publish_not_ready || is_pod_ready(pod);
        if service_ports.is_empty() {
            // Headless services may go without ports.
            if spec.cluster_ip.as_deref() == Some(CLUSTER_IP_NONE) {
                subsets.push(single_subset(address, None, ready));
            }
            continue;
        }
        for service_port in service_ports {
            let Some(port) = find_port(pod, service_port) else {
                continue;
            };
            let endpoint_port = EndpointPort {
                name: service_port.name.clone(),
                port,
                protocol: Some(service_port.protocol.clone().unwrap_or_else(|| DEFAULT_PROTOCOL.to_owned())),
                app_protocol: service_port.app_protocol.clone(),
            };
            subsets.push(single_subset(address.clone(), Some(endpoint_port), ready));
        }
    }
    let mut subsets = repack_subsets(subsets);

    let mut annotations = BTreeMap::new();
    if let Some(time) = trigger_time {
        annotations.insert(LAST_CHANGE_TRIGGER_TIME_ANNOTATION.to_owned(), time.to_owned());
    }
    if truncate_subsets(&mut subsets) {
        annotations.insert(OVER_CAPACITY_ANNOTATION.to_owned(), TRUNCATED.to_owned());
    }

    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    if headless {
        labels.insert(HEADLESS_LABEL.to_owned(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }

    Some(Endpoints {
        metadata: ObjectMeta {
            name: service.metadata.name.clone(),
            namespace: service.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..ObjectMeta::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    })
}

/// Whether `current` must be rewritten to match `desired` (as computed by
/// [`desired_endpoints`]).
///
/// As upstream, subsets are compared ignoring the pods' resource versions in target
/// references, labels are compared without the headless label, and a differing
/// last-change-trigger-time alone never causes an update. The over-capacity annotation must
/// agree (upstream checks that it is set exactly when the object is over capacity).
pub fn needs_update(current: &Endpoints, desired: &Endpoints) -> bool {
    let labels = |e: &Endpoints| {
        let mut labels = e.metadata.labels.clone().unwrap_or_default();
        labels.remove(HEADLESS_LABEL);
        labels
    };
    let over_capacity =
        |e: &Endpoints| e.metadata.annotations.as_ref().and_then(|a| a.get(OVER_CAPACITY_ANNOTATION)).cloned();
    normalized_subsets(current) != normalized_subsets(desired)
        || labels(current) != labels(desired)
        || over_capacity(current) != over_capacity(desired)
}

/// Subsets with empty lists as `None` and target-reference resource versions cleared.
fn normalized_subsets(endpoints: &Endpoints) -> Vec<EndpointSubset> {
    let addresses = |list: &Option<Vec<EndpointAddress>>| {
        let list: Vec<EndpointAddress> = list
            .iter()
            .flatten()
            .map(|a| {
                let mut a = a.clone();
                if let Some(target) = a.target_ref.as_mut() {
                    target.resource_version = None;
                }
                a
            })
            .collect();
        (!list.is_empty()).then_some(list)
    };
    endpoints
        .subsets
        .iter()
        .flatten()
        .map(|s| EndpointSubset {
            addresses: addresses(&s.addresses),
            not_ready_addresses: addresses(&s.not_ready_addresses),
            ports: s.ports.clone().filter(|p| !p.is_empty()),
        })
        .collect()
}

fn single_subset(address: EndpointAddress, port: Option<EndpointPort>, ready: bool) -> EndpointSubset {
    let (addresses, not_ready_addresses) =
        if ready { (Some(vec![address]), None) } else { (None, Some(vec![address])) };
    EndpointSubset { addresses, not_ready_addresses, ports: port.map(|p| vec![p]) }
}

/// A service has a cluster IP unless it is empty or `None` (headless).
fn is_service_ip_set(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != CLUSTER_IP_NONE)
}

fn is_ipv6(ip: &str) -> bool {
    ip.parse::<Ipv6Addr>().is_ok_and(|ip| ip.to_ipv4_mapped().is_none())
}

/// `ShouldPodBeInEndpoints`: terminal pods and pods without an IP are never included;
/// terminating pods only when `include_terminating` (the Service's publishNotReadyAddresses).
pub(crate) fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    if matches!(status.and_then(|s| s.phase.as_deref()), Some("Failed" | "Succeeded")) {
        return false;
    }
    let has_ip = status.is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty()) || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    if !has_ip {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

use component::pod::is_ready as is_pod_ready;

/// `ShouldSetHostname`: the pod names itself into the Service's subdomain.
fn should_set_hostname(pod: &Pod, service: &Service) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return false };
    spec.hostname.as_deref().is_some_and(|h| !h.is_empty())
        && spec.subdomain.is_some()
        && spec.subdomain == service.metadata.name
        && pod.metadata.namespace == service.metadata.namespace
}

/// `podToEndpointAddressForService`: pick the pod IP of the Service's (primary) IP family.
fn pod_to_endpoint_address(service: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let spec = service.spec.as_ref();
    let status = pod.status.as_ref()?;
    let want_v6 = match spec.and_then(|s| s.ip_families.as_ref()).and_then(|f| f.first()) {
        Some(family) => family == "IPv6",
        None => match spec.and_then(|s| s.cluster_ip.as_deref()) {
            Some(ip) if !ip.is_empty() && ip != CLUSTER_IP_NONE => is_ipv6(ip),
            _ => status.pod_ip.as_deref().is_some_and(is_ipv6),
        },
    };
    let mut candidates: Vec<&str> = status.pod_ips.iter().flatten().map(|p| p.ip.as_str()).collect();
    if candidates.is_empty() {
        candidates.extend(status.pod_ip.as_deref());
    }
    let ip = candidates.into_iter().find(|ip| !ip.is_empty() && is_ipv6(ip) == want_v6)?;
    Some(EndpointAddress {
        ip: ip.to_owned(),
        hostname: None,
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".to_owned()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
    })
}

/// `podutil.FindPort`: the container port a Service port targets on this pod. A named target
/// port is looked up among the pod's container ports (and sidecar init containers) with the
/// same protocol; a numeric one is used as is; an unset one defaults to the Service port.
pub(crate) fn find_port(pod: &Pod, service_port: &ServicePort) -> Option<i32> {
    match &service_port.target_port {
        None => Some(service_port.port),
        Some(IntOrString::Int(port)) => Some(*port),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let protocol = service_port.protocol.as_deref().unwrap_or(DEFAULT_PROTOCOL);
            let sidecars =
                spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or(DEFAULT_PROTOCOL) == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// Orderable identity of an endpoint port (`None` is the "no ports" sentinel).
type PortKey = Option<(String, i32, String, String)>;
/// Orderable identity of an address: IP then target UID (as `LessEndpointAddress`).
type AddrKey = (String, Option<String>);

fn port_key(port: &EndpointPort) -> PortKey {
    Some((
        port.name.clone().unwrap_or_default(),
        port.port,
        port.protocol.clone().unwrap_or_default(),
        port.app_protocol.clone().unwrap_or_default(),
    ))
}

fn addr_key(address: &EndpointAddress) -> AddrKey {
    (address.ip.clone(), address.target_ref.as_ref().and_then(|t| t.uid.clone()))
}

/// `RepackSubsets`: regroup addresses so that every subset holds the addresses sharing exactly
/// one set of ports; an address both ready and not ready for a port counts as ready. Addresses
/// are sorted by IP then target UID, ports by name, number and protocol, subsets by ports.
/// (Upstream orders ports and subsets by a hash of their contents; the order here is
/// deterministic too but not byte-identical.)
pub fn repack_subsets(subsets: Vec<EndpointSubset>) -> Vec<EndpointSubset> {
    let mut all_addresses: BTreeMap<AddrKey, EndpointAddress> = BTreeMap::new();
    let mut ports: BTreeMap<PortKey, EndpointPort> = BTreeMap::new();
    let mut port_to_addresses: BTreeMap<PortKey, BTreeMap<AddrKey, bool>> = BTreeMap::new();
    for subset in subsets {
        let mut keys: Vec<PortKey> = Vec::new();
        for port in subset.ports.into_iter().flatten() {
            let key = port_key(&port);
            ports.entry(key.clone()).or_insert(port);
            keys.push(key);
        }
        if keys.is_empty() {
            keys.push(None);
        }
        let ready = subset.addresses.into_iter().flatten().map(|a| (a, true));
        let not_ready = subset.not_ready_addresses.into_iter().flatten().map(|a| (a, false));
        for (address, ready) in ready.chain(not_ready) {
            let key = addr_key(&address);
            all_addresses.entry(key.clone()).or_insert(address);
            for port in &keys {
                let was_ready = port_to_addresses.entry(port.clone()).or_default().entry(key.clone()).or_insert(ready);
                *was_ready |= ready;
            }
        }
    }

    // Group ports by the exact set of (address, readiness) offering them.
    let mut by_address_set: BTreeMap<Vec<(AddrKey, bool)>, Vec<EndpointPort>> = BTreeMap::new();
    for (port, addresses) in port_to_addresses {
        let group = by_address_set.entry(addresses.into_iter().collect()).or_default();
        if let Some(port) = port.and_then(|key| ports.get(&Some(key)).cloned()) {
            group.push(port);
        }
    }

    let mut result: Vec<EndpointSubset> = by_address_set
        .into_iter()
        .map(|(addresses, mut group_ports)| {
            group_ports.sort_by_key(port_key);
            let (mut ready, mut not_ready) = (Vec::new(), Vec::new());
            for (key, is_ready) in addresses {
                let address = all_addresses[&key].clone();
                if is_ready { ready.push(address) } else { not_ready.push(address) }
            }
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!group_ports.is_empty()).then_some(group_ports),
            }
        })
        .collect();
    result.sort_by_cached_key(|s| {
        let ports: Vec<PortKey> = s.ports.iter().flatten().map(port_key).collect();
        let addresses: Vec<AddrKey> = s.addresses.iter().flatten().map(addr_key).collect();
        let not_ready: Vec<AddrKey> = s.not_ready_addresses.iter().flatten().map(addr_key).collect();
        (ports, addresses, not_ready)
    });
    result
}

/// `truncateEndpoints`: cap the total number of addresses at [`MAX_CAPACITY`], keeping ready
/// addresses first and sharing what remains between subsets in proportion to their size.
/// Returns whether anything was dropped.
fn truncate_subsets(subsets: &mut [EndpointSubset]) -> bool {
    let len = |list: &Option<Vec<EndpointAddress>>| list.as_ref().map_or(0, Vec::len);
    let total_ready: usize = subsets.iter().map(|s| len(&s.addresses)).sum();
    let total_not_ready: usize = subsets.iter().map(|s| len(&s.not_ready_addresses)).sum();
    if total_ready + total_not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = total_ready > MAX_CAPACITY;
    let (max, num_total) =
        if truncate_ready { (MAX_CAPACITY, total_ready) } else { (MAX_CAPACITY - total_ready, total_not_ready) };
    let mut can_be_added = max;
    for subset in subsets.iter_mut() {
        let num_in_subset = if truncate_ready { len(&subset.addresses) } else { len(&subset.not_ready_addresses) };
        // Proportional share rounded up (integer form of ceil(n / total * max)).
        let to_be_added = (num_in_subset * max).div_ceil(num_total).min(can_be_added);
        if truncate_ready {
            if let Some(list) = subset.addresses.as_mut() {
                list.truncate(to_be_added);
            }
            subset.not_ready_addresses = None;
            can_be_added -= len(&subset.addresses);
        } else {
            if let Some(list) = subset.not_ready_addresses.as_mut() {
                list.truncate(to_be_added);
            }
            can_be_added -= len(&subset.not_ready_addresses);
        }
        for list in [&mut subset.addresses, &mut subset.not_ready_addresses] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                *list = None;
            }
        }
    }
    true
}

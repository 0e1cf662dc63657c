//! The reconcile algorithm, following upstream's `Reconciler.Reconcile`,
//! `reconcileByAddressType`, `reconcileByPortMapping` and `finalize`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ContainerPort, ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    ADDRESS_TYPE_IPV4, ADDRESS_TYPE_IPV6, ANNOTATION_LAST_CHANGE_TRIGGER_TIME, CONTROLLER_NAME, Input, LABEL_HEADLESS,
    LABEL_MANAGED_BY, LABEL_SERVICE_NAME, Plan, selects,
};

/// Identity of a group of slices: their ports, in a canonical order.
type PortKey = Vec<(Option<String>, Option<i32>, Option<String>, Option<String>)>;

/// Identity of an endpoint within a port group (upstream's `hashEndpoint`): sorted addresses,
/// hostname, and the target's namespace and name.
type EndpointKey = (Vec<String>, String, String, String);

/// Formats a trigger time the way upstream writes the annotation (`time.RFC3339Nano` in UTC:
/// fractional seconds only when non-zero, without trailing zeros).
pub fn format_trigger_time(at: jiff::Timestamp) -> String {
    at.to_string()
}

/// Computes the slices to create, update and delete so that the Service's EndpointSlices list
/// exactly the endpoints of the pods it selects. See the [module docs](super) for the rules.
pub fn reconcile(input: &Input) -> Plan {
    let service = input.service;
    let Some(spec) = service.spec.as_ref() else { return Plan::default() };
    if spec.type_.as_deref() == Some("ExternalName") || spec.selector.as_ref().is_none_or(BTreeMap::is_empty) {
        return Plan::default();
    }

    let address_types = address_types_for_service(service);
    let mut plan = Plan::default();
    let mut unsupported = Vec::new();
    let mut by_type: BTreeMap<&str, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in input.existing {
        match address_types.iter().find(|t| **t == slice.address_type) {
            Some(t) => by_type.entry(t).or_default().push(slice),
            None => unsupported.push(slice.clone()),
        }
    }

    let pods: Vec<&Pod> = input.pods.iter().filter(|p| selects(service, p)).collect();
    for address_type in address_types {
        let existing = by_type.remove(address_type).unwrap_or_default();
        reconcile_by_address_type(input, &pods, &existing, address_type, &mut plan);
    }
    plan.delete.extend(unsupported);
    plan
}

/// The address types a Service's slices carry (upstream's `getAddressTypesForService`).
fn address_types_for_service(service: &Service) -> BTreeSet<&'static str> {
    let spec = service.spec.as_ref();
    let mut types = BTreeSet::new();
    for family in spec.and_then(|s| s.ip_families.as_ref()).into_iter().flatten() {
        match family.as_str() {
            "IPv4" => types.insert(ADDRESS_TYPE_IPV4),
            "IPv6" => types.insert(ADDRESS_TYPE_IPV6),
            _ => false,
        };
    }
    if !types.is_empty() {
        return types;
    }
    // Families not filled in yet (old apiserver): go by the cluster IP, or both when headless.
    let cluster_ip = spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or_default();
    if !cluster_ip.is_empty() && cluster_ip != "None" {
        let v6 = matches!(cluster_ip.parse::<IpAddr>(), Ok(IpAddr::V6(ip)) if ip.to_ipv4_mapped().is_none());
        types.insert(if v6 { ADDRESS_TYPE_IPV6 } else { ADDRESS_TYPE_IPV4 });
    } else {
        types.insert(ADDRESS_TYPE_IPV4);
        types.insert(ADDRESS_TYPE_IPV6);
    }
    types
}

fn reconcile_by_address_type(
    input: &Input,
    pods: &[&Pod],
    existing: &[&EndpointSlice],
    address_type: &str,
    plan: &mut Plan,
) {
    let service = input.service;
    let max = input.max_endpoints_per_slice.max(1);
    let mut to_create = Vec::new();
    let mut to_update = Vec::new();
    let mut to_delete = Vec::new();

    let mut existing_by_ports: BTreeMap<PortKey, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        if owned_by(slice, service) {
            existing_by_ports.entry(port_key(slice.ports.as_deref().unwrap_or_default())).or_default().push(slice);
        } else {
            to_delete.push((*slice).clone());
        }
    }

    let mut desired: BTreeMap<PortKey, (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>)> = BTreeMap::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod) {
            continue;
        }
        let ports = endpoint_ports(service, pod);
        let (_, endpoints) = desired.entry(port_key(&ports)).or_insert_with(|| (ports, BTreeMap::new()));
        let endpoint = pod_to_endpoint(pod, service, address_type, input.node_zones);
        if !endpoint.addresses.is_empty() {
            endpoints.insert(endpoint_key(&endpoint), endpoint);
        }
    }

    for (key, (ports, endpoints)) in desired.iter() {
        let slices = existing_by_ports.get(key).map(Vec::as_slice).unwrap_or_default();
        let (create, update, delete) =
            reconcile_by_port_mapping(service, slices, endpoints.clone(), ports, address_type, max);
        to_create.extend(create);
        to_update.extend(update);
        to_delete.extend(delete);
    }
    for (key, slices) in &existing_by_ports {
        if !desired.contains_key(key) {
            to_delete.extend(slices.iter().map(|s| (*s).clone()));
        }
    }

    // A Service without endpoints still gets one (empty) slice per address type.
    if existing.len() == to_delete.len() && to_create.is_empty() {
        let placeholder = new_endpoint_slice(service, Vec::new(), address_type);
        if to_delete.len() == 1 && placeholder_equal(&to_delete[0], &placeholder) {
            to_delete.clear();
        } else {
            to_create.push(placeholder);
        }
    }

    finalize(input, &mut to_create, &mut to_update, &mut to_delete);
    plan.create.append(&mut to_create);
    plan.update.append(&mut to_update);
    plan.delete.append(&mut to_delete);
}

/// Upstream's `reconcileByPortMapping`: returns (create, update, delete) for one port group.
fn reconcile_by_port_mapping(
    service: &Service,
    existing: &[&EndpointSlice],
    mut desired: BTreeMap<EndpointKey, Endpoint>,
    ports: &[EndpointPort],
    address_type: &str,
    max: usize,
) -> (Vec<EndpointSlice>, Vec<EndpointSlice>, Vec<EndpointSlice>) {
    let mut by_name: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut unchanged = BTreeSet::new();
    let mut names_to_update = BTreeSet::new();
    let mut names_to_delete = BTreeSet::new();

    // 1. Keep desired endpoints where they are, drop the rest, note label drift.
    for slice in existing {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let mut kept = Vec::new();
        let mut endpoint_updated = false;
        for endpoint in &slice.endpoints {
            if let Some(want) = desired.remove(&endpoint_key(endpoint)) {
                endpoint_updated |= !endpoints_equal_beyond_key(&want, endpoint);
                kept.push(want);
            }
        }
        let (labels, labels_changed) = endpoint_slice_labels(slice.metadata.labels.as_ref(), service);
        if endpoint_updated || kept.len() != slice.endpoints.len() {
            if kept.is_empty() {
                names_to_delete.insert(name.clone());
                by_name.insert(name, (*slice).clone());
            } else {
                let mut updated = (*slice).clone();
                updated.endpoints = kept;
                updated.metadata.labels = Some(labels);
                names_to_update.insert(name.clone());
                by_name.insert(name, updated);
            }
        } else if labels_changed {
            let mut updated = (*slice).clone();
            updated.metadata.labels = Some(labels);
            names_to_update.insert(name.clone());
            by_name.insert(name, updated);
        } else {
            unchanged.insert(name.clone());
            by_name.insert(name, (*slice).clone());
        }
    }

    // 2. Fill the slices being updated anyway, fullest first.
    if !desired.is_empty() && !names_to_update.is_empty() {
        let mut names: Vec<&String> = names_to_update.iter().collect();
        names.sort_by_key(|n| std::cmp::Reverse(by_name[*n].endpoints.len()));
        for name in names {
            let slice = by_name.get_mut(name).expect("slice to update is known by name");
            fill(slice, &mut desired, max);
        }
    }

    // 3. Put what is left in the unchanged slice that ends closest to full, or in new slices.
    let mut to_create = Vec::new();
    while !desired.is_empty() {
        let mut target = None;
        if desired.len() < max && !unchanged.is_empty() {
            target = slice_to_fill(unchanged.iter().map(|n| &by_name[n]), desired.len(), max).cloned();
        }
        let mut slice = target.unwrap_or_else(|| new_endpoint_slice(service, ports.to_vec(), address_type));
        fill(&mut slice, &mut desired, max);
        match slice.metadata.name.clone() {
            Some(name) => {
                unchanged.remove(&name);
                names_to_update.insert(name.clone());
                by_name.insert(name, slice);
            }
            None => to_create.push(slice),
        }
    }

    let to_update = names_to_update.iter().map(|n| by_name[n].clone()).collect();
    let to_delete = names_to_delete.iter().map(|n| by_name[n].clone()).collect();
    (to_create, to_update, to_delete)
}

fn fill(slice: &mut EndpointSlice, desired: &mut BTreeMap<EndpointKey, Endpoint>, max: usize) {
    while slice.endpoints.len() < max {
        let Some((_, endpoint)) = desired.pop_first() else { break };
        slice.endpoints.push(endpoint);
    }
}

/// Upstream's `getSliceToFill`: the slice that will be closest to full once `count` endpoints
/// are added, if any has room for all of them.
fn slice_to_fill<'s>(
    slices: impl Iterator<Item = &'s EndpointSlice>,
    count: usize,
    max: usize,
) -> Option<&'s EndpointSlice> {
    let mut closest_diff = max;
    let mut closest = None;
    for slice in slices {
        let Some(diff) = max.checked_sub(count + slice.endpoints.len()) else { continue };
        if diff < closest_diff {
            closest_diff = diff;
            closest = Some(slice);
            if diff == 0 {
                break;
            }
        }
    }
    closest
}

/// Upstream's `finalize`, minus the writes: creates become updates of same-type slices that would
/// otherwise be deleted, no creates while the Service is being deleted, trigger-time annotation.
fn finalize(
    input: &Input,
    create: &mut Vec<EndpointSlice>,
    update: &mut Vec<EndpointSlice>,
    delete: &mut Vec<EndpointSlice>,
) {
    let service = input.service;
    let mut i = 0;
    while i < delete.len() {
        let Some(last) = create.last() else { break };
        let old = &delete[i];
        if old.address_type == last.address_type && owned_by(old, service) {
            let mut slice = create.pop().expect("create is not empty");
            let old = delete.remove(i);
            slice.metadata.name = old.metadata.name;
            slice.metadata.uid = old.metadata.uid;
            slice.metadata.resource_version = old.metadata.resource_version;
            slice.metadata.creation_timestamp = old.metadata.creation_timestamp;
            update.push(slice);
        } else {
            i += 1;
        }
    }
    if service.metadata.deletion_timestamp.is_some() {
        create.clear();
    }
    for slice in create.iter_mut().chain(update.iter_mut()) {
        let mut annotations = slice.metadata.annotations.take().unwrap_or_default();
        match input.trigger_time {
            Some(at) => annotations.insert(ANNOTATION_LAST_CHANGE_TRIGGER_TIME.to_owned(), at.to_owned()),
            None => annotations.remove(ANNOTATION_LAST_CHANGE_TRIGGER_TIME),
        };
        slice.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    }
}

/// Upstream's `placeholderSliceCompare`: namespace, labels, owner references and the slice body.
fn placeholder_equal(existing: &EndpointSlice, placeholder: &EndpointSlice) -> bool {
    let (a, b) = (&existing.metadata, &placeholder.metadata);
    a.namespace == b.namespace
        && a.labels.clone().unwrap_or_default() == b.labels.clone().unwrap_or_default()
        && a.owner_references.clone().unwrap_or_default() == b.owner_references.clone().unwrap_or_default()
        && existing.address_type == placeholder.address_type
        && existing.endpoints == placeholder.endpoints
        && existing.ports.as_deref().unwrap_or_default() == placeholder.ports.as_deref().unwrap_or_default()
}

fn new_endpoint_slice(service: &Service, ports: Vec<EndpointPort>, address_type: &str) -> EndpointSlice {
    let name = service.metadata.name.clone().unwrap_or_default();
    let owner = OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Service".to_owned(),
        name: name.clone(),
        uid: service.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: service.metadata.namespace.clone(),
            owner_references: Some(vec![owner]),
            labels: Some(endpoint_slice_labels(None, service).0),
            ..ObjectMeta::default()
        },
        address_type: address_type.to_owned(),
        endpoints: Vec::new(),
        ports: Some(ports),
    }
}

fn owned_by(slice: &EndpointSlice, service: &Service) -> bool {
    let uid = service.metadata.uid.as_deref().unwrap_or_default();
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.kind == "Service" && o.api_version == "v1")
}

fn is_reserved_label(key: &str) -> bool {
    key == LABEL_SERVICE_NAME || key == LABEL_MANAGED_BY || key == LABEL_HEADLESS
}

/// Upstream's `setEndpointSliceLabels`: the Service's labels (minus the reserved ones) plus
/// service-name, managed-by and, for headless Services, the headless label; and whether the
/// slice's non-reserved labels differ from the Service's.
fn endpoint_slice_labels(
    slice_labels: Option<&BTreeMap<String, String>>,
    service: &Service,
) -> (BTreeMap<String, String>, bool) {
    let unreserved = |labels: Option<&BTreeMap<String, String>>| -> BTreeMap<String, String> {
        labels
            .into_iter()
            .flatten()
            .filter(|(k, _)| !is_reserved_label(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut labels = unreserved(service.metadata.labels.as_ref());
    let changed = unreserved(slice_labels) != labels;
    let cluster_ip = service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()).unwrap_or_default();
    if cluster_ip.is_empty() || cluster_ip == "None" {
        labels.insert(LABEL_HEADLESS.to_owned(), String::new());
    }
    labels.insert(LABEL_SERVICE_NAME.to_owned(), service.metadata.name.clone().unwrap_or_default());
    labels.insert(LABEL_MANAGED_BY.to_owned(), CONTROLLER_NAME.to_owned());
    (labels, changed)
}

/// Upstream's `ShouldPodBeInEndpoints` with terminating pods included.
fn should_pod_be_in_endpoints(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else { return false };
    if matches!(status.phase.as_deref(), Some("Failed" | "Succeeded")) {
        return false;
    }
    status.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
        || status.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
}

use component::pod::is_ready as is_pod_ready;

/// Upstream's `podToEndpoint`.
fn pod_to_endpoint(
    pod: &Pod,
    service: &Service,
    address_type: &str,
    node_zones: &BTreeMap<String, String>,
) -> Endpoint {
    let spec = pod.spec.as_ref();
    let publish_not_ready = service.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
    let serving = is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = publish_not_ready || (serving && !terminating);
    let node_name = spec.and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty());
    let zone = node_name.as_ref().and_then(|n| node_zones.get(n)).filter(|z| !z.is_empty()).cloned();
    let hostname = spec.and_then(|s| s.hostname.clone()).filter(|h| {
        !h.is_empty()
            && spec.and_then(|s| s.subdomain.as_deref()) == service.metadata.name.as_deref()
            && pod.metadata.namespace.as_deref().unwrap_or_default()
                == service.metadata.namespace.as_deref().unwrap_or_default()
    });
    Endpoint {
        addresses: endpoint_addresses(pod, address_type),
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".to_owned()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
        node_name,
        zone,
        hostname,
        ..Endpoint::default()
    }
}

/// The pod's IPs of the given family, normalised (upstream's `getEndpointAddresses`).
fn endpoint_addresses(pod: &Pod, address_type: &str) -> Vec<String> {
    let Some(status) = pod.status.as_ref() else { return Vec::new() };
    let mut ips: Vec<&str> = status.pod_ips.iter().flatten().map(|ip| ip.ip.as_str()).collect();
    if ips.is_empty() {
        ips.extend(status.pod_ip.as_deref());
    }
    ips.into_iter()
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        })
        .filter(|ip| if address_type == ADDRESS_TYPE_IPV6 { ip.is_ipv6() } else { ip.is_ipv4() })
        .map(|ip| ip.to_string())
        .collect()
}

/// Upstream's `getEndpointPorts`: every Service port the pod can serve, target ports resolved.
fn endpoint_ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_deref()).unwrap_or_default();
    let mut out: Vec<EndpointPort> = ports
        .iter()
        .filter_map(|sp| {
            let protocol = sp.protocol.clone().unwrap_or_else(|| "TCP".to_owned());
            let port = find_port(pod, sp, &protocol)?;
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(protocol),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect();
    out.sort_by_cached_key(|p| port_key(std::slice::from_ref(p)));
    out
}

/// Upstream's `FindPort`: a numeric target port as is, a named one looked up in the pod's
/// containers (then its sidecar init containers) with the same protocol.
fn find_port(pod: &Pod, service_port: &ServicePort, protocol: &str) -> Option<i32> {
    let name = match &service_port.target_port {
        None => return Some(service_port.port),
        Some(IntOrString::Int(port)) => return Some(*port),
        Some(IntOrString::String(name)) => name,
    };
    let spec = pod.spec.as_ref()?;
    let matches = |p: &&ContainerPort| {
        p.name.as_deref() == Some(name.as_str()) && p.protocol.as_deref().unwrap_or("TCP") == protocol
    };
    let containers = spec.containers.iter();
    let sidecars = spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
    containers.chain(sidecars).flat_map(|c| c.ports.iter().flatten()).find(matches).map(|p| p.container_port)
}

fn port_key(ports: &[EndpointPort]) -> PortKey {
    let mut key: PortKey =
        ports.iter().map(|p| (p.name.clone(), p.port, p.protocol.clone(), p.app_protocol.clone())).collect();
    key.sort();
    key
}

fn endpoint_key(endpoint: &Endpoint) -> EndpointKey {
    let mut addresses = endpoint.addresses.clone();
    addresses.sort();
    let target = endpoint.target_ref.as_ref();
    (
        addresses,
        endpoint.hostname.clone().unwrap_or_default(),
        target.and_then(|t| t.namespace.clone()).unwrap_or_default(),
        target.and_then(|t| t.name.clone()).unwrap_or_default(),
    )
}

/// Upstream's `EndpointsEqualBeyondHash`: node, zone, conditions and target (ignoring its
/// resourceVersion).
fn endpoints_equal_beyond_key(a: &Endpoint, b: &Endpoint) -> bool {
    let conditions = |e: &Endpoint| {
        let c = e.conditions.clone().unwrap_or_default();
        (c.ready, c.serving, c.terminating)
    };
    let target = |e: &Endpoint| e.target_ref.clone().map(|t| ObjectReference { resource_version: None, ..t });
    a.node_name == b.node_name && a.zone == b.zone && conditions(a) == conditions(b) && target(a) == target(b)
}

//! Pure core of the EndpointSlice mirroring controller (upstream
//! `pkg/controller/endpointslicemirroring`): Services without a selector get their Endpoints
//! written by users, and this controller mirrors such Endpoints into EndpointSlices so that
//! slice consumers (kube-proxy, DNS) see them too.
//!
//! As upstream, every Endpoints subset becomes one slice per address family (subsets sharing
//! ports and family share a slice), at most [`MAX_ENDPOINTS_PER_SUBSET`] addresses are
//! mirrored per subset (ready ones first), `addresses` become endpoints with `ready: true` and
//! `notReadyAddresses` endpoints with `ready: false`, and invalid IPs are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

#[cfg(test)]
mod tests;

/// Value of [`LABEL_MANAGED_BY`] on mirrored slices.
pub const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
pub use component::labels::{ENDPOINTSLICE_MANAGED_BY as LABEL_MANAGED_BY, SERVICE_NAME as LABEL_SERVICE_NAME};
/// Endpoints labelled with this set to `"true"` are not mirrored.
pub const LABEL_SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Most addresses mirrored from one Endpoints subset (and held by one mirrored slice).
pub const MAX_ENDPOINTS_PER_SUBSET: usize = 1000;

const LEADER_ELECTION_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
const LAST_CHANGE_TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";
const LAST_APPLIED_CONFIG_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
const DEFAULT_PROTOCOL: &str = "TCP";

/// What to write so the mirrored slices match the Endpoints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MirrorPlan {
    /// New slices; they carry `generateName` (`<endpoints-name>-`) and no name.
    pub create: Vec<EndpointSlice>,
    /// Full replacements of existing slices, carrying the existing name and resourceVersion.
    pub update: Vec<EndpointSlice>,
    /// Existing slices to delete (as they were passed in).
    pub delete: Vec<EndpointSlice>,
}

impl MirrorPlan {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Whether `endpoints` should be mirrored for `service`: they belong together (same name and
/// namespace), the Service has no selector, the Endpoints is not labelled
/// `endpointslice.kubernetes.io/skip-mirror: "true"` and is not a leader-election record.
pub fn should_mirror(service: &Service, endpoints: &Endpoints) -> bool {
    let selectorless = service.spec.as_ref().and_then(|s| s.selector.as_ref()).is_none_or(BTreeMap::is_empty);
    let same_object = service.metadata.name.is_some()
        && service.metadata.name == endpoints.metadata.name
        && service.metadata.namespace == endpoints.metadata.namespace;
    let skip = endpoints.metadata.labels.as_ref().and_then(|l| l.get(LABEL_SKIP_MIRROR)).is_some_and(|v| v == "true");
    let leader = endpoints.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(LEADER_ELECTION_ANNOTATION));
    selectorless && same_object && !skip && !leader
}

/// The slices `endpoints` mirrors to (empty when [`should_mirror`] says no), each with
/// `generateName` set and no name, ordered by address type and ports.
pub fn desired_slices(service: &Service, endpoints: &Endpoints) -> Vec<EndpointSlice> {
    if !should_mirror(service, endpoints) {
        return Vec::new();
    }
    desired_by_key(endpoints)
        .into_iter()
        .map(|((address_type, _), (ports, eps))| new_slice(endpoints, address_type, ports, eps))
        .collect()
}

/// Compare the slices `endpoints` should mirror to with the `existing` slices (typically all
/// slices in the namespace labelled with the service name; slices not managed by this
/// controller or belonging to another service are ignored) and plan the writes.
///
/// `endpoints: None` (the Endpoints is gone), a Service with a selector, or a skip-mirror
/// label all mean every mirrored slice is deleted. Existing slices matching a desired
/// slice's address type and ports are kept when their endpoints, labels and annotations
/// already match, otherwise updated in place; surplus ones are deleted, and deletions are
/// recycled into updates when creates are also needed (as upstream's `recycleSlices`). No
/// slices are created for an Endpoints that is being deleted.
pub fn reconcile_mirrored(service: &Service, endpoints: Option<&Endpoints>, existing: &[EndpointSlice]) -> MirrorPlan {
    let service_name = service.metadata.name.as_deref().unwrap_or_default();
    let owned = existing.iter().filter(|slice| {
        let labels = slice.metadata.labels.as_ref();
        let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
        label(LABEL_MANAGED_BY) == Some(CONTROLLER_NAME)
            && label(LABEL_SERVICE_NAME) == Some(service_name)
            && (slice.metadata.namespace.is_none() || slice.metadata.namespace == service.metadata.namespace)
    });
    let mut existing_by_key: BTreeMap<SliceKey, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in owned {
        existing_by_key
            .entry(slice_key(&slice.address_type, slice.ports.as_deref().unwrap_or_default()))
            .or_default()
            .push(slice);
    }

    let desired = endpoints.map(|e| desired_slices(service, e)).unwrap_or_default();
    let mut plan = MirrorPlan::default();
    for want in desired {
        let key = slice_key(&want.address_type, want.ports.as_deref().unwrap_or_default());
        let mut current = existing_by_key.remove(&key).unwrap_or_default().into_iter();
        match current.next() {
            None => plan.create.push(want),
            Some(first) => {
                if !same_content(first, &want) {
                    plan.update.push(reuse(want, first));
                }
                plan.delete.extend(current.cloned());
            }
        }
    }
    plan.delete.extend(existing_by_key.into_values().flatten().cloned());

    // Recycle slices marked for deletion into updates instead of creating new ones.
    while !plan.create.is_empty() && !plan.delete.is_empty() {
        let doomed = plan.delete.pop().expect("checked non-empty");
        let created = plan.create.remove(0);
        plan.update.push(reuse(created, &doomed));
    }
    if endpoints.is_some_and(|e| e.metadata.deletion_timestamp.is_some()) {
        plan.create.clear();
    }
    plan
}

/// `desired` rewritten to replace `existing` in place.
fn reuse(mut desired: EndpointSlice, existing: &EndpointSlice) -> EndpointSlice {
    desired.metadata.name = existing.metadata.name.clone();
    desired.metadata.resource_version = existing.metadata.resource_version.clone();
    desired.metadata.generate_name = None;
    desired
}

/// Endpoints (as an order-insensitive set), labels and annotations agree.
fn same_content(existing: &EndpointSlice, desired: &EndpointSlice) -> bool {
    let endpoints = |s: &EndpointSlice| -> BTreeSet<String> {
        s.endpoints.iter().map(|e| serde_json::to_string(e).unwrap_or_default()).collect()
    };
    let labels = |m: &Option<BTreeMap<String, String>>| m.clone().unwrap_or_default();
    endpoints(existing) == endpoints(desired)
        && labels(&existing.metadata.labels) == labels(&desired.metadata.labels)
        && labels(&existing.metadata.annotations) == labels(&desired.metadata.annotations)
}

/// Address type plus the sorted ports: slices are grouped by this (upstream's
/// `addrTypePortMapKey`).
type SliceKey = (String, Vec<(String, i32, String, String)>);

fn slice_key(address_type: &str, ports: &[EndpointPort]) -> SliceKey {
    let mut ports: Vec<_> = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_else(|| DEFAULT_PROTOCOL.to_owned()),
                p.app_protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    ports.sort();
    (address_type.to_owned(), ports)
}

/// Endpoints to mirror, grouped by address type and ports.
fn desired_by_key(endpoints: &Endpoints) -> BTreeMap<SliceKey, (Vec<EndpointPort>, Vec<Endpoint>)> {
    let mut by_key: BTreeMap<SliceKey, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    let mut seen: BTreeSet<(SliceKey, String)> = BTreeSet::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| DEFAULT_PROTOCOL.to_owned())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset.not_ready_addresses.iter().flatten().map(|a| (a, false));
        let mut added = 0;
        for (address, ready) in ready.chain(not_ready) {
            if added >= MAX_ENDPOINTS_PER_SUBSET {
                break;
            }
            let Some((endpoint, address_type)) = address_to_endpoint(address, ready) else {
                continue;
            };
            added += 1;
            let key = slice_key(address_type, &ports);
            let identity = identity(&endpoint);
            if !seen.insert((key.clone(), identity)) {
                continue;
            }
            let (_, slice_endpoints) = by_key.entry(key).or_insert_with(|| (ports.clone(), Vec::new()));
            if slice_endpoints.len() < MAX_ENDPOINTS_PER_SUBSET {
                slice_endpoints.push(endpoint);
            }
        }
    }
    by_key
}

/// What makes two mirrored endpoints the same endpoint (readiness aside).
fn identity(endpoint: &Endpoint) -> String {
    let target = endpoint.target_ref.as_ref();
    let field = |f: Option<&String>| f.cloned().unwrap_or_default();
    format!(
        "{}|{}|{}|{}",
        endpoint.addresses.join(","),
        field(target.and_then(|t| t.namespace.as_ref())),
        field(target.and_then(|t| t.name.as_ref())),
        field(target.and_then(|t| t.uid.as_ref())),
    )
}

/// `addressToEndpoint`: `None` for an address that is not an IP.
fn address_to_endpoint(address: &EndpointAddress, ready: bool) -> Option<(Endpoint, &'static str)> {
    let (ip, address_type) = match address.ip.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => (v4.to_string(), "IPv4"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (v4.to_string(), "IPv4"),
            None => (v6.to_string(), "IPv6"),
        },
    };
    let endpoint = Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions { ready: Some(ready), ..EndpointConditions::default() }),
        target_ref: address.target_ref.clone(),
        node_name: address.node_name.clone(),
        hostname: address.hostname.clone().filter(|h| !h.is_empty()),
        ..Endpoint::default()
    };
    Some((endpoint, address_type))
}

/// `newEndpointSlice`: labels and annotations cloned from the Endpoints (minus the trigger
/// time and kubectl's last-applied configuration), the service-name and managed-by labels
/// forced, owned by the Endpoints, named by `generateName`.
fn new_slice(
    endpoints: &Endpoints,
    address_type: String,
    ports: Vec<EndpointPort>,
    slice_endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    let name = endpoints.metadata.name.clone().unwrap_or_default();
    let mut labels = endpoints.metadata.labels.clone().unwrap_or_default();
    labels.insert(LABEL_SERVICE_NAME.to_owned(), name.clone());
    labels.insert(LABEL_MANAGED_BY.to_owned(), CONTROLLER_NAME.to_owned());
    let mut annotations = endpoints.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(LAST_CHANGE_TRIGGER_TIME_ANNOTATION);
    annotations.remove(LAST_APPLIED_CONFIG_ANNOTATION);
    // A DNS subdomain holds at most 253 characters, the generated suffix aside.
    let generate_name = if name.len() < 253 { format!("{name}-") } else { name.clone() };
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: endpoints.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_owned(),
                kind: "Endpoints".to_owned(),
                name,
                uid: endpoints.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        address_type,
        endpoints: slice_endpoints,
        ports: Some(ports),
    }
}

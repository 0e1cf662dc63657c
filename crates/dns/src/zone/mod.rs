//! The cluster zone held in memory: what Services, EndpointSlices, Namespaces (and, in
//! `pods verified` mode, Pods) say, in the shape the answers need, plus the reverse index.
//! One writer (the watch feed) updates it object by object; queries read it under a shared
//! lock and never wait for a rebuild.

mod answer;
pub mod k8s;
#[cfg(test)]
mod tests;

pub use answer::{Outcome, SCHEMA_VERSION, resolve, reverse_name};

/// The zone's SOA record (authority section of negative answers).
pub fn soa_record(data: &ZoneData, cfg: &ZoneConfig) -> crate::wire::Record {
    answer::soa(data, cfg)
}

use crate::wire::Name;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// How `<a-b-c-d>.<ns>.pod.<zone>` names are answered (CoreDNS's `pods` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodMode {
    /// No pod records (NXDOMAIN).
    Disabled,
    /// The address in the name is returned without checking a pod has it (kubeadm's default).
    Insecure,
    /// Only when a pod in that namespace has that address.
    Verified,
}

impl std::str::FromStr for PodMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "disabled" => Ok(PodMode::Disabled),
            "insecure" => Ok(PodMode::Insecure),
            "verified" => Ok(PodMode::Verified),
            _ => Err(format!("pods must be disabled, insecure or verified, not {s:?}")),
        }
    }
}

/// What the answers depend on besides the cluster's objects.
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    /// The cluster domain, lowercase (`cluster.local`).
    pub zone: Name,
    /// TTL of every answer (CoreDNS's `ttl`, default 5).
    pub ttl: u32,
    /// How long resolvers may cache NXDOMAIN and NODATA: the SOA minimum, and the SOA's own TTL
    /// up to 300 s (RFC 2308). None: the answer TTL, as CoreDNS does.
    pub negative_ttl: Option<u32>,
    pub pods: PodMode,
    /// Only these namespaces are answered for, when set (CoreDNS's `namespaces`).
    pub namespaces: Option<HashSet<String>>,
    /// The Service this server sits behind; its cluster IPs are the zone's NS addresses.
    pub dns_service: Option<(String, String)>,
    /// NS addresses when that Service is not found (CoreDNS uses the addresses it listens on).
    pub local_ips: Vec<IpAddr>,
}

impl ZoneConfig {
    pub fn new(zone: &str) -> Result<ZoneConfig, crate::wire::WireError> {
        Ok(ZoneConfig {
            zone: Name::from_dotted(zone)?.to_lowercase(),
            ttl: 5,
            negative_ttl: None,
            pods: PodMode::Insecure,
            namespaces: None,
            dns_service: Some(("kube-system".into(), "kube-dns".into())),
            local_ips: Vec::new(),
        })
    }

    fn configured_namespace(&self, ns: &str) -> bool {
        self.namespaces.as_ref().is_none_or(|set| set.contains(ns))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SvcKind {
    ClusterIp(Vec<IpAddr>),
    Headless,
    ExternalName(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortModel {
    pub name: String,
    pub protocol: String,
    /// None where Kubernetes has no number (a slice without ports: "all ports").
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvcModel {
    pub kind: SvcKind,
    pub ports: Vec<PortModel>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpModel {
    pub ip: IpAddr,
    /// The name under the Service: the endpoint's hostname, else its address with dashes
    /// (CoreDNS's `endpointHostname`).
    pub hostname: String,
}

/// The ready endpoints of one EndpointSlice and its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceModel {
    pub ports: Vec<PortModel>,
    pub endpoints: Vec<EpModel>,
}

type ByName<T> = HashMap<String, T>;

#[derive(Debug, Default)]
pub struct ZoneData {
    services: ByName<ByName<SvcModel>>,
    /// namespace -> service name -> slice name -> slice.
    slices: ByName<ByName<ByName<SliceModel>>>,
    namespaces: HashSet<String>,
    /// Pod addresses by pod (`ns/name`), and the namespaces having each address (verified mode).
    pods: HashMap<String, Vec<IpAddr>>,
    pod_ips: HashMap<IpAddr, Vec<String>>,
    svc_ptr: HashMap<IpAddr, Vec<(String, String)>>,
    ep_ptr: HashMap<IpAddr, Vec<(String, String, String)>>,
    /// SOA serial: the Unix time of the last change.
    pub serial: u32,
    /// Whether every watch has delivered its first full list.
    pub synced: bool,
}

fn remove_from<K: std::hash::Hash + Eq, V: PartialEq>(map: &mut HashMap<K, Vec<V>>, key: K, value: &V) {
    if let Some(v) = map.get_mut(&key) {
        if let Some(i) = v.iter().position(|x| x == value) {
            v.swap_remove(i);
        }
        if v.is_empty() {
            map.remove(&key);
        }
    }
}

impl ZoneData {
    pub fn service(&self, ns: &str, name: &str) -> Option<&SvcModel> {
        self.services.get(ns)?.get(name)
    }

    /// Every slice of a Service (slices may exist before or without their Service).
    pub fn slices_of(&self, ns: &str, svc: &str) -> impl Iterator<Item = &SliceModel> {
        self.slices.get(ns).and_then(|m| m.get(svc)).into_iter().flat_map(|m| m.values())
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.namespaces.contains(ns)
    }

    pub fn service_count(&self) -> usize {
        self.services.values().map(|m| m.len()).sum()
    }

    pub fn endpoint_count(&self) -> usize {
        self.slices.values().flat_map(|m| m.values()).flat_map(|m| m.values()).map(|s| s.endpoints.len()).sum()
    }

    pub fn set_service(&mut self, ns: &str, name: &str, model: Option<SvcModel>) {
        let old = match &model {
            Some(m) => self.services.entry(ns.to_owned()).or_default().insert(name.to_owned(), m.clone()),
            None => {
                let old = self.services.get_mut(ns).and_then(|m| m.remove(name));
                if self.services.get(ns).is_some_and(|m| m.is_empty()) {
                    self.services.remove(ns);
                }
                old
            }
        };
        if old == model {
            return;
        }
        let key = (ns.to_owned(), name.to_owned());
        if let Some(SvcModel { kind: SvcKind::ClusterIp(ips), .. }) = &old {
            for ip in ips {
                remove_from(&mut self.svc_ptr, *ip, &key);
            }
        }
        if let Some(SvcModel { kind: SvcKind::ClusterIp(ips), .. }) = &model {
            for ip in ips {
                self.svc_ptr.entry(*ip).or_default().push(key.clone());
            }
        }
        self.touch();
    }

    pub fn set_slice(&mut self, ns: &str, svc: &str, slice: &str, model: Option<SliceModel>) {
        let old = match &model {
            Some(m) => self
                .slices
                .entry(ns.to_owned())
                .or_default()
                .entry(svc.to_owned())
                .or_default()
                .insert(slice.to_owned(), m.clone()),
            None => {
                let mut old = None;
                if let Some(by_svc) = self.slices.get_mut(ns) {
                    if let Some(by_slice) = by_svc.get_mut(svc) {
                        old = by_slice.remove(slice);
                        if by_slice.is_empty() {
                            by_svc.remove(svc);
                        }
                    }
                    if by_svc.is_empty() {
                        self.slices.remove(ns);
                    }
                }
                old
            }
        };
        if old == model {
            return;
        }
        for ep in old.iter().flat_map(|s| &s.endpoints) {
            remove_from(&mut self.ep_ptr, ep.ip, &(ns.to_owned(), svc.to_owned(), ep.hostname.clone()));
        }
        for ep in model.iter().flat_map(|s| &s.endpoints) {
            self.ep_ptr.entry(ep.ip).or_default().push((ns.to_owned(), svc.to_owned(), ep.hostname.clone()));
        }
        self.touch();
    }

    pub fn set_namespace(&mut self, name: &str, exists: bool) {
        let changed = if exists { self.namespaces.insert(name.to_owned()) } else { self.namespaces.remove(name) };
        if changed {
            self.touch();
        }
    }

    /// A pod's addresses (empty when deleted), for `pods verified`.
    pub fn set_pod(&mut self, ns: &str, name: &str, ips: Vec<IpAddr>) {
        let key = format!("{ns}/{name}");
        let old = if ips.is_empty() { self.pods.remove(&key) } else { self.pods.insert(key, ips.clone()) };
        if old.as_ref() == Some(&ips) {
            return;
        }
        for ip in old.unwrap_or_default() {
            remove_from(&mut self.pod_ips, ip, &ns.to_owned());
        }
        for ip in ips {
            self.pod_ips.entry(ip).or_default().push(ns.to_owned());
        }
    }

    pub fn pod_ip_in_namespace(&self, ip: &IpAddr, ns: &str) -> bool {
        self.pod_ips.get(ip).is_some_and(|v| v.iter().any(|n| n.eq_ignore_ascii_case(ns)))
    }

    /// Names of the Services whose cluster IP is `ip` (namespace, name).
    pub fn services_with_ip(&self, ip: &IpAddr) -> &[(String, String)] {
        self.svc_ptr.get(ip).map(Vec::as_slice).unwrap_or_default()
    }

    /// Ready endpoints with address `ip` (namespace, service, hostname).
    pub fn endpoints_with_ip(&self, ip: &IpAddr) -> &[(String, String, String)] {
        self.ep_ptr.get(ip).map(Vec::as_slice).unwrap_or_default()
    }

    fn touch(&mut self) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        self.serial = now as u32;
    }
}

//! Answers for the cluster zone, as CoreDNS's kubernetes plugin gives them (parse.go,
//! kubernetes.go, backend_lookup.go): a query name is parsed into service / namespace /
//! endpoint / port parts, matched against the zone data into a list of items, and the items
//! are rendered per query type. A pure function of the data, the config and the question.

use super::{PodMode, SvcKind, ZoneConfig, ZoneData};
use crate::wire::{Name, Record, RecordData, rtype};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The DNS schema version of the Kubernetes DNS specification this follows.
pub const SCHEMA_VERSION: &str = "1.1.0";
const SCHEMA_VERSION_TTL: u32 = 28800;
const MAX_CNAME_CHAIN: usize = 7;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// NOERROR with records.
    Answer { answer: Vec<Record>, additional: Vec<Record> },
    /// The name exists but has no records of the type: NOERROR, the zone SOA in authority.
    NoData,
    /// NXDOMAIN, the zone SOA in authority.
    NxDomain,
    /// An ExternalName whose target is outside the cluster: the answer is these CNAMEs plus
    /// what the upstream answers for `target` (same type).
    Chase { cnames: Vec<Record>, target: Name },
    /// Not a name of this zone (or a reverse name nothing here has): forward it.
    NotOurs,
    /// The zone has not been loaded from the API yet: SERVFAIL rather than a false NXDOMAIN.
    NotSynced,
}

/// What a name resolved to before it is rendered for a type (CoreDNS's msg.Service).
#[derive(Debug)]
struct Item<'a> {
    host: Host,
    port: Option<u16>,
    /// The endpoint's name under the Service (SRV targets); None for the Service itself.
    hostname: Option<&'a str>,
}

/// The items of a name and the domain they hang off (`<svc>.<ns>.svc.<zone>`), from which
/// SRV targets are made only when an SRV answer needs them.
struct Found<'a> {
    domain: Option<Name>,
    items: Vec<Item<'a>>,
}

impl Found<'_> {
    fn key(&self, item: &Item<'_>) -> Option<Name> {
        let domain = self.domain.as_ref()?;
        match item.hostname {
            Some(h) => domain.prepend(h).ok(),
            None => Some(domain.clone()),
        }
    }
}

#[derive(Debug)]
enum Host {
    Ip(IpAddr),
    Name(Name),
}

/// The query name did not match anything (NXDOMAIN).
struct NameError;

pub fn resolve(data: &ZoneData, cfg: &ZoneConfig, qname: &Name, qtype: u16) -> Outcome {
    if let Some(ip) = reverse_address(qname) {
        if qtype != rtype::PTR || !data.synced {
            return Outcome::NotOurs;
        }
        let answer = ptr_records(data, cfg, qname, &ip);
        return if answer.is_empty() { Outcome::NotOurs } else { Outcome::Answer { answer, additional: vec![] } };
    }
    if !qname.is_subdomain_of(&cfg.zone) {
        return Outcome::NotOurs;
    }
    if !data.synced {
        return Outcome::NotSynced;
    }
    let lower = qname.to_lowercase();
    let mut buf: [&[u8]; MAX_LABELS] = [&[]; MAX_LABELS];
    let Some(labels) = labels_before(&lower, &cfg.zone, &mut buf) else { return Outcome::NxDomain };
    let ttl = cfg.ttl;

    if labels.is_empty() {
        match qtype {
            rtype::NS => {
                let (answer, additional) = ns_records(data, cfg, qname);
                return Outcome::Answer { answer, additional };
            }
            rtype::SOA => return Outcome::Answer { answer: vec![soa(data, cfg)], additional: vec![] },
            _ => {}
        }
    }
    if qtype == rtype::TXT && labels == [&b"dns-version"[..]] {
        let txt = RecordData::Txt(vec![SCHEMA_VERSION.as_bytes().to_vec()]);
        return Outcome::Answer {
            answer: vec![Record::new(qname.clone(), SCHEMA_VERSION_TTL, txt)],
            additional: vec![],
        };
    }
    if labels == [&b"ns"[..], &b"dns"[..]] {
        let (_, addrs) = ns_records(data, cfg, qname);
        let answer: Vec<Record> =
            addrs.into_iter().filter(|r| r.rtype() == qtype).map(|r| Record::new(qname.clone(), ttl, r.data)).collect();
        return if answer.is_empty() { Outcome::NoData } else { Outcome::Answer { answer, additional: vec![] } };
    }

    let found = match lookup(data, cfg, labels) {
        Ok(found) => found,
        Err(NameError) => return Outcome::NxDomain,
    };
    let items = &found.items;
    let outcome = match qtype {
        rtype::A | rtype::AAAA | rtype::TXT => match addresses(data, cfg, items, qname, qtype, &[]) {
            Addresses::Done(answer) => Outcome::Answer { answer, additional: vec![] },
            Addresses::Chase { cnames, target } => Outcome::Chase { cnames, target },
        },
        rtype::SRV => {
            let (answer, additional) = srv_records(&found, qname, ttl);
            Outcome::Answer { answer, additional }
        }
        rtype::CNAME => {
            let answer = match items.first() {
                Some(Item { host: Host::Name(target), .. }) => {
                    vec![Record::new(qname.clone(), ttl, RecordData::Cname(target.clone()))]
                }
                _ => vec![],
            };
            Outcome::Answer { answer, additional: vec![] }
        }
        _ => Outcome::NoData,
    };
    match outcome {
        Outcome::Answer { answer, .. } if answer.is_empty() => Outcome::NoData,
        other => other,
    }
}

/// At most this many labels in front of the zone are looked at: the longest cluster name,
/// `_port._proto.svc.ns.svc`, has five; longer ones do not exist.
const MAX_LABELS: usize = 8;

/// The labels of `name` in front of `zone`, leftmost first, without allocating; None when
/// there are more than [`MAX_LABELS`].
fn labels_before<'a, 'b>(name: &'a Name, zone: &Name, buf: &'b mut [&'a [u8]; MAX_LABELS]) -> Option<&'b [&'a [u8]]> {
    let n = name.label_count().checked_sub(zone.label_count())?;
    if n > MAX_LABELS {
        return None;
    }
    for (slot, label) in buf.iter_mut().zip(name.labels().take(n)) {
        *slot = label;
    }
    Some(&buf[..n])
}

/// CoreDNS's parseRequest + Records: the items a name stands for, or NXDOMAIN.
fn lookup<'a>(data: &'a ZoneData, cfg: &ZoneConfig, labels: &[&[u8]]) -> Result<Found<'a>, NameError> {
    let none = || Ok(Found { domain: None, items: vec![] });
    let n = labels.len();
    // The apex, `svc.<zone>` and `pod.<zone>` exist and hold nothing.
    if n == 0 || (n == 1 && (labels[0] == b"svc" || labels[0] == b"pod")) {
        return none();
    }
    let kind = labels[n - 1];
    if kind != b"svc" && kind != b"pod" {
        return Err(NameError);
    }
    let namespace = text(labels[n - 2])?;
    if !(cfg.configured_namespace(namespace) && data.namespace_exists(namespace)) {
        return Err(NameError);
    }
    if n == 2 {
        return none();
    }
    let service = text(labels[n - 3])?;
    let (mut endpoint, mut port, mut protocol) = (None, None, None);
    match n - 3 {
        0 => {}
        1 => endpoint = Some(text(labels[0])?),
        2 => {
            port = Some(text(strip_underscore(labels[0]))?);
            protocol = Some(text(strip_underscore(labels[1]))?);
        }
        _ => return Err(NameError),
    }
    if kind == b"pod" {
        return find_pod(data, cfg, namespace, service);
    }
    find_services(data, cfg, namespace, service, endpoint, port, protocol)
}

fn text(l: &[u8]) -> Result<&str, NameError> {
    std::str::from_utf8(l).map_err(|_| NameError)
}

fn strip_underscore(l: &[u8]) -> &[u8] {
    l.strip_prefix(b"_").unwrap_or(l)
}

fn wild_match(want: Option<&str>, have: &str) -> bool {
    want.is_none_or(|w| w.eq_ignore_ascii_case(have))
}

/// `parts` (leftmost first) in front of `zone`, in one allocation.
fn domain(parts: &[&str], zone: &Name) -> Result<Name, NameError> {
    let mut wire = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum::<usize>() + zone.wire().len());
    for p in parts {
        if p.is_empty() || p.len() > 63 {
            return Err(NameError);
        }
        wire.push(p.len() as u8);
        wire.extend_from_slice(p.as_bytes());
    }
    wire.extend_from_slice(zone.wire());
    Name::from_wire(wire).ok_or(NameError)
}

fn find_pod<'a>(data: &ZoneData, cfg: &ZoneConfig, namespace: &str, podname: &str) -> Result<Found<'a>, NameError> {
    if cfg.pods == PodMode::Disabled {
        return Err(NameError);
    }
    let text = if podname.matches('-').count() == 3 && !podname.contains("--") {
        podname.replace('-', ".")
    } else {
        podname.replace('-', ":")
    };
    let ip: IpAddr = text.parse().map_err(|_| NameError)?;
    if cfg.pods == PodMode::Verified && !data.pod_ip_in_namespace(&ip, namespace) {
        return Err(NameError);
    }
    let domain = domain(&[podname, namespace, "pod"], &cfg.zone)?;
    Ok(Found { domain: Some(domain), items: vec![Item { host: Host::Ip(ip), port: None, hostname: None }] })
}

fn find_services<'a>(
    data: &'a ZoneData,
    cfg: &ZoneConfig,
    namespace: &str,
    service: &str,
    endpoint: Option<&str>,
    port: Option<&str>,
    protocol: Option<&str>,
) -> Result<Found<'a>, NameError> {
    let svc = data.service(namespace, service).ok_or(NameError)?;
    let mut items = Vec::new();
    match &svc.kind {
        SvcKind::ExternalName(target) => {
            if endpoint.is_some() || target.parse::<IpAddr>().is_ok() {
                return Err(NameError);
            }
            let target = Name::from_dotted(target).map_err(|_| NameError)?;
            items.push(Item { host: Host::Name(target), port: None, hostname: None });
        }
        kind if *kind == SvcKind::Headless || endpoint.is_some() => {
            for slice in data.slices_of(namespace, service) {
                for ep in &slice.endpoints {
                    if endpoint.is_some_and(|e| !e.eq_ignore_ascii_case(&ep.hostname)) {
                        continue;
                    }
                    for p in &slice.ports {
                        if wild_match(port, &p.name) && wild_match(protocol, &p.protocol) {
                            items.push(Item { host: Host::Ip(ep.ip), port: p.port, hostname: Some(&ep.hostname) });
                        }
                    }
                }
            }
        }
        SvcKind::ClusterIp(ips) => {
            for p in &svc.ports {
                if wild_match(port, &p.name) && wild_match(protocol, &p.protocol) {
                    items.extend(ips.iter().map(|ip| Item { host: Host::Ip(*ip), port: p.port, hostname: None }));
                }
            }
        }
        SvcKind::Headless => {}
    }
    if items.is_empty() {
        return Err(NameError);
    }
    Ok(Found { domain: Some(domain(&[service, namespace, "svc"], &cfg.zone)?), items })
}

enum Addresses {
    Done(Vec<Record>),
    /// Stop: `target` is outside the zone and must be looked up upstream; the answer starts
    /// with `cnames`.
    Chase {
        cnames: Vec<Record>,
        target: Name,
    },
}

/// A / AAAA (and TXT, which only ExternalName CNAMEs can answer) for `items` owned by `owner`,
/// following in-zone ExternalName targets; `chain` holds the CNAMEs that led here.
fn addresses(
    data: &ZoneData,
    cfg: &ZoneConfig,
    items: &[Item<'_>],
    owner: &Name,
    qtype: u16,
    chain: &[Record],
) -> Addresses {
    let mut records = Vec::new();
    let mut seen = Seen::default();
    for item in items {
        match &item.host {
            Host::Name(target) => {
                if target == owner || chain.len() > MAX_CNAME_CHAIN {
                    continue;
                }
                let cname = Record::new(owner.clone(), cfg.ttl, RecordData::Cname(target.clone()));
                if chain.contains(&cname) {
                    continue;
                }
                let mut next_chain = chain.to_vec();
                next_chain.push(cname.clone());
                if !target.is_subdomain_of(&cfg.zone) {
                    return Addresses::Chase { cnames: next_chain, target: target.clone() };
                }
                let lower = target.to_lowercase();
                let mut buf: [&[u8]; MAX_LABELS] = [&[]; MAX_LABELS];
                let Some(labels) = labels_before(&lower, &cfg.zone, &mut buf) else { continue };
                let Ok(next) = lookup(data, cfg, labels) else { continue };
                match addresses(data, cfg, &next.items, target, qtype, &next_chain) {
                    Addresses::Done(next) if !next.is_empty() => {
                        records.push(cname);
                        records.extend(next);
                    }
                    Addresses::Done(_) => {}
                    chase => return chase,
                }
            }
            Host::Ip(ip) => {
                let data = match (qtype, ip) {
                    (rtype::A, IpAddr::V4(v4)) => RecordData::A(*v4),
                    (rtype::AAAA, IpAddr::V6(v6)) => RecordData::Aaaa(*v6),
                    _ => continue,
                };
                if seen.insert(*ip) {
                    records.push(Record::new(owner.clone(), cfg.ttl, data));
                }
            }
        }
    }
    Addresses::Done(records)
}

/// Addresses already answered: a short list scanned, a set past that (big headless Services).
#[derive(Default)]
struct Seen {
    few: Vec<IpAddr>,
    many: HashSet<IpAddr>,
}

impl Seen {
    fn insert(&mut self, ip: IpAddr) -> bool {
        if self.few.len() < 16 {
            if self.few.contains(&ip) {
                return false;
            }
            self.few.push(ip);
            return true;
        }
        !self.few.contains(&ip) && self.many.insert(ip)
    }
}

/// SRV records with their address records in additional (backend_lookup.go's SRV): every item
/// has priority 0 and the weight 100 / number of items; duplicates (same target and port, same
/// target and address) are dropped; ExternalName items have no SRV.
fn srv_records(found: &Found<'_>, owner: &Name, ttl: u32) -> (Vec<Record>, Vec<Record>) {
    let items: Vec<&Item<'_>> = found.items.iter().filter(|i| matches!(i.host, Host::Ip(_))).collect();
    let weight = if items.is_empty() { 100 } else { ((100.0 / items.len() as f64).floor() as u16).max(1) };
    let (mut answer, mut additional) = (Vec::new(), Vec::new());
    let mut seen_srv = HashSet::new();
    let mut seen_addr = HashSet::new();
    for item in items {
        let (Host::Ip(ip), Some(port)) = (&item.host, item.port) else { continue };
        let Some(target) = found.key(item) else { continue };
        if seen_srv.insert((target.clone(), port)) {
            let data = RecordData::Srv { priority: 0, weight, port, target: target.clone() };
            answer.push(Record::new(owner.clone(), ttl, data));
        }
        if seen_addr.insert((target.clone(), *ip)) {
            additional.push(Record::new(target, ttl, address(*ip)));
        }
    }
    (answer, additional)
}

fn address(ip: IpAddr) -> RecordData {
    match ip {
        IpAddr::V4(v4) => RecordData::A(v4),
        IpAddr::V6(v6) => RecordData::Aaaa(v6),
    }
}

/// The zone's SOA, as CoreDNS writes it.
pub(crate) fn soa(data: &ZoneData, cfg: &ZoneConfig) -> Record {
    let z = &cfg.zone;
    let negative = cfg.negative_ttl.unwrap_or(cfg.ttl);
    let data = RecordData::Soa {
        mname: z.prepend("dns").and_then(|n| n.prepend("ns")).unwrap_or_else(|_| z.clone()),
        rname: z.prepend("hostmaster").unwrap_or_else(|_| z.clone()),
        serial: data.serial,
        refresh: 7200,
        retry: 1800,
        expire: 86400,
        minimum: negative,
    };
    Record::new(z.clone(), negative.min(300), data)
}

/// NS records for the apex and the addresses behind them: the DNS Service's name and cluster
/// IPs when it exists, else `ns.dns.<zone>` with the local addresses.
fn ns_records(data: &ZoneData, cfg: &ZoneConfig, owner: &Name) -> (Vec<Record>, Vec<Record>) {
    let ttl = cfg.ttl;
    if let Some((ns, name)) = &cfg.dns_service
        && let Some(SvcKind::ClusterIp(ips)) = data.service(ns, name).map(|s| &s.kind)
        && let Ok(target) = domain(&[name, ns, "svc"], &cfg.zone)
    {
        let answer = vec![Record::new(owner.clone(), ttl, RecordData::Ns(target.clone()))];
        let additional = ips.iter().map(|ip| Record::new(target.clone(), ttl, address(*ip))).collect();
        return (answer, additional);
    }
    let Ok(target) = domain(&["ns", "dns"], &cfg.zone) else { return (vec![], vec![]) };
    let additional = cfg.local_ips.iter().map(|ip| Record::new(target.clone(), ttl, address(*ip))).collect();
    (vec![Record::new(owner.clone(), ttl, RecordData::Ns(target))], additional)
}

/// PTR for a cluster IP (the Service's name) or, failing that, for ready endpoints.
fn ptr_records(data: &ZoneData, cfg: &ZoneConfig, owner: &Name, ip: &IpAddr) -> Vec<Record> {
    let shown = |ns: &str| cfg.namespaces.is_none() || cfg.configured_namespace(ns) && data.namespace_exists(ns);
    let ptr =
        |parts: &[&str]| domain(parts, &cfg.zone).ok().map(|n| Record::new(owner.clone(), cfg.ttl, RecordData::Ptr(n)));
    if let Some(rec) =
        data.services_with_ip(ip).iter().find(|(ns, _)| shown(ns)).and_then(|(ns, n)| ptr(&[n, ns, "svc"]))
    {
        return vec![rec];
    }
    let mut out: Vec<Record> = Vec::new();
    for (ns, svc, host) in data.endpoints_with_ip(ip) {
        if let Some(rec) = shown(ns).then(|| ptr(&[host, svc, ns, "svc"])).flatten()
            && !out.contains(&rec)
        {
            out.push(rec);
        }
    }
    out
}

/// The address a reverse name (`4.3.2.1.in-addr.arpa`, 32 nibbles `.ip6.arpa`) stands for.
pub(crate) fn reverse_address(name: &Name) -> Option<IpAddr> {
    let wire = name.wire();
    if !(ends_with_ignore_case(wire, b"\x07in-addr\x04arpa\x00") || ends_with_ignore_case(wire, b"\x03ip6\x04arpa\x00"))
    {
        return None;
    }
    let labels: Vec<&[u8]> = name.labels().collect();
    let n = labels.len();
    if n == 6 && labels[4].eq_ignore_ascii_case(b"in-addr") && labels[5].eq_ignore_ascii_case(b"arpa") {
        let mut o = [0u8; 4];
        for (i, l) in labels[..4].iter().enumerate() {
            let s = std::str::from_utf8(l).ok()?;
            if s.len() > 1 && s.starts_with('0') {
                return None;
            }
            o[3 - i] = s.parse().ok()?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(o)));
    }
    if n == 34 && labels[32].eq_ignore_ascii_case(b"ip6") && labels[33].eq_ignore_ascii_case(b"arpa") {
        let mut v: u128 = 0;
        for l in labels[..32].iter().rev() {
            if l.len() != 1 {
                return None;
            }
            v = (v << 4) | (l[0] as char).to_digit(16)? as u128;
        }
        return Some(IpAddr::V6(Ipv6Addr::from(v)));
    }
    None
}

fn ends_with_ignore_case(wire: &[u8], suffix: &[u8]) -> bool {
    wire.len() >= suffix.len() && wire[wire.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// The reverse name of an address (for tests and tools).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(73);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xF, b >> 4));
            }
            s.push_str("ip6.arpa.");
            s
        }
    }
}

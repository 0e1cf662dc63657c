//! The nftables layout, as text for `nft -f`. Pure.
//!
//! The layout is built so that adding or removing a Service or an endpoint changes map elements,
//! never chains (creating chains and validating jumps is what makes kube-proxy's layout slow at
//! scale):
//!
//! - `services` dispatches on `daddr . l4proto . dport` through the verdict map `service-ips`
//!   (ClusterIPs, externalIPs, load balancer IPs) and on `l4proto . dport` through
//!   `service-nodeports` for the node's NodePort addresses.
//! - A verdict names a shared *pick chain* per (kind of traffic, endpoint count): `cluster-3`
//!   does `dnat to daddr . l4proto . dport . numgen random mod 3 map @service-endpoints`, so
//!   every Service with three endpoints uses the same chain and its endpoints are three map
//!   elements keyed by slot. Balance is exact (one slot per endpoint).
//! - Session affinity (`sessionAffinity: ClientIP`): the `-affinity` pick chains first try the
//!   client's remembered endpoint in the dynamic map `affinity`; a filter chain after DNAT
//!   records (or refreshes) it with the Service's timeout.
//! - Filter chains reject traffic to Services without endpoints (`no-endpoint-*`), to ClusterIP
//!   ports no Service uses (`cluster-ips`), drop the rest of the service CIDR, and enforce
//!   `loadBalancerSourceRanges` (`firewall-*`).
//! - Masquerade follows kube-proxy: a mark bit set on the way in, SNAT on the way out; hairpin
//!   traffic (a pod reaching itself through its Service) is matched after DNAT as
//!   `saddr . daddr` in the `hairpin` set of local endpoint addresses.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::IpAddr;

use api::net::{Cidr, IpFamily};

use crate::model::{Endpoint, Port, ServiceState};

/// The name of Portico's table in each family.
pub const TABLE: &str = "portico";
/// kube-proxy's masquerade mark bit (`--masquerade-bit 14`).
pub const MASQ_MARK: u32 = 0x4000;

/// How Service traffic is carried once matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// DNAT to an endpoint in the kernel.
    Kernel,
    /// REDIRECT to the userspace proxy's port for the Service port.
    Userspace,
}

/// What the rules depend on besides the Services.
#[derive(Clone, Debug)]
pub struct Config {
    pub family: IpFamily,
    pub node_name: String,
    /// Addresses NodePorts answer on (`--nodeport-addresses`; the node's primary IPs).
    pub nodeport_ips: Vec<IpAddr>,
    /// Traffic from outside it to a ClusterIP is masqueraded (kube-proxy's `--cluster-cidr`).
    pub cluster_cidr: Option<Cidr>,
    /// Traffic to it that no Service claims is dropped, so it never leaves the node.
    pub service_cidr: Option<Cidr>,
    pub mode: Mode,
}

impl Config {
    pub fn family_name(&self) -> &'static str {
        match self.family {
            IpFamily::V4 => "ip",
            IpFamily::V6 => "ip6",
        }
    }

    fn addr_type(&self) -> &'static str {
        match self.family {
            IpFamily::V4 => "ipv4_addr",
            IpFamily::V6 => "ipv6_addr",
        }
    }

    fn ip(&self) -> &'static str {
        self.family_name()
    }
}

/// The maps and sets whose elements Services contribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Map {
    ClusterIps,
    ServiceIps,
    ServiceNodePorts,
    NoEndpointServices,
    NoEndpointNodePorts,
    /// Endpoint number `n` of every Service that has more than `n`: `service-endpoints-<n>`.
    ServiceEndpoints(u16),
    NodePortEndpoints(u16),
    FirewallIps,
    FirewallAllow,
    Hairpin,
    AffinityServices,
    UserspaceTcp,
    UserspaceUdp,
    UserspaceNodePortTcp,
    UserspaceNodePortUdp,
}

impl Map {
    pub fn name(self) -> String {
        match self {
            Map::ServiceEndpoints(n) => format!("service-endpoints-{n}"),
            Map::NodePortEndpoints(n) => format!("nodeport-endpoints-{n}"),
            other => other.fixed_name().to_owned(),
        }
    }

    fn fixed_name(self) -> &'static str {
        match self {
            Map::ClusterIps => "cluster-ips",
            Map::ServiceIps => "service-ips",
            Map::ServiceNodePorts => "service-nodeports",
            Map::NoEndpointServices => "no-endpoint-services",
            Map::NoEndpointNodePorts => "no-endpoint-nodeports",
            Map::ServiceEndpoints(_) | Map::NodePortEndpoints(_) => unreachable!("named in name()"),
            Map::FirewallIps => "firewall-ips",
            Map::FirewallAllow => "firewall-allow",
            Map::Hairpin => "hairpin",
            Map::AffinityServices => "affinity-services",
            Map::UserspaceTcp => "userspace-tcp",
            Map::UserspaceUdp => "userspace-udp",
            Map::UserspaceNodePortTcp => "userspace-nodeport-tcp",
            Map::UserspaceNodePortUdp => "userspace-nodeport-udp",
        }
    }

    const ALL: [Map; 13] = [
        Map::ClusterIps,
        Map::ServiceIps,
        Map::ServiceNodePorts,
        Map::NoEndpointServices,
        Map::NoEndpointNodePorts,
        Map::FirewallIps,
        Map::FirewallAllow,
        Map::Hairpin,
        Map::AffinityServices,
        Map::UserspaceTcp,
        Map::UserspaceUdp,
        Map::UserspaceNodePortTcp,
        Map::UserspaceNodePortUdp,
    ];

    fn declaration(self, c: &Config) -> String {
        let (kind, body) = self.definition(c);
        format!("\t{kind} {} {{ {body}; }}\n", self.name())
    }

    /// `add map ip portico <name> { ... }` for a map created in a partial sync.
    fn add(self, c: &Config) -> String {
        let (kind, body) = self.definition(c);
        format!("add {kind} {} {TABLE} {} {{ {body}; }}\n", c.family_name(), self.name())
    }

    fn definition(self, c: &Config) -> (&'static str, String) {
        let a = c.addr_type();
        let (kind, body) = match self {
            Map::ClusterIps => ("set", format!("type {a}")),
            Map::ServiceIps | Map::NoEndpointServices | Map::AffinityServices => {
                ("map", format!("type {a} . inet_proto . inet_service : verdict"))
            }
            Map::ServiceNodePorts | Map::NoEndpointNodePorts => {
                ("map", "type inet_proto . inet_service : verdict".into())
            }
            Map::ServiceEndpoints(_) => ("map", format!("type {a} . inet_proto . inet_service : {a} . inet_service")),
            Map::NodePortEndpoints(_) => ("map", format!("type inet_proto . inet_service : {a} . inet_service")),
            Map::FirewallIps => ("set", format!("type {a} . inet_proto . inet_service")),
            Map::FirewallAllow => ("set", format!("type {a} . inet_proto . inet_service . {a}; flags interval")),
            Map::Hairpin => ("set", format!("type {a} . {a}")),
            Map::UserspaceTcp | Map::UserspaceUdp => ("map", format!("type {a} . inet_service : inet_service")),
            Map::UserspaceNodePortTcp | Map::UserspaceNodePortUdp => ("map", "type inet_service : inet_service".into()),
        };
        (kind, body)
    }
}

/// The kinds of traffic a pick chain serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// To a ClusterIP: masquerade what comes from outside the cluster CIDR.
    Cluster,
    /// To an externalIP or load balancer IP, externalTrafficPolicy Cluster: always masquerade.
    External,
    /// The same with externalTrafficPolicy Local: keep the client's address.
    ExternalLocal,
    NodePort,
    NodePortLocal,
}

/// A chain created on demand and shared by every Service that needs it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Chain {
    /// DNAT to endpoint `slot` of the Service (or NodePort) in the packet, from the map of that
    /// slot. Comes first in the order so the pick chains that jump here are created after it.
    Slot {
        nodeport: bool,
        slot: u16,
    },
    Pick {
        kind: Kind,
        count: usize,
        affinity: bool,
    },
    /// Records the endpoint a client was sent to, with this timeout in seconds.
    AffinityRecord(u32),
}

impl Chain {
    /// The map a slot chain reads.
    fn map(&self) -> Option<Map> {
        match self {
            Chain::Slot { nodeport: false, slot } => Some(Map::ServiceEndpoints(*slot)),
            Chain::Slot { nodeport: true, slot } => Some(Map::NodePortEndpoints(*slot)),
            _ => None,
        }
    }

    pub fn name(&self) -> String {
        match self {
            Chain::Slot { nodeport: false, slot } => format!("service-slot-{slot}"),
            Chain::Slot { nodeport: true, slot } => format!("nodeport-slot-{slot}"),
            Chain::Pick { kind, count, affinity } => {
                let kind = match kind {
                    Kind::Cluster => "cluster",
                    Kind::External => "external",
                    Kind::ExternalLocal => "external-local",
                    Kind::NodePort => "nodeport",
                    Kind::NodePortLocal => "nodeport-local",
                };
                if *affinity { format!("{kind}-{count}-affinity") } else { format!("{kind}-{count}") }
            }
            Chain::AffinityRecord(timeout) => format!("affinity-{timeout}"),
        }
    }

    /// The chain's rules, one per line.
    pub fn rules(&self, c: &Config) -> Vec<String> {
        let ip = c.ip();
        match self {
            Chain::Pick { kind, count, affinity } => {
                let mut rules = vec![];
                match kind {
                    Kind::Cluster => {
                        if let Some(cidr) = c.cluster_cidr {
                            rules.push(format!("{ip} saddr != {cidr} jump mark-for-masquerade"));
                        }
                    }
                    Kind::External | Kind::NodePort => rules.push("jump mark-for-masquerade".into()),
                    Kind::ExternalLocal | Kind::NodePortLocal => {
                        rules.push("fib saddr type local jump mark-for-masquerade".into())
                    }
                }
                if *affinity {
                    rules.push(format!("dnat to {ip} saddr . {ip} daddr . meta l4proto . th dport map @affinity"));
                }
                // numgen picks the slot; each slot's chain looks the endpoint up in its map.
                // (A single map keyed by `... . numgen` would need `typeof`, which nft 1.0.6
                // cannot read back from the kernel for `th dport`.)
                let nodeport = matches!(kind, Kind::NodePort | Kind::NodePortLocal);
                let slots: Vec<String> = (0..*count)
                    .map(|n| format!("{n} : goto {}", Chain::Slot { nodeport, slot: n as u16 }.name()))
                    .collect();
                rules.push(format!("numgen random mod {count} vmap {{ {} }}", slots.join(", ")));
                rules
            }
            Chain::Slot { nodeport, slot } => {
                let key = if *nodeport {
                    "meta l4proto . th dport".to_owned()
                } else {
                    format!("{ip} daddr . meta l4proto . th dport")
                };
                let map = if *nodeport { Map::NodePortEndpoints(*slot) } else { Map::ServiceEndpoints(*slot) };
                vec![format!("dnat to {key} map @{}", map.name())]
            }
            Chain::AffinityRecord(timeout) => ["tcp", "udp", "sctp"]
                .iter()
                .map(|p| {
                    format!(
                        "meta l4proto {p} update @affinity {{ {ip} saddr . ct original {ip} daddr . meta l4proto . \
                         ct original proto-dst timeout {timeout}s : {ip} daddr . th dport }}"
                    )
                })
                .collect(),
        }
    }
}

/// One element a Service puts into a map or set.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Element {
    pub map: Map,
    pub key: String,
    /// `None` in sets.
    pub value: Option<String>,
}

/// Everything one Service adds to the table: elements, and the shared chains they jump to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contribution {
    pub elements: Vec<Element>,
    pub chains: BTreeSet<Chain>,
}

impl Contribution {
    fn put(&mut self, map: Map, key: String, value: Option<String>) {
        self.elements.push(Element { map, key, value });
    }

    fn verdict(&mut self, map: Map, key: String, chain: Chain) {
        self.put(map, key, Some(format!("goto {}", chain.name())));
        if let Chain::Pick { kind, count, .. } = chain {
            let nodeport = matches!(kind, Kind::NodePort | Kind::NodePortLocal);
            self.chains.extend((0..count).map(|n| Chain::Slot { nodeport, slot: n as u16 }));
        }
        self.chains.insert(chain);
    }
}

/// A literal address as nft reads it inside a concatenation.
fn addr(ip: &IpAddr) -> String {
    ip.to_string()
}

/// What `state` contributes to the table of `c.family`. `userspace_port` gives the userspace
/// proxy's listening port for a Service port (in [`Mode::Userspace`]).
///
/// `previous` is the Service's last contribution: endpoints that stay keep their slot, so
/// changing one endpoint changes one element rather than shifting every slot after it.
pub fn contribution(
    state: &ServiceState,
    c: &Config,
    userspace_port: &dyn Fn(&Port) -> Option<u16>,
    previous: Option<&Contribution>,
) -> Contribution {
    let mut out = Contribution::default();
    let slots_before = previous.map(previous_slots).unwrap_or_default();
    let svc = &state.service;
    let in_family = |ip: &&IpAddr| IpFamily::of(**ip) == c.family;
    let cluster_ips: Vec<&IpAddr> = svc.cluster_ips.iter().filter(in_family).collect();
    let external_ips: Vec<&IpAddr> =
        svc.external_ips.iter().chain(svc.load_balancer_ips.iter()).filter(in_family).collect();
    let affinity = svc.affinity_timeout.is_some();
    for ip in &cluster_ips {
        out.put(Map::ClusterIps, addr(ip), None);
    }
    for port in &svc.ports {
        let targets = state.targets(port, &c.node_name);
        let family_only = |eps: &[Endpoint]| -> Vec<Endpoint> {
            eps.iter().filter(|e| IpFamily::of(e.ip) == c.family).cloned().collect()
        };
        let cluster = family_only(&targets.cluster);
        let external = family_only(&targets.external);
        let proto = port.protocol.lower();
        // With nowhere to go: reject (connection refused at once), or drop when endpoints
        // exist but a Local policy excludes them all (kube-proxy does the same).
        let none = |local: bool| {
            if local && targets.any { "drop".to_string() } else { "goto reject-chain".to_string() }
        };

        // Addresses with the endpoint set and pick-chain kind their traffic uses.
        let external_kind = if svc.external_policy_local() { Kind::ExternalLocal } else { Kind::External };
        let groups = cluster_ips
            .iter()
            .map(|ip| (*ip, &cluster, Kind::Cluster, svc.internal_local))
            .chain(external_ips.iter().map(|ip| (*ip, &external, external_kind, svc.external_policy_local())));
        for (ip, eps, kind, local) in groups {
            let key = format!("{} . {proto} . {}", addr(ip), port.port);
            if eps.is_empty() {
                out.put(Map::NoEndpointServices, key, Some(none(local)));
                continue;
            }
            match c.mode {
                Mode::Kernel => {
                    for (slot, value) in
                        assign_slots(slots_before.get(&(false, key.clone())), eps).into_iter().enumerate()
                    {
                        out.put(Map::ServiceEndpoints(slot as u16), key.clone(), Some(value));
                    }
                    out.verdict(Map::ServiceIps, key.clone(), Chain::Pick { kind, count: eps.len(), affinity });
                    if let Some(t) = svc.affinity_timeout {
                        out.verdict(Map::AffinityServices, key.clone(), Chain::AffinityRecord(t));
                    }
                }
                Mode::Userspace => {
                    let (Some(local_port), Some(map)) = (userspace_port(port), userspace_map(port, false)) else {
                        continue;
                    };
                    out.put(map, format!("{} . {}", addr(ip), port.port), Some(local_port.to_string()));
                    out.put(Map::ServiceIps, key.clone(), Some("goto userspace-redirect".into()));
                }
            }
            if kind != Kind::Cluster && !svc.source_ranges.is_empty() && svc.load_balancer_ips.contains(ip) {
                out.put(Map::FirewallIps, key.clone(), None);
                for range in svc.source_ranges.iter().filter(|r| r.family() == c.family) {
                    out.put(Map::FirewallAllow, format!("{key} . {range}"), None);
                }
            }
        }

        if let Some(node_port) = port.node_port {
            let key = format!("{proto} . {node_port}");
            let local = svc.external_policy_local();
            if external.is_empty() {
                out.put(Map::NoEndpointNodePorts, key, Some(none(local)));
            } else {
                match c.mode {
                    Mode::Kernel => {
                        let before = slots_before.get(&(true, key.clone()));
                        for (slot, value) in assign_slots(before, &external).into_iter().enumerate() {
                            out.put(Map::NodePortEndpoints(slot as u16), key.clone(), Some(value));
                        }
                        let kind = if local { Kind::NodePortLocal } else { Kind::NodePort };
                        out.verdict(Map::ServiceNodePorts, key, Chain::Pick { kind, count: external.len(), affinity });
                        if let Some(t) = svc.affinity_timeout {
                            // The record is keyed on the address the client dialled.
                            for ip in c.nodeport_ips.iter().filter(|ip| IpFamily::of(**ip) == c.family) {
                                let key = format!("{} . {proto} . {node_port}", addr(ip));
                                out.verdict(Map::AffinityServices, key, Chain::AffinityRecord(t));
                            }
                        }
                    }
                    Mode::Userspace => {
                        if let (Some(local_port), Some(map)) = (userspace_port(port), userspace_map(port, true)) {
                            out.put(map, node_port.to_string(), Some(local_port.to_string()));
                            out.put(Map::ServiceNodePorts, key, Some("goto userspace-redirect-nodeport".into()));
                        }
                    }
                }
            }
        }

        // A local pod that reaches itself through the Service must be masqueraded, or it
        // would answer itself directly and drop the reply.
        for e in cluster.iter().chain(&external).filter(|e| e.is_local(&c.node_name)) {
            out.put(Map::Hairpin, format!("{0} . {0}", addr(&e.ip)), None);
        }
    }
    out.elements.sort();
    out.elements.dedup();
    out
}

/// Endpoint values by slot, per (NodePort?, key), from a contribution.
fn previous_slots(c: &Contribution) -> std::collections::HashMap<(bool, String), Vec<(u16, String)>> {
    let mut out: std::collections::HashMap<(bool, String), Vec<(u16, String)>> = Default::default();
    for e in &c.elements {
        let (nodeport, slot) = match e.map {
            Map::ServiceEndpoints(n) => (false, n),
            Map::NodePortEndpoints(n) => (true, n),
            _ => continue,
        };
        if let Some(v) = &e.value {
            out.entry((nodeport, e.key.clone())).or_default().push((slot, v.clone()));
        }
    }
    out
}

/// The endpoints' values in slot order: those that were already in a slot that still exists
/// keep it; the rest fill the free slots in sorted order.
fn assign_slots(before: Option<&Vec<(u16, String)>>, eps: &[Endpoint]) -> Vec<String> {
    let values: Vec<String> = eps.iter().map(|e| format!("{} . {}", addr(&e.ip), e.port)).collect();
    let mut slots: Vec<Option<String>> = vec![None; values.len()];
    let mut placed = std::collections::HashSet::new();
    for (slot, v) in before.into_iter().flatten() {
        let slot = *slot as usize;
        if slot < slots.len() && slots[slot].is_none() && values.contains(v) && placed.insert(v.clone()) {
            slots[slot] = Some(v.clone());
        }
    }
    let mut rest = values.into_iter().filter(|v| !placed.contains(v));
    slots.into_iter().map(|s| s.unwrap_or_else(|| rest.next().unwrap_or_default())).collect()
}

fn userspace_map(port: &Port, node_port: bool) -> Option<Map> {
    use crate::model::Protocol;
    match (port.protocol, node_port) {
        (Protocol::Tcp, false) => Some(Map::UserspaceTcp),
        (Protocol::Udp, false) => Some(Map::UserspaceUdp),
        (Protocol::Tcp, true) => Some(Map::UserspaceNodePortTcp),
        (Protocol::Udp, true) => Some(Map::UserspaceNodePortUdp),
        (Protocol::Sctp, _) => None,
    }
}

/// The table's fixed part: maps, sets and the chains every node has. `chains` are the shared
/// chains Services need.
pub fn table(c: &Config, chains: &BTreeSet<Chain>) -> String {
    let fam = c.family_name();
    let ip = c.ip();
    let mut t = String::new();
    let _ = writeln!(t, "add table {fam} {TABLE}");
    let _ = writeln!(t, "delete table {fam} {TABLE}");
    let _ = writeln!(t, "table {fam} {TABLE} {{");
    let _ = writeln!(t, "\tcomment \"rules for Portico's service proxy\"");
    for m in Map::ALL {
        t.push_str(&m.declaration(c));
    }
    let a = c.addr_type();
    let _ = writeln!(t, "\tset nodeport-ips {{ type {a}; }}");
    let _ = writeln!(
        t,
        "\tmap affinity {{ type {a} . {a} . inet_proto . inet_service : {a} . inet_service; flags dynamic,timeout; \
         timeout 3h; size 1048576; }}"
    );

    for map in chains.iter().filter_map(Chain::map) {
        t.push_str(&map.declaration(c));
    }

    let mut chain = |name: &str, hook: Option<&str>, rules: &[String]| {
        let _ = writeln!(t, "\tchain {name} {{");
        if let Some(hook) = hook {
            let _ = writeln!(t, "\t\t{hook}; policy accept;");
        }
        for r in rules {
            let _ = writeln!(t, "\t\t{r}");
        }
        let _ = writeln!(t, "\t}}");
    };
    let s = |rules: &[&str]| rules.iter().map(|r| r.to_string()).collect::<Vec<_>>();
    chain("nat-prerouting", Some("type nat hook prerouting priority dstnat"), &s(&["jump services"]));
    chain("nat-output", Some("type nat hook output priority -100"), &s(&["jump services"]));
    chain("nat-postrouting", Some("type nat hook postrouting priority srcnat"), &s(&["jump masquerading"]));
    chain(
        "services",
        None,
        &[
            format!("{ip} daddr . meta l4proto . th dport vmap @service-ips"),
            format!("{ip} daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"),
        ],
    );
    chain("mark-for-masquerade", None, &[format!("meta mark set meta mark | {MASQ_MARK:#x}")]);
    chain(
        "masquerading",
        None,
        &[
            format!("ct status dnat {ip} saddr . {ip} daddr @hairpin masquerade"),
            format!("meta mark & {MASQ_MARK:#x} == 0 return"),
            format!("meta mark set meta mark ^ {MASQ_MARK:#x}"),
            "masquerade fully-random".into(),
        ],
    );
    chain(
        "filter-prerouting",
        Some("type filter hook prerouting priority dstnat - 10"),
        &s(&["ct state new jump firewall-check"]),
    );
    chain(
        "filter-input",
        Some("type filter hook input priority -110"),
        &s(&["ct state new jump nodeport-endpoints-check", "ct state new jump service-endpoints-check"]),
    );
    chain(
        "filter-forward",
        Some("type filter hook forward priority -110"),
        &s(&["ct state new jump service-endpoints-check", "ct state new jump cluster-ips-check"]),
    );
    chain(
        "filter-output",
        Some("type filter hook output priority -110"),
        &s(&["ct state new jump service-endpoints-check"]),
    );
    chain(
        "filter-output-post-dnat",
        Some("type filter hook output priority -90"),
        &s(&["ct state new jump cluster-ips-check"]),
    );
    chain(
        "filter-postrouting",
        Some("type filter hook postrouting priority 0"),
        &s(&["ct state new ct status dnat jump affinity-check"]),
    );
    chain(
        "filter-input-post-dnat",
        Some("type filter hook input priority 0"),
        &s(&["ct state new ct status dnat jump affinity-check"]),
    );
    chain(
        "firewall-check",
        None,
        &[format!(
            "{ip} daddr . meta l4proto . th dport @firewall-ips {ip} daddr . meta l4proto . th dport . {ip} saddr != @firewall-allow drop"
        )],
    );
    chain(
        "service-endpoints-check",
        None,
        &[format!("{ip} daddr . meta l4proto . th dport vmap @no-endpoint-services")],
    );
    chain(
        "nodeport-endpoints-check",
        None,
        &[format!("{ip} daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports")],
    );
    let mut cluster_ips_check = vec![format!("{ip} daddr @cluster-ips reject")];
    if let Some(cidr) = c.service_cidr.filter(|s| s.family() == c.family) {
        cluster_ips_check.push(format!("{ip} daddr {cidr} drop"));
    }
    chain("cluster-ips-check", None, &cluster_ips_check);
    chain("reject-chain", None, &s(&["reject"]));
    chain(
        "affinity-check",
        None,
        &["tcp", "udp", "sctp"]
            .iter()
            .map(|p| {
                format!("meta l4proto {p} ct original {ip} daddr . meta l4proto . ct original proto-dst vmap @affinity-services")
            })
            .collect::<Vec<_>>(),
    );
    chain(
        "userspace-redirect",
        None,
        &[
            format!("meta l4proto tcp redirect to : {ip} daddr . th dport map @userspace-tcp"),
            format!("meta l4proto udp redirect to : {ip} daddr . th dport map @userspace-udp"),
        ],
    );
    chain(
        "userspace-redirect-nodeport",
        None,
        &s(&[
            "meta l4proto tcp redirect to : th dport map @userspace-nodeport-tcp",
            "meta l4proto udp redirect to : th dport map @userspace-nodeport-udp",
        ]),
    );
    for ch in chains {
        chain(&ch.name(), None, &ch.rules(c));
    }
    let _ = writeln!(t, "}}");
    let ips: Vec<String> = c.nodeport_ips.iter().filter(|ip| IpFamily::of(**ip) == c.family).map(addr).collect();
    if !ips.is_empty() {
        let _ = writeln!(t, "add element {fam} {TABLE} nodeport-ips {{ {} }}", ips.join(", "));
    }
    t
}

/// `add chain` and its rules (and a slot chain's map), for a chain that appears in a partial
/// sync.
pub fn add_chain(c: &Config, chain: &Chain) -> String {
    let fam = c.family_name();
    let name = chain.name();
    let mut t = String::new();
    if let Some(map) = chain.map() {
        t.push_str(&map.add(c));
    }
    let _ = writeln!(t, "add chain {fam} {TABLE} {name}");
    for r in chain.rules(c) {
        let _ = writeln!(t, "add rule {fam} {TABLE} {name} {r}");
    }
    t
}

/// `add element` (or `delete element`) lines for `elements`, batched per map.
pub fn elements<'a>(c: &Config, verb: &str, elements: impl IntoIterator<Item = &'a Element>) -> String {
    const BATCH: usize = 2000;
    let fam = c.family_name();
    let mut by_map: std::collections::BTreeMap<Map, Vec<&Element>> = Default::default();
    for e in elements {
        by_map.entry(e.map).or_default().push(e);
    }
    let mut t = String::new();
    for (map, elems) in by_map {
        for chunk in elems.chunks(BATCH) {
            let _ = write!(t, "{verb} element {fam} {TABLE} {} {{ ", map.name());
            for (i, e) in chunk.iter().enumerate() {
                if i > 0 {
                    t.push_str(", ");
                }
                t.push_str(&e.key);
                if verb != "delete"
                    && let Some(v) = &e.value
                {
                    t.push_str(" : ");
                    t.push_str(v);
                }
            }
            t.push_str(" }\n");
        }
    }
    t
}

/// Removes the table (`portico proxy --cleanup`).
pub fn delete_table(c: &Config) -> String {
    let fam = c.family_name();
    format!("add table {fam} {TABLE}\ndelete table {fam} {TABLE}\n")
}

/// `delete element` for the affinity records (from `nft list map <family> portico affinity`)
/// that point at one of `gone` ("ip . port"), so clients remembered at a removed endpoint get
/// a new one on their next connection instead of being sent to a dead address until the
/// timeout (which each new connection would renew). Empty when none does.
pub fn purge_affinity(c: &Config, listing: &str, gone: &[String]) -> String {
    let Some(start) = listing.find("elements = {") else { return String::new() };
    let body = &listing[start + "elements = {".len()..];
    let body = &body[..body.find('}').unwrap_or(body.len())];
    let mut keys = vec![];
    for element in body.split(',') {
        let Some((key, value)) = element.split_once(" : ") else { continue };
        // In listings the key is followed by "timeout 10m expires 9m58s" or "expires 2h59m".
        let key = key.split(" timeout ").next().unwrap_or(key);
        let key = key.split(" expires ").next().unwrap_or(key).trim();
        if gone.iter().any(|g| g == value.trim()) {
            keys.push(key.to_owned());
        }
    }
    if keys.is_empty() {
        return String::new();
    }
    format!("delete element {} {TABLE} affinity {{ {} }}\n", c.family_name(), keys.join(", "))
}

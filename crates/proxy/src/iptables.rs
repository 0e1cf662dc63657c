//! The `iptables` data plane: kube-proxy's iptables layout rendered from the proxy model, and
//! the loader that feeds it to `iptables-restore`.
//!
//! [`render`] produces the whole `iptables-restore` input for the `filter` and `nat` tables,
//! line for line what kube-proxy's `syncProxyRules` writes (same chain names, same rule order,
//! same comments), so `iptables-save | grep KUBE-SVC` and the usual kube-proxy debugging habits
//! work unchanged:
//!
//! - `nat`: `KUBE-SERVICES` matches each ClusterIP, external IP and load-balancer IP and port,
//!   `KUBE-NODEPORTS` each NodePort; they jump to the per-port chains `KUBE-SVC-*` (Cluster
//!   policy endpoints, random choice with `-m statistic`), `KUBE-SVL-*` (Local policy endpoints),
//!   `KUBE-EXT-*` (external traffic: masquerade, or with `externalTrafficPolicy: Local` the
//!   pod/node short-circuits), `KUBE-FW-*` (`loadBalancerSourceRanges`) and one `KUBE-SEP-*` per
//!   endpoint (hairpin masquerade, optional `-m recent` affinity, DNAT). `KUBE-MARK-MASQ` sets the
//!   masquerade bit and `KUBE-POSTROUTING` masquerades marked packets.
//! - `filter`: `KUBE-SERVICES`/`KUBE-EXTERNAL-SERVICES` REJECT traffic to ports without
//!   endpoints (DROP where a Local policy has none on this node), `KUBE-PROXY-FIREWALL` drops
//!   load-balancer traffic from outside the source ranges, `KUBE-NODEPORTS` accepts health-check
//!   node ports and `KUBE-FORWARD` accepts marked and established forwarded traffic.
//!
//! Deliberate differences from kube-proxy, all in what Portico does not offer:
//! - NodePorts answer only on [`Config::node_ips`] (one `-d <ip> -j KUBE-NODEPORTS` rule per
//!   address, loopback skipped); there are no localhost NodePorts, so no `route_localnet`, no
//!   `KUBE-FIREWALL` chain and no nfacct counters. With no node IP of the family, NodePorts are
//!   not reachable at all.
//! - `MASQUERADE` is written without `--random-fully`.
//! - Portico's service-CIDR guard (only when [`Config::service_cidr`] is set): at the end of the
//!   `filter` `KUBE-SERVICES` chain (which runs after DNAT, from FORWARD and OUTPUT), packets
//!   still addressed to a ClusterIP are rejected (no Service uses that port) and packets to any
//!   other address of the service CIDR are dropped.
//!
//! The jumps from the built-in chains (`PREROUTING`, `OUTPUT`, `POSTROUTING`, `INPUT`,
//! `FORWARD`) are not part of the restore input, as in kube-proxy: [`apply`] ensures them with
//! `iptables -C`/`-I`, so re-applying never duplicates them. [`render_partial`] is kube-proxy's
//! partial sync: unchanged Services' chains are left out of the input (`--noflush` keeps them)
//! and stale chains are flushed and deleted.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::model::{Endpoint, Port, ServiceKey, ServiceState, Snapshot};
use api::net::{Cidr, IpFamily};

/// What the renderer needs to know about this node.
#[derive(Clone, Debug)]
pub struct Config {
    pub node_name: String,
    /// The addresses NodePorts answer on (kube-proxy's `--nodeport-addresses`, resolved).
    pub node_ips: Vec<IpAddr>,
    /// The pod network: traffic from outside it to a ClusterIP is masqueraded, and with
    /// `externalTrafficPolicy: Local` pod traffic to external addresses short-circuits to the
    /// Cluster chain (kube-proxy's `LocalTrafficDetector`). `None`: neither rule is written.
    pub cluster_cidr: Option<Cidr>,
    /// The Service CIDR for Portico's guard rules (see the module docs); `None`: no guard.
    pub service_cidr: Option<Cidr>,
    /// The fwmark bit that asks for masquerading (kube-proxy's `--iptables-masquerade-bit`, 14).
    pub masquerade_bit: u8,
    pub family: IpFamily,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run `{cmd}`: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed { cmd: String, status: std::process::ExitStatus, stderr: String },
}

/// A rendering plus the `nat` service chains it keeps, to diff against on the next sync.
#[derive(Clone, Debug, Default)]
pub struct Rendered {
    pub text: String,
    /// Every `KUBE-SVC/SVL/EXT/FW/SEP` chain the current state uses (written or not).
    pub active_chains: BTreeSet<String>,
}

const KUBE_SERVICES: &str = "KUBE-SERVICES";
const KUBE_EXTERNAL_SERVICES: &str = "KUBE-EXTERNAL-SERVICES";
const KUBE_NODEPORTS: &str = "KUBE-NODEPORTS";
const KUBE_POSTROUTING: &str = "KUBE-POSTROUTING";
const KUBE_MARK_MASQ: &str = "KUBE-MARK-MASQ";
const KUBE_FORWARD: &str = "KUBE-FORWARD";
const KUBE_PROXY_FIREWALL: &str = "KUBE-PROXY-FIREWALL";

/// Above this many endpoints kube-proxy drops the per-endpoint comments ("large cluster mode").
const LARGE_CLUSTER_ENDPOINTS: usize = 1000;

const SERVICE_CHAIN_PREFIXES: [&str; 5] = ["KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-", "KUBE-FW-", "KUBE-EXT-"];

/// kube-proxy's `portProtoHash`: base32 of sha256(`servicePortName + protocol`), 16 characters.
fn port_proto_hash(port_name: &str, protocol: &str) -> String {
    let hash = Sha256::new().chain_update(port_name).chain_update(protocol).finalize();
    let mut encoded = data_encoding::BASE32.encode(&hash);
    encoded.truncate(16);
    encoded
}

/// `KUBE-SVC-<hash>` of a service port ("ns/name:port", as [`crate::model::Service::port_name`])
/// and its lower-case protocol ("tcp"): the Cluster policy chain.
pub fn service_chain(port_name: &str, protocol: &str) -> String {
    format!("KUBE-SVC-{}", port_proto_hash(port_name, protocol))
}

/// `KUBE-SVL-<hash>`: the Local policy chain.
pub fn local_chain(port_name: &str, protocol: &str) -> String {
    format!("KUBE-SVL-{}", port_proto_hash(port_name, protocol))
}

/// `KUBE-EXT-<hash>`: where NodePort, externalIP and load-balancer traffic goes.
pub fn external_chain(port_name: &str, protocol: &str) -> String {
    format!("KUBE-EXT-{}", port_proto_hash(port_name, protocol))
}

/// `KUBE-FW-<hash>`: the `loadBalancerSourceRanges` filter.
pub fn firewall_chain(port_name: &str, protocol: &str) -> String {
    format!("KUBE-FW-{}", port_proto_hash(port_name, protocol))
}

/// `KUBE-SEP-<hash>` of one endpoint, `endpoint` being "ip:port" ("[ip]:port" for IPv6).
pub fn endpoint_chain(port_name: &str, protocol: &str, endpoint: &str) -> String {
    let hash = Sha256::new().chain_update(port_name).chain_update(protocol).chain_update(endpoint).finalize();
    let mut encoded = data_encoding::BASE32.encode(&hash);
    encoded.truncate(16);
    format!("KUBE-SEP-{encoded}")
}

/// Whether `chain` is one of the per-service chains a sync creates and deletes.
pub fn is_service_chain(chain: &str) -> bool {
    SERVICE_CHAIN_PREFIXES.iter().any(|p| chain.starts_with(p))
}

/// The whole `iptables-restore --noflush` input for `filter` and `nat` (a full sync; stale
/// chains of an earlier state are not deleted: use [`render_sync`] for that).
pub fn render(snapshot: &Snapshot, config: &Config) -> String {
    render_sync(snapshot, config, None, &BTreeSet::new()).text
}

/// kube-proxy's partial sync: only the Services in `changed` get their chains written; the
/// others' chains are left alone (`--noflush` keeps them), and chains in `existing` that the
/// state no longer uses are flushed and deleted (`-X`). The top-level chains and the `filter`
/// table are always written whole.
pub fn render_partial(
    snapshot: &Snapshot,
    config: &Config,
    changed: &BTreeSet<ServiceKey>,
    existing: &BTreeSet<String>,
) -> Rendered {
    render_sync(snapshot, config, Some(changed), existing)
}

/// The general form: `changed: None` writes every Service (a full sync); `existing` are the
/// service chains now in the kernel (from [`existing_chains`] or the last [`Rendered`]).
pub fn render_sync(
    snapshot: &Snapshot,
    config: &Config,
    changed: Option<&BTreeSet<ServiceKey>>,
    existing: &BTreeSet<String>,
) -> Rendered {
    let mut r = Renderer::new(config);
    let total_endpoints: usize = snapshot
        .values()
        .filter(|s| s.service.addresses_of(config.family).next().is_some())
        .flat_map(|s| s.service.ports.iter().map(move |p| (s, p)))
        .map(|(s, p)| s.endpoints_of(p).iter().filter(|e| IpFamily::of(e.ip) == config.family).count())
        .sum();
    r.large = total_endpoints > LARGE_CLUSTER_ENDPOINTS;
    for state in snapshot.values() {
        let write_chains = changed.is_none_or(|c| c.contains(&state.service.key));
        for port in &state.service.ports {
            r.service_port(state, port, write_chains);
        }
    }
    r.finish(existing)
}

/// Output buffers, as kube-proxy's four line buffers.
struct Renderer<'a> {
    config: &'a Config,
    mark: String,
    large: bool,
    filter_chains: String,
    filter_rules: String,
    nat_chains: String,
    nat_rules: String,
    /// Sinks for the chains of unchanged Services in a partial sync.
    skipped_chains: String,
    skipped_rules: String,
    active: BTreeSet<String>,
    /// (ClusterIP) of every rendered Service, for the guard rules.
    cluster_ips: Vec<IpAddr>,
}

/// `"text"` when the comment needs quoting for iptables-restore, as kube-proxy writes it.
fn comment(text: &str) -> String {
    if text.contains(' ') { format!("\"{text}\"") } else { text.to_string() }
}

fn ep_string(ep: &Endpoint) -> String {
    SocketAddr::new(ep.ip, ep.port).to_string()
}

/// Endpoints of this family in kube-proxy's order (by their "ip:port" string), deduplicated.
fn family_sorted(eps: &[Endpoint], family: IpFamily) -> Vec<(String, &Endpoint)> {
    let mut v: Vec<(String, &Endpoint)> =
        eps.iter().filter(|e| IpFamily::of(e.ip) == family).map(|e| (ep_string(e), e)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

impl<'a> Renderer<'a> {
    fn new(config: &'a Config) -> Self {
        let mark = format!("{:#x}", 1u32 << config.masquerade_bit.min(31));
        let mut r = Renderer {
            config,
            mark,
            large: false,
            filter_chains: String::new(),
            filter_rules: String::new(),
            nat_chains: String::new(),
            nat_rules: String::new(),
            skipped_chains: String::new(),
            skipped_rules: String::new(),
            active: BTreeSet::new(),
            cluster_ips: Vec::new(),
        };
        for chain in [KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_PROXY_FIREWALL] {
            let _ = writeln!(r.filter_chains, ":{chain} - [0:0]");
        }
        for chain in [KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ] {
            let _ = writeln!(r.nat_chains, ":{chain} - [0:0]");
        }
        let m = &r.mark;
        let _ = writeln!(r.nat_rules, "-A {KUBE_POSTROUTING} -m mark ! --mark {m}/{m} -j RETURN");
        let _ = writeln!(r.nat_rules, "-A {KUBE_POSTROUTING} -j MARK --xor-mark {m}");
        let _ = writeln!(
            r.nat_rules,
            "-A {KUBE_POSTROUTING} -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE"
        );
        let _ = writeln!(r.nat_rules, "-A {KUBE_MARK_MASQ} -j MARK --or-mark {m}");
        r
    }

    /// kube-proxy's `appendServiceCommentLocked`: no per-endpoint comments in large clusters.
    fn svc_comment(&self, text: &str) -> String {
        if self.large { String::new() } else { format!(" -m comment --comment {}", comment(text)) }
    }

    fn service_port(&mut self, state: &ServiceState, port: &Port, write_chains: bool) {
        let family = self.config.family;
        let svc = &state.service;
        let Some(&cluster_ip) = svc.addresses_of(family).next() else { return };
        self.cluster_ips.push(cluster_ip);
        let of_family = |ips: &[IpAddr]| ips.iter().copied().filter(|ip| IpFamily::of(*ip) == family).collect();
        let external_ips: Vec<IpAddr> = of_family(&svc.external_ips);
        let lb_ips: Vec<IpAddr> = of_family(&svc.load_balancer_ips);
        let source_ranges: Vec<Cidr> = svc.source_ranges.iter().copied().filter(|c| c.family() == family).collect();

        let name = svc.port_name(port);
        let proto = port.protocol.lower();
        let svc_chain = service_chain(&name, proto);
        let svl_chain = local_chain(&name, proto);
        let ext_chain = external_chain(&name, proto);
        let fw_chain = firewall_chain(&name, proto);

        // kube-proxy's CategorizeEndpoints, from the model's targets.
        let internal_local = svc.internal_local;
        let external_local = svc.external_policy_local();
        let externally_accessible =
            svc.ports.iter().any(|p| p.node_port.is_some()) || !svc.external_ips.is_empty() || !lb_ips.is_empty();
        let uses_cluster = !internal_local || (externally_accessible && !external_local);
        let uses_local = internal_local || (externally_accessible && external_local);
        let targets = state.targets(port, &self.config.node_name);
        let cluster_eps = match (uses_cluster, internal_local) {
            (false, _) => Vec::new(),
            (true, false) => family_sorted(&targets.cluster, family),
            (true, true) => family_sorted(&targets.external, family),
        };
        let local_eps = if internal_local {
            family_sorted(&targets.cluster, family)
        } else if uses_local {
            family_sorted(&targets.external, family)
        } else {
            Vec::new()
        };
        let has_endpoints = state
            .endpoints_of(port)
            .iter()
            .any(|e| IpFamily::of(e.ip) == family && (e.ready || (e.serving && e.terminating)));

        let uses_cluster_chain = !cluster_eps.is_empty() && uses_cluster;
        let uses_local_chain = !local_eps.is_empty() && uses_local;
        let (internal_chain, has_internal) = if internal_local {
            (&svl_chain, has_endpoints && !local_eps.is_empty())
        } else {
            (&svc_chain, has_endpoints)
        };
        let (external_policy_chain, has_external) = if external_local {
            (&svl_chain, has_endpoints && !local_eps.is_empty())
        } else {
            (&svc_chain, has_endpoints)
        };
        let uses_ext_chain = has_endpoints && externally_accessible;
        let uses_fw_chain = has_endpoints && !lb_ips.is_empty() && !source_ranges.is_empty();
        let lb_chain = if uses_fw_chain { &fw_chain } else { &ext_chain };

        let (int_filter_target, int_filter_comment, ext_filter_target, ext_filter_comment) = if !has_endpoints {
            let c = comment(&format!("{name} has no endpoints"));
            ("REJECT", c.clone(), "REJECT", c)
        } else {
            let c = comment(&format!("{name} has no local endpoints"));
            ("DROP", c.clone(), "DROP", c)
        };

        let m = format!("-m {proto} -p {proto}");
        let port_no = port.port;
        let cluster_comment = comment(&format!("{name} cluster IP"));

        // ClusterIP.
        if has_internal {
            let _ = writeln!(
                self.nat_rules,
                "-A {KUBE_SERVICES} -m comment --comment {cluster_comment} {m} -d {cluster_ip} --dport {port_no} -j {internal_chain}"
            );
        } else {
            let _ = writeln!(
                self.filter_rules,
                "-A {KUBE_SERVICES} -m comment --comment {int_filter_comment} {m} -d {cluster_ip} --dport {port_no} -j {int_filter_target}"
            );
        }
        // External IPs.
        for ip in &external_ips {
            if has_endpoints {
                let c = comment(&format!("{name} external IP"));
                let _ = writeln!(
                    self.nat_rules,
                    "-A {KUBE_SERVICES} -m comment --comment {c} {m} -d {ip} --dport {port_no} -j {ext_chain}"
                );
            }
            if !has_external {
                let _ = writeln!(
                    self.filter_rules,
                    "-A {KUBE_EXTERNAL_SERVICES} -m comment --comment {ext_filter_comment} {m} -d {ip} --dport {port_no} -j {ext_filter_target}"
                );
            }
        }
        // Load-balancer IPs.
        for ip in &lb_ips {
            if has_endpoints {
                let c = comment(&format!("{name} loadbalancer IP"));
                let _ = writeln!(
                    self.nat_rules,
                    "-A {KUBE_SERVICES} -m comment --comment {c} {m} -d {ip} --dport {port_no} -j {lb_chain}"
                );
            }
            if uses_fw_chain {
                let c = comment(&format!("{name} traffic not accepted by {fw_chain}"));
                let _ = writeln!(
                    self.filter_rules,
                    "-A {KUBE_PROXY_FIREWALL} -m comment --comment {c} {m} -d {ip} --dport {port_no} -j DROP"
                );
            }
        }
        if !has_external {
            for ip in &lb_ips {
                let _ = writeln!(
                    self.filter_rules,
                    "-A {KUBE_EXTERNAL_SERVICES} -m comment --comment {ext_filter_comment} {m} -d {ip} --dport {port_no} -j {ext_filter_target}"
                );
            }
        }
        // NodePort.
        if let Some(node_port) = port.node_port {
            if has_endpoints {
                let _ = writeln!(
                    self.nat_rules,
                    "-A {KUBE_NODEPORTS} -m comment --comment {} {m} --dport {node_port} -j {ext_chain}",
                    comment(&name)
                );
            }
            if !has_external {
                let _ = writeln!(
                    self.filter_rules,
                    "-A {KUBE_EXTERNAL_SERVICES} -m comment --comment {ext_filter_comment} -m addrtype --dst-type LOCAL {m} --dport {node_port} -j {ext_filter_target}"
                );
            }
        }
        // Health-check node port (only Services with externalTrafficPolicy: Local have one).
        if let Some(hc) = svc.health_check_node_port.filter(|_| external_local) {
            let c = comment(&format!("{name} health check node port"));
            let _ = writeln!(
                self.filter_rules,
                "-A {KUBE_NODEPORTS} -m comment --comment {c} -m tcp -p tcp --dport {hc} -j ACCEPT"
            );
        }

        // From here on, the Service's own chains: skipped (but kept) in a partial sync.
        let (mut chains, mut rules) = if write_chains {
            (std::mem::take(&mut self.nat_chains), std::mem::take(&mut self.nat_rules))
        } else {
            self.skipped_chains.clear();
            self.skipped_rules.clear();
            (std::mem::take(&mut self.skipped_chains), std::mem::take(&mut self.skipped_rules))
        };

        // Internal traffic: masquerade what does not come from the pod network.
        if has_internal && let Some(cidr) = self.config.cluster_cidr {
            let _ = writeln!(
                rules,
                "-A {internal_chain} -m comment --comment {cluster_comment} {m} -d {cluster_ip} --dport {port_no} ! -s {cidr} -j {KUBE_MARK_MASQ}"
            );
        }

        // External traffic.
        if uses_ext_chain {
            let _ = writeln!(chains, ":{ext_chain} - [0:0]");
            self.active.insert(ext_chain.clone());
            if !external_local {
                let c = comment(&format!("masquerade traffic for {name} external destinations"));
                let _ = writeln!(rules, "-A {ext_chain} -m comment --comment {c} -j {KUBE_MARK_MASQ}");
            } else {
                // Pod and node traffic to an external address is not subject to the Local
                // policy (as if it went out to the load balancer and came back). kube-proxy
                // sends it to the Cluster chain; when that chain does not exist (both policies
                // Local) it goes to the Local one.
                let short_circuit = if uses_cluster_chain {
                    Some(&svc_chain)
                } else if uses_local_chain {
                    Some(&svl_chain)
                } else {
                    None
                };
                if let (Some(cidr), Some(target)) = (self.config.cluster_cidr, short_circuit) {
                    let c = comment(&format!("pod traffic for {name} external destinations"));
                    let _ = writeln!(rules, "-A {ext_chain} -m comment --comment {c} -s {cidr} -j {target}");
                }
                let c = comment(&format!("masquerade LOCAL traffic for {name} external destinations"));
                let _ = writeln!(
                    rules,
                    "-A {ext_chain} -m comment --comment {c} -m addrtype --src-type LOCAL -j {KUBE_MARK_MASQ}"
                );
                if let Some(target) = short_circuit {
                    let c = comment(&format!("route LOCAL traffic for {name} external destinations"));
                    let _ = writeln!(
                        rules,
                        "-A {ext_chain} -m comment --comment {c} -m addrtype --src-type LOCAL -j {target}"
                    );
                }
            }
            if has_external {
                let _ = writeln!(rules, "-A {ext_chain} -j {external_policy_chain}");
            }
        }

        // Load-balancer source ranges.
        if uses_fw_chain {
            let _ = writeln!(chains, ":{fw_chain} - [0:0]");
            self.active.insert(fw_chain.clone());
            let c = comment(&format!("{name} loadbalancer IP"));
            let mut allow_from_node = false;
            for cidr in &source_ranges {
                let _ = writeln!(rules, "-A {fw_chain} -m comment --comment {c} -s {cidr} -j {ext_chain}");
                allow_from_node |= self.config.node_ips.iter().any(|ip| cidr.contains(*ip));
            }
            if allow_from_node {
                for ip in &lb_ips {
                    let _ = writeln!(rules, "-A {fw_chain} -m comment --comment {c} -s {ip} -j {ext_chain}");
                }
            }
            let c = comment(&format!("other traffic to {name} will be dropped by {KUBE_PROXY_FIREWALL}"));
            let _ = writeln!(rules, "-A {fw_chain} -m comment --comment {c}");
        }

        // Policy chains.
        let affinity = svc.affinity_timeout;
        if uses_cluster_chain {
            let _ = writeln!(chains, ":{svc_chain} - [0:0]");
            self.active.insert(svc_chain.clone());
            self.endpoint_jumps(&mut rules, &name, proto, &svc_chain, &cluster_eps, affinity);
        }
        if uses_local_chain {
            let _ = writeln!(chains, ":{svl_chain} - [0:0]");
            self.active.insert(svl_chain.clone());
            self.endpoint_jumps(&mut rules, &name, proto, &svl_chain, &local_eps, affinity);
        }

        // Endpoint chains: every endpoint either policy chain may pick.
        let mut reachable: Vec<&(String, &Endpoint)> = cluster_eps.iter().collect();
        for ep in &local_eps {
            if !cluster_eps.iter().any(|c| c.0 == ep.0) {
                reachable.push(ep);
            }
        }
        for (ep_str, ep) in reachable {
            let sep = endpoint_chain(&name, proto, ep_str);
            let _ = writeln!(chains, ":{sep} - [0:0]");
            let c = self.svc_comment(&name);
            let _ = writeln!(rules, "-A {sep}{c} -s {} -j {KUBE_MARK_MASQ}", ep.ip);
            let recent = if affinity.is_some() { format!(" -m recent --name {sep} --set") } else { String::new() };
            let _ = writeln!(rules, "-A {sep}{c}{recent} {m} -j DNAT --to-destination {ep_str}");
            self.active.insert(sep);
        }

        if write_chains {
            self.nat_chains = chains;
            self.nat_rules = rules;
        } else {
            self.skipped_chains = chains;
            self.skipped_rules = rules;
        }
    }

    /// kube-proxy's `writeServiceToEndpointRules`: affinity checks first, then the random pick.
    fn endpoint_jumps(
        &self,
        rules: &mut String,
        name: &str,
        proto: &str,
        chain: &str,
        eps: &[(String, &Endpoint)],
        affinity: Option<u32>,
    ) {
        if let Some(timeout) = affinity {
            for (ep_str, _) in eps {
                let sep = endpoint_chain(name, proto, ep_str);
                let c = self.svc_comment(&format!("{name} -> {ep_str}"));
                let _ = writeln!(
                    rules,
                    "-A {chain}{c} -m recent --name {sep} --rcheck --seconds {timeout} --reap -j {sep}"
                );
            }
        }
        let n = eps.len();
        for (i, (ep_str, _)) in eps.iter().enumerate() {
            let sep = endpoint_chain(name, proto, ep_str);
            let c = self.svc_comment(&format!("{name} -> {ep_str}"));
            if i < n - 1 {
                let p = 1.0 / (n - i) as f64;
                let _ = writeln!(rules, "-A {chain}{c} -m statistic --mode random --probability {p:.10} -j {sep}");
            } else {
                let _ = writeln!(rules, "-A {chain}{c} -j {sep}");
            }
        }
    }

    fn finish(mut self, existing: &BTreeSet<String>) -> Rendered {
        let family = self.config.family;
        // Stale service chains: a chain line flushes them, then they can go.
        for chain in existing.iter().filter(|c| is_service_chain(c) && !self.active.contains(*c)) {
            let _ = writeln!(self.nat_chains, ":{chain} - [0:0]");
            let _ = writeln!(self.nat_rules, "-X {chain}");
        }
        // NodePorts, only on the node's own addresses; this must be the last rule.
        let mut node_ips: Vec<IpAddr> = self
            .config
            .node_ips
            .iter()
            .copied()
            .filter(|ip| IpFamily::of(*ip) == family && !ip.is_loopback())
            .collect();
        node_ips.dedup();
        for ip in node_ips {
            let _ = writeln!(
                self.nat_rules,
                "-A {KUBE_SERVICES} -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -d {ip} -j {KUBE_NODEPORTS}"
            );
        }
        // Portico's guard: after DNAT, nothing should still be addressed to the service CIDR.
        if let Some(cidr) = self.config.service_cidr.filter(|c| c.family() == family) {
            self.cluster_ips.sort();
            self.cluster_ips.dedup();
            for ip in &self.cluster_ips {
                let _ = writeln!(
                    self.filter_rules,
                    "-A {KUBE_SERVICES} -m comment --comment \"no service port on {ip}\" -d {ip} -j REJECT"
                );
            }
            let _ = writeln!(
                self.filter_rules,
                "-A {KUBE_SERVICES} -m comment --comment \"unallocated service IP\" -d {cidr} -j DROP"
            );
        }
        // KUBE-FORWARD.
        let m = &self.mark;
        let _ = writeln!(self.filter_rules, "-A {KUBE_FORWARD} -m conntrack --ctstate INVALID -j DROP");
        let _ = writeln!(
            self.filter_rules,
            "-A {KUBE_FORWARD} -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {m}/{m} -j ACCEPT"
        );
        let _ = writeln!(
            self.filter_rules,
            "-A {KUBE_FORWARD} -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
        );

        let mut text = String::with_capacity(
            self.filter_chains.len() + self.filter_rules.len() + self.nat_chains.len() + self.nat_rules.len() + 32,
        );
        text.push_str("*filter\n");
        text.push_str(&self.filter_chains);
        text.push_str(&self.filter_rules);
        text.push_str("COMMIT\n*nat\n");
        text.push_str(&self.nat_chains);
        text.push_str(&self.nat_rules);
        text.push_str("COMMIT\n");
        Rendered { text, active_chains: self.active }
    }
}

/// A jump from a built-in chain into ours, as kube-proxy's `iptablesJumpChains`.
struct Jump {
    table: &'static str,
    to: &'static str,
    from: &'static str,
    comment: &'static str,
    new_only: bool,
}

const JUMPS: [Jump; 12] = [
    Jump {
        table: "filter",
        to: KUBE_EXTERNAL_SERVICES,
        from: "INPUT",
        comment: "kubernetes externally-visible service portals",
        new_only: true,
    },
    Jump {
        table: "filter",
        to: KUBE_EXTERNAL_SERVICES,
        from: "FORWARD",
        comment: "kubernetes externally-visible service portals",
        new_only: true,
    },
    Jump {
        table: "filter",
        to: KUBE_NODEPORTS,
        from: "INPUT",
        comment: "kubernetes health check service ports",
        new_only: false,
    },
    Jump { table: "filter", to: KUBE_SERVICES, from: "FORWARD", comment: "kubernetes service portals", new_only: true },
    Jump { table: "filter", to: KUBE_SERVICES, from: "OUTPUT", comment: "kubernetes service portals", new_only: true },
    Jump {
        table: "filter",
        to: KUBE_FORWARD,
        from: "FORWARD",
        comment: "kubernetes forwarding rules",
        new_only: false,
    },
    Jump {
        table: "filter",
        to: KUBE_PROXY_FIREWALL,
        from: "INPUT",
        comment: "kubernetes load balancer firewall",
        new_only: true,
    },
    Jump {
        table: "filter",
        to: KUBE_PROXY_FIREWALL,
        from: "OUTPUT",
        comment: "kubernetes load balancer firewall",
        new_only: true,
    },
    Jump {
        table: "filter",
        to: KUBE_PROXY_FIREWALL,
        from: "FORWARD",
        comment: "kubernetes load balancer firewall",
        new_only: true,
    },
    Jump { table: "nat", to: KUBE_SERVICES, from: "OUTPUT", comment: "kubernetes service portals", new_only: false },
    Jump {
        table: "nat",
        to: KUBE_SERVICES,
        from: "PREROUTING",
        comment: "kubernetes service portals",
        new_only: false,
    },
    Jump {
        table: "nat",
        to: KUBE_POSTROUTING,
        from: "POSTROUTING",
        comment: "kubernetes postrouting rules",
        new_only: false,
    },
];

fn binary(family: IpFamily, tool: &str) -> String {
    match family {
        IpFamily::V4 => format!("iptables{tool}"),
        IpFamily::V6 => format!("ip6tables{tool}"),
    }
}

/// Runs `program args` with `stdin`, in the calling thread's network namespace.
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<std::process::Output, Error> {
    let cmd = || format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn { cmd: cmd(), source })?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        // A write error (the tool exited early) shows up in its status and stderr below.
        let _ = pipe.write_all(input.as_bytes());
    }
    child.wait_with_output().map_err(|source| Error::Spawn { cmd: cmd(), source })
}

fn run_ok(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, Error> {
    let out = run(program, args, stdin)?;
    if !out.status.success() {
        return Err(Error::Failed {
            cmd: format!("{program} {}", args.join(" ")),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Loads `text` (a [`render`] output) with `iptables-restore --noflush` (`ip6tables-restore`
/// for IPv6) in the calling thread's network namespace, then makes sure the built-in chains
/// jump into ours ([`ensure_jumps`]). Idempotent.
pub fn apply(text: &str, family: IpFamily) -> Result<(), Error> {
    let restore = binary(family, "-restore");
    tracing::debug!(bytes = text.len(), lines = text.lines().count(), "{restore}");
    run_ok(&restore, &["-w", "5", "--noflush"], Some(text))?;
    ensure_jumps(family)
}

/// kube-proxy's `EnsureChain`/`EnsureRule(Prepend, ...)` for the jumps from the built-in
/// chains: `-C` first, `-I` only when missing, so the rules are never duplicated.
pub fn ensure_jumps(family: IpFamily) -> Result<(), Error> {
    let iptables = binary(family, "");
    for j in &JUMPS {
        let mut spec: Vec<&str> = Vec::new();
        if j.new_only {
            spec.extend(["-m", "conntrack", "--ctstate", "NEW"]);
        }
        spec.extend(["-m", "comment", "--comment", j.comment, "-j", j.to]);
        // Our chain normally exists after the restore; create it if someone applied a
        // hand-made input (an "already exists" failure is fine).
        let _ = run(&iptables, &["-w", "5", "-t", j.table, "-N", j.to], None)?;
        let check: Vec<&str> =
            ["-w", "5", "-t", j.table, "-C", j.from].into_iter().chain(spec.iter().copied()).collect();
        if run(&iptables, &check, None)?.status.success() {
            continue;
        }
        let insert: Vec<&str> =
            ["-w", "5", "-t", j.table, "-I", j.from].into_iter().chain(spec.iter().copied()).collect();
        run_ok(&iptables, &insert, None)?;
    }
    Ok(())
}

/// The service chains (`KUBE-SVC/SVL/EXT/FW/SEP-*`) now in the `nat` table, for
/// [`render_partial`]'s stale-chain deletion.
pub fn existing_chains(family: IpFamily) -> Result<BTreeSet<String>, Error> {
    let saved = run_ok(&binary(family, "-save"), &["-t", "nat"], None)?;
    Ok(saved
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| is_service_chain(c))
        .map(str::to_string)
        .collect())
}

/// What `kube-proxy --cleanup` does, for every `KUBE-*` chain: deletes the rules in the
/// built-in chains that jump into one, then flushes and deletes all of them, in one
/// `iptables-restore` transaction per table.
pub fn cleanup(family: IpFamily) -> Result<(), Error> {
    for table in ["nat", "filter"] {
        let saved = run_ok(&binary(family, "-save"), &["-t", table], None)?;
        let input = cleanup_input(table, &saved);
        if let Some(input) = input {
            run_ok(&binary(family, "-restore"), &["-w", "5", "--noflush"], Some(&input))?;
        }
    }
    Ok(())
}

/// The restore input that removes every `KUBE-*` chain found in `saved` (one table's
/// `iptables-save`), or `None` when there is nothing to remove.
fn cleanup_input(table: &str, saved: &str) -> Option<String> {
    let chains: Vec<&str> = saved
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| c.starts_with("KUBE-"))
        .collect();
    let jumps: Vec<&str> = saved
        .lines()
        .filter_map(|l| l.strip_prefix("-A "))
        .filter(|rule| {
            let chain = rule.split_whitespace().next().unwrap_or("");
            !chain.starts_with("KUBE-") && jump_target(rule).is_some_and(|t| t.starts_with("KUBE-"))
        })
        .collect();
    if chains.is_empty() && jumps.is_empty() {
        return None;
    }
    let mut input = format!("*{table}\n");
    for chain in &chains {
        let _ = writeln!(input, ":{chain} - [0:0]");
    }
    for rule in &jumps {
        let _ = writeln!(input, "-D {rule}");
    }
    for chain in &chains {
        let _ = writeln!(input, "-X {chain}");
    }
    input.push_str("COMMIT\n");
    Some(input)
}

/// The `-j`/`-g` target of a saved rule.
fn jump_target(rule: &str) -> Option<&str> {
    let mut words = rule.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-j" || w == "-g" {
            return words.next();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::model::{Protocol, Service};

    /// kube-proxy's `TestOverallIPTablesRules` expected output (pkg/proxy/iptables/proxier_test.go),
    /// verbatim. Its fake proxier has localhost NodePorts, nfacct counters and match-all
    /// `--nodeport-addresses`; [`portico_golden`] swaps those lines for Portico's.
    const KUBE_PROXY_GOLDEN: &str = r#"*filter
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
-A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
-A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP
COMMIT
*nat
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXT-4SW47YFZTEDKD3PK - [0:0]
:KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-EXT-NUKIZ6OKUXPJNT4C - [0:0]
:KUBE-EXT-X27LE4BHSL4DOUIK - [0:0]
:KUBE-FW-NUKIZ6OKUXPJNT4C - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]
:KUBE-SEP-I77PXRDZVX7PMWMN - [0:0]
:KUBE-SEP-OYPFS5VJICHGATKP - [0:0]
:KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
:KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]
:KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]
:KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-SVC-NUKIZ6OKUXPJNT4C - [0:0]
:KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3001 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3003 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-X27LE4BHSL4DOUIK
-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK
-A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3002 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 external IP" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp -d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-NUKIZ6OKUXPJNT4C -m comment --comment "masquerade traffic for ns5/svc5:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-NUKIZ6OKUXPJNT4C -j KUBE-SVC-NUKIZ6OKUXPJNT4C
-A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -s 10.180.0.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80
-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
COMMIT
"#;

    /// The golden text with Portico's deliberate differences (see the module docs): no
    /// localhost NodePorts (no `KUBE-FIREWALL`, no 127.0.0.0/8 NodePort rules), no nfacct, and
    /// NodePorts on the node IP 192.168.0.2 only.
    fn portico_golden() -> String {
        KUBE_PROXY_GOLDEN
            .lines()
            .filter(|l| !l.contains("KUBE-FIREWALL ") && !l.contains("-d 127.0.0.0/8"))
            .map(|l| {
                l.replace(" -m nfacct --nfacct-name ct_state_invalid_dropped_pkts", "")
                    .replace("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS", "-d 192.168.0.2 -j KUBE-NODEPORTS")
            })
            .map(|l| l + "\n")
            .collect()
    }

    /// Per table: the declared chains, and each chain's rules in order (kube-proxy's tests
    /// compare the same way, since the order of chains in its output follows a Go map).
    type Parsed = BTreeMap<String, (BTreeSet<String>, BTreeMap<String, Vec<String>>)>;

    fn parse(text: &str) -> Parsed {
        let mut out = Parsed::new();
        let mut table = String::new();
        for line in text.lines() {
            if let Some(t) = line.strip_prefix('*') {
                table = t.to_string();
                out.entry(table.clone()).or_default();
            } else if let Some(c) = line.strip_prefix(':') {
                out.get_mut(&table).unwrap().0.insert(c.split_whitespace().next().unwrap().to_string());
            } else if let Some(rule) = line.strip_prefix("-A ").or_else(|| line.strip_prefix("-X ")) {
                let chain = rule.split_whitespace().next().unwrap().to_string();
                out.get_mut(&table).unwrap().1.entry(chain).or_default().push(line.to_string());
            } else {
                assert!(line == "COMMIT" || line.is_empty(), "unexpected line {line:?}");
            }
        }
        out
    }

    fn assert_same_rules(expected: &str, actual: &str) {
        let (e, a) = (parse(expected), parse(actual));
        for (table, (e_chains, e_rules)) in &e {
            let (a_chains, a_rules) = &a[table];
            assert_eq!(e_chains, a_chains, "chains of table {table}");
            for chain in e_rules.keys().chain(a_rules.keys()) {
                assert_eq!(e_rules.get(chain), a_rules.get(chain), "rules of {table} {chain}\n--- got:\n{actual}");
            }
        }
        assert_eq!(e.keys().collect::<Vec<_>>(), a.keys().collect::<Vec<_>>());
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ep(addr: &str, port: u16, node: Option<&str>) -> Endpoint {
        Endpoint { ip: ip(addr), port, ready: true, serving: true, terminating: false, node: node.map(Into::into) }
    }

    fn service(ns: &str, name: &str, cluster_ip: &str, port: Port) -> Service {
        Service {
            key: ServiceKey::new(ns, name),
            cluster_ips: vec![ip(cluster_ip)],
            external_ips: vec![],
            load_balancer_ips: vec![],
            ports: vec![port],
            affinity_timeout: None,
            external_local: false,
            internal_local: false,
            health_check_node_port: None,
            source_ranges: vec![],
        }
    }

    fn p80(node_port: Option<u16>) -> Port {
        Port { name: "p80".into(), protocol: Protocol::Tcp, port: 80, node_port }
    }

    fn snapshot(states: Vec<(Service, Vec<Endpoint>)>) -> Snapshot {
        states
            .into_iter()
            .map(|(service, eps)| {
                let endpoints = service.ports.iter().map(|p| (p.name.clone(), eps.clone())).collect();
                (service.key.clone(), Arc::new(ServiceState { service, endpoints }))
            })
            .collect()
    }

    fn config() -> Config {
        Config {
            node_name: "test-node".into(),
            node_ips: vec![ip("192.168.0.2")],
            cluster_cidr: Some("10.0.0.0/8".parse().unwrap()),
            service_cidr: None,
            masquerade_bit: 14,
            family: IpFamily::V4,
        }
    }

    /// The Services of kube-proxy's `TestOverallIPTablesRules`.
    fn overall() -> Snapshot {
        let svc1 = service("ns1", "svc1", "172.30.0.41", p80(None));
        let mut svc2 = service("ns2", "svc2", "172.30.0.42", p80(Some(3001)));
        svc2.external_local = true;
        svc2.load_balancer_ips = vec![ip("1.2.3.4")];
        svc2.external_ips = vec![ip("192.168.99.22")];
        svc2.health_check_node_port = Some(30000);
        let svc3 = service("ns3", "svc3", "172.30.0.43", p80(Some(3003)));
        let mut svc4 = service("ns4", "svc4", "172.30.0.44", p80(None));
        svc4.external_ips = vec![ip("192.168.99.33")];
        let mut svc5 = service("ns5", "svc5", "172.30.0.45", p80(Some(3002)));
        svc5.load_balancer_ips = vec![ip("5.6.7.8")];
        svc5.health_check_node_port = Some(30000);
        svc5.source_ranges = vec!["203.0.113.0/25".parse().unwrap()];
        svc5.affinity_timeout = Some(10800);
        let svc6 = service("ns6", "svc6", "172.30.0.46", p80(None));
        snapshot(vec![
            (svc1, vec![ep("10.180.0.1", 80, None)]),
            (svc2, vec![ep("10.180.0.2", 80, None)]),
            (svc3, vec![ep("10.180.0.3", 80, None)]),
            (svc4, vec![ep("10.180.0.4", 80, None), ep("10.180.0.5", 80, Some("test-node"))]),
            (svc5, vec![ep("10.180.0.3", 80, None)]),
            (svc6, vec![]),
        ])
    }

    #[test]
    fn chain_names_match_kube_proxy() {
        assert_eq!(service_chain("ns1/svc1:p80", "tcp"), "KUBE-SVC-XPGD46QRK7WJZT7O");
        assert_eq!(external_chain("ns2/svc2:p80", "tcp"), "KUBE-EXT-GNZBNJ2PO5MGZ6GT");
        assert_eq!(firewall_chain("ns5/svc5:p80", "tcp"), "KUBE-FW-NUKIZ6OKUXPJNT4C");
        assert_eq!(local_chain("ns2/svc2:p80", "tcp"), "KUBE-SVL-GNZBNJ2PO5MGZ6GT");
        assert_eq!(endpoint_chain("ns1/svc1:p80", "tcp", "10.180.0.1:80"), "KUBE-SEP-SXIVWICOYRO3J4NJ");
        assert_eq!(endpoint_chain("ns5/svc5:p80", "tcp", "10.180.0.3:80"), "KUBE-SEP-I77PXRDZVX7PMWMN");
        assert!(is_service_chain("KUBE-SEP-I77PXRDZVX7PMWMN") && !is_service_chain("KUBE-SERVICES"));
    }

    #[test]
    fn overall_rendering_matches_kube_proxy_golden_output() {
        let text = render(&overall(), &config());
        assert_same_rules(&portico_golden(), &text);
        // kube-proxy's own line order for the top of each table.
        assert!(text.starts_with("*filter\n:KUBE-SERVICES - [0:0]\n:KUBE-EXTERNAL-SERVICES - [0:0]\n"));
        assert!(text.contains("COMMIT\n*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n"));
        assert!(text.ends_with("COMMIT\n"));
    }

    #[test]
    fn cluster_ip_with_endpoints_spreads_with_kube_proxy_probabilities() {
        let port = Port { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port: None };
        let web = service("default", "web", "10.96.0.10", port);
        // Out of order on purpose: kube-proxy orders endpoints by their "ip:port" string.
        let eps = vec![ep("10.244.0.3", 8080, None), ep("10.244.0.10", 8080, None), ep("10.244.0.2", 8080, None)];
        let text = render(&snapshot(vec![(web, eps)]), &config());
        let svc = service_chain("default/web:http", "tcp");
        let sep = |e: &str| endpoint_chain("default/web:http", "tcp", e);
        let expected = format!(
            "-A KUBE-SERVICES -m comment --comment \"default/web:http cluster IP\" -m tcp -p tcp -d 10.96.0.10 --dport 80 -j {svc}\n\
             -A {svc} -m comment --comment \"default/web:http cluster IP\" -m tcp -p tcp -d 10.96.0.10 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ\n\
             -A {svc} -m comment --comment \"default/web:http -> 10.244.0.10:8080\" -m statistic --mode random --probability 0.3333333333 -j {}\n\
             -A {svc} -m comment --comment \"default/web:http -> 10.244.0.2:8080\" -m statistic --mode random --probability 0.5000000000 -j {}\n\
             -A {svc} -m comment --comment \"default/web:http -> 10.244.0.3:8080\" -j {}\n",
            sep("10.244.0.10:8080"),
            sep("10.244.0.2:8080"),
            sep("10.244.0.3:8080"),
        );
        assert!(text.contains(&expected), "{text}");
        let s = sep("10.244.0.2:8080");
        assert!(text.contains(&format!(
            "-A {s} -m comment --comment default/web:http -s 10.244.0.2 -j KUBE-MARK-MASQ\n\
             -A {s} -m comment --comment default/web:http -m tcp -p tcp -j DNAT --to-destination 10.244.0.2:8080\n"
        )));
        // No NodePort, no external chain.
        assert!(!text.contains("KUBE-EXT-") && !text.contains("-A KUBE-NODEPORTS"));
    }

    #[test]
    fn nodeports_answer_only_on_node_ips() {
        let mut cfg = config();
        cfg.node_ips = vec![ip("192.168.0.2"), ip("127.0.0.1"), ip("fd00::2"), ip("192.168.1.2")];
        let text = render(&overall(), &cfg);
        let tail: Vec<&str> = text.lines().filter(|l| l.ends_with("-j KUBE-NODEPORTS")).collect();
        assert_eq!(tail.len(), 2, "{tail:?}");
        assert!(
            tail[0].ends_with("-d 192.168.0.2 -j KUBE-NODEPORTS")
                && tail[1].ends_with("-d 192.168.1.2 -j KUBE-NODEPORTS")
        );
        assert!(!text.contains("127.0.0.") && !text.contains("--dst-type LOCAL -j KUBE-NODEPORTS"));
        cfg.node_ips.clear();
        assert!(!render(&overall(), &cfg).contains("-j KUBE-NODEPORTS"));
    }

    #[test]
    fn load_balancer_source_ranges_admit_the_node_when_it_is_inside() {
        let mut lb = service("ns", "lb", "10.96.0.20", p80(Some(30080)));
        lb.load_balancer_ips = vec![ip("198.51.100.7")];
        lb.source_ranges = vec!["192.168.0.0/24".parse().unwrap(), "203.0.113.0/25".parse().unwrap()];
        let text = render(&snapshot(vec![(lb, vec![ep("10.244.1.5", 80, None)])]), &config());
        let fw = firewall_chain("ns/lb:p80", "tcp");
        let ext = external_chain("ns/lb:p80", "tcp");
        let c = "-m comment --comment \"ns/lb:p80 loadbalancer IP\"";
        assert!(text.contains(&format!(
            "-A {fw} {c} -s 192.168.0.0/24 -j {ext}\n-A {fw} {c} -s 203.0.113.0/25 -j {ext}\n-A {fw} {c} -s 198.51.100.7 -j {ext}\n\
             -A {fw} -m comment --comment \"other traffic to ns/lb:p80 will be dropped by KUBE-PROXY-FIREWALL\"\n"
        )));
        assert!(text.contains(&format!("-d 198.51.100.7 --dport 80 -j {fw}\n")));
        assert!(text.contains("-A KUBE-PROXY-FIREWALL -m comment --comment \"ns/lb:p80 traffic not accepted by"));
    }

    #[test]
    fn external_policy_local_uses_local_endpoints_and_short_circuits_pods_and_node() {
        let mut s = service("ns", "local", "10.96.0.30", p80(Some(30081)));
        s.external_local = true;
        s.health_check_node_port = Some(32000);
        let eps = vec![ep("10.244.1.5", 80, Some("test-node")), ep("10.244.2.5", 80, Some("other"))];
        let text = render(&snapshot(vec![(s, eps)]), &config());
        let (svc, svl, ext) = (
            service_chain("ns/local:p80", "tcp"),
            local_chain("ns/local:p80", "tcp"),
            external_chain("ns/local:p80", "tcp"),
        );
        assert!(text.contains(&format!(
            "-A {ext} -m comment --comment \"pod traffic for ns/local:p80 external destinations\" -s 10.0.0.0/8 -j {svc}\n\
             -A {ext} -m comment --comment \"masquerade LOCAL traffic for ns/local:p80 external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ\n\
             -A {ext} -m comment --comment \"route LOCAL traffic for ns/local:p80 external destinations\" -m addrtype --src-type LOCAL -j {svc}\n\
             -A {ext} -j {svl}\n"
        )));
        let sep = endpoint_chain("ns/local:p80", "tcp", "10.244.1.5:80");
        assert!(text.contains(&format!("-A {svl} -m comment --comment \"ns/local:p80 -> 10.244.1.5:80\" -j {sep}\n")));
        assert_eq!(text.lines().filter(|l| l.starts_with(&format!("-A {svl} "))).count(), 1);
        assert_eq!(text.lines().filter(|l| l.starts_with(&format!("-A {svc} "))).count(), 3, "masq + 2 endpoints");
        assert!(text.contains("-A KUBE-NODEPORTS -m comment --comment \"ns/local:p80 health check node port\" -m tcp -p tcp --dport 32000 -j ACCEPT"));
        assert!(!text.contains("has no local endpoints"));
    }

    #[test]
    fn no_endpoints_reject_every_address_of_the_service() {
        let mut s = service("ns", "empty", "10.96.0.40", p80(Some(30082)));
        s.external_ips = vec![ip("192.168.99.1")];
        s.load_balancer_ips = vec![ip("198.51.100.8")];
        let not_ready = Endpoint { ready: false, serving: false, ..ep("10.244.1.9", 80, None) };
        let text = render(&snapshot(vec![(s, vec![not_ready])]), &config());
        let c = "-m comment --comment \"ns/empty:p80 has no endpoints\"";
        assert!(text.contains(&format!("-A KUBE-SERVICES {c} -m tcp -p tcp -d 10.96.0.40 --dport 80 -j REJECT\n")));
        assert!(
            text.contains(&format!(
                "-A KUBE-EXTERNAL-SERVICES {c} -m tcp -p tcp -d 192.168.99.1 --dport 80 -j REJECT\n"
            ))
        );
        assert!(
            text.contains(&format!(
                "-A KUBE-EXTERNAL-SERVICES {c} -m tcp -p tcp -d 198.51.100.8 --dport 80 -j REJECT\n"
            ))
        );
        assert!(text.contains(&format!(
            "-A KUBE-EXTERNAL-SERVICES {c} -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30082 -j REJECT\n"
        )));
        let nat = text.split("*nat\n").nth(1).unwrap();
        assert!(!nat.contains("ns/empty"), "no nat rules at all: {nat}");
    }

    #[test]
    fn internal_policy_local_without_local_endpoints_drops_cluster_ip_traffic() {
        let mut s = service("ns", "itp", "10.96.0.50", p80(None));
        s.internal_local = true;
        let text = render(&snapshot(vec![(s, vec![ep("10.244.2.5", 80, Some("other"))])]), &config());
        assert!(text.contains(
            "-A KUBE-SERVICES -m comment --comment \"ns/itp:p80 has no local endpoints\" -m tcp -p tcp -d 10.96.0.50 --dport 80 -j DROP\n"
        ));
        let nat = text.split("*nat\n").nth(1).unwrap();
        assert!(!nat.contains("ns/itp"), "{nat}");
        // With a local endpoint, cluster traffic goes to the Local chain.
        let mut s = service("ns", "itp", "10.96.0.50", p80(None));
        s.internal_local = true;
        let eps = vec![ep("10.244.2.5", 80, Some("other")), ep("10.244.1.5", 80, Some("test-node"))];
        let text = render(&snapshot(vec![(s, eps)]), &config());
        let svl = local_chain("ns/itp:p80", "tcp");
        assert!(text.contains(&format!("--dport 80 -j {svl}\n")) && !text.contains("KUBE-SVC-"));
        assert!(!text.contains("10.244.2.5"));
    }

    #[test]
    fn guard_rejects_unused_ports_and_drops_unallocated_service_ips() {
        let mut cfg = config();
        cfg.service_cidr = Some("172.30.0.0/16".parse().unwrap());
        let text = render(&overall(), &cfg);
        let filter = text.split("COMMIT\n").next().unwrap();
        let services: Vec<&str> = filter.lines().filter(|l| l.starts_with("-A KUBE-SERVICES ")).collect();
        assert_eq!(services.len(), 1 + 6 + 1, "{services:#?}");
        assert!(services[1].ends_with("-d 172.30.0.41 -j REJECT"));
        assert_eq!(
            services[7],
            "-A KUBE-SERVICES -m comment --comment \"unallocated service IP\" -d 172.30.0.0/16 -j DROP"
        );
    }

    #[test]
    fn partial_sync_writes_only_changed_services_and_deletes_stale_chains() {
        let full = render_sync(&overall(), &config(), None, &BTreeSet::new());
        let mut snap = overall();
        snap.remove(&ServiceKey::new("ns3", "svc3"));
        let changed = BTreeSet::from([ServiceKey::new("ns1", "svc1"), ServiceKey::new("ns3", "svc3")]);
        let partial = render_partial(&snap, &config(), &changed, &full.active_chains);
        let text = &partial.text;
        // svc1 rewritten; svc4 left alone but still reachable from KUBE-SERVICES.
        assert!(text.contains(":KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]\n"));
        assert!(!text.contains(":KUBE-SVC-4SW47YFZTEDKD3PK") && !text.contains("-A KUBE-SVC-4SW47YFZTEDKD3PK"));
        assert!(text.contains("--dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK\n"));
        assert!(partial.active_chains.contains("KUBE-SVC-4SW47YFZTEDKD3PK"));
        // svc3 gone: its chains are flushed and deleted.
        for chain in ["KUBE-SVC-X27LE4BHSL4DOUIK", "KUBE-EXT-X27LE4BHSL4DOUIK", "KUBE-SEP-OYPFS5VJICHGATKP"] {
            assert!(
                text.contains(&format!(":{chain} - [0:0]\n")) && text.contains(&format!("-X {chain}\n")),
                "{chain}"
            );
        }
        assert!(!text.contains("ns3/svc3"));
    }

    #[test]
    fn large_clusters_drop_per_endpoint_comments() {
        let port = Port { name: "".into(), protocol: Protocol::Udp, port: 53, node_port: None };
        let s = service("ns", "big", "10.96.0.60", port);
        let eps: Vec<Endpoint> = (0..1001).map(|i| ep(&format!("10.{}.{}.1", i / 256, i % 256), 53, None)).collect();
        let text = render(&snapshot(vec![(s, eps)]), &config());
        let svc = service_chain("ns/big", "udp");
        assert!(
            text.contains(&format!("--comment \"ns/big cluster IP\" -m udp -p udp -d 10.96.0.60 --dport 53 -j {svc}"))
        );
        assert!(!text.contains("ns/big ->"));
        let sep = endpoint_chain("ns/big", "udp", "10.0.0.1:53");
        assert!(text.contains(&format!(
            "-A {sep} -s 10.0.0.1 -j KUBE-MARK-MASQ\n-A {sep} -m udp -p udp -j DNAT --to-destination 10.0.0.1:53\n"
        )));
    }

    #[test]
    fn ipv6_renders_only_its_own_family() {
        let mut s = service("ns", "dual", "10.96.0.70", p80(None));
        s.cluster_ips.push(ip("fd00:96::70"));
        let eps = vec![ep("10.244.1.5", 80, None), ep("fd00:244::5", 80, None)];
        let mut cfg = config();
        cfg.family = IpFamily::V6;
        cfg.cluster_cidr = Some("fd00:244::/64".parse().unwrap());
        let text = render(&snapshot(vec![(s, eps)]), &cfg);
        assert!(text.contains("-d fd00:96::70 --dport 80 ! -s fd00:244::/64 -j KUBE-MARK-MASQ"));
        assert!(text.contains("-j DNAT --to-destination [fd00:244::5]:80\n"));
        assert!(!text.contains("10.244.1.5") && !text.contains("10.96.0.70"));
    }

    #[test]
    fn cleanup_input_removes_every_kube_chain_and_the_jumps_into_them() {
        let saved = "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                     :KUBE-SERVICES - [0:0]\n:KUBE-SVC-X - [0:0]\n:OTHER - [0:0]\n\
                     -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
                     -A OUTPUT -j OTHER\n-A KUBE-SERVICES -j KUBE-SVC-X\nCOMMIT\n";
        let input = cleanup_input("nat", saved).unwrap();
        assert_eq!(
            input,
            "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-X - [0:0]\n\
             -D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
             -X KUBE-SERVICES\n-X KUBE-SVC-X\nCOMMIT\n"
        );
        assert_eq!(cleanup_input("nat", "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"), None);
    }

    /// Network-namespace tests: every iptables command runs inside a lab node (`in_ns`/`exec`).
    mod lab_tests {
        use std::io::{ErrorKind, Read, Write};
        use std::net::{SocketAddr, TcpListener, TcpStream};
        use std::time::{Duration, Instant};

        use super::*;

        fn web_and_empty(pods: &[IpAddr], node: &str) -> Snapshot {
            let http = Port { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port: None };
            let web = service("default", "web", "10.96.0.10", http.clone());
            let eps = pods.iter().map(|ip| ep(&ip.to_string(), 8080, Some(node))).collect();
            let empty = service("default", "empty", "10.96.0.11", http);
            snapshot(vec![(web, eps), (empty, vec![])])
        }

        fn ask(lab: &lab::Lab, node: &lab::Node, to: &str) -> Result<String, lab::LabError> {
            let mut s = lab.connect_tcp(node, to.parse().unwrap())?;
            let mut answer = String::new();
            s.read_to_string(&mut answer)?;
            Ok(answer)
        }

        fn refused(r: Result<String, lab::LabError>) -> bool {
            matches!(r, Err(lab::LabError::Io(e)) if e.kind() == ErrorKind::ConnectionRefused)
        }

        #[test]
        fn cluster_ip_reaches_pods_rejects_and_cleans_up() {
            let Some(lab) = lab::Lab::new_or_skip("ipt") else { return };
            let prefix = lab.prefix().to_string();
            let sw = lab.switch("sw", "192.168.250.0/24").unwrap();
            let node = lab.node("n1", &sw).unwrap();
            let pods = [lab.pod("p1", &node).unwrap(), lab.pod("p2", &node).unwrap()];
            lab.register("10.96.0.0/24").unwrap();
            // Locally generated traffic needs a route before OUTPUT's DNAT (the node has none).
            lab.exec_ok(&node, &["ip", "route", "add", "10.96.0.0/24", "dev", "cbr0"]).unwrap();
            for pod in &pods {
                let listener = lab.in_ns(pod, || TcpListener::bind("0.0.0.0:8080")).unwrap().unwrap();
                let name = pod.ip().to_string();
                std::thread::spawn(move || {
                    for mut s in listener.incoming().flatten() {
                        let _ = s.write_all(name.as_bytes());
                    }
                });
            }
            let pod_ips: Vec<IpAddr> = pods.iter().map(|p| IpAddr::V4(p.ip())).collect();
            let cfg = Config {
                node_name: "n1".into(),
                node_ips: vec![IpAddr::V4(node.ip())],
                cluster_cidr: Some(node.pod_cidr().to_string().parse().unwrap()),
                service_cidr: Some("10.96.0.0/24".parse().unwrap()),
                masquerade_bit: 14,
                family: IpFamily::V4,
            };
            let snap = web_and_empty(&pod_ips, "n1");
            let text = render(&snap, &cfg);
            lab.in_ns(&node, || apply(&text, IpFamily::V4)).unwrap().unwrap();
            // Re-applying is idempotent: the jumps from the built-in chains stay single.
            lab.in_ns(&node, || apply(&text, IpFamily::V4)).unwrap().unwrap();
            let saved = lab.exec_ok(&node, &["iptables-save"]).unwrap();
            for jump in [
                "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
                "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
                "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
                "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
            ] {
                assert_eq!(saved.lines().filter(|l| *l == jump).count(), 1, "{jump}\n{saved}");
            }

            let nat = lab.exec_ok(&node, &["iptables-save", "-t", "nat"]).unwrap();
            let svc = service_chain("default/web:http", "tcp");
            assert!(nat.contains(&format!(":{svc} ")), "{nat}");
            assert!(nat.contains("\"default/web:http cluster IP\""), "{nat}");
            let listing = lab.exec_ok(&node, &["iptables", "-t", "nat", "-L", "-n"]).unwrap();
            assert!(listing.contains("default/web:http cluster IP"));
            let filter = lab.exec_ok(&node, &["iptables-save", "-t", "filter"]).unwrap();
            assert!(
                filter.contains("default/empty:http has no endpoints")
                    && filter.contains("--reject-with icmp-port-unreachable")
            );

            // Both pods answer on the ClusterIP.
            let mut seen = BTreeSet::new();
            for _ in 0..30 {
                seen.insert(ask(&lab, &node, "10.96.0.10:80").unwrap());
            }
            let want: BTreeSet<String> = pod_ips.iter().map(IpAddr::to_string).collect();
            assert_eq!(seen, want);

            // No endpoints, and a port no Service uses: refused at once.
            for target in ["10.96.0.11:80", "10.96.0.10:81"] {
                let start = Instant::now();
                assert!(refused(ask(&lab, &node, target)), "{target}");
                assert!(start.elapsed() < Duration::from_secs(1), "{target}: {:?}", start.elapsed());
            }
            // An unallocated service IP: dropped.
            let to: SocketAddr = "10.96.0.99:80".parse().unwrap();
            lab.check_target(to.ip()).unwrap();
            let r = lab.in_ns(&node, || TcpStream::connect_timeout(&to, Duration::from_millis(500))).unwrap();
            assert_eq!(r.unwrap_err().kind(), ErrorKind::TimedOut);

            // A partial sync after pod 2 left: only web is rewritten, its stale SEP deleted.
            let existing = lab.in_ns(&node, || existing_chains(IpFamily::V4)).unwrap().unwrap();
            let gone = endpoint_chain("default/web:http", "tcp", &format!("{}:8080", pod_ips[1]));
            assert!(existing.contains(&gone));
            let snap = web_and_empty(&pod_ips[..1], "n1");
            let changed = BTreeSet::from([ServiceKey::new("default", "web")]);
            let partial = render_partial(&snap, &cfg, &changed, &existing);
            assert!(partial.text.contains(&format!("-X {gone}\n")));
            lab.in_ns(&node, || apply(&partial.text, IpFamily::V4)).unwrap().unwrap();
            let existing = lab.in_ns(&node, || existing_chains(IpFamily::V4)).unwrap().unwrap();
            assert_eq!(existing, partial.active_chains);
            for _ in 0..10 {
                assert_eq!(ask(&lab, &node, "10.96.0.10:80").unwrap(), pod_ips[0].to_string());
            }

            lab.in_ns(&node, || cleanup(IpFamily::V4)).unwrap().unwrap();
            let saved = lab.exec_ok(&node, &["iptables-save"]).unwrap();
            assert!(!saved.contains("KUBE-"), "{saved}");
            // Cleaning a clean namespace is fine.
            lab.in_ns(&node, || cleanup(IpFamily::V4)).unwrap().unwrap();

            drop(lab);
            let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
            assert!(!String::from_utf8_lossy(&netns.stdout).contains(&prefix));
        }

        /// Render + `iptables-restore` of 1,000 Services with 10 endpoints each, in a lab node.
        /// `cargo test -- --ignored scale` (prints the timings).
        #[test]
        #[ignore]
        fn scale_1000_services_10_endpoints() {
            let Some(lab) = lab::Lab::new_or_skip("iptscale") else { return };
            let sw = lab.switch("sw", "192.168.251.0/24").unwrap();
            let node = lab.node("n1", &sw).unwrap();
            let mut states = Vec::new();
            for i in 0..1000u32 {
                let port =
                    Port { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port: Some(30000 + i as u16) };
                let s = service("ns", &format!("svc{i}"), &format!("10.96.{}.{}", i / 250, i % 250 + 1), port);
                let eps =
                    (0..10).map(|j| ep(&format!("10.{}.{}.{}", 100 + j, i / 250, i % 250 + 1), 8080, None)).collect();
                states.push((s, eps));
            }
            let snap = snapshot(states);
            let cfg = Config { node_ips: vec![IpAddr::V4(node.ip())], ..config() };
            let start = Instant::now();
            let text = render(&snap, &cfg);
            let rendered = start.elapsed();
            let start = Instant::now();
            lab.in_ns(&node, || apply(&text, IpFamily::V4)).unwrap().unwrap();
            let applied = start.elapsed();
            let start = Instant::now();
            lab.in_ns(&node, || apply(&text, IpFamily::V4)).unwrap().unwrap();
            let reapplied = start.elapsed();
            // A partial sync of one changed Service out of 1,000.
            let existing = lab.in_ns(&node, || existing_chains(IpFamily::V4)).unwrap().unwrap();
            let changed = BTreeSet::from([ServiceKey::new("ns", "svc7")]);
            let start = Instant::now();
            let partial = render_partial(&snap, &cfg, &changed, &existing);
            lab.in_ns(&node, || apply(&partial.text, IpFamily::V4)).unwrap().unwrap();
            let partial_time = start.elapsed();
            let start = Instant::now();
            lab.in_ns(&node, || cleanup(IpFamily::V4)).unwrap().unwrap();
            let cleaned = start.elapsed();
            eprintln!(
                "1000x10: {} lines, {} bytes; render {rendered:?}, first restore {applied:?}, re-apply {reapplied:?}, \
                 partial (1 service, {} lines) render+apply {partial_time:?}, cleanup {cleaned:?}",
                text.lines().count(),
                text.len(),
                partial.text.lines().count(),
            );
            assert!(!lab.exec_ok(&node, &["iptables-save"]).unwrap().contains("KUBE-"));
        }
    }
}

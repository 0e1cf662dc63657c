//! The data planes behind one interface: each takes the snapshot and the Services that changed
//! and programs the node.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use api::net::IpFamily;

use crate::model::{Port, Protocol, ServiceKey, Snapshot};
use crate::nft::render::{self, Config};
use crate::nft::state::Table;
use crate::run::{Mode, Options};
use crate::userspace::{Engine, Frontend, Protocol as UProtocol};
use crate::{iptables, nft};

pub enum Plane {
    /// One table per family.
    Nftables(Vec<Table>),
    /// kube-proxy's iptables layout per family, with the service chains each last sync left.
    Iptables(Vec<(iptables::Config, BTreeSet<String>)>),
    /// The userspace engine, and the tables that redirect Service traffic to it.
    Userspace { engine: Engine, tables: Vec<Table>, ports: HashMap<(String, UProtocol), u16> },
}

impl Plane {
    pub async fn new(opts: &Options) -> Result<Plane, String> {
        match opts.mode {
            Mode::Nftables => Ok(Plane::Nftables(tables(opts, render::Mode::Kernel))),
            Mode::Userspace => Ok(Plane::Userspace {
                engine: Engine::new(IpAddr::from([0, 0, 0, 0]), opts.udp_idle_timeout),
                tables: tables(opts, render::Mode::Userspace),
                ports: HashMap::new(),
            }),
            Mode::Iptables => Ok(Plane::Iptables(
                [IpFamily::V4, IpFamily::V6]
                    .into_iter()
                    .map(|family| {
                        let config = iptables::Config {
                            node_name: opts.node_name.clone(),
                            node_ips: opts.nodeport_addresses.clone(),
                            cluster_cidr: opts.cluster_cidr.filter(|c| c.family() == family),
                            service_cidr: opts.service_cidrs.iter().copied().find(|c| c.family() == family),
                            masquerade_bit: 14,
                            family,
                        };
                        (config, BTreeSet::new())
                    })
                    .collect(),
            )),
        }
    }

    pub async fn sync(
        &mut self,
        snapshot: &Snapshot,
        changed: &BTreeSet<ServiceKey>,
        full: bool,
    ) -> Result<(), String> {
        match self {
            Plane::Nftables(tables) => {
                let mut transaction = String::new();
                for t in tables.iter_mut() {
                    let no_port = |_: &ServiceKey, _: &crate::model::Port| None;
                    let text = if full { t.full(snapshot, &no_port) } else { t.partial(snapshot, changed, &no_port) };
                    transaction.push_str(&text);
                }
                run_nft(transaction).await?;
                for t in tables.iter_mut() {
                    let gone = t.take_stale_affinity();
                    if !gone.is_empty() {
                        purge_affinity(t.config().clone(), gone).await;
                    }
                }
                Ok(())
            }
            Plane::Iptables(families) => {
                for (config, existing) in families.iter_mut() {
                    // A family without any Service or node address stays untouched.
                    let used = snapshot.values().any(|s| s.service.addresses_of(config.family).next().is_some());
                    if !used && existing.is_empty() && !full {
                        continue;
                    }
                    let rendered = if full {
                        iptables::render_sync(snapshot, config, None, existing)
                    } else {
                        iptables::render_partial(snapshot, config, changed, existing)
                    };
                    let family = config.family;
                    let text = rendered.text;
                    tokio::task::spawn_blocking(move || iptables::apply(&text, family))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                    *existing = rendered.active_chains;
                }
                Ok(())
            }
            Plane::Userspace { engine, tables, ports } => {
                // The engine first, so every redirect points at a port that listens.
                *ports = engine.update(frontends(snapshot, &node_name(tables))).await.map_err(|e| e.to_string())?;
                let port_of = |key: &ServiceKey, p: &Port| {
                    let proto = match p.protocol {
                        Protocol::Tcp => UProtocol::Tcp,
                        Protocol::Udp => UProtocol::Udp,
                        Protocol::Sctp => return None,
                    };
                    ports.get(&(port_name(key, p), proto)).copied()
                };
                let mut transaction = String::new();
                for t in tables.iter_mut() {
                    // A port's listener can change when its Service is recreated, so the
                    // redirects are rewritten with every change to the engine.
                    let text = if full { t.full(snapshot, &port_of) } else { t.partial(snapshot, changed, &port_of) };
                    transaction.push_str(&text);
                }
                run_nft(transaction).await
            }
        }
    }
}

fn node_name(tables: &[Table]) -> String {
    tables.first().map(|t| t.config().node_name.clone()).unwrap_or_default()
}

fn port_name(key: &ServiceKey, p: &Port) -> String {
    if p.name.is_empty() { key.to_string() } else { format!("{key}:{}", p.name) }
}

/// One userspace frontend per TCP or UDP Service port, relaying to the endpoints cluster
/// traffic would use (the engine sees no difference between cluster and external traffic).
fn frontends(snapshot: &Snapshot, node: &str) -> Vec<Frontend> {
    let mut out = vec![];
    for (key, state) in snapshot {
        for p in &state.service.ports {
            let protocol = match p.protocol {
                Protocol::Tcp => UProtocol::Tcp,
                Protocol::Udp => UProtocol::Udp,
                Protocol::Sctp => continue,
            };
            let backends = state.targets(p, node).cluster.iter().map(|e| SocketAddr::new(e.ip, e.port)).collect();
            out.push(Frontend {
                name: port_name(key, p),
                protocol,
                backends,
                affinity: state.service.affinity_timeout.map(|t| Duration::from_secs(t.into())),
            });
        }
    }
    out
}

/// Tables for both families: a single-stack cluster leaves the other one empty, which costs
/// nothing per packet.
fn tables(opts: &Options, mode: render::Mode) -> Vec<Table> {
    [IpFamily::V4, IpFamily::V6]
        .into_iter()
        .map(|family| {
            Table::new(Config {
                family,
                node_name: opts.node_name.clone(),
                nodeport_ips: opts.nodeport_addresses.clone(),
                cluster_cidr: opts.cluster_cidr.filter(|c| c.family() == family),
                service_cidr: opts.service_cidrs.iter().copied().find(|c| c.family() == family),
                mode,
            })
        })
        .collect()
}

/// Forgets the clients remembered at endpoints that are gone (best effort: a record that
/// expires meanwhile fails the deletion, and the next new connection renews nothing stale).
async fn purge_affinity(config: Config, gone: Vec<String>) {
    let listed = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("nft")
            .args(["list", "map", config.family_name(), render::TABLE, "affinity"])
            .output()
            .ok()?;
        let text = render::purge_affinity(&config, &String::from_utf8_lossy(&out.stdout), &gone);
        Some(nft::apply::run(&text))
    })
    .await;
    if let Ok(Some(Err(e))) = listed {
        tracing::debug!(error = %e, "purging affinity records of removed endpoints");
    }
}

async fn run_nft(transaction: String) -> Result<(), String> {
    tokio::task::spawn_blocking(move || nft::apply::run(&transaction))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Removes everything the nftables and userspace modes installed (`portico proxy --cleanup`).
pub fn cleanup() -> Result<(), String> {
    let mut text = String::new();
    for family in [IpFamily::V4, IpFamily::V6] {
        let c = Config {
            family,
            node_name: String::new(),
            nodeport_ips: vec![],
            cluster_cidr: None,
            service_cidr: None,
            mode: render::Mode::Kernel,
        };
        text.push_str(&render::delete_table(&c));
    }
    nft::apply::run(&text).map_err(|e| e.to_string())?;
    for family in [IpFamily::V4, IpFamily::V6] {
        if let Err(e) = iptables::cleanup(family) {
            // ip6tables may be missing where IPv6 is off; that leaves nothing to clean.
            tracing::warn!(error = %e, ?family, "iptables cleanup");
        }
    }
    Ok(())
}

//! Which conntrack entries a sync made stale (kube-proxy's stale-UDP cleanup). UDP has no
//! connection to end: an entry that still points at a removed endpoint (or at nothing, from
//! when the Service had no endpoints) keeps catching the client's datagrams until it times
//! out. After a sync, entries are deleted for
//! - every UDP endpoint a Service port lost: entries to the Service's addresses and NodePort
//!   whose reply comes from that endpoint;
//! - every UDP Service port that went from no endpoints to some: entries to its addresses.
//!
//! Pure.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use crate::conntrack::Filter;
use crate::model::{Protocol, ServiceKey, ServiceState, Snapshot};
use crate::run::Options;

pub fn filters(
    previous: &HashMap<ServiceKey, Arc<ServiceState>>,
    current: &Snapshot,
    changed: &BTreeSet<ServiceKey>,
    opts: &Options,
) -> Vec<Filter> {
    let mut out = vec![];
    for key in changed {
        let Some(old) = previous.get(key) else { continue };
        let new = current.get(key);
        for port in old.service.ports.iter().filter(|p| p.protocol == Protocol::Udp) {
            let before: BTreeSet<IpAddr> = old.targets(port, &opts.node_name).cluster.iter().map(|e| e.ip).collect();
            let after: BTreeSet<IpAddr> = new
                .and_then(|n| {
                    n.service.ports.iter().find(|p| p.name == port.name && p.protocol == port.protocol).map(|p| (n, p))
                })
                .map(|(n, p)| {
                    let t = n.targets(p, &opts.node_name);
                    t.cluster.iter().chain(&t.external).map(|e| e.ip).collect()
                })
                .unwrap_or_default();
            let addresses = addresses(&old.service);
            for gone in before.difference(&after) {
                for ip in &addresses {
                    out.push(Filter {
                        protocol: 17,
                        orig_dst: Some(*ip),
                        orig_dst_port: Some(port.port),
                        reply_src: Some(*gone),
                    });
                }
                if let Some(np) = port.node_port {
                    out.push(Filter { protocol: 17, orig_dst: None, orig_dst_port: Some(np), reply_src: Some(*gone) });
                }
            }
        }
    }
    // Ports that had no endpoint before this sync and have one now.
    for key in changed {
        let Some(new) = current.get(key) else { continue };
        let old = previous.get(key);
        for port in new.service.ports.iter().filter(|p| p.protocol == Protocol::Udp) {
            let had = old.is_some_and(|o| {
                o.service.ports.iter().any(|p| p.name == port.name && !o.targets(p, &opts.node_name).cluster.is_empty())
            });
            if !had && !new.targets(port, &opts.node_name).cluster.is_empty() {
                for ip in addresses(&new.service) {
                    out.push(Filter {
                        protocol: 17,
                        orig_dst: Some(ip),
                        orig_dst_port: Some(port.port),
                        reply_src: None,
                    });
                }
            }
        }
    }
    out
}

fn addresses(s: &crate::model::Service) -> Vec<IpAddr> {
    s.cluster_ips.iter().chain(&s.external_ips).chain(&s.load_balancer_ips).copied().collect()
}

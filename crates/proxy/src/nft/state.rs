//! What Portico believes is in its nftables table, so a sync can send only the difference:
//! every Service's last contribution, each element with the number of Services that put it
//! there (several ports share a ClusterIP; several Services share a hairpin pair), and the
//! shared chains that exist. The kernel's table is never read back.

use std::collections::{BTreeSet, HashMap};

use crate::model::{Port, ServiceKey, Snapshot};

use super::render::{self, Chain, Config, Contribution, Element, Map};

/// The userspace proxy's listening port for a Service port, if it has one.
pub type PortOf<'a> = &'a dyn Fn(&ServiceKey, &Port) -> Option<u16>;

struct Held {
    value: Option<String>,
    refs: u32,
}

pub struct Table {
    config: Config,
    /// Endpoints ("ip . port") that left Services with session affinity in the last partial
    /// sync: clients remembered there must be forgotten ([`render::purge_affinity`]).
    stale_affinity: Vec<String>,
    by_service: HashMap<ServiceKey, Contribution>,
    elements: HashMap<(Map, String), Held>,
    chains: BTreeSet<Chain>,
}

impl Table {
    pub fn new(config: Config) -> Table {
        Table {
            config,
            stale_affinity: vec![],
            by_service: HashMap::new(),
            elements: HashMap::new(),
            chains: BTreeSet::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of Services and of elements held (for metrics and logs).
    pub fn size(&self) -> (usize, usize) {
        (self.by_service.len(), self.elements.len())
    }

    /// The whole table, replacing whatever the kernel has: the transaction deletes the table and
    /// builds it again, atomically (established connections live in conntrack and survive).
    pub fn full(&mut self, snapshot: &Snapshot, port_of: PortOf<'_>) -> String {
        self.by_service.clear();
        self.elements.clear();
        self.chains.clear();
        for (key, state) in snapshot {
            let c = render::contribution(state, &self.config, &|p| port_of(key, p), None);
            self.hold(&c);
            self.chains.extend(c.chains.iter().cloned());
            self.by_service.insert(key.clone(), c);
        }
        let mut text = render::table(&self.config, &self.chains);
        let all: Vec<Element> = self
            .elements
            .iter()
            .map(|((map, key), held)| Element { map: *map, key: key.clone(), value: held.value.clone() })
            .collect();
        text.push_str(&render::elements(&self.config, "add", &all));
        text
    }

    /// Only what changed for the Services in `changed` (present in `snapshot` or gone from it).
    /// Empty when nothing changed.
    pub fn partial<'k>(
        &mut self,
        snapshot: &Snapshot,
        changed: impl IntoIterator<Item = &'k ServiceKey>,
        port_of: PortOf<'_>,
    ) -> String {
        // Each touched element's state before this sync: Some(value) if it was present.
        let mut before: HashMap<(Map, String), Option<Option<String>>> = HashMap::new();
        let mut new_chains: BTreeSet<Chain> = BTreeSet::new();
        for key in changed {
            let old = self.by_service.remove(key);
            let new = snapshot
                .get(key)
                .map(|state| render::contribution(state, &self.config, &|p| port_of(key, p), old.as_ref()));
            if old == new {
                if let Some(c) = old {
                    self.by_service.insert(key.clone(), c);
                }
                continue;
            }
            if let Some(old) = &old
                && old.elements.iter().any(|e| e.map == Map::AffinityServices)
            {
                let endpoints = |c: &Contribution| -> BTreeSet<String> {
                    c.elements
                        .iter()
                        .filter(|e| matches!(e.map, Map::ServiceEndpoints(_) | Map::NodePortEndpoints(_)))
                        .filter_map(|e| e.value.clone())
                        .collect()
                };
                let kept = new.as_ref().map(endpoints).unwrap_or_default();
                self.stale_affinity.extend(endpoints(old).into_iter().filter(|v| !kept.contains(v)));
            }
            for e in old.iter().chain(new.iter()).flat_map(|c| &c.elements) {
                let id = (e.map, e.key.clone());
                before.entry(id.clone()).or_insert_with(|| self.elements.get(&id).map(|h| h.value.clone()));
            }
            if let Some(old) = &old {
                self.release(old);
            }
            if let Some(new) = new {
                self.hold(&new);
                for ch in &new.chains {
                    if !self.chains.contains(ch) {
                        new_chains.insert(ch.clone());
                    }
                }
                self.by_service.insert(key.clone(), new);
            }
        }
        let mut deletes = vec![];
        let mut adds = vec![];
        for ((map, key), was) in before {
            let now = self.elements.get(&(map, key.clone())).map(|h| h.value.clone());
            if was == now {
                continue;
            }
            if let Some(value) = was {
                deletes.push(Element { map, key: key.clone(), value });
            }
            if let Some(value) = now {
                adds.push(Element { map, key, value });
            }
        }
        let mut text = String::new();
        for ch in &new_chains {
            text.push_str(&render::add_chain(&self.config, ch));
        }
        self.chains.extend(new_chains);
        deletes.sort();
        adds.sort();
        text.push_str(&render::elements(&self.config, "delete", &deletes));
        text.push_str(&render::elements(&self.config, "add", &adds));
        text
    }

    /// Endpoints that left affinity Services since the last call.
    pub fn take_stale_affinity(&mut self) -> Vec<String> {
        std::mem::take(&mut self.stale_affinity)
    }

    fn hold(&mut self, c: &Contribution) {
        for e in &c.elements {
            let held = self.elements.entry((e.map, e.key.clone())).or_insert(Held { value: None, refs: 0 });
            held.refs += 1;
            held.value = e.value.clone();
        }
    }

    fn release(&mut self, c: &Contribution) {
        for e in &c.elements {
            let id = (e.map, e.key.clone());
            if let Some(held) = self.elements.get_mut(&id) {
                held.refs -= 1;
                if held.refs == 0 {
                    self.elements.remove(&id);
                }
            }
        }
    }
}

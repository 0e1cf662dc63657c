//! The zone's one writer: it follows the process's shared informers of Services,
//! EndpointSlices, Namespaces (and Pods in `pods verified` mode) and applies each change to the
//! zone object by object. On [`Event::Synced`] (first list, relist, or a reader that fell
//! behind) it applies the whole store and removes whatever the store no longer has. The zone is
//! marked synced once every informer has delivered its first full list.

use crate::server::Shared;
use crate::zone::{ZoneData, k8s};
use component::encoded::Encoded;
use component::informer::{Event, Informer, Informers, Watched, split_key};
use component::pod::LeanPod;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

type Key = (String, String);

enum Change<'a, K> {
    Apply(&'a K),
    /// Deleted, or missing from a relist.
    Gone(Key),
}

fn key<K: Watched>(o: &K) -> Key {
    let key = o.key();
    let (ns, name) = split_key(&key);
    (ns.to_owned(), name.to_owned())
}

/// For a process whose only reader of Services and EndpointSlices is the DNS: hold only what
/// the zone reads of them.
pub fn trim_for_dns_only(informers: &Informers) {
    informers.trim::<Encoded<EndpointSlice>>(trim_slice);
    informers.trim::<Service>(trim_service);
}

/// What the zone reads of an EndpointSlice, for a process that only serves DNS
/// ([`Informers::trim`]): the rest (targetRefs, node names, zones, hints, owner references,
/// annotations) is most of a slice's memory.
pub fn trim_slice(s: &mut EndpointSlice) {
    s.metadata.annotations = None;
    s.metadata.owner_references = None;
    for e in &mut s.endpoints {
        e.target_ref = None;
        e.node_name = None;
        e.zone = None;
        e.hints = None;
        e.deprecated_topology = None;
    }
}

/// What the zone reads of a Service, for a process that only serves DNS.
pub fn trim_service(s: &mut Service) {
    s.metadata.annotations = None;
    s.metadata.owner_references = None;
    s.status = None;
    if let Some(spec) = s.spec.as_mut() {
        spec.selector = None;
        spec.session_affinity_config = None;
        spec.load_balancer_source_ranges = None;
    }
}

/// Starts following the informers; returns at once.
pub fn spawn(informers: &Informers, shared: Arc<Shared>, watch_pods: bool) {
    let kinds = if watch_pods { 4 } else { 3 };
    let gate = Arc::new(SyncGate { remaining: AtomicUsize::new(kinds) });

    tokio::spawn(follow(informers.get::<Service>(), shared.clone(), gate.clone(), |zone, change| match change {
        Change::Apply(s) => {
            let (ns, name) = key(s);
            zone.set_service(&ns, &name, k8s::service_model(s));
        }
        Change::Gone((ns, name)) => zone.set_service(&ns, &name, None),
    }));

    // slice -> the Service it was filed under, so relabels and deletes find it.
    let mut slices: HashMap<Key, String> = HashMap::new();
    // Slices are held encoded (the controllers in the same process read them one Service at a
    // time); the zone keeps its own model, so each is decoded once, here.
    let slice_informer = informers.get::<Encoded<EndpointSlice>>();
    tokio::spawn(follow(slice_informer, shared.clone(), gate.clone(), move |zone, change| {
        let (k, model) = match change {
            Change::Apply(s) => (key(s), k8s::slice_model(&s.decode())),
            Change::Gone(k) => (k, None),
        };
        if let Some(old) = slices.get(&k)
            && model.as_ref().is_none_or(|(svc, _)| svc != old)
        {
            zone.set_slice(&k.0, old, &k.1, None);
            slices.remove(&k);
        }
        if let Some((svc, m)) = model {
            zone.set_slice(&k.0, &svc, &k.1, Some(m));
            slices.insert(k, svc);
        }
    }));

    tokio::spawn(follow(informers.get::<Namespace>(), shared.clone(), gate.clone(), |zone, change| match change {
        Change::Apply(n) => zone.set_namespace(&n.name_any(), true),
        Change::Gone((_, name)) => zone.set_namespace(&name, false),
    }));

    if watch_pods {
        tokio::spawn(follow(informers.get::<LeanPod>(), shared, gate, |zone, change| match change {
            Change::Apply(p) => {
                let (ns, name) = key(p);
                zone.set_pod(&ns, &name, p.ips());
            }
            Change::Gone((ns, name)) => zone.set_pod(&ns, &name, vec![]),
        }));
    }
}

struct SyncGate {
    remaining: AtomicUsize,
}

async fn follow<K, F>(informer: Informer<K>, shared: Arc<Shared>, gate: Arc<SyncGate>, mut on: F)
where
    K: Watched,
    F: FnMut(&mut ZoneData, Change<'_, K>) + Send,
{
    let mut sub = informer.subscribe();
    // What this feed has applied, so a relist can take away what the store no longer has.
    let mut known: HashSet<Key> = HashSet::new();
    let mut first_sync = true;
    while let Some(event) = sub.next().await {
        match event {
            Event::Apply { new, .. } => {
                let mut zone = shared.zone.write().unwrap_or_else(|e| e.into_inner());
                known.insert(key(&*new));
                on(&mut zone, Change::Apply(&new));
            }
            Event::Delete(o) => {
                let mut zone = shared.zone.write().unwrap_or_else(|e| e.into_inner());
                known.remove(&key(&*o));
                on(&mut zone, Change::Gone(key(&*o)));
            }
            Event::Synced => {
                let all = informer.state();
                let mut zone = shared.zone.write().unwrap_or_else(|e| e.into_inner());
                let seen: HashSet<Key> = all.iter().map(|o| key(&**o)).collect();
                for k in known.extract_if(|k| !seen.contains(k)) {
                    on(&mut zone, Change::Gone(k));
                }
                for o in &all {
                    on(&mut zone, Change::Apply(o));
                }
                known = seen;
                if std::mem::take(&mut first_sync) && gate.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    zone.synced = true;
                    tracing::info!(
                        services = zone.service_count(),
                        endpoints = zone.endpoint_count(),
                        "DNS zone synced"
                    );
                }
            }
        }
    }
}

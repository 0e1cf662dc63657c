//! The zone's one writer: kube-rs watchers on Services, EndpointSlices, Namespaces (and Pods
//! in `pods verified` mode), each event applied to the zone object by object. A relist
//! (watcher `Init` … `InitDone`) removes whatever the new list no longer has. The zone is
//! marked synced once every watcher has delivered its first full list.

use crate::server::Shared;
use crate::zone::{ZoneData, k8s};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

type Key = (String, String);

enum Change<'a, K> {
    Apply(&'a K),
    /// Deleted, or missing from a relist.
    Gone(Key),
}

fn key<K: Resource>(o: &K) -> Key {
    (o.namespace().unwrap_or_default(), o.name_any())
}

/// Starts the watchers; returns at once.
pub fn spawn(client: Client, shared: Arc<Shared>, watch_pods: bool) {
    let kinds = if watch_pods { 4 } else { 3 };
    let gate = Arc::new(SyncGate { remaining: AtomicUsize::new(kinds) });

    tokio::spawn(run(Api::<Service>::all(client.clone()), shared.clone(), gate.clone(), |zone, change| match change {
        Change::Apply(s) => {
            let (ns, name) = key(s);
            zone.set_service(&ns, &name, k8s::service_model(s));
        }
        Change::Gone((ns, name)) => zone.set_service(&ns, &name, None),
    }));

    // slice -> the Service it was filed under, so relabels and deletes find it.
    let mut slices: HashMap<Key, String> = HashMap::new();
    tokio::spawn(run(Api::<EndpointSlice>::all(client.clone()), shared.clone(), gate.clone(), move |zone, change| {
        let (k, model) = match change {
            Change::Apply(s) => (key(s), k8s::slice_model(s)),
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

    tokio::spawn(run(
        Api::<Namespace>::all(client.clone()),
        shared.clone(),
        gate.clone(),
        |zone, change| match change {
            Change::Apply(n) => zone.set_namespace(&n.name_any(), true),
            Change::Gone((_, name)) => zone.set_namespace(&name, false),
        },
    ));

    if watch_pods {
        tokio::spawn(run(Api::<Pod>::all(client), shared, gate, |zone, change| match change {
            Change::Apply(p) => {
                let (ns, name) = key(p);
                zone.set_pod(&ns, &name, k8s::pod_ips(p));
            }
            Change::Gone((ns, name)) => zone.set_pod(&ns, &name, vec![]),
        }));
    }
}

struct SyncGate {
    remaining: AtomicUsize,
}

async fn run<K, F>(api: Api<K>, shared: Arc<Shared>, gate: Arc<SyncGate>, mut on: F)
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
    F: FnMut(&mut ZoneData, Change<'_, K>) + Send,
{
    let kind = K::kind(&Default::default()).to_string();
    let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
    // What this watch has applied, so a relist can take away what it no longer lists.
    let mut known: HashSet<Key> = HashSet::new();
    let mut relist: Option<HashSet<Key>> = None;
    let mut first_sync = true;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(%kind, error = %e, "DNS watch failed; retrying");
                continue;
            }
        };
        let mut zone = shared.zone.write().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Init => relist = Some(HashSet::new()),
            watcher::Event::InitApply(o) => {
                if let Some(seen) = relist.as_mut() {
                    seen.insert(key(&o));
                }
                known.insert(key(&o));
                on(&mut zone, Change::Apply(&o));
            }
            watcher::Event::InitDone => {
                if let Some(seen) = relist.take() {
                    for k in known.extract_if(|k| !seen.contains(k)) {
                        on(&mut zone, Change::Gone(k));
                    }
                }
                if std::mem::take(&mut first_sync) && gate.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    zone.synced = true;
                    tracing::info!(
                        services = zone.service_count(),
                        endpoints = zone.endpoint_count(),
                        "DNS zone synced"
                    );
                }
            }
            watcher::Event::Apply(o) => {
                known.insert(key(&o));
                on(&mut zone, Change::Apply(&o));
            }
            watcher::Event::Delete(o) => {
                known.remove(&key(&o));
                on(&mut zone, Change::Gone(key(&o)));
            }
        }
    }
}

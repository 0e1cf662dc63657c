//! The EndpointSlice, Endpoints and EndpointSlice-mirroring controllers, on the process's
//! shared informers.
//!
//! Every event marks the Services it may affect as dirty (a pod: the Services that select it
//! now or selected it before; a slice: its Service; an Endpoints: the Service of its name); the
//! reconcile queue runs the pure reconcilers on what the informers hold and writes the plans
//! with create / replace / delete, then waits until the informers show its own writes, so the
//! next reconcile of the same Service never works from a stale view (which could otherwise
//! create duplicate slices).

use std::collections::{BTreeMap, BTreeSet};

use component::encoded::Encoded;
use component::index::{self, BY_LABEL, BY_SELECTOR, BY_SERVICE};
use component::informer::{Event, Informer, Informers, Watched, split_key};

use super::follow;
use component::labels::{ENDPOINTSLICE_MANAGED_BY, SERVICE_NAME, TOPOLOGY_ZONE};
use component::pod::LeanPod;
use component::reconcile::{self, Dirty, QueueOptions, Reconciler, Written, delete_params};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::mpsc;

use crate::endpoints::{LAST_CHANGE_TRIGGER_TIME_ANNOTATION, desired_endpoints, needs_update};
use crate::endpointslice::{self, format_trigger_time, selects};
use crate::mirroring;

/// Settings of the controllers.
#[derive(Clone, Debug)]
pub struct Options {
    /// Most endpoints per EndpointSlice (kube-controller-manager's `--max-endpoints-per-slice`).
    pub max_endpoints_per_slice: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_endpoints_per_slice: endpointslice::DEFAULT_MAX_ENDPOINTS_PER_SLICE }
    }
}

/// Services reconciled at once (each waits on its own API writes).
const CONCURRENCY: usize = 16;

/// A Service, by namespace and name.
type Key = (String, String);

fn key_of<K: Resource>(o: &K) -> Key {
    (o.namespace().unwrap_or_default(), o.name_any())
}

fn held_key<K: Watched>(o: &K) -> Key {
    let key = o.key();
    let (ns, name) = split_key(&key);
    (ns.to_owned(), name.to_owned())
}

fn selector_of(s: &Service) -> Option<&BTreeMap<String, String>> {
    s.spec.as_ref().and_then(|spec| spec.selector.as_ref())
}

/// The Service a slice is filed under.
fn slice_service(s: &Encoded<EndpointSlice>) -> Option<Key> {
    let (_, service) = s.labels().find(|(k, _)| *k == SERVICE_NAME)?;
    Some((s.namespace().to_owned(), service.to_owned()))
}

fn zone(n: &Node) -> Option<&String> {
    n.labels().get(TOPOLOGY_ZONE)
}

struct Controller {
    client: Client,
    opts: Options,
    services: Informer<Service>,
    pods: Informer<LeanPod>,
    slices: Informer<Encoded<EndpointSlice>>,
    endpoints: Informer<Encoded<Endpoints>>,
    nodes: Informer<Node>,
}

/// Runs the EndpointSlice, Endpoints and mirroring controllers until the process ends.
pub async fn run_service_endpoints(informers: Informers, opts: Options) -> Result<(), String> {
    let c = Controller {
        client: informers.client().clone(),
        opts,
        services: informers.get(),
        pods: informers.get(),
        slices: informers.get(),
        endpoints: informers.get(),
        nodes: informers.get(),
    };
    c.services.index(BY_SELECTOR, index::selector_pairs);
    c.pods.index(BY_LABEL, index::label_pairs::<LeanPod>);
    c.slices.index(BY_SERVICE, index::service_name::<Encoded<EndpointSlice>>);

    let (tx, rx) = mpsc::unbounded_channel();
    follow(&c.services, &tx, |ev| match ev {
        Event::Apply { new, .. } => vec![Dirty::Key(key_of(&*new))],
        Event::Delete(s) => vec![Dirty::Key(key_of(&*s))],
        Event::Synced => vec![Dirty::All],
    });
    let services = c.services.clone();
    follow(&c.pods, &tx, move |ev| match ev {
        Event::Apply { new, old } => {
            let mut keys = selecting(&services, &new);
            if let Some(old) = old.filter(|o| o.labels != new.labels) {
                keys.extend(selecting(&services, &old));
            }
            keys.into_iter().map(Dirty::Key).collect()
        }
        Event::Delete(p) => selecting(&services, &p).into_iter().map(Dirty::Key).collect(),
        Event::Synced => vec![Dirty::All],
    });
    follow(&c.slices, &tx, |ev| match ev {
        Event::Apply { new, old } => {
            let keys: BTreeSet<Key> =
                [Some(&new), old.as_ref()].into_iter().flatten().filter_map(|s| slice_service(s)).collect();
            keys.into_iter().map(Dirty::Key).collect()
        }
        Event::Delete(s) => slice_service(&s).map(Dirty::Key).into_iter().collect(),
        Event::Synced => vec![Dirty::All],
    });
    follow(&c.endpoints, &tx, |ev| match ev {
        Event::Apply { new, .. } => vec![Dirty::Key(held_key(&*new))],
        Event::Delete(e) => vec![Dirty::Key(held_key(&*e))],
        Event::Synced => vec![Dirty::All],
    });
    // Nodes matter only for their zone, which slices carry.
    follow(&c.nodes, &tx, |ev| match ev {
        Event::Apply { new, old } if old.as_ref().map(|o| zone(o)) == Some(zone(&new)) => vec![],
        Event::Apply { new, .. } | Event::Delete(new) if zone(&new).is_none() => vec![],
        _ => vec![Dirty::All],
    });
    drop(tx);

    tokio::join!(c.services.ready(), c.pods.ready(), c.slices.ready(), c.endpoints.ready(), c.nodes.ready());
    tracing::info!("endpoints controllers synced; reconciling");
    reconcile::run(&c, rx, QueueOptions { concurrency: CONCURRENCY, ..QueueOptions::default() }).await;
    Err("the endpoints controllers' event feed ended".to_owned())
}

/// The Services whose selector selects `pod`.
fn selecting(services: &Informer<Service>, pod: &LeanPod) -> BTreeSet<Key> {
    let ns = &pod.namespace;
    let mut out = BTreeSet::new();
    for (k, v) in &pod.labels {
        for svc in services.indexed(BY_SELECTOR, &index::pair(ns, k, v)) {
            let sel = selector_of(&svc);
            if sel.is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| pod.label(k) == Some(v.as_str()))) {
                out.insert(key_of(&*svc));
            }
        }
    }
    out
}

impl Reconciler for Controller {
    type Key = Key;

    /// Every Service, and every name a slice or Endpoints refers to (their Service may be gone).
    fn all(&self) -> Vec<Key> {
        let mut keys = BTreeSet::new();
        self.services.for_each(|s| {
            keys.insert(key_of(s));
        });
        for v in self.slices.index_values(BY_SERVICE) {
            let (ns, name) = split_key(&v);
            keys.insert((ns.to_owned(), name.to_owned()));
        }
        self.endpoints.for_each(|e| {
            keys.insert(held_key(e));
        });
        keys.into_iter().collect()
    }

    async fn reconcile(&self, key: &Key) -> bool {
        self.sync(key).await
    }
}

impl Controller {
    /// Reconciles one Service; false when it must be retried.
    async fn sync(&self, key: &Key) -> bool {
        let (ns, name) = key;
        let service = self.services.get(ns, name);
        let slices: Vec<EndpointSlice> =
            self.slices.indexed(BY_SERVICE, &format!("{ns}/{name}")).iter().map(|s| s.decode()).collect();
        let managed_by =
            |s: &EndpointSlice, who: &str| s.labels().get(ENDPOINTSLICE_MANAGED_BY).map(String::as_str) == Some(who);
        let endpoints = self.endpoints.get(ns, name).map(|e| e.decode());
        let trigger = format_trigger_time(jiff::Timestamp::now());

        let mut slice_writes = Vec::new();
        let mut endpoints_writes = Vec::new();
        match &service {
            None => {
                // The Service is gone: its slices go (garbage collection would get there too)
                // and so does the Endpoints this controller made for it.
                let ours: Vec<EndpointSlice> = slices
                    .iter()
                    .filter(|s| {
                        managed_by(s, endpointslice::CONTROLLER_NAME) || managed_by(s, mirroring::CONTROLLER_NAME)
                    })
                    .cloned()
                    .collect();
                self.write_slices(ns, &ours, &[], &[], &mut slice_writes).await;
                if let Some(e) = endpoints.as_ref().filter(|e| made_by_controller(e)) {
                    endpoints_writes.push(self.delete_endpoints(ns, e).await);
                }
            }
            Some(service) => {
                let pods: Vec<Pod> = match selector_of(service) {
                    Some(sel) if !sel.is_empty() => self
                        .pods
                        .indexed_all(BY_LABEL, &index::selector_values(ns, sel))
                        .into_iter()
                        .map(|p| p.to_pod())
                        .filter(|p| selects(service, p))
                        .collect(),
                    _ => vec![],
                };
                let mut zones = BTreeMap::new();
                self.nodes.for_each(|n| {
                    if let Some(z) = zone(n) {
                        zones.insert(n.name_any(), z.clone());
                    }
                });

                // EndpointSlices for the selector.
                let managed: Vec<EndpointSlice> =
                    slices.iter().filter(|s| managed_by(s, endpointslice::CONTROLLER_NAME)).cloned().collect();
                let plan = endpointslice::reconcile(&endpointslice::Input {
                    service,
                    pods: &pods,
                    existing: &managed,
                    node_zones: &zones,
                    max_endpoints_per_slice: self.opts.max_endpoints_per_slice,
                    trigger_time: Some(&trigger),
                });
                if !plan.is_empty() {
                    tracing::info!(namespace = %ns, service = %name, create = plan.create.len(), update = plan.update.len(), delete = plan.delete.len(), "endpointslices");
                }
                self.write_slices(ns, &plan.delete, &plan.update, &plan.create, &mut slice_writes).await;

                // Mirrored slices for a selectorless Service's Endpoints.
                let plan = mirroring::reconcile_mirrored(service, endpoints.as_ref(), &slices);
                if !plan.is_empty() {
                    tracing::info!(namespace = %ns, service = %name, create = plan.create.len(), update = plan.update.len(), delete = plan.delete.len(), "mirrored endpointslices");
                }
                self.write_slices(ns, &plan.delete, &plan.update, &plan.create, &mut slice_writes).await;

                // The Endpoints object.
                match (desired_endpoints(service, &pods, Some(&trigger)), endpoints.as_ref()) {
                    (Some(desired), None) => endpoints_writes.push(self.create_endpoints(ns, &desired).await),
                    (Some(mut desired), Some(current)) => {
                        if needs_update(current, &desired) {
                            desired.metadata.resource_version = current.metadata.resource_version.clone();
                            desired.metadata.uid = current.metadata.uid.clone();
                            desired.metadata.creation_timestamp = current.metadata.creation_timestamp.clone();
                            endpoints_writes.push(self.replace_endpoints(ns, &desired).await);
                        }
                    }
                    (None, Some(current)) if made_by_controller(current) => {
                        endpoints_writes.push(self.delete_endpoints(ns, current).await);
                    }
                    (None, _) => {}
                }
            }
        }
        reconcile::settled(&self.slices, ns, &slice_writes).await
            & reconcile::settled(&self.endpoints, ns, &endpoints_writes).await
    }

    async fn write_slices(
        &self,
        ns: &str,
        delete: &[EndpointSlice],
        update: &[EndpointSlice],
        create: &[EndpointSlice],
        out: &mut Vec<Written>,
    ) {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), ns);
        for s in delete {
            let name = s.name_any();
            out.push(Written::deleted(
                ns,
                "delete endpointslice",
                &name,
                api.delete(&name, &delete_params(s.uid())).await,
            ));
        }
        for s in update {
            let name = s.name_any();
            out.push(Written::stored(ns, "replace endpointslice", api.replace(&name, &PostParams::default(), s).await));
        }
        for s in create {
            out.push(Written::stored(ns, "create endpointslice", api.create(&PostParams::default(), s).await));
        }
    }

    fn endpoints_api(&self, ns: &str) -> Api<Endpoints> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn create_endpoints(&self, ns: &str, e: &Endpoints) -> Written {
        Written::stored(ns, "create endpoints", self.endpoints_api(ns).create(&PostParams::default(), e).await)
    }

    async fn replace_endpoints(&self, ns: &str, e: &Endpoints) -> Written {
        let name = e.name_any();
        Written::stored(ns, "replace endpoints", self.endpoints_api(ns).replace(&name, &PostParams::default(), e).await)
    }

    async fn delete_endpoints(&self, ns: &str, e: &Endpoints) -> Written {
        let name = e.name_any();
        let r = self.endpoints_api(ns).delete(&name, &delete_params(e.uid())).await;
        Written::deleted(ns, "delete endpoints", &name, r)
    }
}

/// Endpoints this controller wrote carry the last-change-trigger-time annotation; those a user
/// wrote for a selectorless Service (usually) do not and are left alone.
fn made_by_controller(e: &Endpoints) -> bool {
    e.annotations().contains_key(LAST_CHANGE_TRIGGER_TIME_ANNOTATION)
}

//! One watch of every pod for all the loops: one reflector (one copy of each pod in memory)
//! and a broadcast of its events. Before this, the endpoint, workload and node loops each
//! kept their own reflector: three copies of every pod (2.5 GiB at 100,000 pods).

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::{broadcast, mpsc, watch};

/// Events kept for a slow subscriber; past that it gets a full resync instead.
const BACKLOG: usize = 1 << 16;

/// A watch event as a loop sees it.
pub(crate) enum Ev<'a, K: Resource<DynamicType = ()> + Clone + 'static> {
    Apply(&'a K),
    Delete(&'a K),
    /// A relist finished (or the subscriber fell behind); the store holds the whole list.
    Relisted(&'a Store<K>),
}

#[derive(Clone)]
enum Event {
    Apply(Arc<Pod>),
    Delete(Arc<Pod>),
    Relisted,
}

/// The pod watch shared by the controllers. Hand a [`PodFeed`] to each loop first, then
/// [`start`](SharedPods::start) it, so no subscriber misses an event.
pub struct SharedPods {
    store: Store<Pod>,
    writer: Mutex<Option<Writer<Pod>>>,
    events: broadcast::Sender<Event>,
    /// Set once the first list is in the store. (`Store::wait_until_ready` wakes only one of
    /// several tasks waiting on clones of a store: it keeps a single waker.)
    ready: watch::Sender<bool>,
}

/// One loop's view of the shared pod watch.
pub struct PodFeed {
    store: Store<Pod>,
    events: broadcast::Receiver<Event>,
    ready: watch::Receiver<bool>,
}

impl Default for SharedPods {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedPods {
    pub fn new() -> SharedPods {
        let (store, writer) = reflector::store();
        let (events, _) = broadcast::channel(BACKLOG);
        let (ready, _) = watch::channel(false);
        SharedPods { store, writer: Mutex::new(Some(writer)), events, ready }
    }

    pub fn feed(&self) -> PodFeed {
        PodFeed { store: self.store.clone(), events: self.events.subscribe(), ready: self.ready.subscribe() }
    }

    /// Starts the watch (once; later calls do nothing).
    pub fn start(&self, client: Client) {
        let Some(writer) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        let (store, events, ready) = (self.store.clone(), self.events.clone(), self.ready.clone());
        // managedFields are of no use to a controller and are often the larger part of a pod.
        let stream = watcher(Api::<Pod>::all(client), watcher::Config::default())
            .modify(|p| p.managed_fields_mut().clear())
            .default_backoff();
        let stream = reflector::reflector(writer, stream);
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let event = match event {
                    // The store's own Arc: subscribers share the stored copy.
                    Ok(watcher::Event::Apply(p)) => {
                        Event::Apply(store.get(&ObjectRef::from_obj(&p)).unwrap_or_else(|| Arc::new(p)))
                    }
                    Ok(watcher::Event::Delete(p)) => Event::Delete(Arc::new(p)),
                    Ok(watcher::Event::InitDone) => {
                        ready.send_replace(true);
                        Event::Relisted
                    }
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "pod watch failed; retrying");
                        continue;
                    }
                };
                // No subscriber (yet) is fine: loops rely on the store after their first sync.
                let _ = events.send(event);
            }
        });
    }
}

impl PodFeed {
    /// Resolves once the shared store holds the first full list of pods.
    pub(crate) fn ready(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut ready = self.ready.clone();
        async move {
            let _ = ready.wait_for(|r| *r).await;
        }
    }

    /// Forwards what each pod event makes dirty to `tx` from a task of its own; returns the
    /// shared store.
    pub(crate) fn follow<D: Send + 'static>(
        self,
        tx: &mpsc::UnboundedSender<D>,
        mut on: impl FnMut(Ev<'_, Pod>) -> Vec<D> + Send + 'static,
    ) -> Store<Pod> {
        let PodFeed { store, mut events, .. } = self;
        let tx = tx.clone();
        let reader = store.clone();
        tokio::spawn(async move {
            loop {
                let dirty = match events.recv().await {
                    Ok(Event::Apply(p)) => on(Ev::Apply(&p)),
                    Ok(Event::Delete(p)) => on(Ev::Delete(&p)),
                    Ok(Event::Relisted) => on(Ev::Relisted(&reader)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "a controller fell behind the pod watch; resyncing it");
                        on(Ev::Relisted(&reader))
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                for d in dirty {
                    if tx.send(d).is_err() {
                        return;
                    }
                }
            }
        });
        store
    }
}

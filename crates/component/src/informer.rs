//! Shared informers: in one process each kind is listed and watched once and held once,
//! whatever number of components read it (client-go's SharedInformerFactory).
//!
//! An [`Informer`] owns one kube-rs watcher (which resumes from the last resourceVersion and
//! relists on 410 Gone), keeps the objects trimmed in its own store with the indexes its
//! readers asked for, and broadcasts each change after store and indexes show it. Readers
//! [`subscribe`](Informer::subscribe) for [`Event`]s and read the store; a
//! [`Event::Synced`] tells them the store holds a fresh full list (first sync, relist, or a
//! reader that fell behind) and they should compare their state with it.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};

use crate::index::{IndexFn, Indexes};
use crate::labels::LAST_APPLIED_ANNOTATION;

/// Events kept for a slow reader; past that it gets [`Event::Synced`] instead. Readers only
/// turn events into keys, far faster than a watch delivers them; the ring's slots are
/// allocated up front (64 B each), so a larger one costs memory in every informer.
const BACKLOG: usize = 4096;

/// A kind as an informer holds it. Most kinds are held as the API sends them; where a leaner
/// form pays off at scale, the stored type differs from the wire type (pods are held as
/// [`LeanPod`](crate::pod::LeanPod), large objects read rarely as
/// [`Encoded`](crate::encoded::Encoded)).
pub trait Watched: Debug + Send + Sync + 'static {
    /// What the watch deserializes.
    type Wire: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static;
    fn from_wire(o: Self::Wire) -> Self;
    /// The store key (`namespace/name`).
    fn key(&self) -> Key;
    fn resource_version(&self) -> Option<&str>;
}

impl<K> Watched for K
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    type Wire = K;
    fn from_wire(o: K) -> K {
        o
    }
    fn key(&self) -> Key {
        key_of(self)
    }
    fn resource_version(&self) -> Option<&str> {
        self.meta().resource_version.as_deref()
    }
}

/// `namespace/name` (or `name` for cluster-scoped objects): the store key.
pub type Key = Arc<str>;

/// The store key of `ns`/`name`.
pub fn key(ns: &str, name: &str) -> Key {
    if ns.is_empty() { Arc::from(name) } else { Arc::from(format!("{ns}/{name}")) }
}

/// The store key of an object.
pub fn key_of<K: Resource>(o: &K) -> Key {
    let meta = o.meta();
    key(meta.namespace.as_deref().unwrap_or(""), meta.name.as_deref().unwrap_or(""))
}

/// Splits a store key into namespace (empty when cluster-scoped) and name.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// A change, as readers see it.
#[derive(Debug)]
pub enum Event<K> {
    /// Added or changed; `old` is what the store held before (client-go's UpdateFunc).
    Apply {
        new: Arc<K>,
        old: Option<Arc<K>>,
    },
    Delete(Arc<K>),
    /// The store holds a whole fresh list: reconcile against it.
    Synced,
}

impl<K> Clone for Event<K> {
    fn clone(&self) -> Self {
        match self {
            Event::Apply { new, old } => Event::Apply { new: new.clone(), old: old.clone() },
            Event::Delete(o) => Event::Delete(o.clone()),
            Event::Synced => Event::Synced,
        }
    }
}

/// The informers of one process, by kind.
#[derive(Clone)]
pub struct Informers {
    client: Client,
    kinds: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>,
    /// Extra trimming per kind (a `fn(&mut K)`), for what no component of this process reads.
    trims: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>,
    /// A field selector per kind, for a process that needs only some of its objects.
    fields: Arc<Mutex<HashMap<TypeId, String>>>,
    fatal: watch::Sender<Option<String>>,
}

impl Informers {
    pub fn new(client: Client) -> Informers {
        Informers {
            client,
            kinds: Arc::default(),
            trims: Arc::default(),
            fields: Arc::default(),
            fatal: watch::channel(None).0,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Drops more of each `K` before it is stored: what none of this process's components
    /// reads (a process that only serves DNS needs no endpoint's targetRef or zone). Takes
    /// effect for an informer started after the call.
    pub fn trim<K: Watched>(&self, f: fn(&mut K::Wire)) {
        self.trims.lock().unwrap_or_else(|e| e.into_inner()).insert(TypeId::of::<K>(), Box::new(f));
    }

    /// Lists and watches only the `K`s matching `selector` (a field selector such as
    /// `spec.nodeName=n1`, as kubelet watches only its node's pods). Takes effect for an
    /// informer started after the call.
    pub fn select<K: Watched>(&self, selector: &str) {
        self.fields.lock().unwrap_or_else(|e| e.into_inner()).insert(TypeId::of::<K>(), selector.to_owned());
    }

    /// The informer of `K`, started on first use; every later call shares it.
    pub fn get<K: Watched>(&self) -> Informer<K> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = kinds.get(&TypeId::of::<K>()).and_then(|b| b.downcast_ref::<Informer<K>>()) {
            return i.clone();
        }
        let informer = Informer::<K>::new();
        let extra = self
            .trims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&TypeId::of::<K>())
            .and_then(|b| b.downcast_ref::<fn(&mut K::Wire)>().copied());
        let fields = self.fields.lock().unwrap_or_else(|e| e.into_inner()).get(&TypeId::of::<K>()).cloned();
        informer.start(self.client.clone(), self.fatal.clone(), extra, fields);
        kinds.insert(TypeId::of::<K>(), Box::new(informer.clone()));
        informer
    }

    /// Resolves with the reason when a watch failed in a way retrying cannot fix (the API
    /// refuses the credentials, or does not serve the kind).
    pub async fn failed(&self) -> String {
        let mut rx = self.fatal.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }
}

struct State<K> {
    objects: HashMap<Key, Arc<K>>,
    indexes: Indexes<K>,
}

struct Shared<K> {
    state: RwLock<State<K>>,
    events: broadcast::Sender<Event<K>>,
    ready: watch::Sender<bool>,
    /// Bumped after every change, for [`Informer::wait_until`].
    version: watch::Sender<u64>,
}

/// One kind's shared watch, store and indexes. Cheap to clone.
pub struct Informer<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer { shared: self.shared.clone() }
    }
}

/// What a reader waits to see of its own write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The object at this resourceVersion or a newer one.
    AtLeast(String),
    /// No such object.
    Gone,
}

impl<K: Watched> Informer<K> {
    fn new() -> Informer<K> {
        Informer {
            shared: Arc::new(Shared {
                state: RwLock::new(State { objects: HashMap::new(), indexes: Indexes::default() }),
                events: broadcast::channel(BACKLOG).0,
                ready: watch::channel(false).0,
                version: watch::channel(0).0,
            }),
        }
    }

    /// A store that no watch fills, for tests of code that reads informers.
    pub fn detached() -> Informer<K> {
        Informer::new()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State<K>> {
        self.shared.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State<K>> {
        self.shared.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn start(
        &self,
        client: Client,
        fatal: watch::Sender<Option<String>>,
        extra: Option<fn(&mut K::Wire)>,
        fields: Option<String>,
    ) {
        let this = self.clone();
        let kind = kind::<K>();
        let mut config = watcher::Config::default();
        if let Some(f) = &fields {
            config = config.fields(f);
        }
        let stream = watcher(Api::<K::Wire>::all(client), config)
            .modify(move |o| {
                trim(o);
                if let Some(f) = extra {
                    f(o);
                }
            })
            .default_backoff();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let mut relist: Option<HashMap<Key, Arc<K>>> = None;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Apply(o)) => this.apply(K::from_wire(o)),
                    Ok(watcher::Event::Delete(o)) => this.delete(K::from_wire(o)),
                    Ok(watcher::Event::Init) => relist = Some(HashMap::new()),
                    Ok(watcher::Event::InitApply(o)) => {
                        let o = K::from_wire(o);
                        relist.get_or_insert_with(HashMap::new).insert(o.key(), Arc::new(o));
                    }
                    Ok(watcher::Event::InitDone) => this.replace(relist.take().unwrap_or_default()),
                    Err(e) => match fatal_reason(&e) {
                        Some(reason) => {
                            let reason = format!("cannot watch {kind}: {reason}");
                            tracing::error!(%kind, error = %e, "{reason}");
                            fatal.send_replace(Some(reason));
                            return;
                        }
                        None => tracing::warn!(%kind, error = %e, "watch failed; retrying"),
                    },
                }
            }
        });
    }

    /// Applies a change made outside a watch (tests; also the apply path of the watch).
    pub fn apply(&self, o: K) {
        let new = Arc::new(o);
        let old = {
            let mut state = self.write();
            let k = new.key();
            state.indexes.update(&k, Some(&new));
            state.objects.insert(k, new.clone())
        };
        self.changed(Event::Apply { new, old });
    }

    pub fn delete(&self, o: K) {
        let k = o.key();
        let gone = {
            let mut state = self.write();
            state.indexes.update(&k, None);
            state.objects.remove(&k)
        };
        self.changed(Event::Delete(gone.unwrap_or_else(|| Arc::new(o))));
    }

    /// Replaces the whole store with a fresh list.
    pub fn replace(&self, objects: HashMap<Key, Arc<K>>) {
        {
            let mut state = self.write();
            state.indexes.rebuild(&objects);
            state.objects = objects;
        }
        self.shared.ready.send_replace(true);
        self.changed(Event::Synced);
    }

    fn changed(&self, event: Event<K>) {
        // No reader yet is fine: readers start from the store.
        let _ = self.shared.events.send(event);
        self.shared.version.send_modify(|v| *v += 1);
    }

    /// Adds an index (once per name; later calls with the same name keep the first). Values
    /// are strings the object is filed under, e.g. its node name or each of its labels.
    pub fn index(&self, name: &'static str, f: IndexFn<K>) {
        let mut state = self.write();
        let State { objects, indexes } = &mut *state;
        indexes.add(name, f, objects);
    }

    /// The objects filed under `value` in index `name`.
    pub fn indexed(&self, name: &str, value: &str) -> Vec<Arc<K>> {
        let state = self.read();
        state.indexes.keys(name, value).filter_map(|k| state.objects.get(k).cloned()).collect()
    }

    /// Every value index `name` has objects under.
    pub fn index_values(&self, name: &str) -> Vec<String> {
        self.read().indexes.values(name)
    }

    /// The keys filed under `value` in index `name`.
    pub fn indexed_keys(&self, name: &str, value: &str) -> Vec<Key> {
        self.read().indexes.keys(name, value).cloned().collect()
    }

    /// The objects filed under every one of `values` (an intersection: a label selector's
    /// pairs against a labels index); starts from the smallest set.
    pub fn indexed_all(&self, name: &str, values: &[String]) -> Vec<Arc<K>> {
        let state = self.read();
        let Some(smallest) = values.iter().min_by_key(|v| state.indexes.count(name, v)) else { return vec![] };
        state
            .indexes
            .keys(name, smallest)
            .filter(|k| values.iter().all(|v| state.indexes.contains(name, v, k)))
            .filter_map(|k| state.objects.get(k).cloned())
            .collect()
    }

    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<K>> {
        self.read().objects.get(&*key(ns, name)).cloned()
    }

    pub fn get_key(&self, key: &str) -> Option<Arc<K>> {
        self.read().objects.get(key).cloned()
    }

    /// Every object (a copy of the store's pointers).
    pub fn state(&self) -> Vec<Arc<K>> {
        self.read().objects.values().cloned().collect()
    }

    /// Calls `f` on every object under the read lock, without copying the store.
    pub fn for_each(&self, mut f: impl FnMut(&K)) {
        for o in self.read().objects.values() {
            f(o);
        }
    }

    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the first list is in.
    pub fn is_ready(&self) -> bool {
        *self.shared.ready.borrow()
    }

    /// Resolves once the first list is in.
    pub fn ready(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shared.ready.subscribe();
        async move {
            let _ = rx.wait_for(|r| *r).await;
        }
    }

    /// A reader's view of the changes. A reader that subscribes after the first list gets
    /// [`Event::Synced`] first.
    pub fn subscribe(&self) -> Subscription<K> {
        let rx = self.shared.events.subscribe();
        Subscription { rx, primed: self.is_ready() }
    }

    /// Waits until every `(namespace, name, seen)` holds in the store (a reader's own writes);
    /// false after `timeout`.
    pub async fn wait_until(&self, wanted: &[(String, String, Seen)], timeout: Duration) -> bool {
        let mut version = self.shared.version.subscribe();
        let check = || {
            let state = self.read();
            wanted.iter().all(|(ns, name, seen)| {
                let held = state.objects.get(&*key(ns, name));
                match seen {
                    Seen::Gone => held.is_none(),
                    Seen::AtLeast(rv) => held.is_some_and(|o| at_least(o.resource_version(), rv)),
                }
            })
        };
        let wait = async {
            loop {
                version.borrow_and_update();
                if check() {
                    return true;
                }
                if version.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }
}

/// One reader's changes.
pub struct Subscription<K> {
    rx: broadcast::Receiver<Event<K>>,
    /// Owes the reader a [`Event::Synced`] (it subscribed after the first list).
    primed: bool,
}

impl<K: Watched> Subscription<K> {
    /// The next change; `None` once the informer is gone.
    pub async fn next(&mut self) -> Option<Event<K>> {
        if std::mem::take(&mut self.primed) {
            return Some(Event::Synced);
        }
        match self.rx.recv().await {
            Ok(e) => Some(e),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(kind = %kind::<K>(), missed = n, "a reader fell behind its informer; resyncing it");
                Some(Event::Synced)
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

fn kind<K: Watched>() -> String {
    K::Wire::kind(&()).into_owned()
}

/// What no reader of a shared informer needs: managedFields and the last-applied annotation
/// are often the larger part of an object.
fn trim<K: Resource>(o: &mut K) {
    let meta = o.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED_ANNOTATION);
        if a.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Errors that retrying does not fix: the API refuses the credentials or does not serve the
/// kind. Anything else (connection refused, 5xx, 410) is retried with back-off.
fn fatal_reason(e: &watcher::Error) -> Option<String> {
    let status = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => s.as_ref(),
        watcher::Error::WatchError(s) => s.as_ref(),
        _ => return None,
    };
    match status.code {
        401 => Some(format!("the API refused the credentials (401 Unauthorized: {})", status.message)),
        403 => Some(format!("the API forbids it (403 Forbidden: {})", status.message)),
        404 => Some(format!("the API does not serve it (404 Not Found: {})", status.message)),
        _ => None,
    }
}

/// Whether resourceVersion `held` is `wanted` or newer (numeric when both parse, else equal).
pub fn at_least(held: Option<&str>, wanted: &str) -> bool {
    let Some(held) = held else { return false };
    match (held.parse::<u64>(), wanted.parse::<u64>()) {
        (Ok(a), Ok(b)) => a >= b,
        _ => held == wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn pod(name: &str, node: &str, rv: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv,
                         "managedFields": [{"manager": "kubectl"}],
                         "annotations": {LAST_APPLIED_ANNOTATION: "{}", "keep": "me"}},
            "spec": {"nodeName": node, "containers": []}
        }))
        .unwrap()
    }

    fn by_node(p: &Pod) -> Vec<String> {
        p.spec.as_ref().and_then(|s| s.node_name.clone()).into_iter().collect()
    }

    #[tokio::test]
    async fn index_follows_applies_deletes_and_relists() {
        let i = Informer::<Pod>::detached();
        i.index("node", by_node);
        i.apply(pod("a", "n1", "1"));
        i.apply(pod("b", "n1", "2"));
        assert_eq!(i.indexed("node", "n1").len(), 2);
        i.apply(pod("a", "n2", "3"));
        assert_eq!(i.indexed_keys("node", "n1"), vec![key("ns", "b")]);
        assert_eq!(i.indexed_keys("node", "n2"), vec![key("ns", "a")]);
        i.delete(pod("b", "n1", "4"));
        assert!(i.indexed("node", "n1").is_empty());
        let mut fresh = HashMap::new();
        fresh.insert(key("ns", "c"), Arc::new(pod("c", "n3", "5")));
        i.replace(fresh);
        assert!(i.indexed("node", "n2").is_empty());
        assert_eq!(i.indexed_keys("node", "n3"), vec![key("ns", "c")]);
        // An index added late is built from what the store holds.
        i.index("node-again", by_node);
        assert_eq!(i.indexed_keys("node-again", "n3"), vec![key("ns", "c")]);
    }

    #[tokio::test]
    async fn late_subscriber_starts_with_synced_and_sees_changes_in_order() {
        let i = Informer::<Pod>::detached();
        i.replace(HashMap::new());
        let mut sub = i.subscribe();
        i.apply(pod("a", "n1", "1"));
        assert!(matches!(sub.next().await, Some(Event::Synced)));
        assert!(
            matches!(sub.next().await, Some(Event::Apply { new, old: None }) if new.metadata.name.as_deref() == Some("a"))
        );
    }

    #[tokio::test]
    async fn wait_until_sees_own_writes_and_times_out_otherwise() {
        let i = Informer::<Pod>::detached();
        let writer = i.clone();
        let waiter = tokio::spawn(async move {
            i.wait_until(&[("ns".into(), "a".into(), Seen::AtLeast("7".into()))], Duration::from_secs(5)).await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        writer.apply(pod("a", "n1", "6"));
        writer.apply(pod("a", "n1", "8"));
        assert!(waiter.await.unwrap());
        let gone = writer.wait_until(&[("ns".into(), "a".into(), Seen::Gone)], Duration::from_millis(50)).await;
        assert!(!gone);
    }

    #[test]
    fn trim_drops_managed_fields_and_last_applied_only() {
        let mut p = pod("a", "n1", "1");
        trim(&mut p);
        assert!(p.metadata.managed_fields.is_none());
        let annotations = p.metadata.annotations.unwrap();
        assert_eq!(annotations.keys().collect::<Vec<_>>(), vec!["keep"]);
    }

    #[test]
    fn resource_versions_compare_numerically() {
        assert!(at_least(Some("10"), "9"));
        assert!(!at_least(Some("9"), "10"));
        assert!(!at_least(None, "1"));
        assert!(at_least(Some("x"), "x"));
    }
}

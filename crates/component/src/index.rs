//! Secondary indexes of an informer's store (client-go's Indexers): each index files every
//! object under the strings a function returns for it, and is updated under the same lock
//! as the store, so a reader never sees the two disagree.
//!
//! The index functions readers share are here: by label pair, by selector pair, by
//! controller owner, by node, by `kubernetes.io/service-name`, by namespace.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::Resource;

use crate::encoded::Encoded;
use crate::informer::Key;
use crate::labels::SERVICE_NAME;
use crate::pod::LeanPod;

/// Files an object under zero or more values.
pub type IndexFn<K> = fn(&K) -> Vec<String>;

struct Index<K> {
    f: IndexFn<K>,
    by_value: HashMap<String, HashSet<Key>>,
    /// What each object is filed under, so an update can take it out again.
    values: HashMap<Key, Vec<String>>,
}

impl<K> Index<K> {
    fn file(&mut self, key: &Key, values: Vec<String>) {
        for v in &values {
            self.by_value.entry(v.clone()).or_default().insert(key.clone());
        }
        if !values.is_empty() {
            self.values.insert(key.clone(), values);
        }
    }

    fn unfile(&mut self, key: &Key) {
        for v in self.values.remove(key).unwrap_or_default() {
            if let Some(set) = self.by_value.get_mut(&v) {
                set.remove(key);
                if set.is_empty() {
                    self.by_value.remove(&v);
                }
            }
        }
    }
}

pub(crate) struct Indexes<K> {
    by_name: HashMap<&'static str, Index<K>>,
}

impl<K> Default for Indexes<K> {
    fn default() -> Self {
        Indexes { by_name: HashMap::new() }
    }
}

impl<K> Indexes<K> {
    pub(crate) fn add(&mut self, name: &'static str, f: IndexFn<K>, objects: &HashMap<Key, Arc<K>>) {
        if self.by_name.contains_key(name) {
            return;
        }
        let mut index = Index { f, by_value: HashMap::new(), values: HashMap::new() };
        for (k, o) in objects {
            index.file(k, f(o));
        }
        self.by_name.insert(name, index);
    }

    pub(crate) fn update(&mut self, key: &Key, object: Option<&K>) {
        for index in self.by_name.values_mut() {
            let values = object.map(index.f).unwrap_or_default();
            if index.values.get(key).is_some_and(|old| *old == values) {
                continue;
            }
            index.unfile(key);
            index.file(key, values);
        }
    }

    pub(crate) fn rebuild(&mut self, objects: &HashMap<Key, Arc<K>>) {
        for index in self.by_name.values_mut() {
            index.by_value.clear();
            index.values.clear();
            for (k, o) in objects {
                let values = (index.f)(o);
                index.file(k, values);
            }
        }
    }

    pub(crate) fn keys<'a>(&'a self, name: &str, value: &str) -> impl Iterator<Item = &'a Key> + 'a {
        self.by_name.get(name).and_then(|i| i.by_value.get(value)).into_iter().flatten()
    }

    pub(crate) fn values(&self, name: &str) -> Vec<String> {
        self.by_name.get(name).map(|i| i.by_value.keys().cloned().collect()).unwrap_or_default()
    }

    pub(crate) fn count(&self, name: &str, value: &str) -> usize {
        self.by_name.get(name).and_then(|i| i.by_value.get(value)).map_or(0, HashSet::len)
    }

    pub(crate) fn contains(&self, name: &str, value: &str, key: &Key) -> bool {
        self.by_name.get(name).and_then(|i| i.by_value.get(value)).is_some_and(|s| s.contains(key))
    }
}

/// Index name: objects by each `key=value` label pair ([`label_pairs`]).
pub const BY_LABEL: &str = "label";
/// Index name: Services by each `key=value` pair of their selector ([`selector_pairs`]).
pub const BY_SELECTOR: &str = "selector";
/// Index name: objects by the UID of their controller owner ([`controller_uid`]).
pub const BY_OWNER: &str = "owner";
/// Index name: pods by `spec.nodeName` ([`pod_node`]).
pub const BY_NODE: &str = "node";
/// Index name: EndpointSlices by their `kubernetes.io/service-name` label, as
/// `namespace/service` ([`service_name`]).
pub const BY_SERVICE: &str = "service";
/// Index name: objects by namespace ([`namespace`]).
pub const BY_NAMESPACE: &str = "namespace";

/// `namespace/key=value` for a label pair: index values are per namespace, as selectors are.
pub fn pair(ns: &str, k: &str, v: &str) -> String {
    format!("{ns}/{k}={v}")
}

pub fn label_pairs<K: Labelled>(o: &K) -> Vec<String> {
    let ns = o.namespace();
    o.labels().map(|(k, v)| pair(ns, k, v)).collect()
}

/// One pair is enough to find a Service from a pod it selects (the pod has every pair of the
/// selector); filing under one keeps the index small. Services without a selector (or with
/// an empty one, which selects nothing for endpoints) are not filed.
pub fn selector_pairs(s: &Service) -> Vec<String> {
    let ns = s.metadata.namespace.as_deref().unwrap_or("");
    let selector = s.spec.as_ref().and_then(|spec| spec.selector.as_ref());
    selector.and_then(|sel| sel.iter().next()).map(|(k, v)| pair(ns, k, v)).into_iter().collect()
}

/// [`controller_uid`] of a pod.
pub fn pod_controller_uid(p: &LeanPod) -> Vec<String> {
    p.controller_uid().map(str::to_owned).into_iter().collect()
}

pub fn controller_uid<K: Resource>(o: &K) -> Vec<String> {
    let owners = o.meta().owner_references.iter().flatten();
    owners.filter(|r| r.controller == Some(true)).map(|r| r.uid.clone()).take(1).collect()
}

pub fn pod_node(p: &LeanPod) -> Vec<String> {
    p.node_name().map(str::to_owned).into_iter().collect()
}

pub fn service_name<K: Labelled>(o: &K) -> Vec<String> {
    let ns = o.namespace();
    o.labels().find(|(k, _)| *k == SERVICE_NAME).map(|(_, s)| format!("{ns}/{s}")).into_iter().collect()
}

pub fn namespace<K: Labelled>(o: &K) -> Vec<String> {
    let ns = o.namespace();
    (!ns.is_empty()).then(|| ns.to_owned()).into_iter().collect()
}

/// What the label and namespace indexes read of an object, whichever form the store holds.
pub trait Labelled {
    /// Empty for cluster-scoped objects.
    fn namespace(&self) -> &str;
    fn labels(&self) -> impl Iterator<Item = (&str, &str)>;
}

impl<K: Resource> Labelled for K {
    fn namespace(&self) -> &str {
        self.meta().namespace.as_deref().unwrap_or("")
    }
    fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.meta().labels.iter().flatten().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl Labelled for LeanPod {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.labels.iter().map(|(k, v)| (&**k, &**v))
    }
}

impl<K> Labelled for Encoded<K> {
    fn namespace(&self) -> &str {
        Encoded::namespace(self)
    }
    fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        Encoded::labels(self)
    }
}

/// The label pairs of a selector, as [`label_pairs`] files them.
pub fn selector_values(ns: &str, selector: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    selector.iter().map(|(k, v)| pair(ns, k, v)).collect()
}

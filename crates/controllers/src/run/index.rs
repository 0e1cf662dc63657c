//! Which Services select which pods, and which EndpointSlices belong to which Service, kept
//! in step with the watches, so that a pod or slice event touches only the Services it
//! concerns and a reconcile reads only their pods and slices (kube's EndpointSlice controller
//! gets the same from informer indexers and `GetPodServiceMemberships`). Without it every pod
//! event made every Service of its namespace dirty and every reconcile scanned every pod: with
//! 10,000 Services and 100,000 pods that was hours of work.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// (namespace, name).
pub(crate) type Key = (String, String);
type Labels = BTreeMap<String, String>;
/// (namespace, label key, label value).
type Pair = (String, String, String);

#[derive(Default)]
pub(crate) struct Index {
    pod_labels: HashMap<Key, Labels>,
    pods_by_label: HashMap<Pair, BTreeSet<String>>,
    /// Non-empty selectors, and the one pair each Service is filed under (a pod it selects
    /// has every pair, so one is enough to find it).
    selectors: HashMap<Key, Labels>,
    services_by_label: HashMap<Pair, BTreeSet<String>>,
    /// slice -> (its Service, its resourceVersion)
    slices: HashMap<Key, (String, String)>,
    slices_by_service: HashMap<Key, BTreeSet<String>>,
}

fn pairs<'a>(ns: &'a str, labels: &'a Labels) -> impl Iterator<Item = Pair> + 'a {
    labels.iter().map(move |(k, v)| (ns.to_owned(), k.clone(), v.clone()))
}

fn matches(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl Index {
    /// A pod's labels now (None when it is gone); returns the Services that selected it
    /// before or select it now.
    pub fn set_pod(&mut self, key: Key, labels: Option<Labels>) -> BTreeSet<Key> {
        let mut affected = BTreeSet::new();
        let old = match &labels {
            Some(l) => self.pod_labels.insert(key.clone(), l.clone()),
            None => self.pod_labels.remove(&key),
        };
        if old == labels {
            // Same labels: only the Services selecting it care (its status changed).
            if let Some(l) = &labels {
                affected.extend(self.services_selecting(&key.0, l));
            }
            return affected;
        }
        if let Some(old) = &old {
            affected.extend(self.services_selecting(&key.0, old));
            for p in pairs(&key.0, old) {
                if let Some(set) = self.pods_by_label.get_mut(&p) {
                    set.remove(&key.1);
                    if set.is_empty() {
                        self.pods_by_label.remove(&p);
                    }
                }
            }
        }
        if let Some(new) = &labels {
            affected.extend(self.services_selecting(&key.0, new));
            for p in pairs(&key.0, new) {
                self.pods_by_label.entry(p).or_default().insert(key.1.clone());
            }
        }
        affected
    }

    fn services_selecting(&self, ns: &str, labels: &Labels) -> Vec<Key> {
        let mut out = Vec::new();
        for p in pairs(ns, labels) {
            for svc in self.services_by_label.get(&p).into_iter().flatten() {
                let key = (ns.to_owned(), svc.clone());
                if self.selectors.get(&key).is_some_and(|s| matches(s, labels)) {
                    out.push(key);
                }
            }
        }
        out
    }

    /// A Service's selector now (None: gone, selectorless or empty).
    pub fn set_service(&mut self, key: Key, selector: Option<Labels>) {
        let selector = selector.filter(|s| !s.is_empty());
        if self.selectors.get(&key) == selector.as_ref() {
            return;
        }
        if let Some(old) = self.selectors.remove(&key)
            && let Some((k, v)) = old.iter().next()
        {
            let p = (key.0.clone(), k.clone(), v.clone());
            if let Some(set) = self.services_by_label.get_mut(&p) {
                set.remove(&key.1);
                if set.is_empty() {
                    self.services_by_label.remove(&p);
                }
            }
        }
        if let Some(new) = selector {
            let (k, v) = new.iter().next().expect("non-empty");
            self.services_by_label.entry((key.0.clone(), k.clone(), v.clone())).or_default().insert(key.1.clone());
            self.selectors.insert(key, new);
        }
    }

    /// Names of the pods in `ns` that `selector` selects (none for an empty selector).
    pub fn pods_for(&self, ns: &str, selector: &Labels) -> Vec<String> {
        let smallest = selector
            .iter()
            .map(|(k, v)| self.pods_by_label.get(&(ns.to_owned(), k.clone(), v.clone())))
            .min_by_key(|set| set.map_or(0, |s| s.len()));
        let Some(Some(candidates)) = smallest else { return vec![] };
        candidates
            .iter()
            .filter(|name| self.pod_labels.get(&(ns.to_owned(), (*name).clone())).is_some_and(|l| matches(selector, l)))
            .cloned()
            .collect()
    }

    /// A slice's Service label and resourceVersion now (None when it is gone or unlabelled);
    /// returns the Services it belonged to before and belongs to now.
    pub fn set_slice(&mut self, key: Key, now: Option<(String, String)>) -> BTreeSet<Key> {
        let mut affected = BTreeSet::new();
        let old = match &now {
            Some(v) => self.slices.insert(key.clone(), v.clone()),
            None => self.slices.remove(&key),
        };
        if let Some((svc, _)) = old {
            let skey = (key.0.clone(), svc);
            if let Some(set) = self.slices_by_service.get_mut(&skey) {
                set.remove(&key.1);
                if set.is_empty() {
                    self.slices_by_service.remove(&skey);
                }
            }
            affected.insert(skey);
        }
        if let Some((svc, _)) = now {
            let skey = (key.0.clone(), svc);
            self.slices_by_service.entry(skey.clone()).or_default().insert(key.1.clone());
            affected.insert(skey);
        }
        affected
    }

    pub fn slices_for(&self, service: &Key) -> Vec<String> {
        self.slices_by_service.get(service).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// The resourceVersion the index holds for a slice.
    pub fn slice_version(&self, key: &Key) -> Option<&str> {
        self.slices.get(key).map(|(_, rv)| rv.as_str())
    }

    /// Every Service a slice names (their Service may be gone).
    pub fn services_with_slices(&self) -> impl Iterator<Item = &Key> {
        self.slices_by_service.keys()
    }

    pub fn clear_pods(&mut self) {
        self.pod_labels.clear();
        self.pods_by_label.clear();
    }

    pub fn clear_services(&mut self) {
        self.selectors.clear();
        self.services_by_label.clear();
    }

    pub fn clear_slices(&mut self) {
        self.slices.clear();
        self.slices_by_service.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn key(ns: &str, name: &str) -> Key {
        (ns.to_owned(), name.to_owned())
    }

    #[test]
    fn pod_events_touch_only_the_services_that_select_the_pod() {
        let mut ix = Index::default();
        ix.set_service(key("a", "web"), Some(labels(&[("app", "web"), ("tier", "fe")])));
        ix.set_service(key("a", "db"), Some(labels(&[("app", "db")])));
        ix.set_service(key("b", "web"), Some(labels(&[("app", "web")])));
        ix.set_service(key("a", "none"), Some(labels(&[])));
        let hit = ix.set_pod(key("a", "p1"), Some(labels(&[("app", "web"), ("tier", "fe")])));
        assert_eq!(hit, [key("a", "web")].into());
        // Relabelled: the old and the new Service both hear of it.
        let hit = ix.set_pod(key("a", "p1"), Some(labels(&[("app", "db")])));
        assert_eq!(hit, [key("a", "db"), key("a", "web")].into());
        assert_eq!(ix.pods_for("a", &labels(&[("app", "db")])), ["p1"]);
        assert!(ix.pods_for("a", &labels(&[("app", "web"), ("tier", "fe")])).is_empty());
        assert_eq!(ix.set_pod(key("a", "p1"), None), [key("a", "db")].into());
        assert!(ix.pods_for("a", &labels(&[("app", "db")])).is_empty());
    }

    #[test]
    fn selector_changes_move_the_service_in_the_index() {
        let mut ix = Index::default();
        ix.set_pod(key("a", "p1"), Some(labels(&[("app", "web")])));
        ix.set_service(key("a", "s"), Some(labels(&[("app", "db")])));
        assert!(ix.set_pod(key("a", "p1"), Some(labels(&[("app", "web")]))).is_empty());
        ix.set_service(key("a", "s"), Some(labels(&[("app", "web")])));
        assert_eq!(ix.set_pod(key("a", "p1"), Some(labels(&[("app", "web")]))), [key("a", "s")].into());
        ix.set_service(key("a", "s"), None);
        assert!(ix.set_pod(key("a", "p1"), Some(labels(&[("app", "web")]))).is_empty());
    }

    #[test]
    fn slices_follow_their_service_label() {
        let mut ix = Index::default();
        let hit = ix.set_slice(key("a", "web-1"), Some(("web".into(), "10".into())));
        assert_eq!(hit, [key("a", "web")].into());
        assert_eq!(ix.slices_for(&key("a", "web")), ["web-1"]);
        assert_eq!(ix.slice_version(&key("a", "web-1")), Some("10"));
        let hit = ix.set_slice(key("a", "web-1"), Some(("api".into(), "11".into())));
        assert_eq!(hit, [key("a", "api"), key("a", "web")].into());
        assert!(ix.slices_for(&key("a", "web")).is_empty());
        ix.set_slice(key("a", "web-1"), None);
        assert!(ix.slices_for(&key("a", "api")).is_empty());
        assert_eq!(ix.services_with_slices().count(), 0);
    }
}

//! Field sets in structured-merge-diff's `FieldsV1` form, and the walk from an object to the set
//! of fields it sets.
//!
//! A path is a list of path elements, each already in its serialized form:
//!
//! - `f:<name>`: a field of an object (struct field or map key; without a schema they are alike);
//! - `k:{"port":80,"protocol":"TCP"}`: an item of an associative list, by its key fields
//!   (a JSON object with the keys sorted by name);
//! - `v:"value"`: an item of a set of scalars.
//!
//! Atomic lists (every list without merge keys) are leaves: owned as a whole. In the serialized
//! form a leaf is `{}` and a path that is both a member and has members below it carries `".": {}`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::patch::merge_keys;
use crate::resources::ResourceType;

/// A path: serialized path elements from the object root.
pub type Path = Vec<String>;

/// `metadata` fields that never enter a field set (kube-apiserver's stripMetaManager).
pub(crate) const STRIPPED_META: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

/// A set of paths, as a tree. No node below the root is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// Whether the set holds no path.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// Adds `path` as a member.
    pub fn insert(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.member = true,
            Some((head, rest)) => self.children.entry(head.clone()).or_default().insert(rest),
        }
    }

    fn node(&self, path: &[String]) -> Option<&FieldSet> {
        match path.split_first() {
            None => Some(self),
            Some((head, rest)) => self.children.get(head)?.node(rest),
        }
    }

    /// Whether `path` is a member.
    pub fn has(&self, path: &[String]) -> bool {
        self.node(path).is_some_and(|n| n.member)
    }

    /// Whether `path` or any path below it is a member.
    pub fn touches(&self, path: &[String]) -> bool {
        self.node(path).is_some_and(|n| !n.is_empty())
    }

    /// Whether some member lies strictly below `path`.
    pub(crate) fn has_members_below(&self, path: &[String]) -> bool {
        self.node(path).is_some_and(|n| !n.children.is_empty())
    }

    /// Removes `path` as a member (paths below it stay).
    pub fn remove(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.member = false,
            Some((head, rest)) => {
                if let Some(child) = self.children.get_mut(head) {
                    child.remove(rest);
                    if child.is_empty() {
                        self.children.remove(head);
                    }
                }
            }
        }
    }

    /// Adds every member of `other`.
    pub(crate) fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (k, c) in &other.children {
            self.children.entry(k.clone()).or_default().union(c);
        }
    }

    /// Every member, parents before children, siblings in serialized order.
    pub fn members(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (k, c) in &self.children {
            prefix.push(k.clone());
            c.collect(prefix, out);
            prefix.pop();
        }
    }

    /// The `fieldsV1` JSON of the set.
    pub(crate) fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            map.insert(k.clone(), c.to_fields_v1());
        }
        Value::Object(map)
    }

    /// Parses `fieldsV1` JSON. Anything but an object is the empty set.
    pub(crate) fn from_fields_v1(v: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        let Some(map) = v.as_object() else { return set };
        for (k, c) in map {
            if k == "." {
                set.member = true;
                continue;
            }
            let mut child = FieldSet::from_fields_v1(c);
            if c.as_object().is_none_or(Map::is_empty) {
                child.member = true;
            }
            set.children.insert(k.clone(), child);
        }
        set
    }
}

/// The path element of a field.
pub(crate) fn field(name: &str) -> String {
    format!("f:{name}")
}

/// The field name of a `f:` element.
pub(crate) fn field_name(element: &str) -> Option<&str> {
    element.strip_prefix("f:")
}

/// Dotted merge-key lookup path of `name` under `dotted` (list items add no segment).
pub(crate) fn join(dotted: &str, name: &str) -> String {
    if dotted.is_empty() { name.to_string() } else { format!("{dotted}.{name}") }
}

/// How a list is merged and owned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ListKind {
    /// Replaced and owned as a whole.
    Atomic,
    /// A set of scalars: items are `v:` elements.
    Set,
    /// An associative list: items are `k:` elements by these key fields, each with the value
    /// an item that omits it takes (the OpenAPI default of a key field).
    Map(Vec<(&'static str, Option<&'static str>)>),
}

/// The list kind of the list at `dotted` (a merge-key lookup path) in objects of `rt`.
pub(crate) fn list_kind(rt: &ResourceType, dotted: &str) -> ListKind {
    let Some(entry) = merge_keys::lookup(rt, dotted) else { return ListKind::Atomic };
    // x-kubernetes-list-map-keys where they are more than the patchMergeKey.
    match entry.key {
        "" => ListKind::Set,
        "containerPort" => ListKind::Map(vec![("containerPort", None), ("protocol", Some("TCP"))]),
        // Only Service `spec.ports` merges by `port`.
        "port" => ListKind::Map(vec![("port", None), ("protocol", Some("TCP"))]),
        "topologyKey" => ListKind::Map(vec![("topologyKey", None), ("whenUnsatisfiable", None)]),
        key => ListKind::Map(vec![(key, None)]),
    }
}

/// The path element of one item of a list of `kind`; `None` when the item cannot be one
/// (missing key, wrong JSON type) or the list is atomic.
pub(crate) fn item_element(kind: &ListKind, item: &Value) -> Option<String> {
    match kind {
        ListKind::Atomic => None,
        ListKind::Set => match item {
            Value::Object(_) | Value::Array(_) => None,
            v => Some(format!("v:{v}")),
        },
        ListKind::Map(keys) => {
            let obj = item.as_object()?;
            let mut sorted: Vec<_> = keys.iter().collect();
            sorted.sort_by_key(|(k, _)| *k);
            let mut key = Map::new();
            for (name, default) in sorted {
                let v = match obj.get(*name) {
                    Some(v) if !v.is_null() => v.clone(),
                    _ => Value::String((*default)?.to_string()),
                };
                if v.is_object() || v.is_array() {
                    return None;
                }
                key.insert(name.to_string(), v);
            }
            Some(format!("k:{}", Value::Object(key)))
        }
    }
}

/// The elements of every item of `items`, or `None` when the list is treated as atomic: its kind
/// is atomic, an item has no element, or two items share one.
pub(crate) fn list_elements(kind: &ListKind, items: &[Value]) -> Option<Vec<String>> {
    let elements: Vec<String> = items.iter().map(|i| item_element(kind, i)).collect::<Option<_>>()?;
    let mut seen = std::collections::HashSet::new();
    elements.iter().all(|e| seen.insert(e.as_str())).then_some(elements)
}

/// The key field names of a `k:` element.
pub(crate) fn key_names(element: &str) -> Vec<String> {
    element
        .strip_prefix("k:")
        .and_then(|j| serde_json::from_str::<Map<String, Value>>(j).ok())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// A path as structured-merge-diff prints it: `.spec.ports[port=80,protocol="TCP"].targetPort`.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for e in path {
        if let Some(name) = field_name(e) {
            out.push('.');
            out.push_str(name);
        } else if let Some(json) = e.strip_prefix("k:") {
            let map: Map<String, Value> = serde_json::from_str(json).unwrap_or_default();
            let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = e.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        } else if let Some(i) = e.strip_prefix("i:") {
            out.push_str(&format!("[{i}]"));
        } else {
            out.push_str(e);
        }
    }
    out
}

/// The set of fields `config` sets: every scalar, null, empty object and atomic list is a
/// member, and so is every item of an associative list or set. apiVersion, kind, the
/// [`STRIPPED_META`] fields and, for a kind with a status subresource, status are left out.
pub(crate) fn set_of(rt: &ResourceType, config: &Value) -> FieldSet {
    let mut set = FieldSet::default();
    let Some(obj) = config.as_object() else { return set };
    let mut path = Vec::new();
    for (k, v) in obj {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "status" if rt.status => {}
            "metadata" => {
                let Some(meta) = v.as_object() else { continue };
                path.push(field("metadata"));
                for (mk, mv) in meta.iter().filter(|(mk, _)| !STRIPPED_META.contains(&mk.as_str())) {
                    path.push(field(mk));
                    walk(rt, &join("metadata", mk), mv, &mut path, &mut set);
                    path.pop();
                }
                path.pop();
            }
            _ => {
                path.push(field(k));
                walk(rt, k, v, &mut path, &mut set);
                path.pop();
            }
        }
    }
    set
}

fn walk(rt: &ResourceType, dotted: &str, v: &Value, path: &mut Path, set: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                path.push(field(k));
                walk(rt, &join(dotted, k), c, path, set);
                path.pop();
            }
        }
        Value::Array(items) => {
            let kind = list_kind(rt, dotted);
            let Some(elements) = list_elements(&kind, items) else {
                set.insert(path);
                return;
            };
            for (e, item) in elements.into_iter().zip(items) {
                path.push(e);
                set.insert(path);
                if let Some(m) = item.as_object() {
                    for (k, c) in m {
                        path.push(field(k));
                        walk(rt, &join(dotted, k), c, path, set);
                        path.pop();
                    }
                }
                path.pop();
            }
        }
        _ => set.insert(path),
    }
}

/// The value at `path` in `root`.
pub(crate) fn get<'a>(rt: &ResourceType, root: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = root;
    let mut dotted = String::new();
    for e in path {
        if let Some(name) = field_name(e) {
            cur = cur.as_object()?.get(name)?;
            dotted = join(&dotted, name);
        } else {
            let kind = list_kind(rt, &dotted);
            cur = cur.as_array()?.iter().find(|i| item_element(&kind, i).as_deref() == Some(e.as_str()))?;
        }
    }
    Some(cur)
}

/// Removes the value at `path` (a map key or list item) from `root`; whether there was one.
pub(crate) fn remove(rt: &ResourceType, root: &mut Value, path: &[String]) -> bool {
    fn go(rt: &ResourceType, cur: &mut Value, dotted: &str, path: &[String]) -> bool {
        let Some((e, rest)) = path.split_first() else { return false };
        if let Some(name) = field_name(e) {
            let Some(obj) = cur.as_object_mut() else { return false };
            if rest.is_empty() {
                return obj.shift_remove(name).is_some();
            }
            match obj.get_mut(name) {
                Some(child) => go(rt, child, &join(dotted, name), rest),
                None => false,
            }
        } else {
            let kind = list_kind(rt, dotted);
            let Some(items) = cur.as_array_mut() else { return false };
            let Some(i) = items.iter().position(|i| item_element(&kind, i).as_deref() == Some(e.as_str())) else {
                return false;
            };
            if rest.is_empty() {
                items.remove(i);
                true
            } else {
                go(rt, &mut items[i], dotted, rest)
            }
        }
    }
    go(rt, root, "", path)
}

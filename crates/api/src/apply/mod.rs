//! Server-side apply with field ownership, after structured-merge-diff's `Updater.Apply` and
//! kube-apiserver's field manager: who owns which fields is kept in `metadata.managedFields`
//! (`fieldsV1` sets), an apply conflicts when it changes a field another manager owns, and a
//! field an applier stops applying is removed from the object when nobody else owns it.
//!
//! Without OpenAPI schemas, every object is treated as a struct/map by field name; lists are
//! associative (by key), sets of scalars, or atomic according to
//! [`crate::patch::merge_keys`], with the x-kubernetes-list-map-keys that differ from the
//! patchMergeKey (Service ports and container ports by `(port, protocol)` with protocol
//! defaulting to `TCP`, topology spread constraints by `(topologyKey, whenUnsatisfiable)`).
//! A list whose items lack keys or repeat one is treated as atomic.
//!
//! Differences from kube-apiserver worth knowing: a `null` in the config removes the field (and
//! the applier owns it); there is no `before-first-apply` manager for objects without
//! managedFields, so an object's pre-existing fields are owned by nobody.

mod fieldset;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};

pub(crate) use fieldset::FieldSet;
use fieldset::{
    ListKind, STRIPPED_META, field, field_name, get, join, key_names, list_elements, list_kind, remove, set_of,
};
pub use fieldset::{Path, display};

use crate::json::{child, str_of};
use crate::resources::ResourceType;

/// A field the apply would change that another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name, e.g. `kubectl-client-side-apply`.
    pub manager: String,
    /// Its managedFields operation: `Apply` or `Update`.
    pub(crate) operation: String,
    /// The apiVersion of its managedFields entry.
    pub api_version: String,
    /// Its subresource (`status`), empty for the main resource.
    pub subresource: String,
    /// The field as structured-merge-diff prints it, e.g. `.spec.replicas`.
    pub field: String,
}

impl Conflict {
    /// The manager as kube-apiserver prints it: `"name"`, and for an Update manager
    /// `"name" using apps/v1` (`with subresource "status"` after the name when there is one).
    pub(crate) fn manager_display(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    /// The message of this conflict's StatusCause (type `FieldManagerConflict`, field
    /// [`Conflict::field`]): `conflict with "name" using apps/v1`.
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.manager_display())
    }
}

/// The message of the 409 Conflict kube-apiserver answers an apply with, e.g.
/// `Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas`.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {}: {}", c.manager_display(), c.field);
    }
    let mut managers: Vec<String> = conflicts.iter().map(Conflict::manager_display).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for m in &managers {
        lines.push(format!("conflicts with {m}"));
        for c in conflicts.iter().filter(|c| &c.manager_display() == m) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// The `fieldsV1` JSON of the fields `config` sets (what an applier of it comes to own).
pub fn fieldset_of(rt: &ResourceType, config: &Value) -> Value {
    set_of(rt, config).to_fields_v1()
}

/// One managedFields entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: String,
    set: FieldSet,
}

impl Entry {
    fn parse(v: &Value) -> Option<Entry> {
        let s = |k: &str| str_of(v, k).to_string();
        v.as_object()?;
        Some(Entry {
            manager: s("manager"),
            operation: s("operation"),
            api_version: s("apiVersion"),
            time: v.get("time").and_then(Value::as_str).map(str::to_string),
            subresource: s("subresource"),
            set: FieldSet::from_fields_v1(child(v, "fieldsV1")),
        })
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
    }

    fn is_applier(&self, manager: &str) -> bool {
        self.manager == manager && self.operation == "Apply" && self.subresource.is_empty()
    }

    fn conflict(&self, path: &[String]) -> Conflict {
        Conflict {
            manager: self.manager.clone(),
            operation: self.operation.clone(),
            api_version: self.api_version.clone(),
            subresource: self.subresource.clone(),
            field: display(path),
        }
    }
}

/// Applies `config` for `manager` to `live` (`None`: the apply creates the object).
///
/// Returns the new object with `metadata.managedFields` updated, or the conflicts: fields the
/// config sets to a value other than the live one that another manager owns. With `force` there
/// are no conflicts; those fields move to `manager`. `now` (RFC 3339) stamps the manager's entry.
/// `config.metadata.managedFields` is ignored.
pub fn apply(
    rt: &ResourceType,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let mut config = config.clone();
    if let Some(m) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        m.shift_remove("managedFields");
    }
    let new_set = set_of(rt, &config);

    let empty = json!({});
    let (live, mut entries, mut merged) = match live {
        None => (&empty, Vec::new(), config.clone()),
        Some(l) => {
            let entries = l
                .pointer("/metadata/managedFields")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Entry::parse).collect())
                .unwrap_or_default();
            let mut merged = l.clone();
            if let Some(meta) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.shift_remove("managedFields");
            }
            merge_top(rt, &mut merged, &config);
            (l, entries, merged)
        }
    };

    // Conflicts: members of the new set that another manager owns and whose value changes.
    let mut conflicts = Vec::new();
    for entry in entries.iter_mut().filter(|e| !e.is_applier(manager)) {
        let owned: Vec<Path> = entry
            .set
            .members()
            .into_iter()
            .filter(|p| new_set.has(p) && !new_set.has_members_below(p) && get(rt, live, p) != get(rt, &merged, p))
            .collect();
        for p in owned {
            conflicts.push(entry.conflict(&p));
            if force {
                entry.set.remove(&p);
            }
        }
    }
    if !force && !conflicts.is_empty() {
        conflicts.sort_by(|a, b| a.manager.cmp(&b.manager).then(a.operation.cmp(&b.operation)));
        return Err(conflicts);
    }

    // This manager's entry now holds the new set; what it held before and nobody owns now goes.
    let last_set = match entries.iter().position(|e| e.is_applier(manager)) {
        Some(i) => std::mem::replace(&mut entries[i].set, new_set.clone()),
        None => {
            entries.push(Entry {
                manager: manager.to_string(),
                operation: "Apply".into(),
                api_version: String::new(),
                time: None,
                subresource: String::new(),
                set: new_set.clone(),
            });
            FieldSet::default()
        }
    };
    let mut owned_all = FieldSet::default();
    for e in &entries {
        owned_all.union(&e.set);
    }
    prune(rt, &mut merged, &last_set, &owned_all);

    // Other managers no longer own what the apply removed from the object.
    for e in entries.iter_mut().filter(|e| !e.is_applier(manager)) {
        for p in e.set.members() {
            if get(rt, live, &p).is_some() && get(rt, &merged, &p).is_none() {
                e.set.remove(&p);
            }
        }
    }

    for e in entries.iter_mut().filter(|e| e.is_applier(manager)) {
        e.api_version = rt.api_version();
        e.time = Some(now.to_string());
    }
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|p, q| {
        (&p.operation, &p.time, &p.manager, &p.api_version, &p.subresource).cmp(&(
            &q.operation,
            &q.time,
            &q.manager,
            &q.api_version,
            &q.subresource,
        ))
    });
    if let Some(meta) = merged.as_object_mut().map(|o| o.entry("metadata").or_insert_with(|| json!({})))
        && let Some(meta) = meta.as_object_mut()
    {
        if entries.is_empty() {
            meta.shift_remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(entries.iter().map(Entry::to_json).collect()));
        }
    }
    Ok(merged)
}

/// Merges the config into the live object at the root: status (for a kind with a status
/// subresource) and the stripped metadata fields are not applied.
fn merge_top(rt: &ResourceType, live: &mut Value, config: &Value) {
    let (Some(live), Some(config)) = (live.as_object_mut(), config.as_object()) else { return };
    for (k, c) in config {
        match k.as_str() {
            "status" if rt.status => {}
            "metadata" => {
                let Some(cm) = c.as_object() else { continue };
                let lm = live.entry("metadata").or_insert_with(|| json!({}));
                if !lm.is_object() {
                    *lm = json!({});
                }
                let lm = lm.as_object_mut().expect("object");
                for (mk, mv) in cm.iter().filter(|(mk, _)| !STRIPPED_META.contains(&mk.as_str())) {
                    merge_field(rt, lm, &join("metadata", mk), mk, mv);
                }
            }
            _ => merge_field(rt, live, k, k, c),
        }
    }
}

fn merge_field(rt: &ResourceType, live: &mut Map<String, Value>, dotted: &str, name: &str, config: &Value) {
    match (live.get_mut(name), config) {
        (_, Value::Null) => {
            live.shift_remove(name);
        }
        (Some(l), c) => merge(rt, dotted, l, c),
        (None, c) => {
            live.insert(name.to_string(), c.clone());
        }
    }
}

/// Merges `config` into `live`: objects key by key, associative lists and sets item by item
/// (new items appended), anything else replaced.
fn merge(rt: &ResourceType, dotted: &str, live: &mut Value, config: &Value) {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            for (k, cv) in c {
                merge_field(rt, l, &join(dotted, k), k, cv);
            }
        }
        (Value::Array(l), Value::Array(c)) => {
            let kind = list_kind(rt, dotted);
            let (Some(le), Some(ce)) = (list_elements(&kind, l), list_elements(&kind, c)) else {
                *l = c.clone();
                return;
            };
            for (e, item) in ce.iter().zip(c) {
                match le.iter().position(|x| x == e) {
                    Some(i) if matches!(kind, ListKind::Map(_)) => merge(rt, dotted, &mut l[i], item),
                    Some(_) => {}
                    None => l.push(item.clone()),
                }
            }
        }
        (l, c) => *l = c.clone(),
    }
}

/// Removes from `obj` each member of `last_set` that nobody owns now (no member at or below
/// it in `owned_all`), keeping the key fields of surviving list items, then removes the
/// ancestors the removals left empty unless someone owns something there.
fn prune(rt: &ResourceType, obj: &mut Value, last_set: &FieldSet, owned_all: &FieldSet) {
    for p in last_set.members() {
        if p.is_empty() || owned_all.touches(&p) || is_key_field(&p) {
            continue;
        }
        if !remove(rt, obj, &p) {
            continue;
        }
        for depth in (2..p.len()).rev() {
            let ancestor = &p[..depth];
            if field_name(&ancestor[depth - 1]).is_none() || owned_all.touches(ancestor) {
                break;
            }
            let empty = match get(rt, obj, ancestor) {
                Some(Value::Object(m)) => m.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                _ => false,
            };
            if !empty || !remove(rt, obj, ancestor) {
                break;
            }
        }
        // A top-level field left empty ({} or []) goes too, but never metadata.
        if p.len() >= 2
            && p[0] != field("metadata")
            && !owned_all.touches(&p[..1])
            && matches!(get(rt, obj, &p[..1]), Some(Value::Object(m)) if m.is_empty())
        {
            remove(rt, obj, &p[..1]);
        }
    }
}

/// Whether `path` ends in a key field of the list item it is under.
fn is_key_field(path: &[String]) -> bool {
    match path {
        [.., item, last] => field_name(last).is_some_and(|name| key_names(item).iter().any(|k| k == name)),
        _ => false,
    }
}

//! Background work kube-controller-manager would do for the API machinery: the namespace
//! controller (empties a terminating namespace, then removes it) and the garbage collector
//! (ownerReferences: background, foreground and orphan propagation).
//!
//! Both act only through the registry, so finalizers and graceful deletion apply to what they
//! delete; the collector follows the store's change stream to keep its owner index current.

use crate::object;
use crate::registry::{DeleteOptions, ListOptions, Propagation, Registry, WriteOptions};
use crate::registry::{DeleteOutcome, Subresource};
use api::{RESOURCES, ResourceType};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

fn namespaces() -> &'static ResourceType {
    api::resources::lookup("", "v1", "namespaces").expect("namespaces are served")
}

/// Finds the resource a storage key belongs to, with the object's namespace and name.
fn parse_key(key: &str) -> Option<(&'static ResourceType, Option<String>, String)> {
    let rest = key.strip_prefix("/registry/")?;
    let mut parts = rest.splitn(4, '/');
    let group = parts.next()?;
    let plural = parts.next()?;
    let group = if group == "core" { "" } else { group };
    let rt = RESOURCES.iter().find(|r| r.group == group && r.plural == plural)?;
    if rt.namespaced {
        Some((rt, Some(parts.next()?.to_string()), parts.next()?.to_string()))
    } else {
        Some((rt, None, parts.next()?.to_string()))
    }
}

/// Empties terminating namespaces and removes them once nothing is left.
pub async fn run_namespace_controller(registry: Registry) {
    loop {
        if let Err(e) = sweep_namespaces(&registry).await {
            tracing::warn!(error = %e, "namespace controller pass failed");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn sweep_namespaces(registry: &Registry) -> Result<(), crate::error::ApiError> {
    let all = registry.list(namespaces(), None, &ListOptions::default()).await?;
    for ns in all.items.iter().filter(|n| object::deletion_timestamp(n).is_some()) {
        let name = object::name(ns).unwrap_or_default().to_string();
        let mut remaining = 0usize;
        for rt in RESOURCES.iter().filter(|r| r.namespaced) {
            let page = registry.list(rt, Some(&name), &ListOptions::default()).await?;
            for obj in page.items {
                remaining += 1;
                if object::deletion_timestamp(&obj).is_some() {
                    continue;
                }
                let opts = DeleteOptions { propagation: Some(Propagation::Background), ..Default::default() };
                let obj_name = object::name(&obj).unwrap_or_default().to_string();
                if let Ok(DeleteOutcome::Deleted(_)) = registry.delete(rt, Some(&name), &obj_name, &opts).await {
                    remaining -= 1;
                }
            }
        }
        if remaining == 0 {
            tracing::info!(namespace = %name, "namespace emptied; removing it");
            registry.remove(namespaces(), None, &name).await?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct Node {
    rt: &'static ResourceType,
    namespace: Option<String>,
    name: String,
    owners: Vec<String>,
    finalizers: Vec<String>,
    deleting: bool,
    /// Has an owner of a kind not served here, which can't be proven absent.
    pinned: bool,
}

#[derive(Default)]
struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    fn upsert(&mut self, uid: String, node: Node) {
        self.remove(&uid);
        for o in &node.owners {
            self.dependents.entry(o.clone()).or_default().insert(uid.clone());
        }
        self.nodes.insert(uid, node);
    }

    fn remove(&mut self, uid: &str) -> Option<Node> {
        let node = self.nodes.remove(uid)?;
        for o in &node.owners {
            if let Some(set) = self.dependents.get_mut(o) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(o);
                }
            }
        }
        Some(node)
    }

    /// A dependent is garbage once none of its owners exist.
    fn is_orphaned(&self, uid: &str) -> bool {
        self.nodes
            .get(uid)
            .is_some_and(|n| !n.pinned && !n.owners.is_empty() && n.owners.iter().all(|o| !self.nodes.contains_key(o)))
    }
}

fn node_of(rt: &'static ResourceType, obj: &Value) -> Option<(String, Node)> {
    let uid = object::uid(obj)?.to_string();
    Some((
        uid,
        Node {
            rt,
            namespace: object::namespace(obj).map(String::from),
            name: object::name(obj)?.to_string(),
            owners: object::owner_uids(obj),
            finalizers: object::finalizers(obj),
            deleting: object::deletion_timestamp(obj).is_some(),
            pinned: object::has_unserved_owner(obj),
        },
    ))
}

/// The garbage collector. Restarts its pass from a fresh list if its change stream ends.
pub async fn run_garbage_collector(registry: Registry) {
    loop {
        if let Err(e) = collect(&registry).await {
            tracing::warn!(error = %e, "garbage collector restarting");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn collect(registry: &Registry) -> Result<(), crate::error::ApiError> {
    let mut graph = Graph::default();
    let mut revision = u64::MAX;
    for rt in RESOURCES {
        let page = registry.list(rt, None, &ListOptions::default()).await?;
        revision = revision.min(page.revision);
        for obj in &page.items {
            if let Some((uid, node)) = node_of(rt, obj) {
                graph.upsert(uid, node);
            }
        }
    }
    // Each list saw at least `revision`; replaying from there re-applies some changes, which
    // the graph absorbs (upserts are idempotent).
    let mut stream = registry.store().watch("/registry/", revision)?;
    let mut dirty: HashSet<String> = graph.nodes.keys().cloned().collect();
    loop {
        for uid in std::mem::take(&mut dirty) {
            act(registry, &graph, &uid).await;
        }
        let Some(event) = stream.next().await else { return Ok(()) };
        let Some((rt, _, _)) = parse_key(&event.key) else { continue };
        let Ok(obj) = object::from_stored(&event.value, event.revision) else { continue };
        let Some((uid, node)) = node_of(rt, &obj) else { continue };
        match event.kind {
            store::EventType::Deleted => {
                if let Some(node) = graph.remove(&uid) {
                    for o in &node.owners {
                        dirty.insert(o.clone());
                    }
                }
                dirty.extend(graph.dependents.get(&uid).into_iter().flatten().cloned());
            }
            _ => {
                graph.upsert(uid.clone(), node);
                dirty.insert(uid.clone());
            }
        }
    }
}

/// Whatever the graph says should happen to one object.
async fn act(registry: &Registry, graph: &Graph, uid: &str) {
    let Some(node) = graph.nodes.get(uid) else { return };
    if graph.is_orphaned(uid) && !node.deleting {
        let opts = DeleteOptions {
            propagation: Some(Propagation::Background),
            precondition_uid: Some(uid.to_string()),
            ..Default::default()
        };
        if let Err(e) = registry.delete(node.rt, node.namespace.as_deref(), &node.name, &opts).await {
            tracing::debug!(name = %node.name, error = %e, "garbage collection delete failed");
        }
        return;
    }
    if !node.deleting {
        return;
    }
    let dependents: Vec<&String> = graph.dependents.get(uid).map(|s| s.iter().collect()).unwrap_or_default();
    if node.finalizers.iter().any(|f| f == ORPHAN) {
        for d in &dependents {
            if let Some(dep) = graph.nodes.get(*d) {
                remove_owner_ref(registry, dep, uid).await;
            }
        }
        remove_finalizer(registry, node, ORPHAN).await;
    } else if node.finalizers.iter().any(|f| f == FOREGROUND) {
        if dependents.is_empty() {
            remove_finalizer(registry, node, FOREGROUND).await;
        } else {
            for d in dependents {
                if let Some(dep) = graph.nodes.get(d).filter(|n| !n.deleting) {
                    let opts = DeleteOptions { propagation: Some(Propagation::Foreground), ..Default::default() };
                    let _ = registry.delete(dep.rt, dep.namespace.as_deref(), &dep.name, &opts).await;
                }
            }
        }
    }
}

async fn remove_finalizer(registry: &Registry, node: &Node, finalizer: &str) {
    let patch = |obj: &Value| {
        let mut f = object::finalizers(obj);
        f.retain(|x| x != finalizer);
        serde_json::json!({"metadata": {"finalizers": f, "resourceVersion": object::resource_version(obj)}})
    };
    edit(registry, node, patch).await;
}

async fn remove_owner_ref(registry: &Registry, node: &Node, owner_uid: &str) {
    let patch = |obj: &Value| {
        let refs: Vec<Value> = obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid)).cloned().collect())
            .unwrap_or_default();
        serde_json::json!({"metadata": {"ownerReferences": refs, "resourceVersion": object::resource_version(obj)}})
    };
    edit(registry, node, patch).await;
}

/// Read-modify-write through a merge patch pinned to the read's resourceVersion.
async fn edit(registry: &Registry, node: &Node, make_patch: impl Fn(&Value) -> Value) {
    for _ in 0..5 {
        let Ok(obj) = registry.get(node.rt, node.namespace.as_deref(), &node.name).await else { return };
        let patch = make_patch(&obj);
        let result = registry
            .patch(
                node.rt,
                node.namespace.as_deref(),
                &node.name,
                Subresource::Main,
                crate::registry::PatchType::Merge,
                patch,
                &WriteOptions::default(),
            )
            .await;
        match result {
            Err(crate::error::ApiError::Conflict { .. }) => continue,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_back_to_resources() {
        let (rt, ns, name) = parse_key("/registry/apps/deployments/prod/web").unwrap();
        assert_eq!((rt.kind, ns.as_deref(), name.as_str()), ("Deployment", Some("prod"), "web"));
        let (rt, ns, name) = parse_key("/registry/core/namespaces/prod").unwrap();
        assert_eq!((rt.kind, ns, name.as_str()), ("Namespace", None, "prod"));
        assert!(parse_key("/registry/core/widgets/x").is_none());
    }
}

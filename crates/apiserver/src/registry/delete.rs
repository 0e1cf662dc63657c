//! Deletion: finalizers, deletionTimestamp, pod graceful deletion, propagation policies.

use super::{MODIFIED, Registry, conflict, decode};
use crate::error::{ApiError, ApiResult};
use crate::object::{self, meta_mut};
use api::ResourceType;
use serde_json::{Value, json};
use store::Precondition;

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads a metav1.DeleteOptions body (possibly empty) merged over query parameters.
    pub fn from_body(body: Option<&Value>, mut base: DeleteOptions) -> ApiResult<DeleteOptions> {
        let Some(b) = body else { return Ok(base) };
        if let Some(g) = b.get("gracePeriodSeconds").and_then(Value::as_i64) {
            base.grace_period_seconds = Some(g);
        }
        if let Some(p) = b.get("propagationPolicy").and_then(Value::as_str) {
            base.propagation = Some(parse_propagation(p)?);
        }
        if b.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
            base.propagation = Some(Propagation::Orphan);
        }
        if let Some(uid) = b.pointer("/preconditions/uid").and_then(Value::as_str) {
            base.precondition_uid = Some(uid.to_string());
        }
        if let Some(rv) = b.pointer("/preconditions/resourceVersion").and_then(Value::as_str) {
            base.precondition_rv = Some(rv.to_string());
        }
        if b.get("dryRun").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
            base.dry_run = true;
        }
        Ok(base)
    }
}

pub fn parse_propagation(p: &str) -> ApiResult<Propagation> {
    match p {
        "Orphan" => Ok(Propagation::Orphan),
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        other => Err(ApiError::BadRequest(format!(
            "DeletionPropagation: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
        ))),
    }
}

/// What a delete did.
#[derive(Debug)]
pub enum DeleteOutcome {
    /// Gone from the store; the last state, with the delete's resourceVersion.
    Deleted(Value),
    /// Marked for deletion (finalizers or a grace period pending).
    Pending(Value),
}

impl Registry {
    pub async fn delete(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<DeleteOutcome> {
        for _attempt in 0..16 {
            let kv = self.get_kv(rt, ns, name).await?;
            let mut obj = decode(&kv)?;
            if let Some(uid) = &opts.precondition_uid
                && object::uid(&obj) != Some(uid.as_str())
            {
                return Err(conflict(
                    rt,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        object::uid(&obj).unwrap_or_default()
                    ),
                ));
            }
            if let Some(rv) = &opts.precondition_rv
                && rv.parse::<u64>().ok() != Some(kv.mod_revision)
            {
                return Err(conflict(
                    rt,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        kv.mod_revision
                    ),
                ));
            }
            let before = obj.clone();
            let already_deleting = object::deletion_timestamp(&obj).is_some();

            let mut finalizers = object::finalizers(&obj);
            match opts.propagation {
                Some(Propagation::Foreground) if !finalizers.iter().any(|f| f == FOREGROUND) => {
                    finalizers.retain(|f| f != ORPHAN);
                    finalizers.push(FOREGROUND.into());
                }
                Some(Propagation::Orphan) if !finalizers.iter().any(|f| f == ORPHAN) => {
                    finalizers.retain(|f| f != FOREGROUND);
                    finalizers.push(ORPHAN.into());
                }
                Some(Propagation::Background) => finalizers.retain(|f| f != FOREGROUND && f != ORPHAN),
                _ => {}
            }
            let grace = self.grace_period(rt, &obj, opts).await;
            let by_controller = rt.strategy.deleted_by_controller();
            if finalizers.is_empty() && grace == 0 && !by_controller {
                if opts.dry_run {
                    return Ok(DeleteOutcome::Deleted(obj));
                }
                match self.store().delete(&kv.key, Precondition::ModRevision(kv.mod_revision)).await {
                    Ok(deleted) => {
                        object::set_resource_version(&mut obj, deleted.mod_revision);
                        if let Some(a) = self.service_allocators(rt) {
                            a.wait_processed(deleted.mod_revision).await;
                        }
                        return Ok(DeleteOutcome::Deleted(obj));
                    }
                    Err(store::Error::Conflict { .. }) | Err(store::Error::NotFound(_)) => continue,
                    Err(e) => return Err(e.into()),
                }
            }

            // Graceful: mark, and let finalizers (or the node agent, for pods) finish the job.
            object::set_finalizers(&mut obj, finalizers);
            let now = jiff::Timestamp::now();
            let m = meta_mut(&mut obj);
            let current_grace = m.get("deletionGracePeriodSeconds").and_then(Value::as_i64);
            if !already_deleting || current_grace.is_some_and(|g| grace < g) {
                let at = now + jiff::SignedDuration::from_secs(grace);
                m.insert("deletionTimestamp".into(), json!(object::timestamp_rfc3339(at)));
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            rt.strategy.prepare_for_delete(&mut obj);
            if obj == before {
                return Ok(DeleteOutcome::Pending(obj));
            }
            if opts.dry_run {
                return Ok(DeleteOutcome::Pending(obj));
            }
            match self
                .store()
                .update(&kv.key, object::to_stored_bytes(&obj), Precondition::ModRevision(kv.mod_revision))
                .await
            {
                Ok(updated) => {
                    object::set_resource_version(&mut obj, updated.mod_revision);
                    return Ok(DeleteOutcome::Pending(obj));
                }
                Err(store::Error::Conflict { .. }) => continue,
                Err(store::Error::NotFound(_)) => return Err(super::not_found(rt, name)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(conflict(rt, name, MODIFIED))
    }

    /// The kind's grace period (Pods bound to a node that exists are finished by the node
    /// agent); 0 deletes at once.
    async fn grace_period(&self, rt: &ResourceType, obj: &Value, opts: &DeleteOptions) -> i64 {
        let Some((grace, node)) = rt.strategy.graceful_deletion(obj, opts.grace_period_seconds) else {
            return 0;
        };
        let nodes = api::resources::lookup("", "v1", "nodes").expect("nodes are served");
        match self.store().get(&nodes.key(None, node)).await {
            Ok(Some(_)) => grace,
            _ => 0,
        }
    }

    /// Removes an object outright, whatever its finalizers (the namespace controller's last step).
    pub(crate) async fn remove(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> ApiResult<()> {
        match self.store().delete(&rt.key(ns, name), Precondition::None).await {
            Ok(_) | Err(store::Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

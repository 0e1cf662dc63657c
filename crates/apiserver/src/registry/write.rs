//! Create, update and patch, through one strategy pipeline.

use super::{MODIFIED, Registry, Subresource, conflict, decode, not_found};
use crate::error::{ApiError, ApiResult};
use crate::object::{self, meta_mut};
use crate::services::{Reservation, ServiceAllocators};
use api::ResourceType;
use serde_json::{Value, json};
use store::Precondition;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    /// kube-apiserver's default: unknown fields are dropped with a warning.
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(s: Option<&str>) -> ApiResult<Self> {
        match s.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(ApiError::BadRequest(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            ))),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub field_validation: FieldValidation,
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// A written object and the warnings to send back as `Warning` headers.
#[derive(Debug)]
pub struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
    /// True when the write created the object (201 rather than 200).
    pub created: bool,
}

impl Registry {
    pub async fn create(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let mut obj = check_type_meta(rt, obj)?;
        let ns = resolve_namespace(rt, ns, &mut obj)?;
        if object::name(&obj).is_none()
            && let Some(prefix) = object::meta_str(&obj, "generateName").map(String::from)
        {
            let name = format!("{prefix}{}", random_suffix());
            meta_mut(&mut obj).insert("name".into(), json!(name));
        }
        let (mut obj, warnings) = decode_typed(rt, obj, opts.field_validation)?;
        let name = object::name(&obj).unwrap_or_default().to_string();
        if let Some(ns) = ns.as_deref() {
            self.check_namespace_open(rt, ns, &name).await?;
        }
        {
            let m = meta_mut(&mut obj);
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
            for f in ["deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink"] {
                m.remove(f);
            }
            if rt.strategy.tracks_generation() {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        rt.strategy.prepare_for_create(&mut obj);
        api::defaults::apply(rt, &mut obj);
        self.default_ingress_class(rt, &mut obj).await?;
        // As kube-apiserver's BeginCreate, allocation comes before validation: validation
        // requires what allocation fills in (a Local LoadBalancer's healthCheckNodePort).
        let allocators = self.service_allocators(rt);
        let reservation = match allocators {
            Some(a) => Some(a.reserve_for_create(&mut obj)?),
            None => None,
        };
        let give_back = |r| give_back(allocators, r);
        if let Err(e) = validate(rt, &obj, None) {
            give_back(reservation);
            return Err(e);
        }
        if opts.dry_run {
            give_back(reservation);
            return Ok(Written { object: obj, warnings, created: true });
        }
        let key = rt.key(ns.as_deref(), &name);
        match self.store().create(&key, object::to_stored_bytes(&obj)).await {
            Ok(kv) => {
                object::set_resource_version(&mut obj, kv.mod_revision);
                if let (Some(a), Some(r)) = (allocators, reservation) {
                    a.wait_processed(kv.mod_revision).await;
                    a.commit(r);
                }
                Ok(Written { object: obj, warnings, created: true })
            }
            Err(store::Error::AlreadyExists(_)) => {
                give_back(reservation);
                Err(ApiError::AlreadyExists { resource: rt.plural.to_string(), group: rt.group.to_string(), name })
            }
            Err(e) => {
                give_back(reservation);
                Err(e.into())
            }
        }
    }

    /// PUT: replaces the object (or its status), with optimistic concurrency on the
    /// body's resourceVersion when it carries one.
    pub async fn update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        sub: Subresource,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        if sub == Subresource::Scale {
            return self.update_scale(rt, ns, name, obj, opts).await;
        }
        let mut obj = check_type_meta(rt, obj)?;
        resolve_namespace(rt, ns, &mut obj)?;
        match object::name(&obj) {
            Some(n) if n == name => {}
            Some(n) => {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            None => {
                meta_mut(&mut obj).insert("name".into(), json!(name));
            }
        }
        let requested_rv = parse_rv(object::resource_version(&obj))?;
        let (new, warnings) = decode_typed(rt, obj, opts.field_validation)?;
        let kv = self.get_kv(rt, ns, name).await?;
        if let Some(rv) = requested_rv
            && rv != kv.mod_revision
        {
            return Err(conflict(rt, name, MODIFIED));
        }
        let old = decode(&kv)?;
        let merged = merge_for_update(rt, &old, new, sub);
        let mut written = self.commit_update(rt, ns, name, &old, kv.mod_revision, merged, opts).await?;
        written.warnings = warnings;
        Ok(written)
    }

    /// PATCH in all four flavours. Retries internally when a concurrent writer wins, unless
    /// the patch itself pins a resourceVersion.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        sub: Subresource,
        patch_type: PatchType,
        patch: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        if patch_type == PatchType::Apply && opts.field_manager.as_deref().unwrap_or("").is_empty() {
            return Err(ApiError::Invalid {
                kind: "PatchOptions".into(),
                group: "meta.k8s.io".into(),
                name: String::new(),
                causes: vec![api::FieldError::required("fieldManager", "is required for apply patch")],
            });
        }
        for _attempt in 0..16 {
            let kv = match self.store().get(&rt.key(ns, name)).await? {
                Some(kv) => kv,
                None if patch_type == PatchType::Apply && sub == Subresource::Main => {
                    let mut obj = patch.clone();
                    if object::name(&obj).is_none() {
                        meta_mut(&mut obj).insert("name".into(), json!(name));
                    }
                    let obj = server_side_apply(rt, None, &obj, opts)?;
                    return match self.create(rt, ns, obj, opts).await {
                        Err(ApiError::AlreadyExists { .. }) => continue,
                        other => other,
                    };
                }
                None => return Err(not_found(rt, name)),
            };
            let old = decode(&kv)?;
            if sub == Subresource::Scale {
                return self.patch_scale(rt, ns, name, &old, kv.mod_revision, patch_type, &patch, opts).await;
            }
            let patched = if patch_type == PatchType::Apply && sub == Subresource::Main {
                server_side_apply(rt, Some(&old), &patch, opts)?
            } else {
                apply_patch(rt, &old, patch_type, &patch)?
            };
            let pinned = patch.pointer("/metadata/resourceVersion").is_some();
            if let Some(rv) = parse_rv(object::resource_version(&patched))?
                && rv != kv.mod_revision
            {
                return Err(conflict(rt, name, MODIFIED));
            }
            let patched = check_type_meta(rt, patched)?;
            if object::name(&patched) != Some(name) {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    object::name(&patched).unwrap_or_default()
                )));
            }
            let (new, warnings) = decode_typed(rt, patched, opts.field_validation)?;
            let merged = merge_for_update(rt, &old, new, sub);
            match self.commit_update(rt, ns, name, &old, kv.mod_revision, merged, opts).await {
                Err(ApiError::Conflict { .. }) if !pinned => continue,
                Ok(mut w) => {
                    w.warnings = warnings;
                    return Ok(w);
                }
                Err(e) => return Err(e),
            }
        }
        Err(conflict(rt, name, "too many concurrent writers; please retry"))
    }

    /// Defaults, validates and writes `new` over `old` (at `old_rev`). A no-op write is not
    /// stored (no new resourceVersion), as in kube-apiserver. An object whose deletion is
    /// pending and has no finalizers left is removed instead.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn commit_update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        old: &Value,
        old_rev: u64,
        mut new: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        api::defaults::apply(rt, &mut new);
        let allocators = self.service_allocators(rt);
        let reservation = match allocators {
            Some(a) => Some(a.reserve_for_update(old, &mut new)?),
            None => None,
        };
        let give_back = |r| give_back(allocators, r);
        if let Err(e) = validate(rt, &new, Some(old)) {
            give_back(reservation);
            return Err(e);
        }
        let result = self.commit_update_inner(rt, ns, name, old, old_rev, new, opts).await;
        match (&result, allocators, reservation) {
            (Ok(w), Some(a), Some(r)) if !opts.dry_run => {
                if let Some(rv) = object::resource_version(&w.object).and_then(|r| r.parse().ok()) {
                    a.wait_processed(rv).await;
                }
                a.commit(r);
            }
            (_, _, r) => give_back(r),
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit_update_inner(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        old: &Value,
        old_rev: u64,
        mut new: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        if rt.strategy.tracks_generation() && spec_changed(old, &new) {
            let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0) + 1;
            meta_mut(&mut new).insert("generation".into(), json!(generation));
        }
        object::set_resource_version(&mut new, old_rev);
        if new == *old {
            return Ok(Written { object: new, warnings: vec![], created: false });
        }
        if opts.dry_run {
            return Ok(Written { object: new, warnings: vec![], created: false });
        }
        let key = rt.key(ns, name);
        let finished = object::deletion_timestamp(&new).is_some()
            && object::finalizers(&new).is_empty()
            && new.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0) == 0
            && !rt.strategy.deleted_by_controller();
        let result = if finished {
            self.store().delete(&key, Precondition::ModRevision(old_rev)).await
        } else {
            self.store().update(&key, object::to_stored_bytes(&new), Precondition::ModRevision(old_rev)).await
        };
        match result {
            Ok(kv) => {
                object::set_resource_version(&mut new, kv.mod_revision);
                Ok(Written { object: new, warnings: vec![], created: false })
            }
            Err(store::Error::Conflict { .. }) => Err(conflict(rt, name, MODIFIED)),
            Err(store::Error::NotFound(_)) => Err(not_found(rt, name)),
            Err(e) => Err(e.into()),
        }
    }
}

pub(crate) fn apply_patch(rt: &ResourceType, old: &Value, patch_type: PatchType, patch: &Value) -> ApiResult<Value> {
    let invalid = |e: api::patch::PatchError| match e.status_code() {
        400 => ApiError::BadRequest(e.to_string()),
        413 => ApiError::RequestEntityTooLarge(e.to_string()),
        500 => ApiError::Internal(e.to_string()),
        _ => ApiError::Invalid {
            kind: rt.kind.to_string(),
            group: rt.group.to_string(),
            name: object::name(old).unwrap_or_default().to_string(),
            causes: vec![api::FieldError::invalid("patch", format!("{:?}", patch.to_string()), e.to_string())],
        },
    };
    match patch_type {
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::BadRequest("merge patch must be a JSON object".into()));
            }
            Ok(api::patch::merge_patch(old, patch))
        }
        PatchType::Json => {
            if !patch.is_array() {
                return Err(ApiError::BadRequest("json patch must be a JSON array of operations".into()));
            }
            api::patch::json_patch(old, patch).map_err(invalid)
        }
        PatchType::Strategic => {
            if !patch.is_object() {
                return Err(ApiError::BadRequest("strategic merge patch must be a JSON object".into()));
            }
            api::patch::strategic_merge_patch(old, patch, rt).map_err(invalid)
        }
        PatchType::Apply => {
            // Server-side apply without field ownership tracking: the applied configuration is
            // merged into the live object with the kind's strategic merge semantics.
            if !patch.is_object() {
                return Err(ApiError::BadRequest("apply patch must be a JSON or YAML object".into()));
            }
            let mut config = patch.clone();
            if let Some(m) = config.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
                m.remove("managedFields");
            }
            api::patch::strategic_merge_patch(old, &config, rt).map_err(invalid)
        }
    }
}

/// Server-side apply with field ownership (managedFields), conflicts answered as a 409.
fn server_side_apply(rt: &ResourceType, live: Option<&Value>, config: &Value, opts: &WriteOptions) -> ApiResult<Value> {
    let manager = opts.field_manager.as_deref().unwrap_or_default();
    api::apply::apply(rt, live, config, manager, opts.force, &object::now_rfc3339()).map_err(|conflicts| {
        ApiError::ApplyConflict {
            message: api::apply::conflict_message(&conflicts),
            causes: conflicts.iter().map(|c| (c.field.clone(), c.cause_message())).collect(),
        }
    })
}

/// Returns a Service write's reservation to the allocators (the write failed or was a dry run).
fn give_back(allocators: Option<&std::sync::Arc<ServiceAllocators>>, r: Option<Reservation>) {
    if let (Some(a), Some(r)) = (allocators, r) {
        a.release(r);
    }
}

/// Fills a missing apiVersion/kind from the URL and rejects a mismatching one.
pub(crate) fn check_type_meta(rt: &ResourceType, mut obj: Value) -> ApiResult<Value> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::BadRequest(format!("the body of the request was not a {} object", rt.kind)));
    };
    // Metadata of the wrong JSON type is a decoding error (400), not an absent metadata.
    if map.get("metadata").is_some_and(|m| !m.is_object() && !m.is_null()) {
        return Err(ApiError::BadRequest(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: metadata must be an object",
            kind = rt.kind,
            version = rt.version
        )));
    }
    let expected = rt.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(expected));
        }
        Some(v) if v != expected => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected})"
            )));
        }
        Some(_) => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(rt.kind));
        }
        Some(k) if k != rt.kind => {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        Some(_) => {}
    }
    Ok(obj)
}

/// Sets metadata.namespace from the URL; returns the namespace in force.
fn resolve_namespace(rt: &ResourceType, url_ns: Option<&str>, obj: &mut Value) -> ApiResult<Option<String>> {
    if !rt.namespaced {
        meta_mut(obj).remove("namespace");
        return Ok(None);
    }
    let Some(url_ns) = url_ns else {
        return Err(ApiError::BadRequest(format!("{} must be created in a namespace", rt.plural)));
    };
    match object::namespace(obj) {
        Some(n) if n != url_ns => Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request".into(),
        )),
        _ => {
            meta_mut(obj).insert("namespace".into(), json!(url_ns));
            Ok(Some(url_ns.to_string()))
        }
    }
}

/// The typed round trip with field validation.
pub(crate) fn decode_typed(rt: &ResourceType, obj: Value, fv: FieldValidation) -> ApiResult<(Value, Vec<String>)> {
    let n = rt.normalize(obj).map_err(|e| {
        ApiError::BadRequest(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: {e}",
            kind = rt.kind,
            version = rt.version
        ))
    })?;
    let problems: Vec<String> = n.unknown_fields.iter().map(|f| format!("unknown field {f:?}")).collect();
    match fv {
        FieldValidation::Strict if !problems.is_empty() => {
            Err(ApiError::BadRequest(format!("strict decoding error: {}", problems.join(", "))))
        }
        FieldValidation::Ignore => Ok((n.value, vec![])),
        _ => Ok((n.value, problems)),
    }
}

fn validate(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
    let errors = api::validation::validate(rt, obj, old);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid {
            kind: rt.kind.to_string(),
            group: rt.group.to_string(),
            name: object::name(obj).or_else(|| object::meta_str(obj, "generateName")).unwrap_or_default().to_string(),
            causes: errors,
        })
    }
}

/// Carries over what a client may not change with this kind of write: system metadata
/// always, and what the kind's strategy keeps (its status on the main resource, everything
/// but the status on `/status`).
pub(crate) fn merge_for_update(rt: &ResourceType, old: &Value, mut new: Value, sub: Subresource) -> Value {
    match sub {
        Subresource::Status => return rt.strategy.prepare_for_status_update(new, old),
        Subresource::Finalize => return rt.strategy.prepare_for_finalize(&new, old),
        Subresource::Main | Subresource::Scale => {}
    }
    let old_meta = api::json::metadata(old).clone();
    let m = meta_mut(&mut new);
    for f in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "namespace"]
    {
        match old_meta.get(f) {
            Some(v) => {
                m.insert(f.into(), v.clone());
            }
            None => {
                m.remove(f);
            }
        }
    }
    // Field ownership carries over unless the client sent its own (an empty list resets it).
    if !m.contains_key("managedFields")
        && let Some(mf) = old_meta.get("managedFields")
    {
        m.insert("managedFields".into(), mf.clone());
    }
    m.remove("selfLink");
    rt.strategy.prepare_for_update(&mut new, old);
    new
}

fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}

fn parse_rv(rv: Option<&str>) -> ApiResult<Option<u64>> {
    match rv {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {s:?}: must be a decimal integer"))),
    }
}

/// Five characters from Kubernetes' generateName alphabet (no vowels, no look-alikes).
fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

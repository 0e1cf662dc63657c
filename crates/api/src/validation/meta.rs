//! ObjectMeta validation: k8s.io/apimachinery/pkg/api/validation/objectmeta.go, plus the
//! finalizer-name rule pkg/apis/core/validation adds for the built-in kinds.

use serde_json::Value;

use super::names::{NameRule, is_dns1123_label, is_qualified_name, is_valid_label_value};
use super::{go_string_slice, quote};
use crate::field::{ErrorList, FieldError, Path};
use crate::json::{field, list, object, opt_int, opt_str, str_of};
use crate::resources::ResourceType;

/// TotalAnnotationSizeLimitB: 256 KiB of annotation keys and values together.
pub(crate) const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

const FINALIZER_ORPHAN_DEPENDENTS: &str = "orphan";
const FINALIZER_DELETE_DEPENDENTS: &str = "foregroundDeletion";
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", FINALIZER_ORPHAN_DEPENDENTS, FINALIZER_DELETE_DEPENDENTS];

/// The name rule kube-apiserver applies to `metadata.name` of a kind: Services are DNS-1035
/// labels, Namespaces and StatefulSets DNS-1123 labels, core/v1 Events only need to be a valid
/// path segment, and everything else served here is a DNS-1123 subdomain.
pub fn name_rule(rt: &ResourceType) -> NameRule {
    rt.strategy.name_rule()
}

/// ValidateObjectMeta for a create: `meta` is the `metadata` object, `path` its field path
/// (normally `metadata`). The name is required unless `generateName` is set; it must follow the
/// kind's [`name_rule`]. Namespaced kinds require a namespace that is a DNS label; for
/// cluster-scoped kinds a namespace is ignored (rest.BeforeCreate clears it before validating).
pub(crate) fn validate_object_meta(rt: &ResourceType, meta: &Value, path: &Path) -> ErrorList {
    let rule = name_rule(rt);
    let mut errs = ErrorList::new();
    let name = str_of(meta, "name");
    let generate_name = str_of(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in rule.check(generate_name, true) {
            errs.push(FieldError::invalid_str(path.child("generateName"), generate_name, msg));
        }
    }
    if name.is_empty() {
        if generate_name.is_empty() {
            errs.push(FieldError::required(path.child("name"), "name or generateName is required"));
        }
    } else {
        for msg in rule.check(name, false) {
            errs.push(FieldError::invalid_str(path.child("name"), name, msg));
        }
    }

    if rt.namespaced {
        let namespace = str_of(meta, "namespace");
        if namespace.is_empty() {
            errs.push(FieldError::required(path.child("namespace"), ""));
        } else {
            for msg in is_dns1123_label(namespace) {
                errs.push(FieldError::invalid_str(path.child("namespace"), namespace, msg));
            }
        }
    }
    errs.extend(super::validate_nonnegative(opt_int(meta, "generation"), &path.child("generation")));
    errs.extend(common(meta, path));
    errs.extend(kube_finalizer_names(rt, meta, path));
    errs
}

/// ValidateObjectMetaUpdate: `new` and `old` are the `metadata` objects. Name and namespace may
/// not change. `uid`, `creationTimestamp`, `deletionTimestamp` and `deletionGracePeriodSeconds`
/// may not change either; when the new object omits them they count as carried over (as
/// rest.BeforeUpdate copies them from the stored object). Labels, annotations, owner references,
/// finalizers and managed fields are validated as on create, and no finalizer may be added once
/// the object is being deleted.
pub(crate) fn validate_object_meta_update(rt: &ResourceType, new: &Value, old: &Value, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();

    if field(old, "deletionTimestamp").is_some() {
        let old_finalizers = list(old, "finalizers");
        let mut extra: Vec<&str> =
            list(new, "finalizers").iter().filter(|f| !old_finalizers.contains(f)).filter_map(Value::as_str).collect();
        extra.sort_unstable();
        extra.dedup();
        if !extra.is_empty() {
            let extra = Value::from(extra);
            errs.push(FieldError::forbidden(
                path.child("finalizers"),
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    go_string_slice(Some(&extra))
                ),
            ));
        }
    }

    let (new_name, old_name) = (str_of(new, "name"), str_of(old, "name"));
    if new_name != old_name {
        errs.push(super::immutable(&path.child("name"), quote(new_name)));
    }
    let (new_ns, old_ns) = (str_of(new, "namespace"), str_of(old, "namespace"));
    if rt.namespaced && new_ns != old_ns {
        errs.push(super::immutable(&path.child("namespace"), quote(new_ns)));
    }
    if let Some(uid) = opt_str(new, "uid").filter(|u| !u.is_empty())
        && uid != str_of(old, "uid")
    {
        errs.push(super::immutable(&path.child("uid"), quote(uid)));
    }
    for key in ["creationTimestamp", "deletionTimestamp"] {
        if let Some(ts) = field(new, key)
            && Some(ts) != field(old, key)
        {
            errs.push(super::immutable(&path.child(key), go_time(ts.as_str().unwrap_or(""))));
        }
    }
    if let Some(grace) = field(new, "deletionGracePeriodSeconds")
        && Some(grace) != field(old, "deletionGracePeriodSeconds")
    {
        errs.push(super::immutable(&path.child("deletionGracePeriodSeconds"), grace.to_string()));
    }

    errs.extend(common(new, path));
    errs.extend(kube_finalizer_names(rt, new, path));
    errs
}

/// The part of ValidateObjectMeta shared by create and update.
fn common(meta: &Value, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    errs.extend(validate_labels(object(meta, "labels"), &path.child("labels")));
    errs.extend(validate_annotations(object(meta, "annotations"), &path.child("annotations")));
    errs.extend(validate_owner_references(list(meta, "ownerReferences"), &path.child("ownerReferences")));
    errs.extend(validate_finalizers(meta.get("finalizers"), &path.child("finalizers")));
    errs.extend(validate_managed_fields(list(meta, "managedFields"), &path.child("managedFields")));
    errs
}

/// ValidateLabels: each key a qualified name, each value a valid label value. Errors are
/// reported on the map's path, not per key, as upstream does.
pub(crate) fn validate_labels(labels: Option<&serde_json::Map<String, Value>>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (k, v) in labels.into_iter().flatten() {
        errs.extend(validate_label_name(k, path));
        let v = v.as_str().unwrap_or("");
        for msg in is_valid_label_value(v) {
            errs.push(FieldError::invalid_str(path, v, msg));
        }
    }
    errs
}

/// ValidateLabelName
pub(super) fn validate_label_name(name: &str, path: &Path) -> ErrorList {
    is_qualified_name(name).into_iter().map(|msg| FieldError::invalid_str(path, name, msg)).collect()
}

/// ValidateAnnotations: keys are qualified names (case-insensitively) and keys plus values may
/// not exceed [`TOTAL_ANNOTATION_SIZE_LIMIT`] bytes.
pub(crate) fn validate_annotations(annotations: Option<&serde_json::Map<String, Value>>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut total = 0;
    for (k, v) in annotations.into_iter().flatten() {
        for msg in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid_str(path, k, msg));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// ValidateOwnerReferences
fn validate_owner_references(refs: &[Value], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut first_controller: Option<String> = None;
    for r in refs {
        let api_version = str_of(r, "apiVersion");
        let kind = str_of(r, "kind");
        let name = str_of(r, "name");
        let uid = str_of(r, "uid");
        // schema.FromAPIVersionAndKind: an unparsable apiVersion leaves group and version empty.
        let (group, version) = parse_group_version(api_version).unwrap_or(("", ""));
        if version.is_empty() {
            errs.push(FieldError::invalid_str(path.child("apiVersion"), api_version, "version must not be empty"));
        }
        if kind.is_empty() {
            errs.push(FieldError::invalid_str(path.child("kind"), kind, "must not be empty"));
        }
        if name.is_empty() {
            errs.push(FieldError::invalid_str(path.child("name"), name, "must not be empty"));
        }
        if uid.is_empty() {
            errs.push(FieldError::invalid_str(path.child("uid"), uid, "must not be empty"));
        }
        if (group, version, kind) == ("", "v1", "Event") {
            errs.push(FieldError::invalid(
                path,
                go_owner_reference(r),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let current = format!("{kind}/{name}");
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    format!("[]v1.OwnerReference{{{}}}", refs.iter().map(go_owner_reference).collect::<Vec<_>>().join(", ")),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// schema.ParseGroupVersion
fn parse_group_version(gv: &str) -> Option<(&str, &str)> {
    if gv.is_empty() || gv == "/" {
        return Some(("", ""));
    }
    match gv.matches('/').count() {
        0 => Some(("", gv)),
        1 => gv.split_once('/'),
        _ => None,
    }
}

fn go_owner_reference(r: &Value) -> String {
    format!(
        "v1.OwnerReference{{APIVersion:{}, Kind:{}, Name:{}, UID:{}, Controller:{}, BlockOwnerDeletion:{}}}",
        quote(str_of(r, "apiVersion")),
        quote(str_of(r, "kind")),
        quote(str_of(r, "name")),
        quote(str_of(r, "uid")),
        super::go_pointer("bool", r.get("controller")),
        super::go_pointer("bool", r.get("blockOwnerDeletion")),
    )
}

/// ValidateFinalizers: qualified names, and not both `orphan` and `foregroundDeletion`.
fn validate_finalizers(finalizers: Option<&Value>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let items = finalizers.and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let names: Vec<&str> = items.iter().map(|f| f.as_str().unwrap_or("")).collect();
    for f in &names {
        for msg in is_qualified_name(f) {
            errs.push(FieldError::invalid_str(path, f, msg));
        }
    }
    if names.contains(&FINALIZER_ORPHAN_DEPENDENTS) && names.contains(&FINALIZER_DELETE_DEPENDENTS) {
        errs.push(FieldError::invalid(
            path,
            go_string_slice(finalizers),
            format!("finalizer {FINALIZER_ORPHAN_DEPENDENTS} and {FINALIZER_DELETE_DEPENDENTS} cannot be both set"),
        ));
    }
    errs
}

/// validateKubeFinalizerName, applied per index by pkg/apis/core/validation.ValidateObjectMeta.
fn kube_finalizer_names(rt: &ResourceType, meta: &Value, path: &Path) -> ErrorList {
    if !rt.strategy.checks_kube_finalizer_names() {
        return ErrorList::new();
    }
    let mut errs = ErrorList::new();
    for (i, f) in list(meta, "finalizers").iter().enumerate() {
        let f = f.as_str().unwrap_or("");
        errs.extend(validate_kube_finalizer_name(f, &path.child("finalizers").index(i)));
    }
    errs
}

/// validateKubeFinalizerName: a name without a `/` must be one of the standard finalizers.
pub(super) fn validate_kube_finalizer_name(f: &str, path: &Path) -> ErrorList {
    if !f.contains('/') && !STANDARD_FINALIZERS.contains(&f) {
        return vec![FieldError::invalid_str(
            path,
            f,
            "name is neither a standard finalizer name nor is it fully qualified",
        )];
    }
    ErrorList::new()
}

/// ValidateManagedFields
fn validate_managed_fields(entries: &[Value], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, entry) in entries.iter().enumerate() {
        let p = path.index(i);
        let operation = str_of(entry, "operation");
        if !matches!(operation, "Apply" | "Update") {
            errs.push(FieldError::invalid_str(p.child("operation"), operation, "must be `Apply` or `Update`"));
        }
        let fields_type = str_of(entry, "fieldsType");
        if !fields_type.is_empty() && fields_type != "FieldsV1" {
            errs.push(FieldError::invalid_str(p.child("fieldsType"), fields_type, "must be `FieldsV1`"));
        }
        if str_of(entry, "manager").len() > 128 {
            errs.push(FieldError::too_long(p.child("manager"), 128));
        }
        if str_of(entry, "subresource").len() > 256 {
            errs.push(FieldError::too_long(p.child("subresource"), 256));
        }
    }
    errs
}

/// metav1.Time as its String() prints it: `2006-01-02 15:04:05 +0000 UTC`.
fn go_time(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string(),
        Err(_) => quote(rfc3339),
    }
}

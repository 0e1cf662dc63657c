//! Validation of the served kinds on wire JSON, reporting [`FieldError`]s with kube-apiserver's
//! field paths and messages.
//!
//! [`validate`] is what a registry strategy's Validate / ValidateUpdate does: object metadata
//! (k8s.io/apimachinery/pkg/api/validation/objectmeta.go, with the per-kind name rule of
//! pkg/apis/*/validation) plus cheap, certain per-kind checks. It expects the object to have been
//! defaulted ([`crate::defaults::apply`]) and, for cluster-scoped kinds, to have had
//! `metadata.namespace` cleared, as rest.BeforeCreate does before validating.

pub(crate) mod kinds;
mod meta;
pub mod names;
pub(crate) mod workloads;

use serde_json::Value;

pub use meta::name_rule;
pub(crate) use meta::{validate_object_meta, validate_object_meta_update};
pub use names::NameRule;
pub(crate) use names::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_label_value, is_valid_port_name,
    is_valid_port_num,
};

use crate::field::{ErrorList, FieldError, Path};
use crate::json::{metadata, str_of};
use crate::resources::ResourceType;

/// Validates an object on create (`old` is `None`) or update (`old` is the stored object).
///
/// On create this is ValidateObjectMeta plus the kind's checks; on update it is
/// ValidateObjectMetaUpdate (immutable name, namespace, uid, creationTimestamp, ...) plus the
/// kind's checks, including its own immutable fields (e.g. `spec.selector` of Deployments and
/// ReplicaSets). core/v1 Events get only their legacy checks, followed on create by the generic
/// metadata checks kube-apiserver runs for every kind.
pub fn validate(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> ErrorList {
    let meta_path = Path::new("metadata");
    let meta = metadata(obj);
    let is_event = rt.strategy.validates_meta_after_kind();
    let mut errs = match old {
        None if is_event => ErrorList::new(),
        None => validate_object_meta(rt, meta, &meta_path),
        Some(old) => validate_object_meta_update(rt, meta, metadata(old), &meta_path),
    };
    errs.extend(rt.strategy.validate(obj, old));
    // rest.BeforeCreate runs the generic object-meta validation only once the strategy passed.
    if is_event && old.is_none() && errs.is_empty() {
        errs = validate_object_meta(rt, meta, &meta_path);
    }
    errs
}

// ---- JSON comparison ----------------------------------------------------------------------

/// Semantic equality as apiequality.Semantic.DeepEqual sees wire JSON: absent, `null`, empty
/// maps and empty lists are all the zero value.
fn semantic_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    fn is_zero(v: Option<&Value>) -> bool {
        match v {
            None | Some(Value::Null) => true,
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(m)) => m.values().all(|v| is_zero(Some(v))),
            Some(Value::String(s)) => s.is_empty(),
            Some(Value::Bool(b)) => !b,
            Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        }
    }
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            x.iter().all(|(k, v)| semantic_eq(Some(v), y.get(k)))
                && y.iter().all(|(k, v)| x.contains_key(k) || semantic_eq(Some(v), None))
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| semantic_eq(Some(a), Some(b)))
        }
        (Some(x), Some(y)) if !x.is_null() && !y.is_null() => x == y,
        _ => is_zero(a) && is_zero(b),
    }
}

// ---- Go value rendering --------------------------------------------------------------------
//
// field.Invalid renders non-scalar bad values with Go's `%#v`; these reproduce that text for the
// handful of types the checks here report.

/// A Go string as `%q` / `%#v` print it.
fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// `map[string]string{"a":"b"}` (sorted keys), or `map[string]string(nil)` when absent.
fn go_string_map(v: Option<&Value>) -> String {
    match v.and_then(Value::as_object) {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> =
                entries.iter().map(|(k, v)| format!("{}:{}", quote(k), quote(v.as_str().unwrap_or("")))).collect();
            format!("map[string]string{{{}}}", inner.join(", "))
        }
    }
}

/// `[]string{"a", "b"}`, or `[]string(nil)` when absent.
fn go_string_slice(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        None => "[]string(nil)".to_string(),
        Some(items) => {
            let inner: Vec<String> = items.iter().map(|s| quote(s.as_str().unwrap_or(""))).collect();
            format!("[]string{{{}}}", inner.join(", "))
        }
    }
}

/// A metav1.LabelSelector as `%#v` prints it.
fn go_label_selector(v: &Value) -> String {
    let expressions = match v.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(items) => {
            let inner: Vec<String> = items
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        quote(str_of(e, "key")),
                        quote(str_of(e, "operator")),
                        go_string_slice(e.get("values"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", inner.join(", "))
        }
    };
    format!("v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}", go_string_map(v.get("matchLabels")), expressions)
}

/// An intstr.IntOrString as `%#v` prints it.
fn go_int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}", quote(s)),
        other => {
            let n = other.and_then(Value::as_i64).unwrap_or(0);
            format!("intstr.IntOrString{{Type:0, IntVal:{n}, StrVal:\"\"}}")
        }
    }
}

/// A Go `*T` that is set: `%#v` prints an address, which cannot be reproduced.
fn go_pointer(type_name: &str, v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => format!("(*{type_name})(nil)"),
        Some(_) => format!("(*{type_name})(0xc000000000)"),
    }
}

/// ValidateNonnegativeField
fn validate_nonnegative(v: Option<i64>, path: &Path) -> ErrorList {
    match v {
        Some(n) if n < 0 => vec![FieldError::invalid(path, n, "must be greater than or equal to 0")],
        _ => Vec::new(),
    }
}

/// ValidateImmutableField for values rendered by the caller.
fn immutable(path: &Path, rendered_new: String) -> FieldError {
    FieldError::invalid(path, rendered_new, "field is immutable")
}

#[cfg(test)]
mod tests;

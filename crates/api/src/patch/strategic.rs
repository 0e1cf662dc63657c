//! Strategic merge patch, as k8s.io/apimachinery/pkg/util/strategicpatch applies it on the
//! server (`StrategicMergeMapPatch` with `MergeParallelList` and `IgnoreUnmatchedNulls`).
//!
//! Where the original has nothing for a patch value, upstream copies the value with
//! `removeDirectives` (maps carrying `$patch` are dropped) and leaves any other directive keys
//! for the typed decoder to discard; here such values are also merged into nothing, so nested
//! `$setElementOrder/...`, `$retainKeys` and `$deleteFromPrimitiveList/...` keys and nulls never
//! reach the result (kube-apiserver's decoder would drop them; a strict decoder would complain).
//! Upstream iterates Go maps in random order; here patch keys are applied in document order,
//! with `$deleteFromPrimitiveList/...` lists applied after the other keys.

use serde_json::{Map, Value};

use super::PatchError;
use super::merge_keys;
use crate::resources::ResourceType;

const DIRECTIVE_MARKER: &str = "$patch";
const REPLACE_DIRECTIVE: &str = "replace";
const DELETE_DIRECTIVE: &str = "delete";
const MERGE_DIRECTIVE: &str = "merge";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";

const ERR_BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST: &str = "invalid patch format of setElementOrder list";
const ERR_NO_LIST_OF_LISTS: &str = "lists of lists are not supported";

/// Applies a strategic merge patch to an object of kind `rt`.
///
/// Lists that the kind's Go types tag `patchStrategy:"merge"` are merged element by element on
/// their `patchMergeKey` (see [`merge_keys`]); other lists are replaced; maps merge recursively
/// and `null` deletes a key. The directives `$patch` (`replace`, `delete`),
/// `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>` and `$retainKeys` are honoured.
pub fn strategic_merge_patch(original: &Value, patch: &Value, rt: &ResourceType) -> Result<Value, PatchError> {
    let patch = match patch {
        Value::Object(map) => map.clone(),
        // Unmarshalling `null` into a Go map leaves it empty: nothing changes.
        Value::Null => return Ok(original.clone()),
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_type_word(other)
            )));
        }
    };
    let original = match original {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    Ok(Value::Object(Merger { rt }.merge_map(original, patch, "")?))
}

struct Merger<'a> {
    rt: &'a ResourceType,
}

impl Merger<'_> {
    /// mergeMap
    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
        path: &str,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(directive) = patch.get(DIRECTIVE_MARKER) {
            return match directive.as_str() {
                Some(REPLACE_DIRECTIVE) => {
                    patch.shift_remove(DIRECTIVE_MARKER);
                    self.fresh_map(patch, path)
                }
                Some(DELETE_DIRECTIVE) => Ok(Map::new()),
                _ => Err(bad_patch_type(directive, &patch)),
            };
        }

        apply_retain_keys_directive(&mut original, &mut patch)?;
        self.merge_set_element_order(&mut original, &mut patch, path)?;

        // Deletion lists last (a stable sort keeps the document order otherwise).
        let mut entries: Vec<(String, Value)> = patch.into_iter().collect();
        entries.sort_by_key(|(k, _)| k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX));
        for (k, patch_value) in entries {
            let (key, is_delete_list) = if k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
                (extract_key(&k, DELETE_FROM_PRIMITIVE_LIST_PREFIX)?, true)
            } else {
                (k, false)
            };

            // IgnoreUnmatchedNulls: null deletes the key if present and is otherwise dropped.
            if patch_value.is_null() {
                original.shift_remove(&key);
                continue;
            }

            let child = join(path, &key);
            let current = original.get_mut(&key).map(std::mem::take);
            let merged = match (current, patch_value) {
                (None, _) if is_delete_list => None,
                (None, p) => self.fresh(p, &child)?,
                (Some(Value::Object(o)), Value::Object(p)) => Some(Value::Object(self.merge_map(o, p, &child)?)),
                (Some(Value::Array(o)), Value::Array(p)) => {
                    Some(Value::Array(self.merge_slice_handler(o, p, &child, is_delete_list)?))
                }
                (Some(current), _) if is_delete_list => Some(current),
                (Some(current), p) if go_type(&current) == go_type(&p) => Some(p),
                (Some(_), p) => self.fresh(p, &child)?,
            };
            match merged {
                Some(value) => {
                    original.insert(key, value);
                }
                None => {
                    original.shift_remove(&key);
                }
            }
        }
        Ok(original)
    }

    /// mergePatchIntoOriginal: merges each list named by a `$setElementOrder/<field>` directive
    /// together with its patch list, then orders the result: `$setElementOrder` first, then the
    /// order of the live list for elements the patch does not mention.
    fn merge_set_element_order(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        path: &str,
    ) -> Result<(), PatchError> {
        let directives: Vec<String> =
            patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER_PREFIX)).cloned().collect();
        for directive in directives {
            let order = match patch.shift_remove(&directive) {
                Some(Value::Array(order)) => order,
                other => return Err(bad_arg_type_list(other.as_ref())),
            };
            let key = extract_key(&directive, SET_ELEMENT_ORDER_PREFIX)?;
            let child = join(path, &key);
            let original_list = match original.get(&key) {
                None => None,
                Some(Value::Array(list)) => Some(list.clone()),
                Some(other) => return Err(bad_arg_type_list(Some(other))),
            };
            let patch_list = match patch.get(&key) {
                None => None,
                Some(Value::Array(list)) => Some(list.clone()),
                Some(other) => return Err(bad_arg_type_list(Some(other))),
            };
            let merge_key = merge_keys::lookup(self.rt, &child).map_or("", |m| m.key);
            validate_patch_with_set_order_list(patch_list.as_deref().unwrap_or_default(), &order, merge_key)?;

            let server_order = original_list.clone().unwrap_or_default();
            let is_map = server_order.iter().chain(patch_list.iter().flatten()).any(Value::is_object);
            let merged = match (original_list, patch_list) {
                (Some(original_list), None) => original_list,
                (None, Some(patch_list)) => self.fresh_list(patch_list, &child)?,
                (Some(original_list), Some(patch_list)) => {
                    self.merge_slice_handler(original_list, patch_list, &child, false)?
                }
                (None, None) => continue,
            };
            let (patch_items, server_only) = partition(merged, &order, merge_key);
            let both = normalize_element_order(patch_items, server_only, &order, &server_order, merge_key, is_map);
            original.insert(key.clone(), Value::Array(both));
            patch.shift_remove(&key);
        }
        Ok(())
    }

    /// mergeSliceHandler: merge lists merge (and deletion lists always delete); others are replaced.
    fn merge_slice_handler(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        path: &str,
        is_delete_list: bool,
    ) -> Result<Vec<Value>, PatchError> {
        match merge_keys::lookup(self.rt, path) {
            Some(meta) => self.merge_slice(original, patch, meta.key, path, is_delete_list),
            None if is_delete_list => self.merge_slice(original, patch, "", path, true),
            None => self.fresh_list(patch, path),
        }
    }

    /// mergeSlice
    fn merge_slice(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        merge_key: &str,
        path: &str,
        is_delete_list: bool,
    ) -> Result<Vec<Value>, PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let is_map = slice_element_is_map(&original, &patch)?;

        let (merged, patch_order, server_order) = if !is_map {
            if is_delete_list {
                return Ok(original.into_iter().filter(|v| !patch.contains(v)).collect());
            }
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for v in original.iter().chain(patch.iter()) {
                if !merged.contains(v) {
                    merged.push(v.clone());
                }
            }
            (merged, patch, original)
        } else {
            if merge_key.is_empty() {
                return Err(PatchError::Internal(format!("cannot merge lists without merge key for {path}")));
            }
            let (original, patch) = self.merge_slice_with_special_elements(original, patch, merge_key, path)?;
            let merged = self.merge_slice_without_special_elements(original.clone(), &patch, merge_key, path)?;
            (merged, patch, original)
        };

        let (patch_items, server_only) = partition(merged, &patch_order, merge_key);
        Ok(normalize_element_order(patch_items, server_only, &patch_order, &server_order, merge_key, is_map))
    }

    /// mergeSliceWithSpecialElements: applies `$patch: delete` elements (by merge key) and
    /// `$patch: replace`, returning the updated original and the patch without directives.
    fn merge_slice_with_special_elements(
        &self,
        mut original: Vec<Value>,
        patch: Vec<Value>,
        merge_key: &str,
        path: &str,
    ) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
        let mut without_special = Vec::with_capacity(patch.len());
        let mut replace = false;
        for v in patch {
            let Some(directive) = v.get(DIRECTIVE_MARKER) else {
                without_special.push(v);
                continue;
            };
            let element = v.as_object().cloned().unwrap_or_default();
            match directive.as_str() {
                Some(DELETE_DIRECTIVE) => match element.get(merge_key) {
                    Some(merge_value) => {
                        original.retain(|o| o.get(merge_key) != Some(merge_value));
                    }
                    None => return Err(no_merge_key(&element, merge_key)),
                },
                // Keep going, so that the other directive elements are pruned too.
                Some(REPLACE_DIRECTIVE) => replace = true,
                Some(MERGE_DIRECTIVE) => {
                    return Err(PatchError::Internal("merging lists cannot yet be specified in the patch".to_string()));
                }
                _ => return Err(bad_patch_type(directive, &element)),
            }
        }
        if replace {
            return Ok((self.fresh_list(without_special, path)?, Vec::new()));
        }
        Ok((original, without_special))
    }

    /// mergeSliceWithoutSpecialElements: merges patch elements into the original element with
    /// the same merge key value, appending those that match none.
    fn merge_slice_without_special_elements(
        &self,
        mut original: Vec<Value>,
        patch: &[Value],
        merge_key: &str,
        path: &str,
    ) -> Result<Vec<Value>, PatchError> {
        for v in patch {
            let element = v.as_object().cloned().unwrap_or_default();
            let Some(merge_value) = element.get(merge_key) else {
                return Err(no_merge_key(&element, merge_key));
            };
            match original.iter().position(|o| o.get(merge_key) == Some(merge_value)) {
                Some(i) => {
                    let current = match std::mem::take(&mut original[i]) {
                        Value::Object(map) => map,
                        _ => Map::new(),
                    };
                    original[i] = Value::Object(self.merge_map(current, element, path)?);
                }
                None => original.push(Value::Object(self.fresh_map(element, path)?)),
            }
        }
        Ok(original)
    }

    /// A patch value that lands where the original has nothing (removeDirectives): a map
    /// carrying `$patch` is dropped altogether, as upstream does; anything else is merged into
    /// nothing, which applies its nested directives and drops its nulls.
    fn fresh(&self, value: Value, path: &str) -> Result<Option<Value>, PatchError> {
        Ok(match value {
            Value::Object(map) if map.contains_key(DIRECTIVE_MARKER) => None,
            Value::Object(map) => Some(Value::Object(self.fresh_map(map, path)?)),
            Value::Array(list) => Some(Value::Array(self.fresh_list(list, path)?)),
            other => Some(other),
        })
    }

    fn fresh_map(&self, map: Map<String, Value>, path: &str) -> Result<Map<String, Value>, PatchError> {
        self.merge_map(Map::new(), map, path)
    }

    /// A list taken from the patch as it is: directive elements are dropped, maps cleaned.
    fn fresh_list(&self, list: Vec<Value>, path: &str) -> Result<Vec<Value>, PatchError> {
        let mut out = Vec::with_capacity(list.len());
        for v in list {
            match v {
                Value::Object(map) if map.contains_key(DIRECTIVE_MARKER) => {}
                Value::Object(map) => out.push(Value::Object(self.fresh_map(map, path)?)),
                other => out.push(other),
            }
        }
        Ok(out)
    }
}

/// applyRetainKeysDirective: drops the original's keys that `$retainKeys` does not list, after
/// checking that the patch only sets listed keys.
fn apply_retain_keys_directive(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::BadRequest(ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS.to_string()));
    };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) || k.starts_with(SET_ELEMENT_ORDER_PREFIX) {
            continue;
        }
        if !listed(k) {
            return Err(PatchError::BadRequest(ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS.to_string()));
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// validatePatchWithSetOrderList: the patch list must name its elements in the same relative
/// order as `$setElementOrder`, and only elements it lists (deletions aside).
fn validate_patch_with_set_order_list(
    patch_list: &[Value],
    order: &[Value],
    merge_key: &str,
) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = if merge_key.is_empty() {
        patch_list.iter().collect()
    } else {
        let mut kept = Vec::new();
        for v in patch_list {
            let Some(map) = v.as_object() else {
                return Err(bad_arg_type_map(v));
            };
            if map.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some(DELETE_DIRECTIVE) {
                kept.push(v);
            }
        }
        kept
    };
    let (mut patch_index, mut order_index) = (0, 0);
    while patch_index < non_delete.len() && order_index < order.len() {
        if non_delete[patch_index].get(DIRECTIVE_MARKER).is_some() {
            patch_index += 1;
            continue;
        }
        if merge_key_value_equal(non_delete[patch_index], &order[order_index], merge_key)? {
            patch_index += 1;
        }
        order_index += 1;
    }
    if patch_index < non_delete.len() && order_index >= order.len() {
        return Err(PatchError::Internal(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER_PREFIX} list:\n{}\n",
            go_value(&Value::Array(patch_list.to_vec())),
            go_value(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

fn merge_key_value_equal(left: &Value, right: &Value, merge_key: &str) -> Result<bool, PatchError> {
    if merge_key.is_empty() {
        return Ok(left == right);
    }
    let left = left.as_object().ok_or_else(|| bad_arg_type_map(left))?;
    let right = right.as_object().ok_or_else(|| bad_arg_type_map(right))?;
    let l = left.get(merge_key).ok_or_else(|| no_merge_key(left, merge_key))?;
    let r = right.get(merge_key).ok_or_else(|| no_merge_key(right, merge_key))?;
    Ok(l == r)
}

/// sliceElementType, reduced to what merging needs: whether the elements are maps.
fn slice_element_is_map(original: &[Value], patch: &[Value]) -> Result<bool, PatchError> {
    let mut first: Option<&Value> = None;
    for v in original.iter().chain(patch) {
        match first {
            None => {
                if v.is_array() {
                    return Err(PatchError::Unprocessable(ERR_NO_LIST_OF_LISTS.to_string()));
                }
                first = Some(v);
            }
            Some(f) if go_type(f) != go_type(v) => {
                return Err(PatchError::Internal(format!(
                    "list element types are not identical: [{} {}]",
                    go_value(&Value::Array(original.to_vec())),
                    go_value(&Value::Array(patch.to_vec()))
                )));
            }
            Some(_) => {}
        }
    }
    Ok(first.is_some_and(Value::is_object))
}

/// Splits `items` into those present in `by` (by merge key, or by value for primitives) and
/// the rest, keeping their order.
fn partition(items: Vec<Value>, by: &[Value], merge_key: &str) -> (Vec<Value>, Vec<Value>) {
    items.into_iter().partition(|v| {
        if merge_key.is_empty() {
            by.contains(v)
        } else {
            match v.get(merge_key) {
                Some(key) => by.iter().any(|b| b.get(merge_key) == Some(key)),
                None => false,
            }
        }
    })
}

/// The position of `value` in `list`, comparing merge-key values for maps and whole values
/// otherwise.
fn index_of(list: &[Value], value: &Value, merge_key: &str, is_map: bool) -> Option<usize> {
    if is_map {
        let want = value.get(merge_key);
        list.iter().position(|v| v.get(merge_key) == want)
    } else {
        list.iter().position(|v| v == value)
    }
}

/// normalizeElementOrder: sorts the patch items by the patch order and the server-only items
/// by the live order, then interleaves them.
fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    is_map: bool,
) -> Vec<Value> {
    let patch = normalize_slice_order(patch, patch_order, merge_key, is_map);
    let server_only = normalize_slice_order(server_only, server_order, merge_key, is_map);
    merge_sorted_slice(server_only, patch, server_order, merge_key, is_map)
}

fn normalize_slice_order(mut to_sort: Vec<Value>, order: &[Value], merge_key: &str, is_map: bool) -> Vec<Value> {
    to_sort.sort_by_key(|v| index_of(order, v, merge_key, is_map).unwrap_or(usize::MAX));
    to_sort
}

/// mergeSortedSlice: inserts each item of `left` into `right` before the first item of `right`
/// that comes after it in the live order, keeping the relative order of both lists.
fn merge_sorted_slice(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: &str,
    is_map: bool,
) -> Vec<Value> {
    let size = left.len() + right.len();
    let mut out = Vec::with_capacity(size);
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    for _ in 0..size {
        let take_left = match (left.peek(), right.peek()) {
            (Some(_), None) => true,
            (None, _) => false,
            (Some(l), Some(r)) => {
                match (index_of(server_order, l, merge_key, is_map), index_of(server_order, r, merge_key, is_map)) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// extractKey: `$prefix/field` to `field`.
fn extract_key(s: &str, prefix: &str) -> Result<String, PatchError> {
    match s.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest.to_string()),
        _ => Err(PatchError::BadRequest(
            if prefix == DELETE_FROM_PRIMITIVE_LIST_PREFIX {
                ERR_BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST
            } else {
                ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST
            }
            .to_string(),
        )),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// mergepatch.ErrNoMergeKey
fn no_merge_key(map: &Map<String, Value>, merge_key: &str) -> PatchError {
    PatchError::Internal(format!(
        "map: {} does not contain declared merge key: {merge_key}",
        go_value(&Value::Object(map.clone()))
    ))
}

/// mergepatch.ErrBadPatchType
fn bad_patch_type(directive: &Value, map: &Map<String, Value>) -> PatchError {
    let directive = match directive {
        Value::String(s) => s.clone(),
        other => format!("%!s({}={})", go_type(other), go_value(other)),
    };
    PatchError::Internal(format!("unknown patch type: {directive} in map: {}", go_value(&Value::Object(map.clone()))))
}

/// mergepatch.ErrBadArgType for an expected list.
fn bad_arg_type_list(actual: Option<&Value>) -> PatchError {
    let actual = actual.map_or("%!s(<nil>)", go_type);
    PatchError::Internal(format!("expected a []interface {{}}, but received a {actual}"))
}

/// mergepatch.ErrBadArgType for an expected map.
fn bad_arg_type_map(actual: &Value) -> PatchError {
    PatchError::Internal(format!("expected a map[string]interface {{}}, but received a {}", go_type(actual)))
}

/// The Go type a decoded JSON value has on the server (integers decode to int64).
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "%!s(<nil>)",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// What encoding/json calls a value's type in an UnmarshalTypeError.
pub(super) fn json_type_word(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Renders a decoded JSON value the way Go's `%v` does (`map[k:v]`, `[a b]`, `<nil>`).
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(list) => format!("[{}]", list.iter().map(go_value).collect::<Vec<_>>().join(" ")),
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries.into_iter().map(|(k, v)| format!("{k}:{}", go_value(v))).collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;
    use serde_json::json;

    fn smp(kind: (&str, &str), original: Value, patch: Value) -> Result<Value, PatchError> {
        strategic_merge_patch(&original, &patch, by_kind(kind.0, kind.1).unwrap())
    }

    const POD: (&str, &str) = ("", "Pod");
    const SVC: (&str, &str) = ("", "Service");
    const DEPLOY: (&str, &str) = ("apps", "Deployment");

    struct Case {
        name: &'static str,
        kind: (&'static str, &'static str),
        original: Value,
        patch: Value,
        want: Value,
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "labels added and removed with null",
                kind: POD,
                original: json!({"metadata": {"name": "p", "labels": {"app": "web", "tier": "fe"}}}),
                patch: json!({"metadata": {"labels": {"tier": null, "env": "prod", "gone": null}}}),
                want: json!({"metadata": {"name": "p", "labels": {"app": "web", "env": "prod"}}}),
            },
            Case {
                name: "containers merged by name",
                kind: POD,
                original: json!({"spec": {"containers": [
                    {"name": "app", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
                    {"name": "sidecar", "image": "envoy"}]}}),
                patch: json!({"spec": {"containers": [{"name": "app", "image": "nginx:1.27"}, {"name": "new", "image": "busybox"}]}}),
                // Like upstream, elements the patch names come before those only the server has.
                want: json!({"spec": {"containers": [
                    {"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}]},
                    {"name": "new", "image": "busybox"},
                    {"name": "sidecar", "image": "envoy"}]}}),
            },
            Case {
                name: "env entry deleted with $patch: delete",
                kind: DEPLOY,
                original: json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [
                    {"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}]}]}}}}),
                patch: json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [
                    {"name": "B", "$patch": "delete"}, {"name": "C", "value": "33"}]}]}}}}),
                want: json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [
                    {"name": "A", "value": "1"}, {"name": "C", "value": "33"}]}]}}}}),
            },
            Case {
                name: "service ports merged by port",
                kind: SVC,
                original: json!({"spec": {"type": "ClusterIP", "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                    {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}]}}),
                patch: json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}, {"name": "metrics", "port": 9090}]}}),
                want: json!({"spec": {"type": "ClusterIP", "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                    {"name": "https", "port": 443, "targetPort": 9443, "protocol": "TCP"},
                    {"name": "metrics", "port": 9090}]}}),
            },
            Case {
                name: "finalizers merge as a set",
                kind: POD,
                original: json!({"metadata": {"finalizers": ["a.io/x", "b.io/y"]}}),
                patch: json!({"metadata": {"finalizers": ["c.io/z", "a.io/x"]}}),
                want: json!({"metadata": {"finalizers": ["c.io/z", "a.io/x", "b.io/y"]}}),
            },
            Case {
                name: "finalizer removed with $deleteFromPrimitiveList",
                kind: POD,
                original: json!({"metadata": {"finalizers": ["a.io/x", "b.io/y", "c.io/z"]}}),
                patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b.io/y", "not.there/q"]}}),
                want: json!({"metadata": {"finalizers": ["a.io/x", "c.io/z"]}}),
            },
            Case {
                name: "non-merge list replaced",
                kind: POD,
                original: json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists"}], "containers": [
                    {"name": "app", "args": ["--x", "--y"]}]}}),
                patch: json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}], "containers": [
                    {"name": "app", "args": ["--z"]}]}}),
                want: json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}], "containers": [
                    {"name": "app", "args": ["--z"]}]}}),
            },
            Case {
                name: "kubectl apply patch with $setElementOrder",
                kind: DEPLOY,
                original: json!({"metadata": {"name": "web", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
                    "spec": {"replicas": 1, "template": {"spec": {"containers": [
                        {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
                        {"name": "b", "image": "b:1"}]}}}}),
                patch: json!({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}"}},
                    "spec": {"replicas": 3, "template": {"spec": {
                        "$setElementOrder/containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}],
                        "containers": [
                            {"name": "c", "image": "c:1"},
                            {"$setElementOrder/env": [{"name": "Y"}, {"name": "X"}], "name": "a", "image": "a:2"}]}}}}),
                want: json!({"metadata": {"name": "web", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}"}},
                    "spec": {"replicas": 3, "template": {"spec": {"containers": [
                        {"name": "b", "image": "b:1"},
                        {"name": "c", "image": "c:1"},
                        {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}]}]}}}}),
            },
            Case {
                name: "kubectl apply removing a container: $setElementOrder plus $patch delete",
                kind: POD,
                original: json!({"spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]}}),
                patch: json!({"spec": {"$setElementOrder/containers": [{"name": "b"}],
                    "containers": [{"$patch": "delete", "name": "a"}]}}),
                want: json!({"spec": {"containers": [{"name": "b", "image": "b"}]}}),
            },
            Case {
                name: "$setElementOrder on finalizers with deletion",
                kind: POD,
                original: json!({"metadata": {"finalizers": ["a.io/a", "b.io/b"]}}),
                patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.io/a"],
                    "$setElementOrder/finalizers": ["b.io/b", "c.io/c"], "finalizers": ["c.io/c"]}}),
                want: json!({"metadata": {"finalizers": ["b.io/b", "c.io/c"]}}),
            },
            Case {
                name: "$patch: replace on a map",
                kind: POD,
                original: json!({"spec": {"nodeSelector": {"a": "1", "b": "2"}}}),
                patch: json!({"spec": {"nodeSelector": {"$patch": "replace", "c": "3"}}}),
                want: json!({"spec": {"nodeSelector": {"c": "3"}}}),
            },
            Case {
                name: "$patch: replace in a merge list",
                kind: POD,
                original: json!({"spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]}}),
                patch: json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "c"}]}}),
                want: json!({"spec": {"containers": [{"name": "c", "image": "c"}]}}),
            },
            Case {
                name: "$patch: delete on a map empties it",
                kind: DEPLOY,
                original: json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
                patch: json!({"spec": {"strategy": {"$patch": "delete"}}}),
                want: json!({"spec": {"strategy": {}}}),
            },
            Case {
                name: "directive maps where the original has nothing are dropped, like upstream",
                kind: POD,
                original: json!({"spec": {"containers": []}}),
                patch: json!({"spec": {"nodeSelector": {"$patch": "replace", "a": "1"}, "affinity": {"$patch": "delete"},
                    "containers": {"$patch": "replace"}}}),
                want: json!({"spec": {}}),
            },
            Case {
                name: "$retainKeys drops unlisted keys",
                kind: DEPLOY,
                original: json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
                patch: json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
                want: json!({"spec": {"strategy": {"type": "Recreate"}}}),
            },
            Case {
                name: "new values are cleaned of nulls and directives",
                kind: POD,
                original: json!({"metadata": {"name": "p"}}),
                patch: json!({"metadata": {"labels": {"a": "1", "b": null}},
                    "spec": {"containers": [{"name": "x", "env": [{"name": "E", "$patch": "delete"}]}]}}),
                want: json!({"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"containers": [{"name": "x", "env": []}]}}),
            },
            Case {
                name: "owner references merged by uid",
                kind: POD,
                original: json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}),
                patch: json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}, {"uid": "2", "name": "b"}]}}),
                want: json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a", "controller": true}, {"uid": "2", "name": "b"}]}}),
            },
            Case {
                name: "status conditions merged by type",
                kind: DEPLOY,
                original: json!({"status": {"conditions": [{"type": "Available", "status": "False"}, {"type": "Progressing", "status": "True"}]}}),
                patch: json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}}),
                want: json!({"status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]}}),
            },
            Case {
                name: "node addresses merged by type",
                kind: ("", "Node"),
                original: json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}]}}),
                patch: json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}}),
                want: json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}, {"type": "Hostname", "address": "n1"}]}}),
            },
            Case {
                name: "deleting absent keys is fine",
                kind: POD,
                original: json!({"metadata": {"name": "p"}}),
                patch: json!({"metadata": {"annotations": null, "$deleteFromPrimitiveList/finalizers": ["x"]}, "status": null}),
                want: json!({"metadata": {"name": "p"}}),
            },
            Case {
                name: "unknown kinds still merge maps and replace lists",
                kind: ("", "ConfigMap"),
                original: json!({"data": {"a": "1"}, "metadata": {"finalizers": ["x.io/a"]}}),
                patch: json!({"data": {"b": "2"}, "metadata": {"finalizers": ["x.io/b"]}}),
                want: json!({"data": {"a": "1", "b": "2"}, "metadata": {"finalizers": ["x.io/b", "x.io/a"]}}),
            },
        ]
    }

    #[test]
    fn table() {
        for case in cases() {
            let got = smp(case.kind, case.original, case.patch).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            assert_eq!(got, case.want, "{}", case.name);
        }
    }

    #[test]
    fn errors_carry_upstream_messages_and_codes() {
        let err = smp(
            POD,
            json!({"spec": {"containers": [{"name": "a"}]}}),
            json!({"spec": {"containers": [{"image": "x"}]}}),
        )
        .unwrap_err();
        assert_eq!(err, PatchError::Internal("map: map[image:x] does not contain declared merge key: name".into()));
        assert_eq!(err.status_code(), 500);

        let err = smp(POD, json!({"metadata": {}}), json!({"metadata": {"$patch": "bogus"}})).unwrap_err();
        assert_eq!(err.to_string(), "unknown patch type: bogus in map: map[$patch:bogus]");

        let err = smp(
            DEPLOY,
            json!({"spec": {"strategy": {}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
        )
        .unwrap_err();
        assert_eq!(err, PatchError::BadRequest("invalid patch format of retainKeys".into()));
        assert_eq!(err.status_code(), 400);

        let err = smp(POD, json!({}), json!([1])).unwrap_err();
        assert_eq!(err.to_string(), "json: cannot unmarshal array into Go value of type map[string]interface {}");

        let err = smp(POD, json!({"metadata": {"finalizers": [["a"]]}}), json!({"metadata": {"finalizers": [["b"]]}}))
            .unwrap_err();
        assert_eq!(err.status_code(), 422);

        let err = smp(
            POD,
            json!({"spec": {"containers": [{"name": "a"}]}}),
            json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "b"}]}}),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("The order in patch list:"), "{err}");

        let err = smp(POD, json!({}), json!({"metadata": {"$deleteFromPrimitiveListfinalizers": []}})).unwrap_err();
        assert_eq!(err, PatchError::BadRequest("invalid patch format of primitive list".into()));
    }

    #[test]
    fn null_patch_changes_nothing() {
        let original = json!({"metadata": {"name": "a"}});
        assert_eq!(smp(POD, original.clone(), Value::Null).unwrap(), original);
    }
}

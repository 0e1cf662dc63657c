//! Reading and writing wire JSON (`serde_json::Value`) by field and path, the way Go reads
//! and writes its structs: a value field that is absent or `null` reads as its zero value, a
//! pointer field is "set" when present and not `null`, and a struct field is created on write.

use serde_json::{Map, Value};

static NULL: Value = Value::Null;

// ---- reading -------------------------------------------------------------------------------

/// The value at `key`, or `null`, so that reads chain: `str_of(child(obj, "spec"), "type")`.
pub fn child<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&NULL)
}

/// An object's `metadata`, or `null`.
pub fn metadata(obj: &Value) -> &Value {
    child(obj, "metadata")
}

/// An object's `spec`, or `null`.
pub fn spec(obj: &Value) -> &Value {
    child(obj, "spec")
}

/// A set field: present and not `null` (a Go pointer that is not nil).
pub fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|v| !v.is_null())
}

/// A Go string value field: `""` when absent, `null` or not a string.
pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A string field, when it is one.
pub fn opt_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A Go `*string` field: `Some` when set (a value that is not a string reads as `""`).
pub(crate) fn ptr_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    field(v, key).map(|s| s.as_str().unwrap_or(""))
}

/// An integer field, when it is one.
pub(crate) fn opt_int(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

/// A Go integer value field: 0 when absent or not an integer.
pub(crate) fn int_of(v: &Value, key: &str) -> i64 {
    opt_int(v, key).unwrap_or(0)
}

/// The items of a list field; none when absent or not a list.
pub fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// A Go `[]string` field (an item that is not a string reads as `""`).
pub fn strings<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    list(v, key).iter().map(|s| s.as_str().unwrap_or("")).collect()
}

/// The string items of a list, owned (items that are not strings are skipped).
pub fn string_items(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// The object at `key`, when it is one.
pub fn object<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

/// The string at a JSON pointer (`/spec/type`): `""` when absent or not a string.
pub(crate) fn pointer_str<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The bool at a JSON pointer: `false` when absent or not a bool.
pub(crate) fn pointer_bool(v: &Value, ptr: &str) -> bool {
    v.pointer(ptr).and_then(Value::as_bool).unwrap_or(false)
}

// ---- writing -------------------------------------------------------------------------------

/// Go's `if x == nil`: the field is absent or `null`.
pub(crate) fn is_nil(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).is_none_or(Value::is_null)
}

/// Go's `if x == ""` / `if x == 0`: the field is absent, `null`, an empty string or zero.
pub(crate) fn is_zero(map: &Map<String, Value>, key: &str) -> bool {
    match map.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(_) => false,
    }
}

/// Sets a pointer field that is absent or `null`.
pub(crate) fn set_if_nil(map: &mut Map<String, Value>, key: &str, value: Value) {
    if is_nil(map, key) {
        map.insert(key.to_string(), value);
    }
}

/// Sets a value field that is absent, `null` or zero.
pub(crate) fn set_if_empty(map: &mut Map<String, Value>, key: &str, value: Value) {
    if is_zero(map, key) {
        map.insert(key.to_string(), value);
    }
}

/// The object at `key`, created (as `{}`) when absent or not an object, like a Go struct
/// value field.
pub(crate) fn object_mut<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map.entry(key.to_string()).or_insert(Value::Null);
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().expect("just made an object")
}

/// [`object_mut`] on an object held as a `Value` (`null` becomes an object).
///
/// Panics if `v` is neither an object nor `null`.
pub fn value_object_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if v.is_null() {
        *v = Value::Object(Map::new());
    }
    object_mut(v.as_object_mut().expect("an object"), key)
}

/// The object at `key`, if there is one (a Go pointer field that is set).
pub(crate) fn object_if<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// The objects of the list at `key`.
pub(crate) fn items_mut<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    map.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten().filter_map(Value::as_object_mut)
}

/// Sets a Go string value field; the empty string removes the key (`omitempty`), keeping the
/// order of the others.
pub(crate) fn set_str(map: &mut Map<String, Value>, key: &str, value: &str) {
    if value.is_empty() {
        map.shift_remove(key);
    } else {
        map.insert(key.to_string(), Value::from(value));
    }
}

/// Sets a Go `[]string` field; `None` removes the key, keeping the order of the others.
pub(crate) fn set_strings(map: &mut Map<String, Value>, key: &str, value: Option<Vec<&str>>) {
    match value {
        Some(items) => map.insert(key.to_string(), Value::from(items)),
        None => map.shift_remove(key),
    };
}

/// Sets `key` of an object (a no-op on anything else).
pub fn set(v: &mut Value, key: &str, value: Value) {
    if let Some(m) = v.as_object_mut() {
        m.insert(key.to_string(), value);
    }
}

/// Removes `key` of an object, returning what was there.
pub fn remove(v: &mut Value, key: &str) -> Option<Value> {
    v.as_object_mut().and_then(|m| m.remove(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_and_null_fields_read_as_go_zero_values() {
        let v = json!({"a": null, "s": "x", "n": 3, "l": ["p", 1]});
        assert_eq!((str_of(&v, "a"), str_of(&v, "s"), str_of(&v, "zz")), ("", "x", ""));
        assert_eq!((field(&v, "a"), ptr_str(&v, "s"), ptr_str(&v, "n")), (None, Some("x"), Some("")));
        assert_eq!((int_of(&v, "n"), int_of(&v, "s")), (3, 0));
        assert_eq!(strings(&v, "l"), ["p", ""]);
        assert_eq!(string_items(v.get("l")), ["p"]);
        assert_eq!(str_of(child(child(&v, "no"), "deeper"), "x"), "");
    }

    #[test]
    fn defaults_fill_only_unset_fields() {
        let mut m = json!({"a": "", "b": 0, "c": null, "d": "kept"}).as_object().unwrap().clone();
        for k in ["a", "b", "d", "e"] {
            set_if_empty(&mut m, k, json!("x"));
        }
        set_if_nil(&mut m, "c", json!(1));
        assert_eq!(Value::Object(m), json!({"a": "x", "b": "x", "c": 1, "d": "kept", "e": "x"}));
    }
}

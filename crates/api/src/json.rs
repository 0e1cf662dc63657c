//! Reading and writing wire JSON (`serde_json::Value`) by field and path, the way Go reads
//! its structs: a value field that is absent or `null` reads as its zero value.

use serde_json::Value;

/// The string at a JSON pointer (`/spec/type`), `""` when absent or not a string.
pub fn pointer_str<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The bool at a JSON pointer, `false` when absent or not a bool.
pub fn pointer_bool(v: &Value, ptr: &str) -> bool {
    v.pointer(ptr).and_then(Value::as_bool).unwrap_or(false)
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

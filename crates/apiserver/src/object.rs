//! Accessors for the metadata of objects held as wire JSON.

use api::json;
use serde_json::{Map, Value, json};

/// The `metadata` object, created when absent or not an object.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    json::value_object_mut(obj, "metadata")
}

/// A metadata string that is set and not empty.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    json::opt_str(json::metadata(obj), field).filter(|s| !s.is_empty())
}

pub fn name(obj: &Value) -> Option<&str> {
    meta_str(obj, "name")
}

pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace")
}

pub fn uid(obj: &Value) -> Option<&str> {
    meta_str(obj, "uid")
}

pub fn deletion_timestamp(obj: &Value) -> Option<&str> {
    meta_str(obj, "deletionTimestamp")
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    json::string_items(json::metadata(obj).get("finalizers"))
}

pub fn set_finalizers(obj: &mut Value, finalizers: Vec<String>) {
    let m = meta_mut(obj);
    if finalizers.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(finalizers));
    }
}

pub fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    json::metadata(obj)
        .get("labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

/// Whether an owner reference names a kind this server serves.
fn serves_owner(r: &Value) -> bool {
    let (group, _) = api::resources::split_api_version(json::str_of(r, "apiVersion"));
    api::resources::by_kind(group, json::str_of(r, "kind")).is_some()
}

/// UIDs this object names as owners, among owners of kinds this server serves.
pub fn owner_uids(obj: &Value) -> Vec<String> {
    json::list(json::metadata(obj), "ownerReferences")
        .iter()
        .filter(|r| serves_owner(r))
        .filter_map(|r| json::opt_str(r, "uid").map(String::from))
        .collect()
}

pub fn set_resource_version(obj: &mut Value, rv: u64) {
    meta_mut(obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
}

pub fn resource_version(obj: &Value) -> Option<&str> {
    meta_str(obj, "resourceVersion")
}

/// RFC 3339 in seconds, as metav1.Time serialises.
pub fn now_rfc3339() -> String {
    timestamp_rfc3339(jiff::Timestamp::now())
}

pub fn timestamp_rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The object with `metadata.resourceVersion` removed, serialised for storage; the
/// revision is the store's, added back on every read.
pub fn to_stored_bytes(obj: &Value) -> bytes::Bytes {
    let mut copy = obj.clone();
    meta_mut(&mut copy).remove("resourceVersion");
    bytes::Bytes::from(serde_json::to_vec(&copy).expect("JSON values serialise"))
}

/// Parses a stored value and stamps its revision.
pub fn from_stored(value: &[u8], revision: u64) -> Result<Value, serde_json::Error> {
    let mut obj: Value = serde_json::from_slice(value)?;
    set_resource_version(&mut obj, revision);
    Ok(obj)
}

/// Whether an owner reference names a kind this server does not serve; such an owner can't
/// be proven absent, so the garbage collector never deletes its dependents.
pub fn has_unserved_owner(obj: &Value) -> bool {
    json::list(json::metadata(obj), "ownerReferences").iter().any(|r| !serves_owner(r))
}

/// Inserts `"resourceVersion":"<rv>"` into the top-level `metadata` object of stored JSON
/// without parsing it into a value: the fast path for large lists. Returns `None` if the
/// bytes have no top-level metadata object (the caller then parses).
pub fn stamp_resource_version(stored: &[u8], rv: u64) -> Option<Vec<u8>> {
    let at = top_level_metadata_body(stored)?;
    let rest = &stored[at..];
    let empty = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let mut out = Vec::with_capacity(stored.len() + 32);
    out.extend_from_slice(&stored[..at]);
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(rv.to_string().as_bytes());
    out.push(b'"');
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    Some(out)
}

/// The offset just after the `{` that opens the top-level `"metadata"` value.
fn top_level_metadata_body(json: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    // Whether the string that just ended at depth 1 was the key "metadata".
    let mut last_key_metadata = false;
    while i < json.len() {
        match json[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < json.len() && json[i] != b'"' {
                    if json[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= json.len() {
                    return None;
                }
                last_key_metadata = depth == 1 && &json[start..i] == b"metadata";
            }
            b'{' | b'[' => {
                if depth == 1 && json[i] == b'{' && last_key_metadata {
                    return Some(i + 1);
                }
                depth += 1;
                last_key_metadata = false;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                last_key_metadata = false;
            }
            b':' => {}
            b',' => last_key_metadata = false,
            _ => {
                if !json[i].is_ascii_whitespace() {
                    last_key_metadata = false;
                }
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamping_matches_parsing_and_setting() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"metadata": "{\"x\"", "k": "\"metadata\":{"}, "metadata": {"name": "a", "labels": {"metadata": "y"}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"metadata": {"labels": {"a": "b"}}}}}),
            json!({"kind": "X", "spec": {"metadata": {}}, "metadata": {}}),
        ];
        for obj in objects {
            let stored = to_stored_bytes(&obj);
            let fast: Value = serde_json::from_slice(&stamp_resource_version(&stored, 42).unwrap()).unwrap();
            assert_eq!(fast, from_stored(&stored, 42).unwrap());
        }
    }

    #[test]
    fn bytes_without_top_level_metadata_are_left_to_the_parser() {
        assert!(stamp_resource_version(br#"{"spec":{"metadata":{}}}"#, 1).is_none());
        assert!(stamp_resource_version(br#"{"metadata":"#, 1).is_none());
    }
}

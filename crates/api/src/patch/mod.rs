//! The three patch types kube-apiserver accepts on wire JSON: JSON merge patch (RFC 7386),
//! JSON patch (RFC 6902) and strategic merge patch. Server-side apply is not here.

pub mod merge_keys;
mod strategic;

use serde_json::Value;

pub use strategic::strategic_merge_patch;

/// kube-apiserver's limit on the operations of one JSON patch.
pub(crate) const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Why a patch could not be applied, classified the way kube-apiserver's patch handler
/// classifies it; [`PatchError::status_code`] gives the HTTP status it answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document is malformed (400 BadRequest).
    #[error("{0}")]
    BadRequest(String),
    /// The patch is well formed but cannot be applied to this object (422, reason unset).
    #[error("{0}")]
    Unprocessable(String),
    /// A strategic-merge failure kube-apiserver does not classify; it surfaces as a 500
    /// InternalError (`Internal error occurred: <message>`), e.g. a missing merge key.
    #[error("{0}")]
    Internal(String),
    /// More than [`MAX_JSON_PATCH_OPERATIONS`] operations (413 RequestEntityTooLarge).
    #[error("The allowed maximum operations in a JSON patch is {max}, got {got}")]
    TooManyOperations { max: usize, got: usize },
}

impl PatchError {
    /// The HTTP status kube-apiserver answers this error with.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::BadRequest(_) => 400,
            PatchError::Unprocessable(_) => 422,
            PatchError::Internal(_) => 500,
            PatchError::TooManyOperations { .. } => 413,
        }
    }
}

/// Applies a JSON merge patch (RFC 7386): objects merge recursively, `null` deletes, anything
/// else (including arrays) replaces.
pub fn merge_patch(original: &Value, patch: &Value) -> Value {
    let mut doc = original.clone();
    json_patch::merge(&mut doc, patch);
    doc
}

/// Applies a JSON patch (RFC 6902). The patch must be an array of operations. Error messages
/// follow the evanphx/json-patch wording kube-apiserver passes through.
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(ops) = patch else {
        return Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            strategic::json_type_word(patch)
        )));
    };
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations { max: MAX_JSON_PATCH_OPERATIONS, got: ops.len() });
    }
    for op in ops {
        if !op.is_object() {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                strategic::json_type_word(op)
            )));
        }
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("unknown");
        if !matches!(kind, "add" | "remove" | "replace" | "move" | "copy" | "test") {
            return Err(PatchError::Unprocessable(format!("Unexpected kind: {kind}")));
        }
    }
    let parsed: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::Unprocessable(e.to_string()))?;
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &parsed.0).map_err(|e| {
        let op = &parsed.0[e.operation];
        let path = e.path.to_string();
        PatchError::Unprocessable(match (&e.kind, op) {
            (json_patch::PatchErrorKind::TestFailed, _) => format!("testing value {path} failed: test failed"),
            (json_patch::PatchErrorKind::InvalidFromPointer, json_patch::PatchOperation::Move(m)) => {
                format!("move operation does not apply: doc is missing from path: \"{}\": missing value", m.from)
            }
            (json_patch::PatchErrorKind::InvalidFromPointer, json_patch::PatchOperation::Copy(c)) => {
                format!("copy operation does not apply: doc is missing from path: \"{}\": missing value", c.from)
            }
            (json_patch::PatchErrorKind::InvalidPointer, json_patch::PatchOperation::Replace(_)) => {
                format!("replace operation does not apply: doc is missing key: {path}: missing value")
            }
            (json_patch::PatchErrorKind::InvalidPointer, json_patch::PatchOperation::Remove(_)) => {
                format!("remove operation does not apply: doc is missing path: \"{path}\": missing value")
            }
            (json_patch::PatchErrorKind::InvalidPointer, json_patch::PatchOperation::Add(_)) => {
                format!("add operation does not apply: doc is missing path: \"{path}\": missing value")
            }
            _ => e.to_string(),
        })
    })?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let original = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"ports": [1, 2]}});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"ports": [3]}});
        assert_eq!(
            merge_patch(&original, &patch),
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"ports": [3]}})
        );
    }

    #[test]
    fn json_patch_applies_operations() {
        let original = json!({"spec": {"replicas": 1, "template": {"metadata": {}}}});
        let patch = json!([
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/spec/template/metadata/labels", "value": {"app": "x"}},
            {"op": "test", "path": "/spec/replicas", "value": 3}
        ]);
        assert_eq!(
            json_patch(&original, &patch).unwrap(),
            json!({"spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "x"}}}}})
        );
    }

    #[test]
    fn json_patch_errors() {
        let doc = json!({"a": 1});
        let err = json_patch(&doc, &json!({"op": "add"})).unwrap_err();
        assert_eq!(err.to_string(), "json: cannot unmarshal object into Go value of type jsonpatch.Patch");
        assert_eq!(err.status_code(), 400);

        let err = json_patch(&doc, &json!([{"op": "frob", "path": "/a"}])).unwrap_err();
        assert_eq!(err, PatchError::Unprocessable("Unexpected kind: frob".into()));

        let err = json_patch(&doc, &json!([{"op": "remove", "path": "/b"}])).unwrap_err();
        assert_eq!(err.to_string(), "remove operation does not apply: doc is missing path: \"/b\": missing value");
        assert_eq!(err.status_code(), 422);

        let err = json_patch(&doc, &json!([{"op": "test", "path": "/a", "value": 2}])).unwrap_err();
        assert_eq!(err.to_string(), "testing value /a failed: test failed");

        let many = Value::Array(vec![json!({"op": "test", "path": "/a", "value": 1}); 10_001]);
        assert_eq!(json_patch(&doc, &many).unwrap_err().status_code(), 413);
    }
}

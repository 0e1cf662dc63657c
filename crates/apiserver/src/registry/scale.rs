//! The `/scale` subresource of Deployments, ReplicaSets, StatefulSets and ReplicationControllers
//! (autoscaling/v1 Scale).

use super::write::{PatchType, WriteOptions, Written, apply_patch};
use super::{MODIFIED, Registry, Subresource, conflict, decode};
use crate::error::{ApiError, ApiResult};
use crate::object;
use api::ResourceType;
use api::json;
use serde_json::{Value, json};

impl Registry {
    pub async fn get_scale(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        let obj = self.get(rt, ns, name).await?;
        Ok(scale_of(&obj))
    }

    pub(crate) async fn update_scale(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        scale: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let kv = self.get_kv(rt, ns, name).await?;
        if let Some(rv) = object::resource_version(&scale)
            && rv.parse::<u64>().ok() != Some(kv.mod_revision)
        {
            return Err(conflict(rt, name, MODIFIED));
        }
        let old = decode(&kv)?;
        self.write_replicas(rt, ns, name, &old, kv.mod_revision, &scale, opts).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn patch_scale(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        old: &Value,
        old_rev: u64,
        patch_type: PatchType,
        patch: &Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let scale = scale_of(old);
        // A Scale has no merge keys anywhere, so a plain merge serves for the strategic flavour.
        let patched = match patch_type {
            PatchType::Strategic | PatchType::Apply => api::patch::merge_patch(&scale, patch),
            other => apply_patch(rt, &scale, other, patch)?,
        };
        self.write_replicas(rt, ns, name, old, old_rev, &patched, opts).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_replicas(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        old: &Value,
        old_rev: u64,
        scale: &Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let replicas = scale.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::Invalid {
                kind: "Scale".into(),
                group: "autoscaling".into(),
                name: name.to_string(),
                causes: vec![api::FieldError::invalid("spec.replicas", replicas, "must be greater than or equal to 0")],
            });
        }
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(replicas);
        let new = super::write::merge_for_update(rt, old, new, Subresource::Main);
        let written = self.commit_update(rt, ns, name, old, old_rev, new, opts).await?;
        Ok(Written { object: scale_of(&written.object), warnings: written.warnings, created: false })
    }
}

/// The Scale view of a workload.
pub fn scale_of(obj: &Value) -> Value {
    let m = api::json::metadata(obj);
    let mut metadata = json!({});
    for f in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = m.get(f) {
            metadata[f] = v.clone();
        }
    }
    // A ReplicationController's selector is a plain label map.
    let selector = match obj.pointer("/spec/selector") {
        Some(map) if obj.get("kind").and_then(Value::as_str) == Some("ReplicationController") => {
            selector_string(&json!({"matchLabels": map}))
        }
        Some(sel) => selector_string(sel),
        None => String::new(),
    };
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

/// A metav1.LabelSelector in the string form `kubectl get -l` takes, requirements sorted by key.
pub fn selector_string(sel: &Value) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = json::str_of(e, "key");
            let mut values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            values.sort();
            let s = match json::str_of(e, "operator") {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                _ => continue,
            };
            reqs.push((key.to_string(), s));
        }
    }
    reqs.sort();
    reqs.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_selector_of_a_replication_controller_is_its_label_map() {
        let rc = json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"tier": "fe", "app": "web"}}, "status": {"replicas": 1}});
        let scale = scale_of(&rc);
        assert_eq!(scale["spec"]["replicas"], 2);
        assert_eq!(scale["status"], json!({"replicas": 1, "selector": "app=web,tier=fe"}));
        let rs = json!({"kind": "ReplicaSet", "spec": {"selector": {"matchLabels": {"app": "web"}}}});
        assert_eq!(scale_of(&rs)["status"]["selector"], "app=web");
    }
}

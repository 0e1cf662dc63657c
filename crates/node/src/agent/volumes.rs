//! The volumes pods use alongside Services: emptyDir, configMap, secret and downwardAPI,
//! materialized as directories under the pod's state directory and bind-mounted by the
//! container supervisor at each volumeMount's mountPath.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod};

use crate::sandbox::Mount;

/// What the agent fetched for the pod's configMap and secret volumes (data already decoded).
pub type Data = BTreeMap<String, BTreeMap<String, String>>;

/// The ConfigMaps and Secrets a pod's volumes name.
pub fn references(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (vec![], vec![]);
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        cms.extend(v.config_map.as_ref().map(|c| c.name.clone()));
        secrets.extend(v.secret.as_ref().and_then(|s| s.secret_name.clone()));
    }
    (cms, secrets)
}

fn write_items(dir: &Path, data: &BTreeMap<String, String>, items: Option<&Vec<KeyToPath>>) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let files: Vec<(String, &String)> = match items {
        Some(items) => items
            .iter()
            .map(|i| {
                data.get(&i.key)
                    .map(|v| (i.path.clone(), v))
                    .ok_or_else(|| format!("configured key {} not found", i.key))
            })
            .collect::<Result<_, _>>()?,
        None => data.iter().map(|(k, v)| (k.clone(), v)).collect(),
    };
    for (path, value) in files {
        if path.split('/').any(|part| part == ".." || part.is_empty()) {
            return Err(format!("invalid item path {path:?}"));
        }
        let target = dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        std::fs::write(&target, value).map_err(|e| format!("writing {}: {e}", target.display()))?;
    }
    Ok(())
}

/// Writes each volume of the pod under `root` (`<root>/<volume name>`); returns the directory
/// of each volume. An error names the volume, as kubelet's `FailedMount` events do.
pub fn prepare(
    pod: &Pod,
    root: &Path,
    config_maps: &Data,
    secrets: &Data,
) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut dirs = BTreeMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let dir = root.join(&v.name);
        let result = if v.empty_dir.is_some() {
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())
        } else if let Some(cm) = &v.config_map {
            match config_maps.get(&cm.name) {
                Some(data) => write_items(&dir, data, cm.items.as_ref()),
                None if cm.optional == Some(true) => std::fs::create_dir_all(&dir).map_err(|e| e.to_string()),
                None => Err(format!("configmap \"{}\" not found", cm.name)),
            }
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            match secrets.get(&name) {
                Some(data) => write_items(&dir, data, s.items.as_ref()),
                None if s.optional == Some(true) => std::fs::create_dir_all(&dir).map_err(|e| e.to_string()),
                None => Err(format!("secret \"{name}\" not found")),
            }
        } else if let Some(d) = &v.downward_api {
            let mut data = BTreeMap::new();
            let mut items = vec![];
            for item in d.items.iter().flatten() {
                let Some(f) = &item.field_ref else { continue };
                let value = match f.field_path.as_str() {
                    "metadata.name" => pod.metadata.name.clone().unwrap_or_default(),
                    "metadata.namespace" => pod.metadata.namespace.clone().unwrap_or_default(),
                    "metadata.uid" => pod.metadata.uid.clone().unwrap_or_default(),
                    "metadata.labels" => map_file(pod.metadata.labels.as_ref()),
                    "metadata.annotations" => map_file(pod.metadata.annotations.as_ref()),
                    other => return Err(format!("volume {}: unsupported fieldPath {other}", v.name)),
                };
                data.insert(item.path.clone(), value);
                items.push(KeyToPath { key: item.path.clone(), path: item.path.clone(), mode: None });
            }
            write_items(&dir, &data, Some(&items))
        } else {
            Err("unsupported volume type (emptyDir, configMap, secret and downwardAPI are)".to_owned())
        };
        result.map_err(|e| format!("MountVolume.SetUp failed for volume \"{}\": {e}", v.name))?;
        dirs.insert(v.name.clone(), dir);
    }
    Ok(dirs)
}

/// `key="value"` lines, as the downward API writes labels and annotations.
fn map_file(m: Option<&BTreeMap<String, String>>) -> String {
    m.into_iter().flatten().map(|(k, v)| format!("{k}={v:?}\n")).collect()
}

/// The container's mounts: each volumeMount of a prepared volume, with subPath.
pub fn mounts(c: &Container, dirs: &BTreeMap<String, PathBuf>) -> Result<Vec<Mount>, String> {
    let mut out = vec![];
    for m in c.volume_mounts.iter().flatten() {
        let dir = dirs.get(&m.name).ok_or_else(|| format!("volume {:?} is not declared by the pod", m.name))?;
        let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) if sub.split('/').any(|p| p == "..") => return Err(format!("invalid subPath {sub:?}")),
            Some(sub) => {
                let p = dir.join(sub);
                if !p.exists() {
                    std::fs::create_dir_all(&p).map_err(|e| format!("creating subPath {sub}: {e}"))?;
                }
                p
            }
            None => dir.clone(),
        };
        out.push(Mount { source, target: PathBuf::from(&m.mount_path), read_only: m.read_only.unwrap_or(false) });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volumes_are_written_and_mounted_where_the_container_asks() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "volumeMounts": [
                {"name": "cfg", "mountPath": "/etc/app", "readOnly": true},
                {"name": "scratch", "mountPath": "/tmp/scratch"},
                {"name": "info", "mountPath": "/etc/podinfo"}]}],
             "volumes": [
                {"name": "cfg", "configMap": {"name": "app", "items": [{"key": "conf", "path": "sub/app.conf"}]}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}
        }))
        .unwrap();
        let root = tempfile::tempdir().unwrap();
        let cms =
            Data::from([("app".into(), BTreeMap::from([("conf".into(), "x=1".into()), ("other".into(), "y".into())]))]);
        let dirs = prepare(&pod, root.path(), &cms, &Data::new()).unwrap();
        assert_eq!(std::fs::read_to_string(dirs["cfg"].join("sub/app.conf")).unwrap(), "x=1");
        assert!(!dirs["cfg"].join("other").exists(), "items select keys");
        assert_eq!(std::fs::read_to_string(dirs["info"].join("labels")).unwrap(), "app=\"web\"\n");
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let m = mounts(c, &dirs).unwrap();
        assert_eq!(m[0], Mount { source: dirs["cfg"].clone(), target: "/etc/app".into(), read_only: true });
        assert_eq!(m[1].target, PathBuf::from("/tmp/scratch"));
        let err = prepare(&pod, root.path(), &Data::new(), &Data::new()).unwrap_err();
        assert_eq!(err, "MountVolume.SetUp failed for volume \"cfg\": configmap \"app\" not found");
    }
}

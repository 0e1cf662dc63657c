//! Nodes: `printNode`, with the Ready condition, scheduling and role labels.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use serde_json::Value;

use super::{AGE, Column, NAME, age, column, decode, docs, name, wide};

pub(crate) const COLUMNS: &[Column] = &[
    NAME,
    column("Status", "string", docs::NODE_STATUS),
    column("Roles", "string", docs::NODE_ROLES),
    AGE,
    column("Version", "string", docs::NODE_KUBELET_VERSION),
    wide("Internal-IP", "string", docs::NODE_ADDRESSES),
    wide("External-IP", "string", docs::NODE_ADDRESSES),
    wide("OS-Image", "string", docs::NODE_OS_IMAGE),
    wide("Kernel-Version", "string", docs::NODE_KERNEL_VERSION),
    wide("Container-Runtime", "string", docs::NODE_CONTAINER_RUNTIME),
];

const ROLE_LABEL_PREFIX: &str = "node-role.kubernetes.io/";
const ROLE_LABEL: &str = "kubernetes.io/role";

pub(crate) fn cells(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let node: Node = decode(obj)?;
    let status = node.status.unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();

    // Only the Ready condition counts; the last one of that type wins, as in upstream's map.
    let mut state: Vec<&str> = match conditions.iter().rev().find(|c| c.type_ == "Ready") {
        Some(c) if c.status == "True" => vec!["Ready"],
        Some(_) => vec!["NotReady"],
        None => vec!["Unknown"],
    };
    if node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
        state.push("SchedulingDisabled");
    }

    let mut roles = BTreeSet::new();
    for (k, v) in node.metadata.labels.iter().flatten() {
        if let Some(role) = k.strip_prefix(ROLE_LABEL_PREFIX).filter(|r| !r.is_empty()) {
            roles.insert(role);
        } else if k == ROLE_LABEL && !v.is_empty() {
            roles.insert(v.as_str());
        }
    }
    let roles = if roles.is_empty() { "<none>".to_string() } else { roles.into_iter().collect::<Vec<_>>().join(",") };

    let addresses = status.addresses.unwrap_or_default();
    let address = |type_: &str| addresses.iter().find(|a| a.type_ == type_).map_or("<none>", |a| a.address.as_str());
    let info = status.node_info.unwrap_or_default();
    let known = |s: &str| if s.is_empty() { "<unknown>".to_string() } else { s.to_string() };

    Some(vec![
        name(&node.metadata),
        state.join(",").into(),
        roles.into(),
        age(&node.metadata, now),
        info.kubelet_version.as_str().into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        known(&info.os_image).into(),
        known(&info.kernel_version).into(),
        known(&info.container_runtime_version).into(),
    ])
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ago, row};
    use serde_json::{Value, json};

    fn node(labels: Value, spec: Value, status: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": "n1", "labels": labels, "creationTimestamp": ago(3 * 86400 + 4 * 3600)},
               "spec": spec, "status": status})
    }

    fn s(cells: &[&str]) -> Vec<Value> {
        cells.iter().map(|c| Value::from(*c)).collect()
    }

    #[test]
    fn ready_control_plane_node() {
        let obj = node(
            json!({"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "", "kubernetes.io/hostname": "n1"}),
            json!({}),
            json!({
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "192.168.1.10"}],
                "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "containerd://1.7.13",
                             "architecture": "amd64", "bootID": "", "kubeProxyVersion": "", "machineID": "",
                             "operatingSystem": "linux", "systemUUID": ""},
            }),
        );
        assert_eq!(
            row("", "Node", &obj),
            s(&[
                "n1",
                "Ready",
                "control-plane,etcd",
                "3d4h",
                "v1.33.1",
                "192.168.1.10",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0-18-amd64",
                "containerd://1.7.13"
            ])
        );
    }

    #[test]
    fn cordoned_unready_and_unknown_nodes() {
        let cordoned = node(
            json!({"kubernetes.io/role": "worker"}),
            json!({"unschedulable": true}),
            json!({"conditions": [{"type": "Ready", "status": "False"}], "addresses": [{"type": "ExternalIP", "address": "203.0.113.9"}]}),
        );
        let cells = row("", "Node", &cordoned);
        assert_eq!(cells[1..3], s(&["NotReady,SchedulingDisabled", "worker"]));
        assert_eq!(cells[4..], s(&["", "<none>", "203.0.113.9", "<unknown>", "<unknown>", "<unknown>"]));

        let fresh = node(json!({"node-role.kubernetes.io/": "x"}), json!({}), json!({}));
        assert_eq!(row("", "Node", &fresh)[1..3], s(&["Unknown", "<none>"]));
    }
}

//! The agent's Node and its Lease: registration (kubelet's `registerWithAPIServer`), the node
//! status it reports, and the heartbeat the node lifecycle controller reads.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// Namespace of the node heartbeat Leases.
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// kubelet's `nodeLeaseDurationSeconds`; the Lease is renewed every quarter of it.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// kubelet's default `maxPods`.
const MAX_PODS: u32 = 110;

/// What the agent reports about its node.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub name: String,
    pub internal_ip: IpAddr,
    pub kubelet_port: u16,
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn micro_now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// `MemTotal` of /proc/meminfo, as the `Ki` quantity kubelet reports.
fn memory_quantity() -> String {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    format!("{kib}Ki")
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default()
}

fn os_image() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "Linux".to_owned())
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The status the agent reports: addresses, capacity, the four conditions kubelet sets, the
/// kubelet endpoint the API server streams logs and exec through, and node info.
pub fn status(info: &NodeInfo, ready: bool, previous: Option<&Node>) -> Value {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let resources = json!({"cpu": cpus.to_string(), "memory": memory_quantity(), "pods": MAX_PODS.to_string(),
                           "ephemeral-storage": "0"});
    let t = now();
    let held = previous.and_then(|n| n.status.as_ref()?.conditions.as_ref());
    // A transition time moves only when the condition's status does.
    let since = |type_: &str, status: &str| {
        held.into_iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| t.clone())
    };
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": t, "lastTransitionTime": since(type_, status)})
    };
    let (ready_status, ready_reason, ready_message) = if ready {
        ("True", "KubeletReady", "kubelet is posting ready status")
    } else {
        ("False", "KubeletNotReady", "network not ready: waiting for a pod CIDR")
    };
    let uname = nix::sys::utsname::uname().ok();
    let kernel = uname.as_ref().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    json!({
        "addresses": [{"type": "InternalIP", "address": info.internal_ip.to_string()},
                      {"type": "Hostname", "address": info.name}],
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", ready_status, ready_reason, ready_message),
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": info.kubelet_port}},
        "nodeInfo": {
            "machineID": read_trimmed("/etc/machine-id"),
            "systemUUID": read_trimmed("/sys/class/dmi/id/product_uuid"),
            "bootID": read_trimmed("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": kernel,
            "osImage": os_image(),
            "containerRuntimeVersion": concat!("portico://", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": "v1.33.0",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": arch(),
        },
    })
}

/// Creates the Node if it does not exist (an existing one is kept, as kubelet keeps it) and
/// writes its status.
pub async fn register(client: &kube::Client, info: &NodeInfo, ready: bool) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": info.name, "labels": {
            "kubernetes.io/hostname": info.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch(),
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch()}},
    }))
    .expect("a Node literal deserializes");
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => tracing::info!(node = %info.name, "registered node"),
        Err(kube::Error::Api(s)) if s.code == 409 => tracing::info!(node = %info.name, "node already registered"),
        Err(e) => return Err(e),
    }
    report(client, info, ready).await
}

async fn current(client: &kube::Client, name: &str) -> Option<Node> {
    Api::<Node>::all(client.clone()).get_opt(name).await.ok().flatten()
}

/// Writes the node status (kubelet's periodic `updateNodeStatus`).
pub async fn report(client: &kube::Client, info: &NodeInfo, ready: bool) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let previous = current(client, &info.name).await;
    let patch = json!({"status": status(info, ready, previous.as_ref())});
    nodes.patch_status(&info.name, &PatchParams::default(), &Patch::Merge(patch)).await.map(|_| ())
}

/// Renews (or creates) the node's Lease in kube-node-lease.
pub async fn renew_lease(client: &kube::Client, node: &Node) -> Result<(), kube::Error> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let spec =
        json!({"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": micro_now()});
    match leases.patch(&name, &PatchParams::default(), &Patch::Merge(json!({"spec": spec}))).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let owner = json!([{"apiVersion": "v1", "kind": "Node", "name": name,
                               "uid": node.metadata.uid.clone().unwrap_or_default()}]);
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": owner},
                "spec": spec,
            }))
            .expect("a Lease literal deserializes");
            leases.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// How often the Lease is renewed: a quarter of its duration, as kubelet does.
pub fn lease_interval() -> Duration {
    Duration::from_secs((LEASE_DURATION_SECONDS / 4) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_addresses_capacity_conditions_and_the_kubelet_port() {
        let info = NodeInfo { name: "n1".into(), internal_ip: "192.0.2.10".parse().unwrap(), kubelet_port: 10250 };
        let s = status(&info, true, None);
        assert_eq!(s["addresses"][0], json!({"type": "InternalIP", "address": "192.0.2.10"}));
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(s["capacity"]["pods"], "110");
        assert!(s["capacity"]["memory"].as_str().unwrap().ends_with("Ki"));
        let ready = s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!((ready["status"].as_str(), ready["reason"].as_str()), (Some("True"), Some("KubeletReady")));
        let s = status(&info, false, None);
        assert_eq!(s["conditions"][3]["status"], "False");
        let held: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}))
        .unwrap();
        let s = status(&info, true, Some(&held));
        assert_eq!(s["conditions"][3]["lastTransitionTime"], "2026-01-01T00:00:00Z", "unchanged status keeps its time");
        let s = status(&info, false, Some(&held));
        assert_ne!(s["conditions"][3]["lastTransitionTime"], "2026-01-01T00:00:00Z");
    }
}

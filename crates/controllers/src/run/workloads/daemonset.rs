//! The DaemonSet controller's IO: nodes and pods from the informers into
//! [`crate::workloads::daemonset::reconcile`], its pod writes and status out.

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

use super::{Kind, PodPlan, Worker};
use crate::workloads::daemonset;

/// Whether a node change can change which DaemonSets run there: its labels, taints or
/// schedulability.
pub(super) fn node_changed(old: &Node, new: &Node) -> bool {
    let facts = |n: &Node| {
        let spec = n.spec.as_ref();
        (n.metadata.labels.clone(), spec.and_then(|s| s.taints.clone()), spec.and_then(|s| s.unschedulable))
    };
    facts(old) != facts(new)
}

impl Worker {
    pub(super) async fn sync_daemon_set(&self, ns: &str, name: &str) -> bool {
        let Some(ds) = self.daemon_sets.get(ns, name) else {
            return true;
        };
        if ds.metadata.deletion_timestamp.is_some() {
            return true;
        }
        let nodes: Vec<Node> = self.nodes.state().iter().map(|n| (**n).clone()).collect();
        let pods = self.pods_of(ds.uid());
        let now = jiff::Timestamp::now().to_string();
        let plan = daemonset::reconcile(&ds, &nodes, &pods, Some(&now));
        let writes = PodPlan { pods: &pods, create: &plan.create, delete: &plan.delete };
        self.write_plan(&self.daemon_sets, &ds, Kind::DaemonSet, writes, ds.status.as_ref(), &plan.status).await
    }
}

//! The DaemonSet controller's IO: nodes and pods from the informers into
//! [`crate::workloads::daemonset::reconcile`], its pod writes and status out.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::{Resource, ResourceExt};

use super::{Kind, Worker, patch_status};
use crate::workloads::daemonset;
use component::reconcile::{self, Written};

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
        if !plan.create.is_empty() || !plan.delete.is_empty() {
            tracing::info!(namespace = %ns, daemonset = %name, create = plan.create.len(), delete = plan.delete.len(), "daemonset pods");
        }
        let owner = ds.object_ref(&());
        let pod_writes = self.write_pods(ns, &pods, &plan.create, &plan.delete, Kind::DaemonSet, owner).await;
        let mut own_writes = Vec::new();
        if ds.status.as_ref() != Some(&plan.status) {
            let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), ns);
            own_writes.push(Written::stored(
                ns,
                "daemonset status",
                patch_status(&api, name, ds.status.as_ref(), &plan.status).await,
            ));
        }
        reconcile::settled(&self.pods, ns, &pod_writes).await
            & reconcile::settled(&self.daemon_sets, ns, &own_writes).await
    }
}

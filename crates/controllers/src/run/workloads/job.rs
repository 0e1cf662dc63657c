//! The Job controller's IO: pods from the informer into [`crate::workloads::job::reconcile`],
//! its pod writes, status, events, the TTL deletion and timed requeues out. The pod failure
//! backoff is measured from when this process first saw a Job's current failure count.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PropagationPolicy};
use kube::{Resource, ResourceExt};

use super::{JOB_CONTROLLER, Kind, Worker, patch_status};
use crate::workloads::job;
use component::reconcile::{self, Written, delete_params};

impl Worker {
    pub(super) async fn sync_job(&self, ns: &str, name: &str) -> bool {
        let Some(j) = self.jobs.get(ns, name) else {
            return true;
        };
        if j.metadata.deletion_timestamp.is_some() {
            return true;
        }
        let pods = self.pods_of(j.uid());
        let now = jiff::Timestamp::now();
        let seen = self.failures_seen_at(&j, &pods, now);
        let plan = job::reconcile(&j, &pods, now, seen);
        if !plan.create.is_empty() || !plan.delete.is_empty() {
            tracing::info!(namespace = %ns, job = %name, create = plan.create.len(), delete = plan.delete.len(), "job pods");
        }
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let key = (Kind::Job, ns.to_owned(), name.to_owned());
        if plan.delete_job {
            tracing::info!(namespace = %ns, job = %name, "ttl after finished passed; deleting job");
            let mut params = delete_params(j.uid());
            params.propagation_policy = Some(PropagationPolicy::Foreground);
            let deleted = api.delete(name, &params).await.map(|_| ());
            self.job_failures.lock().expect("job failures lock").remove(&j.uid().unwrap_or_default());
            return reconcile::settled(&self.jobs, ns, &[Written::deleted(ns, "delete job", name, deleted)]).await;
        }
        let owner = j.object_ref(&());
        let pod_writes = self.write_pods(ns, &pods, &plan.create, &plan.delete, Kind::Job, owner.clone()).await;
        let mut own_writes = Vec::new();
        if j.status.as_ref() != Some(&plan.status) {
            let written = patch_status(&api, name, j.status.as_ref(), &plan.status).await;
            if written.is_ok() {
                for (type_, reason) in &plan.transitions {
                    let (kind, reason, message) = match type_.as_str() {
                        "Complete" => ("Normal", "Completed", "Job completed".to_owned()),
                        "Failed" => ("Warning", reason.as_str(), failure_message(reason)),
                        "Suspended" => ("Normal", "Suspended", "Job suspended".to_owned()),
                        _ => continue,
                    };
                    component::events::record(&self.client, owner.clone(), kind, reason, &message, JOB_CONTROLLER)
                        .await;
                }
            }
            own_writes.push(Written::stored(ns, "job status", written));
        }
        if let Some(delay) = plan.requeue_after {
            self.requeue_after(key, delay);
        }
        reconcile::settled(&self.pods, ns, &pod_writes).await & reconcile::settled(&self.jobs, ns, &own_writes).await
    }

    /// When this process first saw the Job's current failure count (`None` without failures).
    fn failures_seen_at(&self, j: &Job, pods: &[Pod], now: jiff::Timestamp) -> Option<jiff::Timestamp> {
        let uid = j.uid()?;
        let observed = pods.iter().filter(|p| component::pod::phase(p) == "Failed").count();
        let recorded = j.status.as_ref().and_then(|s| s.failed).unwrap_or(0);
        let failed = i32::try_from(observed).unwrap_or(i32::MAX).max(recorded);
        if failed == 0 {
            return None;
        }
        let mut seen = self.job_failures.lock().expect("job failures lock");
        match seen.get(&uid) {
            Some((n, at)) if *n == failed => Some(*at),
            _ => {
                seen.insert(uid, (failed, now));
                Some(now)
            }
        }
    }
}

/// The event message upstream records with a failure reason.
fn failure_message(reason: &str) -> String {
    match reason {
        "BackoffLimitExceeded" => "Job has reached the specified backoff limit".to_owned(),
        "DeadlineExceeded" => "Job was active longer than specified deadline".to_owned(),
        other => other.to_owned(),
    }
}

//! Job: run pods until `completions` of them succeed (upstream `pkg/controller/job`,
//! `syncJob` / `manageJob`), as a pure step from the Job, its pods and the clock to a [`Plan`].
//!
//! - Owned pods are those with a controller reference to the Job's UID. Active: not terminal
//!   and not being deleted; terminating: being deleted and not terminal.
//! - `succeeded` / `failed` count Succeeded / Failed pods, never going below what the status
//!   already says (upstream keeps counts with the `batch.kubernetes.io/job-tracking` finalizer
//!   and `uncountedTerminatedPods`; here pods carry no finalizer, so a removed pod's count is
//!   kept by taking the maximum).
//! - Wanted active pods: `min(parallelism, completions - succeeded)`; without `completions`
//!   (a work queue) `parallelism` until one pod succeeded, then none new. Missing pods are
//!   created from the template (`generateName: <job>-`); extra ones deleted, lowest-ranked first.
//! - Failure: with restartPolicy Never, `failed > backoffLimit`; with OnFailure, the container
//!   restarts of active pods reach `backoffLimit` (`pastBackoffLimitOnFailure`). After a failure
//!   a replacement waits `10s * 2^(failures-1)` (at most 6 min) from when the caller first saw
//!   that many failures (upstream's pod backoff, measured from the pod's finish time).
//! - `activeDeadlineSeconds` past `startTime` fails the Job with DeadlineExceeded.
//! - Finishing, as 1.32 with JobSuccessPolicy/JobManagedBy on: first the interim condition
//!   (SuccessCriteriaMet / FailureTarget) and deletion of active pods, then, once no pod is
//!   active or terminating, Complete (with `completionTime`) / Failed.
//! - `suspend: true` deletes active pods, adds Suspended=True (JobSuspended) and clears
//!   `startTime`; resuming sets Suspended=False (JobResumed) and a new `startTime`.
//! - `ttlSecondsAfterFinished`: the finished Job is deleted that long after it finished (the
//!   TTL-after-finished controller's job, here in the same plan).
//!
//! Not modelled: Indexed completion mode (treated as NonIndexed), pod failure and success
//! policies, backoffLimitPerIndex, podReplacementPolicy (replacements wait only for failure,
//! i.e. TerminatingOrFailed), `managedBy`, adoption of orphans.

use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::{controller_ref, is_controlled_by, is_pod_active, is_pod_ready, phase, replicaset::pods_to_delete};

/// Upstream `DefaultJobPodFailureBackOff` and `MaxJobPodFailureBackOff`.
pub const POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(360);
/// Most pods created or deleted in one sync (upstream `MaxPodCreateDeletePerSync`).
pub const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;

/// What to write for one Job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Pods to create (`generateName: <job>-`, controller reference to the Job).
    pub create: Vec<Pod>,
    /// Names of pods to delete.
    pub delete: Vec<String>,
    pub status: JobStatus,
    /// Delete the Job itself (its TTL after finishing has passed).
    pub delete_job: bool,
    /// Reconcile again after this long (a backoff, a deadline or a TTL is pending).
    pub requeue_after: Option<Duration>,
    /// Conditions newly set to True this sync, for events (`Complete`, `Failed`, ...), with
    /// their reasons.
    pub transitions: Vec<(String, String)>,
}

/// The delay before replacing a failed pod, after `failures` failures (0 = none).
pub fn failure_backoff(failures: i32) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl((failures - 1) as u32).unwrap_or(u32::MAX);
    POD_FAILURE_BACKOFF.saturating_mul(factor).min(MAX_POD_FAILURE_BACKOFF)
}

/// Whether the Job has a True condition of this type (upstream `IsJobFinished` for Complete /
/// Failed).
pub fn has_condition(job: &Job, type_: &str) -> bool {
    true_condition(job, type_).is_some()
}

fn true_condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_ && c.status == "True")
}

/// Complete or Failed.
pub fn is_finished(job: &Job) -> bool {
    has_condition(job, "Complete") || has_condition(job, "Failed")
}

/// Reconciles a Job at `now` against all candidate pods. `failures_seen_at` is when the caller
/// first saw the Job's current failure count (for the replacement backoff); `None` means no
/// backoff is pending.
pub fn reconcile(job: &Job, pods: &[Pod], now: Timestamp, failures_seen_at: Option<Timestamp>) -> Plan {
    let meta = &job.metadata;
    let spec = job.spec.clone().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();
    let mut plan = Plan { status: old.clone(), ..Default::default() };
    let owned: Vec<&Pod> =
        pods.iter().filter(|p| is_controlled_by(&p.metadata, meta.namespace.as_deref(), meta.uid.as_deref())).collect();
    let active: Vec<&Pod> = owned.iter().copied().filter(|p| is_pod_active(p)).collect();
    let terminating =
        owned.iter().filter(|p| p.metadata.deletion_timestamp.is_some() && !component::pod::is_terminal(p)).count();
    let succeeded = count(owned.iter().filter(|p| phase(p) == "Succeeded").count()).max(old.succeeded.unwrap_or(0));
    let failed = count(owned.iter().filter(|p| phase(p) == "Failed").count()).max(old.failed.unwrap_or(0));
    let status = &mut plan.status;
    status.succeeded = Some(succeeded);
    status.failed = Some(failed);
    status.ready = Some(count(active.iter().filter(|p| is_pod_ready(p)).count()));
    status.terminating = Some(count(terminating));
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    status.active = Some(count(active.len()));

    if is_finished(job) {
        // Nothing runs any more; only the TTL is left to honour.
        plan.delete = active.iter().map(|p| name(p)).collect();
        status.active = Some(0);
        if let Some(ttl) = spec.ttl_seconds_after_finished {
            let finished = finish_time(job).unwrap_or(now);
            let due = finished + SignedDuration::from_secs(i64::from(ttl));
            if now >= due {
                plan.delete_job = true;
            } else {
                plan.requeue_after = Some(until(now, due));
            }
        }
        return plan;
    }
    if meta.deletion_timestamp.is_some() {
        return plan;
    }
    // A Job with an interim condition is finishing: no new pods, only the wait for the last
    // ones to go before the final condition.
    for (interim, last) in [("FailureTarget", "Failed"), ("SuccessCriteriaMet", "Complete")] {
        if let Some(c) = true_condition(job, interim) {
            let (reason, message) = (c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default());
            finish(&mut plan, &active, terminating, interim, last, &reason, &message, now);
            return plan;
        }
    }

    // Suspension.
    if spec.suspend == Some(true) {
        plan.delete = active.iter().map(|p| name(p)).collect();
        plan.status.active = Some(0);
        plan.status.ready = Some(0);
        plan.status.start_time = None;
        set_condition(&mut plan, "Suspended", "True", "JobSuspended", "Job suspended", now);
        return plan;
    }
    if has_condition(job, "Suspended") {
        set_condition(&mut plan, "Suspended", "False", "JobResumed", "Job resumed", now);
        plan.status.start_time = Some(Time(now));
    }
    if plan.status.start_time.is_none() {
        plan.status.start_time = Some(Time(now));
    }
    let start = plan.status.start_time.as_ref().map_or(now, |t| t.0);

    // Failure: backoff limit, then the active deadline.
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let restart_policy =
        spec.template.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Never".into());
    let failure = if failed > backoff_limit
        || (restart_policy == "OnFailure" && past_backoff_limit_on_failure(&active, backoff_limit))
    {
        Some(("BackoffLimitExceeded", "Job has reached the specified backoff limit"))
    } else {
        spec.active_deadline_seconds.and_then(|ads| {
            let due = start + SignedDuration::from_secs(ads);
            if now >= due {
                Some(("DeadlineExceeded", "Job was active longer than specified deadline"))
            } else {
                plan.requeue_after = Some(until(now, due));
                None
            }
        })
    };
    if let Some((reason, message)) = failure {
        finish(&mut plan, &active, terminating, "FailureTarget", "Failed", reason, message, now);
        return plan;
    }

    // Success.
    let complete = match spec.completions {
        Some(c) => succeeded >= c,
        None => succeeded > 0 && active.is_empty(),
    };
    if complete {
        let message = "Reached expected number of succeeded pods";
        finish(&mut plan, &active, terminating, "SuccessCriteriaMet", "Complete", "CompletionsReached", message, now);
        return plan;
    }

    // Keep the wanted number of pods active.
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let want = match spec.completions {
        Some(c) => parallelism.min((c - succeeded).max(0)),
        None if succeeded > 0 => count(active.len()).min(parallelism),
        None => parallelism,
    } as usize;
    if active.len() > want {
        let n = (active.len() - want).min(MAX_POD_CREATE_DELETE_PER_SYNC);
        plan.delete = pods_to_delete(&active, n).into_iter().map(name).collect();
    } else if active.len() < want {
        let wait = failures_seen_at
            .map(|seen| seen + SignedDuration::try_from(failure_backoff(failed)).unwrap_or(SignedDuration::ZERO))
            .filter(|due| *due > now);
        match wait {
            Some(due) => {
                plan.requeue_after = Some(plan.requeue_after.map_or(until(now, due), |r| r.min(until(now, due))))
            }
            None => {
                let owner = controller_ref("batch/v1", "Job", meta);
                let n = (want - active.len()).min(MAX_POD_CREATE_DELETE_PER_SYNC);
                plan.create = (0..n)
                    .map(|_| {
                        let mut pod =
                            super::pod_from_template(&spec.template, meta.namespace.as_deref(), owner.clone());
                        pod.metadata.generate_name = Some(format!("{}-", meta.name.as_deref().unwrap_or_default()));
                        pod
                    })
                    .collect();
            }
        }
    }
    plan.status.active = Some(count(active.len() + plan.create.len() - plan.delete.len().min(active.len())));
    plan
}

/// Adds the interim condition and deletes active pods; adds the final condition (and, for
/// success, `completionTime`) once no pod runs or terminates.
#[allow(clippy::too_many_arguments)]
fn finish(
    plan: &mut Plan,
    active: &[&Pod],
    terminating: usize,
    interim: &str,
    last: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    set_condition(plan, interim, "True", reason, message, now);
    plan.delete = active.iter().map(|p| name(p)).collect();
    plan.status.active = Some(0);
    if active.is_empty() && terminating == 0 {
        set_condition(plan, last, "True", reason, message, now);
        if last == "Complete" {
            plan.status.completion_time = Some(Time(now));
        }
    }
}

/// Sets a condition (lastProbeTime and lastTransitionTime now when it changes); records a
/// transition to True.
fn set_condition(plan: &mut Plan, type_: &str, status: &str, reason: &str, message: &str, now: Timestamp) {
    let conditions = plan.status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status == status {
            return;
        }
        *c = condition(type_, status, reason, message, now);
    } else {
        conditions.push(condition(type_, status, reason, message, now));
    }
    if status == "True" {
        plan.transitions.push((type_.to_string(), reason.to_string()));
    }
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// When the Job finished: `completionTime`, else the Complete/Failed condition's transition.
fn finish_time(job: &Job) -> Option<Timestamp> {
    let status = job.status.as_ref()?;
    status.completion_time.as_ref().map(|t| t.0).or_else(|| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0)
    })
}

/// pastBackoffLimitOnFailure: container restarts of the active pods reach the limit (any
/// restart when the limit is 0).
fn past_backoff_limit_on_failure(active: &[&Pod], limit: i32) -> bool {
    let restarts: i32 = active
        .iter()
        .filter(|p| matches!(phase(p), "Pending" | "Running"))
        .flat_map(|p| {
            let s = p.status.as_ref();
            let main = s.and_then(|s| s.container_statuses.as_ref()).into_iter().flatten();
            let init = s.and_then(|s| s.init_container_statuses.as_ref()).into_iter().flatten();
            main.chain(init).map(|c| c.restart_count)
        })
        .sum();
    if limit == 0 { restarts > 0 } else { restarts >= limit }
}

fn until(now: Timestamp, due: Timestamp) -> Duration {
    Duration::try_from(due.duration_since(now)).unwrap_or(Duration::ZERO).max(Duration::from_millis(100))
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{Container, ContainerStatus, PodSpec, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn now() -> Timestamp {
        "2025-01-01T00:10:00Z".parse().unwrap()
    }

    fn secs(n: i64) -> Timestamp {
        now() + SignedDuration::from_secs(n)
    }

    fn job(completions: Option<i32>, parallelism: i32, restart: &str) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("pi".into()),
                namespace: Some("default".into()),
                uid: Some("job-uid".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                completions,
                parallelism: Some(parallelism),
                backoff_limit: Some(1),
                template: PodTemplateSpec {
                    metadata: None,
                    spec: Some(PodSpec {
                        restart_policy: Some(restart.into()),
                        containers: vec![Container { name: "c".into(), ..Default::default() }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, phase: &str) -> Pod {
        let mut p = super::super::pod_from_template(
            &job(None, 1, "Never").spec.unwrap().template,
            Some("default"),
            controller_ref("batch/v1", "Job", &job(None, 1, "Never").metadata),
        );
        p.metadata.name = Some(name.into());
        p.status = Some(PodStatus { phase: Some(phase.into()), ..Default::default() });
        p
    }

    /// Applies a plan's status to the job, as the next sync would see it.
    fn after(mut j: Job, plan: &Plan) -> Job {
        j.status = Some(plan.status.clone());
        j
    }

    fn conditions(plan: &Plan) -> Vec<(String, String, String)> {
        plan.status
            .conditions
            .iter()
            .flatten()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn job_runs_parallelism_pods_until_completions_succeed_then_completes() {
        let j = job(Some(2), 1, "Never");
        let plan = reconcile(&j, &[], now(), None);
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0].metadata.generate_name.as_deref(), Some("pi-"));
        assert_eq!(plan.status.start_time, Some(Time(now())));
        assert_eq!(plan.status.active, Some(1));

        let j = after(j, &plan);
        let plan = reconcile(&j, &[pod("pi-a", "Succeeded")], secs(5), None);
        assert_eq!(plan.create.len(), 1, "one more for the second completion");
        assert_eq!(plan.status.succeeded, Some(1));
        assert!(conditions(&plan).is_empty());

        let j = after(j, &plan);
        let plan = reconcile(&j, &[pod("pi-a", "Succeeded"), pod("pi-b", "Succeeded")], secs(9), None);
        assert!(plan.create.is_empty());
        assert_eq!(
            conditions(&plan),
            vec![
                ("SuccessCriteriaMet".into(), "True".into(), "CompletionsReached".into()),
                ("Complete".into(), "True".into(), "CompletionsReached".into())
            ]
        );
        assert_eq!(plan.status.completion_time, Some(Time(secs(9))));
        assert_eq!(plan.status.start_time, Some(Time(now())), "startTime is kept");
        assert_eq!((plan.status.succeeded, plan.status.active), (Some(2), Some(0)));
    }

    #[test]
    fn failed_pods_are_replaced_after_a_backoff_until_the_backoff_limit_is_exceeded() {
        let j = job(Some(1), 1, "Never");
        let j = after(j.clone(), &reconcile(&j, &[], now(), None));
        // One failure (backoffLimit 1): replaced, but only 10 s after the failure was seen.
        let pods = [pod("pi-a", "Failed")];
        let plan = reconcile(&j, &pods, secs(3), Some(now()));
        assert!(plan.create.is_empty());
        assert_eq!(plan.requeue_after, Some(Duration::from_secs(7)));
        assert_eq!(plan.status.failed, Some(1));
        let plan = reconcile(&j, &pods, secs(10), Some(now()));
        assert_eq!(plan.create.len(), 1);
        // The second failure exceeds the limit: FailureTarget and Failed.
        let j = after(j, &plan);
        let plan = reconcile(&j, &[pod("pi-a", "Failed"), pod("pi-b", "Failed")], secs(20), Some(secs(20)));
        assert!(plan.create.is_empty());
        assert_eq!(
            conditions(&plan),
            vec![
                ("FailureTarget".into(), "True".into(), "BackoffLimitExceeded".into()),
                ("Failed".into(), "True".into(), "BackoffLimitExceeded".into())
            ]
        );
        assert_eq!(plan.status.completion_time, None);
        assert_eq!(plan.transitions.len(), 2);
    }

    #[test]
    fn on_failure_jobs_fail_when_container_restarts_reach_the_limit() {
        let j = job(Some(1), 1, "OnFailure");
        let mut running = pod("pi-a", "Running");
        running.status.as_mut().unwrap().container_statuses =
            Some(vec![ContainerStatus { name: "c".into(), restart_count: 1, ..Default::default() }]);
        let plan = reconcile(&j, &[running], now(), None);
        assert_eq!(conditions(&plan)[0], ("FailureTarget".into(), "True".into(), "BackoffLimitExceeded".into()));
        assert_eq!(plan.delete, vec!["pi-a".to_string()], "active pods are deleted");
        assert_eq!(conditions(&plan).len(), 1, "Failed waits until the pod is gone");
        // The next pass, with the pod gone (and so no restarts to count), finishes the Job
        // instead of starting a new pod.
        let j = after(j, &plan);
        let plan = reconcile(&j, &[], secs(5), None);
        assert!(plan.create.is_empty());
        assert_eq!(conditions(&plan)[1], ("Failed".into(), "True".into(), "BackoffLimitExceeded".into()));
    }

    #[test]
    fn active_deadline_fails_the_job_and_requeues_before_it() {
        let mut j = job(Some(1), 1, "Never");
        j.spec.as_mut().unwrap().active_deadline_seconds = Some(30);
        j.status = Some(JobStatus { start_time: Some(Time(now())), ..Default::default() });
        let plan = reconcile(&j, &[pod("pi-a", "Running")], secs(10), None);
        assert_eq!(plan.requeue_after, Some(Duration::from_secs(20)));
        assert!(conditions(&plan).is_empty());
        let plan = reconcile(&j, &[pod("pi-a", "Running")], secs(30), None);
        assert_eq!(conditions(&plan)[0].2, "DeadlineExceeded");
        assert_eq!(plan.delete, vec!["pi-a".to_string()]);
    }

    #[test]
    fn suspend_deletes_active_pods_and_resume_restarts_the_clock() {
        let mut j = job(Some(3), 2, "Never");
        j.spec.as_mut().unwrap().suspend = Some(true);
        j.status = Some(JobStatus { start_time: Some(Time(now())), ..Default::default() });
        let plan = reconcile(&j, &[pod("pi-a", "Running")], secs(5), None);
        assert_eq!(plan.delete, vec!["pi-a".to_string()]);
        assert!(plan.create.is_empty());
        assert_eq!(conditions(&plan), vec![("Suspended".into(), "True".into(), "JobSuspended".into())]);
        assert_eq!(plan.status.start_time, None);

        let mut j = after(j, &plan);
        j.spec.as_mut().unwrap().suspend = Some(false);
        let plan = reconcile(&j, &[], secs(60), None);
        assert_eq!(plan.create.len(), 2);
        assert_eq!(conditions(&plan), vec![("Suspended".into(), "False".into(), "JobResumed".into())]);
        assert_eq!(plan.status.start_time, Some(Time(secs(60))));
    }

    #[test]
    fn work_queue_jobs_complete_when_one_pod_succeeded_and_none_run() {
        let j = job(None, 3, "Never");
        assert_eq!(reconcile(&j, &[], now(), None).create.len(), 3);
        let plan = reconcile(&j, &[pod("pi-a", "Succeeded"), pod("pi-b", "Running")], now(), None);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert!(conditions(&plan).is_empty());
        let plan = reconcile(&j, &[pod("pi-a", "Succeeded"), pod("pi-b", "Succeeded")], now(), None);
        assert_eq!(conditions(&plan)[1].0, "Complete");
    }

    #[test]
    fn finished_jobs_are_deleted_after_their_ttl() {
        let mut j = job(Some(1), 1, "Never");
        j.spec.as_mut().unwrap().ttl_seconds_after_finished = Some(60);
        let done = reconcile(&j, &[pod("pi-a", "Succeeded")], now(), None);
        let j = after(j, &done);
        let plan = reconcile(&j, &[pod("pi-a", "Succeeded")], secs(30), None);
        assert!(!plan.delete_job);
        assert_eq!(plan.requeue_after, Some(Duration::from_secs(30)));
        assert!(reconcile(&j, &[], secs(60), None).delete_job);
    }

    #[test]
    fn counts_never_go_below_the_recorded_status() {
        let mut j = job(Some(5), 1, "Never");
        j.status = Some(JobStatus { succeeded: Some(3), failed: Some(1), ..Default::default() });
        let plan = reconcile(&j, &[pod("pi-a", "Succeeded")], now(), None);
        assert_eq!((plan.status.succeeded, plan.status.failed), (Some(3), Some(1)));
    }
}

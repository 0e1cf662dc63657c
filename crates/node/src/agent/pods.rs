//! One worker per pod on this node (kubelet's pod workers): it sets up the pod's network and
//! volumes, runs init containers in order and then the containers, restarts them per
//! restartPolicy with CrashLoopBackOff back-off, runs the probes, writes the pod's status when
//! it changes, and on deletion stops the containers gracefully before the API object goes.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use component::index::BY_NAMESPACE;
use component::informer::Informer;
use component::pod::LeanPod;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::env::{self, Sources};
use super::files::{self, ClusterDns, Resolv};
use super::probe::{self, Kind, Outcome, Schedule};
use super::status::{self, State, Terminated};
use super::volumes;
use crate::net::{Attachment, Network, PodRef};
use crate::sandbox::{ContainerSpec, ContainerState, Protocol, Sandbox};

/// kubelet's container restart back-off: 10 s doubling to 5 minutes, forgotten after 10
/// minutes of running.
const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How often a worker looks at its containers when nothing else wakes it.
const TICK: Duration = Duration::from_secs(1);

/// What every pod worker shares.
pub struct Shared {
    pub client: kube::Client,
    pub node_name: String,
    pub host_ip: IpAddr,
    pub net: Network,
    pub sandbox: Sandbox,
    pub metrics: Arc<super::metrics::Metrics>,
    pub pods: Informer<LeanPod>,
    pub services: Informer<Service>,
    pub dns: ClusterDns,
    pub host_resolv: Resolv,
    pub state_dir: PathBuf,
}

/// A container as its worker tracks it.
struct Run {
    spec: Container,
    init: bool,
    restart_count: i32,
    /// The sandbox id of the current (or last) run.
    id: Option<String>,
    state: State,
    last_termination: Option<Terminated>,
    started: Option<Instant>,
    backoff: Duration,
    /// No restart before this.
    restart_after: Option<Instant>,
    /// It ended and is to run again (the next start is a restart).
    restarting: bool,
    startup: Option<Schedule>,
    readiness: Option<Schedule>,
    liveness: Option<Schedule>,
}

impl Run {
    fn new(spec: Container, init: bool) -> Run {
        Run {
            spec,
            init,
            restart_count: 0,
            id: None,
            state: State::Waiting { reason: "ContainerCreating".into(), message: None },
            last_termination: None,
            started: None,
            backoff: Duration::ZERO,
            restart_after: None,
            restarting: false,
            startup: None,
            readiness: None,
            liveness: None,
        }
    }

    fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    fn ready(&self) -> bool {
        if !self.running() {
            return false;
        }
        let started = self.startup.as_ref().is_none_or(|s| s.passing);
        started && self.readiness.as_ref().is_none_or(|s| s.passing)
    }

    fn view(&self) -> status::Container {
        status::Container {
            name: self.spec.name.clone(),
            image: self.spec.image.clone().unwrap_or_default(),
            container_id: self.id.as_ref().map(|id| format!("portico://{id}")),
            state: self.state.clone(),
            last_termination: self.last_termination.clone(),
            restart_count: self.restart_count,
            ready: !self.init && self.ready(),
            started: self.startup.as_ref().is_none_or(|s| s.passing),
        }
    }
}

fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn now() -> String {
    rfc3339(jiff::Timestamp::now())
}

fn terminated_from(st: &ContainerState) -> Terminated {
    let code = st.exit_code.unwrap_or(0);
    let reason = st.reason.clone().unwrap_or_else(|| if code == 0 { "Completed".into() } else { "Error".into() });
    Terminated {
        exit_code: code,
        signal: st.signal,
        reason,
        message: st.message.clone(),
        started_at: st.started_at.map(rfc3339),
        finished_at: st.finished_at.map(rfc3339).unwrap_or_else(now),
    }
}

/// argv from command and args: `args` alone runs `args[0]` (there is no image entrypoint);
/// `$(VAR)` references expand from the container's environment.
fn argv(c: &Container, env: &[(String, String)]) -> Vec<String> {
    let known: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand = |v: &Vec<String>| v.iter().map(|a| env::expand(a, &known)).collect::<Vec<_>>();
    let mut out = c.command.as_ref().map(expand).unwrap_or_default();
    out.extend(c.args.as_ref().map(expand).unwrap_or_default());
    out
}

fn demo_ports(c: &Container) -> Vec<(u16, Protocol)> {
    c.ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p.container_port).ok()?;
            let proto = match p.protocol.as_deref() {
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                _ => Protocol::Tcp,
            };
            Some((port, proto))
        })
        .collect()
}

/// Drives one pod from its first sight on this node until its API object is gone.
pub async fn work(shared: Arc<Shared>, key: component::informer::Key, uid: String, wake: Arc<Notify>) {
    let mut w = Worker {
        shared,
        key,
        uid,
        pod: None,
        attachment: None,
        runs: vec![],
        volumes: BTreeMap::new(),
        written: None,
        start_time: now(),
        first_seen: Instant::now(),
        start_recorded: false,
    };
    w.run(wake).await;
}

struct Worker {
    shared: Arc<Shared>,
    key: component::informer::Key,
    uid: String,
    pod: Option<Pod>,
    attachment: Option<Attachment>,
    runs: Vec<Run>,
    volumes: BTreeMap<String, PathBuf>,
    /// The last status written, so an unchanged one is not written again.
    written: Option<Value>,
    start_time: String,
    /// When this worker first saw the pod, for `kubelet_pod_start_duration_seconds`.
    first_seen: Instant,
    start_recorded: bool,
}

impl Worker {
    fn lean(&self) -> Option<Arc<LeanPod>> {
        self.shared.pods.get_key(&self.key).filter(|p| p.uid.as_deref() == Some(self.uid.as_str()))
    }

    fn pod_ref(&self) -> PodRef {
        let (ns, name) = component::informer::split_key(&self.key);
        PodRef { uid: self.uid.clone(), namespace: ns.to_owned(), name: name.to_owned() }
    }

    async fn run(&mut self, wake: Arc<Notify>) {
        loop {
            let Some(lean) = self.lean() else {
                // Gone from the API (deleted with grace 0, or while this agent was away).
                self.stop(Duration::ZERO).await;
                self.teardown().await;
                return;
            };
            if lean.deletion_timestamp.is_some() {
                let grace =
                    self.pod.as_ref().and_then(|p| p.spec.as_ref()?.termination_grace_period_seconds).unwrap_or(30);
                self.stop(Duration::from_secs(grace.max(0) as u64)).await;
                self.teardown().await;
                self.finalize().await;
                return;
            }
            if let Err(e) = self.sync().await {
                tracing::warn!(pod = %self.key, error = %e, "pod sync failed; retrying");
            }
            let next = self.next_wake();
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(next.into()) => {}
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let mut next = Instant::now() + TICK;
        for r in &self.runs {
            for s in [&r.startup, &r.readiness, &r.liveness].into_iter().flatten() {
                next = next.min(s.next_run());
            }
        }
        next.max(Instant::now() + Duration::from_millis(20))
    }

    async fn sync(&mut self) -> Result<(), String> {
        if self.pod.is_none() {
            let (ns, name) = component::informer::split_key(&self.key);
            let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), ns);
            let pod = api.get(name).await.map_err(|e| format!("reading the pod: {e}"))?;
            if pod.metadata.uid.as_deref() != Some(self.uid.as_str()) {
                return Err("the pod was replaced".into());
            }
            let spec = pod.spec.clone().unwrap_or_default();
            self.runs = spec.init_containers.iter().flatten().map(|c| Run::new(c.clone(), true)).collect();
            self.runs.extend(spec.containers.iter().map(|c| Run::new(c.clone(), false)));
            if let Some(t) = pod.status.as_ref().and_then(|s| s.start_time.as_ref()) {
                self.start_time = rfc3339(t.0);
            }
            self.pod = Some(pod);
            self.adopt();
        }
        if self.attachment.is_none() {
            let host_network = self.pod.as_ref().and_then(|p| p.spec.as_ref()?.host_network).unwrap_or(false);
            let a = if host_network {
                // The node's own network namespace (the agent's), and the node's address.
                Attachment {
                    uid: self.uid.clone(),
                    netns: PathBuf::from("/proc/self/ns/net"),
                    ip: self.shared.host_ip,
                    gateway: self.shared.host_ip,
                    host_veth: String::new(),
                }
            } else {
                self.shared.net.attach(&self.pod_ref()).await.map_err(|e| format!("pod network: {e}"))?
            };
            tracing::info!(pod = %self.key, ip = %a.ip, "pod network ready");
            self.attachment = Some(a);
            self.write_status().await;
        }
        if self.volumes.is_empty()
            && self.pod.as_ref().and_then(|p| p.spec.as_ref()?.volumes.as_ref()).is_some_and(|v| !v.is_empty())
        {
            let pod = self.pod.clone().unwrap_or_default();
            let (cms, secrets) = volumes::references(&pod);
            let (cms, secrets) = (self.config_maps(&cms).await, self.secrets(&secrets).await);
            let root = self.shared.state_dir.join("pods").join(&self.uid).join("volumes");
            match volumes::prepare(&pod, &root, &cms, &secrets) {
                Ok(dirs) => self.volumes = dirs,
                Err(e) => {
                    for r in self.runs.iter_mut().filter(|r| r.id.is_none()) {
                        r.state = State::Waiting { reason: "ContainerCreating".into(), message: Some(e.clone()) };
                    }
                    self.write_status().await;
                    return Err(e);
                }
            }
        }
        self.observe();
        self.start_due().await;
        let containers = self.runs.iter().filter(|r| !r.init);
        if !self.start_recorded && containers.clone().count() > 0 && containers.clone().all(Run::running) {
            self.start_recorded = true;
            self.shared.metrics.pod_start_duration.observe(self.first_seen.elapsed().as_secs_f64());
        }
        self.probe().await;
        self.write_status().await;
        Ok(())
    }

    /// After an agent restart: the containers the supervisor still holds for this pod.
    fn adopt(&mut self) {
        let prefix = format!("{}_", self.uid);
        let mut latest: HashMap<String, (i32, ContainerState)> = HashMap::new();
        for st in self.shared.sandbox.list().into_iter().filter(|s| s.id.starts_with(&prefix)) {
            let rest = &st.id[prefix.len()..];
            let Some((name, n)) = rest.rsplit_once('_') else { continue };
            let Ok(n) = n.parse::<i32>() else { continue };
            if latest.get(name).is_none_or(|(m, _)| n > *m) {
                latest.insert(name.to_owned(), (n, st));
            }
        }
        for r in &mut self.runs {
            if let Some((n, st)) = latest.remove(&r.spec.name) {
                tracing::info!(pod = %self.key, container = %r.spec.name, id = %st.id, "re-adopted container");
                r.restart_count = n;
                r.id = Some(st.id.clone());
                r.started = Some(Instant::now());
                if st.has_ended() {
                    r.state = State::Terminated(terminated_from(&st));
                } else {
                    r.state = State::Running { started_at: st.started_at.map(rfc3339).unwrap_or_else(now) };
                    start_probes(r);
                }
            }
        }
    }

    /// Folds the supervisor's view into the runs: containers that ended.
    fn observe(&mut self) {
        for r in &mut self.runs {
            let Some(id) = &r.id else { continue };
            if !r.running() {
                continue;
            }
            match self.shared.sandbox.state(id) {
                Some(st) if st.has_ended() => {
                    let t = terminated_from(&st);
                    tracing::info!(pod = %self.key, container = %r.spec.name, exit_code = t.exit_code, "container exited");
                    r.state = State::Terminated(t);
                }
                Some(st) if !st.shim_alive => {
                    // The supervisor died without recording an exit: the container is lost.
                    r.state = State::Terminated(Terminated {
                        exit_code: 137,
                        signal: None,
                        reason: "Error".into(),
                        message: Some("the container's supervisor ended unexpectedly".into()),
                        started_at: None,
                        finished_at: now(),
                    });
                }
                Some(_) => {}
                None => {
                    r.state = State::Terminated(Terminated {
                        exit_code: 137,
                        signal: None,
                        reason: "ContainerStatusUnknown".into(),
                        message: Some("The container could not be located when the pod was terminated".into()),
                        started_at: None,
                        finished_at: now(),
                    });
                }
            }
        }
    }

    /// A core/v1 Event about the pod (or one of its containers), as kubelet records them;
    /// written in the background, best effort.
    fn event(&self, container: Option<&Run>, type_: &str, reason: &str, message: String) {
        let (ns, name) = component::informer::split_key(&self.key);
        let field_path = container.map(|r| {
            let list = if r.init { "initContainers" } else { "containers" };
            format!("spec.{list}{{{}}}", r.spec.name)
        });
        let involved = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(ns.to_owned()),
            name: Some(name.to_owned()),
            uid: Some(self.uid.clone()),
            field_path,
            ..Default::default()
        };
        let client = self.shared.client.clone();
        let type_ = type_.to_owned();
        let reason = reason.to_owned();
        tokio::spawn(async move {
            component::events::record(&client, involved, &type_, &reason, &message, "kubelet").await;
        });
    }

    fn restart_policy(&self) -> String {
        self.pod.as_ref().and_then(|p| p.spec.as_ref()?.restart_policy.clone()).unwrap_or_else(|| "Always".into())
    }

    /// Starts what should run now: the init containers one at a time, in order, each to
    /// success, then every container; an ended one restarts per restartPolicy once its
    /// back-off has passed.
    async fn start_due(&mut self) {
        let policy = self.restart_policy();
        for i in 0..self.runs.len() {
            if !self.may_run(i) {
                break;
            }
            self.decide_restart(i, &policy);
            let r = &self.runs[i];
            if matches!(r.state, State::Waiting { .. }) && r.restart_after.is_none_or(|t| Instant::now() >= t) {
                self.start(i).await;
            }
            if self.runs[i].init && !succeeded(&self.runs[i]) {
                break;
            }
        }
    }

    /// Whether container `i` may run: every init container before it succeeded.
    fn may_run(&self, i: usize) -> bool {
        self.runs[..i].iter().filter(|r| r.init).all(succeeded)
    }

    /// An ended container that the restart policy restarts goes to CrashLoopBackOff: the first
    /// restart is immediate, then 10 s doubling to 5 minutes (kubelet's back-off).
    fn decide_restart(&mut self, i: usize, policy: &str) {
        let (ns, name) = component::informer::split_key(&self.key);
        let uid = self.uid.clone();
        let r = &mut self.runs[i];
        let State::Terminated(t) = &r.state else { return };
        let again = match policy {
            "Never" => false,
            "OnFailure" => t.exit_code != 0,
            _ => !r.init || t.exit_code != 0,
        };
        if !again {
            return;
        }
        if r.started.is_some_and(|s| s.elapsed() > BACKOFF_RESET) {
            r.backoff = Duration::ZERO;
        }
        let wait = r.backoff;
        r.last_termination = Some(t.clone());
        r.restarting = true;
        r.restart_after = Some(Instant::now() + wait);
        r.backoff = if wait.is_zero() { BACKOFF_INITIAL } else { (wait * 2).min(BACKOFF_MAX) };
        let message =
            format!("back-off {}s restarting failed container={} pod={name}_{ns}({uid})", wait.as_secs(), r.spec.name);
        r.state = State::Waiting { reason: "CrashLoopBackOff".into(), message: Some(message) };
        if !wait.is_zero() {
            let message = format!("Back-off restarting failed container {} in pod {name}_{ns}({uid})", r.spec.name);
            self.event(Some(&self.runs[i]), "Warning", "BackOff", message);
        }
    }

    async fn start(&mut self, i: usize) {
        let Some(pod) = self.pod.clone() else { return };
        let Some(att) = self.attachment.clone() else { return };
        let c = self.runs[i].spec.clone();
        // A restart (after an exit) counts; retrying a start that never ran does not.
        let restart = self.runs[i].restart_count + i32::from(self.runs[i].restarting);
        let (cm_names, secret_names) = env::references(&c);
        let sources = Sources {
            services: self.services(&pod),
            config_maps: self.config_maps(&cm_names).await.into_iter().collect(),
            secrets: self.secrets(&secret_names).await.into_iter().collect(),
        };
        let rt = env::Runtime { host_ip: self.shared.host_ip, pod_ips: vec![att.ip] };
        let env = match env::container_env(&pod, &c, &rt, &sources) {
            Ok(e) => e,
            Err(message) => {
                self.event(Some(&self.runs[i]), "Warning", "Failed", format!("Error: {message}"));
                self.runs[i].state =
                    State::Waiting { reason: "CreateContainerConfigError".into(), message: Some(message) };
                return;
            }
        };
        let mounts = match volumes::mounts(&c, &self.volumes) {
            Ok(m) => m,
            Err(message) => {
                self.event(Some(&self.runs[i]), "Warning", "Failed", format!("Error: {message}"));
                self.runs[i].state =
                    State::Waiting { reason: "CreateContainerConfigError".into(), message: Some(message) };
                return;
            }
        };
        let resolv = files::resolv_conf(&pod, &self.shared.dns, &self.shared.host_resolv);
        let sc = c.security_context.as_ref();
        let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
        let spec = ContainerSpec {
            id: format!("{}_{}_{restart}", self.uid, c.name),
            netns: att.netns.clone(),
            hostname: files::hostname(&pod),
            resolv_conf: resolv.render(),
            hosts: files::hosts(&pod, &[att.ip], &self.shared.dns.domain),
            mounts,
            argv: argv(&c, &env),
            env,
            working_dir: c.working_dir.clone().map(PathBuf::from),
            run_as_user: sc
                .and_then(|s| s.run_as_user)
                .or(psc.and_then(|s| s.run_as_user))
                .and_then(|u| u32::try_from(u).ok()),
            run_as_group: sc
                .and_then(|s| s.run_as_group)
                .or(psc.and_then(|s| s.run_as_group))
                .and_then(|g| u32::try_from(g).ok()),
            stdin: c.stdin.unwrap_or(false),
            tty: c.tty.unwrap_or(false),
            demo_ports: demo_ports(&c),
            pod_name: pod.metadata.name.clone().unwrap_or_default(),
        };
        let r = &mut self.runs[i];
        r.restart_count = restart;
        r.restarting = false;
        r.id = Some(spec.id.clone());
        r.restart_after = None;
        match self.shared.sandbox.start(&spec).await {
            Ok(st) if st.has_ended() => {
                tracing::info!(pod = %self.key, container = %c.name, reason = ?st.reason, message = ?st.message, "container failed to start");
                r.state = State::Terminated(terminated_from(&st));
            }
            Ok(st) => {
                tracing::info!(pod = %self.key, container = %c.name, id = %spec.id, "container started");
                r.state = State::Running { started_at: st.started_at.map(rfc3339).unwrap_or_else(now) };
                r.started = Some(Instant::now());
                start_probes(r);
            }
            Err(e) => match self.shared.sandbox.state(&spec.id).filter(|st| st.has_ended()) {
                // A start error (e.g. no such command): terminated with reason StartError, as
                // containerd reports it; the restart policy and back-off then apply.
                Some(st) => {
                    tracing::info!(pod = %self.key, container = %c.name, error = %e, "container failed to start");
                    r.state = State::Terminated(terminated_from(&st));
                }
                None => {
                    tracing::warn!(pod = %self.key, container = %c.name, error = %e, "starting the container failed");
                    r.state = State::Waiting { reason: "RunContainerError".into(), message: Some(e.to_string()) };
                    r.restart_after = Some(Instant::now() + BACKOFF_INITIAL);
                    // The retry reuses the id: drop what this attempt left, unless it runs.
                    if self.shared.sandbox.state(&spec.id).is_none_or(|st| !st.shim_alive) {
                        let _ = self.shared.sandbox.remove(&spec.id);
                    }
                }
            },
        }
        let r = &self.runs[i];
        match &r.state {
            State::Running { .. } => {
                self.event(Some(r), "Normal", "Created", format!("Created container {}", c.name));
                self.event(Some(r), "Normal", "Started", format!("Started container {}", c.name));
            }
            State::Terminated(t) => {
                let why = t.message.clone().unwrap_or_else(|| t.reason.clone());
                self.event(Some(r), "Warning", "Failed", format!("Error: {why}"));
            }
            State::Waiting { message, .. } => {
                self.event(Some(r), "Warning", "Failed", format!("Error: {}", message.clone().unwrap_or_default()));
            }
        }
    }

    /// Runs the probes that are due; a liveness or startup failure kills the container (the
    /// restart policy then applies).
    async fn probe(&mut self) {
        let Some(att) = self.attachment.clone() else { return };
        let target = probe::Target { pod_ip: att.ip, netns: att.netns.clone() };
        let now = Instant::now();
        for i in 0..self.runs.len() {
            if !self.runs[i].running() {
                continue;
            }
            let id = self.runs[i].id.clone().unwrap_or_default();
            let spec = self.runs[i].spec.clone();
            let startup_passed = self.runs[i].startup.as_ref().is_none_or(|s| s.passing);
            let mut kill: Option<String> = None;
            let mut unhealthy: Vec<String> = vec![];
            for kind in [Kind::Startup, Kind::Readiness, Kind::Liveness] {
                if kind != Kind::Startup && !startup_passed {
                    continue;
                }
                let r = &mut self.runs[i];
                let slot = match kind {
                    Kind::Startup => &mut r.startup,
                    Kind::Readiness => &mut r.readiness,
                    Kind::Liveness => &mut r.liveness,
                };
                let Some(schedule) = slot.as_mut() else { continue };
                if kind == Kind::Startup && schedule.passing {
                    continue;
                }
                if !schedule.due(now) {
                    continue;
                }
                let sandbox = &self.shared.sandbox;
                let outcome = probe::run(&schedule.probe.clone(), &spec, &target, |argv| {
                    sandbox.enter(&id, argv).map_err(|e| e.to_string())
                })
                .await;
                let streak = schedule.last_failure.is_some();
                if let Outcome::Failure(why) = &outcome {
                    tracing::debug!(pod = %self.key, container = %spec.name, ?kind, %why, "probe failed");
                    // One event per failing streak (kubelet's correlator folds the repeats).
                    if !streak {
                        unhealthy.push(format!("{kind:?} probe failed: {why}"));
                    }
                }
                let (ns, pod) = component::informer::split_key(&self.key);
                let kind_name = format!("{kind:?}");
                self.shared.metrics.probe(&kind_name, outcome == Outcome::Success, &spec.name, pod, ns);
                let changed = schedule.record(outcome, Instant::now());
                if changed {
                    tracing::info!(pod = %self.key, container = %spec.name, ?kind, passing = schedule.passing, "probe result changed");
                }
                if matches!(kind, Kind::Liveness | Kind::Startup) && changed && !schedule.passing {
                    let what = if kind == Kind::Liveness { "liveness" } else { "startup" };
                    kill = Some(format!("Container {} failed {what} probe, will be restarted", spec.name));
                }
            }
            for message in unhealthy {
                self.event(Some(&self.runs[i]), "Warning", "Unhealthy", message);
            }
            if let Some(message) = kill {
                tracing::info!(pod = %self.key, container = %spec.name, "{message}");
                self.event(Some(&self.runs[i]), "Normal", "Killing", message);
                let grace = self.grace();
                self.stop_container(i, grace).await;
            }
        }
    }

    fn grace(&self) -> Duration {
        let s = self.pod.as_ref().and_then(|p| p.spec.as_ref()?.termination_grace_period_seconds).unwrap_or(30);
        Duration::from_secs(s.max(0) as u64)
    }

    /// SIGTERM, then SIGKILL after `grace`; records the exit.
    async fn stop_container(&mut self, i: usize, grace: Duration) {
        let Some(id) = self.runs[i].id.clone() else { return };
        let sandbox = &self.shared.sandbox;
        if sandbox.state(&id).is_some_and(|s| !s.has_ended()) {
            self.pre_stop(i, grace).await;
            let _ = sandbox.signal(&id, Signal::SIGTERM);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline && sandbox.state(&id).is_some_and(|s| !s.has_ended() && s.shim_alive) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if sandbox.state(&id).is_some_and(|s| !s.has_ended()) {
                let _ = sandbox.signal(&id, Signal::SIGKILL);
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline && sandbox.state(&id).is_some_and(|s| !s.has_ended() && s.shim_alive) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        if let Some(st) = sandbox.state(&id) {
            self.runs[i].state = State::Terminated(terminated_from(&st));
        }
    }

    /// An exec preStop hook, bounded by the grace period.
    async fn pre_stop(&self, i: usize, grace: Duration) {
        let r = &self.runs[i];
        let Some(exec) = r.spec.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()).and_then(|h| h.exec.as_ref())
        else {
            return;
        };
        let Some(id) = &r.id else { return };
        let argv = exec.command.clone().unwrap_or_default();
        if let Ok(cmd) = self.shared.sandbox.enter(id, &argv) {
            let mut cmd = tokio::process::Command::from(cmd);
            cmd.kill_on_drop(true)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            if let Ok(mut child) = cmd.spawn() {
                let _ = tokio::time::timeout(grace, child.wait()).await;
            }
        }
    }

    /// Stops every container (graceful deletion, or the pod vanished).
    async fn stop(&mut self, grace: Duration) {
        if self.runs.is_empty() {
            // Never synced in this agent's life: stop whatever the supervisor holds for it.
            let prefix = format!("{}_", self.uid);
            for st in self.shared.sandbox.list().into_iter().filter(|s| s.id.starts_with(&prefix) && !s.has_ended()) {
                let _ = self.shared.sandbox.signal(&st.id, Signal::SIGKILL);
            }
            return;
        }
        let stops: Vec<usize> = (0..self.runs.len()).filter(|&i| self.runs[i].running()).collect();
        // Containers stop in parallel in kubelet; here one after another within one deadline.
        let deadline = Instant::now() + grace;
        for i in stops {
            let message = format!("Stopping container {}", self.runs[i].spec.name);
            self.event(Some(&self.runs[i]), "Normal", "Killing", message);
            let left = deadline.saturating_duration_since(Instant::now());
            self.stop_container(i, left).await;
        }
    }

    /// Removes the containers' records, the volumes and the pod's network.
    async fn teardown(&mut self) {
        let prefix = format!("{}_", self.uid);
        for st in self.shared.sandbox.list().into_iter().filter(|s| s.id.starts_with(&prefix)) {
            if !st.has_ended() && st.shim_alive {
                let _ = self.shared.sandbox.signal(&st.id, Signal::SIGKILL);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if let Err(e) = self.shared.sandbox.remove(&st.id) {
                tracing::warn!(pod = %self.key, id = %st.id, error = %e, "removing container state failed");
            }
        }
        let dir = self.shared.state_dir.join("pods").join(&self.uid);
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = self.shared.net.detach(&self.uid).await {
            tracing::warn!(pod = %self.key, error = %e, "removing the pod network failed");
        }
        tracing::info!(pod = %self.key, "pod torn down");
    }

    /// The end of graceful deletion: the API object goes (delete with grace 0, for this UID).
    async fn finalize(&self) {
        let (ns, name) = component::informer::split_key(&self.key);
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), ns);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(self.uid.clone()), resource_version: None }),
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => tracing::info!(pod = %self.key, "pod deleted"),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => tracing::warn!(pod = %self.key, error = %e, "final pod delete failed"),
        }
    }

    fn services(&self, pod: &Pod) -> Vec<Service> {
        // The namespace's Services, and the master Service (from the namespace index).
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let services = &self.shared.services;
        let mut out: Vec<Service> = services.indexed(BY_NAMESPACE, ns).iter().map(|s| (**s).clone()).collect();
        if ns != "default" {
            out.extend(services.get("default", "kubernetes").map(|s| (*s).clone()));
        }
        out
    }

    async fn config_maps(&self, names: &[String]) -> volumes::Data {
        let (ns, _) = component::informer::split_key(&self.key);
        let api: Api<ConfigMap> = Api::namespaced(self.shared.client.clone(), ns);
        let mut out = volumes::Data::new();
        for n in names {
            if let Ok(Some(cm)) = api.get_opt(n).await {
                out.insert(n.clone(), cm.data.unwrap_or_default());
            }
        }
        out
    }

    async fn secrets(&self, names: &[String]) -> volumes::Data {
        let (ns, _) = component::informer::split_key(&self.key);
        let api: Api<Secret> = Api::namespaced(self.shared.client.clone(), ns);
        let mut out = volumes::Data::new();
        for n in names {
            if let Ok(Some(s)) = api.get_opt(n).await {
                let mut data: BTreeMap<String, String> = s.string_data.unwrap_or_default();
                for (k, v) in s.data.unwrap_or_default() {
                    data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                }
                out.insert(n.clone(), data);
            }
        }
        out
    }

    async fn write_status(&mut self) {
        if self.pod.is_none() {
            return;
        }
        let init: Vec<status::Container> = self.runs.iter().filter(|r| r.init).map(Run::view).collect();
        let containers: Vec<status::Container> = self.runs.iter().filter(|r| !r.init).map(Run::view).collect();
        let ips: Vec<IpAddr> = self.attachment.iter().map(|a| a.ip).collect();
        let previous: Vec<Value> =
            self.written.as_ref().and_then(|s| s["conditions"].as_array().cloned()).unwrap_or_default();
        let policy = self.restart_policy();
        let t = now();
        let view = status::PodView {
            restart_policy: &policy,
            sandbox_ready: self.attachment.is_some(),
            init_containers: &init,
            containers: &containers,
            pod_ips: &ips,
            host_ip: self.shared.host_ip,
            start_time: &self.start_time,
            previous_conditions: &previous,
            now: &t,
        };
        let status = status::pod_status(&view);
        if self.written.as_ref() == Some(&status) {
            return;
        }
        let (ns, name) = component::informer::split_key(&self.key);
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), ns);
        match api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await {
            Ok(_) => self.written = Some(status),
            Err(e) => tracing::warn!(pod = %self.key, error = %e, "writing pod status failed; retrying"),
        }
    }
}

fn succeeded(r: &Run) -> bool {
    matches!(&r.state, State::Terminated(t) if t.exit_code == 0)
}

/// Sets up a freshly started container's probe schedules.
fn start_probes(r: &mut Run) {
    let at = Instant::now();
    r.startup = r.spec.startup_probe.clone().map(|p| Schedule::new(p, Kind::Startup, at));
    r.readiness = r.spec.readiness_probe.clone().map(|p| Schedule::new(p, Kind::Readiness, at));
    r.liveness = r.spec.liveness_probe.clone().map(|p| Schedule::new(p, Kind::Liveness, at));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn argv_follows_the_no_image_rule() {
        let c: Container =
            serde_json::from_value(json!({"name": "c", "command": ["sh", "-c"], "args": ["echo $(MSG)"]})).unwrap();
        assert_eq!(argv(&c, &[("MSG".into(), "hi".into())]), ["sh", "-c", "echo hi"]);
        let args_only: Container = serde_json::from_value(json!({"name": "c", "args": ["sleep", "3600"]})).unwrap();
        assert_eq!(argv(&args_only, &[]), ["sleep", "3600"]);
        let neither: Container = serde_json::from_value(
            json!({"name": "c", "ports": [{"containerPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]}),
        )
        .unwrap();
        assert!(argv(&neither, &[]).is_empty());
        assert_eq!(demo_ports(&neither), [(8080, Protocol::Tcp), (53, Protocol::Udp)]);
    }
}

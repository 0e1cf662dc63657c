//! The checks that need only the objects (kubernetes.io "Debug Services", steps 1-5 and the
//! load balancer status): pure functions from [`Facts`] to verdicts, each with a plain sentence
//! and what to do.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::facts::{self, Facts, Resolved};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skipped => "skipped",
        }
    }
}

/// One line of the checklist. `name` is stable (scripts match on it); a check that is made per
/// Service port or per node appears once per port.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub message: String,
    pub hint: Option<String>,
}

impl Check {
    pub fn new(name: &'static str, status: Status, message: impl Into<String>) -> Check {
        Check { name, status, message: message.into(), hint: None }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Check {
        self.hint = Some(hint.into());
        self
    }
}

/// Whether the Service works as far as the checks tell: no check failed.
pub fn healthy(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != Status::Fail)
}

/// The checks over the objects alone, in the order a person debugging would make them. When
/// the Service does not exist that is the only check.
pub fn inspect(f: &Facts) -> Vec<Check> {
    let Some(svc) = &f.service else { return vec![missing_service(f)] };
    let mut out = vec![service_exists(f, svc)];
    if facts::service_type(svc) == "ExternalName" {
        return out;
    }
    let selected = facts::selected_pods(f);
    match facts::selector(svc) {
        None => out.push(
            Check::new(
                "selector",
                Status::Skipped,
                "The Service has no selector, so no pods are looked for: its endpoints are whatever \
                 EndpointSlices labelled kubernetes.io/service-name name it.",
            )
            .hint("That is right for a Service in front of something outside the cluster; otherwise add a selector."),
        ),
        Some(sel) => {
            out.push(selector_check(f, sel, &selected));
            if !selected.is_empty() {
                out.push(pods_check(f, &selected));
            }
        }
    }
    out.push(endpoints_check(f, svc, &selected));
    if !selected.is_empty() {
        out.extend(facts::ports(svc).iter().map(|p| target_port_check(p, &selected)));
    }
    if facts::service_type(svc) == "LoadBalancer" {
        out.push(load_balancer_check(svc));
    }
    out
}

fn missing_service(f: &Facts) -> Check {
    let mut c =
        Check::new("service", Status::Fail, format!("There is no Service {} in namespace {}.", f.name, f.namespace));
    let similar = facts::similar_names(&f.name, &f.service_names);
    let mut hints = vec![];
    if !f.namespaces_with_name.is_empty() {
        hints.push(format!(
            "A Service {} exists in namespace {}: pass -n {}.",
            f.name,
            f.namespaces_with_name.join(", "),
            f.namespaces_with_name[0]
        ));
    }
    if !similar.is_empty() {
        hints.push(format!("Services with similar names in {}: {}.", f.namespace, similar.join(", ")));
    }
    if hints.is_empty() {
        hints.push(format!(
            "Create it (kubectl expose), or list what there is: kubectl get svc -n {} (or -A).",
            f.namespace
        ));
    }
    c.hint = Some(hints.join(" "));
    c
}

fn service_exists(f: &Facts, svc: &Service) -> Check {
    let type_ = facts::service_type(svc);
    if type_ == "ExternalName" {
        let target = svc.spec.as_ref().and_then(|s| s.external_name.clone()).unwrap_or_default();
        return Check::new(
            "service",
            Status::Pass,
            format!(
                "Service {}/{} is an ExternalName Service: the cluster DNS answers its name with a CNAME to \
                 {target}. There are no pods, endpoints, ClusterIP or proxying to check.",
                f.namespace, f.name
            ),
        )
        .hint(format!("If {target} does not answer, debug it where it lives; only the DNS check applies here."));
    }
    let ip = match (facts::is_headless(svc), facts::cluster_ip(svc)) {
        (true, _) => "headless (clusterIP: None)".to_owned(),
        (false, Some(ip)) => format!("clusterIP {ip}"),
        (false, None) => "no clusterIP yet".to_owned(),
    };
    let ports: Vec<String> = facts::ports(svc)
        .iter()
        .map(|p| format!("{} -> {}", facts::show_port(p), facts::show_target(&facts::target_port(p))))
        .collect();
    let ports = if ports.is_empty() { "no ports".to_owned() } else { format!("ports {}", ports.join(", ")) };
    Check::new(
        "service",
        Status::Pass,
        format!("Service {}/{} exists: type {type_}, {ip}, {ports}.", f.namespace, f.name),
    )
}

fn selector_check(f: &Facts, sel: &BTreeMap<String, String>, selected: &[&Pod]) -> Check {
    let shown = facts::show_labels(sel);
    if !selected.is_empty() {
        let names: Vec<&str> = selected.iter().map(|p| facts::name_of(p)).collect();
        return Check::new(
            "selector",
            Status::Pass,
            format!("The selector {shown} selects {} pod(s): {}.", selected.len(), names.join(", ")),
        );
    }
    let mut hints = near_misses(sel, f.pods.iter().filter(|p| facts::namespace_of(p) == f.namespace));
    let elsewhere: BTreeSet<&str> = f
        .pods
        .iter()
        .filter(|p| facts::namespace_of(p) != f.namespace && facts::selector_matches(sel, &facts::labels_of(p)))
        .map(facts::namespace_of)
        .collect();
    if !elsewhere.is_empty() {
        hints.push(format!(
            "Pods matching it run in namespace {}, but a Service only selects pods of its own namespace.",
            elsewhere.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if hints.is_empty() {
        hints.push(format!(
            "There are no pods in namespace {} at all: create the workload, or check the namespace.",
            f.namespace
        ));
    }
    Check::new("selector", Status::Fail, format!("The selector {shown} selects no pods in namespace {}.", f.namespace))
        .hint(format!(
            "Make the Service's selector and the pod template's labels agree (kubectl get pods --show-labels). {}",
            hints.join(" ")
        ))
}

/// Pods whose labels come close to `sel` (share keys with it), best first, as sentences.
pub fn near_misses<'a>(sel: &BTreeMap<String, String>, pods: impl Iterator<Item = &'a Pod>) -> Vec<String> {
    // Pods of one workload share their labels but for a hash: show each label set once.
    let mut seen = BTreeSet::new();
    let mut scored: Vec<(usize, usize, usize, String)> = vec![];
    for p in pods {
        let mut labels = facts::labels_of(p);
        labels.remove("pod-template-hash");
        let same_keys = sel.keys().filter(|k| labels.contains_key(*k)).count();
        if same_keys == 0 || !seen.insert(labels.clone()) {
            continue;
        }
        let equal = sel.iter().filter(|(k, v)| labels.get(*k) == Some(*v)).count();
        // Among pods as close by keys, the one whose values differ least (a typo) first.
        let distance: usize =
            sel.iter().filter_map(|(k, v)| labels.get(k).map(|has| facts::edit_distance(has, v))).sum();
        let differences: Vec<String> = sel
            .iter()
            .filter(|(k, v)| labels.get(*k) != Some(*v))
            .map(|(k, v)| match labels.get(k) {
                Some(has) => format!("{k} is {has:?}, not {v:?}"),
                None => format!("it has no {k} label"),
            })
            .collect();
        scored.push((
            equal,
            same_keys,
            distance,
            format!(
                "Pod {} has labels {}: {}.",
                facts::name_of(p),
                facts::show_labels(&labels),
                differences.join(", ")
            ),
        ));
    }
    scored.sort_by_key(|s| (std::cmp::Reverse((s.0, s.1)), s.2));
    scored.into_iter().take(3).map(|(_, _, _, s)| s).collect()
}

fn pods_check(f: &Facts, selected: &[&Pod]) -> Check {
    let ready: Vec<&&Pod> = selected.iter().filter(|p| facts::phase(p) == "Running" && facts::is_ready(p)).collect();
    let mut problems = vec![];
    let mut hints = BTreeSet::new();
    for p in selected.iter().filter(|p| !(facts::phase(p) == "Running" && facts::is_ready(p))) {
        let (why, hint) = not_ready_reason(f, p);
        problems.push(format!("{} is not ready: {why}", facts::name_of(p)));
        hints.insert(hint);
    }
    let restarts: Vec<String> = selected
        .iter()
        .filter_map(|p| {
            let n: i32 = p.status.as_ref()?.container_statuses.iter().flatten().map(|c| c.restart_count).sum();
            (n > 0).then(|| format!("{} restarted {n} time(s)", facts::name_of(p)))
        })
        .collect();
    let mut message = format!("{} of {} selected pod(s) are Running and Ready.", ready.len(), selected.len());
    for p in problems.iter().chain(restarts.iter()) {
        message.push(' ');
        message.push_str(p);
        message.push('.');
    }
    let status = match (ready.len(), problems.len()) {
        (_, 0) => Status::Pass,
        (0, _) => Status::Fail,
        _ => Status::Warn,
    };
    let mut c = Check::new("pods", status, message);
    if !hints.is_empty() {
        c.hint = Some(hints.into_iter().collect::<Vec<_>>().join(" "));
    }
    c
}

/// Why a selected pod is not Running and Ready, and what to look at.
fn not_ready_reason(f: &Facts, p: &Pod) -> (String, String) {
    let name = facts::name_of(p);
    let describe = format!("kubectl describe pod {name} -n {}", f.namespace);
    if let Some(c) = facts::condition(p, "PodScheduled").filter(|c| c.status != "True") {
        let why = c.message.clone().unwrap_or_else(|| "no node was chosen".to_owned());
        return (format!("not scheduled ({why})"), format!("See why it is not scheduled: {describe}."));
    }
    let statuses = p.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    for cs in &statuses {
        let state = cs.state.as_ref();
        if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.clone().unwrap_or_else(|| "Waiting".to_owned());
            let msg = w.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
            let why = format!("container {} is waiting ({reason}{msg}), {} restart(s)", cs.name, cs.restart_count);
            let hint = if reason == "CrashLoopBackOff" {
                format!(
                    "The container keeps exiting: read its last run's log with kubectl logs {name} -c {} --previous.",
                    cs.name
                )
            } else {
                format!("See the pod's events: {describe}.")
            };
            return (why, hint);
        }
        if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            let reason = t.reason.clone().unwrap_or_else(|| "Terminated".to_owned());
            return (
                format!("container {} terminated ({reason}, exit code {})", cs.name, t.exit_code),
                format!("Read its log: kubectl logs {name} -c {}.", cs.name),
            );
        }
    }
    if facts::phase(p) != "Running" {
        return (format!("its phase is {}", facts::phase(p)), format!("See the pod's events: {describe}."));
    }
    let unready: Vec<&str> = statuses.iter().filter(|c| !c.ready).map(|c| c.name.as_str()).collect();
    let probe = last_unhealthy(f, p);
    let why = match (&probe, unready.is_empty()) {
        (Some(msg), _) => format!("its probe fails: {msg}"),
        (None, false) => format!("container(s) {} not ready", unready.join(", ")),
        (None, true) => "its Ready condition is not True".to_owned(),
    };
    let hint = match probe {
        Some(_) => format!(
            "The readiness probe decides which pods get traffic: fix the app, or the probe's path and port \
             ({describe} shows both)."
        ),
        None => format!("See the pod's conditions and events: {describe}."),
    };
    (why, hint)
}

/// The message of the pod's latest `Unhealthy` event (a failing probe), as kubelet writes it.
fn last_unhealthy(f: &Facts, p: &Pod) -> Option<String> {
    let uid = facts::uid_of(p);
    f.events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Unhealthy"))
        .filter(|e| {
            let o = &e.involved_object;
            o.kind.as_deref() == Some("Pod")
                && match o.uid.as_deref() {
                    Some(u) if !u.is_empty() => u == uid,
                    _ => o.name.as_deref() == Some(facts::name_of(p)),
                }
        })
        .max_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0).or(e.event_time.as_ref().map(|t| t.0)))
        .and_then(|e| e.message.clone())
}

fn endpoints_check(f: &Facts, svc: &Service, selected: &[&Pod]) -> Check {
    let (ready, not_ready) = facts::slice_addresses(&f.slices);
    let legacy = f.endpoints.as_ref().map(|e| {
        let subsets = e.subsets.iter().flatten();
        let (a, n) = subsets.fold((0, 0), |(a, n), s| {
            (a + s.addresses.as_ref().map_or(0, Vec::len), n + s.not_ready_addresses.as_ref().map_or(0, Vec::len))
        });
        format!("kubectl get endpoints shows {a} ready and {n} not-ready address(es)")
    });
    let label = format!("{}={}", component::labels::SERVICE_NAME, f.name);
    let has_selector = facts::selector(svc).is_some();
    if f.slices.is_empty() {
        let hint = if has_selector {
            "The endpoints controller writes them: check that it runs (portico up, or portico controllers).".to_owned()
        } else {
            format!(
                "A Service without a selector gets endpoints only from you: create an EndpointSlice labelled {label} \
                 (or an Endpoints object named {}, which is mirrored into one).",
                f.name
            )
        };
        let legacy = legacy.map(|l| format!(" ({l})")).unwrap_or_default();
        return Check::new("endpoints", Status::Fail, format!("No EndpointSlice is labelled {label}{legacy}."))
            .hint(hint);
    }
    let slice_names: Vec<&str> = f.slices.iter().filter_map(|s| s.metadata.name.as_deref()).collect();
    let mut message = format!(
        "EndpointSlice(s) {} list {} ready endpoint(s){} and {} not ready{}",
        slice_names.join(", "),
        ready.len(),
        list(&ready),
        not_ready.len(),
        list(&not_ready),
    );
    if let Some(l) = legacy {
        message.push_str(&format!("; {l}"));
    }
    message.push('.');
    if ready.is_empty() {
        let hint = if has_selector && selected.is_empty() {
            "No pod is selected (see selector), so there is nothing to list."
        } else if has_selector {
            "A pod is listed as ready only when it is Ready: see the pods check. Until then connections to the \
             Service fail."
        } else {
            "Mark the endpoints ready (conditions.ready) once they serve."
        };
        return Check::new("endpoints", Status::Fail, message).hint(hint);
    }
    // Ready pods the slices leave out: a lagging controller, or a named targetPort the pod lacks.
    let missing: Vec<String> = selected
        .iter()
        .filter(|p| facts::is_ready(p))
        .filter_map(|p| facts::pod_ip(p).map(|ip| (facts::name_of(p), ip.to_string())))
        .filter(|(_, ip)| !ready.contains(ip))
        .map(|(n, ip)| format!("{n} ({ip})"))
        .collect();
    if !missing.is_empty() {
        return Check::new(
            "endpoints",
            Status::Warn,
            format!("{message} Ready pods missing from them: {}.", missing.join(", ")),
        )
        .hint("The controller may be catching up; if this stays, a named targetPort these pods do not declare keeps them out (see target-port).");
    }
    Check::new("endpoints", Status::Pass, message)
}

fn list(v: &[String]) -> String {
    if v.is_empty() { String::new() } else { format!(" ({})", v.join(", ")) }
}

/// Whether the port's targetPort lands on a port the selected pods declare.
pub fn target_port_check(sp: &k8s_openapi::api::core::v1::ServicePort, selected: &[&Pod]) -> Check {
    let target = facts::target_port(sp);
    let what = format!("Port {} -> targetPort {}", facts::show_port(sp), facts::show_target(&target));
    let resolved: Vec<(&Pod, Resolved)> = selected.iter().map(|p| (*p, facts::resolve(sp, p))).collect();
    let not_found: Vec<&str> = resolved
        .iter()
        .filter(|(_, r)| matches!(r, Resolved::NameNotFound(_)))
        .map(|(p, _)| facts::name_of(p))
        .collect();
    let undeclared: Vec<&str> =
        resolved.iter().filter(|(_, r)| matches!(r, Resolved::Undeclared(_))).map(|(p, _)| facts::name_of(p)).collect();
    let declares = format!("they declare {}", facts::show_declared(selected[0]));
    if !not_found.is_empty() {
        return Check::new(
            "target-port",
            Status::Fail,
            format!(
                "{what}: no {} port named {} in pod(s) {} ({declares}), so they get no endpoint for it.",
                facts::protocol(sp),
                facts::show_target(&target),
                not_found.join(", ")
            ),
        )
        .hint("Set targetPort to a port name or number the pods' containers declare (spec.containers[].ports).");
    }
    if !undeclared.is_empty() {
        let n = match target {
            IntOrString::Int(n) => n.to_string(),
            IntOrString::String(s) => s,
        };
        return Check::new(
            "target-port",
            Status::Warn,
            format!(
                "{what}: no container of pod(s) {} declares port {n}/{} ({declares}). Kubernetes allows it, but then the app \
                 must listen on {n} all the same.",
                undeclared.join(", "),
                facts::protocol(sp)
            ),
        )
        .hint(format!(
            "If the app listens on a declared port, set targetPort to it; the pod-port check below tells whether anything answers on {n}."
        ));
    }
    let ports: BTreeSet<String> = resolved
        .iter()
        .map(|(_, r)| match r {
            Resolved::Declared { port, name: Some(n) } => format!("{port} ({n})"),
            other => other.port().map(|p| p.to_string()).unwrap_or_default(),
        })
        .collect();
    Check::new(
        "target-port",
        Status::Pass,
        format!(
            "{what}: declared by all {} selected pod(s), as {}.",
            selected.len(),
            ports.into_iter().collect::<Vec<_>>().join(", ")
        ),
    )
}

fn load_balancer_check(svc: &Service) -> Check {
    let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.clone());
    let addrs: Vec<String> =
        ingress.iter().flatten().filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone())).collect();
    if addrs.is_empty() {
        return Check::new(
            "load-balancer",
            Status::Fail,
            "No load balancer address is assigned yet (EXTERNAL-IP <pending>): status.loadBalancer.ingress is empty.",
        )
        .hint(
            "Something must assign one: a cloud controller, MetalLB, or Portico's LB IPAM (portico up \
             --loadbalancer-ip-pool). Meanwhile the NodePorts work.",
        );
    }
    Check::new("load-balancer", Status::Pass, format!("Load balancer address(es) assigned: {}.", addrs.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod(name: &str, labels: Value, extra: Value) -> Pod {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": labels},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"containerPort": 8080, "name": "http"}]}]},
            "status": {"phase": "Running", "podIP": format!("10.0.0.{}", name.len()),
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": "", "imageID": ""}]}
        });
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
    }

    fn merge(a: &mut Value, b: Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn service(spec: Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec})).unwrap()
    }

    fn facts(svc: Option<Service>, pods: Vec<Pod>) -> Facts {
        Facts { namespace: "default".into(), name: "web".into(), service: svc, pods, ..Default::default() }
    }

    fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no {name} check in {checks:#?}"))
    }

    #[test]
    fn a_missing_service_names_its_namesakes_and_look_alikes() {
        let mut f = facts(None, vec![]);
        f.service_names = vec!["web-svc".into(), "db".into()];
        f.namespaces_with_name = vec!["prod".into()];
        let checks = inspect(&f);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, Status::Fail);
        let hint = checks[0].hint.as_deref().unwrap();
        assert!(hint.contains("-n prod") && hint.contains("web-svc") && !hint.contains("db"), "{hint}");
        assert!(!healthy(&checks));
    }

    #[test]
    fn a_selector_that_matches_nothing_shows_the_near_misses() {
        let svc = service(json!({"selector": {"app": "wbe"}, "ports": [{"port": 80}]}));
        let pods = vec![
            pod("web-1", json!({"app": "web", "pod-template-hash": "a"}), json!({})),
            pod("web-2", json!({"app": "web", "pod-template-hash": "b"}), json!({})),
            pod("other", json!({"team": "x"}), json!({})),
        ];
        let checks = inspect(&facts(Some(svc), pods));
        let c = find(&checks, "selector");
        assert_eq!(c.status, Status::Fail);
        let hint = c.hint.as_deref().unwrap();
        assert!(hint.contains(r#"app is "web", not "wbe""#), "{hint}");
        assert_eq!(hint.matches("Pod web-").count(), 1, "one line per label set: {hint}");
        assert!(!hint.contains("other"), "{hint}");
        assert!(checks.iter().all(|c| c.name != "pods" && c.name != "target-port"));
    }

    #[test]
    fn near_misses_rank_the_pod_that_differs_least_first() {
        let sel: BTreeMap<String, String> = [("app", "web"), ("tier", "fe")].map(|(k, v)| (k.into(), v.into())).into();
        let pods = [
            pod("a", json!({"app": "db", "tier": "be"}), json!({})),
            pod("b", json!({"app": "web", "tier": "be"}), json!({})),
        ];
        let lines = near_misses(&sel, pods.iter());
        assert!(lines[0].starts_with("Pod b"), "{lines:?}");
        assert_eq!(lines.len(), 2);
        let sel: BTreeMap<String, String> = [("app".to_string(), "shpo".to_string())].into();
        let pods = [pod("notes", json!({"app": "notes"}), json!({})), pod("shop-1", json!({"app": "shop"}), json!({}))];
        assert!(near_misses(&sel, pods.iter())[0].starts_with("Pod shop-1"), "a typo ranks first");
    }

    #[test]
    fn an_unready_pod_reports_its_failing_probe_from_events() {
        let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}));
        let unready = pod(
            "web-2",
            json!({"app": "web"}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}],
                   "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0, "image": "", "imageID": ""}]}}),
        );
        let mut f = facts(Some(svc), vec![pod("web-1", json!({"app": "web"}), json!({})), unready]);
        f.events = vec![
            serde_json::from_value(json!({"metadata": {"name": "e"}, "reason": "Unhealthy",
                "message": "Readiness probe failed: HTTP probe failed with statuscode: 500",
                "involvedObject": {"kind": "Pod", "name": "web-2", "uid": "uid-web-2"}}))
            .unwrap(),
        ];
        let c = find(&inspect(&f), "pods").clone();
        assert_eq!(c.status, Status::Warn, "one of two ready: {c:?}");
        assert!(c.message.contains("web-2 is not ready: its probe fails: Readiness probe failed: HTTP"), "{c:?}");
    }

    #[test]
    fn crash_looping_pods_fail_and_point_at_the_previous_log() {
        let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        let crashing = pod(
            "web-1",
            json!({"app": "web"}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "c", "ready": false, "restartCount": 4, "image": "", "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}}]}}),
        );
        let c = find(&inspect(&facts(Some(svc), vec![crashing])), "pods").clone();
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.contains("CrashLoopBackOff") && c.message.contains("4 restart"), "{c:?}");
        assert!(c.hint.unwrap().contains("--previous"));
    }

    #[test]
    fn target_ports_fail_on_unknown_names_and_warn_on_undeclared_numbers() {
        let pods = [pod("web-1", json!({"app": "web"}), json!({}))];
        let refs: Vec<&Pod> = pods.iter().collect();
        let sp = |t: Value| serde_json::from_value(json!({"port": 80, "targetPort": t})).unwrap();
        assert_eq!(target_port_check(&sp(json!("http")), &refs).status, Status::Pass);
        assert_eq!(target_port_check(&sp(json!(8080)), &refs).status, Status::Pass);
        let named = target_port_check(&sp(json!("htp")), &refs);
        assert_eq!(named.status, Status::Fail);
        assert!(named.message.contains("8080/TCP (http)"), "shows what the pods declare: {named:?}");
        assert_eq!(target_port_check(&sp(json!(9999)), &refs).status, Status::Warn);
    }

    #[test]
    fn no_ready_endpoints_fail_and_missing_slices_blame_the_controller() {
        let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        let mut f = facts(Some(svc), vec![pod("web-1", json!({"app": "web"}), json!({}))]);
        let c = find(&inspect(&f), "endpoints").clone();
        assert_eq!(c.status, Status::Fail);
        assert!(c.hint.unwrap().contains("endpoints controller"));
        f.slices = vec![
            serde_json::from_value(json!({"metadata": {"name": "web-x"}, "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": false}}]}))
            .unwrap(),
        ];
        let c = find(&inspect(&f), "endpoints").clone();
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.message.contains("0 ready endpoint(s) and 1 not ready (10.0.0.5)"), "{c:?}");
    }

    #[test]
    fn a_selectorless_service_is_judged_by_its_slices() {
        let svc = service(json!({"ports": [{"port": 80}]}));
        let checks = inspect(&facts(Some(svc), vec![]));
        assert_eq!(find(&checks, "selector").status, Status::Skipped);
        let c = find(&checks, "endpoints");
        assert_eq!(c.status, Status::Fail);
        assert!(c.hint.as_deref().unwrap().contains("kubernetes.io/service-name=web"), "{c:?}");
    }

    #[test]
    fn a_pending_load_balancer_fails() {
        let mut svc = service(json!({"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}));
        assert_eq!(load_balancer_check(&svc).status, Status::Fail);
        svc.status = serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}})).unwrap();
        let c = load_balancer_check(&svc);
        assert_eq!(c.status, Status::Pass);
        assert!(c.message.contains("192.0.2.7"));
    }
}

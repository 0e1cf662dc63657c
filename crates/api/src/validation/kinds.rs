//! Per-kind checks, after pkg/apis/{core,apps,networking,discovery,coordination}/validation.
//! Only the cheap and certain parts: required fields, names and keys, enumerations, selectors,
//! immutable fields. Service-specific validation (IPs, node ports, ...) lives elsewhere.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::meta::{validate_annotations, validate_kube_finalizer_name, validate_label_name, validate_labels};
use super::names::{
    is_config_map_key, is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_http_path, is_qualified_name,
    is_relaxed_env_var_name, is_valid_label_value, is_valid_path_segment_name, is_valid_percent, is_valid_port_name,
    is_valid_port_num, is_wildcard_dns1123_subdomain,
};
use super::{
    go_int_or_string, go_label_selector, go_pointer, go_string_map, immutable, quote, semantic_eq, validate_nonnegative,
};
use crate::field::{ErrorList, ErrorType, FieldError, Path};
use crate::json::{child, field, list, object, opt_int, opt_str, spec, str_of};

/// core.MaxSecretSize, also the ConfigMap limit.
const MAX_SECRET_SIZE: usize = 1024 * 1024;
const SUPPORTED_PORT_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

pub(super) fn not_supported_rendered(path: &Path, rendered: String, supported: &[&str]) -> FieldError {
    let list = supported.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    FieldError {
        kind: ErrorType::NotSupported,
        field: path.into(),
        value: Some(rendered),
        detail: format!("supported values: {list}"),
    }
}

fn too_many(path: &Path, actual: usize, max: usize) -> FieldError {
    FieldError {
        kind: ErrorType::TooMany,
        field: path.into(),
        value: Some(actual.to_string()),
        detail: format!("must have at most {max} items"),
    }
}

fn invalid_each(path: &Path, value: &str, msgs: Vec<String>) -> ErrorList {
    msgs.into_iter().map(|msg| FieldError::invalid_str(path, value, msg)).collect()
}

// ---- Pods and pod templates ----------------------------------------------------------------

pub(crate) fn pod(obj: &Value, old: Option<&Value>) -> ErrorList {
    let spec = spec(obj);
    let path = Path::new("spec");
    let mut errs = validate_pod_spec(spec, &path);
    if old.is_none() && !list(spec, "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(path.child("ephemeralContainers"), "cannot be set on create"));
    }
    errs
}

/// The light part of ValidatePodSpec: volumes' names, containers (required, names, images,
/// ports, env names, volume mounts), init containers, restart and DNS policies.
fn validate_pod_spec(spec: &Value, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();

    let mut volumes: Vec<&str> = Vec::new();
    let vpath = path.child("volumes");
    for (i, vol) in list(spec, "volumes").iter().enumerate() {
        let name_path = vpath.index(i).child("name");
        let name = str_of(vol, "name");
        let mut el = ErrorList::new();
        if name.is_empty() {
            el.push(FieldError::required(&name_path, ""));
        } else {
            el.extend(invalid_each(&name_path, name, is_dns1123_label(name)));
        }
        if volumes.contains(&name) {
            el.push(FieldError::duplicate(&name_path, quote(name)));
        }
        if el.is_empty() {
            volumes.push(name);
        } else {
            errs.extend(el);
        }
    }

    let cpath = path.child("containers");
    let containers = list(spec, "containers");
    let mut names: Vec<&str> = Vec::new();
    if containers.is_empty() {
        errs.push(FieldError::required(&cpath, ""));
    } else {
        for (i, c) in containers.iter().enumerate() {
            let p = cpath.index(i);
            errs.extend(validate_container_common(c, &volumes, &p));
            let name = str_of(c, "name");
            if names.contains(&name) {
                errs.push(FieldError::duplicate(p.child("name"), quote(name)));
            } else {
                names.push(name);
            }
            if field(c, "restartPolicy").is_some() {
                errs.push(FieldError::forbidden(p.child("restartPolicy"), "may not be set for non-init containers"));
            }
        }
    }

    let ipath = path.child("initContainers");
    for (i, c) in list(spec, "initContainers").iter().enumerate() {
        let p = ipath.index(i);
        errs.extend(validate_container_common(c, &volumes, &p));
        let name = str_of(c, "name");
        if names.contains(&name) {
            errs.push(FieldError::duplicate(p.child("name"), quote(name)));
        } else if !name.is_empty() {
            names.push(name);
        }
    }

    if let Some(policy) = opt_str(spec, "restartPolicy")
        && !matches!(policy, "Always" | "OnFailure" | "Never")
    {
        errs.push(FieldError::not_supported(path.child("restartPolicy"), policy, &["Always", "OnFailure", "Never"]));
    }
    if let Some(policy) = opt_str(spec, "dnsPolicy")
        && !matches!(policy, "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None")
    {
        errs.push(FieldError::not_supported(
            path.child("dnsPolicy"),
            policy,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        ));
    }
    errs
}

/// validateContainerCommon, reduced.
fn validate_container_common(c: &Value, volumes: &[&str], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let name = str_of(c, "name");
    if name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else {
        errs.extend(invalid_each(&path.child("name"), name, is_dns1123_label(name)));
    }
    if str_of(c, "image").is_empty() {
        errs.push(FieldError::required(path.child("image"), ""));
    }
    if let Some(policy) = opt_str(c, "terminationMessagePolicy")
        && !matches!(policy, "File" | "FallbackToLogsOnError")
    {
        errs.push(FieldError::not_supported(
            path.child("terminationMessagePolicy"),
            policy,
            &["File", "FallbackToLogsOnError"],
        ));
    }

    // validateContainerPorts
    let mut port_names: Vec<&str> = Vec::new();
    for (i, port) in list(c, "ports").iter().enumerate() {
        let p = path.child("ports").index(i);
        let port_name = str_of(port, "name");
        if !port_name.is_empty() {
            let msgs = is_valid_port_name(port_name);
            if !msgs.is_empty() {
                errs.extend(invalid_each(&p.child("name"), port_name, msgs));
            } else if port_names.contains(&port_name) {
                errs.push(FieldError::duplicate(p.child("name"), quote(port_name)));
            } else {
                port_names.push(port_name);
            }
        }
        match opt_int(port, "containerPort").unwrap_or(0) {
            0 => errs.push(FieldError::required(p.child("containerPort"), "")),
            n => errs
                .extend(is_valid_port_num(n).into_iter().map(|m| FieldError::invalid(p.child("containerPort"), n, m))),
        }
        let host_port = opt_int(port, "hostPort").unwrap_or(0);
        if host_port != 0 {
            errs.extend(
                is_valid_port_num(host_port)
                    .into_iter()
                    .map(|m| FieldError::invalid(p.child("hostPort"), host_port, m)),
            );
        }
        if let Some(protocol) = opt_str(port, "protocol").filter(|p| !p.is_empty())
            && !SUPPORTED_PORT_PROTOCOLS.contains(&protocol)
        {
            errs.push(FieldError::not_supported(p.child("protocol"), protocol, SUPPORTED_PORT_PROTOCOLS));
        }
    }

    // ValidateEnv, with RelaxedEnvironmentVariableValidation (on by default since 1.32).
    for (i, env) in list(c, "env").iter().enumerate() {
        let p = path.child("env").index(i).child("name");
        let env_name = str_of(env, "name");
        if env_name.is_empty() {
            errs.push(FieldError::required(&p, ""));
        }
        errs.extend(invalid_each(&p, env_name, is_relaxed_env_var_name(env_name)));
    }

    // ValidateVolumeMounts
    let mut mount_points: Vec<&str> = Vec::new();
    for (i, mount) in list(c, "volumeMounts").iter().enumerate() {
        let p = path.child("volumeMounts").index(i);
        let mount_name = str_of(mount, "name");
        if mount_name.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        }
        if !volumes.contains(&mount_name) {
            errs.push(FieldError::not_found(p.child("name"), quote(mount_name)));
        }
        let mount_path = str_of(mount, "mountPath");
        if mount_path.is_empty() {
            errs.push(FieldError::required(p.child("mountPath"), ""));
        }
        if mount_points.contains(&mount_path) {
            errs.push(FieldError::invalid_str(p.child("mountPath"), mount_path, "must be unique"));
        }
        mount_points.push(mount_path);
    }

    if let Some(policy) = opt_str(c, "imagePullPolicy")
        && !matches!(policy, "Always" | "IfNotPresent" | "Never")
    {
        errs.push(FieldError::not_supported(
            path.child("imagePullPolicy"),
            policy,
            &["Always", "IfNotPresent", "Never"],
        ));
    }
    errs
}

/// ValidatePodTemplateSpec, reduced: template labels and annotations (reported under
/// `<path>.labels`, as upstream does) and the pod spec.
pub(super) fn validate_pod_template(template: &Value, path: &Path) -> ErrorList {
    let meta = child(template, "metadata");
    let spec = spec(template);
    let mut errs = validate_labels(object(meta, "labels"), &path.child("labels"));
    errs.extend(validate_annotations(object(meta, "annotations"), &path.child("annotations")));
    errs.extend(validate_pod_spec(spec, &path.child("spec")));
    if !list(spec, "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(
            path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

// ---- Label selectors -----------------------------------------------------------------------

/// A parsed metav1.LabelSelector (metav1.LabelSelectorAsSelector).
pub(super) enum Selector<'a> {
    /// A nil selector selects nothing.
    Nothing,
    /// An empty selector selects everything.
    Everything,
    Requirements(Vec<(&'a str, &'a str, Vec<&'a str>)>),
}

impl Selector<'_> {
    pub(super) fn is_empty(&self) -> bool {
        matches!(self, Selector::Everything)
    }

    pub(super) fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        match self {
            Selector::Nothing => false,
            Selector::Everything => true,
            Selector::Requirements(reqs) => reqs.iter().all(|(key, op, values)| match *op {
                "Equals" | "In" => get(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => get(key).is_some(),
                _ => get(key).is_none(),
            }),
        }
    }
}

/// LabelSelectorAsSelector: fails on what labels.NewRequirement rejects.
pub(super) fn label_selector_as_selector(sel: Option<&Value>) -> Result<Selector<'_>, ()> {
    let Some(sel) = sel else {
        return Ok(Selector::Nothing);
    };
    let match_labels = object(sel, "matchLabels");
    let expressions = list(sel, "matchExpressions");
    if match_labels.map_or(0, Map::len) + expressions.len() == 0 {
        return Ok(Selector::Everything);
    }
    let valid = |key: &str, values: &[&str]| {
        is_qualified_name(key).is_empty() && values.iter().all(|v| is_valid_label_value(v).is_empty())
    };
    let mut reqs = Vec::new();
    for (k, v) in match_labels.into_iter().flatten() {
        let values = vec![v.as_str().unwrap_or("")];
        if !valid(k, &values) {
            return Err(());
        }
        reqs.push((k.as_str(), "Equals", values));
    }
    for expr in expressions {
        let key = str_of(expr, "key");
        let values: Vec<&str> = list(expr, "values").iter().map(|v| v.as_str().unwrap_or("")).collect();
        let op = str_of(expr, "operator");
        let ok = match op {
            "In" | "NotIn" => !values.is_empty(),
            "Exists" | "DoesNotExist" => values.is_empty(),
            _ => false,
        };
        if !ok || !valid(key, &values) {
            return Err(());
        }
        reqs.push((key, op, values));
    }
    Ok(Selector::Requirements(reqs))
}

/// ValidateLabelSelector (AllowInvalidLabelValueInSelector: false).
pub(super) fn validate_label_selector(sel: &Value, path: &Path) -> ErrorList {
    let mut errs = validate_labels(object(sel, "matchLabels"), &path.child("matchLabels"));
    for (i, expr) in list(sel, "matchExpressions").iter().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = list(expr, "values");
        match str_of(expr, "operator") {
            "In" | "NotIn" if values.is_empty() => errs
                .push(FieldError::required(p.child("values"), "must be specified when `operator` is 'In' or 'NotIn'")),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::forbidden(
                p.child("values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => errs.push(FieldError::invalid_str(p.child("operator"), op, "not a valid selector operator")),
        }
        errs.extend(validate_label_name(str_of(expr, "key"), &p.child("key")));
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or("");
            errs.extend(invalid_each(&p.child("values").index(j), v, is_valid_label_value(v)));
        }
    }
    errs
}

/// A `*metav1.LabelSelector` as field errors print it (a nil pointer prints as `"null"`).
pub(super) fn render_selector(sel: Option<&Value>) -> String {
    sel.map_or_else(|| quote("null"), go_label_selector)
}

/// The selector checks shared by the apps kinds; returns the parsed selector, or the error
/// upstream reports when it cannot be parsed.
pub(super) fn apps_selector<'a>(
    spec: &'a Value,
    path: &Path,
    kind_word: &str,
) -> (ErrorList, Result<Selector<'a>, ()>) {
    let mut errs = ErrorList::new();
    let sel_path = path.child("selector");
    let selector = field(spec, "selector");
    match selector {
        None => errs.push(FieldError::required(&sel_path, "")),
        Some(sel) => {
            errs.extend(validate_label_selector(sel, &sel_path));
            if object(sel, "matchLabels").map_or(0, Map::len) + list(sel, "matchExpressions").len() == 0 {
                errs.push(FieldError::invalid(
                    &sel_path,
                    go_label_selector(sel),
                    format!("empty selector is invalid for {kind_word}"),
                ));
            }
        }
    }
    (errs, label_selector_as_selector(selector))
}

pub(super) fn template_labels(template: &Value) -> Option<&Value> {
    template.get("metadata").and_then(|m| field(m, "labels"))
}

/// The "`selector` does not match template `labels`" check.
pub(super) fn selector_matches_template(selector: &Selector<'_>, template: &Value, path: &Path) -> ErrorList {
    let labels = template_labels(template);
    if !selector.is_empty() && !selector.matches(labels.and_then(Value::as_object)) {
        return vec![FieldError::invalid(
            path.child("metadata").child("labels"),
            go_string_map(labels),
            "`selector` does not match template `labels`",
        )];
    }
    ErrorList::new()
}

/// The template restrictions of ReplicaSets, Deployments and StatefulSets.
pub(super) fn template_restrictions(template: &Value, path: &Path, kind: &str) -> ErrorList {
    let mut errs = ErrorList::new();
    let tspec = spec(template);
    if let Some(policy) = opt_str(tspec, "restartPolicy")
        && policy != "Always"
    {
        errs.push(FieldError::not_supported(path.child("spec").child("restartPolicy"), policy, &["Always"]));
    }
    if field(tspec, "activeDeadlineSeconds").is_some() {
        errs.push(FieldError::forbidden(
            path.child("spec").child("activeDeadlineSeconds"),
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    errs
}

/// ValidatePodTemplateSpecForReplicaSet
fn pod_template_for_replica_set(selector: &Selector<'_>, template: &Value, path: &Path) -> ErrorList {
    let mut errs = selector_matches_template(selector, template, path);
    errs.extend(validate_pod_template(template, path));
    errs.extend(template_restrictions(template, path, "ReplicaSet"));
    errs
}

pub(super) fn selector_immutable(obj: &Value, old: Option<&Value>) -> ErrorList {
    let Some(old) = old else {
        return ErrorList::new();
    };
    let new_sel = field(spec(obj), "selector");
    if !semantic_eq(new_sel, field(spec(old), "selector")) {
        return vec![immutable(&Path::new("spec").child("selector"), render_selector(new_sel))];
    }
    ErrorList::new()
}

// ---- apps/v1 -------------------------------------------------------------------------------

pub(crate) fn deployment(obj: &Value, old: Option<&Value>) -> ErrorList {
    let spec = spec(obj);
    let p = Path::new("spec");
    let mut errs = validate_nonnegative(opt_int(spec, "replicas"), &p.child("replicas"));
    let (sel_errs, selector) = apps_selector(spec, &p, "deployment");
    errs.extend(sel_errs);
    let template = child(spec, "template");
    match selector {
        Err(()) => errs.push(FieldError::invalid(
            p.child("selector"),
            render_selector(field(spec, "selector")),
            "invalid label selector",
        )),
        Ok(selector) => errs.extend(pod_template_for_replica_set(&selector, template, &p.child("template"))),
    }
    errs.extend(deployment_strategy(child(spec, "strategy"), &p.child("strategy")));
    let min_ready = opt_int(spec, "minReadySeconds");
    errs.extend(validate_nonnegative(min_ready, &p.child("minReadySeconds")));
    errs.extend(validate_nonnegative(opt_int(spec, "revisionHistoryLimit"), &p.child("revisionHistoryLimit")));
    if let Some(deadline) = opt_int(spec, "progressDeadlineSeconds") {
        let deadline_path = p.child("progressDeadlineSeconds");
        errs.extend(validate_nonnegative(Some(deadline), &deadline_path));
        if deadline <= min_ready.unwrap_or(0) {
            errs.push(FieldError::invalid(&deadline_path, deadline, "must be greater than minReadySeconds"));
        }
    }
    errs.extend(selector_immutable(obj, old));
    errs
}

fn deployment_strategy(strategy: &Value, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let rolling_update = field(strategy, "rollingUpdate");
    match opt_str(strategy, "type") {
        Some("Recreate") if rolling_update.is_some() => errs.push(FieldError::forbidden(
            path.child("rollingUpdate"),
            "may not be specified when strategy `type` is 'Recreate'",
        )),
        // A missing type is defaulted to RollingUpdate by defaults::apply.
        None | Some("Recreate") => {}
        Some("RollingUpdate") => match rolling_update {
            None => errs
                .push(FieldError::required(path.child("rollingUpdate"), "this should be defaulted and never be nil")),
            Some(ru) => {
                let p = path.child("rollingUpdate");
                let (max_unavailable, max_surge) = (field(ru, "maxUnavailable"), field(ru, "maxSurge"));
                errs.extend(positive_int_or_percent(max_unavailable, &p.child("maxUnavailable")));
                errs.extend(positive_int_or_percent(max_surge, &p.child("maxSurge")));
                if int_or_percent_value(max_unavailable) == 0 && int_or_percent_value(max_surge) == 0 {
                    errs.push(FieldError::invalid(
                        p.child("maxUnavailable"),
                        go_int_or_string(max_unavailable),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                errs.extend(not_more_than_100_percent(max_unavailable, &p.child("maxUnavailable")));
            }
        },
        Some(other) => errs.push(not_supported_rendered(
            path,
            format!(
                "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{}}}",
                quote(other),
                go_pointer("apps.RollingUpdateDeployment", rolling_update)
            ),
            &["Recreate", "RollingUpdate"],
        )),
    }
    errs
}

/// ValidatePositiveIntOrPercent
pub(super) fn positive_int_or_percent(v: Option<&Value>, path: &Path) -> ErrorList {
    match v {
        Some(Value::String(s)) => {
            is_valid_percent(s).into_iter().map(|m| FieldError::invalid(path, go_int_or_string(v), m)).collect()
        }
        other => validate_nonnegative(other.and_then(Value::as_i64), path),
    }
}

/// getIntOrPercentValue: the number of a percentage, the integer, or Atoi of a bad string.
pub(super) fn int_or_percent_value(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::String(s)) => s.strip_suffix('%').unwrap_or(s).parse().unwrap_or(0),
        other => other.and_then(Value::as_i64).unwrap_or(0),
    }
}

/// IsNotMoreThan100Percent
pub(super) fn not_more_than_100_percent(v: Option<&Value>, path: &Path) -> ErrorList {
    if let Some(Value::String(s)) = v
        && is_valid_percent(s).is_empty()
        && int_or_percent_value(v) > 100
    {
        return vec![FieldError::invalid(path, go_int_or_string(v), "must not be greater than 100%")];
    }
    ErrorList::new()
}

pub(crate) fn replica_set(obj: &Value, old: Option<&Value>) -> ErrorList {
    let spec = spec(obj);
    let p = Path::new("spec");
    let mut errs = validate_nonnegative(opt_int(spec, "replicas"), &p.child("replicas"));
    errs.extend(validate_nonnegative(opt_int(spec, "minReadySeconds"), &p.child("minReadySeconds")));
    // Upstream's message says "deployment" for ReplicaSets too.
    let (sel_errs, selector) = apps_selector(spec, &p, "deployment");
    errs.extend(sel_errs);
    match selector {
        Err(()) => errs.push(FieldError::invalid(
            p.child("selector"),
            render_selector(field(spec, "selector")),
            "invalid label selector",
        )),
        Ok(selector) => {
            errs.extend(pod_template_for_replica_set(&selector, child(spec, "template"), &p.child("template")))
        }
    }
    errs.extend(selector_immutable(obj, old));
    errs
}

pub(crate) fn stateful_set(obj: &Value, old: Option<&Value>) -> ErrorList {
    let spec = spec(obj);
    let p = Path::new("spec");
    let mut errs = ErrorList::new();

    match opt_str(spec, "podManagementPolicy") {
        None | Some("OrderedReady" | "Parallel") => {}
        Some("") => errs.push(FieldError::required(p.child("podManagementPolicy"), "")),
        Some(other) => errs.push(FieldError::invalid_str(
            p.child("podManagementPolicy"),
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }

    let strategy = child(spec, "updateStrategy");
    let sp = p.child("updateStrategy");
    let rolling_update = field(strategy, "rollingUpdate");
    match opt_str(strategy, "type") {
        None => {}
        Some("") => errs.push(FieldError::required(&sp, "")),
        Some("OnDelete") => {
            if let Some(ru) = rolling_update {
                errs.push(FieldError::invalid(
                    sp.child("rollingUpdate"),
                    format!(
                        "apps.RollingUpdateStatefulSetStrategy{{Partition:{}, MaxUnavailable:{}}}",
                        opt_int(ru, "partition").unwrap_or(0),
                        go_pointer("intstr.IntOrString", ru.get("maxUnavailable"))
                    ),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        Some("RollingUpdate") => {
            if let Some(ru) = rolling_update {
                let rp = sp.child("rollingUpdate");
                errs.extend(validate_nonnegative(opt_int(ru, "partition"), &rp.child("partition")));
                if let Some(max_unavailable) = field(ru, "maxUnavailable") {
                    let mp = rp.child("maxUnavailable");
                    errs.extend(positive_int_or_percent(Some(max_unavailable), &mp));
                    if int_or_percent_value(Some(max_unavailable)) == 0 {
                        errs.push(FieldError::invalid(&mp, go_int_or_string(Some(max_unavailable)), "cannot be 0"));
                    }
                    errs.extend(not_more_than_100_percent(Some(max_unavailable), &mp));
                }
            }
        }
        Some(other) => errs.push(FieldError::invalid(
            &sp,
            format!(
                "apps.StatefulSetUpdateStrategy{{Type:{}, RollingUpdate:{}}}",
                quote(other),
                go_pointer("apps.RollingUpdateStatefulSetStrategy", rolling_update)
            ),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }

    if let Some(policy) = field(spec, "persistentVolumeClaimRetentionPolicy") {
        let pp = p.child("persistentVolumeClaimRetentionPolicy");
        for key in ["whenDeleted", "whenScaled"] {
            let v = str_of(policy, key);
            if !matches!(v, "Retain" | "Delete") {
                errs.push(FieldError::not_supported(pp.child(key), v, &["Retain", "Delete"]));
            }
        }
    }

    errs.extend(validate_nonnegative(opt_int(spec, "replicas"), &p.child("replicas")));
    errs.extend(validate_nonnegative(opt_int(spec, "minReadySeconds"), &p.child("minReadySeconds")));
    if let Some(ordinals) = field(spec, "ordinals") {
        errs.extend(validate_nonnegative(opt_int(ordinals, "start"), &p.child("ordinals.start")));
    }

    let (sel_errs, selector) = apps_selector(spec, &p, "statefulset");
    errs.extend(sel_errs);
    let template = child(spec, "template");
    let tp = p.child("template");
    match selector {
        Err(()) => errs.push(FieldError::invalid(p.child("selector"), render_selector(field(spec, "selector")), "")),
        Ok(selector) => {
            // ValidatePodTemplateSpecForStatefulSet: no pod spec validation upstream.
            errs.extend(selector_matches_template(&selector, template, &tp));
            let meta = child(template, "metadata");
            errs.extend(validate_labels(object(meta, "labels"), &tp.child("labels")));
            errs.extend(validate_annotations(object(meta, "annotations"), &tp.child("annotations")));
        }
    }
    errs.extend(template_restrictions(template, &tp, "StatefulSet"));

    if let Some(old) = old {
        const MUTABLE: &[&str] = &[
            "replicas",
            "ordinals",
            "template",
            "updateStrategy",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
        ];
        let strip = |v: &Value| -> Value {
            let mut m = v.as_object().cloned().unwrap_or_default();
            m.retain(|k, _| !MUTABLE.contains(&k.as_str()));
            Value::Object(m)
        };
        if !semantic_eq(Some(&strip(spec)), Some(&strip(self::spec(old)))) {
            errs.push(FieldError::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
    errs
}

// ---- core/v1 -------------------------------------------------------------------------------

pub(crate) fn namespace(obj: &Value) -> ErrorList {
    let path = Path::new("spec").child("finalizers");
    let mut errs = ErrorList::new();
    for f in list(spec(obj), "finalizers") {
        let f = f.as_str().unwrap_or("");
        errs.extend(invalid_each(&path, f, is_qualified_name(f)));
        errs.extend(validate_kube_finalizer_name(f, &path));
    }
    errs
}

/// Decoded size of base64 text.
fn base64_len(s: &str) -> usize {
    let s = s.trim_end_matches('=');
    s.len() * 3 / 4
}

pub(crate) fn secret(obj: &Value, old: Option<&Value>) -> ErrorList {
    let mut errs = ErrorList::new();
    let secret_type = str_of(obj, "type");
    if let Some(old) = old {
        let old_type = str_of(old, "type");
        if secret_type != old_type {
            errs.push(immutable(&Path::new("type"), quote(secret_type)));
        }
        errs.extend(immutable_data(obj, old, &["data"]));
    }

    // stringData is merged into data before upstream validates.
    let data_path = Path::new("data");
    let mut sizes: Vec<(&str, usize)> = Vec::new();
    for (k, v) in object(obj, "data").into_iter().flatten() {
        sizes.push((k, base64_len(v.as_str().unwrap_or(""))));
    }
    for (k, v) in object(obj, "stringData").into_iter().flatten() {
        let len = v.as_str().map_or(0, str::len);
        match sizes.iter_mut().find(|(key, _)| key == k) {
            Some(entry) => entry.1 = len,
            None => sizes.push((k, len)),
        }
    }
    for (k, _) in &sizes {
        errs.extend(invalid_each(&data_path.key(k), k, is_config_map_key(k)));
    }
    if sizes.iter().map(|(_, n)| n).sum::<usize>() > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long(&data_path, MAX_SECRET_SIZE));
    }

    let has = |k: &str| sizes.iter().any(|(key, _)| *key == k);
    let required = |k: &str| FieldError::required(data_path.key(k), "");
    match secret_type {
        "kubernetes.io/service-account-token" => {
            let name = obj
                .get("metadata")
                .and_then(|m| object(m, "annotations"))
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                errs.push(FieldError::required(
                    Path::new("metadata").child("annotations").key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => errs.push(required(".dockercfg")),
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => errs.push(required(".dockerconfigjson")),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(required("username"));
            errs.push(required("password"));
        }
        "kubernetes.io/ssh-auth" if !sizes.iter().any(|(k, n)| *k == "ssh-privatekey" && *n > 0) => {
            errs.push(required("ssh-privatekey"))
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    errs.push(required(key));
                }
            }
        }
        _ => {}
    }
    errs
}

/// The `immutable: true` rules of Secrets and ConfigMaps.
fn immutable_data(obj: &Value, old: &Value, fields: &[&str]) -> ErrorList {
    let mut errs = ErrorList::new();
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return errs;
    }
    const MSG: &str = "field is immutable when `immutable` is set";
    if obj.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(FieldError::forbidden("immutable", MSG));
    }
    for f in fields {
        if !semantic_eq(field(obj, f), field(old, f)) {
            errs.push(FieldError::forbidden(*f, MSG));
        }
    }
    errs
}

pub(crate) fn config_map(obj: &Value, old: Option<&Value>) -> ErrorList {
    let mut errs = ErrorList::new();
    if let Some(old) = old {
        errs.extend(immutable_data(obj, old, &["data", "binaryData"]));
    }
    let data = object(obj, "data");
    let binary = object(obj, "binaryData");
    let mut total = 0;
    for (k, v) in data.into_iter().flatten() {
        let p = Path::new("data").key(k);
        errs.extend(invalid_each(&p, k, is_config_map_key(k)));
        if binary.is_some_and(|b| b.contains_key(k)) {
            errs.push(FieldError::invalid_str(&p, k, "duplicate of key present in binaryData"));
        }
        total += v.as_str().map_or(0, str::len);
    }
    for (k, v) in binary.into_iter().flatten() {
        errs.extend(invalid_each(&Path::new("binaryData").key(k), k, is_config_map_key(k)));
        total += base64_len(v.as_str().unwrap_or(""));
    }
    if total > MAX_SECRET_SIZE {
        // The empty path stands for the whole object.
        errs.push(FieldError::too_long("", MAX_SECRET_SIZE));
    }
    errs
}

pub(crate) fn endpoints(obj: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let path = Path::new("subsets");
    for (i, subset) in list(obj, "subsets").iter().enumerate() {
        let p = path.index(i);
        let addresses = list(subset, "addresses");
        let not_ready = list(subset, "notReadyAddresses");
        if addresses.is_empty() && not_ready.is_empty() {
            errs.push(FieldError::required(&p, "must specify `addresses` or `notReadyAddresses`"));
        }
        for (key, items) in [("addresses", addresses), ("notReadyAddresses", not_ready)] {
            for (j, addr) in items.iter().enumerate() {
                errs.extend(endpoint_address(addr, &p.child(key).index(j)));
            }
        }
        let ports = list(subset, "ports");
        for (j, port) in ports.iter().enumerate() {
            errs.extend(endpoint_port(port, ports.len() > 1, &p.child("ports").index(j)));
        }
    }
    errs
}

fn endpoint_address(addr: &Value, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let ip = str_of(addr, "ip");
    let ip_path = path.child("ip");
    if ip.parse::<IpAddr>().is_err() {
        errs.push(FieldError::invalid_str(
            &ip_path,
            ip,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
    let hostname = str_of(addr, "hostname");
    if !hostname.is_empty() {
        errs.extend(invalid_each(&path.child("hostname"), hostname, is_dns1123_label(hostname)));
    }
    if let Some(node) = opt_str(addr, "nodeName") {
        errs.extend(invalid_each(&path.child("nodeName"), node, is_dns1123_subdomain(node)));
    }
    errs.extend(non_special_ip(ip, &ip_path));
    errs
}

/// ValidateNonSpecialIP
fn non_special_ip(ip: &str, path: &Path) -> ErrorList {
    match ip.parse::<IpAddr>() {
        Ok(addr) => crate::service::non_special_ip(ip, addr, path),
        Err(_) => vec![FieldError::invalid_str(path, ip, "must be a valid IP address")],
    }
}

fn endpoint_port(port: &Value, require_name: bool, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let name = str_of(port, "name");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else if !name.is_empty() {
        errs.extend(invalid_each(&path.child("name"), name, is_dns1123_label(name)));
    }
    let number = opt_int(port, "port").unwrap_or(0);
    errs.extend(is_valid_port_num(number).into_iter().map(|m| FieldError::invalid(path.child("port"), number, m)));
    errs.extend(protocol(opt_str(port, "protocol"), &path.child("protocol")));
    if let Some(app) = opt_str(port, "appProtocol") {
        errs.extend(invalid_each(&path.child("appProtocol"), app, is_qualified_name(app)));
    }
    errs
}

fn protocol(protocol: Option<&str>, path: &Path) -> ErrorList {
    match protocol {
        None | Some("") => vec![FieldError::required(path, "")],
        Some(p) if !SUPPORTED_PORT_PROTOCOLS.contains(&p) => {
            vec![FieldError::not_supported(path, p, SUPPORTED_PORT_PROTOCOLS)]
        }
        Some(_) => ErrorList::new(),
    }
}

/// legacyValidateEvent: all a core/v1 Event gets from its strategy.
pub(crate) fn event(obj: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let namespace = obj.get("metadata").map_or("", |m| str_of(m, "namespace"));
    let involved_ns = obj.get("involvedObject").map_or("", |o| str_of(o, "namespace"));
    let involved_path = Path::new("involvedObject").child("namespace");
    let mismatch = || FieldError::invalid_str(&involved_path, involved_ns, "does not match event.namespace");
    if field(obj, "eventTime").is_none() {
        if involved_ns.is_empty() {
            if !namespace.is_empty() && namespace != "default" {
                errs.push(mismatch());
            }
        } else if namespace != involved_ns {
            errs.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
            errs.push(mismatch());
        }
        let controller = str_of(obj, "reportingComponent");
        if controller.is_empty() {
            errs.push(FieldError::required("reportingController", ""));
        }
        errs.extend(invalid_each(&Path::new("reportingController"), controller, is_qualified_name(controller)));
        for (key, limit) in [("reportingInstance", 128), ("action", 128), ("reason", 128)] {
            let v = str_of(obj, key);
            if v.is_empty() {
                errs.push(FieldError::required(key, ""));
            }
            if v.len() > limit {
                errs.push(FieldError::invalid_str(key, "", format!("can have at most {limit} characters")));
            }
        }
        if str_of(obj, "message").len() > 1024 {
            errs.push(FieldError::invalid_str("message", "", "can have at most 1024 characters"));
        }
    }
    errs.extend(invalid_each(&Path::new("namespace"), namespace, is_dns1123_subdomain(namespace)));
    errs
}

// ---- coordination, discovery, networking ---------------------------------------------------

pub(crate) fn lease(obj: &Value) -> ErrorList {
    let spec = spec(obj);
    let p = Path::new("spec");
    let mut errs = ErrorList::new();
    if let Some(n) = opt_int(spec, "leaseDurationSeconds")
        && n <= 0
    {
        errs.push(FieldError::invalid(p.child("leaseDurationSeconds"), n, "must be greater than 0"));
    }
    if let Some(n) = opt_int(spec, "leaseTransitions")
        && n < 0
    {
        errs.push(FieldError::invalid(p.child("leaseTransitions"), n, "must be greater than or equal to 0"));
    }
    errs
}

pub(crate) fn endpoint_slice(obj: &Value, old: Option<&Value>) -> ErrorList {
    let mut errs = ErrorList::new();
    let address_type = str_of(obj, "addressType");
    let valid: &[&str] = if old.is_some() { &["FQDN", "IP", "IPv4", "IPv6"] } else { &["FQDN", "IPv4", "IPv6"] };
    if address_type.is_empty() {
        errs.push(FieldError::required("addressType", ""));
    } else if !valid.contains(&address_type) {
        errs.push(FieldError::not_supported("addressType", address_type, valid));
    }

    let endpoints = list(obj, "endpoints");
    let epath = Path::new("endpoints");
    if endpoints.len() > 1000 {
        errs.push(too_many(&epath, endpoints.len(), 1000));
    } else {
        for (i, ep) in endpoints.iter().enumerate() {
            let ap = epath.index(i).child("addresses");
            let addresses = list(ep, "addresses");
            if addresses.is_empty() {
                errs.push(FieldError::required(&ap, "must contain at least 1 address"));
            } else if addresses.len() > 100 {
                errs.push(too_many(&ap, addresses.len(), 100));
            }
            for (j, addr) in addresses.iter().enumerate() {
                let addr = addr.as_str().unwrap_or("");
                let p = ap.index(j);
                match address_type {
                    "IPv4" | "IPv6" => {
                        let ok = match addr.parse::<IpAddr>() {
                            Ok(IpAddr::V4(_)) => address_type == "IPv4",
                            Ok(IpAddr::V6(_)) => address_type == "IPv6",
                            Err(_) => false,
                        };
                        if !ok {
                            errs.push(FieldError::invalid_str(
                                &p,
                                addr,
                                format!("must be a valid {address_type} address"),
                            ));
                        }
                        errs.extend(non_special_ip(addr, &p));
                    }
                    "FQDN" => errs.extend(fully_qualified_domain_name(addr, &p)),
                    "IP" if addr.parse::<IpAddr>().is_err() => errs.push(FieldError::invalid_str(
                        &p,
                        addr,
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    )),
                    _ => {}
                }
            }
            if let Some(hostname) = opt_str(ep, "hostname") {
                errs.extend(invalid_each(&epath.index(i).child("hostname"), hostname, is_dns1123_label(hostname)));
            }
        }
    }

    let ports = list(obj, "ports");
    let ppath = Path::new("ports");
    if ports.len() > 100 {
        errs.push(too_many(&ppath, ports.len(), 100));
    } else {
        let mut names: Vec<&str> = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let p = ppath.index(i);
            let name = str_of(port, "name");
            if !name.is_empty() {
                errs.extend(invalid_each(&p.child("name"), name, is_dns1123_label(name)));
            }
            if names.contains(&name) {
                errs.push(FieldError::duplicate(p.child("name"), quote(name)));
            } else {
                names.push(name);
            }
            match opt_str(port, "protocol") {
                None => errs.push(FieldError::required(p.child("protocol"), "")),
                Some(proto) if !SUPPORTED_PORT_PROTOCOLS.contains(&proto) => {
                    errs.push(FieldError::not_supported(p.child("protocol"), proto, SUPPORTED_PORT_PROTOCOLS))
                }
                Some(_) => {}
            }
            if let Some(app) = opt_str(port, "appProtocol") {
                errs.extend(invalid_each(&p.child("appProtocol"), app, is_qualified_name(app)));
            }
        }
    }

    if let Some(old) = old {
        let old_type = str_of(old, "addressType");
        if address_type != old_type {
            errs.push(immutable(&Path::new("addressType"), quote(address_type)));
        }
    }
    errs
}

/// IsFullyQualifiedDomainName
fn fully_qualified_domain_name(name: &str, path: &Path) -> ErrorList {
    if name.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let errs = is_dns1123_subdomain(name);
    if !errs.is_empty() {
        return vec![FieldError::invalid_str(path, name, errs.join(","))];
    }
    if name.split('.').count() < 2 {
        return vec![FieldError::invalid_str(
            path,
            name,
            "should be a domain with at least two segments separated by dots",
        )];
    }
    for label in name.split('.') {
        let errs = is_dns1123_label(label);
        if !errs.is_empty() {
            return vec![FieldError::invalid_str(path, label, errs.join(","))];
        }
    }
    ErrorList::new()
}

pub(crate) fn ingress(obj: &Value, old: Option<&Value>) -> ErrorList {
    let spec = spec(obj);
    let p = Path::new("spec");
    let mut errs = ErrorList::new();
    let rules = list(spec, "rules");
    let default_backend = field(spec, "defaultBackend");
    if rules.is_empty() && default_backend.is_none() {
        let rendered =
            if field(spec, "rules").is_some() { "[]networking.IngressRule{}" } else { "[]networking.IngressRule(nil)" };
        errs.push(FieldError::invalid(&p, rendered, "either `defaultBackend` or `rules` must be specified"));
    }
    if let Some(backend) = default_backend {
        errs.extend(ingress_backend(backend, &p.child("defaultBackend")));
    }
    for (i, rule) in rules.iter().enumerate() {
        let rp = p.child("rules").index(i);
        let host = str_of(rule, "host");
        if !host.is_empty() {
            if host.parse::<IpAddr>().is_ok() {
                errs.push(FieldError::invalid_str(rp.child("host"), host, "must be a DNS name, not an IP address"));
            }
            let msgs =
                if host.contains('*') { is_wildcard_dns1123_subdomain(host) } else { is_dns1123_subdomain(host) };
            errs.extend(invalid_each(&rp.child("host"), host, msgs));
        }
        if let Some(http) = field(rule, "http") {
            let hp = rp.child("http");
            let paths = list(http, "paths");
            if paths.is_empty() {
                errs.push(FieldError::required(hp.child("paths"), ""));
            }
            for (j, path) in paths.iter().enumerate() {
                errs.extend(ingress_path(path, &hp.child("paths").index(j)));
            }
        }
    }
    for (i, tls) in list(spec, "tls").iter().enumerate() {
        let tp = p.child("tls").index(i);
        for (j, host) in list(tls, "hosts").iter().enumerate() {
            let host = host.as_str().unwrap_or("");
            let msgs =
                if host.contains('*') { is_wildcard_dns1123_subdomain(host) } else { is_dns1123_subdomain(host) };
            errs.extend(invalid_each(&tp.child("hosts").index(j), host, msgs));
        }
        let secret_name = str_of(tls, "secretName");
        if !secret_name.is_empty() {
            errs.extend(invalid_each(&tp.child("secretName"), secret_name, is_dns1123_subdomain(secret_name)));
        }
    }
    if let Some(class) = opt_str(spec, "ingressClassName") {
        errs.extend(invalid_each(&p.child("ingressClassName"), class, is_dns1123_subdomain(class)));
    }
    if old.is_none() {
        const ANNOTATION: &str = "kubernetes.io/ingress.class";
        let annotation = obj
            .get("metadata")
            .and_then(|m| object(m, "annotations"))
            .and_then(|a| a.get(ANNOTATION))
            .and_then(Value::as_str);
        if let (Some(annotation), Some(class)) = (annotation, opt_str(spec, "ingressClassName"))
            && annotation != class
        {
            errs.push(FieldError::invalid_str(
                Path::new("annotations").child(ANNOTATION),
                annotation,
                "must match `ingressClassName` when both are specified",
            ));
        }
    }
    errs
}

fn ingress_path(path_rule: &Value, p: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(path_type) = opt_str(path_rule, "pathType") else {
        return vec![FieldError::required(p.child("pathType"), "pathType must be specified")];
    };
    let path = str_of(path_rule, "path");
    let pp = p.child("path");
    match path_type {
        "Exact" | "Prefix" => {
            if !path.starts_with('/') {
                errs.push(FieldError::invalid_str(&pp, path, "must be an absolute path"));
            }
            if !path.is_empty() {
                for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                    if path.contains(seq) {
                        errs.push(FieldError::invalid_str(&pp, path, format!("must not contain '{seq}'")));
                    }
                }
                for suffix in ["/..", "/."] {
                    if path.ends_with(suffix) {
                        errs.push(FieldError::invalid_str(&pp, path, format!("cannot end with '{suffix}'")));
                    }
                }
            }
        }
        "ImplementationSpecific" => {
            if !path.is_empty() && !path.starts_with('/') {
                errs.push(FieldError::invalid_str(&pp, path, "must be an absolute path"));
            }
        }
        other => errs.push(FieldError::not_supported(
            p.child("pathType"),
            other,
            &["Exact", "ImplementationSpecific", "Prefix"],
        )),
    }
    errs.extend(ingress_backend(child(path_rule, "backend"), &p.child("backend")));
    errs
}

fn ingress_backend(backend: &Value, p: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    match (field(backend, "resource"), field(backend, "service")) {
        (Some(_), Some(_)) => {
            errs.push(FieldError::invalid_str(p, "", "cannot set both resource and service backends"))
        }
        (Some(resource), None) => errs.extend(typed_local_object_reference(resource, &p.child("resource"))),
        (None, Some(service)) => {
            let sp = p.child("service");
            let name = str_of(service, "name");
            if name.is_empty() {
                errs.push(FieldError::required(sp.child("name"), ""));
            } else {
                errs.extend(invalid_each(&sp.child("name"), name, is_dns1035_label(name)));
            }
            let port = child(service, "port");
            let port_name = str_of(port, "name");
            let port_number = opt_int(port, "number").unwrap_or(0);
            match (port_name.is_empty(), port_number == 0) {
                (false, false) => errs.push(FieldError::invalid_str(p, "", "cannot set both port name & port number")),
                (false, true) => {
                    errs.extend(invalid_each(&sp.child("port").child("name"), port_name, is_valid_port_name(port_name)))
                }
                (true, false) => errs.extend(
                    is_valid_port_num(port_number)
                        .into_iter()
                        .map(|m| FieldError::invalid(sp.child("port").child("number"), port_number, m)),
                ),
                (true, true) => errs.push(FieldError::required(p, "port name or number is required")),
            }
        }
        (None, None) => errs.push(FieldError::invalid_str(p, "", "resource or service backend is required")),
    }
    errs
}

/// validateIngressTypedLocalObjectReference
fn typed_local_object_reference(r: &Value, p: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if let Some(group) = opt_str(r, "apiGroup") {
        errs.extend(invalid_each(&p.child("apiGroup"), group, is_dns1123_subdomain(group)));
    }
    for key in ["kind", "name"] {
        let v = str_of(r, key);
        if v.is_empty() {
            errs.push(FieldError::required(p.child(key), ""));
        } else {
            errs.extend(invalid_each(&p.child(key), v, is_valid_path_segment_name(v)));
        }
    }
    errs
}

pub(crate) fn ingress_class(obj: &Value, old: Option<&Value>) -> ErrorList {
    let spec = spec(obj);
    let p = Path::new("spec");
    let cp = p.child("controller");
    let mut errs = ErrorList::new();
    let controller = str_of(spec, "controller");
    if let Some(old) = old {
        let old_controller = str_of(self::spec(old), "controller");
        if controller != old_controller {
            errs.push(immutable(&cp, quote(controller)));
        }
    }
    if controller.is_empty() {
        errs.push(FieldError::required(&cp, ""));
    } else {
        if controller.len() > 250 {
            errs.push(FieldError::too_long(&cp, 250));
        }
        errs.extend(domain_prefixed_path(controller, &cp));
    }
    if let Some(params) = field(spec, "parameters") {
        let pp = p.child("parameters");
        errs.extend(typed_local_object_reference(params, &pp));
        match opt_str(params, "scope") {
            None => errs.push(FieldError::required(pp.child("scope"), "")),
            Some("Namespace") => match opt_str(params, "namespace") {
                None => {
                    errs.push(FieldError::required(pp.child("namespace"), "`parameters.scope` is set to 'Namespace'"))
                }
                Some(ns) => errs.extend(invalid_each(&pp.child("namespace"), ns, is_dns1123_label(ns))),
            },
            Some("Cluster") => {
                if field(params, "namespace").is_some() {
                    errs.push(FieldError::forbidden(pp.child("namespace"), "`parameters.scope` is set to 'Cluster'"));
                }
            }
            Some(other) => errs.push(FieldError::not_supported(pp.child("scope"), other, &["Cluster", "Namespace"])),
        }
    }
    errs
}

/// IsDomainPrefixedPath
fn domain_prefixed_path(dp: &str, path: &Path) -> ErrorList {
    match dp.split_once('/') {
        Some((host, rest)) if !host.is_empty() && !rest.is_empty() => {
            let mut errs = invalid_each(path, host, is_dns1123_subdomain(host));
            errs.extend(invalid_each(path, rest, is_http_path(rest)));
            errs
        }
        _ => vec![FieldError::invalid_str(path, dp, "must be a domain-prefixed path (such as \"acme.io/foo\")")],
    }
}

//! ReplicationControllers (pkg/apis/core/validation), DaemonSets (pkg/apis/apps/validation) and
//! Jobs (pkg/apis/batch/validation), on wire JSON, with the shared pod-template and selector
//! checks of [`super::kinds`]. Reduced like those: Job's pod failure and success policies, the
//! Indexed-only limits and the mutable-scheduling-directives exception for suspended Jobs are
//! not checked; an immutable pod template's value prints as JSON, not as Go's struct dump.

use serde_json::{Map, Value};

use super::kinds::{
    Selector, int_or_percent_value, label_selector_as_selector, not_more_than_100_percent, not_supported_rendered,
    positive_int_or_percent, render_selector, selector_immutable, selector_matches_template, template_restrictions,
    validate_label_selector, validate_pod_template,
};
use super::{go_int_or_string, go_pointer, go_string_map, immutable, quote, semantic_eq, validate_nonnegative};
use crate::field::{ErrorList, FieldError, Path};
use crate::json::{child, field, metadata, object, opt_int, opt_str, spec, str_of};
use crate::strategy::batch::{
    CONTROLLER_UID_LABEL, JOB_NAME_LABEL, LEGACY_CONTROLLER_UID_LABEL, LEGACY_JOB_NAME_LABEL,
};

// ---- core/v1 ReplicationController ---------------------------------------------------------

/// ValidateReplicationControllerSpec: the selector is a plain label map that must not be
/// empty, the template (a pointer) is required, and the selector is mutable.
pub(crate) fn replication_controller(obj: &Value, _old: Option<&Value>) -> ErrorList {
    let spec = spec(obj);
    let p = Path::new("spec");
    let mut errs = validate_nonnegative(opt_int(spec, "minReadySeconds"), &p.child("minReadySeconds"));
    let selector = object(spec, "selector").filter(|m| !m.is_empty());
    if selector.is_none() {
        errs.push(FieldError::required(p.child("selector"), ""));
    }
    errs.extend(validate_nonnegative(opt_int(spec, "replicas"), &p.child("replicas")));
    let tp = p.child("template");
    match field(spec, "template") {
        None => errs.push(FieldError::required(&tp, "")),
        Some(template) => {
            if let Some(selector) = selector {
                let labels = template.get("metadata").and_then(|m| field(m, "labels"));
                if !map_selector_matches(selector, labels.and_then(Value::as_object)) {
                    errs.push(FieldError::invalid(
                        tp.child("metadata").child("labels"),
                        go_string_map(labels),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
            errs.extend(validate_pod_template(template, &tp));
            errs.extend(template_restrictions(template, &tp, "ReplicationController"));
        }
    }
    errs
}

/// labels.Set(selector).AsSelector().Matches(labels)
fn map_selector_matches(selector: &Map<String, Value>, labels: Option<&Map<String, Value>>) -> bool {
    selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

// ---- apps/v1 DaemonSet ----------------------------------------------------------------------

/// ValidateDaemonSet / ValidateDaemonSetUpdate (selector immutable in apps/v1).
pub(crate) fn daemon_set(obj: &Value, old: Option<&Value>) -> ErrorList {
    let spec = spec(obj);
    let p = Path::new("spec");
    let template = child(spec, "template");
    let tp = p.child("template");
    let selector = field(spec, "selector");
    let mut errs = match selector {
        Some(sel) => validate_label_selector(sel, &p.child("selector")),
        None => ErrorList::new(),
    };
    if selector.is_some()
        && let Ok(parsed) = label_selector_as_selector(selector)
    {
        errs.extend(selector_matches_template(&parsed, template, &tp));
    }
    if let Some(sel) = selector
        && object(sel, "matchLabels").map_or(0, Map::len) + crate::json::list(sel, "matchExpressions").len() == 0
    {
        errs.push(FieldError::invalid(
            p.child("selector"),
            super::go_label_selector(sel),
            "empty selector is invalid for daemonset",
        ));
    }
    if selector.is_none() {
        // A nil selector matches nothing, so the template's labels never match it.
        errs.extend(selector_matches_template(&Selector::Nothing, template, &tp));
    }
    errs.extend(validate_pod_template(template, &tp));
    let tspec = spec_of(template);
    if let Some(policy) = opt_str(tspec, "restartPolicy")
        && policy != "Always"
    {
        errs.push(FieldError::not_supported(tp.child("spec").child("restartPolicy"), policy, &["Always"]));
    }
    if let Some(deadline) = opt_int(tspec, "activeDeadlineSeconds") {
        errs.push(FieldError::invalid(
            tp.child("spec").child("activeDeadlineSeconds"),
            deadline,
            "activeDeadlineSeconds in DaemonSet is not Supported",
        ));
    }
    errs.extend(validate_nonnegative(opt_int(spec, "minReadySeconds"), &p.child("minReadySeconds")));
    errs.extend(daemon_set_update_strategy(child(spec, "updateStrategy"), &p.child("updateStrategy")));
    errs.extend(validate_nonnegative(opt_int(spec, "revisionHistoryLimit"), &p.child("revisionHistoryLimit")));
    errs.extend(selector_immutable(obj, old));
    errs
}

fn spec_of(template: &Value) -> &Value {
    child(template, "spec")
}

/// ValidateDaemonSetUpdateStrategy and ValidateRollingUpdateDaemonSet.
fn daemon_set_update_strategy(strategy: &Value, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let rolling_update = field(strategy, "rollingUpdate");
    match opt_str(strategy, "type").unwrap_or("") {
        "OnDelete" => {}
        "RollingUpdate" => {
            let Some(ru) = rolling_update else {
                errs.push(FieldError::required(path.child("rollingUpdate"), ""));
                return errs;
            };
            let rp = path.child("rollingUpdate");
            let (max_unavailable, max_surge) = (field(ru, "maxUnavailable"), field(ru, "maxSurge"));
            errs.extend(positive_int_or_percent(max_unavailable, &rp.child("maxUnavailable")));
            errs.extend(positive_int_or_percent(max_surge, &rp.child("maxSurge")));
            errs.extend(not_more_than_100_percent(max_unavailable, &rp.child("maxUnavailable")));
            errs.extend(not_more_than_100_percent(max_surge, &rp.child("maxSurge")));
            let has_unavailable = int_or_percent_value(max_unavailable) != 0;
            let has_surge = int_or_percent_value(max_surge) != 0;
            if has_unavailable && has_surge {
                errs.push(FieldError::invalid(
                    rp.child("maxSurge"),
                    go_int_or_string(max_surge),
                    "may not be set when maxUnavailable is non-zero",
                ));
            } else if !has_unavailable && !has_surge {
                errs.push(FieldError::required(rp.child("maxUnavailable"), "cannot be 0 when maxSurge is 0"));
            }
        }
        other => errs.push(not_supported_rendered(
            path,
            format!(
                "apps.DaemonSetUpdateStrategy{{Type:{}, RollingUpdate:{}}}",
                quote(other),
                go_pointer("apps.RollingUpdateDaemonSet", rolling_update)
            ),
            &["RollingUpdate", "OnDelete"],
        )),
    }
    errs
}

// ---- batch/v1 Job ---------------------------------------------------------------------------

/// ValidateJob (create: the generated selector and labels too) / ValidateJobUpdate.
pub(crate) fn job(obj: &Value, old: Option<&Value>) -> ErrorList {
    let spec = spec(obj);
    let p = Path::new("spec");
    let mut errs = ErrorList::new();
    if old.is_none() {
        errs.extend(generated_selector(obj));
    }
    errs.extend(job_spec(spec, &p));
    let Some(old) = old else { return errs };
    let old_spec = self::spec(old);
    // Completions is immutable for non-indexed jobs (elastic Indexed Jobs are not modelled).
    if !semantic_eq(field(spec, "completions"), field(old_spec, "completions")) {
        let rendered = opt_int(spec, "completions").map_or_else(|| "null".to_string(), |n| n.to_string());
        errs.push(immutable(&p.child("completions"), rendered));
    }
    errs.extend(selector_immutable(obj, Some(old)));
    if !semantic_eq(field(spec, "template"), field(old_spec, "template")) {
        let rendered = field(spec, "template").map_or_else(|| "null".to_string(), Value::to_string);
        errs.push(immutable(&p.child("template"), rendered));
    }
    for key in ["completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy", "successPolicy"] {
        if !semantic_eq(field(spec, key), field(old_spec, key)) {
            let rendered = field(spec, key).map_or_else(|| "null".to_string(), render_scalar);
            errs.push(immutable(&p.child(key), rendered));
        }
    }
    errs
}

/// A dereferenced pointer as a field error prints it (Go's `%v`: strings unquoted).
fn render_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// validateGeneratedSelector (RequirePrefixedLabels, as on create).
fn generated_selector(obj: &Value) -> ErrorList {
    let spec = spec(obj);
    let mut errs = ErrorList::new();
    if field(spec, "manualSelector").and_then(Value::as_bool) == Some(true) {
        return errs;
    }
    let Some(selector) = field(spec, "selector") else { return errs };
    let meta = metadata(obj);
    let (name, uid) = (str_of(meta, "name"), str_of(meta, "uid"));
    if uid.is_empty() {
        errs.push(FieldError::required("metadata.uid", ""));
    }
    let tmeta = child(child(spec, "template"), "metadata");
    let tpath = Path::new("spec").child("template").child("metadata");
    for (key, want) in [
        (LEGACY_CONTROLLER_UID_LABEL, uid),
        (LEGACY_JOB_NAME_LABEL, name),
        (CONTROLLER_UID_LABEL, uid),
        (JOB_NAME_LABEL, name),
    ] {
        errs.extend(has_label(tmeta, &tpath, key, want));
    }
    let expected: Map<String, Value> = [
        (CONTROLLER_UID_LABEL, uid),
        (JOB_NAME_LABEL, name),
        (LEGACY_CONTROLLER_UID_LABEL, uid),
        (LEGACY_JOB_NAME_LABEL, name),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Value::from(v)))
    .collect();
    if let Ok(parsed) = label_selector_as_selector(Some(selector))
        && !parsed.matches(Some(&expected))
    {
        errs.push(FieldError::invalid(
            "spec.selector",
            render_selector(Some(selector)),
            "`selector` not auto-generated",
        ));
    }
    errs
}

/// ValidateHasLabel
fn has_label(meta: &Value, path: &Path, key: &str, want: &str) -> ErrorList {
    let labels = field(meta, "labels");
    let lp = path.child("labels").key(key);
    match labels.and_then(|l| l.get(key)).and_then(Value::as_str) {
        None => vec![FieldError::required(&lp, want)],
        Some(v) if v != want => vec![FieldError::invalid(&lp, go_string_map(labels), format!("must be '{want}'"))],
        Some(_) => ErrorList::new(),
    }
}

/// ValidateJobSpec, reduced (see the module docs).
fn job_spec(spec: &Value, p: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for key in ["parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished"] {
        errs.extend(validate_nonnegative(opt_int(spec, key), &p.child(key)));
    }
    let mode = opt_str(spec, "completionMode");
    if let Some(mode) = mode
        && !matches!(mode, "NonIndexed" | "Indexed")
    {
        errs.push(FieldError::not_supported(p.child("completionMode"), mode, &["NonIndexed", "Indexed"]));
    }
    if mode == Some("Indexed") && field(spec, "completions").is_none() {
        errs.push(FieldError::required(p.child("completions"), "when completion mode is Indexed"));
    }
    let has_failure_policy = field(spec, "podFailurePolicy").is_some();
    if let Some(policy) = opt_str(spec, "podReplacementPolicy") {
        if has_failure_policy && policy != "Failed" {
            errs.push(FieldError::not_supported(p.child("podReplacementPolicy"), policy, &["Failed"]));
        } else if !has_failure_policy && !matches!(policy, "Failed" | "TerminatingOrFailed") {
            errs.push(FieldError::not_supported(
                p.child("podReplacementPolicy"),
                policy,
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let template = child(spec, "template");
    let tp = p.child("template");
    errs.extend(validate_pod_template(template, &tp));
    let restart_path = tp.child("spec").child("restartPolicy");
    match opt_str(spec_of(template), "restartPolicy").unwrap_or("") {
        "" | "Always" => errs.push(FieldError::required(&restart_path, r#"valid values: "OnFailure", "Never""#)),
        "OnFailure" if has_failure_policy => errs.push(FieldError::invalid_str(
            &restart_path,
            "OnFailure",
            r#"only "Never" is supported when podFailurePolicy is specified"#,
        )),
        "OnFailure" | "Never" => {}
        other => errs.push(FieldError::not_supported(&restart_path, other, &["OnFailure", "Never"])),
    }
    // ValidateJobSpec's selector checks.
    let (sel_errs, selector) = selector_checks(spec, p);
    errs.extend(sel_errs);
    if let Ok(selector) = selector {
        errs.extend(selector_matches_any(&selector, template, &tp));
    }
    errs
}

/// The selector is required and must be a valid label selector (an empty one is allowed).
fn selector_checks<'a>(spec: &'a Value, p: &Path) -> (ErrorList, Result<Selector<'a>, ()>) {
    let selector = field(spec, "selector");
    let errs = match selector {
        None => vec![FieldError::required(p.child("selector"), "")],
        Some(sel) => validate_label_selector(sel, &p.child("selector")),
    };
    (errs, label_selector_as_selector(selector))
}

/// "`selector` does not match template `labels`", where an empty selector matches everything
/// and a nil one nothing (upstream checks even the empty case for Jobs).
fn selector_matches_any(selector: &Selector<'_>, template: &Value, tp: &Path) -> ErrorList {
    let labels = template.get("metadata").and_then(|m| field(m, "labels"));
    if !selector.matches(labels.and_then(Value::as_object)) {
        return vec![FieldError::invalid(
            tp.child("metadata").child("labels"),
            go_string_map(labels),
            "`selector` does not match template `labels`",
        )];
    }
    ErrorList::new()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::resources::{ResourceType, by_kind};

    fn rt(group: &str, kind: &str) -> &'static ResourceType {
        by_kind(group, kind).unwrap()
    }

    /// What the registry does on create: UID, prepare, defaults, then validation.
    fn create(group: &str, kind: &str, mut obj: Value) -> (Value, Vec<String>) {
        let rt = rt(group, kind);
        obj["metadata"]["uid"] = json!("u-1");
        rt.strategy.prepare_for_create(&mut obj);
        crate::defaults::apply(rt, &mut obj);
        let errs = crate::validation::validate(rt, &obj, None).iter().map(ToString::to_string).collect();
        (obj, errs)
    }

    fn update(group: &str, kind: &str, new: &Value, old: &Value) -> Vec<String> {
        crate::validation::validate(rt(group, kind), new, Some(old)).iter().map(ToString::to_string).collect()
    }

    fn containers() -> Value {
        json!([{"name": "c", "image": "busybox", "command": ["sh", "-c", "echo done"]}])
    }

    #[test]
    fn replication_controller_defaults_selector_from_template_and_validates() {
        let rc = json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers()}}}});
        let (rc, errs) = create("", "ReplicationController", rc);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(rc["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(rc["spec"]["replicas"], 1);
        assert_eq!(rc["spec"]["template"]["spec"]["restartPolicy"], "Always");

        let bad = json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": -1, "selector": {"app": "other"},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"restartPolicy": "Never", "containers": containers()}}}});
        assert_eq!(
            create("", "ReplicationController", bad).1,
            vec![
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ]
        );
        let no_template = json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "web", "namespace": "default"},
            "spec": {}});
        assert_eq!(
            create("", "ReplicationController", no_template).1,
            vec!["spec.selector: Required value", "spec.template: Required value"]
        );
    }

    #[test]
    fn daemon_set_defaults_and_update_strategy_rules() {
        let ds = |strategy: Value| {
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": "agent"}}, "updateStrategy": strategy,
                         "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": containers()}}}})
        };
        let (obj, errs) = create("apps", "DaemonSet", ds(json!(null)));
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            obj["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(obj["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(
            create(
                "apps",
                "DaemonSet",
                ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}))
            )
            .1,
            vec!["spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"]
        );
        assert_eq!(
            create(
                "apps",
                "DaemonSet",
                ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "10%"}}))
            )
            .1,
            vec![
                "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"10%\"}: may not be set when maxUnavailable is non-zero"
            ]
        );
        let (on_delete, errs) = create("apps", "DaemonSet", ds(json!({"type": "OnDelete"})));
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(on_delete["spec"]["updateStrategy"], json!({"type": "OnDelete"}));

        let mut moved = obj.clone();
        moved["spec"]["selector"] = json!({"matchLabels": {"app": "agent", "x": "y"}});
        moved["spec"]["template"]["metadata"]["labels"]["x"] = json!("y");
        let errs = update("apps", "DaemonSet", &moved, &obj);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("spec.selector: Invalid value: ") && errs[0].ends_with("field is immutable"),
            "{errs:?}"
        );
    }

    fn job(template_spec: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default"},
            "spec": {"template": {"spec": template_spec}}})
    }

    #[test]
    fn job_defaults_and_generated_selector() {
        let (obj, errs) = create("batch", "Job", job(json!({"restartPolicy": "Never", "containers": containers()})));
        assert!(errs.is_empty(), "{errs:?}");
        let spec = &obj["spec"];
        assert_eq!((spec["completions"].clone(), spec["parallelism"].clone()), (json!(1), json!(1)));
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["manualSelector"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(spec["selector"], json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}));
        let labels = json!({"batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
                            "controller-uid": "u-1", "job-name": "pi"});
        assert_eq!(spec["template"]["metadata"]["labels"], labels);
        assert_eq!(obj["metadata"]["labels"], labels);

        // Only parallelism set: completions stays unset (a work queue).
        let mut queue = job(json!({"restartPolicy": "OnFailure", "containers": containers()}));
        queue["spec"]["parallelism"] = json!(3);
        let (obj, errs) = create("batch", "Job", queue);
        assert!(errs.is_empty(), "{errs:?}");
        assert!(obj["spec"].get("completions").is_none());
    }

    #[test]
    fn job_restart_policy_and_numbers_are_validated() {
        let (_, errs) = create("batch", "Job", job(json!({"containers": containers()})));
        assert_eq!(
            errs,
            vec!["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]
        );
        let mut bad = job(json!({"restartPolicy": "Never", "containers": containers()}));
        bad["spec"]["backoffLimit"] = json!(-1);
        bad["spec"]["completionMode"] = json!("Sometimes");
        bad["spec"]["template"]["metadata"] = json!({"labels": {"job-name": "other"}});
        let (_, errs) = create("batch", "Job", bad);
        assert_eq!(
            errs,
            vec![
                "spec.template.metadata.labels[job-name]: Invalid value: map[string]string{\"batch.kubernetes.io/controller-uid\":\"u-1\", \"batch.kubernetes.io/job-name\":\"pi\", \"controller-uid\":\"u-1\", \"job-name\":\"other\"}: must be 'pi'",
                "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
                "spec.completionMode: Unsupported value: \"Sometimes\": supported values: \"NonIndexed\", \"Indexed\"",
            ]
        );
        let mut manual = job(json!({"restartPolicy": "Never", "containers": containers()}));
        manual["spec"]["manualSelector"] = json!(true);
        manual["spec"]["selector"] = json!({"matchLabels": {"app": "x"}});
        let (_, errs) = create("batch", "Job", manual);
        assert_eq!(
            errs,
            vec![
                "spec.template.metadata.labels: Invalid value: map[string]string(nil): `selector` does not match template `labels`"
            ]
        );
    }

    #[test]
    fn job_template_and_completions_are_immutable() {
        let (old, errs) = create("batch", "Job", job(json!({"restartPolicy": "Never", "containers": containers()})));
        assert!(errs.is_empty(), "{errs:?}");
        let mut new = old.clone();
        new["spec"]["suspend"] = json!(true);
        new["spec"]["parallelism"] = json!(4);
        assert!(update("batch", "Job", &new, &old).is_empty(), "suspend and parallelism are mutable");
        new["spec"]["completions"] = json!(5);
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("alpine");
        let errs = update("batch", "Job", &new, &old);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0], "spec.completions: Invalid value: 5: field is immutable");
        assert!(errs[1].starts_with("spec.template: Invalid value: ") && errs[1].ends_with(": field is immutable"));
    }
}

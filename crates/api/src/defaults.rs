//! Defaulting of the served kinds on wire JSON: the SetDefaults_* functions (and declarative
//! `+default` markers) of pkg/apis/{core,apps,discovery,networking}/v1 as the generated
//! SetObjectDefaults_* apply them, plus the two things Namespace creation always adds.
//!
//! Applying defaults twice changes nothing. IP and node-port allocation for Services,
//! `stringData` folding for Secrets and status initialisation by registry strategies
//! (e.g. a Pod's `status.phase: Pending`) are done elsewhere.

use serde_json::{Map, Value, json};

use crate::json::{is_nil, items_mut, object_if, object_mut, set_if_empty, set_if_nil};

use crate::resources::ResourceType;

/// Fills in the defaults kube-apiserver sets on an object of kind `rt`.
pub fn apply(rt: &ResourceType, obj: &mut Value) {
    let Some(obj) = obj.as_object_mut() else {
        return;
    };
    rt.strategy.apply_defaults(obj);
}

// ---- core/v1 -------------------------------------------------------------------------------

/// SetObjectDefaults_Pod
pub(crate) fn pod(obj: &mut Map<String, Value>) {
    let spec = object_mut(obj, "spec");
    // SetDefaults_Pod: only Pods, not pod templates.
    for key in ["containers", "initContainers"] {
        for c in items_mut(spec, key) {
            let Some(resources) = object_if(c, "resources") else { continue };
            let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else { continue };
            let requests = object_mut(resources, "requests");
            for (k, v) in limits {
                requests.entry(k).or_insert(v);
            }
        }
    }
    set_if_nil(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for key in ["containers", "initContainers"] {
            for c in items_mut(spec, key) {
                for port in items_mut(c, "ports") {
                    if let Some(container_port) = port.get("containerPort").cloned() {
                        set_if_empty(port, "hostPort", container_port);
                    }
                }
            }
        }
    }
    pod_spec(spec);
}

/// SetDefaults_PodSpec and what the generated defaulters apply to a PodSpec's volumes and
/// containers; shared by Pods and the pod templates of workloads.
fn pod_spec(spec: &mut Map<String, Value>) {
    set_if_empty(spec, "dnsPolicy", json!("ClusterFirst"));
    set_if_empty(spec, "restartPolicy", json!("Always"));
    set_if_nil(spec, "securityContext", json!({}));
    set_if_nil(spec, "terminationGracePeriodSeconds", json!(30));
    set_if_empty(spec, "schedulerName", json!("default-scheduler"));
    for volume in items_mut(spec, "volumes") {
        volume_defaults(volume);
    }
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        for c in items_mut(spec, key) {
            container(c);
        }
    }
}

/// SetDefaults_Volume and the defaults of the volume sources.
fn volume_defaults(volume: &mut Map<String, Value>) {
    if volume.iter().all(|(k, v)| k == "name" || v.is_null()) {
        volume.insert("emptyDir".to_string(), json!({}));
    }
    if let Some(host_path) = object_if(volume, "hostPath") {
        set_if_nil(host_path, "type", json!(""));
    }
    for key in ["secret", "configMap"] {
        if let Some(source) = object_if(volume, key) {
            set_if_nil(source, "defaultMode", json!(420));
        }
    }
    if let Some(downward) = object_if(volume, "downwardAPI") {
        set_if_nil(downward, "defaultMode", json!(420));
        downward_api_items(downward);
    }
    if let Some(projected) = object_if(volume, "projected") {
        set_if_nil(projected, "defaultMode", json!(420));
        for source in items_mut(projected, "sources") {
            if let Some(downward) = object_if(source, "downwardAPI") {
                downward_api_items(downward);
            }
            if let Some(token) = object_if(source, "serviceAccountToken") {
                set_if_nil(token, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(iscsi) = object_if(volume, "iscsi") {
        set_if_empty(iscsi, "iscsiInterface", json!("default"));
    }
    if let Some(rbd) = object_if(volume, "rbd") {
        set_if_empty(rbd, "pool", json!("rbd"));
        set_if_empty(rbd, "user", json!("admin"));
        set_if_empty(rbd, "keyring", json!("/etc/ceph/keyring"));
    }
    if let Some(azure) = object_if(volume, "azureDisk") {
        set_if_nil(azure, "cachingMode", json!("ReadWrite"));
        set_if_nil(azure, "kind", json!("Shared"));
        set_if_nil(azure, "fsType", json!("ext4"));
        set_if_nil(azure, "readOnly", json!(false));
    }
    if let Some(scale_io) = object_if(volume, "scaleIO") {
        set_if_empty(scale_io, "storageMode", json!("ThinProvisioned"));
        set_if_empty(scale_io, "fsType", json!("xfs"));
    }
    if let Some(template) = object_if(volume, "ephemeral").and_then(|e| object_if(e, "volumeClaimTemplate")) {
        set_if_nil(object_mut(template, "spec"), "volumeMode", json!("Filesystem"));
    }
}

fn downward_api_items(downward: &mut Map<String, Value>) {
    for item in items_mut(downward, "items") {
        if let Some(field_ref) = object_if(item, "fieldRef") {
            set_if_empty(field_ref, "apiVersion", json!("v1"));
        }
    }
}

/// SetDefaults_Container plus the defaults of ports, env, probes and lifecycle handlers.
fn container(c: &mut Map<String, Value>) {
    if c.get("imagePullPolicy").and_then(Value::as_str).is_none_or(str::is_empty) {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        c.insert("imagePullPolicy".to_string(), json!(default_pull_policy(image)));
    }
    set_if_empty(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_if_empty(c, "terminationMessagePolicy", json!("File"));
    for port in items_mut(c, "ports") {
        set_if_empty(port, "protocol", json!("TCP"));
    }
    for env in items_mut(c, "env") {
        if let Some(field_ref) = object_if(env, "valueFrom").and_then(|v| object_if(v, "fieldRef")) {
            set_if_empty(field_ref, "apiVersion", json!("v1"));
        }
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = object_if(c, key) {
            set_if_empty(probe, "timeoutSeconds", json!(1));
            set_if_empty(probe, "periodSeconds", json!(10));
            set_if_empty(probe, "successThreshold", json!(1));
            set_if_empty(probe, "failureThreshold", json!(3));
            if let Some(http) = object_if(probe, "httpGet") {
                http_get(http);
            }
            if let Some(grpc) = object_if(probe, "grpc") {
                set_if_nil(grpc, "service", json!(""));
            }
        }
    }
    if let Some(lifecycle) = object_if(c, "lifecycle") {
        for key in ["postStart", "preStop"] {
            if let Some(http) = object_if(lifecycle, key).and_then(|h| object_if(h, "httpGet")) {
                http_get(http);
            }
        }
    }
}

/// SetDefaults_HTTPGetAction
fn http_get(http: &mut Map<String, Value>) {
    set_if_empty(http, "path", json!("/"));
    set_if_empty(http, "scheme", json!("HTTP"));
}

/// `Always` for `:latest` or an untagged, undigested image; `IfNotPresent` otherwise (including
/// references that do not parse), as parsers.ParseImageName decides.
pub(crate) fn default_pull_policy(image: &str) -> &'static str {
    if image_tag(image).as_deref() == Some("latest") { "Always" } else { "IfNotPresent" }
}

/// The tag ParseImageName reports: the explicit tag, `latest` when there is neither tag nor
/// digest, or `None` when the reference is not a valid docker reference.
fn image_tag(image: &str) -> Option<String> {
    let (name_tag, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let (algorithm, hex) = digest.split_once(':')?;
        let algorithm_ok = !algorithm.is_empty()
            && algorithm.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+._-".contains(&c));
        let hex_ok = hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_alphanumeric() || b"=_-".contains(&c));
        if !algorithm_ok || !hex_ok {
            return None;
        }
    }
    let (name, tag) = match name_tag.rfind(':') {
        Some(i) if !name_tag[i + 1..].contains('/') => (&name_tag[..i], Some(&name_tag[i + 1..])),
        _ => (name_tag, None),
    };
    if let Some(tag) = tag {
        let b = tag.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !ok {
            return None;
        }
    }
    if !valid_repository_name(name) {
        return None;
    }
    Some(match (tag, digest) {
        (Some(tag), _) => tag.to_string(),
        (None, None) => "latest".to_string(),
        (None, Some(_)) => String::new(),
    })
}

/// A docker repository name: an optional registry host, then lower-case path components.
fn valid_repository_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        let is_domain =
            first.contains(['.', ':']) || first == "localhost" || first.bytes().any(|c| c.is_ascii_uppercase());
        if is_domain {
            let host_ok = !first.is_empty()
                && first.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':' | b'[' | b']'));
            if !host_ok {
                return false;
            }
            components.remove(0);
        }
    }
    components.iter().all(|c| valid_path_component(c))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// SetDefaults_Namespace and SetDefaults_NamespaceStatus, plus the `kubernetes` finalizer the
/// namespace strategy adds on create. The finalizer is added only to a namespace that has no
/// status phase yet (one being created): it must stay removable by `/finalize` afterwards.
pub(crate) fn namespace(obj: &mut Map<String, Value>) {
    let name = obj.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
    if !name.is_empty() {
        object_mut(object_mut(obj, "metadata"), "labels")
            .insert("kubernetes.io/metadata.name".to_string(), json!(name));
    }
    let status = object_mut(obj, "status");
    let creating = status.get("phase").and_then(Value::as_str).is_none_or(str::is_empty);
    set_if_empty(status, "phase", json!("Active"));
    if creating {
        let spec = object_mut(obj, "spec");
        let finalizers = spec.entry("finalizers").or_insert_with(|| json!([]));
        if !finalizers.is_array() {
            *finalizers = json!([]);
        }
        let list = finalizers.as_array_mut().expect("just made a list");
        if !list.iter().any(|f| f == "kubernetes") {
            list.push(json!("kubernetes"));
        }
    }
}

/// SetDefaults_Secret
pub(crate) fn secret(obj: &mut Map<String, Value>) {
    set_if_empty(obj, "type", json!("Opaque"));
}

/// SetDefaults_Endpoints
pub(crate) fn endpoints(obj: &mut Map<String, Value>) {
    for subset in items_mut(obj, "subsets") {
        for port in items_mut(subset, "ports") {
            set_if_empty(port, "protocol", json!("TCP"));
        }
    }
}

/// SetDefaults_NodeStatus
pub(crate) fn node(obj: &mut Map<String, Value>) {
    let Some(status) = object_if(obj, "status") else { return };
    if is_nil(status, "allocatable")
        && let Some(capacity) = status.get("capacity").filter(|c| !c.is_null()).cloned()
    {
        status.insert("allocatable".to_string(), capacity);
    }
}

// ---- apps/v1 -------------------------------------------------------------------------------

/// The pod template of a workload: SetDefaults_PodSpec and the nested defaults, not SetDefaults_Pod.
fn pod_template(spec: &mut Map<String, Value>) {
    pod_spec(object_mut(object_mut(spec, "template"), "spec"));
}

/// SetDefaults_Deployment
pub(crate) fn deployment(obj: &mut Map<String, Value>) {
    let spec = object_mut(obj, "spec");
    set_if_nil(spec, "replicas", json!(1));
    let strategy = object_mut(spec, "strategy");
    set_if_empty(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let rolling_update = object_mut(strategy, "rollingUpdate");
        set_if_nil(rolling_update, "maxUnavailable", json!("25%"));
        set_if_nil(rolling_update, "maxSurge", json!("25%"));
    }
    set_if_nil(spec, "revisionHistoryLimit", json!(10));
    set_if_nil(spec, "progressDeadlineSeconds", json!(600));
    pod_template(spec);
}

/// SetDefaults_ReplicaSet
pub(crate) fn replica_set(obj: &mut Map<String, Value>) {
    let spec = object_mut(obj, "spec");
    set_if_nil(spec, "replicas", json!(1));
    pod_template(spec);
}

/// SetDefaults_StatefulSet, plus PVC defaults on the volume claim templates.
pub(crate) fn stateful_set(obj: &mut Map<String, Value>) {
    let spec = object_mut(obj, "spec");
    set_if_empty(spec, "podManagementPolicy", json!("OrderedReady"));
    let strategy = object_mut(spec, "updateStrategy");
    if strategy.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
        strategy.insert("type".to_string(), json!("RollingUpdate"));
        set_if_nil(strategy, "rollingUpdate", json!({}));
    }
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
        && let Some(rolling_update) = object_if(strategy, "rollingUpdate")
    {
        set_if_nil(rolling_update, "partition", json!(0));
    }
    let policy = object_mut(spec, "persistentVolumeClaimRetentionPolicy");
    set_if_empty(policy, "whenDeleted", json!("Retain"));
    set_if_empty(policy, "whenScaled", json!("Retain"));
    set_if_nil(spec, "replicas", json!(1));
    set_if_nil(spec, "revisionHistoryLimit", json!(10));
    pod_template(spec);
    for claim in items_mut(spec, "volumeClaimTemplates") {
        set_if_nil(object_mut(claim, "spec"), "volumeMode", json!("Filesystem"));
        set_if_empty(object_mut(claim, "status"), "phase", json!("Pending"));
    }
}

/// SetDefaults_DaemonSet
pub(crate) fn daemon_set(obj: &mut Map<String, Value>) {
    let spec = object_mut(obj, "spec");
    let strategy = object_mut(spec, "updateStrategy");
    set_if_empty(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let rolling_update = object_mut(strategy, "rollingUpdate");
        set_if_nil(rolling_update, "maxUnavailable", json!(1));
        set_if_nil(rolling_update, "maxSurge", json!(0));
    }
    set_if_nil(spec, "revisionHistoryLimit", json!(10));
    pod_template(spec);
}

// ---- core/v1 ReplicationController, batch/v1 Job -----------------------------------------

/// Go's `len(m) == 0` for a map field: absent, `null` or `{}`.
fn is_empty_map(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).and_then(Value::as_object).is_none_or(Map::is_empty)
}

/// The template labels, when the template has a (non-nil) label map.
fn template_labels(obj: &Map<String, Value>) -> Option<Value> {
    let labels = obj.get("spec")?.get("template")?.get("metadata")?.get("labels")?;
    labels.is_object().then(|| labels.clone())
}

/// A workload's `metadata.labels` default to its template's labels when it has none.
fn labels_from_template(obj: &mut Map<String, Value>, labels: &Value) {
    let meta = object_mut(obj, "metadata");
    if is_empty_map(meta, "labels") {
        meta.insert("labels".to_string(), labels.clone());
    }
}

/// SetDefaults_ReplicationController: selector and labels from the template's labels, one
/// replica; the template (a pointer in v1) gets pod spec defaults only when present.
pub(crate) fn replication_controller(obj: &mut Map<String, Value>) {
    if let Some(labels) = template_labels(obj) {
        let spec = object_mut(obj, "spec");
        if is_empty_map(spec, "selector") {
            spec.insert("selector".to_string(), labels.clone());
        }
        labels_from_template(obj, &labels);
    }
    let spec = object_mut(obj, "spec");
    set_if_nil(spec, "replicas", json!(1));
    if let Some(template) = object_if(spec, "template") {
        pod_spec(object_mut(template, "spec"));
    }
}

/// SetDefaults_Job as of 1.32 (JobPodReplacementPolicy on), plus the pod failure policy's
/// condition-pattern default. The selector and template labels are generated by the strategy.
pub(crate) fn job(obj: &mut Map<String, Value>) {
    let spec = object_mut(obj, "spec");
    if is_nil(spec, "completions") && is_nil(spec, "parallelism") {
        spec.insert("completions".to_string(), json!(1));
        spec.insert("parallelism".to_string(), json!(1));
    }
    set_if_nil(spec, "parallelism", json!(1));
    if is_nil(spec, "backoffLimit") {
        let limit = if is_nil(spec, "backoffLimitPerIndex") { 6 } else { i32::MAX };
        spec.insert("backoffLimit".to_string(), json!(limit));
    }
    set_if_nil(spec, "completionMode", json!("NonIndexed"));
    set_if_nil(spec, "suspend", json!(false));
    let has_failure_policy = !is_nil(spec, "podFailurePolicy");
    if let Some(policy) = object_if(spec, "podFailurePolicy") {
        for rule in items_mut(policy, "rules") {
            for pattern in items_mut(rule, "onPodConditions") {
                set_if_empty(pattern, "status", json!("True"));
            }
        }
    }
    let replacement = if has_failure_policy { "Failed" } else { "TerminatingOrFailed" };
    set_if_nil(spec, "podReplacementPolicy", json!(replacement));
    set_if_nil(spec, "manualSelector", json!(false));
    pod_template(spec);
    if let Some(labels) = template_labels(obj) {
        labels_from_template(obj, &labels);
    }
}

// ---- discovery.k8s.io, networking.k8s.io ---------------------------------------------------

/// SetDefaults_EndpointPort
pub(crate) fn endpoint_slice(obj: &mut Map<String, Value>) {
    for port in items_mut(obj, "ports") {
        set_if_nil(port, "name", json!(""));
        set_if_nil(port, "protocol", json!("TCP"));
    }
}

/// SetDefaults_IngressClass
pub(crate) fn ingress_class(obj: &mut Map<String, Value>) {
    if let Some(params) = object_if(obj, "spec").and_then(|s| object_if(s, "parameters")) {
        set_if_nil(params, "scope", json!("Cluster"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;

    fn defaulted(group: &str, kind: &str, mut obj: Value) -> Value {
        let rt = by_kind(group, kind).unwrap();
        apply(rt, &mut obj);
        let again = {
            let mut twice = obj.clone();
            apply(rt, &mut twice);
            twice
        };
        assert_eq!(again, obj, "defaulting is idempotent");
        obj
    }

    #[test]
    fn pod() {
        let pod = defaulted(
            "",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {
                "volumes": [{"name": "data"}, {"name": "cfg", "configMap": {"name": "c"}}],
                "containers": [{
                    "name": "app", "image": "nginx",
                    "ports": [{"containerPort": 80}],
                    "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                    "resources": {"limits": {"cpu": "1"}},
                    "livenessProbe": {"httpGet": {"port": 80}},
                    "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5}
                }],
                "initContainers": [{"name": "init", "image": "busybox:1.36"}]
            }}),
        );
        assert_eq!(
            pod["spec"],
            json!({
                "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}}],
                "containers": [{
                    "name": "app", "image": "nginx",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName", "apiVersion": "v1"}}}],
                    "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}},
                    "livenessProbe": {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
                    "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5,
                        "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                    "imagePullPolicy": "Always",
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File"
                }],
                "initContainers": [{"name": "init", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
                "enableServiceLinks": true,
                "dnsPolicy": "ClusterFirst",
                "restartPolicy": "Always",
                "securityContext": {},
                "terminationGracePeriodSeconds": 30,
                "schedulerName": "default-scheduler"
            })
        );
    }

    #[test]
    fn pod_keeps_what_is_set_and_defaults_host_ports() {
        let pod = defaulted(
            "",
            "Pod",
            json!({"spec": {"hostNetwork": true, "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "a", "image": "a", "imagePullPolicy": "Never", "ports": [{"containerPort": 53, "protocol": "UDP"}]}]}}),
        );
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 0);
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(
            pod["spec"]["containers"][0]["ports"][0],
            json!({"containerPort": 53, "protocol": "UDP", "hostPort": 53})
        );
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("registry.example.com:5000/team/app:latest", "Always"),
            ("localhost/app", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("registry.example.com:5000/team/app", "Always"),
            ("nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "IfNotPresent"),
            ("nginx:latest@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "Always"),
            ("Nginx", "IfNotPresent"),
            ("", "IfNotPresent"),
        ] {
            assert_eq!(default_pull_policy(image), policy, "{image}");
        }
    }

    #[test]
    fn deployment() {
        let d = defaulted(
            "apps",
            "Deployment",
            json!({"spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "x", "image": "x:1"}]}}}}),
        );
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        let tspec = &d["spec"]["template"]["spec"];
        assert_eq!(tspec["restartPolicy"], "Always");
        assert_eq!(tspec["dnsPolicy"], "ClusterFirst");
        assert_eq!(tspec["schedulerName"], "default-scheduler");
        assert_eq!(tspec["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert!(tspec.get("enableServiceLinks").is_none(), "SetDefaults_Pod does not apply to templates");

        let recreate = defaulted("apps", "Deployment", json!({"spec": {"strategy": {"type": "Recreate"}}}));
        assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn replica_set() {
        let rs = defaulted("apps", "ReplicaSet", json!({"spec": {"replicas": 0}}));
        assert_eq!(rs["spec"]["replicas"], 0);
        assert_eq!(rs["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(defaulted("apps", "ReplicaSet", json!({}))["spec"]["replicas"], 1);
    }

    #[test]
    fn stateful_set() {
        let sts = defaulted(
            "apps",
            "StatefulSet",
            json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}}),
        );
        let spec = &sts["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(spec["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(spec["volumeClaimTemplates"][0]["spec"]["volumeMode"], "Filesystem");
        assert_eq!(spec["volumeClaimTemplates"][0]["status"], json!({"phase": "Pending"}));

        let on_delete = defaulted("apps", "StatefulSet", json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}));
        assert_eq!(on_delete["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
    }

    #[test]
    fn service() {
        let svc = defaulted(
            "",
            "Service",
            json!({"spec": {"ports": [{"port": 80}, {"port": 443, "targetPort": "https", "protocol": "UDP"}]}}),
        );
        assert_eq!(
            svc["spec"],
            json!({"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}, {"port": 443, "targetPort": "https", "protocol": "UDP"}],
                "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster"})
        );

        let lb = defaulted(
            "",
            "Service",
            json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP",
            "ports": [{"port": 80, "targetPort": 0}]}, "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}),
        );
        assert_eq!(lb["spec"]["sessionAffinityConfig"], json!({"clientIP": {"timeoutSeconds": 10800}}));
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(lb["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(lb["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");

        let external = defaulted(
            "",
            "Service",
            json!({"spec": {"type": "ExternalName", "externalName": "x.example.com",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}}),
        );
        assert!(external["spec"].get("internalTrafficPolicy").is_none());
        assert!(external["spec"].get("externalTrafficPolicy").is_none());
        assert!(external["spec"].get("sessionAffinityConfig").is_none());
    }

    #[test]
    fn secret() {
        assert_eq!(defaulted("", "Secret", json!({"data": {}}))["type"], "Opaque");
        assert_eq!(defaulted("", "Secret", json!({"type": "kubernetes.io/tls"}))["type"], "kubernetes.io/tls");
    }

    #[test]
    fn namespace() {
        let ns = defaulted("", "Namespace", json!({"metadata": {"name": "team-a"}}));
        assert_eq!(ns["metadata"]["labels"], json!({"kubernetes.io/metadata.name": "team-a"}));
        assert_eq!(ns["spec"], json!({"finalizers": ["kubernetes"]}));
        assert_eq!(ns["status"], json!({"phase": "Active"}));

        let finalized = defaulted(
            "",
            "Namespace",
            json!({"metadata": {"name": "b"}, "spec": {}, "status": {"phase": "Terminating"}}),
        );
        assert_eq!(finalized["spec"], json!({}));
        assert_eq!(finalized["status"]["phase"], "Terminating");
    }

    #[test]
    fn endpoints_and_endpoint_slices() {
        let ep = defaulted("", "Endpoints", json!({"subsets": [{"ports": [{"port": 80}]}]}));
        assert_eq!(ep["subsets"][0]["ports"][0], json!({"port": 80, "protocol": "TCP"}));
        let slice = defaulted(
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"ports": [{"port": 80}, {"name": "dns", "protocol": "UDP"}]}),
        );
        assert_eq!(
            slice["ports"],
            json!([{"port": 80, "name": "", "protocol": "TCP"}, {"name": "dns", "protocol": "UDP"}])
        );
    }

    #[test]
    fn node_ingress_class_and_kinds_without_defaults() {
        let node = defaulted("", "Node", json!({"status": {"capacity": {"cpu": "4"}}}));
        assert_eq!(node["status"]["allocatable"], json!({"cpu": "4"}));
        let class = defaulted(
            "networking.k8s.io",
            "IngressClass",
            json!({"spec": {"controller": "x.io/c", "parameters": {"kind": "K", "name": "n"}}}),
        );
        assert_eq!(class["spec"]["parameters"]["scope"], "Cluster");
        for (group, kind) in
            [("networking.k8s.io", "Ingress"), ("", "Event"), ("", "ConfigMap"), ("coordination.k8s.io", "Lease")]
        {
            let obj = json!({"metadata": {"name": "x"}, "spec": {}});
            assert_eq!(defaulted(group, kind, obj.clone()), obj, "{kind}");
        }
    }
}

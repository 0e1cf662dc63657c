//! A container's environment, as kubelet's `makeEnvironmentVariables` builds it: envFrom, then
//! env (with `$(VAR)` references expanded), then the Service link variables for what is not
//! already set.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, Pod, Service};

/// What the environment may read besides the pod: the Services for the link variables, and
/// the ConfigMaps and Secrets (decoded) the container references, fetched by the agent.
#[derive(Debug, Default)]
pub struct Sources {
    /// The Services of the pod's namespace, and `default/kubernetes`.
    pub services: Vec<Service>,
    pub config_maps: HashMap<String, BTreeMap<String, String>>,
    pub secrets: HashMap<String, BTreeMap<String, String>>,
}

/// The pod facts `fieldRef` reads that the API object does not hold yet.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub host_ip: IpAddr,
    pub pod_ips: Vec<IpAddr>,
}

/// The ConfigMap and Secret names a container's env and envFrom refer to, for the agent to fetch.
pub fn references(c: &Container) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (vec![], vec![]);
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else { continue };
        cms.extend(from.config_map_key_ref.as_ref().map(|r| r.name.clone()));
        secrets.extend(from.secret_key_ref.as_ref().map(|r| r.name.clone()));
    }
    for f in c.env_from.iter().flatten() {
        cms.extend(f.config_map_ref.as_ref().map(|r| r.name.clone()));
        secrets.extend(f.secret_ref.as_ref().map(|r| r.name.clone()));
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// The container's environment, in kubelet's order; an error is the message of the
/// `CreateContainerConfigError` kubelet reports (a missing ConfigMap, Secret or key that is
/// not optional).
pub fn container_env(pod: &Pod, c: &Container, rt: &Runtime, src: &Sources) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out: Vec<(String, String)> = vec![];
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(slot) = out.iter_mut().find(|(name, _)| *name == k) {
            slot.1 = v;
        } else {
            out.push((k, v));
        }
    };

    for f in c.env_from.iter().flatten() {
        let prefix = f.prefix.as_deref().unwrap_or("");
        let (data, optional, what, name) = if let Some(r) = &f.config_map_ref {
            (src.config_maps.get(&r.name), r.optional.unwrap_or(false), "configmap", &r.name)
        } else if let Some(r) = &f.secret_ref {
            (src.secrets.get(&r.name), r.optional.unwrap_or(false), "secret", &r.name)
        } else {
            continue;
        };
        match data {
            Some(data) => {
                for (k, v) in data {
                    set(&mut out, format!("{prefix}{k}"), v.clone());
                }
            }
            None if optional => {}
            None => return Err(format!("{what} \"{name}\" not found")),
        }
    }

    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            None => {
                let known: HashMap<&str, &str> = out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                expand(e.value.as_deref().unwrap_or(""), &known)
            }
            Some(from) => {
                if let Some(f) = &from.field_ref {
                    field_value(pod, &f.field_path, rt)?
                } else if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    match src.config_maps.get(&r.name).map(|d| d.get(&r.key)) {
                        Some(Some(v)) => v.clone(),
                        _ if optional => continue,
                        None => return Err(format!("configmap \"{}\" not found", r.name)),
                        Some(None) => return Err(format!("couldn't find key {} in ConfigMap {ns}/{}", r.key, r.name)),
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    match src.secrets.get(&r.name).map(|d| d.get(&r.key)) {
                        Some(Some(v)) => v.clone(),
                        _ if optional => continue,
                        None => return Err(format!("secret \"{}\" not found", r.name)),
                        Some(None) => return Err(format!("couldn't find key {} in Secret {ns}/{}", r.key, r.name)),
                    }
                } else if from.resource_field_ref.is_some() {
                    // No resource accounting: report no limit, as kubelet does for an unset
                    // limit (the node's allocatable would be the real figure).
                    "0".to_owned()
                } else {
                    continue;
                }
            }
        };
        set(&mut out, e.name.clone(), value);
    }

    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
    for (k, v) in service_env(ns, links, &src.services) {
        if !out.iter().any(|(name, _)| *name == k) {
            out.push((k, v));
        }
    }
    Ok(out)
}

/// A `fieldRef` value (the paths the downward API allows in env).
fn field_value(pod: &Pod, path: &str, rt: &Runtime) -> Result<String, String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let map_key = |prefix: &str| path.strip_prefix(prefix).and_then(|r| r.strip_suffix("']"));
    let value = match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => rt.host_ip.to_string(),
        "status.podIP" => rt.pod_ips.first().map(IpAddr::to_string).unwrap_or_default(),
        "status.podIPs" => rt.pod_ips.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(","),
        _ => {
            if let Some(k) = map_key("metadata.labels['") {
                m.labels.as_ref().and_then(|l| l.get(k)).cloned().unwrap_or_default()
            } else if let Some(k) = map_key("metadata.annotations['") {
                m.annotations.as_ref().and_then(|a| a.get(k)).cloned().unwrap_or_default()
            } else {
                return Err(format!("unsupported fieldPath: {path}"));
            }
        }
    };
    Ok(value)
}

/// Expands `$(NAME)` from `known`; `$$` is a literal `$`; an unknown reference stays as written
/// (Kubernetes' `expansion.Expand`).
pub fn expand(s: &str, known: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match known.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The Docker-link variables of the Services a pod sees (kubelet's `getServiceEnvVarMap` and
/// `envvars.FromServices`): the master Service `default/kubernetes` always, the others of the
/// pod's namespace when `enableServiceLinks`; only Services with a cluster IP.
pub fn service_env(ns: &str, links: bool, services: &[Service]) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<String, &Service> = BTreeMap::new();
    for s in services {
        let (sns, name) = (s.metadata.namespace.as_deref().unwrap_or(""), s.metadata.name.as_deref().unwrap_or(""));
        if sns == "default" && name == "kubernetes" {
            chosen.entry(name.to_owned()).or_insert(s);
        } else if sns == ns && links {
            chosen.insert(name.to_owned(), s);
        }
    }
    let mut out = vec![];
    for (name, s) in chosen {
        let Some(spec) = s.spec.as_ref() else { continue };
        let Some(ip) = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty() && *ip != "None") else { continue };
        let prefix = name.to_uppercase().replace('-', "_");
        let ports = spec.ports.as_deref().unwrap_or_default();
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_owned()));
        if let Some(first) = ports.first() {
            out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        }
        for p in ports {
            if let Some(pname) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{prefix}_SERVICE_PORT_{}", pname.to_uppercase().replace('-', "_")),
                    p.port.to_string(),
                ));
            }
        }
        for (i, p) in ports.iter().enumerate() {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let url = format!("{}://{ip}:{}", proto.to_lowercase(), p.port);
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((pp.clone(), url));
            out.push((format!("{pp}_PROTO"), proto.to_lowercase()));
            out.push((format!("{pp}_PORT"), p.port.to_string()));
            out.push((format!("{pp}_ADDR"), ip.to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": ports}}),
        )
        .unwrap()
    }

    fn rt() -> Runtime {
        Runtime { host_ip: "192.0.2.10".parse().unwrap(), pod_ips: vec!["10.244.0.5".parse().unwrap()] }
    }

    #[test]
    fn service_links_are_named_as_kubelet_names_them() {
        let services = vec![
            svc("default", "kubernetes", "10.96.0.1", json!([{"name": "https", "port": 443, "protocol": "TCP"}])),
            svc(
                "shop",
                "myapp-svc",
                "10.96.0.20",
                json!([{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns-udp", "port": 53, "protocol": "UDP"}]),
            ),
            svc("shop", "headless", "None", json!([{"port": 80}])),
            svc("other", "elsewhere", "10.96.0.30", json!([{"port": 80}])),
        ];
        let env: BTreeMap<String, String> = service_env("shop", true, &services).into_iter().collect();
        assert_eq!(env["MYAPP_SVC_SERVICE_HOST"], "10.96.0.20");
        assert_eq!(env["MYAPP_SVC_SERVICE_PORT"], "80");
        assert_eq!(env["MYAPP_SVC_SERVICE_PORT_HTTP"], "80");
        assert_eq!(env["MYAPP_SVC_SERVICE_PORT_DNS_UDP"], "53");
        assert_eq!(env["MYAPP_SVC_PORT"], "tcp://10.96.0.20:80");
        assert_eq!(env["MYAPP_SVC_PORT_80_TCP"], "tcp://10.96.0.20:80");
        assert_eq!(env["MYAPP_SVC_PORT_80_TCP_PROTO"], "tcp");
        assert_eq!(env["MYAPP_SVC_PORT_80_TCP_PORT"], "80");
        assert_eq!(env["MYAPP_SVC_PORT_80_TCP_ADDR"], "10.96.0.20");
        assert_eq!(env["MYAPP_SVC_PORT_53_UDP"], "udp://10.96.0.20:53");
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
        assert_eq!(env["KUBERNETES_PORT_443_TCP_ADDR"], "10.96.0.1");
        assert!(!env.keys().any(|k| k.starts_with("HEADLESS") || k.starts_with("ELSEWHERE")));
        // enableServiceLinks: false keeps only the master Service.
        let env: BTreeMap<String, String> = service_env("shop", false, &services).into_iter().collect();
        assert!(env.contains_key("KUBERNETES_SERVICE_HOST") && !env.contains_key("MYAPP_SVC_SERVICE_HOST"));
    }

    #[test]
    fn env_reads_values_fields_config_maps_and_secrets_in_order() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c",
                "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                "env": [
                    {"name": "A", "value": "1"},
                    {"name": "B", "value": "$(A)-$(CFG_X)-$$(A)-$(NOPE)"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                    {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "missing", "key": "k", "optional": true}}},
                    {"name": "KUBERNETES_SERVICE_HOST", "value": "mine"}
                ]}]}
        }))
        .unwrap();
        let src = Sources {
            services: vec![svc("default", "kubernetes", "10.96.0.1", json!([{"name": "https", "port": 443}]))],
            config_maps: HashMap::from([("cfg".into(), BTreeMap::from([("X".into(), "x".into())]))]),
            secrets: HashMap::from([("s".into(), BTreeMap::from([("pw".into(), "hunter2".into())]))]),
        };
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let env = container_env(&pod, c, &rt(), &src).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(env[0], ("CFG_X".into(), "x".into()));
        assert_eq!(get("B"), Some("1-x-$(A)-$(NOPE)"));
        assert_eq!(
            (get("POD"), get("APP"), get("IP"), get("HOST")),
            (Some("p"), Some("web"), Some("10.244.0.5"), Some("192.0.2.10"))
        );
        assert_eq!(get("PW"), Some("hunter2"));
        assert_eq!(get("OPT"), None);
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("mine"), "a container's own env wins over service links");
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("443"));
    }

    #[test]
    fn a_missing_reference_is_the_error_kubelet_reports() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "shop"},
            "spec": {"containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]}]}}))
        .unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        assert_eq!(container_env(&pod, c, &rt(), &Sources::default()).unwrap_err(), "configmap \"cfg\" not found");
        let src = Sources { config_maps: HashMap::from([("cfg".into(), BTreeMap::new())]), ..Sources::default() };
        assert_eq!(container_env(&pod, c, &rt(), &src).unwrap_err(), "couldn't find key k in ConfigMap shop/cfg");
        assert_eq!(references(c), (vec!["cfg".to_owned()], vec![]));
    }
}

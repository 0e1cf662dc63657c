//! Ingresses and IngressClasses.

use jiff::Timestamp;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde_json::Value;

use super::{AGE, Column, NAME, age, column, decode, docs, load_balancer_addresses, name, text};

pub(crate) const INGRESS: &[Column] = &[
    NAME,
    column("Class", "string", docs::INGRESS_CLASS),
    column("Hosts", "string", docs::INGRESS_HOSTS),
    column("Address", "string", docs::INGRESS_ADDRESS),
    column("Ports", "string", docs::INGRESS_PORTS),
    AGE,
];

pub(crate) const INGRESS_CLASS: &[Column] = &[
    NAME,
    column("Controller", "string", docs::INGRESS_CLASS_CONTROLLER),
    column("Parameters", "string", docs::INGRESS_CLASS_PARAMETERS),
    AGE,
];

pub(crate) fn ingress(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let ing: Ingress = decode(obj)?;
    let spec = ing.spec.unwrap_or_default();
    let class = spec.ingress_class_name.as_deref().unwrap_or("<none>");

    // formatHosts: the first three non-empty hosts, "+ N more..." counting every rule after three.
    let rules = spec.rules.unwrap_or_default();
    let max = 3;
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in &rules {
        if hosts.len() == max {
            more = true;
        }
        if !more && !text(&rule.host).is_empty() {
            hosts.push(text(&rule.host));
        }
    }
    let hosts = match (hosts.is_empty(), more) {
        (true, _) => "*".to_string(),
        (false, true) => format!("{} + {} more...", hosts.join(","), rules.len() - max),
        (false, false) => hosts.join(","),
    };

    let points = ing.status.and_then(|s| s.load_balancer).and_then(|lb| lb.ingress).unwrap_or_default();
    let address = load_balancer_addresses(points.iter().map(|p| (&p.ip, &p.hostname)));
    let ports = if spec.tls.is_some_and(|tls| !tls.is_empty()) { "80, 443" } else { "80" };
    Some(vec![name(&ing.metadata), class.into(), hosts.into(), address.into(), ports.into(), age(&ing.metadata, now)])
}

pub(crate) fn ingress_class(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let class: IngressClass = decode(obj)?;
    let spec = class.spec.unwrap_or_default();
    let parameters = match &spec.parameters {
        None => "<none>".to_string(),
        Some(p) => match &p.api_group {
            Some(group) => format!("{}.{group}/{}", p.kind, p.name),
            None => format!("{}/{}", p.kind, p.name),
        },
    };
    Some(vec![name(&class.metadata), text(&spec.controller).into(), parameters.into(), age(&class.metadata, now)])
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ago, row};
    use serde_json::{Value, json};

    fn s(cells: &[&str]) -> Vec<Value> {
        cells.iter().map(|c| Value::from(*c)).collect()
    }

    #[test]
    fn ingress_rows() {
        let ing = |spec: Value, status: Value| {
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                   "metadata": {"name": "shop", "namespace": "default", "creationTimestamp": ago(86400)},
                   "spec": spec, "status": status})
        };
        let rule = |host: &str| json!({"host": host});
        let cases = [
            (
                json!({"rules": [rule("a.example.com")]}),
                json!({}),
                ["shop", "<none>", "a.example.com", "", "80", "24h"],
            ),
            (
                json!({"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
                       "rules": [rule("a.example.com"), {}, rule("b.example.com"), rule("c.example.com"), rule("d.example.com")]}),
                json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}, {"hostname": "lb.example.com"}]}}),
                [
                    "shop",
                    "nginx",
                    "a.example.com,b.example.com,c.example.com + 2 more...",
                    "203.0.113.5,lb.example.com",
                    "80, 443",
                    "24h",
                ],
            ),
            (
                json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}),
                json!({}),
                ["shop", "<none>", "*", "", "80", "24h"],
            ),
        ];
        for (spec, status, want) in cases {
            assert_eq!(row("networking.k8s.io", "Ingress", &ing(spec.clone(), status)), s(&want), "{spec}");
        }
    }

    #[test]
    fn ingress_class_rows() {
        let class = |spec: Value| {
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                   "metadata": {"name": "nginx", "creationTimestamp": ago(65)}, "spec": spec})
        };
        assert_eq!(
            row("networking.k8s.io", "IngressClass", &class(json!({"controller": "k8s.io/ingress-nginx"}))),
            s(&["nginx", "k8s.io/ingress-nginx", "<none>", "65s"])
        );
        let with_params = class(json!({"controller": "example.com/lb",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}));
        assert_eq!(
            row("networking.k8s.io", "IngressClass", &with_params)[2],
            "IngressParameters.k8s.example.com/external-lb"
        );
        let core_params = class(json!({"controller": "c", "parameters": {"kind": "ConfigMap", "name": "cfg"}}));
        assert_eq!(row("networking.k8s.io", "IngressClass", &core_params)[2], "ConfigMap/cfg");
    }
}

//! Field selectors (k8s.io/apimachinery/pkg/fields): `a=b`, `a==b`, `a!=b` terms joined by
//! commas, with `\`, `,` and `=` backslash-escaped in values; plus what each served kind lets
//! clients select on, taken from kube-apiserver's registries (`GetAttrs`/`ToSelectableFields`)
//! and field-label conversion functions (`AddFieldLabelConversionFunc`).

use std::fmt;

use serde_json::Value;

use super::go_quote;
use crate::resources::ResourceType;

/// A field selector operator; `==` parses to [`Operator::Equals`], as upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Equals,
    NotEquals,
}

/// One `field op value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub field: String,
    pub operator: Operator,
    pub value: String,
}

impl Requirement {
    fn matches(&self, actual: &str) -> bool {
        match self.operator {
            Operator::Equals => actual == self.value,
            Operator::NotEquals => actual != self.value,
        }
    }
}

/// A field selector: the AND of its terms, kept in upstream's (sorted) order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// Matches everything.
    pub fn everything() -> Self {
        Selector::default()
    }

    /// Parses a field selector (`fields.ParseSelector`). Terms are sorted as strings first, and a
    /// term whose field and value are both empty (`=`) is dropped, as upstream does.
    pub fn parse(selector: &str) -> Result<Self, String> {
        let mut parts = split_terms(selector);
        parts.sort_unstable();
        let mut requirements = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(format!("invalid selector: '{selector}'; can't understand '{part}'"));
            };
            let value = unescape_value(rhs)?;
            if lhs.is_empty() && value.is_empty() {
                continue;
            }
            requirements.push(Requirement { field: lhs.to_string(), operator: op, value });
        }
        Ok(Selector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// The value an `=` term demands for `field`, if any (`RequiresExactMatch`).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements.iter().find(|r| r.field == field && r.operator == Operator::Equals).map(|r| r.value.as_str())
    }

    /// Matches a set of fields, such as the pairs [`selectable_fields`] returns; a field the set
    /// does not have reads as `""`.
    pub fn matches<F: FieldSet + ?Sized>(&self, fields: &F) -> bool {
        self.matches_with(|f| fields.field(f))
    }

    /// Matches `(field, value)` pairs as [`selectable_fields`] returns them.
    pub fn matches_fields(&self, fields: &[(String, String)]) -> bool {
        self.matches(fields)
    }

    /// Matches against a field lookup function; `None` reads as `""`.
    pub fn matches_with<S: AsRef<str>>(&self, get: impl Fn(&str) -> Option<S>) -> bool {
        self.requirements.iter().all(|r| match get(&r.field) {
            Some(v) => r.matches(v.as_ref()),
            None => r.matches(""),
        })
    }

    /// Rewrites every term's field and value (`Transform`); a term mapped to an empty field and
    /// empty value is dropped.
    pub fn transform(&self, f: impl Fn(&str, &str) -> Result<(String, String), String>) -> Result<Self, String> {
        let mut requirements = Vec::with_capacity(self.requirements.len());
        for r in &self.requirements {
            let (field, value) = f(&r.field, &r.value)?;
            if !(field.is_empty() && value.is_empty()) {
                requirements.push(Requirement { field, operator: r.operator, value });
            }
        }
        Ok(Selector { requirements })
    }
}

/// Something that has named field values to select on.
pub trait FieldSet {
    fn field(&self, name: &str) -> Option<&str>;
}

impl FieldSet for [(String, String)] {
    fn field(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl FieldSet for Vec<(String, String)> {
    fn field(&self, name: &str) -> Option<&str> {
        self.as_slice().field(name)
    }
}

impl FieldSet for std::collections::BTreeMap<String, String> {
    fn field(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// The string form, values escaped (`String()`); `==` prints as `=`.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if r.operator == Operator::Equals { "=" } else { "!=" };
            write!(f, "{}{op}{}", r.field, escape_value(&r.value))?;
        }
        Ok(())
    }
}

/// Splits on commas not escaped by a backslash; the backslashes stay in the terms.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits at the first operator; `!=` and `==` are tried before `=` at each position.
fn split_term(term: &str) -> Option<(&str, Operator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator) in [("!=", Operator::NotEquals), ("==", Operator::Equals), ("=", Operator::Equals)] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], operator, rhs));
            }
        }
    }
    None
}

/// Escapes `\`, `,` and `=` with a backslash (`fields.EscapeValue`).
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Undoes [`escape_value`], rejecting unknown escapes and bare `,`/`=` (`fields.UnescapeValue`).
pub fn unescape_value(s: &str) -> Result<String, String> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!("invalid field selector: invalid escape sequence: \\{c}"));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Go prints the rune with %v, i.e. as its number.
            ',' | '=' => return Err(format!("invalid field selector: unescaped character in value: {}", c as u32)),
            c => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

/// The fields an object of this kind can be selected on, with their values, as the kind's
/// registry computes them. Namespaced kinds always have `metadata.name` and `metadata.namespace`,
/// cluster-scoped ones `metadata.name`.
pub fn selectable_fields(rt: &ResourceType, obj: &Value) -> Vec<(String, String)> {
    let name = crate::json::pointer_str(obj, "/metadata/name").to_string();
    let mut out = vec![("metadata.name", name)];
    if rt.namespaced {
        out.push(("metadata.namespace", crate::json::pointer_str(obj, "/metadata/namespace").to_string()));
    }
    out.extend(rt.strategy.selectable_fields(obj));
    out.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The pod's primary IP as the internal API sees it: `status.podIP`, else `status.podIPs[0]`.
pub(crate) fn pod_ip(pod: &Value) -> &str {
    match pod.pointer("/status/podIP").and_then(Value::as_str) {
        Some(ip) if !ip.is_empty() => ip,
        _ => crate::json::pointer_str(pod, "/status/podIPs/0/ip"),
    }
}

/// Converts one field label the way the kind's registered conversion function does, returning
/// the internal label or upstream's error text.
pub(crate) fn convert_field_label(rt: &ResourceType, label: &str) -> Result<String, String> {
    rt.strategy.convert_field_label(label)
}

/// A registered conversion function that accepts exactly `allowed`.
pub(crate) fn allow_field_labels(allowed: &[&str], label: &str) -> Result<String, String> {
    if allowed.contains(&label) { Ok(label.to_string()) } else { Err(format!("field label not supported: {label}")) }
}

/// runtime.DefaultMetaV1FieldSelectorConversion, for kinds without a registered function.
pub(crate) fn default_field_label(label: &str) -> Result<String, String> {
    match label {
        "metadata.name" | "metadata.namespace" => Ok(label.to_string()),
        _ => Err(format!(
            "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            go_quote(label)
        )),
    }
}

/// Applies [`convert_field_label`] to every term, as the list handler does before selecting.
pub fn convert_selector(rt: &ResourceType, sel: &Selector) -> Result<Selector, String> {
    sel.transform(|field, value| Ok((convert_field_label(rt, field)?, value.to_string())))
}

/// Rejects fields the kind does not support, with upstream's message (a 400 BadRequest).
pub fn validate_keys(rt: &ResourceType, sel: &Selector) -> Result<(), String> {
    convert_selector(rt, sel).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{by_kind, lookup};
    use serde_json::json;

    fn parse(s: &str) -> Selector {
        Selector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_upstream_examples() {
        let cases = [
            ("", ""),
            ("a=b", "a=b"),
            ("a==b", "a=b"),
            ("a!=b", "a!=b"),
            ("b=c,a=b", "a=b,b=c"),
            ("x=a,y!=b", "x=a,y!=b"),
            ("a=", "a="),
            ("=", ""),
            ("a=b,", "a=b"),
            ("a=\\,b", "a=\\,b"),
            ("a=\\=\\\\", "a=\\=\\\\"),
            ("a=!b", "a=!b"),
            ("metadata.name=web-1", "metadata.name=web-1"),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).to_string(), want, "{input:?}");
        }
        let sel = parse("status.phase!=Running,spec.nodeName==n1");
        assert_eq!(
            sel.requirements(),
            [
                Requirement { field: "spec.nodeName".into(), operator: Operator::Equals, value: "n1".into() },
                Requirement { field: "status.phase".into(), operator: Operator::NotEquals, value: "Running".into() },
            ]
        );
        assert_eq!(parse("a=x\\,y").requirements()[0].value, "x,y");
        assert_eq!(parse("a= b").requirements()[0].value, " b", "no whitespace trimming upstream");
    }

    #[test]
    fn rejects_bad_selectors_with_upstream_messages() {
        let cases = [
            ("a", "invalid selector: 'a'; can't understand 'a'"),
            ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
            ("a=b=c", "invalid field selector: unescaped character in value: 61"),
            ("a=\\x", "invalid field selector: invalid escape sequence: \\x"),
            ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
        ];
        for (input, want) in cases {
            assert_eq!(Selector::parse(input).unwrap_err(), want, "{input:?}");
        }
    }

    #[test]
    fn escaping_round_trips() {
        for v in ["plain", "a,b", "a=b", "back\\slash", ",=\\"] {
            assert_eq!(unescape_value(&escape_value(v)).unwrap(), v);
            assert_eq!(parse(&format!("f={}", escape_value(v))).requirements()[0].value, v);
        }
    }

    #[test]
    fn matching_treats_missing_fields_as_empty() {
        let fields = pairs(&[("metadata.name", "web"), ("status.phase", "Running")]);
        assert!(parse("metadata.name=web").matches_fields(&fields));
        assert!(!parse("metadata.name=db").matches(&fields));
        assert!(parse("status.phase!=Pending,metadata.name=web").matches(&fields));
        assert!(parse("spec.nodeName=").matches(&fields));
        assert!(!parse("spec.nodeName!=").matches(&fields));
        assert!(Selector::everything().matches(&[] as &[(String, String)]));
        assert!(parse("a=1").matches_with(|f| (f == "a").then_some("1".to_string())));
        assert_eq!(parse("a=1,b!=2").requires_exact_match("a"), Some("1"));
        assert_eq!(parse("a=1,b!=2").requires_exact_match("b"), None);
    }

    #[test]
    fn pod_fields_follow_the_pod_registry() {
        let pods = lookup("", "v1", "pods").unwrap();
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "shop"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                     "serviceAccount": "legacy", "containers": []},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.244.0.5"}, {"ip": "fd00::5"}], "nominatedNodeName": "n2"}
        });
        assert_eq!(
            selectable_fields(pods, &pod),
            pairs(&[
                ("metadata.name", "web-1"),
                ("metadata.namespace", "shop"),
                ("spec.nodeName", "n1"),
                ("spec.restartPolicy", "Always"),
                ("spec.schedulerName", "default-scheduler"),
                ("spec.serviceAccountName", "legacy"),
                ("spec.hostNetwork", "false"),
                ("status.phase", "Running"),
                ("status.podIP", "10.244.0.5"),
                ("status.nominatedNodeName", "n2"),
            ])
        );
        let fields = selectable_fields(pods, &pod);
        assert!(parse("spec.nodeName=n1,status.phase=Running").matches(&fields));
        // status.podIPs is accepted by the conversion but not selectable: it always reads "".
        assert!(parse("status.podIPs=").matches(&fields));
    }

    #[test]
    fn other_kinds_expose_their_registry_fields() {
        let event = json!({
            "metadata": {"name": "e1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "uid": "u1",
                               "apiVersion": "v1", "resourceVersion": "7", "fieldPath": "spec.containers{web}"},
            "reason": "Started", "type": "Normal", "reportingComponent": "kubelet"
        });
        let fields = selectable_fields(by_kind("", "Event").unwrap(), &event);
        assert!(fields.contains(&("source".into(), "kubelet".into())));
        assert!(fields.contains(&("involvedObject.fieldPath".into(), "spec.containers{web}".into())));
        assert!(parse("involvedObject.kind=Pod,involvedObject.name=web-1,type=Normal").matches(&fields));

        let node = json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}});
        assert_eq!(
            selectable_fields(by_kind("", "Node").unwrap(), &node),
            pairs(&[("metadata.name", "n1"), ("spec.unschedulable", "true")])
        );
        let ns = json!({"metadata": {"name": "shop"}, "status": {"phase": "Terminating"}});
        assert_eq!(
            selectable_fields(by_kind("", "Namespace").unwrap(), &ns),
            pairs(&[("metadata.name", "shop"), ("status.phase", "Terminating"), ("name", "shop")])
        );
        let secret = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls"});
        assert!(
            selectable_fields(by_kind("", "Secret").unwrap(), &secret)
                .contains(&("type".into(), "kubernetes.io/tls".into()))
        );
        let svc = json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {"clusterIP": "10.96.0.10", "type": "ClusterIP"}});
        assert!(parse("spec.clusterIP=10.96.0.10").matches(&selectable_fields(by_kind("", "Service").unwrap(), &svc)));
        let rs = json!({"metadata": {"name": "r", "namespace": "d"}, "status": {"replicas": 3}});
        assert!(
            selectable_fields(by_kind("apps", "ReplicaSet").unwrap(), &rs)
                .contains(&("status.replicas".into(), "3".into()))
        );
        let cm = json!({"metadata": {"name": "c", "namespace": "d"}});
        assert_eq!(
            selectable_fields(by_kind("", "ConfigMap").unwrap(), &cm),
            pairs(&[("metadata.name", "c"), ("metadata.namespace", "d")])
        );
        let class = json!({"metadata": {"name": "nginx"}});
        assert_eq!(
            selectable_fields(by_kind("networking.k8s.io", "IngressClass").unwrap(), &class),
            pairs(&[("metadata.name", "nginx")])
        );
    }

    #[test]
    fn unsupported_labels_are_rejected_with_upstream_messages() {
        let pods = by_kind("", "Pod").unwrap();
        assert!(validate_keys(pods, &parse("spec.nodeName=n1,status.podIPs=x")).is_ok());
        assert_eq!(validate_keys(pods, &parse("spec.bogus=1")).unwrap_err(), "field label not supported: spec.bogus");
        let converted = convert_selector(pods, &parse("spec.host=n1")).unwrap();
        assert_eq!(converted.to_string(), "spec.nodeName=n1");

        let nodes = by_kind("", "Node").unwrap();
        assert_eq!(
            validate_keys(nodes, &parse("metadata.namespace=x")).unwrap_err(),
            "field label not supported: metadata.namespace"
        );
        assert!(validate_keys(by_kind("", "Secret").unwrap(), &parse("type=Opaque")).is_ok());
        assert!(validate_keys(by_kind("", "Service").unwrap(), &parse("spec.type=NodePort")).is_ok());
        assert!(validate_keys(by_kind("", "Namespace").unwrap(), &parse("status.phase=Active")).is_ok());
        assert!(
            validate_keys(by_kind("", "Event").unwrap(), &parse("involvedObject.uid=u,reportingComponent=k")).is_ok()
        );

        let rs = by_kind("apps", "ReplicaSet").unwrap();
        assert_eq!(
            validate_keys(rs, &parse("status.replicas=0")).unwrap_err(),
            "\"status.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        let cms = by_kind("", "ConfigMap").unwrap();
        assert!(validate_keys(cms, &parse("metadata.name=a,metadata.namespace=b")).is_ok());
        assert!(validate_keys(cms, &Selector::everything()).is_ok());
    }
}

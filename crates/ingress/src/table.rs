//! Compiles `networking.k8s.io/v1` Ingress specs into an immutable routing
//! table and answers `lookup(host, path)`.
//!
//! Semantics follow the Kubernetes Ingress docs, and ingress-nginx where the
//! docs are silent:
//!
//! * Host selection works like nginx `server_name`: an exact rule host wins,
//!   then a wildcard (`*.example.com`, exactly one extra label), then the
//!   catch-all formed by rules without a host. A wildcard covers exactly one
//!   label, so for a given request host only one wildcard suffix can apply and
//!   "longest suffix wins" falls out of the lookup by construction. Once a host
//!   is selected there is no fallthrough to other hosts.
//! * Paths: `Exact` compares the whole path (case-sensitive); `Prefix`
//!   compares element-wise on `/`, ignoring a trailing slash on the rule or
//!   the request. `ImplementationSpecific` is treated as `Prefix` (an empty
//!   `ImplementationSpecific` path means `/`). The longest rule path wins; at
//!   equal length `Exact` beats `Prefix`/`ImplementationSpecific`; remaining
//!   ties go to the older Ingress, then to declaration order.
//! * Regex (ingress-nginx `use-regex`): if any Ingress contributing a route
//!   to a host asks for regex, every path of that host is a case-insensitive
//!   regex anchored at the start (`^(?:path)`; `Exact` is `^(?:path)$`). The
//!   group keeps the anchor on every alternative of `a|b`. Candidates are
//!   tried longest path string first, `Exact` before others at equal length.
//! * Merging: rules of all Ingresses for one host merge. The same
//!   (host, path, pathType) from two Ingresses goes to the older one
//!   (creationTimestamp, a missing timestamp counting as newest, then
//!   namespace, then name) and the other gets [`Problem::Conflict`].
//! * Default backends: see [`Table::lookup`].

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::fmt;

use k8s_openapi::api::networking::v1::{IngressBackend, IngressSpec};
use regex::Regex;

/// One Ingress as the caller saw it.
#[derive(Clone, Debug)]
pub struct IngressInput<P> {
    pub namespace: String,
    pub name: String,
    /// `metadata.creationTimestamp`.
    pub created: Option<jiff::Timestamp>,
    pub spec: IngressSpec,
    /// Paths are regular expressions (use-regex or rewrite-target annotation).
    pub regex: bool,
    /// Opaque per-Ingress data (parsed annotations), cloned into routes.
    pub payload: P,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IngressRef {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for IngressRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ServicePort {
    Number(i32),
    Name(String),
}

impl fmt::Display for ServicePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServicePort::Number(n) => write!(f, "{n}"),
            ServicePort::Name(n) => f.write_str(n),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Backend {
    pub namespace: String,
    pub service: String,
    pub port: ServicePort,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.service, self.port)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    Exact,
    Prefix,
    /// Matched exactly like `Prefix`.
    ImplementationSpecific,
}

impl PathKind {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "Exact" => Some(PathKind::Exact),
            "Prefix" => Some(PathKind::Prefix),
            // An empty pathType only reaches us from a spec built by hand; the
            // pre-v1 API defaulted it to ImplementationSpecific.
            "ImplementationSpecific" | "" => Some(PathKind::ImplementationSpecific),
            _ => None,
        }
    }

    /// Tie-break at equal length: the docs give Exact precedence.
    fn rank(self) -> u8 {
        match self {
            PathKind::Exact => 0,
            PathKind::Prefix | PathKind::ImplementationSpecific => 1,
        }
    }
}

#[derive(Clone, Debug)]
enum Matcher {
    Exact,
    /// The rule path without trailing slashes, so `/foo/` and `/foo` behave
    /// alike and `/` becomes the empty string that matches everything.
    Prefix(String),
    Regex(Regex),
}

/// One compiled path rule (or a default backend dressed up as `/` Prefix).
#[derive(Clone, Debug)]
pub struct Route<P> {
    pub ingress: IngressRef,
    /// The rule host as normalised (lowercase, no trailing dot, `*.` kept for
    /// wildcards); `None` for the catch-all and the global default backend.
    pub host: Option<String>,
    pub path: String,
    pub kind: PathKind,
    pub backend: Backend,
    pub payload: P,
    matcher: Matcher,
}

impl<P> Route<P> {
    /// Whether the path was compiled as a regex (the whole host is in regex
    /// mode), which callers need to know before applying a rewrite-target.
    pub fn is_regex(&self) -> bool {
        matches!(self.matcher, Matcher::Regex(_))
    }

    /// Length used for precedence: the docs' "longest matching path" counts
    /// a Prefix rule without its ignorable trailing slash, while nginx sorts
    /// regex locations by the raw string length.
    fn precedence_len(&self) -> usize {
        match &self.matcher {
            Matcher::Prefix(norm) => norm.len(),
            Matcher::Exact | Matcher::Regex(_) => self.path.len(),
        }
    }

    /// `Some(captures)` when the request path matches.
    fn try_match(&self, path: &str) -> Option<Vec<Option<String>>> {
        match &self.matcher {
            Matcher::Exact => (self.path == path).then(Vec::new),
            Matcher::Prefix(norm) => prefix_matches(norm, path).then(Vec::new),
            Matcher::Regex(re) => {
                re.captures(path).map(|caps| caps.iter().map(|m| m.map(|m| m.as_str().to_string())).collect())
            }
        }
    }
}

fn prefix_matches(norm: &str, path: &str) -> bool {
    if norm.is_empty() {
        return true;
    }
    match path.strip_prefix(norm) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[derive(Debug)]
pub struct Matched<'a, P> {
    pub route: &'a Route<P>,
    /// Regex captures $0..$n (`None` for unmatched groups); empty when not regex.
    pub captures: Vec<Option<String>>,
    /// True when this is a defaultBackend answer.
    pub default_backend: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Same host+path+pathType from two Ingresses: the older wins
    /// (creationTimestamp, then namespace/name). For competing
    /// `spec.defaultBackend`s host is `"*"` and path is `"defaultBackend"`.
    Conflict {
        loser: IngressRef,
        winner: IngressRef,
        /// `"*"` when the rule has no host.
        host: String,
        path: String,
    },
    /// An Ingress this table could not take, or part of one: resource
    /// backends, a bad regex, ...
    Rejected { ingress: IngressRef, reason: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Conflict { loser, winner, host, path } => {
                write!(f, "Ingress {loser}: host {host} path {path} is already served by older Ingress {winner}")
            }
            Problem::Rejected { ingress, reason } => write!(f, "Ingress {ingress}: {reason}"),
        }
    }
}

/// Everything one selected host (an nginx `server`) can answer.
#[derive(Clone, Debug)]
struct HostEntry<P> {
    /// In precedence order, so the first match is the answer.
    routes: Vec<Route<P>>,
    /// The oldest owning Ingress's `spec.defaultBackend`.
    default: Option<Route<P>>,
}

impl<P> HostEntry<P> {
    fn lookup(&self, path: &str) -> Option<Matched<'_, P>> {
        self.match_path(path).or_else(|| default_answer(&self.default))
    }

    fn match_path(&self, path: &str) -> Option<Matched<'_, P>> {
        self.routes
            .iter()
            .find_map(|route| route.try_match(path).map(|captures| Matched { route, captures, default_backend: false }))
    }
}

fn default_answer<P>(route: &Option<Route<P>>) -> Option<Matched<'_, P>> {
    route.as_ref().map(|route| Matched { route, captures: Vec::new(), default_backend: true })
}

/// Immutable routing table built from a set of Ingresses.
#[derive(Clone, Debug)]
pub struct Table<P> {
    exact: HashMap<String, HostEntry<P>>,
    /// Keyed by the suffix after `*.`, so lookup strips the request's first
    /// label and does one hash probe.
    wildcard: HashMap<String, HostEntry<P>>,
    /// Rules without a host.
    catch_all: Option<HostEntry<P>>,
    /// The oldest `spec.defaultBackend` of all Ingresses.
    default: Option<Route<P>>,
    /// Distinct, in first-use order so output is deterministic.
    backends: Vec<Backend>,
}

impl<P> Default for Table<P> {
    fn default() -> Self {
        Table { exact: HashMap::new(), wildcard: HashMap::new(), catch_all: None, default: None, backends: Vec::new() }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum HostKey {
    Exact(String),
    /// The part after `*.`.
    Wildcard(String),
    Any,
}

impl HostKey {
    fn parse(raw: Option<&str>) -> Result<HostKey, String> {
        let Some(raw) = raw else {
            return Ok(HostKey::Any);
        };
        let lower = raw.trim().to_ascii_lowercase();
        let host = lower.strip_suffix('.').unwrap_or(&lower);
        if host.is_empty() {
            return Ok(HostKey::Any);
        }
        if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.starts_with('.') || suffix.contains('*') {
                return Err(format!("host {raw:?} is not a valid wildcard host"));
            }
            return Ok(HostKey::Wildcard(suffix.to_string()));
        }
        if host.contains('*') {
            return Err(format!("host {raw:?}: a wildcard must be the whole first label, as in \"*.example.com\""));
        }
        Ok(HostKey::Exact(host.to_string()))
    }

    fn rule_host(&self) -> Option<String> {
        match self {
            HostKey::Exact(h) => Some(h.clone()),
            HostKey::Wildcard(s) => Some(format!("*.{s}")),
            HostKey::Any => None,
        }
    }

    fn label(&self) -> String {
        self.rule_host().unwrap_or_else(|| "*".to_string())
    }
}

/// A path that survived validation and conflict checks but whose matcher
/// depends on the host-wide regex mode, known only once all Ingresses are in.
struct Candidate<P> {
    ingress: IngressRef,
    path: String,
    kind: PathKind,
    backend: Backend,
    payload: P,
    regex: bool,
}

struct HostBuild<P> {
    key: HostKey,
    /// In age order, then declaration order; the sort later is stable so
    /// equal-precedence ties keep that order.
    candidates: Vec<Candidate<P>>,
    owners: HashMap<(String, PathKind), IngressRef>,
    default: Option<Route<P>>,
}

fn convert_backend(namespace: &str, backend: &IngressBackend) -> Result<Backend, String> {
    let svc = match (&backend.service, &backend.resource) {
        (Some(svc), None) => svc,
        (None, Some(_)) => {
            return Err("resource backends are not supported; use a service backend".to_string());
        }
        (Some(_), Some(_)) => {
            return Err("backend sets both service and resource; use only a service".to_string());
        }
        (None, None) => return Err("backend names no service".to_string()),
    };
    if svc.name.is_empty() {
        return Err("service backend has an empty name".to_string());
    }
    let port = svc.port.as_ref();
    let port = match (port.and_then(|p| p.number), port.and_then(|p| p.name.as_deref())) {
        (Some(n), None) if (1..=65535).contains(&n) => ServicePort::Number(n),
        (Some(n), None) => return Err(format!("service port {n} is out of range")),
        (None, Some(name)) if !name.is_empty() => ServicePort::Name(name.to_string()),
        (Some(_), Some(_)) => {
            return Err("service port sets both number and name".to_string());
        }
        (None, _) => return Err("service backend needs a port number or name".to_string()),
    };
    Ok(Backend { namespace: namespace.to_string(), service: svc.name.clone(), port })
}

/// Strips the port, a trailing dot and case from a Host header value.
fn normalize_request_host(raw: &str) -> Cow<'_, str> {
    let raw = raw.trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // `]` is ASCII, so `end + 2` (one for the `[`, one past `]`) is a
        // char boundary.
        match rest.find(']') {
            Some(end) => &raw[..end + 2],
            None => raw,
        }
    } else {
        match raw.split_once(':') {
            Some((host, port)) if !port.contains(':') => host,
            // A bare IPv6 address is not a valid Host header; leave it whole
            // rather than cut it at a random colon.
            _ => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    // Lookup is the hot path; most clients already send lowercase.
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// `false < true`, so Ingresses with a timestamp sort before those without.
fn age_key<P>(i: &IngressInput<P>) -> (bool, Option<jiff::Timestamp>, &str, &str) {
    (i.created.is_none(), i.created, &i.namespace, &i.name)
}

fn age_order<P>(inputs: &[IngressInput<P>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by(|&a, &b| age_key(&inputs[a]).cmp(&age_key(&inputs[b])));
    order
}

impl<P: Clone> Table<P> {
    /// Compiles `inputs` into a table. Problems never abort the build: each
    /// one drops only the route (or default backend, or rule) it names.
    pub fn build(inputs: Vec<IngressInput<P>>) -> (Table<P>, Vec<Problem>) {
        let mut problems = Vec::new();
        let mut hosts: Vec<HostBuild<P>> = Vec::new();
        let mut host_index: HashMap<HostKey, usize> = HashMap::new();
        let mut global_default: Option<Route<P>> = None;

        for idx in age_order(&inputs) {
            let input = &inputs[idx];
            let ingress = IngressRef { namespace: input.namespace.clone(), name: input.name.clone() };
            let reject = |problems: &mut Vec<Problem>, reason: String| {
                problems.push(Problem::Rejected { ingress: ingress.clone(), reason });
            };

            let own_default = match &input.spec.default_backend {
                None => None,
                Some(b) => match convert_backend(&input.namespace, b) {
                    Ok(backend) => Some(backend),
                    Err(reason) => {
                        reject(&mut problems, format!("defaultBackend: {reason}"));
                        None
                    }
                },
            };
            if let Some(backend) = &own_default {
                match &global_default {
                    None => {
                        global_default = Some(default_route(input, &ingress, None, backend));
                    }
                    Some(winner) => problems.push(Problem::Conflict {
                        loser: ingress.clone(),
                        winner: winner.ingress.clone(),
                        host: "*".to_string(),
                        path: "defaultBackend".to_string(),
                    }),
                }
            }

            for rule in input.spec.rules.iter().flatten() {
                let key = match HostKey::parse(rule.host.as_deref()) {
                    Ok(key) => key,
                    Err(reason) => {
                        reject(&mut problems, reason);
                        continue;
                    }
                };
                let slot = *host_index.entry(key.clone()).or_insert_with(|| {
                    hosts.push(HostBuild {
                        key: key.clone(),
                        candidates: Vec::new(),
                        owners: HashMap::new(),
                        default: None,
                    });
                    hosts.len() - 1
                });
                let host = &mut hosts[slot];
                // Inputs arrive oldest first, so the first default seen for a
                // host is the oldest owner's.
                if host.default.is_none()
                    && let Some(backend) = &own_default
                {
                    host.default = Some(default_route(input, &ingress, key.rule_host(), backend));
                }

                for p in rule.http.iter().flat_map(|http| &http.paths) {
                    let raw_path = p.path.clone().unwrap_or_default();
                    let Some(kind) = PathKind::parse(&p.path_type) else {
                        reject(
                            &mut problems,
                            format!("host {} path {raw_path:?}: unknown pathType {:?}", key.label(), p.path_type),
                        );
                        continue;
                    };
                    let path = match kind {
                        PathKind::ImplementationSpecific if raw_path.is_empty() => "/".to_string(),
                        PathKind::Exact | PathKind::Prefix if !raw_path.starts_with('/') => {
                            reject(
                                &mut problems,
                                format!("host {} path {raw_path:?}: an {kind:?} path must start with '/'", key.label()),
                            );
                            continue;
                        }
                        _ => raw_path,
                    };
                    let backend = match convert_backend(&input.namespace, &p.backend) {
                        Ok(backend) => backend,
                        Err(reason) => {
                            reject(&mut problems, format!("host {} path {path:?}: {reason}", key.label()));
                            continue;
                        }
                    };
                    match host.owners.get(&(path.clone(), kind)) {
                        // An Ingress repeating itself is harmless: first wins.
                        Some(owner) if *owner == ingress => continue,
                        Some(owner) => {
                            problems.push(Problem::Conflict {
                                loser: ingress.clone(),
                                winner: owner.clone(),
                                host: key.label(),
                                path,
                            });
                            continue;
                        }
                        None => {
                            host.owners.insert((path.clone(), kind), ingress.clone());
                        }
                    }
                    host.candidates.push(Candidate {
                        ingress: ingress.clone(),
                        path,
                        kind,
                        backend,
                        payload: input.payload.clone(),
                        regex: input.regex,
                    });
                }
            }
        }

        let mut table = Table::default();
        let mut seen_backends = HashSet::new();
        let mut note_backend = |table: &mut Table<P>, backend: &Backend| {
            if seen_backends.insert(backend.clone()) {
                table.backends.push(backend.clone());
            }
        };

        for host in hosts {
            let entry = compile_host(host.key.rule_host(), host.candidates, &mut problems);
            let entry = HostEntry { default: host.default, ..entry };
            for route in entry.routes.iter().chain(&entry.default) {
                note_backend(&mut table, &route.backend);
            }
            match host.key {
                HostKey::Exact(h) => {
                    table.exact.insert(h, entry);
                }
                HostKey::Wildcard(s) => {
                    table.wildcard.insert(s, entry);
                }
                HostKey::Any => table.catch_all = Some(entry),
            }
        }
        if let Some(route) = &global_default {
            note_backend(&mut table, &route.backend);
        }
        table.default = global_default;
        (table, problems)
    }
}

impl<P> Table<P> {
    /// Routes a request.
    ///
    /// `host` is the Host header value (port, case and a trailing dot are
    /// ignored; `[v6]:port` is understood); `path` is the path without query.
    ///
    /// Order: the selected host's paths, then that host's default backend
    /// (the oldest `spec.defaultBackend` among the Ingresses that name the
    /// host). When no exact or wildcard host matched, the catch-all's paths
    /// and default backend are tried, then the oldest `spec.defaultBackend`
    /// of all Ingresses. A selected exact or wildcard host never falls
    /// through to the global default backend, as in ingress-nginx where each
    /// server's unmatched requests go to the controller's own 404 backend:
    /// that case returns `None`.
    pub fn lookup(&self, host: &str, path: &str) -> Option<Matched<'_, P>> {
        // An empty request path can only mean the root.
        let path = if path.is_empty() { "/" } else { path };
        let host = normalize_request_host(host);
        let selected = self.exact.get(host.as_ref()).or_else(|| {
            host.split_once('.')
                .filter(|(label, suffix)| !label.is_empty() && !suffix.is_empty())
                .and_then(|(_, suffix)| self.wildcard.get(suffix))
        });
        if let Some(entry) = selected {
            return entry.lookup(path);
        }
        self.catch_all.as_ref().and_then(|entry| entry.lookup(path)).or_else(|| default_answer(&self.default))
    }

    /// Every distinct Backend any route or default backend uses (so the
    /// caller knows which Services to resolve).
    pub fn backends(&self) -> impl Iterator<Item = &Backend> {
        self.backends.iter()
    }

    /// True when no request can be answered: every route and default
    /// backend has a backend, so no backends means nothing to route to.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }
}

fn default_route<P: Clone>(
    input: &IngressInput<P>,
    ingress: &IngressRef,
    host: Option<String>,
    backend: &Backend,
) -> Route<P> {
    Route {
        ingress: ingress.clone(),
        host,
        path: "/".to_string(),
        kind: PathKind::Prefix,
        backend: backend.clone(),
        payload: input.payload.clone(),
        matcher: Matcher::Prefix(String::new()),
    }
}

fn compile_host<P>(host: Option<String>, candidates: Vec<Candidate<P>>, problems: &mut Vec<Problem>) -> HostEntry<P> {
    // ingress-nginx turns on regex location matching for the whole server
    // as soon as one of its locations wants it.
    let regex_mode = candidates.iter().any(|c| c.regex);
    let label = host.clone().unwrap_or_else(|| "*".to_string());
    let mut routes = Vec::with_capacity(candidates.len());
    for c in candidates {
        let matcher = if regex_mode {
            let pattern = match c.kind {
                PathKind::Exact => format!("(?i)^(?:{})$", c.path),
                PathKind::Prefix | PathKind::ImplementationSpecific => {
                    format!("(?i)^(?:{})", c.path)
                }
            };
            match Regex::new(&pattern) {
                Ok(re) => Matcher::Regex(re),
                Err(err) => {
                    problems.push(Problem::Rejected {
                        ingress: c.ingress,
                        reason: format!("host {label} path {:?}: invalid regular expression: {err}", c.path),
                    });
                    continue;
                }
            }
        } else {
            match c.kind {
                PathKind::Exact => Matcher::Exact,
                PathKind::Prefix | PathKind::ImplementationSpecific => {
                    Matcher::Prefix(c.path.trim_end_matches('/').to_string())
                }
            }
        };
        routes.push(Route {
            ingress: c.ingress,
            host: host.clone(),
            path: c.path,
            kind: c.kind,
            backend: c.backend,
            payload: c.payload,
            matcher,
        });
    }
    routes.sort_by_key(|r| (Reverse(r.precedence_len()), r.kind.rank()));
    HostEntry { routes, default: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    type Payload = String;

    fn input(ns: &str, name: &str, created: Option<&str>, regex: bool, spec: Value) -> IngressInput<Payload> {
        IngressInput {
            namespace: ns.to_string(),
            name: name.to_string(),
            created: created.map(|t| t.parse().expect("test timestamp")),
            spec: serde_json::from_value(spec).expect("test spec"),
            regex,
            payload: format!("{ns}/{name}"),
        }
    }

    fn plain(name: &str, created: &str, spec: Value) -> IngressInput<Payload> {
        input("default", name, Some(created), false, spec)
    }

    fn svc(name: &str) -> Value {
        json!({"service": {"name": name, "port": {"number": 80}}})
    }

    fn path(path: &str, kind: &str, service: &str) -> Value {
        json!({"path": path, "pathType": kind, "backend": svc(service)})
    }

    fn host_rule(host: &str, paths: Vec<Value>) -> Value {
        json!({"host": host, "http": {"paths": paths}})
    }

    fn build(inputs: Vec<IngressInput<Payload>>) -> (Table<Payload>, Vec<Problem>) {
        Table::build(inputs)
    }

    /// (service, default_backend) or None.
    fn hit(table: &Table<Payload>, host: &str, path: &str) -> Option<(String, bool)> {
        table.lookup(host, path).map(|m| (m.route.backend.service.clone(), m.default_backend))
    }

    fn service(table: &Table<Payload>, host: &str, path: &str) -> Option<String> {
        hit(table, host, path).map(|(s, _)| s)
    }

    fn r(ns: &str, name: &str) -> IngressRef {
        IngressRef { namespace: ns.to_string(), name: name.to_string() }
    }

    const T1: &str = "2024-01-01T00:00:00Z";
    const T2: &str = "2024-02-01T00:00:00Z";

    /// Every row of the "Examples" table in the Kubernetes Ingress docs.
    /// Backends are named after the rule that should answer; `None` means the
    /// docs' "No", which must fall to the Ingress's default backend.
    #[test]
    fn docs_examples_table() {
        type Row =
            (&'static [(&'static str, &'static str)], &'static [&'static str], Option<(&'static str, &'static str)>);
        let all: &[&str] = &["/", "/foo", "/foo/", "/foo/bar", "/aaa/bbb/ccc", "/x//y"];
        let rows: &[Row] = &[
            (&[("Prefix", "/")], all, Some(("Prefix", "/"))),
            (&[("Exact", "/foo")], &["/foo"], Some(("Exact", "/foo"))),
            (&[("Exact", "/foo")], &["/bar"], None),
            (&[("Exact", "/foo")], &["/foo/"], None),
            (&[("Exact", "/foo/")], &["/foo"], None),
            (&[("Prefix", "/foo")], &["/foo", "/foo/"], Some(("Prefix", "/foo"))),
            (&[("Prefix", "/foo/")], &["/foo", "/foo/"], Some(("Prefix", "/foo/"))),
            (&[("Prefix", "/aaa/bb")], &["/aaa/bbb"], None),
            (&[("Prefix", "/aaa/bbb")], &["/aaa/bbb"], Some(("Prefix", "/aaa/bbb"))),
            // Ignores trailing slash.
            (&[("Prefix", "/aaa/bbb/")], &["/aaa/bbb"], Some(("Prefix", "/aaa/bbb/"))),
            // Matches trailing slash.
            (&[("Prefix", "/aaa/bbb")], &["/aaa/bbb/"], Some(("Prefix", "/aaa/bbb"))),
            // Matches subpath.
            (&[("Prefix", "/aaa/bbb")], &["/aaa/bbb/ccc"], Some(("Prefix", "/aaa/bbb"))),
            // Does not match string prefix.
            (&[("Prefix", "/aaa/bbb")], &["/aaa/bbbxyz"], None),
            (&[("Prefix", "/"), ("Prefix", "/aaa")], &["/aaa/ccc"], Some(("Prefix", "/aaa"))),
            (
                &[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")],
                &["/aaa/bbb"],
                Some(("Prefix", "/aaa/bbb")),
            ),
            (&[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")], &["/ccc"], Some(("Prefix", "/"))),
            (&[("Prefix", "/aaa")], &["/ccc"], None),
            // Mixed: prefers Exact.
            (&[("Prefix", "/foo"), ("Exact", "/foo")], &["/foo"], Some(("Exact", "/foo"))),
        ];
        for (i, (rules, requests, want)) in rows.iter().enumerate() {
            let paths = rules.iter().map(|(kind, p)| path(p, kind, &format!("{kind}:{p}"))).collect();
            let (table, problems) = build(vec![plain(
                "docs",
                T1,
                json!({
                    "defaultBackend": svc("default"),
                    "rules": [host_rule("example.com", paths)],
                }),
            )]);
            assert!(problems.is_empty(), "row {i}: {problems:?}");
            for req in *requests {
                let got = hit(&table, "example.com", req);
                let want = match want {
                    Some((kind, p)) => (format!("{kind}:{p}"), false),
                    None => ("default".to_string(), true),
                };
                assert_eq!(got, Some(want), "row {i}, request {req}");
            }
        }
    }

    #[test]
    fn implementation_specific_is_prefix() {
        let (table, problems) = build(vec![plain(
            "a",
            T1,
            json!({"rules": [
                host_rule("h", vec![path("/foo", "ImplementationSpecific", "is")]),
                {"host": "empty", "http": {"paths": [
                    {"pathType": "ImplementationSpecific", "backend": svc("root")}
                ]}},
            ]}),
        )]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(service(&table, "h", "/foo/bar").as_deref(), Some("is"));
        assert_eq!(service(&table, "h", "/foobar"), None);
        let m = table.lookup("empty", "/anything");
        assert_eq!(m.map(|m| m.route.path.clone()).as_deref(), Some("/"));
    }

    fn host_table() -> Table<Payload> {
        let (table, problems) = build(vec![plain(
            "hosts",
            T1,
            json!({"rules": [
                host_rule("foo.bar.com", vec![path("/", "Prefix", "exact")]),
                host_rule("*.bar.com", vec![path("/", "Prefix", "wild")]),
                host_rule("*.baz.bar.com", vec![path("/", "Prefix", "deepwild")]),
                {"http": {"paths": [path("/", "Prefix", "any")]}},
            ]}),
        )]);
        assert!(problems.is_empty(), "{problems:?}");
        table
    }

    #[test]
    fn host_selection() {
        let table = host_table();
        let cases = [
            ("foo.bar.com", "exact"),
            ("FOO.Bar.COM", "exact"),
            ("foo.bar.com:8080", "exact"),
            ("foo.bar.com.", "exact"),
            ("Foo.Bar.Com.:443", "exact"),
            ("baz.bar.com", "wild"),
            ("qux.bar.com:80", "wild"),
            // One label only; the deeper wildcard owns this one.
            ("a.baz.bar.com", "deepwild"),
            ("a.b.baz.bar.com", "any"),
            ("a.qux.bar.com", "any"),
            ("bar.com", "any"),
            (".bar.com", "any"),
            ("other.example", "any"),
            ("[::1]:80", "any"),
            ("[::1]", "any"),
            ("::1", "any"),
            ("[", "any"),
            ("", "any"),
            ("10.0.0.1:8080", "any"),
        ];
        for (host, want) in cases {
            assert_eq!(service(&table, host, "/x").as_deref(), Some(want), "{host}");
        }
    }

    #[test]
    fn rule_hosts_are_normalised() {
        let (table, problems) = build(vec![plain(
            "a",
            T1,
            json!({"rules": [
                host_rule("Foo.Example.COM.", vec![path("/", "Prefix", "foo")]),
                host_rule("*.Wild.Example.", vec![path("/", "Prefix", "wild")]),
            ]}),
        )]);
        assert!(problems.is_empty(), "{problems:?}");
        let m = table.lookup("foo.example.com", "/").expect("exact host");
        assert_eq!(m.route.host.as_deref(), Some("foo.example.com"));
        let m = table.lookup("x.wild.example", "/").expect("wildcard host");
        assert_eq!(m.route.host.as_deref(), Some("*.wild.example"));
    }

    #[test]
    fn invalid_rule_hosts_rejected() {
        let (table, problems) = build(vec![plain(
            "a",
            T1,
            json!({"rules": [
                host_rule("foo.*.com", vec![path("/", "Prefix", "bad1")]),
                host_rule("*", vec![path("/", "Prefix", "bad2")]),
                host_rule("ok.com", vec![path("/", "Prefix", "ok")]),
            ]}),
        )]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| matches!(p, Problem::Rejected { .. })));
        assert_eq!(service(&table, "ok.com", "/").as_deref(), Some("ok"));
        assert_eq!(table.backends().count(), 1);
    }

    #[test]
    fn selected_host_does_not_fall_through() {
        let (table, _) = build(vec![
            plain(
                "a",
                T1,
                json!({"rules": [
                    host_rule("foo.bar.com", vec![path("/api", "Prefix", "api")]),
                    host_rule("*.bar.com", vec![path("/w", "Prefix", "w")]),
                ]}),
            ),
            plain(
                "catch",
                T2,
                json!({
                    "defaultBackend": svc("global"),
                    "rules": [{"http": {"paths": [path("/", "Prefix", "any")]}}],
                }),
            ),
        ]);
        assert_eq!(service(&table, "foo.bar.com", "/api").as_deref(), Some("api"));
        // Neither the catch-all paths nor the global default apply once a
        // host is selected and it has no default backend of its own.
        assert_eq!(service(&table, "foo.bar.com", "/other"), None);
        assert_eq!(service(&table, "x.bar.com", "/other"), None);
        assert_eq!(service(&table, "x.bar.com", "/w/1").as_deref(), Some("w"));
        assert_eq!(service(&table, "nope.com", "/other").as_deref(), Some("any"));
    }

    #[test]
    fn merges_ingresses_on_one_host() {
        let (table, problems) = build(vec![
            plain("one", T1, json!({"rules": [host_rule("h.com", vec![path("/a", "Prefix", "a")])]})),
            plain(
                "two",
                T2,
                json!({"rules": [host_rule("h.com", vec![
                    path("/b", "Prefix", "b"),
                    path("/a/deeper", "Exact", "deep"),
                ])]}),
            ),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let m = table.lookup("h.com", "/a/x").expect("a");
        assert_eq!(m.route.backend.service, "a");
        assert_eq!(m.route.payload, "default/one");
        assert_eq!(m.route.ingress, r("default", "one"));
        let m = table.lookup("h.com", "/b").expect("b");
        assert_eq!(m.route.payload, "default/two");
        assert_eq!(service(&table, "h.com", "/a/deeper").as_deref(), Some("deep"));
        assert_eq!(service(&table, "h.com", "/a/deeper/x").as_deref(), Some("a"));
        assert_eq!(service(&table, "h.com", "/c"), None);
    }

    #[test]
    fn conflict_goes_to_oldest_in_any_input_order() {
        let old = || plain("old", T1, json!({"rules": [host_rule("h.com", vec![path("/x", "Prefix", "old")])]}));
        let new = || plain("new", T2, json!({"rules": [host_rule("h.com", vec![path("/x", "Prefix", "new")])]}));
        let want = vec![Problem::Conflict {
            loser: r("default", "new"),
            winner: r("default", "old"),
            host: "h.com".to_string(),
            path: "/x".to_string(),
        }];
        for inputs in [vec![old(), new()], vec![new(), old()]] {
            let (table, problems) = build(inputs);
            assert_eq!(service(&table, "h.com", "/x").as_deref(), Some("old"));
            assert_eq!(problems, want);
            let text = problems[0].to_string();
            assert!(text.contains("default/new") && text.contains("default/old"));
            assert_eq!(table.backends().map(|b| b.service.as_str()).collect::<Vec<_>>(), ["old"]);
        }
    }

    #[test]
    fn conflict_tie_breaks_and_missing_timestamp() {
        let spec = |s: &str| json!({"rules": [{"http": {"paths": [path("/", "Prefix", s)]}}]});
        // No timestamp counts as newest, even against a later namespace.
        let (table, problems) =
            build(vec![input("a", "x", None, false, spec("untimed")), input("z", "x", Some(T2), false, spec("timed"))]);
        assert_eq!(service(&table, "h", "/").as_deref(), Some("timed"));
        assert_eq!(
            problems,
            vec![Problem::Conflict {
                loser: r("a", "x"),
                winner: r("z", "x"),
                host: "*".to_string(),
                path: "/".to_string(),
            }]
        );
        // Same timestamp: namespace, then name.
        let (table, _) = build(vec![
            input("b", "a", Some(T1), false, spec("b/a")),
            input("a", "z", Some(T1), false, spec("a/z")),
            input("a", "y", Some(T1), false, spec("a/y")),
        ]);
        assert_eq!(service(&table, "h", "/").as_deref(), Some("a/y"));
        // Different pathType on the same path is not a conflict; Exact wins.
        let (table, problems) = build(vec![
            plain("p", T1, json!({"rules": [host_rule("h", vec![path("/x", "Prefix", "p")])]})),
            plain("e", T2, json!({"rules": [host_rule("h", vec![path("/x", "Exact", "e")])]})),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(service(&table, "h", "/x").as_deref(), Some("e"));
        assert_eq!(service(&table, "h", "/x/y").as_deref(), Some("p"));
    }

    #[test]
    fn same_ingress_repeating_itself_is_silent() {
        let (table, problems) = build(vec![plain(
            "a",
            T1,
            json!({"rules": [
                host_rule("h", vec![path("/x", "Prefix", "first")]),
                host_rule("h", vec![path("/x", "Prefix", "second")]),
            ]}),
        )]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(service(&table, "h", "/x").as_deref(), Some("first"));
    }

    #[test]
    fn bad_backends_rejected_rest_kept() {
        let (table, problems) = build(vec![plain(
            "a",
            T1,
            json!({"rules": [{"host": "h", "http": {"paths": [
                {"path": "/res", "pathType": "Prefix", "backend": {"resource": {
                    "apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "static"}}},
                {"path": "/none", "pathType": "Prefix", "backend": {}},
                {"path": "/noport", "pathType": "Prefix", "backend": {"service": {"name": "s"}}},
                {"path": "/named", "pathType": "Prefix",
                    "backend": {"service": {"name": "s", "port": {"name": "http"}}}},
                path("/ok", "Prefix", "ok"),
                {"path": "rel", "pathType": "Prefix", "backend": svc("rel")},
                {"path": "/t", "pathType": "Fuzzy", "backend": svc("fuzzy")},
            ]}}]}),
        )]);
        let reasons: Vec<&str> = problems
            .iter()
            .map(|p| match p {
                Problem::Rejected { ingress, reason } => {
                    assert_eq!(*ingress, r("default", "a"));
                    reason.as_str()
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(reasons.len(), 5, "{reasons:?}");
        assert!(reasons[0].contains("/res"));
        assert!(reasons[0].contains("resource backends are not supported"));
        assert!(reasons[1].contains("names no service"));
        assert!(reasons[2].contains("needs a port"));
        assert!(reasons[3].contains("must start with '/'"));
        assert!(reasons[4].contains("unknown pathType"));
        assert_eq!(service(&table, "h", "/res"), None);
        assert_eq!(service(&table, "h", "/ok").as_deref(), Some("ok"));
        let named = table.lookup("h", "/named").expect("named port");
        assert_eq!(named.route.backend.port, ServicePort::Name("http".into()));
        let ok = table.lookup("h", "/ok").expect("numbered port");
        assert_eq!(
            ok.route.backend,
            Backend { namespace: "default".into(), service: "ok".into(), port: ServicePort::Number(80) }
        );
    }

    #[test]
    fn default_backend_for_own_hosts() {
        let (table, problems) = build(vec![
            plain(
                "owner",
                T2,
                json!({
                    "defaultBackend": svc("owner-default"),
                    "rules": [
                        host_rule("foo.com", vec![path("/api", "Prefix", "api")]),
                        // A host named without paths is all default backend.
                        {"host": "bare.com"},
                    ],
                }),
            ),
            plain("sibling", T1, json!({"rules": [host_rule("foo.com", vec![path("/web", "Prefix", "web")])]})),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let m = table.lookup("foo.com", "/other").expect("default (a)");
        assert!(m.default_backend);
        assert_eq!(m.route.backend.service, "owner-default");
        assert_eq!(m.route.path, "/");
        assert_eq!(m.route.kind, PathKind::Prefix);
        assert_eq!(m.route.host.as_deref(), Some("foo.com"));
        assert_eq!(m.route.payload, "default/owner");
        assert!(m.captures.is_empty());
        assert_eq!(hit(&table, "foo.com", "/web"), Some(("web".into(), false)));
        assert_eq!(hit(&table, "bare.com", "/x"), Some(("owner-default".into(), true)));
        // The Ingress's default also serves unknown hosts.
        assert_eq!(hit(&table, "unknown.com", "/x"), Some(("owner-default".into(), true)));
    }

    #[test]
    fn host_default_is_oldest_owner_with_one() {
        let (table, problems) = build(vec![
            plain("newer", T2, json!({"defaultBackend": svc("newer"), "rules": [{"host": "h"}]})),
            plain("older", T1, json!({"defaultBackend": svc("older"), "rules": [{"host": "h"}]})),
            plain(
                "oldest-without",
                "2023-01-01T00:00:00Z",
                json!({"rules": [host_rule("h", vec![path("/p", "Exact", "p")])]}),
            ),
        ]);
        assert_eq!(hit(&table, "h", "/x"), Some(("older".into(), true)));
        assert_eq!(
            problems,
            vec![Problem::Conflict {
                loser: r("default", "newer"),
                winner: r("default", "older"),
                host: "*".into(),
                path: "defaultBackend".into(),
            }]
        );
    }

    #[test]
    fn global_default_backend() {
        for order in [false, true] {
            let mut inputs = vec![
                plain("first", T1, json!({"defaultBackend": svc("first")})),
                plain("second", T2, json!({"defaultBackend": svc("second")})),
                plain("catch", T2, json!({"rules": [{"http": {"paths": [path("/c", "Prefix", "c")]}}]})),
            ];
            if order {
                inputs.reverse();
            }
            let (table, problems) = build(inputs);
            assert_eq!(
                problems,
                vec![Problem::Conflict {
                    loser: r("default", "second"),
                    winner: r("default", "first"),
                    host: "*".into(),
                    path: "defaultBackend".into(),
                }]
            );
            assert_eq!(hit(&table, "any.host", "/c/1"), Some(("c".into(), false)));
            // Catch-all paths missed: the global default answers.
            let m = table.lookup("any.host", "/zzz").expect("default (b)");
            assert!(m.default_backend);
            assert_eq!(m.route.backend.service, "first");
            assert_eq!(m.route.host, None);
            assert_eq!(m.route.path, "/");
        }
    }

    #[test]
    fn resource_default_backend_rejected() {
        let (table, problems) =
            build(vec![plain("a", T1, json!({"defaultBackend": {"resource": {"kind": "Bucket", "name": "b"}}}))]);
        assert!(table.is_empty());
        assert!(matches!(
            &problems[..],
            [Problem::Rejected { reason, .. }]
                if reason.contains("defaultBackend") && reason.contains("resource backends")
        ));
        assert!(table.lookup("h", "/").is_none());
    }

    #[test]
    fn regex_is_host_wide_with_captures() {
        let (table, problems) = build(vec![
            input(
                "default",
                "rewrite",
                Some(T1),
                true,
                json!({"rules": [host_rule("re.com", vec![
                    path("/something(/|$)(.*)", "ImplementationSpecific", "something"),
                    path("/exact/[0-9]+", "Exact", "exact"),
                ])]}),
            ),
            plain(
                "plain",
                T2,
                json!({"rules": [
                    host_rule("re.com", vec![path("/foo", "Prefix", "foo")]),
                    host_rule("plain.com", vec![path("/foo", "Prefix", "plainfoo")]),
                ]}),
            ),
        ]);
        assert!(problems.is_empty(), "{problems:?}");

        let m = table.lookup("re.com", "/something/new").expect("regex");
        assert!(m.route.is_regex());
        assert_eq!(m.route.backend.service, "something");
        assert_eq!(m.captures.len(), 3);
        assert_eq!(m.captures[0].as_deref(), Some("/something/new"));
        assert_eq!(m.captures[1].as_deref(), Some("/"));
        assert_eq!(m.captures[2].as_deref(), Some("new"));

        let m = table.lookup("re.com", "/SOMETHING").expect("case-insensitive");
        assert_eq!(m.captures[2].as_deref(), Some(""));

        // The plain Ingress's path became `^/foo` on this host only.
        assert_eq!(service(&table, "re.com", "/foobar").as_deref(), Some("foo"));
        assert_eq!(service(&table, "plain.com", "/foobar"), None);
        let plain = table.lookup("plain.com", "/foo/x").expect("plain");
        assert!(!plain.route.is_regex());
        assert!(plain.captures.is_empty());

        // Exact regex is anchored at both ends; anchored at the start only
        // otherwise.
        assert_eq!(service(&table, "re.com", "/exact/42").as_deref(), Some("exact"));
        assert_eq!(service(&table, "re.com", "/exact/42/x"), None);
        assert_eq!(service(&table, "re.com", "/x/something"), None);
    }

    #[test]
    fn regex_longest_first_and_optional_groups() {
        let (table, problems) = build(vec![input(
            "default",
            "re",
            Some(T1),
            true,
            json!({"rules": [host_rule("h", vec![
                path("/", "Prefix", "root"),
                // Shorter than the literal below, so tried after it: precedence
                // is by raw string length, as nginx orders regex locations.
                path("/api(/v.)?", "Prefix", "api"),
                path("/api/v1/users", "Prefix", "users"),
                path("/a|/b", "Prefix", "alt"),
            ])]}),
        )]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(service(&table, "h", "/api/v1/users/7").as_deref(), Some("users"));
        let m = table.lookup("h", "/api").expect("api");
        assert_eq!(m.route.backend.service, "api");
        assert_eq!(m.captures, vec![Some("/api".to_string()), None]);
        // The group keeps both alternatives anchored.
        assert_eq!(service(&table, "h", "/x/b").as_deref(), Some("root"));
        assert_eq!(service(&table, "h", "/b").as_deref(), Some("alt"));
    }

    #[test]
    fn invalid_regex_rejected_others_kept() {
        let (table, problems) = build(vec![input(
            "default",
            "re",
            Some(T1),
            true,
            json!({"rules": [host_rule("h", vec![
                path("/(unclosed", "Prefix", "bad"),
                path("/ok/(.*)", "Prefix", "ok"),
            ])]}),
        )]);
        match &problems[..] {
            [Problem::Rejected { ingress, reason }] => {
                assert_eq!(*ingress, r("default", "re"));
                assert!(reason.contains("/(unclosed"), "{reason}");
                assert!(reason.contains("invalid regular expression"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
        let m = table.lookup("h", "/ok/x").expect("ok");
        assert_eq!(m.captures[1].as_deref(), Some("x"));
        assert_eq!(table.backends().map(|b| b.service.as_str()).collect::<Vec<_>>(), ["ok"]);
    }

    #[test]
    fn backends_are_distinct_and_include_defaults() {
        let (table, _) = build(vec![
            plain(
                "a",
                T1,
                json!({
                    "defaultBackend": svc("d"),
                    "rules": [
                        host_rule("h1", vec![path("/", "Prefix", "s"), path("/x", "Exact", "s")]),
                        host_rule("h2", vec![path("/", "Prefix", "s")]),
                    ],
                }),
            ),
            input("other", "b", Some(T2), false, json!({"rules": [host_rule("h3", vec![path("/", "Prefix", "s")])]})),
        ]);
        let mut got: Vec<String> = table.backends().map(|b| b.to_string()).collect();
        got.sort();
        assert_eq!(got, ["default/d:80", "default/s:80", "other/s:80"]);
        assert!(!table.is_empty());
    }

    #[test]
    fn empty_and_odd_inputs_do_not_panic() {
        let (table, problems) = build(Vec::<IngressInput<Payload>>::new());
        assert!(table.is_empty() && problems.is_empty());
        assert!(table.lookup("h", "/").is_none());

        let (table, _) = build(vec![plain(
            "odd",
            T1,
            json!({"rules": [
                {"host": "", "http": {"paths": [
                    path("//", "Prefix", "slashes"),
                    path("/a//b/", "Prefix", "ab"),
                    path("/é", "Exact", "utf8"),
                ]}},
                {"host": "nopaths.com", "http": {"paths": []}},
            ]}),
        )]);
        assert_eq!(service(&table, "x", "/a//b/c").as_deref(), Some("ab"));
        assert_eq!(service(&table, "x", "/é").as_deref(), Some("utf8"));
        assert_eq!(service(&table, "x", "").as_deref(), Some("slashes"));
        assert_eq!(service(&table, "x", "*").as_deref(), Some("slashes"));
        assert_eq!(service(&table, "nopaths.com", "/"), None);
        for host in ["[", "]", ":", "[]:", "...", "*.x", "é.x:1"] {
            let _ = table.lookup(host, "/");
        }
    }
}

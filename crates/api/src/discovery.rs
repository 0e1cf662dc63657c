//! API discovery documents, as kube-apiserver serves them, built from [`RESOURCES`].
//!
//! Two formats are served from the same paths:
//!
//! * **Legacy (unaggregated) discovery**: `GET /api` ([`api_versions`]), `GET /apis`
//!   ([`api_group_list`]), `GET /apis/<group>` ([`api_group`]) and `GET /api/v1`,
//!   `GET /apis/<group>/<version>` ([`api_resource_list`]). Subresources are separate entries
//!   named `<plural>/<subresource>` (`deployments/status`, `deployments/scale`); a subresource
//!   whose kind differs from its parent's group-version carries `group`/`version`
//!   (`deployments/scale` is `autoscaling/v1` `Scale`). Resources are listed alphabetically,
//!   like kube-apiserver does.
//! * **Aggregated discovery v2** ([`aggregated_discovery`]): kubectl 1.32 (client-go
//!   `DiscoveryClient.GroupsAndMaybeResources`) requests `/api` and `/apis` with
//!   `Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,
//!   application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json`
//!   and decides which format it got *only from the response `Content-Type`*
//!   (`ContentTypeIsGVK`: base `application/json` with parameters `g`, `v`, `as`). So the
//!   server must answer with [`AGGREGATED_V2_CONTENT_TYPE`] when it sends this document
//!   ([`accepts_aggregated_v2`] does the negotiation) and plain `application/json` with the
//!   legacy document otherwise. client-go only uses the resources when *both* `/api` and
//!   `/apis` answered in the aggregated format. The legacy group is an `APIGroupDiscovery`
//!   without a name (`metadata` has no `name`; upstream serialises it as
//!   `{"creationTimestamp": null}`). A resource's `responseKind` has empty group and version
//!   when it is the group-version being listed (upstream does the same); every resource and
//!   subresource must carry a non-empty `responseKind.kind`, or client-go drops it.
//!   Versions are marked `freshness: "Current"` (a `Stale` one is reported as a failed group).
//!
//! `storageVersionHash` is optional and kubectl ignores it; it is not emitted.

use serde_json::{Map, Value, json};

use crate::resources::{RESOURCES, ResourceType, groups};

/// The `Content-Type` of an aggregated discovery v2 response. client-go only parses the body as
/// `APIGroupDiscoveryList` when the response carries exactly these parameters.
pub const AGGREGATED_V2_CONTENT_TYPE: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Verbs of a served top-level resource.
const MAIN_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
/// kube-apiserver serves no `deletecollection` for namespaces.
const NAMESPACE_VERBS: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];
/// Verbs of the `status` and `scale` subresources.
const SUBRESOURCE_VERBS: &[&str] = &["get", "patch", "update"];

/// The verbs discovery reports for a top-level resource.
pub(crate) fn verbs(r: &ResourceType) -> &'static [&'static str] {
    if r.strategy.serves_delete_collection() { MAIN_VERBS } else { NAMESPACE_VERBS }
}

/// One served subresource of a resource, as discovery describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    /// `status` or `scale`.
    pub name: &'static str,
    /// Group of the kind the subresource reads and writes (`autoscaling` for scale).
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
}

/// The subresources a resource serves, alphabetically (`scale` before `status`).
pub(crate) fn subresources(r: &'static ResourceType) -> Vec<Subresource> {
    let mut out = Vec::new();
    if r.scale {
        out.push(Subresource { name: "scale", group: "autoscaling", version: "v1", kind: "Scale" });
    }
    if r.status {
        out.push(Subresource { name: "status", group: r.group, version: r.version, kind: r.kind });
    }
    out
}

/// Every served group-version, core (`""`, `v1`) first, in [`RESOURCES`] order.
pub(crate) fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// The resources of one group-version, sorted by plural name (kube-apiserver's order).
pub(crate) fn resources_of(group: &str, version: &str) -> Vec<&'static ResourceType> {
    let mut out: Vec<&'static ResourceType> =
        RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    out.sort_by_key(|r| r.plural);
    out
}

fn versions_of(group: &str) -> Vec<&'static str> {
    group_versions().into_iter().filter(|(g, _)| *g == group).map(|(_, v)| v).collect()
}

fn group_version_string(group: &str, version: &str) -> String {
    if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }
}

fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::String((*s).to_string())).collect())
}

/// `GET /api`: the `APIVersions` of the legacy group. `server_address` is the `host:port`
/// clients reach this server at; kube-apiserver reports it for `0.0.0.0/0`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": versions_of(""),
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_body(group: &str) -> Option<Map<String, Value>> {
    let versions = versions_of(group);
    let preferred = *versions.first()?;
    let entry = |v: &str| json!({"groupVersion": group_version_string(group, v), "version": v});
    let mut body = Map::new();
    body.insert("name".into(), json!(group));
    body.insert("versions".into(), Value::Array(versions.iter().map(|v| entry(v)).collect()));
    body.insert("preferredVersion".into(), entry(preferred));
    Some(body)
}

/// `GET /apis`: every named group (the legacy group is not listed here).
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups().into_iter().filter_map(group_body).map(Value::Object).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/<group>`; `None` for an unknown group (and for the legacy group, which has no
/// such endpoint).
pub fn api_group(group: &str) -> Option<Value> {
    if group.is_empty() {
        return None;
    }
    let mut out = Map::new();
    out.insert("kind".into(), json!("APIGroup"));
    out.insert("apiVersion".into(), json!("v1"));
    out.extend(group_body(group)?);
    Some(Value::Object(out))
}

/// `GET /api/v1` (group `""`) or `GET /apis/<group>/<version>`; `None` when not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let resources = resources_of(group, version);
    if resources.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    for r in resources {
        let mut main = Map::new();
        main.insert("name".into(), json!(r.plural));
        main.insert("singularName".into(), json!(r.singular_name()));
        main.insert("namespaced".into(), json!(r.namespaced));
        main.insert("kind".into(), json!(r.kind));
        main.insert("verbs".into(), strings(verbs(r)));
        if !r.short_names.is_empty() {
            main.insert("shortNames".into(), strings(r.short_names));
        }
        if !r.categories.is_empty() {
            main.insert("categories".into(), strings(r.categories));
        }
        entries.push(Value::Object(main));
        for sub in subresources(r) {
            let mut e = Map::new();
            e.insert("name".into(), json!(format!("{}/{}", r.plural, sub.name)));
            e.insert("singularName".into(), json!(""));
            e.insert("namespaced".into(), json!(r.namespaced));
            if (sub.group, sub.version) != (r.group, r.version) {
                e.insert("group".into(), json!(sub.group));
                e.insert("version".into(), json!(sub.version));
            }
            e.insert("kind".into(), json!(sub.kind));
            e.insert("verbs".into(), strings(SUBRESOURCE_VERBS));
            entries.push(Value::Object(e));
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version_string(group, version),
        "resources": entries,
    }))
}

/// `responseKind`: empty group and version when the kind belongs to the listed group-version.
fn response_kind(r: &ResourceType, group: &str, version: &str, kind: &str) -> Value {
    let same = (group, version) == (r.group, r.version);
    json!({
        "group": if same { "" } else { group },
        "version": if same { "" } else { version },
        "kind": kind,
    })
}

fn resource_discovery(r: &'static ResourceType) -> Value {
    let mut out = Map::new();
    out.insert("resource".into(), json!(r.plural));
    out.insert("responseKind".into(), response_kind(r, r.group, r.version, r.kind));
    out.insert("scope".into(), json!(if r.namespaced { "Namespaced" } else { "Cluster" }));
    out.insert("singularResource".into(), json!(r.singular_name()));
    out.insert("verbs".into(), strings(verbs(r)));
    if !r.short_names.is_empty() {
        out.insert("shortNames".into(), strings(r.short_names));
    }
    if !r.categories.is_empty() {
        out.insert("categories".into(), strings(r.categories));
    }
    let subs: Vec<Value> = subresources(r)
        .into_iter()
        .map(|s| {
            json!({
                "subresource": s.name,
                "responseKind": response_kind(r, s.group, s.version, s.kind),
                "verbs": strings(SUBRESOURCE_VERBS),
            })
        })
        .collect();
    if !subs.is_empty() {
        out.insert("subresources".into(), Value::Array(subs));
    }
    Value::Object(out)
}

fn group_discovery(group: &str) -> Value {
    let mut metadata = Map::new();
    if !group.is_empty() {
        metadata.insert("name".into(), json!(group));
    }
    metadata.insert("creationTimestamp".into(), Value::Null);
    let versions: Vec<Value> = versions_of(group)
        .into_iter()
        .map(|v| {
            let resources: Vec<Value> = resources_of(group, v).into_iter().map(resource_discovery).collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": Value::Object(metadata), "versions": versions})
}

/// The aggregated discovery v2 `APIGroupDiscoveryList`: for `GET /api` when `legacy` (one
/// unnamed group holding `v1`), else for `GET /apis` (every named group). Serve it with
/// [`AGGREGATED_V2_CONTENT_TYPE`].
pub fn aggregated_discovery(legacy: bool) -> Value {
    let items: Vec<Value> =
        if legacy { vec![group_discovery("")] } else { groups().into_iter().map(group_discovery).collect() };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// Whether an `Accept` header asks for aggregated discovery v2 (a media range
/// `application/json` with `g=apidiscovery.k8s.io`, `v=v2`, `as=APIGroupDiscoveryList`, in any
/// order). kubectl lists it first; a client that only accepts `v2beta1` (removed upstream in
/// 1.33) or plain JSON gets the legacy document.
pub fn accepts_aggregated_v2(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        if !parts.next().is_some_and(|base| base.eq_ignore_ascii_case("application/json")) {
            return false;
        }
        let (mut g, mut v, mut kind) = (false, false, false);
        for param in parts {
            match param.split_once('=').map(|(k, val)| (k.trim(), val.trim().trim_matches('"'))) {
                Some(("g", "apidiscovery.k8s.io")) => g = true,
                Some(("v", "v2")) => v = true,
                Some(("as", "APIGroupDiscoveryList")) => kind = true,
                _ => {}
            }
        }
        g && v && kind
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &Value) -> Vec<String> {
        list["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn api_versions_reports_v1_and_the_server_address() {
        let v = api_versions("10.0.0.1:6443");
        assert_eq!(v["kind"], "APIVersions");
        assert_eq!(v["versions"], json!(["v1"]));
        assert_eq!(v["serverAddressByClientCIDRs"][0]["serverAddress"], "10.0.0.1:6443");
    }

    #[test]
    fn group_list_has_every_named_group_and_no_core() {
        let list = api_group_list();
        let names: Vec<&str> = list["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
        assert_eq!(names, groups());
        assert!(!names.contains(&""));
        let apps = api_group("apps").unwrap();
        assert_eq!(apps["kind"], "APIGroup");
        assert_eq!(apps["preferredVersion"], json!({"groupVersion": "apps/v1", "version": "v1"}));
        assert!(api_group("").is_none());
        assert!(api_group("rbac.authorization.k8s.io").is_none());
    }

    #[test]
    fn resource_lists_contain_every_served_resource_and_subresource() {
        for r in RESOURCES {
            let list = api_resource_list(r.group, r.version).unwrap();
            assert_eq!(list["groupVersion"], r.api_version());
            let names = names(&list);
            assert!(names.contains(&r.plural.to_string()), "{} missing", r.plural);
            assert_eq!(names.contains(&format!("{}/status", r.plural)), r.status);
            assert_eq!(names.contains(&format!("{}/scale", r.plural)), r.scale);
        }
        assert!(api_resource_list("apps", "v1beta1").is_none());
        assert!(api_resource_list("", "v2").is_none());
    }

    #[test]
    fn legacy_entries_match_kube_apiserver() {
        let list = api_resource_list("apps", "v1").unwrap();
        let find = |n: &str| list["resources"].as_array().unwrap().iter().find(|r| r["name"] == n).unwrap().clone();
        assert_eq!(
            find("deployments"),
            json!({"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment",
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": ["deploy"], "categories": ["all"]})
        );
        assert_eq!(
            find("deployments/scale"),
            json!({"name": "deployments/scale", "singularName": "", "namespaced": true, "group": "autoscaling",
                "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
        );
        assert_eq!(
            find("deployments/status"),
            json!({"name": "deployments/status", "singularName": "", "namespaced": true, "kind": "Deployment",
                "verbs": ["get", "patch", "update"]})
        );
        let core = api_resource_list("", "v1").unwrap();
        assert_eq!(core["groupVersion"], "v1");
        let names = names(&core);
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    #[test]
    fn aggregated_discovery_has_every_resource_with_subresources() {
        let core = aggregated_discovery(true);
        assert_eq!(core["kind"], "APIGroupDiscoveryList");
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = core["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert!(items[0]["metadata"].get("name").is_none());
        let apis = aggregated_discovery(false);
        for r in RESOURCES {
            let doc = if r.group.is_empty() { &core } else { &apis };
            let group = doc["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == r.group);
            let group = if r.group.is_empty() { &doc["items"][0] } else { group.unwrap() };
            let version = group["versions"].as_array().unwrap().iter().find(|v| v["version"] == r.version).unwrap();
            assert_eq!(version["freshness"], "Current");
            let res = version["resources"].as_array().unwrap().iter().find(|x| x["resource"] == r.plural).unwrap();
            assert_eq!(res["responseKind"]["kind"], r.kind);
            assert_eq!(res["scope"], if r.namespaced { "Namespaced" } else { "Cluster" });
            assert_eq!(res["singularResource"], r.singular_name());
            let subs: Vec<&str> = res
                .get("subresources")
                .map(|s| s.as_array().unwrap().iter().map(|s| s["subresource"].as_str().unwrap()).collect())
                .unwrap_or_default();
            assert_eq!(subs.contains(&"status"), r.status);
            assert_eq!(subs.contains(&"scale"), r.scale);
        }
        let apps_resources = apis["items"][0]["versions"][0]["resources"].as_array().unwrap();
        let deployments = apps_resources.iter().find(|r| r["resource"] == "deployments").unwrap();
        assert_eq!(deployments["resource"], "deployments");
        assert_eq!(deployments["responseKind"], json!({"group": "", "version": "", "kind": "Deployment"}));
        assert_eq!(
            deployments["subresources"],
            json!([
                {"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                 "verbs": ["get", "patch", "update"]},
                {"subresource": "status", "responseKind": {"group": "", "version": "", "kind": "Deployment"},
                 "verbs": ["get", "patch", "update"]},
            ])
        );
    }

    #[test]
    fn namespaces_have_no_deletecollection() {
        let core = api_resource_list("", "v1").unwrap();
        let ns = core["resources"].as_array().unwrap().iter().find(|r| r["name"] == "namespaces").unwrap();
        assert!(!ns["verbs"].as_array().unwrap().contains(&json!("deletecollection")));
    }

    #[test]
    fn accept_negotiation_matches_kubectl() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,\
            application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(accepts_aggregated_v2(kubectl));
        assert!(accepts_aggregated_v2("application/json; as=APIGroupDiscoveryList; v=v2; g=apidiscovery.k8s.io"));
        assert!(!accepts_aggregated_v2("application/json"));
        assert!(!accepts_aggregated_v2("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"));
        assert!(!accepts_aggregated_v2(""));
    }
}

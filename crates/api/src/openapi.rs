//! OpenAPI documents: the v3 discovery root, one v3 document per served group-version, and an
//! (empty) v2 document.
//!
//! # What kubectl 1.32 needs (read from the kubectl / client-go / cli-runtime sources)
//!
//! **Fetching.** `GET /openapi/v3` returns `{"paths": {"api/v1": {"serverRelativeURL":
//! "/openapi/v3/api/v1?hash=…"}, "apis/apps/v1": {…}}}` (client-go `openapi.Client`). The keys
//! must be exactly `api/<v>` / `apis/<g>/<v>` (`openapi3.Root.GVSpec` looks the group-version
//! up under that key and reports `GroupVersionNotFoundError` otherwise). A URL starting with
//! `/openapi/v3` keeps any client-side path prefix and its query (`hash`) is passed on; the
//! document is then requested with `Accept: application/json` and unmarshalled into
//! kube-openapi's `spec3.OpenAPI`. The hash only busts client caches: kubectl's disk cache keys
//! documents by that URL, so it must change whenever the document does ([`document_hash`]).
//!
//! **Field validation (`--validate=strict`, the default for create/apply/replace/edit).** kubectl
//! asks `queryParamVerifierV3.HasSupport(gvk)` (cli-runtime `query_param_verifier_v3.go`): it
//! fetches the document of the object's group-version and walks *all* paths (in Go map order,
//! i.e. random) for a PATCH operation whose `x-kubernetes-group-version-kind` is an object equal to
//! the GVK; the *first* such operation decides. Support means that operation lists a parameter
//! named `fieldValidation` with `in: query` inline; a `$ref` only counts with the swagger-2 prefix
//! `#/parameters/`, so v3 `#/components/parameters/…` refs are useless — parameters here are
//! inline. Paths need not be the resource's own, but because the first match wins, *every* PATCH
//! operation tagged with a GVK (item and `/status`) carries `fieldValidation`. Outcomes:
//! supported → kubectl skips client-side validation and sends `fieldValidation=Strict`, so the
//! server must reject unknown fields itself; operation found without the parameter → client-side
//! validation against OpenAPI **v2**; no PATCH for the GVK, or no document → an error that falls
//! back to the v2 verifier, which fetches `/openapi/v2`; if that fails too, the command fails.
//! `kind: List` documents are always validated client-side against v2.
//!
//! **Client-side `kubectl apply` (and `kubectl diff`) patches** (kubectl `apply/patcher.go`,
//! `KUBECTL_OPENAPIV3_PATCH` is on by default): (1) it looks in the v3 document for a PATCH
//! operation with the GVK whose `requestBody.content` has `application/strategic-merge-patch+json`;
//! (2) if so, it scans `components.schemas` for a schema whose `x-kubernetes-group-version-kind`
//! (an *array*) contains the GVK and computes the three-way strategic merge patch from it
//! (`PatchMetaFromOpenAPIV3`, which follows `properties`, `$ref`s, `allOf[0]`, `items` and reads
//! `x-kubernetes-patch-merge-key` / `x-kubernetes-patch-strategy`). A schema with that GVK but
//! without full `properties` makes the computation fail with `unable to find api field …`, which
//! kubectl prints as `warning: error calculating patch from openapi v3 spec` before falling back.
//! With *no* schema carrying the GVK the v3 step silently yields nothing (but `components` must be
//! present, or it warns `OpenAPI V3 Components is nil`). (3) It then tries OpenAPI v2
//! (`/openapi/v2`, protobuf only); any error or a missing model is silently skipped. (4) Finally
//! it uses the compiled-in Go struct tags of the built-in type (`scheme.Scheme.New(gvk)`), which
//! carry the same merge keys and strategies as upstream's schemas — so for the built-in kinds
//! served here the result equals upstream's. Hence component schemas here are minimal objects
//! **without** `x-kubernetes-group-version-kind`, present only so every `$ref` resolves.
//!
//! **Other commands.** `get`, `describe`, `delete`, `label`, `annotate`, `patch`, `scale`,
//! `rollout` and `api-resources` fetch no OpenAPI. `create`, `replace`, `edit` and
//! `apply --server-side` only run the field-validation check above (server-side apply sends an
//! `application/apply-patch+yaml` PATCH and needs no schema). `explain` needs full v3 schemas
//! and is not supported by these documents.
//!
//! **`/openapi/v2`.** kubectl only requests it as protobuf (`Accept:
//! application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) and only in the fallbacks above.
//! A 404 is tolerated by the apply patcher but fails strict client-side validation (e.g. of a
//! `kind: List` file: "error validating data: the server could not find the requested
//! resource"). An empty body is a valid protobuf `openapi_v2.Document` with no paths or
//! definitions: the v2 verifier then reports "unsupported" and client-side validation finds no
//! model and skips — so serve [`openapi_v2_protobuf`] with status 200 and `Content-Type`
//! [`OPENAPI_V2_PROTOBUF_CONTENT_TYPE`] (note `.v1.0`, as kube-openapi answers: client-go parses
//! the response type with Go's `mime.ParseMediaType`, which rejects the `@` of the Accept form).
//!
//! **Checked against kubectl v1.32.4** with a mock server serving these documents: `api-resources`
//! (aggregated and legacy discovery); `apply` of an existing Deployment (one container removed,
//! one image changed) sends `application/strategic-merge-patch+json` with
//! `$setElementOrder/containers` and `$patch: delete` by name, `fieldValidation=Strict`, and
//! prints no warning, whether `/openapi/v2` is a 404 or empty (adding the GVK to the minimal
//! Deployment schema made it print the warning above); `create` and `apply --server-side` send
//! `fieldValidation=Strict`; a `kind: List` file applies with the empty v2 document and fails
//! with a v2 404.

use serde_json::{Map, Value, json};

use crate::discovery::{group_versions, resources_of, subresources, verbs};
use crate::resources::ResourceType;

/// The media type kubectl puts in `Accept` when it requests `/openapi/v2`.
pub const OPENAPI_V2_PROTOBUF_ACCEPT: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The `Content-Type` to answer `/openapi/v2` with (kube-openapi's; the `@` form of
/// [`OPENAPI_V2_PROTOBUF_ACCEPT`] fails client-go's media type parsing).
pub const OPENAPI_V2_PROTOBUF_CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The `/openapi/v2` body: an empty protobuf `openapi_v2.Document` (every field at its default).
/// See the module documentation for why this is better than a 404.
pub fn openapi_v2_protobuf() -> &'static [u8] {
    &[]
}

/// `api/v1` for the legacy group, `apis/<group>/<version>` otherwise: the key of a document in
/// [`openapi_v3_root`] and the argument of [`openapi_v3_group_version`].
pub(crate) fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// `GET /openapi/v3`: the served group-versions, each with the URL of its document, whose `hash`
/// query parameter is the [`document_hash`] of that document.
pub fn openapi_v3_root() -> Value {
    let mut paths = Map::new();
    for (group, version) in group_versions() {
        let path = group_version_path(group, version);
        let hash = document_hash(&gv_document(group, version));
        paths.insert(path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}));
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/<gv_path>` for `gv_path` like `api/v1` or `apis/apps/v1` (a leading `/` is
/// ignored); `None` when the group-version is not served.
pub fn openapi_v3_group_version(gv_path: &str) -> Option<Value> {
    let path = gv_path.strip_prefix('/').unwrap_or(gv_path);
    let (group, version) = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", version] => ("", *version),
        ["apis", group, version] if !group.is_empty() => (*group, *version),
        _ => return None,
    };
    if resources_of(group, version).is_empty() {
        return None;
    }
    Some(gv_document(group, version))
}

/// A stable hash of a document's JSON text: 128-bit FNV-1a as 32 upper-case hex digits
/// (kube-apiserver uses SHA-512; clients treat it as opaque).
pub(crate) fn document_hash(doc: &Value) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    let hash = bytes.iter().fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME));
    format!("{hash:032X}")
}

// ---- naming, after kube-apiserver's OpenAPI builder ----

fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// `Core` for the legacy group; `apps` → `Apps`, `networking.k8s.io` → `Networking`.
fn group_words(group: &str) -> Vec<&str> {
    if group.is_empty() {
        return vec!["core"];
    }
    group.strip_suffix(".k8s.io").unwrap_or(group).split('.').collect()
}

/// Operation id infix: `CoreV1`, `AppsV1`, `NetworkingV1`.
fn op_infix(group: &str, version: &str) -> String {
    group_words(group).iter().map(|w| upper_first(w)).collect::<String>() + &upper_first(version)
}

/// Operation tag: `core_v1`, `apps_v1`, `networking_v1`.
fn tag(group: &str, version: &str) -> String {
    let words = group_words(group);
    let head = words.first().copied().unwrap_or_default().to_string();
    let camel = words.iter().skip(1).fold(head, |acc, w| acc + &upper_first(w));
    format!("{camel}_{version}")
}

/// Component schema name of a kind: `io.k8s.api.apps.v1.Deployment`.
fn schema_name(group: &str, version: &str, kind: &str) -> String {
    format!("io.k8s.api.{}.{version}.{kind}", group_words(group)[0])
}

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

// ---- parameters ----

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty, "uniqueItems": true}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "description": description, "required": true,
        "schema": {"type": "string", "uniqueItems": true}})
}

fn param(name: &str) -> Value {
    match name {
        "allowWatchBookmarks" => {
            query(name, "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\".")
        }
        "continue" => {
            query(name, "string", "The continue option should be set when retrieving more results from the server.")
        }
        "dryRun" => query(
            name,
            "string",
            "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
        ),
        "fieldManager" => query(
            name,
            "string",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        "fieldSelector" => query(
            name,
            "string",
            "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
        ),
        "fieldValidation" => query(
            name,
            "string",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict",
        ),
        "force" => query(
            name,
            "boolean",
            "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people.",
        ),
        "gracePeriodSeconds" => query(name, "integer", "The duration in seconds before the object should be deleted."),
        "labelSelector" => query(
            name,
            "string",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
        ),
        "limit" => query(name, "integer", "limit is a maximum number of responses to return for a list call."),
        "orphanDependents" => query(
            name,
            "boolean",
            "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7.",
        ),
        "pretty" => query(name, "string", "If 'true', then the output is pretty printed."),
        "propagationPolicy" => query(
            name,
            "string",
            "Whether and how garbage collection will be performed. Acceptable values are: 'Orphan', 'Background', 'Foreground'.",
        ),
        "resourceVersion" => query(
            name,
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        "resourceVersionMatch" => {
            query(name, "string", "resourceVersionMatch determines how resourceVersion is applied to list calls.")
        }
        "sendInitialEvents" => {
            query(name, "boolean", "`sendInitialEvents=true` may be set together with `watch=true`.")
        }
        "timeoutSeconds" => query(name, "integer", "Timeout for the list/watch call."),
        "watch" => query(
            name,
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
        ),
        _ => unreachable!("unknown parameter {name}"),
    }
}

fn params(names: &[&str]) -> Vec<Value> {
    names.iter().map(|n| param(n)).collect()
}

const LIST_PARAMS: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const DELETE_PARAMS: &[&str] = &["dryRun", "gracePeriodSeconds", "orphanDependents", "propagationPolicy"];
const DELETE_COLLECTION_PARAMS: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];

// ---- operations ----

fn responses(codes: &[&str], schema: &str) -> Value {
    let mut out = Map::new();
    for code in codes {
        let description = match *code {
            "200" => "OK",
            "201" => "Created",
            _ => "Accepted",
        };
        out.insert(
            (*code).to_string(),
            json!({"description": description, "content": {"application/json": {"schema": schema_ref(schema)}}}),
        );
    }
    out.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(out)
}

fn body(schema: &str, required: bool) -> Value {
    json!({"content": {"*/*": {"schema": schema_ref(schema)}}, "required": required})
}

fn patch_body() -> Value {
    let patch = schema_ref(&format!("{META}.Patch"));
    let content: Map<String, Value> = [
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ]
    .iter()
    .map(|t| ((*t).to_string(), json!({"schema": patch.clone()})))
    .collect();
    json!({"content": content, "required": true})
}

/// What one operation does; rendered by [`Ctx::op`].
struct Op<'a> {
    description: String,
    id: String,
    action: &'a str,
    gvk: Value,
    params: &'a [&'a str],
    body: Option<Value>,
    responses: Value,
}

/// The group-version a document is for, and names derived from it.
struct Ctx {
    tag: String,
    infix: String,
}

impl Ctx {
    fn op(&self, op: Op<'_>) -> Value {
        let mut out = Map::new();
        out.insert("tags".into(), json!([self.tag]));
        out.insert("description".into(), json!(op.description));
        out.insert("operationId".into(), json!(op.id));
        if !op.params.is_empty() {
            out.insert("parameters".into(), Value::Array(params(op.params)));
        }
        if let Some(body) = op.body {
            out.insert("requestBody".into(), body);
        }
        out.insert("responses".into(), op.responses);
        out.insert("x-kubernetes-action".into(), json!(op.action));
        out.insert("x-kubernetes-group-version-kind".into(), op.gvk);
        Value::Object(out)
    }
}

fn path_item(path_params: Vec<Value>, ops: Vec<(&str, Value)>) -> Value {
    let mut out = Map::new();
    for (method, op) in ops {
        out.insert(method.to_string(), op);
    }
    out.insert("parameters".into(), Value::Array(path_params));
    Value::Object(out)
}

fn add_resource_paths(paths: &mut Map<String, Value>, ctx: &Ctx, r: &'static ResourceType) {
    let prefix = format!("/{}", group_version_path(r.group, r.version));
    let kind = r.kind;
    let kind_schema = schema_name(r.group, r.version, kind);
    let list_schema = schema_name(r.group, r.version, &r.list_kind());
    let status = format!("{META}.Status");
    let delete_options = format!("{META}.DeleteOptions");
    let this = gvk(r.group, r.version, kind);
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let infix = &ctx.infix;
    let collection = if r.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{prefix}/{}", r.plural)
    };
    let item = format!("{collection}/{{name}}");
    let namespace_param = || path_param("namespace", "object name and auth scope, such as for teams and projects");
    let name_param = |what: &str| path_param("name", &format!("name of the {what}"));
    let with_scope = |mut v: Vec<Value>| {
        if r.namespaced {
            v.insert(0, namespace_param());
        }
        v.push(param("pretty"));
        v
    };

    // Collection: list, create, deletecollection.
    let mut ops = vec![
        (
            "get",
            ctx.op(Op {
                description: format!("list or watch objects of kind {kind}"),
                id: format!("list{infix}{scope}{kind}"),
                action: "list",
                gvk: this.clone(),
                params: LIST_PARAMS,
                body: None,
                responses: responses(&["200"], &list_schema),
            }),
        ),
        (
            "post",
            ctx.op(Op {
                description: format!("create a {kind}"),
                id: format!("create{infix}{scope}{kind}"),
                action: "post",
                gvk: this.clone(),
                params: WRITE_PARAMS,
                body: Some(body(&kind_schema, true)),
                responses: responses(&["200", "201", "202"], &kind_schema),
            }),
        ),
    ];
    if verbs(r).contains(&"deletecollection") {
        ops.push((
            "delete",
            ctx.op(Op {
                description: format!("delete collection of {kind}"),
                id: format!("delete{infix}Collection{scope}{kind}"),
                action: "deletecollection",
                gvk: this.clone(),
                params: DELETE_COLLECTION_PARAMS,
                body: Some(body(&delete_options, false)),
                responses: responses(&["200"], &status),
            }),
        ));
    }
    paths.insert(collection, path_item(with_scope(vec![]), ops));

    // Item: read, replace, delete, patch.
    let ops = vec![
        (
            "get",
            ctx.op(Op {
                description: format!("read the specified {kind}"),
                id: format!("read{infix}{scope}{kind}"),
                action: "get",
                gvk: this.clone(),
                params: &[],
                body: None,
                responses: responses(&["200"], &kind_schema),
            }),
        ),
        (
            "put",
            ctx.op(Op {
                description: format!("replace the specified {kind}"),
                id: format!("replace{infix}{scope}{kind}"),
                action: "put",
                gvk: this.clone(),
                params: WRITE_PARAMS,
                body: Some(body(&kind_schema, true)),
                responses: responses(&["200", "201"], &kind_schema),
            }),
        ),
        (
            "delete",
            ctx.op(Op {
                description: format!("delete a {kind}"),
                id: format!("delete{infix}{scope}{kind}"),
                action: "delete",
                gvk: this.clone(),
                params: DELETE_PARAMS,
                body: Some(body(&delete_options, false)),
                responses: responses(&["200", "202"], &status),
            }),
        ),
        (
            "patch",
            ctx.op(Op {
                description: format!("partially update the specified {kind}"),
                id: format!("patch{infix}{scope}{kind}"),
                action: "patch",
                gvk: this.clone(),
                params: PATCH_PARAMS,
                body: Some(patch_body()),
                responses: responses(&["200", "201"], &kind_schema),
            }),
        ),
    ];
    paths.insert(item.clone(), path_item(with_scope(vec![name_param(kind)]), ops));

    // Subresources: read, replace, patch.
    for sub in subresources(r) {
        let suffix = upper_first(sub.name);
        let sub_gvk = gvk(sub.group, sub.version, sub.kind);
        let sub_schema = schema_name(sub.group, sub.version, sub.kind);
        let what = if sub.name == "status" {
            format!("status of the specified {kind}")
        } else {
            format!("scale of the specified {kind}")
        };
        let ops = vec![
            (
                "get",
                ctx.op(Op {
                    description: format!("read {what}"),
                    id: format!("read{infix}{scope}{kind}{suffix}"),
                    action: "get",
                    gvk: sub_gvk.clone(),
                    params: &[],
                    body: None,
                    responses: responses(&["200"], &sub_schema),
                }),
            ),
            (
                "put",
                ctx.op(Op {
                    description: format!("replace {what}"),
                    id: format!("replace{infix}{scope}{kind}{suffix}"),
                    action: "put",
                    gvk: sub_gvk.clone(),
                    params: WRITE_PARAMS,
                    body: Some(body(&sub_schema, true)),
                    responses: responses(&["200", "201"], &sub_schema),
                }),
            ),
            (
                "patch",
                ctx.op(Op {
                    description: format!("partially update {what}"),
                    id: format!("patch{infix}{scope}{kind}{suffix}"),
                    action: "patch",
                    gvk: sub_gvk,
                    params: PATCH_PARAMS,
                    body: Some(patch_body()),
                    responses: responses(&["200", "201"], &sub_schema),
                }),
            ),
        ];
        let name = path_param("name", &format!("name of the {}", sub.kind));
        paths.insert(format!("{item}/{}", sub.name), path_item(with_scope(vec![name]), ops));
    }

    // Namespaced kinds are also listed across all namespaces.
    if r.namespaced {
        let op = ctx.op(Op {
            description: format!("list or watch objects of kind {kind}"),
            id: format!("list{infix}{kind}ForAllNamespaces"),
            action: "list",
            gvk: this,
            params: &[],
            body: None,
            responses: responses(&["200"], &list_schema),
        });
        let mut path_params = params(LIST_PARAMS);
        path_params.push(param("pretty"));
        paths.insert(format!("{prefix}/{}", r.plural), path_item(path_params, vec![("get", op)]));
    }
}

/// A schema that resolves `$ref`s but deliberately carries no `x-kubernetes-group-version-kind`
/// (see the module documentation: with one, kubectl apply would warn and fall back anyway).
fn minimal_schema(description: &str) -> Value {
    json!({"description": description, "type": "object"})
}

fn gv_document(group: &str, version: &str) -> Value {
    let ctx = Ctx { tag: tag(group, version), infix: op_infix(group, version) };
    let resources = resources_of(group, version);
    let mut paths = Map::new();

    let api_resources = format!("{META}.APIResourceList");
    let mut discovery = Map::new();
    discovery.insert("tags".into(), json!([ctx.tag]));
    discovery.insert("description".into(), json!("get available resources"));
    discovery.insert("operationId".into(), json!(format!("get{}APIResources", ctx.infix)));
    discovery.insert("responses".into(), responses(&["200"], &api_resources));
    paths.insert(format!("/{}/", group_version_path(group, version)), json!({"get": discovery}));

    let mut schemas = Map::new();
    for r in &resources {
        add_resource_paths(&mut paths, &ctx, r);
        let kind = schema_name(r.group, r.version, r.kind);
        schemas.insert(kind, minimal_schema(&format!("{} (schema not published; see the built-in type)", r.kind)));
        schemas.insert(
            schema_name(r.group, r.version, &r.list_kind()),
            minimal_schema(&format!("{} is a list of {}.", r.list_kind(), r.kind)),
        );
        for sub in subresources(r) {
            schemas
                .entry(schema_name(sub.group, sub.version, sub.kind))
                .or_insert_with(|| minimal_schema(&format!("{} (schema not published)", sub.kind)));
        }
    }
    for (name, description) in [
        ("APIResourceList", "APIResourceList is a list of APIResource."),
        ("DeleteOptions", "DeleteOptions may be provided when deleting an API object."),
        ("Patch", "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."),
        ("Status", "Status is a return value for calls that don't return other objects."),
    ] {
        schemas.insert(format!("{META}.{name}"), minimal_schema(description));
    }

    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}
            }
        },
        "security": [{"BearerToken": []}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::RESOURCES;

    /// Every PATCH operation of a document tagged with the GVK, as kubectl's verifier sees them.
    fn patch_ops<'a>(doc: &'a Value, g: &str, v: &str, k: &str) -> Vec<(&'a String, &'a Value)> {
        doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .filter_map(|(path, item)| item.get("patch").map(|op| (path, op)))
            .filter(|(_, op)| op["x-kubernetes-group-version-kind"] == gvk(g, v, k))
            .collect()
    }

    fn has_query_param(op: &Value, name: &str) -> bool {
        op["parameters"].as_array().unwrap().iter().any(|p| p["name"] == name && p["in"] == "query")
    }

    #[test]
    fn deployments_patch_supports_field_validation() {
        let doc = openapi_v3_group_version("apis/apps/v1").unwrap();
        assert_eq!(doc["openapi"], "3.0.0");
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            op["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        assert_eq!(op["x-kubernetes-action"], "patch");
        for p in ["fieldValidation", "dryRun", "fieldManager", "force"] {
            assert!(has_query_param(op, p), "{p}");
        }
        assert!(op["requestBody"]["content"].get("application/strategic-merge-patch+json").is_some());
        let scale = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"];
        assert_eq!(
            scale["x-kubernetes-group-version-kind"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );
    }

    #[test]
    fn every_patch_operation_of_every_kind_has_field_validation() {
        for r in RESOURCES {
            let doc = openapi_v3_group_version(&group_version_path(r.group, r.version)).unwrap();
            let ops = patch_ops(&doc, r.group, r.version, r.kind);
            assert_eq!(ops.len(), 1 + usize::from(r.status), "{}", r.kind);
            for (path, op) in ops {
                assert!(has_query_param(op, "fieldValidation"), "{path}");
            }
        }
    }

    #[test]
    fn documents_have_every_resource_path_and_operation() {
        for r in RESOURCES {
            let doc = openapi_v3_group_version(&group_version_path(r.group, r.version)).unwrap();
            let paths = doc["paths"].as_object().unwrap();
            let prefix =
                if r.group.is_empty() { "/api/v1".to_string() } else { format!("/apis/{}/{}", r.group, r.version) };
            let collection = if r.namespaced {
                format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
            } else {
                format!("{prefix}/{}", r.plural)
            };
            let item = format!("{collection}/{{name}}");
            for m in ["get", "post"] {
                assert_eq!(
                    paths[&collection][m]["x-kubernetes-group-version-kind"]["kind"], r.kind,
                    "{collection} {m}"
                );
            }
            for m in ["get", "put", "delete", "patch"] {
                assert_eq!(paths[&item][m]["x-kubernetes-group-version-kind"]["kind"], r.kind, "{item} {m}");
            }
            assert_eq!(paths.contains_key(&format!("{item}/status")), r.status);
            assert_eq!(paths.contains_key(&format!("{item}/scale")), r.scale);
            // Cluster-wide list: the collection itself, or the all-namespaces list.
            let all = &paths[&format!("{prefix}/{}", r.plural)]["get"];
            assert_eq!(all["x-kubernetes-action"], "list");
            assert_eq!(all["x-kubernetes-group-version-kind"]["kind"], r.kind);
            // Every $ref resolves.
            let text = doc.to_string();
            let schemas = doc["components"]["schemas"].as_object().unwrap();
            for piece in text.split("#/components/schemas/").skip(1) {
                let name = piece.split('"').next().unwrap();
                assert!(schemas.contains_key(name), "{name} unresolved");
            }
            // No schema claims a GVK (kubectl apply would try, and warn, with a partial schema).
            assert!(schemas.values().all(|s| s.get("x-kubernetes-group-version-kind").is_none()));
        }
    }

    #[test]
    fn namespaced_and_cluster_scoped_paths() {
        let core = openapi_v3_group_version("/api/v1").unwrap();
        let paths = core["paths"].as_object().unwrap();
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/services/{name}"));
        assert!(paths.contains_key("/api/v1/services"));
        assert!(paths.contains_key("/api/v1/namespaces/{name}"));
        assert!(paths.contains_key("/api/v1/namespaces/{name}/status"));
        assert!(paths.contains_key("/api/v1/nodes/{name}"));
        assert!(!paths.contains_key("/api/v1/namespaces/{namespace}/nodes"));
        assert_eq!(
            paths["/api/v1/namespaces/{namespace}/services/{name}"]["patch"]["operationId"],
            "patchCoreV1NamespacedService"
        );
        assert_eq!(paths["/api/v1/nodes/{name}"]["patch"]["operationId"], "patchCoreV1Node");
        // Namespaces have no deletecollection.
        assert!(paths["/api/v1/namespaces"].get("delete").is_none());
        let net = openapi_v3_group_version("apis/networking.k8s.io/v1").unwrap();
        assert_eq!(
            net["paths"]["/apis/networking.k8s.io/v1/ingressclasses/{name}"]["patch"]["operationId"],
            "patchNetworkingV1IngressClass"
        );
        assert!(openapi_v3_group_version("apis/apps/v2").is_none());
        assert!(openapi_v3_group_version("apis/rbac.authorization.k8s.io/v1").is_none());
        assert!(openapi_v3_group_version("api").is_none());
        assert!(openapi_v3_group_version("apis//v1").is_none());
    }

    #[test]
    fn root_lists_every_group_version_with_a_stable_distinct_hash() {
        let root = openapi_v3_root();
        assert_eq!(root, openapi_v3_root());
        let paths = root["paths"].as_object().unwrap();
        assert_eq!(paths.len(), group_versions().len());
        let mut hashes = Vec::new();
        for (group, version) in group_versions() {
            let key = group_version_path(group, version);
            let url = paths[&key]["serverRelativeURL"].as_str().unwrap();
            let doc = openapi_v3_group_version(&key).unwrap();
            let hash = document_hash(&doc);
            assert_eq!(hash.len(), 32);
            assert_eq!(url, format!("/openapi/v3/{key}?hash={hash}"));
            assert_eq!(hash, document_hash(&openapi_v3_group_version(&key).unwrap()));
            assert!(!hashes.contains(&hash));
            hashes.push(hash);
        }
        assert!(paths.contains_key("api/v1") && paths.contains_key("apis/apps/v1"));
    }

    #[test]
    fn hash_changes_with_content() {
        let mut doc = openapi_v3_group_version("apis/apps/v1").unwrap();
        let before = document_hash(&doc);
        doc["info"]["version"] = json!("v2");
        assert_ne!(before, document_hash(&doc));
        assert_ne!(document_hash(&json!({"a": 1})), document_hash(&json!({"a": 2})));
    }

    #[test]
    fn v2_is_an_empty_protobuf_document() {
        assert!(openapi_v2_protobuf().is_empty());
        // client-go parses the response type with mime.ParseMediaType, which rejects '@'.
        assert!(!OPENAPI_V2_PROTOBUF_CONTENT_TYPE.contains('@'));
        assert!(OPENAPI_V2_PROTOBUF_ACCEPT.contains('@'));
    }
}

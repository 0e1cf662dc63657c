//! Routes a request: health and version (no authentication, as kube-apiserver's
//! system:public-info-viewer allows), then bearer-token authentication, then discovery,
//! OpenAPI and the resource handlers.

use crate::body::{Body, json_response, json_response_with_type, text_response};
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::registry::{
    DeleteOptions, DeleteOutcome, FieldValidation, ListOptions, PatchType, Registry, Subresource, WriteOptions,
};
use crate::request::{self, ResourceRequest, Target, Verb};
use crate::table::{IncludeObject, Shape, partial_metadata, table};
use crate::watch::{self, WatchRequest};
use crate::{object, registry};
use api::ResourceType;
use api::selector::{field, label};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// kube-apiserver's limit on a request body (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

pub struct Router {
    pub registry: Registry,
    pub token: String,
    /// host:port clients reach this server at (discovery's serverAddressByClientCIDRs).
    pub server_address: String,
    pub bookmark_interval: Duration,
    pub metrics: Metrics,
    /// Where the pods' streaming subresources (log, exec, attach, portforward) go.
    pub kubelets: crate::streaming::Kubelets,
}

const AGGREGATED_DISCOVERY: &str = api::discovery::AGGREGATED_V2_CONTENT_TYPE;

impl Router {
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let (label, response) = match self.route(req).await {
            Ok((label, resp)) => (label, resp),
            Err((label, e)) => (label, error_response(&e)),
        };
        let code = response.status().as_u16();
        self.metrics.observe(&label.0, &label.1, code, started.elapsed());
        tracing::debug!(%method, %path, code, elapsed_us = started.elapsed().as_micros() as u64, "request");
        response
    }

    async fn route(&self, req: Request<Incoming>) -> Result<(Label, Response<Body>), (Label, ApiError)> {
        let path = req.uri().path().to_string();
        let other = |verb: &str| Label(verb.to_string(), String::new());
        match path.as_str() {
            "/healthz" | "/livez" | "/readyz" | "/healthz/" | "/livez/" | "/readyz/" => {
                return Ok((other("get"), text_response(200, "ok")));
            }
            "/version" | "/version/" => return Ok((other("get"), json_response(200, &version_info()))),
            _ => {}
        }
        if !self.authenticated(req.headers()) {
            return Err((other(req.method().as_str()), ApiError::Unauthorized));
        }
        let query = request::query_map(req.uri().query());
        let watch_param = matches!(query.get("watch").map(String::as_str), Some("true") | Some("1"));
        match request::parse(req.method(), &path, watch_param) {
            Target::Discovery { legacy, group, version } => {
                let accept = header_str(req.headers(), header::ACCEPT);
                discovery(&self.server_address, legacy, group.as_deref(), version.as_deref(), accept)
                    .map(|r| (other("get"), r))
                    .map_err(|e| (other("get"), e))
            }
            Target::Resource(r) if crate::streaming::is_streaming(&r) => {
                let label =
                    Label(r.verb.as_str().to_string(), format!("pods/{}", r.subresource.as_deref().unwrap_or("")));
                crate::streaming::serve(&self.kubelets, &self.registry, &r, req)
                    .await
                    .map(|resp| (label.clone(), resp))
                    .map_err(|e| (label, e))
            }
            Target::Resource(r) => {
                let label = Label(r.verb.as_str().to_string(), r.resource.clone());
                self.resource(r, query, req).await.map(|resp| (label.clone(), resp)).map_err(|e| (label, e))
            }
            Target::Other(p) => self.non_resource(&p).map(|r| (other("get"), r)).map_err(|e| (other("get"), e)),
        }
    }

    fn authenticated(&self, headers: &HeaderMap) -> bool {
        let Some(value) = header_str(headers, header::AUTHORIZATION) else { return false };
        let Some(token) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) else {
            return false;
        };
        constant_time_eq(token.trim().as_bytes(), self.token.as_bytes())
    }

    fn non_resource(&self, path: &str) -> ApiResult<Response<Body>> {
        if path == "/openapi/v3" || path == "/openapi/v3/" {
            return Ok(json_response(200, &api::openapi::openapi_v3_root()));
        }
        if let Some(gv) = path.strip_prefix("/openapi/v3/") {
            return api::openapi::openapi_v3_group_version(gv)
                .map(|doc| json_response(200, &doc))
                .ok_or(ApiError::NotFoundPath);
        }
        if path == "/openapi/v2" || path == "/openapi/v2/" {
            // An empty protobuf document: every served kind advertises server-side field
            // validation in v3, so kubectl only needs v2 to exist (for `kind: List` files).
            let mut resp = Response::new(crate::body::full(api::openapi::openapi_v2_protobuf()));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(api::openapi::OPENAPI_V2_PROTOBUF_CONTENT_TYPE));
            return Ok(resp);
        }
        if path == "/metrics" {
            let mut resp = Response::new(crate::body::full(self.metrics.render()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            return Ok(resp);
        }
        if path == "/" {
            let paths: Vec<String> =
                ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/metrics", "/openapi/v3", "/readyz", "/version"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain(api::resources::groups().iter().map(|g| format!("/apis/{g}")))
                    .collect();
            return Ok(json_response(200, &json!({"paths": paths})));
        }
        Err(ApiError::NotFoundPath)
    }

    async fn resource(
        &self,
        r: ResourceRequest,
        query: HashMap<String, String>,
        req: Request<Incoming>,
    ) -> ApiResult<Response<Body>> {
        let rt = api::resources::lookup(&r.group, &r.version, &r.resource).ok_or(ApiError::NotFoundPath)?;
        if !rt.namespaced && r.namespace.is_some() {
            return Err(ApiError::NotFoundPath);
        }
        let sub = Subresource::parse(rt, r.subresource.as_deref()).ok_or(ApiError::NotFoundPath)?;
        if sub != Subresource::Main
            && matches!(r.verb, Verb::List | Verb::Watch | Verb::Create | Verb::Delete | Verb::DeleteCollection)
        {
            return Err(ApiError::MethodNotSupported {
                resource: format!("{}/{}", rt.plural, r.subresource.unwrap_or_default()),
                verb: r.verb.as_str().into(),
            });
        }
        let ns = r.namespace.as_deref();
        let accept = header_str(req.headers(), header::ACCEPT).map(String::from);
        let shape = crate::table::shape(accept.as_deref());
        let include = IncludeObject::parse(query.get("includeObject").map(String::as_str));
        let write_opts = write_options(&query)?;
        let name = r.name.clone().unwrap_or_default();
        match r.verb {
            Verb::Get => {
                let obj = if sub == Subresource::Scale {
                    self.registry.get_scale(rt, ns, &name).await?
                } else {
                    self.registry.get(rt, ns, &name).await?
                };
                Ok(self.object_response(rt, 200, &obj, &shape, include, &[]))
            }
            Verb::List => {
                let opts = list_options(rt, &query)?;
                if shape == Shape::Object && !opts.has_selectors() {
                    return Ok(raw_list_response(rt, self.registry.list_raw(rt, ns, &opts).await?));
                }
                let page = self.registry.list(rt, ns, &opts).await?;
                let mut meta = json!({"resourceVersion": page.revision.to_string()});
                if let Some(c) = &page.continue_token {
                    meta["continue"] = json!(c);
                }
                if let Some(n) = page.remaining {
                    meta["remainingItemCount"] = json!(n);
                }
                let body = match shape {
                    Shape::Table { version } => table(rt, &page.items, meta, version, include, true),
                    Shape::Metadata { version } => json!({
                        "kind": "PartialObjectMetadataList",
                        "apiVersion": format!("meta.k8s.io/{version}"),
                        "metadata": meta,
                        "items": page.items.iter().map(|o| partial_metadata(o, version)).collect::<Vec<_>>(),
                    }),
                    Shape::Object => json!({
                        "kind": rt.list_kind(),
                        "apiVersion": rt.api_version(),
                        "metadata": meta,
                        "items": page.items,
                    }),
                };
                Ok(json_response(200, &body))
            }
            Verb::Watch => {
                let filter = list_options(rt, &query)?;
                let timeout = match query.get("timeoutSeconds").and_then(|s| s.parse::<u64>().ok()) {
                    Some(t) if t > 0 => Duration::from_secs(t),
                    _ => Duration::from_secs(1800 + rand::random::<u64>() % 1800),
                };
                let send_initial_events = match query.get("sendInitialEvents").map(String::as_str) {
                    Some("true") => Some(true),
                    Some("false") => Some(false),
                    _ => None,
                };
                let w = WatchRequest {
                    rt,
                    namespace: r.namespace.clone(),
                    filter,
                    resource_version: query.get("resourceVersion").cloned(),
                    resource_version_match: query.get("resourceVersionMatch").cloned(),
                    send_initial_events,
                    allow_bookmarks: query.get("allowWatchBookmarks").is_some_and(|v| v == "true"),
                    timeout,
                    bookmark_interval: self.bookmark_interval,
                    shape,
                    include,
                };
                watch::serve(self.registry.clone(), w).await
            }
            Verb::Create => {
                if r.name.is_some() {
                    return Err(ApiError::MethodNotSupported { resource: rt.plural.into(), verb: "create".into() });
                }
                let body = read_json(req, JsonKind::Object).await?;
                let w = self.registry.create(rt, ns, body, &write_opts).await?;
                Ok(self.object_response(rt, 201, &w.object, &shape, include, &w.warnings))
            }
            Verb::Update => {
                let body = read_json(req, JsonKind::Object).await?;
                let w = self.registry.update(rt, ns, &name, sub, body, &write_opts).await?;
                let code = if w.created { 201 } else { 200 };
                Ok(self.object_response(rt, code, &w.object, &shape, include, &w.warnings))
            }
            Verb::Patch => {
                let ct = header_str(req.headers(), header::CONTENT_TYPE).unwrap_or("").to_string();
                let patch_type = PatchType::from_content_type(&ct).ok_or_else(|| {
                    ApiError::UnsupportedMediaType(format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct:?})"))
                })?;
                let kind = if patch_type == PatchType::Json { JsonKind::Array } else { JsonKind::Object };
                let body = read_json(req, kind).await?;
                let w = self.registry.patch(rt, ns, &name, sub, patch_type, body, &write_opts).await?;
                let code = if w.created { 201 } else { 200 };
                Ok(self.object_response(rt, code, &w.object, &shape, include, &w.warnings))
            }
            Verb::Delete => {
                let base = delete_query_options(&query)?;
                let body = read_optional_json(req).await?;
                let opts = DeleteOptions::from_body(body.as_ref(), base)?;
                match self.registry.delete(rt, ns, &name, &opts).await? {
                    DeleteOutcome::Pending(obj) => Ok(self.object_response(rt, 200, &obj, &shape, include, &[])),
                    DeleteOutcome::Deleted(obj) if rt.strategy.returns_deleted_object() => {
                        Ok(self.object_response(rt, 200, &obj, &shape, include, &[]))
                    }
                    DeleteOutcome::Deleted(obj) => Ok(json_response(200, &success_status(rt, &obj))),
                }
            }
            Verb::DeleteCollection => {
                let base = delete_query_options(&query)?;
                let body = read_optional_json(req).await?;
                let opts = DeleteOptions::from_body(body.as_ref(), base)?;
                let list_opts = list_options(rt, &query)?;
                let page =
                    self.registry.list(rt, ns, &ListOptions { limit: 0, continue_token: None, ..list_opts }).await?;
                let mut deleted = Vec::new();
                for obj in page.items {
                    let name = object::name(&obj).unwrap_or_default().to_string();
                    match self.registry.delete(rt, object::namespace(&obj), &name, &opts).await {
                        Ok(DeleteOutcome::Deleted(o) | DeleteOutcome::Pending(o)) => deleted.push(o),
                        Err(ApiError::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(json_response(
                    200,
                    &json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": {"resourceVersion": self.registry.store().current_revision().to_string()}, "items": deleted}),
                ))
            }
        }
    }

    fn object_response(
        &self,
        rt: &ResourceType,
        code: u16,
        obj: &Value,
        shape: &Shape,
        include: IncludeObject,
        warnings: &[String],
    ) -> Response<Body> {
        let body = match shape {
            Shape::Table { version } if obj.get("kind").and_then(Value::as_str) == Some(rt.kind) => {
                let rv = object::resource_version(obj).unwrap_or_default();
                table(rt, std::slice::from_ref(obj), json!({"resourceVersion": rv}), version, include, true)
            }
            Shape::Metadata { version } => partial_metadata(obj, version),
            _ => obj.clone(),
        };
        let mut resp = json_response(code, &body);
        for w in warnings {
            if let Ok(v) = HeaderValue::from_str(&format!("299 - {:?}", w)) {
                resp.headers_mut().append(header::WARNING, v);
            }
        }
        resp
    }
}

/// Writes a List around already-encoded items.
fn raw_list_response(rt: &ResourceType, page: registry::RawPage) -> Response<Body> {
    let mut meta = json!({"resourceVersion": page.revision.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    let head = json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": meta}).to_string();
    let size = head.len() + page.items.iter().map(|i| i.len() + 1).sum::<usize>() + 16;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    body.extend_from_slice(b",\"items\":[");
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"]}");
    let mut resp = Response::new(crate::body::full(body));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Label for metrics: (verb, resource).
#[derive(Debug, Clone)]
struct Label(String, String);

fn success_status(rt: &ResourceType, obj: &Value) -> Value {
    let mut details = json!({"name": object::name(obj).unwrap_or_default(), "kind": rt.plural});
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    if let Some(uid) = object::uid(obj) {
        details["uid"] = json!(uid);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut resp = json_response(e.code(), &e.status());
    if matches!(e, ApiError::Unauthorized) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"portico\""));
    }
    resp
}

fn discovery(
    server_address: &str,
    legacy: bool,
    group: Option<&str>,
    version: Option<&str>,
    accept: Option<&str>,
) -> ApiResult<Response<Body>> {
    let aggregated = accept.is_some_and(api::discovery::accepts_aggregated_v2);
    let not_found = || ApiError::NotFoundPath;
    match (legacy, group, version) {
        (true, None, None) => Ok(if aggregated {
            json_response_with_type(200, &api::discovery::aggregated_discovery(true), AGGREGATED_DISCOVERY)
        } else {
            json_response(200, &api::discovery::api_versions(server_address))
        }),
        (true, None, Some(v)) => {
            api::discovery::api_resource_list("", v).map(|d| json_response(200, &d)).ok_or_else(not_found)
        }
        (false, None, None) => Ok(if aggregated {
            json_response_with_type(200, &api::discovery::aggregated_discovery(false), AGGREGATED_DISCOVERY)
        } else {
            json_response(200, &api::discovery::api_group_list())
        }),
        (false, Some(g), None) => api::discovery::api_group(g).map(|d| json_response(200, &d)).ok_or_else(not_found),
        (false, Some(g), Some(v)) => {
            api::discovery::api_resource_list(g, v).map(|d| json_response(200, &d)).ok_or_else(not_found)
        }
        _ => Err(not_found()),
    }
}

pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0-portico",
        "gitCommit": env!("CARGO_PKG_VERSION"),
        "gitTreeState": "clean",
        "buildDate": "2026-11-22T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    })
}

fn list_options(rt: &ResourceType, q: &HashMap<String, String>) -> ApiResult<ListOptions> {
    let label_selector = match q.get("labelSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(label::Selector::parse(s).map_err(ApiError::BadRequest)?),
        None => None,
    };
    let field_selector = match q.get("fieldSelector").filter(|s| !s.is_empty()) {
        Some(s) => {
            let sel = field::Selector::parse(s).map_err(ApiError::BadRequest)?;
            Some(field::convert_selector(rt, &sel).map_err(ApiError::BadRequest)?)
        }
        None => None,
    };
    let limit = match q.get("limit").filter(|s| !s.is_empty()) {
        Some(l) => l.parse::<i64>().map_err(|_| ApiError::BadRequest(format!("invalid limit {l:?}")))?.max(0) as usize,
        None => 0,
    };
    Ok(ListOptions {
        label_selector,
        field_selector,
        limit,
        continue_token: q.get("continue").filter(|s| !s.is_empty()).cloned(),
        resource_version: q.get("resourceVersion").cloned(),
    })
}

fn write_options(q: &HashMap<String, String>) -> ApiResult<WriteOptions> {
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            )));
        }
    };
    Ok(WriteOptions {
        field_validation: FieldValidation::parse(q.get("fieldValidation").map(String::as_str))?,
        dry_run,
        field_manager: q.get("fieldManager").cloned(),
        force: q.get("force").is_some_and(|f| f == "true"),
    })
}

fn delete_query_options(q: &HashMap<String, String>) -> ApiResult<DeleteOptions> {
    Ok(DeleteOptions {
        grace_period_seconds: q.get("gracePeriodSeconds").and_then(|s| s.parse().ok()),
        propagation: q.get("propagationPolicy").map(|p| registry::parse_propagation(p)).transpose()?,
        precondition_uid: None,
        precondition_rv: None,
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
    })
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[derive(PartialEq)]
enum JsonKind {
    Object,
    Array,
}

async fn read_body(req: Request<Incoming>) -> ApiResult<(Option<String>, Bytes)> {
    let ct = header_str(req.headers(), header::CONTENT_TYPE).map(String::from);
    let mut body = req.into_body();
    let bytes = match Limited::new(&mut body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            // Read (and drop) a bounded rest of the body before answering, as Go's net/http
            // does: closing a connection with unread data resets it, and the client then
            // loses the 413 response.
            let mut drained = 0;
            while drained < MAX_DRAIN_BYTES
                && let Some(Ok(frame)) = body.frame().await
            {
                drained += frame.data_ref().map_or(0, Bytes::len);
            }
            return Err(ApiError::RequestEntityTooLarge("the request is too large: limit is 3145728 bytes".into()));
        }
        Err(e) => return Err(ApiError::BadRequest(format!("failed to read the request body: {e}"))),
    };
    Ok((ct, bytes))
}

/// Most bytes of an oversized body read and discarded before the 413 is sent.
const MAX_DRAIN_BYTES: usize = 16 * 1024 * 1024;

async fn read_json(req: Request<Incoming>, kind: JsonKind) -> ApiResult<Value> {
    let (ct, bytes) = read_body(req).await?;
    let media = ct.as_deref().unwrap_or("application/json").split(';').next().unwrap_or("").trim().to_string();
    if api::protobuf::is_protobuf_content_type(&media) {
        return decode_protobuf(&bytes, kind);
    }
    let json_like = media.is_empty() || media == "application/json" || media.ends_with("+json") || media == "*/*";
    let yaml = matches!(media.as_str(), "application/yaml" | "application/apply-patch+yaml");
    if !json_like && !yaml {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {media:?})"
        )));
    }
    let value: Value = if yaml {
        let text =
            std::str::from_utf8(&bytes).map_err(|_| ApiError::BadRequest("the request body is not UTF-8".into()))?;
        serde_saphyr::from_str(text)
            .map_err(|e| ApiError::BadRequest(format!("the request body is not valid YAML: {e}")))?
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("the request body is not valid JSON: {e}")))?
    };
    let ok = match kind {
        JsonKind::Object => value.is_object(),
        JsonKind::Array => value.is_array(),
    };
    if !ok {
        return Err(ApiError::BadRequest(format!(
            "the request body must be a JSON {}",
            if kind == JsonKind::Object { "object" } else { "array" }
        )));
    }
    Ok(value)
}

/// kubectl's typed clients send Kubernetes protobuf (`k8s\0` + runtime.Unknown).
fn decode_protobuf(bytes: &[u8], kind: JsonKind) -> ApiResult<Value> {
    if kind != JsonKind::Object {
        return Err(ApiError::UnsupportedMediaType("protobuf is only accepted for object bodies".into()));
    }
    api::protobuf::decode_object(bytes)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not a valid Kubernetes protobuf object: {e}")))
}

async fn read_optional_json(req: Request<Incoming>) -> ApiResult<Option<Value>> {
    let (ct, bytes) = read_body(req).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if ct.as_deref().is_some_and(api::protobuf::is_protobuf_content_type) {
        return decode_protobuf(&bytes, JsonKind::Object).map(Some);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not valid JSON: {e}")))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

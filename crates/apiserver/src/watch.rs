//! Watch: a chunked stream of JSON watch events, with kube-apiserver's resourceVersion
//! semantics, bookmarks, watch-list (sendInitialEvents) and 410 Gone as an ERROR event.

use crate::body::{Body, channel_body};
use crate::error::{ApiError, ApiResult};
use crate::object;
use crate::registry::{ListOptions, Registry};
use crate::table::{IncludeObject, Shape, partial_metadata, table};
use api::ResourceType;
use bytes::Bytes;
use http::{HeaderValue, Response, header};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;

pub struct WatchRequest {
    pub rt: &'static ResourceType,
    pub namespace: Option<String>,
    pub filter: ListOptions,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub send_initial_events: Option<bool>,
    pub allow_bookmarks: bool,
    pub timeout: Duration,
    pub bookmark_interval: Duration,
    pub shape: Shape,
    pub include: IncludeObject,
}

/// Annotation on the bookmark that ends the initial events of a watch-list.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

pub async fn serve(registry: Registry, req: WatchRequest) -> ApiResult<Response<Body>> {
    let rv = req.resource_version.clone().unwrap_or_default();
    if let Some(send) = req.send_initial_events {
        if req.resource_version_match.as_deref() != Some("NotOlderThan") {
            return Err(invalid_list_options(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if send && !req.allow_bookmarks {
            return Err(invalid_list_options(
                "allowWatchBookmarks",
                "sendInitialEvents requires setting allowWatchBookmarks to true",
            ));
        }
    }
    let prefix = req.rt.namespace_prefix(req.namespace.as_deref());
    let initial = req.send_initial_events.unwrap_or(rv.is_empty() || rv == "0");

    // Start point: the state at a revision (initial events) or an exact revision.
    let (initial_items, start) = if initial {
        let page = registry
            .list(
                req.rt,
                req.namespace.as_deref(),
                &ListOptions { resource_version: None, limit: 0, ..req.filter.clone() },
            )
            .await?;
        (page.items, page.revision)
    } else {
        let start: u64 = rv.parse().map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv}")))?;
        (Vec::new(), start)
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut response = Response::new(channel_body(rx));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));

    let stream = match registry.store().watch(&prefix, start) {
        Ok(s) => Some(s),
        Err(store::Error::Compacted { requested, oldest }) => {
            let status = ApiError::Expired(format!("too old resource version: {requested} ({oldest})")).status();
            let _ = tx.try_send(line(&json!({"type": "ERROR", "object": status})));
            None
        }
        Err(store::Error::FutureRevision { requested, current }) => {
            return Err(ApiError::Timeout(format!("Too large resource version: {requested}, current: {current}")));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(stream) = stream {
        tokio::spawn(run(req, initial_items, start, stream, tx));
    }
    Ok(response)
}

fn invalid_list_options(field: &str, detail: &str) -> ApiError {
    ApiError::Invalid {
        kind: "ListOptions".into(),
        group: "meta.k8s.io".into(),
        name: String::new(),
        causes: vec![api::FieldError::forbidden(field, detail)],
    }
}

struct Encoder {
    rt: &'static ResourceType,
    shape: Shape,
    include: IncludeObject,
    columns_sent: bool,
}

impl Encoder {
    fn event(&mut self, kind: &str, obj: &Value) -> Bytes {
        let object = match self.shape {
            Shape::Object => obj.clone(),
            Shape::Metadata { version } => partial_metadata(obj, version),
            Shape::Table { version } => {
                let rv = object::resource_version(obj).unwrap_or_default();
                let t = table(
                    self.rt,
                    std::slice::from_ref(obj),
                    json!({"resourceVersion": rv}),
                    version,
                    self.include,
                    !self.columns_sent,
                );
                self.columns_sent = true;
                t
            }
        };
        line(&json!({"type": kind, "object": object}))
    }

    fn bookmark(&self, revision: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({INITIAL_EVENTS_END: "true"});
        }
        let (api_version, kind) = match self.shape {
            Shape::Object => (self.rt.api_version(), self.rt.kind.to_string()),
            Shape::Metadata { version } => (format!("meta.k8s.io/{version}"), "PartialObjectMetadata".into()),
            Shape::Table { version } => (format!("meta.k8s.io/{version}"), "PartialObjectMetadata".into()),
        };
        line(&json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": metadata}}))
    }
}

fn line(v: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(v).expect("JSON values serialise");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

async fn run(
    req: WatchRequest,
    initial_items: Vec<Value>,
    start: u64,
    mut stream: store::WatchStream,
    tx: mpsc::Sender<Bytes>,
) {
    let mut enc = Encoder { rt: req.rt, shape: req.shape.clone(), include: req.include, columns_sent: false };
    for obj in &initial_items {
        if tx.send(enc.event("ADDED", obj)).await.is_err() {
            return;
        }
    }
    if req.send_initial_events == Some(true) && tx.send(enc.bookmark(start, true)).await.is_err() {
        return;
    }
    let deadline = tokio::time::Instant::now() + req.timeout;
    let mut last_revision = start;
    let mut bookmarks =
        tokio::time::interval_at(tokio::time::Instant::now() + req.bookmark_interval, req.bookmark_interval);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return,
            _ = tx.closed() => return,
            _ = bookmarks.tick(), if req.allow_bookmarks => {
                if tx.send(enc.bookmark(last_revision, false)).await.is_err() {
                    return;
                }
            }
            event = stream.next() => {
                let Some(event) = event else { return };
                last_revision = event.revision;
                let Some((kind, obj)) = filter_event(&req, &event) else { continue };
                if tx.send(enc.event(kind, &obj)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Maps a store event through the watch's selectors: an object moving into the selection
/// is ADDED, one moving out is DELETED, as kube-apiserver's cacher does.
fn filter_event(req: &WatchRequest, event: &store::Event) -> Option<(&'static str, Value)> {
    let decode = |bytes: &[u8]| object::from_stored(bytes, event.revision).ok();
    let new = decode(&event.value)?;
    let old = event.prev_value.as_deref().and_then(decode);
    let matches = |o: &Value| req.filter.matches(req.rt, o);
    match event.kind {
        store::EventType::Deleted => matches(old.as_ref().unwrap_or(&new)).then_some(("DELETED", new)),
        store::EventType::Added => matches(&new).then_some(("ADDED", new)),
        store::EventType::Modified => {
            let was = old.as_ref().is_some_and(matches);
            match (was, matches(&new)) {
                (true, true) => Some(("MODIFIED", new)),
                (false, true) => Some(("ADDED", new)),
                (true, false) => Some(("DELETED", new)),
                (false, false) => None,
            }
        }
    }
}

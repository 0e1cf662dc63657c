//! Lists with label and field selectors and limit/continue paging.

use super::{Registry, decode};
use crate::error::{ApiError, ApiResult};
use crate::object;
use api::ResourceType;
use api::selector::{field, label};
use base64::Engine;
use serde_json::{Value, json};

#[derive(Debug, Default, Clone)]
pub struct ListOptions {
    pub label_selector: Option<label::Selector>,
    pub field_selector: Option<field::Selector>,
    /// 0 = no limit.
    pub limit: usize,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
}

impl ListOptions {
    /// Whether `obj` passes both selectors.
    pub fn matches(&self, rt: &ResourceType, obj: &Value) -> bool {
        if let Some(sel) = &self.label_selector
            && !sel.matches(&object::labels(obj))
        {
            return false;
        }
        if let Some(sel) = &self.field_selector {
            let fields = field::selectable_fields(rt, obj);
            return sel.matches_fields(&fields);
        }
        true
    }

    pub fn has_selectors(&self) -> bool {
        self.label_selector.as_ref().is_some_and(|s| !s.is_empty())
            || self.field_selector.as_ref().is_some_and(|s| !s.is_empty())
    }
}

pub struct ListPage {
    pub items: Vec<Value>,
    pub revision: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// Reads this many keys from the store per round while filtering.
const BATCH: usize = 1000;

impl Registry {
    pub async fn list(&self, rt: &ResourceType, ns: Option<&str>, opts: &ListOptions) -> ApiResult<ListPage> {
        if let Some(rv) = opts.resource_version.as_deref().filter(|rv| !rv.is_empty() && *rv != "0") {
            let requested: u64 =
                rv.parse().map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv}")))?;
            let current = self.store().current_revision();
            if requested > current {
                return Err(ApiError::Timeout(format!("Too large resource version: {requested}, current: {current}")));
            }
        }
        let prefix = rt.namespace_prefix(ns);
        let mut start_after = match &opts.continue_token {
            Some(token) => Some(decode_continue(token, &prefix)?),
            None => None,
        };
        let mut items = Vec::new();
        let mut revision = None;
        loop {
            let want = if opts.limit == 0 { 0 } else { BATCH.max(opts.limit) };
            let page = self.store().list(&prefix, start_after.as_deref(), want).await?;
            let first_revision = *revision.get_or_insert(page.revision);
            let n = page.items.len();
            for (i, kv) in page.items.iter().enumerate() {
                let obj = decode(kv)?;
                if !opts.matches(rt, &obj) {
                    continue;
                }
                items.push(obj);
                if opts.limit > 0 && items.len() == opts.limit {
                    let more = i + 1 < n || page.more;
                    let continue_token = more.then(|| encode_continue(first_revision, &kv.key[prefix.len()..]));
                    let remaining = (more && !opts.has_selectors()).then_some((n - i - 1) as u64);
                    // The exact remainder is only known within this batch when the store has no more.
                    let remaining = if page.more { None } else { remaining };
                    return Ok(ListPage { items, revision: first_revision, continue_token, remaining });
                }
            }
            if !page.more || n == 0 {
                return Ok(ListPage { items, revision: first_revision, continue_token: None, remaining: None });
            }
            start_after = page.items.last().map(|kv| kv.key.clone());
        }
    }
}

/// A page of stored objects as JSON bytes, resourceVersion stamped, never parsed.
pub struct RawPage {
    pub items: Vec<Vec<u8>>,
    pub revision: u64,
    pub continue_token: Option<String>,
}

impl Registry {
    /// The fast path of [`Registry::list`] for lists without selectors answered as plain JSON:
    /// stored bytes get their resourceVersion spliced in instead of a parse and a re-encode.
    pub async fn list_raw(&self, rt: &ResourceType, ns: Option<&str>, opts: &ListOptions) -> ApiResult<RawPage> {
        debug_assert!(!opts.has_selectors());
        let prefix = rt.namespace_prefix(ns);
        let start_after = match &opts.continue_token {
            Some(token) => Some(decode_continue(token, &prefix)?),
            None => None,
        };
        if let Some(rv) = opts.resource_version.as_deref().filter(|rv| !rv.is_empty() && *rv != "0") {
            let requested: u64 =
                rv.parse().map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv}")))?;
            let current = self.store().current_revision();
            if requested > current {
                return Err(ApiError::Timeout(format!("Too large resource version: {requested}, current: {current}")));
            }
        }
        let page = self.store().list(&prefix, start_after.as_deref(), opts.limit).await?;
        let mut items = Vec::with_capacity(page.items.len());
        for kv in &page.items {
            match object::stamp_resource_version(&kv.value, kv.mod_revision) {
                Some(bytes) => items.push(bytes),
                None => items.push(serde_json::to_vec(&decode(kv)?).expect("JSON values serialise")),
            }
        }
        let continue_token = (page.more && opts.limit > 0)
            .then(|| page.items.last().map(|kv| encode_continue(page.revision, &kv.key[prefix.len()..])))
            .flatten();
        Ok(RawPage { items, revision: page.revision, continue_token })
    }
}

fn encode_continue(revision: u64, start: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": start});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

/// Returns the full key to list after.
fn decode_continue(token: &str, prefix: &str) -> ApiResult<String> {
    let invalid = |why: &str| ApiError::BadRequest(format!("continue key is not valid: {why}"));
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| invalid("not base64"))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| invalid("not JSON"))?;
    if v.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
        return Err(invalid("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"));
    }
    let start = v.get("start").and_then(Value::as_str).ok_or_else(|| invalid("missing start"))?;
    if start.contains("..") || start.starts_with('/') {
        return Err(invalid("key must not escape the prefix"));
    }
    Ok(format!("{prefix}{start}"))
}

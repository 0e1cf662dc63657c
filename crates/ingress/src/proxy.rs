//! The request path: match the route, apply the Ingress's annotations, pick an endpoint and
//! forward, retrying idempotent requests on the next endpoint when a connection fails.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::annotations::{Annotations, BackendProtocol};
use crate::body::{self, Body, Counted, Guarded};
use crate::config::{Config, Settings};
use crate::metrics::{Metrics, RequestLabels};
use crate::table::Matched;
use crate::upstream::cookie_value;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
type Client = HyperClient<Connector, Body>;

/// nginx's `proxy_next_upstream_tries` default in ingress-nginx.
const TRIES: usize = 3;
/// Idempotent requests with a declared body up to this size are read first, so they can be
/// sent again to the next endpoint (nginx's client_body_buffer_size is 8-16 KiB in memory, the
/// rest on disk).
const REPLAY_LIMIT: u64 = 64 * 1024;

/// What every connection handler shares.
pub struct Shared {
    config: RwLock<Arc<Config>>,
    clients: Mutex<std::collections::HashMap<(BackendProtocol, Duration), Client>>,
    pub metrics: Metrics,
}

/// The connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
}

impl Shared {
    pub fn new(config: Config, metrics: Metrics) -> Shared {
        Shared { config: RwLock::new(Arc::new(config)), clients: Mutex::default(), metrics }
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_config(&self, config: Config) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        self.metrics.config_updates.inc();
    }

    fn client(&self, protocol: BackendProtocol, connect_timeout: Duration) -> Client {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.entry((protocol, connect_timeout)).or_insert_with(|| new_client(protocol, connect_timeout)).clone()
    }
}

fn new_client(protocol: BackendProtocol, connect_timeout: Duration) -> Client {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.enforce_http(false);
    let tls = crate::tls::backend_client_config();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let mut builder = HyperClient::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        // ingress-nginx's upstream-keepalive-connections.
        .pool_max_idle_per_host(320)
        .http2_only(protocol == BackendProtocol::Grpc);
    builder.build(connector)
}

/// Handles one request; never fails (errors become 4xx/5xx answers).
pub async fn handle(shared: Arc<Shared>, conn: Conn, mut req: Request<Incoming>) -> Response<Body> {
    let config = shared.config();
    let seen = Seen {
        shared: &shared,
        conn,
        method: req.method().clone(),
        host: host_of(&req),
        path: req.uri().path().to_owned(),
        started: Instant::now(),
    };
    let host = normalize_host(&seen.host);
    let Some(m) = config.table.lookup(&seen.host, &seen.path) else {
        let resp = text(StatusCode::NOT_FOUND, "default backend - 404\n");
        return seen.finish(None, None, resp);
    };
    let settings: &Settings = &m.route.payload;
    let a = &settings.annotations;

    if let Some(resp) = early_answer(a, &config, conn, &host, &req) {
        return seen.finish(Some(&m), None, resp);
    }
    let upstream = config.upstreams.get(&m.route.backend).cloned();
    let Some(upstream) = upstream.filter(|u| !u.endpoints().is_empty()) else {
        let resp = text(StatusCode::SERVICE_UNAVAILABLE, "503 Service Temporarily Unavailable: no ready endpoints\n");
        return seen.finish(Some(&m), None, resp);
    };

    let client_upgrade = is_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
    let target = target_path(a, &m, req.uri());
    let pinned =
        a.affinity.as_ref().and_then(|aff| cookie(req.headers(), &aff.name)).and_then(|v| upstream.by_cookie(&v));
    let (parts, incoming) = req.into_parts();
    // An idempotent request can go to the next endpoint when its connection fails, if its body
    // can be sent again: none, or a small one read into memory first (nginx buffers bodies).
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let mut replay: Option<Bytes> = None;
    let mut request_body = None;
    if is_idempotent(&parts.method) && incoming.is_end_stream() {
        replay = Some(Bytes::new());
    } else if is_idempotent(&parts.method) && declared.is_some_and(|n| n <= REPLAY_LIMIT) {
        let read = tokio::time::timeout(a.send_timeout, incoming.collect()).await;
        match read {
            Ok(Ok(collected)) => replay = Some(collected.to_bytes()),
            _ => {
                let resp = text(StatusCode::BAD_REQUEST, "400 Bad Request: the request body did not arrive\n");
                return seen.finish(Some(&m), None, resp);
            }
        }
    } else {
        request_body = Some(Guarded::new(incoming, a.body_size_limit, a.send_timeout).boxed_unsync());
    }
    let retryable = replay.is_some();
    let client = shared.client(a.backend_protocol, a.connect_timeout);

    let mut tried: Vec<SocketAddr> = vec![];
    let (endpoint, resp) = loop {
        let next = match (tried.is_empty(), pinned) {
            (true, Some(p)) => Some(p),
            _ => upstream.pick(&tried),
        };
        let Some(endpoint) = next else {
            let resp = text(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n");
            return seen.finish(Some(&m), tried.last().copied(), resp);
        };
        tried.push(endpoint);
        let body = match &replay {
            Some(bytes) if bytes.is_empty() => body::empty(),
            Some(bytes) => body::full(bytes.clone()),
            None => request_body.take().unwrap_or_else(body::empty),
        };
        let out = upstream_request(
            &parts,
            body,
            endpoint,
            &target,
            a.backend_protocol,
            conn,
            &seen.host,
            client_upgrade.is_some(),
        );
        match tokio::time::timeout(a.read_timeout, client.request(out)).await {
            Ok(Ok(resp)) => break (endpoint, resp),
            Ok(Err(e)) => {
                let more = retryable && tried.len() < TRIES.min(upstream.endpoints().len());
                tracing::debug!(%endpoint, error = %e, retry = more, "upstream request failed");
                if more {
                    shared.metrics.upstream_retries.inc();
                    continue;
                }
                let status = match too_large(&e) {
                    true => StatusCode::PAYLOAD_TOO_LARGE,
                    false => StatusCode::BAD_GATEWAY,
                };
                let resp = text(status, &format!("{status}\n"));
                return seen.finish(Some(&m), Some(endpoint), resp);
            }
            Err(_) => {
                let resp = text(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Time-out\n");
                return seen.finish(Some(&m), Some(endpoint), resp);
            }
        }
    };

    let (mut head, upstream_body) = resp.into_parts();
    if head.status == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let mut upstream_resp = Response::from_parts(head.clone(), ());
        let upstream_upgrade = hyper::upgrade::on(&mut upstream_resp);
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((client, upstream)) => {
                    let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        let resp = Response::from_parts(head, body::empty());
        return seen.finish(Some(&m), Some(endpoint), resp);
    }
    strip_hop_by_hop(&mut head.headers, false);
    if let Some(aff) = &a.affinity
        && pinned != Some(endpoint)
    {
        let cookie_path =
            aff.path.clone().unwrap_or_else(|| if m.route.is_regex() { "/".into() } else { m.route.path.clone() });
        let mut c = format!("{}={}; Path={cookie_path}; HttpOnly", aff.name, cookie_value(endpoint));
        if let Some(age) = aff.max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        if let Some(expires) = aff.expires {
            let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(expires as i64);
            c.push_str(&format!("; Expires={}", at.strftime("%a, %d %b %Y %H:%M:%S GMT")));
        }
        if aff.secure {
            c.push_str("; Secure");
        }
        if let Some(s) = &aff.samesite {
            c.push_str(&format!("; SameSite={}", s.as_str()));
        }
        if let Ok(v) = HeaderValue::from_str(&c) {
            head.headers.append(header::SET_COOKIE, v);
        }
    }
    let resp = Response::from_parts(head, Guarded::new(upstream_body, None, a.read_timeout).boxed_unsync());
    seen.finish(Some(&m), Some(endpoint), resp)
}

/// Answers that need no backend: the allow list, redirects and app-root.
fn early_answer(
    a: &Annotations,
    config: &Config,
    conn: Conn,
    host: &str,
    req: &Request<Incoming>,
) -> Option<Response<Body>> {
    if let Some(ranges) = &a.allow_sources
        && !ranges.iter().any(|r| r.contains(conn.remote.ip()))
    {
        return Some(text(StatusCode::FORBIDDEN, "403 Forbidden\n"));
    }
    if let Some(r) = a.redirect() {
        return Some(redirect(StatusCode::from_u16(r.code).unwrap_or(StatusCode::MOVED_PERMANENTLY), &r.url));
    }
    if !conn.tls && (a.force_ssl_redirect || (a.ssl_redirect && config.certs.is_tls_host(host))) {
        let pq = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        return Some(redirect(StatusCode::PERMANENT_REDIRECT, &format!("https://{host}{pq}")));
    }
    if let Some(root) = &a.app_root
        && req.uri().path() == "/"
    {
        return Some(redirect(StatusCode::FOUND, root));
    }
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let (Some(limit), Some(len)) = (a.body_size_limit, declared)
        && len > limit
    {
        return Some(text(StatusCode::PAYLOAD_TOO_LARGE, "413 Request Entity Too Large\n"));
    }
    None
}

/// The path and query the backend gets: the request's, or rewrite-target with the route's
/// capture groups substituted (nginx keeps the query string on a rewrite).
fn target_path(a: &Annotations, m: &Matched<'_, Arc<Settings>>, uri: &Uri) -> String {
    let path = match &a.rewrite_target {
        Some(t) => substitute(t, &m.captures),
        None => uri.path().to_owned(),
    };
    match uri.query() {
        Some(q) if path.contains('?') => format!("{path}&{q}"),
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

/// `$0`..`$9` replaced by the captures (missing groups by nothing).
pub fn substitute(target: &str, captures: &[Option<String>]) -> String {
    let mut out = String::with_capacity(target.len());
    let mut chars = target.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$'
            && let Some(d) = chars.peek().and_then(|d| d.to_digit(10))
        {
            chars.next();
            out.push_str(captures.get(d as usize).and_then(|c| c.as_deref()).unwrap_or(""));
            continue;
        }
        out.push(c);
    }
    if !out.starts_with('/') {
        out.insert(0, '/');
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn upstream_request(
    parts: &http::request::Parts,
    body: Body,
    endpoint: SocketAddr,
    target: &str,
    protocol: BackendProtocol,
    conn: Conn,
    host: &str,
    upgrade: bool,
) -> Request<Body> {
    let scheme = match protocol {
        BackendProtocol::Https => "https",
        BackendProtocol::Http | BackendProtocol::Grpc => "http",
    };
    let uri = format!("{scheme}://{endpoint}{target}").parse::<Uri>().unwrap_or_else(|_| Uri::from_static("/"));
    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers, protocol == BackendProtocol::Grpc);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(u) = parts.headers.get(header::UPGRADE) {
            headers.insert(header::UPGRADE, u.clone());
        }
    }
    if let Ok(h) = HeaderValue::from_str(host) {
        headers.insert(header::HOST, h);
    }
    let client = conn.remote.ip().to_string();
    let xff = match parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {client}"),
        _ => client.clone(),
    };
    let proto = if conn.tls { "https" } else { "http" };
    let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set(&mut headers, "x-forwarded-for", &xff);
    set(&mut headers, "x-real-ip", &client);
    set(&mut headers, "x-forwarded-host", host);
    set(&mut headers, "x-forwarded-port", &conn.local.port().to_string());
    set(&mut headers, "x-forwarded-proto", proto);
    set(&mut headers, "x-forwarded-scheme", proto);
    set(&mut headers, "x-scheme", proto);
    if !headers.contains_key("x-request-id") {
        set(&mut headers, "x-request-id", &format!("{:032x}", rand::random::<u128>()));
    }
    let mut out = Request::new(body);
    *out.method_mut() = parts.method.clone();
    *out.uri_mut() = uri;
    *out.headers_mut() = headers;
    *out.version_mut() = match protocol {
        BackendProtocol::Grpc => Version::HTTP_2,
        _ => Version::HTTP_11,
    };
    out
}

/// Removes the headers that describe one hop, not the message (RFC 9110 7.6.1), including
/// those the Connection header names. gRPC needs `te: trailers` passed on.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    let te_trailers = headers.get(header::TE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for n in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(n);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    if keep_te_trailers && te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
}

fn is_idempotent(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE)
}

fn too_large(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if matches!(s.downcast_ref::<body::BodyError>(), Some(body::BodyError::TooLarge(_))) {
            return true;
        }
        source = s.source();
    }
    false
}

/// The Host header, or the authority of an HTTP/2 request.
fn host_of<B>(req: &Request<B>) -> String {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default()
}

/// Lowercase, without port or trailing dot.
pub fn normalize_host(h: &str) -> String {
    let h = h.trim();
    let bare = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        h.rsplit_once(':').filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit())).map_or(h, |(host, _)| host)
    };
    bare.trim_end_matches('.').to_ascii_lowercase()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

pub fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut r = Response::new(body::full(Bytes::copy_from_slice(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut r = text(status, &format!("{status}\n"));
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// What the access log and the metrics say of a request, gathered as it arrives.
struct Seen<'a> {
    shared: &'a Arc<Shared>,
    conn: Conn,
    method: Method,
    host: String,
    path: String,
    started: Instant,
}

impl Seen<'_> {
    /// Counts the request and writes its access log line once the response body has gone out.
    fn finish(
        self,
        m: Option<&Matched<'_, Arc<Settings>>>,
        upstream: Option<SocketAddr>,
        resp: Response<Body>,
    ) -> Response<Body> {
        let status = resp.status();
        let (namespace, ingress, service, rule_host, rule_path) = match m {
            Some(m) => (
                m.route.ingress.namespace.clone(),
                m.route.ingress.name.clone(),
                m.route.backend.service.clone(),
                m.route.host.clone().unwrap_or_default(),
                m.route.path.clone(),
            ),
            None => Default::default(),
        };
        let labels = RequestLabels {
            namespace,
            ingress,
            service,
            host: rule_host,
            path: rule_path,
            method: self.method.as_str().to_owned(),
            status: status.as_u16().to_string(),
        };
        let shared = self.shared.clone();
        let (conn, started) = (self.conn, self.started);
        let Seen { host, path, method, .. } = self;
        let done = move |bytes: u64| {
            let took = started.elapsed();
            shared.metrics.requests.get_or_create(&labels).inc();
            shared.metrics.request_duration.get_or_create(&labels).observe(took.as_secs_f64());
            tracing::info!(
                target: "ingress::access",
                remote = %conn.remote.ip(),
                %method,
                %host,
                %path,
                status = status.as_u16(),
                bytes,
                seconds = took.as_secs_f64(),
                upstream = upstream.map(|u| u.to_string()).unwrap_or_default(),
                ingress = %format!("{}/{}", labels.namespace, labels.ingress),
                service = %labels.service,
            );
        };
        let (head, b) = resp.into_parts();
        Response::from_parts(head, Counted::new(b, done).boxed_unsync())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_targets_substitute_capture_groups() {
        let caps = vec![Some("/something/new".into()), Some("/".into()), Some("new".into())];
        assert_eq!(substitute("/$2", &caps), "/new");
        assert_eq!(substitute("/app/$2/x$9", &caps), "/app/new/x");
        assert_eq!(substitute("$2", &caps), "/new");
        assert_eq!(substitute("/costs$", &caps), "/costs$");
    }

    #[test]
    fn hosts_lose_port_case_and_trailing_dot() {
        assert_eq!(normalize_host("WWW.Example.com:8080"), "www.example.com");
        assert_eq!(normalize_host("example.com."), "example.com");
        assert_eq!(normalize_host("[::1]:80"), "::1");
        assert_eq!(normalize_host("[fd00::1]"), "fd00::1");
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_with_those_connection_names() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-private"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        let mut grpc = h.clone();
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), vec!["x-kept"]);
        strip_hop_by_hop(&mut grpc, true);
        assert_eq!(grpc.get(header::TE).unwrap(), "trailers");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; INGRESSCOOKIE=abc"));
        assert_eq!(cookie(&h, "INGRESSCOOKIE").as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
    }
}

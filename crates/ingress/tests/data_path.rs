//! The ingress data path on loopback: configurations compiled by the real [`Builder`] from
//! Ingress, Service and EndpointSlice objects, served by the real listener, with backends on
//! 127.0.0.1 (plain HTTP/1.1, TLS, and HTTP/2 cleartext for gRPC). Covers what the lab test
//! does not: body size limits, allow lists, redirects, backend protocols, timeouts and retries.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use ingress::config::{Builder, World};
use ingress::metrics::Metrics;
use ingress::proxy::Shared;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::{Value, json};

#[derive(Default)]
struct Objects {
    ingresses: Vec<Arc<Ingress>>,
    services: HashMap<String, (Arc<Service>, Vec<EndpointSlice>)>,
}

impl World for Objects {
    fn ingresses(&self) -> Vec<Arc<Ingress>> {
        self.ingresses.clone()
    }
    fn service(&self, _ns: &str, name: &str) -> Option<Arc<Service>> {
        self.services.get(name).map(|s| s.0.clone())
    }
    fn slices(&self, _ns: &str, name: &str) -> Vec<EndpointSlice> {
        self.services.get(name).map(|s| s.1.clone()).unwrap_or_default()
    }
    fn secret(&self, _ns: &str, _name: &str) -> Option<Arc<Secret>> {
        None
    }
}

impl Objects {
    /// A Service `name` whose endpoints are `ports` on 127.0.0.1 (EndpointSlices hold IPs and
    /// one port per slice port name, so each backend port gets its own slice).
    fn add_service(&mut self, name: &str, ports: &[u16]) {
        let svc = serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80}]}}))
        .unwrap();
        let slices = ports
            .iter()
            .map(|p| {
                serde_json::from_value(json!({"metadata": {"name": format!("{name}-{p}")}, "addressType": "IPv4",
                    "ports": [{"name": "http", "port": p}], "endpoints": [{"addresses": ["127.0.0.1"]}]}))
                .unwrap()
            })
            .collect();
        self.services.insert(name.to_owned(), (Arc::new(svc), slices));
    }

    fn add_ingress(&mut self, name: &str, annotations: Value, host: &str, service: &str) {
        let ing = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "annotations": annotations,
                "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}
        }))
        .unwrap();
        self.ingresses.push(Arc::new(ing));
    }
}

/// The controller's listener with the configuration built from `objects`.
async fn serve(objects: &Objects) -> SocketAddr {
    let mut builder = Builder::new(ingress::certs::self_signed());
    let (config, notices) = builder.build(objects);
    assert!(notices.is_empty(), "{notices:?}");
    let shared = Arc::new(Shared::new(config, Metrics::new().0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ingress::server::serve(listener, None, shared));
    addr
}

/// A listener on 127.0.0.1 whose every connection is handed to `serve`; returns its port.
async fn accept_each<F, Fut>(serve: F) -> u16
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(tcp));
        }
    });
    port
}

/// A backend answering "<name> <method> <path> <body length>", after `delay`.
async fn http_backend(name: &'static str, delay: Duration) -> u16 {
    accept_each(move |tcp| async move {
        let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| async move {
            let (parts, body) = req.into_parts();
            let len = body.collect().await.map(|b| b.to_bytes().len()).unwrap_or(0);
            tokio::time::sleep(delay).await;
            let xff = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let text = format!("{name} {} {} {len} {xff}", parts.method, parts.uri.path());
            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(text))))
        });
        let _ =
            hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(tcp), svc).await;
    })
    .await
}

/// A TLS backend with a self-signed certificate (backend-protocol: HTTPS).
async fn https_backend() -> u16 {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["backend.local".into()]).unwrap().self_signed(&key).unwrap();
    let certified = ingress::certs::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
    let mut store = ingress::certs::CertStore::new(certified);
    store.mark_tls("backend.local");
    let config = ingress::tls::server_config(Arc::new(std::sync::RwLock::new(Arc::new(store))));
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    accept_each(move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let svc = hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"over tls"))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
        }
    })
    .await
}

/// An HTTP/2 cleartext backend that answers like a gRPC server: a body, then trailers.
async fn grpc_backend() -> u16 {
    accept_each(|tcp| async move {
        let svc = hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
            let te = req.headers().get("te").map(|v| v.to_str().unwrap_or("").to_owned()).unwrap_or_default();
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            trailers.insert("x-te-seen", te.parse().unwrap());
            let frames: Vec<Result<Frame<Bytes>, Infallible>> =
                vec![Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi"))), Ok(Frame::trailers(trailers))];
            let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
            let mut resp = hyper::Response::new(body);
            resp.headers_mut().insert("content-type", "application/grpc".parse().unwrap());
            Ok::<_, Infallible>(resp)
        });
        let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
            .await;
    })
    .await
}

/// A port nothing listens on (connections to it are refused).
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

async fn request(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Answer {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder().method(method).uri(path).header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send.send_request(req.body(Full::new(Bytes::from(body))).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned();
    Answer { status, headers, body }
}

async fn get(addr: SocketAddr, host: &str) -> Answer {
    request(addr, "GET", host, "/x", vec![], &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_shape_what_reaches_the_backend() {
    let plain = http_backend("plain", Duration::ZERO).await;
    let slow = http_backend("slow", Duration::from_secs(3)).await;
    let mut o = Objects::default();
    o.add_service("plain", &[plain]);
    o.add_service("slow", &[slow]);
    o.add_ingress("small", json!({"nginx.ingress.kubernetes.io/proxy-body-size": "1k"}), "small.test", "plain");
    o.add_ingress(
        "closed",
        json!({"nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8, 192.168.0.1"}),
        "closed.test",
        "plain",
    );
    o.add_ingress("open", json!({"portico.dev/allowlist-source-range": "127.0.0.0/8"}), "open.test", "plain");
    o.add_ingress(
        "moved",
        json!({"nginx.ingress.kubernetes.io/permanent-redirect": "https://new.example.com/",
        "nginx.ingress.kubernetes.io/permanent-redirect-code": "308"}),
        "moved.test",
        "plain",
    );
    o.add_ingress("forced", json!({"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}), "forced.test", "plain");
    o.add_ingress(
        "impatient",
        json!({"nginx.ingress.kubernetes.io/proxy-read-timeout": "1"}),
        "impatient.test",
        "slow",
    );
    let addr = serve(&o).await;

    // proxy-body-size: a declared length over the limit, and a chunked body that grows past it.
    let small = request(addr, "POST", "small.test", "/", vec![b'x'; 1000], &[]).await;
    assert_eq!((small.status, small.body.as_str()), (200, "plain POST / 1000 127.0.0.1"));
    assert_eq!(request(addr, "POST", "small.test", "/", vec![b'x'; 2000], &[]).await.status, 413);
    let chunks: Vec<Result<Frame<Bytes>, Infallible>> =
        (0..4).map(|_| Ok(Frame::data(Bytes::from(vec![b'y'; 600])))).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post("/")
        .header("host", "small.test")
        .body(http_body_util::StreamBody::new(futures::stream::iter(chunks)))
        .unwrap();
    assert_eq!(send.send_request(req).await.unwrap().status(), 413, "a chunked body past the limit");

    // whitelist-source-range / allowlist-source-range.
    assert_eq!(get(addr, "closed.test").await.status, 403);
    assert_eq!(get(addr, "open.test").await.status, 200);

    // permanent-redirect with its code; force-ssl-redirect without TLS.
    let moved = get(addr, "moved.test").await;
    assert_eq!(moved.status, 308);
    assert_eq!(moved.headers["location"], "https://new.example.com/");
    let forced = request(addr, "GET", "forced.test", "/a?b=c", vec![], &[]).await;
    assert_eq!((forced.status, forced.headers["location"].to_str().unwrap()), (308, "https://forced.test/a?b=c"));

    // X-Forwarded-For: the client's own list, then the address the controller saw.
    let xff = request(addr, "GET", "open.test", "/", vec![], &[("x-forwarded-for", "203.0.113.7")]).await;
    assert_eq!(xff.body, "plain GET / 0 203.0.113.7, 127.0.0.1");

    // proxy-read-timeout: 504 after about a second, not after the backend's three.
    let t = Instant::now();
    assert_eq!(get(addr, "impatient.test").await.status, 504);
    assert!(t.elapsed() < Duration::from_millis(2500), "{:?}", t.elapsed());

    // Unknown host, no default backend: 404.
    assert_eq!(get(addr, "nowhere.test").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_requests_move_to_the_next_endpoint_when_a_connection_fails() {
    let live = http_backend("live", Duration::ZERO).await;
    let mut o = Objects::default();
    // Two dead endpoints and one live one: round robin starts anywhere.
    o.add_service("mixed", &[dead_port(), dead_port(), live]);
    o.add_ingress("mixed", json!({}), "mixed.test", "mixed");
    let addr = serve(&o).await;
    for _ in 0..9 {
        let a = get(addr, "mixed.test").await;
        assert_eq!((a.status, a.body.as_str()), (200, "live GET /x 0 127.0.0.1"));
    }
    // A PUT with a small body is idempotent: read first, sent again to the next endpoint.
    for _ in 0..6 {
        let a = request(addr, "PUT", "mixed.test", "/doc", b"four".to_vec(), &[]).await;
        assert_eq!((a.status, a.body.as_str()), (200, "live PUT /doc 4 127.0.0.1"));
    }
    // A POST is not repeated: some of them meet a dead endpoint and get 502.
    let mut statuses = vec![];
    for _ in 0..6 {
        statuses.push(request(addr, "POST", "mixed.test", "/", b"data".to_vec(), &[]).await.status);
    }
    assert!(statuses.contains(&502) && statuses.contains(&200), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_protocols_https_and_grpc() {
    let tls = https_backend().await;
    let grpc = grpc_backend().await;
    let mut o = Objects::default();
    o.add_service("tls", &[tls]);
    o.add_service("grpc", &[grpc]);
    o.add_ingress("tls", json!({"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}), "tls.test", "tls");
    o.add_ingress("grpc", json!({"nginx.ingress.kubernetes.io/backend-protocol": "GRPC"}), "grpc.test", "grpc");
    let addr = serve(&o).await;

    let a = get(addr, "tls.test").await;
    assert_eq!((a.status, a.body.as_str()), (200, "over tls"));

    // gRPC: HTTP/2 from the client (prior knowledge) to HTTP/2 at the backend, trailers and
    // `te: trailers` carried through.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post("http://grpc.test/helloworld.Greeter/SayHello")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers reach the client");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-te-seen"], "trailers");
    assert_eq!(&collected.to_bytes()[..], b"\0\0\0\0\x02hi");
}

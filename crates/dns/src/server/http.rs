//! The HTTP side: CoreDNS's `health` (/health, 200 while the process serves), `ready`
//! (/ready, 200 once the zone has its first full copy of the API's objects, 503 before) and
//! `prometheus` (/metrics) endpoints.

use super::Shared;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    Ready,
    Metrics,
}

pub async fn serve(listener: TcpListener, shared: Arc<Shared>, endpoints: Vec<Endpoint>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let (shared, endpoints) = (shared.clone(), endpoints.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let response = respond(&shared, &endpoints, req.uri().path());
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn respond(shared: &Shared, endpoints: &[Endpoint], path: &str) -> Response<Full<Bytes>> {
    let text = |code: StatusCode, body: String| {
        Response::builder()
            .status(code)
            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts")
    };
    match path {
        "/health" if endpoints.contains(&Endpoint::Health) => text(StatusCode::OK, "OK".into()),
        "/ready" if endpoints.contains(&Endpoint::Ready) => {
            if shared.zone.read().map(|z| z.synced).unwrap_or(false) {
                text(StatusCode::OK, "OK".into())
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "kubernetes".into())
            }
        }
        "/metrics" if endpoints.contains(&Endpoint::Metrics) => {
            let (services, endpoints) =
                shared.zone.read().map(|z| (z.service_count(), z.endpoint_count())).unwrap_or((0, 0));
            text(StatusCode::OK, shared.metrics.render(shared.cache.len(), services, endpoints))
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found\n".into()),
    }
}

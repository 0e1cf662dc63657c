//! One HTTP server for what every component exposes besides its own protocol: liveness,
//! readiness and Prometheus metrics, on whatever paths its Kubernetes counterpart uses
//! (CoreDNS: `/health`, `/ready`, `/metrics`; kube-proxy: `/healthz`, `/livez`, `/metrics`).
//! Metrics are a `prometheus-client` registry, so every component writes one exposition format
//! with one library; hot paths keep their own atomics and register a collector that reads them
//! at scrape time.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::Response;
pub use http::StatusCode;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// Whether a component is ready; the error is the reason, sent with a 503.
pub type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
pub enum Route {
    /// 200 while the process serves.
    Live,
    /// 200 when the check passes, 503 with its reason otherwise.
    Ready(Check),
    /// The registry in the OpenMetrics text format.
    Metrics(Arc<Registry>),
    /// A JSON body and its status, for components whose counterpart answers health in JSON
    /// (kube-proxy's `/healthz`).
    Json(Arc<dyn Fn() -> (StatusCode, String) + Send + Sync>),
}

/// Paths and what answers them.
#[derive(Clone, Default)]
pub struct Routes(Vec<(String, Route)>);

impl Routes {
    pub fn new() -> Routes {
        Routes::default()
    }

    pub fn route(mut self, path: impl Into<String>, route: Route) -> Routes {
        self.0.push((path.into(), route));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The status and body for `path` (a pure function of the routes and their checks).
    pub fn respond(&self, path: &str) -> (StatusCode, &'static str, String) {
        const TEXT: &str = "text/plain; charset=utf-8";
        const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        match self.0.iter().find(|(p, _)| p == path).map(|(_, r)| r) {
            Some(Route::Live) => (StatusCode::OK, TEXT, "OK".into()),
            Some(Route::Ready(check)) => match check() {
                Ok(()) => (StatusCode::OK, TEXT, "OK".into()),
                Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, TEXT, reason),
            },
            Some(Route::Json(f)) => {
                let (status, body) = f();
                (status, "application/json", body)
            }
            Some(Route::Metrics(registry)) => {
                let mut body = String::with_capacity(8192);
                match prometheus_client::encoding::text::encode(&mut body, registry) {
                    Ok(()) => (StatusCode::OK, OPENMETRICS, body),
                    Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, TEXT, "metrics encoding failed\n".into()),
                }
            }
            None => (StatusCode::NOT_FOUND, TEXT, "404 page not found\n".into()),
        }
    }
}

/// Serves `routes` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, routes: Routes) {
    let routes = Arc::new(routes);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let routes = routes.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (status, content_type, body) = routes.respond(req.uri().path());
                let response = Response::builder()
                    .status(status)
                    .header("content-type", content_type)
                    .body(Full::new(Bytes::from(body)))
                    .expect("static response parts");
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn routes_answer_liveness_readiness_and_metrics() {
        let mut registry = Registry::default();
        let syncs = Counter::<u64>::default();
        registry.register("sync_proxy_rules", "Syncs", syncs.clone());
        syncs.inc();
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ready.clone();
        let routes = Routes::new()
            .route("/healthz", Route::Live)
            .route(
                "/readyz",
                Route::Ready(Arc::new(move || {
                    if flag.load(std::sync::atomic::Ordering::Relaxed) { Ok(()) } else { Err("not synced".into()) }
                })),
            )
            .route("/metrics", Route::Metrics(Arc::new(registry)));
        assert_eq!(routes.respond("/healthz").0, StatusCode::OK);
        assert_eq!(routes.respond("/readyz").0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(routes.respond("/readyz").2, "not synced");
        ready.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(routes.respond("/readyz").0, StatusCode::OK);
        let (code, _, body) = routes.respond("/metrics");
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("sync_proxy_rules_total 1"), "{body}");
        assert_eq!(routes.respond("/nope").0, StatusCode::NOT_FOUND);
    }
}

//! The HTTPS listener: TLS (rustls, h2 + http/1.1), bearer-token authentication, and the
//! request loop that hands each request to the router.

use crate::body::Body;
use crate::router::Router;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Serves until the task is dropped. Each connection gets its own task; a failed TLS
/// handshake or a broken connection only ends that connection.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, router: Arc<Router>) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            serve_connection(tls, peer, router).await;
        });
    }
}

async fn serve_connection(
    io: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    peer: SocketAddr,
    router: Arc<Router>,
) {
    let service = service_fn(move |req| {
        let router = router.clone();
        async move { Ok::<hyper::Response<Body>, std::convert::Infallible>(router.handle(req).await) }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(1000);
    if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(io), service).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

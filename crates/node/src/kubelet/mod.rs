//! The kubelet API the API server proxies `kubectl logs`, `exec`, `attach`, `cp` and
//! `port-forward` to: HTTPS on the node's `--kubelet-port` (10250), with kubelet's paths:
//!
//! ```text
//! GET /containerLogs/{ns}/{pod}/{container}?follow&previous&tailLines&sinceSeconds&sinceTime&timestamps&limitBytes
//! GET /exec/{ns}/{pod}[/{uid}]/{container}?command=..&stdin&stdout&stderr&tty    WebSocket, v5/v4.channel.k8s.io
//! GET /attach/{ns}/{pod}[/{uid}]/{container}?stdin&stdout&stderr&tty             WebSocket, v5/v4.channel.k8s.io
//! GET /portForward/{ns}/{pod}[/{uid}]     SPDY/3.1 (portforward.k8s.io), plain or tunnelled in a WebSocket
//! ```
//!
//! Authentication: the caller must present a TLS client certificate (with the client-auth
//! usage) that chains to the cluster CA, as kubelet's `--client-ca-file` x509 authentication
//! does. The agent learns that CA over its own authenticated API connection, from the
//! `kube-root-ca.crt` ConfigMap in `kube-system` (the API server publishes it; a real cluster
//! has it in every namespace), so `portico agent` needs no extra flag. The API server holds
//! such a certificate (CN `kube-apiserver-kubelet-client`, as kubeadm names it); a caller
//! without one fails the TLS handshake. The serving certificate is self-signed and kept in
//! `<state>/kubelet/`; kube-apiserver does not verify kubelet serving certificates by default,
//! and neither does Portico's.

mod logs;
mod portforward;
mod spdy;
mod stream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use component::Informer;
use component::pod::LeanPod;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::sandbox::{ContainerState, Sandbox};

pub type Body = BoxBody<Bytes, std::io::Error>;

/// The ConfigMap (in `kube-system`) whose `ca.crt` names the CA that client certificates of
/// callers must chain to.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

/// What the kubelet API serves from.
#[derive(Clone)]
pub struct Kubelet {
    pub sandbox: Sandbox,
    pub pods: Informer<LeanPod>,
}

/// Serves the kubelet API on `addr` until the task is dropped. `dir` keeps the serving
/// certificate; `client_ca_pem` is the CA callers' certificates must chain to.
pub async fn serve(addr: SocketAddr, dir: &Path, client_ca_pem: &[u8], kubelet: Kubelet) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = server_config(dir, addr, client_ca_pem)?;
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("binding the kubelet API on {addr}: {e}"))?;
    tracing::info!(%addr, "kubelet API serving");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let kubelet = Arc::new(kubelet);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "kubelet API: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let kubelet = kubelet.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "kubelet API: refused a caller (TLS handshake)");
                    return;
                }
            };
            let service = service_fn(move |req| {
                let kubelet = kubelet.clone();
                async move { Ok::<_, std::convert::Infallible>(kubelet.handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service);
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%peer, error = %e, "kubelet API connection ended with an error");
            }
        });
    }
}

/// Waits until the cluster publishes its CA (the `kube-root-ca.crt` ConfigMap in kube-system).
pub async fn fetch_client_ca(client: &kube::Client) -> Vec<u8> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), "kube-system");
    let mut delay = Duration::from_millis(200);
    loop {
        match api.get_opt(ROOT_CA_CONFIGMAP).await {
            Ok(Some(cm)) => {
                if let Some(ca) = cm.data.as_ref().and_then(|d| d.get("ca.crt")).filter(|c| !c.is_empty()) {
                    return ca.as_bytes().to_vec();
                }
                tracing::warn!("kube-system/{ROOT_CA_CONFIGMAP} has no ca.crt; the kubelet API waits for it");
            }
            Ok(None) => {
                tracing::info!("kube-system/{ROOT_CA_CONFIGMAP} is not there yet; the kubelet API waits for it")
            }
            Err(e) => tracing::warn!(error = %e, "reading kube-system/{ROOT_CA_CONFIGMAP} failed"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// TLS with a self-signed serving certificate (made once, kept in `dir`) and required client
/// certificates chaining to `client_ca_pem`. HTTP/1.1 only: the streaming endpoints upgrade.
fn server_config(dir: &Path, addr: SocketAddr, client_ca_pem: &[u8]) -> Result<Arc<rustls::ServerConfig>, String> {
    let (cert_path, key_path) = (dir.join("kubelet.crt"), dir.join("kubelet.key"));
    if !cert_path.exists() || !key_path.exists() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut names = vec!["localhost".to_string()];
        if !addr.ip().is_unspecified() {
            names.push(addr.ip().to_string());
        }
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        if !hostname.trim().is_empty() {
            names.push(hostname.trim().to_lowercase());
        }
        let ck =
            rcgen::generate_simple_self_signed(names).map_err(|e| format!("making the kubelet certificate: {e}"))?;
        write_private(&key_path, ck.signing_key.serialize_pem().as_bytes())?;
        std::fs::write(&cert_path, ck.cert.pem()).map_err(|e| format!("writing {}: {e}", cert_path.display()))?;
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| format!("reading {}: {e}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| format!("reading {}: {e}", key_path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(client_ca_pem) {
        let ca = ca.map_err(|e| format!("the cluster CA: {e}"))?;
        roots.add(ca).map_err(|e| format!("the cluster CA: {e}"))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .map_err(|e| format!("client certificate verifier: {e}"))?;
    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("kubelet serving certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    f.write_all(contents).map_err(|e| format!("writing {}: {e}", path.display()))
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A plain-text error, as kubelet answers one.
pub fn text(code: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut resp = Response::new(full(msg.into()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// The query of a request as (name, value) pairs, repeated names kept.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect()
}

/// A path segment, percent-decoded (`+` stays a plus in paths).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

pub fn flag(q: &[(String, String)], name: &str) -> bool {
    q.iter().any(|(k, v)| k == name && matches!(v.as_str(), "1" | "true" | "True" | "TRUE"))
}

pub fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

impl Kubelet {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let parts: Vec<String> = path.trim_matches('/').split('/').map(percent_decode).collect();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        tracing::debug!(method = %req.method(), %path, "kubelet API request");
        match parts.as_slice() {
            ["healthz"] => text(StatusCode::OK, "ok"),
            ["containerLogs", ns, pod, container] => logs::serve(self, ns, pod, container, req).await,
            ["exec", ns, pod, container] | ["exec", ns, pod, _, container] => {
                stream::serve(self, stream::Kind::Exec, ns, pod, container, req).await
            }
            ["attach", ns, pod, container] | ["attach", ns, pod, _, container] => {
                stream::serve(self, stream::Kind::Attach, ns, pod, container, req).await
            }
            ["portForward", ns, pod] | ["portForward", ns, pod, _] => portforward::serve(self, ns, pod, req).await,
            _ => text(StatusCode::NOT_FOUND, "404 page not found"),
        }
    }

    /// The pod's uid, or a 404 answer.
    fn pod_uid(&self, ns: &str, pod: &str) -> Result<String, Box<Response<Body>>> {
        self.pods
            .get(ns, pod)
            .and_then(|p| p.uid.as_deref().map(str::to_owned))
            .ok_or_else(|| Box::new(text(StatusCode::NOT_FOUND, format!("pod {ns}/{pod} not found"))))
    }

    /// The runs of one container, oldest first: (restart count, state).
    fn runs(&self, uid: &str, container: &str) -> Vec<(u32, ContainerState)> {
        let prefix = format!("{uid}_{container}_");
        let mut runs: Vec<(u32, ContainerState)> = self
            .sandbox
            .list()
            .into_iter()
            .filter_map(|st| {
                let n = st.id.strip_prefix(&prefix)?.parse::<u32>().ok()?;
                Some((n, st))
            })
            .collect();
        runs.sort_by_key(|(n, _)| *n);
        runs
    }

    /// The current run of a container (or the previous one), or kubelet's error answer.
    fn container(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<ContainerState, Box<Response<Body>>> {
        let uid = self.pod_uid(ns, pod)?;
        let mut runs = self.runs(&uid, container);
        let Some((current, last)) = runs.pop() else {
            return Err(Box::new(text(
                StatusCode::BAD_REQUEST,
                format!("container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"),
            )));
        };
        if !previous {
            return Ok(last);
        }
        match runs.into_iter().rev().find(|(n, _)| *n < current) {
            Some((_, st)) => Ok(st),
            None => Err(Box::new(text(
                StatusCode::BAD_REQUEST,
                format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"),
            ))),
        }
    }

    fn state_path(&self, id: &str) -> PathBuf {
        self.sandbox.state_dir().join(id)
    }
}

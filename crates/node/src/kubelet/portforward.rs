//! `portForward/{ns}/{pod}`: kubectl's port-forward protocol (`portforward.k8s.io`), SPDY/3.1
//! streams in pairs per forwarded connection (an `error` and a `data` stream sharing a
//! `requestID`, with the pod's `port` in their headers). kubectl 1.32 tunnels the SPDY bytes in
//! a WebSocket (subprotocol `SPDY/3.1+portforward.k8s.io`) and falls back to a plain SPDY
//! upgrade; both are served. Each data stream is joined to a TCP connection to
//! `127.0.0.1:<port>` made inside the pod's network namespace.

use std::collections::HashMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::spdy::{self, FLAG_FIN, Frame};
use super::stream::{is_websocket, offered_protocols, switching};
use super::{Body, Kubelet, full, text};

pub const PROTOCOL: &str = "portforward.k8s.io";
pub const TUNNELED: &str = "SPDY/3.1+portforward.k8s.io";

pub async fn serve(k: &Kubelet, ns: &str, pod: &str, mut req: Request<Incoming>) -> Response<Body> {
    let uid = match k.pod_uid(ns, pod) {
        Ok(u) => u,
        Err(resp) => return *resp,
    };
    // The pod's network namespace, held open from now on: that of a running container.
    let prefix = format!("{uid}_");
    let netns = k
        .sandbox
        .list()
        .into_iter()
        .filter(|st| st.id.starts_with(&prefix) && st.is_running())
        .find_map(|st| File::open(format!("/proc/{}/ns/net", st.pid?)).ok());
    let Some(netns) = netns else {
        return text(StatusCode::BAD_REQUEST, format!("pod {ns}/{pod} has no running container to forward to"));
    };
    let netns = Arc::new(netns);
    let label = format!("{ns}/{pod}");

    if is_websocket(&req) {
        if !offered_protocols(req.headers()).iter().any(|p| p == TUNNELED) {
            return text(
                StatusCode::BAD_REQUEST,
                format!("port-forward over WebSocket needs the {TUNNELED} subprotocol"),
            );
        }
        let resp = switching(&req, TUNNELED);
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            tracing::info!(pod = %label, transport = "websocket", "port-forward session");
            let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            let (mut sink, mut source) = ws.split();
            let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(64);
            let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
            tokio::spawn(async move {
                while let Some(Ok(m)) = source.next().await {
                    match m {
                        Message::Binary(b) if in_tx.send(b.to_vec()).await.is_err() => return,
                        Message::Close(_) => return,
                        _ => {}
                    }
                }
            });
            tokio::spawn(async move {
                while let Some(v) = out_rx.recv().await {
                    if sink.send(Message::Binary(v.into())).await.is_err() {
                        return;
                    }
                }
                let _ = sink.close().await;
            });
            session(in_rx, out_tx, netns, label).await;
        });
        return resp;
    }

    let spdy_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"));
    let offers_portforward = req
        .headers()
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim() == PROTOCOL);
    if !spdy_upgrade || !offers_portforward {
        return text(
            StatusCode::BAD_REQUEST,
            format!("port-forward needs an upgrade to SPDY/3.1 ({PROTOCOL}) or a WebSocket"),
        );
    }
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    resp.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    resp.headers_mut().insert("x-stream-protocol-version", HeaderValue::from_static(PROTOCOL));
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        tracing::info!(pod = %label, transport = "spdy", "port-forward session");
        let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
        let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(64);
        let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if in_tx.send(buf[..n].to_vec()).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        tokio::spawn(async move {
            while let Some(v) = out_rx.recv().await {
                if w.write_all(&v).await.is_err() {
                    return;
                }
            }
            let _ = w.shutdown().await;
        });
        session(in_rx, out_tx, netns, label).await;
    });
    resp
}

/// One SPDY session: streams come in pairs; each data stream becomes a forwarded connection.
async fn session(mut input: mpsc::Receiver<Vec<u8>>, out: mpsc::Sender<Vec<u8>>, netns: Arc<File>, pod: String) {
    let mut buf = Vec::new();
    let mut headers = spdy::Headers::default();
    let mut error_streams: HashMap<String, u32> = HashMap::new();
    let mut to_pod: HashMap<u32, mpsc::Sender<Option<Vec<u8>>>> = HashMap::new();
    while let Some(chunk) = input.recv().await {
        buf.extend_from_slice(&chunk);
        loop {
            let frame = match spdy::parse(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(%pod, error = %e, "port-forward: bad SPDY input; closing");
                    return;
                }
            };
            match frame {
                Frame::Control { kind: spdy::SYN_STREAM, data, .. } if data.len() >= 10 => {
                    let Some(id) = spdy::stream_id(&data) else { continue };
                    let h = match headers.decode(&data[10..]) {
                        Ok(h) => h,
                        Err(e) => {
                            tracing::info!(%pod, error = %e, "port-forward: bad SPDY headers; closing");
                            return;
                        }
                    };
                    let Ok(block) = headers.encode(&[]) else { return };
                    let mut reply = id.to_be_bytes().to_vec();
                    reply.extend_from_slice(&block);
                    if out.send(spdy::control(spdy::SYN_REPLY, 0, &reply)).await.is_err() {
                        return;
                    }
                    let request = h.get("requestid").cloned().unwrap_or_default();
                    match h.get("streamtype").map(String::as_str) {
                        Some("error") => {
                            error_streams.insert(request, id);
                        }
                        Some("data") => {
                            let error_stream = error_streams.remove(&request);
                            let port = h.get("port").and_then(|p| p.parse::<u16>().ok()).filter(|p| *p > 0);
                            let (tx, rx) = mpsc::channel(64);
                            to_pod.insert(id, tx);
                            tokio::spawn(forward(netns.clone(), pod.clone(), port, id, error_stream, rx, out.clone()));
                        }
                        _ => {}
                    }
                }
                Frame::Control { kind: spdy::PING, data, .. } => {
                    if out.send(spdy::control(spdy::PING, 0, &data)).await.is_err() {
                        return;
                    }
                }
                Frame::Control { kind: spdy::RST_STREAM, data, .. } => {
                    if let Some(id) = spdy::stream_id(&data) {
                        to_pod.remove(&id);
                    }
                }
                Frame::Control { kind: spdy::GOAWAY, .. } => return,
                Frame::Control { .. } => {}
                Frame::Data { stream, flags, data } => {
                    if let Some(tx) = to_pod.get(&stream) {
                        if !data.is_empty() && tx.send(Some(data)).await.is_err() {
                            to_pod.remove(&stream);
                            continue;
                        }
                        if flags & FLAG_FIN != 0 {
                            let _ = tx.send(None).await;
                            to_pod.remove(&stream);
                        }
                    }
                }
            }
        }
    }
}

/// A TCP connection to `127.0.0.1:port` made from inside the pod's network namespace (on a
/// short-lived thread: setns changes only the calling thread).
fn connect_in(netns: Arc<File>, port: u16) -> std::io::Result<TcpStream> {
    crate::net::netns::run_in(&netns, || {
        TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_secs(5))
    })
}

async fn forward(
    netns: Arc<File>,
    pod: String,
    port: Option<u16>,
    id: u32,
    error_stream: Option<u32>,
    mut from_client: mpsc::Receiver<Option<Vec<u8>>>,
    out: mpsc::Sender<Vec<u8>>,
) {
    let fail = |msg: String| {
        let out = out.clone();
        async move {
            tracing::info!(message = %msg, "port-forward failed");
            if let Some(e) = error_stream {
                let _ = out.send(spdy::data(e, 0, msg.as_bytes())).await;
                let _ = out.send(spdy::data(e, FLAG_FIN, &[])).await;
            }
            let _ = out.send(spdy::data(id, FLAG_FIN, &[])).await;
        }
    };
    let Some(port) = port else {
        return fail("invalid port in the port-forward request".into()).await;
    };
    let conn = tokio::task::spawn_blocking({
        let netns = netns.clone();
        move || connect_in(netns, port)
    })
    .await;
    let tcp = match conn {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return fail(format!(
                "error forwarding port {port} to pod {pod}: failed to connect to localhost:{port} inside the pod's network namespace: {e}"
            ))
            .await;
        }
        Err(e) => return fail(format!("error forwarding port {port} to pod {pod}: {e}")).await,
    };
    let tcp = match tcp.set_nonblocking(true).and_then(|()| tokio::net::TcpStream::from_std(tcp)) {
        Ok(t) => t,
        Err(e) => return fail(format!("error forwarding port {port} to pod {pod}: {e}")).await,
    };
    let (mut r, mut w) = tcp.into_split();
    tokio::spawn(async move {
        while let Some(Some(b)) = from_client.recv().await {
            if w.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    });
    let mut buf = vec![0u8; spdy::MAX_DATA];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out.send(spdy::data(id, 0, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = out.send(spdy::data(id, FLAG_FIN, &[])).await;
    if let Some(e) = error_stream {
        let _ = out.send(spdy::data(e, FLAG_FIN, &[])).await;
    }
}

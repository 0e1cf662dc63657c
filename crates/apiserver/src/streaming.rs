//! The pods' streaming subresources, `log`, `exec`, `attach` and `portforward`: proxied to the
//! kubelet API of the pod's node (its InternalIP and `status.daemonEndpoints` port), as
//! kube-apiserver does. `log` is a streamed GET; the others are connection upgrades
//! (WebSocket, or SPDY) passed through byte for byte once the kubelet has switched protocols,
//! so kubectl and the agent speak the streaming protocol end to end. The API server
//! authenticates to kubelets with its kubelet client certificate (see `pki`).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::body::{Body, channel_body, json_response};
use crate::error::{ApiError, ApiResult};
use crate::registry::Registry;
use crate::request::ResourceRequest;

/// The subresources of pods served here.
pub const SUBRESOURCES: &[&str] = &["log", "exec", "attach", "portforward"];

pub struct Kubelets {
    pub tls: Arc<rustls::ClientConfig>,
}

/// Headers that belong to one hop (or to the caller's credentials) and are not passed on.
const HOP: &[&str] = &["authorization", "host", "content-length", "transfer-encoding", "keep-alive", "te", "trailer"];

pub fn is_streaming(r: &ResourceRequest) -> bool {
    r.group.is_empty()
        && r.resource == "pods"
        && r.name.is_some()
        && r.subresource.as_deref().is_some_and(|s| SUBRESOURCES.contains(&s))
}

/// Serves one streaming subresource request.
pub async fn serve(
    kubelets: &Kubelets,
    registry: &Registry,
    r: &ResourceRequest,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let sub = r.subresource.as_deref().unwrap_or_default();
    let ns = r.namespace.as_deref().ok_or(ApiError::NotFoundPath)?;
    let name = r.name.as_deref().unwrap_or_default();
    let method_ok = match sub {
        "log" => matches!(*req.method(), http::Method::GET | http::Method::HEAD),
        _ => matches!(*req.method(), http::Method::GET | http::Method::POST),
    };
    if !method_ok {
        return Err(ApiError::MethodNotSupported { resource: format!("pods/{sub}"), verb: req.method().to_string() });
    }
    let pods = api::resources::lookup("", "v1", "pods").expect("pods are served");
    let pod = registry.get(pods, Some(ns), name).await?;
    let query: Vec<(String, String)> = url_pairs(req.uri().query());
    let container = query.iter().find(|(k, _)| k == "container").map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    let node = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()).map(str::to_owned);

    let kubelet_path = match sub {
        "portforward" => format!("/portForward/{ns}/{name}"),
        _ => {
            let container = pick_container(&pod, name, container.as_deref())?;
            let what = match sub {
                "log" => "containerLogs",
                "exec" => "exec",
                _ => "attach",
            };
            format!("/{what}/{ns}/{name}/{container}")
        }
    };
    let Some(node) = node else {
        return Err(ApiError::BadRequest(format!("pod {name} does not have a host assigned")));
    };
    let nodes = api::resources::lookup("", "v1", "nodes").expect("nodes are served");
    let node_obj = registry.get(nodes, None, &node).await?;
    let (ip, port) = kubelet_address(&node_obj)
        .ok_or_else(|| ApiError::BadRequest(format!("node {node} has no InternalIP and kubelet port to reach")))?;
    let rest: Vec<String> =
        query.iter().filter(|(k, _)| k != "container").map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    let target = if rest.is_empty() { kubelet_path } else { format!("{kubelet_path}?{}", rest.join("&")) };
    proxy(kubelets, &format!("{ip}:{port}"), &target, sub == "log", req).await
}

/// The container a request is for: the named one (which the pod must have), or the pod's only
/// container; as kube-apiserver words it otherwise.
fn pick_container(pod: &Value, name: &str, wanted: Option<&str>) -> ApiResult<String> {
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    let (containers, init, ephemeral) = (names("containers"), names("initContainers"), names("ephemeralContainers"));
    match wanted {
        Some(c) => {
            if containers.iter().chain(&init).chain(&ephemeral).any(|n| n == c) {
                Ok(c.to_owned())
            } else {
                Err(ApiError::BadRequest(format!("container {c} is not valid for pod {name}")))
            }
        }
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => {
            let mut msg =
                format!("a container name must be specified for pod {name}, choose one of: [{}]", containers.join(" "));
            if !init.is_empty() {
                msg.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
            }
            Err(ApiError::BadRequest(msg))
        }
    }
}

fn kubelet_address(node: &Value) -> Option<(String, u16)> {
    let ip = node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64().filter(|p| *p > 0)? as u16;
    let host = if ip.contains(':') { format!("[{ip}]") } else { ip.to_owned() };
    Some((host, port))
}

async fn connect(kubelets: &Kubelets, addr: &str) -> ApiResult<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let unavailable = |e: String| ApiError::Internal(format!("error dialing backend: {e}"));
    let tcp = tokio::time::timeout(std::time::Duration::from_secs(10), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| unavailable(format!("dial tcp {addr}: i/o timeout")))?
        .map_err(|e| unavailable(format!("dial tcp {addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let host = addr.rsplit_once(':').map(|(h, _)| h.trim_matches(['[', ']'])).unwrap_or(addr);
    let server_name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| unavailable(format!("kubelet address {host}: {e}")))?;
    tokio_rustls::TlsConnector::from(kubelets.tls.clone())
        .connect(server_name, tcp)
        .await
        .map_err(|e| unavailable(format!("TLS with the kubelet at {addr}: {e}")))
}

/// Sends the request on to the kubelet and hands its answer back: a streamed body, or after a
/// 101 both upgraded connections joined.
async fn proxy(
    kubelets: &Kubelets,
    addr: &str,
    target: &str,
    is_log: bool,
    mut req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let tls = connect(kubelets, addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tls))
        .await
        .map_err(|e| ApiError::Internal(format!("kubelet connection: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "kubelet connection ended");
        }
    });
    let mut out = Request::builder().method(req.method().clone()).uri(target);
    for (k, v) in req.headers() {
        if !HOP.contains(&k.as_str()) {
            out = out.header(k, v);
        }
    }
    out = out.header(header::HOST, addr);
    let out = out.body(Empty::<Bytes>::new()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let upgrading = req.headers().contains_key(header::UPGRADE);
    let mut resp = sender.send_request(out).await.map_err(|e| ApiError::Internal(format!("kubelet request: {e}")))?;
    let status = resp.status();

    if status == StatusCode::SWITCHING_PROTOCOLS && upgrading {
        let mut answer = Response::new(crate::body::full(Bytes::new()));
        *answer.status_mut() = status;
        for (k, v) in resp.headers() {
            answer.headers_mut().append(k, v.clone());
        }
        let client_side = hyper::upgrade::on(&mut req);
        let kubelet_side = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (c, k) = match (client_side.await, kubelet_side.await) {
                (Ok(c), Ok(k)) => (c, k),
                (c, k) => {
                    tracing::warn!(client = ?c.err(), kubelet = ?k.err(), "streaming upgrade failed");
                    return;
                }
            };
            let (mut c, mut k) = (TokioIo::new(c), TokioIo::new(k));
            if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut k).await {
                tracing::debug!(error = %e, "streaming connection ended");
            }
        });
        return Ok(answer);
    }
    if !status.is_success() {
        // The kubelet's plain-text reason, as a Status with the kubelet's code.
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let message = String::from_utf8_lossy(&body).trim().to_owned();
        let reason = match status.as_u16() {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            _ => "InternalError",
        };
        return Ok(json_response(
            status.as_u16(),
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": status.as_u16()}),
        ));
    }
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let mut body = resp.into_body();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data()
                && tx.send(data).await.is_err()
            {
                return;
            }
        }
    });
    let mut answer = Response::new(channel_body(rx));
    *answer.status_mut() = status;
    let ct = if is_log {
        HeaderValue::from_static("text/plain")
    } else {
        content_type.unwrap_or(HeaderValue::from_static("text/plain"))
    };
    answer.headers_mut().insert(header::CONTENT_TYPE, ct);
    Ok(answer)
}

/// The query's (name, value) pairs, decoded, repeated names kept (exec's `command`).
fn url_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect()
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, &QUERY_VALUE).to_string()
}

/// What stays literal in a forwarded query value: RFC 3986's unreserved characters.
const QUERY_VALUE: percent_encoding::AsciiSet =
    percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_is_named_or_the_only_one() {
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let one = json!({"spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i"}]}});
        assert_eq!(pick_container(&one, "p", None).unwrap(), "a");
        assert_eq!(pick_container(&one, "p", Some("i")).unwrap(), "i");
        assert_eq!(pick_container(&two, "p", Some("b")).unwrap(), "b");
        let e = pick_container(&two, "p", None).unwrap_err();
        assert_eq!(e.to_string(), "a container name must be specified for pod p, choose one of: [a b]");
        let e = pick_container(&two, "p", Some("c")).unwrap_err();
        assert_eq!((e.code(), e.to_string()), (400, "container c is not valid for pod p".to_owned()));
    }

    #[test]
    fn queries_round_trip_with_repeated_commands() {
        let q = url_pairs(Some("command=sh&command=-c&command=echo+a%20b&stdin=true"));
        assert_eq!(q[2], ("command".to_owned(), "echo a b".to_owned()));
        assert_eq!(encode("echo a&b"), "echo%20a%26b");
        // Malformed escapes (a multi-byte character after `%`) decode leniently, never panic.
        assert_eq!(
            url_pairs(Some("command=%\u{e9}x&stdin=%zz")),
            [("command".into(), "%\u{e9}x".into()), ("stdin".into(), "%zz".into())]
        );
        let node = json!({"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
        assert_eq!(kubelet_address(&node), Some(("192.0.2.1".to_owned(), 10250)));
    }
}

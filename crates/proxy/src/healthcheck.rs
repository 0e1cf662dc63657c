//! The health check servers of `externalTrafficPolicy: Local` Services: on each
//! `healthCheckNodePort`, every node answers 200 while it has a ready local endpoint and 503
//! otherwise, with kube-proxy's JSON body, so an external load balancer sends traffic only to
//! nodes that can serve it locally.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::model::ServiceKey;

/// What one health check port reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub service: ServiceKey,
    pub local_endpoints: usize,
}

impl Report {
    /// Status code and body, as kube-proxy's `hcHandler` writes them.
    pub fn response(&self) -> (u16, String) {
        let body = serde_json::json!({
            "service": {"namespace": self.service.namespace, "name": self.service.name},
            "localEndpoints": self.local_endpoints,
            "serviceProxyHealthy": true,
        });
        (if self.local_endpoints > 0 { 200 } else { 503 }, body.to_string())
    }
}

struct Server {
    report: Arc<Mutex<Report>>,
    task: JoinHandle<()>,
}

/// The running health check servers, by port.
pub struct HealthChecks {
    bind: IpAddr,
    servers: HashMap<u16, Server>,
}

impl HealthChecks {
    pub fn new(bind: IpAddr) -> HealthChecks {
        HealthChecks { bind, servers: HashMap::new() }
    }

    /// Makes the servers match `wanted` (port -> report): new ports start listening, gone
    /// ports stop, the others change what they report.
    pub async fn set(&mut self, wanted: HashMap<u16, Report>) {
        self.servers.retain(|port, s| {
            let keep = wanted.contains_key(port);
            if !keep {
                s.task.abort();
            }
            keep
        });
        for (port, report) in wanted {
            if let Some(s) = self.servers.get(&port) {
                *s.report.lock().unwrap_or_else(|e| e.into_inner()) = report;
                continue;
            }
            match TcpListener::bind(SocketAddr::new(self.bind, port)).await {
                Ok(listener) => {
                    let report = Arc::new(Mutex::new(report));
                    let task = tokio::spawn(serve(listener, report.clone()));
                    self.servers.insert(port, Server { report, task });
                }
                Err(e) => tracing::warn!(port, error = %e, "cannot listen for a Service's health checks"),
            }
        }
    }
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        for s in self.servers.values() {
            s.task.abort();
        }
    }
}

async fn serve(listener: TcpListener, report: Arc<Mutex<Report>>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else { continue };
        let report = report.clone();
        tokio::spawn(async move {
            // Read the request head (any path answers, as kube-proxy's does); a client that
            // sends nothing for 5 s or more than 8 KiB gets nothing.
            let mut buf = vec![0u8; 8192];
            let mut len = 0;
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while len < buf.len() {
                    let n = conn.read(&mut buf[len..]).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    len += n;
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        return Some(());
                    }
                }
                None
            });
            if !matches!(read.await, Ok(Some(()))) {
                return;
            }
            let current = report.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let (code, body) = current.response();
            let reason = if code == 200 { "OK" } else { "Service Unavailable" };
            let local = current.local_endpoints;
            let head = format!(
                "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n\
                 X-Load-Balancing-Endpoint-Weight: {local}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_503_without_local_endpoints() {
        let mut r = Report { service: ServiceKey::new("default", "web"), local_endpoints: 0 };
        let (code, body) = r.response();
        assert_eq!(code, 503);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["service"]["name"], "web");
        assert_eq!(v["localEndpoints"], 0);
        r.local_endpoints = 2;
        assert_eq!(r.response().0, 200);
    }

    #[tokio::test]
    async fn serves_and_follows_changes() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut hc = HealthChecks::new("127.0.0.1".parse().unwrap());
        let report = |n| Report { service: ServiceKey::new("default", "web"), local_endpoints: n };
        hc.set(HashMap::from([(port, report(1))])).await;
        let get = || async {
            let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).await.unwrap();
            out
        };
        let out = get().await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.contains("\"localEndpoints\":1"), "{out}");
        hc.set(HashMap::from([(port, report(0))])).await;
        assert!(get().await.starts_with("HTTP/1.1 503"));
        hc.set(HashMap::new()).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err(), "port closed");
    }
}

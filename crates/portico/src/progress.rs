//! What `portico up` tells a newcomer while it starts: each component as it becomes ready, then
//! one line when all are, with the next command to type. A component that fails stops the
//! process with its name and reason (the supervisor's job); one that is merely slow is named.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use component::Informers;
use k8s_openapi::api::core::v1::Node;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a component shows it is ready.
pub enum Ready {
    /// Its Node is Ready in the API.
    Node(String),
    /// `GET /healthz` (or another path) answers 200.
    Http(SocketAddr, &'static str),
}

pub struct Component {
    pub name: String,
    pub ready: Ready,
    pub detail: String,
}

/// `0.0.0.0:port` is asked on loopback.
pub fn local(addr: SocketAddr) -> SocketAddr {
    match addr.ip().is_unspecified() {
        true => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        false => addr,
    }
}

async fn http_ok(addr: SocketAddr, path: &str) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        Some(head.ends_with(b"200"))
    };
    tokio::time::timeout(Duration::from_secs(1), attempt).await.ok().flatten().unwrap_or(false)
}

fn node_ready(informers: &Informers, name: &str) -> bool {
    informers.get::<Node>().get("", name).is_some_and(|n| is_ready(&n))
}

/// The Node's Ready condition is True.
pub fn is_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Prints each component when ready, then the summary; names the slow ones after a minute.
pub async fn report(informers: Informers, mut pending: Vec<Component>, kubeconfig: PathBuf) {
    let started = Instant::now();
    let mut warned = false;
    while !pending.is_empty() {
        let mut still = vec![];
        for c in pending {
            let ok = match &c.ready {
                Ready::Node(name) => node_ready(&informers, name),
                Ready::Http(addr, path) => http_ok(*addr, path).await,
            };
            match ok {
                true => println!("  ready  {:<20} {}", c.name, c.detail),
                false => still.push(c),
            }
        }
        pending = still;
        if !warned && !pending.is_empty() && started.elapsed() > Duration::from_secs(60) {
            let names: Vec<&str> = pending.iter().map(|c| c.name.as_str()).collect();
            println!("  still waiting for: {} (see the log for why)", names.join(", "));
            warned = true;
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    println!(
        "Portico is up ({:.1} s). Next: export KUBECONFIG={} && kubectl get nodes,svc -A",
        started.elapsed().as_secs_f64(),
        kubeconfig.display()
    );
}

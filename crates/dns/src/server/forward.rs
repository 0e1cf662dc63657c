//! Forwarding to upstream resolvers (CoreDNS's forward plugin, reduced): a fresh socket and a
//! random ID per query, answers checked against the question, TCP retry on a truncated
//! answer, failover across upstreams, and a bound on queries in flight (REFUSED past it, as
//! CoreDNS's `max_concurrent`). Loops are refused twice over: an upstream that is this
//! server's own address is dropped at start, and the first forwarded query sends each
//! upstream a random probe name; if that name ever comes back to this server, the upstream
//! forwards to us and is no longer used (CoreDNS's loop plugin stops the process instead).

use super::metrics::Metrics;
use crate::wire::{self, Name, rtype};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream to forward to")]
    NoUpstream,
    #[error("too many queries in flight")]
    Overloaded,
    #[error("every upstream failed")]
    AllFailed,
}

struct Upstream {
    addr: SocketAddr,
    looped: AtomicBool,
}

pub struct Forwarder {
    upstreams: Vec<Upstream>,
    in_flight: Semaphore,
    timeout: Duration,
    /// Probe names to the upstream each was sent to; set once, read lock-free on every query.
    probes: OnceLock<HashMap<Name, usize>>,
    probed: AtomicBool,
}

/// Whether `upstream` is this server itself (same port, and an address it listens on).
pub fn is_self(upstream: SocketAddr, listen: SocketAddr) -> bool {
    upstream.port() == listen.port()
        && (upstream.ip() == listen.ip()
            || listen.ip().is_unspecified() && (upstream.ip().is_loopback() || upstream.ip().is_unspecified()))
}

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>, listen: SocketAddr, max_concurrent: usize, timeout: Duration) -> Forwarder {
        let upstreams = upstreams
            .into_iter()
            .filter(|u| {
                let me = is_self(*u, listen);
                if me {
                    tracing::error!(upstream = %u, "upstream is this server's own address: not forwarding to it (loop)");
                }
                !me
            })
            .map(|addr| Upstream { addr, looped: AtomicBool::new(false) })
            .collect();
        Forwarder {
            upstreams,
            in_flight: Semaphore::new(max_concurrent.clamp(1, Semaphore::MAX_PERMITS)),
            timeout,
            probes: OnceLock::new(),
            probed: AtomicBool::new(false),
        }
    }

    pub fn upstream_addrs(&self) -> Vec<SocketAddr> {
        self.upstreams.iter().map(|u| u.addr).collect()
    }

    /// Whether `name` is one of our loop probes coming back; if so, its upstream is marked.
    pub fn is_returning_probe(&self, name: &Name, metrics: &Metrics) -> bool {
        let Some(probes) = self.probes.get() else { return false };
        // Probe names are two 16-character labels: anything else is not one, without hashing.
        let wire = name.wire();
        if wire.len() != 35 || wire[0] != 16 {
            return false;
        }
        let Some(&i) = probes.get(name) else { return false };
        if !self.upstreams[i].looped.swap(true, Ordering::Relaxed) {
            metrics.loops_detected.fetch_add(1, Ordering::Relaxed);
            tracing::error!(upstream = %self.upstreams[i].addr, "forwarding loop detected: this upstream sends our queries back to us; no longer forwarding to it");
        }
        true
    }

    /// Sends every upstream a random probe once, before the first real forward.
    async fn probe_once(&self, metrics: &Metrics) {
        if self.probed.swap(true, Ordering::Relaxed) {
            return;
        }
        let mut names = Vec::new();
        for (i, _) in self.upstreams.iter().enumerate() {
            let label = |n: u64| format!("{n:016x}");
            let Ok(name) = Name::root().prepend(&label(rand::random())).and_then(|n| n.prepend(&label(rand::random())))
            else {
                continue;
            };
            names.push((i, name));
        }
        let _ = self.probes.set(names.iter().map(|(i, n)| (n.clone(), *i)).collect());
        for (i, name) in names {
            let query = wire::build_query(rand::random(), &name, rtype::HINFO);
            let _ = self.exchange_with(i, &query, metrics).await;
        }
    }

    /// Forwards `query` (wire bytes; its ID is replaced for the upstream and restored in the
    /// answer) and returns the upstream's answer.
    pub async fn forward(&self, query: &[u8], metrics: &Metrics) -> Result<Vec<u8>, ForwardError> {
        if self.upstreams.is_empty() {
            return Err(ForwardError::NoUpstream);
        }
        let Ok(_permit) = self.in_flight.try_acquire() else {
            metrics.forward_rejects.fetch_add(1, Ordering::Relaxed);
            return Err(ForwardError::Overloaded);
        };
        self.probe_once(metrics).await;
        let client_id = [query[0], query[1]];
        let start = rand::random_range(0..self.upstreams.len());
        for k in 0..self.upstreams.len() {
            let i = (start + k) % self.upstreams.len();
            if self.upstreams[i].looped.load(Ordering::Relaxed) {
                continue;
            }
            let mut ours = query.to_vec();
            ours[0..2].copy_from_slice(&rand::random::<u16>().to_be_bytes());
            if let Some(mut answer) = self.exchange_with(i, &ours, metrics).await {
                answer[0..2].copy_from_slice(&client_id);
                return Ok(answer);
            }
        }
        Err(ForwardError::AllFailed)
    }

    async fn exchange_with(&self, i: usize, query: &[u8], metrics: &Metrics) -> Option<Vec<u8>> {
        let addr = self.upstreams[i].addr;
        let result = match tokio::time::timeout(self.timeout, udp_exchange(addr, query)).await {
            Ok(Ok(a)) if a.len() > 2 && a[2] & 0x02 != 0 => {
                tokio::time::timeout(self.timeout, tcp_exchange(addr, query)).await.ok().and_then(Result::ok)
            }
            Ok(Ok(a)) => Some(a),
            Ok(Err(e)) => {
                tracing::debug!(upstream = %addr, error = %e, "upstream exchange failed");
                None
            }
            Err(_) => {
                tracing::debug!(upstream = %addr, "upstream timed out");
                None
            }
        };
        metrics.forwarded(i, result.as_ref().map(|a| a[3] & 0xF));
        result
    }
}

fn same_question(query: &[u8], answer: &[u8]) -> bool {
    let (Ok(q), Ok(a)) = (wire::parse_message(query), wire::parse_message(answer)) else { return false };
    answer[0..2] == query[0..2] && a.header.is_response() && q.questions == a.questions
}

async fn udp_exchange(addr: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match addr.ip() {
        IpAddr::V4(_) => "0.0.0.0:0".parse().expect("literal"),
        IpAddr::V6(_) => "[::]:0".parse().expect("literal"),
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(addr).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await?;
        // Anything that is not the answer to this question (a late or forged packet) is ignored.
        if same_question(query, &buf[..n]) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn tcp_exchange(addr: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
    framed.extend_from_slice(query);
    s.write_all(&framed).await?;
    let len = s.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    if !same_question(query, &buf) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "answer does not match the question"));
    }
    Ok(buf)
}

/// Upstreams from a resolv.conf (`nameserver` lines, port 53).
pub fn resolv_conf_upstreams(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next() == Some("nameserver")).then(|| parts.next()).flatten()
        })
        .filter_map(|ip| ip.split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# comment\nsearch example.org\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\noptions ndots:5\n";
        let got = resolv_conf_upstreams(text);
        assert_eq!(got, vec!["192.0.2.53:53".parse().unwrap(), "[fe80::1]:53".parse().unwrap()]);
    }

    #[test]
    fn own_address_is_a_loop() {
        let any: SocketAddr = "0.0.0.0:53".parse().unwrap();
        assert!(is_self("127.0.0.1:53".parse().unwrap(), any));
        assert!(!is_self("127.0.0.1:5353".parse().unwrap(), any));
        assert!(is_self("127.0.0.53:1053".parse().unwrap(), "127.0.0.53:1053".parse().unwrap()));
        assert!(!is_self("192.0.2.1:53".parse().unwrap(), "127.0.0.1:53".parse().unwrap()));
    }
}

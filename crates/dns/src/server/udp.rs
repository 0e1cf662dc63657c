//! UDP: several sockets bound to the same address with SO_REUSEPORT (the kernel spreads
//! clients across them), each read by its own OS thread with blocking calls. Cluster answers
//! and cache hits never leave that thread; the rest goes to the tokio runtime and is sent
//! back from there on the same socket.

use super::metrics::Proto;
use super::{Action, Shared};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Binds `count` sockets to `addr` (the first may pick the port when it is 0).
pub fn bind(addr: SocketAddr, count: usize) -> std::io::Result<Vec<UdpSocket>> {
    let mut sockets = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_port(true)?;
        if addr.is_ipv6() {
            s.set_only_v6(false).ok();
        }
        // Room for bursts while a thread is busy; the kernel caps it at net.core.rmem_max.
        s.set_recv_buffer_size(4 << 20).ok();
        s.bind(&addr.into())?;
        s.set_read_timeout(Some(Duration::from_millis(250)))?;
        let s: UdpSocket = s.into();
        addr = s.local_addr()?;
        sockets.push(s);
    }
    Ok(sockets)
}

pub fn spawn(sockets: Vec<UdpSocket>, shared: Arc<Shared>, stop: Arc<AtomicBool>) -> Vec<JoinHandle<()>> {
    let runtime = tokio::runtime::Handle::current();
    sockets
        .into_iter()
        .enumerate()
        .map(|(i, sock)| {
            let (shared, stop, runtime) = (shared.clone(), stop.clone(), runtime.clone());
            std::thread::Builder::new()
                .name(format!("dns-udp-{i}"))
                .spawn(move || serve(Arc::new(sock), shared, stop, runtime))
                .expect("spawn a DNS UDP thread")
        })
        .collect()
}

fn serve(sock: Arc<UdpSocket>, shared: Arc<Shared>, stop: Arc<AtomicBool>, runtime: tokio::runtime::Handle) {
    let mut buf = vec![0u8; 65535];
    while !stop.load(Ordering::Relaxed) {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "DNS UDP receive failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let ipv6 = peer.is_ipv6() && !matches!(peer, SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some());
        match shared.handle(&buf[..n], Proto::Udp, ipv6) {
            Action::Reply(bytes) => {
                let _ = sock.send_to(&bytes, peer);
            }
            Action::Pending(pending) => {
                let (sock, shared) = (sock.clone(), shared.clone());
                runtime.spawn(async move {
                    let bytes = shared.complete(pending).await;
                    let _ = sock.send_to(&bytes, peer);
                });
            }
            Action::Drop => {}
        }
    }
}

//! DNS over TCP (RFC 7766): two-byte length framing, several queries per connection answered
//! in order, an idle timeout, and a cap on open connections.

use super::metrics::Proto;
use super::{Action, Shared};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

const IDLE: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 1024;

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "DNS TCP accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let ipv6 = peer.is_ipv6();
            if let Err(e) = connection(stream, &shared, ipv6).await {
                tracing::debug!(%peer, error = %e, "DNS TCP connection ended");
            }
        });
    }
}

async fn connection(mut stream: TcpStream, shared: &Shared, ipv6: bool) -> std::io::Result<()> {
    stream.set_nodelay(true).ok();
    loop {
        let len = match tokio::time::timeout(IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => len as usize,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        let mut msg = vec![0u8; len];
        tokio::time::timeout(IDLE, stream.read_exact(&mut msg)).await.map_err(|_| std::io::ErrorKind::TimedOut)??;
        let bytes = match shared.handle(&msg, Proto::Tcp, ipv6) {
            Action::Reply(b) => b,
            Action::Pending(p) => shared.complete(p).await,
            Action::Drop => continue,
        };
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).await?;
    }
}

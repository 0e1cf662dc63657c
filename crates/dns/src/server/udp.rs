//! UDP: several sockets bound to the same address with SO_REUSEPORT (the kernel spreads
//! clients across them), each read by its own OS thread with blocking calls. Queries are read
//! and answered in batches (`recvmmsg` / `sendmmsg`: one system call for up to 32 packets
//! when they queue up, one for a single packet when they do not). Cluster answers and cache
//! hits never leave that thread; the rest goes to the tokio runtime and is sent back from
//! there on the same socket.
//!
//! A socket bound to a wildcard address asks the kernel for each query's destination address
//! (IP_PKTINFO / IPV6_PKTINFO) and answers from it, as CoreDNS does: otherwise the answer
//! leaves from whatever address the route back prefers, and a client that sent to another
//! address of this machine (a Service address DNATed to the node, a second local address)
//! drops it.

use super::metrics::Proto;
use super::{Action, Shared};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

const BATCH: usize = 32;
/// Queries are small; a larger datagram is cut (MSG_TRUNC) and answered FORMERR.
const QUERY_BUFFER: usize = 4096;
/// Room for one packet-info control message (in6_pktinfo is the larger), in u64s for the
/// alignment cmsghdr needs.
const CONTROL_WORDS: usize = 8;

/// Where a reply goes, and from which local address when the socket's own is a wildcard.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub local: Option<IpAddr>,
}

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
        if addr.ip().is_unspecified() {
            request_packet_info(&s, addr.is_ipv6())?;
        }
        s.set_read_timeout(Some(Duration::from_millis(250)))?;
        let s: UdpSocket = s.into();
        addr = s.local_addr()?;
        sockets.push(s);
    }
    Ok(sockets)
}

fn request_packet_info(s: &Socket, ipv6: bool) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    let (level, name) =
        if ipv6 { (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO) } else { (libc::IPPROTO_IP, libc::IP_PKTINFO) };
    // SAFETY: setsockopt with a pointer to a c_int that lives across the call, and its size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
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
    let mut batch = Batch::new();
    let mut replies: Vec<(Vec<u8>, Peer)> = Vec::with_capacity(BATCH);
    while !stop.load(Ordering::Relaxed) {
        let n = match batch.receive(&sock) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "DNS UDP receive failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        for i in 0..n {
            let Some((packet, peer)) = batch.packet(i) else { continue };
            let ipv6 = matches!(peer.addr, SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_none());
            match shared.handle(packet, Proto::Udp, ipv6) {
                Action::Reply(bytes) => replies.push((bytes, peer)),
                Action::Pending(pending) => {
                    let (sock, shared) = (sock.clone(), shared.clone());
                    runtime.spawn(async move {
                        let bytes = shared.complete(pending).await;
                        send_all(&sock, &[(bytes, peer)]);
                    });
                }
                Action::Drop => {}
            }
        }
        send_all(&sock, &replies);
        replies.clear();
    }
}

/// Buffers and headers for one `recvmmsg`.
struct Batch {
    buffers: Vec<[u8; QUERY_BUFFER]>,
    controls: Vec<[u64; CONTROL_WORDS]>,
    names: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new() -> Batch {
        // SAFETY: sockaddr_storage and mmsghdr are plain C structs for which all-zero bytes
        // are a valid value.
        let zeroed_name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let zeroed_header: libc::mmsghdr = unsafe { std::mem::zeroed() };
        Batch {
            buffers: vec![[0u8; QUERY_BUFFER]; BATCH],
            controls: vec![[0u64; CONTROL_WORDS]; BATCH],
            names: vec![zeroed_name; BATCH],
            iovecs: vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH],
            headers: vec![zeroed_header; BATCH],
        }
    }

    /// Blocks until at least one datagram arrives (or the socket's read timeout passes), then
    /// takes every one already queued, up to [`BATCH`].
    fn receive(&mut self, sock: &UdpSocket) -> std::io::Result<usize> {
        for i in 0..BATCH {
            self.iovecs[i] = libc::iovec { iov_base: self.buffers[i].as_mut_ptr().cast(), iov_len: QUERY_BUFFER };
            let h = &mut self.headers[i];
            h.msg_hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.iovecs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = self.controls[i].as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = std::mem::size_of::<[u64; CONTROL_WORDS]>() as _;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: every header points at a buffer, an iovec and an address slot owned by
        // `self` that outlive the call; the lengths given are those of the buffers.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// The i-th datagram of the last receive, its sender, and the address it was sent to when
    /// the kernel said (wildcard sockets).
    fn packet(&self, i: usize) -> Option<(&[u8], Peer)> {
        let h = &self.headers[i];
        let len = (h.msg_len as usize).min(QUERY_BUFFER);
        let peer = Peer { addr: socket_addr(&self.names[i])?, local: destination(&h.msg_hdr) };
        Some((&self.buffers[i][..len], peer))
    }
}

/// The destination address in a received message's packet-info control message.
fn destination(msg: &libc::msghdr) -> Option<IpAddr> {
    if msg.msg_control.is_null() || msg.msg_controllen == 0 {
        return None;
    }
    // SAFETY: the control buffer and its length are the ones recvmmsg filled in; the CMSG_*
    // macros stay within msg_controllen, and the data is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            match ((*cmsg).cmsg_level, (*cmsg).cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let info = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in_pktinfo>());
                    return Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr))));
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let info = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in6_pktinfo>());
                    return Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                }
                _ => {}
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

/// Fills `buf` with a packet-info control message that makes the kernel send from `local`;
/// returns the control length.
fn source_control(local: IpAddr, buf: &mut [u64; CONTROL_WORDS]) -> usize {
    // SAFETY: a zeroed msghdr whose control buffer is `buf`; CMSG_FIRSTHDR points into it,
    // the space asked for fits (checked by CMSG_SPACE against the buffer's size), and the data
    // is written unaligned.
    unsafe {
        let (level, kind, size) = match local {
            IpAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_PKTINFO, std::mem::size_of::<libc::in_pktinfo>()),
            IpAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, std::mem::size_of::<libc::in6_pktinfo>()),
        };
        let space = libc::CMSG_SPACE(size as u32) as usize;
        if space > std::mem::size_of_val(buf) {
            return 0;
        }
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = level;
        (*cmsg).cmsg_type = kind;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size as u32) as _;
        match local {
            IpAddr::V4(ip) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr { s_addr: u32::from(ip).to_be() },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in_pktinfo>(), info);
            }
            IpAddr::V6(ip) => {
                let info = libc::in6_pktinfo { ipi6_addr: libc::in6_addr { s6_addr: ip.octets() }, ipi6_ifindex: 0 };
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in6_pktinfo>(), info);
            }
        }
        space
    }
}

fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in here (family AF_INET); sockaddr_storage
            // is large and aligned enough for it.
            let a = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id)))
        }
        _ => None,
    }
}

/// Sends every reply, as few system calls as the kernel allows, each from the address its
/// query was sent to when the socket is a wildcard one.
fn send_all(sock: &UdpSocket, replies: &[(Vec<u8>, Peer)]) {
    if let [(bytes, Peer { addr, local: None })] = replies {
        let _ = sock.send_to(bytes, addr);
        return;
    }
    let names: Vec<SockAddr> = replies.iter().map(|(_, peer)| SockAddr::from(peer.addr)).collect();
    let mut controls: Vec<([u64; CONTROL_WORDS], usize)> = replies
        .iter()
        .map(|(_, peer)| {
            let mut buf = [0u64; CONTROL_WORDS];
            let len = peer.local.map_or(0, |local| source_control(local, &mut buf));
            (buf, len)
        })
        .collect();
    let mut iovecs: Vec<libc::iovec> = replies
        .iter()
        .map(|(bytes, _)| libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = (0..replies.len())
        .map(|i| {
            // SAFETY: all-zero bytes are a valid mmsghdr; the fields that matter are set below.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = names[i].as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = names[i].len();
            h.msg_hdr.msg_iov = &mut iovecs[i];
            h.msg_hdr.msg_iovlen = 1;
            let (control, len) = &mut controls[i];
            if *len > 0 {
                h.msg_hdr.msg_control = control.as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = *len as _;
            }
            h
        })
        .collect();
    let mut sent = 0;
    while sent < headers.len() {
        // SAFETY: the headers point at addresses and iovecs (and through them at the reply
        // bytes, which sendmmsg only reads) that live until this function returns.
        let n = unsafe {
            libc::sendmmsg(sock.as_raw_fd(), headers[sent..].as_mut_ptr(), (headers.len() - sent) as libc::c_uint, 0)
        };
        if n <= 0 {
            // A reply that cannot be sent is dropped, as a lost datagram would be; go on with
            // the rest.
            sent += 1;
            continue;
        }
        sent += n as usize;
    }
}

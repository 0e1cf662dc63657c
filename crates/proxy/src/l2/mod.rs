//! Layer-2 announcement of LoadBalancer IPs, the way MetalLB's layer-2 mode does it.
//!
//! One node per IP (chosen by [`elect::announcer`]) answers ARP requests (IPv4) and Neighbor
//! Solicitations (IPv6) for the IP with its own MAC address, without the address being assigned
//! to any interface. Traffic for the IP then arrives at that node, where the service proxy takes
//! it. When a node takes over an IP it also sends three gratuitous ARPs / unsolicited Neighbor
//! Advertisements, at 0, 1 and 2 seconds, so that hosts which cached the previous owner move.
//!
//! [`Announcer`] runs on one interface of the network namespace it is started in:
//!
//! - two `AF_PACKET` raw sockets bound to the interface, one for `ETH_P_ARP` and one for
//!   `ETH_P_IPV6` (with a classic BPF filter that lets through only ICMPv6 Neighbor
//!   Solicitations, so ordinary IPv6 traffic is not copied to user space). Both are
//!   protocol-specific, so they never see the node's own outgoing frames;
//! - `PACKET_MR_ALLMULTI` on the IPv6 socket, so solicitations to the solicited-node groups of
//!   the announced IPs (which no local address joined) reach it; the membership ends with the
//!   socket;
//! - one tokio task, driven by `AsyncFd`, that answers requests for the current set and sends the
//!   takeover announcements. Requests for anything else, replies, announcements by others,
//!   frames not addressed to this host and malformed frames are ignored.
//!
//! Dropping the [`Announcer`] stops the task, which closes the sockets.

pub mod arp;
pub mod elect;
pub mod ndp;

#[cfg(test)]
mod lab_tests;

pub use elect::announcer;

use std::collections::HashSet;
use std::ffi::CStr;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

/// An Ethernet (EUI-48) address.
pub type Mac = [u8; 6];

/// How many announcements a newly added IP gets, one per [`ANNOUNCE_INTERVAL`], the first at once.
const ANNOUNCEMENTS: u32 = 3;
const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(1);
const ARPHRD_ETHER: u16 = 1;
/// Large enough for any solicitation or ARP frame; longer frames are truncated, then rejected.
const RECV_BUFFER: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the layer-2 announcer must be started from inside a tokio runtime")]
    NoRuntime,
    #[error("invalid interface name {0:?}")]
    InterfaceName(String),
    #[error("interface {interface}: {what}: {source}")]
    Io {
        interface: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("interface {interface} is not an Ethernet interface (ARP hardware type {hwtype})")]
    NotEthernet { interface: String, hwtype: u16 },
}

/// Answers ARP and NDP for a set of IPs on one interface until dropped.
pub struct Announcer {
    interface: String,
    mac: Mac,
    ips: watch::Sender<Vec<IpAddr>>,
    task: tokio::task::JoinHandle<()>,
}

impl Announcer {
    /// Opens the sockets on `interface` in the calling thread's network namespace and spawns the
    /// task on the current tokio runtime. The set of IPs starts empty.
    pub fn start(interface: &str) -> Result<Announcer, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        if interface.is_empty() || interface.len() >= libc::IFNAMSIZ || interface.contains(['/', '\0']) {
            return Err(Error::InterfaceName(interface.into()));
        }
        let err = |what| move |source| Error::Io { interface: interface.into(), what, source };
        // Unbound with protocol 0, a packet socket receives nothing: no frame from another
        // interface can slip in before bind().
        let arp_fd = packet_socket().map_err(err("opening the ARP socket"))?;
        let index = if_index(&arp_fd, interface).map_err(err("looking up the interface index"))?;
        let (hwtype, mac) = if_hwaddr(&arp_fd, interface).map_err(err("reading the MAC address"))?;
        if hwtype != ARPHRD_ETHER {
            return Err(Error::NotEthernet { interface: interface.into(), hwtype });
        }
        bind(&arp_fd, arp::ETH_P_ARP, index).map_err(err("binding the ARP socket"))?;

        let nd_fd = packet_socket().map_err(err("opening the NDP socket"))?;
        attach_ns_filter(&nd_fd).map_err(err("attaching the NDP filter"))?;
        bind(&nd_fd, ndp::ETH_P_IPV6, index).map_err(err("binding the NDP socket"))?;
        allmulti(&nd_fd, index).map_err(err("joining all multicast groups"))?;

        let link = Link { index, mac, link_local: link_local(interface) };
        let (arp_sock, nd_sock) = {
            let _guard = runtime.enter();
            // SAFETY: an OwnedFd keeps its descriptor open and unchanged until the AsyncFd drops it.
            let arp = unsafe { AsyncFd::register(arp_fd) }.map_err(|e| err("registering the ARP socket")(e.into()))?;
            // SAFETY: as above.
            let nd = unsafe { AsyncFd::register(nd_fd) }.map_err(|e| err("registering the NDP socket")(e.into()))?;
            (arp, nd)
        };
        let (ips, rx) = watch::channel(Vec::new());
        let span = tracing::info_span!("l2", interface);
        info!(parent: &span, ifindex = index, mac = %fmt_mac(&mac), link_local = ?link.link_local, "layer-2 announcer started");
        let task = runtime.spawn(run(link, arp_sock, nd_sock, rx).instrument(span));
        Ok(Announcer { interface: interface.into(), mac, ips, task })
    }

    /// Replaces the set of IPs answered for. Newly added ones are announced at once and twice
    /// more a second apart; removed ones are no longer answered.
    pub fn set(&self, ips: Vec<IpAddr>) {
        let mut ips: Vec<IpAddr> = ips.into_iter().map(|ip| ip.to_canonical()).collect();
        ips.sort_unstable();
        ips.dedup();
        self.ips.send_replace(ips);
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The MAC address the IPs are announced at.
    pub fn mac(&self) -> Mac {
        self.mac
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        // Dropping the sender also ends the task at its next wake-up; abort makes it prompt.
        self.task.abort();
    }
}

/// What the task needs to know about its interface.
#[derive(Clone, Copy, Debug)]
struct Link {
    index: libc::c_int,
    mac: Mac,
    /// Source of advertisements; without one the advertised address itself is used.
    link_local: Option<Ipv6Addr>,
}

async fn run(link: Link, arp_sock: AsyncFd<OwnedFd>, nd_sock: AsyncFd<OwnedFd>, mut rx: watch::Receiver<Vec<IpAddr>>) {
    let mut active: HashSet<IpAddr> = HashSet::new();
    // (when, ip): pending takeover announcements.
    let mut schedule: Vec<(Instant, IpAddr)> = Vec::new();
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let next = schedule.iter().map(|(at, _)| *at).min();
        let mut out: Vec<(Vec<u8>, u16)> = Vec::new();
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    break;
                }
                let want: HashSet<IpAddr> = rx.borrow_and_update().iter().copied().collect();
                let mut added: Vec<IpAddr> = want.difference(&active).copied().collect();
                let mut removed: Vec<IpAddr> = active.difference(&want).copied().collect();
                added.sort_unstable();
                removed.sort_unstable();
                if !added.is_empty() || !removed.is_empty() {
                    info!(?added, ?removed, total = want.len(), "announced IPs changed");
                }
                let now = Instant::now();
                for ip in &added {
                    schedule.extend((0..ANNOUNCEMENTS).map(|k| (now + ANNOUNCE_INTERVAL * k, *ip)));
                }
                schedule.retain(|(_, ip)| want.contains(ip));
                active = want;
            }
            ready = arp_sock.readable() => match ready {
                Ok(mut guard) => receive(&mut guard, &mut buf, |frame, pkttype| {
                    if let Some(reply) = answer_arp(frame, pkttype, &active, &link) {
                        out.push((reply, arp::ETH_P_ARP));
                    }
                }),
                Err(e) => {
                    warn!(error = %e, "ARP socket failed; stopping");
                    break;
                }
            },
            ready = nd_sock.readable() => match ready {
                Ok(mut guard) => receive(&mut guard, &mut buf, |frame, pkttype| {
                    if let Some(reply) = answer_ndp(frame, pkttype, &active, &link) {
                        out.push((reply, ndp::ETH_P_IPV6));
                    }
                }),
                Err(e) => {
                    warn!(error = %e, "NDP socket failed; stopping");
                    break;
                }
            },
            () = sleep_until(next) => {
                let now = Instant::now();
                schedule.retain(|(at, ip)| {
                    if *at > now {
                        return true;
                    }
                    match ip {
                        IpAddr::V4(v4) => out.push((arp::build_gratuitous(*v4, link.mac), arp::ETH_P_ARP)),
                        IpAddr::V6(v6) => {
                            let src = link.link_local.unwrap_or(*v6);
                            out.push((ndp::build_unsolicited(*v6, link.mac, src), ndp::ETH_P_IPV6));
                        }
                    }
                    debug!(%ip, "announcing");
                    false
                });
            }
        }
        for (frame, proto) in out {
            let sock = if proto == arp::ETH_P_ARP { &arp_sock } else { &nd_sock };
            let sent = sock.async_io(Interest::WRITABLE, |fd| send(fd, &frame, proto, link.index)).await;
            if let Err(e) = sent {
                warn!(error = %e, "sending a frame failed");
            }
        }
    }
    debug!("layer-2 announcer stopped");
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reads every frame waiting on the socket and hands it to `handle` with its packet type.
fn receive(
    guard: &mut tokio::io::unix::AsyncFdReadyGuard<'_, OwnedFd>,
    buf: &mut [u8],
    mut handle: impl FnMut(&[u8], u8),
) {
    loop {
        match guard.try_io(|fd| recv(fd.get_ref(), buf)) {
            Ok(Ok((n, pkttype))) => handle(&buf[..n], pkttype),
            Ok(Err(e)) => {
                // A pending socket error (e.g. the interface went down) is reported once.
                warn!(error = %e, "receiving failed");
                guard.clear_ready();
                return;
            }
            Err(_would_block) => return,
        }
    }
}

/// The ARP reply to `frame`, if it asks for one of `active` and was addressed to this host.
fn answer_arp(frame: &[u8], pkttype: u8, active: &HashSet<IpAddr>, link: &Link) -> Option<Vec<u8>> {
    if pkttype != libc::PACKET_HOST && pkttype != libc::PACKET_BROADCAST {
        return None;
    }
    let req = arp::parse_request(frame)?;
    if req.sender_mac == link.mac || !active.contains(&IpAddr::V4(req.target_ip)) {
        return None;
    }
    debug!(ip = %req.target_ip, asker = %req.sender_ip, asker_mac = %fmt_mac(&req.sender_mac), "answering ARP");
    Some(arp::build_reply(&req, link.mac))
}

/// The Neighbor Advertisement answering `frame`, if it solicits one of `active`.
fn answer_ndp(frame: &[u8], pkttype: u8, active: &HashSet<IpAddr>, link: &Link) -> Option<Vec<u8>> {
    if pkttype != libc::PACKET_HOST && pkttype != libc::PACKET_MULTICAST {
        return None;
    }
    let ns = ndp::parse_solicitation(frame)?;
    if ns.eth_src == link.mac || !active.contains(&IpAddr::V6(ns.target)) {
        return None;
    }
    debug!(ip = %ns.target, asker = %ns.src, asker_mac = %fmt_mac(&ns.eth_src), "answering neighbor solicitation");
    Some(ndp::build_advertisement(&ns, link.mac, link.link_local.unwrap_or(ns.target)))
}

fn fmt_mac(mac: &Mac) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before it is wrapped.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ll_addr(proto: u16, index: libc::c_int, dst: Option<&[u8]>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_ll = unsafe { zeroed() };
    sa.sll_family = libc::AF_PACKET as libc::c_ushort;
    sa.sll_protocol = proto.to_be();
    sa.sll_ifindex = index;
    if let Some(dst) = dst {
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(dst);
    }
    sa
}

fn bind(fd: &OwnedFd, proto: u16, index: libc::c_int) -> io::Result<()> {
    let sa = ll_addr(proto, index, None);
    // SAFETY: `sa` is a valid sockaddr_ll of the length passed.
    cvt(unsafe {
        libc::bind(fd.as_raw_fd(), (&sa as *const libc::sockaddr_ll).cast(), size_of::<libc::sockaddr_ll>() as u32)
    })
    .map(drop)
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    ifr
}

fn if_index(fd: &OwnedFd, name: &str) -> io::Result<libc::c_int> {
    let mut ifr = ifreq(name);
    // SAFETY: SIOCGIFINDEX reads the name and writes the index into `ifr`.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFINDEX as _, &mut ifr) })?;
    // SAFETY: the kernel filled the ifindex member.
    Ok(unsafe { ifr.ifr_ifru.ifru_ifindex })
}

fn if_hwaddr(fd: &OwnedFd, name: &str) -> io::Result<(u16, Mac)> {
    let mut ifr = ifreq(name);
    // SAFETY: SIOCGIFHWADDR reads the name and writes the hardware address into `ifr`.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR as _, &mut ifr) })?;
    // SAFETY: the kernel filled the hwaddr member.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok((sa.sa_family, mac))
}

/// Lets through only ICMPv6 Neighbor Solicitations without extension headers: next header 58
/// at frame offset 20, ICMPv6 type 135 at offset 54.
fn attach_ns_filter(fd: &OwnedFd) -> io::Result<()> {
    const LD_B_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    let insn = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut prog = [
        insn(LD_B_ABS, 0, 0, 20),
        insn(JEQ_K, 0, 3, u32::from(ndp::NEXT_HEADER_ICMPV6)),
        insn(LD_B_ABS, 0, 0, 54),
        insn(JEQ_K, 0, 1, u32::from(ndp::TYPE_NS)),
        insn(RET_K, 0, 0, RECV_BUFFER as u32),
        insn(RET_K, 0, 0, 0),
    ];
    let fprog = libc::sock_fprog { len: prog.len() as libc::c_ushort, filter: prog.as_mut_ptr() };
    // SAFETY: the kernel copies the program; `fprog` and `prog` outlive the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            size_of::<libc::sock_fprog>() as u32,
        )
    })
    .map(drop)
}

fn allmulti(fd: &OwnedFd, index: libc::c_int) -> io::Result<()> {
    // SAFETY: packet_mreq is plain old data; all-zero is a valid value.
    let mut mreq: libc::packet_mreq = unsafe { zeroed() };
    mreq.mr_ifindex = index;
    mreq.mr_type = libc::PACKET_MR_ALLMULTI as libc::c_ushort;
    // SAFETY: `mreq` is a valid packet_mreq of the length passed.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            (&mreq as *const libc::packet_mreq).cast(),
            size_of::<libc::packet_mreq>() as u32,
        )
    })
    .map(drop)
}

/// The first IPv6 link-local address of `name`, via getifaddrs (netlink, so it sees the calling
/// thread's network namespace, unlike /proc/self/net or a host-mounted /sys).
fn link_local(name: &str) -> Option<Ipv6Addr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() && found.is_none() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        if ifa.ifa_addr.is_null() || unsafe { CStr::from_ptr(ifa.ifa_name) }.to_bytes() != name.as_bytes() {
            continue;
        }
        // SAFETY: ifa_addr points at a sockaddr whose family says its real type.
        if i32::from(unsafe { (*ifa.ifa_addr).sa_family }) != libc::AF_INET6 {
            continue;
        }
        // SAFETY: an AF_INET6 address is a sockaddr_in6.
        let addr = Ipv6Addr::from(unsafe { (*ifa.ifa_addr.cast::<libc::sockaddr_in6>()).sin6_addr.s6_addr });
        if addr.is_unicast_link_local() {
            found = Some(addr);
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    found
}

fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<(usize, u8)> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut from: libc::sockaddr_ll = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `buf` and `from` are valid for the lengths passed.
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&mut from as *mut libc::sockaddr_ll).cast(),
            &mut len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((n as usize, from.sll_pkttype))
}

fn send(fd: &OwnedFd, frame: &[u8], proto: u16, index: libc::c_int) -> io::Result<()> {
    let raw: RawFd = fd.as_raw_fd();
    let to = ll_addr(proto, index, frame.get(..6));
    // SAFETY: `frame` and `to` are valid for the lengths passed.
    let n = unsafe {
        libc::sendto(
            raw,
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&to as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const ME: Mac = [0x02, 0, 0, 0, 0, 0xaa];
    const HIM: Mac = [0x02, 0, 0, 0, 0, 0xbb];

    fn link() -> Link {
        Link { index: 7, mac: ME, link_local: Some("fe80::aa".parse().unwrap()) }
    }

    fn arp_request(target: Ipv4Addr) -> Vec<u8> {
        // A gratuitous request from HIM, turned into a question by giving it a sender IP.
        let mut f = arp::build_gratuitous(target, HIM);
        f[28..32].copy_from_slice(&[198, 51, 100, 2]);
        f
    }

    #[test]
    fn answers_only_active_ips_addressed_to_us() {
        let vip = Ipv4Addr::new(198, 51, 100, 200);
        let active: HashSet<IpAddr> = [IpAddr::V4(vip)].into();
        let req = arp_request(vip);
        let reply = answer_arp(&req, libc::PACKET_BROADCAST, &active, &link()).unwrap();
        assert_eq!(&reply[0..6], &HIM);
        assert_eq!(&reply[22..28], &ME);
        assert!(answer_arp(&req, libc::PACKET_HOST, &active, &link()).is_some());
        assert!(answer_arp(&req, libc::PACKET_OTHERHOST, &active, &link()).is_none());
        assert!(answer_arp(&req, libc::PACKET_OUTGOING, &active, &link()).is_none());
        assert!(answer_arp(&arp_request(Ipv4Addr::new(198, 51, 100, 201)), 1, &active, &link()).is_none());
        assert!(answer_arp(&req, 1, &HashSet::new(), &link()).is_none());
        // Our own frames (e.g. looped back) are never answered.
        let mut own = req.clone();
        own[22..28].copy_from_slice(&ME);
        assert!(answer_arp(&own, 1, &active, &link()).is_none());
        assert!(answer_arp(&[0u8; 3], 1, &active, &link()).is_none());
    }

    #[test]
    fn answers_solicitations_from_the_link_local_address() {
        let vip: Ipv6Addr = "fd00:1ab::200".parse().unwrap();
        let active: HashSet<IpAddr> = [IpAddr::V6(vip)].into();
        // A solicitation for the VIP to its solicited-node group, assembled by hand.
        let asker: Ipv6Addr = "fd00:1ab::2".parse().unwrap();
        let dst = ndp::solicited_node(vip);
        let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&vip.octets());
        let sum = ndp::checksum(asker, dst, &icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut f = ndp::multicast_mac(dst).to_vec();
        f.extend_from_slice(&HIM);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, icmp.len() as u8, 58, 255]);
        f.extend_from_slice(&asker.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(&icmp);
        let reply = answer_ndp(&f, libc::PACKET_MULTICAST, &active, &link()).unwrap();
        assert_eq!(&reply[0..6], &HIM);
        assert_eq!(&reply[22..38], &"fe80::aa".parse::<Ipv6Addr>().unwrap().octets());
        let no_ll = Link { link_local: None, ..link() };
        let reply = answer_ndp(&f, libc::PACKET_MULTICAST, &active, &no_ll).unwrap();
        assert_eq!(&reply[22..38], &vip.octets());
        assert!(answer_ndp(&f, libc::PACKET_OTHERHOST, &active, &link()).is_none());
        assert!(answer_ndp(&f, libc::PACKET_MULTICAST, &HashSet::new(), &link()).is_none());
    }

    #[test]
    fn start_needs_a_runtime_and_a_valid_name() {
        assert!(matches!(Announcer::start("eth0"), Err(Error::NoRuntime)));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _guard = rt.enter();
        for bad in ["", "a/b", "sixteen-chars-xx"] {
            assert!(matches!(Announcer::start(bad), Err(Error::InterfaceName(_))), "{bad:?}");
        }
    }
}

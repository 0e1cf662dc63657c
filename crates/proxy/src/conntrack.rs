//! Deleting stale conntrack entries through ctnetlink, as kube-proxy does after a sync.
//!
//! When a UDP service loses an endpoint (or gains its first one), the kernel keeps using the
//! conntrack entries it already has: a client that keeps sending from the same source port keeps
//! hitting the old, dead endpoint (or the "no endpoints" reject) until the entry times out, which
//! for chatty UDP clients is never. The fix is to delete those entries after programming the new
//! rules, the equivalent of
//! `conntrack -D -p udp --orig-dst VIP --orig-port-dst PORT --reply-src ENDPOINT`.
//!
//! [`delete`] opens one `NETLINK_NETFILTER` socket in the calling thread's network namespace,
//! dumps the whole conntrack table (IPv4 and IPv6, every zone), matches the entries against the
//! filters in Rust, and only once the dump is complete sends one `IPCTNL_MSG_CT_DELETE` per match,
//! keyed by the entry's original tuple, its zone and its id (so an entry that was replaced
//! between the dump and the delete is left alone; `ENOENT` counts as already gone).
//!
//! The netlink encoding is done by hand (no netlink crate): attributes are a 4-byte header
//! (length, type) followed by the payload, padded to 4 bytes; nested attributes carry
//! `NLA_F_NESTED`. Every length read from the kernel is checked, so a malformed message is an
//! [`Error::Malformed`], never a panic.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

// linux/netlink.h
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_MULTI: u16 = 0x02;
const NLM_F_ACK: u16 = 0x04;
const NLM_F_DUMP: u16 = 0x100 | 0x200; // NLM_F_ROOT | NLM_F_MATCH
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLA_HDRLEN: usize = 4;
const NLA_F_NESTED: u16 = 1 << 15;
const NLA_F_NET_BYTEORDER: u16 = 1 << 14;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

// linux/netfilter/nfnetlink.h
const NFGENMSG_LEN: usize = 4;
const NFNETLINK_V0: u8 = 0;
const NFNL_SUBSYS_CTNETLINK: u16 = 1;

// linux/netfilter/nfnetlink_conntrack.h: enum cntl_msg_types
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
// enum ctattr_type
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
// enum ctattr_tuple
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
// enum ctattr_ip
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
// enum ctattr_l4proto
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

/// Large enough for any single datagram the kernel sends on a dump (it sizes them to at most
/// 32 KiB); a larger one is detected with `MSG_TRUNC` and reported, never silently cut.
const RECV_BUF: usize = 64 * 1024;
/// A kernel that does not answer within this long is treated as an error, not waited on forever.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);
/// Deletes sent in one datagram before their acknowledgements are read.
const DELETE_BATCH: usize = 64;
/// Dumps restarted when the kernel flags one as interrupted (`NLM_F_DUMP_INTR`).
const DUMP_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on the netlink socket failed, or the kernel answered a request with an error.
    #[error("conntrack: {context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: io::Error,
    },
    /// The kernel sent something this module cannot parse.
    #[error("conntrack: malformed netlink message: {0}")]
    Malformed(String),
}

impl Error {
    fn io(context: &'static str, source: io::Error) -> Error {
        Error::Io { context, source }
    }
}

fn malformed(what: impl Into<String>) -> Error {
    Error::Malformed(what.into())
}

/// A filter on the ORIGINAL direction destination and REPLY direction source, like
/// `conntrack -D -p udp --orig-dst VIP --orig-port-dst PORT --reply-src EP`.
///
/// `None` fields match anything, so a filter with only `protocol` set matches every entry of
/// that protocol. An IPv4 address never matches an IPv6 entry and vice versa.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Filter {
    /// IP protocol number: `libc::IPPROTO_UDP` (17), `IPPROTO_TCP` (6), `IPPROTO_SCTP` (132).
    pub protocol: u8,
    pub orig_dst: Option<IpAddr>,
    pub orig_dst_port: Option<u16>,
    pub reply_src: Option<IpAddr>,
}

impl Filter {
    fn matches(&self, e: &Entry) -> bool {
        e.orig.proto == self.protocol
            && self.orig_dst.is_none_or(|ip| e.orig.dst == Some(ip))
            && self.orig_dst_port.is_none_or(|p| e.orig.dst_port == Some(p))
            && self.reply_src.is_none_or(|ip| e.reply.src == Some(ip))
    }
}

/// Deletes every entry matching any of the filters; returns how many were deleted. Blocking
/// (a netlink socket in the calling thread's network namespace); callers run it on a blocking thread.
///
/// Entries that disappear (or are replaced) between the dump and the delete are not counted and
/// are not an error. With no filters nothing is dumped and `Ok(0)` is returned.
pub fn delete(filters: &[Filter]) -> Result<usize, Error> {
    if filters.is_empty() {
        return Ok(0);
    }
    let mut sock = Socket::open()?;
    let entries = sock.dump()?;
    let total = entries.len();
    let doomed: Vec<Entry> = entries.into_iter().filter(|e| filters.iter().any(|f| f.matches(e))).collect();
    tracing::debug!(total, matched = doomed.len(), "conntrack: dumped table");
    let mut deleted = 0;
    for batch in doomed.chunks(DELETE_BATCH) {
        deleted += sock.delete_batch(batch)?;
    }
    if deleted > 0 {
        tracing::debug!(deleted, "conntrack: deleted entries");
    }
    Ok(deleted)
}

/// One conntrack entry as far as this module cares, plus what a delete needs to name it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    /// `nfgen_family` of the dump message (AF_INET or AF_INET6); a delete must repeat it.
    family: u8,
    orig: Tuple,
    reply: Tuple,
    /// The payload of `CTA_TUPLE_ORIG`, re-sent verbatim (it may hold a `CTA_TUPLE_ZONE`, or
    /// ICMP ids rather than ports).
    orig_raw: Vec<u8>,
    /// `CTA_ZONE`, network byte order as received.
    zone: Option<[u8; 2]>,
    /// `CTA_ID`, network byte order as received.
    id: Option<[u8; 4]>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Tuple {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    proto: u8,
    src_port: Option<u16>,
    dst_port: Option<u16>,
}

// ---------------------------------------------------------------------------------------------
// Attribute parsing and building.

/// One netlink attribute: its type without the flag bits, and its payload (padding excluded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Attr<'a> {
    kind: u16,
    nested: bool,
    payload: &'a [u8],
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Splits a buffer into its attributes. The last attribute's padding may be missing (the kernel
/// always pads, but the length field excludes it); anything else that does not fit is an error.
fn parse_attrs(mut buf: &[u8]) -> Result<Vec<Attr<'_>>, Error> {
    let mut attrs = Vec::new();
    while !buf.is_empty() {
        if buf.len() < NLA_HDRLEN {
            return Err(malformed(format!("{} trailing bytes, too short for an attribute header", buf.len())));
        }
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        let raw_kind = u16::from_ne_bytes([buf[2], buf[3]]);
        if len < NLA_HDRLEN || len > buf.len() {
            return Err(malformed(format!(
                "attribute type {} claims {len} bytes, {} available",
                raw_kind & NLA_TYPE_MASK,
                buf.len()
            )));
        }
        attrs.push(Attr {
            kind: raw_kind & NLA_TYPE_MASK,
            nested: raw_kind & NLA_F_NESTED != 0,
            payload: &buf[NLA_HDRLEN..len],
        });
        buf = &buf[align4(len).min(buf.len())..];
    }
    Ok(attrs)
}

fn fixed<const N: usize>(a: &Attr<'_>, what: &str) -> Result<[u8; N], Error> {
    a.payload.try_into().map_err(|_| malformed(format!("{what}: {} bytes, expected {N}", a.payload.len())))
}

/// Parses the payload of `CTA_TUPLE_ORIG` / `CTA_TUPLE_REPLY`.
fn parse_tuple(buf: &[u8]) -> Result<Tuple, Error> {
    let mut t = Tuple::default();
    let mut have_proto = false;
    for a in parse_attrs(buf)? {
        match a.kind {
            CTA_TUPLE_IP => {
                for ip in parse_attrs(a.payload)? {
                    match ip.kind {
                        CTA_IP_V4_SRC => t.src = Some(Ipv4Addr::from(fixed::<4>(&ip, "CTA_IP_V4_SRC")?).into()),
                        CTA_IP_V4_DST => t.dst = Some(Ipv4Addr::from(fixed::<4>(&ip, "CTA_IP_V4_DST")?).into()),
                        CTA_IP_V6_SRC => t.src = Some(Ipv6Addr::from(fixed::<16>(&ip, "CTA_IP_V6_SRC")?).into()),
                        CTA_IP_V6_DST => t.dst = Some(Ipv6Addr::from(fixed::<16>(&ip, "CTA_IP_V6_DST")?).into()),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for p in parse_attrs(a.payload)? {
                    match p.kind {
                        CTA_PROTO_NUM => {
                            t.proto = fixed::<1>(&p, "CTA_PROTO_NUM")?[0];
                            have_proto = true;
                        }
                        CTA_PROTO_SRC_PORT => t.src_port = Some(u16::from_be_bytes(fixed(&p, "CTA_PROTO_SRC_PORT")?)),
                        CTA_PROTO_DST_PORT => t.dst_port = Some(u16::from_be_bytes(fixed(&p, "CTA_PROTO_DST_PORT")?)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if !have_proto {
        return Err(malformed("tuple without CTA_PROTO_NUM"));
    }
    Ok(t)
}

/// Parses the payload of one ctnetlink message (after the netlink header): nfgenmsg + attributes.
fn parse_entry(payload: &[u8]) -> Result<Entry, Error> {
    if payload.len() < NFGENMSG_LEN {
        return Err(malformed(format!("conntrack message of {} bytes has no nfgenmsg", payload.len())));
    }
    let family = payload[0];
    let mut orig = None;
    let mut reply = None;
    let mut zone = None;
    let mut id = None;
    for a in parse_attrs(&payload[NFGENMSG_LEN..])? {
        match a.kind {
            CTA_TUPLE_ORIG => orig = Some((parse_tuple(a.payload)?, a.payload)),
            CTA_TUPLE_REPLY => reply = Some(parse_tuple(a.payload)?),
            CTA_ZONE => zone = Some(fixed::<2>(&a, "CTA_ZONE")?),
            CTA_ID => id = Some(fixed::<4>(&a, "CTA_ID")?),
            _ => {}
        }
    }
    let (orig, orig_raw) = orig.ok_or_else(|| malformed("conntrack entry without CTA_TUPLE_ORIG"))?;
    let reply = reply.ok_or_else(|| malformed("conntrack entry without CTA_TUPLE_REPLY"))?;
    Ok(Entry { family, orig, reply, orig_raw: orig_raw.to_vec(), zone, id })
}

/// Builds one netlink message; [`MsgBuilder::finish`] fills in the length.
struct MsgBuilder {
    buf: Vec<u8>,
    start: usize,
}

impl MsgBuilder {
    /// Starts a message at the end of `buf` (several messages can share one datagram).
    fn new(buf: Vec<u8>, kind: u16, flags: u16, seq: u32) -> MsgBuilder {
        let mut b = MsgBuilder { start: buf.len(), buf };
        b.buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, set by finish
        b.buf.extend_from_slice(&kind.to_ne_bytes());
        b.buf.extend_from_slice(&flags.to_ne_bytes());
        b.buf.extend_from_slice(&seq.to_ne_bytes());
        b.buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills it in
        b
    }

    fn bytes(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    fn attr(&mut self, kind: u16, payload: &[u8]) -> Result<(), Error> {
        let len = u16::try_from(NLA_HDRLEN + payload.len())
            .map_err(|_| malformed(format!("attribute {kind} payload of {} bytes is too long", payload.len())))?;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.bytes(payload);
        Ok(())
    }

    /// A nested attribute whose payload is already encoded attributes.
    fn nested(&mut self, kind: u16, attrs: &[u8]) -> Result<(), Error> {
        self.attr(kind | NLA_F_NESTED, attrs)
    }

    fn finish(mut self) -> Vec<u8> {
        let len = (self.buf.len() - self.start) as u32;
        self.buf[self.start..self.start + 4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// A netlink message header and its payload, as split out of a received datagram.
struct Msg<'a> {
    kind: u16,
    flags: u16,
    seq: u32,
    payload: &'a [u8],
}

fn parse_msgs(mut buf: &[u8]) -> Result<Vec<Msg<'_>>, Error> {
    let mut msgs = Vec::new();
    while !buf.is_empty() {
        if buf.len() < NLMSG_HDRLEN {
            return Err(malformed(format!("{} trailing bytes, too short for a netlink header", buf.len())));
        }
        let len = u32::from_ne_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(malformed(format!("netlink message claims {len} bytes, {} available", buf.len())));
        }
        msgs.push(Msg {
            kind: u16::from_ne_bytes([buf[4], buf[5]]),
            flags: u16::from_ne_bytes([buf[6], buf[7]]),
            seq: u32::from_ne_bytes(buf[8..12].try_into().expect("4 bytes")),
            payload: &buf[NLMSG_HDRLEN..len],
        });
        buf = &buf[align4(len).min(buf.len())..];
    }
    Ok(msgs)
}

/// The errno of an `NLMSG_ERROR` payload (0 for an acknowledgement), as a positive number.
fn error_code(payload: &[u8]) -> Result<i32, Error> {
    let code: [u8; 4] = payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed(format!("NLMSG_ERROR of {} bytes", payload.len())))?;
    Ok(i32::from_ne_bytes(code).saturating_neg())
}

const fn ct_msg_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_CTNETLINK << 8) | msg
}

fn nfgenmsg(family: u8) -> [u8; NFGENMSG_LEN] {
    [family, NFNETLINK_V0, 0, 0]
}

/// The delete request for one entry: same family, original tuple verbatim, zone and id if known.
fn delete_request(buf: Vec<u8>, e: &Entry, seq: u32) -> Result<Vec<u8>, Error> {
    let mut m = MsgBuilder::new(buf, ct_msg_type(IPCTNL_MSG_CT_DELETE), NLM_F_REQUEST | NLM_F_ACK, seq);
    m.bytes(&nfgenmsg(e.family));
    m.nested(CTA_TUPLE_ORIG, &e.orig_raw)?;
    if let Some(zone) = e.zone {
        m.attr(CTA_ZONE, &zone)?;
    }
    if let Some(id) = e.id {
        m.attr(CTA_ID, &id)?;
    }
    Ok(m.finish())
}

/// Handles one datagram of a dump answering request `seq`: entries are appended to `entries`.
/// Returns whether the dump is complete.
fn dump_datagram(buf: &[u8], seq: u32, entries: &mut Vec<Entry>, interrupted: &mut bool) -> Result<bool, Error> {
    const CONTEXT: &str = "dumping the conntrack table";
    for msg in parse_msgs(buf)? {
        if msg.seq != seq {
            continue; // not ours (a late answer to an earlier request)
        }
        *interrupted |= msg.flags & NLM_F_DUMP_INTR != 0;
        match msg.kind {
            NLMSG_DONE => {
                // The payload, if any, is an int error code (negative errno).
                if let Ok(code) = error_code(msg.payload)
                    && code != 0
                {
                    return Err(Error::io(CONTEXT, io::Error::from_raw_os_error(code)));
                }
                return Ok(true);
            }
            NLMSG_ERROR => match error_code(msg.payload)? {
                0 => return Ok(true),
                code => return Err(Error::io(CONTEXT, io::Error::from_raw_os_error(code))),
            },
            k if k == ct_msg_type(IPCTNL_MSG_CT_NEW) => entries.push(parse_entry(msg.payload)?),
            _ => {}
        }
        if msg.flags & NLM_F_MULTI == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

// ---------------------------------------------------------------------------------------------
// The socket.

struct Socket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Socket {
    fn open() -> Result<Socket, Error> {
        // SAFETY: plain socket(2); the result is checked before it is wrapped.
        let fd =
            unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_NETFILTER) };
        if fd < 0 {
            return Err(Error::io("opening a NETLINK_NETFILTER socket", io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an all-zero sockaddr_nl is valid (nl_pid 0: the kernel assigns the port id).
        let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `addr` is a sockaddr_nl of the size passed.
        let rc = unsafe {
            libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t)
        };
        if rc != 0 {
            return Err(Error::io("binding the netlink socket", io::Error::last_os_error()));
        }
        let tv = libc::timeval { tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t, tv_usec: 0 };
        // SAFETY: SO_RCVTIMEO takes a timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(Error::io("setting the netlink receive timeout", io::Error::last_os_error()));
        }
        Ok(Socket { fd, seq: 0, buf: vec![0; RECV_BUF] })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&self, msg: &[u8], context: &'static str) -> Result<(), Error> {
        // SAFETY: an all-zero sockaddr_nl addresses the kernel (nl_pid 0).
        let mut kernel: libc::sockaddr_nl = unsafe { mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: `msg` and `kernel` are valid for the lengths passed.
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    0,
                    (&raw const kernel).cast(),
                    mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if n >= 0 {
                return if n as usize == msg.len() {
                    Ok(())
                } else {
                    Err(Error::io(context, io::Error::other(format!("short send: {n} of {} bytes", msg.len()))))
                };
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(Error::io(context, err));
            }
        }
    }

    /// Receives one datagram into `self.buf`; returns its length.
    fn recv(&mut self, context: &'static str) -> Result<usize, Error> {
        loop {
            // SAFETY: `buf` is valid for its length; MSG_TRUNC makes the result the real length.
            let n = unsafe {
                libc::recv(self.fd.as_raw_fd(), self.buf.as_mut_ptr().cast(), self.buf.len(), libc::MSG_TRUNC)
            };
            if n >= 0 {
                let n = n as usize;
                if n > self.buf.len() {
                    return Err(malformed(format!("netlink datagram of {n} bytes exceeds the {RECV_BUF}-byte buffer")));
                }
                return Ok(n);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(Error::io(context, err));
            }
        }
    }

    /// The whole table, all families and zones; restarted if the kernel says it was interrupted.
    fn dump(&mut self) -> Result<Vec<Entry>, Error> {
        for attempt in 1..=DUMP_ATTEMPTS {
            match self.dump_once()? {
                Some(entries) => return Ok(entries),
                None => tracing::debug!(attempt, "conntrack: dump interrupted, restarting"),
            }
        }
        Err(Error::io(
            "dumping the conntrack table",
            io::Error::other(format!("dump interrupted {DUMP_ATTEMPTS} times")),
        ))
    }

    /// `None` when the dump was flagged `NLM_F_DUMP_INTR` (it is still read to the end).
    fn dump_once(&mut self) -> Result<Option<Vec<Entry>>, Error> {
        const CONTEXT: &str = "dumping the conntrack table";
        let seq = self.next_seq();
        let mut m = MsgBuilder::new(Vec::new(), ct_msg_type(IPCTNL_MSG_CT_GET), NLM_F_REQUEST | NLM_F_DUMP, seq);
        m.bytes(&nfgenmsg(libc::AF_UNSPEC as u8));
        self.send(&m.finish(), CONTEXT)?;
        let mut entries = Vec::new();
        let mut interrupted = false;
        loop {
            let n = self.recv(CONTEXT)?;
            let done = dump_datagram(&self.buf[..n], seq, &mut entries, &mut interrupted)?;
            if done {
                break;
            }
        }
        Ok((!interrupted).then_some(entries))
    }

    /// Sends one datagram of deletes and reads one acknowledgement per delete; returns how many
    /// the kernel deleted. `ENOENT` (already gone, or replaced: the id no longer matches) is fine.
    fn delete_batch(&mut self, batch: &[Entry]) -> Result<usize, Error> {
        const CONTEXT: &str = "deleting a conntrack entry";
        let first = self.seq.wrapping_add(1);
        let mut req = Vec::new();
        for e in batch {
            let seq = self.next_seq();
            req = delete_request(req, e, seq)?;
        }
        self.send(&req, CONTEXT)?;
        let mut pending = batch.len();
        let mut deleted = 0;
        let mut failure = None;
        while pending > 0 {
            let n = self.recv(CONTEXT)?;
            for msg in parse_msgs(&self.buf[..n])? {
                if msg.kind != NLMSG_ERROR || msg.seq.wrapping_sub(first) as usize >= batch.len() {
                    continue;
                }
                pending = pending.saturating_sub(1);
                match error_code(msg.payload)? {
                    0 => deleted += 1,
                    libc::ENOENT => {}
                    code => {
                        let e = &batch[msg.seq.wrapping_sub(first) as usize];
                        tracing::warn!(?e.orig, errno = code, "conntrack: delete refused");
                        failure.get_or_insert(code);
                    }
                }
            }
        }
        match failure {
            Some(code) => Err(Error::io(CONTEXT, io::Error::from_raw_os_error(code))),
            None => Ok(deleted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP: u8 = libc::IPPROTO_UDP as u8;

    /// Encodes a tuple the way the kernel does (ctnetlink_dump_tuples).
    fn tuple_attrs(src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16) -> Vec<u8> {
        let mut ip = MsgBuilder { buf: Vec::new(), start: 0 };
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                ip.attr(CTA_IP_V4_SRC, &s.octets()).unwrap();
                ip.attr(CTA_IP_V4_DST, &d.octets()).unwrap();
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                ip.attr(CTA_IP_V6_SRC, &s.octets()).unwrap();
                ip.attr(CTA_IP_V6_DST, &d.octets()).unwrap();
            }
            _ => panic!("mixed families"),
        }
        let mut pr = MsgBuilder { buf: Vec::new(), start: 0 };
        pr.attr(CTA_PROTO_NUM, &[proto]).unwrap();
        pr.attr(CTA_PROTO_SRC_PORT, &sport.to_be_bytes()).unwrap();
        pr.attr(CTA_PROTO_DST_PORT, &dport.to_be_bytes()).unwrap();
        let mut t = MsgBuilder { buf: Vec::new(), start: 0 };
        t.nested(CTA_TUPLE_IP, &ip.buf).unwrap();
        t.nested(CTA_TUPLE_PROTO, &pr.buf).unwrap();
        t.buf
    }

    fn entry_payload(family: u8, orig: &[u8], reply: &[u8], zone: Option<u16>) -> Vec<u8> {
        let mut m = MsgBuilder { buf: Vec::new(), start: 0 };
        m.bytes(&nfgenmsg(family));
        m.nested(CTA_TUPLE_ORIG, orig).unwrap();
        m.nested(CTA_TUPLE_REPLY, reply).unwrap();
        m.attr(CTA_ID, &7u32.to_be_bytes()).unwrap();
        if let Some(z) = zone {
            m.attr(CTA_ZONE, &z.to_be_bytes()).unwrap();
        }
        m.buf
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn attributes_round_trip_with_padding_and_flags() {
        let mut m = MsgBuilder { buf: Vec::new(), start: 0 };
        m.attr(5, &[1]).unwrap();
        m.attr(6, &[]).unwrap();
        m.nested(7, &[9, 9, 9, 9, 9]).unwrap();
        assert_eq!(m.buf.len() % 4, 0);
        let attrs = parse_attrs(&m.buf).unwrap();
        assert_eq!(
            attrs,
            vec![
                Attr { kind: 5, nested: false, payload: &[1] },
                Attr { kind: 6, nested: false, payload: &[] },
                Attr { kind: 7, nested: true, payload: &[9, 9, 9, 9, 9] },
            ]
        );
        // The last attribute's padding may be absent.
        let unpadded = &m.buf[..m.buf.len() - 3];
        assert_eq!(parse_attrs(unpadded).unwrap(), attrs);
    }

    #[test]
    fn entry_round_trip_v4_and_v6() {
        let (c, vip, ep) = (ip("198.51.100.5"), ip("198.51.100.200"), ip("198.51.100.9"));
        let orig = tuple_attrs(c, vip, UDP, 1000, 53);
        let reply = tuple_attrs(ep, c, UDP, 53, 1000);
        let e = parse_entry(&entry_payload(libc::AF_INET as u8, &orig, &reply, Some(3))).unwrap();
        assert_eq!(e.family, libc::AF_INET as u8);
        assert_eq!(
            e.orig,
            Tuple { src: Some(c), dst: Some(vip), proto: UDP, src_port: Some(1000), dst_port: Some(53) }
        );
        assert_eq!(e.reply.src, Some(ep));
        assert_eq!(e.orig_raw, orig);
        assert_eq!(e.zone, Some(3u16.to_be_bytes()));
        assert_eq!(e.id, Some(7u32.to_be_bytes()));

        let (c6, vip6, ep6) = (ip("2001:db8::5"), ip("2001:db8::200"), ip("2001:db8::9"));
        let orig = tuple_attrs(c6, vip6, UDP, 40000, 5353);
        let reply = tuple_attrs(ep6, c6, UDP, 5353, 40000);
        let e = parse_entry(&entry_payload(libc::AF_INET6 as u8, &orig, &reply, None)).unwrap();
        assert_eq!((e.orig.dst, e.orig.dst_port, e.reply.src, e.zone), (Some(vip6), Some(5353), Some(ep6), None));
    }

    #[test]
    fn delete_request_carries_the_original_tuple_zone_and_id() {
        let orig = tuple_attrs(ip("198.51.100.5"), ip("198.51.100.200"), UDP, 1000, 53);
        let reply = tuple_attrs(ip("198.51.100.9"), ip("198.51.100.5"), UDP, 53, 1000);
        let e = parse_entry(&entry_payload(libc::AF_INET as u8, &orig, &reply, Some(1))).unwrap();
        let req = delete_request(Vec::new(), &e, 42).unwrap();
        let msgs = parse_msgs(&req).unwrap();
        assert_eq!(msgs.len(), 1);
        let m = &msgs[0];
        assert_eq!((m.kind, m.flags, m.seq), (0x0102, NLM_F_REQUEST | NLM_F_ACK, 42));
        assert_eq!(&m.payload[..4], &[libc::AF_INET as u8, 0, 0, 0]);
        let attrs = parse_attrs(&m.payload[4..]).unwrap();
        assert_eq!(attrs[0], Attr { kind: CTA_TUPLE_ORIG, nested: true, payload: &orig });
        assert_eq!(attrs[1], Attr { kind: CTA_ZONE, nested: false, payload: &1u16.to_be_bytes() });
        assert_eq!(attrs[2], Attr { kind: CTA_ID, nested: false, payload: &7u32.to_be_bytes() });
        // Two requests share one datagram.
        let two = delete_request(req, &e, 43).unwrap();
        assert_eq!(parse_msgs(&two).unwrap().iter().map(|m| m.seq).collect::<Vec<_>>(), [42, 43]);
    }

    #[test]
    fn truncated_or_corrupt_input_is_an_error_not_a_panic() {
        let orig = tuple_attrs(ip("198.51.100.5"), ip("198.51.100.200"), UDP, 1000, 53);
        let reply = tuple_attrs(ip("198.51.100.9"), ip("198.51.100.5"), UDP, 53, 1000);
        let full = entry_payload(libc::AF_INET as u8, &orig, &reply, Some(1));
        assert!(parse_entry(&full).is_ok());
        // Every truncation either fails cleanly or (when it only drops trailing optional
        // attributes or padding) still parses; none panics.
        let mut errors = 0;
        for n in 0..full.len() {
            if parse_entry(&full[..n]).is_err() {
                errors += 1;
            }
        }
        assert!(errors > full.len() / 2, "{errors} of {}", full.len());
        assert!(parse_entry(&full[..full.len() - 5]).is_err());
        assert!(parse_attrs(&[8, 0, 1]).is_err(), "short header");
        assert!(parse_attrs(&[8, 0, 1, 0, 0]).is_err(), "length past the end");
        assert!(parse_attrs(&[2, 0, 1, 0]).is_err(), "length below the header");
        // A wrong-sized address or port.
        let mut bad = MsgBuilder { buf: Vec::new(), start: 0 };
        let mut inner = MsgBuilder { buf: Vec::new(), start: 0 };
        inner.attr(CTA_IP_V4_SRC, &[1, 2, 3]).unwrap();
        bad.nested(CTA_TUPLE_IP, &inner.buf).unwrap();
        assert!(matches!(parse_tuple(&bad.buf), Err(Error::Malformed(_))));
        // Every single-byte corruption of the length fields: no panic.
        for i in 0..full.len() {
            let mut c = full.clone();
            c[i] = c[i].wrapping_add(0x41);
            let _ = parse_entry(&c);
        }
        // Netlink headers too.
        let req = delete_request(Vec::new(), &parse_entry(&full).unwrap(), 1).unwrap();
        for n in 1..req.len() {
            assert!(parse_msgs(&req[..n]).is_err(), "{n}");
        }
        assert!(error_code(&[0, 0]).is_err());
    }

    #[test]
    fn dump_datagrams_collect_entries_until_done_and_surface_errors() {
        let orig = tuple_attrs(ip("198.51.100.5"), ip("198.51.100.200"), UDP, 1000, 53);
        let reply = tuple_attrs(ip("198.51.100.9"), ip("198.51.100.5"), UDP, 53, 1000);
        let entry = entry_payload(libc::AF_INET as u8, &orig, &reply, None);
        let msg = |buf: Vec<u8>, kind: u16, seq: u32, payload: &[u8]| {
            let mut m = MsgBuilder::new(buf, kind, NLM_F_MULTI, seq);
            m.bytes(payload);
            m.finish()
        };
        let new = ct_msg_type(IPCTNL_MSG_CT_NEW);
        let dgram = msg(msg(Vec::new(), new, 5, &entry), new, 4, &entry); // the second is not ours
        let (mut entries, mut intr) = (Vec::new(), false);
        assert!(!dump_datagram(&dgram, 5, &mut entries, &mut intr).unwrap());
        let done = msg(msg(Vec::new(), new, 5, &entry), NLMSG_DONE, 5, &0i32.to_ne_bytes());
        assert!(dump_datagram(&done, 5, &mut entries, &mut intr).unwrap());
        assert_eq!((entries.len(), intr), (2, false));
        let refused = msg(Vec::new(), NLMSG_ERROR, 5, &(-libc::EPERM).to_ne_bytes());
        let err = dump_datagram(&refused, 5, &mut entries, &mut intr).unwrap_err();
        assert!(matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(libc::EPERM)), "{err}");
        let truncated = msg(Vec::new(), new, 5, &entry[..entry.len() - 6]);
        assert!(matches!(dump_datagram(&truncated, 5, &mut entries, &mut intr), Err(Error::Malformed(_))));
    }

    #[test]
    fn filters_match_like_the_conntrack_cli() {
        let orig = tuple_attrs(ip("198.51.100.5"), ip("198.51.100.200"), UDP, 1000, 53);
        let reply = tuple_attrs(ip("198.51.100.9"), ip("198.51.100.5"), UDP, 53, 1000);
        let e = parse_entry(&entry_payload(libc::AF_INET as u8, &orig, &reply, None)).unwrap();
        let f = Filter {
            protocol: UDP,
            orig_dst: Some(ip("198.51.100.200")),
            orig_dst_port: Some(53),
            reply_src: Some(ip("198.51.100.9")),
        };
        assert!(f.matches(&e));
        assert!(Filter { orig_dst: None, orig_dst_port: None, reply_src: None, ..f.clone() }.matches(&e));
        assert!(!Filter { protocol: libc::IPPROTO_TCP as u8, ..f.clone() }.matches(&e));
        assert!(!Filter { orig_dst_port: Some(54), ..f.clone() }.matches(&e));
        assert!(!Filter { reply_src: Some(ip("198.51.100.10")), ..f.clone() }.matches(&e));
        assert!(!Filter { orig_dst: Some(ip("::ffff:198.51.100.200")), ..f.clone() }.matches(&e));
    }

    /// Runs [`delete`] inside a lab namespace against entries made with the `conntrack` CLI and
    /// with real UDP traffic, and checks with `conntrack -L` that exactly the matches are gone.
    mod netns {
        use super::*;
        use lab::{Lab, Netns};
        use std::net::UdpSocket;

        const VIP: &str = "198.51.100.200";
        const VIP6: &str = "2001:db8::200";

        fn insert(
            lab: &Lab,
            ns: &(impl Netns + ?Sized),
            proto: &str,
            (src, sport): (&str, u16),
            (dst, dport): (&str, u16),
            ep: &str,
            extra: &[&str],
        ) {
            let (sport, dport) = (sport.to_string(), dport.to_string());
            let mut argv =
                vec!["conntrack", "-I", "-p", proto, "-s", src, "-d", dst, "--sport", &sport, "--dport", &dport];
            argv.extend([
                "--reply-src",
                ep,
                "--reply-dst",
                src,
                "--reply-port-src",
                &dport,
                "--reply-port-dst",
                &sport,
            ]);
            argv.extend(["-t", "120"]);
            argv.extend(extra);
            lab.exec_ok(ns, &argv).unwrap();
        }

        /// `conntrack -L` for both families, one entry a line.
        fn list(lab: &Lab, ns: &(impl Netns + ?Sized)) -> Vec<String> {
            let mut out = lab.exec_ok(ns, &["conntrack", "-L", "-f", "ipv4"]).unwrap();
            out += &lab.exec_ok(ns, &["conntrack", "-L", "-f", "ipv6"]).unwrap();
            out.lines().map(str::to_owned).collect()
        }

        fn has(list: &[String], proto: &str, orig: &str) -> bool {
            list.iter().any(|l| l.starts_with(proto) && l.contains(orig))
        }

        #[test]
        fn deletes_exactly_the_matching_entries_in_the_callers_namespace() {
            let Some(lab) = Lab::new_or_skip("ct") else { return };
            let sw = lab.switch("sw", "198.51.100.0/24").unwrap();
            let a = lab.client("a", &sw).unwrap();
            let b = lab.client("b", &sw).unwrap();
            let (c, c6) = ("198.51.100.5", "2001:db8::5");

            // Synthetic entries in `a`, as left behind by a VIP DNATed to endpoint .9.
            insert(&lab, &a, "udp", (c, 1000), (VIP, 53), "198.51.100.9", &[]); // delete
            insert(&lab, &a, "udp", (c, 1001), (VIP, 53), "198.51.100.9", &["-w", "1"]); // delete (zone 1)
            insert(&lab, &a, "udp", (c, 1002), (VIP, 53), "198.51.100.10", &[]); // other endpoint: keep
            insert(&lab, &a, "udp", (c, 1003), (VIP, 54), "198.51.100.9", &[]); // other port: keep
            insert(&lab, &a, "tcp", (c, 1000), (VIP, 53), "198.51.100.9", &["--state", "ESTABLISHED"]); // keep
            insert(&lab, &a, "udp", (c6, 1000), (VIP6, 53), "2001:db8::9", &[]); // delete
            insert(&lab, &a, "udp", (c6, 1001), (VIP6, 53), "2001:db8::10", &[]); // keep
            // The same stale entry in another namespace must survive: tables are per netns.
            insert(&lab, &b, "udp", (c, 1000), (VIP, 53), "198.51.100.9", &[]);

            // Real entries: make `a` track its own output, then send UDP to `b`.
            lab.exec_ok(&a, &["nft", "add", "table", "inet", "cttest"]).unwrap();
            lab.exec_ok(
                &a,
                &["nft", "add", "chain", "inet", "cttest", "out", "{ type filter hook output priority 0 ; }"],
            )
            .unwrap();
            lab.exec_ok(&a, &["nft", "add", "rule", "inet", "cttest", "out", "ct", "state", "new", "counter"]).unwrap();
            let (a_ip, b_ip) = (IpAddr::V4(a.ip()), IpAddr::V4(b.ip()));
            lab.check_target(b_ip).unwrap();
            lab.in_ns(&a, || {
                let s = UdpSocket::bind((a_ip, 0)).unwrap();
                s.send_to(b"stale", (b_ip, 9999)).unwrap(); // delete
                s.send_to(b"fresh", (b_ip, 9998)).unwrap(); // keep
            })
            .unwrap();
            let before = list(&lab, &a);
            let b_orig = format!("src={a_ip} dst={b_ip} sport=");
            assert!(
                before.iter().any(|l| l.starts_with("udp") && l.contains(&b_orig) && l.contains("dport=9999")),
                "{before:#?}"
            );
            assert_eq!(before.len(), 9, "{before:#?}");

            let udp = libc::IPPROTO_UDP as u8;
            let filters = [
                Filter {
                    protocol: udp,
                    orig_dst: Some(ip(VIP)),
                    orig_dst_port: Some(53),
                    reply_src: Some(ip("198.51.100.9")),
                },
                Filter {
                    protocol: udp,
                    orig_dst: Some(ip(VIP6)),
                    orig_dst_port: Some(53),
                    reply_src: Some(ip("2001:db8::9")),
                },
                Filter { protocol: udp, orig_dst: Some(b_ip), orig_dst_port: Some(9999), reply_src: Some(b_ip) },
            ];
            let deleted = lab.in_ns(&a, || delete(&filters)).unwrap().unwrap();
            let after = list(&lab, &a);
            assert_eq!(deleted, 4, "{after:#?}");
            assert_eq!(after.len(), 5, "{after:#?}");
            let gone = [
                ("udp", format!("src={c} dst={VIP} sport=1000 dport=53 ")),
                ("udp", format!("src={c} dst={VIP} sport=1001 dport=53 ")),
                ("udp", format!("src={c6} dst={VIP6} sport=1000 dport=53 ")),
                ("udp", "dport=9999 ".to_owned()),
            ];
            for (proto, orig) in &gone {
                assert!(!has(&after, proto, orig), "{orig} survived: {after:#?}");
            }
            let kept = [
                ("udp", "sport=1002 dport=53 ".to_owned()),
                ("udp", "sport=1003 dport=54 ".to_owned()),
                ("tcp", format!("src={c} dst={VIP} sport=1000 dport=53 ")),
                ("udp", format!("src={c6} dst={VIP6} sport=1001 dport=53 ")),
                ("udp", "dport=9998 ".to_owned()),
            ];
            for (proto, orig) in &kept {
                assert!(has(&after, proto, orig), "{orig} was deleted: {after:#?}");
            }
            let other = list(&lab, &b);
            assert!(has(&other, "udp", &format!("src={c} dst={VIP} sport=1000 dport=53 ")), "{other:#?}");

            // Idempotent: nothing left to delete.
            assert_eq!(lab.in_ns(&a, || delete(&filters)).unwrap().unwrap(), 0);
            assert_eq!(lab.in_ns(&a, || delete(&[])).unwrap().unwrap(), 0);
        }
    }
}

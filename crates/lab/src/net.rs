//! Address arithmetic and a dependency-free ICMP echo.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// IP prefixes are the project's one CIDR type (`api::net`), parsed to their network address.
pub use api::net::Cidr;

/// The `n`th host address of an IPv4 network (1 = first usable); `None` for 0, at or past the
/// broadcast address, or for IPv6.
pub fn host(cidr: &Cidr, n: u32) -> Option<Ipv4Addr> {
    match cidr.nth(u128::from(n)) {
        Some(IpAddr::V4(a)) if n >= 1 && u128::from(u32::from(a)) < cidr.last() => Some(a),
        _ => None,
    }
}

/// Sends one ICMP echo request from the calling thread's network namespace and waits for the reply.
///
/// Written against a raw socket rather than running `ping` because iputils is not installed on
/// every machine these tests run on, and a missing binary must not turn a reachability check
/// into a skipped one.
pub(crate) fn icmp_echo(dst: Ipv4Addr, timeout: Duration) -> io::Result<Duration> {
    static SEQ: AtomicU16 = AtomicU16::new(1);
    // SAFETY: plain socket(2); the result is checked before it is wrapped.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_ICMP) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let (id, seq) = (std::process::id() as u16, SEQ.fetch_add(1, Ordering::Relaxed));
    let mut pkt = [0u8; 16];
    pkt[0] = 8; // echo request
    pkt[4..6].copy_from_slice(&id.to_be_bytes());
    pkt[6..8].copy_from_slice(&seq.to_be_bytes());
    pkt[8..].copy_from_slice(b"portico!");
    let sum = checksum(&pkt);
    pkt[2..4].copy_from_slice(&sum.to_be_bytes());
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(dst).to_be() },
        sin_zero: [0; 8],
    };
    let start = Instant::now();
    // SAFETY: pkt and `to` are valid for the lengths passed.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (&to as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 1500];
    loop {
        let left = timeout.checked_sub(start.elapsed()).filter(|d| !d.is_zero()).ok_or_else(|| {
            io::Error::new(io::ErrorKind::TimedOut, format!("no ICMP echo reply from {dst} within {timeout:?}"))
        })?;
        let mut pfd = libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as libc::c_int) } < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if pfd.revents & libc::POLLIN == 0 {
            continue;
        }
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n < 0 {
            continue;
        }
        // A raw socket sees every ICMP packet of the namespace, the IP header included.
        let pkt = &buf[..n as usize];
        let ihl = usize::from(pkt.first().map_or(0, |b| b & 0x0f)) * 4;
        if pkt.len() < ihl + 8 || ihl < 20 || pkt[12..16] != dst.octets() {
            continue;
        }
        let icmp = &pkt[ihl..];
        if icmp[0] == 0 && icmp[4..6] == id.to_be_bytes() && icmp[6..8] == seq.to_be_bytes() {
            return Ok(start.elapsed());
        }
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parse_contains_and_hosts() {
        let c: Cidr = "198.51.100.77/24".parse().unwrap();
        assert_eq!(c.to_string(), "198.51.100.0/24");
        assert!(c.contains("198.51.100.255".parse().unwrap()));
        assert!(!c.contains("198.51.101.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        assert_eq!(host(&c, 1), Some(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!(host(&c, 254), Some(Ipv4Addr::new(198, 51, 100, 254)));
        assert_eq!(host(&c, 255), None);
        assert_eq!(host(&c, 0), None);
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6: Cidr = "fd00::1/64".parse().unwrap();
        assert_eq!(v6.to_string(), "fd00::/64");
        assert!(v6.contains("fd00::abcd".parse().unwrap()));
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn icmp_checksum_of_a_known_packet() {
        // Echo request, id 1, seq 1, no payload: 0x0800 + 0x0001 + 0x0001 = 0x0802 -> !0x0802.
        assert_eq!(checksum(&[8, 0, 0, 0, 0, 1, 0, 1]), 0xf7fd);
    }
}

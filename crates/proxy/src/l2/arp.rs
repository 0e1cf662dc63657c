//! ARP over Ethernet (RFC 826): parsing who-has requests, building replies and gratuitous ARP.
//!
//! Pure byte work on whole Ethernet frames; every parser takes arbitrary bytes and returns
//! `None` for anything it does not understand, so a garbage frame can never panic the announcer.

use std::net::Ipv4Addr;

use super::Mac;

pub(crate) const ETH_P_ARP: u16 = 0x0806;
const ETH_HEADER: usize = 14;
/// The IPv4-over-Ethernet ARP body: htype, ptype, hlen, plen, oper, sha, spa, tha, tpa.
const ARP_BODY: usize = 28;
/// Frames are padded to the Ethernet minimum (without FCS) so real wires accept them.
const MIN_FRAME: usize = 60;
const OP_REQUEST: u16 = 1;
const OP_REPLY: u16 = 2;
pub(crate) const BROADCAST: Mac = [0xff; 6];

/// A question "who has `target_ip`? tell `sender_ip` at `sender_mac`".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpRequest {
    pub sender_mac: Mac,
    /// `0.0.0.0` for an RFC 5227 probe.
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

/// An IPv4-over-Ethernet ARP request in `frame`, if it is one and it asks a question.
///
/// Gratuitous announcements (sender IP equal to target IP) are not questions and give `None`;
/// so do replies, other hardware or protocol types and truncated frames.
pub fn parse_request(frame: &[u8]) -> Option<ArpRequest> {
    let (eth, arp) = frame.split_at_checked(ETH_HEADER)?;
    let arp = arp.get(..ARP_BODY)?;
    if be16(&eth[12..14]) != ETH_P_ARP
        || be16(&arp[0..2]) != 1 // Ethernet
        || be16(&arp[2..4]) != 0x0800 // IPv4
        || arp[4] != 6
        || arp[5] != 4
        || be16(&arp[6..8]) != OP_REQUEST
    {
        return None;
    }
    let sender_mac: Mac = arp[8..14].try_into().ok()?;
    let sender_ip = ipv4(&arp[14..18]);
    let target_ip = ipv4(&arp[24..28]);
    if sender_ip == target_ip || is_multicast_mac(&sender_mac) {
        return None;
    }
    Some(ArpRequest { sender_mac, sender_ip, target_ip })
}

/// The unicast reply to `req` saying `req.target_ip` is at `our_mac`.
pub fn build_reply(req: &ArpRequest, our_mac: Mac) -> Vec<u8> {
    frame(req.sender_mac, our_mac, OP_REPLY, req.target_ip, req.sender_mac, req.sender_ip)
}

/// A gratuitous ARP announcing `ip` at `our_mac`: a broadcast request whose sender and target
/// IP are both `ip` (the form Linux and MetalLB send on takeover; any host that already has an
/// entry for `ip` updates it).
pub fn build_gratuitous(ip: Ipv4Addr, our_mac: Mac) -> Vec<u8> {
    frame(BROADCAST, our_mac, OP_REQUEST, ip, BROADCAST, ip)
}

fn frame(dst: Mac, src: Mac, op: u16, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(MIN_FRAME);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&src);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa.octets());
    f.resize(MIN_FRAME, 0);
    f
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn ipv4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn is_multicast_mac(mac: &Mac) -> bool {
    mac[0] & 1 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Mac = [0x02, 0, 0, 0, 0, 0xaa];
    const HIM: Mac = [0x02, 0, 0, 0, 0, 0xbb];

    /// A request as Linux sends it, written out by hand rather than with `frame`.
    fn linux_request() -> Vec<u8> {
        let mut f = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0xbb, 0x08, 0x06];
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&[2, 0, 0, 0, 0, 0xbb, 198, 51, 100, 2]);
        f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 198, 51, 100, 200]);
        f
    }

    #[test]
    fn parses_a_request_and_answers_it() {
        let req = parse_request(&linux_request()).unwrap();
        assert_eq!(
            req,
            ArpRequest {
                sender_mac: HIM,
                sender_ip: Ipv4Addr::new(198, 51, 100, 2),
                target_ip: Ipv4Addr::new(198, 51, 100, 200)
            }
        );
        let reply = build_reply(&req, ME);
        assert_eq!(reply.len(), 60);
        let mut want = vec![2, 0, 0, 0, 0, 0xbb, 2, 0, 0, 0, 0, 0xaa, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2];
        want.extend_from_slice(&[2, 0, 0, 0, 0, 0xaa, 198, 51, 100, 200]);
        want.extend_from_slice(&[2, 0, 0, 0, 0, 0xbb, 198, 51, 100, 2]);
        assert_eq!(&reply[..42], &want[..]);
        assert!(reply[42..].iter().all(|&b| b == 0));
        // A reply is not a request.
        assert_eq!(parse_request(&reply), None);
    }

    #[test]
    fn padded_requests_and_probes_parse() {
        let mut f = linux_request();
        f.resize(60, 0);
        assert!(parse_request(&f).is_some());
        // RFC 5227 probe: sender IP 0.0.0.0 is still a question.
        f[28..32].copy_from_slice(&[0, 0, 0, 0]);
        assert_eq!(parse_request(&f).unwrap().sender_ip, Ipv4Addr::UNSPECIFIED);
    }

    #[test]
    fn gratuitous_is_a_broadcast_announcement_not_a_question() {
        let ip = Ipv4Addr::new(198, 51, 100, 200);
        let g = build_gratuitous(ip, ME);
        assert_eq!(g.len(), 60);
        assert_eq!(&g[0..6], &BROADCAST);
        assert_eq!(&g[6..12], &ME);
        assert_eq!(be16(&g[12..14]), ETH_P_ARP);
        assert_eq!(be16(&g[20..22]), OP_REQUEST);
        assert_eq!(&g[22..28], &ME);
        assert_eq!(&g[28..32], &ip.octets());
        assert_eq!(&g[38..42], &ip.octets());
        assert_eq!(parse_request(&g), None);
    }

    #[test]
    fn rejects_everything_else() {
        let good = linux_request();
        for len in 0..good.len() {
            assert_eq!(parse_request(&good[..len]), None, "truncated to {len}");
        }
        for (at, value) in [(12, 0x86), (15, 6), (16, 0x86), (18, 8), (19, 16), (21, 2), (21, 3), (22, 0x01)] {
            let mut f = good.clone();
            f[at] = value;
            assert_eq!(parse_request(&f), None, "byte {at} = {value:#x}");
        }
        // Deterministic pseudo-random garbage of every length: must never panic.
        let mut x: u32 = 0x1234_5678;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = parse_request(&bytes);
        }
    }
}

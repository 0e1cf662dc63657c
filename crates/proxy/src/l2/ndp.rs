//! IPv6 Neighbor Discovery (RFC 4861) over Ethernet: parsing Neighbor Solicitations and building
//! Neighbor Advertisements, solicited and unsolicited, with the ICMPv6 checksum.
//!
//! Pure byte work on whole Ethernet frames. The parser applies RFC 4861 §7.1.1's validity checks
//! (hop limit 255, code 0, checksum, length, non-multicast target, sane options, the rules for an
//! unspecified source) and returns `None` for anything else, so garbage cannot panic the caller.

use std::net::Ipv6Addr;

use super::Mac;

pub(crate) const ETH_P_IPV6: u16 = 0x86dd;
const ETH_HEADER: usize = 14;
const IPV6_HEADER: usize = 40;
pub(crate) const NEXT_HEADER_ICMPV6: u8 = 58;
pub(crate) const TYPE_NS: u8 = 135;
const TYPE_NA: u8 = 136;
/// Type, code, checksum, reserved, target.
const ND_MESSAGE: usize = 24;
const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;
/// ff02::1, all nodes.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A valid Neighbor Solicitation: "who has `target`?" from `src` (`::` during DAD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborSolicitation {
    /// The Ethernet source of the frame, where a reply goes without a link-layer option.
    pub eth_src: Mac,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub target: Ipv6Addr,
    /// The source link-layer address option, if present.
    pub source_lladdr: Option<Mac>,
}

/// The solicited-node multicast group of `addr`: ff02::1:ffXX:XXXX with its low 24 bits.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15]])
}

/// The Ethernet group address of an IPv6 multicast address (RFC 2464: 33:33 + low 32 bits).
pub fn multicast_mac(group: Ipv6Addr) -> Mac {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// A valid Neighbor Solicitation in `frame` sent either to its target or to the target's
/// solicited-node group; `None` for anything else.
pub fn parse_solicitation(frame: &[u8]) -> Option<NeighborSolicitation> {
    let (eth, rest) = frame.split_at_checked(ETH_HEADER)?;
    if u16::from_be_bytes([eth[12], eth[13]]) != ETH_P_IPV6 {
        return None;
    }
    let (ip, payload) = rest.split_at_checked(IPV6_HEADER)?;
    if ip[0] >> 4 != 6 || ip[6] != NEXT_HEADER_ICMPV6 || ip[7] != 255 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    // Ethernet padding may follow the packet; the IPv6 length says where it ends.
    let icmp = payload.get(..len)?;
    if len < ND_MESSAGE || icmp[0] != TYPE_NS || icmp[1] != 0 {
        return None;
    }
    let src = v6(&ip[8..24]);
    let dst = v6(&ip[24..40]);
    if checksum(src, dst, icmp) != 0 {
        return None;
    }
    let target = v6(&icmp[8..24]);
    if target.is_multicast() || target.is_unspecified() || src.is_multicast() {
        return None;
    }
    if dst != target && dst != solicited_node(target) {
        return None;
    }
    let mut source_lladdr = None;
    let mut opts = &icmp[ND_MESSAGE..];
    while !opts.is_empty() {
        let olen = usize::from(*opts.get(1)?) * 8;
        if olen == 0 || olen > opts.len() {
            return None;
        }
        if opts[0] == OPT_SOURCE_LLADDR && olen == 8 {
            source_lladdr = Some(opts[2..8].try_into().ok()?);
        }
        opts = &opts[olen..];
    }
    if src.is_unspecified() && (dst != solicited_node(target) || source_lladdr.is_some()) {
        return None;
    }
    let eth_src: Mac = eth[6..12].try_into().ok()?;
    Some(NeighborSolicitation { eth_src, src, dst, target, source_lladdr })
}

/// The advertisement answering `ns`: `ns.target` is at `our_mac`, sent from `src` (an address of
/// the interface, e.g. its link-local one). Solicited and override, unicast to the asker; a DAD
/// probe (source `::`) is answered to all nodes without the solicited flag (RFC 4861 §7.2.4).
pub fn build_advertisement(ns: &NeighborSolicitation, our_mac: Mac, src: Ipv6Addr) -> Vec<u8> {
    if ns.src.is_unspecified() {
        return advertisement(multicast_mac(ALL_NODES), our_mac, src, ALL_NODES, ns.target, FLAG_OVERRIDE);
    }
    let eth_dst = ns.source_lladdr.unwrap_or(ns.eth_src);
    advertisement(eth_dst, our_mac, src, ns.src, ns.target, FLAG_SOLICITED | FLAG_OVERRIDE)
}

/// An unsolicited advertisement of `target` at `our_mac` to all nodes, with the override flag so
/// existing neighbour entries switch to us (the IPv6 counterpart of gratuitous ARP).
pub fn build_unsolicited(target: Ipv6Addr, our_mac: Mac, src: Ipv6Addr) -> Vec<u8> {
    advertisement(multicast_mac(ALL_NODES), our_mac, src, ALL_NODES, target, FLAG_OVERRIDE)
}

fn advertisement(eth_dst: Mac, our_mac: Mac, src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr, flags: u8) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(ND_MESSAGE + 8);
    icmp.extend_from_slice(&[TYPE_NA, 0, 0, 0, flags, 0, 0, 0]);
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[OPT_TARGET_LLADDR, 1]);
    icmp.extend_from_slice(&our_mac);
    let sum = checksum(src, dst, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut f = Vec::with_capacity(ETH_HEADER + IPV6_HEADER + icmp.len());
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&our_mac);
    f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[NEXT_HEADER_ICMPV6, 255]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&icmp);
    f
}

/// The ICMPv6 checksum over the pseudo-header and `icmp`: the value to store when the checksum
/// field is zero, and 0 when checking a message that carries a correct one.
pub fn checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for c in bytes.chunks(2) {
            sum += u64::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(icmp.len() as u32).to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(icmp);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn v6(b: &[u8]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[..16]);
    Ipv6Addr::from(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Mac = [0x02, 0, 0, 0, 0, 0xaa];
    const HIM: Mac = [0x02, 0, 0, 0, 0, 0xbb];

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// A solicitation built by hand the way Linux sends it, with a correct checksum.
    fn ns(src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr, slla: Option<Mac>) -> Vec<u8> {
        let mut icmp = vec![TYPE_NS, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&target.octets());
        if let Some(mac) = slla {
            icmp.extend_from_slice(&[1, 1]);
            icmp.extend_from_slice(&mac);
        }
        let sum = checksum(src, dst, &icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut f = multicast_mac(dst).to_vec();
        f.extend_from_slice(&HIM);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
        f.extend_from_slice(&[58, 255]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(&icmp);
        f
    }

    #[test]
    fn solicited_node_group_and_mac() {
        let t = a("fd00:1ab::12:3456");
        assert_eq!(solicited_node(t), a("ff02::1:ff12:3456"));
        assert_eq!(multicast_mac(solicited_node(t)), [0x33, 0x33, 0xff, 0x12, 0x34, 0x56]);
        assert_eq!(multicast_mac(ALL_NODES), [0x33, 0x33, 0, 0, 0, 1]);
    }

    #[test]
    fn checksum_matches_a_known_packet() {
        // NS from fe80::1 to ff02::1:ff00:2 for fe80::2, SLLA 00:00:00:00:00:01; the expected
        // checksum is summed by hand from the non-zero 16-bit words.
        let src = a("fe80::1");
        let dst = a("ff02::1:ff00:2");
        let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&a("fe80::2").octets());
        icmp.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 1]);
        // Hand sum: src fe80+1, dst ff02+1+ff00+2, len 32, nh 58, icmp 8700+fe80+2+0101+1.
        let words: u32 =
            0xfe80 + 0x0001 + 0xff02 + 0x0001 + 0xff00 + 0x0002 + 32 + 58 + 0x8700 + 0xfe80 + 0x0002 + 0x0101 + 0x0001;
        let mut s = words;
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        assert_eq!(checksum(src, dst, &icmp), !(s as u16));
        let sum = checksum(src, dst, &icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(checksum(src, dst, &icmp), 0);
    }

    #[test]
    fn parses_multicast_and_unicast_solicitations() {
        let t = a("fd00:1ab::200");
        let me = a("fd00:1ab::2");
        let f = ns(me, solicited_node(t), t, Some(HIM));
        let got = parse_solicitation(&f).unwrap();
        assert_eq!(
            got,
            NeighborSolicitation { eth_src: HIM, src: me, dst: solicited_node(t), target: t, source_lladdr: Some(HIM) }
        );
        // Unicast NUD probe, no option, with Ethernet padding after it.
        let mut f = ns(me, t, t, None);
        f.extend_from_slice(&[0; 6]);
        assert_eq!(parse_solicitation(&f).unwrap().source_lladdr, None);
        // DAD probe: source ::, to the solicited-node group, no option.
        let f = ns(Ipv6Addr::UNSPECIFIED, solicited_node(t), t, None);
        assert!(parse_solicitation(&f).is_some());
    }

    #[test]
    fn rejects_invalid_solicitations() {
        let t = a("fd00:1ab::200");
        let me = a("fd00:1ab::2");
        // Destination neither the target nor its group.
        assert_eq!(parse_solicitation(&ns(me, ALL_NODES, t, Some(HIM))), None);
        assert_eq!(parse_solicitation(&ns(me, solicited_node(a("fd00::201")), t, Some(HIM))), None);
        // DAD with a link-layer option, DAD to unicast, multicast target.
        assert_eq!(parse_solicitation(&ns(Ipv6Addr::UNSPECIFIED, solicited_node(t), t, Some(HIM))), None);
        assert_eq!(parse_solicitation(&ns(Ipv6Addr::UNSPECIFIED, t, t, None)), None);
        assert_eq!(parse_solicitation(&ns(me, a("ff02::1"), a("ff02::1"), None)), None);

        let good = ns(me, solicited_node(t), t, Some(HIM));
        assert!(parse_solicitation(&good).is_some());
        for len in 0..good.len() {
            assert_eq!(parse_solicitation(&good[..len]), None, "truncated to {len}");
        }
        // Ethertype, version, next header, hop limit, type, code, checksum, zero-length option.
        for (at, value) in [(12, 0x08), (14, 0x40), (20, 17), (21, 64), (54, 136), (55, 1), (56, 0), (79, 0)] {
            let mut f = good.clone();
            f[at] ^= value.max(1);
            assert_eq!(parse_solicitation(&f), None, "byte {at}");
        }
        // Payload length larger than the frame.
        let mut f = good.clone();
        f[19] += 8;
        assert_eq!(parse_solicitation(&f), None);
        let mut x: u32 = 0x9e37_79b9;
        for len in 0..300 {
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = parse_solicitation(&bytes);
            // Also garbage behind a plausible header.
            if bytes.len() > 62 {
                bytes[..62].copy_from_slice(&good[..62]);
                let _ = parse_solicitation(&bytes);
            }
        }
    }

    #[test]
    fn solicited_advertisement() {
        let t = a("fd00:1ab::200");
        let asker = a("fd00:1ab::2");
        let src = a("fe80::aa");
        let req = parse_solicitation(&ns(asker, solicited_node(t), t, Some([2, 0, 0, 0, 0, 0xcc]))).unwrap();
        let f = build_advertisement(&req, ME, src);
        assert_eq!(f.len(), 14 + 40 + 32);
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 0xcc], "to the link-layer option's address");
        assert_eq!(&f[6..12], &ME);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(f[14] >> 4, 6);
        assert_eq!(u16::from_be_bytes([f[18], f[19]]), 32);
        assert_eq!((f[20], f[21]), (58, 255));
        assert_eq!(v6(&f[22..38]), src);
        assert_eq!(v6(&f[38..54]), asker);
        let icmp = &f[54..];
        assert_eq!((icmp[0], icmp[1]), (TYPE_NA, 0));
        assert_eq!(icmp[4], FLAG_SOLICITED | FLAG_OVERRIDE);
        assert_eq!(v6(&icmp[8..24]), t);
        assert_eq!(&icmp[24..26], &[2, 1]);
        assert_eq!(&icmp[26..32], &ME);
        assert_eq!(checksum(src, asker, icmp), 0);
        // Without the option the reply goes to the frame's source.
        let req = parse_solicitation(&ns(asker, t, t, None)).unwrap();
        assert_eq!(&build_advertisement(&req, ME, src)[0..6], &HIM);
    }

    #[test]
    fn dad_and_unsolicited_advertisements_go_to_all_nodes() {
        let t = a("fd00:1ab::200");
        let src = a("fe80::aa");
        let dad = parse_solicitation(&ns(Ipv6Addr::UNSPECIFIED, solicited_node(t), t, None)).unwrap();
        for f in [build_advertisement(&dad, ME, src), build_unsolicited(t, ME, src)] {
            assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
            assert_eq!(v6(&f[38..54]), ALL_NODES);
            assert_eq!(f[54], TYPE_NA);
            assert_eq!(f[58], FLAG_OVERRIDE, "override, not solicited");
            assert_eq!(v6(&f[62..78]), t);
            assert_eq!(checksum(src, ALL_NODES, &f[54..]), 0);
            // An advertisement is not a solicitation.
            assert_eq!(parse_solicitation(&f), None);
        }
    }
}

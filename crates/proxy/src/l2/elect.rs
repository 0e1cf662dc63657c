//! Which node announces a LoadBalancer IP: MetalLB's layer-2 election, as a pure function.
//!
//! MetalLB's speaker (`layer2Controller.ShouldAnnounce`, without its optional lease mode) takes
//! the nodes eligible for a service, sorts them by `sha256(node + "#" + ip)` compared as bytes,
//! and the first node announces. `ip` is the service's first LoadBalancer IP rendered the way
//! Go's `net.IP.String()` does: dotted quad for IPv4 *and* for IPv4-mapped IPv6, RFC 5952 text
//! otherwise (which is also what Rust's `Display` gives for every other IPv6 address). Every
//! speaker computes the same order, so exactly one wins without talking to the others, and only
//! the services whose winner disappears move when a node leaves.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

/// The candidate that must announce `ip`, or `None` without candidates. Input order and
/// duplicates do not matter.
pub fn announcer<'a>(ip: IpAddr, candidates: &[&'a str]) -> Option<&'a str> {
    let ip = go_ip_string(ip);
    // The name breaks (impossible) hash ties, so the result never depends on input order.
    candidates.iter().copied().min_by_key(|node| (rank(node, &ip), *node))
}

/// `sha256(node + "#" + ip)`: the sort key of MetalLB's election.
fn rank(node: &str, ip: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update(b"#");
    h.update(ip.as_bytes());
    h.finalize().into()
}

/// `net.IP.String()` from Go: an IPv4-mapped IPv6 address prints as plain IPv4.
fn go_ip_string(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn matches_sha256_of_node_hash_ip() {
        // Golden values from `printf 'n1#198.51.100.200' | sha256sum` and friends:
        // n1 3ee4e073.. < n2 7b1662df.. < n3 9885798b..
        let v4 = ip("198.51.100.200");
        assert_eq!(announcer(v4, &["n3", "n2", "n1"]), Some("n1"));
        assert_eq!(announcer(v4, &["n3", "n2"]), Some("n2"));
        // n2 56df7635.. < n1 a4c40f38.. < n3 d57c1a6e..
        let v6 = ip("fd00:1ab::200");
        assert_eq!(announcer(v6, &["n1", "n2", "n3"]), Some("n2"));
        assert_eq!(announcer(v6, &["n1", "n3"]), Some("n1"));
    }

    #[test]
    fn deterministic_and_independent_of_order() {
        let nodes = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
        for last in 0..50u8 {
            let v4 = IpAddr::from([10, 0, 0, last]);
            let first = announcer(v4, &nodes).unwrap();
            let mut rev = nodes;
            rev.reverse();
            assert_eq!(announcer(v4, &rev), Some(first));
            let mut rot = nodes;
            rot.rotate_left(usize::from(last) % nodes.len());
            assert_eq!(announcer(v4, &rot), Some(first));
            assert_eq!(announcer(v4, &nodes), Some(first));
            let dup = [nodes[3], nodes[0], nodes[3], nodes[5], nodes[1], nodes[2], nodes[4]];
            assert_eq!(announcer(v4, &dup), Some(first));
        }
    }

    #[test]
    fn spreads_ips_over_nodes() {
        let nodes = ["n1", "n2", "n3"];
        let winners: std::collections::HashSet<_> =
            (0..30u8).map(|i| announcer(IpAddr::from([192, 0, 2, i]), &nodes).unwrap()).collect();
        assert_eq!(winners.len(), 3, "30 IPs should not all land on one or two of three nodes");
    }

    #[test]
    fn removing_the_winner_picks_another() {
        let nodes = vec!["n1", "n2", "n3", "n4"];
        for last in 0..20u8 {
            let v6 = IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, u16::from(last)]);
            let winner = announcer(v6, &nodes).unwrap();
            let rest: Vec<&str> = nodes.iter().copied().filter(|n| *n != winner).collect();
            let next = announcer(v6, &rest).unwrap();
            assert_ne!(next, winner);
            // Removing a loser changes nothing.
            let without_loser: Vec<&str> = nodes.iter().copied().filter(|n| *n != next).collect();
            assert_eq!(announcer(v6, &without_loser), Some(winner));
        }
    }

    #[test]
    fn empty_is_none() {
        assert_eq!(announcer(ip("192.0.2.1"), &[]), None);
        assert_eq!(announcer(ip("2001:db8::1"), &["only"]), Some("only"));
    }

    #[test]
    fn mapped_ipv6_hashes_like_go_prints_it() {
        assert_eq!(go_ip_string(ip("::ffff:192.0.2.7")), "192.0.2.7");
        assert_eq!(go_ip_string(ip("2001:db8:0:0:1:0:0:1")), "2001:db8::1:0:0:1");
        assert_eq!(go_ip_string(ip("::102:304")), "::102:304");
        let nodes = ["a", "b", "c", "d", "e"];
        for last in 0..20u8 {
            let v4 = IpAddr::from([192, 0, 2, last]);
            let mapped = IpAddr::V6(std::net::Ipv4Addr::from([192, 0, 2, last]).to_ipv6_mapped());
            assert_eq!(announcer(v4, &nodes), announcer(mapped, &nodes));
        }
    }
}

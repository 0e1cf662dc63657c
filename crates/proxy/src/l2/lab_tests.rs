//! Lab tests: an [`Announcer`] on a node's `eth0`, observed from a client on the same switch
//! through the client's neighbour table and a packet capture in the client's namespace.
//!
//! Needs root and `ip netns` (skipped otherwise, failing under `CI=true`, as every lab test).
//! All traffic stays on the lab's switch; the announced addresses are unassigned addresses of
//! the switch subnet (198.51.100.200) and of a ULA prefix added to the lab (fd00:1ab::/64).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::time::{Duration, Instant};

use lab::{Client, Lab, Netns, Node};

use super::{Announcer, Mac, arp, fmt_mac, ndp};

const VIP4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x1ab, 0, 0, 0, 0, 0, 0x200);
const WRONG_MAC: &str = "02:00:00:00:00:01";

/// Runs `f` with an announcer started on the node's `eth0`; a current-thread runtime is driven
/// on a second thread meanwhile. The sockets are made inside the node's namespace (they stay
/// bound to it), the task runs wherever the runtime does.
fn with_announcer<T>(lab: &Lab, node: &Node, f: impl FnOnce(&Announcer) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let handle = rt.handle().clone();
    let ann = lab
        .in_ns(node, move || {
            let _guard = handle.enter();
            Announcer::start("eth0")
        })
        .unwrap()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(|| rt.block_on(stopped));
        let out = f(&ann);
        drop(ann);
        // Let the runtime process the abort (closing the sockets) before it stops.
        std::thread::sleep(Duration::from_millis(100));
        drop(stop);
        out
    })
}

fn mac_of(lab: &Lab, ns: &(impl Netns + ?Sized)) -> String {
    lab.exec_ok(ns, &["cat", "/sys/class/net/eth0/address"]).unwrap().trim().to_string()
}

/// The protocols (hex, as /proc/net/packet shows them) of the packet sockets open in `ns`.
fn packet_sockets(lab: &Lab, ns: &(impl Netns + ?Sized)) -> Vec<String> {
    let out = lab.exec_ok(ns, &["cat", "/proc/net/packet"]).unwrap();
    let mut protos: Vec<String> =
        out.lines().skip(1).filter_map(|l| l.split_whitespace().nth(3)).map(str::to_string).collect();
    protos.sort();
    protos
}

/// The client's link-layer address for `ip`, if its neighbour entry has one.
fn neigh(lab: &Lab, client: &Client, ip: IpAddr) -> Option<String> {
    let out = lab.exec_ok(client, &["ip", "neigh", "show", &ip.to_string(), "dev", "eth0"]).unwrap();
    let mut words = out.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_string)
}

fn neigh_flush(lab: &Lab, client: &Client) {
    lab.exec_ok(client, &["ip", "neigh", "flush", "dev", "eth0"]).unwrap();
}

/// Polls the client's entry for `ip` until it is `want` or `within` has passed.
fn wait_neigh(lab: &Lab, client: &Client, ip: IpAddr, want: &str, within: Duration) -> Option<String> {
    let start = Instant::now();
    loop {
        let got = neigh(lab, client, ip);
        if got.as_deref() == Some(want) || start.elapsed() >= within {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Makes the client resolve `ip`: one ping (IPv4) or one UDP datagram (IPv6) that nobody
/// answers at the IP layer. Only the address resolution it triggers matters.
fn resolve(lab: &Lab, client: &Client, ip: IpAddr) {
    lab.check_target(ip).unwrap();
    match ip {
        IpAddr::V4(_) => {
            let _ = lab.ping(client, ip);
        }
        IpAddr::V6(_) => {
            lab.in_ns(client, || UdpSocket::bind("[::]:0").and_then(|s| s.send_to(b"l2", (ip, 9)))).unwrap().unwrap();
            std::thread::sleep(Duration::from_millis(1200));
        }
    }
}

/// Frames of `proto` that arrive on `ns`'s eth0 during `duration`, with their arrival times.
fn capture(lab: &Lab, ns: &(impl Netns + ?Sized), proto: u16, duration: Duration) -> Vec<(Duration, Vec<u8>)> {
    lab.in_ns(ns, || {
        let fd = super::packet_socket().unwrap();
        let index = super::if_index(&fd, "eth0").unwrap();
        super::bind(&fd, proto, index).unwrap();
        let start = Instant::now();
        let mut frames = Vec::new();
        let mut buf = [0u8; 2048];
        while start.elapsed() < duration {
            match super::recv(&fd, &mut buf) {
                Ok((n, _)) => frames.push((start.elapsed(), buf[..n].to_vec())),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("capture: {e}"),
            }
        }
        frames
    })
    .unwrap()
}

/// Calls `set` while capturing `proto` on the client, and returns the arrival offsets (relative
/// to the first) of the frames `is_announcement` picks.
fn announcements(
    lab: &Lab,
    client: &Client,
    proto: u16,
    set: impl FnOnce() + Send,
    is_announcement: impl Fn(&[u8]) -> bool,
) -> Vec<Duration> {
    let frames = std::thread::scope(|s| {
        let cap = s.spawn(|| capture(lab, client, proto, Duration::from_millis(3000)));
        std::thread::sleep(Duration::from_millis(200));
        set();
        cap.join().unwrap()
    });
    let times: Vec<Duration> = frames.iter().filter(|(_, f)| is_announcement(f)).map(|(t, _)| *t).collect();
    times.iter().map(|t| *t - times.first().copied().unwrap_or_default()).collect()
}

fn assert_one_second_apart(offsets: &[Duration]) {
    assert_eq!(offsets.len(), 3, "three announcements: {offsets:?}");
    for (k, t) in offsets.iter().enumerate() {
        let want = Duration::from_secs(k as u64);
        assert!(t.abs_diff(want) < Duration::from_millis(300), "announcement {k} at {t:?}: {offsets:?}");
    }
}

#[test]
fn arp_lab() {
    let Some(lab) = Lab::new_or_skip("l2arp") else { return };
    let sw = lab.switch("lan", "198.51.100.0/24").unwrap();
    let node = lab.node("n1", &sw).unwrap();
    let client = lab.client("c", &sw).unwrap();
    let node_mac = mac_of(&lab, &node);
    let vip = IpAddr::V4(VIP4);

    // Interfaces it cannot announce on are refused up front.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let handle = rt.handle().clone();
    let (lo, missing) = lab
        .in_ns(&node, move || {
            let _guard = handle.enter();
            (Announcer::start("lo").err(), Announcer::start("nosuch0").err())
        })
        .unwrap();
    assert!(matches!(lo, Some(super::Error::NotEthernet { hwtype: 772, .. })), "{lo:?}");
    assert!(matches!(missing, Some(super::Error::Io { .. })), "{missing:?}");
    drop(rt);

    with_announcer(&lab, &node, |ann| {
        assert_eq!(fmt_mac(&ann.mac()), node_mac);
        assert_eq!(packet_sockets(&lab, &node), ["0806", "86dd"], "one ARP and one IPv6 packet socket");

        // (a) Not announced: the client's ARP goes unanswered.
        resolve(&lab, &client, vip);
        assert_eq!(neigh(&lab, &client, vip), None, "no one should answer ARP for {vip} yet");

        // Takeover: three gratuitous ARPs for the VIP, 0/1/2 s, broadcast, from the node's MAC.
        let me: Mac = ann.mac();
        let offsets = announcements(
            &lab,
            &client,
            arp::ETH_P_ARP,
            || ann.set(vec![vip]),
            |f| {
                f.len() >= 42
                    && f[0..6] == arp::BROADCAST
                    && f[22..28] == me
                    && f[28..32] == VIP4.octets()
                    && f[38..42] == VIP4.octets()
            },
        );
        assert_one_second_apart(&offsets);

        // (b) Announced: a fresh resolution gets the node's MAC from the ARP reply (the
        // announcements are over and the cache is empty, so nothing else could have set it).
        neigh_flush(&lab, &client);
        resolve(&lab, &client, vip);
        assert_eq!(neigh(&lab, &client, vip).as_deref(), Some(node_mac.as_str()), "ARP reply for {vip}");

        // (d) Withdrawn: new requests are not answered.
        ann.set(vec![]);
        std::thread::sleep(Duration::from_millis(100));
        neigh_flush(&lab, &client);
        resolve(&lab, &client, vip);
        assert_eq!(neigh(&lab, &client, vip), None, "{vip} was withdrawn but still answered");

        // (c) Gratuitous ARP moves an existing (stale) entry that points elsewhere. Linux
        // updates existing entries from a gratuitous request even with arp_accept=0.
        let seed = ["ip", "neigh", "replace", "198.51.100.200", "lladdr", WRONG_MAC, "dev", "eth0", "nud", "stale"];
        lab.exec_ok(&client, &seed).unwrap();
        assert_eq!(neigh(&lab, &client, vip).as_deref(), Some(WRONG_MAC));
        ann.set(vec![vip]);
        let got = wait_neigh(&lab, &client, vip, &node_mac, Duration::from_millis(800));
        assert_eq!(got.as_deref(), Some(node_mac.as_str()), "the first gratuitous ARP should move the entry");
    });
    // Dropping the announcer closed its sockets (and with them the all-multicast membership).
    assert_eq!(packet_sockets(&lab, &node), Vec::<String>::new(), "sockets still open after drop");
}

#[test]
fn ndp_lab() {
    let Some(lab) = Lab::new_or_skip("l2ndp") else { return };
    let sw = lab.switch("lan", "198.51.100.0/24").unwrap();
    let node = lab.node("n1", &sw).unwrap();
    let client = lab.client("c", &sw).unwrap();
    lab.register("fd00:1ab::/64").unwrap();
    lab.exec_ok(&client, &["ip", "addr", "add", "fd00:1ab::c/64", "dev", "eth0", "nodad"]).unwrap();
    let node_mac = mac_of(&lab, &node);
    let vip = IpAddr::V6(VIP6);

    with_announcer(&lab, &node, |ann| {
        // (a) Not announced: the client's solicitation goes unanswered.
        resolve(&lab, &client, vip);
        assert_eq!(neigh(&lab, &client, vip), None, "no one should answer NDP for {vip} yet");

        // Takeover: three unsolicited advertisements (override, not solicited) to all nodes.
        let me: Mac = ann.mac();
        let offsets = announcements(
            &lab,
            &client,
            ndp::ETH_P_IPV6,
            || ann.set(vec![vip]),
            |f| {
                f.len() >= 86
                    && f[0..6] == ndp::multicast_mac(ndp::ALL_NODES)
                    && f[6..12] == me
                    && f[54] == 136
                    && f[58] == 0x20
                    && f[62..78] == VIP6.octets()
                    && ndp::checksum(
                        Ipv6Addr::from(<[u8; 16]>::try_from(&f[22..38]).unwrap()),
                        ndp::ALL_NODES,
                        &f[54..54 + usize::from(u16::from_be_bytes([f[18], f[19]]))],
                    ) == 0
            },
        );
        assert_one_second_apart(&offsets);

        // (b) Announced: a fresh resolution (solicitation to the solicited-node group) gets the
        // node's MAC from the solicited advertisement.
        neigh_flush(&lab, &client);
        resolve(&lab, &client, vip);
        let got = wait_neigh(&lab, &client, vip, &node_mac, Duration::from_secs(2));
        assert_eq!(got.as_deref(), Some(node_mac.as_str()), "neighbor advertisement for {vip}");

        // (d) Withdrawn: new solicitations are not answered.
        ann.set(vec![]);
        std::thread::sleep(Duration::from_millis(100));
        neigh_flush(&lab, &client);
        resolve(&lab, &client, vip);
        assert_eq!(neigh(&lab, &client, vip), None, "{vip} was withdrawn but still answered");

        // (c) An unsolicited advertisement with the override flag moves an existing entry.
        let seed =
            ["ip", "-6", "neigh", "replace", "fd00:1ab::200", "lladdr", WRONG_MAC, "dev", "eth0", "nud", "stale"];
        lab.exec_ok(&client, &seed).unwrap();
        assert_eq!(neigh(&lab, &client, vip).as_deref(), Some(WRONG_MAC));
        ann.set(vec![vip]);
        let got = wait_neigh(&lab, &client, vip, &node_mac, Duration::from_millis(800));
        assert_eq!(got.as_deref(), Some(node_mac.as_str()), "the first unsolicited NA should move the entry");
    });
    assert_eq!(packet_sockets(&lab, &node), Vec::<String>::new(), "sockets still open after drop");
}

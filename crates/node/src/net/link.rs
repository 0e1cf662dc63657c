//! Links, addresses and routes over rtnetlink: the bridge, a pod's veth pair, the pod side's
//! configuration and the host-gateway routes to other nodes.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use api::net::Cidr;
use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::NetError;

/// The `proto` of the peer routes this module installs: how it tells its own routes from
/// anyone else's across restarts, without keeping a list. 0x9c is unassigned in iproute2's
/// rt_protos (Calico uses 80, kube-router 17).
pub const PEER_ROUTE_PROTOCOL: u8 = 0x9c;

/// The interface name of a pod's end of its veth pair, as Kubernetes expects.
pub const POD_IFNAME: &str = "eth0";

pub fn nl_err(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let what = what.into();
    move |source| NetError::Netlink { what, source }
}

/// The errno of a netlink NACK, if `e` is one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// The link called `name`, or `None` if there is none.
pub async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>, NetError> {
    match h.link().get().match_name(name).execute().try_next().await {
        Ok(link) => Ok(link),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl_err(format!("look up link {name}"))(e)),
    }
}

pub fn is_up(link: &LinkMessage) -> bool {
    link.header.flags.contains(LinkFlags::Up)
}

/// The node bridge: created if missing, `address/prefix` on it, up. Returns its index.
///
/// `nf_call_iptables` on the bridge (the per-bridge form of `bridge-nf-call-iptables`) lets a
/// Service's DNAT see pod-to-pod replies that never leave the bridge; it is a no-op unless the
/// br_netfilter module is loaded.
pub async fn ensure_bridge(h: &Handle, name: &str, address: IpAddr, prefix: u8) -> Result<u32, NetError> {
    let link = match link_by_name(h, name).await? {
        Some(l) => l,
        None => {
            let msg = LinkBridge::new(name).nf_call_iptables(true).nf_call_ip6tables(true).build();
            match h.link().add(msg).execute().await {
                Ok(()) => tracing::info!(bridge = name, "created bridge"),
                // Raced with another creator: fine, the look-up below finds it.
                Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                Err(e) => return Err(nl_err(format!("create bridge {name}"))(e)),
            }
            link_by_name(h, name)
                .await?
                .ok_or_else(|| NetError::Config(format!("bridge {name} vanished right after its creation")))?
        }
    };
    let index = link.header.index;
    let mut add = h.address().add(index, address, prefix).replace();
    if address.is_ipv6() {
        // The gateway must answer at once, not after duplicate address detection.
        add.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    add.execute().await.map_err(nl_err(format!("put {address}/{prefix} on bridge {name}")))?;
    if !is_up(&link) {
        set_up(h, index, &format!("bridge {name}")).await?;
    }
    Ok(index)
}

pub async fn set_up(h: &Handle, index: u32, what: &str) -> Result<(), NetError> {
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl_err(format!("set {what} up")))
}

pub async fn delete_link(h: &Handle, index: u32, what: &str) -> Result<(), NetError> {
    match h.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(nl_err(format!("delete {what}"))(e)),
    }
}

/// A veth pair whose host end `host` stays here and whose other end is created directly in
/// `pod_ns` as `eth0`, as `ip link add <host> type veth peer name eth0 netns <pod>` does, so
/// no temporary name ever shows in the host namespace.
pub async fn create_veth(h: &Handle, host: &str, pod_ns: &std::fs::File) -> Result<(), NetError> {
    let peer = LinkMessageBuilder::<LinkUnspec>::new().name(POD_IFNAME).setns_by_fd(pod_ns.as_raw_fd()).build();
    let msg = LinkVeth::new(host, POD_IFNAME).set_info_data(InfoData::Veth(InfoVeth::Peer(peer))).build();
    h.link().add(msg).execute().await.map_err(nl_err(format!("create veth pair {host} <-> {POD_IFNAME}")))
}

/// The host end into the bridge, up, with hairpin on so a pod can reach itself through a
/// Service address that load-balances back to it.
pub async fn plug_into_bridge(h: &Handle, index: u32, bridge: u32, host: &str) -> Result<(), NetError> {
    h.link()
        .set(LinkUnspec::new_with_index(index).controller(bridge).up().build())
        .execute()
        .await
        .map_err(nl_err(format!("enslave {host} to the bridge")))?;
    h.link()
        .set_port(LinkBridgePort::new(index).hairpin(true).build())
        .execute()
        .await
        .map_err(nl_err(format!("set hairpin mode on {host}")))
}

/// Inside the pod: loopback up, eth0 up with `ip/prefix`, default route via `gateway`.
/// Every step replaces, so re-running it on a configured pod changes nothing.
pub async fn configure_pod(pod: &Handle, ip: IpAddr, prefix: u8, gateway: IpAddr, netns: &str) -> Result<(), NetError> {
    let lo =
        link_by_name(pod, "lo").await?.ok_or_else(|| NetError::Config(format!("pod netns {netns} has no loopback")))?;
    set_up(pod, lo.header.index, &format!("lo in {netns}")).await?;
    let eth = link_by_name(pod, POD_IFNAME)
        .await?
        .ok_or_else(|| NetError::Config(format!("pod netns {netns} has no {POD_IFNAME}")))?;
    let index = eth.header.index;
    let mut add = pod.address().add(index, ip, prefix).replace();
    if ip.is_ipv6() {
        add.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    add.execute().await.map_err(nl_err(format!("put {ip}/{prefix} on {POD_IFNAME} in {netns}")))?;
    set_up(pod, index, &format!("{POD_IFNAME} in {netns}")).await?;
    let route = match gateway {
        IpAddr::V4(gw) => RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).output_interface(index).build(),
        IpAddr::V6(gw) => RouteMessageBuilder::<Ipv6Addr>::new().gateway(gw).output_interface(index).build(),
    };
    pod.route()
        .add(route)
        .replace()
        .execute()
        .await
        .map_err(nl_err(format!("add the default route via {gateway} in {netns}")))
}

/// The main-table routes carrying [`PEER_ROUTE_PROTOCOL`]: destination -> (gateway, message).
pub async fn peer_routes(h: &Handle) -> Result<BTreeMap<String, (Cidr, Option<IpAddr>, RouteMessage)>, NetError> {
    let mut out = BTreeMap::new();
    for family in [RouteMessageBuilder::<Ipv4Addr>::new().build(), RouteMessageBuilder::<Ipv6Addr>::new().build()] {
        let routes: Vec<RouteMessage> =
            h.route().get(family).execute().try_collect().await.map_err(nl_err("list routes"))?;
        for r in routes {
            if r.header.protocol != RouteProtocol::Other(PEER_ROUTE_PROTOCOL)
                || r.header.table != RouteHeader::RT_TABLE_MAIN
            {
                continue;
            }
            let dst = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
                RouteAttribute::Destination(RouteAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
                _ => None,
            });
            let gw = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(RouteAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
                RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
                _ => None,
            });
            let Some(cidr) = dst.and_then(|d| Cidr::new(d, r.header.destination_prefix_length)) else { continue };
            out.insert(cidr.to_string(), (cidr, gw, r));
        }
    }
    Ok(out)
}

pub async fn replace_peer_route(h: &Handle, cidr: Cidr, via: IpAddr) -> Result<(), NetError> {
    let msg = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(cidr.network(), cidr.prefix())
        .and_then(|b| b.gateway(via))
        .map_err(|e| NetError::InvalidRoute(format!("{cidr} via {via}: {e}")))?
        .protocol(RouteProtocol::Other(PEER_ROUTE_PROTOCOL))
        .build();
    h.route().add(msg).replace().execute().await.map_err(nl_err(format!("add route {cidr} via {via}")))
}

/// Marks the routes that send the service CIDR into the pod bridge (apart from peer routes,
/// which are replaced as a set).
pub const SERVICE_ROUTE_PROTOCOL: u8 = 0x9d;

/// `ip route replace <cidr> dev <bridge> proto 0x9d`: Service addresses are routed into the pod
/// bridge, so the proxy's rules see traffic to them on a node without a default route, and an
/// address no Service claims is dropped there instead of following a default route out.
pub async fn replace_service_route(h: &Handle, cidr: Cidr, bridge: u32) -> Result<(), NetError> {
    let msg = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(cidr.network(), cidr.prefix())
        .map_err(|e| NetError::InvalidRoute(format!("{cidr}: {e}")))?
        .output_interface(bridge)
        .protocol(RouteProtocol::Other(SERVICE_ROUTE_PROTOCOL))
        .build();
    h.route().add(msg).replace().execute().await.map_err(nl_err(format!("add route {cidr} into the pod bridge")))
}

pub async fn delete_route(h: &Handle, msg: RouteMessage, what: &str) -> Result<(), NetError> {
    match h.route().del(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::ESRCH) => Ok(()),
        Err(e) => Err(nl_err(format!("delete route {what}"))(e)),
    }
}

//! Pod networking: a network namespace per pod, a veth pair into the node bridge, an IP from
//! the node's podCIDR, host-gateway routes to other nodes' pod CIDRs and egress masquerade.
//!
//! Everything is done over netlink from sockets opened in the right namespace (see
//! [`netns`]); only the masquerade rules go through the `nft` binary.
//!
//! For the agent: `PodNetwork::new`/`CniNetwork::new` take the network namespace of the
//! thread that first polls them as the node's (normally the process's own); they need root
//! (CAP_NET_ADMIN + CAP_SYS_ADMIN for the netns bind mounts) and, for masquerade, `nft`
//! (Debian's nftables). `new` sets `net.ipv4.ip_forward=1` (IPv6: `conf.all.forwarding`) in
//! that namespace. The state dir must outlive agent restarts; after a reboot the recorded
//! attachments have no namespaces any more, and `attach` of the same uid rebuilds them.

mod cni;
mod ipam;
mod link;
mod masq;
pub(crate) mod netns;

use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use api::net::{Cidr, IpFamily, to_u128};

pub use cni::{CniConfig, CniNetwork};
pub use ipam::Ipam;
pub use link::{PEER_ROUTE_PROTOCOL, POD_IFNAME};
pub use masq::{TABLE as MASQUERADE_TABLE, ruleset as masquerade_ruleset};
pub use netns::NETNS_DIR;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid network configuration: {0}")]
    Config(String),
    #[error("invalid pod uid {0:?}: use 1-128 of [A-Za-z0-9._-], not starting with '.'")]
    InvalidUid(String),
    #[error("invalid peer route: {0}")]
    InvalidRoute(String),
    #[error("pod CIDR {cidr} is exhausted ({in_use} addresses in use)")]
    Exhausted { cidr: Cidr, in_use: usize },
    #[error("IPAM state: cannot {op} {}: {source}", path.display())]
    State { op: &'static str, path: PathBuf, source: io::Error },
    #[error("cannot {op} network namespace {}: {source}", path.display())]
    Netns { op: &'static str, path: PathBuf, source: io::Error },
    #[error("netlink: cannot {what}: {source}")]
    Netlink { what: String, source: rtnetlink::Error },
    #[error("cannot set sysctl {key}: {source}")]
    Sysctl { key: String, source: io::Error },
    #[error("CNI: {0}")]
    Cni(String),
    #[error("masquerade rules: {0}")]
    Nft(String),
    #[error("internal: {0}")]
    Internal(String),
}

/// How the node's pods are networked.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// The node's `spec.podCIDR`; its first host is the bridge's (the pods' gateway) address.
    pub pod_cidr: Cidr,
    /// Pod traffic to outside this range is masqueraded; `None` means outside `pod_cidr`.
    pub cluster_cidr: Option<Cidr>,
    pub bridge: String,
    /// Pod namespaces are `/run/netns/<netns_prefix><pod uid>`.
    pub netns_prefix: String,
    /// IPAM records (one file per address) live in `<state_dir>/ips`.
    pub state_dir: PathBuf,
    pub masquerade: bool,
    /// Service ClusterIP ranges routed into the bridge (see [`link::replace_service_route`]).
    pub service_cidrs: Vec<Cidr>,
}

impl NetConfig {
    /// The defaults for `pod_cidr`: bridge `portico0`, prefix `portico-`, masquerade on.
    pub fn new(pod_cidr: Cidr, state_dir: impl Into<PathBuf>) -> NetConfig {
        NetConfig {
            pod_cidr,
            cluster_cidr: None,
            bridge: "portico0".into(),
            netns_prefix: "portico-".into(),
            state_dir: state_dir.into(),
            masquerade: true,
            service_cidrs: vec![],
        }
    }

    fn validate(&self) -> Result<(), NetError> {
        ipam::check_cidr(&self.pod_cidr)?;
        if let Some(c) = &self.cluster_cidr
            && (c.family() != self.pod_cidr.family()
                || !c.contains(self.pod_cidr.network())
                || c.prefix() > self.pod_cidr.prefix())
        {
            return Err(NetError::Config(format!("cluster CIDR {c} does not contain pod CIDR {}", self.pod_cidr)));
        }
        let b = &self.bridge;
        if b.is_empty() || b.len() > 15 || !b.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c)) {
            return Err(NetError::Config(format!("bridge name {b:?}: use 1-15 of [A-Za-z0-9_.-]")));
        }
        let p = &self.netns_prefix;
        if p.starts_with('.') || p.len() > 100 || !p.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c)) {
            return Err(NetError::Config(format!("netns prefix {p:?}: use at most 100 of [A-Za-z0-9_.-]")));
        }
        Ok(())
    }
}

/// The pod a sandbox is for; only `uid` names things, the rest is for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub uid: String,
    pub namespace: String,
    pub name: String,
}

/// A pod's network as set up: its namespace file, address, gateway and the host end of its veth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub uid: String,
    pub netns: PathBuf,
    pub ip: IpAddr,
    pub gateway: IpAddr,
    pub host_veth: String,
}

/// The node's native pod network (bridge + veth + host-local IPAM).
///
/// It works in the network namespace of the thread that called [`PodNetwork::new`] (the
/// "host" namespace from here on), whichever thread later runs its futures.
pub struct PodNetwork {
    cfg: NetConfig,
    ipam: Ipam,
    gateway: IpAddr,
    host: rtnetlink::Handle,
    bridge_index: u32,
    /// One change at a time: attach/detach of one uid must not interleave, and the state dir
    /// is the only record of what is in flight.
    busy: tokio::sync::Mutex<()>,
}

impl PodNetwork {
    /// Ensures the node side: bridge up with the gateway address (first host of pod_cidr),
    /// forwarding on, the masquerade table. Operates in the network namespace of the calling
    /// thread (captured before the first await).
    pub async fn new(cfg: NetConfig) -> Result<PodNetwork, NetError> {
        let host_ns = Arc::new(netns::current()?);
        cfg.validate()?;
        let ipam = Ipam::new(cfg.pod_cidr, cfg.state_dir.join("ips"))?;
        let gateway = ipam.gateway();
        let host = netns::netlink_in(&host_ns, Path::new("/proc/thread-self/ns/net"))?;
        let bridge_index = link::ensure_bridge(&host, &cfg.bridge, gateway, cfg.pod_cidr.prefix()).await?;
        let forwarding = match cfg.pod_cidr.family() {
            IpFamily::V4 => "net/ipv4/ip_forward",
            IpFamily::V6 => "net/ipv6/conf/all/forwarding",
        };
        sysctl(&host_ns, forwarding, "1")?;
        let script = masq::ruleset(&cfg.pod_cidr, cfg.cluster_cidr.as_ref(), &cfg.bridge, cfg.masquerade);
        let ns = host_ns.clone();
        blocking(move || masq::apply(&ns, &script)).await?;
        for cidr in cfg.service_cidrs.iter().filter(|c| c.family() == cfg.pod_cidr.family()) {
            link::replace_service_route(&host, *cidr, bridge_index).await?;
        }
        tracing::info!(
            pod_cidr = %cfg.pod_cidr, bridge = %cfg.bridge, %gateway, masquerade = cfg.masquerade,
            "pod network ready"
        );
        Ok(PodNetwork { cfg, ipam, gateway, host, bridge_index, busy: Default::default() })
    }

    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// Idempotent per uid: the same uid gets the same namespace and address, also across a
    /// restart (from the state dir). Repairs a half-made attachment. A failed attach keeps
    /// its address and namespace for the retry; call [`PodNetwork::detach`] to give up.
    pub async fn attach(&self, pod: &PodRef) -> Result<Attachment, NetError> {
        check_uid(&pod.uid)?;
        let _busy = self.busy.lock().await;
        if crate::shutdown::is_set() {
            return Err(NetError::Config("the node is shutting down".into()));
        }
        let ipam = self.ipam.clone();
        let uid = pod.uid.clone();
        let ip = blocking(move || ipam.allocate(&uid)).await?;
        let att = self.attachment(&pod.uid, ip)?;
        if let Err(e) = self.plumb(&att).await {
            tracing::warn!(pod = %format!("{}/{}", pod.namespace, pod.name), uid = %pod.uid, error = %e, "attach failed");
            return Err(e);
        }
        tracing::info!(pod = %format!("{}/{}", pod.namespace, pod.name), uid = %pod.uid, %ip, veth = %att.host_veth, "pod attached");
        Ok(att)
    }

    async fn plumb(&self, att: &Attachment) -> Result<(), NetError> {
        let name = self.netns_name(&att.uid);
        let path = netns::ensure(Path::new(NETNS_DIR), &name)?;
        let pod_ns = File::open(&path).map_err(|source| NetError::Netns { op: "open", path: path.clone(), source })?;
        let pod = netns::netlink_in(&pod_ns, &path)?;
        let host_end = link::link_by_name(&self.host, &att.host_veth).await?;
        let pod_end = link::link_by_name(&pod, POD_IFNAME).await?;
        let host_index = match (host_end, pod_end) {
            (Some(h), Some(_)) => h.header.index,
            (host_end, pod_end) => {
                // One end without the other (a namespace recreated under a live veth, or a
                // crash mid-way): start the pair over.
                if let Some(h) = host_end {
                    link::delete_link(&self.host, h.header.index, &att.host_veth).await?;
                }
                if let Some(p) = pod_end {
                    link::delete_link(&pod, p.header.index, &format!("{POD_IFNAME} in {name}")).await?;
                }
                link::create_veth(&self.host, &att.host_veth, &pod_ns).await?;
                link::link_by_name(&self.host, &att.host_veth)
                    .await?
                    .ok_or_else(|| NetError::Internal(format!("veth {} vanished after creation", att.host_veth)))?
                    .header
                    .index
            }
        };
        link::plug_into_bridge(&self.host, host_index, self.bridge_index, &att.host_veth).await?;
        link::configure_pod(&pod, att.ip, self.cfg.pod_cidr.prefix(), self.gateway, &name).await
    }

    /// Idempotent: removes the veth, the namespace (unmount + unlink) and releases the address.
    pub async fn detach(&self, uid: &str) -> Result<(), NetError> {
        check_uid(uid)?;
        let _busy = self.busy.lock().await;
        let records = self.ipam.records()?;
        for (ip, _) in records.iter().filter(|(_, owner)| *owner == uid) {
            let veth = self.host_veth(*ip)?;
            if let Some(l) = link::link_by_name(&self.host, &veth).await? {
                link::delete_link(&self.host, l.header.index, &veth).await?;
            }
        }
        // The namespace goes even without a record: a crash may have left it behind.
        netns::remove(&Path::new(NETNS_DIR).join(self.netns_name(uid)))?;
        let ipam = self.ipam.clone();
        let owned = uid.to_string();
        let released = blocking(move || ipam.release(&owned)).await?;
        tracing::info!(uid, ?released, "pod detached");
        Ok(())
    }

    /// What the state dir says is attached, by address.
    pub fn attachments(&self) -> Vec<Attachment> {
        match self.ipam.records() {
            Ok(records) => records
                .into_iter()
                .filter(|(_, uid)| check_uid(uid).is_ok())
                .filter_map(|(ip, uid)| self.attachment(&uid, ip).ok())
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read IPAM state");
                Vec::new()
            }
        }
    }

    /// Host-gateway routes: each other node's pod CIDR via its InternalIP. Replaces the
    /// previous set: adds missing ones, removes stale ones this module added (recognised by
    /// [`PEER_ROUTE_PROTOCOL`]), leaves all other routes alone.
    pub async fn set_peer_routes(&self, routes: &[(Cidr, IpAddr)]) -> Result<(), NetError> {
        for (cidr, via) in routes {
            if cidr.family() != IpFamily::of(*via) {
                return Err(NetError::InvalidRoute(format!("{cidr} via {via}: address families differ")));
            }
            let own = &self.cfg.pod_cidr;
            if cidr.contains(own.network()) || own.contains(cidr.network()) {
                return Err(NetError::InvalidRoute(format!("{cidr} via {via} overlaps this node's pod CIDR {own}")));
            }
        }
        let _busy = self.busy.lock().await;
        replace_peer_routes(&self.host, routes).await
    }

    fn netns_name(&self, uid: &str) -> String {
        format!("{}{uid}", self.cfg.netns_prefix)
    }

    /// Named after the address's offset in the pod CIDR, which IPAM makes unique on the node,
    /// so two pods can never compute the same name.
    fn host_veth(&self, ip: IpAddr) -> Result<String, NetError> {
        let n = to_u128(ip) - self.cfg.pod_cidr.first();
        let name = format!("vp{n:x}");
        if name.len() > 15 {
            return Err(NetError::Internal(format!("{ip} is too far into {} for a veth name", self.cfg.pod_cidr)));
        }
        Ok(name)
    }

    fn attachment(&self, uid: &str, ip: IpAddr) -> Result<Attachment, NetError> {
        Ok(Attachment {
            uid: uid.to_string(),
            netns: Path::new(NETNS_DIR).join(self.netns_name(uid)),
            ip,
            gateway: self.gateway,
            host_veth: self.host_veth(ip)?,
        })
    }
}

impl std::fmt::Debug for PodNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodNetwork").field("cfg", &self.cfg).field("gateway", &self.gateway).finish_non_exhaustive()
    }
}

/// The agent's one pod network, whichever way it is made.
#[derive(Debug)]
pub enum Network {
    Native(PodNetwork),
    Cni(CniNetwork),
}

impl Network {
    pub async fn attach(&self, pod: &PodRef) -> Result<Attachment, NetError> {
        match self {
            Network::Native(n) => n.attach(pod).await,
            Network::Cni(n) => n.attach(pod).await,
        }
    }

    pub async fn detach(&self, uid: &str) -> Result<(), NetError> {
        match self {
            Network::Native(n) => n.detach(uid).await,
            Network::Cni(n) => n.detach(uid).await,
        }
    }

    pub fn attachments(&self) -> Vec<Attachment> {
        match self {
            Network::Native(n) => n.attachments(),
            Network::Cni(n) => n.attachments(),
        }
    }

    /// Host-gateway routes for the native network; with CNI, routing between nodes is the
    /// plugins' (or the operator's) business, so this does nothing.
    pub async fn set_peer_routes(&self, routes: &[(Cidr, IpAddr)]) -> Result<(), NetError> {
        match self {
            Network::Native(n) => n.set_peer_routes(routes).await,
            Network::Cni(_) => Ok(()),
        }
    }
}

/// Pod uids name files and namespaces, so only path-safe ones are accepted.
fn check_uid(uid: &str) -> Result<(), NetError> {
    let ok = !uid.is_empty()
        && uid.len() <= 128
        && !uid.starts_with('.')
        && uid.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
    if ok { Ok(()) } else { Err(NetError::InvalidUid(uid.to_string())) }
}

/// Writes `/proc/sys/<key>` as seen from the namespace `ns` (net sysctls are per namespace
/// and resolved against the opening thread's).
fn sysctl(ns: &File, key: &str, value: &str) -> Result<(), NetError> {
    let path = format!("/proc/sys/{key}");
    netns::run_in(ns, || std::fs::write(&path, value))
        .map_err(|source| NetError::Sysctl { key: key.replace('/', "."), source })
}

/// File and process work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, NetError> + Send + 'static) -> Result<T, NetError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| NetError::Internal(format!("blocking task failed: {e}")))?
}

/// Removes what [`PodNetwork`] set up on this node, in the calling thread's network namespace:
/// every pod namespace named with `netns_prefix` (their veths go with them), the bridge (and
/// the service routes through it), the peer routes, the masquerade table and the address
/// records. With CNI (`bridge` None) only the namespaces: the plugins own the rest. Best
/// effort: each failure is reported and the rest still goes.
pub async fn teardown(bridge: Option<&str>, netns_prefix: &str, state_dir: &Path) -> Vec<String> {
    let mut problems = vec![];
    if let Ok(entries) = std::fs::read_dir(NETNS_DIR) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(netns_prefix)
                && let Err(err) = netns::remove(&e.path())
            {
                problems.push(err.to_string());
            }
        }
    }
    let Some(bridge) = bridge else { return problems };
    match netns::current().and_then(|ns| Ok((netns::netlink_in(&ns, Path::new("/proc/thread-self/ns/net"))?, ns))) {
        Ok((h, ns)) => {
            match link::link_by_name(&h, bridge).await {
                Ok(Some(l)) => {
                    if let Err(e) = link::delete_link(&h, l.header.index, bridge).await {
                        problems.push(e.to_string());
                    }
                }
                Ok(None) => {}
                Err(e) => problems.push(e.to_string()),
            }
            match link::peer_routes(&h).await {
                Ok(routes) => {
                    for (what, (_, _, msg)) in routes {
                        if let Err(e) = link::delete_route(&h, msg, &what).await {
                            problems.push(e.to_string());
                        }
                    }
                }
                Err(e) => problems.push(e.to_string()),
            }
            let script = format!(
                "add table ip {t}\ndelete table ip {t}\nadd table ip6 {t}\ndelete table ip6 {t}\n",
                t = masq::TABLE
            );
            if let Err(e) = blocking(move || masq::apply(&ns, &script)).await {
                problems.push(e.to_string());
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    match std::fs::remove_dir_all(state_dir.join("ips")) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => problems.push(format!("removing the address records: {e}")),
    }
    problems
}

/// Makes `routes` the set of routes marked [`PEER_ROUTE_PROTOCOL`] in `h`'s namespace.
async fn replace_peer_routes(h: &rtnetlink::Handle, routes: &[(Cidr, IpAddr)]) -> Result<(), NetError> {
    let current = link::peer_routes(h).await?;
    for (key, (cidr, gw, msg)) in current {
        if !routes.iter().any(|(c, _)| c.to_string() == key) {
            link::delete_route(h, msg, &format!("{cidr} via {gw:?}")).await?;
            tracing::info!(%cidr, "removed peer route");
        }
    }
    for (cidr, via) in routes {
        link::replace_peer_route(h, *cidr, *via).await?;
    }
    tracing::debug!(count = routes.len(), "peer routes in place");
    Ok(())
}

/// Host-gateway routes in this process's own network namespace, for a machine that is not a
/// node itself but hosts nodes (`portico up --nodes`): each node's pod CIDR via the node, so
/// the host reaches pods (its cluster DNS answers them, its ingress proxies to them). The same
/// marker as a node's peer routes, so an empty set removes exactly these.
pub async fn set_host_routes(routes: &[(Cidr, IpAddr)]) -> Result<(), NetError> {
    let ns = netns::current()?;
    let h = netns::netlink_in(&ns, Path::new("/proc/thread-self/ns/net"))?;
    replace_peer_routes(&h, routes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The agent shares one network between pod workers spawned on a multi-thread runtime.
    #[test]
    fn networks_and_their_futures_are_send_and_sync() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: T) {}
        fn check(net: &Network, pod: &PodRef) {
            send_sync(net);
            send(net.attach(pod));
            send(net.detach(&pod.uid));
            send(net.set_peer_routes(&[]));
        }
        let _ = check;
    }

    #[test]
    fn uids_and_config_are_checked() {
        for ok in ["0b0c3f5e-1a2b-4c3d-9e8f-001122334455", "a", "pod_1.x"] {
            assert!(check_uid(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../etc", "a/b", "a b", &"x".repeat(129)] {
            assert!(check_uid(bad).is_err(), "{bad}");
        }
        let mut cfg = NetConfig::new("198.18.0.0/24".parse().unwrap(), "/tmp/x");
        assert!(cfg.validate().is_ok());
        cfg.cluster_cidr = Some("198.19.0.0/16".parse().unwrap());
        assert!(cfg.validate().unwrap_err().to_string().contains("does not contain pod CIDR 198.18.0.0/24"));
        cfg.cluster_cidr = Some("198.18.0.0/15".parse().unwrap());
        assert!(cfg.validate().is_ok());
        cfg.bridge = "a-bridge-name-too-long".into();
        assert!(cfg.validate().is_err());
        cfg.bridge = "br\"0".into();
        assert!(cfg.validate().is_err());
    }
}

//! The `userspace` data plane's L4 proxy engine.
//!
//! The node's nftables rules (written elsewhere) REDIRECT the traffic of a service port (ClusterIP,
//! NodePort, external IPs) to a local port that this engine listens on; the engine picks a backend
//! and relays bytes (TCP) or datagrams (UDP). It does what the kernel data planes cannot:
//!
//! * **retry**: when connecting to one TCP backend fails, the next one is tried, in order, until
//!   all were tried; only then is the client connection reset;
//! * **round-robin** over the backends of a frontend;
//! * **UDP sessions**: one connected socket per client address, ended after `udp_idle` without
//!   traffic, or as soon as its backend leaves the frontend (so the next datagram picks a live
//!   backend: this mode's answer to stale UDP conntrack entries);
//! * **ClientIP session affinity** with a timeout measured from the last use.
//!
//! An [`Engine`] owns one listener per [`Frontend`] (name + protocol). [`Engine::update`] replaces
//! the whole set: unchanged frontends keep their port and their connections, new ones get an
//! ephemeral port, removed ones stop listening. SCTP is not carried in userspace.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, trace, warn};

/// kube-proxy's userspace mode default for `--udp-timeout`: how long an idle UDP session lives.
pub const DEFAULT_UDP_IDLE: Duration = Duration::from_millis(250);

/// How long one backend gets to accept a TCP connection before the next one is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Pending-connection queue of a frontend listener.
const LISTEN_BACKLOG: u32 = 1024;

/// Largest UDP payload (IPv4 limit rounded up): a smaller buffer would silently truncate.
const MAX_DATAGRAM: usize = 65_535;

/// Pause after a failed accept/recv: errors such as EMFILE repeat at once, and spinning on them
/// would starve the node.
const ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// The affinity table is swept of expired entries only when it has grown past this many (and past
/// twice its size after the previous sweep), which keeps the sweep amortised O(1) per connection.
const AFFINITY_SWEEP_MIN: usize = 1024;

/// A transport carried by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}

/// One service port as the engine serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    /// "namespace/service:port"; with `protocol`, the identity kept across updates.
    pub name: String,
    pub protocol: Protocol,
    /// Ready endpoints, in the order retries walk them.
    pub backends: Vec<SocketAddr>,
    /// ClientIP session affinity and its timeout; `None` for plain round-robin.
    pub affinity: Option<Duration>,
}

/// Counters across all frontends since the engine was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// TCP connections accepted plus UDP sessions opened.
    pub accepted: u64,
    /// Backends tried after the first one failed.
    pub retries: u64,
    /// TCP connections reset and UDP datagrams dropped because no backend was reachable.
    pub failed: u64,
    /// UDP sessions open right now.
    pub udp_sessions: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("frontend {name} ({protocol}) is listed more than once")]
    Duplicate { name: String, protocol: Protocol },
    #[error("frontend {name} ({protocol}): cannot listen on {bind}")]
    Listen {
        name: String,
        protocol: Protocol,
        bind: IpAddr,
        #[source]
        source: io::Error,
    },
}

type Key = (String, Protocol);

/// The proxy engine; clones share the same frontends. Dropping the last clone stops every
/// listener and UDP session (established TCP connections finish on their own).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    bind: IpAddr,
    udp_idle: Duration,
    counters: Arc<Counters>,
    /// An async mutex: `update` awaits binds and task shutdowns, and updates must not interleave.
    frontends: tokio::sync::Mutex<HashMap<Key, Running>>,
}

impl Engine {
    /// An engine whose listeners bind `bind` (e.g. 0.0.0.0) on ephemeral ports and whose UDP
    /// sessions end after `udp_idle` without traffic (see [`DEFAULT_UDP_IDLE`]).
    pub fn new(bind: IpAddr, udp_idle: Duration) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                bind,
                udp_idle,
                counters: Arc::default(),
                frontends: tokio::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Replaces the set of frontends. A frontend whose name+protocol stays keeps its listener, its
    /// port and its established connections/sessions (only backends/affinity change; UDP sessions
    /// to a removed backend end); new ones listen on an ephemeral port; removed ones stop
    /// listening (established TCP connections may finish). On error nothing changed.
    ///
    /// Returns the listening port of every frontend.
    pub async fn update(&self, frontends: Vec<Frontend>) -> Result<HashMap<(String, Protocol), u16>, Error> {
        let mut running = self.inner.frontends.lock().await;
        let wanted = index_frontends(frontends)?;

        // Bind every new listener before touching anything, so that a failure leaves the engine
        // as it was.
        let mut bound = HashMap::new();
        for (key, frontend) in &wanted {
            if !running.contains_key(key) {
                let socket = Bound::bind(self.inner.bind, frontend.protocol).await.map_err(|source| Error::Listen {
                    name: frontend.name.clone(),
                    protocol: frontend.protocol,
                    bind: self.inner.bind,
                    source,
                })?;
                bound.insert(key.clone(), socket);
            }
        }

        let removed: Vec<Key> = running.keys().filter(|key| !wanted.contains_key(*key)).cloned().collect();
        let stopping: Vec<Running> = removed.iter().filter_map(|key| running.remove(key)).collect();

        let mut ended_sessions = Vec::new();
        for (key, frontend) in wanted {
            if let Some(current) = running.get(&key) {
                ended_sessions.extend(current.shared.reconfigure(frontend.backends, frontend.affinity));
            } else if let Some(socket) = bound.remove(&key) {
                running.insert(key, self.inner.start(socket, frontend));
            }
        }

        // Wait for the cancelled tasks so that, when update returns, removed ports refuse
        // connections and the session gauge is current.
        for frontend in stopping {
            frontend.stop().await;
        }
        for task in ended_sessions {
            task.abort();
            let _ = task.await;
        }

        Ok(running.iter().map(|(key, frontend)| (key.clone(), frontend.port)).collect())
    }

    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }
}

impl Inner {
    /// Starts serving a freshly bound frontend.
    fn start(&self, socket: Bound, frontend: Frontend) -> Running {
        let shared = Arc::new(Shared {
            name: frontend.name,
            table: Mutex::new(Table::new(frontend.backends, frontend.affinity)),
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(0),
            counters: self.counters.clone(),
            udp_idle: self.udp_idle,
        });
        let (protocol, task) = match socket.socket {
            Socket::Tcp(listener) => (Protocol::Tcp, tokio::spawn(serve_tcp(listener, shared.clone()))),
            Socket::Udp(socket) => (Protocol::Udp, tokio::spawn(serve_udp(Arc::new(socket), shared.clone()))),
        };
        info!(frontend = %shared.name, %protocol, port = socket.port, "userspace proxy listening");
        Running { shared, port: socket.port, task }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for (_, frontend) in self.frontends.get_mut().drain() {
            frontend.task.abort();
            for task in frontend.shared.take_sessions(|_| true) {
                task.abort();
            }
        }
    }
}

/// Keys the requested frontends, refusing duplicates (two listeners for one service port would
/// leave the caller unable to tell which port to redirect to).
fn index_frontends(frontends: Vec<Frontend>) -> Result<HashMap<Key, Frontend>, Error> {
    let mut wanted = HashMap::with_capacity(frontends.len());
    for frontend in frontends {
        let key = (frontend.name.clone(), frontend.protocol);
        if wanted.contains_key(&key) {
            return Err(Error::Duplicate { name: frontend.name, protocol: frontend.protocol });
        }
        wanted.insert(key, frontend);
    }
    Ok(wanted)
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
    udp_sessions: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Stats {
        Stats {
            accepted: self.accepted.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            udp_sessions: self.udp_sessions.load(Ordering::Relaxed),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Locks a std mutex, shrugging off poisoning: every critical section here leaves the data
/// consistent, and the engine must not panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A frontend being served: its state shared with its tasks, and the task owning its socket.
struct Running {
    shared: Arc<Shared>,
    port: u16,
    task: JoinHandle<()>,
}

impl Running {
    /// Closes the listener/socket and ends the UDP sessions. Spawned TCP connections are left to
    /// finish.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        for task in self.shared.take_sessions(|_| true) {
            task.abort();
            let _ = task.await;
        }
        info!(frontend = %self.shared.name, port = self.port, "userspace proxy stopped listening");
    }
}

/// A listening socket bound but not yet served.
struct Bound {
    port: u16,
    socket: Socket,
}

enum Socket {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl Bound {
    async fn bind(ip: IpAddr, protocol: Protocol) -> io::Result<Bound> {
        let address = SocketAddr::new(ip, 0);
        let socket = match protocol {
            Protocol::Tcp => {
                let socket = if ip.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
                // A restarted proxy must be able to listen again while old connections linger.
                socket.set_reuseaddr(true)?;
                socket.bind(address)?;
                Socket::Tcp(socket.listen(LISTEN_BACKLOG)?)
            }
            // tokio offers no SO_REUSEADDR for UDP without socket2; on an ephemeral port it is
            // not needed (no TIME_WAIT for UDP).
            Protocol::Udp => Socket::Udp(UdpSocket::bind(address).await?),
        };
        let port = match &socket {
            Socket::Tcp(listener) => listener.local_addr()?.port(),
            Socket::Udp(socket) => socket.local_addr()?.port(),
        };
        Ok(Bound { port, socket })
    }
}

/// What a frontend's tasks share: its backend table and (UDP) its sessions. Lock order: `sessions`
/// before `table` (only `start_session` holds both).
struct Shared {
    name: String,
    table: Mutex<Table>,
    sessions: Mutex<HashMap<SocketAddr, SessionEntry>>,
    next_session: AtomicU64,
    counters: Arc<Counters>,
    udp_idle: Duration,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        lock(&self.table)
    }

    /// Applies new backends/affinity; returns the tasks of UDP sessions whose backend left, for
    /// the caller to end.
    fn reconfigure(&self, backends: Vec<SocketAddr>, affinity: Option<Duration>) -> Vec<JoinHandle<()>> {
        // Table first: a session being opened concurrently then either sees the new backends
        // (start_session refuses a removed one) or is already in the map to be taken here.
        self.table().reconfigure(backends.clone(), affinity);
        self.take_sessions(|session| !backends.contains(&session.backend))
    }

    /// Removes the sessions matching `ended` from the map and returns their tasks. The caller
    /// aborts them after the lock is released: a task's guard takes the same lock when dropped.
    fn take_sessions(&self, ended: impl Fn(&Session) -> bool) -> Vec<JoinHandle<()>> {
        let mut sessions = lock(&self.sessions);
        let clients: Vec<SocketAddr> =
            sessions.iter().filter(|(_, entry)| ended(&entry.session)).map(|(client, _)| *client).collect();
        clients.iter().filter_map(|client| sessions.remove(client)).map(|entry| entry.task).collect()
    }

    /// Ends one client's session if it is still the one identified by `id`.
    fn end_session(&self, client: SocketAddr, id: u64) {
        let entry = {
            let mut sessions = lock(&self.sessions);
            match sessions.get(&client) {
                Some(entry) if entry.session.id == id => sessions.remove(&client),
                _ => None,
            }
        };
        if let Some(entry) = entry {
            entry.task.abort();
        }
    }
}

/// Backend choice for one frontend: round-robin with optional ClientIP affinity.
struct Table {
    backends: Vec<SocketAddr>,
    affinity: Option<Duration>,
    /// Round-robin cursor; taken modulo the current number of backends.
    next: usize,
    sticky: HashMap<IpAddr, Sticky>,
    sweep_at: usize,
}

struct Sticky {
    backend: SocketAddr,
    last_used: Instant,
}

impl Table {
    fn new(backends: Vec<SocketAddr>, affinity: Option<Duration>) -> Table {
        Table { backends, affinity, next: 0, sticky: HashMap::new(), sweep_at: AFFINITY_SWEEP_MIN }
    }

    fn reconfigure(&mut self, backends: Vec<SocketAddr>, affinity: Option<Duration>) {
        if affinity.is_none() {
            self.sticky.clear();
        }
        // A client whose backend left must choose afresh rather than fail over to a neighbour.
        self.sticky.retain(|_, sticky| backends.contains(&sticky.backend));
        self.backends = backends;
        self.affinity = affinity;
    }

    /// The backends to try for a new connection from `client`, best first: its remembered backend
    /// (affinity) or the round-robin pick, then the others in list order.
    fn candidates(&mut self, client: IpAddr, now: Instant) -> Vec<SocketAddr> {
        if self.backends.is_empty() {
            return Vec::new();
        }
        let start = match self.sticky_index(client, now) {
            Some(index) => index,
            None => {
                let index = self.next % self.backends.len();
                self.next = index + 1;
                index
            }
        };
        let mut order = Vec::with_capacity(self.backends.len());
        order.extend_from_slice(&self.backends[start..]);
        order.extend_from_slice(&self.backends[..start]);
        order
    }

    /// Index of `client`'s remembered backend if affinity is on, the entry has not expired and
    /// the backend is still listed; refreshes the entry's timer on a hit, drops it on a miss.
    fn sticky_index(&mut self, client: IpAddr, now: Instant) -> Option<usize> {
        let timeout = self.affinity?;
        let entry = self.sticky.get_mut(&client)?;
        let index = if now.duration_since(entry.last_used) < timeout {
            self.backends.iter().position(|backend| *backend == entry.backend)
        } else {
            None
        };
        match index {
            Some(_) => entry.last_used = now,
            None => {
                self.sticky.remove(&client);
            }
        }
        index
    }

    /// Remembers where `client` went, if affinity is on.
    fn remember(&mut self, client: IpAddr, backend: SocketAddr, now: Instant) {
        let Some(timeout) = self.affinity else { return };
        if self.sticky.len() >= self.sweep_at {
            self.sticky.retain(|_, sticky| now.duration_since(sticky.last_used) < timeout);
            self.sweep_at = (self.sticky.len() * 2).max(AFFINITY_SWEEP_MIN);
        }
        self.sticky.insert(client, Sticky { backend, last_used: now });
    }

    /// Forgets `client`'s affinity to `backend` (it failed), so its next flow chooses afresh.
    fn forget(&mut self, client: IpAddr, backend: SocketAddr) {
        if self.sticky.get(&client).is_some_and(|sticky| sticky.backend == backend) {
            self.sticky.remove(&client);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TCP

/// Accepts connections for one frontend until the task is aborted (which closes the listener).
async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                bump(&shared.counters.accepted);
                // Each connection is its own task, so it outlives the listener when the frontend
                // is removed.
                tokio::spawn(proxy_tcp(shared.clone(), client, peer));
            }
            Err(error) => {
                warn!(frontend = %shared.name, %error, "accepting a connection failed");
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}

/// Connects one client to a backend and relays until both directions are closed.
async fn proxy_tcp(shared: Arc<Shared>, mut client: TcpStream, peer: SocketAddr) {
    let candidates = shared.table().candidates(peer.ip(), Instant::now());
    let Some((mut upstream, backend)) = connect_first(&shared, &candidates).await else {
        bump(&shared.counters.failed);
        warn!(frontend = %shared.name, client = %peer, backends = candidates.len(), "no backend reachable; resetting");
        reset(client);
        return;
    };
    shared.table().remember(peer.ip(), backend, Instant::now());
    // The relay forwards what it reads at once; Nagle would only add latency to small writes.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    // copy_bidirectional forwards a half-close (EOF one way shuts down writing the other way) and
    // keeps relaying the open direction until it ends too.
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((up, down)) => trace!(frontend = %shared.name, client = %peer, %backend, up, down, "connection closed"),
        Err(error) => debug!(frontend = %shared.name, client = %peer, %backend, %error, "connection ended"),
    }
}

/// Tries the candidates in order, each with [`CONNECT_TIMEOUT`]; returns the first connection.
async fn connect_first(shared: &Shared, candidates: &[SocketAddr]) -> Option<(TcpStream, SocketAddr)> {
    for (attempt, &backend) in candidates.iter().enumerate() {
        if attempt > 0 {
            bump(&shared.counters.retries);
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend)).await {
            Ok(Ok(stream)) => return Some((stream, backend)),
            Ok(Err(error)) => debug!(frontend = %shared.name, %backend, %error, "backend connect failed"),
            Err(_) => debug!(frontend = %shared.name, %backend, "backend connect timed out"),
        }
    }
    None
}

/// Drops a client connection with a RST, so the client learns at once that the service has no
/// reachable backend rather than seeing a clean close it could take for an empty answer.
fn reset(client: TcpStream) {
    if let Err(error) = client.set_zero_linger() {
        debug!(%error, "setting SO_LINGER 0 failed; closing normally");
    }
    drop(client);
}

// ---------------------------------------------------------------------------------------------
// UDP

/// One client's flow: a socket connected to the chosen backend.
struct Session {
    id: u64,
    backend: SocketAddr,
    upstream: UdpSocket,
    last_seen: Mutex<Instant>,
}

impl Session {
    fn touch(&self) {
        *lock(&self.last_seen) = Instant::now();
    }

    fn last_seen(&self) -> Instant {
        *lock(&self.last_seen)
    }
}

struct SessionEntry {
    session: Arc<Session>,
    /// The task relaying replies; aborting it ends the session.
    task: JoinHandle<()>,
}

/// Lives inside a session's reply task, also while it has not run yet, so that however the task
/// ends (idle, backend error, abort) the session leaves the map and the gauge exactly once.
struct SessionGuard {
    shared: Arc<Shared>,
    client: SocketAddr,
    id: u64,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        {
            let mut sessions = lock(&self.shared.sessions);
            if sessions.get(&self.client).is_some_and(|entry| entry.session.id == self.id) {
                sessions.remove(&self.client);
            }
        }
        self.shared.counters.udp_sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Receives client datagrams on the frontend socket and forwards each through its session.
async fn serve_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, client) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(error) => {
                debug!(frontend = %shared.name, %error, "receiving a datagram failed");
                tokio::time::sleep(ERROR_BACKOFF).await;
                continue;
            }
        };
        let Some(session) = session_for(&shared, &socket, client).await else { continue };
        session.touch();
        if let Err(error) = session.upstream.send(&buf[..len]).await {
            // Typically ECONNREFUSED reported from an earlier datagram: the backend is gone. End
            // the session so that the client's next datagram picks another backend.
            debug!(frontend = %shared.name, %client, backend = %session.backend, %error, "sending to backend failed");
            shared.table().forget(client.ip(), session.backend);
            shared.end_session(client, session.id);
        }
    }
}

/// The client's open session, or a new one to the first backend a socket can be connected to.
/// Only the frontend's receive task calls this, so two sessions for one client cannot race.
async fn session_for(shared: &Arc<Shared>, frontend: &Arc<UdpSocket>, client: SocketAddr) -> Option<Arc<Session>> {
    if let Some(entry) = lock(&shared.sessions).get(&client) {
        return Some(entry.session.clone());
    }
    let candidates = shared.table().candidates(client.ip(), Instant::now());
    for (attempt, &backend) in candidates.iter().enumerate() {
        if attempt > 0 {
            bump(&shared.counters.retries);
        }
        match connect_udp(backend).await {
            Ok(upstream) => {
                if let Some(session) = start_session(shared, frontend, client, backend, upstream) {
                    shared.table().remember(client.ip(), backend, Instant::now());
                    return Some(session);
                }
                debug!(frontend = %shared.name, %backend, "backend removed meanwhile");
            }
            Err(error) => debug!(frontend = %shared.name, %backend, %error, "opening a UDP socket to backend failed"),
        }
    }
    bump(&shared.counters.failed);
    debug!(frontend = %shared.name, %client, backends = candidates.len(), "no backend reachable; datagram dropped");
    None
}

/// A socket on an ephemeral port connected to `backend`, so that the kernel filters replies to
/// that backend and reports its ICMP errors to us.
async fn connect_udp(backend: SocketAddr) -> io::Result<UdpSocket> {
    let local: IpAddr = if backend.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    let socket = UdpSocket::bind(SocketAddr::new(local, 0)).await?;
    socket.connect(backend).await?;
    Ok(socket)
}

fn start_session(
    shared: &Arc<Shared>,
    frontend: &Arc<UdpSocket>,
    client: SocketAddr,
    backend: SocketAddr,
    upstream: UdpSocket,
) -> Option<Arc<Session>> {
    // Checked under the sessions lock so that an update cannot slip between check and insert.
    let mut sessions = lock(&shared.sessions);
    if !shared.table().backends.contains(&backend) {
        return None;
    }
    let id = shared.next_session.fetch_add(1, Ordering::Relaxed);
    let session = Arc::new(Session { id, backend, upstream, last_seen: Mutex::new(Instant::now()) });
    bump(&shared.counters.accepted);
    bump(&shared.counters.udp_sessions);
    let guard = SessionGuard { shared: shared.clone(), client, id };
    // Spawned and inserted under the lock: should the task end at once, its guard waits for the
    // entry to exist before removing it.
    let task = tokio::spawn(relay_replies(session.clone(), frontend.clone(), client, shared.udp_idle, guard));
    sessions.insert(client, SessionEntry { session: session.clone(), task });
    debug!(frontend = %shared.name, %client, %backend, "UDP session opened");
    Some(session)
}

/// Relays the backend's replies to the client through the frontend socket (so they come from the
/// address the client sent to) until the session has been idle for `idle` or the backend fails.
async fn relay_replies(
    session: Arc<Session>,
    frontend: Arc<UdpSocket>,
    client: SocketAddr,
    idle: Duration,
    guard: SessionGuard,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let deadline = session.last_seen() + idle;
        tokio::select! {
            received = session.upstream.recv(&mut buf) => match received {
                Ok(len) => {
                    session.touch();
                    if let Err(error) = frontend.send_to(&buf[..len], client).await {
                        debug!(frontend = %guard.shared.name, %client, %error, "sending a reply to the client failed");
                    }
                }
                Err(error) => {
                    debug!(frontend = %guard.shared.name, %client, backend = %session.backend, %error,
                        "backend failed; ending UDP session");
                    guard.shared.table().forget(client.ip(), session.backend);
                    return;
                }
            },
            // Traffic may have moved the deadline meanwhile: check before ending.
            () = tokio::time::sleep_until(deadline) => {
                if session.last_seen() + idle <= Instant::now() {
                    trace!(frontend = %guard.shared.name, %client, "UDP session idle; ending");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const WAIT: Duration = Duration::from_secs(5);

    /// A TCP backend that writes its one-byte `id`, then echoes until EOF.
    async fn tcp_backend(id: u8) -> SocketAddr {
        let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    stream.write_all(&[id]).await?;
                    let (mut read, mut write) = stream.split();
                    tokio::io::copy(&mut read, &mut write).await?;
                    io::Result::Ok(())
                });
            }
        });
        address
    }

    /// A UDP backend that answers each datagram with `id` followed by the datagram.
    async fn udp_backend(id: u8) -> SocketAddr {
        let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
        let address = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((len, peer)) = socket.recv_from(&mut buf[1..]).await {
                buf[0] = id;
                let _ = socket.send_to(&buf[..len + 1], peer).await;
            }
        });
        address
    }

    /// An address nothing listens on (a port just released).
    async fn dead_backend() -> SocketAddr {
        TcpListener::bind((LOCALHOST, 0)).await.unwrap().local_addr().unwrap()
    }

    fn frontend(name: &str, protocol: Protocol, backends: Vec<SocketAddr>) -> Frontend {
        Frontend { name: name.to_owned(), protocol, backends, affinity: None }
    }

    async fn start(engine: &Engine, frontend: Frontend) -> u16 {
        let key = (frontend.name.clone(), frontend.protocol);
        engine.update(vec![frontend]).await.unwrap()[&key]
    }

    /// Connects through the proxy and returns the id of the backend reached, with the stream.
    async fn connect(port: u16) -> (u8, TcpStream) {
        let mut stream = TcpStream::connect((LOCALHOST, port)).await.unwrap();
        let mut id = [0u8; 1];
        tokio::time::timeout(WAIT, stream.read_exact(&mut id)).await.unwrap().unwrap();
        (id[0], stream)
    }

    async fn backend_id(port: u16) -> u8 {
        connect(port).await.0
    }

    /// Connects through the proxy and expects the connection to be reset (the RST may already
    /// fail the connect) or closed without data.
    async fn expect_closed(port: u16) {
        let mut stream = match TcpStream::connect((LOCALHOST, port)).await {
            Ok(stream) => stream,
            Err(error) => return assert_eq!(error.kind(), io::ErrorKind::ConnectionReset),
        };
        let mut buf = [0u8; 16];
        match stream.read(&mut buf).await {
            Ok(len) => assert_eq!(len, 0, "unexpected data"),
            Err(error) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset),
        }
    }

    async fn udp_exchange(client: &UdpSocket, port: u16, payload: &[u8]) -> Vec<u8> {
        client.send_to(payload, (LOCALHOST, port)).await.unwrap();
        let mut buf = [0u8; 1500];
        let (len, from) = tokio::time::timeout(WAIT, client.recv_from(&mut buf)).await.unwrap().unwrap();
        assert_eq!(from.port(), port, "replies come from the frontend port");
        buf[..len].to_vec()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn round_robin_spreads_evenly() {
        let backends = vec![tcp_backend(b'a').await, tcp_backend(b'b').await, tcp_backend(b'c').await];
        let engine = Engine::new(LOCALHOST, DEFAULT_UDP_IDLE);
        let port = start(&engine, frontend("ns/svc:80", Protocol::Tcp, backends)).await;

        let mut hits: HashMap<u8, usize> = HashMap::new();
        for _ in 0..9 {
            *hits.entry(backend_id(port).await).or_default() += 1;
        }
        assert_eq!(hits, HashMap::from([(b'a', 3), (b'b', 3), (b'c', 3)]));
        assert_eq!(engine.stats().accepted, 9);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dead_backend_is_skipped() {
        let backends = vec![tcp_backend(b'a').await, dead_backend().await, tcp_backend(b'c').await];
        let engine = Engine::new(LOCALHOST, DEFAULT_UDP_IDLE);
        let port = start(&engine, frontend("ns/svc:80", Protocol::Tcp, backends)).await;

        for _ in 0..9 {
            let id = backend_id(port).await;
            assert!(id == b'a' || id == b'c');
        }
        let stats = engine.stats();
        assert!(stats.retries > 0, "{stats:?}");
        assert_eq!(stats.failed, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn all_backends_dead_resets_promptly() {
        let backends = vec![dead_backend().await, dead_backend().await];
        let engine = Engine::new(LOCALHOST, DEFAULT_UDP_IDLE);
        let port = start(&engine, frontend("ns/svc:80", Protocol::Tcp, backends)).await;

        let began = Instant::now();
        tokio::time::timeout(Duration::from_secs(2), expect_closed(port)).await.expect("not closed within 2 s");
        assert!(began.elapsed() < Duration::from_secs(2));
        assert_eq!(engine.stats().failed, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn empty_backends_reset() {
        let engine = Engine::new(LOCALHOST, DEFAULT_UDP_IDLE);
        let port = start(&engine, frontend("ns/svc:80", Protocol::Tcp, Vec::new())).await;
        tokio::time::timeout(WAIT, expect_closed(port)).await.unwrap();
        assert_eq!(engine.stats().failed, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn client_ip_affinity_sticks_then_expires() {
        let backends = vec![tcp_backend(b'a').await, tcp_backend(b'b').await, tcp_backend(b'c').await];
        let engine = Engine::new(LOCALHOST, DEFAULT_UDP_IDLE);
        let mut sticky = frontend("ns/svc:80", Protocol::Tcp, backends);
        sticky.affinity = Some(Duration::from_secs(1));
        let port = start(&engine, sticky).await;

        let first = backend_id(port).await;
        for _ in 0..14 {
            assert_eq!(backend_id(port).await, first);
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
        // Affinity hits do not advance the round-robin cursor, so after expiry the next backend in
        // turn (a different one) is chosen.
        assert_ne!(backend_id(port).await, first);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn update_keeps_ports_and_connections() {
        let (one, two) = (tcp_backend(b'1').await, tcp_backend(b'2').await);
        let engine = Engine::new(LOCALHOST, DEFAULT_UDP_IDLE);
        let kept = ("ns/kept:80".to_owned(), Protocol::Tcp);
        let gone = ("ns/gone:80".to_owned(), Protocol::Tcp);
        let ports = engine
            .update(vec![frontend(&kept.0, Protocol::Tcp, vec![one]), frontend(&gone.0, Protocol::Tcp, vec![one])])
            .await
            .unwrap();
        let (id, mut established) = connect(ports[&kept]).await;
        assert_eq!(id, b'1');

        let after = engine.update(vec![frontend(&kept.0, Protocol::Tcp, vec![two])]).await.unwrap();
        assert_eq!(after, HashMap::from([(kept.clone(), ports[&kept])]));

        // The connection to the backend that left keeps relaying.
        established.write_all(b"ping").await.unwrap();
        let mut echo = [0u8; 4];
        tokio::time::timeout(WAIT, established.read_exact(&mut echo)).await.unwrap().unwrap();
        assert_eq!(&echo, b"ping");

        assert_eq!(backend_id(ports[&kept]).await, b'2');
        let refused = TcpStream::connect((LOCALHOST, ports[&gone])).await;
        assert!(refused.is_err(), "removed frontend still accepts");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn duplicate_frontends_are_refused() {
        let engine = Engine::new(LOCALHOST, DEFAULT_UDP_IDLE);
        let twice = vec![frontend("ns/svc:80", Protocol::Tcp, vec![]), frontend("ns/svc:80", Protocol::Tcp, vec![])];
        assert!(matches!(engine.update(twice).await, Err(Error::Duplicate { .. })));
        // Same name, other protocol: two frontends.
        let both = vec![frontend("ns/svc:53", Protocol::Tcp, vec![]), frontend("ns/svc:53", Protocol::Udp, vec![])];
        assert_eq!(engine.update(both).await.unwrap().len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn udp_sessions_stick_expire_and_follow_backend_removal() {
        let (a, b) = (udp_backend(b'a').await, udp_backend(b'b').await);
        let engine = Engine::new(LOCALHOST, Duration::from_millis(500));
        let port = start(&engine, frontend("ns/dns:53", Protocol::Udp, vec![a, b])).await;

        // One client sticks to its backend within the idle window.
        let client = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
        for payload in [&b"x"[..], b"y", b"z", b"w"] {
            assert_eq!(udp_exchange(&client, port, payload).await, [&b"a"[..], payload].concat());
        }
        // Another client gets the next backend in turn.
        let other = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
        assert_eq!(udp_exchange(&other, port, b"q").await, b"bq");
        assert_eq!(engine.stats().udp_sessions, 2);

        // Removing `a` ends the first client's session; its next datagram goes to `b`.
        engine.update(vec![frontend("ns/dns:53", Protocol::Udp, vec![b])]).await.unwrap();
        assert_eq!(engine.stats().udp_sessions, 1);
        assert_eq!(udp_exchange(&client, port, b"v").await, b"bv");

        // Both sessions end once idle.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(engine.stats().udp_sessions, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn udp_dead_backend_is_abandoned() {
        let dead = UdpSocket::bind((LOCALHOST, 0)).await.unwrap().local_addr().unwrap();
        let live = udp_backend(b'l').await;
        let engine = Engine::new(LOCALHOST, DEFAULT_UDP_IDLE);
        let port = start(&engine, frontend("ns/dns:53", Protocol::Udp, vec![dead, live])).await;

        // The first datagram goes to the dead backend; the ICMP port unreachable ends the session,
        // and a retransmission (as a UDP client would) reaches the live one.
        let client = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..10 {
            client.send_to(b"hi", (LOCALHOST, port)).await.unwrap();
            if let Ok(Ok((len, _))) = tokio::time::timeout(Duration::from_millis(200), client.recv_from(&mut buf)).await
            {
                assert_eq!(&buf[..len], b"lhi");
                return;
            }
        }
        panic!("never reached the live backend");
    }
}

//! A network lab for data-plane tests: network namespaces as nodes, pods and clients.
//!
//! The project's hard rule is that tests send traffic only to loopback or to namespaces they
//! created themselves. The lab keeps that rule in two independent ways:
//!
//! - **Structure.** Every link the lab makes lives inside the lab's own namespaces: bridges sit in
//!   a switch namespace, veth pairs are created directly between two lab namespaces
//!   (`ip -n A link add ... peer ... netns B`), and no namespace gets a default route except pods,
//!   whose default route points at their node, which has none. The host's root namespace (its
//!   links, routes and sysctls) is never touched, so a packet has no way out.
//! - **Refusal.** The helpers that send traffic ([`Lab::connect_tcp`], [`Lab::ping`]) first call
//!   [`Lab::check_target`], which refuses any address outside the lab's subnets (the ones it
//!   assigned plus the ones registered with [`Lab::register`]) and loopback. A test that
//!   reaches for a real address fails loudly instead of relying on a missing route.
//!
//! Cleanup is a drop guard: dropping the [`Lab`] (also while unwinding from a panic) kills the
//! processes it spawned and deletes its namespaces, which takes their veths and bridges with
//! them. A test process killed with SIGKILL cannot run its guard, so [`Lab::new`] also removes
//! namespaces of earlier labs whose owning PID is dead; the owner is encoded in every name
//! (`pl<pid base36>_<counter base36>-<lab>-<role>`), and nothing outside that scheme is touched.

mod net;
mod topology;

pub use net::Cidr;
pub use topology::{Client, Node, Pod, Switch};

use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long [`Lab::connect_tcp`] waits; everything is one bridge hop away, so this is generous.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const PING_TIMEOUT: Duration = Duration::from_secs(1);
const NETNS_DIR: &str = "/run/netns";

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The machine cannot host a lab at all (not root, no `ip`, no network namespaces).
    #[error("cannot build a network lab: {0}")]
    Unavailable(String),
    #[error("`{cmd}` failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("refused to send to {addr}: it is outside this lab's subnets [{subnets}] and not loopback")]
    OutsideLab { addr: IpAddr, subnets: String },
    #[error("invalid lab request: {0}")]
    Invalid(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Anything that names one of the lab's namespaces: the topology handles, or the full name.
pub trait Netns {
    fn netns(&self) -> &str;
}

impl Netns for str {
    fn netns(&self) -> &str {
        self
    }
}

impl Netns for String {
    fn netns(&self) -> &str {
        self
    }
}

/// A process started inside a lab namespace. The [`Lab`] keeps a clone and kills it on drop.
///
/// The process is only ever reaped through this handle, so its PID cannot be recycled while the
/// lab might still signal it.
#[derive(Clone, Debug)]
pub struct Proc {
    pid: u32,
    child: Arc<Mutex<Child>>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn try_wait(&self) -> io::Result<Option<ExitStatus>> {
        lock(&self.child).try_wait()
    }

    /// Polls rather than blocking in `wait`, so the lab's drop guard never waits behind it.
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if start.elapsed() >= timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL to the process group the child leads (it was started as its own group, so this
    /// reaches its own children too and nothing else), then reaps it.
    pub fn kill(&self) -> io::Result<()> {
        let mut child = lock(&self.child);
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        // SAFETY: kill(2) on the group whose leader is our unreaped child.
        unsafe { libc::kill(-(self.pid as libc::pid_t), libc::SIGKILL) };
        child.kill()?;
        child.wait().map(drop)
    }

    pub fn take_stdout(&self) -> Option<ChildStdout> {
        lock(&self.child).stdout.take()
    }

    pub fn take_stderr(&self) -> Option<ChildStderr> {
        lock(&self.child).stderr.take()
    }
}

pub struct Lab {
    prefix: String,
    /// Serialises topology changes so address allocation and host-gateway routes stay consistent.
    build: Mutex<()>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    namespaces: Vec<String>,
    procs: Vec<Proc>,
    subnets: Vec<Cidr>,
    topo: topology::Topo,
}

impl Lab {
    /// Builds an empty lab. `name` (letters, digits, `-`) only makes namespaces recognisable.
    pub fn new(name: &str) -> Result<Lab, LabError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        check_name(name)?;
        available()?;
        remove_leftovers();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("pl{}_{}-{name}", base36(std::process::id()), base36(n));
        // Probe once, so a kernel or container without netns support reports Unavailable here
        // instead of a confusing failure in the first builder.
        let probe = format!("{prefix}-probe");
        ip(&["netns", "add", &probe]).map_err(|e| LabError::Unavailable(format!("`ip netns add` failed: {e}")))?;
        let _ = ip(&["netns", "del", &probe]);
        Ok(Lab { prefix, build: Mutex::new(()), state: Mutex::default() })
    }

    /// For tests: the lab, or `None` after printing why it was skipped. Under `CI=true` a lab
    /// that cannot be built panics instead, so CI never passes by skipping.
    pub fn new_or_skip(name: &str) -> Option<Lab> {
        match Lab::new(name) {
            Ok(lab) => Some(lab),
            Err(LabError::Unavailable(why)) => {
                skip_or_fail(&why);
                None
            }
            Err(e) => panic!("lab {name}: {e}"),
        }
    }

    /// The start of every namespace name this lab creates.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespaces created so far, in creation order.
    pub fn namespaces(&self) -> Vec<String> {
        lock(&self.state).namespaces.clone()
    }

    /// Declares `cidr` part of the lab (a pod or service CIDR programmed inside it), so the
    /// traffic helpers accept its addresses. Very short prefixes are refused: they would make
    /// the refusal meaningless.
    pub fn register(&self, cidr: &str) -> Result<Cidr, LabError> {
        let c: Cidr = cidr.parse().map_err(LabError::Invalid)?;
        let min = if c.network().is_ipv4() { 8 } else { 16 };
        if c.prefix() < min {
            return Err(LabError::Invalid(format!("{c} is too wide to register (at most /{min})")));
        }
        let mut st = lock(&self.state);
        if !st.subnets.contains(&c) {
            st.subnets.push(c);
        }
        Ok(c)
    }

    pub fn subnets(&self) -> Vec<Cidr> {
        lock(&self.state).subnets.clone()
    }

    /// `Ok` for loopback and the lab's subnets; every sending helper calls this first.
    pub fn check_target(&self, addr: IpAddr) -> Result<(), LabError> {
        let st = lock(&self.state);
        if addr.is_loopback() || st.subnets.iter().any(|c| c.contains(addr)) {
            return Ok(());
        }
        let subnets = st.subnets.iter().map(Cidr::to_string).collect::<Vec<_>>().join(", ");
        Err(LabError::OutsideLab { addr, subnets })
    }

    /// Runs `f` on a short-lived thread that has entered `ns`'s network namespace. Sockets made
    /// there stay in that namespace after the thread ends, which is how tests listen in a pod.
    /// A panic in `f` is re-raised on the caller's thread.
    pub fn in_ns<T: Send>(&self, ns: &(impl Netns + ?Sized), f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
        let file = self.open_ns(ns)?;
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns(2) on an open /run/netns file; only this thread changes namespace.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(LabError::Io(io::Error::last_os_error()));
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// `ip netns exec <ns> argv...`; the output whatever the exit status.
    pub fn exec(&self, ns: &(impl Netns + ?Sized), argv: &[&str]) -> Result<Output, LabError> {
        self.open_ns(ns)?;
        Ok(Command::new("ip").args(["netns", "exec", ns.netns()]).args(argv).output()?)
    }

    /// Like [`Lab::exec`], but a non-zero exit is an error; returns stdout.
    pub fn exec_ok(&self, ns: &(impl Netns + ?Sized), argv: &[&str]) -> Result<String, LabError> {
        let out = self.exec(ns, argv)?;
        if !out.status.success() {
            let cmd = format!("ip netns exec {} {}", ns.netns(), argv.join(" "));
            return Err(LabError::Command { cmd, stderr: String::from_utf8_lossy(&out.stderr).trim().into() });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts `cmd` inside `ns` and records it so the lab kills it on drop.
    ///
    /// The child enters the namespace itself (setns before exec) instead of going through
    /// `ip netns exec`, so the caller's stdio and environment settings on `cmd` hold and the
    /// recorded PID is the program's own. Unlike `ip netns exec` it keeps the host's /sys view.
    pub fn spawn(&self, ns: &(impl Netns + ?Sized), mut cmd: Command) -> Result<Proc, LabError> {
        let file = self.open_ns(ns)?;
        let fd = file.as_raw_fd();
        // SAFETY: the hook only calls setns(2), which is async-signal-safe; `file` outlives spawn.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
            });
        }
        cmd.process_group(0);
        let mut st = lock(&self.state);
        let child = cmd.spawn()?;
        drop(file);
        let proc = Proc { pid: child.id(), child: Arc::new(Mutex::new(child)) };
        st.procs.push(proc.clone());
        Ok(proc)
    }

    /// Writes a sysctl under /proc/sys (e.g. `net/ipv4/ip_forward`) as seen from inside `ns`.
    pub fn sysctl(&self, ns: &(impl Netns + ?Sized), key: &str, value: &str) -> Result<(), LabError> {
        if key.contains("..") || key.starts_with('/') {
            return Err(LabError::Invalid(format!("sysctl key {key:?}")));
        }
        let path = format!("/proc/sys/{key}");
        self.in_ns(ns, || std::fs::write(&path, value))?
            .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
        Ok(())
    }

    /// A TCP connection from inside `from` to `to`, after [`Lab::check_target`] allowed it.
    pub fn connect_tcp(&self, from: &(impl Netns + ?Sized), to: SocketAddr) -> Result<TcpStream, LabError> {
        self.check_target(to.ip())?;
        Ok(self.in_ns(from, || TcpStream::connect_timeout(&to, CONNECT_TIMEOUT))??)
    }

    /// One ICMP echo from inside `from` (what `ping -c1 -W1` does), after [`Lab::check_target`]
    /// allowed `to`; returns the round-trip time. IPv4 only.
    pub fn ping(&self, from: &(impl Netns + ?Sized), to: IpAddr) -> Result<Duration, LabError> {
        self.check_target(to)?;
        let IpAddr::V4(v4) = to else { return Err(LabError::Invalid(format!("ping {to}: IPv4 only"))) };
        Ok(self.in_ns(from, || net::icmp_echo(v4, PING_TIMEOUT))??)
    }

    /// Only the lab's own namespaces may be entered; a typo must not land a test in someone
    /// else's namespace.
    fn open_ns(&self, ns: &(impl Netns + ?Sized)) -> Result<File, LabError> {
        let name = ns.netns();
        if !lock(&self.state).namespaces.iter().any(|n| n == name) {
            return Err(LabError::Invalid(format!("{name} is not a namespace of lab {}", self.prefix)));
        }
        Ok(File::open(format!("{NETNS_DIR}/{name}"))?)
    }

    /// Creates `<prefix>-<role>` with loopback up and records it for cleanup.
    fn add_ns(&self, role: &str) -> Result<String, LabError> {
        check_name(role)?;
        let name = format!("{}-{role}", self.prefix);
        ip(&["netns", "add", &name])?;
        lock(&self.state).namespaces.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for p in st.procs.drain(..) {
            if let Err(e) = p.kill() {
                eprintln!("lab {}: killing pid {}: {e}", self.prefix, p.pid);
            }
        }
        // Deleting a namespace deletes its interfaces, and with a veth the peer goes too.
        for ns in st.namespaces.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("lab {}: {e}", self.prefix);
            }
        }
        // Namespaces a program under test made with the lab's prefix (a node agent's pods,
        // named with `prefix()`), which the lab did not create itself.
        let ours = format!("{}-", self.prefix);
        for entry in std::fs::read_dir(NETNS_DIR).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&ours)
                && let Err(e) = ip(&["netns", "del", &name])
            {
                eprintln!("lab {}: {e}", self.prefix);
            }
        }
    }
}

/// Whether this process can build labs; the reason if not.
pub fn available() -> Result<(), LabError> {
    // SAFETY: geteuid(2) cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(LabError::Unavailable(format!("needs root (euid is {euid})")));
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(LabError::Unavailable(format!("`ip -V` failed: {}", String::from_utf8_lossy(&out.stderr)))),
        Err(e) => Err(LabError::Unavailable(format!("`ip` (iproute2) not runnable: {e}"))),
    }
}

/// For tests that need root but no [`Lab`] of their own: `true` to go on, `false` after
/// printing a skip line; panics under `CI=true` instead of skipping.
pub fn require_root_or_skip() -> bool {
    match available() {
        Ok(()) => true,
        Err(e) => {
            skip_or_fail(&e.to_string());
            false
        }
    }
}

fn skip_or_fail(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("lab test cannot build its lab and CI=true forbids skipping: {why}");
    }
    eprintln!("skipped: needs root and `ip netns` to build a network lab: {why}");
}

/// Deletes namespaces left by labs whose process died without running its drop guard, and
/// returns their names. Only names in the lab scheme with a dead owner PID are touched.
pub fn remove_leftovers() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if owner_pid(&name).is_some_and(|pid| !alive(pid)) && ip(&["netns", "del", &name]).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// The owner PID of a namespace named `pl<pid36>_<n36>-...`, or `None` outside the scheme.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("pl")?;
    let (pid, rest) = rest.split_once('_')?;
    let (n, _) = rest.split_once('-')?;
    let b36 = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    if !b36(pid) || !b36(n) {
        return None;
    }
    u32::from_str_radix(pid, 36).ok().filter(|&p| p > 0)
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) }
}

fn base36(mut n: u32) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit(n % 36, 36).unwrap());
        n /= 36;
        if n == 0 {
            return digits.into_iter().rev().collect();
        }
    }
}

fn check_name(name: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= 24
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err(LabError::Invalid(format!("name {name:?}: use 1-24 of [a-z0-9-]"))) }
}

/// Runs `ip args...`, turning a failure into an error carrying its stderr.
fn ip(args: &[&str]) -> Result<(), LabError> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(LabError::Command {
        cmd: format!("ip {}", args.join(" ")),
        stderr: String::from_utf8_lossy(&out.stderr).trim().into(),
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_only_matches_the_lab_scheme() {
        assert_eq!(owner_pid(&format!("pl{}_0-mesh-n1", base36(4242))), Some(4242));
        assert_eq!(owner_pid("plz_a1-x"), Some(35));
        for other in ["cni-1234", "pl", "plx-y", "pl_1-x", "plAB_1-x", "pl1_-x", "pl1_2", "pod-pl1_2-x", "pl0_0-x"] {
            assert_eq!(owner_pid(other), None, "{other}");
        }
    }

    #[test]
    fn base36_round_trips() {
        for n in [0, 1, 35, 36, 4_194_304, u32::MAX] {
            assert_eq!(u32::from_str_radix(&base36(n), 36), Ok(n));
        }
    }
}

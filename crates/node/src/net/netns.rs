//! Named network namespaces (iproute2's `/run/netns/<name>` convention) and netlink sockets
//! opened inside a namespace.
//!
//! `setns` and `unshare` change the namespace of one thread only, and a tokio worker runs many
//! tasks, so every namespace switch here happens on a short-lived std thread that exits
//! afterwards. What outlives the thread is a file descriptor: a bind mount keeps a new
//! namespace alive, and a socket stays bound to the namespace it was created in.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use super::NetError;

pub const NETNS_DIR: &str = "/run/netns";

/// `statfs(2)` magic of nsfs, the filesystem of namespace files.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// The network namespace of the calling thread, as an open file.
pub fn current() -> Result<File, NetError> {
    File::open("/proc/thread-self/ns/net").map_err(|e| ns_err("open", "/proc/thread-self/ns/net", e))
}

/// Whether `path` is a mounted namespace file (a live named namespace).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(f) = File::open(path) else { return false };
    // SAFETY: fstatfs(2) on an open descriptor into a zeroed struct it fills in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) } == 0) && st.f_type as i64 == NSFS_MAGIC
}

/// Creates the named namespace `<dir>/<name>` if it does not exist yet; its path either way.
pub fn ensure(dir: &Path, name: &str) -> Result<PathBuf, NetError> {
    let path = dir.join(name);
    if is_mounted(&path) {
        return Ok(path);
    }
    prepare_dir(dir)?;
    // A file without a mount is what a crash between create and mount leaves; reuse it.
    match OpenOptions::new().write(true).create_new(true).mode(0o000).open(&path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(ns_err("create", &path, e)),
    }
    let target = path.clone();
    let made = on_thread(move || -> nix::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        mount(Some("/proc/thread-self/ns/net"), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
    });
    match made {
        Ok(Ok(())) => {
            tracing::debug!(netns = %path.display(), "created network namespace");
            Ok(path)
        }
        Ok(Err(errno)) | Err(errno) => {
            let _ = fs::remove_file(&path);
            Err(ns_err("create", &path, errno.into()))
        }
    }
}

/// Unmounts and unlinks a named namespace; missing or half-made ones are fine.
pub fn remove(path: &Path) -> Result<(), NetError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point (never mounted or already unmounted).
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(ns_err("unmount", path, e.into())),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ns_err("remove", path, e)),
    }
}

/// A netlink route socket created inside the namespace `ns`, as a live rtnetlink handle whose
/// connection task runs on the current tokio runtime.
pub fn netlink_in(ns: &File, what: &Path) -> Result<rtnetlink::Handle, NetError> {
    let ns = ns.try_clone().map_err(|e| ns_err("open", what, e))?;
    let fd = on_thread(move || -> nix::Result<OwnedFd> {
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)?;
        // SAFETY: plain socket(2); the result is checked before it is owned.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    })
    .and_then(|r| r)
    .map_err(|e| ns_err("open a netlink socket in", what, e.into()))?;
    // SAFETY: ownership of the descriptor moves into the socket.
    let socket = unsafe { rtnetlink::sys::TokioSocket::from_raw_fd(fd.into_raw_fd()) };
    let (conn, handle, _) = rtnetlink::from_socket(socket);
    tokio::spawn(conn);
    Ok(handle)
}

/// Runs `f` on a new std thread that first enters `ns` (so sysctl files, sockets and child
/// processes made there belong to `ns`).
pub fn run_in<T: Send>(ns: &File, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let fd = ns.as_fd();
    std::thread::scope(|s| {
        s.spawn(move || {
            setns(fd, CloneFlags::CLONE_NEWNET)?;
            f()
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Makes `cmd`'s child enter `ns` before it execs: the child would otherwise inherit the
/// namespace of whichever thread forks it. `ns` lives in the hook, so as long as `cmd`.
pub fn enter_before_exec(cmd: &mut std::process::Command, ns: impl AsFd + Send + Sync + 'static) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook only calls setns(2), which is async-signal-safe, on an fd it owns.
    unsafe {
        cmd.pre_exec(move || {
            let fd = ns.as_fd().as_raw_fd();
            if libc::setns(fd, libc::CLONE_NEWNET) == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
        });
    }
}

/// Runs `f` on a thread of its own, so a namespace change dies with that thread.
fn on_thread<T: Send>(f: impl FnOnce() -> T + Send) -> nix::Result<T> {
    std::thread::scope(|s| s.spawn(f).join()).map_err(|_| Errno::EIO)
}

/// What `ip netns add` does first: the directory must be a shared mount point, so that a
/// namespace mounted (or unmounted) later is seen by mount namespaces copied before, e.g.
/// those of pods' containers.
fn prepare_dir(dir: &Path) -> Result<(), NetError> {
    fs::create_dir_all(dir).map_err(|e| ns_err("create", dir, e))?;
    let shared = || mount(None::<&str>, dir, None::<&str>, MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>);
    match shared() {
        Ok(()) => Ok(()),
        // EINVAL: not a mount point yet; make it one by binding it onto itself.
        Err(Errno::EINVAL) => mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .and_then(|()| shared())
            .map_err(|e| ns_err("make a shared mount of", dir, e.into())),
        Err(e) => Err(ns_err("make a shared mount of", dir, e.into())),
    }
}

fn ns_err(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> NetError {
    NetError::Netns { op, path: path.as_ref().to_path_buf(), source }
}

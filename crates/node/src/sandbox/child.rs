//! What a container process does between fork and exec: join the pod's network namespace,
//! get its own UTS and mount namespaces, and set up its files, directory and user.
//!
//! Everything is prepared before the fork ([`Plan::new`]); [`Plan::apply`] then makes only
//! system calls on that data: no allocation and no locks, as required between fork and exec.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A step of [`Plan::apply`], reported to the shim through a pipe when it fails, so the start
/// error can say what failed and not only the errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Step {
    SignalMask = 1,
    JoinNetns,
    Unshare,
    MountSlave,
    SetHostname,
    EtcBind,
    VolumeDir,
    VolumeBind,
    VolumeReadOnly,
    Chdir,
    SetGroups,
    SetGid,
    SetUid,
    EnterNamespaces,
}

impl Step {
    fn from_u8(b: u8) -> Option<Step> {
        use Step::*;
        [
            SignalMask,
            JoinNetns,
            Unshare,
            MountSlave,
            SetHostname,
            EtcBind,
            VolumeDir,
            VolumeBind,
            VolumeReadOnly,
            Chdir,
            SetGroups,
            SetGid,
            SetUid,
            EnterNamespaces,
        ]
        .into_iter()
        .find(|s| *s as u8 == b)
    }
}

pub(crate) struct Bind {
    pub source: CString,
    pub target: CString,
    /// Directories to create first (outermost first), then the target itself.
    pub create: Vec<CString>,
    /// Whether the target is a directory (else a file).
    pub dir: bool,
    pub read_only: bool,
}

pub(crate) struct Plan {
    /// The pod's network namespace file, kept open by the shim across the fork.
    pub netns_fd: RawFd,
    pub hostname: CString,
    /// (source file in the state dir, /etc target) pairs.
    pub etc: Vec<(CString, CString)>,
    pub volumes: Vec<Bind>,
    pub workdir: CString,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Write end of the step-report pipe (close-on-exec, so exec closes it).
    pub report_fd: RawFd,
}

pub(crate) fn cstring(p: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(p.as_ref().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// A bind of `source` at `target`; the directories to create are the target's missing
/// ancestors, decided at exec time because an earlier volume may provide them.
pub(crate) fn bind(source: &Path, target: &Path, read_only: bool) -> io::Result<Bind> {
    let dir =
        std::fs::metadata(source).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", source.display())))?.is_dir();
    let mut create = Vec::new();
    let mut ancestors: Vec<PathBuf> =
        target.ancestors().skip(1).filter(|a| a.parent().is_some()).map(Path::to_path_buf).collect();
    ancestors.reverse();
    for a in ancestors {
        create.push(cstring(a)?);
    }
    Ok(Bind { source: cstring(source)?, target: cstring(target)?, create, dir, read_only })
}

impl Plan {
    /// Runs in the forked child. On failure the step goes to `report_fd` and the errno to the
    /// caller (std's spawn passes it back to the parent).
    pub(crate) fn apply(&self) -> io::Result<()> {
        // SAFETY: plain system calls on data prepared before the fork; pointers are to
        // NUL-terminated strings that outlive the calls.
        unsafe {
            // The shim blocks the signals it forwards; the container must start with none blocked.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            check(
                self.report_fd,
                Step::SignalMask,
                0,
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()),
            )?;
            check(self.report_fd, Step::JoinNetns, 0, libc::setns(self.netns_fd, libc::CLONE_NEWNET))?;
            check(self.report_fd, Step::Unshare, 0, libc::unshare(libc::CLONE_NEWUTS | libc::CLONE_NEWNS))?;
            // Before any mount: a slave tree still sees the host's later mounts but sends
            // nothing back, so the binds below stay inside this namespace.
            let root = c"/".as_ptr();
            let none = std::ptr::null();
            check(
                self.report_fd,
                Step::MountSlave,
                0,
                libc::mount(none, root, none, libc::MS_REC | libc::MS_SLAVE, none.cast()),
            )?;
            let h = &self.hostname;
            check(self.report_fd, Step::SetHostname, 0, libc::sethostname(h.as_ptr(), h.as_bytes().len()))?;
            for (i, (src, dst)) in self.etc.iter().enumerate() {
                let rc = libc::mount(src.as_ptr(), dst.as_ptr(), none, libc::MS_BIND, none.cast());
                check(self.report_fd, Step::EtcBind, i, rc)?;
            }
            for (i, v) in self.volumes.iter().enumerate() {
                for d in &v.create {
                    mkdir_exists_ok(self.report_fd, i, d)?;
                }
                if v.dir {
                    mkdir_exists_ok(self.report_fd, i, &v.target)?;
                } else if libc::access(v.target.as_ptr(), libc::F_OK) != 0 {
                    let fd = libc::open(v.target.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o644);
                    check(self.report_fd, Step::VolumeDir, i, fd)?;
                    libc::close(fd);
                }
                let rc =
                    libc::mount(v.source.as_ptr(), v.target.as_ptr(), none, libc::MS_BIND | libc::MS_REC, none.cast());
                check(self.report_fd, Step::VolumeBind, i, rc)?;
                if v.read_only {
                    let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
                    let rc = libc::mount(none, v.target.as_ptr(), none, flags, none.cast());
                    check(self.report_fd, Step::VolumeReadOnly, i, rc)?;
                }
            }
            check(self.report_fd, Step::Chdir, 0, libc::chdir(self.workdir.as_ptr()))?;
            set_user(self.report_fd, self.uid, self.gid)
        }
    }
}

/// Drops to the container's user: groups first, as only root may change them.
///
/// # Safety
/// Only system calls; callable between fork and exec.
pub(crate) unsafe fn set_user(report_fd: RawFd, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    // SAFETY: see the function's contract.
    unsafe {
        if uid.is_some() || gid.is_some() {
            // Root's supplementary groups must not follow the container into another user.
            let groups: [libc::gid_t; 1] = [gid.unwrap_or(0)];
            let n = usize::from(gid.is_some());
            check(report_fd, Step::SetGroups, 0, libc::setgroups(n, groups.as_ptr()))?;
        }
        if let Some(g) = gid {
            check(report_fd, Step::SetGid, 0, libc::setgid(g))?;
        }
        if let Some(u) = uid {
            check(report_fd, Step::SetUid, 0, libc::setuid(u))?;
        }
    }
    Ok(())
}

unsafe fn mkdir_exists_ok(report_fd: RawFd, i: usize, dir: &CString) -> io::Result<()> {
    // SAFETY: mkdir(2) on a NUL-terminated path.
    if unsafe { libc::mkdir(dir.as_ptr(), 0o755) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EEXIST) {
        return Ok(());
    }
    report(report_fd, Step::VolumeDir, i);
    Err(err)
}

/// `Ok` for a non-negative return; otherwise reports the step and returns errno.
pub(crate) fn check(report_fd: RawFd, step: Step, index: usize, rc: libc::c_int) -> io::Result<()> {
    if rc >= 0 {
        return Ok(());
    }
    // errno first: the report's write(2) may change it.
    let err = io::Error::last_os_error();
    report(report_fd, step, index);
    Err(err)
}

fn report(report_fd: RawFd, step: Step, index: usize) {
    let msg = [step as u8, index.min(255) as u8];
    // SAFETY: write(2) of a stack buffer; a failed report only loses the step name.
    unsafe { libc::write(report_fd, msg.as_ptr().cast(), msg.len()) };
}

/// Decodes a step report: (step, index into the list it refers to).
pub(crate) fn decode_report(bytes: &[u8]) -> Option<(Step, usize)> {
    match bytes {
        [s, i, ..] => Some((Step::from_u8(*s)?, usize::from(*i))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_creates_missing_ancestors_outermost_first() {
        let b = bind(Path::new("/"), Path::new("/data/cache/x"), true).unwrap();
        let create: Vec<&[u8]> = b.create.iter().map(|c| c.as_bytes()).collect();
        assert_eq!(create, [&b"/data"[..], b"/data/cache"]);
        assert!(b.dir && b.read_only);
        assert!(bind(Path::new("/nonexistent-portico-source"), Path::new("/x"), false).is_err());
    }

    #[test]
    fn step_reports_round_trip() {
        for s in [Step::SignalMask, Step::VolumeBind, Step::EnterNamespaces] {
            assert_eq!(decode_report(&[s as u8, 3]), Some((s, 3)));
        }
        assert_eq!(decode_report(&[0, 0]), None);
        assert_eq!(decode_report(&[]), None);
    }
}

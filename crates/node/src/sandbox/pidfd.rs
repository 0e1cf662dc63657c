//! Reaching a container's process without racing pid reuse: a pidfd is taken, then checked
//! against the start time the shim recorded; a pidfd keeps naming its process even if the pid
//! is reused later.

use super::state;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A pidfd for `pid` if it is still the process that started at `start_time`.
pub(crate) fn open(pid: u32, start_time: u64) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // The pidfd names whatever had the pid when it was opened; if that process is still alive
    // with the recorded start time afterwards, it is the one the shim started.
    if !state::is_process(pid, start_time) {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(fd)
}

pub(crate) fn send_signal(fd: &OwnedFd, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: pidfd_send_signal(2) on a valid pidfd, without siginfo.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), sig, std::ptr::null::<u8>(), 0) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

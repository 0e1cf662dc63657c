//! Pod sandboxes and the container supervisor process (the role containerd-shim plays).
//!
//! There are no images: a container is a host command run inside the pod's network namespace
//! and a UTS and mount namespace of its own, with its own /etc/resolv.conf, /etc/hosts,
//! /etc/hostname and volumes bind-mounted there. Each container is held by a shim process
//! (`portico shim <dir>`, see [`shim_main`]) that the agent starts detached, so pods survive an
//! agent restart. Agent and shim share nothing but the container's state directory:
//!
//! ```text
//! <state_dir>/<id>/spec.json      the ContainerSpec (written by the agent)
//!                  state.json     ContainerState (written by the shim, atomically)
//!                  container.log  stdout/stderr in the CRI log format
//!                  shim.log       the shim's own log; shim.stderr its panics
//!                  etc/           the container's resolv.conf, hosts, hostname
//!                  stdin          a fifo, for containers with stdin: true
//! ```
//!
//! For the agent:
//! - `exe` must be the portico binary (its hidden `shim` and `demo` subcommands); the shim runs
//!   the demo server from its own `/proc/self/exe`.
//! - An id is claimed once: start the next run under a new id (restart count), and
//!   [`Sandbox::remove`] ended ones. On restart, [`Sandbox::list`] is the truth: a container
//!   that is not ended but whose `shim_alive` is false lost its supervisor (it will never
//!   report an exit, and its output has nowhere to go); signal it and treat it as failed.
//! - Signals reach the main process only (via a pidfd checked against its start time, so never
//!   a reused pid). When the main process ends, the shim SIGKILLs the rest of its process group,
//!   as the end of a PID namespace would; a process that left the group survives.
//! - Shims are orphans by design and are reaped by init; where pid 1 does not reap, they stay
//!   zombies (not running) until a subreaper reaps them, as the tests do.
//! - Volume mount points that do not exist are created on the host's filesystem (only the
//!   mount itself is private); missing /etc files are not created, the container then lacks them.

mod child;
mod demo;
pub mod log;
mod pidfd;
mod shim;
mod spec;
mod state;

pub use demo::demo_main;
pub use nix::sys::signal::Signal;
pub use shim::shim_main;
pub use spec::{ContainerSpec, DEFAULT_PATH, Mount, Protocol};
pub use state::{ContainerState, REASON_COMPLETED, REASON_ERROR, REASON_START_ERROR, START_ERROR_EXIT_CODE, Status};

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// How long [`Sandbox::start`] waits for the shim to report the container started or failed.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("container {id}: invalid spec: {reason}")]
    InvalidSpec { id: String, reason: String },
    #[error("container {id}: already exists in {}", dir.display())]
    AlreadyExists { id: String, dir: PathBuf },
    #[error("container {id}: not found")]
    NotFound { id: String },
    #[error("container {id}: not running")]
    NotRunning { id: String },
    #[error("container {id}: still running; stop it before removing it")]
    StillRunning { id: String },
    /// The container could not be started; its state says the same (reason StartError).
    #[error("container {id}: failed to start: {message}")]
    StartFailed { id: String, message: String },
    #[error("container {id}: its shim failed: {detail}")]
    Shim { id: String, detail: String },
    #[error("container {id}: no word from its shim within {after:?}")]
    StartTimeout { id: String, after: Duration },
    #[error("container {id}: {what}: {source}")]
    Io {
        id: String,
        what: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(id: &str, what: impl Into<String>) -> impl FnOnce(io::Error) -> SandboxError {
    let (id, what) = (id.to_string(), what.into());
    move |source| SandboxError::Io { id, what, source }
}

/// The agent's handle on the containers of one state directory.
#[derive(Clone, Debug)]
pub struct Sandbox {
    state_dir: PathBuf,
    /// The portico binary, with the hidden `shim` and `demo` subcommands.
    exe: PathBuf,
}

impl Sandbox {
    pub fn new(state_dir: PathBuf, exe: PathBuf) -> Sandbox {
        Sandbox { state_dir, exe }
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    fn dir(&self, id: &str) -> Result<PathBuf, SandboxError> {
        spec::check_id(id).map_err(|reason| SandboxError::InvalidSpec { id: id.into(), reason })?;
        Ok(self.state_dir.join(id))
    }

    /// Writes the spec, starts `<exe> shim <dir>` detached, and waits (at most
    /// [`START_TIMEOUT`]) until the shim reports the container running, already ended, or
    /// failed to start ([`SandboxError::StartFailed`], with kubelet's wording).
    pub async fn start(&self, spec: &ContainerSpec) -> Result<ContainerState, SandboxError> {
        let id = spec.id.as_str();
        if crate::shutdown::is_set() {
            return Err(SandboxError::StartFailed { id: id.into(), message: "the node is shutting down".into() });
        }
        spec.validate().map_err(|reason| SandboxError::InvalidSpec { id: id.into(), reason })?;
        let dir = self.dir(id)?;
        fs::create_dir_all(&self.state_dir).map_err(io_err(id, format!("creating {}", self.state_dir.display())))?;
        // create_dir (not _all) claims the id: a second start of the same id fails here.
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(SandboxError::AlreadyExists { id: id.into(), dir });
            }
            Err(e) => return Err(io_err(id, format!("creating {}", dir.display()))(e)),
        }
        let json =
            serde_json::to_vec_pretty(spec).map_err(|e| io_err(id, "serializing the spec")(io::Error::other(e)))?;
        state::write_atomic(&dir.join(state::SPEC_FILE), &json).map_err(io_err(id, "writing spec.json"))?;
        let stderr = fs::File::create(dir.join(state::SHIM_STDERR_FILE)).map_err(io_err(id, "creating shim.stderr"))?;

        let started = Instant::now();
        let mut launcher = tokio::process::Command::new(&self.exe)
            .arg("shim")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(io_err(id, format!("running {} shim", self.exe.display())))?;
        // The launcher prints the shim's pid and exits; the shim itself is not our child.
        let mut line = String::new();
        if let Some(out) = launcher.stdout.take() {
            let _ = tokio::time::timeout(START_TIMEOUT, tokio::io::BufReader::new(out).read_line(&mut line)).await;
        }
        let status = launcher.wait().await.map_err(io_err(id, "waiting for the shim launcher"))?;
        let shim_pid: Option<u32> = line.trim().parse().ok();
        if !status.success() || shim_pid.is_none() {
            return Err(SandboxError::Shim {
                id: id.into(),
                detail: format!("launcher {status}; {}", shim_logs(&dir)),
            });
        }
        tracing::debug!(id, shim_pid, "container shim launched");

        while started.elapsed() < START_TIMEOUT {
            match state::read_state(&dir) {
                Some(st) if st.status == Status::Exited && st.reason.as_deref() == Some(REASON_START_ERROR) => {
                    let message = st.message.unwrap_or_default();
                    tracing::warn!(id, %message, "container failed to start");
                    return Err(SandboxError::StartFailed { id: id.into(), message });
                }
                Some(st) if st.status != Status::Created => {
                    tracing::info!(id, pid = st.pid, "container started");
                    return Ok(st);
                }
                // Written by the shim, so the shim got going; it must stay alive to report.
                Some(st) if !st.shim_alive => {
                    return Err(SandboxError::Shim {
                        id: id.into(),
                        detail: format!("exited early; {}", shim_logs(&dir)),
                    });
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
        // A shim that cannot report is of no use to anyone; stop it rather than leak it.
        if let Some(st) = state::read_state(&dir)
            && let (Some(pid), Some(start)) = (st.shim_pid, st.shim_start_time)
            && let Ok(fd) = pidfd::open(pid, start)
        {
            let _ = pidfd::send_signal(&fd, libc::SIGKILL);
        }
        tracing::warn!(id, "container shim gave no start report; killed it");
        Err(SandboxError::StartTimeout { id: id.into(), after: START_TIMEOUT })
    }

    /// What the shim recorded, or `None` if `id` has no state (yet).
    pub fn state(&self, id: &str) -> Option<ContainerState> {
        state::read_state(&self.dir(id).ok()?)
    }

    /// Every container with a recorded state, sorted by id: what an agent re-adopts after a
    /// restart. A container whose `shim_alive` is false while it is not ended lost its shim
    /// (e.g. killed) and will never report an exit.
    pub fn list(&self) -> Vec<ContainerState> {
        let Ok(entries) = fs::read_dir(&self.state_dir) else { return Vec::new() };
        let mut all: Vec<ContainerState> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| state::read_state(&e.path()))
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Sends `sig` to the container's main process.
    pub fn signal(&self, id: &str, sig: Signal) -> Result<(), SandboxError> {
        let fd = self.pidfd(id)?;
        pidfd::send_signal(&fd, sig as libc::c_int).map_err(|e| match e.raw_os_error() {
            Some(libc::ESRCH) => SandboxError::NotRunning { id: id.into() },
            _ => io_err(id, format!("sending {sig}"))(e),
        })?;
        tracing::debug!(id, %sig, "signalled container");
        Ok(())
    }

    /// Deletes the state directory of a container that has ended (or whose processes are gone).
    pub fn remove(&self, id: &str) -> Result<(), SandboxError> {
        let dir = self.dir(id)?;
        if !dir.exists() {
            return Err(SandboxError::NotFound { id: id.into() });
        }
        if let Some(st) = state::read_state(&dir) {
            let main_alive = matches!((st.pid, st.pid_start_time), (Some(p), Some(t)) if state::is_process(p, t));
            if (!st.has_ended() && st.shim_alive) || main_alive {
                return Err(SandboxError::StillRunning { id: id.into() });
            }
        }
        fs::remove_dir_all(&dir).map_err(io_err(id, format!("removing {}", dir.display())))?;
        tracing::debug!(id, "container state removed");
        Ok(())
    }

    /// A command that runs `argv` inside a running container: its network, UTS and mount
    /// namespaces, its env, working directory and user. For exec probes and `kubectl exec`.
    /// The caller sets stdio and spawns it.
    pub fn enter(&self, id: &str, argv: &[String]) -> Result<std::process::Command, SandboxError> {
        let invalid = |reason: &str| SandboxError::InvalidSpec { id: id.into(), reason: reason.into() };
        let program = argv.first().filter(|a| !a.is_empty()).ok_or_else(|| invalid("exec needs a command"))?;
        if argv.iter().any(|a| a.contains('\0')) {
            return Err(invalid("exec arguments must not contain NUL"));
        }
        let dir = self.dir(id)?;
        let bytes = fs::read(dir.join(state::SPEC_FILE)).map_err(|_| SandboxError::NotFound { id: id.into() })?;
        let spec: ContainerSpec =
            serde_json::from_slice(&bytes).map_err(|e| io_err(id, "reading spec.json")(io::Error::other(e)))?;
        let pidfd = self.pidfd(id)?;
        let workdir = spec.working_dir.clone().unwrap_or_else(|| PathBuf::from("/"));
        let workdir: CString = child::cstring(&workdir).map_err(io_err(id, "working dir"))?;
        let (uid, gid) = (spec.run_as_user, spec.run_as_group);

        let mut cmd = std::process::Command::new(program);
        cmd.args(&argv[1..]).env_clear().envs(spec.resolved_env());
        // SAFETY: only system calls between fork and exec. setns with a pidfd enters all three
        // namespaces of that very process at once; a mount namespace may be entered because the
        // forked child is single-threaded.
        unsafe {
            cmd.pre_exec(move || {
                let flags = libc::CLONE_NEWNET | libc::CLONE_NEWUTS | libc::CLONE_NEWNS;
                child::check(-1, child::Step::EnterNamespaces, 0, libc::setns(pidfd.as_raw_fd(), flags))?;
                child::check(-1, child::Step::Chdir, 0, libc::chdir(workdir.as_ptr()))?;
                child::set_user(-1, uid, gid)
            });
        }
        Ok(cmd)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.state_dir.join(id).join(state::LOG_FILE)
    }

    /// A pidfd of the container's running main process.
    fn pidfd(&self, id: &str) -> Result<std::os::fd::OwnedFd, SandboxError> {
        let dir = self.dir(id)?;
        let st = state::read_state(&dir).ok_or_else(|| SandboxError::NotFound { id: id.into() })?;
        let (Status::Running, Some(pid), Some(start)) = (st.status, st.pid, st.pid_start_time) else {
            return Err(SandboxError::NotRunning { id: id.into() });
        };
        pidfd::open(pid, start).map_err(|e| match e.raw_os_error() {
            Some(libc::ESRCH) => SandboxError::NotRunning { id: id.into() },
            _ => io_err(id, format!("opening a pidfd for {pid}"))(e),
        })
    }
}

/// The end of the shim's logs, for an error message.
fn shim_logs(dir: &Path) -> String {
    let tail = |name: &str| {
        let text = fs::read_to_string(dir.join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    };
    format!("shim.log: [{}], shim.stderr: [{}]", tail(state::SHIM_LOG_FILE), tail(state::SHIM_STDERR_FILE))
}

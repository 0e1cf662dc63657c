//! The container supervisor (`portico shim <dir>`), the role containerd-shim plays: it starts
//! the container process in the pod's namespaces, writes its output as a CRI log, forwards
//! signals to it, and records how it ended. It outlives the agent that started it.

use super::child::{self, Plan, Step};
use super::log::{CriLines, Stream};
use super::spec::ContainerSpec;
use super::state::{self, ContainerState, Status};
use jiff::Timestamp;
use nix::sys::signal::{SigSet, Signal};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Signals sent to the shim that belong to the container (a `kill <shim>` stops the container).
const FORWARDED: [Signal; 6] =
    [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2];
/// How long the log is drained after the main process ended, before the exit is recorded anyway
/// (a process that left the container's process group may hold its stdout open forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// The /etc files a container gets its own copy of, from the spec.
const ETC_FILES: [&str; 3] = ["resolv.conf", "hosts", "hostname"];

/// Entry point of `portico shim <dir>`. Must be called while the process has a single thread
/// (before any async runtime): it forks.
pub fn shim_main(dir: &Path) -> ! {
    // The agent waits for this process; forking lets it return at once while the shim lives on
    // under init (or a subreaper), in a session of its own so that nothing aimed at the agent's
    // process group or terminal reaches it.
    // SAFETY: the process is single-threaded here (see above).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            let mut out = io::stdout().lock();
            let ok = writeln!(out, "{child}").and_then(|()| out.flush()).is_ok();
            std::process::exit(if ok { 0 } else { 1 })
        }
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(e) => {
            eprintln!("portico shim: fork: {e}");
            std::process::exit(1)
        }
    }
    let _ = nix::unistd::setsid();
    // The agent reads our pid from stdout until EOF; this copy must not keep it open.
    if let Ok(null) = File::open("/dev/null") {
        // SAFETY: dup2(2) onto stdout with a valid descriptor.
        unsafe { libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO) };
    }
    let log = ShimLog::open(dir);
    let code = match run(dir, &log) {
        Ok(()) => 0,
        Err(e) => {
            log.line(format_args!("{e}"));
            1
        }
    };
    std::process::exit(code)
}

/// The shim's own log: what it did and why a start failed, for whoever debugs a node.
struct ShimLog(Mutex<Option<File>>);

impl ShimLog {
    fn open(dir: &Path) -> ShimLog {
        let file = OpenOptions::new().create(true).append(true).open(dir.join(state::SHIM_LOG_FILE)).ok();
        ShimLog(Mutex::new(file))
    }

    fn line(&self, msg: std::fmt::Arguments<'_>) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = guard.as_mut() {
            let _ = writeln!(f, "{:.6} {msg}", Timestamp::now());
        }
    }
}

fn run(dir: &Path, log: &ShimLog) -> Result<(), String> {
    let dir_name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut st = ContainerState::new(&dir_name);
    st.shim_pid = Some(std::process::id());
    st.shim_start_time = state::proc_stat(std::process::id()).map(|(_, t)| t);
    let save = |st: &ContainerState| {
        state::write_state(dir, st).map_err(|e| format!("writing {}: {e}", dir.join(state::STATE_FILE).display()))
    };
    let spec = match read_spec(dir) {
        Ok(spec) => spec,
        Err(e) => {
            st.start_error(e.clone());
            save(&st)?;
            return Err(e);
        }
    };
    st.id = spec.id.clone();
    save(&st)?;
    log.line(format_args!("shim {} for container {}", std::process::id(), spec.id));

    let child = match launch(dir, &spec, log) {
        Ok(child) => child,
        Err(message) => {
            log.line(format_args!("start failed: {message}"));
            st.start_error(message);
            return save(&st);
        }
    };
    let pid = child.pid;
    st.status = Status::Running;
    st.pid = Some(pid);
    st.pid_start_time = state::proc_stat(pid).map(|(_, t)| t);
    st.started_at = Some(Timestamp::now());
    save(&st)?;
    log.line(format_args!("container process {pid} started"));

    let (code, signal) = wait_main(pid);
    log.line(format_args!("container process {pid} ended: code {code:?}, signal {signal:?}"));
    // What a PID namespace's end would do: nothing of the container outlives its main process.
    // SAFETY: kill(2) on the group the container leads; its leader is our unreaped zombie, so the
    // group id cannot have been reused.
    unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    for _ in 0..2 {
        if child.logs_done.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_err() {
            log.line(format_args!(
                "log not drained within {DRAIN_TIMEOUT:?}; something outside the container holds its output"
            ));
            break;
        }
    }
    st.exited(code, signal);
    // Recorded before the main process is reaped: while the state says running, its pid cannot
    // belong to anyone else, which is what makes signal() and enter() safe against pid reuse.
    let saved = save(&st);
    // SAFETY: waitpid(2) on our own child.
    unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0) };
    reap_orphans(Duration::from_millis(500));
    saved
}

fn read_spec(dir: &Path) -> Result<ContainerSpec, String> {
    let path = dir.join(state::SPEC_FILE);
    let bytes = fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let spec: ContainerSpec = serde_json::from_slice(&bytes).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    spec.validate().map_err(|e| format!("invalid spec: {e}"))?;
    Ok(spec)
}

struct Running {
    pid: u32,
    /// One message per output stream once its log is complete.
    logs_done: mpsc::Receiver<()>,
}

/// Starts the container process; `Err` is the start error's message, kubelet style.
fn launch(dir: &Path, spec: &ContainerSpec, log: &ShimLog) -> Result<Running, String> {
    let exe = std::env::current_exe().map_err(|e| format!("locating the portico binary for the demo server: {e}"))?;
    let argv = spec.resolved_argv(&exe);
    let etc_dir = dir.join("etc");
    fs::create_dir_all(&etc_dir).map_err(|e| format!("creating {}: {e}", etc_dir.display()))?;
    let hostname = format!("{}\n", spec.hostname);
    let mut etc = Vec::new();
    let mut etc_targets = Vec::new();
    for (name, content) in ETC_FILES.into_iter().zip([&spec.resolv_conf, &spec.hosts, &hostname]) {
        let source = etc_dir.join(name);
        state::write_atomic(&source, content.as_bytes()).map_err(|e| format!("writing {}: {e}", source.display()))?;
        let target = Path::new("/etc").join(name);
        // Creating a missing /etc file would change the host's filesystem; without a target the
        // container simply sees the host's (absent) file.
        if !target.exists() {
            log.line(format_args!("{} does not exist on this host; the container gets none", target.display()));
            continue;
        }
        etc.push((
            child::cstring(&source).map_err(|e| e.to_string())?,
            child::cstring(&target).map_err(|e| e.to_string())?,
        ));
        etc_targets.push(target);
    }
    let mut volumes = Vec::new();
    for m in &spec.mounts {
        volumes.push(
            child::bind(&m.source, &m.target, m.read_only)
                .map_err(|e| format!("volume mount {} at {}: {e}", m.source.display(), m.target.display()))?,
        );
    }
    let workdir = spec.working_dir.clone().unwrap_or_else(|| PathBuf::from("/"));
    let netns = File::open(&spec.netns)
        .map_err(|e| format!("opening network namespace {}: {}", spec.netns.display(), go_err(&e)))?;

    let stdin = if spec.stdin {
        // A fifo opened read-write never reads EOF: the container's stdin stays open for a
        // later attach, which opens the fifo for writing.
        let fifo = dir.join(state::STDIN_FIFO);
        let _ = fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| format!("creating stdin fifo {}: {e}", fifo.display()))?;
        Stdio::from(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&fifo)
                .map_err(|e| format!("opening {}: {e}", fifo.display()))?,
        )
    } else {
        Stdio::null()
    };
    let (report_r, report_w) = pipe_cloexec().map_err(|e| format!("creating a pipe: {e}"))?;

    // Blocked before the process exists, so a SIGTERM arriving during the start is kept for the
    // forwarding thread instead of killing the shim and orphaning the container.
    let mut forwarded = SigSet::empty();
    for s in FORWARDED {
        forwarded.add(s);
    }
    forwarded.thread_block().map_err(|e| format!("blocking signals: {e}"))?;
    // Orphans of the container (daemonized children) come to the shim, which reaps them,
    // instead of piling up as zombies under init.
    // SAFETY: prctl(2) with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

    let plan = Plan {
        netns_fd: netns.as_raw_fd(),
        hostname: child::cstring(&spec.hostname).map_err(|e| e.to_string())?,
        etc,
        volumes,
        workdir: child::cstring(&workdir).map_err(|e| e.to_string())?,
        uid: spec.run_as_user,
        gid: spec.run_as_group,
        report_fd: report_w.as_raw_fd(),
    };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(spec.resolved_env())
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so the whole container can be killed when its main process ends.
        .process_group(0);
    // SAFETY: Plan::apply makes only system calls on data prepared above (see child.rs); the
    // shim is single-threaded at this point.
    unsafe { cmd.pre_exec(move || plan.apply()) };
    let spawned = cmd.spawn();
    drop(cmd);
    drop(report_w);
    drop(netns);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let mut report = Vec::new();
            let _ = File::from(report_r).read_to_end(&mut report);
            return Err(start_error(&e, child::decode_report(&report), &argv[0], spec, &etc_targets, &workdir));
        }
    };
    let pid = child.id();
    let (tx, logs_done) = mpsc::channel();
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(state::LOG_FILE))
        .map_err(|e| format!("opening the container log: {e}"))?;
    let log_file = Arc::new(Mutex::new(log_file));
    if let Some(out) = child.stdout.take() {
        pump(out, Stream::Stdout, log_file.clone(), tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        pump(err, Stream::Stderr, log_file, tx);
    }
    std::thread::spawn(move || {
        loop {
            if let Ok(sig) = forwarded.wait() {
                // SAFETY: kill(2); the pid is our child and stays unreaped until its exit has
                // been recorded, so it cannot name another process.
                unsafe { libc::kill(pid as libc::pid_t, sig as libc::c_int) };
            }
        }
    });
    Ok(Running { pid, logs_done })
}

/// Copies one output stream of the container into the log, on a thread of its own.
fn pump(mut pipe: impl Read + Send + 'static, stream: Stream, file: Arc<Mutex<File>>, done: mpsc::Sender<()>) {
    std::thread::spawn(move || {
        let mut lines = CriLines::new(stream);
        let mut buf = vec![0u8; 32 * 1024];
        let mut out = Vec::new();
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => lines.feed(&buf[..n], Timestamp::now(), &mut out),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
            flush(&file, &mut out);
        }
        lines.finish(Timestamp::now(), &mut out);
        flush(&file, &mut out);
        let _ = done.send(());
    });
}

fn flush(file: &Mutex<File>, out: &mut Vec<u8>) {
    if out.is_empty() {
        return;
    }
    // One write per batch of whole records, so the two streams never interleave within a line.
    let _ = file.lock().unwrap_or_else(|e| e.into_inner()).write_all(out);
    out.clear();
}

/// Waits for the main process to end without reaping it (see `run`); reaps adopted orphans on
/// the way. Returns (exit code, signal).
fn wait_main(pid: u32) -> (Option<i32>, Option<i32>) {
    loop {
        // SAFETY: waitid(2) into a zeroed siginfo_t owned by this frame.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return (None, None);
        }
        // SAFETY: for WEXITED results the kernel fills si_pid and si_status.
        let (child, status) = unsafe { (info.si_pid(), info.si_status()) };
        if child == pid as libc::pid_t {
            return match info.si_code {
                libc::CLD_EXITED => (Some(status), None),
                _ => (None, Some(status)),
            };
        }
        // SAFETY: waitpid(2) on a child that has exited.
        unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
    }
}

/// Reaps what is left of the container's adopted processes, for a short while.
fn reap_orphans(within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        // SAFETY: waitpid(2) without a status pointer.
        match unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } {
            0 => std::thread::sleep(Duration::from_millis(10)),
            n if n > 0 => continue,
            _ => return,
        }
    }
}

fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) into a two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The start error's message, worded like runc's as kubelet shows it.
fn start_error(
    e: &io::Error,
    step: Option<(Step, usize)>,
    argv0: &str,
    spec: &ContainerSpec,
    etc_targets: &[PathBuf],
    workdir: &Path,
) -> String {
    let errno = go_err(e);
    let Some((step, i)) = step else {
        return match e.kind() {
            io::ErrorKind::NotFound if !argv0.contains('/') => {
                format!("exec: \"{argv0}\": executable file not found in $PATH")
            }
            io::ErrorKind::NotFound => format!("exec: \"{argv0}\": stat {argv0}: {errno}"),
            _ => format!("exec: \"{argv0}\": {errno}"),
        };
    };
    let volume = |i: usize| spec.mounts.get(i).map(|m| m.target.display().to_string()).unwrap_or_default();
    let what = match step {
        Step::SignalMask => "resetting the signal mask".to_string(),
        Step::JoinNetns => format!("joining network namespace {}", spec.netns.display()),
        Step::Unshare => "creating UTS and mount namespaces".into(),
        Step::MountSlave => "making / a slave mount".into(),
        Step::SetHostname => format!("setting hostname {:?}", spec.hostname),
        Step::EtcBind => {
            format!("bind-mounting {}", etc_targets.get(i).map(|t| t.display().to_string()).unwrap_or_default())
        }
        Step::VolumeDir => format!("creating mount point {}", volume(i)),
        Step::VolumeBind => format!("bind-mounting volume at {}", volume(i)),
        Step::VolumeReadOnly => format!("making volume at {} read-only", volume(i)),
        Step::Chdir => format!("chdir to cwd ({:?}) set in the container spec failed", workdir.display().to_string()),
        Step::SetGroups => "setgroups".into(),
        Step::SetGid => format!("setgid {}", spec.run_as_group.unwrap_or_default()),
        Step::SetUid => format!("setuid {}", spec.run_as_user.unwrap_or_default()),
        Step::EnterNamespaces => "entering the container's namespaces".into(),
    };
    format!("{what}: {errno}")
}

/// An OS error worded as Go prints it (and so as kubelet users know it): "no such file or
/// directory", without Rust's "(os error 2)".
pub(crate) fn go_err(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            id: "c".into(),
            netns: "/run/netns/pod".into(),
            hostname: "h".into(),
            working_dir: Some("/nosuch".into()),
            ..Default::default()
        }
    }

    #[test]
    fn exec_errors_read_like_kubelet() {
        let enoent = io::Error::from_raw_os_error(libc::ENOENT);
        let s = spec();
        assert_eq!(
            start_error(&enoent, None, "nosuch", &s, &[], Path::new("/")),
            "exec: \"nosuch\": executable file not found in $PATH"
        );
        assert_eq!(
            start_error(&enoent, None, "/bin/nosuch", &s, &[], Path::new("/")),
            "exec: \"/bin/nosuch\": stat /bin/nosuch: no such file or directory"
        );
        let eacces = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(
            start_error(&eacces, None, "/etc/hosts", &s, &[], Path::new("/")),
            "exec: \"/etc/hosts\": permission denied"
        );
        assert_eq!(
            start_error(&enoent, Some((Step::Chdir, 0)), "x", &s, &[], Path::new("/nosuch")),
            "chdir to cwd (\"/nosuch\") set in the container spec failed: no such file or directory"
        );
        let einval = io::Error::from_raw_os_error(libc::EINVAL);
        assert_eq!(
            start_error(&einval, Some((Step::JoinNetns, 0)), "x", &s, &[], Path::new("/")),
            "joining network namespace /run/netns/pod: invalid argument"
        );
    }
}

//! The shim's record of a container, in small JSON files replaced atomically, so a reader
//! (the agent, possibly restarted) never sees half a write.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::path::Path;

pub(crate) const SPEC_FILE: &str = "spec.json";
pub(crate) const STATE_FILE: &str = "state.json";
pub(crate) const LOG_FILE: &str = "container.log";
pub(crate) const SHIM_LOG_FILE: &str = "shim.log";
pub(crate) const SHIM_STDERR_FILE: &str = "shim.stderr";
pub(crate) const STDIN_FIFO: &str = "stdin";

/// Kubelet's reasons for a terminated container.
pub const REASON_COMPLETED: &str = "Completed";
pub const REASON_ERROR: &str = "Error";
pub const REASON_START_ERROR: &str = "StartError";
/// What containerd reports as the exit code of a container that never started.
pub const START_ERROR_EXIT_CODE: i32 = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The shim is setting the container up.
    Created,
    Running,
    /// Ended, or never started (reason `StartError`).
    Exited,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    pub status: Status,
    pub shim_pid: Option<u32>,
    /// Start time of the shim (clock ticks since boot, /proc/<pid>/stat field 22): with the pid,
    /// it tells the shim from a later process that reuses its pid.
    pub shim_start_time: Option<u64>,
    /// The container's main process.
    pub pid: Option<u32>,
    pub pid_start_time: Option<u64>,
    #[serde(with = "opt_ts", default)]
    pub started_at: Option<Timestamp>,
    #[serde(with = "opt_ts", default)]
    pub finished_at: Option<Timestamp>,
    /// For a process killed by a signal, 128 + the signal number, as kubelet reports it.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub reason: Option<String>,
    pub message: Option<String>,
    /// Whether the shim process is alive now; computed when read, never stored.
    #[serde(skip)]
    pub shim_alive: bool,
}

impl ContainerState {
    pub(crate) fn new(id: &str) -> ContainerState {
        ContainerState {
            id: id.into(),
            status: Status::Created,
            shim_pid: None,
            shim_start_time: None,
            pid: None,
            pid_start_time: None,
            started_at: None,
            finished_at: None,
            exit_code: None,
            signal: None,
            reason: None,
            message: None,
            shim_alive: false,
        }
    }

    pub fn is_running(&self) -> bool {
        self.status == Status::Running
    }

    pub fn has_ended(&self) -> bool {
        self.status == Status::Exited
    }

    /// Records a failed start the way kubelet shows it: terminated, reason StartError.
    pub(crate) fn start_error(&mut self, message: String) {
        self.status = Status::Exited;
        self.exit_code = Some(START_ERROR_EXIT_CODE);
        self.reason = Some(REASON_START_ERROR.into());
        self.message = Some(message);
        self.finished_at = Some(Timestamp::now());
    }

    /// Records how the main process ended: an exit code, or a signal (as 128 + signal).
    pub(crate) fn exited(&mut self, code: Option<i32>, signal: Option<i32>) {
        self.status = Status::Exited;
        self.signal = signal;
        self.exit_code = code.or(signal.map(|s| 128 + s));
        let ok = code == Some(0) && signal.is_none();
        self.reason = Some(if ok { REASON_COMPLETED } else { REASON_ERROR }.into());
        self.finished_at = Some(Timestamp::now());
    }
}

/// Writes `bytes` next to `path` and renames it into place.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = Path::new(&tmp);
    let mut f = fs::File::create(tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    fs::rename(tmp, path)
}

pub(crate) fn write_state(dir: &Path, state: &ContainerState) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    write_atomic(&dir.join(STATE_FILE), &json)
}

/// The recorded state, `shim_alive` filled in; `None` if there is none (yet) or it is unreadable.
pub(crate) fn read_state(dir: &Path) -> Option<ContainerState> {
    let bytes = fs::read(dir.join(STATE_FILE)).ok()?;
    let mut state: ContainerState = serde_json::from_slice(&bytes).ok()?;
    state.shim_alive = match (state.shim_pid, state.shim_start_time) {
        (Some(pid), Some(start)) => is_process(pid, start),
        _ => false,
    };
    Some(state)
}

/// Whether `pid` is a live (not zombie) process that started at `start_time`.
pub(crate) fn is_process(pid: u32, start_time: u64) -> bool {
    matches!(proc_stat(pid), Some((state, start)) if start == start_time && state != 'Z' && state != 'X')
}

/// (state letter, start time in clock ticks) from /proc/<pid>/stat.
pub(crate) fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<(char, u64)> {
    // comm (field 2) may hold spaces and parentheses; everything after its last ')' is fixed.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 is the state; starttime is field 22, 19 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Timestamps as RFC 3339 text, as everywhere else in Kubernetes.
mod opt_ts {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match ts {
            Some(t) => s.serialize_some(&format!("{t:.9}")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| t.parse().map_err(serde::de::Error::custom)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ContainerState::new("pod_c_1");
        s.shim_pid = Some(std::process::id());
        s.shim_start_time = proc_stat(std::process::id()).map(|(_, t)| t);
        s.pid = Some(42);
        s.started_at = Some("2026-12-03T10:00:00.123456789Z".parse().unwrap());
        s.exited(None, Some(15));
        write_state(dir.path(), &s).unwrap();
        let back = read_state(dir.path()).unwrap();
        assert!(back.shim_alive, "this test process is alive");
        assert_eq!(back, ContainerState { shim_alive: true, ..s.clone() });
        assert_eq!(back.exit_code, Some(143));
        assert_eq!(back.reason.as_deref(), Some(REASON_ERROR));
        assert!(!dir.path().join("state.json.tmp").exists());
        // A pid whose start time does not match is somebody else.
        s.shim_start_time = Some(1);
        write_state(dir.path(), &s).unwrap();
        assert!(!read_state(dir.path()).unwrap().shim_alive);
    }

    #[test]
    fn exit_reasons() {
        let mut s = ContainerState::new("x");
        s.exited(Some(0), None);
        assert_eq!((s.exit_code, s.reason.as_deref()), (Some(0), Some(REASON_COMPLETED)));
        s.exited(Some(3), None);
        assert_eq!((s.exit_code, s.reason.as_deref()), (Some(3), Some(REASON_ERROR)));
        s.start_error("exec: \"x\": executable file not found in $PATH".into());
        assert_eq!((s.exit_code, s.reason.as_deref()), (Some(128), Some(REASON_START_ERROR)));
    }

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let line = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("garbage"), None);
        assert!(proc_stat(std::process::id()).is_some());
    }
}

//! What the agent asks for: one container run, as written to `<state_dir>/<id>/spec.json`.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// PATH of a container whose env does not set one (the default of Docker and containerd).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// sethostname(2) refuses longer names (HOST_NAME_MAX).
const HOSTNAME_MAX: usize = 64;
/// Ids become directory names; NAME_MAX is 255, keep room for temp-file suffixes.
const ID_MAX: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

/// A volume bind-mounted into the container's mount namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Unique per container run, e.g. `<pod-uid>_<container>_<restartCount>`; a directory name.
    pub id: String,
    /// The pod's network namespace file (`/run/netns/...`).
    pub netns: PathBuf,
    pub hostname: String,
    pub resolv_conf: String,
    pub hosts: String,
    pub mounts: Vec<Mount>,
    /// Already resolved from command/args; empty runs the built-in demo server.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    pub stdin: bool,
    pub tty: bool,
    /// The declared containerPorts the demo server answers on.
    pub demo_ports: Vec<(u16, Protocol)>,
    pub pod_name: String,
}

/// `Err` says what is wrong with a container id.
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(format!("id {id:?} is not a usable directory name"));
    }
    if id.len() > ID_MAX {
        return Err(format!("id is {} bytes long, at most {ID_MAX} allowed", id.len()));
    }
    if id.starts_with('.') || id.contains(['/', '\0']) {
        return Err(format!("id {id:?} must not start with '.' or contain '/' or NUL"));
    }
    Ok(())
}

impl ContainerSpec {
    /// Everything the shim would otherwise trip over half-way through a start, checked up front.
    pub(crate) fn validate(&self) -> Result<(), String> {
        check_id(&self.id)?;
        if self.netns.as_os_str().is_empty() {
            return Err("no network namespace given".into());
        }
        if self.hostname.is_empty() || self.hostname.len() > HOSTNAME_MAX {
            return Err(format!("hostname {:?} must be 1 to {HOSTNAME_MAX} bytes", self.hostname));
        }
        let texts = [&self.hostname, &self.resolv_conf, &self.hosts, &self.pod_name];
        if texts.iter().any(|t| t.contains('\0')) || self.argv.iter().any(|a| a.contains('\0')) {
            return Err("hostname, resolv.conf, hosts, pod name and argv must not contain NUL".into());
        }
        if self.argv.first().is_some_and(String::is_empty) {
            return Err("argv[0] is empty".into());
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
                return Err(format!("env name {k:?} must be non-empty without '=' or NUL, its value without NUL"));
            }
        }
        if let Some(dir) = &self.working_dir {
            check_abs("working dir", dir)?;
        }
        for m in &self.mounts {
            check_abs("mount target", &m.target)?;
            check_abs("mount source", &m.source)?;
        }
        Ok(())
    }

    /// What the container process executes: its argv, or `<exe> demo ...` when there is none.
    pub(crate) fn resolved_argv(&self, exe: &Path) -> Vec<String> {
        if !self.argv.is_empty() {
            return self.argv.clone();
        }
        let ports = |proto: Protocol| {
            let list: Vec<String> =
                self.demo_ports.iter().filter(|(_, p)| *p == proto).map(|(port, _)| port.to_string()).collect();
            list.join(",")
        };
        let mut argv =
            vec![exe.to_string_lossy().into_owned(), "demo".into(), "--pod-name".into(), self.pod_name.clone()];
        for (flag, proto) in [("--tcp", Protocol::Tcp), ("--udp", Protocol::Udp)] {
            let list = ports(proto);
            if !list.is_empty() {
                argv.extend([flag.to_string(), list]);
            }
        }
        argv
    }

    /// The exact environment: the given variables (a later duplicate wins, as in Kubernetes) and
    /// a default PATH when none is given, since execvp needs one to find argv[0].
    pub(crate) fn resolved_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::with_capacity(self.env.len() + 1);
        for (k, v) in &self.env {
            match env.iter_mut().find(|(ek, _)| ek == k) {
                Some(slot) => slot.1 = v.clone(),
                None => env.push((k.clone(), v.clone())),
            }
        }
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        env
    }
}

fn check_abs(what: &str, p: &Path) -> Result<(), String> {
    use std::path::Component;
    let ok = p.is_absolute()
        && !p.components().any(|c| c == Component::ParentDir)
        && !p.as_os_str().as_encoded_bytes().contains(&0);
    if ok { Ok(()) } else { Err(format!("{what} {} must be an absolute path without '..'", p.display())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            id: "uid_c_0".into(),
            netns: "/run/netns/p".into(),
            hostname: "web-0".into(),
            pod_name: "web-0".into(),
            ..Default::default()
        }
    }

    #[test]
    fn empty_argv_runs_the_demo_with_the_declared_ports() {
        let mut s = spec();
        s.demo_ports = vec![(80, Protocol::Tcp), (53, Protocol::Udp), (8080, Protocol::Tcp), (9, Protocol::Sctp)];
        let argv = s.resolved_argv(Path::new("/usr/bin/portico"));
        assert_eq!(argv, ["/usr/bin/portico", "demo", "--pod-name", "web-0", "--tcp", "80,8080", "--udp", "53"]);
        s.demo_ports.clear();
        assert_eq!(s.resolved_argv(Path::new("/p")), ["/p", "demo", "--pod-name", "web-0"]);
        s.argv = vec!["sleep".into(), "1".into()];
        assert_eq!(s.resolved_argv(Path::new("/p")), ["sleep", "1"]);
    }

    #[test]
    fn env_gets_a_default_path_and_later_duplicates_win() {
        let mut s = spec();
        s.env = vec![("A".into(), "1".into()), ("B".into(), "2".into()), ("A".into(), "3".into())];
        let env = s.resolved_env();
        assert_eq!(env[0], ("A".to_string(), "3".to_string()));
        assert_eq!(env[1], ("B".to_string(), "2".to_string()));
        assert_eq!(env[2], ("PATH".to_string(), DEFAULT_PATH.to_string()));
        s.env.push(("PATH".into(), "/bin".into()));
        assert_eq!(s.resolved_env().iter().filter(|(k, _)| k == "PATH").count(), 1);
        assert!(s.resolved_env().contains(&("PATH".into(), "/bin".into())));
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(spec().validate().is_ok());
        type Mutation = fn(&mut ContainerSpec);
        let cases: Vec<(Mutation, &str)> = vec![
            (|s| s.id = "a/b".into(), "'/'"),
            (|s| s.id = "..".into(), "directory name"),
            (|s| s.hostname = "x".repeat(65), "hostname"),
            (|s| s.env = vec![("A=B".into(), "1".into())], "env name"),
            (|s| s.working_dir = Some("rel".into()), "working dir"),
            (|s| s.mounts = vec![Mount { source: "/a".into(), target: "/x/../y".into(), read_only: false }], "'..'"),
            (|s| s.argv = vec![String::new()], "argv[0]"),
            (|s| s.netns = PathBuf::new(), "network namespace"),
        ];
        for (mutate, needle) in cases {
            let mut s = spec();
            mutate(&mut s);
            let err = s.validate().unwrap_err();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        }
    }

    #[test]
    fn spec_json_round_trip() {
        let mut s = spec();
        s.demo_ports = vec![(80, Protocol::Tcp)];
        s.mounts = vec![Mount { source: "/v".into(), target: "/data".into(), read_only: true }];
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"TCP\""));
        assert_eq!(serde_json::from_str::<ContainerSpec>(&json).unwrap(), s);
    }
}

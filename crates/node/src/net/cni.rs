//! Pod networking through CNI plugins, as kubelet/containerd drive them: the runtime makes
//! the namespace, the network configuration list names the plugins, each plugin is executed
//! with the CNI_* environment and its configuration on stdin.
//!
//! Supported: a `.conflist` (or single-plugin `.conf`) in `conf_dir`, ADD in order with
//! `prevResult` chaining, DEL in reverse order with the cached ADD result, results of spec
//! 0.3.x-1.0.x. Not supported: capabilities/runtimeConfig (portmap, bandwidth), CHECK, GC.

use std::fs::{self, File};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use api::net::{Cidr, from_u128};
use serde_json::{Value, json};

use super::{Attachment, NETNS_DIR, NetError, POD_IFNAME, PodRef, check_uid, link, netns};

#[derive(Clone, Debug)]
pub struct CniConfig {
    /// Where the network configuration lives; the first `*.conflist`/`*.conf` by name is used.
    pub conf_dir: PathBuf,
    /// Where plugin binaries are looked up (CNI_PATH), e.g. `/usr/lib/cni`.
    pub bin_dirs: Vec<PathBuf>,
    /// Pod namespaces are `/run/netns/<netns_prefix><pod uid>`.
    pub netns_prefix: String,
    /// ADD results are cached in `<state_dir>/cni/<uid>.json` (DEL needs them).
    pub state_dir: PathBuf,
}

/// A network of CNI plugins.
pub struct CniNetwork {
    cfg: CniConfig,
    name: String,
    version: String,
    plugins: Vec<Value>,
    host_ns: Arc<File>,
    cache: PathBuf,
    busy: tokio::sync::Mutex<()>,
}

impl CniNetwork {
    /// Loads the network configuration; plugins later run in the calling thread's network
    /// namespace (captured before the first await), as [`super::PodNetwork::new`] does.
    pub async fn new(cfg: CniConfig) -> Result<CniNetwork, NetError> {
        let host_ns = Arc::new(netns::current()?);
        let (path, conf) = load_conf(&cfg.conf_dir)?;
        let bad = |why: &str| NetError::Cni(format!("{}: {why}", path.display()));
        let name = conf.get("name").and_then(Value::as_str).ok_or_else(|| bad("no \"name\""))?.to_string();
        let version = conf.get("cniVersion").and_then(Value::as_str).unwrap_or("0.3.1").to_string();
        let plugins = match conf.get("plugins") {
            Some(Value::Array(p)) if !p.is_empty() => p.clone(),
            Some(_) => return Err(bad("\"plugins\" must be a non-empty list")),
            None => vec![conf.clone()],
        };
        for p in &plugins {
            let ty = p.get("type").and_then(Value::as_str).ok_or_else(|| bad("a plugin without \"type\""))?;
            if ty.is_empty() || ty.contains('/') || ty.starts_with('.') {
                return Err(bad(&format!("plugin type {ty:?}")));
            }
        }
        let cache = cfg.state_dir.join("cni");
        fs::create_dir_all(&cache).map_err(|source| NetError::State { op: "create", path: cache.clone(), source })?;
        tracing::info!(network = %name, conf = %path.display(), plugins = plugins.len(), "CNI network loaded");
        Ok(CniNetwork { cfg, name, version, plugins, host_ns, cache, busy: Default::default() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Idempotent per uid: a pod with a cached result and a live namespace is returned as is.
    pub async fn attach(&self, pod: &PodRef) -> Result<Attachment, NetError> {
        check_uid(&pod.uid)?;
        let _busy = self.busy.lock().await;
        let path = Path::new(NETNS_DIR).join(self.netns_name(&pod.uid));
        if netns::is_mounted(&path)
            && let Some(result) = self.cached(&pod.uid)
        {
            // A pod the agent finds again (a restart): CHECK that the plugins still see what
            // they set up; if not, set it up anew, as a runtime recreates a broken sandbox.
            match self.check_locked(pod, &path, &result).await {
                Ok(()) => return attachment(&pod.uid, &path, &result),
                Err(e) => {
                    tracing::warn!(uid = %pod.uid, error = %e, "CNI CHECK failed; setting the pod's network up again");
                    for plugin in self.plugins.iter().rev() {
                        let conf = self.plugin_conf(plugin, Some(&result));
                        let _ = self.exec("DEL", pod, &path, conf).await;
                    }
                }
            }
        }
        let path = netns::ensure(Path::new(NETNS_DIR), &self.netns_name(&pod.uid))?;
        // containerd brings loopback up itself rather than through the loopback plugin.
        let ns = File::open(&path).map_err(|source| NetError::Netns { op: "open", path: path.clone(), source })?;
        let h = netns::netlink_in(&ns, &path)?;
        if let Some(lo) = link::link_by_name(&h, "lo").await? {
            link::set_up(&h, lo.header.index, &format!("lo in {}", path.display())).await?;
        }
        let mut prev: Option<Value> = None;
        for plugin in &self.plugins {
            let conf = self.plugin_conf(plugin, prev.as_ref());
            let out = self.exec("ADD", pod, &path, conf).await?;
            prev = Some(out);
        }
        let result = prev.unwrap_or(Value::Null);
        let att = attachment(&pod.uid, &path, &result)?;
        let file = self.cache.join(format!("{}.json", pod.uid));
        let bytes = serde_json::to_vec(&json!({"network": self.name, "result": result})).unwrap_or_default();
        write_durably(&file, &bytes)?;
        tracing::info!(pod = %format!("{}/{}", pod.namespace, pod.name), uid = %pod.uid, ip = %att.ip, network = %self.name, "pod attached via CNI");
        Ok(att)
    }

    /// CNI CHECK of an attached pod through every plugin with its cached result; an error says
    /// which plugin found what missing. Skipped (Ok) for networks older than CNI 0.4.0, which
    /// have no CHECK.
    pub async fn check(&self, pod: &PodRef) -> Result<(), NetError> {
        check_uid(&pod.uid)?;
        let _busy = self.busy.lock().await;
        let path = Path::new(NETNS_DIR).join(self.netns_name(&pod.uid));
        let result = self.cached(&pod.uid).ok_or_else(|| NetError::Cni(format!("pod {} is not attached", pod.uid)))?;
        self.check_locked(pod, &path, &result).await
    }

    async fn check_locked(&self, pod: &PodRef, path: &Path, result: &Value) -> Result<(), NetError> {
        let major_minor: Vec<u32> = self.version.split('.').take(2).filter_map(|p| p.parse().ok()).collect();
        if major_minor.as_slice() < [0, 4].as_slice() {
            return Ok(());
        }
        for plugin in &self.plugins {
            let conf = self.plugin_conf(plugin, Some(result));
            self.exec("CHECK", pod, path, conf).await?;
        }
        Ok(())
    }

    /// Idempotent: DEL through the plugins in reverse order, then the namespace and cache go.
    pub async fn detach(&self, uid: &str) -> Result<(), NetError> {
        check_uid(uid)?;
        let _busy = self.busy.lock().await;
        let path = Path::new(NETNS_DIR).join(self.netns_name(uid));
        let prev = self.cached(uid);
        let pod = PodRef { uid: uid.to_string(), namespace: String::new(), name: String::new() };
        // The spec asks plugins to tolerate DEL of what they never set up, so DEL always runs:
        // an ADD that failed half-way must release what it got.
        for plugin in self.plugins.iter().rev() {
            let conf = self.plugin_conf(plugin, prev.as_ref());
            self.exec("DEL", &pod, &path, conf).await?;
        }
        netns::remove(&path)?;
        let file = self.cache.join(format!("{uid}.json"));
        match fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(NetError::State { op: "remove", path: file, source }),
        }
        tracing::info!(uid, network = %self.name, "pod detached via CNI");
        Ok(())
    }

    /// What the result cache says is attached.
    pub fn attachments(&self) -> Vec<Attachment> {
        let Ok(dir) = fs::read_dir(&self.cache) else { return Vec::new() };
        let mut out: Vec<Attachment> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
            .filter(|uid| check_uid(uid).is_ok())
            .filter_map(|uid| {
                let result = self.cached(&uid)?;
                attachment(&uid, &Path::new(NETNS_DIR).join(self.netns_name(&uid)), &result).ok()
            })
            .collect();
        out.sort_by_key(|a| a.ip);
        out
    }

    fn netns_name(&self, uid: &str) -> String {
        format!("{}{uid}", self.cfg.netns_prefix)
    }

    fn cached(&self, uid: &str) -> Option<Value> {
        let bytes = fs::read(self.cache.join(format!("{uid}.json"))).ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        v.get("result").cloned()
    }

    /// A plugin's stdin: its own object plus the network's name and version and, when
    /// chaining, the previous plugin's result.
    fn plugin_conf(&self, plugin: &Value, prev: Option<&Value>) -> Value {
        let mut conf = plugin.clone();
        if let Value::Object(m) = &mut conf {
            m.insert("name".into(), json!(self.name));
            m.insert("cniVersion".into(), json!(self.version));
            if let Some(prev) = prev {
                m.insert("prevResult".into(), prev.clone());
            }
        }
        conf
    }

    async fn exec(&self, command: &'static str, pod: &PodRef, netns: &Path, conf: Value) -> Result<Value, NetError> {
        let ty = conf.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
        let bin = self
            .cfg
            .bin_dirs
            .iter()
            .map(|d| d.join(&ty))
            .find(|p| p.is_file())
            .ok_or_else(|| NetError::Cni(format!("plugin {ty:?} not found in {:?}", self.cfg.bin_dirs)))?;
        let cni_path = std::env::join_paths(&self.cfg.bin_dirs).map_err(|e| NetError::Cni(format!("CNI_PATH: {e}")))?;
        let cni_args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_UID={}",
            pod.namespace, pod.name, pod.uid
        );
        let mut cmd = Command::new(&bin);
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &pod.uid)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", POD_IFNAME)
            .env("CNI_PATH", cni_path)
            .env("CNI_ARGS", cni_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let ns = self.host_ns.clone();
        let stdin = serde_json::to_vec(&conf).unwrap_or_default();
        let what = format!("CNI {command} of plugin {ty} for pod {}", pod.uid);
        // Plugins run in the host namespace whatever thread forks them.
        netns::enter_before_exec(&mut cmd, ns);
        let out = tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn()?;
            if let Some(mut i) = child.stdin.take() {
                i.write_all(&stdin)?;
            }
            child.wait_with_output()
        })
        .await
        .map_err(|e| NetError::Internal(format!("{what}: {e}")))?
        .map_err(|e| NetError::Cni(format!("{what}: cannot run {}: {e}", bin.display())))?;
        let stdout: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if !out.status.success() {
            let msg = stdout.get("msg").and_then(Value::as_str).unwrap_or_default();
            let details = stdout.get("details").and_then(Value::as_str).unwrap_or_default();
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(NetError::Cni(format!("{what} failed ({}): {msg} {details} {}", out.status, stderr.trim())));
        }
        Ok(stdout)
    }
}

impl std::fmt::Debug for CniNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CniNetwork").field("name", &self.name).field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// The first configuration file by name, as libcni picks it.
fn load_conf(dir: &Path) -> Result<(PathBuf, Value), NetError> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| NetError::Cni(format!("cannot read CNI conf dir {}: {e}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("conflist" | "conf" | "json")))
        .collect();
    files.sort();
    let path = files
        .into_iter()
        .next()
        .ok_or_else(|| NetError::Cni(format!("no *.conflist or *.conf in {}", dir.display())))?;
    let text = fs::read(&path).map_err(|e| NetError::Cni(format!("cannot read {}: {e}", path.display())))?;
    let conf = serde_json::from_slice(&text).map_err(|e| NetError::Cni(format!("{}: {e}", path.display())))?;
    Ok((path, conf))
}

/// An [`Attachment`] from a CNI result: the first address of the sandbox's interface (or the
/// first address at all), its gateway (else the subnet's first host), the host-side interface.
pub(crate) fn attachment(uid: &str, netns: &Path, result: &Value) -> Result<Attachment, NetError> {
    let bad = |why: &str| NetError::Cni(format!("result for pod {uid}: {why}: {result}"));
    let ifaces = result.get("interfaces").and_then(Value::as_array).cloned().unwrap_or_default();
    let in_sandbox = |i: &Value| i.get("sandbox").and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    let ips = result.get("ips").and_then(Value::as_array).ok_or_else(|| bad("no \"ips\""))?;
    let on_pod = |ip: &&Value| {
        ip.get("interface").and_then(Value::as_u64).and_then(|i| ifaces.get(i as usize)).is_some_and(in_sandbox)
    };
    let entry = ips.iter().find(on_pod).or(ips.first()).ok_or_else(|| bad("no address"))?;
    let addr = entry.get("address").and_then(Value::as_str).ok_or_else(|| bad("an address without \"address\""))?;
    let (ip, prefix) = addr.split_once('/').ok_or_else(|| bad("an address without a prefix"))?;
    let ip: IpAddr = ip.parse().map_err(|_| bad("an unparsable address"))?;
    let prefix: u8 = prefix.parse().map_err(|_| bad("an unparsable prefix"))?;
    let gateway = match entry.get("gateway").and_then(Value::as_str) {
        Some(g) => g.parse().map_err(|_| bad("an unparsable gateway"))?,
        None => {
            let net = Cidr::new(ip, prefix).ok_or_else(|| bad("an invalid prefix"))?;
            from_u128(net.family(), net.first() + 1)
        }
    };
    let host_veth = ifaces
        .iter()
        .filter(|i| !in_sandbox(i))
        .filter_map(|i| i.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with("veth"))
        .unwrap_or_default()
        .to_string();
    Ok(Attachment { uid: uid.to_string(), netns: netns.to_path_buf(), ip, gateway, host_veth })
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), NetError> {
    let tmp = path.with_extension("tmp");
    let err = |source| NetError::State { op: "write", path: path.to_path_buf(), source };
    let mut f = File::create(&tmp).map_err(err)?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(err)?;
    fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_from_a_bridge_result() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "aa:bb:cc:dd:ee:ff"},
                {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:00"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:01", "sandbox": "/run/netns/x"}
            ],
            "ips": [{"address": "198.19.5.2/24", "gateway": "198.19.5.1", "interface": 2}]
        });
        let a = attachment("u", Path::new("/run/netns/x"), &result).unwrap();
        assert_eq!(a.ip.to_string(), "198.19.5.2");
        assert_eq!(a.gateway.to_string(), "198.19.5.1");
        assert_eq!(a.host_veth, "veth1234");
        let no_gw = json!({"ips": [{"address": "198.19.6.7/24"}]});
        assert_eq!(attachment("u", Path::new("/x"), &no_gw).unwrap().gateway.to_string(), "198.19.6.1");
        let err = attachment("u", Path::new("/x"), &json!({"ips": []})).unwrap_err();
        assert!(err.to_string().contains("result for pod u: no address"), "{err}");
    }
}

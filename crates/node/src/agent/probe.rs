//! Startup, readiness and liveness probes as kubelet runs them: exec inside the container,
//! httpGet and tcpSocket from inside the pod's network namespace, each with its own schedule
//! (initialDelaySeconds, periodSeconds, timeoutSeconds) and thresholds.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// One probe run's outcome.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Success,
    Failure(String),
}

/// What to probe: the pod's IP and network namespace.
#[derive(Clone, Debug)]
pub struct Target {
    pub pod_ip: IpAddr,
    pub netns: PathBuf,
}

/// The kind of probe, which decides its result before the first run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Startup,
    Readiness,
    Liveness,
}

/// A probe's schedule and running result (kubelet's prober worker).
#[derive(Debug)]
pub struct Schedule {
    pub probe: Probe,
    pub kind: Kind,
    started: Instant,
    next: Instant,
    successes: i32,
    failures: i32,
    /// The result the thresholds have settled on.
    pub passing: bool,
    pub last_failure: Option<String>,
}

impl Schedule {
    pub fn new(probe: Probe, kind: Kind, container_started: Instant) -> Schedule {
        let delay = Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
        Schedule {
            probe,
            kind,
            started: container_started,
            next: container_started + delay,
            successes: 0,
            failures: 0,
            // Readiness starts failing until a success; liveness starts passing (kubelet's
            // initial values); startup starts failing.
            passing: kind == Kind::Liveness,
            last_failure: None,
        }
    }

    pub fn period(&self) -> Duration {
        Duration::from_secs(self.probe.period_seconds.unwrap_or(10).max(1) as u64)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.probe.timeout_seconds.unwrap_or(1).max(1) as u64)
    }

    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    pub fn next_run(&self) -> Instant {
        self.next
    }

    /// When the container started (for the next schedule after a restart).
    pub fn container_started(&self) -> Instant {
        self.started
    }

    /// Records a run; returns true when the settled result changed.
    pub fn record(&mut self, outcome: Outcome, now: Instant) -> bool {
        self.next = now + self.period();
        let (success_threshold, failure_threshold) =
            (self.probe.success_threshold.unwrap_or(1).max(1), self.probe.failure_threshold.unwrap_or(3).max(1));
        let before = self.passing;
        match outcome {
            Outcome::Success => {
                self.failures = 0;
                self.successes += 1;
                self.last_failure = None;
                if self.successes >= success_threshold {
                    self.passing = true;
                }
            }
            Outcome::Failure(why) => {
                self.successes = 0;
                self.failures += 1;
                self.last_failure = Some(why);
                if self.failures >= failure_threshold {
                    self.passing = false;
                }
            }
        }
        before != self.passing
    }
}

/// The port a probe names, resolving a name against the container's ports.
fn port(p: &IntOrString, c: &Container) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .and_then(|cp| u16::try_from(cp.container_port).ok())
            .ok_or_else(|| format!("couldn't find port {name} in the container")),
    }
}

/// Runs `f` on a short-lived thread inside the network namespace at `netns` (setns(2) changes
/// only the calling thread, so never a runtime worker's).
fn in_netns<T: Send>(netns: &Path, f: impl FnOnce() -> std::io::Result<T> + Send) -> std::io::Result<T> {
    crate::net::netns::run_in(&std::fs::File::open(netns)?, f)
}

fn tcp(target: &Target, host: Option<&str>, port: u16, timeout: Duration) -> Outcome {
    let ip = host.and_then(|h| h.parse().ok()).unwrap_or(target.pod_ip);
    let addr = SocketAddr::new(ip, port);
    match in_netns(&target.netns, move || TcpStream::connect_timeout(&addr, timeout)) {
        Ok(_) => Outcome::Success,
        Err(e) => Outcome::Failure(format!("dial tcp {addr}: {e}")),
    }
}

/// A TLS client that accepts any server certificate: kubelet's HTTPS probes skip
/// verification (`InsecureSkipVerify`), since pods serve self-signed certificates.
fn insecure_tls() -> Arc<rustls::ClientConfig> {
    #[derive(Debug)]
    struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

fn http(target: &Target, get: &k8s_openapi::api::core::v1::HTTPGetAction, port: u16, timeout: Duration) -> Outcome {
    let https = get.scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"));
    let ip = get.host.as_deref().and_then(|h| h.parse().ok()).unwrap_or(target.pod_ip);
    let addr = SocketAddr::new(ip, port);
    let path = get.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".to_owned());
    let host_header = match ip {
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        IpAddr::V4(v4) => format!("{v4}:{port}"),
    };
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for h in get.http_headers.iter().flatten() {
        request.push_str(&format!("{}: {}\r\n", h.name, h.value));
    }
    request.push_str("\r\n");
    let result = in_netns(&target.netns, move || -> std::io::Result<String> {
        let s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let mut head = vec![0u8; 256];
        let n = if https {
            let name = rustls::pki_types::ServerName::IpAddress(ip.into());
            let conn = rustls::ClientConnection::new(insecure_tls(), name).map_err(std::io::Error::other)?;
            let mut tls = rustls::StreamOwned::new(conn, s);
            tls.write_all(request.as_bytes())?;
            tls.read(&mut head)?
        } else {
            let mut s = s;
            s.write_all(request.as_bytes())?;
            s.read(&mut head)?
        };
        Ok(String::from_utf8_lossy(&head[..n]).into_owned())
    });
    let scheme = if https { "https" } else { "http" };
    let head = match result {
        Ok(h) => h,
        Err(e) => {
            let path = get.path.as_deref().unwrap_or("/");
            return Outcome::Failure(format!("Get \"{scheme}://{host_header}{path}\": {e}"));
        }
    };
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(c) if (200..400).contains(&c) => Outcome::Success,
        Some(c) => Outcome::Failure(format!("HTTP probe failed with statuscode: {c}")),
        None => Outcome::Failure("HTTP probe got no valid response".to_owned()),
    }
}

/// The gRPC health checking protocol (`grpc.health.v1.Health/Check`) over cleartext HTTP/2,
/// as kubelet's gRPC probe: SERVING passes, anything else fails.
async fn grpc(target: &Target, port: u16, service: &str, timeout: Duration) -> Outcome {
    let addr = SocketAddr::new(target.pod_ip, port);
    let netns = target.netns.clone();
    let connected = tokio::task::spawn_blocking(move || {
        in_netns(&netns, move || {
            let s = TcpStream::connect_timeout(&addr, timeout)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
    })
    .await;
    let stream = match connected {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Outcome::Failure(format!(
                "failed to connect service \"{addr}\" within {}s: {e}",
                timeout.as_secs()
            ));
        }
        Err(e) => return Outcome::Failure(format!("probe task failed: {e}")),
    };
    let check = async {
        let stream = tokio::net::TcpStream::from_std(stream).map_err(|e| e.to_string())?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut send, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        // HealthCheckRequest { service = 1 }, in a gRPC length-prefixed message.
        let mut message = vec![];
        if !service.is_empty() {
            message.push(0x0a);
            message.push(service.len() as u8);
            message.extend_from_slice(service.as_bytes());
        }
        let mut body = vec![0u8];
        body.extend_from_slice(&(message.len() as u32).to_be_bytes());
        body.extend_from_slice(&message);
        let request = http::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("user-agent", "kube-probe/1.33")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = send.send_request(request).await.map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let collected = http_body_util::BodyExt::collect(body).await.map_err(|e| e.to_string())?;
        let grpc_status = collected
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| parts.headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0")
            .to_owned();
        if grpc_status != "0" {
            return Err(format!("rpc error: grpc-status {grpc_status}"));
        }
        let bytes = collected.to_bytes();
        // HealthCheckResponse { status = 1 (enum) }: SERVING is 1.
        let status = bytes.get(5..).and_then(|m| m.windows(2).find(|w| w[0] == 0x08).map(|w| w[1])).unwrap_or(0);
        Ok(status)
    };
    match tokio::time::timeout(timeout, check).await {
        Err(_) => Outcome::Failure(format!("timeout: health rpc did not complete within {}s", timeout.as_secs())),
        Ok(Err(e)) => Outcome::Failure(e),
        Ok(Ok(1)) => Outcome::Success,
        Ok(Ok(status)) => {
            let name = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"]
                .get(status as usize)
                .copied()
                .unwrap_or("UNKNOWN");
            Outcome::Failure(format!("service unhealthy (responded with \"{name}\")"))
        }
    }
}

/// Runs the exec action's command (through `command`, already set to enter the container)
/// with the probe's timeout.
async fn exec(mut command: tokio::process::Command, timeout: Duration) -> Outcome {
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command.kill_on_drop(true);
    let child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Failure(format!("exec failed: {e}")),
    };
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Outcome::Failure(format!("command timed out after {}s", timeout.as_secs())),
        Ok(Err(e)) => Outcome::Failure(format!("exec failed: {e}")),
        Ok(Ok(out)) if out.status.success() => Outcome::Success,
        Ok(Ok(out)) => {
            let output = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            let code = out.status.code().map_or_else(|| "a signal".to_owned(), |c| c.to_string());
            match output.trim() {
                "" => Outcome::Failure(format!("command exited with {code}")),
                output => Outcome::Failure(format!("command exited with {code}: {output}")),
            }
        }
    }
}

/// One run of `probe` for container `c`. `enter` builds the command that runs argv inside the
/// container (for exec probes).
pub async fn run(
    probe: &Probe,
    c: &Container,
    target: &Target,
    enter: impl FnOnce(&[String]) -> Result<std::process::Command, String>,
) -> Outcome {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(e) = &probe.exec {
        let argv = e.command.clone().unwrap_or_default();
        return match enter(&argv) {
            Ok(cmd) => exec(tokio::process::Command::from(cmd), timeout).await,
            Err(e) => Outcome::Failure(e),
        };
    }
    if let Some(get) = &probe.http_get {
        let port = match port(&get.port, c) {
            Ok(p) => p,
            Err(e) => return Outcome::Failure(e),
        };
        let (target, get) = (target.clone(), get.clone());
        return tokio::task::spawn_blocking(move || http(&target, &get, port, timeout))
            .await
            .unwrap_or_else(|e| Outcome::Failure(format!("probe task failed: {e}")));
    }
    if let Some(t) = &probe.tcp_socket {
        let port = match port(&t.port, c) {
            Ok(p) => p,
            Err(e) => return Outcome::Failure(e),
        };
        let (target, host) = (target.clone(), t.host.clone());
        return tokio::task::spawn_blocking(move || tcp(&target, host.as_deref(), port, timeout))
            .await
            .unwrap_or_else(|e| Outcome::Failure(format!("probe task failed: {e}")));
    }
    if let Some(g) = &probe.grpc {
        let Ok(port) = u16::try_from(g.port) else { return Outcome::Failure(format!("invalid port {}", g.port)) };
        return grpc(target, port, g.service.as_deref().unwrap_or(""), timeout).await;
    }
    Outcome::Failure("the probe has no handler".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probe(v: serde_json::Value) -> Probe {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn thresholds_settle_the_result_as_kubelet_does() {
        let t0 = Instant::now();
        let mut s = Schedule::new(
            probe(
                json!({"exec": {"command": ["true"]}, "periodSeconds": 2, "failureThreshold": 2, "successThreshold": 2}),
            ),
            Kind::Readiness,
            t0,
        );
        assert!(!s.passing, "readiness starts failing");
        assert!(s.due(t0));
        assert!(!s.record(Outcome::Success, t0));
        assert!(!s.due(t0 + Duration::from_secs(1)) && s.due(t0 + Duration::from_secs(2)));
        assert!(s.record(Outcome::Success, t0), "two successes pass");
        assert!(!s.record(Outcome::Failure("x".into()), t0), "one failure of two keeps passing");
        assert!(s.record(Outcome::Failure("y".into()), t0), "two failures fail");
        assert_eq!(s.last_failure.as_deref(), Some("y"));
        let live = Schedule::new(probe(json!({"initialDelaySeconds": 5})), Kind::Liveness, t0);
        assert!(live.passing && !live.due(t0 + Duration::from_secs(4)) && live.due(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn named_ports_resolve_against_the_container() {
        let c: Container =
            serde_json::from_value(json!({"name": "c", "ports": [{"name": "http", "containerPort": 8080}]})).unwrap();
        assert_eq!(port(&IntOrString::String("http".into()), &c), Ok(8080));
        assert!(port(&IntOrString::String("grpc".into()), &c).is_err());
        assert_eq!(port(&IntOrString::Int(81), &c), Ok(81));
    }

    #[tokio::test]
    async fn exec_probe_reports_exit_status_and_output() {
        let c = Container::default();
        let t = Target { pod_ip: "127.0.0.1".parse().unwrap(), netns: "/proc/self/ns/net".into() };
        let p = probe(json!({"exec": {"command": ["sh", "-c", "echo nope; exit 3"]}}));
        let enter = |argv: &[String]| {
            let mut cmd = std::process::Command::new(&argv[0]);
            cmd.args(&argv[1..]);
            Ok(cmd)
        };
        assert_eq!(run(&p, &c, &t, enter).await, Outcome::Failure("command exited with 3: nope".into()));
        let ok = probe(json!({"exec": {"command": ["true"]}}));
        assert_eq!(run(&ok, &c, &t, enter).await, Outcome::Success);
    }

    #[tokio::test]
    async fn tcp_and_http_probes_on_loopback() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten().take(2) {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let c = Container::default();
        let t = Target { pod_ip: "127.0.0.1".parse().unwrap(), netns: "/proc/self/ns/net".into() };
        let never = |_: &[String]| Err("no exec".to_owned());
        assert_eq!(run(&probe(json!({"tcpSocket": {"port": port}})), &c, &t, never).await, Outcome::Success);
        let http = probe(json!({"httpGet": {"port": port, "path": "/healthz"}}));
        assert_eq!(run(&http, &c, &t, never).await, Outcome::Failure("HTTP probe failed with statuscode: 503".into()));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        assert!(matches!(
            run(&probe(json!({"tcpSocket": {"port": closed}})), &c, &t, never).await,
            Outcome::Failure(_)
        ));
    }

    fn tls_server() -> (u16, std::thread::JoinHandle<()>) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
        let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der], key)
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = Arc::new(config);
        let handle = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let conn = rustls::ServerConnection::new(config).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, s);
            let mut buf = [0u8; 512];
            let _ = tls.read(&mut buf);
            let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
            let _ = tls.flush();
        });
        (port, handle)
    }

    #[tokio::test]
    async fn https_probe_skips_certificate_verification() {
        let (port, server) = tls_server();
        let c = Container::default();
        let t = Target { pod_ip: "127.0.0.1".parse().unwrap(), netns: "/proc/self/ns/net".into() };
        let p = probe(json!({"httpGet": {"port": port, "scheme": "HTTPS"}}));
        assert_eq!(run(&p, &c, &t, |_: &[String]| Err("no exec".to_owned())).await, Outcome::Success);
        server.join().unwrap();
    }

    /// A gRPC health server on loopback answering `status` to every Check.
    async fn grpc_server(status: u8) -> u16 {
        use http_body_util::StreamBody;
        use hyper::body::Frame;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else { return };
                let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| async move {
                    assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", "0".parse().unwrap());
                    let frames: Vec<Result<Frame<bytes::Bytes>, std::convert::Infallible>> = vec![
                        Ok(Frame::data(bytes::Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]))),
                        Ok(Frame::trailers(trailers)),
                    ];
                    let body = StreamBody::new(futures::stream::iter(frames));
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder().header("content-type", "application/grpc").body(body).unwrap(),
                    )
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(s), service),
                );
            }
        });
        port
    }

    #[tokio::test]
    async fn grpc_probe_passes_only_on_serving() {
        let c = Container::default();
        let t = Target { pod_ip: "127.0.0.1".parse().unwrap(), netns: "/proc/self/ns/net".into() };
        let never = |_: &[String]| Err("no exec".to_owned());
        let serving = grpc_server(1).await;
        assert_eq!(run(&probe(json!({"grpc": {"port": serving}})), &c, &t, never).await, Outcome::Success);
        let not_serving = grpc_server(2).await;
        assert_eq!(
            run(&probe(json!({"grpc": {"port": not_serving, "service": "db"}})), &c, &t, never).await,
            Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        assert!(matches!(run(&probe(json!({"grpc": {"port": closed}})), &c, &t, never).await, Outcome::Failure(_)));
    }
}

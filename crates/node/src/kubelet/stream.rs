//! `exec` and `attach` over WebSocket, in the channel protocol kubectl speaks
//! (`v5.channel.k8s.io`, or `v4.channel.k8s.io`): every binary message starts with its channel,
//! 0 stdin, 1 stdout, 2 stderr, 3 error (a metav1.Status, sent once at the end), 4 resize (a
//! TTY size as JSON), and in v5 255 close (`[255, channel]`: the client is done with stdin).
//! No message is ever empty: client-go reads the channel byte of each and fails on none.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, frame::coding::CloseCode};

use super::{Body, Kubelet, flag, full, query_pairs, text};
use crate::sandbox::log::{Stream as LogStream, parse_record};

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Exec,
    Attach,
}

#[derive(Clone, Copy, Debug)]
struct Streams {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

enum Input {
    Stdin(Bytes),
    StdinClosed,
    Resize(u16, u16),
    Gone,
}

/// The subprotocols a WebSocket upgrade offers.
pub fn offered_protocols(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

pub fn is_websocket(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        && req.headers().contains_key(header::SEC_WEBSOCKET_KEY)
}

/// The 101 answer to a WebSocket upgrade choosing `protocol`.
pub fn switching(req: &Request<Incoming>, protocol: &str) -> Response<Body> {
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes()).unwrap_or_default();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key);
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Ok(v) = HeaderValue::from_str(protocol) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    resp
}

pub async fn serve(
    k: &Kubelet,
    kind: Kind,
    ns: &str,
    pod: &str,
    container: &str,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let q = query_pairs(req.uri().query());
    let streams = Streams {
        stdin: flag(&q, "stdin") || flag(&q, "input"),
        stdout: flag(&q, "stdout") || flag(&q, "output"),
        stderr: flag(&q, "stderr") || flag(&q, "error"),
        tty: flag(&q, "tty"),
    };
    let command: Vec<String> = q.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
    if !is_websocket(&req) {
        return text(
            StatusCode::BAD_REQUEST,
            "this node serves exec and attach over WebSocket (v5.channel.k8s.io) only",
        );
    }
    let offered = offered_protocols(req.headers());
    let Some(protocol) = [V5, V4].into_iter().find(|p| offered.iter().any(|o| o == p)) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("none of the offered subprotocols {offered:?} is supported (want {V5} or {V4})"),
        );
    };
    if kind == Kind::Exec && command.is_empty() {
        return text(StatusCode::BAD_REQUEST, "you must specify at least 1 command");
    }
    if !streams.stdin && !streams.stdout && !streams.stderr {
        return text(StatusCode::BAD_REQUEST, "you must specify at least 1 of stdin, stdout, stderr");
    }
    let st = match k.container(ns, pod, container, false) {
        Ok(st) => st,
        Err(resp) => return *resp,
    };
    if !st.is_running() {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "container {container} is not running (pod {ns}/{pod}); cannot {}",
                if kind == Kind::Exec { "exec" } else { "attach" }
            ),
        );
    }
    let job = match kind {
        Kind::Exec => match k.sandbox.enter(&st.id, &command) {
            Ok(cmd) => Job::Exec(cmd, command),
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Kind::Attach => Job::Attach {
            fifo: k.state_path(&st.id).join("stdin"),
            log: k.sandbox.log_path(&st.id),
            sandbox: k.sandbox.clone(),
            id: st.id.clone(),
        },
    };
    let resp = switching(&req, protocol);
    let upgrade = hyper::upgrade::on(&mut req);
    let v5 = protocol == V5;
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e, "kubelet API: upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        session(ws, job, streams, v5).await;
    });
    resp
}

enum Job {
    Exec(std::process::Command, Vec<String>),
    Attach { fifo: std::path::PathBuf, log: std::path::PathBuf, sandbox: crate::sandbox::Sandbox, id: String },
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

/// The Status sent on the error channel at the end of a session.
pub fn exit_status(code: i32, command: &[String]) -> serde_json::Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

async fn session<S>(ws: WebSocketStream<S>, job: Job, streams: Streams, v5: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let (in_tx, in_rx) = mpsc::channel::<Input>(64);
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = source.next().await {
            let input = match m {
                Message::Binary(b) if !b.is_empty() => match b[0] {
                    STDIN if b.len() > 1 => Input::Stdin(b.slice(1..)),
                    RESIZE => match serde_json::from_slice::<serde_json::Value>(&b[1..]) {
                        Ok(v) => Input::Resize(
                            v["Width"].as_u64().unwrap_or(80) as u16,
                            v["Height"].as_u64().unwrap_or(24) as u16,
                        ),
                        Err(_) => continue,
                    },
                    CLOSE if v5 && b.get(1) == Some(&STDIN) => Input::StdinClosed,
                    _ => continue,
                },
                Message::Close(_) => break,
                _ => continue,
            };
            if in_tx.send(input).await.is_err() {
                return;
            }
        }
        let _ = in_tx.send(Input::Gone).await;
    });
    let status = match job {
        Job::Exec(cmd, command) => {
            let code = if streams.tty {
                exec_tty(cmd, streams, out_tx.clone(), in_rx).await
            } else {
                exec_pipes(cmd, streams, out_tx.clone(), in_rx).await
            };
            match code {
                Ok(code) => exit_status(code, &command),
                Err(e) => json!({"metadata": {}, "status": "Failure", "message": e, "reason": "InternalError"}),
            }
        }
        Job::Attach { fifo, log, sandbox, id } => {
            attach(&fifo, &log, streams, out_tx.clone(), in_rx, move || {
                sandbox.state(&id).is_none_or(|s| s.has_ended())
            })
            .await;
            exit_status(0, &[])
        }
    };
    let _ = out_tx.send(frame(ERROR, status.to_string().as_bytes())).await;
    let _ = out_tx.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await;
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    reader.abort();
}

/// Reads `r` into messages on `channel` until its end.
async fn pump(mut r: impl tokio::io::AsyncRead + Unpin, channel: u8, out: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if out.send(frame(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn spawn_error(e: &std::io::Error, command: &str) -> Result<i32, String> {
    // As a shell answers: 127 for a command it cannot find, 126 for one it cannot run.
    tracing::info!(command, error = %e, "exec could not start its command");
    Ok(if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 })
}

async fn exec_pipes(
    cmd: std::process::Command,
    streams: Streams,
    out: mpsc::Sender<Message>,
    mut input: mpsc::Receiver<Input>,
) -> Result<i32, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut cmd = tokio::process::Command::from(cmd);
    let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    cmd.stdin(piped(streams.stdin)).stdout(piped(streams.stdout)).stderr(piped(streams.stderr));
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return spawn_error(&e, &program),
    };
    drop(cmd);
    let mut pumps = vec![];
    if let Some(o) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(o, STDOUT, out.clone())));
    }
    if let Some(e) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(e, STDERR, out.clone())));
    }
    let mut stdin = child.stdin.take();
    let (gone_tx, mut gone_rx) = tokio::sync::oneshot::channel::<()>();
    let feeder = tokio::spawn(async move {
        let mut gone_tx = Some(gone_tx);
        while let Some(i) = input.recv().await {
            match i {
                Input::Stdin(b) => {
                    if let Some(s) = stdin.as_mut()
                        && s.write_all(&b).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Input::StdinClosed => stdin = None,
                Input::Resize(..) => {}
                Input::Gone => {
                    if let Some(g) = gone_tx.take() {
                        let _ = g.send(());
                    }
                    stdin = None;
                }
            }
        }
    });
    let status = tokio::select! {
        s = child.wait() => s,
        _ = &mut gone_rx => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    for p in pumps {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    feeder.abort();
    let status = status.map_err(|e| format!("waiting for the command: {e}"))?;
    Ok(code_of(status))
}

fn code_of(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn set_size(fd: &OwnedFd, width: u16, height: u16) {
    let ws = libc::winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer; the fd is a pty master we own.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

async fn exec_tty(
    mut cmd: std::process::Command,
    streams: Streams,
    out: mpsc::Sender<Message>,
    mut input: mpsc::Receiver<Input>,
) -> Result<i32, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let pty = nix::pty::openpty(None, None).map_err(|e| format!("allocating a pty: {e}"))?;
    let slave = |fd: &OwnedFd| fd.try_clone().map(Stdio::from).map_err(|e| format!("pty: {e}"));
    cmd.stdin(if streams.stdin { slave(&pty.slave)? } else { Stdio::null() });
    cmd.stdout(slave(&pty.slave)?).stderr(slave(&pty.slave)?);
    // SAFETY: only system calls between fork and exec: a new session whose controlling
    // terminal is the pty (already on fd 1, and on fd 0 with stdin).
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(1, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut cmd = tokio::process::Command::from(cmd);
    let spawned = cmd.spawn();
    drop(cmd);
    drop(pty.slave);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return spawn_error(&e, &program),
    };
    let master = Arc::new(pty.master);
    let mut reader = std::fs::File::from(master.try_clone().map_err(|e| format!("pty: {e}"))?);
    let out_pump = out.clone();
    let output = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 32 * 1024];
        // EIO once every process holding the terminal has gone.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || out_pump.blocking_send(frame(STDOUT, &buf[..n])).is_err() {
                break;
            }
        }
    });
    let (stdin_tx, stdin_rx) = std::sync::mpsc::channel::<Bytes>();
    let mut writer = std::fs::File::from(master.try_clone().map_err(|e| format!("pty: {e}"))?);
    std::thread::spawn(move || {
        while let Ok(b) = stdin_rx.recv() {
            if writer.write_all(&b).is_err() {
                return;
            }
        }
    });
    let (gone_tx, mut gone_rx) = tokio::sync::oneshot::channel::<()>();
    let resize_fd = master.clone();
    let feeder = tokio::spawn(async move {
        let mut gone_tx = Some(gone_tx);
        let mut stdin_tx = Some(stdin_tx);
        while let Some(i) = input.recv().await {
            match i {
                Input::Stdin(b) => {
                    if let Some(t) = &stdin_tx {
                        let _ = t.send(b);
                    }
                }
                Input::StdinClosed => stdin_tx = None,
                Input::Resize(w, h) => set_size(&resize_fd, w, h),
                Input::Gone => {
                    if let Some(g) = gone_tx.take() {
                        let _ = g.send(());
                    }
                }
            }
        }
    });
    let status = tokio::select! {
        s = child.wait() => s,
        _ = &mut gone_rx => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), output).await;
    feeder.abort();
    let status = status.map_err(|e| format!("waiting for the command: {e}"))?;
    Ok(code_of(status))
}

/// Attach: the client's stdin goes to the container's stdin fifo, and what the container
/// writes from now on (its log) comes back, until the container ends or the client leaves.
async fn attach(
    fifo: &std::path::Path,
    log: &std::path::Path,
    streams: Streams,
    out: mpsc::Sender<Message>,
    mut input: mpsc::Receiver<Input>,
    ended: impl Fn() -> bool,
) {
    let mut stdin_tx: Option<std::sync::mpsc::Sender<Bytes>> = None;
    if streams.stdin && fifo.exists() {
        let (tx, rx) = std::sync::mpsc::channel::<Bytes>();
        stdin_tx = Some(tx);
        let fifo = fifo.to_path_buf();
        std::thread::spawn(move || {
            // The container holds the fifo open for reading, so this open does not block long.
            let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) else { return };
            while let Ok(b) = rx.recv() {
                if f.write_all(&b).is_err() {
                    return;
                }
            }
        });
    }
    let mut file = match tokio::fs::File::open(log).await {
        Ok(f) => f,
        Err(_) => return,
    };
    let mut pending = Vec::new();
    // Only what is written from now on.
    let _ = tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::End(0)).await;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            i = input.recv() => match i {
                Some(Input::Stdin(b)) => {
                    if let Some(t) = &stdin_tx {
                        let _ = t.send(b);
                    }
                }
                Some(Input::StdinClosed) => stdin_tx = None,
                Some(Input::Resize(..)) => {}
                Some(Input::Gone) | None => return,
            },
            _ = tick.tick() => {
                let done = ended();
                let mut chunk = Vec::new();
                if file.read_to_end(&mut chunk).await.is_err() {
                    return;
                }
                pending.extend_from_slice(&chunk);
                let cut = pending.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0);
                for line in pending[..cut].split(|&b| b == b'\n') {
                    let Some(r) = parse_record(line) else { continue };
                    let channel = match r.stream {
                        LogStream::Stderr if !streams.tty => STDERR,
                        _ => STDOUT,
                    };
                    if (channel == STDOUT && !streams.stdout) || (channel == STDERR && !streams.stderr) {
                        continue;
                    }
                    let mut data = r.content.to_vec();
                    if !r.partial {
                        data.push(b'\n');
                    }
                    if streams.tty {
                        // A terminal in raw mode wants CRLF.
                        data = crlf(&data);
                    }
                    if out.send(frame(channel, &data)).await.is_err() {
                        return;
                    }
                }
                pending.drain(..cut);
                if done {
                    return;
                }
            }
        }
    }
}

fn crlf(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 4);
    for &b in data {
        if b == b'\n' {
            v.push(b'\r');
        }
        v.push(b);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_is_what_kubectl_decodes() {
        assert_eq!(exit_status(0, &[])["status"], "Success");
        let s = exit_status(3, &["sh".into(), "-c".into(), "exit 3".into()]);
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
    }

    #[test]
    fn frames_carry_their_channel_first() {
        let Message::Binary(b) = frame(STDERR, b"x") else { panic!() };
        assert_eq!(&b[..], &[2, b'x']);
        assert_eq!(crlf(b"a\nb\n"), b"a\r\nb\r\n");
    }
}

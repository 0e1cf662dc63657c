//! The built-in demo server (`portico demo`), what a container without a command runs: like the
//! sample apps of the Kubernetes tutorials, `Hello World!` and the pod's name over HTTP on each
//! declared TCP port, and an echo on each declared UDP port.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

/// An idle keep-alive connection is closed after this long, so dead clients do not pin threads.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_HEAD: usize = 64 * 1024;

/// Entry point of `portico demo --pod-name N --tcp P,.. --udp P,..`.
pub fn demo_main(pod_name: &str, tcp: &[u16], udp: &[u16]) -> ! {
    let body: Arc<[u8]> = format!("Hello World!\n{pod_name}\n").into_bytes().into();
    for &port in tcp {
        let listeners = bind_all(port, TcpListener::bind);
        if listeners.is_empty() {
            fail(&format!("cannot listen on TCP port {port}"));
        }
        for l in listeners {
            let body = body.clone();
            std::thread::spawn(move || accept_loop(l, body));
        }
    }
    for &port in udp {
        let sockets = bind_all(port, UdpSocket::bind);
        if sockets.is_empty() {
            fail(&format!("cannot bind UDP port {port}"));
        }
        for s in sockets {
            std::thread::spawn(move || echo_loop(s));
        }
    }
    let list = |ports: &[u16]| ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
    println!("demo server for pod {pod_name}: HTTP on TCP [{}], echo on UDP [{}]", list(tcp), list(udp));
    loop {
        std::thread::park();
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("demo server: {msg}");
    std::process::exit(1)
}

/// Sockets for `port` on IPv6 (dual-stack where the namespace allows) and IPv4. When the IPv6
/// socket is dual-stack the IPv4 bind fails with EADDRINUSE, which is fine: it is covered.
fn bind_all<S>(port: u16, bind: impl Fn(SocketAddr) -> io::Result<S>) -> Vec<S> {
    let mut sockets = Vec::new();
    let v6 = bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)));
    let v6_err = v6.as_ref().err().map(io::Error::kind);
    sockets.extend(v6.ok());
    match bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))) {
        Ok(s) => sockets.push(s),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse && v6_err.is_none() => {}
        Err(e) => eprintln!("demo server: port {port} on IPv4: {e}"),
    }
    sockets
}

fn accept_loop(listener: TcpListener, body: Arc<[u8]>) {
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let body = body.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &body);
                });
            }
            // Out of descriptors or similar: back off instead of spinning.
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn echo_loop(socket: UdpSocket) {
    let mut buf = vec![0u8; 65536];
    loop {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    }
}

/// Answers requests on one connection until either side closes it.
fn serve(stream: TcpStream, body: &[u8]) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(head) = read_head(&mut reader)? else { return Ok(()) };
        let req = Request::parse(&head);
        // A body is read and dropped so the next request starts where it should; a chunked
        // body is not worth parsing here, so such a connection ends after the answer.
        let mut keep_alive = req.keep_alive && !req.chunked;
        if req.content_length > 0 {
            let copied = io::copy(&mut (&mut reader).take(req.content_length), &mut io::sink())?;
            keep_alive &= copied == req.content_length;
        }
        writer.write_all(&response(&req, body, keep_alive))?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// The request head up to the blank line; `None` at a clean end of the connection.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = reader.take((MAX_HEAD - head.len()) as u64 + 1).read_until(b'\n', &mut line)?;
        if n == 0 {
            return if head.is_empty() { Ok(None) } else { Err(io::ErrorKind::UnexpectedEof.into()) };
        }
        // Blank lines before a request line are tolerated (RFC 9112 section 2.2).
        if line == b"\r\n" || line == b"\n" {
            if head.is_empty() {
                continue;
            }
            return Ok(Some(String::from_utf8_lossy(&head).into_owned()));
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEAD || !line.ends_with(b"\n") {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too long or cut short"));
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Request {
    head_only: bool,
    keep_alive: bool,
    content_length: u64,
    chunked: bool,
    bad: bool,
}

impl Request {
    fn parse(head: &str) -> Request {
        let mut lines = head.lines();
        let mut parts = lines.next().unwrap_or_default().split_whitespace();
        let (method, _target, version) = (parts.next(), parts.next(), parts.next());
        let http10 = version == Some("HTTP/1.0");
        let bad = method.is_none() || !version.is_some_and(|v| v.starts_with("HTTP/1."));
        let mut req =
            Request { head_only: method == Some("HEAD"), keep_alive: !http10, content_length: 0, chunked: false, bad };
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            if name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        req.keep_alive = false;
                    } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                        req.keep_alive = true;
                    }
                }
            } else if name.eq_ignore_ascii_case("content-length") {
                match value.parse() {
                    Ok(n) => req.content_length = n,
                    Err(_) => req.bad = true,
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                req.chunked = true;
            }
        }
        if req.bad {
            req.keep_alive = false;
        }
        req
    }
}

fn response(req: &Request, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let (status, body) = if req.bad { ("400 Bad Request", &b"bad request\n"[..]) } else { ("200 OK", body) };
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !req.head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_follows_the_http_version_and_connection_header() {
        let r = |h: &str| Request::parse(h);
        assert!(r("GET / HTTP/1.1\r\nHost: x\r\n").keep_alive);
        assert!(!r("GET / HTTP/1.1\r\nConnection: close\r\n").keep_alive);
        assert!(!r("GET / HTTP/1.0\r\n").keep_alive);
        assert!(r("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n").keep_alive);
        assert!(r("HEAD /any/path?q=1 HTTP/1.1\r\n").head_only);
        assert_eq!(r("POST / HTTP/1.1\r\nContent-Length: 5\r\n").content_length, 5);
        assert!(r("garbage\r\n").bad);
    }

    #[test]
    fn head_gets_the_length_but_no_body() {
        let body = b"Hello World!\npod\n";
        let get = String::from_utf8(response(&Request::parse("GET / HTTP/1.1\r\n"), body, true)).unwrap();
        assert!(get.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(get.contains("Content-Length: 17\r\n"));
        assert!(get.ends_with("\r\n\r\nHello World!\npod\n"));
        let head = String::from_utf8(response(&Request::parse("HEAD / HTTP/1.1\r\n"), body, true)).unwrap();
        assert!(head.contains("Content-Length: 17\r\n") && head.ends_with("\r\n\r\n"));
    }

    #[test]
    fn serves_two_requests_on_one_connection_over_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || accept_loop(listener, Arc::from(&b"Hello World!\np\n"[..])));
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut all = String::new();
        c.read_to_string(&mut all).unwrap();
        assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 2, "{all}");
        assert_eq!(all.matches("Hello World!\np\n").count(), 2);
    }
}

//! The real [`Prober`]: blocking std sockets with short timeouts, opened on a thread that has
//! entered a pod's network namespace (setns(2) moves one thread only, so never a tokio worker;
//! the thread ends with the probes).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::network::{Connect, DnsAnswer, Prober};

/// Runs `f` on a new thread inside the network namespace at `path`; an error when the
/// namespace cannot be opened or entered (not root, or gone).
pub fn in_netns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let file = File::open(path)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns(2) on an open namespace file; it changes this short-lived thread only.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Probes from the namespace of the thread it runs on; pods' own namespaces are
/// `<netns_dir>/<prefix><uid>`.
pub struct NetnsProber {
    pub netns_dir: PathBuf,
    pub prefix: String,
    pub timeout: Duration,
}

impl NetnsProber {
    /// `<prefix><uid>`, or on a node of `portico up --nodes` `<prefix>node-<i>-<uid>`.
    pub fn pod_netns(&self, uid: &str) -> PathBuf {
        let exact = self.netns_dir.join(format!("{}{uid}", self.prefix));
        if exact.exists() {
            return exact;
        }
        let suffix = format!("-{uid}");
        std::fs::read_dir(&self.netns_dir)
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(&self.prefix) && name.ends_with(&suffix)
            })
            .map(|e| e.path())
            .unwrap_or(exact)
    }
}

impl Prober for NetnsProber {
    fn connect(&mut self, addr: SocketAddr, http: bool) -> Connect {
        connect(addr, http, self.timeout)
    }

    fn dns(&mut self, server: SocketAddr, name: &str, ipv6: bool) -> Result<DnsAnswer, String> {
        dns_query(server, name, ipv6, self.timeout)
    }

    fn loopback_in_pod(&mut self, pod_uid: &str, port: u16) -> Option<Connect> {
        let path = self.pod_netns(pod_uid);
        if !path.exists() {
            return None;
        }
        let timeout = self.timeout;
        in_netns(&path, move || connect(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port), false, timeout)).ok()
    }
}

pub fn connect(addr: SocketAddr, http: bool, timeout: Duration) -> Connect {
    let mut stream = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) => {
            return match e.kind() {
                io::ErrorKind::ConnectionRefused => Connect::Refused,
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Connect::Timeout,
                _ => Connect::Failed(e.to_string()),
            };
        }
    };
    if !http {
        return Connect::Open { reply: None };
    }
    Connect::Open { reply: http_status(&mut stream, addr, timeout) }
}

/// The status line of the answer to `GET /`, if one comes in time.
fn http_status(stream: &mut TcpStream, addr: SocketAddr, timeout: Duration) -> Option<String> {
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let request = format!("GET / HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: portico-doctor\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < 4096 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().next()?.trim();
    line.starts_with("HTTP/").then(|| line.to_owned())
}

/// One UDP query (sent twice at most, half the timeout each), checked against its ID.
pub fn dns_query(server: SocketAddr, name: &str, ipv6: bool, timeout: Duration) -> Result<DnsAnswer, String> {
    use dns::wire::{Name, RecordData, build_query, parse_message, rtype};
    let qname = Name::from_dotted(name).map_err(|e| format!("bad name {name}: {e}"))?;
    let qtype = if ipv6 { rtype::AAAA } else { rtype::A };
    let bind: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    socket.connect(server).map_err(|e| e.to_string())?;
    socket.set_read_timeout(Some((timeout / 2).max(Duration::from_millis(100)))).map_err(|e| e.to_string())?;
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let query = build_query(id, &qname, qtype);
    let mut buf = [0u8; 4096];
    let mut last = String::from("no answer");
    for _ in 0..2 {
        socket.send(&query).map_err(|e| e.to_string())?;
        loop {
            match socket.recv(&mut buf) {
                Ok(n) => match parse_message(&buf[..n]) {
                    Ok(m) if m.header.id == id && m.header.is_response() => {
                        let mut answer = DnsAnswer { rcode: m.header.rcode(), ..Default::default() };
                        for r in m.answers {
                            match r.data {
                                RecordData::A(a) => answer.addresses.push(IpAddr::V4(a)),
                                RecordData::Aaaa(a) => answer.addresses.push(IpAddr::V6(a)),
                                RecordData::Cname(c) => {
                                    answer.cnames.push(c.to_dotted().trim_end_matches('.').to_owned())
                                }
                                _ => {}
                            }
                        }
                        return Ok(answer);
                    }
                    // Another query's answer, or garbage: keep waiting.
                    _ => continue,
                },
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    last = format!("no answer within {:?}", timeout);
                    break;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn connect_tells_open_from_refused_and_reads_an_http_status() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
        });
        let got = connect(addr, true, Duration::from_secs(2));
        assert_eq!(got, Connect::Open { reply: Some("HTTP/1.1 200 OK".into()) });
        server.join().unwrap();
        // The listener is gone: the port refuses now.
        assert_eq!(connect(addr, false, Duration::from_secs(2)), Connect::Refused);
    }

    #[test]
    fn a_dns_query_reads_the_answer_records() {
        use dns::wire::{Name, Query, Record, RecordData, ResponseBuilder, Section};
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let q = Query::parse(&buf[..n]).unwrap();
            let mut b = ResponseBuilder::new(&q, 0, true, false, 1232);
            let name = Name::from_dotted("web.default.svc.cluster.local").unwrap();
            b.push(Section::Answer, &Record::new(name, 5, RecordData::A("10.96.0.20".parse().unwrap())));
            server.send_to(&b.finish(), from).unwrap();
        });
        let a = dns_query(addr, "web.default.svc.cluster.local", false, Duration::from_secs(2)).unwrap();
        assert_eq!(a.rcode, 0);
        assert_eq!(a.addresses, vec!["10.96.0.20".parse::<IpAddr>().unwrap()]);
        t.join().unwrap();
    }
}

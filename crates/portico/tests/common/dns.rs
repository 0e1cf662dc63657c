//! DNS test helpers: a fake upstream resolver on loopback, a `portico dns` process, and a
//! small client over UDP and TCP (Portico's own wire codec; dig checks it independently).

use dns::wire::{self, Message, Name, Query, Record, RecordData, ResponseBuilder, Section, rcode, rtype};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A port free on loopback for both UDP and TCP.
pub fn free_udp_tcp_port() -> u16 {
    loop {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An authoritative server for a few test names (documentation addresses only: they are
/// data, nothing is ever sent to them). Everything else is NXDOMAIN with an SOA.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

fn upstream_records(name: &Name, qtype: u16) -> Option<Vec<Record>> {
    let n = name.to_lowercase().to_dotted();
    let rec = |data| Record::new(name.clone(), 300, data);
    match (n.as_str(), qtype) {
        ("www.example.test.", rtype::A) => Some(vec![rec(RecordData::A("192.0.2.80".parse().unwrap()))]),
        ("www.example.test.", rtype::AAAA) => Some(vec![rec(RecordData::Aaaa("2001:db8::80".parse().unwrap()))]),
        ("www.example.test.", _) => Some(vec![]),
        ("big.example.test.", rtype::TXT) => Some(vec![rec(RecordData::Txt(
            (0..20).map(|i| format!("{i:02}{}", "x".repeat(98)).into_bytes()).collect(),
        ))]),
        _ => None,
    }
}

fn upstream_answer(packet: &[u8], tcp: bool) -> Option<Vec<u8>> {
    let q = Query::parse(packet).ok()?;
    let limit = if tcp { 65535 } else { q.udp_limit() };
    let records = upstream_records(&q.name, q.qtype);
    let code = if records.is_some() { rcode::NOERROR } else { rcode::NXDOMAIN };
    let mut b = ResponseBuilder::new(&q, code, true, true, limit);
    match records {
        Some(r) if !r.is_empty() => b.push_all(Section::Answer, &r),
        _ => {
            let zone = Name::from_dotted("example.test").unwrap();
            let soa = RecordData::Soa {
                mname: Name::from_dotted("ns.example.test").unwrap(),
                rname: Name::from_dotted("hostmaster.example.test").unwrap(),
                serial: 1,
                refresh: 3600,
                retry: 600,
                expire: 86400,
                minimum: 30,
            };
            b.push(Section::Authority, &Record::new(zone, 60, soa));
        }
    }
    Some(b.finish())
}

impl FakeUpstream {
    pub fn start() -> FakeUpstream {
        let port = free_udp_tcp_port();
        let udp = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let tcp = TcpListener::bind(("127.0.0.1", port)).unwrap();
        tcp.set_nonblocking(true).unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (queries.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, peer)) = udp.recv_from(&mut buf) {
                    q.fetch_add(1, Ordering::Relaxed);
                    if let Some(a) = upstream_answer(&buf[..n], false) {
                        let _ = udp.send_to(&a, peer);
                    }
                }
            }
        });
        let (q, s) = (queries.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = tcp.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                c.set_nonblocking(false).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut len = [0u8; 2];
                if c.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
                if c.read_exact(&mut msg).is_err() {
                    continue;
                }
                q.fetch_add(1, Ordering::Relaxed);
                if let Some(a) = upstream_answer(&msg, true) {
                    let _ = c.write_all(&(a.len() as u16).to_be_bytes());
                    let _ = c.write_all(&a);
                }
            }
        });
        FakeUpstream { addr: SocketAddr::from(([127, 0, 0, 1], port)), queries, stop }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A `portico dns` process against a kubeconfig, on loopback ports of its own.
pub struct DnsProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub http: SocketAddr,
}

impl DnsProcess {
    pub fn start(kubeconfig: &Path, upstream: SocketAddr, extra: &[&str], log: &Path) -> DnsProcess {
        let port = free_udp_tcp_port();
        let http = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
        let child = Command::new(env!("CARGO_BIN_EXE_portico"))
            .arg("dns")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--upstream", &upstream.to_string()])
            .args(["--health", &http.to_string(), "--ready", &http.to_string(), "--metrics", &http.to_string()])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("spawn portico dns");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let p = DnsProcess { child: Some(child), addr, http };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if try_ask(addr, "dns-version.cluster.local", rtype::TXT, false).is_some() {
                return p;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("portico dns did not answer on {addr}; log: {}", std::fs::read_to_string(log).unwrap_or_default());
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits until the zone is loaded (/ready answers 200).
    pub fn wait_ready(&self) {
        assert!(
            super::eventually(Duration::from_secs(20), || http_get(self.http, "/ready").0 == 200),
            "portico dns never became ready"
        );
    }
}

impl Drop for DnsProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A GET on loopback: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else { return (0, String::new()) };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

pub fn query_packet(name: &str, qtype: u16) -> Vec<u8> {
    wire::build_query(rand_id(), &Name::from_dotted(name).unwrap(), qtype)
}

fn rand_id() -> u16 {
    (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() & 0xFFFF) as u16
}

/// Sends a raw packet and returns the raw answer.
pub fn exchange(addr: SocketAddr, packet: &[u8], tcp: bool) -> Option<Vec<u8>> {
    if tcp {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(&(packet.len() as u16).to_be_bytes()).ok()?;
        s.write_all(packet).ok()?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).ok()?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).ok()?;
        Some(buf)
    } else {
        let s = UdpSocket::bind("127.0.0.1:0").ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.send_to(packet, addr).ok()?;
        let mut buf = vec![0u8; 65535];
        let n = s.recv(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    }
}

pub fn try_ask(addr: SocketAddr, name: &str, qtype: u16, tcp: bool) -> Option<Message> {
    let packet = query_packet(name, qtype);
    let answer = exchange(addr, &packet, tcp)?;
    let m = wire::parse_message(&answer).ok()?;
    assert_eq!(m.header.id, u16::from_be_bytes([packet[0], packet[1]]), "answer ID matches the query");
    Some(m)
}

pub fn ask(addr: SocketAddr, name: &str, qtype: u16, tcp: bool) -> Message {
    try_ask(addr, name, qtype, tcp).unwrap_or_else(|| panic!("no answer for {name} from {addr}"))
}

/// A message as comparable text: rcode, AA, and each section as sorted dig-style lines
/// (OPT left out, the SOA serial masked).
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub rcode: &'static str,
    pub aa: bool,
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
}

pub fn summary(m: &Message) -> Summary {
    let lines = |rs: &[Record]| {
        let mut v: Vec<String> = rs
            .iter()
            .filter(|r| r.rtype() != rtype::OPT)
            .map(|r| match &r.data {
                RecordData::Soa { mname, rname, .. } => format!("{} {} IN SOA {mname} {rname} SERIAL", r.name, r.ttl),
                _ => r.to_string(),
            })
            .collect();
        v.sort();
        v
    };
    Summary {
        rcode: rcode::name(m.header.rcode()),
        aa: m.header.authoritative(),
        answer: lines(&m.answers),
        authority: lines(&m.authority),
        additional: lines(&m.additional),
    }
}

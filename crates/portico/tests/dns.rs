//! Cluster DNS end to end: a real `portico server` (dual-stack service range), a real
//! `portico dns` process fed by it through the API, a fake upstream on loopback, and queries
//! over UDP and TCP.

mod common;

use common::dns::{DnsProcess, FakeUpstream, Summary, ask, exchange, http_get, summary};
use common::{Server, eventually};
use dns::wire::{self, rtype};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: metrics, port: 9090}
  - {name: syslog, port: 514, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: dual, namespace: shop}
spec:
  ipFamilyPolicy: RequireDualStack
  selector: {app: dual}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-1, namespace: shop, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{name: pg, port: 5432, protocol: TCP}]
endpoints:
- {addresses: [10.244.1.10], hostname: db-0, conditions: {ready: true}}
- {addresses: [10.244.1.11], hostname: db-1, conditions: {ready: true}}
- {addresses: [10.244.1.12], hostname: db-2, conditions: {ready: false}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-2, namespace: shop, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{name: pg, port: 5432, protocol: TCP}]
endpoints:
- {addresses: [10.244.1.20], hostname: db-0}
---
apiVersion: v1
kind: Service
metadata: {name: db6, namespace: shop}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db6-1, namespace: shop, labels: {kubernetes.io/service-name: db6}}
addressType: IPv6
ports: [{name: pg, port: 5432, protocol: TCP}]
endpoints:
- {addresses: ["fd00:10:244::5"]}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: shop}
spec:
  clusterIP: None
  selector: {app: nothing}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: shop}
spec: {type: ExternalName, externalName: www.example.test}
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: shop}
spec: {type: ExternalName, externalName: web.shop.svc.cluster.local}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec:
  containers:
  - name: web
    image: nginx
    ports: [{name: http, containerPort: 8080}]
"#;

struct Lab {
    server: Server,
    upstream: FakeUpstream,
    dns: DnsProcess,
}

impl Lab {
    async fn start() -> Lab {
        Self::start_with(&[]).await
    }

    async fn start_with(dns_args: &[&str]) -> Lab {
        let server = Server::start_with(&["--service-cluster-ip-range", "10.96.0.0/12,fd00:10:96::/108"]);
        server.apply_ok(MANIFEST, &[]);
        let pods: Api<Pod> = Api::namespaced(server.client().await, "shop");
        common::set_pod_status(&pods, "web-1", "10.244.0.5", true).await;
        let upstream = FakeUpstream::start();
        let log = server.data_dir().join("dns.log");
        let dns = DnsProcess::start(&server.kubeconfig(), upstream.addr, dns_args, &log);
        dns.wait_ready();
        Lab { server, upstream, dns }
    }

    fn cluster_ips(&self, name: &str) -> Vec<String> {
        let out = self.server.kubectl_ok(&["get", "svc", "-n", "shop", name, "-o", "jsonpath={.spec.clusterIPs[*]}"]);
        out.split_whitespace().map(str::to_owned).collect()
    }
}

fn s(lines: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    v.sort();
    v
}

const SOA: &str = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL";

fn ok(answer: &[&str], additional: &[&str]) -> Summary {
    Summary { rcode: "NOERROR", aa: true, answer: s(answer), authority: vec![], additional: s(additional) }
}

fn negative(rcode: &'static str) -> Summary {
    Summary { rcode, aa: true, answer: vec![], authority: s(&[SOA]), additional: vec![] }
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_follow_the_specification_over_udp_and_tcp() {
    let lab = Lab::start().await;
    let web = lab.cluster_ips("web")[0].clone();
    let dual = lab.cluster_ips("dual");
    assert_eq!(dual.len(), 2, "dual-stack Service has two cluster IPs: {dual:?}");
    let (dual4, dual6) = (dual[0].clone(), dual[1].clone());
    let dns_ip =
        lab.server.kubectl_ok(&["get", "svc", "-n", "kube-system", "kube-dns", "-o", "jsonpath={.spec.clusterIP}"]);
    let addr = lab.dns.addr;
    // The pod-driven endpoint arrives through the EndpointSlice controller.
    assert!(
        eventually(Duration::from_secs(10), || {
            ask(addr, "10-244-0-5.web.shop.svc.cluster.local", rtype::A, false).answers.len() == 1
        }),
        "the EndpointSlice controller's slice reached DNS"
    );

    let web_a = format!("web.shop.svc.cluster.local. 5 IN A {web}");
    let web_ptr = dns::zone::reverse_name(web.parse().unwrap());
    let dual_ptr = dns::zone::reverse_name(dual6.parse().unwrap());
    let cases: Vec<(&str, u16, Summary)> = vec![
        ("web.shop.svc.cluster.local", rtype::A, ok(&[&web_a], &[])),
        ("Web.SHOP.svc.Cluster.Local", rtype::A, ok(&[&format!("Web.SHOP.svc.Cluster.Local. 5 IN A {web}")], &[])),
        ("web.shop.svc.cluster.local", rtype::AAAA, negative("NOERROR")),
        ("dual.shop.svc.cluster.local", rtype::A, ok(&[&format!("dual.shop.svc.cluster.local. 5 IN A {dual4}")], &[])),
        (
            "dual.shop.svc.cluster.local",
            rtype::AAAA,
            ok(&[&format!("dual.shop.svc.cluster.local. 5 IN AAAA {dual6}")], &[]),
        ),
        (
            "_http._tcp.web.shop.svc.cluster.local",
            rtype::SRV,
            ok(&["_http._tcp.web.shop.svc.cluster.local. 5 IN SRV 0 100 80 web.shop.svc.cluster.local."], &[&web_a]),
        ),
        (
            "_syslog._udp.web.shop.svc.cluster.local",
            rtype::SRV,
            ok(&["_syslog._udp.web.shop.svc.cluster.local. 5 IN SRV 0 100 514 web.shop.svc.cluster.local."], &[&web_a]),
        ),
        ("_syslog._tcp.web.shop.svc.cluster.local", rtype::SRV, negative("NXDOMAIN")),
        (
            "web.shop.svc.cluster.local",
            rtype::SRV,
            ok(
                &[
                    "web.shop.svc.cluster.local. 5 IN SRV 0 33 80 web.shop.svc.cluster.local.",
                    "web.shop.svc.cluster.local. 5 IN SRV 0 33 9090 web.shop.svc.cluster.local.",
                    "web.shop.svc.cluster.local. 5 IN SRV 0 33 514 web.shop.svc.cluster.local.",
                ],
                &[&web_a],
            ),
        ),
        (
            "10-244-0-5.web.shop.svc.cluster.local",
            rtype::A,
            ok(&["10-244-0-5.web.shop.svc.cluster.local. 5 IN A 10.244.0.5"], &[]),
        ),
        (
            "db.shop.svc.cluster.local",
            rtype::A,
            ok(
                &[
                    "db.shop.svc.cluster.local. 5 IN A 10.244.1.10",
                    "db.shop.svc.cluster.local. 5 IN A 10.244.1.11",
                    "db.shop.svc.cluster.local. 5 IN A 10.244.1.20",
                ],
                &[],
            ),
        ),
        // Two endpoints share a hostname: both addresses.
        (
            "db-0.db.shop.svc.cluster.local",
            rtype::A,
            ok(
                &[
                    "db-0.db.shop.svc.cluster.local. 5 IN A 10.244.1.10",
                    "db-0.db.shop.svc.cluster.local. 5 IN A 10.244.1.20",
                ],
                &[],
            ),
        ),
        ("db-2.db.shop.svc.cluster.local", rtype::A, negative("NXDOMAIN")),
        (
            "_pg._tcp.db.shop.svc.cluster.local",
            rtype::SRV,
            ok(
                &[
                    "_pg._tcp.db.shop.svc.cluster.local. 5 IN SRV 0 33 5432 db-0.db.shop.svc.cluster.local.",
                    "_pg._tcp.db.shop.svc.cluster.local. 5 IN SRV 0 33 5432 db-1.db.shop.svc.cluster.local.",
                ],
                &[
                    "db-0.db.shop.svc.cluster.local. 5 IN A 10.244.1.10",
                    "db-0.db.shop.svc.cluster.local. 5 IN A 10.244.1.20",
                    "db-1.db.shop.svc.cluster.local. 5 IN A 10.244.1.11",
                ],
            ),
        ),
        ("db6.shop.svc.cluster.local", rtype::AAAA, ok(&["db6.shop.svc.cluster.local. 5 IN AAAA fd00:10:244::5"], &[])),
        (
            "fd00-10-244--5.db6.shop.svc.cluster.local",
            rtype::AAAA,
            ok(&["fd00-10-244--5.db6.shop.svc.cluster.local. 5 IN AAAA fd00:10:244::5"], &[]),
        ),
        ("empty.shop.svc.cluster.local", rtype::A, negative("NXDOMAIN")),
        ("nosuch.shop.svc.cluster.local", rtype::A, negative("NXDOMAIN")),
        ("shop.svc.cluster.local", rtype::A, negative("NOERROR")),
        ("svc.cluster.local", rtype::A, negative("NOERROR")),
        ("nosuch.svc.cluster.local", rtype::A, negative("NXDOMAIN")),
        (
            "ext.shop.svc.cluster.local",
            rtype::CNAME,
            ok(&["ext.shop.svc.cluster.local. 5 IN CNAME www.example.test."], &[]),
        ),
        (
            "ext.shop.svc.cluster.local",
            rtype::A,
            ok(
                &["ext.shop.svc.cluster.local. 5 IN CNAME www.example.test.", "www.example.test. 300 IN A 192.0.2.80"],
                &[],
            ),
        ),
        (
            "ext.shop.svc.cluster.local",
            rtype::AAAA,
            ok(
                &[
                    "ext.shop.svc.cluster.local. 5 IN CNAME www.example.test.",
                    "www.example.test. 300 IN AAAA 2001:db8::80",
                ],
                &[],
            ),
        ),
        (
            "alias.shop.svc.cluster.local",
            rtype::A,
            ok(&["alias.shop.svc.cluster.local. 5 IN CNAME web.shop.svc.cluster.local.", &web_a], &[]),
        ),
        (
            "10-244-0-5.shop.pod.cluster.local",
            rtype::A,
            ok(&["10-244-0-5.shop.pod.cluster.local. 5 IN A 10.244.0.5"], &[]),
        ),
        ("dns-version.cluster.local", rtype::TXT, ok(&["dns-version.cluster.local. 28800 IN TXT \"1.1.0\""], &[])),
        (
            "cluster.local",
            rtype::NS,
            ok(
                &["cluster.local. 5 IN NS kube-dns.kube-system.svc.cluster.local."],
                &[&format!("kube-dns.kube-system.svc.cluster.local. 5 IN A {dns_ip}")],
            ),
        ),
        ("cluster.local", rtype::SOA, Summary { authority: vec![], answer: s(&[SOA]), ..ok(&[], &[]) }),
        (&web_ptr, rtype::PTR, ok(&[&format!("{web_ptr} 5 IN PTR web.shop.svc.cluster.local.")], &[])),
        (
            "11.1.244.10.in-addr.arpa",
            rtype::PTR,
            ok(&["11.1.244.10.in-addr.arpa. 5 IN PTR db-1.db.shop.svc.cluster.local."], &[]),
        ),
        (&dual_ptr, rtype::PTR, ok(&[&format!("{dual_ptr} 5 IN PTR dual.shop.svc.cluster.local.")], &[])),
        // Outside the cluster: the upstream's answer, not authoritative here.
        ("www.example.test", rtype::A, Summary { aa: true, ..ok(&["www.example.test. 300 IN A 192.0.2.80"], &[]) }),
        (
            "nothing.example.test",
            rtype::A,
            Summary {
                rcode: "NXDOMAIN",
                aa: true,
                answer: vec![],
                authority: s(&["example.test. 60 IN SOA ns.example.test. hostmaster.example.test. SERIAL"]),
                additional: vec![],
            },
        ),
    ];
    for tcp in [false, true] {
        for (name, qtype, want) in &cases {
            let got = summary(&ask(addr, name, *qtype, tcp));
            // Cached upstream answers age; compare them with the TTL the upstream gave.
            let got = Summary { answer: got.answer.iter().map(|l| l.replace(" 299 IN ", " 300 IN ")).collect(), ..got };
            assert_eq!(&got, want, "{name} type {qtype} over {}", if tcp { "TCP" } else { "UDP" });
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_reach_answers_within_100_ms() {
    let lab = Lab::start().await;
    let client = lab.server.client().await;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "shop");
    let addr = lab.dns.addr;
    let mut took = Vec::new();
    for i in 0..10u8 {
        let ip = format!("10.244.9.{}", i + 1);
        let patch = json!({"endpoints": [{"addresses": [ip], "hostname": "db-0"}]});
        let start = Instant::now();
        slices.patch("db-2", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        let want = format!("db-0.db.shop.svc.cluster.local. 5 IN A {ip}");
        loop {
            let m = ask(addr, "db-0.db.shop.svc.cluster.local", rtype::A, false);
            if summary(&m).answer.contains(&want) {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "change {i} never reached DNS");
            std::thread::sleep(Duration::from_millis(1));
        }
        took.push(start.elapsed());
    }
    // A new Service, too.
    let services: Api<Service> = Api::namespaced(client, "shop");
    let svc =
        serde_json::from_value(json!({"metadata": {"name": "fresh"}, "spec": {"ports": [{"port": 80}]}})).unwrap();
    let start = Instant::now();
    services.create(&PostParams::default(), &svc).await.unwrap();
    while ask(addr, "fresh.shop.svc.cluster.local", rtype::A, false).answers.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(5), "new Service never reached DNS");
        std::thread::sleep(Duration::from_millis(1));
    }
    took.push(start.elapsed());
    took.sort();
    let median = took[took.len() / 2];
    println!("API write to DNS answer: median {median:?}, max {:?} over {} changes", took.last().unwrap(), took.len());
    assert!(median < Duration::from_millis(100), "median {median:?}: {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_caches_and_retries_truncated_answers_over_tcp() {
    let lab = Lab::start().await;
    let addr = lab.dns.addr;
    let before = lab.upstream.queries.load(std::sync::atomic::Ordering::Relaxed);
    for _ in 0..5 {
        assert_eq!(ask(addr, "www.example.test", rtype::AAAA, false).answers.len(), 1);
    }
    let after = lab.upstream.queries.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        after - before <= 2,
        "five identical queries reached the upstream {} times (cache + one loop probe)",
        after - before
    );

    // 2 KB of TXT: the upstream truncates over UDP, Portico retries over TCP and caches the
    // whole answer; a classic 512-byte UDP client gets TC, a TCP client the records.
    let mut packet = common::dns::query_packet("big.example.test", rtype::TXT);
    packet.truncate(packet.len() - 11);
    packet[11] = 0; // no EDNS0: the 512-byte limit
    let udp = wire::parse_message(&exchange(addr, &packet, false).unwrap()).unwrap();
    assert!(udp.header.truncated(), "over UDP the answer is truncated");
    assert!(udp.answers.is_empty());
    let tcp = ask(addr, "big.example.test", rtype::TXT, true);
    assert!(!tcp.header.truncated());
    match &tcp.answers[0].data {
        wire::RecordData::Txt(strings) => assert_eq!(strings.len(), 20),
        other => panic!("{other:?}"),
    }
    let metrics = http_get(lab.dns.http, "/metrics").1;
    assert!(metrics.contains("coredns_cache_hits_total{server="), "{metrics}");
    assert!(metrics.contains("rcode=\"NOERROR\",plugin=\"cache\""), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn servfail_until_the_api_is_synced() {
    let mut server = Server::start();
    let upstream = FakeUpstream::start();
    server.kill9();
    let log = server.data_dir().join("dns.log");
    // No API behind the kubeconfig: cluster names get SERVFAIL, not a false NXDOMAIN.
    let dns = DnsProcess::start(&server.kubeconfig(), upstream.addr, &[], &log);
    let m = ask(dns.addr, "kubernetes.default.svc.cluster.local", rtype::A, false);
    assert_eq!(wire::rcode::name(m.header.rcode()), "SERVFAIL");
    assert_eq!(http_get(dns.http, "/ready").0, 503);
    assert_eq!(http_get(dns.http, "/health").0, 200);
    // Forwarded names work meanwhile.
    assert_eq!(ask(dns.addr, "www.example.test", rtype::A, false).answers.len(), 1);
    server.spawn();
    dns.wait_ready();
    let m = ask(dns.addr, "kubernetes.default.svc.cluster.local", rtype::A, false);
    assert_eq!(summary(&m).answer, ["kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_packets_get_formerr_or_nothing_and_the_server_stays_up() {
    let lab = Lab::start().await;
    let addr = lab.dns.addr;
    let good = common::dns::query_packet("web.shop.svc.cluster.local", rtype::A);
    // Header only with one question promised: FORMERR with the same ID.
    let formerr = exchange(addr, &good[..12], false).unwrap();
    assert_eq!(&formerr[..2], &good[..2]);
    assert_eq!(formerr[3] & 0xF, wire::rcode::FORMERR);
    // A compression loop in the question.
    let mut looped = good[..12].to_vec();
    looped.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    assert_eq!(exchange(addr, &looped, false).unwrap()[3] & 0xF, wire::rcode::FORMERR);
    // Too short for a header, and a response: no answer at all.
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    for junk in [&[1u8, 2, 3][..], &[0u8, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0]] {
        s.send_to(junk, addr).unwrap();
        let mut buf = [0u8; 512];
        assert!(s.recv(&mut buf).is_err(), "no answer to {junk:?}");
    }
    // EDNS version 1: BADVERS (extended RCODE 16 in the OPT record).
    let mut v1 = good.clone();
    let n = v1.len();
    v1[n - 5] = 1;
    let m = wire::parse_message(&exchange(addr, &v1, false).unwrap()).unwrap();
    let opt = m.additional.iter().find(|r| r.rtype() == rtype::OPT).expect("an OPT record");
    assert_eq!(opt.ttl >> 24, 1, "BADVERS");
    // An unknown opcode: NOTIMP.
    let mut notify = good.clone();
    notify[2] = 4 << 3;
    assert_eq!(exchange(addr, &notify, false).unwrap()[3] & 0xF, wire::rcode::NOTIMP);
    // A TCP frame that promises more than it sends, then closes: the server carries on.
    {
        use std::io::Write;
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(&[0xFF, 0xFF, 1, 2, 3]).unwrap();
    }
    let m = ask(addr, "web.shop.svc.cluster.local", rtype::A, true);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(ask(addr, "web.shop.svc.cluster.local", rtype::A, false).answers.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_is_this_server_is_not_used() {
    let server = Server::start();
    let log = server.data_dir().join("dns-self.log");
    // Pointed at itself (the same port on 127.0.0.1): dropped at start, no storm.
    let port = common::dns::free_udp_tcp_port();
    let me: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["dns", "--kubeconfig", server.kubeconfig().to_str().unwrap()])
        .args([
            "--listen",
            &me.to_string(),
            "--upstream",
            &me.to_string(),
            "--health",
            "",
            "--ready",
            "",
            "--metrics",
            "",
        ])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _child = common::Killed(child);
    assert!(eventually(Duration::from_secs(20), || common::dns::try_ask(me, "example.org", rtype::A, false).is_some()));
    let m = ask(me, "example.org", rtype::A, false);
    assert_eq!(wire::rcode::name(m.header.rcode()), "SERVFAIL");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("upstream is this server's own address"), "{text}");
}

/// Two servers forwarding to each other: the loop probe finds it and the queries end.
#[tokio::test(flavor = "multi_thread")]
async fn a_forwarding_loop_between_two_servers_is_detected() {
    let server = Server::start();
    let (pa, pb) = (common::dns::free_udp_tcp_port(), common::dns::free_udp_tcp_port());
    let (a, b): (SocketAddr, SocketAddr) = (([127, 0, 0, 1], pa).into(), ([127, 0, 0, 1], pb).into());
    let spawn = |me: SocketAddr, up: SocketAddr, http: SocketAddr, log: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
            .args(["dns", "--kubeconfig", server.kubeconfig().to_str().unwrap()])
            .args(["--listen", &me.to_string(), "--upstream", &up.to_string()])
            .args(["--health", "", "--ready", "", "--metrics", &http.to_string()])
            .stderr(std::fs::File::create(server.data_dir().join(log)).unwrap())
            .spawn()
            .unwrap()
    };
    let (ha, hb): (SocketAddr, SocketAddr) =
        (([127, 0, 0, 1], common::dns::free_tcp_port()).into(), ([127, 0, 0, 1], common::dns::free_tcp_port()).into());
    struct Kill(Vec<std::process::Child>);
    impl Drop for Kill {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let _children = Kill(vec![spawn(a, b, ha, "dns-a.log"), spawn(b, a, hb, "dns-b.log")]);
    for addr in [a, b] {
        assert!(eventually(Duration::from_secs(20), || common::dns::try_ask(
            addr,
            "dns-version.cluster.local",
            rtype::TXT,
            false
        )
        .is_some()));
    }
    let start = Instant::now();
    let m = ask(a, "www.example.test", rtype::A, false);
    assert_ne!(wire::rcode::name(m.header.rcode()), "NOERROR");
    assert!(start.elapsed() < Duration::from_secs(10), "the looped query ended in {:?}", start.elapsed());
    let loops = |h: SocketAddr| {
        http_get(h, "/metrics")
            .1
            .lines()
            .find_map(|l| {
                l.strip_prefix("portico_dns_forward_loops_detected_total ").map(|v| v.trim().parse::<u64>().unwrap())
            })
            .unwrap()
    };
    assert!(eventually(Duration::from_secs(5), || loops(ha) + loops(hb) >= 1), "a loop was detected");
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_verified_answers_only_addresses_pods_have() {
    let lab = Lab::start_with(&["--pods", "verified", "--namespaces", "shop,kube-system"]).await;
    let addr = lab.dns.addr;
    let rcode = |name: &str| wire::rcode::name(ask(addr, name, rtype::A, false).header.rcode());
    assert!(
        eventually(Duration::from_secs(10), || rcode("10-244-0-5.shop.pod.cluster.local") == "NOERROR"),
        "the pod's address is answered"
    );
    assert_eq!(
        summary(&ask(addr, "10-244-0-5.shop.pod.cluster.local", rtype::A, false)).answer,
        ["10-244-0-5.shop.pod.cluster.local. 5 IN A 10.244.0.5"]
    );
    // No pod has this address, and the pod is not in that namespace.
    assert_eq!(rcode("10-244-0-6.shop.pod.cluster.local"), "NXDOMAIN");
    assert_eq!(rcode("10-244-0-5.kube-system.pod.cluster.local"), "NXDOMAIN");
    // Outside the namespace filter nothing is answered.
    assert_eq!(rcode("kubernetes.default.svc.cluster.local"), "NXDOMAIN");
    assert_eq!(rcode("web.shop.svc.cluster.local"), "NOERROR");
    lab.server.kubectl_ok(&["delete", "pod", "-n", "shop", "web-1", "--grace-period=0", "--force"]);
    assert!(
        eventually(Duration::from_secs(10), || rcode("10-244-0-5.shop.pod.cluster.local") == "NXDOMAIN"),
        "a deleted pod's address is no longer answered"
    );
}

/// Bound to the wildcard address, the DNS answers from the address each query was sent to
/// (IP_PKTINFO): a client that asked 127.0.0.2 on a connected socket, which takes datagrams
/// from 127.0.0.2 only, gets its answer (routing alone would send it from 127.0.0.1).
#[tokio::test(flavor = "multi_thread")]
async fn a_wildcard_bound_dns_answers_from_the_address_it_was_asked_on() {
    let server = Server::start();
    let log = server.data_dir().join("dns-wildcard.log");
    let port = common::dns::free_udp_tcp_port();
    let upstream = FakeUpstream::start();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["dns", "--kubeconfig", server.kubeconfig().to_str().unwrap()])
        .args(["--listen", &format!("0.0.0.0:{port}"), "--upstream", &upstream.addr.to_string()])
        .args(["--health", "", "--ready", "", "--metrics", ""])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _child = common::Killed(child);
    let asked: SocketAddr = ([127, 0, 0, 2], port).into();
    let ask_connected = |name: &str| -> Option<Vec<u8>> {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(asked).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        sock.send(&common::dns::query_packet(name, rtype::A)).unwrap();
        let mut buf = [0u8; 1500];
        sock.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
    };
    // A cluster answer (from the serving thread) and a forwarded one (sent from the runtime).
    let ok = eventually(Duration::from_secs(20), || ask_connected("kubernetes.default.svc.cluster.local").is_some());
    assert!(ok, "an answer from 127.0.0.2:{port}:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    assert!(ask_connected("example.org").is_some(), "a forwarded answer from 127.0.0.2 too");
}

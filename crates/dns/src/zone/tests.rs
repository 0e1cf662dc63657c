//! The zone's answers, table by table: query -> outcome, answer and additional records, in
//! dig's presentation form.

use super::*;
use crate::wire::rtype;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn port(name: &str, protocol: &str, n: u16) -> PortModel {
    PortModel { name: name.into(), protocol: protocol.into(), port: Some(n) }
}

fn ep(addr: &str, hostname: Option<&str>) -> EpModel {
    let ip = ip(addr);
    EpModel { ip, hostname: hostname.map(str::to_owned).unwrap_or_else(|| k8s::dashed(ip)) }
}

fn cluster() -> ZoneData {
    let mut z = ZoneData::default();
    for ns in ["default", "other", "kube-system"] {
        z.set_namespace(ns, true);
    }
    let svc = |kind, ports| Some(SvcModel { kind, ports });
    let http = vec![port("http", "TCP", 80)];
    z.set_service(
        "default",
        "web",
        svc(SvcKind::ClusterIp(vec![ip("10.96.0.7")]), vec![port("http", "TCP", 80), port("https", "TCP", 443)]),
    );
    z.set_slice(
        "default",
        "web",
        "web-x1",
        Some(SliceModel { ports: vec![port("http", "TCP", 8080)], endpoints: vec![ep("10.244.0.5", None)] }),
    );
    z.set_service("default", "dual", svc(SvcKind::ClusterIp(vec![ip("10.96.0.8"), ip("fd00::8")]), http.clone()));
    z.set_service("default", "db", svc(SvcKind::Headless, vec![port("pg", "TCP", 5432)]));
    z.set_slice(
        "default",
        "db",
        "db-a",
        Some(SliceModel {
            ports: vec![port("pg", "TCP", 5432)],
            endpoints: vec![ep("10.244.0.10", Some("db-0")), ep("10.244.0.11", None)],
        }),
    );
    z.set_service("default", "dup", svc(SvcKind::Headless, vec![]));
    z.set_slice(
        "default",
        "dup",
        "dup-a",
        Some(SliceModel {
            ports: vec![port("p", "UDP", 1)],
            endpoints: vec![ep("10.244.1.1", Some("same")), ep("10.244.1.2", Some("same"))],
        }),
    );
    z.set_service("default", "v6db", svc(SvcKind::Headless, vec![]));
    z.set_slice(
        "default",
        "v6db",
        "v6db-a",
        Some(SliceModel {
            ports: vec![PortModel { name: String::new(), protocol: String::new(), port: None }],
            endpoints: vec![ep("fd00::1:5", None)],
        }),
    );
    z.set_service("default", "empty", svc(SvcKind::Headless, vec![]));
    z.set_service("default", "ext", svc(SvcKind::ExternalName("example.com".into()), vec![]));
    z.set_service("default", "alias", svc(SvcKind::ExternalName("web.default.svc.cluster.local".into()), vec![]));
    z.set_service("default", "loop", svc(SvcKind::ExternalName("loop.default.svc.cluster.local".into()), vec![]));
    z.set_service(
        "kube-system",
        "kube-dns",
        svc(SvcKind::ClusterIp(vec![ip("10.96.0.10")]), vec![port("dns", "UDP", 53), port("dns-tcp", "TCP", 53)]),
    );
    z.set_service("other", "web", svc(SvcKind::ClusterIp(vec![ip("10.96.1.7")]), http));
    z.synced = true;
    z
}

fn config() -> ZoneConfig {
    ZoneConfig::new("cluster.local").unwrap()
}

/// (outcome, answer lines, additional lines)
type Shown = (String, Vec<String>, Vec<String>);

fn ask_with(z: &ZoneData, cfg: &ZoneConfig, name: &str, qtype: u16) -> Shown {
    let qname = Name::from_dotted(name).unwrap();
    let lines = |v: &[crate::wire::Record]| v.iter().map(|r| r.to_string()).collect::<Vec<_>>();
    match resolve(z, cfg, &qname, qtype) {
        Outcome::Answer { answer, additional } => ("answer".into(), lines(&answer), lines(&additional)),
        Outcome::Chase { cnames, target } => (format!("chase {target}"), lines(&cnames), vec![]),
        other => (format!("{other:?}"), vec![], vec![]),
    }
}

fn ask(name: &str, qtype: u16) -> Shown {
    ask_with(&cluster(), &config(), name, qtype)
}

fn answer(lines: &[&str]) -> Shown {
    ("answer".into(), lines.iter().map(|s| s.to_string()).collect(), vec![])
}

fn with_extra(lines: &[&str], extra: &[&str]) -> Shown {
    ("answer".into(), lines.iter().map(|s| s.to_string()).collect(), extra.iter().map(|s| s.to_string()).collect())
}

fn bare(kind: &str) -> Shown {
    (kind.into(), vec![], vec![])
}

#[test]
fn cluster_ip_services() {
    use rtype::*;
    let cases: Vec<(&str, u16, Shown)> = vec![
        ("web.default.svc.cluster.local", A, answer(&["web.default.svc.cluster.local. 5 IN A 10.96.0.7"])),
        // Matching ignores case; the answer keeps the query's.
        ("WEB.Default.SVC.cluster.LOCAL.", A, answer(&["WEB.Default.SVC.cluster.LOCAL. 5 IN A 10.96.0.7"])),
        ("web.default.svc.cluster.local", AAAA, bare("NoData")),
        ("web.other.svc.cluster.local", A, answer(&["web.other.svc.cluster.local. 5 IN A 10.96.1.7"])),
        ("dual.default.svc.cluster.local", A, answer(&["dual.default.svc.cluster.local. 5 IN A 10.96.0.8"])),
        ("dual.default.svc.cluster.local", AAAA, answer(&["dual.default.svc.cluster.local. 5 IN AAAA fd00::8"])),
        // The SRV owner name also has the A record, as in CoreDNS.
        (
            "_http._tcp.web.default.svc.cluster.local",
            A,
            answer(&["_http._tcp.web.default.svc.cluster.local. 5 IN A 10.96.0.7"]),
        ),
        ("nosuch.default.svc.cluster.local", A, bare("NxDomain")),
        ("web.nosuchns.svc.cluster.local", A, bare("NxDomain")),
        ("web.default.svc.cluster.local", MX, bare("NoData")),
        ("nosuch.default.svc.cluster.local", MX, bare("NxDomain")),
        // An endpoint of a ClusterIP Service is addressable by its dashed IP.
        (
            "10-244-0-5.web.default.svc.cluster.local",
            A,
            answer(&["10-244-0-5.web.default.svc.cluster.local. 5 IN A 10.244.0.5"]),
        ),
        ("10-244-0-6.web.default.svc.cluster.local", A, bare("NxDomain")),
        ("a.b.c.web.default.svc.cluster.local", A, bare("NxDomain")),
    ];
    for (name, qtype, want) in cases {
        assert_eq!(ask(name, qtype), want, "{name} type {qtype}");
    }
}

#[test]
fn srv_records_for_named_ports() {
    use rtype::*;
    let web_a = "web.default.svc.cluster.local. 5 IN A 10.96.0.7";
    let cases: Vec<(&str, Shown)> = vec![
        (
            "_http._tcp.web.default.svc.cluster.local",
            with_extra(
                &["_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local."],
                &[web_a],
            ),
        ),
        (
            "_HTTPS._TCP.web.default.svc.cluster.local",
            with_extra(
                &["_HTTPS._TCP.web.default.svc.cluster.local. 5 IN SRV 0 100 443 web.default.svc.cluster.local."],
                &[web_a],
            ),
        ),
        // No port or protocol: every port, weights split.
        (
            "web.default.svc.cluster.local",
            with_extra(
                &[
                    "web.default.svc.cluster.local. 5 IN SRV 0 50 80 web.default.svc.cluster.local.",
                    "web.default.svc.cluster.local. 5 IN SRV 0 50 443 web.default.svc.cluster.local.",
                ],
                &[web_a],
            ),
        ),
        ("_http._udp.web.default.svc.cluster.local", bare("NxDomain")),
        ("_nope._tcp.web.default.svc.cluster.local", bare("NxDomain")),
        (
            "_pg._tcp.db.default.svc.cluster.local",
            with_extra(
                &[
                    "_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 db-0.db.default.svc.cluster.local.",
                    "_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 10-244-0-11.db.default.svc.cluster.local.",
                ],
                &[
                    "db-0.db.default.svc.cluster.local. 5 IN A 10.244.0.10",
                    "10-244-0-11.db.default.svc.cluster.local. 5 IN A 10.244.0.11",
                ],
            ),
        ),
        // Duplicate hostnames: one SRV per (target, port), every address in additional.
        (
            "_p._udp.dup.default.svc.cluster.local",
            with_extra(
                &["_p._udp.dup.default.svc.cluster.local. 5 IN SRV 0 50 1 same.dup.default.svc.cluster.local."],
                &[
                    "same.dup.default.svc.cluster.local. 5 IN A 10.244.1.1",
                    "same.dup.default.svc.cluster.local. 5 IN A 10.244.1.2",
                ],
            ),
        ),
        // A slice without ports has no SRV records.
        ("v6db.default.svc.cluster.local", bare("NoData")),
        ("ext.default.svc.cluster.local", bare("NoData")),
    ];
    for (name, want) in cases {
        assert_eq!(ask(name, SRV), want, "{name}");
    }
}

#[test]
fn headless_services() {
    use rtype::*;
    let cases: Vec<(&str, u16, Shown)> = vec![
        (
            "db.default.svc.cluster.local",
            A,
            answer(&[
                "db.default.svc.cluster.local. 5 IN A 10.244.0.10",
                "db.default.svc.cluster.local. 5 IN A 10.244.0.11",
            ]),
        ),
        ("db-0.db.default.svc.cluster.local", A, answer(&["db-0.db.default.svc.cluster.local. 5 IN A 10.244.0.10"])),
        ("DB-0.db.default.svc.cluster.local", A, answer(&["DB-0.db.default.svc.cluster.local. 5 IN A 10.244.0.10"])),
        (
            "10-244-0-11.db.default.svc.cluster.local",
            A,
            answer(&["10-244-0-11.db.default.svc.cluster.local. 5 IN A 10.244.0.11"]),
        ),
        ("db-0.db.default.svc.cluster.local", AAAA, bare("NoData")),
        (
            "same.dup.default.svc.cluster.local",
            A,
            answer(&[
                "same.dup.default.svc.cluster.local. 5 IN A 10.244.1.1",
                "same.dup.default.svc.cluster.local. 5 IN A 10.244.1.2",
            ]),
        ),
        ("v6db.default.svc.cluster.local", AAAA, answer(&["v6db.default.svc.cluster.local. 5 IN AAAA fd00::1:5"])),
        (
            "fd00--1-5.v6db.default.svc.cluster.local",
            AAAA,
            answer(&["fd00--1-5.v6db.default.svc.cluster.local. 5 IN AAAA fd00::1:5"]),
        ),
        ("v6db.default.svc.cluster.local", A, bare("NoData")),
        // No ready endpoints: the name does not exist.
        ("empty.default.svc.cluster.local", A, bare("NxDomain")),
    ];
    for (name, qtype, want) in cases {
        assert_eq!(ask(name, qtype), want, "{name} type {qtype}");
    }
}

#[test]
fn external_name_services() {
    use rtype::*;
    assert_eq!(
        ask("ext.default.svc.cluster.local", CNAME),
        answer(&["ext.default.svc.cluster.local. 5 IN CNAME example.com."])
    );
    assert_eq!(
        ask("Ext.default.svc.cluster.local", A),
        ("chase example.com.".into(), vec!["Ext.default.svc.cluster.local. 5 IN CNAME example.com.".into()], vec![])
    );
    // A target inside the cluster is answered here, CNAME first.
    assert_eq!(
        ask("alias.default.svc.cluster.local", A),
        answer(&[
            "alias.default.svc.cluster.local. 5 IN CNAME web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. 5 IN A 10.96.0.7",
        ])
    );
    // x CNAME x is a loop and is not followed.
    assert_eq!(ask("loop.default.svc.cluster.local", A), bare("NoData"));
    assert_eq!(ask("1-2-3-4.ext.default.svc.cluster.local", A), bare("NxDomain"));
}

#[test]
fn apex_namespaces_and_special_names() {
    use rtype::*;
    assert_eq!(ask("dns-version.cluster.local", TXT), answer(&["dns-version.cluster.local. 28800 IN TXT \"1.1.0\""]));
    assert_eq!(
        ask("cluster.local", NS),
        with_extra(
            &["cluster.local. 5 IN NS kube-dns.kube-system.svc.cluster.local."],
            &["kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"]
        )
    );
    let (kind, soa, _) = ask("cluster.local", SOA);
    assert_eq!(kind, "answer");
    assert!(soa[0].starts_with("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. "), "{soa:?}");
    assert!(soa[0].ends_with(" 7200 1800 86400 5"), "{soa:?}");
    assert_eq!(ask("ns.dns.cluster.local", A), answer(&["ns.dns.cluster.local. 5 IN A 10.96.0.10"]));
    // A separate negative TTL sets the SOA minimum and (up to 300 s) the SOA's TTL.
    let mut cfg = config();
    cfg.negative_ttl = Some(600);
    let (_, soa600, _) = ask_with(&cluster(), &cfg, "cluster.local", SOA);
    assert!(soa600[0].starts_with("cluster.local. 300 IN SOA ") && soa600[0].ends_with(" 86400 600"), "{soa600:?}");
    for name in ["cluster.local", "svc.cluster.local", "pod.cluster.local", "default.svc.cluster.local"] {
        assert_eq!(ask(name, A), bare("NoData"), "{name}");
    }
    for name in ["nosuchns.svc.cluster.local", "x.cluster.local", "web.default.nothing.cluster.local"] {
        assert_eq!(ask(name, A), bare("NxDomain"), "{name}");
    }
    assert_eq!(ask("example.com", A), bare("NotOurs"));
    assert_eq!(ask("cluster.local.example.com", A), bare("NotOurs"));
}

#[test]
fn reverse_lookups() {
    use rtype::*;
    let ptr = |ip: &str| ask(&answer::reverse_name(ip.parse().unwrap()), PTR);
    assert_eq!(ptr("10.96.0.7").1, ["7.0.96.10.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local."]);
    assert_eq!(ptr("10.244.0.10").1, ["10.0.244.10.in-addr.arpa. 5 IN PTR db-0.db.default.svc.cluster.local."]);
    assert_eq!(ptr("10.244.0.5").1, ["5.0.244.10.in-addr.arpa. 5 IN PTR 10-244-0-5.web.default.svc.cluster.local."]);
    let v6 = ptr("fd00::8");
    assert_eq!(v6.1.len(), 1);
    assert!(v6.1[0].ends_with(".ip6.arpa. 5 IN PTR dual.default.svc.cluster.local."), "{v6:?}");
    // Nothing here has it: fall through to the upstream, as kubeadm's Corefile does.
    assert_eq!(ptr("10.96.99.99"), bare("NotOurs"));
    assert_eq!(ask("7.0.96.10.in-addr.arpa", A), bare("NotOurs"));
    assert_eq!(answer::reverse_address(&Name::from_dotted("0.96.10.in-addr.arpa").unwrap()), None);
}

#[test]
fn pod_records_follow_the_pods_mode() {
    let name = "10-244-0-5.default.pod.cluster.local";
    let mut cfg = config();
    let z = cluster();
    assert_eq!(
        ask_with(&z, &cfg, name, rtype::A),
        answer(&["10-244-0-5.default.pod.cluster.local. 5 IN A 10.244.0.5"])
    );
    assert_eq!(ask_with(&z, &cfg, "10-244-0-5.nosuchns.pod.cluster.local", rtype::A), bare("NxDomain"));
    assert_eq!(ask_with(&z, &cfg, "not-an-ip.default.pod.cluster.local", rtype::A), bare("NxDomain"));
    assert_eq!(
        ask_with(&z, &cfg, "fd00--5.default.pod.cluster.local", rtype::AAAA),
        answer(&["fd00--5.default.pod.cluster.local. 5 IN AAAA fd00::5"])
    );
    cfg.pods = PodMode::Verified;
    assert_eq!(ask_with(&z, &cfg, name, rtype::A), bare("NxDomain"));
    let mut z = cluster();
    z.set_pod("default", "web-1", vec![ip("10.244.0.5")]);
    assert_eq!(ask_with(&z, &cfg, name, rtype::A).0, "answer");
    assert_eq!(ask_with(&z, &cfg, "10-244-0-5.other.pod.cluster.local", rtype::A), bare("NxDomain"));
    z.set_pod("default", "web-1", vec![]);
    assert_eq!(ask_with(&z, &cfg, name, rtype::A), bare("NxDomain"));
    cfg.pods = PodMode::Disabled;
    assert_eq!(ask_with(&cluster(), &cfg, name, rtype::A), bare("NxDomain"));
}

#[test]
fn namespace_filter_and_sync_state() {
    let mut cfg = config();
    cfg.namespaces = Some(["other".to_owned()].into());
    let z = cluster();
    assert_eq!(ask_with(&z, &cfg, "web.default.svc.cluster.local", rtype::A), bare("NxDomain"));
    assert_eq!(ask_with(&z, &cfg, "web.other.svc.cluster.local", rtype::A).0, "answer");
    assert_eq!(ask_with(&z, &cfg, &answer::reverse_name(ip("10.96.0.7")), rtype::PTR), bare("NotOurs"));
    let mut z = cluster();
    z.synced = false;
    assert_eq!(ask_with(&z, &config(), "web.default.svc.cluster.local", rtype::A), bare("NotSynced"));
    assert_eq!(ask_with(&z, &config(), "example.com", rtype::A), bare("NotOurs"));
}

#[test]
fn updates_and_deletes_keep_the_reverse_index_exact() {
    let mut z = cluster();
    z.set_service("default", "web", Some(SvcModel { kind: SvcKind::ClusterIp(vec![ip("10.96.0.70")]), ports: vec![] }));
    assert!(z.services_with_ip(&ip("10.96.0.7")).is_empty());
    assert_eq!(z.services_with_ip(&ip("10.96.0.70")).len(), 1);
    z.set_service("default", "web", None);
    assert!(z.services_with_ip(&ip("10.96.0.70")).is_empty());
    z.set_slice("default", "db", "db-a", None);
    assert!(z.endpoints_with_ip(&ip("10.244.0.10")).is_empty());
    assert_eq!(ask_with(&z, &config(), "db.default.svc.cluster.local", rtype::A), bare("NxDomain"));
    z.set_namespace("other", false);
    assert_eq!(ask_with(&z, &config(), "web.other.svc.cluster.local", rtype::A), bare("NxDomain"));
}

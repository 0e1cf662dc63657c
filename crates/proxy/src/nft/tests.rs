use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use api::net::IpFamily;

use super::render::{self, Chain, Config, Kind, Map, Mode};
use super::state::Table;
use crate::model::{Endpoint, Port, Protocol, Service, ServiceKey, ServiceState, Snapshot};

fn config() -> Config {
    Config {
        family: IpFamily::V4,
        node_name: "n1".into(),
        nodeport_ips: vec!["198.51.100.2".parse().unwrap()],
        cluster_cidr: Some("198.19.0.0/16".parse().unwrap()),
        service_cidr: Some("10.96.0.0/12".parse().unwrap()),
        mode: Mode::Kernel,
    }
}

fn ep(ip: &str, node: &str) -> Endpoint {
    Endpoint {
        ip: ip.parse().unwrap(),
        port: 8080,
        ready: true,
        serving: true,
        terminating: false,
        node: Some(node.into()),
    }
}

fn web(ip: &str, endpoints: Vec<Endpoint>) -> ServiceState {
    let service = Service {
        key: ServiceKey::new("default", "web"),
        cluster_ips: vec![ip.parse().unwrap()],
        external_ips: vec![],
        load_balancer_ips: vec![],
        ports: vec![Port { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port: None }],
        affinity_timeout: None,
        external_local: false,
        internal_local: false,
        health_check_node_port: None,
        source_ranges: vec![],
    };
    ServiceState { service, endpoints: BTreeMap::from([("http".to_string(), endpoints)]) }
}

fn none(_: &ServiceKey, _: &Port) -> Option<u16> {
    None
}

fn values(c: &render::Contribution, map: Map) -> Vec<String> {
    c.elements
        .iter()
        .filter(|e| e.map == map)
        .map(|e| match &e.value {
            Some(v) => format!("{} : {v}", e.key),
            None => e.key.clone(),
        })
        .collect()
}

#[test]
fn a_cluster_ip_is_one_verdict_and_one_slot_per_endpoint() {
    let s = web("10.96.0.20", vec![ep("198.19.1.5", "n1"), ep("198.19.2.5", "n2")]);
    let c = render::contribution(&s, &config(), &|_| None, None);
    assert_eq!(values(&c, Map::ServiceIps), ["10.96.0.20 . tcp . 80 : goto cluster-2"]);
    assert_eq!(values(&c, Map::ServiceEndpoints(0)), ["10.96.0.20 . tcp . 80 : 198.19.1.5 . 8080"]);
    assert_eq!(values(&c, Map::ServiceEndpoints(1)), ["10.96.0.20 . tcp . 80 : 198.19.2.5 . 8080"]);
    assert_eq!(values(&c, Map::ClusterIps), ["10.96.0.20"]);
    assert_eq!(values(&c, Map::Hairpin), ["198.19.1.5 . 198.19.1.5"], "only the local endpoint");
    assert_eq!(
        c.chains,
        BTreeSet::from([
            Chain::Slot { nodeport: false, slot: 0 },
            Chain::Slot { nodeport: false, slot: 1 },
            Chain::Pick { kind: Kind::Cluster, count: 2, affinity: false }
        ])
    );
}

#[test]
fn a_service_without_endpoints_is_rejected_and_has_no_dispatch() {
    let c = render::contribution(&web("10.96.0.20", vec![]), &config(), &|_| None, None);
    assert_eq!(values(&c, Map::NoEndpointServices), ["10.96.0.20 . tcp . 80 : goto reject-chain"]);
    assert!(values(&c, Map::ServiceIps).is_empty());
}

#[test]
fn internal_local_without_local_endpoints_drops() {
    let mut s = web("10.96.0.20", vec![ep("198.19.2.5", "n2")]);
    s.service.internal_local = true;
    let c = render::contribution(&s, &config(), &|_| None, None);
    assert_eq!(values(&c, Map::NoEndpointServices), ["10.96.0.20 . tcp . 80 : drop"]);
}

#[test]
fn node_ports_external_ips_affinity_and_source_ranges() {
    let mut s = web("10.96.0.20", vec![ep("198.19.1.5", "n1"), ep("198.19.2.5", "n2")]);
    s.service.ports[0].node_port = Some(30080);
    s.service.external_ips = vec!["198.51.100.7".parse().unwrap()];
    s.service.load_balancer_ips = vec!["198.51.100.200".parse().unwrap()];
    s.service.source_ranges = vec!["198.51.100.0/28".parse().unwrap()];
    s.service.affinity_timeout = Some(60);
    s.service.external_local = true;
    let c = render::contribution(&s, &config(), &|_| None, None);
    assert_eq!(values(&c, Map::ServiceNodePorts), ["tcp . 30080 : goto nodeport-local-1-affinity"]);
    assert_eq!(values(&c, Map::NodePortEndpoints(0)), ["tcp . 30080 : 198.19.1.5 . 8080"]);
    assert!(values(&c, Map::ServiceIps).contains(&"198.51.100.200 . tcp . 80 : goto external-local-1-affinity".into()));
    assert!(values(&c, Map::ServiceIps).contains(&"10.96.0.20 . tcp . 80 : goto cluster-2-affinity".into()));
    assert_eq!(values(&c, Map::FirewallIps), ["198.51.100.200 . tcp . 80"]);
    assert_eq!(values(&c, Map::FirewallAllow), ["198.51.100.200 . tcp . 80 . 198.51.100.0/28"]);
    assert!(values(&c, Map::AffinityServices).contains(&"198.51.100.2 . tcp . 30080 : goto affinity-60".into()));
    assert!(c.chains.contains(&Chain::AffinityRecord(60)));
}

#[test]
fn pick_chains_pick_by_slot_and_masquerade_by_kind() {
    let c = config();
    let rules = Chain::Pick { kind: Kind::Cluster, count: 3, affinity: false }.rules(&c);
    assert_eq!(
        rules,
        [
            "ip saddr != 198.19.0.0/16 jump mark-for-masquerade",
            "numgen random mod 3 vmap { 0 : goto service-slot-0, 1 : goto service-slot-1, 2 : goto service-slot-2 }"
        ]
    );
    let rules = Chain::Pick { kind: Kind::NodePort, count: 1, affinity: true }.rules(&c);
    assert_eq!(rules[0], "jump mark-for-masquerade");
    assert!(rules[1].contains("map @affinity"));
    assert_eq!(rules[2], "numgen random mod 1 vmap { 0 : goto nodeport-slot-0 }");
    let slot = Chain::Slot { nodeport: true, slot: 0 }.rules(&c);
    assert_eq!(slot, ["dnat to meta l4proto . th dport map @nodeport-endpoints-0"]);
}

fn snapshot(states: Vec<ServiceState>) -> Snapshot {
    states.into_iter().map(|s| (s.service.key.clone(), Arc::new(s))).collect()
}

#[test]
fn a_partial_sync_sends_only_changed_elements() {
    let mut t = Table::new(config());
    let snap = snapshot(vec![web("10.96.0.20", vec![ep("198.19.1.5", "n1"), ep("198.19.2.5", "n2")])]);
    let full = t.full(&snap, &none);
    assert!(full.contains("delete table ip portico"));
    assert!(full.contains("chain cluster-2 {"));

    let key = ServiceKey::new("default", "web");
    assert_eq!(t.partial(&snap, [&key], &none), "", "no change, no transaction");

    let snap =
        snapshot(vec![web("10.96.0.20", vec![ep("198.19.1.5", "n1"), ep("198.19.2.5", "n2"), ep("198.19.3.5", "n3")])]);
    let text = t.partial(&snap, [&key], &none);
    assert!(!text.contains("table ip portico {"), "no table rewrite:\n{text}");
    assert!(text.contains("add chain ip portico cluster-3"), "{text}");
    assert!(text.contains("delete element ip portico service-ips { 10.96.0.20 . tcp . 80 }"), "{text}");
    assert!(text.contains("add element ip portico service-ips { 10.96.0.20 . tcp . 80 : goto cluster-3 }"), "{text}");
    assert!(text.contains("add map ip portico service-endpoints-2 {"), "{text}");
    assert!(text.contains("add chain ip portico service-slot-2"), "{text}");
    assert!(text.contains("add element ip portico service-endpoints-2 { 10.96.0.20 . tcp . 80 : 198.19.3.5 . 8080 }"));
    assert!(!text.contains("cluster-ips"), "the ClusterIP did not change:\n{text}");

    // Back to two endpoints: the chain exists, so only elements move.
    let snap = snapshot(vec![web("10.96.0.20", vec![ep("198.19.1.5", "n1"), ep("198.19.2.5", "n2")])]);
    let text = t.partial(&snap, [&key], &none);
    assert!(!text.contains("add chain"), "{text}");
    assert!(text.contains("delete element ip portico service-endpoints-2 { 10.96.0.20 . tcp . 80 }"), "{text}");
}

#[test]
fn shared_elements_stay_while_any_service_needs_them() {
    let mut t = Table::new(config());
    let mut a = web("10.96.0.20", vec![ep("198.19.1.5", "n1")]);
    let mut b = web("10.96.0.21", vec![ep("198.19.1.5", "n1")]);
    b.service.key = ServiceKey::new("default", "other");
    a.service.key = ServiceKey::new("default", "web");
    let snap = snapshot(vec![a.clone(), b.clone()]);
    t.full(&snap, &none);
    let only_b = snapshot(vec![b]);
    let text = t.partial(&only_b, [&a.service.key], &none);
    assert!(!text.contains("hairpin"), "the other Service still has the endpoint:\n{text}");
    assert!(text.contains("delete element ip portico cluster-ips { 10.96.0.20 }"), "{text}");
}

#[test]
fn userspace_mode_redirects_to_the_proxy_port() {
    let mut c = config();
    c.mode = Mode::Userspace;
    let s = web("10.96.0.20", vec![ep("198.19.1.5", "n1")]);
    let out = render::contribution(&s, &c, &|_| Some(40001), None);
    assert_eq!(values(&out, Map::ServiceIps), ["10.96.0.20 . tcp . 80 : goto userspace-redirect"]);
    assert_eq!(values(&out, Map::UserspaceTcp), ["10.96.0.20 . 80 : 40001"]);
    assert!(values(&out, Map::ServiceEndpoints(0)).is_empty());
}

#[test]
fn a_changed_endpoint_keeps_the_other_endpoints_in_their_slots() {
    let mut t = Table::new(config());
    let eps =
        |third: &str| vec![ep("198.19.1.5", "n2"), ep("198.19.2.5", "n2"), ep(third, "n2"), ep("198.19.4.5", "n2")];
    t.full(&snapshot(vec![web("10.96.0.20", eps("198.19.3.5"))]), &none);
    let key = ServiceKey::new("default", "web");
    // The replacement sorts first, yet only its own slot changes.
    let text = t.partial(&snapshot(vec![web("10.96.0.20", eps("198.19.0.9"))]), [&key], &none);
    let changed: Vec<&str> = text.lines().collect();
    assert_eq!(
        changed,
        [
            "delete element ip portico service-endpoints-2 { 10.96.0.20 . tcp . 80 }",
            "add element ip portico service-endpoints-2 { 10.96.0.20 . tcp . 80 : 198.19.0.9 . 8080 }"
        ]
    );
}

#[test]
fn affinity_records_of_removed_endpoints_are_purged() {
    let listing = "table ip portico {\n\tmap affinity {\n\t\ttype ipv4_addr . ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service\n\
        \t\tsize 1048576\n\t\tflags dynamic,timeout\n\t\ttimeout 3h\n\
        \t\telements = { 198.51.100.3 . 10.96.0.20 . tcp . 80 timeout 10m expires 9m58s : 198.19.1.5 . 8080,\n\
        \t\t\t     198.51.100.4 . 10.96.0.20 . tcp . 80 expires 9m : 198.19.2.5 . 8080 }\n\t}\n}\n";
    let text = render::purge_affinity(&config(), listing, &["198.19.2.5 . 8080".to_string()]);
    assert_eq!(text, "delete element ip portico affinity { 198.51.100.4 . 10.96.0.20 . tcp . 80 }\n");
    assert_eq!(render::purge_affinity(&config(), listing, &["198.19.9.9 . 8080".to_string()]), "");
}

#[test]
fn endpoints_leaving_an_affinity_service_are_reported() {
    let mut t = Table::new(config());
    let mut s = web("10.96.0.20", vec![ep("198.19.1.5", "n2"), ep("198.19.2.5", "n2")]);
    s.service.affinity_timeout = Some(600);
    t.full(&snapshot(vec![s.clone()]), &none);
    s.endpoints.insert("http".into(), vec![ep("198.19.1.5", "n2")]);
    t.partial(&snapshot(vec![s]), [&ServiceKey::new("default", "web")], &none);
    assert_eq!(t.take_stale_affinity(), ["198.19.2.5 . 8080"]);
    assert!(t.take_stale_affinity().is_empty());
}

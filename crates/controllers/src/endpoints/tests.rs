use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, PodCondition, PodIP,
    PodSpec, PodStatus, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn port(name: &str, port: i32, target: IntOrString) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port,
        protocol: Some("TCP".to_owned()),
        target_port: Some(target),
        ..ServicePort::default()
    }
}

fn service(ports: Vec<ServicePort>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("web".to_owned()),
            namespace: Some("ns".to_owned()),
            labels: Some(labels(&[("app", "web")])),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(labels(&[("app", "web")])),
            cluster_ip: Some("10.96.0.10".to_owned()),
            ip_families: Some(vec!["IPv4".to_owned()]),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn http_service() -> Service {
    service(vec![port("http", 80, IntOrString::Int(8080))])
}

fn pod(name: &str, ip: &str, ready: bool) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("ns".to_owned()),
            uid: Some(format!("uid-{name}")),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-a".to_owned()),
            containers: vec![Container { name: "app".to_owned(), ..Container::default() }],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".to_owned()),
            pod_ip: (!ip.is_empty()).then(|| ip.to_owned()),
            pod_ips: (!ip.is_empty()).then(|| vec![PodIP { ip: ip.to_owned() }]),
            conditions: Some(vec![PodCondition {
                type_: "Ready".to_owned(),
                status: if ready { "True" } else { "False" }.to_owned(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

fn with_named_port(mut pod: Pod, name: &str, number: i32) -> Pod {
    pod.spec.as_mut().unwrap().containers[0].ports = Some(vec![ContainerPort {
        name: Some(name.to_owned()),
        container_port: number,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }]);
    pod
}

fn terminating(mut pod: Pod) -> Pod {
    pod.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
    pod
}

fn ips(list: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
    list.iter().flatten().map(|a| a.ip.as_str()).collect()
}

/// (ready IPs, not-ready IPs, port numbers) per subset.
fn shape(endpoints: &Endpoints) -> Vec<(Vec<&str>, Vec<&str>, Vec<i32>)> {
    endpoints
        .subsets
        .iter()
        .flatten()
        .map(|s| (ips(&s.addresses), ips(&s.not_ready_addresses), s.ports.iter().flatten().map(|p| p.port).collect()))
        .collect()
}

type Shape = Vec<(Vec<&'static str>, Vec<&'static str>, Vec<i32>)>;

#[test]
fn subsets_follow_pod_readiness_and_the_service() {
    let publish = {
        let mut s = http_service();
        s.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        s
    };
    let named = service(vec![port("http", 80, IntOrString::String("web".to_owned()))]);
    let mut failed = pod("failed", "10.0.0.9", true);
    failed.status.as_mut().unwrap().phase = Some("Failed".to_owned());
    let cases: Vec<(&str, Service, Vec<Pod>, Shape)> = vec![
        (
            "ready pods go to addresses and unready pods to notReadyAddresses",
            http_service(),
            vec![pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", false)],
            vec![(vec!["10.0.0.1"], vec!["10.0.0.2"], vec![8080])],
        ),
        (
            "publishNotReadyAddresses puts every pod in addresses",
            publish.clone(),
            vec![pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", false)],
            vec![(vec!["10.0.0.1", "10.0.0.2"], vec![], vec![8080])],
        ),
        (
            "terminating pods are left out",
            http_service(),
            vec![pod("a", "10.0.0.1", true), terminating(pod("b", "10.0.0.2", true))],
            vec![(vec!["10.0.0.1"], vec![], vec![8080])],
        ),
        (
            "terminating pods stay when publishNotReadyAddresses is set",
            publish,
            vec![terminating(pod("b", "10.0.0.2", false))],
            vec![(vec!["10.0.0.2"], vec![], vec![8080])],
        ),
        (
            "pods without an IP and terminal pods are skipped",
            http_service(),
            vec![pod("a", "", true), failed, pod("c", "10.0.0.3", true)],
            vec![(vec!["10.0.0.3"], vec![], vec![8080])],
        ),
        (
            "named target ports resolve per pod and pods lacking the port are skipped",
            named,
            vec![
                with_named_port(pod("a", "10.0.0.1", true), "web", 8080),
                with_named_port(pod("b", "10.0.0.2", true), "web", 9090),
                pod("c", "10.0.0.3", true),
            ],
            vec![(vec!["10.0.0.1"], vec![], vec![8080]), (vec!["10.0.0.2"], vec![], vec![9090])],
        ),
        (
            "pods with the same ports share one sorted subset",
            http_service(),
            vec![pod("c", "10.0.0.3", true), pod("a", "10.0.0.1", false), pod("b", "10.0.0.2", true)],
            vec![(vec!["10.0.0.2", "10.0.0.3"], vec!["10.0.0.1"], vec![8080])],
        ),
        ("a service whose pods are all gone has no subsets", http_service(), vec![], vec![]),
    ];
    for (name, service, pods, want) in cases {
        let got = desired_endpoints(&service, &pods, None).expect(name);
        assert_eq!(shape(&got), want, "{name}");
    }
}

#[test]
fn services_without_selector_or_of_type_external_name_get_no_endpoints() {
    let mut selectorless = http_service();
    selectorless.spec.as_mut().unwrap().selector = None;
    let mut empty_selector = http_service();
    empty_selector.spec.as_mut().unwrap().selector = Some(BTreeMap::new());
    let mut external = http_service();
    external.spec.as_mut().unwrap().type_ = Some("ExternalName".to_owned());
    for (name, service) in
        [("no selector", selectorless), ("empty selector", empty_selector), ("ExternalName", external)]
    {
        assert!(desired_endpoints(&service, &[pod("a", "10.0.0.1", true)], None).is_none(), "{name}");
    }
}

#[test]
fn an_address_carries_node_target_and_hostname_and_ports_carry_service_fields() {
    let mut svc = http_service();
    svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].app_protocol = Some("http".to_owned());
    let mut p = pod("a", "10.0.0.1", true);
    let spec = p.spec.as_mut().unwrap();
    spec.hostname = Some("a".to_owned());
    spec.subdomain = Some("web".to_owned());
    let got = desired_endpoints(&svc, &[p], None).unwrap();
    let subset = &got.subsets.as_ref().unwrap()[0];
    let address = &subset.addresses.as_ref().unwrap()[0];
    assert_eq!(address.hostname.as_deref(), Some("a"));
    assert_eq!(address.node_name.as_deref(), Some("node-a"));
    let target = address.target_ref.as_ref().unwrap();
    assert_eq!(
        (target.kind.as_deref(), target.name.as_deref(), target.uid.as_deref()),
        (Some("Pod"), Some("a"), Some("uid-a"))
    );
    assert_eq!(
        subset.ports.as_ref().unwrap()[0],
        EndpointPort {
            name: Some("http".to_owned()),
            port: 8080,
            protocol: Some("TCP".to_owned()),
            app_protocol: Some("http".to_owned())
        }
    );
    assert_eq!(got.metadata.name.as_deref(), Some("web"));
    assert_eq!(got.metadata.namespace.as_deref(), Some("ns"));
}

#[test]
fn the_pod_ip_of_the_service_family_is_used() {
    let mut v6 = http_service();
    v6.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".to_owned()]);
    let mut dual = pod("a", "10.0.0.1", true);
    dual.status.as_mut().unwrap().pod_ips =
        Some(vec![PodIP { ip: "10.0.0.1".to_owned() }, PodIP { ip: "fd00::1".to_owned() }]);
    let single = pod("b", "10.0.0.2", true);
    let got = desired_endpoints(&v6, &[dual, single], None).unwrap();
    assert_eq!(shape(&got), vec![(vec!["fd00::1"], vec![], vec![8080])]);
}

#[test]
fn ports_offered_by_the_same_addresses_share_a_subset() {
    let svc = service(vec![
        port("http", 80, IntOrString::String("web".to_owned())),
        port("metrics", 9100, IntOrString::Int(9100)),
    ]);
    let pods = vec![
        with_named_port(pod("a", "10.0.0.1", true), "web", 8080),
        with_named_port(pod("b", "10.0.0.2", true), "web", 8080),
        pod("c", "10.0.0.3", true),
    ];
    let got = desired_endpoints(&svc, &pods, None).unwrap();
    assert_eq!(
        shape(&got),
        vec![
            (vec!["10.0.0.1", "10.0.0.2"], vec![], vec![8080]),
            (vec!["10.0.0.1", "10.0.0.2", "10.0.0.3"], vec![], vec![9100])
        ]
    );
    let both = vec![
        with_named_port(pod("a", "10.0.0.1", true), "web", 8080),
        with_named_port(pod("b", "10.0.0.2", true), "web", 8080),
    ];
    let got = desired_endpoints(&svc, &both, None).unwrap();
    assert_eq!(shape(&got), vec![(vec!["10.0.0.1", "10.0.0.2"], vec![], vec![8080, 9100])]);
}

#[test]
fn headless_services_get_the_headless_label_and_may_go_without_ports() {
    let mut headless = service(vec![]);
    headless.spec.as_mut().unwrap().cluster_ip = Some("None".to_owned());
    let got = desired_endpoints(&headless, &[pod("a", "10.0.0.1", true)], None).unwrap();
    assert_eq!(got.metadata.labels, Some(labels(&[("app", "web"), (HEADLESS_LABEL, "")])));
    assert_eq!(shape(&got), vec![(vec!["10.0.0.1"], vec![], vec![])]);

    let mut portless = service(vec![]);
    portless.metadata.labels.as_mut().unwrap().insert(HEADLESS_LABEL.to_owned(), String::new());
    let got = desired_endpoints(&portless, &[pod("a", "10.0.0.1", true)], None).unwrap();
    assert_eq!(got.metadata.labels, Some(labels(&[("app", "web")])), "a cluster IP drops the headless label");
    assert_eq!(shape(&got), vec![], "non-headless services without ports get no subsets");
}

fn many_pods(prefix: &str, count: usize, ready: bool) -> Vec<Pod> {
    (0..count)
        .map(|i| pod(&format!("{prefix}{i}"), &format!("10.{}.{}.{}", u8::from(ready), i / 256, i % 256), ready))
        .collect()
}

#[test]
fn over_capacity_endpoints_are_truncated_keeping_ready_addresses_first() {
    let count = |e: &Endpoints| {
        let subsets = e.subsets.iter().flatten();
        subsets.fold((0, 0), |(r, n), s| {
            (r + s.addresses.as_ref().map_or(0, Vec::len), n + s.not_ready_addresses.as_ref().map_or(0, Vec::len))
        })
    };
    let annotation =
        |e: &Endpoints| e.metadata.annotations.as_ref().and_then(|a| a.get(OVER_CAPACITY_ANNOTATION)).cloned();
    type Case = (&'static str, usize, usize, (usize, usize), Option<&'static str>);
    let cases: Vec<Case> = vec![
        ("exactly 1000 addresses are kept whole", 600, 400, (600, 400), None),
        ("not-ready addresses are cut first", 700, 400, (700, 300), Some(TRUNCATED)),
        ("more than 1000 ready addresses drop every not-ready one", 1100, 50, (1000, 0), Some(TRUNCATED)),
    ];
    for (name, ready, not_ready, want, want_annotation) in cases {
        let mut pods = many_pods("r", ready, true);
        pods.extend(many_pods("n", not_ready, false));
        let got = desired_endpoints(&http_service(), &pods, None).unwrap();
        assert_eq!(count(&got), want, "{name}");
        assert_eq!(annotation(&got).as_deref(), want_annotation, "{name}");
    }
}

#[test]
fn truncation_shares_capacity_between_subsets_in_proportion() {
    let subset = |n: usize, port: i32| EndpointSubset {
        addresses: Some(
            (0..n).map(|i| EndpointAddress { ip: format!("10.0.{port}.{i}"), ..Default::default() }).collect(),
        ),
        not_ready_addresses: None,
        ports: Some(vec![EndpointPort { port, ..Default::default() }]),
    };
    let mut subsets = vec![subset(900, 1), subset(300, 2)];
    assert!(truncate_subsets(&mut subsets));
    let sizes: Vec<usize> = subsets.iter().map(|s| s.addresses.as_ref().map_or(0, Vec::len)).collect();
    assert_eq!(sizes, vec![750, 250]);
}

#[test]
fn trigger_time_is_annotated_but_alone_never_forces_an_update() {
    let pods = vec![pod("a", "10.0.0.1", true)];
    let first = desired_endpoints(&http_service(), &pods, Some("2026-01-01T00:00:00Z")).unwrap();
    assert_eq!(
        first
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LAST_CHANGE_TRIGGER_TIME_ANNOTATION))
            .map(String::as_str),
        Some("2026-01-01T00:00:00Z")
    );
    let later = desired_endpoints(&http_service(), &pods, Some("2026-01-02T00:00:00Z")).unwrap();
    let without = desired_endpoints(&http_service(), &pods, None).unwrap();
    assert!(!needs_update(&first, &later));
    assert!(!needs_update(&first, &without));
}

#[test]
fn needs_update_detects_real_changes_only() {
    let svc = http_service();
    let base = desired_endpoints(&svc, &[pod("a", "10.0.0.1", true)], None).unwrap();
    let mut relabelled_svc = http_service();
    relabelled_svc.metadata.labels.as_mut().unwrap().insert("tier".to_owned(), "front".to_owned());
    let mut stale_rv = base.clone();
    stale_rv.subsets.as_mut().unwrap()[0].addresses.as_mut().unwrap()[0]
        .target_ref
        .as_mut()
        .unwrap()
        .resource_version = Some("42".to_owned());
    let mut empty_lists = base.clone();
    empty_lists.subsets.as_mut().unwrap()[0].not_ready_addresses = Some(vec![]);
    let mut stale_capacity = base.clone();
    stale_capacity.metadata.annotations = Some(labels(&[(OVER_CAPACITY_ANNOTATION, TRUNCATED)]));
    let mut headless_label = base.clone();
    headless_label.metadata.labels.as_mut().unwrap().insert(HEADLESS_LABEL.to_owned(), String::new());
    let cases: Vec<(&str, Endpoints, Endpoints, bool)> = vec![
        ("identical objects need nothing", base.clone(), base.clone(), false),
        (
            "a pod turning unready is an update",
            base.clone(),
            desired_endpoints(&svc, &[pod("a", "10.0.0.1", false)], None).unwrap(),
            true,
        ),
        (
            "a service label change is an update",
            base.clone(),
            desired_endpoints(&relabelled_svc, &[pod("a", "10.0.0.1", true)], None).unwrap(),
            true,
        ),
        ("pod resource versions are ignored", stale_rv, base.clone(), false),
        ("empty lists equal missing ones", empty_lists, base.clone(), false),
        ("a stale over-capacity annotation is an update", stale_capacity, base.clone(), true),
        ("the headless label alone is ignored as upstream", headless_label, base.clone(), false),
    ];
    for (name, current, desired, want) in cases {
        assert_eq!(needs_update(&current, &desired), want, "{name}");
    }
}

#[test]
fn repacking_prefers_ready_and_dedupes_addresses() {
    let address = |ip: &str| EndpointAddress { ip: ip.to_owned(), ..Default::default() };
    let p = |port| Some(vec![EndpointPort { port, ..Default::default() }]);
    let input = vec![
        EndpointSubset { addresses: None, not_ready_addresses: Some(vec![address("10.0.0.2")]), ports: p(80) },
        EndpointSubset { addresses: Some(vec![address("10.0.0.2")]), not_ready_addresses: None, ports: p(80) },
        EndpointSubset { addresses: Some(vec![address("10.0.0.1")]), not_ready_addresses: None, ports: p(80) },
    ];
    let got = repack_subsets(input);
    assert_eq!(got.len(), 1);
    assert_eq!(ips(&got[0].addresses), vec!["10.0.0.1", "10.0.0.2"]);
    assert_eq!(got[0].not_ready_addresses, None);
}

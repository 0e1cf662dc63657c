use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Pod, PodCondition, PodIP, PodSpec, PodStatus, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;

const NS: &str = "default";

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn service(name: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            uid: Some(format!("{name}-uid")),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: labels(&[("app", "web")]),
            cluster_ip: Some("10.96.0.10".into()),
            ip_families: Some(vec!["IPv4".into()]),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::Int(8080)),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(name: &str, ips: &[&str]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            uid: Some(format!("{name}-uid")),
            labels: labels(&[("app", "web")]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-a".into()),
            containers: vec![Container { name: "main".into(), ..Default::default() }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: ips.first().map(|ip| ip.to_string()),
            pod_ips: Some(ips.iter().map(|ip| PodIP { ip: ip.to_string() }).collect()),
            conditions: Some(vec![PodCondition { type_: "Ready".into(), status: "True".into(), ..Default::default() }]),
            ..Default::default()
        }),
    }
}

fn unready(mut p: Pod) -> Pod {
    p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
    p
}

fn terminating(mut p: Pod) -> Pod {
    p.metadata.deletion_timestamp = Some(Time("2025-01-01T00:00:00Z".parse().unwrap()));
    p
}

fn zones() -> BTreeMap<String, String> {
    [("node-a".to_string(), "zone-a".to_string())].into()
}

fn plan(svc: &Service, pods: &[Pod], existing: &[EndpointSlice], max: usize) -> Plan {
    let zones = zones();
    reconcile(&Input {
        service: svc,
        pods,
        existing,
        node_zones: &zones,
        max_endpoints_per_slice: max,
        trigger_time: Some("2025-01-01T00:00:00Z"),
    })
}

/// Applies a plan the way the apiserver would: names for creates, replace updates, drop deletes.
fn apply(existing: &[EndpointSlice], plan: &Plan, counter: &mut usize) -> Vec<EndpointSlice> {
    let deleted: BTreeSet<_> = plan.delete.iter().map(|s| s.metadata.name.clone().unwrap()).collect();
    let mut out: Vec<EndpointSlice> = existing
        .iter()
        .filter(|s| !deleted.contains(s.metadata.name.as_ref().unwrap()))
        .map(|s| plan.update.iter().find(|u| u.metadata.name == s.metadata.name).unwrap_or(s).clone())
        .collect();
    for update in &plan.update {
        assert!(existing.iter().any(|s| s.metadata.name == update.metadata.name), "update of an unknown slice");
    }
    for created in &plan.create {
        assert!(created.metadata.name.is_none());
        *counter += 1;
        let mut s = created.clone();
        s.metadata.name = Some(format!("{}{counter:05}", s.metadata.generate_name.as_deref().unwrap()));
        out.push(s);
    }
    out
}

/// Reconciles from scratch and applies the result.
fn converge(svc: &Service, pods: &[Pod], max: usize) -> Vec<EndpointSlice> {
    apply(&[], &plan(svc, pods, &[], max), &mut 0)
}

fn endpoints(slices: &[EndpointSlice]) -> Vec<&Endpoint> {
    slices.iter().flat_map(|s| &s.endpoints).collect()
}

fn endpoint_of<'a>(slices: &'a [EndpointSlice], pod: &str) -> Option<&'a Endpoint> {
    endpoints(slices).into_iter().find(|e| e.target_ref.as_ref().unwrap().name.as_deref() == Some(pod))
}

fn conditions(e: &Endpoint) -> (bool, bool, bool) {
    let c = e.conditions.clone().unwrap();
    (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
}

fn port_numbers(slice: &EndpointSlice) -> Vec<i32> {
    slice.ports.iter().flatten().map(|p| p.port.unwrap()).collect()
}

#[test]
fn pod_conditions_map_to_ready_serving_and_terminating() {
    // (case, pod, publishNotReadyAddresses, expected (ready, serving, terminating))
    let cases = [
        ("ready pod is ready", pod("p", &["10.0.0.1"]), false, (true, true, false)),
        ("unready pod is not ready in slice", unready(pod("p", &["10.0.0.1"])), false, (false, false, false)),
        ("terminating ready pod is kept serving", terminating(pod("p", &["10.0.0.1"])), false, (false, true, true)),
        ("terminating unready pod is kept", terminating(unready(pod("p", &["10.0.0.1"]))), false, (false, false, true)),
        ("publishNotReadyAddresses makes unready ready", unready(pod("p", &["10.0.0.1"])), true, (true, false, false)),
        (
            "publishNotReadyAddresses keeps terminating ready",
            terminating(pod("p", &["10.0.0.1"])),
            true,
            (true, true, true),
        ),
    ];
    for (case, p, publish, want) in cases {
        let mut svc = service("web");
        svc.spec.as_mut().unwrap().publish_not_ready_addresses = Some(publish);
        let slices = converge(&svc, &[p], 100);
        let e = endpoint_of(&slices, "p").unwrap_or_else(|| panic!("{case}: pod missing"));
        assert_eq!(conditions(e), want, "{case}");
    }
}

#[test]
fn pods_without_an_ip_or_in_a_terminal_phase_are_skipped() {
    let mut no_ip = pod("p", &[]);
    no_ip.status.as_mut().unwrap().pod_ip = None;
    let phase = |phase: &str| {
        let mut p = pod("p", &["10.0.0.1"]);
        p.status.as_mut().unwrap().phase = Some(phase.into());
        p
    };
    let cases = [
        ("no IP", no_ip, false),
        ("Failed", phase("Failed"), false),
        ("Succeeded", phase("Succeeded"), false),
        ("Pending with an IP", phase("Pending"), true),
        ("no status at all", Pod { status: None, ..pod("p", &["10.0.0.1"]) }, false),
    ];
    for (case, p, listed) in cases {
        let slices = converge(&service("web"), &[p], 100);
        assert_eq!(endpoint_of(&slices, "p").is_some(), listed, "{case}");
    }
}

#[test]
fn named_target_port_resolves_per_pod_and_a_pod_lacking_the_name_is_left_out_of_that_port_group() {
    let mut svc = service("web");
    svc.spec.as_mut().unwrap().ports = Some(vec![
        ServicePort {
            name: Some("http".into()),
            port: 80,
            target_port: Some(IntOrString::String("web".into())),
            ..Default::default()
        },
        ServicePort { name: Some("metrics".into()), port: 9090, ..Default::default() },
    ]);
    let with_port = |name: &str, ip: &str, port: i32| {
        let mut p = pod(name, &[ip]);
        p.spec.as_mut().unwrap().containers[0].ports =
            Some(vec![ContainerPort { name: Some("web".into()), container_port: port, ..Default::default() }]);
        p
    };
    let mut udp = with_port("udp", "10.0.0.5", 8080);
    udp.spec.as_mut().unwrap().containers[0].ports.as_mut().unwrap()[0].protocol = Some("UDP".into());
    let pods = [
        with_port("a", "10.0.0.1", 8080),
        with_port("b", "10.0.0.2", 8080),
        with_port("c", "10.0.0.3", 9000),
        pod("lacking", &["10.0.0.4"]),
        udp,
    ];
    let slices = converge(&svc, &pods, 100);
    let group = |pod: &str| {
        let slice = slices
            .iter()
            .find(|s| s.endpoints.iter().any(|e| e.target_ref.as_ref().unwrap().name.as_deref() == Some(pod)));
        port_numbers(slice.unwrap_or_else(|| panic!("{pod} missing")))
    };
    assert_eq!(slices.len(), 3, "one slice per resolved port set");
    assert_eq!(group("a"), vec![8080, 9090]);
    assert_eq!(group("b"), vec![8080, 9090]);
    assert_eq!(group("c"), vec![9000, 9090], "ports are kept in a canonical (name) order");
    assert_eq!(group("lacking"), vec![9090], "the named port is dropped for a pod without it");
    assert_eq!(group("udp"), vec![9090], "a named port of another protocol does not match");
}

#[test]
fn more_than_max_endpoints_are_split_into_slices_of_at_most_max() {
    // (pods, max, expected slice sizes)
    let cases = [(250, 100, vec![100, 100, 50]), (100, 100, vec![100]), (7, 3, vec![3, 3, 1]), (3, 0, vec![1, 1, 1])];
    for (n, max, want) in cases {
        let pods: Vec<Pod> =
            (0..n).map(|i| pod(&format!("p{i}"), &[&format!("10.1.{}.{}", i / 250, i % 250)])).collect();
        let slices = converge(&service("web"), &pods, max);
        let mut sizes: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
        sizes.sort_by(|a, b| b.cmp(a));
        assert_eq!(sizes, want, "{n} pods, max {max}");
        assert!(plan(&service("web"), &pods, &slices, max).is_empty(), "{n} pods, max {max}: not idempotent");
    }
}

#[test]
fn slices_carry_labels_owner_and_metadata_like_upstream() {
    let mut svc = service("web");
    svc.metadata.labels = labels(&[("team", "a"), (LABEL_MANAGED_BY, "someone-else"), (LABEL_HEADLESS, "x")]);
    let slices = converge(&svc, &[pod("p", &["10.0.0.1"])], 100);
    let [slice] = &slices[..] else { panic!("want one slice, got {}", slices.len()) };
    assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(slice.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(
        slice.metadata.labels,
        labels(&[("team", "a"), (LABEL_MANAGED_BY, CONTROLLER_NAME), (LABEL_SERVICE_NAME, "web")]),
        "service labels copied, reserved ones overridden, no headless label with a cluster IP"
    );
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.api_version.as_str(), owner.kind.as_str(), owner.name.as_str()), ("v1", "Service", "web"));
    assert_eq!((owner.uid.as_str(), owner.controller, owner.block_owner_deletion), ("web-uid", Some(true), Some(true)));
    assert_eq!(
        slice.metadata.annotations.as_ref().unwrap()[ANNOTATION_LAST_CHANGE_TRIGGER_TIME],
        "2025-01-01T00:00:00Z"
    );
    let e = &slice.endpoints[0];
    assert_eq!(e.addresses, vec!["10.0.0.1"]);
    assert_eq!(
        (e.node_name.as_deref(), e.zone.as_deref(), e.hostname.as_deref()),
        (Some("node-a"), Some("zone-a"), None)
    );
    let target = e.target_ref.as_ref().unwrap();
    assert_eq!(
        (target.kind.as_deref(), target.namespace.as_deref(), target.name.as_deref(), target.uid.as_deref()),
        (Some("Pod"), Some(NS), Some("p"), Some("p-uid"))
    );
    let port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port, port.protocol.as_deref()), (Some("http"), Some(8080), Some("TCP")));
}

#[test]
fn headless_service_slices_carry_the_headless_label() {
    for (case, cluster_ip, headless) in
        [("None", Some("None"), true), ("unset", None, true), ("set", Some("10.96.0.1"), false)]
    {
        let mut svc = service("web");
        svc.spec.as_mut().unwrap().cluster_ip = cluster_ip.map(Into::into);
        let slices = converge(&svc, &[pod("p", &["10.0.0.1"])], 100);
        let label = slices[0].metadata.labels.as_ref().unwrap().get(LABEL_HEADLESS);
        assert_eq!(label.map(String::as_str), headless.then_some(""), "clusterIP {case}");
    }
}

#[test]
fn headless_service_without_ports_gets_slices_without_ports() {
    let mut svc = service("web");
    svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
    svc.spec.as_mut().unwrap().ports = None;
    let slices = converge(&svc, &[pod("p", &["10.0.0.1"])], 100);
    assert_eq!(slices.len(), 1);
    assert_eq!(slices[0].ports, Some(vec![]));
    assert_eq!(slices[0].endpoints.len(), 1);
}

#[test]
fn hostname_is_set_only_when_the_pod_subdomain_is_the_service_name() {
    let cases = [
        ("hostname and matching subdomain", Some("h"), Some("web"), Some("h")),
        ("subdomain of another service", Some("h"), Some("other"), None),
        ("no subdomain", Some("h"), None, None),
        ("no hostname", None, Some("web"), None),
    ];
    for (case, hostname, subdomain, want) in cases {
        let mut p = pod("p", &["10.0.0.1"]);
        let spec = p.spec.as_mut().unwrap();
        spec.hostname = hostname.map(Into::into);
        spec.subdomain = subdomain.map(Into::into);
        let slices = converge(&service("web"), &[p], 100);
        assert_eq!(endpoint_of(&slices, "p").unwrap().hostname.as_deref(), want, "{case}");
    }
}

#[test]
fn service_without_endpoints_gets_one_empty_placeholder_slice_per_family() {
    let svc = service("web");
    let slices = converge(&svc, &[], 100);
    let [placeholder] = &slices[..] else { panic!("want one placeholder, got {}", slices.len()) };
    assert!(placeholder.endpoints.is_empty());
    assert_eq!(placeholder.ports, Some(vec![]));
    assert_eq!(placeholder.metadata.labels.as_ref().unwrap()[LABEL_SERVICE_NAME], "web");
    assert!(plan(&svc, &[], &slices, 100).is_empty(), "the placeholder is kept as is");

    // When pods show up, the placeholder is reused (updated) rather than deleted and recreated.
    let next = plan(&svc, &[pod("p", &["10.0.0.1"])], &slices, 100);
    assert!(next.create.is_empty() && next.delete.is_empty(), "{next:?}");
    assert_eq!(next.update.len(), 1);
    assert_eq!(next.update[0].metadata.name, placeholder.metadata.name);
    assert_eq!(port_numbers(&next.update[0]), vec![8080]);

    // And when they go away again, the last slice becomes the placeholder.
    let with_pod = apply(&slices, &next, &mut 10);
    let gone = plan(&svc, &[], &with_pod, 100);
    assert!(gone.create.is_empty() && gone.delete.is_empty(), "{gone:?}");
    assert!(gone.update[0].endpoints.is_empty());

    let mut dual = service("web");
    dual.spec.as_mut().unwrap().ip_families = Some(vec!["IPv4".into(), "IPv6".into()]);
    let types: Vec<_> = converge(&dual, &[], 100).into_iter().map(|s| s.address_type).collect();
    assert_eq!(types, vec!["IPv4", "IPv6"]);
}

#[test]
fn services_without_selector_or_of_type_external_name_get_nothing() {
    let mut no_selector = service("web");
    no_selector.spec.as_mut().unwrap().selector = None;
    let mut empty_selector = service("web");
    empty_selector.spec.as_mut().unwrap().selector = Some(BTreeMap::new());
    let mut external = service("web");
    external.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
    let existing = converge(&service("web"), &[pod("p", &["10.0.0.1"])], 100);
    for (case, svc) in [("no selector", no_selector), ("empty selector", empty_selector), ("ExternalName", external)] {
        assert!(plan(&svc, &[pod("p", &["10.0.0.1"])], &existing, 100).is_empty(), "{case}");
        assert!(!selects(&svc, &pod("p", &["10.0.0.1"])) || case == "ExternalName", "{case}");
    }
}

#[test]
fn selector_change_drops_pods_no_longer_selected() {
    let mut other = pod("other", &["10.0.0.2"]);
    other.metadata.labels = labels(&[("app", "web"), ("tier", "canary")]);
    let mut elsewhere = pod("elsewhere", &["10.0.0.3"]);
    elsewhere.metadata.namespace = Some("other-ns".into());
    let pods = [pod("p", &["10.0.0.1"]), other, elsewhere];
    let svc = service("web");
    let before = converge(&svc, &pods, 100);
    assert!(endpoint_of(&before, "p").is_some() && endpoint_of(&before, "other").is_some());
    assert!(endpoint_of(&before, "elsewhere").is_none(), "pods of other namespaces are never selected");

    let mut narrowed = svc.clone();
    narrowed.spec.as_mut().unwrap().selector = labels(&[("app", "web"), ("tier", "canary")]);
    let next = plan(&narrowed, &pods, &before, 100);
    assert!(next.create.is_empty() && next.delete.is_empty(), "{next:?}");
    let after = apply(&before, &next, &mut 10);
    assert!(endpoint_of(&after, "p").is_none());
    assert!(endpoint_of(&after, "other").is_some());
}

#[test]
fn dual_stack_service_gets_one_slice_per_family() {
    let mut svc = service("web");
    svc.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
    let pods =
        [pod("a", &["10.0.0.1", "fd00::1"]), pod("b", &["fd00:0:0::2", "10.0.0.2"]), pod("v4only", &["10.0.0.3"])];
    let slices = converge(&svc, &pods, 100);
    let by_family = |family: &str| -> Vec<String> {
        let family_slices: Vec<_> = slices.iter().filter(|s| s.address_type == family).collect();
        assert_eq!(family_slices.len(), 1, "{family}");
        family_slices[0].endpoints.iter().flat_map(|e| e.addresses.clone()).collect()
    };
    assert_eq!(by_family("IPv4"), vec!["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    assert_eq!(by_family("IPv6"), vec!["fd00::1", "fd00::2"], "addresses are normalised");

    // Going single-stack deletes the other family's slices.
    svc.spec.as_mut().unwrap().ip_families = Some(vec!["IPv4".into()]);
    let next = plan(&svc, &pods, &slices, 100);
    assert_eq!(next.delete.iter().map(|s| s.address_type.as_str()).collect::<Vec<_>>(), vec!["IPv6"]);
    assert!(next.create.is_empty() && next.update.is_empty());
}

#[test]
fn a_new_pod_fills_the_existing_slice_and_unchanged_slices_are_left_alone() {
    let svc = service("web");
    let pods: Vec<Pod> = (0..5).map(|i| pod(&format!("p{i}"), &[&format!("10.0.0.{i}")])).collect();
    let slices = converge(&svc, &pods[..3], 3); // one full slice of 3
    let next = plan(&svc, &pods, &slices, 3);
    assert_eq!((next.create.len(), next.update.len(), next.delete.len()), (1, 0, 0), "full slice untouched");

    let slices = converge(&svc, &pods[..4], 3); // 3 + 1
    let next = plan(&svc, &pods, &slices, 3);
    assert_eq!((next.create.len(), next.update.len(), next.delete.len()), (0, 1, 0), "partial slice filled");
    assert_eq!(next.update[0].endpoints.len(), 2);
    assert_eq!(
        next.update[0].metadata.annotations.as_ref().unwrap()[ANNOTATION_LAST_CHANGE_TRIGGER_TIME],
        "2025-01-01T00:00:00Z"
    );
}

#[test]
fn slices_owned_by_an_older_service_of_the_same_name_are_replaced() {
    let old = converge(&service("web"), &[pod("p", &["10.0.0.1"])], 100);
    let mut recreated = service("web");
    recreated.metadata.uid = Some("new-uid".into());
    let next = plan(&recreated, &[pod("p", &["10.0.0.1"])], &old, 100);
    assert_eq!((next.create.len(), next.update.len(), next.delete.len()), (1, 0, 1), "{next:?}");
    assert_eq!(next.create[0].metadata.owner_references.as_ref().unwrap()[0].uid, "new-uid");
}

#[test]
fn no_slices_are_created_while_the_service_is_being_deleted() {
    let mut svc = service("web");
    svc.metadata.deletion_timestamp = Some(Time("2025-01-01T00:00:00Z".parse().unwrap()));
    assert!(plan(&svc, &[pod("p", &["10.0.0.1"])], &[], 100).create.is_empty());
}

#[test]
fn trigger_time_is_formatted_like_rfc3339_nano_in_utc() {
    let cases = [
        ("2025-03-04T05:06:07Z", "2025-03-04T05:06:07Z"),
        ("2025-03-04T05:06:07.120Z", "2025-03-04T05:06:07.12Z"),
        ("2025-03-04T07:06:07.000000001+02:00", "2025-03-04T05:06:07.000000001Z"),
    ];
    for (input, want) in cases {
        assert_eq!(format_trigger_time(input.parse().unwrap()), want, "{input}");
    }
}

/// Tiny deterministic PRNG (xorshift64*) for the property-style test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_pod(rng: &mut Rng, i: usize) -> Pod {
    let ips: Vec<String> = match rng.below(4) {
        0 => vec![],
        1 => vec![format!("fd00::{:x}", i + 1)],
        2 => vec![format!("10.2.{}.{}", i / 200, i % 200), format!("fd00::{:x}", i + 1)],
        _ => vec![format!("10.2.{}.{}", i / 200, i % 200)],
    };
    let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
    let mut p = pod(&format!("p{i}"), &ips);
    if rng.below(4) == 0 {
        p = unready(p);
    }
    if rng.below(6) == 0 {
        p = terminating(p);
    }
    if rng.below(10) == 0 {
        p.status.as_mut().unwrap().phase = Some("Failed".into());
    }
    if rng.below(5) == 0 {
        p.metadata.labels = labels(&[("app", "other")]);
    }
    if rng.below(3) == 0 {
        p.spec.as_mut().unwrap().containers[0].ports = Some(vec![ContainerPort {
            name: Some("web".into()),
            container_port: 8000 + rng.below(3) as i32,
            ..Default::default()
        }]);
    }
    if rng.below(4) == 0 {
        p.spec.as_mut().unwrap().node_name = Some("node-b".into());
    }
    p
}

#[test]
fn reconciling_the_result_again_yields_an_empty_plan() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut svc = service("web");
    svc.spec.as_mut().unwrap().ports = Some(vec![
        ServicePort {
            name: Some("http".into()),
            port: 80,
            target_port: Some(IntOrString::String("web".into())),
            ..Default::default()
        },
        ServicePort {
            name: Some("admin".into()),
            port: 81,
            target_port: Some(IntOrString::Int(9000)),
            ..Default::default()
        },
    ]);
    let mut counter = 0;
    for round in 0..40 {
        // Each round mutates the Service a little and starts from the previous round's slices.
        let spec = svc.spec.as_mut().unwrap();
        spec.ip_families = Some(match rng.below(3) {
            0 => vec!["IPv4".into()],
            1 => vec!["IPv6".into()],
            _ => vec!["IPv4".into(), "IPv6".into()],
        });
        spec.publish_not_ready_addresses = Some(rng.below(4) == 0);
        let max = 1 + rng.below(12) as usize;
        let pods: Vec<Pod> = (0..rng.below(60) as usize).map(|i| random_pod(&mut rng, i)).collect();
        let mut state = Vec::new();
        for step in 0..3 {
            let pods = &pods[..pods.len() * (step + 1) / 3];
            let first = plan(&svc, pods, &state, max);
            state = apply(&state, &first, &mut counter);
            let again = plan(&svc, pods, &state, max);
            assert!(again.is_empty(), "round {round} step {step}: not idempotent: {again:?}");

            let families = svc.spec.as_ref().unwrap().ip_families.clone().unwrap();
            for slice in &state {
                assert!(slice.endpoints.len() <= max, "round {round}: slice over max");
                assert!(families.contains(&slice.address_type), "round {round}: stale family");
            }
            for family in &families {
                let want: BTreeSet<String> = pods
                    .iter()
                    .filter(|p| selects(&svc, p) && p.status.as_ref().unwrap().phase.as_deref() == Some("Running"))
                    .flat_map(|p| p.status.as_ref().unwrap().pod_ips.clone().unwrap())
                    .map(|ip| ip.ip)
                    .filter(|ip| ip.contains(':') == (family == "IPv6"))
                    .collect();
                let got: Vec<String> = state
                    .iter()
                    .filter(|s| &s.address_type == family)
                    .flat_map(|s| s.endpoints.iter().flat_map(|e| e.addresses.clone()))
                    .collect();
                assert_eq!(got.len(), want.len(), "round {round} {family}: each address exactly once");
                assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want, "round {round} {family}");
                let slices_of_family = state.iter().filter(|s| &s.address_type == family).count();
                assert!(slices_of_family >= 1, "round {round} {family}: placeholder missing");
            }
        }
    }
}

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort as CorePort, EndpointSubset, Endpoints, ObjectReference, Service, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn service(selector: Option<&[(&str, &str)]>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("ext".to_owned()),
            namespace: Some("ns".to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec { selector: selector.map(map), ..ServiceSpec::default() }),
        ..Service::default()
    }
}

fn selectorless() -> Service {
    service(None)
}

fn address(ip: &str) -> EndpointAddress {
    EndpointAddress {
        ip: ip.to_owned(),
        node_name: Some("node-a".to_owned()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".to_owned()),
            name: Some(format!("pod-{ip}")),
            ..Default::default()
        }),
        ..EndpointAddress::default()
    }
}

fn subset(ready: &[&str], not_ready: &[&str], port: i32) -> EndpointSubset {
    let list = |ips: &[&str]| (!ips.is_empty()).then(|| ips.iter().map(|ip| address(ip)).collect());
    EndpointSubset {
        addresses: list(ready),
        not_ready_addresses: list(not_ready),
        ports: Some(vec![CorePort { name: Some("http".to_owned()), port, ..CorePort::default() }]),
    }
}

fn endpoints(subsets: Vec<EndpointSubset>) -> Endpoints {
    Endpoints {
        metadata: ObjectMeta {
            name: Some("ext".to_owned()),
            namespace: Some("ns".to_owned()),
            uid: Some("ep-uid".to_owned()),
            labels: Some(map(&[("team", "db")])),
            annotations: Some(map(&[
                ("note", "kept"),
                ("endpoints.kubernetes.io/last-change-trigger-time", "2026-01-01T00:00:00Z"),
                ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
            ])),
            ..ObjectMeta::default()
        },
        subsets: Some(subsets),
    }
}

/// (address type, port numbers, [(ip, ready)]) per slice.
type Shape = Vec<(String, Vec<i32>, Vec<(String, bool)>)>;

fn shape(slices: &[EndpointSlice]) -> Shape {
    slices
        .iter()
        .map(|s| {
            (
                s.address_type.clone(),
                s.ports.iter().flatten().filter_map(|p| p.port).collect(),
                s.endpoints
                    .iter()
                    .map(|e| (e.addresses.join(","), e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false)))
                    .collect(),
            )
        })
        .collect()
}

fn owned(ips: &[(&str, bool)]) -> Vec<(String, bool)> {
    ips.iter().map(|(ip, ready)| (ip.to_string(), *ready)).collect()
}

#[test]
fn a_user_endpoints_is_mirrored_with_the_right_labels_and_conditions() {
    let ep = endpoints(vec![subset(&["10.0.0.1", "10.0.0.2"], &["10.0.0.3"], 80)]);
    let slices = desired_slices(&selectorless(), &ep);
    assert_eq!(
        shape(&slices),
        vec![("IPv4".to_owned(), vec![80], owned(&[("10.0.0.1", true), ("10.0.0.2", true), ("10.0.0.3", false)]))]
    );
    let slice = &slices[0];
    assert_eq!(slice.metadata.generate_name.as_deref(), Some("ext-"));
    assert_eq!(slice.metadata.name, None);
    assert_eq!(slice.metadata.namespace.as_deref(), Some("ns"));
    assert_eq!(
        slice.metadata.labels,
        Some(map(&[("team", "db"), (LABEL_SERVICE_NAME, "ext"), (LABEL_MANAGED_BY, CONTROLLER_NAME)]))
    );
    assert_eq!(slice.metadata.annotations, Some(map(&[("note", "kept")])), "trigger time and last-applied are dropped");
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str(), owner.controller),
        ("Endpoints", "ext", "ep-uid", Some(true))
    );
    let endpoint = &slice.endpoints[0];
    assert_eq!(endpoint.node_name.as_deref(), Some("node-a"));
    assert_eq!(endpoint.target_ref.as_ref().and_then(|t| t.name.as_deref()), Some("pod-10.0.0.1"));
    let port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port, port.protocol.as_deref()), (Some("http"), Some(80), Some("TCP")));
}

#[test]
fn slices_are_split_by_subset_and_address_family() {
    let cases: Vec<(&str, Endpoints, Shape)> = vec![
        (
            "one slice per address family",
            endpoints(vec![subset(&["10.0.0.1", "fd00::1"], &[], 80)]),
            vec![
                ("IPv4".to_owned(), vec![80], owned(&[("10.0.0.1", true)])),
                ("IPv6".to_owned(), vec![80], owned(&[("fd00::1", true)])),
            ],
        ),
        (
            "one slice per subset with distinct ports",
            endpoints(vec![subset(&["10.0.0.1"], &[], 80), subset(&["10.0.0.2"], &[], 443)]),
            vec![
                ("IPv4".to_owned(), vec![80], owned(&[("10.0.0.1", true)])),
                ("IPv4".to_owned(), vec![443], owned(&[("10.0.0.2", true)])),
            ],
        ),
        (
            "invalid IPs are skipped and IPs are restringified",
            endpoints(vec![subset(&["not-an-ip", "fd00:0:0::1"], &[], 80)]),
            vec![("IPv6".to_owned(), vec![80], owned(&[("fd00::1", true)]))],
        ),
        ("an empty Endpoints mirrors to nothing", endpoints(vec![]), vec![]),
    ];
    for (name, ep, want) in cases {
        assert_eq!(shape(&desired_slices(&selectorless(), &ep)), want, "{name}");
    }
}

#[test]
fn at_most_1000_addresses_per_subset_are_mirrored_ready_first() {
    let ready: Vec<String> = (0..900).map(|i| format!("10.0.{}.{}", i / 256, i % 256)).collect();
    let not_ready: Vec<String> = (0..300).map(|i| format!("10.1.{}.{}", i / 256, i % 256)).collect();
    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let ep = endpoints(vec![subset(&refs(&ready), &refs(&not_ready), 80)]);
    let slices = desired_slices(&selectorless(), &ep);
    assert_eq!(slices.len(), 1);
    let endpoints = &slices[0].endpoints;
    assert_eq!(endpoints.len(), MAX_ENDPOINTS_PER_SUBSET);
    let ready_count = endpoints.iter().filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true)).count();
    assert_eq!(ready_count, 900);
}

#[test]
fn only_selectorless_services_with_a_mirrorable_endpoints_are_mirrored() {
    let ep = endpoints(vec![subset(&["10.0.0.1"], &[], 80)]);
    let mut skip = ep.clone();
    skip.metadata.labels.as_mut().unwrap().insert(LABEL_SKIP_MIRROR.to_owned(), "true".to_owned());
    let mut skip_false = ep.clone();
    skip_false.metadata.labels.as_mut().unwrap().insert(LABEL_SKIP_MIRROR.to_owned(), "false".to_owned());
    let mut leader = ep.clone();
    leader
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("control-plane.alpha.kubernetes.io/leader".to_owned(), "{}".to_owned());
    let mut other_name = ep.clone();
    other_name.metadata.name = Some("other".to_owned());
    let cases: Vec<(&str, Service, Endpoints, bool)> = vec![
        ("a selectorless service is mirrored", selectorless(), ep.clone(), true),
        ("an empty selector counts as none", service(Some(&[])), ep.clone(), true),
        ("a selector service is not mirrored", service(Some(&[("app", "web")])), ep.clone(), false),
        ("skip-mirror=true is not mirrored", selectorless(), skip, false),
        ("skip-mirror=false is mirrored", selectorless(), skip_false, true),
        ("leader-election records are not mirrored", selectorless(), leader, false),
        ("an Endpoints of another name is not mirrored", selectorless(), other_name, false),
    ];
    for (name, svc, ep, want) in cases {
        assert_eq!(should_mirror(&svc, &ep), want, "{name}");
        assert_eq!(desired_slices(&svc, &ep).is_empty(), !want, "{name}");
    }
}

/// Apply a plan as the API server would: creates get a name from generateName.
fn apply(existing: &mut Vec<EndpointSlice>, plan: &MirrorPlan, counter: &mut u32) {
    let name = |s: &EndpointSlice| s.metadata.name.clone();
    existing.retain(|s| !plan.delete.iter().any(|d| name(d) == name(s)));
    for update in &plan.update {
        let slot = existing.iter_mut().find(|s| name(s) == name(update)).expect("update targets an existing slice");
        *slot = update.clone();
    }
    for create in &plan.create {
        *counter += 1;
        let mut created = create.clone();
        created.metadata.name = Some(format!("{}{counter}", create.metadata.generate_name.clone().unwrap()));
        existing.push(created);
    }
}

#[test]
fn reconciling_after_applying_the_plan_yields_an_empty_plan() {
    let svc = selectorless();
    let stages: Vec<(&str, Option<Endpoints>)> = vec![
        ("first mirror creates", Some(endpoints(vec![subset(&["10.0.0.1"], &["10.0.0.2"], 80)]))),
        ("a readiness change updates", Some(endpoints(vec![subset(&["10.0.0.1", "10.0.0.2"], &[], 80)]))),
        (
            "a new family and port",
            Some(endpoints(vec![subset(&["10.0.0.1", "fd00::1"], &[], 80), subset(&["10.0.0.3"], &[], 443)])),
        ),
        ("a port change recycles a slice", Some(endpoints(vec![subset(&["10.0.0.1"], &[], 8080)]))),
        ("the Endpoints going away deletes everything", None),
    ];
    let mut existing: Vec<EndpointSlice> = Vec::new();
    let mut counter = 0;
    for (name, ep) in stages {
        let plan = reconcile_mirrored(&svc, ep.as_ref(), &existing);
        assert!(!plan.is_empty(), "{name}: something to do");
        apply(&mut existing, &plan, &mut counter);
        let again = reconcile_mirrored(&svc, ep.as_ref(), &existing);
        assert!(again.is_empty(), "{name}: second reconcile is a no-op, got {again:?}");
        let want = ep.as_ref().map(|e| shape(&desired_slices(&svc, e))).unwrap_or_default();
        let mut got = shape(&existing);
        got.sort();
        let mut want = want;
        want.sort();
        assert_eq!(got, want, "{name}: applied state matches desired");
    }
    assert!(existing.is_empty());
}

#[test]
fn reconcile_plans_updates_in_place_and_deletes_surplus_and_unwanted_slices() {
    let svc = selectorless();
    let ep = endpoints(vec![subset(&["10.0.0.1"], &[], 80)]);
    let mut counter = 0;
    let mut existing = Vec::new();
    apply(&mut existing, &reconcile_mirrored(&svc, Some(&ep), &[]), &mut counter);
    assert_eq!(existing.len(), 1);

    // A duplicate slice for the same ports is deleted; a foreign slice is left alone.
    let mut duplicate = existing[0].clone();
    duplicate.metadata.name = Some("ext-dup".to_owned());
    let mut foreign = existing[0].clone();
    foreign.metadata.name = Some("ext-foreign".to_owned());
    foreign.metadata.labels.as_mut().unwrap().insert(LABEL_MANAGED_BY.to_owned(), "someone-else".to_owned());
    let mut other_service = existing[0].clone();
    other_service.metadata.name = Some("other-1".to_owned());
    other_service.metadata.labels.as_mut().unwrap().insert(LABEL_SERVICE_NAME.to_owned(), "other".to_owned());
    let all = vec![existing[0].clone(), duplicate, foreign, other_service];
    let plan = reconcile_mirrored(&svc, Some(&ep), &all);
    assert!(plan.create.is_empty() && plan.update.is_empty());
    assert_eq!(plan.delete.iter().map(|s| s.metadata.name.as_deref().unwrap()).collect::<Vec<_>>(), vec!["ext-dup"]);

    // A changed Endpoints updates the existing slice under its name.
    let changed = endpoints(vec![subset(&["10.0.0.1", "10.0.0.9"], &[], 80)]);
    let plan = reconcile_mirrored(&svc, Some(&changed), &existing);
    assert_eq!(plan.update.len(), 1);
    assert_eq!(plan.update[0].metadata.name, existing[0].metadata.name);
    assert!(plan.create.is_empty() && plan.delete.is_empty());

    // Labels on the Endpoints changing also update the slice.
    let mut relabelled = ep.clone();
    relabelled.metadata.labels.as_mut().unwrap().insert("tier".to_owned(), "gold".to_owned());
    assert_eq!(reconcile_mirrored(&svc, Some(&relabelled), &existing).update.len(), 1);

    let cases: Vec<(&str, Service, Option<Endpoints>)> = vec![
        ("the Endpoints is gone", svc.clone(), None),
        ("the service gained a selector", service(Some(&[("app", "web")])), Some(ep.clone())),
        ("the Endpoints is labelled skip-mirror", svc.clone(), {
            let mut e = ep.clone();
            e.metadata.labels.as_mut().unwrap().insert(LABEL_SKIP_MIRROR.to_owned(), "true".to_owned());
            Some(e)
        }),
    ];
    for (name, svc, ep) in cases {
        let plan = reconcile_mirrored(&svc, ep.as_ref(), &existing);
        assert_eq!(plan, MirrorPlan { create: vec![], update: vec![], delete: existing.clone() }, "{name}");
    }
}

#[test]
fn no_slices_are_created_for_an_endpoints_being_deleted() {
    let mut ep = endpoints(vec![subset(&["10.0.0.1"], &[], 80)]);
    ep.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
    assert!(reconcile_mirrored(&selectorless(), Some(&ep), &[]).is_empty());
}

//! Durability across crashes: objects, resourceVersions and the watch history survive a
//! SIGKILL of the server, and every acknowledged write is on disk.

mod common;

use common::Server;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::core::ObjectMeta;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn config_map(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta { name: Some(name.to_string()), ..Default::default() },
        data: Some(BTreeMap::from([("k".to_string(), name.to_string())])),
        ..Default::default()
    }
}

fn rv(obj: &ConfigMap) -> u64 {
    obj.metadata.resource_version.as_deref().expect("resourceVersion set").parse().expect("resourceVersion is a number")
}

fn uid(obj: &ConfigMap) -> String {
    obj.metadata.uid.clone().expect("uid set")
}

fn name(obj: &ConfigMap) -> String {
    obj.metadata.name.clone().expect("name set")
}

async fn create_namespace(client: &kube::Client, ns: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let obj = Namespace { metadata: ObjectMeta { name: Some(ns.into()), ..Default::default() }, ..Default::default() };
    api.create(&PostParams::default(), &obj).await.expect("create namespace");
}

/// (name -> (resourceVersion, uid, data)) of every ConfigMap in `ns`.
async fn snapshot(api: &Api<ConfigMap>) -> BTreeMap<String, (u64, String, Option<BTreeMap<String, String>>)> {
    api.list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|cm| (name(cm), (rv(cm), uid(cm), cm.data.clone())))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_objects_versions_and_uids() {
    let mut server = Server::start();
    let client = server.client().await;
    create_namespace(&client, "durable").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "durable");
    for i in 0..10 {
        api.create(&PostParams::default(), &config_map(&format!("cm-{i}"))).await.expect("create");
    }
    // An update and a delete must survive too, not only creates.
    let mut cm3 = api.get("cm-3").await.unwrap();
    cm3.data = Some(BTreeMap::from([("k".into(), "updated".into())]));
    api.replace("cm-3", &PostParams::default(), &cm3).await.expect("update");
    api.delete("cm-7", &DeleteParams::default()).await.expect("delete");

    let before = snapshot(&api).await;
    assert_eq!(before.len(), 9);
    assert_eq!(before["cm-3"].2.as_ref().unwrap()["k"], "updated");
    let ns_before = Api::<Namespace>::all(client.clone()).get("durable").await.unwrap();
    let max_before = before.values().map(|v| v.0).max().unwrap();
    let list_rv_before: u64 =
        api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap().parse().unwrap();
    assert!(list_rv_before >= max_before);

    server.kill9();
    server.spawn();
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "durable");

    let after = snapshot(&api).await;
    assert_eq!(after, before, "objects, resourceVersions, uids and data survive a kill -9");
    assert!(api.get_opt("cm-7").await.unwrap().is_none(), "the deleted object stays deleted");
    let ns_after = Api::<Namespace>::all(client.clone()).get("durable").await.unwrap();
    assert_eq!(ns_after.metadata.uid, ns_before.metadata.uid);
    assert_eq!(ns_after.metadata.resource_version, ns_before.metadata.resource_version);

    let list_rv_after: u64 =
        api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap().parse().unwrap();
    assert!(list_rv_after >= list_rv_before, "the store revision does not go back: {list_rv_after} < {list_rv_before}");

    // New writes continue after the old revisions.
    let created = api.create(&PostParams::default(), &config_map("after-restart")).await.unwrap();
    assert!(rv(&created) > list_rv_before, "new resourceVersion {} must exceed {list_rv_before}", rv(&created));
    let mut cm0 = api.get("cm-0").await.unwrap();
    cm0.data = Some(BTreeMap::from([("k".into(), "v2".into())]));
    let updated = api.replace("cm-0", &PostParams::default(), &cm0).await.unwrap();
    assert!(rv(&updated) > rv(&created));
    assert_eq!(uid(&updated), before["cm-0"].1, "an update keeps the uid");

    // The names freed and kept behave as before: cm-7 can be recreated, cm-1 cannot.
    api.create(&PostParams::default(), &config_map("cm-7")).await.expect("recreate deleted name");
    let dup = api.create(&PostParams::default(), &config_map("cm-1")).await;
    assert!(matches!(dup, Err(kube::Error::Api(ref s)) if s.code == 409), "{dup:?}");
}

/// Reads raw watch events until `stop` says so or `timeout` passes.
async fn collect_watch(
    api: &Api<ConfigMap>,
    from: &str,
    timeout: Duration,
    mut stop: impl FnMut(&[WatchEvent<ConfigMap>]) -> bool,
) -> Vec<WatchEvent<ConfigMap>> {
    let stream = api.watch(&WatchParams::default().timeout(60), from).await.expect("watch starts");
    let mut stream = stream.boxed();
    let mut events = Vec::new();
    let deadline = Instant::now() + timeout;
    while !stop(&events) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.try_next()).await {
            Err(_) => break,
            Ok(Ok(Some(ev))) => events.push(ev),
            Ok(Ok(None)) => break,
            Ok(Err(e)) => panic!("watch error: {e:?}"),
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_resumes_after_restart_exactly_once_in_order() {
    let mut server = Server::start_with(&["--watch-history", "50"]);
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut created = Vec::new();
    for i in 0..20 {
        created.push(api.create(&PostParams::default(), &config_map(&format!("cm-{i:02}"))).await.unwrap());
    }
    let from = rv(&created[4]).to_string();

    server.kill9();
    server.spawn();
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    // A write after the restart, so the watch must join the replayed history and the
    // revisions written by the new process without a gap or a repeat.
    let sentinel = api.create(&PostParams::default(), &config_map("sentinel")).await.unwrap();
    assert!(rv(&sentinel) > rv(&created[19]));

    let events = collect_watch(&api, &from, Duration::from_secs(20), |evs| {
        evs.iter().any(|e| matches!(e, WatchEvent::Added(cm) if name(cm) == "sentinel"))
    })
    .await;

    let mut got = Vec::new();
    for ev in &events {
        match ev {
            WatchEvent::Added(cm) => got.push((name(cm), rv(cm), uid(cm))),
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected event {other:?} in {events:?}"),
        }
    }
    let expected: Vec<(String, u64, String)> =
        created[5..].iter().chain(std::iter::once(&sentinel)).map(|cm| (name(cm), rv(cm), uid(cm))).collect();
    assert_eq!(got, expected, "every later event exactly once, in order, with its original resourceVersion");

    // And the resumed watch stays live.
    let stream = api.watch(&WatchParams::default().timeout(60), &rv(&sentinel).to_string()).await.unwrap();
    let mut stream = stream.boxed();
    api.delete("cm-00", &DeleteParams::default()).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await.expect("live event").unwrap();
    match ev {
        Some(WatchEvent::Deleted(cm)) => {
            assert_eq!(name(&cm), "cm-00");
            assert!(rv(&cm) > rv(&sentinel));
        }
        other => panic!("expected the delete of cm-00, got {other:?}"),
    }
}

/// The code of a watch that failed, whichever way kube-rs surfaces it.
async fn watch_error_code(api: &Api<ConfigMap>, from: &str) -> Option<u16> {
    match api.watch(&WatchParams::default().timeout(30), from).await {
        Err(kube::Error::Api(s)) => Some(s.code),
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(stream) => {
            let mut stream = stream.boxed();
            match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                Err(_) => None,
                Ok(None) => None,
                Ok(Some(Ok(WatchEvent::Error(s)))) => Some(s.code),
                Ok(Some(Err(kube::Error::Api(s)))) => Some(s.code),
                Ok(Some(other)) => panic!("expected an error event, got {other:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_older_than_history_window_is_expired() {
    let mut server = Server::start_with(&["--watch-history", "5"]);
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut created = Vec::new();
    for i in 0..20 {
        created.push(api.create(&PostParams::default(), &config_map(&format!("cm-{i:02}"))).await.unwrap());
    }
    let old = rv(&created[0]).to_string();
    let recent = rv(&created[17]).to_string();

    assert_eq!(watch_error_code(&api, &old).await, Some(410), "a version out of the window is Expired");
    // A version inside the window resumes normally (so 410 above is about the window).
    let events = collect_watch(&api, &recent, Duration::from_secs(10), |evs| evs.len() >= 2).await;
    let names: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Added(cm) => Some(name(cm)),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["cm-18", "cm-19"]);

    // The window is the same after a crash.
    server.kill9();
    server.spawn();
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    assert_eq!(watch_error_code(&api, &old).await, Some(410), "still Expired after a restart");
    let events = collect_watch(&api, &recent, Duration::from_secs(10), |evs| evs.len() >= 2).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(&events[1], WatchEvent::Added(cm) if name(cm) == "cm-19"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_during_concurrent_creates_loses_no_acknowledged_write() {
    let mut server = Server::start();
    let client = server.client().await;
    create_namespace(&client, "burst").await;

    let acked: Arc<Mutex<Vec<ConfigMap>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..16 {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "burst");
        let acked = acked.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            let mut failures = 0;
            while !stop.load(Ordering::Relaxed) {
                let cm = config_map(&format!("t{t}-{i}"));
                i += 1;
                match tokio::time::timeout(Duration::from_secs(10), api.create(&PostParams::default(), &cm)).await {
                    Ok(Ok(created)) => acked.lock().unwrap().push(created),
                    // Once the server is gone every request fails; keep trying a little so
                    // that writes racing the kill are exercised, then stop.
                    _ => {
                        failures += 1;
                        if failures > 3 {
                            break;
                        }
                    }
                }
            }
        }));
    }

    // Let the burst get going, then crash the server in the middle of it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 200 {
        assert!(Instant::now() < deadline, "the burst made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    let at_kill = acked.lock().unwrap().len();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t).await.expect("creator task ends").unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(acked.len() >= at_kill && !acked.is_empty());

    server.spawn();
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "burst");
    let stored = snapshot(&api).await;
    let mut missing = Vec::new();
    for cm in &acked {
        match stored.get(&name(cm)) {
            Some((r, u, data)) => {
                assert_eq!((*r, u.as_str()), (rv(cm), uid(cm).as_str()), "{} changed across the crash", name(cm));
                assert_eq!(data, &cm.data);
            }
            None => missing.push(name(cm)),
        }
    }
    assert!(missing.is_empty(), "{} of {} acknowledged creates lost: {missing:?}", missing.len(), acked.len());
    let acked_names: HashSet<String> = acked.iter().map(name).collect();
    assert_eq!(acked_names.len(), acked.len(), "no name was acknowledged twice");
    eprintln!("{} acknowledged creates, {} stored after the crash", acked.len(), stored.len());

    // The store is writable after the crash, above every acknowledged revision.
    let max_acked = acked.iter().map(rv).max().unwrap();
    let next = api.create(&PostParams::default(), &config_map("after-crash")).await.unwrap();
    assert!(rv(&next) > max_acked);
}

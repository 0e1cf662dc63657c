//! Watches as kube-rs's runtime uses them: list-then-watch and watch-list
//! (sendInitialEvents), selectors, and bookmarks.

mod common;

use common::Server;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::ObjectMeta;
use kube::runtime::watcher::{self, Event};
use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::time::{Duration, Instant};

type Events = Pin<Box<dyn Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Send>>;

fn config_map(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn name(cm: &ConfigMap) -> &str {
    cm.metadata.name.as_deref().unwrap()
}

async fn namespace(client: &kube::Client, ns: &str) -> Api<ConfigMap> {
    let api: Api<Namespace> = Api::all(client.clone());
    let obj = Namespace { metadata: ObjectMeta { name: Some(ns.into()), ..Default::default() }, ..Default::default() };
    api.create(&PostParams::default(), &obj).await.expect("create namespace");
    Api::namespaced(client.clone(), ns)
}

async fn next(events: &mut Events) -> Event<ConfigMap> {
    match tokio::time::timeout(Duration::from_secs(15), events.try_next()).await {
        Err(_) => panic!("no watcher event within 15s"),
        Ok(Err(e)) => panic!("watcher error: {e:?}"),
        Ok(Ok(None)) => panic!("watcher stream ended"),
        Ok(Ok(Some(ev))) => ev,
    }
}

/// Reads Init, the InitApply events and InitDone; returns the names listed.
async fn initial_names(events: &mut Events) -> BTreeSet<String> {
    match next(events).await {
        Event::Init => {}
        other => panic!("expected Init first, got {other:?}"),
    }
    let mut names = BTreeSet::new();
    loop {
        match next(events).await {
            Event::InitApply(cm) => assert!(names.insert(name(&cm).to_string()), "{} listed twice", name(&cm)),
            Event::InitDone => return names,
            other => panic!("expected InitApply or InitDone, got {other:?}"),
        }
    }
}

fn describe(ev: &Event<ConfigMap>) -> String {
    match ev {
        Event::Apply(cm) => format!("Apply {}", name(cm)),
        Event::Delete(cm) => format!("Delete {}", name(cm)),
        Event::Init => "Init".into(),
        Event::InitApply(cm) => format!("InitApply {}", name(cm)),
        Event::InitDone => "InitDone".into(),
    }
}

async fn sees_lifecycle(config: watcher::Config) {
    let server = Server::start();
    let client = server.client().await;
    let api = namespace(&client, "w").await;
    // Objects elsewhere must not show up in a namespaced watch.
    let other = namespace(&client, "elsewhere").await;
    other.create(&PostParams::default(), &config_map("not-mine", &[])).await.unwrap();
    for n in ["pre-a", "pre-b"] {
        api.create(&PostParams::default(), &config_map(n, &[])).await.unwrap();
    }

    let mut events: Events = watcher::watcher(api.clone(), config).boxed();
    let listed = initial_names(&mut events).await;
    assert_eq!(listed, BTreeSet::from(["pre-a".to_string(), "pre-b".to_string()]));

    let created = api.create(&PostParams::default(), &config_map("live", &[])).await.unwrap();
    other.create(&PostParams::default(), &config_map("not-mine-either", &[])).await.unwrap();
    match next(&mut events).await {
        Event::Apply(cm) => {
            assert_eq!(name(&cm), "live");
            assert_eq!(cm.metadata.uid, created.metadata.uid);
            assert_eq!(cm.metadata.resource_version, created.metadata.resource_version);
        }
        other => panic!("expected Apply live, got {}", describe(&other)),
    }

    let patch = serde_json::json!({"data": {"k": "v"}});
    let updated = api.patch("live", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    match next(&mut events).await {
        Event::Apply(cm) => {
            assert_eq!(name(&cm), "live");
            assert_eq!(cm.data, Some(BTreeMap::from([("k".to_string(), "v".to_string())])));
            assert_eq!(cm.metadata.resource_version, updated.metadata.resource_version);
        }
        other => panic!("expected Apply live (update), got {}", describe(&other)),
    }

    api.delete("live", &DeleteParams::default()).await.unwrap();
    match next(&mut events).await {
        Event::Delete(cm) => {
            assert_eq!(name(&cm), "live");
            assert_eq!(cm.metadata.uid, created.metadata.uid);
        }
        other => panic!("expected Delete live, got {}", describe(&other)),
    }
    api.delete("pre-a", &DeleteParams::default()).await.unwrap();
    match next(&mut events).await {
        Event::Delete(cm) => assert_eq!(name(&cm), "pre-a"),
        other => panic!("expected Delete pre-a, got {}", describe(&other)),
    }
}

async fn selector_moves(config: watcher::Config) {
    let server = Server::start();
    let client = server.client().await;
    let api = namespace(&client, "w").await;
    api.create(&PostParams::default(), &config_map("in-1", &[("app", "sel")])).await.unwrap();
    api.create(&PostParams::default(), &config_map("out-1", &[("app", "other")])).await.unwrap();
    api.create(&PostParams::default(), &config_map("bare", &[])).await.unwrap();

    let mut events: Events = watcher::watcher(api.clone(), config.labels("app=sel")).boxed();
    assert_eq!(initial_names(&mut events).await, BTreeSet::from(["in-1".to_string()]));

    let relabel = |to: &str| serde_json::json!({"metadata": {"labels": {"app": to}}});
    api.create(&PostParams::default(), &config_map("in-2", &[("app", "sel")])).await.unwrap();
    match next(&mut events).await {
        Event::Apply(cm) => assert_eq!(name(&cm), "in-2"),
        other => panic!("expected Apply in-2, got {}", describe(&other)),
    }
    // Not selected: neither the create nor the update may produce an event, so the next
    // event must be the one for the relabelling below.
    api.create(&PostParams::default(), &config_map("out-2", &[("app", "other")])).await.unwrap();
    api.patch("out-2", &PatchParams::default(), &Patch::Merge(&relabel("still-other"))).await.unwrap();

    api.patch("in-2", &PatchParams::default(), &Patch::Merge(&relabel("gone"))).await.unwrap();
    match next(&mut events).await {
        Event::Delete(cm) => {
            assert_eq!(name(&cm), "in-2");
            assert_eq!(cm.labels().get("app").map(String::as_str), Some("gone"), "the object as it is now");
        }
        other => panic!("expected Delete in-2 (relabelled out), got {}", describe(&other)),
    }
    api.patch("out-1", &PatchParams::default(), &Patch::Merge(&relabel("sel"))).await.unwrap();
    match next(&mut events).await {
        Event::Apply(cm) => assert_eq!(name(&cm), "out-1"),
        other => panic!("expected Apply out-1 (relabelled in), got {}", describe(&other)),
    }
    // Deleting an object outside the selection is silent; inside, a Delete.
    api.delete("in-2", &DeleteParams::default()).await.unwrap();
    api.delete("in-1", &DeleteParams::default()).await.unwrap();
    match next(&mut events).await {
        Event::Delete(cm) => assert_eq!(name(&cm), "in-1"),
        other => panic!("expected Delete in-1, got {}", describe(&other)),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_list_watch_sees_init_and_changes() {
    sees_lifecycle(watcher::Config::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_streaming_list_sees_init_and_changes() {
    sees_lifecycle(watcher::Config::default().streaming_lists()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_list_watch_label_selector_relabel_is_delete() {
    selector_moves(watcher::Config::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_streaming_list_label_selector_relabel_is_delete() {
    selector_moves(watcher::Config::default().streaming_lists()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_paged_list_sees_everything() {
    let server = Server::start();
    let client = server.client().await;
    let api = namespace(&client, "w").await;
    let mut expected = BTreeSet::new();
    for i in 0..23 {
        let n = format!("cm-{i:02}");
        api.create(&PostParams::default(), &config_map(&n, &[])).await.unwrap();
        expected.insert(n);
    }
    let mut events: Events = watcher::watcher(api.clone(), watcher::Config::default().page_size(5)).boxed();
    assert_eq!(initial_names(&mut events).await, expected);
    api.create(&PostParams::default(), &config_map("after", &[])).await.unwrap();
    match next(&mut events).await {
        Event::Apply(cm) => assert_eq!(name(&cm), "after"),
        other => panic!("expected Apply after, got {}", describe(&other)),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bookmarks_arrive_with_a_resource_version() {
    let server = Server::start_with(&["--bookmark-interval-seconds", "1"]);
    let client = server.client().await;
    let api = namespace(&client, "w").await;
    let first = api.create(&PostParams::default(), &config_map("first", &[])).await.unwrap();
    let first_rv: u64 = first.metadata.resource_version.clone().unwrap().parse().unwrap();

    let mut stream = api.watch(&WatchParams::default().timeout(60), &first_rv.to_string()).await.unwrap().boxed();
    let mut bookmarks = Vec::new();
    let mut second_rv = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    // Wait for a bookmark, then write, then wait for a bookmark at or after the write.
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = match tokio::time::timeout(left, stream.try_next()).await {
            Err(_) => panic!("bookmarks seen: {bookmarks:?}; expected one after the write at {second_rv:?}"),
            Ok(r) => r.expect("watch event").expect("watch stays open"),
        };
        match ev {
            WatchEvent::Bookmark(b) => {
                assert_eq!(b.types.kind, "ConfigMap");
                assert_eq!(b.types.api_version, "v1");
                assert!(!b.metadata.resource_version.is_empty(), "a bookmark carries a resourceVersion");
                let rv: u64 = b.metadata.resource_version.parse().expect("numeric resourceVersion");
                assert!(rv >= first_rv, "bookmark {rv} is older than the watch start {first_rv}");
                bookmarks.push(rv);
                match second_rv {
                    None => {
                        let second = api.create(&PostParams::default(), &config_map("second", &[])).await.unwrap();
                        second_rv = Some(second.metadata.resource_version.unwrap().parse::<u64>().unwrap());
                    }
                    Some(s) if rv >= s => break,
                    Some(_) => {}
                }
            }
            WatchEvent::Added(cm) => {
                assert_eq!(name(&cm), "second");
                assert!(second_rv.is_some());
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert!(bookmarks.windows(2).all(|w| w[0] <= w[1]), "bookmark versions never go back: {bookmarks:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_bookmarks_unless_asked() {
    let server = Server::start_with(&["--bookmark-interval-seconds", "1"]);
    let client = server.client().await;
    let api = namespace(&client, "w").await;
    let wp = WatchParams { bookmarks: false, ..WatchParams::default().timeout(60) };
    let mut stream = api.watch(&wp, "0").await.unwrap().boxed();
    api.create(&PostParams::default(), &config_map("x", &[])).await.unwrap();
    let deadline = Instant::now() + Duration::from_millis(3500);
    let mut added = 0;
    while let Ok(ev) = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), stream.try_next()).await
    {
        match ev.expect("watch event").expect("watch stays open") {
            WatchEvent::Added(cm) => {
                assert_eq!(name(&cm), "x");
                added += 1;
            }
            other => panic!("only the ADDED event was expected, got {other:?}"),
        }
    }
    assert_eq!(added, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_list_ends_initial_events_with_annotated_bookmark() {
    let server = Server::start();
    let client = server.client().await;
    let api = namespace(&client, "w").await;
    let a = api.create(&PostParams::default(), &config_map("a", &[])).await.unwrap();
    let mut stream = api.watch(&WatchParams::default().initial_events().timeout(60), "").await.unwrap().boxed();
    let mut seen = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(15), stream.try_next())
            .await
            .expect("event within 15s")
            .expect("watch event")
            .expect("watch stays open");
        match ev {
            WatchEvent::Added(cm) => seen.push(name(&cm).to_string()),
            WatchEvent::Bookmark(b) => {
                assert_eq!(
                    b.metadata.annotations.get("k8s.io/initial-events-end").map(String::as_str),
                    Some("true"),
                    "the first bookmark ends the initial events"
                );
                let rv: u64 = b.metadata.resource_version.parse().unwrap();
                assert!(rv >= a.metadata.resource_version.clone().unwrap().parse::<u64>().unwrap());
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["a"]);
}

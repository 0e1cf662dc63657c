use super::*;
use crate::Store;
use std::collections::HashSet;
use tempfile::tempdir;
use tokio::time::timeout;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn open(dir: &Path, history: u64) -> Store {
    Store::open_embedded(dir, Options { history, ..Options::default() }).expect("open store")
}

fn open_tuned(dir: &Path, history: u64, tuning: Tuning) -> Arc<RedbStore> {
    Arc::new(RedbStore::open_tuned(dir, Options { history, ..Options::default() }, tuning).expect("open store"))
}

async fn next(watch: &mut WatchStream) -> Arc<Event> {
    timeout(Duration::from_secs(10), watch.next()).await.expect("an event within 10s").expect("the watch is still open")
}

/// Waits until the stream ends, returning what came before the end.
async fn drain_until_end(watch: &mut WatchStream) -> Vec<Arc<Event>> {
    let mut events = Vec::new();
    loop {
        match timeout(Duration::from_secs(10), watch.next()).await.expect("the watch ends within 10s") {
            Some(event) => events.push(event),
            None => return events,
        }
    }
}

async fn assert_quiet(watch: &mut WatchStream) {
    if let Ok(event) = timeout(Duration::from_millis(200), watch.next()).await {
        panic!("expected no event, got {event:?}");
    }
}

fn revisions(events: &[Arc<Event>]) -> Vec<Revision> {
    events.iter().map(|e| e.revision).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn create_get_update_delete_advance_the_revision() {
    let dir = tempdir().unwrap();
    let store = open(dir.path(), 100);
    assert_eq!(store.current_revision(), 1, "an empty store is at revision 1, never 0");
    assert_eq!(store.compacted_revision(), 0);
    assert_eq!(store.get("a").await.unwrap(), None);

    let created = store.create("a", b("v1")).await.unwrap();
    assert_eq!((created.create_revision, created.mod_revision), (2, 2));
    assert_eq!(created.value, b("v1"));
    assert_eq!(store.current_revision(), 2);
    assert_eq!(store.get("a").await.unwrap(), Some(created.clone()));

    let updated = store.update("a", b("v2"), Precondition::ModRevision(2)).await.unwrap();
    assert_eq!((updated.create_revision, updated.mod_revision), (2, 3));
    let updated = store.update("a", b("v3"), Precondition::None).await.unwrap();
    assert_eq!((updated.create_revision, updated.mod_revision), (2, 4));
    assert_eq!(store.get("a").await.unwrap(), Some(updated));

    let deleted = store.delete("a", Precondition::ModRevision(4)).await.unwrap();
    assert_eq!(deleted.key, "a");
    assert_eq!(deleted.value, b("v3"), "a delete returns the last value");
    assert_eq!((deleted.create_revision, deleted.mod_revision), (2, 5));
    assert_eq!(store.get("a").await.unwrap(), None);
    assert_eq!(store.current_revision(), 5);

    let recreated = store.create("a", b("again")).await.unwrap();
    assert_eq!((recreated.create_revision, recreated.mod_revision), (6, 6));
    store.delete("a", Precondition::None).await.unwrap();
    assert_eq!(store.current_revision(), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_an_existing_key_fails_with_already_exists_and_uses_no_revision() {
    let dir = tempdir().unwrap();
    let store = open(dir.path(), 100);
    store.create("k", b("first")).await.unwrap();
    let err = store.create("k", b("second")).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(ref k) if k == "k"), "{err:?}");
    assert_eq!(store.current_revision(), 2);
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b("first"));
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_and_missing_preconditions_are_refused_without_writing() {
    let dir = tempdir().unwrap();
    let store = open(dir.path(), 100);
    store.create("k", b("v1")).await.unwrap();
    store.update("k", b("v2"), Precondition::None).await.unwrap();

    let err = store.update("k", b("v3"), Precondition::ModRevision(2)).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { ref key, expected: 2, actual: 3 } if key == "k"), "{err:?}");
    let err = store.delete("k", Precondition::ModRevision(2)).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { expected: 2, actual: 3, .. }), "{err:?}");
    let err = store.update("missing", b("x"), Precondition::None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(ref k) if k == "missing"), "{err:?}");
    let err = store.update("missing", b("x"), Precondition::ModRevision(3)).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    let err = store.delete("missing", Precondition::None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");

    assert_eq!(store.current_revision(), 3);
    let kv = store.get("k").await.unwrap().unwrap();
    assert_eq!((kv.value, kv.mod_revision), (b("v2"), 3));
}

#[tokio::test(flavor = "multi_thread")]
async fn list_honours_prefix_start_after_limit_and_reports_more_and_revision() {
    let dir = tempdir().unwrap();
    let store = open(dir.path(), 100);
    for key in ["p/3", "a", "p/1", "q/1", "p/4", "p/2", "p"] {
        store.create(key, b(key)).await.unwrap();
    }
    let keys = |r: &ListResult| r.items.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>();

    let all = store.list("p/", None, 0).await.unwrap();
    assert_eq!(keys(&all), ["p/1", "p/2", "p/3", "p/4"]);
    assert!(!all.more);
    assert_eq!(all.revision, store.current_revision());
    assert_eq!(all.items[0].value, b("p/1"));
    assert_eq!(all.items[0].create_revision, 4);

    let page = store.list("p/", None, 2).await.unwrap();
    assert_eq!(keys(&page), ["p/1", "p/2"]);
    assert!(page.more);
    let page = store.list("p/", Some("p/2"), 2).await.unwrap();
    assert_eq!(keys(&page), ["p/3", "p/4"]);
    assert!(!page.more, "a page that ends exactly at the last key has no more");
    let page = store.list("p/", Some("p/4"), 2).await.unwrap();
    assert!(page.items.is_empty() && !page.more);

    assert_eq!(keys(&store.list("p/", Some("a"), 0).await.unwrap()).len(), 4, "start_after before the prefix");
    assert!(store.list("p/", Some("z"), 0).await.unwrap().items.is_empty());
    assert!(store.list("x/", None, 0).await.unwrap().items.is_empty());
    assert_eq!(keys(&store.list("", None, 0).await.unwrap()), ["a", "p", "p/1", "p/2", "p/3", "p/4", "q/1"]);
    assert_eq!(keys(&store.list("", None, 7).await.unwrap()).len(), 7);
    assert!(!store.list("", None, 7).await.unwrap().more);
    assert!(store.list("", None, 6).await.unwrap().more);

    let before = store.list("q/", None, 0).await.unwrap().revision;
    store.update("a", b("new"), Precondition::None).await.unwrap();
    let after = store.list("q/", None, 0).await.unwrap();
    assert_eq!(after.revision, before + 1, "the list revision is the store's, not the newest item's");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_thousand_concurrent_creates_all_succeed_with_distinct_revisions_in_group_commits() {
    let dir = tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path(), Options::default()).unwrap());
    let tasks: Vec<_> = (0..50)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut revs = Vec::new();
                for i in 0..40 {
                    let kv = store.create(&format!("obj/{t:02}/{i:02}"), b("x")).await.unwrap();
                    assert_eq!(kv.create_revision, kv.mod_revision);
                    revs.push(kv.mod_revision);
                }
                revs
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (2..2002).collect::<Vec<_>>(), "distinct revisions, no gaps");
    assert_eq!(store.current_revision(), 2001);
    assert_eq!(store.list("obj/", None, 0).await.unwrap().items.len(), 2000);

    let stats = store.commit_stats();
    assert_eq!(stats.writes, 2000);
    assert!(stats.largest_batch > 1, "concurrent writes share commits: {stats:?}");
    assert!(stats.commits < 2000, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_write_does_not_disturb_the_others_in_its_batch() {
    let dir = tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path(), Options::default()).unwrap());
    // Every key is created twice at once, so batches hold both outcomes.
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.create(&format!("k/{:03}", i / 2), b("v")).await })
        })
        .collect();
    let mut revs = Vec::new();
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(kv) => revs.push(kv.mod_revision),
            Err(Error::AlreadyExists(_)) => refused += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    revs.sort_unstable();
    assert_eq!(refused, 200);
    assert_eq!(revs, (2..202).collect::<Vec<_>>(), "refused writes take no revision");
    assert_eq!(store.list("k/", None, 0).await.unwrap().items.len(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn reopening_keeps_data_revisions_and_history() {
    let dir = tempdir().unwrap();
    let before;
    {
        let store = open(dir.path(), 100);
        store.create("a", b("1")).await.unwrap();
        store.create("b", b("2")).await.unwrap();
        store.update("a", b("3"), Precondition::None).await.unwrap();
        store.delete("b", Precondition::None).await.unwrap();
        before = store.list("", None, 0).await.unwrap();
        assert_eq!(before.revision, 5);
    }
    let store = open(dir.path(), 100);
    assert_eq!(store.current_revision(), 5);
    assert_eq!(store.compacted_revision(), 0);
    let after = store.list("", None, 0).await.unwrap();
    assert_eq!((after.items, after.revision), (before.items, before.revision));

    let mut watch = store.watch("", 0).unwrap();
    let replayed = [next(&mut watch).await, next(&mut watch).await, next(&mut watch).await, next(&mut watch).await];
    let kinds: Vec<_> = replayed.iter().map(|e| (e.revision, e.kind, e.key.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (2, EventType::Added, "a"),
            (3, EventType::Added, "b"),
            (4, EventType::Modified, "a"),
            (5, EventType::Deleted, "b"),
        ]
    );
    assert_quiet(&mut watch).await;

    let kv = store.create("c", b("4")).await.unwrap();
    assert_eq!(kv.mod_revision, 6, "revisions continue after a reopen");
    assert_eq!(next(&mut watch).await.revision, 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_from_an_old_revision_after_reopen_replays_every_event_once_in_order_then_follows_live() {
    let dir = tempdir().unwrap();
    let tuning = Tuning {
        replay_chunk: 7, // many chunk boundaries while replaying
        ..Tuning::default()
    };
    {
        let store = open_tuned(dir.path(), 10_000, tuning);
        for i in 0..100 {
            store.create(&format!("k/{i:03}"), b("v")).await.unwrap();
        }
    }
    let store = open_tuned(dir.path(), 10_000, tuning);
    assert_eq!(store.current_revision(), 101);

    // Writers run while the watch replays, so replay and live overlap.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                store.update(&format!("k/{:03}", i % 100), b("w"), Precondition::None).await.unwrap();
            }
        })
    };
    let mut watch = store.watch("k/", 10).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 391 {
        seen.push(next(&mut watch).await);
    }
    writer.await.unwrap();
    assert_eq!(revisions(&seen), (11..=401).collect::<Vec<_>>(), "no gap, no duplicate, in order");
    assert!(seen[..91].iter().all(|e| e.kind == EventType::Added));
    assert!(seen[91..].iter().all(|e| e.kind == EventType::Modified));
    assert_quiet(&mut watch).await;

    store.delete("k/000", Precondition::None).await.unwrap();
    let live = next(&mut watch).await;
    assert_eq!((live.revision, live.kind), (402, EventType::Deleted));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_from_the_current_revision_sees_only_new_events() {
    let dir = tempdir().unwrap();
    let store = open(dir.path(), 100);
    store.create("a", b("1")).await.unwrap();
    store.create("b", b("1")).await.unwrap();
    let mut watch = store.watch("", store.current_revision()).unwrap();
    assert_quiet(&mut watch).await;
    store.update("a", b("2"), Precondition::None).await.unwrap();
    let event = next(&mut watch).await;
    assert_eq!((event.revision, event.kind, event.key.as_str()), (4, EventType::Modified, "a"));
    assert_quiet(&mut watch).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_only_sees_keys_under_its_prefix_in_replay_and_live() {
    let dir = tempdir().unwrap();
    let store = open(dir.path(), 100);
    store.create("pods/a", b("1")).await.unwrap(); // 2
    store.create("services/a", b("1")).await.unwrap(); // 3
    store.create("pods/b", b("1")).await.unwrap(); // 4
    let mut watch = store.watch("pods/", 1).unwrap();
    assert_eq!(next(&mut watch).await.key, "pods/a");
    assert_eq!(next(&mut watch).await.key, "pods/b");
    store.update("services/a", b("2"), Precondition::None).await.unwrap(); // 5
    store.delete("pods/a", Precondition::None).await.unwrap(); // 6
    let event = next(&mut watch).await;
    assert_eq!((event.revision, event.key.as_str()), (6, "pods/a"));
    assert_quiet(&mut watch).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_from_a_trimmed_revision_fails_with_compacted() {
    let dir = tempdir().unwrap();
    let store = open(dir.path(), 5);
    for i in 0..20 {
        store.create(&format!("k/{i}"), b("v")).await.unwrap();
    }
    assert_eq!(store.current_revision(), 21);
    assert_eq!(store.compacted_revision(), 16, "only the last 5 events are kept");
    let err = store.watch("", 15).err().expect("compacted");
    assert!(matches!(err, Error::Compacted { requested: 15, oldest: 16 }), "{err:?}");
    let mut watch = store.watch("", 16).unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(next(&mut watch).await);
    }
    assert_eq!(revisions(&seen), [17, 18, 19, 20, 21]);
    assert_quiet(&mut watch).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_from_a_future_revision_fails() {
    let dir = tempdir().unwrap();
    let store = open(dir.path(), 100);
    let err = store.watch("", 2).err().expect("future");
    assert!(matches!(err, Error::FutureRevision { requested: 2, current: 1 }), "{err:?}");
    assert!(store.watch("", 1).is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn history_is_trimmed_to_the_configured_size_also_when_lowered_at_reopen() {
    let dir = tempdir().unwrap();
    {
        let store = open_tuned(dir.path(), 100, Tuning { trim_chunk: 3, ..Tuning::default() });
        for i in 0..50 {
            store.create(&format!("k/{i}"), b("v")).await.unwrap();
        }
        assert_eq!(store.compacted_revision(), 0);
    }
    let store = open_tuned(dir.path(), 10, Tuning { trim_chunk: 3, ..Tuning::default() });
    assert_eq!(store.current_revision(), 51);
    assert_eq!(store.compacted_revision(), 41);
    let mut watch = store.watch("", 41).unwrap();
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(next(&mut watch).await);
    }
    assert_eq!(revisions(&seen), (42..=51).collect::<Vec<_>>());
    assert_quiet(&mut watch).await;

    // With small trim chunks, trimming still keeps up with one write per commit.
    for i in 0..30 {
        store.update(&format!("k/{i}"), b("w"), Precondition::None).await.unwrap();
    }
    assert_eq!(store.compacted_revision(), store.current_revision() - 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_carry_values_and_previous_values_live_and_replayed() {
    let dir = tempdir().unwrap();
    let store = open(dir.path(), 100);
    let mut live = store.watch("", 1).unwrap();
    store.create("k", b("v1")).await.unwrap();
    store.update("k", b("v2"), Precondition::None).await.unwrap();
    let deleted = store.delete("k", Precondition::None).await.unwrap();
    assert_eq!(deleted.mod_revision, 4);

    let live_events = [next(&mut live).await, next(&mut live).await, next(&mut live).await];
    let expected = [
        Event { kind: EventType::Added, key: "k".into(), revision: 2, value: b("v1"), prev_value: None },
        Event { kind: EventType::Modified, key: "k".into(), revision: 3, value: b("v2"), prev_value: Some(b("v1")) },
        Event { kind: EventType::Deleted, key: "k".into(), revision: 4, value: b("v2"), prev_value: Some(b("v2")) },
    ];
    assert_eq!(live_events.iter().map(|e| (**e).clone()).collect::<Vec<_>>(), expected);

    let mut replay = store.watch("", 1).unwrap();
    let replayed = [next(&mut replay).await, next(&mut replay).await, next(&mut replay).await];
    assert_eq!(replayed.iter().map(|e| (**e).clone()).collect::<Vec<_>>(), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watcher_that_falls_behind_has_its_stream_ended_without_a_gap() {
    let dir = tempdir().unwrap();
    let tuning = Tuning { broadcast_capacity: 4, watch_buffer: 1, ..Tuning::default() };
    let store = open_tuned(dir.path(), 1000, tuning);
    let mut watch = store.watch("", 1).unwrap();
    store.create("k/first", b("v")).await.unwrap();
    // Once the first event arrived, the watch's history snapshot is behind everything below.
    assert_eq!(next(&mut watch).await.revision, 2);
    for i in 0..50 {
        store.create(&format!("k/{i}"), b("v")).await.unwrap();
    }
    let seen = drain_until_end(&mut watch).await;
    assert!(seen.len() < 50, "the watcher should have lagged, saw {}", seen.len());
    let expected: Vec<Revision> = (3..3 + seen.len() as u64).collect();
    assert_eq!(revisions(&seen), expected, "what was delivered has no gap");
    // The client resumes from the last revision it saw and gets the rest.
    let resume = seen.last().map_or(2, |e| e.revision);
    let mut watch = store.watch("", resume).unwrap();
    let mut rest = Vec::new();
    while rest.len() < (52 - resume) as usize {
        rest.push(next(&mut watch).await);
    }
    assert_eq!(revisions(&rest), (resume + 1..=52).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_store_stops_the_writer_ends_watches_and_allows_reopening_at_once() {
    let dir = tempdir().unwrap();
    let store = open(dir.path(), 100);
    let mut watch = store.watch("", 1).unwrap();
    // Keep lists and creates in flight up to the drop.
    let mut revs = HashSet::new();
    for i in 0..20 {
        revs.insert(store.create(&format!("k/{i}"), b("v")).await.unwrap().mod_revision);
        let _ = store.list("", None, 0).await.unwrap();
    }
    drop(store);
    let events = drain_until_end(&mut watch).await;
    assert!(events.len() <= 20);

    let store = open(dir.path(), 100);
    assert_eq!(store.current_revision(), 21);
    assert_eq!(store.list("k/", None, 0).await.unwrap().items.len(), 20);
    for _ in 0..3 {
        drop(store.clone());
    }
    drop(store);
    let store = open(dir.path(), 100);
    assert_eq!(store.current_revision(), 21);
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_rows_are_reported_as_backend_errors_without_stopping_the_store() {
    let dir = tempdir().unwrap();
    {
        let store = open(dir.path(), 100);
        store.create("good", b("v")).await.unwrap(); // 2
        store.create("other", b("v")).await.unwrap(); // 3
    }
    {
        let db = Database::create(dir.path().join(DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut objects = txn.open_table(OBJECTS).unwrap();
            objects.insert("bad", [1u8, 2, 3].as_slice()).unwrap();
            let mut events = txn.open_table(EVENTS).unwrap();
            events.insert(3, [9u8, 9, 9].as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = open(dir.path(), 100);
    assert!(matches!(store.get("bad").await, Err(Error::Backend(_))));
    assert!(matches!(store.list("", None, 0).await, Err(Error::Backend(_))));
    assert!(matches!(store.update("bad", b("x"), Precondition::None).await, Err(Error::Backend(_))));
    // The rest of the store keeps working.
    assert_eq!(store.get("good").await.unwrap().unwrap().mod_revision, 2);
    assert_eq!(store.update("good", b("w"), Precondition::None).await.unwrap().mod_revision, 4);

    // A watch whose replay meets the corrupt event ends rather than skipping it.
    let mut watch = store.watch("", 1).unwrap();
    let seen = drain_until_end(&mut watch).await;
    assert!(revisions(&seen).iter().all(|&r| r < 3), "{seen:?}");
}

#[test]
fn event_and_object_encodings_round_trip_and_reject_truncation() {
    let events = [
        Event { kind: EventType::Added, key: "a/b".into(), revision: 7, value: b("{}"), prev_value: None },
        Event { kind: EventType::Modified, key: "".into(), revision: 8, value: b(""), prev_value: Some(b("old")) },
        Event { kind: EventType::Deleted, key: "é".into(), revision: 9, value: b("x"), prev_value: Some(b("x")) },
    ];
    for event in events {
        let buf = encode_event(&event);
        assert_eq!(decode_event(event.revision, &buf), Some(event.clone()));
        assert_eq!(event_key(&buf), Some(event.key.as_str()));
        for cut in 0..buf.len() {
            assert_eq!(decode_event(event.revision, &buf[..cut]), None, "truncated at {cut}");
        }
    }
    let buf = encode_object(3, 5, b"value");
    assert_eq!(decode_object(&buf), Some((3, 5, &b"value"[..])));
    assert_eq!(decode_object(&buf[..15]), None);
}

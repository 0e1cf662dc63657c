//! The embedded backend: one redb file, one writer thread doing group commit, a durable
//! event history and a broadcast channel for live watchers.
//!
//! Layout of `dir/portico.redb`:
//!
//! | table     | key                 | value                                                    |
//! |-----------|---------------------|----------------------------------------------------------|
//! | `objects` | key (`&str`)        | create revision (u64 LE), mod revision (u64 LE), value   |
//! | `events`  | revision (`u64`)    | event type, key, value, previous value (see [`encode_event`]) |
//! | `meta`    | name (`&str`)       | `revision`, `compacted`, `format` (`u64`)                |
//!
//! Every write transaction stores the new global revision in `meta` together with the write
//! itself, so a reader's snapshot always knows the revision it was taken at, and after a
//! restart (also after a crash) revisions continue from the last acknowledged write.
//!
//! Events exist for exactly the revisions in `(compacted, revision]` (revision 1, the empty
//! store, has none). A watch may start after any revision `>= compacted`.

use crate::{Error, Event, EventType, KeyValue, ListResult, Options, Precondition, Result, Revision, WatchStream};
use bytes::Bytes;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, Table, TableDefinition};
use std::fmt::Display;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, error, warn};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";
const META_FORMAT: &str = "format";
const FORMAT_VERSION: u64 = 1;

/// File name of the database inside the data directory.
pub(crate) const DB_FILE: &str = "portico.redb";

/// Revision of an empty store. Never the revision of a write, and never 0 (which Kubernetes
/// clients use to mean "any").
const INITIAL_REVISION: Revision = 1;

/// Internal knobs; tests shrink them to reach edge cases quickly.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    /// Most write requests folded into one transaction.
    pub(crate) batch_cap: usize,
    /// Most history events deleted per commit.
    pub(crate) trim_chunk: u64,
    /// Events the live broadcast holds for slow watchers before they lag.
    pub(crate) broadcast_capacity: usize,
    /// Events buffered between a watch task and its consumer.
    pub(crate) watch_buffer: usize,
    /// History rows scanned per blocking read while a watch replays.
    pub(crate) replay_chunk: usize,
    /// Pending write requests before callers wait.
    pub(crate) request_queue: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            batch_cap: 512,
            trim_chunk: 1024,
            broadcast_capacity: 16_384,
            watch_buffer: 1024,
            replay_chunk: 1024,
            request_queue: 4096,
        }
    }
}

/// Counters of the group-commit writer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Write transactions committed.
    pub commits: u64,
    /// Successful writes (each one revision) in those commits.
    pub writes: u64,
    /// Most requests (successful or not) handled in one transaction.
    pub largest_batch: u64,
}

/// State shared by the handle, the writer thread, readers and watch tasks.
struct Shared {
    db: Database,
    current: AtomicU64,
    compacted: AtomicU64,
    live: broadcast::Sender<Arc<Event>>,
    tuning: Tuning,
    commits: AtomicU64,
    writes: AtomicU64,
    largest_batch: AtomicU64,
}

enum Op {
    Create { key: String, value: Bytes },
    Update { key: String, value: Bytes, precondition: Precondition },
    Delete { key: String, precondition: Precondition },
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<KeyValue>>,
}

/// The embedded store. Dropping it stops the writer (after it finished what was queued) and
/// closes the database file, so the directory can be opened again right away.
pub struct RedbStore {
    shared: Arc<Shared>,
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

/// Turns a redb (or other) failure into `Error::Backend`, logging it.
fn backend<E: Display>(context: &'static str) -> impl FnOnce(E) -> Error {
    move |e| {
        error!(error = %e, "store: {context}");
        Error::Backend(format!("{context}: {e}"))
    }
}

fn corrupt(what: &str, at: impl Display) -> Error {
    error!("store: corrupt {what} at {at}");
    Error::Backend(format!("corrupt {what} at {at}"))
}

impl RedbStore {
    /// Opens (creating if needed) `dir/portico.redb`.
    pub fn open(dir: &Path, options: Options) -> Result<RedbStore> {
        Self::open_tuned(dir, options, Tuning::default())
    }

    pub(crate) fn open_tuned(dir: &Path, options: Options, tuning: Tuning) -> Result<RedbStore> {
        std::fs::create_dir_all(dir).map_err(backend("create data directory"))?;
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(dir.join(DB_FILE))
            .map_err(backend("open database"))?;

        let (revision, compacted) = init_meta(&db)?;
        let compacted = trim_on_open(&db, revision, compacted, options.history, tuning.trim_chunk.max(1))?;

        let (live, _) = broadcast::channel(tuning.broadcast_capacity.max(1));
        let shared = Arc::new(Shared {
            db,
            current: AtomicU64::new(revision),
            compacted: AtomicU64::new(compacted),
            live,
            tuning,
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            largest_batch: AtomicU64::new(0),
        });

        let (tx, rx) = mpsc::channel(tuning.request_queue.max(1));
        let writer = Writer { shared: shared.clone(), rx, history: options.history, revision, compacted };
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run())
            .map_err(backend("start writer thread"))?;
        debug!(revision, compacted, dir = %dir.display(), "store opened");
        Ok(RedbStore { shared, requests: Some(tx), writer: Some(handle) })
    }

    /// Revision of the last committed write (1 on an empty store).
    pub fn current_revision(&self) -> Revision {
        self.shared.current.load(Ordering::Acquire)
    }

    /// Highest revision no longer in the history; a watch may start after it or later.
    pub(crate) fn compacted_revision(&self) -> Revision {
        self.shared.compacted.load(Ordering::Acquire)
    }

    /// Counters of the group-commit writer since open.
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            commits: self.shared.commits.load(Ordering::Relaxed),
            writes: self.shared.writes.load(Ordering::Relaxed),
            largest_batch: self.shared.largest_batch.load(Ordering::Relaxed),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        // A point read touches a few pages and never waits for the writer's fsync, so it
        // runs inline.
        self.shared.get(key)
    }

    pub async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<ListResult> {
        let shared = self.shared.clone();
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        tokio::task::spawn_blocking(move || shared.list(&prefix, start_after.as_deref(), limit))
            .await
            .map_err(backend("list task"))?
    }

    pub async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        self.submit(Op::Create { key: key.to_owned(), value }).await
    }

    pub async fn update(&self, key: &str, value: Bytes, precondition: Precondition) -> Result<KeyValue> {
        self.submit(Op::Update { key: key.to_owned(), value, precondition }).await
    }

    pub async fn delete(&self, key: &str, precondition: Precondition) -> Result<KeyValue> {
        self.submit(Op::Delete { key: key.to_owned(), precondition }).await
    }

    async fn submit(&self, op: Op) -> Result<KeyValue> {
        let requests = self.requests.as_ref().ok_or_else(|| Error::Backend("store is shutting down".into()))?;
        let (reply, answer) = oneshot::channel();
        requests.send(Request { op, reply }).await.map_err(|_| Error::Backend("store writer has stopped".into()))?;
        answer.await.map_err(|_| Error::Backend("store writer dropped the request".into()))?
    }

    /// Events under `prefix` with revision > `after`: the history first, then live writes.
    /// Must be called within a tokio runtime (the stream is fed by a spawned task).
    pub fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let compacted = self.compacted_revision();
        if after < compacted {
            return Err(Error::Compacted { requested: after, oldest: compacted });
        }
        let current = self.current_revision();
        if after > current {
            // A reader may have seen a commit whose revision the writer has not published
            // yet; the database itself is the authority.
            let committed = self.shared.committed_revision()?;
            if after > committed {
                return Err(Error::FutureRevision { requested: after, current: committed });
            }
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(backend("watch outside a tokio runtime"))?;
        // Subscribe before reading the history: every event committed after the history
        // snapshot is then certain to arrive live.
        let live = self.shared.live.subscribe();
        let (tx, rx) = mpsc::channel(self.shared.tuning.watch_buffer.max(1));
        runtime.spawn(watch_task(Arc::downgrade(&self.shared), prefix.to_owned(), after, live, tx));
        Ok(WatchStream { rx })
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is pending and stop.
        self.requests.take();
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            error!("store writer thread panicked");
        }
        // Blocking reads (lists, watch replays) in flight hold the database for a moment; wait
        // for them so the file is closed when drop returns and can be reopened at once.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.shared) > 1 {
            if Instant::now() >= deadline {
                warn!("store dropped while reads are still running; the database closes when they finish");
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Creates the tables and the meta rows of a new store; returns (revision, compacted).
fn init_meta(db: &Database) -> Result<(Revision, Revision)> {
    let txn = db.begin_write().map_err(backend("begin write"))?;
    let (revision, compacted) = {
        txn.open_table(OBJECTS).map_err(backend("open objects"))?;
        txn.open_table(EVENTS).map_err(backend("open events"))?;
        let mut meta = txn.open_table(META).map_err(backend("open meta"))?;
        let format = meta.get(META_FORMAT).map_err(backend("read meta"))?.map(|g| g.value());
        match format {
            None => {
                meta.insert(META_FORMAT, FORMAT_VERSION).map_err(backend("write meta"))?;
                meta.insert(META_REVISION, INITIAL_REVISION).map_err(backend("write meta"))?;
                meta.insert(META_COMPACTED, 0).map_err(backend("write meta"))?;
                (INITIAL_REVISION, 0)
            }
            Some(FORMAT_VERSION) => {
                let revision = meta.get(META_REVISION).map_err(backend("read meta"))?.map(|g| g.value());
                let compacted = meta.get(META_COMPACTED).map_err(backend("read meta"))?.map(|g| g.value());
                match (revision, compacted) {
                    (Some(r), Some(c)) if r >= INITIAL_REVISION && c <= r => (r, c),
                    _ => return Err(corrupt("meta", "revision/compacted")),
                }
            }
            Some(other) => return Err(Error::Backend(format!("unsupported store format {other}"))),
        }
    };
    txn.commit().map_err(backend("commit"))?;
    Ok((revision, compacted))
}

/// Brings the history within `history` events (e.g. after the option was lowered).
fn trim_on_open(
    db: &Database,
    revision: Revision,
    mut compacted: Revision,
    history: u64,
    chunk: u64,
) -> Result<Revision> {
    loop {
        let target = revision.saturating_sub(history);
        if target <= compacted {
            return Ok(compacted);
        }
        let upto = target.min(compacted.saturating_add(chunk));
        let txn = db.begin_write().map_err(backend("begin write"))?;
        {
            let mut events = txn.open_table(EVENTS).map_err(backend("open events"))?;
            let mut meta = txn.open_table(META).map_err(backend("open meta"))?;
            trim(&mut events, &mut meta, compacted, upto)?;
        }
        txn.commit().map_err(backend("commit"))?;
        compacted = upto;
    }
}

/// Deletes events in `(compacted, upto]` and records `upto` as compacted.
fn trim(
    events: &mut Table<u64, &[u8]>,
    meta: &mut Table<&str, u64>,
    compacted: Revision,
    upto: Revision,
) -> Result<()> {
    events.retain_in(compacted + 1..=upto, |_, _| false).map_err(backend("trim history"))?;
    meta.insert(META_COMPACTED, upto).map_err(backend("write meta"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Encoding

fn encode_object(create_revision: Revision, mod_revision: Revision, value: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 + value.len());
    buf.extend_from_slice(&create_revision.to_le_bytes());
    buf.extend_from_slice(&mod_revision.to_le_bytes());
    buf.extend_from_slice(value);
    buf
}

/// (create revision, mod revision, value)
fn decode_object(buf: &[u8]) -> Option<(Revision, Revision, &[u8])> {
    let (create, rest) = buf.split_first_chunk::<8>()?;
    let (modr, value) = rest.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*create), u64::from_le_bytes(*modr), value))
}

fn object_to_kv(key: &str, buf: &[u8]) -> Result<KeyValue> {
    let (create_revision, mod_revision, value) = decode_object(buf).ok_or_else(|| corrupt("object", key))?;
    Ok(KeyValue { key: key.to_owned(), value: Bytes::copy_from_slice(value), create_revision, mod_revision })
}

const FLAG_HAS_PREV: u8 = 1;
const FLAG_PREV_IS_VALUE: u8 = 2;

/// `[kind u8][flags u8][key len u32 LE][key][value len u32 LE][value]([prev len u32 LE][prev])?`
/// The previous value is left out when absent or equal to the value (deletes).
fn encode_event(event: &Event) -> Vec<u8> {
    let kind = match event.kind {
        EventType::Added => 1u8,
        EventType::Modified => 2,
        EventType::Deleted => 3,
    };
    let (flags, prev) = match &event.prev_value {
        None => (0, None),
        Some(p) if p == &event.value => (FLAG_HAS_PREV | FLAG_PREV_IS_VALUE, None),
        Some(p) => (FLAG_HAS_PREV, Some(p)),
    };
    let mut buf = Vec::with_capacity(14 + event.key.len() + event.value.len() + prev.map_or(0, |p| p.len()));
    buf.push(kind);
    buf.push(flags);
    put_chunk(&mut buf, event.key.as_bytes());
    put_chunk(&mut buf, &event.value);
    if let Some(p) = prev {
        put_chunk(&mut buf, p);
    }
    buf
}

fn put_chunk(buf: &mut Vec<u8>, bytes: &[u8]) {
    // Values are capped by redb at 3 GiB, so the length fits in u32.
    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(bytes);
}

fn take_chunk<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = buf.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return None;
    }
    let (chunk, rest) = rest.split_at(len);
    *buf = rest;
    Some(chunk)
}

fn event_key(buf: &[u8]) -> Option<&str> {
    let mut rest = buf.get(2..)?;
    std::str::from_utf8(take_chunk(&mut rest)?).ok()
}

fn decode_event(revision: Revision, buf: &[u8]) -> Option<Event> {
    let (&[kind, flags], mut rest) = buf.split_first_chunk::<2>()?;
    let kind = match kind {
        1 => EventType::Added,
        2 => EventType::Modified,
        3 => EventType::Deleted,
        _ => return None,
    };
    let key = std::str::from_utf8(take_chunk(&mut rest)?).ok()?.to_owned();
    let value = Bytes::copy_from_slice(take_chunk(&mut rest)?);
    let prev_value = if flags & FLAG_HAS_PREV == 0 {
        None
    } else if flags & FLAG_PREV_IS_VALUE != 0 {
        Some(value.clone())
    } else {
        Some(Bytes::copy_from_slice(take_chunk(&mut rest)?))
    };
    rest.is_empty().then_some(Event { kind, key, revision, value, prev_value })
}

// ---------------------------------------------------------------------------------------
// Reads

impl Shared {
    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let txn = self.db.begin_read().map_err(backend("begin read"))?;
        let objects = txn.open_table(OBJECTS).map_err(backend("open objects"))?;
        let row = objects.get(key).map_err(backend("read object"))?;
        row.map(|row| object_to_kv(key, row.value())).transpose()
    }

    /// The revision of the last commit, read from the database rather than the atomics.
    fn committed_revision(&self) -> Result<Revision> {
        let txn = self.db.begin_read().map_err(backend("begin read"))?;
        read_revision(&txn.open_table(META).map_err(backend("open meta"))?, META_REVISION)
    }

    fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<ListResult> {
        let txn = self.db.begin_read().map_err(backend("begin read"))?;
        let revision = read_revision(&txn.open_table(META).map_err(backend("open meta"))?, META_REVISION)?;
        let objects = txn.open_table(OBJECTS).map_err(backend("open objects"))?;
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let range = objects.range::<&str>((lower, Bound::Unbounded)).map_err(backend("range objects"))?;
        let mut items = Vec::new();
        let mut more = false;
        for row in range {
            let (key, value) = row.map_err(backend("range objects"))?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            if limit != 0 && items.len() == limit {
                more = true;
                break;
            }
            items.push(object_to_kv(key, value.value())?);
        }
        Ok(ListResult { items, revision, more })
    }

    /// Reads history after `cursor`, scanning at most `tuning.replay_chunk` rows.
    fn history_chunk(&self, prefix: &str, cursor: Revision) -> Result<HistoryChunk> {
        let txn = self.db.begin_read().map_err(backend("begin read"))?;
        let meta = txn.open_table(META).map_err(backend("open meta"))?;
        let compacted = read_revision(&meta, META_COMPACTED)?;
        if cursor < compacted {
            return Ok(HistoryChunk::Compacted { compacted });
        }
        let revision = read_revision(&meta, META_REVISION)?;
        let events = txn.open_table(EVENTS).map_err(backend("open events"))?;
        let max = self.tuning.replay_chunk.max(1);
        let mut found = Vec::new();
        let mut scanned = 0;
        let mut last = cursor;
        for row in events.range(cursor.saturating_add(1)..).map_err(backend("range events"))? {
            let (rev, buf) = row.map_err(backend("range events"))?;
            let rev = rev.value();
            let buf = buf.value();
            // Peek at the key so that events of other prefixes are not copied out.
            let key = event_key(buf).ok_or_else(|| corrupt("event", rev))?;
            if key.starts_with(prefix) {
                let event = decode_event(rev, buf).ok_or_else(|| corrupt("event", rev))?;
                found.push(Arc::new(event));
            }
            last = rev;
            scanned += 1;
            if scanned == max {
                break;
            }
        }
        let done = scanned < max;
        Ok(HistoryChunk::Events {
            events: found,
            // A finished scan has seen everything up to the snapshot's revision.
            cursor: if done { revision.max(cursor) } else { last },
            done,
        })
    }
}

fn read_revision(meta: &impl ReadableTable<&'static str, u64>, name: &str) -> Result<Revision> {
    meta.get(name).map_err(backend("read meta"))?.map(|g| g.value()).ok_or_else(|| corrupt("meta", name))
}

enum HistoryChunk {
    Compacted { compacted: Revision },
    Events { events: Vec<Arc<Event>>, cursor: Revision, done: bool },
}

// ---------------------------------------------------------------------------------------
// Watch

async fn watch_task(
    shared: Weak<Shared>,
    prefix: String,
    after: Revision,
    mut live: broadcast::Receiver<Arc<Event>>,
    tx: mpsc::Sender<Arc<Event>>,
) {
    // Replay the history in chunks, each from its own snapshot; the weak handle keeps a
    // watcher from holding the database open between chunks.
    let mut cursor = after;
    loop {
        let Some(store) = shared.upgrade() else {
            return;
        };
        let p = prefix.clone();
        let chunk = match tokio::task::spawn_blocking(move || store.history_chunk(&p, cursor)).await {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(e)) => {
                warn!(error = %e, prefix, cursor, "watch replay failed; ending watch");
                return;
            }
            Err(e) => {
                warn!(error = %e, prefix, cursor, "watch replay task failed; ending watch");
                return;
            }
        };
        match chunk {
            HistoryChunk::Compacted { compacted } => {
                debug!(prefix, cursor, compacted, "history trimmed during watch replay; ending watch");
                return;
            }
            HistoryChunk::Events { events, cursor: next, done } => {
                for event in events {
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
                cursor = next;
                if done {
                    break;
                }
            }
        }
    }

    // Follow live writes. Everything up to `cursor` came from the history; the broadcast
    // carries every commit after the subscription in revision order, so the next event of
    // interest is `cursor + 1`. A lagging receiver skips events: that is fine while the
    // skipped ones were all replayed already, and ends the watch as soon as one is missing.
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(event) => {
                    if event.revision <= cursor {
                        continue;
                    }
                    if event.revision != cursor + 1 {
                        debug!(prefix, cursor, next = event.revision, "watcher fell behind; ending watch");
                        return;
                    }
                    cursor = event.revision;
                    if event.key.starts_with(&prefix) && tx.send(event).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    debug!(prefix, cursor, missed, "watcher lagged behind the live stream");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            () = tx.closed() => return,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Writer

struct Writer {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Request>,
    history: u64,
    revision: Revision,
    compacted: Revision,
}

/// What one batch did, ready to publish once committed.
struct Applied {
    results: Vec<Result<KeyValue>>,
    events: Vec<Arc<Event>>,
    revision: Revision,
    compacted: Revision,
}

impl Writer {
    fn run(mut self) {
        let cap = self.shared.tuning.batch_cap.max(1);
        let mut batch = Vec::with_capacity(cap);
        while let Some(first) = self.rx.blocking_recv() {
            batch.push(first);
            while batch.len() < cap {
                match self.rx.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
        }
        debug!(revision = self.revision, "store writer stopped");
    }

    fn commit_batch(&mut self, batch: &mut Vec<Request>) {
        let size = batch.len() as u64;
        match self.apply(batch) {
            Ok(applied) => {
                let wrote = applied.revision - self.revision;
                let committed = applied.revision != self.revision || applied.compacted != self.compacted;
                self.revision = applied.revision;
                self.compacted = applied.compacted;
                self.shared.current.store(applied.revision, Ordering::Release);
                self.shared.compacted.store(applied.compacted, Ordering::Release);
                if committed {
                    self.shared.commits.fetch_add(1, Ordering::Relaxed);
                    self.shared.writes.fetch_add(wrote, Ordering::Relaxed);
                    self.shared.largest_batch.fetch_max(size, Ordering::Relaxed);
                }
                for (request, result) in batch.drain(..).zip(applied.results) {
                    // The caller may have given up waiting; the write stands regardless.
                    let _ = request.reply.send(result);
                }
                for event in applied.events {
                    // No receivers is not an error.
                    let _ = self.shared.live.send(event);
                }
            }
            Err(e) => {
                // Already logged; nothing of the batch was written.
                let message = match e {
                    Error::Backend(message) => message,
                    other => other.to_string(),
                };
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(Error::Backend(message.clone())));
                }
            }
        }
    }

    /// Runs the batch in one write transaction and commits it. On error nothing is written.
    fn apply(&self, batch: &[Request]) -> Result<Applied, Error> {
        let mut txn = self.shared.db.begin_write().map_err(backend("begin write"))?;
        txn.set_durability(Durability::Immediate).map_err(backend("set durability"))?;
        let mut results = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let mut revision = self.revision;
        let mut compacted = self.compacted;
        {
            let mut objects = txn.open_table(OBJECTS).map_err(backend("open objects"))?;
            let mut history = txn.open_table(EVENTS).map_err(backend("open events"))?;
            let mut meta = txn.open_table(META).map_err(backend("open meta"))?;
            for request in batch {
                match apply_op(&mut objects, &mut history, &request.op, revision + 1)? {
                    Ok((kv, event)) => {
                        revision += 1;
                        results.push(Ok(kv));
                        events.push(Arc::new(event));
                    }
                    Err(refused) => results.push(Err(refused)),
                }
            }
            if revision != self.revision {
                meta.insert(META_REVISION, revision).map_err(backend("write meta"))?;
            }
            let target = revision.saturating_sub(self.history);
            if target > compacted {
                let upto = target.min(compacted.saturating_add(self.shared.tuning.trim_chunk.max(1)));
                trim(&mut history, &mut meta, compacted, upto)?;
                compacted = upto;
            }
        }
        if revision == self.revision && compacted == self.compacted {
            // Every request was refused: nothing to make durable.
            txn.abort().map_err(backend("abort"))?;
        } else {
            txn.commit().map_err(backend("commit"))?;
        }
        Ok(Applied { results, events, revision, compacted })
    }
}

/// Applies one write at `revision` against the transaction's current view. The outer error
/// is a storage failure (aborts the batch); the inner one refuses this op alone, having
/// written nothing.
fn apply_op(
    objects: &mut Table<&str, &[u8]>,
    history: &mut Table<u64, &[u8]>,
    op: &Op,
    revision: Revision,
) -> Result<Result<(KeyValue, Event)>> {
    let key = match op {
        Op::Create { key, .. } | Op::Update { key, .. } | Op::Delete { key, .. } => key.as_str(),
    };
    let existing = match objects.get(key).map_err(backend("read object"))? {
        None => None,
        Some(row) => match object_to_kv(key, row.value()) {
            Ok(kv) => Some(kv),
            Err(e) => return Ok(Err(e)),
        },
    };
    let check = |precondition: &Precondition, current: &KeyValue| match precondition {
        Precondition::ModRevision(expected) if *expected != current.mod_revision => {
            Err(Error::Conflict { key: key.to_owned(), expected: *expected, actual: current.mod_revision })
        }
        _ => Ok(()),
    };
    let (kv, event) = match (op, existing) {
        (Op::Create { .. }, Some(_)) => return Ok(Err(Error::AlreadyExists(key.to_owned()))),
        (Op::Update { .. } | Op::Delete { .. }, None) => {
            return Ok(Err(Error::NotFound(key.to_owned())));
        }
        (Op::Create { value, .. }, None) => {
            objects
                .insert(key, encode_object(revision, revision, value).as_slice())
                .map_err(backend("write object"))?;
            let kv = KeyValue {
                key: key.to_owned(),
                value: value.clone(),
                create_revision: revision,
                mod_revision: revision,
            };
            let event =
                Event { kind: EventType::Added, key: key.to_owned(), revision, value: value.clone(), prev_value: None };
            (kv, event)
        }
        (Op::Update { value, precondition, .. }, Some(old)) => {
            if let Err(e) = check(precondition, &old) {
                return Ok(Err(e));
            }
            objects
                .insert(key, encode_object(old.create_revision, revision, value).as_slice())
                .map_err(backend("write object"))?;
            let kv = KeyValue {
                key: key.to_owned(),
                value: value.clone(),
                create_revision: old.create_revision,
                mod_revision: revision,
            };
            let event = Event {
                kind: EventType::Modified,
                key: key.to_owned(),
                revision,
                value: value.clone(),
                prev_value: Some(old.value),
            };
            (kv, event)
        }
        (Op::Delete { precondition, .. }, Some(old)) => {
            if let Err(e) = check(precondition, &old) {
                return Ok(Err(e));
            }
            objects.remove(key).map_err(backend("delete object"))?;
            let event = Event {
                kind: EventType::Deleted,
                key: key.to_owned(),
                revision,
                value: old.value.clone(),
                prev_value: Some(old.value.clone()),
            };
            let kv = KeyValue { mod_revision: revision, ..old };
            (kv, event)
        }
    };
    history.insert(revision, encode_event(&event).as_slice()).map_err(backend("write event"))?;
    Ok(Ok((kv, event)))
}

#[cfg(test)]
mod tests;

//! A revisioned key-value store with watch history, in the shape of etcd's MVCC API.
//!
//! Keys are strings, values opaque bytes (the API server stores JSON). Every write gets the
//! next global revision; that revision is the object's resourceVersion. A bounded history
//! of events is kept durably so that a watch can resume from any revision still in the
//! window, also after a restart; older revisions answer [`Error::Compacted`].
//!
//! The store knows nothing about resource kinds.

mod redb_backend;

use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;

pub use redb_backend::{CommitStats, RedbStore};

pub type Revision = u64;
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A create found the key present. Not retryable.
    #[error("key already exists: {0}")]
    AlreadyExists(String),
    /// An update or delete found no such key. Not retryable.
    #[error("key not found: {0}")]
    NotFound(String),
    /// The key's current mod revision differs from the expected one. Retryable after a re-read.
    #[error("revision conflict on {key}: expected {expected}, found {actual}")]
    Conflict { key: String, expected: Revision, actual: Revision },
    /// The requested revision has left the history window. Retryable by re-listing.
    #[error("revision {requested} has been compacted (oldest available {oldest})")]
    Compacted { requested: Revision, oldest: Revision },
    /// The requested revision is in the future.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision { requested: Revision, current: Revision },
    /// The backend failed (disk, corruption, writer gone). Possibly retryable.
    #[error("storage backend: {0}")]
    Backend(String),
}

/// A stored value with its revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created the key.
    pub(crate) create_revision: Revision,
    /// Revision of the last write to the key (the resourceVersion).
    pub mod_revision: Revision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as a watch sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub key: String,
    /// The revision of this change.
    pub revision: Revision,
    /// The new value; for `Deleted`, the last value before the delete.
    pub value: Bytes,
    /// The value before this change (`None` for `Added`).
    pub prev_value: Option<Bytes>,
}

/// A page of a range read, taken at one consistent revision.
#[derive(Debug, Clone)]
pub struct ListResult {
    pub items: Vec<KeyValue>,
    /// The store revision the read was taken at.
    pub revision: Revision,
    /// True when `limit` cut the page short and more keys follow the last one.
    pub more: bool,
}

/// Condition a write must meet against the key's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Write whatever the current state.
    None,
    /// The key must be at exactly this mod revision.
    ModRevision(Revision),
}

/// Tunables for the embedded store.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of events kept for watch resumption.
    pub history: u64,
    /// The embedded store's page cache, in bytes. redb's own default (1 GiB) let a store of
    /// 100,000 pods keep most of its file in memory; reads are by key and the OS page cache
    /// keeps hot pages anyway.
    pub cache_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { history: 100_000, cache_bytes: 16 << 20 }
    }
}

/// A stream of events after a revision, in revision order, each exactly once.
/// Ends (returns `None`) if the watcher fell too far behind the live stream; the client
/// then re-watches from the last revision it saw.
pub struct WatchStream {
    pub(crate) rx: tokio::sync::mpsc::Receiver<Arc<Event>>,
}

impl WatchStream {
    pub async fn next(&mut self) -> Option<Arc<Event>> {
        self.rx.recv().await
    }
}

/// The store the API server uses. An enum rather than a trait object so that backends stay
/// concrete and async methods need no boxing; the etcd backend joins as a second variant.
#[derive(Clone)]
pub enum Store {
    Redb(Arc<RedbStore>),
}

impl Store {
    /// Opens (creating if needed) the embedded store in `dir`.
    pub fn open_embedded(dir: &Path, options: Options) -> Result<Store> {
        Ok(Store::Redb(Arc::new(RedbStore::open(dir, options)?)))
    }

    pub fn current_revision(&self) -> Revision {
        match self {
            Store::Redb(s) => s.current_revision(),
        }
    }

    /// Oldest revision a watch can still start after.
    #[cfg(test)]
    pub(crate) fn compacted_revision(&self) -> Revision {
        match self {
            Store::Redb(s) => s.compacted_revision(),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        match self {
            Store::Redb(s) => s.get(key).await,
        }
    }

    /// Keys starting with `prefix`, in key order, strictly after `start_after` if given,
    /// at most `limit` items (0 = no limit).
    pub async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<ListResult> {
        match self {
            Store::Redb(s) => s.list(prefix, start_after, limit).await,
        }
    }

    /// Creates `key`; fails with `AlreadyExists` if present. Returns the new KeyValue.
    pub async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        match self {
            Store::Redb(s) => s.create(key, value).await,
        }
    }

    /// Replaces the value of an existing `key`. Returns the new KeyValue.
    pub async fn update(&self, key: &str, value: Bytes, precondition: Precondition) -> Result<KeyValue> {
        match self {
            Store::Redb(s) => s.update(key, value, precondition).await,
        }
    }

    /// Deletes `key`. Returns the deleted KeyValue with `mod_revision` set to the delete's revision.
    pub async fn delete(&self, key: &str, precondition: Precondition) -> Result<KeyValue> {
        match self {
            Store::Redb(s) => s.delete(key, precondition).await,
        }
    }

    /// Events for keys under `prefix` with revision > `after`. Replays from the history
    /// window, then follows live writes without gap or duplicate.
    pub fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        match self {
            Store::Redb(s) => s.watch(prefix, after),
        }
    }
}

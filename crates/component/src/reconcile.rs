//! The one reconcile loop every controller runs (client-go's workqueue with a
//! rate-limited requeue): a keyed, de-duplicating queue with a debounce, per-key exponential
//! back-off on failure, bounded concurrency and never two reconciles of one key at once; and
//! the bookkeeping of a reconcile's own writes, so the next pass never works from a cache
//! older than them (which could otherwise create duplicate objects).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use kube::Resource;
use kube::api::{DeleteParams, Preconditions};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::informer::{Informer, Seen, Watched};

/// What an event makes dirty.
#[derive(Debug, Clone)]
pub enum Dirty<Key> {
    Key(Key),
    /// Everything the reconciler knows of (a relist finished, or a change touching all).
    All,
}

/// A controller: the keys it knows of and how to reconcile one.
pub trait Reconciler: Sync {
    type Key: Clone + Ord + Hash + Debug + Send + Sync;

    /// Every key there is to reconcile (used at start and on [`Dirty::All`]).
    fn all(&self) -> Vec<Self::Key>;

    /// Brings one key to its desired state; `false` retries it with back-off.
    fn reconcile(&self, key: &Self::Key) -> impl Future<Output = bool> + Send;
}

/// Timing of a [`run`] loop.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// Wait after an event before reconciling, so bursts collapse into one pass.
    pub debounce: Duration,
    /// First retry delay after a failed reconcile; doubles per failure up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Reconciles running at once.
    pub concurrency: usize,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            debounce: Duration::from_millis(50),
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            concurrency: 1,
        }
    }
}

/// The back-off after `failures` failures in a row.
pub fn backoff(opts: &QueueOptions, failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX);
    opts.base_backoff.saturating_mul(factor).min(opts.max_backoff)
}

/// Runs `r` on the keys `rx` makes dirty until `rx` closes. Everything is reconciled once at
/// start.
pub async fn run<R: Reconciler>(r: &R, mut rx: mpsc::UnboundedReceiver<Dirty<R::Key>>, opts: QueueOptions) {
    let mut pending: BTreeMap<R::Key, Instant> = BTreeMap::new();
    let mut failures: HashMap<R::Key, u32> = HashMap::new();
    let mut running: HashSet<R::Key> = HashSet::new();
    let mut inflight = FuturesUnordered::new();
    let concurrency = opts.concurrency.max(1);
    mark_all(r, &mut pending, Instant::now());
    loop {
        // The earliest due key that is not running (a running key waits for its reconcile).
        let next = pending.iter().filter(|(k, _)| !running.contains(*k)).map(|(_, t)| *t).min();
        let can_start = running.len() < concurrency;
        tokio::select! {
            d = rx.recv() => match d {
                Some(Dirty::Key(k)) => mark(&mut pending, k, Instant::now() + opts.debounce),
                Some(Dirty::All) => mark_all(r, &mut pending, Instant::now() + opts.debounce),
                None => return,
            },
            Some((key, ok)) = inflight.next(), if !inflight.is_empty() => {
                running.remove(&key);
                if ok {
                    failures.remove(&key);
                } else {
                    let n = failures.entry(key.clone()).or_insert(0);
                    *n += 1;
                    let delay = backoff(&opts, *n);
                    tracing::debug!(key = ?key, failures = *n, ?delay, "reconcile failed; requeued");
                    mark(&mut pending, key, Instant::now() + delay);
                }
            }
            _ = sleep_until(next), if can_start => {
                let now = Instant::now();
                let due: Vec<R::Key> = pending
                    .iter()
                    .filter(|(k, t)| **t <= now && !running.contains(*k))
                    .map(|(k, _)| k.clone())
                    .take(concurrency - running.len())
                    .collect();
                for key in due {
                    pending.remove(&key);
                    running.insert(key.clone());
                    inflight.push(async move {
                        let ok = r.reconcile(&key).await;
                        (key, ok)
                    });
                }
            }
        }
    }
}

fn mark<K: Ord>(pending: &mut BTreeMap<K, Instant>, key: K, due: Instant) {
    let t = pending.entry(key).or_insert(due);
    if due < *t {
        *t = due;
    }
}

fn mark_all<R: Reconciler>(r: &R, pending: &mut BTreeMap<R::Key, Instant>, due: Instant) {
    for k in r.all() {
        mark(pending, k, due);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How long a reconcile waits for its informers to show its own writes.
pub const OWN_WRITES_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of one write, as the next reconcile must see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Stored at this resourceVersion.
    Stored { name: String, resource_version: String },
    /// Deleted (or already gone).
    Gone { name: String },
    /// Failed, or refused as stale (conflict, not found): retry.
    Failed,
}

impl Written {
    /// The outcome of a create, replace or patch.
    pub fn stored<K: Resource>(ns: &str, what: &str, r: Result<K, kube::Error>) -> Written {
        match r {
            Ok(o) => {
                let meta = o.meta();
                tracing::debug!(namespace = %ns, name = ?meta.name, "{what}");
                Written::Stored {
                    name: meta.name.clone().unwrap_or_default(),
                    resource_version: meta.resource_version.clone().unwrap_or_default(),
                }
            }
            Err(e) => {
                match api_code(&e) {
                    Some(404 | 409) => tracing::debug!(namespace = %ns, error = %e, "{what}: stale view; requeued"),
                    _ => tracing::warn!(namespace = %ns, error = %e, "{what} failed; requeued"),
                }
                Written::Failed
            }
        }
    }

    /// The outcome of a delete; not found counts as deleted.
    pub fn deleted<T>(ns: &str, what: &str, name: &str, r: Result<T, kube::Error>) -> Written {
        match r {
            Ok(_) => Written::Gone { name: name.to_owned() },
            Err(e) if api_code(&e) == Some(404) => Written::Gone { name: name.to_owned() },
            Err(e) => {
                match api_code(&e) {
                    Some(409) => tracing::debug!(namespace = %ns, name, error = %e, "{what}: stale view; requeued"),
                    _ => tracing::warn!(namespace = %ns, name, error = %e, "{what} failed; requeued"),
                }
                Written::Failed
            }
        }
    }

    pub fn ok(&self) -> bool {
        !matches!(self, Written::Failed)
    }
}

/// Whether every write succeeded and `informer` shows them (within [`OWN_WRITES_TIMEOUT`]).
pub async fn settled<K: Watched>(informer: &Informer<K>, ns: &str, writes: &[Written]) -> bool {
    let wanted: Vec<(String, String, Seen)> = writes
        .iter()
        .filter_map(|w| match w {
            Written::Stored { name, resource_version } => {
                Some((ns.to_owned(), name.clone(), Seen::AtLeast(resource_version.clone())))
            }
            Written::Gone { name } => Some((ns.to_owned(), name.clone(), Seen::Gone)),
            Written::Failed => None,
        })
        .collect();
    let seen = wanted.is_empty() || informer.wait_until(&wanted, OWN_WRITES_TIMEOUT).await;
    if !seen {
        tracing::warn!(namespace = %ns, kind = %K::Wire::kind(&()), "watches did not show our writes in time; requeued");
    }
    seen && writes.iter().all(Written::ok)
}

/// Delete options that only delete the object with this UID (not a newer one of the same name).
pub fn delete_params(uid: Option<String>) -> DeleteParams {
    DeleteParams {
        preconditions: uid.map(|uid| Preconditions { uid: Some(uid), resource_version: None }),
        ..DeleteParams::default()
    }
}

/// The HTTP status of an API error.
pub fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        keys: Vec<u32>,
        calls: Mutex<Vec<u32>>,
        concurrent: AtomicUsize,
        max_concurrent: AtomicUsize,
        fail_first: Mutex<HashSet<u32>>,
    }

    impl Reconciler for Counting {
        type Key = u32;
        fn all(&self) -> Vec<u32> {
            self.keys.clone()
        }
        async fn reconcile(&self, key: &u32) -> bool {
            let now = self.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_concurrent.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            self.concurrent.fetch_sub(1, Ordering::SeqCst);
            self.calls.lock().unwrap().push(*key);
            !self.fail_first.lock().unwrap().remove(key)
        }
    }

    fn counting(keys: Vec<u32>, fail: &[u32]) -> Counting {
        Counting {
            keys,
            calls: Mutex::default(),
            concurrent: AtomicUsize::new(0),
            max_concurrent: AtomicUsize::new(0),
            fail_first: Mutex::new(fail.iter().copied().collect()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bursts_collapse_failures_back_off_and_concurrency_is_bounded() {
        let r = counting(vec![1, 2, 3, 4], &[2]);
        let (tx, rx) = mpsc::unbounded_channel();
        let opts = QueueOptions { concurrency: 2, ..QueueOptions::default() };
        let driver = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            for _ in 0..100 {
                tx.send(Dirty::Key(3)).unwrap();
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(tx);
        };
        tokio::join!(run(&r, rx, opts), driver);
        let calls = r.calls.lock().unwrap().clone();
        // Start: 1..4 once; 2 failed and came back after its back-off; the burst of 100 on 3
        // became one reconcile.
        assert_eq!(calls.iter().filter(|k| **k == 2).count(), 2, "{calls:?}");
        assert_eq!(calls.iter().filter(|k| **k == 3).count(), 2, "{calls:?}");
        assert_eq!(calls.iter().filter(|k| **k == 1).count(), 1, "{calls:?}");
        assert_eq!(r.max_concurrent.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let opts = QueueOptions::default();
        assert_eq!(backoff(&opts, 1), Duration::from_millis(500));
        assert_eq!(backoff(&opts, 2), Duration::from_secs(1));
        assert_eq!(backoff(&opts, 4), Duration::from_secs(4));
        assert_eq!(backoff(&opts, 40), Duration::from_secs(30));
    }
}

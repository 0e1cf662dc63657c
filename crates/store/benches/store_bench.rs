//! Write throughput of the embedded store: creates/sec from 64 concurrent tasks (group
//! commit) against the same store driven by one task at a time (one fsync per write), measured
//! in the same run on the same disk.
//!
//! Run: `cargo bench -p store --bench store_bench`
//! (`STORE_BENCH_WRITES=n` sets the number of concurrent creates, default 20000.)

use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;
use store::{Options, RedbStore};

const TASKS: usize = 64;

fn payload() -> Bytes {
    // About the size of a small Service object as JSON.
    Bytes::from(format!("{{\"metadata\":{{\"name\":\"x\"}},\"spec\":\"{}\"}}", "s".repeat(900)))
}

async fn sequential(store: &RedbStore, writes: usize) -> f64 {
    let value = payload();
    let start = Instant::now();
    for i in 0..writes {
        store.create(&format!("seq/{i:08}"), value.clone()).await.expect("create");
    }
    writes as f64 / start.elapsed().as_secs_f64()
}

async fn concurrent(store: Arc<RedbStore>, writes: usize) -> f64 {
    let value = payload();
    let per_task = writes.div_ceil(TASKS);
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            let value = value.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    store.create(&format!("par/{t:03}/{i:08}"), value.clone()).await.expect("create");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    (per_task * TASKS) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let writes: usize = std::env::var("STORE_BENCH_WRITES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RedbStore::open(dir.path(), Options::default()).expect("open"));

    let seq = sequential(&store, (writes / 10).max(100)).await;
    let before = store.commit_stats();
    let par = concurrent(store.clone(), writes).await;
    let after = store.commit_stats();
    let commits = after.commits - before.commits;
    let batched = after.writes - before.writes;

    println!("store_bench: {TASKS} concurrent tasks, {batched} creates of ~1 KiB");
    println!("  1 task (one commit per write): {seq:>10.0} creates/s");
    println!("  {TASKS} tasks (group commit):      {par:>10.0} creates/s");
    println!(
        "  ratio {:.1}x; {commits} commits, {:.1} writes/commit, largest batch {}",
        par / seq,
        batched as f64 / commits.max(1) as f64,
        after.largest_batch
    );
}

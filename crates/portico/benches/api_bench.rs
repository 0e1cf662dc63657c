//! API server benchmark (a harness, not a test): writes/s and latency of concurrent creates,
//! list time for JSON and Table, `kubectl get` wall time, watch delivery latency for 1 vs 100
//! watchers, and resident memory with the objects stored.
//!
//! Run: `cargo bench -p portico --bench api_bench` (BENCH_OBJECTS, BENCH_CONCURRENCY to change).

#[path = "../tests/common/mod.rs"]
mod common;

use common::bench::{env_usize, percentile, rss_kib};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn config_map(name: &str, annotations: BTreeMap<String, String>) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.to_string());
    cm.metadata.labels = Some(BTreeMap::from([("app".to_string(), "bench".to_string())]));
    cm.metadata.annotations = Some(annotations);
    cm.data = Some(BTreeMap::from([("key".to_string(), "x".repeat(200))]));
    cm
}

async fn make_namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.into());
    api.create(&PostParams::default(), &ns).await.expect("namespace");
}

/// Creates `count` ConfigMaps from `concurrency` tasks; returns per-request latencies and wall time.
async fn create_burst(
    client: &kube::Client,
    ns: &str,
    prefix: &str,
    count: usize,
    concurrency: usize,
) -> (Vec<Duration>, Duration) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let api = api.clone();
        let next = next.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return lat;
                }
                let sent = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos().to_string();
                let cm = config_map(&format!("{prefix}-{i}"), BTreeMap::from([("bench/sent".to_string(), sent)]));
                let t = Instant::now();
                api.create(&PostParams::default(), &cm).await.expect("create");
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let wall = started.elapsed();
    all.sort();
    (all, wall)
}

async fn timed_raw_get(client: &kube::Client, path: &str, accept: &str) -> (Duration, usize) {
    let req = http::Request::get(path).header("Accept", accept).body(Vec::new()).unwrap();
    let t = Instant::now();
    let text = client.request_text(req).await.expect("list");
    (t.elapsed(), text.len())
}

/// Starts `watchers` watches, creates `events` objects, and returns delivery latencies
/// (create sent -> event received) over all watchers.
async fn watch_latency(client: &kube::Client, ns: &str, watchers: usize, events: usize) -> Vec<Duration> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let rv = api.list(&ListParams::default().limit(1)).await.unwrap().metadata.resource_version.unwrap();
    let mut handles = Vec::new();
    for _ in 0..watchers {
        let api = api.clone();
        let rv = rv.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(events);
            let mut stream = api.watch(&WatchParams::default().timeout(290), &rv).await.unwrap().boxed();
            while lat.len() < events {
                match stream.try_next().await {
                    Ok(Some(WatchEvent::Added(cm))) => {
                        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
                        let sent: u128 = cm.metadata.annotations.unwrap()["bench/sent"].parse().unwrap();
                        lat.push(Duration::from_nanos((now.saturating_sub(sent)) as u64));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    create_burst(client, ns, &format!("w{watchers}"), events, 8).await;
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    assert_eq!(all.len(), watchers * events, "every watcher saw every event");
    all.sort();
    all
}

#[tokio::main]
async fn main() {
    let objects = env_usize("BENCH_OBJECTS", 10_000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 32);
    let server = common::Server::start();
    let client = server.client().await;
    let pid = server.child.as_ref().unwrap().id();
    let rss_empty = rss_kib(pid);
    make_namespace(&client, "bench").await;

    println!("# Portico API server benchmark ({objects} ConfigMaps, {concurrency} concurrent clients)");
    let (lat, wall) = create_burst(&client, "bench", "cm", objects, concurrency).await;
    println!(
        "create: {:.0} writes/s, p50 {}, p99 {}, wall {:.2} s",
        objects as f64 / wall.as_secs_f64(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        wall.as_secs_f64()
    );

    let rss_written = rss_kib(pid);
    let path = "/api/v1/namespaces/bench/configmaps";
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    for _ in 0..2 {
        // first round warms the page cache
        timed_raw_get(&client, path, "application/json").await;
    }
    let (json_t, json_len) = timed_raw_get(&client, path, "application/json").await;
    let (table_t, table_len) = timed_raw_get(&client, path, table).await;
    println!("list {objects} as JSON: {} ({} MiB)", ms(json_t), json_len / (1 << 20));
    println!("list {objects} as Table: {} ({} MiB)", ms(table_t), table_len / (1 << 20));
    let t = Instant::now();
    let out = server.kubectl(&["get", "configmaps", "-n", "bench", "--no-headers"]);
    assert!(out.status.success());
    let rows = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(rows, objects);
    println!("kubectl get configmaps ({rows} rows): {}", ms(t.elapsed()));

    let rss = rss_kib(pid);
    println!(
        "resident memory: {} MiB empty, {} MiB with {objects} objects written, {} MiB after the lists",
        rss_empty / 1024,
        rss_written / 1024,
        rss / 1024
    );

    make_namespace(&client, "watch1").await;
    make_namespace(&client, "watch100").await;
    let events = env_usize("BENCH_WATCH_EVENTS", 1000);
    let one = watch_latency(&client, "watch1", 1, events).await;
    let hundred = watch_latency(&client, "watch100", 100, events).await;
    println!(
        "watch delivery, 1 watcher: p50 {}, p99 {}; 100 watchers: p50 {}, p99 {} ({events} events each)",
        ms(percentile(&one, 0.5)),
        ms(percentile(&one, 0.99)),
        ms(percentile(&hundred, 0.5)),
        ms(percentile(&hundred, 0.99)),
    );
}

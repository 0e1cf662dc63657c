//! The proxy's Prometheus metrics under kube-proxy's names, so dashboards and alerts written
//! for kube-proxy work unchanged.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

pub struct Metrics {
    pub sync_duration: Histogram,
    pub sync_full_duration: Histogram,
    pub sync_partial_duration: Histogram,
    pub network_programming_duration: Histogram,
    pub last_sync_timestamp: Gauge<f64, AtomicU64>,
    pub endpoint_changes: Counter,
    pub service_changes: Counter,
    pub sync_failures: Family<Vec<(&'static str, String)>, Counter>,
    pub conntrack_deleted: Counter,
}

impl Metrics {
    pub fn new() -> (Metrics, Registry) {
        // kube-proxy: exponential buckets from 1 ms, doubling (sync durations).
        let sync = || Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let m = Metrics {
            sync_duration: sync(),
            sync_full_duration: sync(),
            sync_partial_duration: sync(),
            // kube-proxy: 0.25 s .. 30 s and beyond; Portico's figures are far below, so finer
            // buckets at the low end.
            network_programming_duration: Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0,
            ]),
            last_sync_timestamp: Gauge::default(),
            endpoint_changes: Counter::default(),
            service_changes: Counter::default(),
            sync_failures: Family::default(),
            conntrack_deleted: Counter::default(),
        };
        let mut r = Registry::default();
        r.register(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
            m.sync_duration.clone(),
        );
        r.register(
            "kubeproxy_sync_full_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for full resyncs",
            m.sync_full_duration.clone(),
        );
        r.register(
            "kubeproxy_sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs",
            m.sync_partial_duration.clone(),
        );
        r.register(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds",
            m.network_programming_duration.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced",
            m.last_sync_timestamp.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_endpoint_changes",
            "Cumulative proxy rules Endpoint changes",
            m.endpoint_changes.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_service_changes",
            "Cumulative proxy rules Service changes",
            m.service_changes.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_failures",
            "Cumulative proxy rules sync failures, by data plane",
            m.sync_failures.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_conntrack_entries_deleted",
            "Stale UDP conntrack entries deleted after syncs",
            m.conntrack_deleted.clone(),
        );
        (m, r)
    }
}

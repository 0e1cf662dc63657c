//! Request metrics under ingress-nginx's names, so its dashboards keep working.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub namespace: String,
    pub ingress: String,
    pub service: String,
    pub host: String,
    pub path: String,
    pub method: String,
    pub status: String,
}

type Histograms = Family<RequestLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    /// A counter in meaning. ingress-nginx's name has no `_total`, which an OpenMetrics counter
    /// must carry, so it is exposed as a gauge that only grows: `rate()` works the same.
    pub requests: Family<RequestLabels, Gauge<u64, AtomicU64>>,
    pub request_duration: Histograms,
    pub config_updates: Counter,
    pub upstream_retries: Counter,
}

fn duration_histogram() -> Histogram {
    // ingress-nginx's buckets (prometheus.DefBuckets).
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
}

impl Metrics {
    pub fn new() -> (Metrics, Registry) {
        let m = Metrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            config_updates: Counter::default(),
            upstream_retries: Counter::default(),
        };
        let mut r = Registry::default();
        r.register("nginx_ingress_controller_requests", "The total number of client requests", m.requests.clone());
        r.register(
            "nginx_ingress_controller_request_duration_seconds",
            "The request processing time in seconds (until the last byte of the response)",
            m.request_duration.clone(),
        );
        r.register(
            "portico_ingress_config_updates",
            "Configuration changes applied (each without a reload)",
            m.config_updates.clone(),
        );
        r.register(
            "portico_ingress_upstream_retries",
            "Requests sent again to the next endpoint after a connection failure",
            m.upstream_retries.clone(),
        );
        (m, r)
    }
}

//! The API server's Prometheus metrics, under kube-apiserver's names, in a prometheus-client
//! registry (the one metrics library of the project). The Service allocators' gauges and
//! counters are read at scrape time by a collector.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::services::ServiceAllocators;

const BUCKETS: [f64; 18] =
    [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 10.0, 30.0, 60.0];

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    durations: Family<Labels, Histogram, fn() -> Histogram>,
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

impl Metrics {
    pub fn new(allocators: Option<Arc<ServiceAllocators>>) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let durations = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, resource and HTTP response code.",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb and resource.",
            durations.clone(),
        );
        if let Some(allocators) = allocators {
            registry.register_collector(Box::new(AllocatorCollector(allocators)));
        }
        Metrics { registry, requests, durations }
    }

    pub fn observe(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        let verb = verb.to_ascii_uppercase();
        let labels = vec![("code", code.to_string()), ("resource", resource.to_owned()), ("verb", verb.clone())];
        self.requests.get_or_create(&labels).inc();
        // Watches last as long as the client wants; like kube-apiserver, keep them out of latency.
        if verb == "WATCH" {
            return;
        }
        let labels = vec![("resource", resource.to_owned()), ("verb", verb)];
        self.durations.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// kube-apiserver's allocator metrics, read from the allocators at scrape time.
struct AllocatorCollector(Arc<ServiceAllocators>);

impl std::fmt::Debug for AllocatorCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AllocatorCollector")
    }
}

impl Collector for AllocatorCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let snapshot = self.0.metrics_snapshot();
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, values: &[(Labels, u64)]| {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, v) in values {
                ConstGauge::new(*v as i64).encode(m.encode_family(labels)?)?;
            }
            Ok::<_, std::fmt::Error>(())
        };
        let counter = |encoder: &mut DescriptorEncoder, name: &str, help: &str, values: &[(Labels, u64)]| {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, v) in values {
                ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
            }
            Ok::<_, std::fmt::Error>(())
        };
        let per_cidr = |f: &dyn Fn(&crate::services::CidrMetrics) -> u64| -> Vec<(Labels, u64)> {
            snapshot.cidrs.iter().map(|c| (vec![("cidr", c.cidr.clone())], f(c))).collect()
        };
        let per_cidr_scope = |st: &dyn Fn(&crate::services::CidrMetrics) -> u64,
                              dy: &dyn Fn(&crate::services::CidrMetrics) -> u64|
         -> Vec<(Labels, u64)> {
            snapshot
                .cidrs
                .iter()
                .flat_map(|c| {
                    [
                        (vec![("cidr", c.cidr.clone()), ("scope", "static".to_owned())], st(c)),
                        (vec![("cidr", c.cidr.clone()), ("scope", "dynamic".to_owned())], dy(c)),
                    ]
                })
                .collect()
        };
        let scope = |st: u64, dy: u64| {
            vec![(vec![("scope", "static".to_owned())], st), (vec![("scope", "dynamic".to_owned())], dy)]
        };
        gauge(
            &mut encoder,
            "kube_apiserver_clusterip_allocator_allocated_ips",
            "Gauge measuring the number of allocated IPs for Services",
            &per_cidr(&|c| c.used),
        )?;
        gauge(
            &mut encoder,
            "kube_apiserver_clusterip_allocator_available_ips",
            "Gauge measuring the number of available IPs for Services",
            &per_cidr(&|c| c.free),
        )?;
        counter(
            &mut encoder,
            "kube_apiserver_clusterip_allocator_allocation",
            "Number of Cluster IPs allocations",
            &per_cidr_scope(&|c| c.allocations_static, &|c| c.allocations_dynamic),
        )?;
        counter(
            &mut encoder,
            "kube_apiserver_clusterip_allocator_allocation_errors",
            "Number of errors trying to allocate Cluster IPs",
            &per_cidr_scope(&|c| c.errors_static, &|c| c.errors_dynamic),
        )?;
        let p = &snapshot.ports;
        let unlabelled = |v: u64| vec![(Vec::new(), v)];
        gauge(
            &mut encoder,
            "kube_apiserver_nodeport_allocator_allocated_ports",
            "Gauge measuring the number of allocated NodePorts for Services",
            &unlabelled(p.used),
        )?;
        gauge(
            &mut encoder,
            "kube_apiserver_nodeport_allocator_available_ports",
            "Gauge measuring the number of available NodePorts for Services",
            &unlabelled(p.free),
        )?;
        counter(
            &mut encoder,
            "kube_apiserver_nodeport_allocator_allocation",
            "Number of NodePort allocations",
            &scope(p.allocations_static, p.allocations_dynamic),
        )?;
        counter(
            &mut encoder,
            "kube_apiserver_nodeport_allocator_allocation_errors",
            "Number of errors trying to allocate NodePort",
            &scope(p.errors_static, p.errors_dynamic),
        )
    }
}

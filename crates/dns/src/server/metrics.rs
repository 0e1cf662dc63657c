//! Prometheus metrics under CoreDNS's names (plugin/metrics, cache, forward), so dashboards
//! and alerts written for CoreDNS work unchanged. Counters are plain atomics indexed by label
//! values, cheap enough for every query on the hot path; a `prometheus-client` collector reads
//! them at scrape time (the one exposition library of every component).

use crate::wire::{rcode, rtype};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// CoreDNS's monitored query types; everything else is counted as "other".
const TYPES: [(u16, &str); 13] = [
    (rtype::A, "A"),
    (rtype::AAAA, "AAAA"),
    (rtype::NS, "NS"),
    (rtype::PTR, "PTR"),
    (rtype::SOA, "SOA"),
    (rtype::SRV, "SRV"),
    (rtype::MX, "MX"),
    (rtype::TXT, "TXT"),
    (rtype::CNAME, "CNAME"),
    (rtype::ANY, "ANY"),
    (rtype::AXFR, "AXFR"),
    (rtype::IXFR, "IXFR"),
    (rtype::HINFO, "HINFO"),
];
const N_TYPES: usize = TYPES.len() + 1;
/// plugin.TimeBuckets: 0.25 ms doubling up to about 8 s.
const BUCKETS: usize = 16;
const RCODES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp = 0,
    Tcp = 1,
}

/// Which part of the server produced a response (CoreDNS's `plugin` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Kubernetes = 0,
    Cache = 1,
    Forward = 2,
    Server = 3,
}
const SOURCES: [&str; 4] = ["kubernetes", "cache", "forward", ""];

fn type_index(t: u16) -> usize {
    TYPES.iter().position(|(v, _)| *v == t).unwrap_or(TYPES.len())
}

fn type_name(i: usize) -> &'static str {
    TYPES.get(i).map(|(_, n)| *n).unwrap_or("other")
}

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Counts into the first bucket that holds `d` (cumulated when rendered).
    fn observe(&self, d: Duration) {
        let nanos = d.as_nanos() as u64;
        // Bucket i holds up to 250 µs * 2^i.
        let i = (nanos.saturating_sub(1) / 250_000).checked_ilog2().map_or(0, |l| l as usize + 1);
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }
}

pub struct Metrics {
    server: String,
    requests: [[[AtomicU64; N_TYPES]; 2]; 2],
    responses: [[AtomicU64; RCODES]; 4],
    durations: [Histogram; N_TYPES],
    pub cache_hits_success: AtomicU64,
    pub cache_hits_denial: AtomicU64,
    pub cache_misses: AtomicU64,
    pub forward_rejects: AtomicU64,
    forward: Vec<(String, AtomicU64, [AtomicU64; RCODES])>,
    pub loops_detected: AtomicU64,
}

impl Metrics {
    pub fn new(server: String, upstreams: &[std::net::SocketAddr]) -> Metrics {
        Metrics {
            server,
            requests: Default::default(),
            responses: Default::default(),
            durations: Default::default(),
            cache_hits_success: AtomicU64::new(0),
            cache_hits_denial: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            forward_rejects: AtomicU64::new(0),
            forward: upstreams.iter().map(|u| (u.to_string(), AtomicU64::new(0), Default::default())).collect(),
            loops_detected: AtomicU64::new(0),
        }
    }

    pub fn request(&self, proto: Proto, ipv6: bool, qtype: u16) {
        self.requests[proto as usize][ipv6 as usize][type_index(qtype)].fetch_add(1, Relaxed);
    }

    pub fn response(&self, source: Source, code: u8, qtype: u16, took: Duration) {
        self.responses[source as usize][(code as usize) % RCODES].fetch_add(1, Relaxed);
        self.durations[type_index(qtype)].observe(took);
    }

    pub fn forwarded(&self, upstream: usize, code: Option<u8>) {
        if let Some((_, requests, responses)) = self.forward.get(upstream) {
            requests.fetch_add(1, Relaxed);
            if let Some(c) = code {
                responses[(c as usize) % RCODES].fetch_add(1, Relaxed);
            }
        }
    }

    /// Writes every metric through `encoder`; `cache_entries` and the zone sizes are read at
    /// scrape time.
    pub fn encode(
        &self,
        mut encoder: DescriptorEncoder,
        cache_entries: usize,
        services: usize,
        endpoints: usize,
    ) -> fmt::Result {
        let s = self.server.as_str();
        let mut m = encoder.encode_descriptor(
            "coredns_dns_requests",
            "Counter of DNS requests made per zone, protocol and family.",
            None,
            MetricType::Counter,
        )?;
        for (p, proto) in ["udp", "tcp"].iter().enumerate() {
            for fam in 0..2 {
                for t in 0..N_TYPES {
                    let v = self.requests[p][fam][t].load(Relaxed);
                    if v > 0 {
                        let family = if fam == 0 { "1" } else { "2" };
                        let labels = [
                            ("server", s),
                            ("zone", "."),
                            ("view", ""),
                            ("proto", proto),
                            ("family", family),
                            ("type", type_name(t)),
                        ];
                        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
                    }
                }
            }
        }
        let mut m = encoder.encode_descriptor(
            "coredns_dns_responses",
            "Counter of response status codes.",
            None,
            MetricType::Counter,
        )?;
        for (src, plugin) in SOURCES.iter().enumerate() {
            for code in 0..RCODES {
                let v = self.responses[src][code].load(Relaxed);
                if v > 0 {
                    let labels = [
                        ("server", s),
                        ("zone", "."),
                        ("view", ""),
                        ("rcode", rcode::name(code as u8)),
                        ("plugin", plugin),
                    ];
                    ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        let mut m = encoder.encode_descriptor(
            "coredns_dns_request_duration_seconds",
            "Histogram of the time (in seconds) each request took.",
            None,
            MetricType::Histogram,
        )?;
        for (t, h) in self.durations.iter().enumerate() {
            let count = h.count.load(Relaxed);
            if count == 0 {
                continue;
            }
            let mut buckets = Vec::with_capacity(BUCKETS + 1);
            let (mut bound, mut counted) = (0.00025, 0);
            for b in &h.buckets {
                let n = b.load(Relaxed);
                counted += n;
                buckets.push((bound, n));
                bound *= 2.0;
            }
            buckets.push((f64::INFINITY, count.saturating_sub(counted)));
            let sum = h.sum_nanos.load(Relaxed) as f64 / 1e9;
            let labels = [("server", s), ("zone", "."), ("view", ""), ("type", type_name(t))];
            m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        let mut m = encoder.encode_descriptor(
            "coredns_cache_entries",
            "The number of elements in the cache.",
            None,
            MetricType::Gauge,
        )?;
        let labels = [("server", s), ("type", "all"), ("zones", "."), ("view", "")];
        ConstGauge::new(cache_entries as i64).encode(m.encode_family(&labels)?)?;
        let mut m =
            encoder.encode_descriptor("coredns_cache_hits", "The count of cache hits.", None, MetricType::Counter)?;
        for (kind, v) in [("success", &self.cache_hits_success), ("denial", &self.cache_hits_denial)] {
            let labels = [("server", s), ("type", kind), ("zones", "."), ("view", "")];
            ConstCounter::new(v.load(Relaxed)).encode(m.encode_family(&labels)?)?;
        }
        let mut m = encoder.encode_descriptor(
            "coredns_cache_misses",
            "The count of cache misses.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.cache_misses.load(Relaxed)).encode(m.encode_family(&[
            ("server", s),
            ("zones", "."),
            ("view", ""),
        ])?)?;
        let mut m = encoder.encode_descriptor(
            "coredns_forward_requests",
            "Counter of requests made per upstream.",
            None,
            MetricType::Counter,
        )?;
        for (to, n, _) in &self.forward {
            ConstCounter::new(n.load(Relaxed)).encode(m.encode_family(&[("to", to.as_str())])?)?;
        }
        let mut m = encoder.encode_descriptor(
            "coredns_forward_responses",
            "Counter of responses received per upstream.",
            None,
            MetricType::Counter,
        )?;
        for (to, _, codes) in &self.forward {
            for (c, v) in codes.iter().enumerate() {
                let v = v.load(Relaxed);
                if v > 0 {
                    let labels = [("to", to.as_str()), ("rcode", rcode::name(c as u8))];
                    ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        let m = encoder.encode_descriptor(
            "coredns_forward_max_concurrent_rejects",
            "Counter of the number of queries rejected because the concurrent queries were at maximum.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.forward_rejects.load(Relaxed)).encode(m)?;
        let m = encoder.encode_descriptor(
            "portico_dns_forward_loops_detected",
            "Upstreams found to forward this server's own probe back to it.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.loops_detected.load(Relaxed)).encode(m)?;
        let mut m = encoder.encode_descriptor(
            "portico_dns_zone_objects",
            "Services and ready endpoints held in the cluster zone.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(services as i64).encode(m.encode_family(&[("kind", "services")])?)?;
        ConstGauge::new(endpoints as i64).encode(m.encode_family(&[("kind", "endpoints")])?)?;
        Ok(())
    }

    /// The exposition on its own (tests).
    pub fn render(self: &Arc<Self>, cache_entries: usize, services: usize, endpoints: usize) -> String {
        #[derive(Debug)]
        struct Fixed(Arc<Metrics>, usize, usize, usize);
        impl Collector for Fixed {
            fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
                self.0.encode(encoder, self.1, self.2, self.3)
            }
        }
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(self.clone(), cache_entries, services, endpoints)));
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").field("server", &self.server).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_appear_under_coredns_names() {
        let m = Arc::new(Metrics::new("dns://:53".into(), &["127.0.0.1:5300".parse().unwrap()]));
        m.request(Proto::Udp, false, rtype::A);
        m.request(Proto::Tcp, true, 99);
        m.response(Source::Kubernetes, rcode::NXDOMAIN, rtype::A, Duration::from_micros(100));
        m.forwarded(0, Some(rcode::NOERROR));
        let text = m.render(3, 1, 2);
        assert!(text.contains(
            "coredns_dns_requests_total{server=\"dns://:53\",zone=\".\",view=\"\",proto=\"udp\",family=\"1\",type=\"A\"} 1"
        ));
        assert!(text.contains("proto=\"tcp\",family=\"2\",type=\"other\"} 1"));
        assert!(text.contains("rcode=\"NXDOMAIN\",plugin=\"kubernetes\"} 1"));
        assert!(text.contains("coredns_dns_request_duration_seconds_bucket{le=\"0.00025\",server=\"dns://:53\",zone=\".\",view=\"\",type=\"A\"} 1"));
        m.response(Source::Kubernetes, rcode::NOERROR, rtype::A, Duration::from_micros(600));
        let text = m.render(3, 1, 2);
        assert!(text.contains("{le=\"0.0005\",server=\"dns://:53\",zone=\".\",view=\"\",type=\"A\"} 1"), "{text}");
        assert!(text.contains("{le=\"0.001\",server=\"dns://:53\",zone=\".\",view=\"\",type=\"A\"} 2"), "{text}");
        assert!(text.contains(
            "coredns_dns_request_duration_seconds_count{server=\"dns://:53\",zone=\".\",view=\"\",type=\"A\"} 2"
        ));
        assert!(text.contains("coredns_cache_entries{server=\"dns://:53\",type=\"all\",zones=\".\",view=\"\"} 3"));
        assert!(text.contains("coredns_forward_responses_total{to=\"127.0.0.1:5300\",rcode=\"NOERROR\"} 1"));
        assert!(text.contains("coredns_forward_max_concurrent_rejects_total 0"));
    }
}

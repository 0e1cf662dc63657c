//! Prometheus metrics under CoreDNS's names (plugin/metrics, cache, forward), so dashboards
//! and alerts written for CoreDNS work unchanged. Counters are plain atomics indexed by label
//! values, cheap enough for every query on the hot path.

use crate::wire::{rcode, rtype};
use std::fmt::Write;
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

    /// The Prometheus text exposition; `cache_entries` and `zone` sizes are read at scrape time.
    pub fn render(&self, cache_entries: usize, services: usize, endpoints: usize) -> String {
        let mut out = String::with_capacity(8192);
        let s = &self.server;
        out.push_str("# HELP coredns_dns_requests_total Counter of DNS requests made per zone, protocol and family.\n");
        out.push_str("# TYPE coredns_dns_requests_total counter\n");
        for (p, proto) in ["udp", "tcp"].iter().enumerate() {
            for fam in 0..2 {
                for t in 0..N_TYPES {
                    let v = self.requests[p][fam][t].load(Relaxed);
                    if v > 0 {
                        let family = if fam == 0 { 1 } else { 2 };
                        let _ = writeln!(
                            out,
                            "coredns_dns_requests_total{{server=\"{s}\",zone=\".\",view=\"\",proto=\"{proto}\",family=\"{family}\",type=\"{}\"}} {v}",
                            type_name(t)
                        );
                    }
                }
            }
        }
        out.push_str("# HELP coredns_dns_responses_total Counter of response status codes.\n");
        out.push_str("# TYPE coredns_dns_responses_total counter\n");
        for (src, plugin) in SOURCES.iter().enumerate() {
            for code in 0..RCODES {
                let v = self.responses[src][code].load(Relaxed);
                if v > 0 {
                    let _ = writeln!(
                        out,
                        "coredns_dns_responses_total{{server=\"{s}\",zone=\".\",view=\"\",rcode=\"{}\",plugin=\"{plugin}\"}} {v}",
                        rcode::name(code as u8)
                    );
                }
            }
        }
        out.push_str(
            "# HELP coredns_dns_request_duration_seconds Histogram of the time (in seconds) each request took.\n",
        );
        out.push_str("# TYPE coredns_dns_request_duration_seconds histogram\n");
        for (t, h) in self.durations.iter().enumerate() {
            let count = h.count.load(Relaxed);
            if count == 0 {
                continue;
            }
            let labels = format!("server=\"{s}\",zone=\".\",view=\"\",type=\"{}\"", type_name(t));
            let (mut bound, mut cumulative) = (0.00025, 0);
            for b in &h.buckets {
                cumulative += b.load(Relaxed);
                let _ = writeln!(
                    out,
                    "coredns_dns_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
                bound *= 2.0;
            }
            let _ = writeln!(out, "coredns_dns_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}");
            let sum = h.sum_nanos.load(Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "coredns_dns_request_duration_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "coredns_dns_request_duration_seconds_count{{{labels}}} {count}");
        }
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, lines: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in lines {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        };
        gauge(
            &mut out,
            "coredns_cache_entries",
            "The number of elements in the cache.",
            "gauge",
            &[(format!("server=\"{s}\",type=\"all\",zones=\".\",view=\"\""), cache_entries as u64)],
        );
        gauge(
            &mut out,
            "coredns_cache_hits_total",
            "The count of cache hits.",
            "counter",
            &[
                (
                    format!("server=\"{s}\",type=\"success\",zones=\".\",view=\"\""),
                    self.cache_hits_success.load(Relaxed),
                ),
                (format!("server=\"{s}\",type=\"denial\",zones=\".\",view=\"\""), self.cache_hits_denial.load(Relaxed)),
            ],
        );
        gauge(
            &mut out,
            "coredns_cache_misses_total",
            "The count of cache misses.",
            "counter",
            &[(format!("server=\"{s}\",zones=\".\",view=\"\""), self.cache_misses.load(Relaxed))],
        );
        let mut requests = Vec::new();
        let mut responses = Vec::new();
        for (to, n, codes) in &self.forward {
            requests.push((format!("to=\"{to}\""), n.load(Relaxed)));
            for (c, v) in codes.iter().enumerate() {
                let v = v.load(Relaxed);
                if v > 0 {
                    responses.push((format!("to=\"{to}\",rcode=\"{}\"", rcode::name(c as u8)), v));
                }
            }
        }
        gauge(
            &mut out,
            "coredns_forward_requests_total",
            "Counter of requests made per upstream.",
            "counter",
            &requests,
        );
        gauge(
            &mut out,
            "coredns_forward_responses_total",
            "Counter of responses received per upstream.",
            "counter",
            &responses,
        );
        gauge(
            &mut out,
            "coredns_forward_max_concurrent_rejects_total",
            "Counter of the number of queries rejected because the concurrent queries were at maximum.",
            "counter",
            &[(String::new(), self.forward_rejects.load(Relaxed))],
        );
        gauge(
            &mut out,
            "portico_dns_forward_loops_detected_total",
            "Upstreams found to forward this server's own probe back to it.",
            "counter",
            &[(String::new(), self.loops_detected.load(Relaxed))],
        );
        gauge(
            &mut out,
            "portico_dns_zone_objects",
            "Services and ready endpoints held in the cluster zone.",
            "gauge",
            &[("kind=\"services\"".into(), services as u64), ("kind=\"endpoints\"".into(), endpoints as u64)],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_appear_under_coredns_names() {
        let m = Metrics::new("dns://:53".into(), &["127.0.0.1:5300".parse().unwrap()]);
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
        assert!(text.contains("coredns_dns_request_duration_seconds_bucket{server=\"dns://:53\",zone=\".\",view=\"\",type=\"A\",le=\"0.00025\"} 1"));
        m.response(Source::Kubernetes, rcode::NOERROR, rtype::A, Duration::from_micros(600));
        let text = m.render(3, 1, 2);
        assert!(text.contains("type=\"A\",le=\"0.0005\"} 1"), "{text}");
        assert!(text.contains("type=\"A\",le=\"0.001\"} 2"), "{text}");
        assert!(text.contains(
            "coredns_dns_request_duration_seconds_count{server=\"dns://:53\",zone=\".\",view=\"\",type=\"A\"} 2"
        ));
        assert!(text.contains("coredns_cache_entries{server=\"dns://:53\",type=\"all\",zones=\".\",view=\"\"} 3"));
        assert!(text.contains("coredns_forward_responses_total{to=\"127.0.0.1:5300\",rcode=\"NOERROR\"} 1"));
        assert!(text.contains("coredns_forward_max_concurrent_rejects_total 0"));
    }
}

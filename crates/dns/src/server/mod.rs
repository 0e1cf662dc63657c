//! The request path: a packet in, an action out. Cluster names are answered synchronously
//! from the zone (on the socket's own thread); cached forwarded names too; only a cache miss
//! or an ExternalName chase goes to the async forwarder.

pub mod cache;
pub mod forward;
pub mod http;
pub mod metrics;
pub mod tcp;
pub mod udp;

use crate::wire::{self, Name, Query, QueryError, Record, ResponseBuilder, Section, rcode, rtype};
use crate::zone::{self, Outcome, ZoneConfig, ZoneData};
use cache::{Cache, CacheKey, Kind};
use forward::Forwarder;
use metrics::{Metrics, Proto, Source};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// Everything a query needs, shared by the UDP threads, the TCP tasks and the feed.
pub struct Shared {
    pub zone: RwLock<ZoneData>,
    pub config: ZoneConfig,
    pub cache: Cache,
    pub forwarder: Forwarder,
    pub metrics: Metrics,
}

/// What to do with a packet.
pub enum Action {
    Reply(Vec<u8>),
    /// Needs the network: finish with [`Shared::complete`].
    Pending(Pending),
    Drop,
}

pub struct Pending {
    query: Query,
    raw: Vec<u8>,
    proto: Proto,
    started: Instant,
    chase: Option<(Vec<Record>, Name)>,
}

impl Shared {
    pub fn new(config: ZoneConfig, cache: Cache, forwarder: Forwarder, metrics: Metrics) -> Arc<Shared> {
        Arc::new(Shared { zone: RwLock::new(ZoneData::default()), config, cache, forwarder, metrics })
    }

    fn zone(&self) -> std::sync::RwLockReadGuard<'_, ZoneData> {
        self.zone.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn handle(&self, packet: &[u8], proto: Proto, ipv6: bool) -> Action {
        let started = Instant::now();
        let query = match Query::parse(packet) {
            Ok(q) => q,
            Err(QueryError::Drop) => return Action::Drop,
            Err(QueryError::FormErr(h)) => {
                self.metrics.request(proto, ipv6, 0);
                self.metrics.response(Source::Server, rcode::FORMERR, 0, started.elapsed());
                return Action::Reply(ResponseBuilder::error_from_header(&h, rcode::FORMERR));
            }
        };
        self.metrics.request(proto, ipv6, query.qtype);
        let reply = |source: Source, bytes: Vec<u8>| {
            self.metrics.response(source, bytes[3] & 0xF, query.qtype, started.elapsed());
            Action::Reply(bytes)
        };
        if query.header.opcode() != 0 {
            return reply(Source::Server, ResponseBuilder::error_from_header(&query.header, rcode::NOTIMP));
        }
        if query.edns.is_some_and(|e| e.version > 0) {
            return reply(Source::Server, ResponseBuilder::badvers(&query));
        }
        if self.forwarder.is_returning_probe(&query.name, &self.metrics) {
            return reply(Source::Server, self.empty(&query, rcode::REFUSED, proto));
        }
        if query.qclass != wire::CLASS_IN || matches!(query.qtype, rtype::AXFR | rtype::IXFR) {
            return reply(Source::Server, self.empty(&query, rcode::REFUSED, proto));
        }
        // One read of the zone for the answer and, for a negative one, its SOA.
        let zone = self.zone();
        let outcome = zone::resolve(&zone, &self.config, &query.name, query.qtype);
        let limit = self.limit(&query, proto);
        match outcome {
            Outcome::Answer { answer, additional } => {
                let mut b = ResponseBuilder::new(&query, rcode::NOERROR, true, true, limit);
                b.push_all(Section::Answer, &answer);
                b.push_all(Section::Additional, &additional);
                reply(Source::Kubernetes, b.finish())
            }
            Outcome::NoData => reply(Source::Kubernetes, self.negative(&zone, &query, rcode::NOERROR, limit)),
            Outcome::NxDomain => reply(Source::Kubernetes, self.negative(&zone, &query, rcode::NXDOMAIN, limit)),
            Outcome::NotSynced => reply(Source::Kubernetes, self.empty(&query, rcode::SERVFAIL, proto)),
            Outcome::Chase { cnames, target } => {
                Action::Pending(Pending { query, raw: packet.to_vec(), proto, started, chase: Some((cnames, target)) })
            }
            Outcome::NotOurs => {
                if let Some((mut bytes, kind)) = self.cache.get(&CacheKey::of(&query), query.header.id, Instant::now())
                {
                    let counter = if kind == Kind::Success {
                        &self.metrics.cache_hits_success
                    } else {
                        &self.metrics.cache_hits_denial
                    };
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if bytes.len() > limit {
                        bytes = wire::truncated_copy(&bytes).unwrap_or(bytes);
                    }
                    return reply(Source::Cache, bytes);
                }
                self.metrics.cache_misses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Action::Pending(Pending { query, raw: packet.to_vec(), proto, started, chase: None })
            }
        }
    }

    /// Finishes a query that needed an upstream. Always answers (SERVFAIL when every
    /// upstream failed, REFUSED when too many queries are in flight).
    pub async fn complete(&self, p: Pending) -> Vec<u8> {
        let limit = self.limit(&p.query, p.proto);
        let (source, bytes) = match p.chase {
            Some((cnames, target)) => (Source::Kubernetes, self.chase(&p.query, cnames, &target, limit).await),
            None => match self.forwarder.forward(&p.raw, &self.metrics).await {
                Ok(mut answer) => {
                    self.cache.put(CacheKey::of(&p.query), &answer, Instant::now());
                    if answer.len() > limit {
                        answer = wire::truncated_copy(&answer).unwrap_or(answer);
                    }
                    (Source::Forward, answer)
                }
                Err(forward::ForwardError::Overloaded) => {
                    (Source::Forward, self.empty(&p.query, rcode::REFUSED, p.proto))
                }
                Err(e) => {
                    tracing::debug!(name = %p.query.name, error = %e, "forwarding failed");
                    (Source::Forward, self.empty(&p.query, rcode::SERVFAIL, p.proto))
                }
            },
        };
        self.metrics.response(source, bytes[3] & 0xF, p.query.qtype, p.started.elapsed());
        bytes
    }

    /// The CNAMEs, then whatever the upstream has for the target (CoreDNS: a failed lookup
    /// leaves the name with no data).
    async fn chase(&self, query: &Query, cnames: Vec<Record>, target: &Name, limit: usize) -> Vec<u8> {
        let lookup = wire::build_query(rand::random(), target, query.qtype);
        let target_query = Query::parse(&lookup).expect("a query we built parses");
        let key = CacheKey::of(&target_query);
        let upstream = match self.cache.get(&key, 0, Instant::now()) {
            Some((bytes, _)) => Some(bytes),
            None => match self.forwarder.forward(&lookup, &self.metrics).await {
                Ok(bytes) => {
                    self.cache.put(key, &bytes, Instant::now());
                    Some(bytes)
                }
                Err(_) => None,
            },
        };
        match upstream.and_then(|b| wire::parse_message(&b).ok()) {
            Some(m) => {
                let mut b = ResponseBuilder::new(query, rcode::NOERROR, true, true, limit);
                b.push_all(Section::Answer, &cnames);
                b.push_all(Section::Answer, &m.answers);
                b.finish()
            }
            None => self.negative(&self.zone(), query, rcode::NOERROR, limit),
        }
    }

    fn limit(&self, query: &Query, proto: Proto) -> usize {
        match proto {
            Proto::Udp => query.udp_limit(),
            Proto::Tcp => u16::MAX as usize,
        }
    }

    /// NXDOMAIN or NODATA: AA, the zone's SOA in authority (CoreDNS's BackendError, which
    /// leaves RA unset).
    fn negative(&self, zone: &ZoneData, query: &Query, code: u8, limit: usize) -> Vec<u8> {
        let soa = zone::soa_record(zone, &self.config);
        let mut b = ResponseBuilder::new(query, code, true, false, limit);
        b.push(Section::Authority, &soa);
        b.finish()
    }

    fn empty(&self, query: &Query, code: u8, proto: Proto) -> Vec<u8> {
        ResponseBuilder::new(query, code, false, true, self.limit(query, proto)).finish()
    }
}

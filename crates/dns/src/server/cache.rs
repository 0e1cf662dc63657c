//! The cache of forwarded answers: wire bytes as the upstream sent them, keyed by question
//! (name without case, type, class, EDNS presence and DO bit), kept for the answer's TTL
//! (RFC 2308 for negative answers) within CoreDNS's cache defaults. Hits are patched in place
//! (ID, remaining TTLs), never re-encoded. Sharded so the UDP threads rarely meet on a lock.
//! Time is passed in, so expiry is tested without sleeping.

use crate::wire::{self, Name, Query, rcode};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// CoreDNS's cache plugin: success answers at most 3600 s, denials at most 1800 s.
const MAX_SUCCESS_TTL: u32 = 3600;
const MAX_DENIAL_TTL: u32 = 1800;
const SHARDS: usize = 16;

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct CacheKey {
    name: Name,
    qtype: u16,
    qclass: u16,
    edns: bool,
    dnssec_ok: bool,
}

impl CacheKey {
    pub fn of(q: &Query) -> CacheKey {
        CacheKey {
            name: q.name.clone(),
            qtype: q.qtype,
            qclass: q.qclass,
            edns: q.edns.is_some(),
            dnssec_ok: q.edns.is_some_and(|e| e.dnssec_ok),
        }
    }
}

struct Entry {
    bytes: Vec<u8>,
    stored: Instant,
    ttl: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Success,
    Denial,
}

pub struct Cache {
    shards: Vec<Mutex<HashMap<CacheKey, Entry>>>,
    per_shard: usize,
    hasher: RandomState,
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        Cache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &CacheKey) -> &Mutex<HashMap<CacheKey, Entry>> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// The cached answer for `key` rewritten for a client with `id`, and whether it is a
    /// success or a denial.
    pub fn get(&self, key: &CacheKey, id: u16, now: Instant) -> Option<(Vec<u8>, Kind)> {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let entry = shard.get(key)?;
        let age = now.saturating_duration_since(entry.stored).as_secs();
        if age >= entry.ttl as u64 {
            shard.remove(key);
            return None;
        }
        let mut bytes = entry.bytes.clone();
        drop(shard);
        wire::patch_cached(&mut bytes, id, age as u32).ok()?;
        let kind = if bytes[3] & 0xF == rcode::NOERROR && bytes[6..8] != [0, 0] { Kind::Success } else { Kind::Denial };
        Some((bytes, kind))
    }

    /// Keeps an upstream's answer if it can be cached: NOERROR or NXDOMAIN, not truncated,
    /// with a TTL above zero (an answer with no records at all is not kept).
    pub fn put(&self, key: CacheKey, bytes: &[u8], now: Instant) {
        if bytes.len() < 12 || bytes[2] & 0x02 != 0 {
            return;
        }
        let code = bytes[3] & 0xF;
        let has_answers = bytes[6..8] != [0, 0];
        let cap = match code {
            rcode::NOERROR if has_answers => MAX_SUCCESS_TTL,
            rcode::NOERROR | rcode::NXDOMAIN => MAX_DENIAL_TTL,
            _ => return,
        };
        let Some(ttl) = wire::min_ttl(bytes).map(|t| t.min(cap)) else { return };
        if ttl == 0 {
            return;
        }
        let mut shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, e| now.saturating_duration_since(e.stored) < Duration::from_secs(e.ttl as u64));
            if shard.len() >= self.per_shard
                && let Some(victim) = shard.keys().next().cloned()
            {
                shard.remove(&victim);
            }
        }
        shard.insert(key, Entry { bytes: bytes.to_vec(), stored: now, ttl });
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map(|m| m.len()).unwrap_or(0)).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Record, RecordData, ResponseBuilder, Section};

    fn query(name: &str) -> Query {
        let mut b = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(Name::from_dotted(name).unwrap().wire());
        b.extend_from_slice(&[0, 1, 0, 1]);
        Query::parse(&b).unwrap()
    }

    fn answer(q: &Query, ttl: u32, code: u8) -> Vec<u8> {
        let mut b = ResponseBuilder::new(q, code, false, true, 512);
        if code == rcode::NOERROR {
            b.push(Section::Answer, &Record::new(q.name.clone(), ttl, RecordData::A("192.0.2.1".parse().unwrap())));
        }
        b.finish()
    }

    #[test]
    fn hits_age_and_expire() {
        let cache = Cache::new(100);
        let q = query("example.org");
        let t0 = Instant::now();
        cache.put(CacheKey::of(&q), &answer(&q, 30, rcode::NOERROR), t0);
        let upper = query("EXAMPLE.org");
        let (hit, kind) = cache.get(&CacheKey::of(&upper), 0xABCD, t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(kind, Kind::Success);
        let m = wire::parse_message(&hit).unwrap();
        assert_eq!(m.header.id, 0xABCD);
        assert_eq!(m.answers[0].ttl, 20);
        assert!(cache.get(&CacheKey::of(&q), 1, t0 + Duration::from_secs(30)).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn errors_and_records_without_ttl_are_not_kept() {
        let cache = Cache::new(100);
        let q = query("example.org");
        let now = Instant::now();
        cache.put(CacheKey::of(&q), &answer(&q, 0, rcode::SERVFAIL), now);
        cache.put(CacheKey::of(&q), &answer(&q, 0, rcode::NOERROR), now);
        // NXDOMAIN without an SOA gives no negative TTL.
        cache.put(CacheKey::of(&q), &answer(&q, 0, rcode::NXDOMAIN), now);
        assert!(cache.is_empty());
    }

    #[test]
    fn capacity_is_bounded() {
        let cache = Cache::new(32);
        let now = Instant::now();
        for i in 0..1000 {
            let q = query(&format!("n{i}.example.org"));
            cache.put(CacheKey::of(&q), &answer(&q, 60, rcode::NOERROR), now);
        }
        assert!(cache.len() <= 32, "{}", cache.len());
    }
}

//! A bounded fuzz run of the request path (a stable-Rust stand-in for a cargo-fuzz target,
//! which needs nightly): valid queries are mutated (bit flips, truncation, splices, wild
//! length and pointer bytes) and fed to the same `handle` the sockets call, plus the codec
//! entry points used on upstream answers. Nothing may panic; every reply must parse, echo the
//! query ID and be a response. FUZZ_SECONDS (default 5) bounds it; FUZZ_SEED replays a run.

use dns::server::cache::Cache;
use dns::server::forward::Forwarder;
use dns::server::metrics::{Metrics, Proto};
use dns::server::{Action, Shared};
use dns::wire::{self, Name, rtype};
use dns::zone::{EpModel, PortModel, SliceModel, SvcKind, SvcModel, ZoneConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

fn shared() -> std::sync::Arc<Shared> {
    let listen = "127.0.0.1:53".parse().unwrap();
    let zone = ZoneConfig::new("cluster.local").unwrap();
    let s = Shared::new(
        zone,
        Cache::new(1000),
        Forwarder::new(vec![], listen, 10, Duration::from_millis(10)),
        Metrics::new("dns://fuzz".into(), &[]),
    );
    {
        let mut z = s.zone.write().unwrap();
        z.set_namespace("default", true);
        let port = PortModel { name: "http".into(), protocol: "TCP".into(), port: Some(80) };
        z.set_service(
            "default",
            "web",
            Some(SvcModel { kind: SvcKind::ClusterIp(vec!["10.96.0.7".parse().unwrap()]), ports: vec![port.clone()] }),
        );
        z.set_service("default", "db", Some(SvcModel { kind: SvcKind::Headless, ports: vec![] }));
        let endpoints = (0..200)
            .map(|i| EpModel {
                ip: format!("10.244.{}.{}", i / 250, i % 250).parse().unwrap(),
                hostname: format!("db-{i}"),
            })
            .collect();
        z.set_slice("default", "db", "db-a", Some(SliceModel { ports: vec![port], endpoints }));
        z.set_service(
            "default",
            "ext",
            Some(SvcModel { kind: SvcKind::ExternalName("example.com".into()), ports: vec![] }),
        );
        z.synced = true;
    }
    s
}

fn seeds() -> Vec<Vec<u8>> {
    let names = [
        "web.default.svc.cluster.local",
        "_http._tcp.web.default.svc.cluster.local",
        "db.default.svc.cluster.local",
        "db-7.db.default.svc.cluster.local",
        "ext.default.svc.cluster.local",
        "10-1-2-3.default.pod.cluster.local",
        "7.0.96.10.in-addr.arpa",
        "cluster.local",
        "example.com",
    ];
    let types =
        [rtype::A, rtype::AAAA, rtype::SRV, rtype::PTR, rtype::TXT, rtype::NS, rtype::SOA, rtype::CNAME, rtype::ANY];
    let mut out = Vec::new();
    for n in names {
        for t in types {
            let q = wire::build_query(0x4242, &Name::from_dotted(n).unwrap(), t);
            // With and without the OPT record.
            let mut plain = q[..q.len() - 11].to_vec();
            plain[11] = 0;
            out.push(q);
            out.push(plain);
        }
    }
    out
}

fn mutate(rng: &mut StdRng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..rng.random_range(1..6) {
        match rng.random_range(0..7) {
            0 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b[i] = rng.random();
            }
            2 => b.truncate(rng.random_range(0..=b.len())),
            3 => {
                let i = rng.random_range(0..=b.len());
                let bytes: Vec<u8> = (0..rng.random_range(1..8)).map(|_| rng.random()).collect();
                b.splice(i..i, bytes);
            }
            4 if !other.is_empty() => {
                let i = rng.random_range(0..=b.len());
                let j = rng.random_range(0..other.len());
                b.truncate(i);
                b.extend_from_slice(&other[j..]);
            }
            5 if b.len() > 12 => {
                // A compression pointer or a long label somewhere in the body.
                let i = rng.random_range(12..b.len());
                b[i] = if rng.random() { 0xC0 | rng.random_range(0..0x40) } else { rng.random_range(0x30..0x40) };
            }
            6 if b.len() >= 12 => {
                // Wild section counts.
                let i = 4 + 2 * rng.random_range(0..4);
                b[i..i + 2].copy_from_slice(&rng.random::<u16>().to_be_bytes());
            }
            _ => {}
        }
    }
    b
}

fn check_reply(input: &[u8], reply: &[u8]) {
    let m = wire::parse_message(reply).unwrap_or_else(|e| panic!("reply does not parse ({e}): input {input:?}"));
    assert!(m.header.is_response());
    assert_eq!(&reply[..2], &input[..2], "ID echoed");
}

#[test]
fn request_path_survives_mutated_packets() {
    let seconds: u64 = std::env::var("FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let seed: u64 = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("fuzz seed {seed} (FUZZ_SEED={seed} replays), {seconds} s");
    let mut rng = StdRng::seed_from_u64(seed);
    let shared = shared();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let seeds = seeds();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut replies) = (0u64, 0u64);
    while Instant::now() < deadline && runs < 5_000_000 {
        let input = if rng.random_range(0..20) == 0 {
            (0..rng.random_range(0..600)).map(|_| rng.random()).collect()
        } else {
            let a = &seeds[rng.random_range(0..seeds.len())];
            let b = &seeds[rng.random_range(0..seeds.len())];
            mutate(&mut rng, a, b)
        };
        runs += 1;
        // The codec entry points used on upstream answers and cache hits.
        let _ = wire::parse_message(&input);
        let _ = wire::min_ttl(&input);
        let mut copy = input.clone();
        let _ = wire::patch_cached(&mut copy, 1, 5);
        let _ = wire::truncated_copy(&input);
        for proto in [Proto::Udp, Proto::Tcp] {
            let reply = match shared.handle(&input, proto, false) {
                Action::Reply(r) => r,
                Action::Pending(p) => runtime.block_on(shared.complete(p)),
                Action::Drop => continue,
            };
            replies += 1;
            check_reply(&input, &reply);
            if proto == Proto::Udp {
                let limit = wire::Query::parse(&input).map(|q| q.udp_limit()).unwrap_or(512);
                assert!(reply.len() <= limit, "UDP reply of {} bytes over the {limit} limit", reply.len());
            }
        }
    }
    println!("{runs} inputs, {replies} replies");
    assert!(runs > 1000, "the fuzz loop ran ({runs} inputs)");
}

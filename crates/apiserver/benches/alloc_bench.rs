//! Cost of a dynamic ClusterIP / NodePort allocation at several fill levels.
//!
//! `cargo bench -p apiserver --bench alloc_bench`. For each range and fill level the allocator
//! is filled with `allocate_next()` (as Services would fill it), then timed over many
//! `allocate_next()` + `release()` pairs, which keep the fill level constant. The figure is the
//! median of several runs, in nanoseconds per pair.

use apiserver::alloc::{IpAllocator, PortAllocator, PortRange};
use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const RUNS: usize = 5;
const PAIRS_PER_RUN: u32 = 100_000;
const SEED: u64 = 0x5eed;

/// The operations the benchmark needs from either allocator.
trait Alloc {
    type Value: Copy;
    fn size(&self) -> u64;
    fn used(&self) -> u64;
    fn next(&mut self) -> Option<Self::Value>;
    fn give_back(&mut self, value: Self::Value);
    fn nth_allocated(&self, n: u64) -> Self::Value;
}

impl Alloc for IpAllocator {
    type Value = IpAddr;
    fn size(&self) -> u64 {
        IpAllocator::size(self)
    }
    fn used(&self) -> u64 {
        IpAllocator::used(self)
    }
    fn next(&mut self) -> Option<IpAddr> {
        self.allocate_next().ok()
    }
    fn give_back(&mut self, ip: IpAddr) {
        self.release(ip);
    }
    fn nth_allocated(&self, n: u64) -> IpAddr {
        self.allocated().nth(n as usize).expect("an allocated address")
    }
}

impl Alloc for PortAllocator {
    type Value = u16;
    fn size(&self) -> u64 {
        PortAllocator::size(self)
    }
    fn used(&self) -> u64 {
        PortAllocator::used(self)
    }
    fn next(&mut self) -> Option<u16> {
        self.allocate_next().ok()
    }
    fn give_back(&mut self, port: u16) {
        self.release(port);
    }
    fn nth_allocated(&self, n: u64) -> u16 {
        self.allocated().nth(n as usize).expect("an allocated port")
    }
}

enum Fill {
    Fraction(&'static str, f64),
    /// Everything but the static band: the upper band is full.
    UpperBandFull(u64),
    /// All but one value, the last of the static band.
    OneFree,
    /// All but one value, in the middle of the upper band: the longest scans.
    OneFreeMiddle,
}

impl Fill {
    fn label(&self) -> String {
        match self {
            Fill::Fraction(label, _) => label.to_string(),
            Fill::UpperBandFull(_) => "upper band full".to_string(),
            Fill::OneFree => "1 free (static)".to_string(),
            Fill::OneFreeMiddle => "1 free (middle)".to_string(),
        }
    }

    fn target(&self, size: u64) -> u64 {
        match self {
            Fill::Fraction(_, f) => (size as f64 * f).floor() as u64,
            Fill::UpperBandFull(offset) => size - offset,
            Fill::OneFree | Fill::OneFreeMiddle => size - 1,
        }
    }
}

struct Row {
    range: String,
    size: u64,
    fill: String,
    used: u64,
    fill_time: Duration,
    ns_per_pair: f64,
}

fn measure<A: Alloc>(range: &str, mut alloc: A, fill: &Fill) -> Row {
    let target = fill.target(alloc.size());
    let started = Instant::now();
    if let Fill::OneFreeMiddle = fill {
        while alloc.next().is_some() {}
        let middle = alloc.nth_allocated(alloc.size() / 2);
        alloc.give_back(middle);
    }
    while alloc.used() < target {
        alloc.next().expect("room to fill");
    }
    let fill_time = started.elapsed();
    // Warm up.
    for _ in 0..PAIRS_PER_RUN / 10 {
        let v = alloc.next().expect("a free value");
        alloc.give_back(black_box(v));
    }
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..PAIRS_PER_RUN {
                let v = alloc.next().expect("a free value");
                alloc.give_back(black_box(v));
            }
            started.elapsed().as_nanos() as f64 / f64::from(PAIRS_PER_RUN)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    assert_eq!(alloc.used(), target, "the fill level drifted");
    Row {
        range: range.to_string(),
        size: alloc.size(),
        fill: fill.label(),
        used: alloc.used(),
        fill_time,
        ns_per_pair: runs[RUNS / 2],
    }
}

fn levels(static_band: u64) -> [Fill; 6] {
    [
        Fill::Fraction("empty", 0.0),
        Fill::Fraction("50%", 0.5),
        Fill::Fraction("99.9%", 0.999),
        Fill::UpperBandFull(static_band),
        Fill::OneFree,
        Fill::OneFreeMiddle,
    ]
}

fn main() {
    let mut rows = Vec::new();
    for (cidr, static_band) in [("10.0.0.0/16", 256), ("10.96.0.0/12", 256), ("fd00:10:96::/108", 256)] {
        for fill in levels(static_band) {
            let alloc = IpAllocator::with_seed(cidr.parse().expect("a CIDR"), SEED).expect("an allocator");
            rows.push(measure(&format!("ClusterIP {cidr}"), alloc, &fill));
        }
    }
    for fill in levels(86) {
        let alloc = PortAllocator::with_seed(PortRange::DEFAULT_NODE_PORTS, SEED).expect("an allocator");
        rows.push(measure("NodePort 30000-32767", alloc, &fill));
    }

    println!("{:<28} {:>9} {:<16} {:>9} {:>11} {:>14}", "range", "size", "fill", "used", "fill (ms)", "ns/allocation");
    println!("{}", "-".repeat(92));
    for r in rows {
        println!(
            "{:<28} {:>9} {:<16} {:>9} {:>11.1} {:>14.1}",
            r.range,
            r.size,
            r.fill,
            r.used,
            r.fill_time.as_secs_f64() * 1e3,
            r.ns_per_pair
        );
    }
    println!(
        "\nns/allocation: median of {RUNS} runs of {PAIRS_PER_RUN} allocate_next() + release() pairs at a constant fill level."
    );
}

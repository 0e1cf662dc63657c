//! The NodePort allocator (`portallocator/allocator.go`): one bitmap over a port range.

use super::bitmap::Bitmap;
use super::{AllocError, AllocStats, Requested, Scope};
use std::fmt;
use std::str::FromStr;

/// A range of ports, `base` to `base + size - 1` (apimachinery's `net.PortRange`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub base: u16,
    pub size: u16,
}

impl PortRange {
    /// kube-apiserver's default `--service-node-port-range`, 30000-32767.
    pub const DEFAULT_NODE_PORTS: PortRange = PortRange { base: 30000, size: 2768 };

    pub fn contains(&self, port: u16) -> bool {
        port >= self.base && u32::from(port - self.base) < u32::from(self.size)
    }

    /// The highest port, None for an empty range.
    pub fn last(&self) -> Option<u16> {
        if self.size == 0 {
            return None;
        }
        u16::try_from(u32::from(self.base) + u32::from(self.size) - 1).ok()
    }
}

/// Parses "30000-32767", "30000+2767" (base plus offset) or a single port "30000", with
/// upstream's errors. A range must hold at least one port and at most 65535, so "" and
/// "0-65535" are refused.
impl FromStr for PortRange {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let number = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("unable to parse port range: {value}"));
            }
            s.parse::<u32>().map_err(|_| format!("the port range cannot be greater than 65535: {value}"))
        };
        let (low, high) = match (value.find('-'), value.find('+')) {
            _ if value.is_empty() => return Err("the port range is empty".to_string()),
            (None, None) => {
                let port = number(value)?;
                (port, port)
            }
            (Some(hyphen), None) => (number(&value[..hyphen])?, number(&value[hyphen + 1..])?),
            (None, Some(plus)) => {
                let low = number(&value[..plus])?;
                (low, low.saturating_add(number(&value[plus + 1..])?))
            }
            (Some(_), Some(_)) => return Err(format!("unable to parse port range: {value}")),
        };
        if low > 65535 || high > 65535 {
            return Err(format!("the port range cannot be greater than 65535: {value}"));
        }
        if high < low {
            return Err(format!("end port cannot be less than start port: {value}"));
        }
        let size = u16::try_from(high - low + 1).map_err(|_| format!("the port range is too large: {value}"))?;
        Ok(PortRange { base: low as u16, size })
    }
}

/// "30000-32767"; an empty range prints as "".
impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.size == 0 {
            return Ok(());
        }
        write!(f, "{}-{}", self.base, u32::from(self.base) + u32::from(self.size) - 1)
    }
}

/// `calculateRangeOffset` (portallocator): the static band holds min(max(16, size/32), 128)
/// ports, none if the range has 16 or fewer. 86 for 30000-32767.
fn range_offset(size: u16) -> u16 {
    const MIN: u16 = 16;
    const MAX: u16 = 128;
    const STEP: u16 = 32;
    if size <= MIN { 0 } else { (size / STEP).clamp(MIN, MAX) }
}

/// Allocates NodePorts out of one port range.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    range: PortRange,
    bitmap: Bitmap,
    stats: AllocStats,
}

impl PortAllocator {
    /// An allocator over `range`, with a random generator seeded from the OS. Fails for an
    /// empty range or one that runs past 65535.
    pub fn new(range: PortRange) -> Result<Self, String> {
        Self::build(range, None)
    }

    /// [`PortAllocator::new`] with a seeded random generator, for reproducible allocations.
    pub fn with_seed(range: PortRange, seed: u64) -> Result<Self, String> {
        Self::build(range, Some(seed))
    }

    fn build(range: PortRange, seed: Option<u64>) -> Result<Self, String> {
        if range.size == 0 {
            return Err("the port range is empty".to_string());
        }
        if range.last().is_none() {
            return Err(format!("the port range cannot be greater than 65535: {range}"));
        }
        let bitmap = Bitmap::new(usize::from(range.size), usize::from(range_offset(range.size)), super::rng(seed));
        Ok(PortAllocator { range, bitmap, stats: AllocStats::default() })
    }

    pub fn range(&self) -> &PortRange {
        &self.range
    }

    /// Takes the requested `port`, anywhere in the range, static band or not.
    /// Marks `port` as held without counting an allocation: for rebuilding state from what is
    /// already stored. False if it is out of range or was already marked.
    pub fn mark(&mut self, port: u16) -> bool {
        self.range.contains(port) && self.bitmap.allocate(self.item(port))
    }

    pub fn allocate(&mut self, port: u16) -> Result<(), AllocError> {
        let result = if !self.range.contains(port) {
            Err(AllocError::NotInRange { requested: Requested::Port(port), valid: self.range.to_string() })
        } else if !self.bitmap.allocate(self.item(port)) {
            Err(AllocError::Allocated { requested: Requested::Port(port) })
        } else {
            Ok(())
        };
        self.stats.record(Scope::Static, &result);
        result
    }

    /// Takes a free port: from the upper (dynamic) band first, starting at a random port,
    /// else from the static band.
    pub fn allocate_next(&mut self) -> Result<u16, AllocError> {
        let result = match self.bitmap.allocate_next() {
            Some(item) => Ok(self.range.base + item as u16),
            None => Err(AllocError::Full),
        };
        self.stats.record(Scope::Dynamic, &result);
        result
    }

    /// Gives `port` back; false if it was not allocated (or is not in the range).
    pub fn release(&mut self, port: u16) -> bool {
        self.range.contains(port) && self.bitmap.release(self.item(port))
    }

    pub fn has(&self, port: u16) -> bool {
        self.range.contains(port) && self.bitmap.has(self.item(port))
    }

    /// The allocated ports, in ascending order.
    pub fn allocated(&self) -> impl Iterator<Item = u16> + '_ {
        self.bitmap.iter().map(|item| self.range.base + item as u16)
    }

    pub fn used(&self) -> u64 {
        self.bitmap.count() as u64
    }

    pub fn free(&self) -> u64 {
        self.size() - self.used()
    }

    /// Ports in the range.
    pub fn size(&self) -> u64 {
        self.bitmap.max() as u64
    }

    pub fn stats(&self) -> AllocStats {
        self.stats
    }

    /// The bitmap item of a `port` in the range.
    fn item(&self, port: u16) -> usize {
        usize::from(port - self.range.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::HashSet;

    fn range(s: &str) -> PortRange {
        s.parse().unwrap()
    }

    fn allocator(s: &str) -> PortAllocator {
        PortAllocator::with_seed(range(s), 42).unwrap()
    }

    #[test]
    fn port_ranges_parse_like_apimachinery() {
        assert_eq!(range("30000-32767"), PortRange { base: 30000, size: 2768 });
        assert_eq!(range(" 30000-32767 "), PortRange::DEFAULT_NODE_PORTS);
        assert_eq!(range("30000+2767"), PortRange::DEFAULT_NODE_PORTS);
        assert_eq!(range("8080"), PortRange { base: 8080, size: 1 });
        assert_eq!(range("1-65535"), PortRange { base: 1, size: 65535 });
        assert_eq!(range("30000-32767").to_string(), "30000-32767");
        assert_eq!(range("30000+0").to_string(), "30000-30000");
        assert_eq!(PortRange { base: 1, size: 0 }.to_string(), "");
        for (bad, err) in [
            ("", "the port range is empty"),
            ("abc", "unable to parse port range: abc"),
            ("30000-", "unable to parse port range: 30000-"),
            ("-5", "unable to parse port range: -5"),
            ("1-2+3", "unable to parse port range: 1-2+3"),
            ("1-2-3", "unable to parse port range: 1-2-3"),
            ("30000-70000", "the port range cannot be greater than 65535: 30000-70000"),
            ("65000+1000", "the port range cannot be greater than 65535: 65000+1000"),
            ("99999999999", "the port range cannot be greater than 65535: 99999999999"),
            ("32767-30000", "end port cannot be less than start port: 32767-30000"),
            ("0-65535", "the port range is too large: 0-65535"),
        ] {
            assert_eq!(bad.parse::<PortRange>(), Err(err.to_string()), "{bad:?}");
        }
    }

    #[test]
    fn the_default_node_port_range_has_a_static_band_of_86_ports() {
        let mut a = allocator("30000-32767");
        assert_eq!(a.bitmap.offset(), 86);
        assert_eq!(a.size(), 2768);
        // Every dynamic allocation lands in 30086-32767 until those run out ...
        for _ in 0..2768 - 86 {
            let port = a.allocate_next().unwrap();
            assert!((30086..=32767).contains(&port), "{port} is in the static band");
        }
        // ... and only then in the static band 30000-30085.
        let mut rest: Vec<u16> = (0..86).map(|_| a.allocate_next().unwrap()).collect();
        rest.sort();
        assert_eq!(rest, (30000..=30085).collect::<Vec<_>>());
        assert_eq!(a.allocate_next(), Err(AllocError::Full));
    }

    #[test]
    fn port_offsets_follow_upstream() {
        // min(max(16, size/32), 128); nothing for 16 ports or fewer.
        for (s, offset) in [("1-16", 0), ("1-17", 16), ("1-1024", 32), ("1-4096", 128), ("1-60000", 128)] {
            assert_eq!(allocator(s).bitmap.offset(), offset, "{s}");
        }
    }

    #[test]
    fn a_requested_port_in_the_static_band_is_honoured() {
        let mut a = allocator("30000-32767");
        assert_eq!(a.allocate(30000), Ok(()));
        assert_eq!(a.allocate(30085), Ok(()));
        assert_eq!(a.allocate(32767), Ok(()));
        assert!(a.has(30000) && a.has(30085) && a.has(32767) && !a.has(30001));
        assert_eq!(a.used(), 3);
    }

    #[test]
    fn allocating_a_port_twice_is_refused() {
        let mut a = allocator("30000-32767");
        a.allocate(30080).unwrap();
        let err = a.allocate(30080).unwrap_err();
        assert_eq!(err, AllocError::Allocated { requested: Requested::Port(30080) });
        assert_eq!(err.to_string(), "provided port is already allocated");
    }

    #[test]
    fn a_port_out_of_range_is_refused_naming_the_range() {
        let mut a = allocator("30000-32767");
        for bad in [0, 80, 29999, 32768, 65535] {
            assert_eq!(
                a.allocate(bad).unwrap_err().to_string(),
                "provided port is not in the valid range. The range of valid ports is 30000-32767"
            );
            assert!(!a.has(bad) && !a.release(bad));
        }
        assert_eq!(a.stats().errors_static, 5);
    }

    #[test]
    fn a_released_port_can_be_allocated_again_and_a_full_range_refuses() {
        let mut a = allocator("100-103");
        let mut got: Vec<u16> = (0..4).map(|_| a.allocate_next().unwrap()).collect();
        got.sort();
        assert_eq!(got, [100, 101, 102, 103]);
        assert_eq!(a.allocate_next(), Err(AllocError::Full));
        assert!(a.release(102));
        assert!(!a.release(102));
        assert_eq!(a.allocate_next(), Ok(102));
        assert!(a.release(101));
        assert_eq!(a.allocate(101), Ok(()));
        assert_eq!((a.used(), a.free()), (4, 0));
        assert_eq!(
            a.stats(),
            AllocStats {
                allocations_static: 1,
                allocations_dynamic: 5,
                errors: 1,
                errors_static: 0,
                errors_dynamic: 1
            }
        );
    }

    #[test]
    fn ranges_reaching_the_last_port_work_and_invalid_ones_are_rejected() {
        let mut a = allocator("65530-65535");
        assert_eq!(a.allocate(65535), Ok(()));
        assert_eq!(a.allocated().collect::<Vec<_>>(), [65535]);
        assert!(PortAllocator::new(PortRange { base: 30000, size: 0 }).is_err());
        assert!(PortAllocator::new(PortRange { base: 65535, size: 2 }).is_err());
        assert!(!PortRange { base: 65535, size: 0 }.contains(65535));
    }

    #[test]
    fn random_port_allocations_and_releases_match_a_set_model() {
        let mut a = PortAllocator::with_seed(PortRange::DEFAULT_NODE_PORTS, 9).unwrap();
        let mut model = HashSet::new();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
        for step in 0..30_000 {
            match rng.random_range(0..4) {
                0 => match a.allocate_next() {
                    Ok(port) => assert!(model.insert(port), "{port} handed out twice"),
                    Err(_) => assert_eq!(model.len(), 2768),
                },
                1 => {
                    let port = rng.random_range(29990..32780);
                    match a.allocate(port) {
                        Ok(()) => assert!(model.insert(port)),
                        Err(AllocError::Allocated { .. }) => assert!(model.contains(&port)),
                        Err(AllocError::NotInRange { .. }) => assert!(!(30000..=32767).contains(&port)),
                        Err(AllocError::Full) => unreachable!(),
                    }
                }
                _ => {
                    let port = rng.random_range(29990..32780);
                    assert_eq!(a.release(port), model.remove(&port));
                }
            }
            assert_eq!(a.used(), model.len() as u64, "step {step}");
            assert_eq!(a.used() + a.free(), a.size());
        }
        assert_eq!(a.allocated().collect::<HashSet<_>>(), model);
    }
}

//! The ClusterIP allocator (`ipallocator/bitmap.go`): one bitmap over a service CIDR.
//!
//! For 10.0.0.0/24 the usable addresses are 10.0.0.1 to 10.0.0.254: the network address is
//! never handed out, nor, for IPv4, the broadcast address. Item 0 of the bitmap is
//! network + 1.

use super::bitmap::Bitmap;
use super::{AllocError, AllocStats, Requested, Scope};
pub use api::net::{Cidr, IpFamily};
use api::net::{from_u128, to_u128};
use std::net::IpAddr;

/// Most host bits a service CIDR may have: kube-apiserver rejects a larger
/// `--service-cluster-ip-range` (a /12 for IPv4, a /108 for IPv6, 2^20 addresses).
pub(crate) const MAX_HOST_BITS: u8 = 20;

/// `calculateRangeOffset` (ipallocator): the static band holds min(max(16, size/16), 256)
/// addresses of a CIDR of `size` addresses, none if the CIDR has 16 or fewer.
fn range_offset(size: u64) -> u64 {
    const MIN: u64 = 16;
    const MAX: u64 = 256;
    const STEP: u64 = 16;
    if size <= MIN { 0 } else { (size / STEP).clamp(MIN, MAX) }
}

/// Allocates ClusterIPs out of one service CIDR.
#[derive(Debug, Clone)]
pub struct IpAllocator {
    cidr: Cidr,
    /// The first usable address, network + 1: item 0 of the bitmap.
    base: u128,
    bitmap: Bitmap,
    stats: AllocStats,
}

impl IpAllocator {
    /// An allocator over `cidr`, with a random generator seeded from the OS. Fails for CIDRs
    /// with more than 2^20 addresses (larger than a /12 or a /108) and for those without a
    /// usable address (/31, /32, /128).
    pub fn new(cidr: Cidr) -> Result<Self, String> {
        Self::build(cidr, None)
    }

    /// [`IpAllocator::new`] with a seeded random generator, for reproducible allocations.
    pub fn with_seed(cidr: Cidr, seed: u64) -> Result<Self, String> {
        Self::build(cidr, Some(seed))
    }

    fn build(cidr: Cidr, seed: Option<u64>) -> Result<Self, String> {
        if cidr.host_bits() > MAX_HOST_BITS {
            return Err(format!(
                "service CIDR {cidr} is too large; for {}-bit addresses, the mask must be >= {}",
                cidr.family().bits(),
                cidr.family().bits() - MAX_HOST_BITS
            ));
        }
        let size = 1u64 << cidr.host_bits();
        // Neither the network address nor, for IPv4, the broadcast address.
        let usable = size.saturating_sub(if cidr.family() == IpFamily::V4 { 2 } else { 1 });
        if usable == 0 {
            return Err(format!("service CIDR {cidr} has no usable address"));
        }
        let offset = range_offset(size);
        Ok(IpAllocator {
            cidr,
            base: cidr.first() + 1,
            bitmap: Bitmap::new(usable as usize, offset as usize, super::rng(seed)),
            stats: AllocStats::default(),
        })
    }

    pub fn cidr(&self) -> &Cidr {
        &self.cidr
    }

    /// The first usable address, network + 1: the `kubernetes` Service's ClusterIP
    /// (10.96.0.1 for 10.96.0.0/12).
    pub fn first(&self) -> IpAddr {
        from_u128(self.cidr.family(), self.base)
    }

    /// Takes the requested `ip`, which may be anywhere in the usable range, static band or
    /// not.
    pub fn allocate(&mut self, ip: IpAddr) -> Result<(), AllocError> {
        let result = match self.item(ip) {
            None => Err(AllocError::NotInRange { requested: Requested::Ip(ip), valid: self.cidr.to_string() }),
            Some(item) if !self.bitmap.allocate(item) => Err(AllocError::Allocated { requested: Requested::Ip(ip) }),
            Some(_) => Ok(()),
        };
        self.stats.record(Scope::Static, &result);
        result
    }

    /// Takes a free address: from the upper (dynamic) band first, starting at a random
    /// address, else from the static band.
    pub fn allocate_next(&mut self) -> Result<IpAddr, AllocError> {
        let result = match self.bitmap.allocate_next() {
            Some(item) => Ok(from_u128(self.cidr.family(), self.base + item as u128)),
            None => Err(AllocError::Full),
        };
        self.stats.record(Scope::Dynamic, &result);
        result
    }

    /// Marks `ip` as held without counting an allocation: for rebuilding state from what is
    /// already stored. False if it is out of range or was already marked.
    pub fn mark(&mut self, ip: IpAddr) -> bool {
        self.item(ip).is_some_and(|item| self.bitmap.allocate(item))
    }

    /// Gives `ip` back; false if it was not allocated (or is not in the range).
    pub fn release(&mut self, ip: IpAddr) -> bool {
        self.item(ip).is_some_and(|item| self.bitmap.release(item))
    }

    pub fn has(&self, ip: IpAddr) -> bool {
        self.item(ip).is_some_and(|item| self.bitmap.has(item))
    }

    /// The allocated addresses, in ascending order.
    pub fn allocated(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.bitmap.iter().map(|item| from_u128(self.cidr.family(), self.base + item as u128))
    }

    pub fn used(&self) -> u64 {
        self.bitmap.count() as u64
    }

    pub fn free(&self) -> u64 {
        self.size() - self.used()
    }

    /// Usable addresses.
    pub fn size(&self) -> u64 {
        self.bitmap.max() as u64
    }

    pub fn stats(&self) -> AllocStats {
        self.stats
    }

    /// The bitmap item of a usable `ip`.
    fn item(&self, ip: IpAddr) -> Option<usize> {
        if !self.cidr.contains(ip) {
            return None;
        }
        let item = to_u128(ip).checked_sub(self.base)?;
        (item < self.bitmap.max() as u128).then_some(item as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn allocator(s: &str) -> IpAllocator {
        IpAllocator::with_seed(cidr(s), 42).unwrap()
    }

    fn exhaust(a: &mut IpAllocator) -> Vec<IpAddr> {
        let mut got = Vec::new();
        while let Ok(ip) = a.allocate_next() {
            got.push(ip);
        }
        got.sort();
        got
    }

    #[test]
    fn cidrs_parse_mask_and_print_like_go() {
        assert_eq!(cidr("10.96.0.0/12").to_string(), "10.96.0.0/12");
        assert_eq!(cidr("10.96.7.1/12").to_string(), "10.96.0.0/12");
        assert_eq!(cidr("fd00:10:96::/108").to_string(), "fd00:10:96::/108");
        assert_eq!(cidr("fd00:10:96::f:1/108").to_string(), "fd00:10:96::/108");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(cidr("::/0").to_string(), "::/0");
        assert_eq!(cidr("10.1.2.3/32").to_string(), "10.1.2.3/32");
        assert_eq!(cidr("10.96.0.0/12").family(), IpFamily::V4);
        assert_eq!(cidr("fd00::/108").family().as_str(), "IPv6");
        for bad in ["10.96.0.0", "10.96.0.0/33", "fd00::/129", "10.96.0.0/", "10.96.0.0/+8", "x/8", "10.96.0.0/12/1"] {
            assert_eq!(bad.parse::<Cidr>(), Err(format!("invalid CIDR address: {bad}")), "{bad}");
        }
    }

    #[test]
    fn cidrs_contain_only_their_own_family_and_network() {
        let v4 = cidr("10.96.0.0/12");
        assert!(v4.contains(ip("10.96.0.0")));
        assert!(v4.contains(ip("10.111.255.255")));
        assert!(!v4.contains(ip("10.112.0.0")));
        assert!(!v4.contains(ip("::ffff:10.96.0.1")));
        let v6 = cidr("fd00:10:96::/108");
        assert!(v6.contains(ip("fd00:10:96::f:ffff")));
        assert!(!v6.contains(ip("fd00:10:96::10:0")));
        assert!(!v6.contains(ip("10.96.0.1")));
        assert!(cidr("0.0.0.0/0").contains(ip("255.255.255.255")));
    }

    #[test]
    fn network_and_broadcast_are_never_given_for_ipv4() {
        let mut a = allocator("192.168.1.0/29");
        assert_eq!(a.size(), 6);
        let want: Vec<IpAddr> = (1..=6).map(|i| ip(&format!("192.168.1.{i}"))).collect();
        assert_eq!(exhaust(&mut a), want);
        assert_eq!(a.allocate_next(), Err(AllocError::Full));
        for edge in ["192.168.1.0", "192.168.1.7"] {
            assert!(matches!(a.allocate(ip(edge)), Err(AllocError::NotInRange { .. })), "{edge}");
        }
    }

    #[test]
    fn only_the_network_address_is_never_given_for_ipv6() {
        let mut a = allocator("fd00::/125");
        assert_eq!(a.size(), 7);
        let want: Vec<IpAddr> = (1..=7).map(|i| ip(&format!("fd00::{i}"))).collect();
        assert_eq!(exhaust(&mut a), want);
        assert!(matches!(a.allocate(ip("fd00::")), Err(AllocError::NotInRange { .. })));
    }

    #[test]
    fn first_is_the_address_after_the_network() {
        assert_eq!(allocator("10.96.0.0/12").first(), ip("10.96.0.1"));
        assert_eq!(allocator("10.0.0.0/30").first(), ip("10.0.0.1"));
        assert_eq!(allocator("fd00:10:96::/108").first(), ip("fd00:10:96::1"));
    }

    #[test]
    fn the_static_band_follows_upstream_offsets() {
        // min(max(16, size/16), 256) of the CIDR's size; nothing for 16 addresses or fewer.
        for (s, offset) in [
            ("10.0.0.0/29", 0),
            ("10.0.0.0/28", 0),
            ("10.0.0.0/27", 16),
            ("10.0.0.0/24", 16),
            ("10.0.0.0/20", 256),
            ("10.96.0.0/12", 256),
            ("fd00::/124", 0),
            ("fd00::/120", 16),
            ("fd00::/108", 256),
        ] {
            assert_eq!(allocator(s).bitmap.offset(), offset, "{s}");
        }
    }

    #[test]
    fn dynamic_allocations_use_the_upper_band_until_it_is_full_then_the_static_band() {
        // 10.0.0.0/24: 254 usable, static band 10.0.0.1-10.0.0.16.
        let mut a = allocator("10.0.0.0/24");
        let static_band = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => (1..=16).contains(&v4.octets()[3]),
            IpAddr::V6(_) => unreachable!(),
        };
        for _ in 0..254 - 16 {
            let got = a.allocate_next().unwrap();
            assert!(!static_band(got), "{got} is in the static band");
        }
        for _ in 0..16 {
            let got = a.allocate_next().unwrap();
            assert!(static_band(got), "{got} is outside the static band");
        }
        assert_eq!(a.allocate_next(), Err(AllocError::Full));
    }

    #[test]
    fn a_requested_ip_in_the_static_band_is_honoured() {
        let mut a = allocator("10.96.0.0/12");
        assert_eq!(a.allocate(ip("10.96.0.10")), Ok(()));
        assert!(a.has(ip("10.96.0.10")));
        assert_eq!(a.allocate(a.first()), Ok(()));
        assert_eq!(a.allocate(ip("10.100.0.1")), Ok(()));
        assert_eq!(a.used(), 3);
    }

    #[test]
    fn allocating_an_ip_twice_is_refused() {
        let mut a = allocator("10.96.0.0/12");
        a.allocate(ip("10.96.0.10")).unwrap();
        let err = a.allocate(ip("10.96.0.10")).unwrap_err();
        assert_eq!(err, AllocError::Allocated { requested: Requested::Ip(ip("10.96.0.10")) });
        assert_eq!(err.to_string(), "provided IP is already allocated");
        let next = a.allocate_next().unwrap();
        assert!(matches!(a.allocate(next), Err(AllocError::Allocated { .. })));
    }

    #[test]
    fn an_ip_out_of_range_is_refused_naming_the_cidr() {
        let mut a = allocator("10.96.0.0/12");
        for (bad, shown) in [
            ("10.0.0.1", "10.0.0.1"),
            ("10.112.0.1", "10.112.0.1"),
            ("10.96.0.0", "10.96.0.0"),
            ("10.111.255.255", "10.111.255.255"),
            ("fd00::1", "fd00::1"),
        ] {
            let err = a.allocate(ip(bad)).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("the provided IP ({shown}) is not in the valid range. The range of valid IPs is 10.96.0.0/12")
            );
        }
        assert_eq!(a.used(), 0);
        let mut v6 = allocator("fd00:10:96::/108");
        assert_eq!(
            v6.allocate(ip("fd00:10:97::1")).unwrap_err().to_string(),
            "the provided IP (fd00:10:97::1) is not in the valid range. The range of valid IPs is fd00:10:96::/108"
        );
    }

    #[test]
    fn a_released_ip_can_be_allocated_again() {
        let mut a = allocator("10.0.0.0/29");
        let got = exhaust(&mut a);
        assert_eq!(a.allocate_next(), Err(AllocError::Full));
        assert!(a.release(got[2]));
        assert!(!a.release(got[2]));
        assert!(!a.has(got[2]));
        assert_eq!(a.allocate_next(), Ok(got[2]));
        assert!(a.release(got[3]));
        assert_eq!(a.allocate(got[3]), Ok(()));
        assert!(!a.release(ip("10.0.0.0")));
        assert!(!a.release(ip("192.168.0.1")));
    }

    #[test]
    fn a_full_range_refuses_dynamic_allocation_and_counts_the_error() {
        let mut a = allocator("10.0.0.0/30");
        a.allocate_next().unwrap();
        let other = if a.has(ip("10.0.0.1")) { ip("10.0.0.2") } else { ip("10.0.0.1") };
        a.allocate(other).unwrap();
        assert_eq!((a.used(), a.free()), (2, 0));
        assert_eq!(a.allocate_next(), Err(AllocError::Full));
        assert_eq!(a.allocate_next().unwrap_err().to_string(), "range is full");
        let _ = a.allocate(ip("10.0.0.9"));
        assert_eq!(
            a.stats(),
            AllocStats {
                allocations_static: 1,
                allocations_dynamic: 1,
                errors: 3,
                errors_static: 1,
                errors_dynamic: 2
            }
        );
    }

    #[test]
    fn ipv6_slash_108_works_and_larger_ranges_are_rejected() {
        let mut a = allocator("fd00:10:96::/108");
        assert_eq!(a.size(), (1 << 20) - 1);
        let got = a.allocate_next().unwrap();
        assert!(a.cidr().contains(got) && a.has(got));
        assert_eq!(a.allocate(ip("fd00:10:96::f:ffff")), Ok(()));
        assert_eq!(
            IpAllocator::new(cidr("fd00::/64")).unwrap_err(),
            "service CIDR fd00::/64 is too large; for 128-bit addresses, the mask must be >= 108"
        );
        assert!(IpAllocator::new(cidr("fd00::/107")).is_err());
        assert_eq!(allocator("10.96.0.0/12").size(), (1 << 20) - 2);
        assert_eq!(
            IpAllocator::new(cidr("10.0.0.0/11")).unwrap_err(),
            "service CIDR 10.0.0.0/11 is too large; for 32-bit addresses, the mask must be >= 12"
        );
    }

    #[test]
    fn ranges_without_a_usable_address_are_rejected() {
        for s in ["10.0.0.0/31", "10.0.0.1/32", "fd00::/128"] {
            assert_eq!(IpAllocator::new(cidr(s)).unwrap_err(), format!("service CIDR {s} has no usable address"));
        }
        let mut a = allocator("fd00::/127");
        assert_eq!(a.allocate_next(), Ok(ip("fd00::1")));
        assert_eq!(allocator("10.0.0.0/30").size(), 2);
    }

    #[test]
    fn used_and_free_stay_consistent() {
        let mut a = allocator("10.0.0.0/24");
        assert_eq!((a.used(), a.free(), a.size()), (0, 254, 254));
        for _ in 0..100 {
            a.allocate_next().unwrap();
        }
        a.allocate(ip("10.0.0.3")).unwrap_or(());
        let used = a.used();
        assert_eq!(used + a.free(), a.size());
        assert_eq!(a.allocated().count() as u64, used);
        assert!(a.allocated().all(|got| a.has(got)));
    }

    #[test]
    fn random_allocations_and_releases_match_a_set_model() {
        use rand::{Rng, SeedableRng};
        for (s, seed) in [("10.0.0.0/26", 1), ("10.0.0.0/22", 2), ("fd00::/119", 3), ("10.96.0.0/12", 4)] {
            let mut a = IpAllocator::with_seed(cidr(s), seed).unwrap();
            let c = cidr(s);
            let mut model = HashSet::new();
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            // Random addresses near the start of the CIDR, a few of them outside it.
            let span = a.size().min(2000) as u128 + 4;
            let pick = |rng: &mut rand::rngs::SmallRng| from_u128(c.family(), c.first() + rng.random_range(0..span));
            for step in 0..20_000 {
                match rng.random_range(0..4) {
                    0 => {
                        if let Ok(got) = a.allocate_next() {
                            assert!(model.insert(got), "{got} handed out twice");
                        } else {
                            assert_eq!(model.len() as u64, a.size());
                        }
                    }
                    1 => {
                        let want = pick(&mut rng);
                        match a.allocate(want) {
                            Ok(()) => assert!(model.insert(want)),
                            Err(AllocError::Allocated { .. }) => assert!(model.contains(&want)),
                            Err(AllocError::NotInRange { .. }) => assert!(a.item(want).is_none()),
                            Err(AllocError::Full) => unreachable!(),
                        }
                    }
                    _ => {
                        let gone = if rng.random_bool(0.7) && !model.is_empty() {
                            *model.iter().next().unwrap()
                        } else {
                            pick(&mut rng)
                        };
                        assert_eq!(a.release(gone), model.remove(&gone));
                    }
                }
                assert_eq!(a.used(), model.len() as u64, "{s} step {step}");
            }
            assert_eq!(a.allocated().collect::<HashSet<_>>(), model);
        }
    }
}

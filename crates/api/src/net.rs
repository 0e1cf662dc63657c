//! IP addresses and networks as numbers: one CIDR type for the API server's allocators, the
//! controllers' node and LoadBalancer IPAM and the command line. Pure arithmetic, no IO.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    /// The `ipFamilies` value: "IPv4" or "IPv6".
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        }
    }

    pub fn of(ip: IpAddr) -> IpFamily {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// Address length in bits.
    pub fn bits(self) -> u8 {
        match self {
            IpFamily::V4 => 32,
            IpFamily::V6 => 128,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An IP network: "10.96.0.0/12", "fd00:10:96::/108". Parsing masks off host bits, as Go's
/// `net.ParseCIDR` does, so "10.96.0.1/12" is 10.96.0.0/12.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    family: IpFamily,
    /// The network address, IPv4 in the low 32 bits.
    network: u128,
    prefix: u8,
}

impl Cidr {
    /// The network `ip/prefix` (host bits of `ip` dropped); None if `prefix` is too long.
    pub fn new(ip: IpAddr, prefix: u8) -> Option<Cidr> {
        let family = IpFamily::of(ip);
        if prefix > family.bits() {
            return None;
        }
        let mut cidr = Cidr { family, network: to_u128(ip), prefix };
        cidr.network &= cidr.mask();
        Some(cidr)
    }

    pub fn family(&self) -> IpFamily {
        self.family
    }

    pub fn network(&self) -> IpAddr {
        from_u128(self.family, self.network)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn host_bits(&self) -> u8 {
        self.family.bits() - self.prefix
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        IpFamily::of(ip) == self.family && to_u128(ip) & self.mask() == self.network
    }

    /// Parses "address/prefix" whose address is the network address itself (no host bits set),
    /// as node IPAM requires of `--cluster-cidr` and `spec.podCIDR`.
    pub fn parse_network(s: &str) -> Result<Cidr, String> {
        let cidr: Cidr = s.parse()?;
        let (ip, _) = s.split_once('/').unwrap_or((s, ""));
        match ip.parse::<IpAddr>().map(to_u128) {
            Ok(n) if n == cidr.network => Ok(cidr),
            _ => Err(format!("invalid CIDR address: {s}: host bits set")),
        }
    }

    /// The network address as a number.
    pub fn first(&self) -> u128 {
        self.network
    }

    /// The last address (the IPv4 broadcast) as a number.
    pub fn last(&self) -> u128 {
        self.network | (!self.mask() & (u128::MAX >> (128 - u32::from(self.family.bits()))))
    }

    /// The `n`-th address from the network address, if inside the network.
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        let ip = self.network.checked_add(n)?;
        (ip <= self.last()).then(|| from_u128(self.family, ip))
    }

    fn mask(&self) -> u128 {
        let host_mask = u128::MAX.checked_shr(u32::from(self.prefix) + (128 - u32::from(self.family.bits())));
        let all = u128::MAX >> (128 - u32::from(self.family.bits()));
        all & !host_mask.unwrap_or(0)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let invalid = || format!("invalid CIDR address: {s}");
        let (ip, prefix) = s.split_once('/').ok_or_else(invalid)?;
        let ip: IpAddr = ip.parse().map_err(|_| invalid())?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        Cidr::new(ip, prefix).ok_or_else(invalid)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

/// An address as a number (IPv4 in the low 32 bits).
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(ip) => u128::from(u32::from(ip)),
        IpAddr::V6(ip) => u128::from(ip),
    }
}

/// The address `n` of `family` (the inverse of [`to_u128`]).
pub fn from_u128(family: IpFamily, n: u128) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_masks_host_bits_and_strict_parsing_refuses_them() {
        let c: Cidr = "10.96.0.1/12".parse().unwrap();
        assert_eq!(c.to_string(), "10.96.0.0/12");
        assert!(Cidr::parse_network("10.96.0.1/12").is_err());
        assert_eq!(Cidr::parse_network("10.244.0.0/16").unwrap().prefix(), 16);
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0.0/".parse::<Cidr>().is_err());
    }

    #[test]
    fn first_last_and_nth_of_both_families() {
        let c: Cidr = "10.96.0.0/12".parse().unwrap();
        assert_eq!(c.nth(10), Some("10.96.0.10".parse().unwrap()));
        assert_eq!(from_u128(IpFamily::V4, c.last()), "10.111.255.255".parse::<IpAddr>().unwrap());
        assert_eq!(c.nth(1 << 20), None);
        let v6: Cidr = "fd00:10:96::/108".parse().unwrap();
        assert_eq!(v6.nth(10), Some("fd00:10:96::a".parse().unwrap()));
        assert!(v6.contains("fd00:10:96::f:ffff".parse().unwrap()));
        assert!(!v6.contains("10.96.0.1".parse().unwrap()));
        let all: Cidr = "::/0".parse().unwrap();
        assert_eq!(all.last(), u128::MAX);
    }
}

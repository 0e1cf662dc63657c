//! kube-apiserver's ClusterIP and NodePort allocators, as in-memory data structures.
//!
//! Both are a bitmap over the usable values of a range (`pkg/registry/core/service/allocator`),
//! split in two bands (KEP-3070): a lower *static* band that dynamic allocation avoids, so
//! users can request well-known addresses and ports from it, and an upper *dynamic* band that
//! [`IpAllocator::allocate_next`] and [`PortAllocator::allocate_next`] use first, starting at a
//! random point and scanning forward (wrapping inside the band). Only when the upper band is
//! full does dynamic allocation fall back to the static band.
//!
//! The allocators hold no lock and no storage: the Service registry owns them (behind its
//! own lock) and rebuilds them from the stored Services when it starts, as upstream's repair
//! controllers do.

mod bitmap;
mod ip;
mod port;

pub use ip::{Cidr, IpAllocator, IpFamily};
pub use port::{PortAllocator, PortRange};

use std::fmt;
use std::net::IpAddr;

/// What an allocation asked for; it picks the wording of an [`AllocError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    Ip(IpAddr),
    Port(u16),
}

/// Allocation failures, worded as upstream's `ipallocator` and `portallocator` errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// `ErrFull`: no value left for a dynamic allocation.
    #[error("range is full")]
    Full,
    /// `ErrAllocated`: "provided IP is already allocated" / "provided port is already allocated".
    #[error("provided {} is already allocated", noun(.requested))]
    Allocated { requested: Requested },
    /// `ErrNotInRange`; `valid` is the CIDR or the port range ("10.96.0.0/12", "30000-32767").
    #[error("{}", not_in_range(.requested, .valid))]
    NotInRange { requested: Requested, valid: String },
}

fn noun(requested: &Requested) -> &'static str {
    match requested {
        Requested::Ip(_) => "IP",
        Requested::Port(_) => "port",
    }
}

fn not_in_range(requested: &Requested, valid: &str) -> String {
    match requested {
        Requested::Ip(ip) => {
            format!("the provided IP ({ip}) is not in the valid range. The range of valid IPs is {valid}")
        }
        Requested::Port(_) => {
            format!("provided port is not in the valid range. The range of valid ports is {valid}")
        }
    }
}

/// Counters behind the `allocation_total` and `allocation_errors_total` metrics. "static" is
/// an allocation of a requested value (`allocate`), "dynamic" one of `allocate_next`; the
/// `allocated_*` and `available_*` gauges are `used()` and `free()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocStats {
    pub allocations_static: u64,
    pub allocations_dynamic: u64,
    /// All failed allocations: `errors_static + errors_dynamic`.
    pub errors: u64,
    pub errors_static: u64,
    pub errors_dynamic: u64,
}

impl AllocStats {
    fn record<T>(&mut self, scope: Scope, result: &Result<T, AllocError>) {
        match (scope, result.is_ok()) {
            (Scope::Static, true) => self.allocations_static += 1,
            (Scope::Dynamic, true) => self.allocations_dynamic += 1,
            (Scope::Static, false) => {
                self.errors += 1;
                self.errors_static += 1;
            }
            (Scope::Dynamic, false) => {
                self.errors += 1;
                self.errors_dynamic += 1;
            }
        }
    }
}

/// The `scope` label of the allocation counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Static,
    Dynamic,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Static => "static",
            Scope::Dynamic => "dynamic",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A random generator for an allocator: seeded from the OS, or from `seed` for reproducible
/// runs.
fn rng(seed: Option<u64>) -> rand::rngs::SmallRng {
    use rand::SeedableRng;
    match seed {
        Some(seed) => rand::rngs::SmallRng::seed_from_u64(seed),
        None => rand::rngs::SmallRng::from_rng(&mut rand::rng()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_upstream_texts() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(AllocError::Full.to_string(), "range is full");
        assert_eq!(
            AllocError::Allocated { requested: Requested::Ip(ip) }.to_string(),
            "provided IP is already allocated"
        );
        assert_eq!(
            AllocError::Allocated { requested: Requested::Port(30080) }.to_string(),
            "provided port is already allocated"
        );
        assert_eq!(
            AllocError::NotInRange { requested: Requested::Ip(ip), valid: "10.96.0.0/12".into() }.to_string(),
            "the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
        );
        assert_eq!(
            AllocError::NotInRange { requested: Requested::Port(80), valid: "30000-32767".into() }.to_string(),
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
    }

    #[test]
    fn stats_count_successes_and_errors_by_scope() {
        let mut stats = AllocStats::default();
        stats.record(Scope::Static, &Ok::<(), AllocError>(()));
        stats.record(Scope::Dynamic, &Ok::<(), AllocError>(()));
        stats.record(Scope::Dynamic, &Ok::<(), AllocError>(()));
        stats.record(Scope::Static, &Err::<(), _>(AllocError::Full));
        stats.record(Scope::Dynamic, &Err::<(), _>(AllocError::Full));
        assert_eq!(
            stats,
            AllocStats {
                allocations_static: 1,
                allocations_dynamic: 2,
                errors: 2,
                errors_static: 1,
                errors_dynamic: 1
            }
        );
    }
}

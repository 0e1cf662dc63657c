//! Host-local IPAM: one file per allocated address, as CNI's host-local plugin keeps them.
//!
//! The directory is the only source of truth, so an agent restart (or a second process on the
//! same directory) sees exactly what was handed out. A record is created with
//! `O_CREAT|O_EXCL`, which is the allocation's atomic step: two allocators racing for one
//! address cannot both win.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use api::net::{Cidr, IpFamily, from_u128, to_u128};

/// The file (beside the address records) holding the last address handed out, named as
/// host-local names it.
const LAST_RESERVED: &str = "last_reserved_ip.0";

use super::NetError;

#[derive(Clone, Debug)]
pub struct Ipam {
    cidr: Cidr,
    dir: PathBuf,
}

impl Ipam {
    /// An allocator for `cidr` keeping its records in `dir` (created if missing).
    pub fn new(cidr: Cidr, dir: impl Into<PathBuf>) -> Result<Ipam, NetError> {
        let dir = dir.into();
        check_cidr(&cidr)?;
        fs::create_dir_all(&dir).map_err(|e| state_err(&dir, "create", e))?;
        Ok(Ipam { cidr, dir })
    }

    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    /// The pod side's gateway, which the bridge holds: the first host of the range.
    pub fn gateway(&self) -> IpAddr {
        from_u128(self.cidr.family(), self.cidr.first() + 1)
    }

    /// The address recorded for `uid`, or the next free one after the last handed out (as
    /// host-local's round robin), recorded for `uid`.
    ///
    /// Not reusing a just-released address matters: neighbours still hold the old pod's MAC
    /// for it for seconds, and a new pod there would be unreachable until they notice.
    pub fn allocate(&self, uid: &str) -> Result<IpAddr, NetError> {
        let records = self.records()?;
        if let Some((ip, _)) = records.iter().find(|(_, owner)| owner.as_str() == uid) {
            return Ok(*ip);
        }
        let used: HashSet<IpAddr> = records.keys().copied().collect();
        let (first, last) = self.host_range();
        let start = self.last_reserved().filter(|n| (first..last).contains(n)).map(|n| n + 1).unwrap_or(first);
        let candidates = (start..=last).chain(first..start);
        for n in candidates {
            let ip = from_u128(self.cidr.family(), n);
            if used.contains(&ip) {
                continue;
            }
            match self.create_record(ip, uid) {
                Ok(()) => {
                    // Best effort: losing it only makes the next scan start lower.
                    let _ = fs::write(self.dir.join(LAST_RESERVED), ip.to_string());
                    tracing::debug!(%ip, uid, "allocated pod address");
                    return Ok(ip);
                }
                // Another allocator on the same directory won this address; try the next one.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(state_err(&self.path(ip), "create", e)),
            }
        }
        Err(NetError::Exhausted { cidr: self.cidr, in_use: used.len() })
    }

    /// The host number of the last address handed out, if recorded.
    fn last_reserved(&self) -> Option<u128> {
        let ip: IpAddr = fs::read_to_string(self.dir.join(LAST_RESERVED)).ok()?.trim().parse().ok()?;
        self.cidr.contains(ip).then(|| to_u128(ip))
    }

    /// Drops every record owned by `uid`; returns the released addresses (empty if none).
    pub fn release(&self, uid: &str) -> Result<Vec<IpAddr>, NetError> {
        let mut released = Vec::new();
        for (ip, owner) in self.records()? {
            if owner == uid {
                let path = self.path(ip);
                match fs::remove_file(&path) {
                    Ok(()) => released.push(ip),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(state_err(&path, "remove", e)),
                }
            }
        }
        if !released.is_empty() {
            sync_dir(&self.dir)?;
            tracing::debug!(?released, uid, "released pod address");
        }
        Ok(released)
    }

    /// Every record in the directory that belongs to this range: address -> owner uid.
    ///
    /// A record with no owner (a crash between create and write) still holds its address:
    /// handing it out again could give two pods one IP, which is worse than leaking one.
    pub fn records(&self) -> Result<BTreeMap<IpAddr, String>, NetError> {
        let mut out = BTreeMap::new();
        let entries = fs::read_dir(&self.dir).map_err(|e| state_err(&self.dir, "read", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| state_err(&self.dir, "read", e))?;
            let Some(ip) = entry.file_name().to_str().and_then(|s| s.parse::<IpAddr>().ok()) else { continue };
            if !self.cidr.contains(ip) {
                continue;
            }
            let path = entry.path();
            let owner = match fs::read_to_string(&path) {
                Ok(s) => s.lines().next().unwrap_or("").trim().to_string(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(state_err(&path, "read", e)),
            };
            if owner.is_empty() {
                tracing::warn!(path = %path.display(), "IPAM record without an owner; its address stays reserved");
            }
            out.insert(ip, owner);
        }
        Ok(out)
    }

    /// First and last assignable host numbers: network, gateway and (IPv4) broadcast excluded.
    fn host_range(&self) -> (u128, u128) {
        let last = match self.cidr.family() {
            IpFamily::V4 => self.cidr.last() - 1,
            IpFamily::V6 => self.cidr.last(),
        };
        (self.cidr.first() + 2, last)
    }

    fn path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    fn create_record(&self, ip: IpAddr, uid: &str) -> io::Result<()> {
        let path = self.path(ip);
        let mut f = OpenOptions::new().write(true).create_new(true).open(&path)?;
        let written = f.write_all(format!("{uid}\n").as_bytes()).and_then(|()| f.sync_all());
        if let Err(e) = written {
            // The address is not really ours until the owner is on disk.
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        // The file's name is the allocation: make the directory entry durable too.
        File::open(&self.dir).and_then(|d| d.sync_all())
    }
}

/// Pod ranges need room for network, gateway, broadcast and at least one pod.
pub(crate) fn check_cidr(cidr: &Cidr) -> Result<(), NetError> {
    let max = match cidr.family() {
        IpFamily::V4 => 30,
        IpFamily::V6 => 126,
    };
    if cidr.prefix() > max {
        return Err(NetError::Config(format!("pod CIDR {cidr} is too small for pods (at most /{max})")));
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), NetError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| state_err(dir, "fsync", e))
}

fn state_err(path: &Path, op: &'static str, source: io::Error) -> NetError {
    NetError::State { op, path: path.to_path_buf(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(cidr: &str, dir: &Path) -> Ipam {
        Ipam::new(cidr.parse().unwrap(), dir).unwrap()
    }

    #[test]
    fn skips_network_gateway_and_broadcast_and_reports_exhaustion() {
        let tmp = tempfile::tempdir().unwrap();
        let a = ipam("198.18.0.0/29", tmp.path());
        assert_eq!(a.gateway().to_string(), "198.18.0.1");
        let got: Vec<String> = (0..5).map(|i| a.allocate(&format!("pod-{i}")).unwrap().to_string()).collect();
        assert_eq!(got, ["198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5", "198.18.0.6"]);
        let err = a.allocate("pod-5").unwrap_err();
        assert_eq!(err.to_string(), "pod CIDR 198.18.0.0/29 is exhausted (5 addresses in use)");
        let full = ipam("198.18.1.0/24", &tmp.path().join("full"));
        for i in 0..253 {
            full.allocate(&format!("p{i}")).unwrap();
        }
        assert_eq!(
            full.allocate("x").unwrap_err().to_string(),
            "pod CIDR 198.18.1.0/24 is exhausted (253 addresses in use)"
        );
    }

    #[test]
    fn same_uid_same_address_and_round_robin_after_release() {
        let tmp = tempfile::tempdir().unwrap();
        let a = ipam("198.18.0.0/24", tmp.path());
        let x = a.allocate("x").unwrap();
        let y = a.allocate("y").unwrap();
        assert_ne!(x, y);
        assert_eq!(a.allocate("x").unwrap(), x);
        assert_eq!(a.release("x").unwrap(), vec![x]);
        assert!(a.release("x").unwrap().is_empty(), "release is idempotent");
        assert!(!tmp.path().join(x.to_string()).exists());
        let z = a.allocate("z").unwrap();
        assert!(z != x && z != y, "a just-released address is not handed out again at once");
        assert_eq!(fs::read_to_string(tmp.path().join(z.to_string())).unwrap(), "z\n");

        // Round robin wraps around: in a full range the released address is the one left.
        let tmp = tempfile::tempdir().unwrap();
        let small = ipam("198.18.0.0/29", tmp.path());
        let all: Vec<IpAddr> = (0..5).map(|i| small.allocate(&format!("p{i}")).unwrap()).collect();
        small.release("p0").unwrap();
        assert_eq!(small.allocate("q").unwrap(), all[0]);
    }

    #[test]
    fn a_restarted_allocator_keeps_records_and_never_reuses_one() {
        let tmp = tempfile::tempdir().unwrap();
        let first = ipam("198.18.0.0/24", tmp.path());
        let a = first.allocate("a").unwrap();
        let b = first.allocate("b").unwrap();
        drop(first);
        let again = ipam("198.18.0.0/24", tmp.path());
        assert_eq!(again.allocate("b").unwrap(), b);
        let c = again.allocate("c").unwrap();
        assert!(c != a && c != b);
        let recs = again.records().unwrap();
        assert_eq!(recs.get(&a).map(String::as_str), Some("a"));
        assert_eq!(recs.len(), 3);
    }

    #[test]
    fn ownerless_and_foreign_files_are_handled() {
        let tmp = tempfile::tempdir().unwrap();
        // A crash between create and write leaves an empty record: its address stays taken.
        fs::write(tmp.path().join("198.18.0.2"), "").unwrap();
        // Files that are not addresses of this range are not records.
        fs::write(tmp.path().join("lock"), "x").unwrap();
        fs::write(tmp.path().join("198.18.9.9"), "other").unwrap();
        let a = ipam("198.18.0.0/24", tmp.path());
        assert_eq!(a.allocate("p").unwrap().to_string(), "198.18.0.3");
        assert_eq!(a.records().unwrap().len(), 2);
    }

    #[test]
    fn ipv6_and_too_small_ranges() {
        let tmp = tempfile::tempdir().unwrap();
        let a = ipam("fd00:198:18::/64", tmp.path());
        assert_eq!(a.gateway().to_string(), "fd00:198:18::1");
        assert_eq!(a.allocate("p").unwrap().to_string(), "fd00:198:18::2");
        for tiny in ["198.18.0.0/31", "198.18.0.0/32", "fd00::/127"] {
            let err = Ipam::new(tiny.parse().unwrap(), tmp.path()).unwrap_err();
            assert!(err.to_string().contains("too small"), "{tiny}: {err}");
        }
    }
}

//! The address ranges of a cluster must not overlap: a pod address inside the service range is
//! taken for a Service by every proxy, and a node address inside either is unreachable from
//! pods. `portico up` and `portico server` refuse such flags before anything starts.

use api::net::Cidr;
use std::net::IpAddr;

/// One named range, as the user gave it.
pub struct Range<'a> {
    pub what: &'a str,
    pub flag: &'a str,
    pub cidr: Cidr,
}

fn overlap(a: &Cidr, b: &Cidr) -> bool {
    a.family() == b.family() && a.first() <= b.last() && b.first() <= a.last()
}

/// Every pair of ranges that overlaps, and every node address inside a range, named with the
/// flags that set them.
pub fn check(ranges: &[Range<'_>], node_ips: &[(IpAddr, &str)]) -> Result<(), String> {
    let mut problems = vec![];
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            if overlap(&a.cidr, &b.cidr) {
                problems.push(format!(
                    "the {} {}/{} ({}) overlaps the {} {}/{} ({})",
                    a.what,
                    a.cidr.network(),
                    a.cidr.prefix(),
                    a.flag,
                    b.what,
                    b.cidr.network(),
                    b.cidr.prefix(),
                    b.flag
                ));
            }
        }
    }
    for (ip, flag) in node_ips {
        for r in ranges.iter().filter(|r| r.cidr.contains(*ip)) {
            problems.push(format!(
                "the node address {ip} ({flag}) is inside the {} {}/{} ({})",
                r.what,
                r.cidr.network(),
                r.cidr.prefix(),
                r.flag
            ));
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(format!("{}; choose ranges that do not overlap", problems.join("; "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r<'a>(what: &'a str, flag: &'a str, cidr: &str) -> Range<'a> {
        Range { what, flag, cidr: cidr.parse().unwrap() }
    }

    #[test]
    fn separate_ranges_pass() {
        let ranges = [
            r("pod range", "--cluster-cidr", "10.244.0.0/16"),
            r("service range", "--service-cluster-ip-range", "10.96.0.0/12"),
        ];
        assert!(check(&ranges, &[("192.168.1.5".parse().unwrap(), "--node-ip")]).is_ok());
        // Different families never overlap.
        let dual = [
            r("service range", "--service-cluster-ip-range", "10.96.0.0/12"),
            r("service range", "--service-cluster-ip-range", "fd00::/108"),
        ];
        assert!(check(&dual, &[]).is_ok());
    }

    #[test]
    fn overlaps_name_both_ranges_and_flags() {
        let ranges = [
            r("pod range", "--cluster-cidr", "10.96.0.0/16"),
            r("service range", "--service-cluster-ip-range", "10.96.0.0/12"),
        ];
        let err = check(&ranges, &[]).unwrap_err();
        assert_eq!(
            err,
            "the pod range 10.96.0.0/16 (--cluster-cidr) overlaps the service range 10.96.0.0/12 \
             (--service-cluster-ip-range); choose ranges that do not overlap"
        );
        let err = check(&ranges[1..], &[("10.100.0.1".parse().unwrap(), "--node-ip")]).unwrap_err();
        assert!(
            err.starts_with("the node address 10.100.0.1 (--node-ip) is inside the service range 10.96.0.0/12"),
            "{err}"
        );
    }
}

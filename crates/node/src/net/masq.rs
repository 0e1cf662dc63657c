//! Egress masquerade: pods' traffic to outside the cluster leaves with the node's address, as
//! the destination has no route back to pod CIDRs.
//!
//! The rules live in one table of our own, rewritten as a whole in one `nft -f -`
//! transaction, so nothing else's rules are ever read or touched.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use api::net::{Cidr, IpFamily};

use super::NetError;

/// The table's name (in family `ip` or `ip6`, after the pod CIDR).
pub const TABLE: &str = "portico_node";

/// The nft family of a pod CIDR's table.
pub fn family(pod_cidr: &Cidr) -> &'static str {
    match pod_cidr.family() {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    }
}

/// The `nft -f` input that makes the table exactly this (or removes it if `!enabled`).
///
/// `add` then `delete` then the full table is nft's idiom for an atomic replace that also
/// works when the table does not exist yet (nft 1.0.6 has no `destroy`).
pub fn ruleset(pod_cidr: &Cidr, cluster_cidr: Option<&Cidr>, bridge: &str, enabled: bool) -> String {
    let fam = family(pod_cidr);
    let mut s = format!("add table {fam} {TABLE}\ndelete table {fam} {TABLE}\n");
    if enabled {
        let inside = cluster_cidr.unwrap_or(pod_cidr);
        s.push_str(&format!(
            "table {fam} {TABLE} {{\n\
             \tchain postrouting {{\n\
             \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
             \t\t{fam} saddr {pod_cidr} {fam} daddr != {inside} oifname != \"{bridge}\" masquerade\n\
             \t}}\n\
             }}\n"
        ));
    }
    s
}

/// Feeds `script` to `nft -f -` inside the network namespace `ns`.
///
/// The child enters `ns` itself (setns before exec) because it would otherwise inherit the
/// namespace of whichever runtime thread happens to spawn it.
pub fn apply(ns: &File, script: &str) -> Result<(), NetError> {
    let ns: OwnedFd =
        ns.try_clone().map_err(|e| NetError::Nft(format!("cannot duplicate the namespace handle: {e}")))?.into();
    let mut cmd = Command::new("nft");
    cmd.args(["-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    super::netns::enter_before_exec(&mut cmd, ns);
    let mut child =
        cmd.spawn().map_err(|e| NetError::Nft(format!("cannot run `nft` (Debian package nftables): {e}")))?;
    let written = child.stdin.take().map(|mut stdin| stdin.write_all(script.as_bytes()));
    let out = child.wait_with_output().map_err(|e| NetError::Nft(format!("waiting for `nft -f -`: {e}")))?;
    if !out.status.success() {
        return Err(NetError::Nft(format!(
            "`nft -f -` failed ({}): {}\ninput was:\n{script}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    if let Some(Err(e)) = written {
        return Err(NetError::Nft(format!("writing the ruleset to `nft -f -`: {e}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerades_what_leaves_the_cluster_range_but_not_the_bridge() {
        let pod: Cidr = "198.18.3.0/24".parse().unwrap();
        let cluster: Cidr = "198.18.0.0/16".parse().unwrap();
        let s = ruleset(&pod, Some(&cluster), "portico0", true);
        assert!(s.starts_with("add table ip portico_node\ndelete table ip portico_node\ntable ip portico_node {"));
        assert!(s.contains("ip saddr 198.18.3.0/24 ip daddr != 198.18.0.0/16 oifname != \"portico0\" masquerade"));
        let alone = ruleset(&pod, None, "br", true);
        assert!(alone.contains("ip saddr 198.18.3.0/24 ip daddr != 198.18.3.0/24 oifname != \"br\""));
        let v6 = ruleset(&"fd00:1::/64".parse().unwrap(), None, "portico0", true);
        assert!(v6.contains("table ip6 portico_node") && v6.contains("ip6 saddr fd00:1::/64"));
        let off = ruleset(&pod, Some(&cluster), "portico0", false);
        assert_eq!(off, "add table ip portico_node\ndelete table ip portico_node\n");
    }
}

//! The files a pod sees as its own: /etc/resolv.conf per dnsPolicy and /etc/hosts, as kubelet
//! writes them.

use k8s_openapi::api::core::v1::Pod;

/// Most nameservers and search domains a resolver reads (glibc's limits, which kubelet applies).
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

/// The cluster's DNS settings the agent was started with.
#[derive(Clone, Debug)]
pub struct ClusterDns {
    pub nameserver: String,
    pub domain: String,
}

/// What a resolv.conf holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resolv {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl Resolv {
    /// Reads a resolv.conf (the host's, for dnsPolicy Default).
    pub fn parse(text: &str) -> Resolv {
        let mut r = Resolv::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => r.nameservers.extend(words.next().map(str::to_owned)),
                // The last search/domain line wins, as in the resolver.
                Some("search") | Some("domain") => r.searches = words.map(str::to_owned).collect(),
                Some("options") => r.options.extend(words.map(str::to_owned)),
                _ => {}
            }
        }
        r
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// The pod's resolv.conf per `spec.dnsPolicy` and `spec.dnsConfig` (kubelet's `GetPodDNS`):
/// ClusterFirst (the default) points at the cluster DNS with the namespace's search path and
/// `ndots:5`; a host-network pod with ClusterFirst gets Default; Default is the host's file;
/// None is only what dnsConfig says. dnsConfig's nameservers and searches are appended and its
/// options override by name.
pub fn resolv_conf(pod: &Pod, cluster: &ClusterDns, host: &Resolv) -> Resolv {
    let spec = pod.spec.as_ref();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst");
    let cluster_first = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    };
    let mut r = if cluster_first {
        let d = &cluster.domain;
        let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
        searches.extend(host.searches.iter().cloned());
        Resolv { nameservers: vec![cluster.nameserver.clone()], searches, options: vec!["ndots:5".to_owned()] }
    } else if policy == "None" {
        Resolv::default()
    } else {
        host.clone()
    };
    if let Some(config) = spec.and_then(|s| s.dns_config.as_ref()) {
        r.nameservers.extend(config.nameservers.iter().flatten().cloned());
        r.searches.extend(config.searches.iter().flatten().cloned());
        for o in config.options.iter().flatten() {
            let Some(name) = o.name.as_deref() else { continue };
            let rendered = match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name.to_owned(),
            };
            r.options.retain(|existing| existing.split(':').next() != Some(name));
            r.options.push(rendered);
        }
    }
    let mut seen = std::collections::HashSet::new();
    r.searches.retain(|s| seen.insert(s.clone()));
    r.nameservers.truncate(MAX_NAMESERVERS);
    r.searches.truncate(MAX_SEARCHES);
    r
}

/// The pod's hostname: `spec.hostname` or the pod name (kubelet truncates to 63 characters).
pub fn hostname(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    let name = spec.and_then(|s| s.hostname.clone()).filter(|h| !h.is_empty());
    let mut h = name.unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    h.truncate(63);
    h.trim_end_matches(['-', '.']).to_owned()
}

/// The pod's /etc/hosts, as kubelet's `managedHostsFileContent` writes it.
pub fn hosts(pod: &Pod, ips: &[std::net::IpAddr], cluster_domain: &str) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    let host = hostname(pod);
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let subdomain = pod.spec.as_ref().and_then(|s| s.subdomain.as_deref()).filter(|s| !s.is_empty());
    for ip in ips {
        match subdomain {
            Some(sub) => out.push_str(&format!("{ip}\t{host}.{sub}.{ns}.svc.{cluster_domain}\t{host}\n")),
            None => out.push_str(&format!("{ip}\t{host}\n")),
        }
    }
    let aliases = pod.spec.as_ref().and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names = a.hostnames.iter().flatten().cloned().collect::<Vec<_>>().join("\t");
            out.push_str(&format!("{}\t{names}\n", a.ip));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "web-0", "namespace": "shop"}, "spec": spec})).unwrap()
    }

    fn cluster() -> ClusterDns {
        ClusterDns { nameserver: "10.96.0.10".into(), domain: "cluster.local".into() }
    }

    #[test]
    fn cluster_first_points_at_the_cluster_dns_with_the_namespace_search_path() {
        let host = Resolv::parse("nameserver 192.0.2.53\nsearch corp.example\n");
        let r = resolv_conf(&pod(json!({"containers": []})), &cluster(), &host);
        assert_eq!(
            r.render(),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n\
             nameserver 10.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn default_and_host_network_use_the_host_file_and_none_only_dns_config() {
        let host = Resolv::parse("nameserver 192.0.2.53\noptions edns0\n");
        let r = resolv_conf(&pod(json!({"containers": [], "dnsPolicy": "Default"})), &cluster(), &host);
        assert_eq!(r, host);
        let r = resolv_conf(&pod(json!({"containers": [], "hostNetwork": true})), &cluster(), &host);
        assert_eq!(r, host);
        let none = pod(json!({"containers": [], "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["192.0.2.1"], "searches": ["a.example"], "options": [{"name": "ndots", "value": "2"}]}}));
        assert_eq!(
            resolv_conf(&none, &cluster(), &host).render(),
            "search a.example\nnameserver 192.0.2.1\noptions ndots:2\n"
        );
    }

    #[test]
    fn dns_config_options_override_by_name() {
        let p = pod(
            json!({"containers": [], "dnsConfig": {"options": [{"name": "ndots", "value": "1"}, {"name": "edns0"}]}}),
        );
        let r = resolv_conf(&p, &cluster(), &Resolv::default());
        assert_eq!(r.options, ["ndots:1", "edns0"]);
    }

    #[test]
    fn hosts_file_names_the_pod_and_its_aliases() {
        let p = pod(json!({"containers": [], "hostname": "db", "subdomain": "dbs",
            "hostAliases": [{"ip": "192.0.2.7", "hostnames": ["foo.local", "bar.local"]}]}));
        let text = hosts(&p, &["10.244.0.5".parse().unwrap()], "cluster.local");
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"), "{text}");
        assert!(text.contains("10.244.0.5\tdb.dbs.shop.svc.cluster.local\tdb\n"), "{text}");
        assert!(text.ends_with("# Entries added by HostAliases.\n192.0.2.7\tfoo.local\tbar.local\n"), "{text}");
        let plain = hosts(&pod(json!({"containers": []})), &["10.244.0.6".parse().unwrap()], "cluster.local");
        assert!(plain.contains("10.244.0.6\tweb-0\n"));
    }
}

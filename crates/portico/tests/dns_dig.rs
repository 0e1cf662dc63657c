//! `portico up` runs the cluster DNS behind the kube-dns Service; the real `dig` reads its
//! answers for the Kubernetes docs' examples ("DNS for Services and Pods") and gets what
//! CoreDNS answers: the same names, types and data.

mod common;

use common::Server;
use common::dns::{FakeUpstream, free_tcp_port, free_udp_tcp_port, http_get};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

const DOCS_EXAMPLE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: busybox-subdomain
spec:
  selector:
    name: busybox
  clusterIP: None
  ports:
  - name: foo # name is not required for single-port Services
    port: 1234
---
apiVersion: v1
kind: Pod
metadata:
  name: busybox1
  labels:
    name: busybox
spec:
  hostname: busybox-1
  subdomain: busybox-subdomain
  containers:
  - image: busybox:1.28
    command:
      - sleep
      - "3600"
    name: busybox
---
apiVersion: v1
kind: Pod
metadata:
  name: busybox2
  labels:
    name: busybox
spec:
  hostname: busybox-2
  subdomain: busybox-subdomain
  containers:
  - image: busybox:1.28
    command:
      - sleep
      - "3600"
    name: busybox
---
apiVersion: v1
kind: Service
metadata:
  name: my-svc
spec:
  selector:
    app.kubernetes.io/name: MyApp
  ports:
    - name: http
      protocol: TCP
      port: 80
      targetPort: 9376
"#;

/// `dig` lines with runs of whitespace folded to one space.
fn dig(addr: SocketAddr, args: &[&str]) -> Vec<String> {
    let out = Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+noall", "+answer", "+time=2", "+tries=1"])
        .args(args)
        .output()
        .expect("dig is installed (.ci/run installs bind9-dnsutils)");
    assert!(out.status.success(), "dig {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn dig_reads_the_docs_examples_as_coredns_answers_them() {
    let upstream = FakeUpstream::start();
    let dns: SocketAddr = ([127, 0, 0, 1], free_udp_tcp_port()).into();
    let http: SocketAddr = ([127, 0, 0, 1], free_tcp_port()).into();
    let server = Server::start_command(
        "up",
        &[
            "--dns-listen",
            &dns.to_string(),
            "--dns-upstream",
            &upstream.addr.to_string(),
            "--dns-health",
            &http.to_string(),
            "--dns-ready",
            &http.to_string(),
            "--dns-metrics",
            &http.to_string(),
        ],
    );
    // portico up publishes the kube-dns Service as kubeadm does.
    let svc = server.kubectl_ok(&["get", "svc", "-n", "kube-system", "kube-dns", "--no-headers"]);
    let cols: Vec<&str> = svc.split_whitespace().collect();
    assert_eq!(&cols[..5], &["kube-dns", "ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP,9153/TCP"], "{svc}");
    assert!(common::eventually(Duration::from_secs(20), || http_get(http, "/ready").0 == 200));

    server.apply_ok(DOCS_EXAMPLE, &[]);
    let pods: Api<Pod> = Api::namespaced(server.client().await, "default");
    for (name, ip) in [("busybox1", "10.244.0.21"), ("busybox2", "10.244.0.22")] {
        common::set_pod_status(&pods, name, ip, true).await;
    }
    let sub = "busybox-subdomain.default.svc.cluster.local.";
    assert!(
        common::eventually(Duration::from_secs(10), || dig(dns, &[sub, "A"]).len() == 2),
        "both pods reach the headless Service"
    );
    let my_svc = server.kubectl_ok(&["get", "svc", "my-svc", "-o", "jsonpath={.spec.clusterIP}"]);
    let expect = |args: &[&str], lines: &[String]| {
        let mut want = lines.to_vec();
        want.sort();
        assert_eq!(dig(dns, args), want, "dig {args:?}");
    };
    expect(
        &["busybox-1.busybox-subdomain.default.svc.cluster.local"],
        &[format!("busybox-1.{sub} 5 IN A 10.244.0.21")],
    );
    expect(&[sub], &[format!("{sub} 5 IN A 10.244.0.21"), format!("{sub} 5 IN A 10.244.0.22")]);
    expect(
        &["SRV", &format!("_foo._tcp.{sub}")],
        &[
            format!("_foo._tcp.{sub} 5 IN SRV 0 50 1234 busybox-1.{sub}"),
            format!("_foo._tcp.{sub} 5 IN SRV 0 50 1234 busybox-2.{sub}"),
        ],
    );
    expect(&["my-svc.default.svc.cluster.local"], &[format!("my-svc.default.svc.cluster.local. 5 IN A {my_svc}")]);
    expect(
        &["SRV", "_http._tcp.my-svc.default.svc.cluster.local"],
        &["_http._tcp.my-svc.default.svc.cluster.local. 5 IN SRV 0 100 80 my-svc.default.svc.cluster.local.".into()],
    );
    expect(
        &["172-17-0-3.default.pod.cluster.local"],
        &["172-17-0-3.default.pod.cluster.local. 5 IN A 172.17.0.3".into()],
    );
    expect(&["-x", "10.244.0.22"], &[format!("22.0.244.10.in-addr.arpa. 5 IN PTR busybox-2.{sub}")]);
    expect(
        &["-x", &my_svc],
        &[format!("{} 5 IN PTR my-svc.default.svc.cluster.local.", dns::zone::reverse_name(my_svc.parse().unwrap()))],
    );
    expect(
        &["kubernetes.default.svc.cluster.local"],
        &["kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1".into()],
    );
    // Over TCP too.
    expect(
        &["+tcp", "my-svc.default.svc.cluster.local"],
        &[format!("my-svc.default.svc.cluster.local. 5 IN A {my_svc}")],
    );
    // The status line: NXDOMAIN, authoritative.
    let out = Command::new("dig")
        .args([&format!("@{}", dns.ip()), "-p", &dns.port().to_string(), "nope.default.svc.cluster.local"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("status: NXDOMAIN") && text.contains("flags: qr aa rd;"), "{text}");
    assert!(text.contains("cluster.local.\t\t5\tIN\tSOA\tns.dns.cluster.local. hostmaster.cluster.local."), "{text}");
}

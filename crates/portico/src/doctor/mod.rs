//! `portico doctor svc/<name>`: the Service troubleshooting checklist of kubernetes.io's
//! "Debug Services", run for you, each step with a verdict in plain words and what to do.
//!
//! 1. the Service exists (else namesakes in other namespaces, look-alike names);
//! 2. its selector selects pods (else the pods whose labels nearly match);
//! 3. those pods are Running and Ready (else the failing probe, CrashLoopBackOff, ...);
//! 4. the EndpointSlices (and Endpoints) list them;
//! 5. each targetPort is a port the pods declare;
//! 6. each ready pod accepts connections on its targetPort at its pod IP (and when not, whether
//!    the app listens on 127.0.0.1 only);
//! 7. the ClusterIP answers on each port;
//! 8. the cluster DNS resolves `<svc>.<ns>.svc.<domain>` to it;
//! 9. NodePorts answer on every node; a LoadBalancer has an address.
//!
//! Layout: [`fetch`] reads the objects into [`facts::Facts`]; [`checks`] (steps 1-5) and
//! [`network`] (6-9, against the [`network::Prober`] trait) decide without IO; [`probe`] is the
//! prober that opens sockets from inside a pod's network namespace on this machine;
//! [`report`] prints. Departures from the upstream page: no `nslookup` from a pod of yours nor
//! `ping` (the note says why a ClusterIP never answers one); the probes run from an existing
//! pod's namespace on this machine rather than from a pod created for the purpose.

mod checks;
mod facts;
mod fetch;
mod network;
mod probe;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cli::ApiArgs;

#[derive(Args, Debug, Clone)]
pub struct DoctorArgs {
    /// The Service to check: svc/<name> (service/<name> and a bare name work too).
    pub target: String,
    /// Its namespace (default: the kubeconfig context's, else default).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Output: text or json.
    #[arg(short = 'o', long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
    #[command(flatten)]
    pub api: ApiArgs,
    /// Pod network namespaces are /run/netns/<prefix><pod uid> (the node agent's --netns-prefix).
    #[arg(long, default_value = "portico-", env = "PORTICO_NETNS_PREFIX")]
    pub netns_prefix: String,
    /// The cluster domain the DNS serves.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// How long each network probe waits, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub probe_timeout_ms: u64,
}

/// Runs the checklist and prints it; an error (so a non-zero exit) when a check failed.
pub async fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let name = service_name(&args.target)?;
    let client = args.api.connect().await?;
    let namespace = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned());
    let facts = fetch::gather(&client, &namespace, &name, &args.cluster_domain).await?;
    let mut checks = checks::inspect(&facts);
    let (probed_from, probe_note, net) = probe_network(&args, facts.clone()).await?;
    checks.extend(net);
    let report = report::Report { namespace, service: name, probed_from, probe_note, checks };
    match args.output.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&report.json())?),
        _ => print!("{}", report.text()),
    }
    let failed = report.count(checks::Status::Fail);
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed for Service {}/{}", report.namespace, report.service);
    }
    Ok(())
}

/// `svc/web`, `service/web`, `services/web` or `web`.
fn service_name(target: &str) -> anyhow::Result<String> {
    let name = match target.split_once('/') {
        None => target,
        Some(("svc" | "service" | "services", name)) => name,
        Some((kind, _)) => anyhow::bail!("portico doctor checks Services: use svc/<name>, not {kind}/"),
    };
    if name.is_empty() {
        anyhow::bail!("name the Service: portico doctor svc/<name>");
    }
    Ok(name.to_owned())
}

/// The network checks, from inside a pod's namespace on this machine (or all skipped, with why).
async fn probe_network(
    args: &DoctorArgs,
    facts: facts::Facts,
) -> anyhow::Result<(Option<String>, String, Vec<checks::Check>)> {
    if facts.service.is_none() {
        return Ok((None, String::new(), vec![]));
    }
    let mut prober = probe::NetnsProber {
        netns_dir: PathBuf::from(node::net::NETNS_DIR),
        prefix: args.netns_prefix.clone(),
        timeout: Duration::from_millis(args.probe_timeout_ms.max(100)),
    };
    let Some(client) = network::choose_client(&facts, |uid| prober.pod_netns(uid).exists()) else {
        let why = format!(
            "no Running pod has a network namespace on this machine ({}/{}<pod uid>); run the doctor as root on a \
             node that runs pods, with that node agent's --netns-prefix",
            node::net::NETNS_DIR,
            args.netns_prefix
        );
        let note = format!("Network checks skipped: {why}.");
        return Ok((None, note, network::skipped(&facts, &why)));
    };
    let path = prober.pod_netns(&client.uid);
    let who = format!("{}/{}", client.namespace, client.name);
    let mut note = format!("Network checks ran from inside pod {who} (network namespace {}).", path.display());
    if client.backend {
        note.push_str(" It is one of the Service's own pods (no other pod runs here), so its connections to the ClusterIP may come back to itself.");
    }
    let probed = tokio::task::spawn_blocking(move || {
        let result = probe::in_netns(&path, || network::network(&facts, &mut prober));
        (result, facts)
    })
    .await?;
    match probed {
        (Ok(checks), _) => Ok((Some(who), note, checks)),
        (Err(e), facts) => {
            let why = format!("cannot enter the network namespace of pod {who} ({e}; it needs root)");
            Ok((None, format!("Network checks skipped: {why}."), network::skipped(&facts, &why)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_services_only() {
        assert_eq!(service_name("svc/web").unwrap(), "web");
        assert_eq!(service_name("services/web").unwrap(), "web");
        assert_eq!(service_name("web").unwrap(), "web");
        assert!(service_name("deploy/web").unwrap_err().to_string().contains("svc/<name>"));
        assert!(service_name("svc/").is_err());
    }
}

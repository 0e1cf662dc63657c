//! Flags of `portico ingress` and of the ingress controller `portico up` runs.

use clap::Args;
use std::net::{IpAddr, SocketAddr};

#[derive(Args, Debug, Clone)]
pub struct IngressArgs {
    /// Run no ingress controller.
    #[arg(long)]
    pub no_ingress: bool,
    /// The IngressClass served (with those whose controller is portico.dev/ingress-controller,
    /// and Ingresses without a class when that class is the default).
    #[arg(long, default_value = "portico")]
    pub ingress_class: String,
    /// Where the ingress controller serves HTTP.
    #[arg(long, default_value = "0.0.0.0:80")]
    pub ingress_http_bind: SocketAddr,
    /// Where the ingress controller serves HTTPS.
    #[arg(long, default_value = "0.0.0.0:443")]
    pub ingress_https_bind: SocketAddr,
    /// `/metrics` and `/healthz` of the ingress controller (ingress-nginx's port).
    #[arg(long, default_value = "0.0.0.0:10254")]
    pub ingress_metrics_bind: SocketAddr,
    /// Addresses written to the served Ingresses' status.loadBalancer (default: the node IP).
    #[arg(long, value_delimiter = ',')]
    pub publish_status_address: Vec<IpAddr>,
}

impl IngressArgs {
    pub fn options(&self, node_ip: Option<IpAddr>) -> ingress::Options {
        let publish = match (&self.publish_status_address[..], node_ip) {
            ([], Some(ip)) => vec![ip],
            (given, _) => given.to_vec(),
        };
        ingress::Options {
            class: self.ingress_class.clone(),
            http_bind: Some(self.ingress_http_bind),
            https_bind: Some(self.ingress_https_bind),
            metrics_bind: Some(self.ingress_metrics_bind),
            publish_addresses: publish,
        }
    }
}

/// `portico ingress`: the ingress controller alone, against any Kubernetes API.
#[derive(Args, Debug, Clone)]
pub struct IngressCommandArgs {
    #[command(flatten)]
    pub api: crate::cli::ApiArgs,
    #[command(flatten)]
    pub ingress: IngressArgs,
}

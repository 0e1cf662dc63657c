//! The kube client every component starts from: a kubeconfig file, or the usual inference
//! (`$KUBECONFIG`, `~/.kube/config`, in-cluster), checked against the API at once so that a
//! configuration that cannot work (an unreadable kubeconfig, a certificate that does not
//! verify, credentials the API refuses) fails in seconds with one line saying why, not after
//! a hang. An API that is down or not answering yet is not a configuration error: the
//! component says so and its watches keep retrying (CoreDNS answers SERVFAIL meanwhile too).

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ListParams};

/// How long the first request may take before the API counts as unreachable.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot use kubeconfig {path}: {source}")]
    Kubeconfig { path: String, source: kube::config::KubeconfigError },
    #[error("no usable Kubernetes configuration (pass --kubeconfig or set KUBECONFIG): {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("cannot build a client for {url}: {source}")]
    Client { url: String, source: kube::Error },
    #[error("cannot talk to the Kubernetes API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the Kubernetes API at {url} refuses these credentials: {reason}")]
    Refused { url: String, reason: String },
}

/// A client for `kubeconfig` (or the inferred configuration), after one authenticated request
/// went through.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<Client, Error> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig_err = |source| Error::Kubeconfig { path: path.display().to_string(), source };
            let file = kube::config::Kubeconfig::read_from(path).map_err(kubeconfig_err)?;
            kube::Config::from_custom_kubeconfig(file, &Default::default()).await.map_err(kubeconfig_err)?
        }
        None => kube::Config::infer().await?,
    };
    let url = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|source| Error::Client { url: url.clone(), source })?;
    check(&client, &url).await?;
    Ok(client)
}

/// A client for the API at `server` with a bearer `token` (`portico agent --server --token`),
/// verifying the server against the PEM CA bundle at `ca` (or the system roots).
pub async fn connect_token(server: &str, token: &str, ca: Option<&Path>) -> Result<Client, Error> {
    let quote = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let ca_line = match ca {
        Some(path) => format!("    certificate-authority: {}\n", quote(&path.display().to_string())),
        None => String::new(),
    };
    // kube reads its configuration from a kubeconfig; one in memory keeps the token out of
    // files and argv-visible paths.
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n{ca_line}\
         users:\n- name: u\n  user:\n    token: {}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n\
         current-context: x\n",
        quote(server),
        quote(token),
    );
    let path = format!("--server {server}");
    let kubeconfig_err = |source| Error::Kubeconfig { path: path.clone(), source };
    let file = kube::config::Kubeconfig::from_yaml(&yaml).map_err(kubeconfig_err)?;
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default()).await.map_err(kubeconfig_err)?;
    let url = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|source| Error::Client { url: url.clone(), source })?;
    check(&client, &url).await?;
    Ok(client)
}

/// One small authenticated list: a wrong address, certificate or token shows here.
async fn check(client: &Client, url: &str) -> Result<(), Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let down = |reason: String| {
        tracing::warn!(%url, %reason, "the Kubernetes API is not reachable yet; retrying in the background");
        Ok(())
    };
    match tokio::time::timeout(CHECK_TIMEOUT, api.list_metadata(&ListParams::default().limit(1))).await {
        Err(_) => down(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
        Ok(Ok(_)) => Ok(()),
        // Forbidden to list namespaces is not fatal for every component: its informers say
        // which kind it may not watch.
        Ok(Err(kube::Error::Api(s))) if s.code == 403 => Ok(()),
        Ok(Err(kube::Error::Api(s))) if s.code == 401 => {
            Err(Error::Refused { url: url.to_owned(), reason: format!("401 Unauthorized: {}", s.message) })
        }
        Ok(Err(e)) if is_down(&e) => down(root_cause(&e)),
        Ok(Err(e)) => Err(Error::Unreachable { url: url.to_owned(), reason: root_cause(&e) }),
    }
}

/// The API is down or not reachable (as opposed to reachable and not usable: TLS, HTTP).
fn is_down(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::*;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ConnectionRefused | ConnectionReset | TimedOut | HostUnreachable | NetworkUnreachable
            )
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// The innermost error message: hyper's and rustls' wrappers say little on their own.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut messages = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let m = s.to_string();
        if !messages.iter().any(|known| known.contains(&m)) {
            messages.push(m);
        }
        source = s.source();
    }
    messages.join(": ")
}

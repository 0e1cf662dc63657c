//! First-start credentials: a CA, the API server's serving certificate, the admin bearer
//! token, and the kubeconfig that `kubectl --kubeconfig` uses as-is.

use anyhow::Context;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the credentials live under the data directory.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(data_dir: &Path) -> Self {
        Pki { dir: data_dir.join("pki") }
    }

    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    fn ca_key_path(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    fn serving_cert_path(&self) -> PathBuf {
        self.dir.join("apiserver.crt")
    }
    fn serving_key_path(&self) -> PathBuf {
        self.dir.join("apiserver.key")
    }
    fn token_path(&self) -> PathBuf {
        self.dir.join("admin.token")
    }

    /// Creates whatever is missing. Existing credentials are kept so kubeconfigs stay valid
    /// across restarts; extra SANs (addresses the server is reached at) are added at creation.
    pub fn ensure(&self, extra_sans: &[String]) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let complete = [self.ca_cert_path(), self.ca_key_path(), self.serving_cert_path(), self.serving_key_path()]
            .iter()
            .all(|p| p.exists());
        if !complete {
            self.generate(extra_sans)?;
        }
        if !self.token_path().exists() {
            let token = random_token();
            write_private(&self.token_path(), token.as_bytes())?;
        }
        Ok(())
    }

    fn generate(&self, extra_sans: &[String]) -> anyhow::Result<()> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params.distinguished_name.push(DnType::CommonName, "portico-ca");
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        ca_params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let ca_cert = ca_params.self_signed(&ca_key)?;

        let mut names: Vec<String> = [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "127.0.0.1",
            "::1",
            "10.96.0.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        names.extend(extra_sans.iter().cloned());
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        for n in &names {
            params.subject_alt_names.push(match n.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(n.as_str().try_into()?),
            });
        }
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let key = KeyPair::generate()?;
        let issuer = Issuer::new(ca_params, &ca_key);
        let cert = params.signed_by(&key, &issuer)?;

        write_private(&self.ca_key_path(), ca_key.serialize_pem().as_bytes())?;
        std::fs::write(self.ca_cert_path(), ca_cert.pem())?;
        write_private(&self.serving_key_path(), key.serialize_pem().as_bytes())?;
        std::fs::write(self.serving_cert_path(), cert.pem())?;
        Ok(())
    }

    pub fn token(&self) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(self.token_path())?.trim().to_string())
    }

    pub fn ca_pem(&self) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(self.ca_cert_path())?)
    }

    /// rustls server configuration offering HTTP/2 and HTTP/1.1, as kube-apiserver does.
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.serving_cert_path())?.collect::<Result<_, _>>()?;
        let ca: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.ca_cert_path())?.collect::<Result<_, _>>()?;
        let key = PrivateKeyDer::from_pem_file(self.serving_key_path())?;
        let chain = certs.into_iter().chain(ca).collect();
        let mut config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Writes a kubeconfig for `server` (e.g. `https://127.0.0.1:6443`) with the admin token.
    pub fn write_kubeconfig(&self, path: &Path, server: &str) -> anyhow::Result<()> {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem()?);
        let token = self.token()?;
        let text = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: portico
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    token: {token}
contexts:
- name: portico
  context:
    cluster: portico
    user: admin
    namespace: default
current-context: portico
preferences: {{}}
"
        );
        write_private(path, text.as_bytes())
    }
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

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
    fn kubelet_client_cert_path(&self) -> PathBuf {
        self.dir.join("apiserver-kubelet-client.crt")
    }
    fn kubelet_client_key_path(&self) -> PathBuf {
        self.dir.join("apiserver-kubelet-client.key")
    }
    fn token_path(&self) -> PathBuf {
        self.dir.join("admin.token")
    }

    fn serving_sans_path(&self) -> PathBuf {
        self.dir.join("apiserver.sans")
    }

    /// Creates whatever is missing. Existing credentials are kept so kubeconfigs stay valid
    /// across restarts. The serving certificate is reissued by the same CA when it lacks one of
    /// `extra_sans` (addresses the server is reached at, such as the node network of
    /// `portico up --nodes`), keeping the names it had: clients' trust in the CA is unchanged.
    pub fn ensure(&self, extra_sans: &[String]) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let ca = [self.ca_cert_path(), self.ca_key_path()].iter().all(|p| p.exists());
        if !ca {
            self.generate_ca()?;
        }
        let serving = [self.serving_cert_path(), self.serving_key_path()].iter().all(|p| p.exists());
        // A data directory from before the names were recorded holds the defaults and
        // whatever its first start added; asking for any extra name reissues it.
        let recorded: Option<Vec<String>> = std::fs::read_to_string(self.serving_sans_path())
            .ok()
            .map(|t| t.lines().map(str::to_owned).filter(|l| !l.is_empty()).collect());
        let missing = match &recorded {
            Some(names) => extra_sans.iter().any(|n| !names.contains(n)),
            None => !extra_sans.is_empty(),
        };
        if !ca || !serving || missing {
            let mut names = recorded.unwrap_or_default();
            for n in extra_sans {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
            self.generate_serving(&names)?;
        }
        if !ca || !self.kubelet_client_cert_path().exists() || !self.kubelet_client_key_path().exists() {
            self.generate_kubelet_client()?;
        }
        if !self.token_path().exists() {
            let token = random_token();
            write_private(&self.token_path(), token.as_bytes())?;
        }
        Ok(())
    }

    fn generate_ca(&self) -> anyhow::Result<()> {
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params()?.self_signed(&ca_key)?;
        write_private(&self.ca_key_path(), ca_key.serialize_pem().as_bytes())?;
        std::fs::write(self.ca_cert_path(), ca_cert.pem())?;
        Ok(())
    }

    /// The serving certificate for the default names plus `extra_sans`, signed by the CA on disk.
    fn generate_serving(&self, extra_sans: &[String]) -> anyhow::Result<()> {
        let ca_key = KeyPair::from_pem(&std::fs::read_to_string(self.ca_key_path())?)?;
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
        for n in extra_sans {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
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
        let issuer = Issuer::new(ca_params()?, &ca_key);
        let cert = params.signed_by(&key, &issuer)?;
        write_private(&self.serving_key_path(), key.serialize_pem().as_bytes())?;
        std::fs::write(self.serving_cert_path(), cert.pem())?;
        std::fs::write(self.serving_sans_path(), extra_sans.join("\n"))?;
        Ok(())
    }

    /// The client certificate the API server presents to node agents' kubelet API (CN
    /// `kube-apiserver-kubelet-client`, as kubeadm's), signed by the cluster CA.
    fn generate_kubelet_client(&self) -> anyhow::Result<()> {
        let ca_key = KeyPair::from_pem(&std::fs::read_to_string(self.ca_key_path())?)?;
        // The CA's own parameters (name, key identifier method) are all signing needs.
        let ca_params = ca_params()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "kube-apiserver-kubelet-client");
        params.distinguished_name.push(DnType::OrganizationName, "kubeadm:cluster-admins");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let key = KeyPair::generate()?;
        let issuer = Issuer::new(ca_params, &ca_key);
        let cert = params.signed_by(&key, &issuer)?;
        write_private(&self.kubelet_client_key_path(), key.serialize_pem().as_bytes())?;
        std::fs::write(self.kubelet_client_cert_path(), cert.pem())?;
        Ok(())
    }

    /// rustls client configuration for calling kubelets: HTTP/1.1 (the streaming calls upgrade),
    /// the kubelet client certificate, and, as kube-apiserver without
    /// `--kubelet-certificate-authority`, no verification of the kubelet's serving certificate.
    pub fn kubelet_client_config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.kubelet_client_cert_path())?.collect::<Result<_, _>>()?;
        let key = PrivateKeyDer::from_pem_file(self.kubelet_client_key_path())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyKubeletCert(provider)))
            .with_client_auth_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
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

/// The cluster CA's certificate parameters.
fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params.distinguished_name.push(DnType::CommonName, "portico-ca");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca_params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    Ok(ca_params)
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

/// Accepts any kubelet serving certificate (still checking the handshake's signatures), as
/// kube-apiserver does when no `--kubelet-certificate-authority` is given.
#[derive(Debug)]
struct AnyKubeletCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyKubeletCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn a_new_address_reissues_the_serving_certificate_under_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        pki.ensure(&[]).unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        let (ca, serving, token) = (read(pki.ca_cert_path()), read(pki.serving_cert_path()), read(pki.token_path()));

        pki.ensure(&[]).unwrap();
        assert_eq!(read(pki.serving_cert_path()), serving, "nothing new asked: the certificate stays");

        pki.ensure(&["10.255.0.1".into()]).unwrap();
        let reissued = read(pki.serving_cert_path());
        assert_ne!(reissued, serving);
        assert_eq!(read(pki.ca_cert_path()), ca, "the CA is kept, so kubeconfigs stay valid");
        assert_eq!(read(pki.token_path()), token);
        assert_eq!(read(pki.serving_sans_path()), "10.255.0.1");

        // A later start with other names keeps the earlier ones.
        pki.ensure(&["portico.example".into()]).unwrap();
        assert_eq!(read(pki.serving_sans_path()), "10.255.0.1\nportico.example");
        pki.ensure(&["10.255.0.1".into()]).unwrap();
        assert_eq!(read(pki.serving_sans_path()), "10.255.0.1\nportico.example");

        // The reissued certificate chains to the CA and names the address.
        let der = CertificateDer::from_pem_file(pki.serving_cert_path()).unwrap();
        let ca_der = CertificateDer::from_pem_file(pki.ca_cert_path()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_der).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let name = rustls::pki_types::ServerName::from(IpAddr::from([10, 255, 0, 1]));
        let now = rustls::pki_types::UnixTime::now();
        verifier.verify_server_cert(&der, &[], &name, &[], now).expect("the CA vouches for 10.255.0.1");
    }
}

//! Serving certificates: the `kubernetes.io/tls` Secrets named by Ingresses' `spec.tls`, chosen
//! by SNI (exact host first, then a `*.domain` entry for one label), and a self-signed default
//! for everything else. rustls asks the [`Resolver`] on every handshake, so swapping the store
//! changes certificates for new connections without touching open ones.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The name ingress-nginx gives its default certificate, so users recognise it in `curl -v`.
pub const FAKE_CERT_NAME: &str = "Portico Ingress Controller Fake Certificate";

#[derive(Clone)]
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// Hosts listed under some `spec.tls`, with or without a usable certificate (their HTTP
    /// requests are redirected to HTTPS either way, as ingress-nginx does).
    tls_hosts: HashSet<String>,
    default: Arc<CertifiedKey>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CertStore {
    pub fn new(default: Arc<CertifiedKey>) -> CertStore {
        CertStore { exact: HashMap::new(), wildcard: HashMap::new(), tls_hosts: HashSet::new(), default }
    }

    /// Serves `key` for `host` (`*.example.com` for one label under example.com). The first
    /// certificate given for a host stays (Ingresses are offered oldest first).
    pub fn insert(&mut self, host: &str, key: Arc<CertifiedKey>) {
        let host = host.to_ascii_lowercase();
        match host.strip_prefix("*.") {
            Some(suffix) => self.wildcard.entry(suffix.to_owned()).or_insert(key),
            None => self.exact.entry(host).or_insert(key),
        };
    }

    pub fn mark_tls(&mut self, host: &str) {
        self.tls_hosts.insert(host.to_ascii_lowercase());
    }

    /// Whether `host` (lowercase, no port) is a TLS host of some Ingress.
    pub fn is_tls_host(&self, host: &str) -> bool {
        self.tls_hosts.contains(host)
            || host.split_once('.').is_some_and(|(_, suffix)| self.tls_hosts.contains(&format!("*.{suffix}")))
    }

    pub fn find(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = server_name.map(|n| n.trim_end_matches('.').to_ascii_lowercase()) else {
            return self.default.clone();
        };
        if let Some(k) = self.exact.get(&name) {
            return k.clone();
        }
        if let Some((_, suffix)) = name.split_once('.')
            && let Some(k) = self.wildcard.get(suffix)
        {
            return k.clone();
        }
        self.default.clone()
    }
}

/// What rustls asks for a certificate; reads the current store.
#[derive(Debug)]
pub struct Resolver(pub Arc<RwLock<Arc<CertStore>>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let store = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        Some(store.find(hello.server_name()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("has no {0}")]
    Missing(&'static str),
    #[error("tls.crt holds no PEM certificate")]
    NoCertificate,
    #[error("tls.key holds no PEM private key: {0}")]
    BadKey(String),
    #[error("tls.key is not a key rustls can sign with: {0}")]
    Unsupported(String),
    #[error("tls.key does not match the certificate in tls.crt: {0}")]
    Mismatch(String),
}

/// A certificate chain and key from a Secret's `tls.crt` / `tls.key` (PEM).
pub fn from_pem(crt: &[u8], key: &[u8]) -> Result<Arc<CertifiedKey>, CertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(crt).filter_map(Result::ok).collect();
    if chain.is_empty() {
        return Err(CertError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| CertError::BadKey(e.to_string()))?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| CertError::Unsupported(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| CertError::Mismatch(e.to_string()))?;
    Ok(Arc::new(certified))
}

/// The default certificate: self-signed, made at start (ingress-nginx's "fake certificate").
pub fn self_signed() -> Arc<CertifiedKey> {
    let mut params = rcgen::CertificateParams::new(vec!["ingress.local".to_owned()]).expect("a valid DNS name");
    params.distinguished_name.push(rcgen::DnType::CommonName, FAKE_CERT_NAME);
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "Portico");
    let key = rcgen::KeyPair::generate().expect("ring generates ECDSA keys");
    let cert = params.self_signed(&key).expect("self-signing with a fresh key");
    from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).expect("rcgen's own PEM")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_for(host: &str) -> (Arc<CertifiedKey>, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![host.to_owned()]).unwrap().self_signed(&key).unwrap();
        (from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap(), cert.pem())
    }

    #[test]
    fn sni_picks_exact_then_one_label_wildcard_then_default() {
        let default = self_signed();
        let (exact, _) = cert_for("www.example.com");
        let (wild, _) = cert_for("*.example.com");
        let mut store = CertStore::new(default.clone());
        store.insert("www.example.com", exact.clone());
        store.insert("*.example.com", wild.clone());
        assert!(Arc::ptr_eq(&store.find(Some("www.example.com")), &exact));
        assert!(Arc::ptr_eq(&store.find(Some("WWW.Example.com.")), &exact));
        assert!(Arc::ptr_eq(&store.find(Some("api.example.com")), &wild));
        assert!(Arc::ptr_eq(&store.find(Some("a.b.example.com")), &default));
        assert!(Arc::ptr_eq(&store.find(Some("example.com")), &default));
        assert!(Arc::ptr_eq(&store.find(None), &default));
    }

    #[test]
    fn tls_hosts_cover_wildcards_for_one_label() {
        let mut store = CertStore::new(self_signed());
        store.mark_tls("*.example.com");
        store.mark_tls("shop.test");
        assert!(store.is_tls_host("shop.test"));
        assert!(store.is_tls_host("x.example.com"));
        assert!(!store.is_tls_host("example.com"));
        assert!(!store.is_tls_host("y.x.example.com"));
    }

    #[test]
    fn bad_secrets_are_explained() {
        let (_, pem) = cert_for("a.test");
        assert!(matches!(from_pem(b"nonsense", b""), Err(CertError::NoCertificate)));
        assert!(matches!(from_pem(pem.as_bytes(), b"nonsense"), Err(CertError::BadKey(_))));
        let other = rcgen::KeyPair::generate().unwrap();
        assert!(matches!(from_pem(pem.as_bytes(), other.serialize_pem().as_bytes()), Err(CertError::Mismatch(_))));
    }
}

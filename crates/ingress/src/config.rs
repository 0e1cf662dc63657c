//! The controller's whole configuration as one immutable value, compiled from what the
//! informers hold: the routing table, each backend's endpoints and the certificates. A new
//! value replaces the old one atomically; requests in flight keep the value they started with,
//! so no change ever drops a request or a connection (there is no reload).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use rustls::sign::CertifiedKey;

use crate::annotations::{self, Annotations};
use crate::certs::{self, CertStore};
use crate::table::{Backend, IngressInput, IngressRef, Problem, Table};
use crate::upstream::{self, Upstream};

/// What one Ingress contributes besides its rules.
#[derive(Debug)]
pub struct Settings {
    pub ingress: IngressRef,
    pub annotations: Annotations,
}

pub type Payload = Arc<Settings>;

type ParsedCert = Result<Arc<CertifiedKey>, String>;

pub struct Config {
    pub table: Table<Payload>,
    pub upstreams: HashMap<Backend, Arc<Upstream>>,
    pub certs: Arc<CertStore>,
}

impl Config {
    pub fn empty(default_cert: Arc<CertifiedKey>) -> Config {
        Config {
            table: Table::build(vec![]).0,
            upstreams: HashMap::new(),
            certs: Arc::new(CertStore::new(default_cert)),
        }
    }
}

/// Something to tell a user about an Ingress (written as an Event on it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notice {
    pub ingress: IngressRef,
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// Read access to the objects a configuration is built from.
pub trait World {
    /// The Ingresses this controller serves.
    fn ingresses(&self) -> Vec<Arc<Ingress>>;
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>>;
    fn slices(&self, namespace: &str, service: &str) -> Vec<EndpointSlice>;
    fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>>;
}

/// Builds configurations, remembering what it needs between builds: the last version of each
/// Ingress whose annotations were valid (kept in service while a newer version's are not) and
/// the certificates already parsed.
pub struct Builder {
    default_cert: Arc<CertifiedKey>,
    last_good: HashMap<IngressRef, (Arc<Ingress>, Payload)>,
    /// By Secret (namespace, name): the resourceVersion parsed and what came of it.
    parsed_certs: HashMap<(String, String), (String, ParsedCert)>,
}

impl Builder {
    pub fn new(default_cert: Arc<CertifiedKey>) -> Builder {
        Builder { default_cert, last_good: HashMap::new(), parsed_certs: HashMap::new() }
    }

    pub fn build(&mut self, world: &dyn World) -> (Config, Vec<Notice>) {
        let mut notices = vec![];
        let mut ingresses = world.ingresses();
        ingresses.sort_by_key(|i| age(i));

        let mut inputs = vec![];
        let mut served: Vec<(Arc<Ingress>, Payload)> = vec![];
        let mut seen = HashSet::new();
        for ing in ingresses {
            let r = ingress_ref(&ing);
            seen.insert(r.clone());
            let annotations: BTreeMap<String, String> = ing.metadata.annotations.clone().unwrap_or_default();
            let (ing, payload) = match annotations::parse(&annotations) {
                Ok(parsed) => {
                    for key in parsed.unsupported {
                        notices.push(Notice {
                            ingress: r.clone(),
                            warning: true,
                            reason: "UnsupportedAnnotation",
                            message: format!("annotation {key} is not supported by Portico and has no effect"),
                        });
                    }
                    let payload = Arc::new(Settings { ingress: r.clone(), annotations: parsed.annotations });
                    self.last_good.insert(r.clone(), (ing.clone(), payload.clone()));
                    (ing, payload)
                }
                Err(invalid) => {
                    let kept = self.last_good.get(&r).cloned();
                    let consequence = match kept {
                        Some(_) => "the previous configuration of this Ingress stays in service",
                        None => "this Ingress is not served until it is fixed",
                    };
                    for i in invalid {
                        notices.push(Notice {
                            ingress: r.clone(),
                            warning: true,
                            reason: "InvalidAnnotation",
                            message: format!("annotation {}: {}; {consequence}", i.key, i.reason),
                        });
                    }
                    match kept {
                        Some(k) => k,
                        None => continue,
                    }
                }
            };
            let a = &payload.annotations;
            inputs.push(IngressInput {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                created: ing.metadata.creation_timestamp.as_ref().map(|t| t.0),
                spec: ing.spec.clone().unwrap_or_default(),
                regex: a.regex_paths(),
                payload: payload.clone(),
            });
            served.push((ing, payload));
        }
        self.last_good.retain(|k, _| seen.contains(k));

        let (table, problems) = Table::build(inputs);
        for p in problems {
            notices.push(match p {
                Problem::Conflict { loser, winner, host, path } => Notice {
                    ingress: loser,
                    warning: true,
                    reason: "Conflict",
                    message: format!(
                        "host {host} path {path} is already served by the older Ingress {}/{}; this rule is ignored",
                        winner.namespace, winner.name
                    ),
                },
                Problem::Rejected { ingress, reason } => {
                    Notice { ingress, warning: true, reason: "Rejected", message: reason }
                }
            });
        }

        let mut upstreams = HashMap::new();
        for backend in table.backends() {
            let endpoints = match world.service(&backend.namespace, &backend.service) {
                Some(svc) => {
                    upstream::resolve(&svc, &world.slices(&backend.namespace, &backend.service), &backend.port)
                        .unwrap_or_else(|why| {
                            tracing::debug!(service = %backend.service, namespace = %backend.namespace, "{why}");
                            vec![]
                        })
                }
                None => vec![],
            };
            upstreams.insert(backend.clone(), Arc::new(Upstream::new(endpoints)));
        }

        let certs = self.certificates(world, &served, &mut notices);
        (Config { table, upstreams, certs: Arc::new(certs) }, notices)
    }

    fn certificates(
        &mut self,
        world: &dyn World,
        served: &[(Arc<Ingress>, Payload)],
        notices: &mut Vec<Notice>,
    ) -> CertStore {
        let mut store = CertStore::new(self.default_cert.clone());
        let mut used = HashSet::new();
        for (ing, payload) in served {
            let r = &payload.ingress;
            let Some(spec) = &ing.spec else { continue };
            for tls in spec.tls.iter().flatten() {
                let hosts: Vec<String> = match tls.hosts.as_deref() {
                    Some(h) if !h.is_empty() => h.to_vec(),
                    // No hosts: the certificate covers the Ingress's own rule hosts.
                    _ => spec.rules.iter().flatten().filter_map(|rule| rule.host.clone()).collect(),
                };
                for h in &hosts {
                    store.mark_tls(h);
                }
                let Some(secret_name) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) else { continue };
                let key = (r.namespace.clone(), secret_name.to_owned());
                used.insert(key.clone());
                let cert = match world.secret(&r.namespace, secret_name) {
                    None => Err(format!("secret {}/{secret_name} not found", r.namespace)),
                    Some(secret) => self.parse_cert(key, &secret),
                };
                match cert {
                    Ok(cert) => {
                        for h in &hosts {
                            store.insert(h, cert.clone());
                        }
                    }
                    Err(why) => notices.push(Notice {
                        ingress: r.clone(),
                        warning: true,
                        reason: "TLSCertificate",
                        message: format!("{why}; serving the default certificate for {}", hosts.join(", ")),
                    }),
                }
            }
        }
        self.parsed_certs.retain(|k, _| used.contains(k));
        store
    }

    /// A Secret's certificate, parsed once per resourceVersion.
    fn parse_cert(&mut self, key: (String, String), secret: &Secret) -> Result<Arc<CertifiedKey>, String> {
        let version = secret.metadata.resource_version.clone().unwrap_or_default();
        if let Some((v, parsed)) = self.parsed_certs.get(&key)
            && *v == version
        {
            return parsed.clone();
        }
        let name = format!("secret {}/{}", key.0, key.1);
        let parsed = (|| {
            if secret.type_.as_deref().is_some_and(|t| t != "kubernetes.io/tls" && t != "Opaque") {
                return Err(format!(
                    "{name} is of type {}, not kubernetes.io/tls",
                    secret.type_.as_deref().unwrap_or("")
                ));
            }
            let data = secret.data.as_ref();
            let crt = data.and_then(|d| d.get("tls.crt")).ok_or(certs::CertError::Missing("tls.crt"));
            let key = data.and_then(|d| d.get("tls.key")).ok_or(certs::CertError::Missing("tls.key"));
            let (crt, key) = (crt.map_err(|e| format!("{name} {e}"))?, key.map_err(|e| format!("{name} {e}"))?);
            certs::from_pem(&crt.0, &key.0).map_err(|e| format!("{name}: {e}"))
        })();
        self.parsed_certs.insert(key, (version, parsed.clone()));
        parsed
    }
}

pub fn ingress_ref(ing: &Ingress) -> IngressRef {
    IngressRef {
        namespace: ing.metadata.namespace.clone().unwrap_or_default(),
        name: ing.metadata.name.clone().unwrap_or_default(),
    }
}

/// Oldest first; a missing timestamp counts as newest; then by namespace and name.
fn age(ing: &Ingress) -> (bool, Option<jiff::Timestamp>, String, String) {
    let t = ing.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (t.is_none(), t, ing.metadata.namespace.clone().unwrap_or_default(), ing.metadata.name.clone().unwrap_or_default())
}

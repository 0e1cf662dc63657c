//! The controller: follows Ingresses, IngressClasses, Services, EndpointSlices and Secrets,
//! compiles them into a new [`Config`] after every change, and serves.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use component::encoded::Encoded;
use component::http;
use component::index;
use component::informer::{Informer, Informers};
use k8s_openapi::api::core::v1::{ObjectReference, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, Patch, PatchParams};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::certs::{self, CertStore};
use crate::config::{Builder, Config, Notice, World, ingress_ref};
use crate::metrics::Metrics;
use crate::proxy::Shared;
use crate::table::IngressRef;

/// The `spec.controller` of IngressClasses this controller serves.
pub const CONTROLLER: &str = "portico.dev/ingress-controller";
/// The annotation that makes an IngressClass the default for Ingresses without a class.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
const COMPONENT: &str = "portico-ingress";

#[derive(Debug, Clone)]
pub struct Options {
    /// The IngressClass name served (`--ingress-class`).
    pub class: String,
    pub http_bind: Option<SocketAddr>,
    pub https_bind: Option<SocketAddr>,
    /// `/metrics` and `/healthz` (ingress-nginx serves both on :10254).
    pub metrics_bind: Option<SocketAddr>,
    /// What Ingresses' `status.loadBalancer.ingress` says (the addresses the controller is
    /// reachable on); empty leaves the status alone.
    pub publish_addresses: Vec<IpAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|source| Error::Listen { addr, source })
}

struct Informed {
    ingresses: Informer<Ingress>,
    classes: Informer<IngressClass>,
    services: Informer<Service>,
    slices: Informer<Encoded<EndpointSlice>>,
    secrets: Informer<Secret>,
    class: String,
}

fn ours(c: &IngressClass) -> bool {
    c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER)
}

impl Informed {
    /// Whether one of our IngressClasses is the cluster's default (then class-less Ingresses
    /// are ours).
    fn default_is_ours(&self) -> bool {
        let mut default = false;
        self.classes.for_each(|c| {
            let marked = c.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION));
            default |= ours(c) && marked.is_some_and(|v| v == "true");
        });
        default
    }

    fn serves(&self, ing: &Ingress, default_is_ours: bool) -> bool {
        let named =
            ing.spec.as_ref().and_then(|s| s.ingress_class_name.clone()).or_else(|| {
                ing.metadata.annotations.as_ref().and_then(|a| a.get("kubernetes.io/ingress.class").cloned())
            });
        match named {
            Some(name) => name == self.class || self.classes.get("", &name).is_some_and(|c| ours(&c)),
            None => default_is_ours,
        }
    }
}

impl World for Informed {
    fn ingresses(&self) -> Vec<Arc<Ingress>> {
        let default_is_ours = self.default_is_ours();
        self.ingresses.state().into_iter().filter(|i| self.serves(i, default_is_ours)).collect()
    }
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
        self.services.get(namespace, name)
    }
    fn slices(&self, namespace: &str, service: &str) -> Vec<EndpointSlice> {
        self.slices.indexed(index::BY_SERVICE, &format!("{namespace}/{service}")).iter().map(|e| e.decode()).collect()
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>> {
        self.secrets.get(namespace, name)
    }
}

/// Runs the controller until its listeners fail.
pub async fn run(informers: Informers, opts: Options) -> Result<(), Error> {
    // Listeners first: a taken port fails before anything else happens.
    let http_listener = match opts.http_bind {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let https_listener = match opts.https_bind {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let metrics_listener = match opts.metrics_bind {
        Some(a) => Some(bind(a).await?),
        None => None,
    };

    let slices: Informer<Encoded<EndpointSlice>> = informers.get();
    slices.index(index::BY_SERVICE, index::service_name::<Encoded<EndpointSlice>>);
    let world = Arc::new(Informed {
        ingresses: informers.get(),
        classes: informers.get(),
        services: informers.get(),
        slices,
        secrets: informers.get(),
        class: opts.class.clone(),
    });
    let wake = Arc::new(Notify::new());
    follow(&world.ingresses, &wake);
    follow(&world.classes, &wake);
    follow(&world.services, &wake);
    follow(&world.slices, &wake);
    follow(&world.secrets, &wake);

    let default_cert = certs::self_signed();
    let store = Arc::new(RwLock::new(Arc::new(CertStore::new(default_cert.clone()))));
    let (metrics, registry) = Metrics::new();
    let shared = Arc::new(Shared::new(Config::empty(default_cert.clone()), metrics));
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));

    if let Some(l) = metrics_listener {
        let r = ready.clone();
        let routes = http::Routes::new().route("/metrics", http::Route::Metrics(Arc::new(registry))).route(
            "/healthz",
            http::Route::Ready(Arc::new(move || match r.load(std::sync::atomic::Ordering::Relaxed) {
                true => Ok(()),
                false => Err("the first configuration is not built yet".to_owned()),
            })),
        );
        tokio::spawn(http::serve(l, routes));
    }

    world.ingresses.ready().await;
    world.classes.ready().await;
    world.services.ready().await;
    world.slices.ready().await;
    world.secrets.ready().await;

    let mut builder = Builder::new(default_cert);
    // Events and status go out from their own task: a slow API must not hold back the next
    // configuration (endpoint changes), only the reports, which always carry the latest notices.
    let (notify, mut latest) = tokio::sync::watch::channel(Vec::<Notice>::new());
    let mut reporter = Reporter::new(informers.client().clone(), opts.publish_addresses.clone());
    let reported = world.clone();
    tokio::spawn(async move {
        while latest.changed().await.is_ok() {
            let notices = latest.borrow_and_update().clone();
            reporter.report(&reported, notices).await;
        }
    });
    let (config, notices) = builder.build(world.as_ref());
    *store.write().unwrap_or_else(|e| e.into_inner()) = config.certs.clone();
    shared.set_config(config);
    ready.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = notify.send(notices);

    let mut servers = tokio::task::JoinSet::new();
    if let Some(l) = http_listener {
        tracing::info!(address = %opts.http_bind.unwrap_or(([0, 0, 0, 0], 80).into()), "ingress serving HTTP");
        servers.spawn(crate::server::serve(l, None, shared.clone()));
    }
    if let Some(l) = https_listener {
        tracing::info!(address = %opts.https_bind.unwrap_or(([0, 0, 0, 0], 443).into()), "ingress serving HTTPS");
        let acceptor = tokio_rustls::TlsAcceptor::from(crate::tls::server_config(store.clone()));
        servers.spawn(crate::server::serve(l, Some(acceptor), shared.clone()));
    }

    loop {
        wake.notified().await;
        // Changes arriving together (a rollout, a kubectl apply of many objects) make one build.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (config, notices) = builder.build(world.as_ref());
        *store.write().unwrap_or_else(|e| e.into_inner()) = config.certs.clone();
        shared.set_config(config);
        let _ = notify.send(notices);
    }
}

fn follow<K: component::informer::Watched>(informer: &Informer<K>, wake: &Arc<Notify>) {
    let mut sub = informer.subscribe();
    let wake = wake.clone();
    tokio::spawn(async move {
        while sub.next().await.is_some() {
            wake.notify_one();
        }
    });
}

/// Writes Events for new notices (each once while it holds) and keeps served Ingresses'
/// `status.loadBalancer` pointing at the controller.
struct Reporter {
    client: kube::Client,
    addresses: Vec<IpAddr>,
    told: HashSet<(String, Notice)>,
    status_written: HashMap<IngressRef, String>,
}

impl Reporter {
    fn new(client: kube::Client, addresses: Vec<IpAddr>) -> Reporter {
        Reporter { client, addresses, told: HashSet::new(), status_written: HashMap::new() }
    }

    async fn report(&mut self, world: &Informed, notices: Vec<Notice>) {
        let mut current = HashSet::new();
        for n in notices {
            let Some(ing) = world.ingresses.get(&n.ingress.namespace, &n.ingress.name) else { continue };
            let uid = ing.metadata.uid.clone().unwrap_or_default();
            let key = (uid.clone(), n.clone());
            if !self.told.contains(&key) {
                tracing::warn!(ingress = %format!("{}/{}", n.ingress.namespace, n.ingress.name), reason = n.reason, "{}", n.message);
                let involved = ObjectReference {
                    api_version: Some("networking.k8s.io/v1".into()),
                    kind: Some("Ingress".into()),
                    namespace: Some(n.ingress.namespace.clone()),
                    name: Some(n.ingress.name.clone()),
                    uid: Some(uid),
                    resource_version: ing.metadata.resource_version.clone(),
                    ..Default::default()
                };
                let type_ = if n.warning { "Warning" } else { "Normal" };
                component::events::record(&self.client, involved, type_, n.reason, &n.message, COMPONENT).await;
            }
            current.insert(key);
        }
        self.told = current;
        if !self.addresses.is_empty() {
            self.update_status(world).await;
        }
    }

    async fn update_status(&mut self, world: &Informed) {
        let want: Vec<serde_json::Value> = self
            .addresses
            .iter()
            .map(|ip| serde_json::json!({"ip": ip.to_string(), "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]}))
            .collect();
        let want_ips: Vec<String> = self.addresses.iter().map(|ip| ip.to_string()).collect();
        for ing in world.ingresses() {
            let r = ingress_ref(&ing);
            let have: Vec<String> = ing
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .map(|l| l.iter().filter_map(|i| i.ip.clone()).collect())
                .unwrap_or_default();
            let version = ing.metadata.resource_version.clone().unwrap_or_default();
            if have == want_ips || self.status_written.get(&r) == Some(&version) {
                continue;
            }
            let api: Api<Ingress> = Api::namespaced(self.client.clone(), &r.namespace);
            let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": want}}});
            match api.patch_status(&r.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    self.status_written.insert(r, version);
                }
                Err(e) => {
                    tracing::warn!(ingress = %format!("{}/{}", r.namespace, r.name), error = %e, "updating the Ingress status failed")
                }
            }
        }
    }
}

/// Creates the IngressClass `class` for this controller, marked as the cluster's default, when
/// no IngressClass of that name exists (`portico up` does this; a controller joining a real
/// cluster leaves the classes to its administrators).
pub async fn ensure_default_class(client: &kube::Client, class: &str) {
    let api: Api<IngressClass> = Api::all(client.clone());
    let wanted: IngressClass = match serde_json::from_value(serde_json::json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": class, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
        "spec": {"controller": CONTROLLER}
    })) {
        Ok(c) => c,
        Err(e) => return tracing::warn!(error = %e, "building the IngressClass failed"),
    };
    match api.create(&kube::api::PostParams::default(), &wanted).await {
        Ok(_) => tracing::info!(class, "created the default IngressClass"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => tracing::warn!(class, error = %e, "creating the IngressClass failed"),
    }
}

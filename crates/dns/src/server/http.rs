//! The HTTP side, on the component runtime's server: CoreDNS's `health` (/health, 200 while
//! the process serves), `ready` (/ready, 200 once the zone has its first full copy of the API's
//! objects, 503 before) and `prometheus` (/metrics) endpoints.

use super::Shared;
use component::http::{Route, Routes};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    Ready,
    Metrics,
}

/// Reads the server's counters, the cache size and the zone size at scrape time.
struct DnsCollector(Arc<Shared>);

impl std::fmt::Debug for DnsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DnsCollector")
    }
}

impl Collector for DnsCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let shared = &self.0;
        let (services, endpoints) =
            shared.zone.read().map(|z| (z.service_count(), z.endpoint_count())).unwrap_or((0, 0));
        shared.metrics.encode(encoder, shared.cache.len(), services, endpoints)
    }
}

/// The routes one listener serves.
pub fn routes(shared: &Arc<Shared>, endpoints: &[Endpoint]) -> Routes {
    let mut routes = Routes::new();
    for e in endpoints {
        routes = match e {
            Endpoint::Health => routes.route("/health", Route::Live),
            Endpoint::Ready => {
                let shared = shared.clone();
                routes.route(
                    "/ready",
                    Route::Ready(Arc::new(move || match shared.zone.read().map(|z| z.synced).unwrap_or(false) {
                        true => Ok(()),
                        // CoreDNS names the plugin that is not ready yet.
                        false => Err("kubernetes".to_owned()),
                    })),
                )
            }
            Endpoint::Metrics => {
                let mut registry = Registry::default();
                registry.register_collector(Box::new(DnsCollector(shared.clone())));
                routes.route("/metrics", Route::Metrics(Arc::new(registry)))
            }
        };
    }
    routes
}

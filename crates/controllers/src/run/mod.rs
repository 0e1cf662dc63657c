//! The kube-rs loops that feed the pure reconcilers from watches and write their results
//! through the API. Controllers are API clients: they never touch the store.

mod endpoints;
mod index;
pub mod nodes;
pub mod shared;
pub mod workloads;

pub use endpoints::{Options, run_service_endpoints};
pub use shared::{PodFeed, SharedPods};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Client;
use kube::api::{Api, PostParams};

/// Writes a core/v1 Event about `involved` the way client-go's recorder does: named
/// `<object-name>.` plus a generated suffix, in the object's namespace (`default` for
/// cluster-scoped objects), with `count` 1, both timestamps now, and `source.component` /
/// `reportingComponent` set to `component`. Returns whether the API accepted it; failures are
/// logged and otherwise ignored (events are best effort).
pub(crate) async fn record_event(
    client: &Client,
    involved: ObjectReference,
    type_: &str,
    reason: &str,
    message: &str,
    component: &str,
) -> bool {
    let ns = involved.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".to_owned());
    let now = jiff::Timestamp::now();
    let generate_name = format!("{}.", involved.name.as_deref().unwrap_or("object"));
    let instance = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "portico".to_owned());
    let event = Event {
        metadata: ObjectMeta { generate_name: Some(generate_name), namespace: Some(ns.clone()), ..Default::default() },
        involved_object: involved,
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        type_: Some(type_.to_owned()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        source: Some(EventSource { component: Some(component.to_owned()), host: None }),
        reporting_component: Some(component.to_owned()),
        reporting_instance: Some(instance),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    match api.create(&PostParams::default(), &event).await {
        Ok(_) => {
            tracing::debug!(namespace = %ns, reason, message, "event");
            true
        }
        Err(e) => {
            tracing::warn!(namespace = %ns, reason, error = %e, "writing event failed");
            false
        }
    }
}

//! Events as client-go's recorder writes them.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Client;
use kube::api::{Api, PostParams};

/// Writes a core/v1 Event about `involved`: named `<object-name>.` plus a generated suffix, in
/// the object's namespace (`default` for cluster-scoped objects), `count` 1, both timestamps
/// now, `source.component` / `reportingComponent` = `component`. Returns whether the API took
/// it; failures are logged and otherwise ignored (events are best effort).
pub async fn record(
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

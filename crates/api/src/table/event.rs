//! core/v1 Events: `printEvent`, which prints LAST SEEN first and the name last (wide).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use serde_json::Value;

use super::{Column, NAME, column, decode, docs, name, since, text, time, wide};

pub(crate) const COLUMNS: &[Column] = &[
    column("Last Seen", "string", docs::EVENT_LAST_TIMESTAMP),
    column("Type", "string", docs::EVENT_TYPE),
    column("Reason", "string", docs::EVENT_REASON),
    column("Object", "string", docs::EVENT_INVOLVED_OBJECT),
    wide("Subobject", "string", docs::OBJECT_REFERENCE_FIELD_PATH),
    wide("Source", "string", docs::EVENT_SOURCE),
    column("Message", "string", docs::EVENT_MESSAGE),
    wide("First Seen", "string", docs::EVENT_FIRST_TIMESTAMP),
    wide("Count", "string", docs::EVENT_COUNT),
    Column { priority: 1, ..NAME },
];

pub(crate) fn cells(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let ev: Event = decode(obj)?;
    let micro = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime>| t.as_ref().map(|t| t.0);

    let first_seen = match time(&ev.first_timestamp) {
        Some(t) => since(Some(t), now),
        None => since(micro(&ev.event_time), now),
    };
    let mut last_seen = match time(&ev.last_timestamp) {
        Some(t) => since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = ev.count.unwrap_or(0);
    if let Some(series) = &ev.series {
        last_seen = since(micro(&series.last_observed_time), now);
        count = series.count.unwrap_or(0);
    } else if count == 0 {
        // Singleton events don't have a count set in the new API.
        count = 1;
    }

    let involved = &ev.involved_object;
    let kind = text(&involved.kind).to_lowercase();
    let target = match text(&involved.name) {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    // formatEventSource: source.component/host, else reportingComponent/reportingInstance.
    let source = ev.source.as_ref();
    let first = |a: Option<&str>, b: &Option<String>| a.filter(|s| !s.is_empty()).unwrap_or(text(b)).to_string();
    let component = first(source.and_then(|s| s.component.as_deref()), &ev.reporting_component);
    let instance = first(source.and_then(|s| s.host.as_deref()), &ev.reporting_instance);
    let source = if instance.is_empty() { component } else { format!("{component}, {instance}") };

    Some(vec![
        last_seen.into(),
        text(&ev.type_).into(),
        text(&ev.reason).into(),
        target.into(),
        text(&involved.field_path).into(),
        source.into(),
        text(&ev.message).trim().into(),
        first_seen.into(),
        i64::from(count).into(),
        name(&ev.metadata),
    ])
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ago, now, row};
    use serde_json::{Value, json};

    fn s(cells: &[&str]) -> Vec<Value> {
        cells.iter().map(|c| Value::from(*c)).collect()
    }

    #[test]
    fn kubelet_event() {
        let ev = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web-1.17f2a", "namespace": "default", "creationTimestamp": ago(600)},
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "fieldPath": "spec.containers{web}"},
            "reason": "BackOff", "type": "Warning", "message": "Back-off restarting failed container\n",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 7});
        let cells = row("", "Event", &ev);
        assert_eq!(
            cells[..8],
            s(&[
                "30s",
                "Warning",
                "BackOff",
                "pod/web-1",
                "spec.containers{web}",
                "kubelet, n1",
                "Back-off restarting failed container",
                "10m",
            ])
        );
        assert_eq!(cells[8..], [json!(7), json!("web-1.17f2a")]);
    }

    #[test]
    fn events_api_event_uses_event_time_series_and_reporting_fields() {
        let micro =
            |secs: i64| (now() - jiff::SignedDuration::from_secs(secs)).strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let ev = json!({"metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Node"}, "reason": "Starting", "type": "Normal", "message": "  up  ",
            "eventTime": micro(3600), "reportingComponent": "kube-proxy", "reportingInstance": "n2",
            "series": {"count": 4, "lastObservedTime": micro(90)}});
        let cells = row("", "Event", &ev);
        assert_eq!(cells[..8], s(&["90s", "Normal", "Starting", "node", "", "kube-proxy, n2", "up", "60m"]));
        assert_eq!(cells[8], 4);

        let singleton = json!({"metadata": {"name": "e2"}, "involvedObject": {}, "eventTime": micro(5)});
        let cells = row("", "Event", &singleton);
        assert_eq!(cells[0], "5s");
        assert_eq!(cells[7], "5s");
        assert_eq!(cells[8], 1);
        let bare = row("", "Event", &json!({"metadata": {"name": "e3"}, "involvedObject": {}}));
        assert_eq!(bare[0], "<unknown>");
    }
}

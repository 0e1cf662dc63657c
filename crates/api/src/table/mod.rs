//! Server-side table printing for `kubectl get`: the column definitions and row cells
//! kube-apiserver's printers produce (`pkg/printers/internalversion/printers.go`).
//!
//! The server always prints the wide form (kubectl hides priority-1 columns unless `-o wide`),
//! so [`cells`] returns a cell for every column [`columns`] defines. Objects are read as the
//! stored v1 JSON; where the internal type the printers see differs (conversion, or v1 defaults
//! a stored object would already carry), the printers here read it the way upstream would.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::json::pointer_str;
use crate::resources::ResourceType;

pub(crate) mod config;
mod docs;
pub(crate) mod event;
pub(crate) mod ingress;
pub(crate) mod node;
pub(crate) mod pod;
pub(crate) mod service;
pub(crate) mod workloads;

/// One `metav1.TableColumnDefinition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// As upstream spells it ("Cluster-IP", "Port(s)"); kubectl upper-cases it.
    pub name: &'static str,
    /// An OpenAPI type: "string", "integer", "date", ...
    pub type_: &'static str,
    /// "name" for the column that identifies the object, otherwise empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0 is always shown, 1 only with `-o wide`.
    pub priority: i32,
}

impl Column {
    /// The column's wire form; every field is present, as in kube-apiserver's output.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

const fn column(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column { name, type_, format: "", description, priority: 0 }
}

const fn wide(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column { name, type_, format: "", description, priority: 1 }
}

const NAME: Column = Column { name: "Name", type_: "string", format: "name", description: docs::NAME, priority: 0 };
const AGE: Column = column("Age", "string", docs::CREATION_TIMESTAMP);
const CONTAINERS: Column = wide("Containers", "string", docs::CONTAINERS);
const IMAGES: Column = wide("Images", "string", docs::IMAGES);

/// What `rest.NewDefaultTableConvertor` prints for kinds without a printer.
const DEFAULT_COLUMNS: &[Column] = &[
    NAME,
    Column { name: "Created At", type_: "date", format: "", description: docs::CREATION_TIMESTAMP, priority: 0 },
];

/// A kind's printer: its columns and the function that fills a row (`None` if the object does
/// not decode as the kind).
type Cells = fn(&Value, Timestamp) -> Option<Vec<Value>>;

/// A kind's printer: its column definitions and the function that fills a row.
pub type Printer = (&'static [Column], Cells);

fn printer(rt: &ResourceType) -> Option<Printer> {
    rt.strategy.printer()
}

/// The kind's column definitions, exactly as kube-apiserver defines them.
pub fn columns(rt: &ResourceType) -> Vec<Column> {
    printer(rt).map_or(DEFAULT_COLUMNS, |(cols, _)| cols).to_vec()
}

/// One row's cells for `obj` (stored wire JSON), with ages measured at `now`. Strings and
/// numbers are what kube-apiserver puts in the row, one per column.
pub fn cells(rt: &ResourceType, obj: &Value, now: Timestamp) -> Vec<Value> {
    let name = || Value::from(pointer_str(obj, "/metadata/name"));
    match printer(rt) {
        Some((cols, fill)) => fill(obj, now).unwrap_or_else(|| {
            // Not decodable as the kind (cannot happen for stored objects): keep the row's shape.
            let mut row = vec![Value::from(""); cols.len()];
            if let Some(i) = cols.iter().position(|c| c.format == "name") {
                row[i] = name();
            }
            row
        }),
        None => {
            let created = pointer_str(obj, "/metadata/creationTimestamp");
            let created = created.parse::<Timestamp>().ok().unwrap_or(go_zero_time());
            vec![name(), Value::from(created.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())]
        }
    }
}

/// The row's `conditions` (pods that succeeded or failed are marked `Completed`).
pub fn row_conditions(rt: &ResourceType, obj: &Value) -> Vec<Value> {
    rt.strategy.row_conditions(obj)
}

/// Kubernetes' `duration.HumanDuration`: about two significant units ("5s", "3m2s", "2d3h").
pub(crate) fn human_duration(d: SignedDuration) -> String {
    // Go truncates toward zero; up to a second in the future still reads as now.
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{dy}d", hours / 24 / 365) }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

// ---- helpers shared by the printers ----

fn decode<T: DeserializeOwned>(obj: &Value) -> Option<T> {
    T::deserialize(obj).ok()
}

/// Go's zero `time.Time`, which serializes as null but may be spelled out.
fn go_zero_time() -> Timestamp {
    Timestamp::new(-62135596800, 0).expect("0001-01-01 is a valid timestamp")
}

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` when unset.
fn since(ts: Option<Timestamp>, now: Timestamp) -> String {
    match ts {
        Some(ts) if ts != go_zero_time() => human_duration(now.duration_since(ts)),
        _ => "<unknown>".to_string(),
    }
}

fn age(meta: &ObjectMeta, now: Timestamp) -> Value {
    since(meta.creation_timestamp.as_ref().map(|t| t.0), now).into()
}

fn name(meta: &ObjectMeta) -> Value {
    meta.name.as_deref().unwrap_or("").into()
}

fn time(t: &Option<Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0).filter(|t| *t != go_zero_time())
}

fn text(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

/// `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
fn format_labels(labels: Option<&BTreeMap<String, String>>) -> String {
    let s: Vec<String> = labels.into_iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    if s.is_empty() { "<none>".to_string() } else { s.join(",") }
}

/// `layoutContainerCells`: container names and images, comma-joined.
fn container_cells(containers: &[Container]) -> (Value, Value) {
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(&c.image)).collect();
    (names.join(",").into(), images.join(",").into())
}

/// `listWithMoreString`.
fn list_with_more(list: &[String], more: bool, count: usize, max: usize) -> String {
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - max)
    } else if ret.is_empty() {
        "<unset>".to_string()
    } else {
        ret
    }
}

/// `net.JoinHostPort`.
fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// The load balancer ingress points as a sorted, de-duplicated list (IP, else hostname),
/// unclipped because the server prints wide.
fn load_balancer_addresses<'a>(points: impl Iterator<Item = (&'a Option<String>, &'a Option<String>)>) -> String {
    let mut set = std::collections::BTreeSet::new();
    for (ip, hostname) in points {
        match (text(ip), text(hostname)) {
            ("", "") => {}
            ("", h) => {
                set.insert(h);
            }
            (ip, _) => {
                set.insert(ip);
            }
        }
    }
    set.into_iter().collect::<Vec<_>>().join(",")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::resources::{by_kind, lookup};

    /// "Now" in every printer test; objects are created relative to it.
    pub fn now() -> Timestamp {
        "2025-06-01T12:00:00Z".parse().unwrap()
    }

    /// A timestamp `secs` before [`now`], as wire JSON.
    pub(crate) fn ago(secs: i64) -> String {
        (now() - SignedDuration::from_secs(secs)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    pub fn row(group: &str, kind: &str, obj: &Value) -> Vec<Value> {
        let rt = by_kind(group, kind).unwrap();
        let cells = cells(rt, obj, now());
        assert_eq!(cells.len(), columns(rt).len(), "one cell per column for {kind}");
        cells
    }

    #[test]
    fn human_duration_matches_upstream() {
        let cases = [
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (182, "3m2s"),
            (9 * 60 + 59, "9m59s"),
            (10 * 60 + 30, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 25 * 60, "3h25m"),
            (8 * 3600 + 59 * 60, "8h"),
            (47 * 3600, "47h"),
            (2 * 86400, "2d"),
            (2 * 86400 + 3 * 3600, "2d3h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (800 * 86400, "2y70d"),
            (8 * 365 * 86400 + 100 * 86400, "8y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(SignedDuration::from_secs(secs)), want, "{secs}s");
        }
        assert_eq!(human_duration(SignedDuration::from_millis(-1500)), "0s");
        assert_eq!(human_duration(SignedDuration::from_millis(-2500)), "<invalid>");
    }

    #[test]
    fn every_served_kind_has_name_first_and_typed_columns() {
        for rt in crate::RESOURCES {
            let cols = columns(rt);
            assert!(printer(rt).is_some(), "{} has a printer", rt.kind);
            let name_col = if rt.kind == "Event" { cols.last() } else { cols.first() };
            assert_eq!(name_col.unwrap().format, "name", "{}", rt.kind);
            assert!(cols.iter().all(|c| matches!(c.type_, "string" | "integer")), "{}", rt.kind);
        }
    }

    #[test]
    fn column_json_has_every_field() {
        let pods = lookup("", "v1", "pods").unwrap();
        let cols = columns(pods);
        assert_eq!(
            cols[0].to_json(),
            json!({"name": "Name", "type": "string", "format": "name", "description": docs::NAME, "priority": 0})
        );
        let names: Vec<(&str, &str, i32)> = cols.iter().map(|c| (c.name, c.type_, c.priority)).collect();
        assert_eq!(
            names,
            [
                ("Name", "string", 0),
                ("Ready", "string", 0),
                ("Status", "string", 0),
                ("Restarts", "string", 0),
                ("Age", "string", 0),
                ("IP", "string", 1),
                ("Node", "string", 1),
                ("Nominated Node", "string", 1),
                ("Readiness Gates", "string", 1),
            ]
        );
    }

    #[test]
    fn unknown_kinds_get_the_default_table() {
        /// A kind with no rules of its own.
        #[derive(Debug)]
        struct Widget;
        impl crate::Strategy for Widget {
            fn normalize(&self, _: Value) -> Result<crate::strategy::Normalized, String> {
                Err("untyped".into())
            }
        }
        let rt = ResourceType {
            group: "example.com",
            version: "v1",
            kind: "Widget",
            plural: "widgets",
            singular: "",
            namespaced: true,
            short_names: &[],
            categories: &[],
            status: false,
            scale: false,
            strategy: &Widget,
        };
        let cols = columns(&rt);
        assert_eq!(
            cols.iter().map(|c| (c.name, c.type_)).collect::<Vec<_>>(),
            [("Name", "string"), ("Created At", "date")]
        );
        let obj = json!({"metadata": {"name": "w", "creationTimestamp": "2025-01-02T03:04:05Z"}});
        assert_eq!(cells(&rt, &obj, now()), [json!("w"), json!("2025-01-02T03:04:05Z")]);
        assert_eq!(cells(&rt, &json!({"metadata": {"name": "x"}}), now())[1], json!("0001-01-01T00:00:00Z"));
    }

    #[test]
    fn undecodable_objects_keep_the_row_shape() {
        let obj = json!({"metadata": {"name": "web"}, "spec": "not an object"});
        assert_eq!(row("", "Service", &obj), ["web", "", "", "", "", "", ""].map(Value::from));
    }

    #[test]
    fn finished_pods_carry_a_completed_condition() {
        let pods = by_kind("", "Pod").unwrap();
        let done = json!({"status": {"phase": "Succeeded"}});
        assert_eq!(
            row_conditions(pods, &done),
            [
                json!({"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."})
            ]
        );
        assert_eq!(row_conditions(pods, &json!({"status": {"phase": "Failed"}}))[0]["message"], "The pod failed.");
        assert!(row_conditions(pods, &json!({"status": {"phase": "Running"}})).is_empty());
        assert!(row_conditions(by_kind("", "Node").unwrap(), &done).is_empty());
    }
}

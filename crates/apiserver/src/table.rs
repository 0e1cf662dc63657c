//! Content negotiation for `as=Table` and the metav1.Table responses kubectl prints.

use api::ResourceType;
use serde_json::{Value, json};

/// What the client asked the response to be shaped as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Object,
    /// `as=Table`, with the meta.k8s.io version to answer in.
    Table {
        version: &'static str,
    },
    /// `as=PartialObjectMetadata` (or its List).
    Metadata {
        version: &'static str,
    },
}

/// Reads the Accept header the way kube-apiserver's negotiation does, taking the first
/// acceptable media type in the list.
pub fn shape(accept: Option<&str>) -> Shape {
    for part in accept.unwrap_or("").split(',') {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        if !matches!(params.first(), Some(&"application/json") | Some(&"*/*") | Some(&"application/*")) {
            continue;
        }
        let get = |k: &str| params.iter().find_map(|p| p.strip_prefix(k).and_then(|r| r.strip_prefix('=')));
        let version = match get("v") {
            Some("v1") => "v1",
            Some("v1beta1") => "v1beta1",
            _ => "v1",
        };
        match (get("as"), get("g")) {
            (Some("Table"), Some("meta.k8s.io")) => return Shape::Table { version },
            (Some("PartialObjectMetadata") | Some("PartialObjectMetadataList"), Some("meta.k8s.io")) => {
                return Shape::Metadata { version };
            }
            (None, _) => return Shape::Object,
            _ => continue,
        }
    }
    Shape::Object
}

/// `includeObject` for table rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

pub fn partial_metadata(obj: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

pub fn column_definitions(rt: &ResourceType) -> Value {
    Value::Array(
        api::table::columns(rt)
            .into_iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.type_,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect(),
    )
}

/// A Table of `items`. `list_meta` becomes the Table's metadata (resourceVersion, continue).
pub fn table(
    rt: &ResourceType,
    items: &[Value],
    list_meta: Value,
    version: &str,
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let now = jiff::Timestamp::now();
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let mut row = json!({"cells": api::table::cells(rt, obj, now)});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial_metadata(obj, version),
                IncludeObject::Object => row["object"] = obj.clone(),
            }
            row
        })
        .collect();
    let mut t = json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": list_meta,
    });
    if with_columns {
        t["columnDefinitions"] = column_definitions(rt);
    } else {
        t["columnDefinitions"] = Value::Null;
    }
    t["rows"] = Value::Array(rows);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_get_accept_header_asks_for_a_v1_table() {
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(shape(Some(accept)), Shape::Table { version: "v1" });
    }

    #[test]
    fn plain_json_is_an_object() {
        assert_eq!(shape(Some("application/json")), Shape::Object);
        assert_eq!(shape(None), Shape::Object);
    }

    #[test]
    fn unsupported_as_falls_through_to_the_next_choice() {
        assert_eq!(shape(Some("application/json;as=Foo;g=x,application/json")), Shape::Object);
    }
}

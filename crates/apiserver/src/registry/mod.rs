//! The generic registry: kube-apiserver's store-backed REST storage for every kind. It runs
//! each write through the same strategy steps in the same order (type checks, decode with
//! field validation, system fields, status/spec split, defaulting, validation, commit with
//! optimistic concurrency) and reads objects back with their resourceVersion stamped on.

mod delete;
mod list;
mod scale;
mod write;

pub use delete::{DeleteOptions, DeleteOutcome, Propagation, parse_propagation};
pub use list::{ListOptions, RawPage};
pub use write::{FieldValidation, PatchType, WriteOptions};

use crate::error::{ApiError, ApiResult};
use crate::object;
use crate::services::ServiceAllocators;
use api::ResourceType;
use serde_json::Value;
use std::sync::Arc;
use store::{KeyValue, Store};

/// Subresources with their own update strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Main,
    Status,
    Scale,
    Finalize,
}

impl Subresource {
    pub fn parse(rt: &ResourceType, sub: Option<&str>) -> Option<Subresource> {
        match sub {
            None => Some(Subresource::Main),
            Some("status") if rt.status => Some(Subresource::Status),
            Some("scale") if rt.scale => Some(Subresource::Scale),
            Some("finalize") if rt.strategy.serves_finalize() => Some(Subresource::Finalize),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct Registry {
    store: Store,
    services: Option<Arc<ServiceAllocators>>,
}

impl Registry {
    pub fn new(store: Store) -> Self {
        Registry { store, services: None }
    }

    /// Gives Services their cluster IPs and node ports from these allocators.
    pub fn with_service_allocators(mut self, allocators: Arc<ServiceAllocators>) -> Self {
        self.services = Some(allocators);
        self
    }

    /// The allocators, when `rt`'s strategy takes addresses from them (Services).
    pub(crate) fn service_allocators(&self, rt: &ResourceType) -> Option<&Arc<ServiceAllocators>> {
        if rt.strategy.allocates_service_addresses() { self.services.as_ref() } else { None }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reads one object.
    pub async fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        let kv = self.get_kv(rt, ns, name).await?;
        decode(&kv)
    }

    pub(crate) async fn get_kv(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> ApiResult<KeyValue> {
        self.store.get(&rt.key(ns, name)).await?.ok_or_else(|| not_found(rt, name))
    }

    /// Refuses new content in a namespace that is missing or terminating.
    pub(crate) async fn check_namespace_open(&self, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<()> {
        let namespaces = api::resources::lookup("", "v1", "namespaces").expect("namespaces are served");
        match self.store.get(&namespaces.key(None, ns)).await? {
            None => Err(not_found(namespaces, ns)),
            Some(kv) => {
                let obj = decode(&kv)?;
                if object::deletion_timestamp(&obj).is_some() {
                    let what =
                        if rt.group.is_empty() { rt.plural.to_string() } else { format!("{}.{}", rt.plural, rt.group) };
                    Err(ApiError::Forbidden {
                        message: format!(
                            "{what} {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated"
                        ),
                    })
                } else {
                    Ok(())
                }
            }
        }
    }
}

impl Registry {
    /// kube-apiserver's DefaultIngressClass admission: an Ingress created without
    /// `spec.ingressClassName` and without the `kubernetes.io/ingress.class` annotation gets the
    /// IngressClass marked `ingressclass.kubernetes.io/is-default-class: "true"`; with more than
    /// one marked, the create is refused.
    pub(crate) async fn default_ingress_class(&self, rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
        if rt.group != "networking.k8s.io" || rt.plural != "ingresses" {
            return Ok(());
        }
        if obj.pointer("/spec/ingressClassName").is_some_and(|v| !v.is_null())
            || obj.pointer("/metadata/annotations/kubernetes.io~1ingress.class").is_some()
        {
            return Ok(());
        }
        let classes =
            api::resources::lookup("networking.k8s.io", "v1", "ingressclasses").expect("ingressclasses are served");
        let page = self.store.list(&classes.key_prefix(), None, 0).await?;
        let mut defaults = vec![];
        for kv in &page.items {
            let class = decode(kv)?;
            if class
                .pointer("/metadata/annotations/ingressclass.kubernetes.io~1is-default-class")
                .and_then(Value::as_str)
                == Some("true")
                && let Some(name) = object::name(&class)
            {
                defaults.push(name.to_owned());
            }
        }
        match defaults.len() {
            0 => Ok(()),
            1 => {
                let spec = obj
                    .as_object_mut()
                    .and_then(|o| o.entry("spec").or_insert_with(|| Value::Object(Default::default())).as_object_mut());
                if let Some(spec) = spec {
                    spec.insert("ingressClassName".into(), Value::String(defaults.remove(0)));
                }
                Ok(())
            }
            n => Err(ApiError::Forbidden {
                message: format!(
                    "ingresses.networking.k8s.io {:?} is forbidden: Internal error occurred: {n} default IngressClasses were found, only 1 allowed",
                    object::name(obj).unwrap_or_default()
                ),
            }),
        }
    }
}

/// Parses a stored value and stamps its revision as the resourceVersion.
pub fn decode(kv: &KeyValue) -> ApiResult<Value> {
    object::from_stored(&kv.value, kv.mod_revision)
        .map_err(|e| ApiError::Internal(format!("stored object {} is not valid JSON: {e}", kv.key)))
}

pub fn not_found(rt: &ResourceType, name: &str) -> ApiError {
    ApiError::NotFound { resource: rt.plural.to_string(), group: rt.group.to_string(), name: name.to_string() }
}

pub fn conflict(rt: &ResourceType, name: &str, message: &str) -> ApiError {
    ApiError::Conflict {
        resource: rt.plural.to_string(),
        group: rt.group.to_string(),
        name: name.to_string(),
        message: message.to_string(),
    }
}

pub const MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

//! coordination.k8s.io, discovery.k8s.io and networking.k8s.io.

use k8s_openapi::api::{coordination::v1 as coordination, discovery::v1 as discovery, networking::v1 as networking};
use serde_json::{Map, Value};

use super::{Strategy, status_subresource, typed};
use crate::defaults;
use crate::field::ErrorList;
use crate::table::{self, Printer};
use crate::validation::kinds;

#[derive(Debug)]
pub(crate) struct Lease;

impl Strategy for Lease {
    typed!(coordination::Lease);

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> ErrorList {
        kinds::lease(obj)
    }

    fn checks_kube_finalizer_names(&self) -> bool {
        false
    }

    fn printer(&self) -> Option<Printer> {
        Some((table::config::LEASE, table::config::lease))
    }
}

#[derive(Debug)]
pub(crate) struct EndpointSlice;

impl Strategy for EndpointSlice {
    typed!(discovery::EndpointSlice);

    fn apply_defaults(&self, obj: &mut Map<String, Value>) {
        defaults::endpoint_slice(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> ErrorList {
        kinds::endpoint_slice(obj, old)
    }

    fn printer(&self) -> Option<Printer> {
        Some((table::service::ENDPOINT_SLICE, table::service::endpoint_slice))
    }
}

#[derive(Debug)]
pub(crate) struct Ingress;

impl Strategy for Ingress {
    typed!(networking::Ingress);

    fn validate(&self, obj: &Value, old: Option<&Value>) -> ErrorList {
        kinds::ingress(obj, old)
    }

    fn printer(&self) -> Option<Printer> {
        Some((table::ingress::INGRESS, table::ingress::ingress))
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    status_subresource!();
}

#[derive(Debug)]
pub(crate) struct IngressClass;

impl Strategy for IngressClass {
    typed!(networking::IngressClass);

    fn apply_defaults(&self, obj: &mut Map<String, Value>) {
        defaults::ingress_class(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> ErrorList {
        kinds::ingress_class(obj, old)
    }

    fn printer(&self) -> Option<Printer> {
        Some((table::ingress::INGRESS_CLASS, table::ingress::ingress_class))
    }

    fn tracks_generation(&self) -> bool {
        true
    }
}

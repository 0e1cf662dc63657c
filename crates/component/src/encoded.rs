//! Objects held as their JSON: for large kinds a component reads one object at a time, never
//! all of them on every event. An EndpointSlice of 10 endpoints is about 8 KiB as a
//! `k8s_openapi` value (every endpoint's targetRef is seven `Option<String>`s, every label or
//! annotation map a 544-byte B-tree node) and about 2 KiB as JSON; decoding one takes
//! microseconds, next to the milliseconds of the API write a reader does with it.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::informer::{Key, Watched, key_of, split_key};

/// An object of kind `K`, held as JSON, with its key, resourceVersion and labels at hand for
/// the store and its indexes.
pub struct Encoded<K> {
    key: Key,
    resource_version: Option<Box<str>>,
    labels: Box<[(Box<str>, Box<str>)]>,
    json: Box<[u8]>,
    kind: PhantomData<fn() -> K>,
}

impl<K> fmt::Debug for Encoded<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoded")
            .field("key", &self.key)
            .field("resource_version", &self.resource_version)
            .field("bytes", &self.json.len())
            .finish()
    }
}

impl<K: Resource + Serialize + DeserializeOwned> Encoded<K> {
    pub fn new(o: &K) -> Encoded<K> {
        let meta = o.meta();
        let labels = meta.labels.iter().flatten();
        Encoded {
            key: key_of(o),
            resource_version: meta.resource_version.as_deref().map(Box::from),
            labels: labels.map(|(k, v)| (Box::from(k.as_str()), Box::from(v.as_str()))).collect(),
            json: serde_json::to_vec(o).expect("an API object serializes").into_boxed_slice(),
            kind: PhantomData,
        }
    }

    /// The object. It was serialized from the same type, so decoding cannot fail short of a
    /// bug in the type's serde implementation.
    pub fn decode(&self) -> K {
        serde_json::from_slice(&self.json).expect("an object this store encoded decodes")
    }
}

impl<K> Encoded<K> {
    pub fn namespace(&self) -> &str {
        split_key(&self.key).0
    }

    pub fn name(&self) -> &str {
        split_key(&self.key).1
    }

    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.labels.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Bytes held for the object itself.
    pub fn encoded_len(&self) -> usize {
        self.json.len()
    }
}

impl<K> Watched for Encoded<K>
where
    K: Resource<DynamicType = ()> + Clone + fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Wire = K;

    fn from_wire(o: K) -> Self {
        Encoded::new(&o)
    }

    fn key(&self) -> Key {
        Arc::clone(&self.key)
    }

    fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use serde_json::json;

    #[test]
    fn round_trips_the_object_and_keeps_key_version_and_labels_at_hand() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "ns", "resourceVersion": "42",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true},
                           "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "ns", "uid": "u"}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }))
        .unwrap();
        let held = Encoded::from_wire(slice.clone());
        assert_eq!(held.decode(), slice);
        assert_eq!((&*held.key(), held.namespace(), held.name()), ("ns/web-abc", "ns", "web-abc"));
        assert_eq!(held.resource_version(), Some("42"));
        assert_eq!(held.labels().collect::<Vec<_>>(), [("kubernetes.io/service-name", "web")]);
    }
}

//! The small kinds: Namespaces, Secrets, ConfigMaps, ServiceAccounts and Leases.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use serde_json::Value;

use super::{AGE, Column, NAME, age, column, decode, docs, name};

pub(crate) const NAMESPACE: &[Column] = &[NAME, column("Status", "string", docs::NAMESPACE_STATUS), AGE];

pub(crate) const SECRET: &[Column] =
    &[NAME, column("Type", "string", docs::SECRET_TYPE), column("Data", "string", docs::SECRET_DATA), AGE];

pub(crate) const CONFIG_MAP: &[Column] = &[NAME, column("Data", "string", docs::CONFIG_MAP_DATA), AGE];

pub(crate) const SERVICE_ACCOUNT: &[Column] = &[NAME, column("Secrets", "string", docs::SERVICE_ACCOUNT_SECRETS), AGE];

pub(crate) const LEASE: &[Column] = &[NAME, column("Holder", "string", docs::LEASE_HOLDER_IDENTITY), AGE];

pub(crate) fn namespace(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let ns: Namespace = decode(obj)?;
    // v1 defaulting gives every namespace a phase.
    let phase = ns.status.and_then(|s| s.phase).filter(|p| !p.is_empty()).unwrap_or_else(|| "Active".to_string());
    Some(vec![name(&ns.metadata), phase.into(), age(&ns.metadata, now)])
}

pub(crate) fn secret(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let secret: Secret = decode(obj)?;
    let type_ = secret.type_.filter(|t| !t.is_empty()).unwrap_or_else(|| "Opaque".to_string());
    // Conversion to the internal type merges stringData into data.
    let keys: BTreeSet<&String> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, _)| k)
        .chain(secret.string_data.iter().flatten().map(|(k, _)| k))
        .collect();
    Some(vec![name(&secret.metadata), type_.into(), (keys.len() as i64).into(), age(&secret.metadata, now)])
}

pub(crate) fn config_map(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let cm: ConfigMap = decode(obj)?;
    let n = cm.data.as_ref().map_or(0, |d| d.len()) + cm.binary_data.as_ref().map_or(0, |d| d.len());
    Some(vec![name(&cm.metadata), (n as i64).into(), age(&cm.metadata, now)])
}

pub(crate) fn service_account(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let sa: ServiceAccount = decode(obj)?;
    let n = sa.secrets.as_ref().map_or(0, Vec::len);
    Some(vec![name(&sa.metadata), (n as i64).into(), age(&sa.metadata, now)])
}

pub(crate) fn lease(obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let lease: Lease = decode(obj)?;
    let holder = lease.spec.and_then(|s| s.holder_identity).unwrap_or_default();
    Some(vec![name(&lease.metadata), holder.into(), age(&lease.metadata, now)])
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ago, row};
    use serde_json::json;

    #[test]
    fn namespace_rows() {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "kube-system", "creationTimestamp": ago(400 * 86400)}, "status": {"phase": "Active"}});
        assert_eq!(row("", "Namespace", &ns), [json!("kube-system"), json!("Active"), json!("400d")]);
        let deleting =
            json!({"metadata": {"name": "old", "creationTimestamp": ago(10)}, "status": {"phase": "Terminating"}});
        assert_eq!(row("", "Namespace", &deleting)[1], "Terminating");
        assert_eq!(row("", "Namespace", &json!({"metadata": {"name": "new"}}))[1], "Active");
    }

    #[test]
    fn secret_rows() {
        let tls = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "tls", "namespace": "default", "creationTimestamp": ago(3)},
            "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}});
        assert_eq!(row("", "Secret", &tls), [json!("tls"), json!("kubernetes.io/tls"), json!(2), json!("3s")]);
        let opaque = json!({"metadata": {"name": "s", "creationTimestamp": ago(3)},
            "data": {"a": "YQ=="}, "stringData": {"a": "x", "b": "y"}});
        assert_eq!(row("", "Secret", &opaque), [json!("s"), json!("Opaque"), json!(2), json!("3s")]);
    }

    #[test]
    fn config_map_service_account_and_lease_rows() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kube-root-ca.crt", "namespace": "default", "creationTimestamp": ago(5400)},
            "data": {"ca.crt": "pem"}, "binaryData": {"blob": "AAE="}});
        assert_eq!(row("", "ConfigMap", &cm), [json!("kube-root-ca.crt"), json!(2), json!("90m")]);
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": "default", "creationTimestamp": ago(5400)}});
        assert_eq!(row("", "ServiceAccount", &sa), [json!("default"), json!(0), json!("90m")]);
        let sa2 = json!({"metadata": {"name": "builder"}, "secrets": [{"name": "a"}, {"name": "b"}]});
        assert_eq!(row("", "ServiceAccount", &sa2)[1], 2);
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "n1", "namespace": "kube-node-lease", "creationTimestamp": ago(86400 * 9)},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}});
        assert_eq!(row("coordination.k8s.io", "Lease", &lease), [json!("n1"), json!("n1"), json!("9d")]);
        let free = json!({"metadata": {"name": "lock", "creationTimestamp": ago(1)}, "spec": {}});
        assert_eq!(row("coordination.k8s.io", "Lease", &free)[1], "");
    }
}

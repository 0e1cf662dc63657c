// Generated from the protobuf descriptors embedded in kubectl 1.33 (`k8s.io/api/core/v1/generated.proto`),
// with field presence from the gogoproto `nullable` options and required fields from k8s-openapi.
// Regenerate rather than hand-edit when adding types.

use super::{Message, T, inline, list, list_req, omit, opt, req};

pub(super) static NAMESPACE_SPEC: Message =
    Message { name: "core.v1.NamespaceSpec", fields: &[list(1, "finalizers", T::String)] };

pub(super) static NAMESPACE_CONDITION: Message = Message {
    name: "core.v1.NamespaceCondition",
    fields: &[
        req(1, "type", T::String),
        req(2, "status", T::String),
        omit(4, "lastTransitionTime", T::Time),
        omit(5, "reason", T::String),
        omit(6, "message", T::String),
    ],
};

pub(super) static NAMESPACE_STATUS: Message = Message {
    name: "core.v1.NamespaceStatus",
    fields: &[omit(1, "phase", T::String), list(2, "conditions", T::Message(&NAMESPACE_CONDITION))],
};

pub(super) static NAMESPACE: Message = Message {
    name: "core.v1.Namespace",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        omit(2, "spec", T::Message(&NAMESPACE_SPEC)),
        omit(3, "status", T::Message(&NAMESPACE_STATUS)),
    ],
};

pub(super) static SERVICE_PORT: Message = Message {
    name: "core.v1.ServicePort",
    fields: &[
        omit(1, "name", T::String),
        omit(2, "protocol", T::String),
        opt(6, "appProtocol", T::String),
        req(3, "port", T::Int32),
        omit(4, "targetPort", T::IntOrString),
        omit(5, "nodePort", T::Int32),
    ],
};

pub(super) static CLIENT_IP_CONFIG: Message =
    Message { name: "core.v1.ClientIPConfig", fields: &[opt(1, "timeoutSeconds", T::Int32)] };

pub(super) static SESSION_AFFINITY_CONFIG: Message =
    Message { name: "core.v1.SessionAffinityConfig", fields: &[opt(1, "clientIP", T::Message(&CLIENT_IP_CONFIG))] };

pub(super) static SERVICE_SPEC: Message = Message {
    name: "core.v1.ServiceSpec",
    fields: &[
        list(1, "ports", T::Message(&SERVICE_PORT)),
        omit(2, "selector", T::Map(&T::String)),
        omit(3, "clusterIP", T::String),
        list(18, "clusterIPs", T::String),
        omit(4, "type", T::String),
        list(5, "externalIPs", T::String),
        omit(7, "sessionAffinity", T::String),
        omit(8, "loadBalancerIP", T::String),
        list(9, "loadBalancerSourceRanges", T::String),
        omit(10, "externalName", T::String),
        omit(11, "externalTrafficPolicy", T::String),
        omit(12, "healthCheckNodePort", T::Int32),
        omit(13, "publishNotReadyAddresses", T::Bool),
        opt(14, "sessionAffinityConfig", T::Message(&SESSION_AFFINITY_CONFIG)),
        list(19, "ipFamilies", T::String),
        opt(17, "ipFamilyPolicy", T::String),
        opt(20, "allocateLoadBalancerNodePorts", T::Bool),
        opt(21, "loadBalancerClass", T::String),
        opt(22, "internalTrafficPolicy", T::String),
        opt(23, "trafficDistribution", T::String),
    ],
};

pub(super) static PORT_STATUS: Message = Message {
    name: "core.v1.PortStatus",
    fields: &[req(1, "port", T::Int32), req(2, "protocol", T::String), opt(3, "error", T::String)],
};

pub(super) static LOAD_BALANCER_INGRESS: Message = Message {
    name: "core.v1.LoadBalancerIngress",
    fields: &[
        omit(1, "ip", T::String),
        omit(2, "hostname", T::String),
        opt(3, "ipMode", T::String),
        list(4, "ports", T::Message(&PORT_STATUS)),
    ],
};

pub(super) static LOAD_BALANCER_STATUS: Message =
    Message { name: "core.v1.LoadBalancerStatus", fields: &[list(1, "ingress", T::Message(&LOAD_BALANCER_INGRESS))] };

pub(super) static SERVICE_STATUS: Message = Message {
    name: "core.v1.ServiceStatus",
    fields: &[
        omit(1, "loadBalancer", T::Message(&LOAD_BALANCER_STATUS)),
        list(2, "conditions", T::Message(&super::meta_v1::CONDITION)),
    ],
};

pub(super) static SERVICE: Message = Message {
    name: "core.v1.Service",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        omit(2, "spec", T::Message(&SERVICE_SPEC)),
        omit(3, "status", T::Message(&SERVICE_STATUS)),
    ],
};

pub(super) static OBJECT_REFERENCE: Message = Message {
    name: "core.v1.ObjectReference",
    fields: &[
        omit(1, "kind", T::String),
        omit(2, "namespace", T::String),
        omit(3, "name", T::String),
        omit(4, "uid", T::String),
        omit(5, "apiVersion", T::String),
        omit(6, "resourceVersion", T::String),
        omit(7, "fieldPath", T::String),
    ],
};

pub(super) static ENDPOINT_ADDRESS: Message = Message {
    name: "core.v1.EndpointAddress",
    fields: &[
        req(1, "ip", T::String),
        omit(3, "hostname", T::String),
        opt(4, "nodeName", T::String),
        opt(2, "targetRef", T::Message(&OBJECT_REFERENCE)),
    ],
};

pub(super) static ENDPOINT_PORT: Message = Message {
    name: "core.v1.EndpointPort",
    fields: &[
        omit(1, "name", T::String),
        req(2, "port", T::Int32),
        omit(3, "protocol", T::String),
        opt(4, "appProtocol", T::String),
    ],
};

pub(super) static ENDPOINT_SUBSET: Message = Message {
    name: "core.v1.EndpointSubset",
    fields: &[
        list(1, "addresses", T::Message(&ENDPOINT_ADDRESS)),
        list(2, "notReadyAddresses", T::Message(&ENDPOINT_ADDRESS)),
        list(3, "ports", T::Message(&ENDPOINT_PORT)),
    ],
};

pub(super) static ENDPOINTS: Message = Message {
    name: "core.v1.Endpoints",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        list(2, "subsets", T::Message(&ENDPOINT_SUBSET)),
    ],
};

pub(super) static HOST_PATH_VOLUME_SOURCE: Message =
    Message { name: "core.v1.HostPathVolumeSource", fields: &[req(1, "path", T::String), opt(2, "type", T::String)] };

pub(super) static EMPTY_DIR_VOLUME_SOURCE: Message = Message {
    name: "core.v1.EmptyDirVolumeSource",
    fields: &[omit(1, "medium", T::String), opt(2, "sizeLimit", T::Quantity)],
};

pub(super) static GCE_PERSISTENT_DISK_VOLUME_SOURCE: Message = Message {
    name: "core.v1.GCEPersistentDiskVolumeSource",
    fields: &[
        req(1, "pdName", T::String),
        omit(2, "fsType", T::String),
        omit(3, "partition", T::Int32),
        omit(4, "readOnly", T::Bool),
    ],
};

pub(super) static AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE: Message = Message {
    name: "core.v1.AWSElasticBlockStoreVolumeSource",
    fields: &[
        req(1, "volumeID", T::String),
        omit(2, "fsType", T::String),
        omit(3, "partition", T::Int32),
        omit(4, "readOnly", T::Bool),
    ],
};

pub(super) static GIT_REPO_VOLUME_SOURCE: Message = Message {
    name: "core.v1.GitRepoVolumeSource",
    fields: &[req(1, "repository", T::String), omit(2, "revision", T::String), omit(3, "directory", T::String)],
};

pub(super) static KEY_TO_PATH: Message = Message {
    name: "core.v1.KeyToPath",
    fields: &[req(1, "key", T::String), req(2, "path", T::String), opt(3, "mode", T::Int32)],
};

pub(super) static SECRET_VOLUME_SOURCE: Message = Message {
    name: "core.v1.SecretVolumeSource",
    fields: &[
        omit(1, "secretName", T::String),
        list(2, "items", T::Message(&KEY_TO_PATH)),
        opt(3, "defaultMode", T::Int32),
        opt(4, "optional", T::Bool),
    ],
};

pub(super) static NFS_VOLUME_SOURCE: Message = Message {
    name: "core.v1.NFSVolumeSource",
    fields: &[req(1, "server", T::String), req(2, "path", T::String), omit(3, "readOnly", T::Bool)],
};

pub(super) static LOCAL_OBJECT_REFERENCE: Message =
    Message { name: "core.v1.LocalObjectReference", fields: &[req(1, "name", T::String)] };

pub(super) static ISCSI_VOLUME_SOURCE: Message = Message {
    name: "core.v1.ISCSIVolumeSource",
    fields: &[
        req(1, "targetPortal", T::String),
        req(2, "iqn", T::String),
        req(3, "lun", T::Int32),
        omit(4, "iscsiInterface", T::String),
        omit(5, "fsType", T::String),
        omit(6, "readOnly", T::Bool),
        list(7, "portals", T::String),
        omit(8, "chapAuthDiscovery", T::Bool),
        omit(11, "chapAuthSession", T::Bool),
        opt(10, "secretRef", T::Message(&LOCAL_OBJECT_REFERENCE)),
        opt(12, "initiatorName", T::String),
    ],
};

pub(super) static GLUSTERFS_VOLUME_SOURCE: Message = Message {
    name: "core.v1.GlusterfsVolumeSource",
    fields: &[req(1, "endpoints", T::String), req(2, "path", T::String), omit(3, "readOnly", T::Bool)],
};

pub(super) static PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE: Message = Message {
    name: "core.v1.PersistentVolumeClaimVolumeSource",
    fields: &[req(1, "claimName", T::String), omit(2, "readOnly", T::Bool)],
};

pub(super) static RBD_VOLUME_SOURCE: Message = Message {
    name: "core.v1.RBDVolumeSource",
    fields: &[
        list_req(1, "monitors", T::String),
        req(2, "image", T::String),
        omit(3, "fsType", T::String),
        omit(4, "pool", T::String),
        omit(5, "user", T::String),
        omit(6, "keyring", T::String),
        opt(7, "secretRef", T::Message(&LOCAL_OBJECT_REFERENCE)),
        omit(8, "readOnly", T::Bool),
    ],
};

pub(super) static FLEX_VOLUME_SOURCE: Message = Message {
    name: "core.v1.FlexVolumeSource",
    fields: &[
        req(1, "driver", T::String),
        omit(2, "fsType", T::String),
        opt(3, "secretRef", T::Message(&LOCAL_OBJECT_REFERENCE)),
        omit(4, "readOnly", T::Bool),
        omit(5, "options", T::Map(&T::String)),
    ],
};

pub(super) static CINDER_VOLUME_SOURCE: Message = Message {
    name: "core.v1.CinderVolumeSource",
    fields: &[
        req(1, "volumeID", T::String),
        omit(2, "fsType", T::String),
        omit(3, "readOnly", T::Bool),
        opt(4, "secretRef", T::Message(&LOCAL_OBJECT_REFERENCE)),
    ],
};

pub(super) static CEPH_FS_VOLUME_SOURCE: Message = Message {
    name: "core.v1.CephFSVolumeSource",
    fields: &[
        list_req(1, "monitors", T::String),
        omit(2, "path", T::String),
        omit(3, "user", T::String),
        omit(4, "secretFile", T::String),
        opt(5, "secretRef", T::Message(&LOCAL_OBJECT_REFERENCE)),
        omit(6, "readOnly", T::Bool),
    ],
};

pub(super) static FLOCKER_VOLUME_SOURCE: Message = Message {
    name: "core.v1.FlockerVolumeSource",
    fields: &[omit(1, "datasetName", T::String), omit(2, "datasetUUID", T::String)],
};

pub(super) static OBJECT_FIELD_SELECTOR: Message = Message {
    name: "core.v1.ObjectFieldSelector",
    fields: &[omit(1, "apiVersion", T::String), req(2, "fieldPath", T::String)],
};

pub(super) static RESOURCE_FIELD_SELECTOR: Message = Message {
    name: "core.v1.ResourceFieldSelector",
    fields: &[omit(1, "containerName", T::String), req(2, "resource", T::String), omit(3, "divisor", T::Quantity)],
};

pub(super) static DOWNWARD_API_VOLUME_FILE: Message = Message {
    name: "core.v1.DownwardAPIVolumeFile",
    fields: &[
        req(1, "path", T::String),
        opt(2, "fieldRef", T::Message(&OBJECT_FIELD_SELECTOR)),
        opt(3, "resourceFieldRef", T::Message(&RESOURCE_FIELD_SELECTOR)),
        opt(4, "mode", T::Int32),
    ],
};

pub(super) static DOWNWARD_API_VOLUME_SOURCE: Message = Message {
    name: "core.v1.DownwardAPIVolumeSource",
    fields: &[list(1, "items", T::Message(&DOWNWARD_API_VOLUME_FILE)), opt(2, "defaultMode", T::Int32)],
};

pub(super) static FC_VOLUME_SOURCE: Message = Message {
    name: "core.v1.FCVolumeSource",
    fields: &[
        list(1, "targetWWNs", T::String),
        opt(2, "lun", T::Int32),
        omit(3, "fsType", T::String),
        omit(4, "readOnly", T::Bool),
        list(5, "wwids", T::String),
    ],
};

pub(super) static AZURE_FILE_VOLUME_SOURCE: Message = Message {
    name: "core.v1.AzureFileVolumeSource",
    fields: &[req(1, "secretName", T::String), req(2, "shareName", T::String), omit(3, "readOnly", T::Bool)],
};

pub(super) static CONFIG_MAP_VOLUME_SOURCE: Message = Message {
    name: "core.v1.ConfigMapVolumeSource",
    fields: &[
        inline(1, &LOCAL_OBJECT_REFERENCE),
        list(2, "items", T::Message(&KEY_TO_PATH)),
        opt(3, "defaultMode", T::Int32),
        opt(4, "optional", T::Bool),
    ],
};

pub(super) static VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE: Message = Message {
    name: "core.v1.VsphereVirtualDiskVolumeSource",
    fields: &[
        req(1, "volumePath", T::String),
        omit(2, "fsType", T::String),
        omit(3, "storagePolicyName", T::String),
        omit(4, "storagePolicyID", T::String),
    ],
};

pub(super) static QUOBYTE_VOLUME_SOURCE: Message = Message {
    name: "core.v1.QuobyteVolumeSource",
    fields: &[
        req(1, "registry", T::String),
        req(2, "volume", T::String),
        omit(3, "readOnly", T::Bool),
        omit(4, "user", T::String),
        omit(5, "group", T::String),
        omit(6, "tenant", T::String),
    ],
};

pub(super) static AZURE_DISK_VOLUME_SOURCE: Message = Message {
    name: "core.v1.AzureDiskVolumeSource",
    fields: &[
        req(1, "diskName", T::String),
        req(2, "diskURI", T::String),
        opt(3, "cachingMode", T::String),
        opt(4, "fsType", T::String),
        opt(5, "readOnly", T::Bool),
        opt(6, "kind", T::String),
    ],
};

pub(super) static PHOTON_PERSISTENT_DISK_VOLUME_SOURCE: Message = Message {
    name: "core.v1.PhotonPersistentDiskVolumeSource",
    fields: &[req(1, "pdID", T::String), omit(2, "fsType", T::String)],
};

pub(super) static SECRET_PROJECTION: Message = Message {
    name: "core.v1.SecretProjection",
    fields: &[
        inline(1, &LOCAL_OBJECT_REFERENCE),
        list(2, "items", T::Message(&KEY_TO_PATH)),
        opt(4, "optional", T::Bool),
    ],
};

pub(super) static DOWNWARD_API_PROJECTION: Message = Message {
    name: "core.v1.DownwardAPIProjection",
    fields: &[list(1, "items", T::Message(&DOWNWARD_API_VOLUME_FILE))],
};

pub(super) static CONFIG_MAP_PROJECTION: Message = Message {
    name: "core.v1.ConfigMapProjection",
    fields: &[
        inline(1, &LOCAL_OBJECT_REFERENCE),
        list(2, "items", T::Message(&KEY_TO_PATH)),
        opt(4, "optional", T::Bool),
    ],
};

pub(super) static SERVICE_ACCOUNT_TOKEN_PROJECTION: Message = Message {
    name: "core.v1.ServiceAccountTokenProjection",
    fields: &[omit(1, "audience", T::String), opt(2, "expirationSeconds", T::Int64), req(3, "path", T::String)],
};

pub(super) static CLUSTER_TRUST_BUNDLE_PROJECTION: Message = Message {
    name: "core.v1.ClusterTrustBundleProjection",
    fields: &[
        opt(1, "name", T::String),
        opt(2, "signerName", T::String),
        opt(3, "labelSelector", T::Message(&super::meta_v1::LABEL_SELECTOR)),
        opt(5, "optional", T::Bool),
        req(4, "path", T::String),
    ],
};

pub(super) static VOLUME_PROJECTION: Message = Message {
    name: "core.v1.VolumeProjection",
    fields: &[
        opt(1, "secret", T::Message(&SECRET_PROJECTION)),
        opt(2, "downwardAPI", T::Message(&DOWNWARD_API_PROJECTION)),
        opt(3, "configMap", T::Message(&CONFIG_MAP_PROJECTION)),
        opt(4, "serviceAccountToken", T::Message(&SERVICE_ACCOUNT_TOKEN_PROJECTION)),
        opt(5, "clusterTrustBundle", T::Message(&CLUSTER_TRUST_BUNDLE_PROJECTION)),
    ],
};

pub(super) static PROJECTED_VOLUME_SOURCE: Message = Message {
    name: "core.v1.ProjectedVolumeSource",
    fields: &[list(1, "sources", T::Message(&VOLUME_PROJECTION)), opt(2, "defaultMode", T::Int32)],
};

pub(super) static PORTWORX_VOLUME_SOURCE: Message = Message {
    name: "core.v1.PortworxVolumeSource",
    fields: &[req(1, "volumeID", T::String), omit(2, "fsType", T::String), omit(3, "readOnly", T::Bool)],
};

pub(super) static SCALE_IO_VOLUME_SOURCE: Message = Message {
    name: "core.v1.ScaleIOVolumeSource",
    fields: &[
        req(1, "gateway", T::String),
        req(2, "system", T::String),
        opt(3, "secretRef", T::Message(&LOCAL_OBJECT_REFERENCE)),
        omit(4, "sslEnabled", T::Bool),
        omit(5, "protectionDomain", T::String),
        omit(6, "storagePool", T::String),
        omit(7, "storageMode", T::String),
        omit(8, "volumeName", T::String),
        omit(9, "fsType", T::String),
        omit(10, "readOnly", T::Bool),
    ],
};

pub(super) static STORAGE_OS_VOLUME_SOURCE: Message = Message {
    name: "core.v1.StorageOSVolumeSource",
    fields: &[
        omit(1, "volumeName", T::String),
        omit(2, "volumeNamespace", T::String),
        omit(3, "fsType", T::String),
        omit(4, "readOnly", T::Bool),
        opt(5, "secretRef", T::Message(&LOCAL_OBJECT_REFERENCE)),
    ],
};

pub(super) static CSI_VOLUME_SOURCE: Message = Message {
    name: "core.v1.CSIVolumeSource",
    fields: &[
        req(1, "driver", T::String),
        opt(2, "readOnly", T::Bool),
        opt(3, "fsType", T::String),
        omit(4, "volumeAttributes", T::Map(&T::String)),
        opt(5, "nodePublishSecretRef", T::Message(&LOCAL_OBJECT_REFERENCE)),
    ],
};

pub(super) static VOLUME_RESOURCE_REQUIREMENTS: Message = Message {
    name: "core.v1.VolumeResourceRequirements",
    fields: &[omit(1, "limits", T::Map(&T::Quantity)), omit(2, "requests", T::Map(&T::Quantity))],
};

pub(super) static TYPED_LOCAL_OBJECT_REFERENCE: Message = Message {
    name: "core.v1.TypedLocalObjectReference",
    fields: &[opt(1, "apiGroup", T::String), req(2, "kind", T::String), req(3, "name", T::String)],
};

pub(super) static TYPED_OBJECT_REFERENCE: Message = Message {
    name: "core.v1.TypedObjectReference",
    fields: &[
        opt(1, "apiGroup", T::String),
        req(2, "kind", T::String),
        req(3, "name", T::String),
        opt(4, "namespace", T::String),
    ],
};

pub(super) static PERSISTENT_VOLUME_CLAIM_SPEC: Message = Message {
    name: "core.v1.PersistentVolumeClaimSpec",
    fields: &[
        list(1, "accessModes", T::String),
        opt(4, "selector", T::Message(&super::meta_v1::LABEL_SELECTOR)),
        omit(2, "resources", T::Message(&VOLUME_RESOURCE_REQUIREMENTS)),
        omit(3, "volumeName", T::String),
        opt(5, "storageClassName", T::String),
        opt(6, "volumeMode", T::String),
        opt(7, "dataSource", T::Message(&TYPED_LOCAL_OBJECT_REFERENCE)),
        opt(8, "dataSourceRef", T::Message(&TYPED_OBJECT_REFERENCE)),
        opt(9, "volumeAttributesClassName", T::String),
    ],
};

pub(super) static PERSISTENT_VOLUME_CLAIM_TEMPLATE: Message = Message {
    name: "core.v1.PersistentVolumeClaimTemplate",
    fields: &[
        omit(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        req(2, "spec", T::Message(&PERSISTENT_VOLUME_CLAIM_SPEC)),
    ],
};

pub(super) static EPHEMERAL_VOLUME_SOURCE: Message = Message {
    name: "core.v1.EphemeralVolumeSource",
    fields: &[opt(1, "volumeClaimTemplate", T::Message(&PERSISTENT_VOLUME_CLAIM_TEMPLATE))],
};

pub(super) static IMAGE_VOLUME_SOURCE: Message = Message {
    name: "core.v1.ImageVolumeSource",
    fields: &[omit(1, "reference", T::String), omit(2, "pullPolicy", T::String)],
};

pub(super) static VOLUME_SOURCE: Message = Message {
    name: "core.v1.VolumeSource",
    fields: &[
        opt(1, "hostPath", T::Message(&HOST_PATH_VOLUME_SOURCE)),
        opt(2, "emptyDir", T::Message(&EMPTY_DIR_VOLUME_SOURCE)),
        opt(3, "gcePersistentDisk", T::Message(&GCE_PERSISTENT_DISK_VOLUME_SOURCE)),
        opt(4, "awsElasticBlockStore", T::Message(&AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE)),
        opt(5, "gitRepo", T::Message(&GIT_REPO_VOLUME_SOURCE)),
        opt(6, "secret", T::Message(&SECRET_VOLUME_SOURCE)),
        opt(7, "nfs", T::Message(&NFS_VOLUME_SOURCE)),
        opt(8, "iscsi", T::Message(&ISCSI_VOLUME_SOURCE)),
        opt(9, "glusterfs", T::Message(&GLUSTERFS_VOLUME_SOURCE)),
        opt(10, "persistentVolumeClaim", T::Message(&PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE)),
        opt(11, "rbd", T::Message(&RBD_VOLUME_SOURCE)),
        opt(12, "flexVolume", T::Message(&FLEX_VOLUME_SOURCE)),
        opt(13, "cinder", T::Message(&CINDER_VOLUME_SOURCE)),
        opt(14, "cephfs", T::Message(&CEPH_FS_VOLUME_SOURCE)),
        opt(15, "flocker", T::Message(&FLOCKER_VOLUME_SOURCE)),
        opt(16, "downwardAPI", T::Message(&DOWNWARD_API_VOLUME_SOURCE)),
        opt(17, "fc", T::Message(&FC_VOLUME_SOURCE)),
        opt(18, "azureFile", T::Message(&AZURE_FILE_VOLUME_SOURCE)),
        opt(19, "configMap", T::Message(&CONFIG_MAP_VOLUME_SOURCE)),
        opt(20, "vsphereVolume", T::Message(&VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE)),
        opt(21, "quobyte", T::Message(&QUOBYTE_VOLUME_SOURCE)),
        opt(22, "azureDisk", T::Message(&AZURE_DISK_VOLUME_SOURCE)),
        opt(23, "photonPersistentDisk", T::Message(&PHOTON_PERSISTENT_DISK_VOLUME_SOURCE)),
        opt(26, "projected", T::Message(&PROJECTED_VOLUME_SOURCE)),
        opt(24, "portworxVolume", T::Message(&PORTWORX_VOLUME_SOURCE)),
        opt(25, "scaleIO", T::Message(&SCALE_IO_VOLUME_SOURCE)),
        opt(27, "storageos", T::Message(&STORAGE_OS_VOLUME_SOURCE)),
        opt(28, "csi", T::Message(&CSI_VOLUME_SOURCE)),
        opt(29, "ephemeral", T::Message(&EPHEMERAL_VOLUME_SOURCE)),
        opt(30, "image", T::Message(&IMAGE_VOLUME_SOURCE)),
    ],
};

pub(super) static VOLUME: Message =
    Message { name: "core.v1.Volume", fields: &[req(1, "name", T::String), inline(2, &VOLUME_SOURCE)] };

pub(super) static CONTAINER_PORT: Message = Message {
    name: "core.v1.ContainerPort",
    fields: &[
        omit(1, "name", T::String),
        omit(2, "hostPort", T::Int32),
        req(3, "containerPort", T::Int32),
        omit(4, "protocol", T::String),
        omit(5, "hostIP", T::String),
    ],
};

pub(super) static CONFIG_MAP_ENV_SOURCE: Message = Message {
    name: "core.v1.ConfigMapEnvSource",
    fields: &[inline(1, &LOCAL_OBJECT_REFERENCE), opt(2, "optional", T::Bool)],
};

pub(super) static SECRET_ENV_SOURCE: Message = Message {
    name: "core.v1.SecretEnvSource",
    fields: &[inline(1, &LOCAL_OBJECT_REFERENCE), opt(2, "optional", T::Bool)],
};

pub(super) static ENV_FROM_SOURCE: Message = Message {
    name: "core.v1.EnvFromSource",
    fields: &[
        omit(1, "prefix", T::String),
        opt(2, "configMapRef", T::Message(&CONFIG_MAP_ENV_SOURCE)),
        opt(3, "secretRef", T::Message(&SECRET_ENV_SOURCE)),
    ],
};

pub(super) static CONFIG_MAP_KEY_SELECTOR: Message = Message {
    name: "core.v1.ConfigMapKeySelector",
    fields: &[inline(1, &LOCAL_OBJECT_REFERENCE), req(2, "key", T::String), opt(3, "optional", T::Bool)],
};

pub(super) static SECRET_KEY_SELECTOR: Message = Message {
    name: "core.v1.SecretKeySelector",
    fields: &[inline(1, &LOCAL_OBJECT_REFERENCE), req(2, "key", T::String), opt(3, "optional", T::Bool)],
};

pub(super) static ENV_VAR_SOURCE: Message = Message {
    name: "core.v1.EnvVarSource",
    fields: &[
        opt(1, "fieldRef", T::Message(&OBJECT_FIELD_SELECTOR)),
        opt(2, "resourceFieldRef", T::Message(&RESOURCE_FIELD_SELECTOR)),
        opt(3, "configMapKeyRef", T::Message(&CONFIG_MAP_KEY_SELECTOR)),
        opt(4, "secretKeyRef", T::Message(&SECRET_KEY_SELECTOR)),
    ],
};

pub(super) static ENV_VAR: Message = Message {
    name: "core.v1.EnvVar",
    fields: &[req(1, "name", T::String), omit(2, "value", T::String), opt(3, "valueFrom", T::Message(&ENV_VAR_SOURCE))],
};

pub(super) static RESOURCE_CLAIM: Message =
    Message { name: "core.v1.ResourceClaim", fields: &[req(1, "name", T::String), omit(2, "request", T::String)] };

pub(super) static RESOURCE_REQUIREMENTS: Message = Message {
    name: "core.v1.ResourceRequirements",
    fields: &[
        omit(1, "limits", T::Map(&T::Quantity)),
        omit(2, "requests", T::Map(&T::Quantity)),
        list(3, "claims", T::Message(&RESOURCE_CLAIM)),
    ],
};

pub(super) static CONTAINER_RESIZE_POLICY: Message = Message {
    name: "core.v1.ContainerResizePolicy",
    fields: &[req(1, "resourceName", T::String), req(2, "restartPolicy", T::String)],
};

pub(super) static VOLUME_MOUNT: Message = Message {
    name: "core.v1.VolumeMount",
    fields: &[
        req(1, "name", T::String),
        omit(2, "readOnly", T::Bool),
        opt(7, "recursiveReadOnly", T::String),
        req(3, "mountPath", T::String),
        omit(4, "subPath", T::String),
        opt(5, "mountPropagation", T::String),
        omit(6, "subPathExpr", T::String),
    ],
};

pub(super) static VOLUME_DEVICE: Message =
    Message { name: "core.v1.VolumeDevice", fields: &[req(1, "name", T::String), req(2, "devicePath", T::String)] };

pub(super) static EXEC_ACTION: Message =
    Message { name: "core.v1.ExecAction", fields: &[list(1, "command", T::String)] };

pub(super) static HTTP_HEADER: Message =
    Message { name: "core.v1.HTTPHeader", fields: &[req(1, "name", T::String), req(2, "value", T::String)] };

pub(super) static HTTP_GET_ACTION: Message = Message {
    name: "core.v1.HTTPGetAction",
    fields: &[
        omit(1, "path", T::String),
        req(2, "port", T::IntOrString),
        omit(3, "host", T::String),
        omit(4, "scheme", T::String),
        list(5, "httpHeaders", T::Message(&HTTP_HEADER)),
    ],
};

pub(super) static TCP_SOCKET_ACTION: Message =
    Message { name: "core.v1.TCPSocketAction", fields: &[req(1, "port", T::IntOrString), omit(2, "host", T::String)] };

pub(super) static GRPC_ACTION: Message =
    Message { name: "core.v1.GRPCAction", fields: &[req(1, "port", T::Int32), opt(2, "service", T::String)] };

pub(super) static PROBE_HANDLER: Message = Message {
    name: "core.v1.ProbeHandler",
    fields: &[
        opt(1, "exec", T::Message(&EXEC_ACTION)),
        opt(2, "httpGet", T::Message(&HTTP_GET_ACTION)),
        opt(3, "tcpSocket", T::Message(&TCP_SOCKET_ACTION)),
        opt(4, "grpc", T::Message(&GRPC_ACTION)),
    ],
};

pub(super) static PROBE: Message = Message {
    name: "core.v1.Probe",
    fields: &[
        inline(1, &PROBE_HANDLER),
        omit(2, "initialDelaySeconds", T::Int32),
        omit(3, "timeoutSeconds", T::Int32),
        omit(4, "periodSeconds", T::Int32),
        omit(5, "successThreshold", T::Int32),
        omit(6, "failureThreshold", T::Int32),
        opt(7, "terminationGracePeriodSeconds", T::Int64),
    ],
};

pub(super) static SLEEP_ACTION: Message =
    Message { name: "core.v1.SleepAction", fields: &[req(1, "seconds", T::Int64)] };

pub(super) static LIFECYCLE_HANDLER: Message = Message {
    name: "core.v1.LifecycleHandler",
    fields: &[
        opt(1, "exec", T::Message(&EXEC_ACTION)),
        opt(2, "httpGet", T::Message(&HTTP_GET_ACTION)),
        opt(3, "tcpSocket", T::Message(&TCP_SOCKET_ACTION)),
        opt(4, "sleep", T::Message(&SLEEP_ACTION)),
    ],
};

pub(super) static LIFECYCLE: Message = Message {
    name: "core.v1.Lifecycle",
    fields: &[
        opt(1, "postStart", T::Message(&LIFECYCLE_HANDLER)),
        opt(2, "preStop", T::Message(&LIFECYCLE_HANDLER)),
        opt(3, "stopSignal", T::String),
    ],
};

pub(super) static CAPABILITIES: Message =
    Message { name: "core.v1.Capabilities", fields: &[list(1, "add", T::String), list(2, "drop", T::String)] };

pub(super) static SE_LINUX_OPTIONS: Message = Message {
    name: "core.v1.SELinuxOptions",
    fields: &[
        omit(1, "user", T::String),
        omit(2, "role", T::String),
        omit(3, "type", T::String),
        omit(4, "level", T::String),
    ],
};

pub(super) static WINDOWS_SECURITY_CONTEXT_OPTIONS: Message = Message {
    name: "core.v1.WindowsSecurityContextOptions",
    fields: &[
        opt(1, "gmsaCredentialSpecName", T::String),
        opt(2, "gmsaCredentialSpec", T::String),
        opt(3, "runAsUserName", T::String),
        opt(4, "hostProcess", T::Bool),
    ],
};

pub(super) static SECCOMP_PROFILE: Message = Message {
    name: "core.v1.SeccompProfile",
    fields: &[req(1, "type", T::String), opt(2, "localhostProfile", T::String)],
};

pub(super) static APP_ARMOR_PROFILE: Message = Message {
    name: "core.v1.AppArmorProfile",
    fields: &[req(1, "type", T::String), opt(2, "localhostProfile", T::String)],
};

pub(super) static SECURITY_CONTEXT: Message = Message {
    name: "core.v1.SecurityContext",
    fields: &[
        opt(1, "capabilities", T::Message(&CAPABILITIES)),
        opt(2, "privileged", T::Bool),
        opt(3, "seLinuxOptions", T::Message(&SE_LINUX_OPTIONS)),
        opt(10, "windowsOptions", T::Message(&WINDOWS_SECURITY_CONTEXT_OPTIONS)),
        opt(4, "runAsUser", T::Int64),
        opt(8, "runAsGroup", T::Int64),
        opt(5, "runAsNonRoot", T::Bool),
        opt(6, "readOnlyRootFilesystem", T::Bool),
        opt(7, "allowPrivilegeEscalation", T::Bool),
        opt(9, "procMount", T::String),
        opt(11, "seccompProfile", T::Message(&SECCOMP_PROFILE)),
        opt(12, "appArmorProfile", T::Message(&APP_ARMOR_PROFILE)),
    ],
};

pub(super) static CONTAINER: Message = Message {
    name: "core.v1.Container",
    fields: &[
        req(1, "name", T::String),
        omit(2, "image", T::String),
        list(3, "command", T::String),
        list(4, "args", T::String),
        omit(5, "workingDir", T::String),
        list(6, "ports", T::Message(&CONTAINER_PORT)),
        list(19, "envFrom", T::Message(&ENV_FROM_SOURCE)),
        list(7, "env", T::Message(&ENV_VAR)),
        omit(8, "resources", T::Message(&RESOURCE_REQUIREMENTS)),
        list(23, "resizePolicy", T::Message(&CONTAINER_RESIZE_POLICY)),
        opt(24, "restartPolicy", T::String),
        list(9, "volumeMounts", T::Message(&VOLUME_MOUNT)),
        list(21, "volumeDevices", T::Message(&VOLUME_DEVICE)),
        opt(10, "livenessProbe", T::Message(&PROBE)),
        opt(11, "readinessProbe", T::Message(&PROBE)),
        opt(22, "startupProbe", T::Message(&PROBE)),
        opt(12, "lifecycle", T::Message(&LIFECYCLE)),
        omit(13, "terminationMessagePath", T::String),
        omit(20, "terminationMessagePolicy", T::String),
        omit(14, "imagePullPolicy", T::String),
        opt(15, "securityContext", T::Message(&SECURITY_CONTEXT)),
        omit(16, "stdin", T::Bool),
        omit(17, "stdinOnce", T::Bool),
        omit(18, "tty", T::Bool),
    ],
};

pub(super) static EPHEMERAL_CONTAINER_COMMON: Message = Message {
    name: "core.v1.EphemeralContainerCommon",
    fields: &[
        req(1, "name", T::String),
        omit(2, "image", T::String),
        list(3, "command", T::String),
        list(4, "args", T::String),
        omit(5, "workingDir", T::String),
        list(6, "ports", T::Message(&CONTAINER_PORT)),
        list(19, "envFrom", T::Message(&ENV_FROM_SOURCE)),
        list(7, "env", T::Message(&ENV_VAR)),
        omit(8, "resources", T::Message(&RESOURCE_REQUIREMENTS)),
        list(23, "resizePolicy", T::Message(&CONTAINER_RESIZE_POLICY)),
        opt(24, "restartPolicy", T::String),
        list(9, "volumeMounts", T::Message(&VOLUME_MOUNT)),
        list(21, "volumeDevices", T::Message(&VOLUME_DEVICE)),
        opt(10, "livenessProbe", T::Message(&PROBE)),
        opt(11, "readinessProbe", T::Message(&PROBE)),
        opt(22, "startupProbe", T::Message(&PROBE)),
        opt(12, "lifecycle", T::Message(&LIFECYCLE)),
        omit(13, "terminationMessagePath", T::String),
        omit(20, "terminationMessagePolicy", T::String),
        omit(14, "imagePullPolicy", T::String),
        opt(15, "securityContext", T::Message(&SECURITY_CONTEXT)),
        omit(16, "stdin", T::Bool),
        omit(17, "stdinOnce", T::Bool),
        omit(18, "tty", T::Bool),
    ],
};

pub(super) static EPHEMERAL_CONTAINER: Message = Message {
    name: "core.v1.EphemeralContainer",
    fields: &[inline(1, &EPHEMERAL_CONTAINER_COMMON), omit(2, "targetContainerName", T::String)],
};

pub(super) static SYSCTL: Message =
    Message { name: "core.v1.Sysctl", fields: &[req(1, "name", T::String), req(2, "value", T::String)] };

pub(super) static POD_SECURITY_CONTEXT: Message = Message {
    name: "core.v1.PodSecurityContext",
    fields: &[
        opt(1, "seLinuxOptions", T::Message(&SE_LINUX_OPTIONS)),
        opt(8, "windowsOptions", T::Message(&WINDOWS_SECURITY_CONTEXT_OPTIONS)),
        opt(2, "runAsUser", T::Int64),
        opt(6, "runAsGroup", T::Int64),
        opt(3, "runAsNonRoot", T::Bool),
        list(4, "supplementalGroups", T::Int64),
        opt(12, "supplementalGroupsPolicy", T::String),
        opt(5, "fsGroup", T::Int64),
        list(7, "sysctls", T::Message(&SYSCTL)),
        opt(9, "fsGroupChangePolicy", T::String),
        opt(10, "seccompProfile", T::Message(&SECCOMP_PROFILE)),
        opt(11, "appArmorProfile", T::Message(&APP_ARMOR_PROFILE)),
        opt(13, "seLinuxChangePolicy", T::String),
    ],
};

pub(super) static NODE_SELECTOR_REQUIREMENT: Message = Message {
    name: "core.v1.NodeSelectorRequirement",
    fields: &[req(1, "key", T::String), req(2, "operator", T::String), list(3, "values", T::String)],
};

pub(super) static NODE_SELECTOR_TERM: Message = Message {
    name: "core.v1.NodeSelectorTerm",
    fields: &[
        list(1, "matchExpressions", T::Message(&NODE_SELECTOR_REQUIREMENT)),
        list(2, "matchFields", T::Message(&NODE_SELECTOR_REQUIREMENT)),
    ],
};

pub(super) static NODE_SELECTOR: Message = Message {
    name: "core.v1.NodeSelector",
    fields: &[list_req(1, "nodeSelectorTerms", T::Message(&NODE_SELECTOR_TERM))],
};

pub(super) static PREFERRED_SCHEDULING_TERM: Message = Message {
    name: "core.v1.PreferredSchedulingTerm",
    fields: &[req(1, "weight", T::Int32), req(2, "preference", T::Message(&NODE_SELECTOR_TERM))],
};

pub(super) static NODE_AFFINITY: Message = Message {
    name: "core.v1.NodeAffinity",
    fields: &[
        opt(1, "requiredDuringSchedulingIgnoredDuringExecution", T::Message(&NODE_SELECTOR)),
        list(2, "preferredDuringSchedulingIgnoredDuringExecution", T::Message(&PREFERRED_SCHEDULING_TERM)),
    ],
};

pub(super) static POD_AFFINITY_TERM: Message = Message {
    name: "core.v1.PodAffinityTerm",
    fields: &[
        opt(1, "labelSelector", T::Message(&super::meta_v1::LABEL_SELECTOR)),
        list(2, "namespaces", T::String),
        req(3, "topologyKey", T::String),
        opt(4, "namespaceSelector", T::Message(&super::meta_v1::LABEL_SELECTOR)),
        list(5, "matchLabelKeys", T::String),
        list(6, "mismatchLabelKeys", T::String),
    ],
};

pub(super) static WEIGHTED_POD_AFFINITY_TERM: Message = Message {
    name: "core.v1.WeightedPodAffinityTerm",
    fields: &[req(1, "weight", T::Int32), req(2, "podAffinityTerm", T::Message(&POD_AFFINITY_TERM))],
};

pub(super) static POD_AFFINITY: Message = Message {
    name: "core.v1.PodAffinity",
    fields: &[
        list(1, "requiredDuringSchedulingIgnoredDuringExecution", T::Message(&POD_AFFINITY_TERM)),
        list(2, "preferredDuringSchedulingIgnoredDuringExecution", T::Message(&WEIGHTED_POD_AFFINITY_TERM)),
    ],
};

pub(super) static POD_ANTI_AFFINITY: Message = Message {
    name: "core.v1.PodAntiAffinity",
    fields: &[
        list(1, "requiredDuringSchedulingIgnoredDuringExecution", T::Message(&POD_AFFINITY_TERM)),
        list(2, "preferredDuringSchedulingIgnoredDuringExecution", T::Message(&WEIGHTED_POD_AFFINITY_TERM)),
    ],
};

pub(super) static AFFINITY: Message = Message {
    name: "core.v1.Affinity",
    fields: &[
        opt(1, "nodeAffinity", T::Message(&NODE_AFFINITY)),
        opt(2, "podAffinity", T::Message(&POD_AFFINITY)),
        opt(3, "podAntiAffinity", T::Message(&POD_ANTI_AFFINITY)),
    ],
};

pub(super) static TOLERATION: Message = Message {
    name: "core.v1.Toleration",
    fields: &[
        omit(1, "key", T::String),
        omit(2, "operator", T::String),
        omit(3, "value", T::String),
        omit(4, "effect", T::String),
        opt(5, "tolerationSeconds", T::Int64),
    ],
};

pub(super) static HOST_ALIAS: Message =
    Message { name: "core.v1.HostAlias", fields: &[req(1, "ip", T::String), list(2, "hostnames", T::String)] };

pub(super) static POD_DNS_CONFIG_OPTION: Message =
    Message { name: "core.v1.PodDNSConfigOption", fields: &[omit(1, "name", T::String), opt(2, "value", T::String)] };

pub(super) static POD_DNS_CONFIG: Message = Message {
    name: "core.v1.PodDNSConfig",
    fields: &[
        list(1, "nameservers", T::String),
        list(2, "searches", T::String),
        list(3, "options", T::Message(&POD_DNS_CONFIG_OPTION)),
    ],
};

pub(super) static POD_READINESS_GATE: Message =
    Message { name: "core.v1.PodReadinessGate", fields: &[req(1, "conditionType", T::String)] };

pub(super) static TOPOLOGY_SPREAD_CONSTRAINT: Message = Message {
    name: "core.v1.TopologySpreadConstraint",
    fields: &[
        req(1, "maxSkew", T::Int32),
        req(2, "topologyKey", T::String),
        req(3, "whenUnsatisfiable", T::String),
        opt(4, "labelSelector", T::Message(&super::meta_v1::LABEL_SELECTOR)),
        opt(5, "minDomains", T::Int32),
        opt(6, "nodeAffinityPolicy", T::String),
        opt(7, "nodeTaintsPolicy", T::String),
        list(8, "matchLabelKeys", T::String),
    ],
};

pub(super) static POD_OS: Message = Message { name: "core.v1.PodOS", fields: &[req(1, "name", T::String)] };

pub(super) static POD_SCHEDULING_GATE: Message =
    Message { name: "core.v1.PodSchedulingGate", fields: &[req(1, "name", T::String)] };

pub(super) static POD_RESOURCE_CLAIM: Message = Message {
    name: "core.v1.PodResourceClaim",
    fields: &[
        req(1, "name", T::String),
        opt(3, "resourceClaimName", T::String),
        opt(4, "resourceClaimTemplateName", T::String),
    ],
};

pub(super) static POD_SPEC: Message = Message {
    name: "core.v1.PodSpec",
    fields: &[
        list(1, "volumes", T::Message(&VOLUME)),
        list(20, "initContainers", T::Message(&CONTAINER)),
        list_req(2, "containers", T::Message(&CONTAINER)),
        list(34, "ephemeralContainers", T::Message(&EPHEMERAL_CONTAINER)),
        omit(3, "restartPolicy", T::String),
        opt(4, "terminationGracePeriodSeconds", T::Int64),
        opt(5, "activeDeadlineSeconds", T::Int64),
        omit(6, "dnsPolicy", T::String),
        omit(7, "nodeSelector", T::Map(&T::String)),
        omit(8, "serviceAccountName", T::String),
        omit(9, "serviceAccount", T::String),
        opt(21, "automountServiceAccountToken", T::Bool),
        omit(10, "nodeName", T::String),
        omit(11, "hostNetwork", T::Bool),
        omit(12, "hostPID", T::Bool),
        omit(13, "hostIPC", T::Bool),
        opt(27, "shareProcessNamespace", T::Bool),
        opt(14, "securityContext", T::Message(&POD_SECURITY_CONTEXT)),
        list(15, "imagePullSecrets", T::Message(&LOCAL_OBJECT_REFERENCE)),
        omit(16, "hostname", T::String),
        omit(17, "subdomain", T::String),
        opt(18, "affinity", T::Message(&AFFINITY)),
        omit(19, "schedulerName", T::String),
        list(22, "tolerations", T::Message(&TOLERATION)),
        list(23, "hostAliases", T::Message(&HOST_ALIAS)),
        omit(24, "priorityClassName", T::String),
        opt(25, "priority", T::Int32),
        opt(26, "dnsConfig", T::Message(&POD_DNS_CONFIG)),
        list(28, "readinessGates", T::Message(&POD_READINESS_GATE)),
        opt(29, "runtimeClassName", T::String),
        opt(30, "enableServiceLinks", T::Bool),
        opt(31, "preemptionPolicy", T::String),
        omit(32, "overhead", T::Map(&T::Quantity)),
        list(33, "topologySpreadConstraints", T::Message(&TOPOLOGY_SPREAD_CONSTRAINT)),
        opt(35, "setHostnameAsFQDN", T::Bool),
        opt(36, "os", T::Message(&POD_OS)),
        opt(37, "hostUsers", T::Bool),
        list(38, "schedulingGates", T::Message(&POD_SCHEDULING_GATE)),
        list(39, "resourceClaims", T::Message(&POD_RESOURCE_CLAIM)),
        opt(40, "resources", T::Message(&RESOURCE_REQUIREMENTS)),
    ],
};

pub(super) static POD_CONDITION: Message = Message {
    name: "core.v1.PodCondition",
    fields: &[
        req(1, "type", T::String),
        omit(7, "observedGeneration", T::Int64),
        req(2, "status", T::String),
        omit(3, "lastProbeTime", T::Time),
        omit(4, "lastTransitionTime", T::Time),
        omit(5, "reason", T::String),
        omit(6, "message", T::String),
    ],
};

pub(super) static HOST_IP: Message = Message { name: "core.v1.HostIP", fields: &[req(1, "ip", T::String)] };

pub(super) static POD_IP: Message = Message { name: "core.v1.PodIP", fields: &[req(1, "ip", T::String)] };

pub(super) static CONTAINER_STATE_WAITING: Message = Message {
    name: "core.v1.ContainerStateWaiting",
    fields: &[omit(1, "reason", T::String), omit(2, "message", T::String)],
};

pub(super) static CONTAINER_STATE_RUNNING: Message =
    Message { name: "core.v1.ContainerStateRunning", fields: &[omit(1, "startedAt", T::Time)] };

pub(super) static CONTAINER_STATE_TERMINATED: Message = Message {
    name: "core.v1.ContainerStateTerminated",
    fields: &[
        req(1, "exitCode", T::Int32),
        omit(2, "signal", T::Int32),
        omit(3, "reason", T::String),
        omit(4, "message", T::String),
        omit(5, "startedAt", T::Time),
        omit(6, "finishedAt", T::Time),
        omit(7, "containerID", T::String),
    ],
};

pub(super) static CONTAINER_STATE: Message = Message {
    name: "core.v1.ContainerState",
    fields: &[
        opt(1, "waiting", T::Message(&CONTAINER_STATE_WAITING)),
        opt(2, "running", T::Message(&CONTAINER_STATE_RUNNING)),
        opt(3, "terminated", T::Message(&CONTAINER_STATE_TERMINATED)),
    ],
};

pub(super) static VOLUME_MOUNT_STATUS: Message = Message {
    name: "core.v1.VolumeMountStatus",
    fields: &[
        req(1, "name", T::String),
        req(2, "mountPath", T::String),
        omit(3, "readOnly", T::Bool),
        opt(4, "recursiveReadOnly", T::String),
    ],
};

pub(super) static LINUX_CONTAINER_USER: Message = Message {
    name: "core.v1.LinuxContainerUser",
    fields: &[req(1, "uid", T::Int64), req(2, "gid", T::Int64), list(3, "supplementalGroups", T::Int64)],
};

pub(super) static CONTAINER_USER: Message =
    Message { name: "core.v1.ContainerUser", fields: &[opt(1, "linux", T::Message(&LINUX_CONTAINER_USER))] };

pub(super) static RESOURCE_HEALTH: Message = Message {
    name: "core.v1.ResourceHealth",
    fields: &[req(1, "resourceID", T::String), omit(2, "health", T::String)],
};

pub(super) static RESOURCE_STATUS: Message = Message {
    name: "core.v1.ResourceStatus",
    fields: &[req(1, "name", T::String), list(2, "resources", T::Message(&RESOURCE_HEALTH))],
};

pub(super) static CONTAINER_STATUS: Message = Message {
    name: "core.v1.ContainerStatus",
    fields: &[
        req(1, "name", T::String),
        omit(2, "state", T::Message(&CONTAINER_STATE)),
        omit(3, "lastState", T::Message(&CONTAINER_STATE)),
        req(4, "ready", T::Bool),
        req(5, "restartCount", T::Int32),
        req(6, "image", T::String),
        req(7, "imageID", T::String),
        omit(8, "containerID", T::String),
        opt(9, "started", T::Bool),
        omit(10, "allocatedResources", T::Map(&T::Quantity)),
        opt(11, "resources", T::Message(&RESOURCE_REQUIREMENTS)),
        list(12, "volumeMounts", T::Message(&VOLUME_MOUNT_STATUS)),
        opt(13, "user", T::Message(&CONTAINER_USER)),
        list(14, "allocatedResourcesStatus", T::Message(&RESOURCE_STATUS)),
        opt(15, "stopSignal", T::String),
    ],
};

pub(super) static POD_RESOURCE_CLAIM_STATUS: Message = Message {
    name: "core.v1.PodResourceClaimStatus",
    fields: &[req(1, "name", T::String), opt(2, "resourceClaimName", T::String)],
};

pub(super) static POD_STATUS: Message = Message {
    name: "core.v1.PodStatus",
    fields: &[
        omit(17, "observedGeneration", T::Int64),
        omit(1, "phase", T::String),
        list(2, "conditions", T::Message(&POD_CONDITION)),
        omit(3, "message", T::String),
        omit(4, "reason", T::String),
        omit(11, "nominatedNodeName", T::String),
        omit(5, "hostIP", T::String),
        list(16, "hostIPs", T::Message(&HOST_IP)),
        omit(6, "podIP", T::String),
        list(12, "podIPs", T::Message(&POD_IP)),
        opt(7, "startTime", T::Time),
        list(10, "initContainerStatuses", T::Message(&CONTAINER_STATUS)),
        list(8, "containerStatuses", T::Message(&CONTAINER_STATUS)),
        omit(9, "qosClass", T::String),
        list(13, "ephemeralContainerStatuses", T::Message(&CONTAINER_STATUS)),
        omit(14, "resize", T::String),
        list(15, "resourceClaimStatuses", T::Message(&POD_RESOURCE_CLAIM_STATUS)),
    ],
};

pub(super) static POD: Message = Message {
    name: "core.v1.Pod",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        omit(2, "spec", T::Message(&POD_SPEC)),
        omit(3, "status", T::Message(&POD_STATUS)),
    ],
};

pub(super) static TAINT: Message = Message {
    name: "core.v1.Taint",
    fields: &[
        req(1, "key", T::String),
        omit(2, "value", T::String),
        req(3, "effect", T::String),
        opt(4, "timeAdded", T::Time),
    ],
};

pub(super) static CONFIG_MAP_NODE_CONFIG_SOURCE: Message = Message {
    name: "core.v1.ConfigMapNodeConfigSource",
    fields: &[
        req(1, "namespace", T::String),
        req(2, "name", T::String),
        omit(3, "uid", T::String),
        omit(4, "resourceVersion", T::String),
        req(5, "kubeletConfigKey", T::String),
    ],
};

pub(super) static NODE_CONFIG_SOURCE: Message = Message {
    name: "core.v1.NodeConfigSource",
    fields: &[opt(2, "configMap", T::Message(&CONFIG_MAP_NODE_CONFIG_SOURCE))],
};

pub(super) static NODE_SPEC: Message = Message {
    name: "core.v1.NodeSpec",
    fields: &[
        omit(1, "podCIDR", T::String),
        list(7, "podCIDRs", T::String),
        omit(3, "providerID", T::String),
        omit(4, "unschedulable", T::Bool),
        list(5, "taints", T::Message(&TAINT)),
        opt(6, "configSource", T::Message(&NODE_CONFIG_SOURCE)),
        omit(2, "externalID", T::String),
    ],
};

pub(super) static NODE_CONDITION: Message = Message {
    name: "core.v1.NodeCondition",
    fields: &[
        req(1, "type", T::String),
        req(2, "status", T::String),
        omit(3, "lastHeartbeatTime", T::Time),
        omit(4, "lastTransitionTime", T::Time),
        omit(5, "reason", T::String),
        omit(6, "message", T::String),
    ],
};

pub(super) static NODE_ADDRESS: Message =
    Message { name: "core.v1.NodeAddress", fields: &[req(1, "type", T::String), req(2, "address", T::String)] };

pub(super) static DAEMON_ENDPOINT: Message =
    Message { name: "core.v1.DaemonEndpoint", fields: &[req(1, "Port", T::Int32)] };

pub(super) static NODE_DAEMON_ENDPOINTS: Message = Message {
    name: "core.v1.NodeDaemonEndpoints",
    fields: &[omit(1, "kubeletEndpoint", T::Message(&DAEMON_ENDPOINT))],
};

pub(super) static NODE_SWAP_STATUS: Message =
    Message { name: "core.v1.NodeSwapStatus", fields: &[opt(1, "capacity", T::Int64)] };

pub(super) static NODE_SYSTEM_INFO: Message = Message {
    name: "core.v1.NodeSystemInfo",
    fields: &[
        req(1, "machineID", T::String),
        req(2, "systemUUID", T::String),
        req(3, "bootID", T::String),
        req(4, "kernelVersion", T::String),
        req(5, "osImage", T::String),
        req(6, "containerRuntimeVersion", T::String),
        req(7, "kubeletVersion", T::String),
        req(8, "kubeProxyVersion", T::String),
        req(9, "operatingSystem", T::String),
        req(10, "architecture", T::String),
        opt(11, "swap", T::Message(&NODE_SWAP_STATUS)),
    ],
};

pub(super) static CONTAINER_IMAGE: Message =
    Message { name: "core.v1.ContainerImage", fields: &[list(1, "names", T::String), omit(2, "sizeBytes", T::Int64)] };

pub(super) static ATTACHED_VOLUME: Message =
    Message { name: "core.v1.AttachedVolume", fields: &[req(1, "name", T::String), req(2, "devicePath", T::String)] };

pub(super) static NODE_CONFIG_STATUS: Message = Message {
    name: "core.v1.NodeConfigStatus",
    fields: &[
        opt(1, "assigned", T::Message(&NODE_CONFIG_SOURCE)),
        opt(2, "active", T::Message(&NODE_CONFIG_SOURCE)),
        opt(3, "lastKnownGood", T::Message(&NODE_CONFIG_SOURCE)),
        omit(4, "error", T::String),
    ],
};

pub(super) static NODE_RUNTIME_HANDLER_FEATURES: Message = Message {
    name: "core.v1.NodeRuntimeHandlerFeatures",
    fields: &[opt(1, "recursiveReadOnlyMounts", T::Bool), opt(2, "userNamespaces", T::Bool)],
};

pub(super) static NODE_RUNTIME_HANDLER: Message = Message {
    name: "core.v1.NodeRuntimeHandler",
    fields: &[omit(1, "name", T::String), opt(2, "features", T::Message(&NODE_RUNTIME_HANDLER_FEATURES))],
};

pub(super) static NODE_FEATURES: Message =
    Message { name: "core.v1.NodeFeatures", fields: &[opt(1, "supplementalGroupsPolicy", T::Bool)] };

pub(super) static NODE_STATUS: Message = Message {
    name: "core.v1.NodeStatus",
    fields: &[
        omit(1, "capacity", T::Map(&T::Quantity)),
        omit(2, "allocatable", T::Map(&T::Quantity)),
        omit(3, "phase", T::String),
        list(4, "conditions", T::Message(&NODE_CONDITION)),
        list(5, "addresses", T::Message(&NODE_ADDRESS)),
        omit(6, "daemonEndpoints", T::Message(&NODE_DAEMON_ENDPOINTS)),
        omit(7, "nodeInfo", T::Message(&NODE_SYSTEM_INFO)),
        list(8, "images", T::Message(&CONTAINER_IMAGE)),
        list(9, "volumesInUse", T::String),
        list(10, "volumesAttached", T::Message(&ATTACHED_VOLUME)),
        opt(11, "config", T::Message(&NODE_CONFIG_STATUS)),
        list(12, "runtimeHandlers", T::Message(&NODE_RUNTIME_HANDLER)),
        opt(13, "features", T::Message(&NODE_FEATURES)),
    ],
};

pub(super) static NODE: Message = Message {
    name: "core.v1.Node",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        omit(2, "spec", T::Message(&NODE_SPEC)),
        omit(3, "status", T::Message(&NODE_STATUS)),
    ],
};

pub(super) static SECRET: Message = Message {
    name: "core.v1.Secret",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        opt(5, "immutable", T::Bool),
        omit(2, "data", T::Map(&T::Bytes)),
        omit(4, "stringData", T::Map(&T::String)),
        omit(3, "type", T::String),
    ],
};

pub(super) static CONFIG_MAP: Message = Message {
    name: "core.v1.ConfigMap",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        opt(4, "immutable", T::Bool),
        omit(2, "data", T::Map(&T::String)),
        omit(3, "binaryData", T::Map(&T::Bytes)),
    ],
};

pub(super) static EVENT_SOURCE: Message =
    Message { name: "core.v1.EventSource", fields: &[omit(1, "component", T::String), omit(2, "host", T::String)] };

pub(super) static EVENT_SERIES: Message = Message {
    name: "core.v1.EventSeries",
    fields: &[omit(1, "count", T::Int32), omit(2, "lastObservedTime", T::MicroTime)],
};

pub(super) static EVENT: Message = Message {
    name: "core.v1.Event",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        req(2, "involvedObject", T::Message(&OBJECT_REFERENCE)),
        omit(3, "reason", T::String),
        omit(4, "message", T::String),
        omit(5, "source", T::Message(&EVENT_SOURCE)),
        omit(6, "firstTimestamp", T::Time),
        omit(7, "lastTimestamp", T::Time),
        omit(8, "count", T::Int32),
        omit(9, "type", T::String),
        omit(10, "eventTime", T::MicroTime),
        opt(11, "series", T::Message(&EVENT_SERIES)),
        omit(12, "action", T::String),
        opt(13, "related", T::Message(&OBJECT_REFERENCE)),
        omit(14, "reportingComponent", T::String),
        omit(15, "reportingInstance", T::String),
    ],
};

pub(super) static SERVICE_ACCOUNT: Message = Message {
    name: "core.v1.ServiceAccount",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        list(2, "secrets", T::Message(&OBJECT_REFERENCE)),
        list(3, "imagePullSecrets", T::Message(&LOCAL_OBJECT_REFERENCE)),
        opt(4, "automountServiceAccountToken", T::Bool),
    ],
};

pub(super) static BINDING: Message = Message {
    name: "core.v1.Binding",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        req(2, "target", T::Message(&OBJECT_REFERENCE)),
    ],
};

pub(super) static POD_TEMPLATE_SPEC: Message = Message {
    name: "core.v1.PodTemplateSpec",
    fields: &[omit(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)), omit(2, "spec", T::Message(&POD_SPEC))],
};

pub(super) static PERSISTENT_VOLUME_CLAIM_CONDITION: Message = Message {
    name: "core.v1.PersistentVolumeClaimCondition",
    fields: &[
        req(1, "type", T::String),
        req(2, "status", T::String),
        omit(3, "lastProbeTime", T::Time),
        omit(4, "lastTransitionTime", T::Time),
        omit(5, "reason", T::String),
        omit(6, "message", T::String),
    ],
};

pub(super) static MODIFY_VOLUME_STATUS: Message = Message {
    name: "core.v1.ModifyVolumeStatus",
    fields: &[omit(1, "targetVolumeAttributesClassName", T::String), req(2, "status", T::String)],
};

pub(super) static PERSISTENT_VOLUME_CLAIM_STATUS: Message = Message {
    name: "core.v1.PersistentVolumeClaimStatus",
    fields: &[
        omit(1, "phase", T::String),
        list(2, "accessModes", T::String),
        omit(3, "capacity", T::Map(&T::Quantity)),
        list(4, "conditions", T::Message(&PERSISTENT_VOLUME_CLAIM_CONDITION)),
        omit(5, "allocatedResources", T::Map(&T::Quantity)),
        omit(7, "allocatedResourceStatuses", T::Map(&T::String)),
        opt(8, "currentVolumeAttributesClassName", T::String),
        opt(9, "modifyVolumeStatus", T::Message(&MODIFY_VOLUME_STATUS)),
    ],
};

pub(super) static PERSISTENT_VOLUME_CLAIM: Message = Message {
    name: "core.v1.PersistentVolumeClaim",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        omit(2, "spec", T::Message(&PERSISTENT_VOLUME_CLAIM_SPEC)),
        omit(3, "status", T::Message(&PERSISTENT_VOLUME_CLAIM_STATUS)),
    ],
};

pub(super) static REPLICATION_CONTROLLER_SPEC: Message = Message {
    name: "core.v1.ReplicationControllerSpec",
    fields: &[
        opt(1, "replicas", T::Int32),
        omit(4, "minReadySeconds", T::Int32),
        omit(2, "selector", T::Map(&T::String)),
        opt(3, "template", T::Message(&POD_TEMPLATE_SPEC)),
    ],
};

pub(super) static REPLICATION_CONTROLLER_CONDITION: Message = Message {
    name: "core.v1.ReplicationControllerCondition",
    fields: &[
        req(1, "type", T::String),
        req(2, "status", T::String),
        omit(3, "lastTransitionTime", T::Time),
        omit(4, "reason", T::String),
        omit(5, "message", T::String),
    ],
};

pub(super) static REPLICATION_CONTROLLER_STATUS: Message = Message {
    name: "core.v1.ReplicationControllerStatus",
    fields: &[
        req(1, "replicas", T::Int32),
        omit(2, "fullyLabeledReplicas", T::Int32),
        omit(4, "readyReplicas", T::Int32),
        omit(5, "availableReplicas", T::Int32),
        omit(3, "observedGeneration", T::Int64),
        list(6, "conditions", T::Message(&REPLICATION_CONTROLLER_CONDITION)),
    ],
};

pub(super) static REPLICATION_CONTROLLER: Message = Message {
    name: "core.v1.ReplicationController",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        omit(2, "spec", T::Message(&REPLICATION_CONTROLLER_SPEC)),
        omit(3, "status", T::Message(&REPLICATION_CONTROLLER_STATUS)),
    ],
};

// Generated from the protobuf descriptors embedded in kubectl 1.33 (`k8s.io/api/apps/v1/generated.proto`),
// with field presence from the gogoproto `nullable` options and required fields from k8s-openapi.
// Regenerate rather than hand-edit when adding types.

use super::{Message, T, list, omit, opt, req};

pub(super) static ROLLING_UPDATE_DEPLOYMENT: Message = Message {
    name: "apps.v1.RollingUpdateDeployment",
    fields: &[opt(1, "maxUnavailable", T::IntOrString), opt(2, "maxSurge", T::IntOrString)],
};

pub(super) static DEPLOYMENT_STRATEGY: Message = Message {
    name: "apps.v1.DeploymentStrategy",
    fields: &[omit(1, "type", T::String), opt(2, "rollingUpdate", T::Message(&ROLLING_UPDATE_DEPLOYMENT))],
};

pub(super) static DEPLOYMENT_SPEC: Message = Message {
    name: "apps.v1.DeploymentSpec",
    fields: &[
        opt(1, "replicas", T::Int32),
        opt(2, "selector", T::Message(&super::meta_v1::LABEL_SELECTOR)),
        req(3, "template", T::Message(&super::core_v1::POD_TEMPLATE_SPEC)),
        omit(4, "strategy", T::Message(&DEPLOYMENT_STRATEGY)),
        omit(5, "minReadySeconds", T::Int32),
        opt(6, "revisionHistoryLimit", T::Int32),
        omit(7, "paused", T::Bool),
        opt(9, "progressDeadlineSeconds", T::Int32),
    ],
};

pub(super) static DEPLOYMENT_CONDITION: Message = Message {
    name: "apps.v1.DeploymentCondition",
    fields: &[
        req(1, "type", T::String),
        req(2, "status", T::String),
        omit(6, "lastUpdateTime", T::Time),
        omit(7, "lastTransitionTime", T::Time),
        omit(4, "reason", T::String),
        omit(5, "message", T::String),
    ],
};

pub(super) static DEPLOYMENT_STATUS: Message = Message {
    name: "apps.v1.DeploymentStatus",
    fields: &[
        omit(1, "observedGeneration", T::Int64),
        omit(2, "replicas", T::Int32),
        omit(3, "updatedReplicas", T::Int32),
        omit(7, "readyReplicas", T::Int32),
        omit(4, "availableReplicas", T::Int32),
        omit(5, "unavailableReplicas", T::Int32),
        opt(9, "terminatingReplicas", T::Int32),
        list(6, "conditions", T::Message(&DEPLOYMENT_CONDITION)),
        opt(8, "collisionCount", T::Int32),
    ],
};

pub(super) static DEPLOYMENT: Message = Message {
    name: "apps.v1.Deployment",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        omit(2, "spec", T::Message(&DEPLOYMENT_SPEC)),
        omit(3, "status", T::Message(&DEPLOYMENT_STATUS)),
    ],
};

pub(super) static REPLICA_SET_SPEC: Message = Message {
    name: "apps.v1.ReplicaSetSpec",
    fields: &[
        opt(1, "replicas", T::Int32),
        omit(4, "minReadySeconds", T::Int32),
        opt(2, "selector", T::Message(&super::meta_v1::LABEL_SELECTOR)),
        omit(3, "template", T::Message(&super::core_v1::POD_TEMPLATE_SPEC)),
    ],
};

pub(super) static REPLICA_SET_CONDITION: Message = Message {
    name: "apps.v1.ReplicaSetCondition",
    fields: &[
        req(1, "type", T::String),
        req(2, "status", T::String),
        omit(3, "lastTransitionTime", T::Time),
        omit(4, "reason", T::String),
        omit(5, "message", T::String),
    ],
};

pub(super) static REPLICA_SET_STATUS: Message = Message {
    name: "apps.v1.ReplicaSetStatus",
    fields: &[
        req(1, "replicas", T::Int32),
        omit(2, "fullyLabeledReplicas", T::Int32),
        omit(4, "readyReplicas", T::Int32),
        omit(5, "availableReplicas", T::Int32),
        opt(7, "terminatingReplicas", T::Int32),
        omit(3, "observedGeneration", T::Int64),
        list(6, "conditions", T::Message(&REPLICA_SET_CONDITION)),
    ],
};

pub(super) static REPLICA_SET: Message = Message {
    name: "apps.v1.ReplicaSet",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        omit(2, "spec", T::Message(&REPLICA_SET_SPEC)),
        omit(3, "status", T::Message(&REPLICA_SET_STATUS)),
    ],
};

pub(super) static ROLLING_UPDATE_STATEFUL_SET_STRATEGY: Message = Message {
    name: "apps.v1.RollingUpdateStatefulSetStrategy",
    fields: &[opt(1, "partition", T::Int32), opt(2, "maxUnavailable", T::IntOrString)],
};

pub(super) static STATEFUL_SET_UPDATE_STRATEGY: Message = Message {
    name: "apps.v1.StatefulSetUpdateStrategy",
    fields: &[omit(1, "type", T::String), opt(2, "rollingUpdate", T::Message(&ROLLING_UPDATE_STATEFUL_SET_STRATEGY))],
};

pub(super) static STATEFUL_SET_PERSISTENT_VOLUME_CLAIM_RETENTION_POLICY: Message = Message {
    name: "apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicy",
    fields: &[omit(1, "whenDeleted", T::String), omit(2, "whenScaled", T::String)],
};

pub(super) static STATEFUL_SET_ORDINALS: Message =
    Message { name: "apps.v1.StatefulSetOrdinals", fields: &[omit(1, "start", T::Int32)] };

pub(super) static STATEFUL_SET_SPEC: Message = Message {
    name: "apps.v1.StatefulSetSpec",
    fields: &[
        opt(1, "replicas", T::Int32),
        opt(2, "selector", T::Message(&super::meta_v1::LABEL_SELECTOR)),
        req(3, "template", T::Message(&super::core_v1::POD_TEMPLATE_SPEC)),
        list(4, "volumeClaimTemplates", T::Message(&super::core_v1::PERSISTENT_VOLUME_CLAIM)),
        omit(5, "serviceName", T::String),
        omit(6, "podManagementPolicy", T::String),
        omit(7, "updateStrategy", T::Message(&STATEFUL_SET_UPDATE_STRATEGY)),
        opt(8, "revisionHistoryLimit", T::Int32),
        omit(9, "minReadySeconds", T::Int32),
        opt(
            10,
            "persistentVolumeClaimRetentionPolicy",
            T::Message(&STATEFUL_SET_PERSISTENT_VOLUME_CLAIM_RETENTION_POLICY),
        ),
        opt(11, "ordinals", T::Message(&STATEFUL_SET_ORDINALS)),
    ],
};

pub(super) static STATEFUL_SET_CONDITION: Message = Message {
    name: "apps.v1.StatefulSetCondition",
    fields: &[
        req(1, "type", T::String),
        req(2, "status", T::String),
        omit(3, "lastTransitionTime", T::Time),
        omit(4, "reason", T::String),
        omit(5, "message", T::String),
    ],
};

pub(super) static STATEFUL_SET_STATUS: Message = Message {
    name: "apps.v1.StatefulSetStatus",
    fields: &[
        omit(1, "observedGeneration", T::Int64),
        req(2, "replicas", T::Int32),
        omit(3, "readyReplicas", T::Int32),
        omit(4, "currentReplicas", T::Int32),
        omit(5, "updatedReplicas", T::Int32),
        omit(6, "currentRevision", T::String),
        omit(7, "updateRevision", T::String),
        opt(9, "collisionCount", T::Int32),
        list(10, "conditions", T::Message(&STATEFUL_SET_CONDITION)),
        omit(11, "availableReplicas", T::Int32),
    ],
};

pub(super) static STATEFUL_SET: Message = Message {
    name: "apps.v1.StatefulSet",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        omit(2, "spec", T::Message(&STATEFUL_SET_SPEC)),
        omit(3, "status", T::Message(&STATEFUL_SET_STATUS)),
    ],
};

pub(super) static ROLLING_UPDATE_DAEMON_SET: Message = Message {
    name: "apps.v1.RollingUpdateDaemonSet",
    fields: &[opt(1, "maxUnavailable", T::IntOrString), opt(2, "maxSurge", T::IntOrString)],
};

pub(super) static DAEMON_SET_UPDATE_STRATEGY: Message = Message {
    name: "apps.v1.DaemonSetUpdateStrategy",
    fields: &[omit(1, "type", T::String), opt(2, "rollingUpdate", T::Message(&ROLLING_UPDATE_DAEMON_SET))],
};

pub(super) static DAEMON_SET_SPEC: Message = Message {
    name: "apps.v1.DaemonSetSpec",
    fields: &[
        opt(1, "selector", T::Message(&super::meta_v1::LABEL_SELECTOR)),
        req(2, "template", T::Message(&super::core_v1::POD_TEMPLATE_SPEC)),
        omit(3, "updateStrategy", T::Message(&DAEMON_SET_UPDATE_STRATEGY)),
        omit(4, "minReadySeconds", T::Int32),
        opt(6, "revisionHistoryLimit", T::Int32),
    ],
};

pub(super) static DAEMON_SET_CONDITION: Message = Message {
    name: "apps.v1.DaemonSetCondition",
    fields: &[
        req(1, "type", T::String),
        req(2, "status", T::String),
        omit(3, "lastTransitionTime", T::Time),
        omit(4, "reason", T::String),
        omit(5, "message", T::String),
    ],
};

pub(super) static DAEMON_SET_STATUS: Message = Message {
    name: "apps.v1.DaemonSetStatus",
    fields: &[
        req(1, "currentNumberScheduled", T::Int32),
        req(2, "numberMisscheduled", T::Int32),
        req(3, "desiredNumberScheduled", T::Int32),
        req(4, "numberReady", T::Int32),
        omit(5, "observedGeneration", T::Int64),
        omit(6, "updatedNumberScheduled", T::Int32),
        omit(7, "numberAvailable", T::Int32),
        omit(8, "numberUnavailable", T::Int32),
        opt(9, "collisionCount", T::Int32),
        list(10, "conditions", T::Message(&DAEMON_SET_CONDITION)),
    ],
};

pub(super) static DAEMON_SET: Message = Message {
    name: "apps.v1.DaemonSet",
    fields: &[
        req(1, "metadata", T::Message(&super::meta_v1::OBJECT_META)),
        omit(2, "spec", T::Message(&DAEMON_SET_SPEC)),
        omit(3, "status", T::Message(&DAEMON_SET_STATUS)),
    ],
};

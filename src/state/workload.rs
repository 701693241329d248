//! Workloads in the replicated state (Deployments, ReplicaSets, DaemonSets)
//! and the controllers' writes.
//!
//! Every controller write is checked again when it is applied: against the
//! owner's uid, and for a pod creation against the owner's count of live
//! pods (or, for a DaemonSet, its pod on that node). A decision taken on a
//! stale view, by an old leader or a pass that raced its own earlier write,
//! is dropped instead of starting a second pod for one replica.

use crate::api::manifest::Pod;
pub use crate::api::manifest::{Kind, Workload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A condition, as Kubernetes' `DeploymentCondition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Available`, `Progressing`, `ReplicaFailure`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason.
    pub reason: String,
    /// For people.
    pub message: String,
    /// Unix ms of the last update.
    pub last_update_ms: u64,
    /// Unix ms the status last flipped.
    pub last_transition_ms: u64,
}

/// What the controllers observed of a workload (Kubernetes' status fields
/// of the three kinds; each kind fills its own).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// The generation the controller acted on.
    #[serde(default)]
    pub observed_generation: u64,
    /// Live pods (Deployment: of every ReplicaSet).
    #[serde(default)]
    pub replicas: i64,
    /// Deployment: pods of the current template.
    #[serde(default)]
    pub updated_replicas: i64,
    /// Pods Ready.
    #[serde(default)]
    pub ready_replicas: i64,
    /// Pods Ready for `minReadySeconds`.
    #[serde(default)]
    pub available_replicas: i64,
    /// Deployment: desired minus available.
    #[serde(default)]
    pub unavailable_replicas: i64,
    /// DaemonSet: nodes that should run the pod.
    #[serde(default)]
    pub desired_number_scheduled: i64,
    /// DaemonSet: nodes that should run it and do.
    #[serde(default)]
    pub current_number_scheduled: i64,
    /// DaemonSet: nodes that run it and should not.
    #[serde(default)]
    pub number_misscheduled: i64,
    /// DaemonSet: nodes with the current template's pod.
    #[serde(default)]
    pub updated_number_scheduled: i64,
    /// Conditions (Deployment).
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

impl WorkloadStatus {
    /// The condition of that type.
    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }
}

/// A workload as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadObject {
    /// The manifest (without status).
    pub workload: Workload,
    /// Unique id of this incarnation.
    pub uid: String,
    /// Unix ms of creation.
    pub created_ms: u64,
    /// Bumped on every change of the spec.
    pub generation: u64,
    /// What the controllers observed.
    #[serde(default)]
    pub status: WorkloadStatus,
}

impl WorkloadObject {
    /// `(kind, namespace, name)`.
    pub fn key(&self) -> (Kind, String, String) {
        let m = self.workload.metadata();
        (self.workload.kind(), m.namespace().to_string(), m.name.clone())
    }

    /// `deployment/web`.
    pub fn object(&self) -> String {
        format!("{}/{}", self.workload.kind().lower(), self.workload.metadata().name)
    }
}

/// How a delete treats what the object owns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cascade {
    /// Dependents are deleted with it (kubectl's default, `background`).
    #[default]
    Background,
    /// Dependents stay, without the owner reference.
    Orphan,
}

/// One write of a controller pass; see the module doc for the checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Op {
    /// Create a pod owned by a ReplicaSet or DaemonSet.
    CreatePod {
        /// The pod, named and labelled, with its owner reference.
        pod: Box<Pod>,
        /// Its uid.
        uid: String,
    },
    /// Delete a pod the controller decided to remove.
    DeletePod {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The incarnation decided on.
        uid: String,
        /// Event reason (`SuccessfulDelete`, `TaintManagerEviction`...).
        reason: String,
        /// The event's object (the controller's, or the pod's).
        object: String,
        /// For people.
        message: String,
    },
    /// Create a workload owned by another (a Deployment's ReplicaSet).
    CreateWorkload {
        /// The manifest, with its owner reference.
        workload: Box<Workload>,
        /// Its uid.
        uid: String,
    },
    /// Set a ReplicaSet's replicas and annotations (scaling, revisions).
    ScaleReplicaSet {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The incarnation decided on.
        uid: String,
        /// New `spec.replicas`.
        replicas: i64,
        /// Annotations to set.
        annotations: BTreeMap<String, String>,
        /// The Deployment, for the event (`deployment/web`), if any.
        by: Option<String>,
    },
    /// Delete an old ReplicaSet past the revision history limit.
    DeleteWorkload {
        /// Kind.
        kind: Kind,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The incarnation decided on.
        uid: String,
    },
    /// Record what a controller observed.
    Status {
        /// Kind.
        kind: Kind,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The incarnation.
        uid: String,
        /// The new status.
        status: WorkloadStatus,
    },
}

/// Annotation holding a ReplicaSet's revision.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Label holding the hash of a ReplicaSet's pod template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Label holding the hash of a DaemonSet pod's template.
pub const REVISION_HASH: &str = "controller-revision-hash";

//! The pod scheduler: a pure function from a cluster snapshot and the pending
//! pods to one decision per pod.
//!
//! # Pipeline
//! The stages and their order are Kubernetes' default plugins. For each
//! pending pod, in the order given:
//!
//! 1. A pod with `nodeName` is bound to that node if it exists, with no filter
//!    (as in Kubernetes, where the kubelet then admits or rejects it).
//! 2. Filters run on every node and stop at the first that fails
//!    (`filter/`): cordoned, untolerated NoSchedule/NoExecute taints, node
//!    selector and required node affinity, then cpu and memory requests
//!    against what is left. As in Kubernetes, a node that is not ready
//!    carries the `node.kubernetes.io/not-ready` taints, and a pod that
//!    tolerates them (or `node.kubernetes.io/unschedulable`, for a cordoned
//!    node) may still go there, as DaemonSet pods do.
//! 3. Each node left gets four 0–100 scores, summed with Kubernetes' default
//!    plugin weights (`score/`).
//! 4. The highest total wins, ties going to the smallest node name. The pod's
//!    requests then count against that node for the pods after it.
//!
//! When no node passes, the decision is `Unschedulable` with Kubernetes'
//! message, such as `0/3 nodes are available: 1 Insufficient cpu, 2 node(s)
//! were unschedulable.`
//!
//! # Properties
//! There is no I/O, no clock, no randomness and no hash-map iteration. The
//! same input gives the same output, and the order of `snapshot.nodes` does
//! not matter (node names are assumed unique). The cost is
//! O(nodes + placed) once, then O(nodes) per pod: each node keeps running
//! totals of what is placed on it.

mod filter;
mod message;
mod pipeline;
mod requests;
mod score;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use crate::api::manifest::TaintEffect;
pub use requests::requests_of;

use crate::api::manifest::PodSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the scheduler knows about one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// The node's unique name.
    pub name: String,
    /// Labels matched by `nodeSelector` and node affinity.
    pub labels: BTreeMap<String, String>,
    /// The zone pods are spread over; `None` takes no part in spreading.
    pub zone: Option<String>,
    /// Taints, in the order the node lists them.
    pub taints: Vec<Taint>,
    /// Millicores pods may request in total.
    pub allocatable_cpu_milli: u64,
    /// Bytes of memory pods may request in total.
    pub allocatable_memory_bytes: u64,
    /// False when the node is not ready: it then has the not-ready taints.
    pub ready: bool,
    /// True when the node is cordoned (Kubernetes' `spec.unschedulable`).
    pub cordoned: bool,
}

/// A node taint: pods that do not tolerate it are kept off the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    /// The taint key, a label key.
    pub key: String,
    /// The taint value, possibly empty.
    #[serde(default)]
    pub value: String,
    /// What the taint does to pods that do not tolerate it.
    pub effect: TaintEffect,
}

/// The cluster as the scheduler sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Every node, schedulable or not.
    pub nodes: Vec<NodeInfo>,
    /// Pods already bound to a node.
    pub placed: Vec<PlacedPod>,
}

/// A pod already bound to a node, by its requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacedPod {
    /// The node's name; a pod on an unknown node is ignored.
    pub node: String,
    /// The pod's effective requests ([`requests_of`]).
    pub requests: Requests,
    /// The uid of its controller (ReplicaSet, DaemonSet), for spreading.
    #[serde(default)]
    pub owner: Option<String>,
    /// Its namespace and labels, for `topologySpreadConstraints`.
    #[serde(default)]
    pub namespace: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// No labels, for pods without any.
pub static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// CPU and memory a pod requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Requests {
    /// Millicores.
    pub cpu_milli: u64,
    /// Bytes.
    pub memory_bytes: u64,
}

/// A pod waiting for a node.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingPod<'a> {
    /// (namespace, name).
    pub key: (String, String),
    /// The pod's specification.
    pub spec: &'a PodSpec,
    /// The uid of its controller: replicas of one owner spread over nodes and zones.
    pub owner: Option<&'a str>,
    /// Its labels, for `topologySpreadConstraints` ([`NO_LABELS`] when none).
    pub labels: &'a BTreeMap<String, String>,
}

/// The scheduler's answer for one pending pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Run the pod on `node`.
    Bind {
        /// (namespace, name) of the pod.
        key: (String, String),
        /// The chosen node.
        node: String,
    },
    /// No node can take the pod now.
    Unschedulable {
        /// (namespace, name) of the pod.
        key: (String, String),
        /// Kubernetes' wording, such as `0/3 nodes are available: 3 Insufficient cpu.`
        message: String,
    },
}

impl Decision {
    /// (namespace, name) of the pod decided on.
    pub fn key(&self) -> &(String, String) {
        match self {
            Decision::Bind { key, .. } | Decision::Unschedulable { key, .. } => key,
        }
    }
}

/// Decides a node for each pending pod, in order; each placement counts
/// against its node for the pods after it. Returns one decision per pod, in
/// the same order.
pub fn schedule(snapshot: &Snapshot, pending: &[PendingPod<'_>]) -> Vec<Decision> {
    let mut cluster = pipeline::Cluster::new(snapshot);
    cluster.track_labels = pending.iter().any(|p| !p.spec.topology_spread_constraints.is_empty());
    pending.iter().map(|pod| cluster.place(pod)).collect()
}

/// Whether a pod with `spec` may run on `node` by its state, taints, node
/// selector and required affinity, leaving resources aside (the
/// DaemonSet controller's question).
pub fn node_allows(spec: &PodSpec, node: &NodeInfo) -> bool {
    let view = pipeline::NodeView::new(node, None);
    filter::node_state::check(spec, node).is_ok()
        && filter::taints::check(spec, &view).is_ok()
        && filter::selector::matches(spec, node)
        && filter::affinity::required_matches(spec, node)
}

//! The workload controllers: pure functions from what the cluster wants
//! (workload objects) and what it has (pods, nodes and their health) to
//! writes. The leader runs [`reconcile`] after each burst of applied changes
//! and on a tick (`leader/control.rs`) and commits its ops as one Raft
//! entry; nothing here does I/O or reads a clock.
//!
//! One file per kind, as Kubernetes' controllers:
//! - `replicaset.rs`: keeps `replicas` live pods, deletes the least useful
//!   extra ones first;
//! - `deployment.rs`: one ReplicaSet per template revision, rolling update
//!   (`maxSurge`, `maxUnavailable`) or recreate, pause, history, progress;
//! - `daemonset.rs`: one pod on every node its scheduling rules allow,
//!   rolling update with `maxUnavailable`;
//! - `eviction.rs`: pods of controllers on a node that is Down past their
//!   `node.kubernetes.io/unreachable` toleration are deleted, so their
//!   controllers replace them elsewhere.
//!
//! A pass decides on one consistent snapshot; the state checks every write
//! again when it is applied (`state/apply_workload.rs`), so a stale pass
//! never adds a pod for a replica that already has one.

pub mod daemonset;
pub mod deployment;
pub mod eviction;
pub mod names;
pub mod pods;
pub mod replicaset;

#[cfg(test)]
mod tests;

use crate::state::workload::{Kind, Op, Workload, WorkloadObject, WorkloadStatus};
use crate::state::{NodeObject, PodObject};
use names::Names;
use std::collections::BTreeMap;

/// A node and what the leader knows of its health.
#[derive(Debug, Clone)]
pub struct NodeHealth {
    /// The node object.
    pub node: NodeObject,
    /// Ready in gossip (the leader's own node is always ready).
    pub ready: bool,
    /// Unix ms since when the leader has seen it Down or Left, if it is.
    pub down_since_ms: Option<u64>,
}

/// One consistent view of the cluster.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// Every workload.
    pub workloads: &'a [WorkloadObject],
    /// Every pod.
    pub pods: &'a [PodObject],
    /// Every node.
    pub nodes: &'a [NodeHealth],
    /// The leader's clock, Unix ms.
    pub now_ms: u64,
}

/// Settings of the controllers.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long a Down node's controller pods stay before they are replaced
    /// elsewhere, when the pod does not say (its own toleration of
    /// `node.kubernetes.io/unreachable` wins).
    pub unreachable_toleration_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            unreachable_toleration_ms: eviction::DEFAULT_TOLERATION_MS,
        }
    }
}

/// Everything every controller wants done now. `seed` makes the names of
/// new pods and ReplicaSets.
pub fn reconcile(s: &Snapshot<'_>, settings: &Settings, seed: u64) -> Vec<Op> {
    let mut names = Names::new(seed);
    let mut by_owner: BTreeMap<&str, Vec<&PodObject>> = BTreeMap::new();
    for p in s.pods {
        if let Some(uid) = p.owner_uid() {
            by_owner.entry(uid).or_default().push(p);
        }
    }
    let mut rs_by_owner: BTreeMap<&str, Vec<&WorkloadObject>> = BTreeMap::new();
    for w in s.workloads {
        if let Some(o) = w.workload.metadata().controller() {
            rs_by_owner.entry(o.uid.as_str()).or_default().push(w);
        }
    }
    let no_pods = Vec::new();
    let mut ops = Vec::new();
    for w in s.workloads {
        let pods = by_owner.get(w.uid.as_str()).unwrap_or(&no_pods);
        match &w.workload {
            Workload::ReplicaSet(rs) => ops.extend(replicaset::reconcile(w, rs, pods, s, &mut names)),
            Workload::Deployment(d) => {
                let sets: Vec<deployment::Owned<'_>> = rs_by_owner
                    .get(w.uid.as_str())
                    .into_iter()
                    .flatten()
                    .filter_map(|o| match &o.workload {
                        Workload::ReplicaSet(rs) => Some(deployment::Owned {
                            object: o,
                            rs,
                            pods: by_owner.get(o.uid.as_str()).unwrap_or(&no_pods),
                        }),
                        _ => None,
                    })
                    .collect();
                ops.extend(deployment::reconcile(w, d, &sets, s.now_ms, &mut names));
            }
            Workload::DaemonSet(ds) => ops.extend(daemonset::reconcile(w, ds, pods, s, &mut names)),
        }
    }
    ops.extend(eviction::reconcile(s, settings));
    ops
}

/// A status write, only when the status changed.
pub(crate) fn status_op(w: &WorkloadObject, status: WorkloadStatus) -> Option<Op> {
    if w.status == status {
        return None;
    }
    let (kind, namespace, name): (Kind, String, String) = w.key();
    Some(Op::Status {
        kind,
        namespace,
        name,
        uid: w.uid.clone(),
        status,
    })
}

/// The owner reference a controller puts on what it creates.
pub(crate) fn owner_ref(w: &WorkloadObject) -> crate::api::manifest::OwnerReference {
    crate::api::manifest::OwnerReference {
        api_version: "apps/v1".into(),
        kind: w.workload.kind().as_str().into(),
        name: w.workload.metadata().name.clone(),
        uid: w.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The next time the clock alone changes a decision: a pod becoming
/// available after `minReadySeconds`, a progress deadline, an eviction.
pub fn next_wake(s: &Snapshot<'_>, settings: &Settings) -> Option<u64> {
    let mut wake = eviction::next_due(s, settings);
    let mut earlier = |t: Option<u64>| {
        if let Some(t) = t.filter(|&t| t > s.now_ms) {
            wake = Some(wake.map_or(t, |w| w.min(t)));
        }
    };
    for w in s.workloads {
        let min_ready = match &w.workload {
            Workload::Deployment(d) => {
                earlier(deployment::deadline(w, d));
                d.spec.min_ready_ms()
            }
            Workload::ReplicaSet(rs) => rs.spec.min_ready_seconds.unwrap_or(0).max(0) as u64 * 1000,
            Workload::DaemonSet(ds) => ds.spec.min_ready_seconds.unwrap_or(0).max(0) as u64 * 1000,
        };
        if min_ready > 0 {
            for p in s.pods.iter().filter(|p| p.owner_uid() == Some(w.uid.as_str())) {
                earlier(pods::available_at(p, min_ready, s.now_ms));
            }
        }
    }
    wake
}

//! Eviction from Down nodes, as Kubernetes' taint manager does for the
//! `node.kubernetes.io/unreachable:NoExecute` taint: once the leader has
//! seen a node Down (or Left) for as long as a pod tolerates it, the pod is
//! deleted, so its ReplicaSet starts a replacement elsewhere. The node, if
//! it comes back, sees the deletion in its replica and stops the pod.
//!
//! Only pods with a controlling owner are evicted: a bare pod has nothing
//! to replace it, and on an edge node that is merely cut off it is better
//! kept running. DaemonSet pods tolerate unreachable nodes and stay.
//! Kubernetes adds a 300 s toleration to every pod; Shoal's default is
//! [`DEFAULT_TOLERATION_MS`], because gossip already takes its suspicion
//! timeout (about 1.5 s) to call a node Down.

use super::{Settings, Snapshot};
use crate::api::manifest::{TaintEffect, TolerationOperator};
use crate::state::workload::Op;
use crate::state::PodObject;

/// How long a controller's pod stays on a Down node by default.
pub const DEFAULT_TOLERATION_MS: u64 = 1000;

/// The taint a Down node carries.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// How long `p` tolerates an unreachable node: `None` for ever.
pub fn toleration_ms(p: &PodObject, default_ms: u64) -> Option<u64> {
    let t = p.pod.spec.tolerations.iter().find(|t| {
        let key = t.key == UNREACHABLE || (t.key.is_empty() && t.operator == TolerationOperator::Exists);
        key && t.effect.is_none_or(|e| e == TaintEffect::NoExecute)
    });
    match t {
        None => Some(default_ms),
        Some(t) => t.toleration_seconds.map(|s| s.max(0) as u64 * 1000),
    }
}

/// Evictions due now.
pub fn reconcile(s: &Snapshot<'_>, settings: &Settings) -> Vec<Op> {
    let mut ops = Vec::new();
    for h in s.nodes {
        let Some(since) = h.down_since_ms else { continue };
        for p in s.pods.iter().filter(|p| p.node.as_deref() == Some(h.node.name.as_str())) {
            if p.deleting_ms.is_some() || p.pod.metadata.controller().is_none() {
                continue;
            }
            let Some(tolerate) = toleration_ms(p, settings.unreachable_toleration_ms) else {
                continue;
            };
            if since + tolerate <= s.now_ms {
                let (ns, name) = p.key();
                ops.push(Op::DeletePod {
                    object: format!("pod/{ns}/{name}"),
                    namespace: ns,
                    name,
                    uid: p.uid.clone(),
                    reason: "TaintManagerEviction".into(),
                    message: format!(
                        "Marking for deletion Pod {}: node {} is unreachable",
                        p.pod.metadata.name, h.node.name
                    ),
                });
            }
        }
    }
    ops
}

/// The next time an eviction falls due, if any is ahead.
pub fn next_due(s: &Snapshot<'_>, settings: &Settings) -> Option<u64> {
    s.nodes
        .iter()
        .filter_map(|h| {
            let since = h.down_since_ms?;
            s.pods
                .iter()
                .filter(|p| {
                    p.node.as_deref() == Some(h.node.name.as_str()) && p.deleting_ms.is_none() && p.pod.metadata.controller().is_some()
                })
                .filter_map(|p| toleration_ms(p, settings.unreachable_toleration_ms))
                .map(|t| since + t)
                .filter(|&t| t > s.now_ms)
                .min()
        })
        .min()
}

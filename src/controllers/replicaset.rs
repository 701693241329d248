//! The ReplicaSet controller: `replicas` live pods, no more, no fewer.
//!
//! Short of pods, it creates the missing ones (at most [`BURST`] a pass);
//! over, it deletes the least useful ([`pods::deletion_order`]). Pods that
//! are being deleted or have finished do not count, as in Kubernetes, so a
//! pod evicted from a dead node is replaced at once.

use super::names::Names;
use super::{owner_ref, pods, status_op, Snapshot};
use crate::api::manifest::ReplicaSet;
use crate::state::workload::{Op, WorkloadObject, WorkloadStatus};
use crate::state::PodObject;

/// Pods one pass creates at most for one ReplicaSet (Kubernetes' burst).
pub const BURST: i64 = 500;

/// The writes for one ReplicaSet.
pub fn reconcile(w: &WorkloadObject, rs: &ReplicaSet, owned: &[&PodObject], s: &Snapshot<'_>, names: &mut Names) -> Vec<Op> {
    let ns = rs.metadata.namespace();
    let mut live: Vec<&PodObject> = owned.iter().copied().filter(|p| p.is_active()).collect();
    let want = rs.spec.replicas().max(0);
    let have = live.len() as i64;
    let mut ops = Vec::new();
    let object = format!("replicaset/{ns}/{}", rs.metadata.name);
    if have < want {
        for _ in 0..(want - have).min(BURST) {
            let name = names.pod_name(&rs.metadata.name);
            let pod = pods::from_template(&rs.spec.template, ns, name, owner_ref(w), None);
            ops.push(Op::CreatePod {
                pod: Box::new(pod),
                uid: names.uid(),
            });
        }
    } else if have > want {
        pods::deletion_order(&mut live);
        for p in live.iter().take((have - want) as usize) {
            ops.push(Op::DeletePod {
                namespace: ns.to_string(),
                name: p.pod.metadata.name.clone(),
                uid: p.uid.clone(),
                reason: "SuccessfulDelete".into(),
                object: object.clone(),
                message: format!("Deleted pod: {}", p.pod.metadata.name),
            });
        }
    }
    let min_ready = rs.spec.min_ready_seconds.unwrap_or(0).max(0) as u64 * 1000;
    let status = WorkloadStatus {
        observed_generation: w.generation,
        replicas: have,
        ready_replicas: live.iter().filter(|p| pods::is_ready(p)).count() as i64,
        available_replicas: live.iter().filter(|p| pods::is_available(p, min_ready, s.now_ms)).count() as i64,
        ..Default::default()
    };
    ops.extend(status_op(w, status));
    ops
}

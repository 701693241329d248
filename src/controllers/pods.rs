//! What controllers ask of a pod: is it ready, is it available, which to
//! delete first; and the pod a template stamps out.

use crate::api::manifest::{ObjectMeta, OwnerReference, Pod, PodTemplateSpec};
use crate::api::status::{ContainerState, Phase};
use crate::state::PodObject;
use std::cmp::Reverse;

/// Kubernetes' Ready condition: running, every app container ready.
pub fn is_ready(p: &PodObject) -> bool {
    let s = &p.status;
    p.deleting_ms.is_none() && s.phase == Phase::Running && !s.container_statuses.is_empty() && s.container_statuses.iter().all(|c| c.ready)
}

/// Since when it is Ready (Unix ms, the node's clock), if it is: the
/// node's `readySince`, or for a status from an older node the latest
/// container start.
pub fn ready_since(p: &PodObject) -> Option<u64> {
    if !is_ready(p) {
        return None;
    }
    p.status.ready_since.or_else(|| {
        p.status
            .container_statuses
            .iter()
            .map(|c| match c.state {
                ContainerState::Running { started_at } => started_at,
                _ => 0,
            })
            .max()
    })
}

/// Ready for at least `min_ready_ms` at `now` (Kubernetes' available).
pub fn is_available(p: &PodObject, min_ready_ms: u64, now: u64) -> bool {
    ready_since(p).is_some_and(|t| min_ready_ms == 0 || t + min_ready_ms <= now)
}

/// When a pod that is Ready becomes available, if that is still ahead.
pub fn available_at(p: &PodObject, min_ready_ms: u64, now: u64) -> Option<u64> {
    ready_since(p).map(|t| t + min_ready_ms).filter(|&t| t > now)
}

/// A new pod from a template: its labels and annotations, the owner, the
/// name given; `node` binds it directly (DaemonSets).
pub fn from_template(t: &PodTemplateSpec, namespace: &str, name: String, owner: OwnerReference, node: Option<&str>) -> Pod {
    let mut spec = t.spec.clone();
    if let Some(n) = node {
        spec.node_name = Some(n.to_string());
    }
    Pod {
        api_version: "v1".into(),
        kind: "Pod".into(),
        metadata: ObjectMeta {
            name,
            namespace: Some(namespace.to_string()),
            labels: t.metadata.labels.clone(),
            annotations: t.metadata.annotations.clone(),
            owner_references: vec![owner],
        },
        spec,
    }
}

/// Orders pods so that the ones to delete first come first, as Kubernetes'
/// `ActivePods` ranking: unbound before bound; Pending before Running; not
/// ready before ready; on a node crowded with its siblings before a lonely
/// one; ready more recently before longer; more restarts before fewer;
/// newer before older.
pub fn deletion_order(pods: &mut [&PodObject]) {
    let mut on_node: std::collections::BTreeMap<&str, usize> = Default::default();
    for p in pods.iter() {
        if let Some(n) = p.node.as_deref() {
            *on_node.entry(n).or_default() += 1;
        }
    }
    let rank = |p: &PodObject| {
        let restarts: u32 = p.status.container_statuses.iter().map(|c| c.restart_count).sum();
        (
            p.node.is_some(),
            p.status.phase == Phase::Running,
            is_ready(p),
            Reverse(p.node.as_deref().map_or(0, |n| on_node[n])),
            Reverse(ready_since(p).unwrap_or(0)),
            Reverse(restarts),
            Reverse(p.created_ms),
            p.pod.metadata.name.clone(),
        )
    };
    pods.sort_by_cached_key(|p| rank(p));
}

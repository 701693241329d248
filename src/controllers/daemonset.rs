//! The DaemonSet controller: one pod on every node whose labels, taints
//! and the template's node selector, affinity and tolerations allow it,
//! bound to that node directly; none elsewhere.
//!
//! Its pods tolerate what Kubernetes' DaemonSet pods tolerate
//! automatically (not-ready and unreachable for NoExecute, unschedulable
//! and the pressure taints for NoSchedule), so a cordoned or Down node
//! keeps its pod. A template change rolls over the nodes, at most
//! `maxUnavailable` (default 1) without an available pod at a time:
//! an old pod is deleted, then its node gets the new one.

use super::names::{template_hash, Names};
use super::{owner_ref, pods, status_op, Snapshot};
use crate::api::manifest::{DaemonSet, PodTemplateSpec, StrategyType, TaintEffect, Toleration, TolerationOperator};
use crate::leader::schedule::node_info;
use crate::state::workload::{Op, WorkloadObject, WorkloadStatus, REVISION_HASH};
use crate::state::PodObject;
use std::collections::BTreeMap;

/// The template with the tolerations Kubernetes adds to DaemonSet pods.
pub fn pod_template(ds: &DaemonSet) -> PodTemplateSpec {
    let mut t = ds.spec.template.clone();
    let auto = [
        ("node.kubernetes.io/not-ready", TaintEffect::NoExecute),
        ("node.kubernetes.io/unreachable", TaintEffect::NoExecute),
        ("node.kubernetes.io/disk-pressure", TaintEffect::NoSchedule),
        ("node.kubernetes.io/memory-pressure", TaintEffect::NoSchedule),
        ("node.kubernetes.io/pid-pressure", TaintEffect::NoSchedule),
        ("node.kubernetes.io/unschedulable", TaintEffect::NoSchedule),
    ];
    for (key, effect) in auto {
        if !t.spec.tolerations.iter().any(|x| x.key == key && x.effect == Some(effect)) {
            t.spec.tolerations.push(Toleration {
                key: key.into(),
                operator: TolerationOperator::Exists,
                value: String::new(),
                effect: Some(effect),
                toleration_seconds: None,
            });
        }
    }
    t
}

/// The writes for one DaemonSet.
pub fn reconcile(w: &WorkloadObject, ds: &DaemonSet, owned: &[&PodObject], s: &Snapshot<'_>, names: &mut Names) -> Vec<Op> {
    let ns = ds.metadata.namespace();
    let template = pod_template(ds);
    let hash = template_hash(&ds.spec.template);
    let min_ready = ds.spec.min_ready_seconds.unwrap_or(0).max(0) as u64 * 1000;
    let object = format!("daemonset/{ns}/{}", ds.metadata.name);
    let mut by_node: BTreeMap<&str, Vec<&PodObject>> = BTreeMap::new();
    for p in owned.iter().filter(|p| p.is_active()) {
        if let Some(n) = p.node.as_deref().or(p.pod.spec.bound_node()) {
            by_node.entry(n).or_default().push(p);
        }
    }
    let delete = |p: &PodObject, why: &str| Op::DeletePod {
        namespace: ns.to_string(),
        name: p.pod.metadata.name.clone(),
        uid: p.uid.clone(),
        reason: "SuccessfulDelete".into(),
        object: object.clone(),
        message: format!("Deleted pod: {} ({why})", p.pod.metadata.name),
    };
    let mut ops = Vec::new();
    let mut status = WorkloadStatus {
        observed_generation: w.generation,
        ..Default::default()
    };
    let max_unavailable = ds
        .spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.clone());
    let on_delete = ds.spec.update_strategy.as_ref().and_then(|u| u.kind) == Some(StrategyType::OnDelete);
    let mut old_available: Vec<&PodObject> = Vec::new();
    let mut unavailable = 0;
    for h in s.nodes {
        let name = h.node.name.as_str();
        let should = crate::scheduler::node_allows(&template.spec, &node_info(&h.node, true));
        let mut here = by_node.remove(name).unwrap_or_default();
        if !should {
            status.number_misscheduled += (!here.is_empty()) as i64;
            ops.extend(here.iter().map(|p| delete(p, "node no longer matches")));
            continue;
        }
        status.desired_number_scheduled += 1;
        if here.is_empty() {
            let mut pod = pods::from_template(&template, ns, names.pod_name(&ds.metadata.name), owner_ref(w), Some(name));
            pod.metadata.labels.insert(REVISION_HASH.into(), hash.clone());
            ops.push(Op::CreatePod {
                pod: Box::new(pod),
                uid: names.uid(),
            });
            unavailable += 1;
            continue;
        }
        // One per node: the oldest stays.
        here.sort_by_key(|p| (p.created_ms, p.pod.metadata.name.clone()));
        ops.extend(here.iter().skip(1).map(|p| delete(p, "more than one on the node")));
        let p = here[0];
        status.current_number_scheduled += 1;
        status.ready_replicas += pods::is_ready(p) as i64;
        let available = pods::is_available(p, min_ready, s.now_ms);
        status.available_replicas += available as i64;
        let current = p.pod.metadata.labels.get(REVISION_HASH) == Some(&hash);
        status.updated_number_scheduled += current as i64;
        match (current, available) {
            (true, true) => {}
            (true, false) => unavailable += 1,
            (false, false) if !on_delete => ops.push(delete(p, "old revision, not available")),
            (false, false) => unavailable += 1,
            (false, true) => old_available.push(p),
        }
    }
    // Pods on nodes that are gone from the cluster.
    for p in by_node.into_values().flatten() {
        status.number_misscheduled += 1;
        ops.push(delete(p, "node left the cluster"));
    }
    if !on_delete {
        let total = status.desired_number_scheduled;
        let budget = max_unavailable.map_or(1, |m| m.scaled(total, false).unwrap_or(1).max(1));
        let room = (budget - unavailable).max(0) as usize;
        old_available.sort_by_key(|p| p.node.clone());
        ops.extend(old_available.iter().take(room).map(|p| delete(p, "old revision")));
    }
    ops.extend(status_op(w, status));
    ops
}

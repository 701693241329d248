//! The scheduling pass: pending pods and the cluster as the replica and
//! gossip show it go through the pure scheduler; its decisions are one Raft
//! write. A refusal is written only when its reason changed, so a pod that
//! cannot be placed costs no writes while nothing changes.

use super::LeaderError;
use crate::consensus::Consensus;
use crate::gossip::{NodeStatus, NodeView};
use crate::scheduler::{self, Decision, NodeInfo, PendingPod, PlacedPod, Snapshot};
use crate::state::{Binding, Command, NodeObject, PodObject};
use std::collections::HashMap;

/// How many pods one Raft write binds at most.
const BATCH: usize = 500;

/// The scheduler's view of a node: its object plus gossip's health.
pub fn node_info(n: &NodeObject, ready: bool) -> NodeInfo {
    NodeInfo {
        name: n.name.clone(),
        labels: n.all_labels(),
        zone: n.zone.clone(),
        taints: n.taints.clone(),
        allocatable_cpu_milli: n.cpus as u64 * 1000,
        allocatable_memory_bytes: n.memory_bytes,
        ready,
        cordoned: n.cordoned,
    }
}

/// The requests of every bound pod, by node.
pub fn placed(pods: &[PodObject]) -> Vec<PlacedPod> {
    pods.iter()
        .filter_map(|p| {
            Some(PlacedPod {
                node: p.node.clone()?,
                requests: scheduler::requests_of(&p.pod.spec),
                owner: p.owner_uid().map(str::to_string),
                namespace: p.key().0,
                labels: p.pod.metadata.labels.clone(),
            })
        })
        .collect()
}

/// A stored pod as the scheduler's question.
pub fn ask(p: &PodObject) -> PendingPod<'_> {
    PendingPod {
        key: p.key(),
        spec: &p.pod.spec,
        owner: p.owner_uid(),
        labels: &p.pod.metadata.labels,
    }
}

/// Places what is pending.
pub async fn pass(c: &Consensus, gossip: &[NodeView]) -> Result<(), LeaderError> {
    let pending = c.replica.pending()?;
    let pending: Vec<&PodObject> = pending.iter().filter(|p| p.deleting_ms.is_none()).collect();
    if pending.is_empty() {
        return Ok(());
    }
    let ready: HashMap<&str, bool> = gossip.iter().map(|v| (v.name.as_str(), v.status == NodeStatus::Ready)).collect();
    let me = c.replica.nodes()?.into_iter().find(|n| n.raft_id == c.id).map(|n| n.name);
    let nodes = c.replica.nodes()?;
    let snapshot = Snapshot {
        nodes: nodes
            .iter()
            .map(|n| {
                node_info(
                    n,
                    me.as_deref() == Some(n.name.as_str()) || ready.get(n.name.as_str()).copied().unwrap_or(false),
                )
            })
            .collect(),
        placed: placed(&c.replica.pods()?),
    };
    for chunk in pending.chunks(BATCH) {
        let asks: Vec<PendingPod<'_>> = chunk.iter().map(|p| ask(p)).collect();
        let decisions = scheduler::schedule(&snapshot, &asks);
        let items: Vec<Binding> = chunk
            .iter()
            .zip(decisions)
            .filter_map(|(p, d)| {
                let (namespace, name) = p.key();
                match d {
                    Decision::Bind { node, .. } => Some(Binding {
                        namespace,
                        name,
                        uid: p.uid.clone(),
                        node: Some(node),
                        message: String::new(),
                    }),
                    Decision::Unschedulable { message, .. } if p.unschedulable.as_deref() != Some(message.as_str()) => Some(Binding {
                        namespace,
                        name,
                        uid: p.uid.clone(),
                        node: None,
                        message,
                    }),
                    Decision::Unschedulable { .. } => None,
                }
            })
            .collect();
        if items.is_empty() {
            continue;
        }
        c.write(Command::Bind {
            items,
            now_ms: crate::runtime::shim::now_ms(),
        })
        .await?;
        // The next chunk sees these placements through a fresh snapshot.
        return Ok(());
    }
    Ok(())
}

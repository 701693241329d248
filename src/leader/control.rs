//! The controller pass: the replica's workloads, pods and nodes, with the
//! leader's view of node health, go through the pure controllers; their
//! writes are one Raft entry. A pass runs after each burst of applied
//! changes, when a node's health changes, and when the controllers said the
//! clock alone would change a decision; otherwise it costs nothing.

use super::LeaderError;
use crate::consensus::Consensus;
use crate::controllers::{self, NodeHealth, Settings, Snapshot};
use crate::gossip::{NodeStatus, NodeView};
use crate::state::Command;
use std::collections::BTreeMap;
use tracing::{debug, info};

/// Controller ops per Raft entry (a created pod is a kilobyte or two).
const OPS_PER_ENTRY: usize = 32;

/// What the pass remembers between runs (reset when leadership changes).
#[derive(Default)]
pub struct Control {
    settings: Settings,
    /// Since when this leader has seen each node Down or Left (Unix ms).
    down_since: BTreeMap<String, u64>,
    /// Ready and Down per node at the last pass.
    health: BTreeMap<String, (bool, bool)>,
    /// When the clock alone changes a decision.
    wake_ms: Option<u64>,
}

impl Control {
    /// A pass with these settings.
    pub fn new(settings: Settings) -> Control {
        Control {
            settings,
            ..Default::default()
        }
    }

    /// When the next pass is due by the clock, Unix ms.
    pub fn wake_ms(&self) -> Option<u64> {
        self.wake_ms
    }

    /// Runs the controllers if anything they look at changed (`changed`:
    /// applied entries) or a wake time passed.
    pub async fn pass(&mut self, c: &Consensus, gossip: &[NodeView], changed: bool) -> Result<(), LeaderError> {
        let now = crate::runtime::shim::now_ms();
        let nodes = c.replica.nodes()?;
        let mut health = BTreeMap::new();
        for n in &nodes {
            let status = gossip.iter().find(|v| v.name == n.name).map(|v| v.status);
            let me = n.raft_id == c.id;
            let down = !me && matches!(status, Some(NodeStatus::Down | NodeStatus::Left));
            health.insert(n.name.clone(), (me || status == Some(NodeStatus::Ready), down));
            match status {
                Some(NodeStatus::Down | NodeStatus::Left) if !me => {
                    self.down_since.entry(n.name.clone()).or_insert_with(|| {
                        info!(node = %n.name, "node down: its controllers' pods are replaced after their toleration");
                        now
                    });
                }
                _ => {
                    self.down_since.remove(&n.name);
                }
            }
        }
        let due = self.wake_ms.is_some_and(|w| w <= now);
        if !changed && !due && health == self.health {
            return Ok(());
        }
        self.health = health;
        let nodes: Vec<NodeHealth> = nodes
            .into_iter()
            .map(|n| NodeHealth {
                ready: self.health.get(&n.name).is_some_and(|h| h.0),
                down_since_ms: self.down_since.get(&n.name).copied(),
                node: n,
            })
            .collect();
        let workloads = c.replica.workloads()?;
        let pods = c.replica.pods()?;
        let snapshot = Snapshot {
            workloads: &workloads,
            pods: &pods,
            nodes: &nodes,
            now_ms: now,
        };
        let ops = controllers::reconcile(&snapshot, &self.settings, rand::random());
        self.wake_ms = controllers::next_wake(&snapshot, &self.settings);
        if ops.is_empty() {
            return Ok(());
        }
        let evictions = ops
            .iter()
            .filter(|o| matches!(o, crate::state::Op::DeletePod { reason, .. } if reason == "TaintManagerEviction"))
            .count();
        if evictions > 0 {
            info!(evictions, down = ?self.down_since.keys().collect::<Vec<_>>(), "evicting pods from nodes that are down");
        }
        debug!(ops = ops.len(), "controller writes");
        // In entries of a bounded size, as Kubernetes' controllers write
        // object by object: five hundred pods in one entry would be sent to
        // every learner whole, within one heartbeat. Each op carries the
        // incarnation it was decided on, and the next pass starts from what
        // was written, so a pass cut short by a lost leadership is finished
        // by the next leader.
        let mut ops = ops.into_iter().peekable();
        while ops.peek().is_some() {
            let chunk = ops.by_ref().take(OPS_PER_ENTRY).collect();
            c.write(Command::Reconcile { ops: chunk, now_ms: now }).await?;
        }
        Ok(())
    }
}

//! Raft membership follows the node objects: every node in the state is a
//! learner at least (so it replicates the whole state), deleted nodes leave
//! Raft, moved nodes get their new address, and autopilot picks the voters.
//! One membership change per pass, so changes are serialised.

use super::LeaderError;
use crate::consensus::autopilot::{self, AutopilotSettings, MemberHealth};
use crate::consensus::{Consensus, RaftNode};
use crate::gossip::{NodeStatus, NodeView};
use openraft::ChangeMembers;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tracing::info;

/// A learner this many entries behind the leader counts as caught up.
const LAG: u64 = 100;

/// Health over time, as this leader has seen it.
#[derive(Default)]
pub struct Members {
    /// Raft id → (healthy and, for learners, caught up; since when).
    seen: HashMap<u64, (bool, u64)>,
}

fn change_err(e: impl std::fmt::Display) -> LeaderError {
    LeaderError::Membership(e.to_string())
}

impl Members {
    /// One look at membership; at most one change.
    pub async fn pass(&mut self, c: &Consensus, gossip: &[NodeView], settings: &AutopilotSettings) -> Result<(), LeaderError> {
        let nodes = c.replica.nodes()?;
        let metrics = c.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        if metrics.membership_config.log_id().map(|l| l.index) > metrics.last_applied.map(|l| l.index) {
            return Ok(()); // the last change is not applied yet
        }
        let in_raft: BTreeMap<u64, RaftNode> = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();

        // Nodes of the state that Raft does not know yet join as learners,
        // all of them in one membership change.
        let new: BTreeMap<u64, RaftNode> = nodes
            .iter()
            .filter(|n| !in_raft.contains_key(&n.raft_id))
            .map(|n| (n.raft_id, RaftNode::new(&n.name, n.addr)))
            .collect();
        if !new.is_empty() {
            info!(learners = ?new.values().map(|n| n.name.as_str()).collect::<Vec<_>>(), "adding learners");
            c.raft
                .change_membership(ChangeMembers::AddNodes(new), true)
                .await
                .map_err(change_err)?;
            return Ok(());
        }
        // A node whose address changed is reached at the new one.
        let moved: BTreeMap<u64, RaftNode> = nodes
            .iter()
            .filter(|n| in_raft.get(&n.raft_id).is_some_and(|r| r.socket_addr() != Some(n.addr)))
            .map(|n| (n.raft_id, RaftNode::new(&n.name, n.addr)))
            .collect();
        if !moved.is_empty() {
            info!(?moved, "updating member addresses");
            c.raft
                .change_membership(ChangeMembers::SetNodes(moved), true)
                .await
                .map_err(change_err)?;
            return Ok(());
        }
        // Deleted nodes leave Raft (the state named them all once it names any).
        let known: BTreeSet<u64> = nodes.iter().map(|n| n.raft_id).collect();
        if !known.is_empty() {
            let gone: BTreeSet<u64> = in_raft.keys().copied().filter(|id| !known.contains(id)).collect();
            let gone_voters: BTreeSet<u64> = gone.intersection(&voters).copied().collect();
            if !gone_voters.is_empty() && gone_voters.len() < voters.len() {
                info!(?gone_voters, "removing deleted voters");
                c.raft
                    .change_membership(ChangeMembers::RemoveVoters(gone_voters), false)
                    .await
                    .map_err(change_err)?;
                return Ok(());
            }
            let gone_learners: BTreeSet<u64> = gone.difference(&voters).copied().collect();
            if !gone_learners.is_empty() {
                info!(?gone_learners, "removing deleted learners");
                c.raft
                    .change_membership(ChangeMembers::RemoveNodes(gone_learners), false)
                    .await
                    .map_err(change_err)?;
                return Ok(());
            }
        }
        // Autopilot.
        let now = crate::runtime::shim::now_ms();
        let ready: HashMap<&str, bool> = gossip.iter().map(|v| (v.name.as_str(), v.status == NodeStatus::Ready)).collect();
        let last = metrics.last_log_index.unwrap_or(0);
        let matched = metrics.replication.clone().unwrap_or_default();
        let mut health = Vec::new();
        for n in &nodes {
            let voter = voters.contains(&n.raft_id);
            let healthy = n.raft_id == c.id || ready.get(n.name.as_str()).copied().unwrap_or(false);
            let caught_up = n.raft_id == c.id
                || matched
                    .get(&n.raft_id)
                    .and_then(|m| m.map(|l| l.index + LAG >= last))
                    .unwrap_or(false);
            let good = healthy && (voter || caught_up);
            let since = match self.seen.get(&n.raft_id) {
                Some((g, since)) if *g == good => *since,
                _ => now,
            };
            self.seen.insert(n.raft_id, (good, since));
            health.push(MemberHealth {
                id: n.raft_id,
                zone: n.zone.clone(),
                eligible: n.voter_eligible,
                voter,
                healthy,
                since_ms: since,
                caught_up,
            });
        }
        if let Some(next) = autopilot::plan(&health, settings, now) {
            info!(from = ?voters, to = ?next, "autopilot changes the voters");
            c.raft
                .change_membership(ChangeMembers::ReplaceAllVoters(next), true)
                .await
                .map_err(change_err)?;
        }
        Ok(())
    }
}

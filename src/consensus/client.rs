//! Writes from any node: committed through the leader, answered only once
//! committed, with a clear error within a few seconds when no quorum can
//! be reached; and linearizable reads (the leader's read index).

use super::network::{ForwardError, Peers, RaftReply, RaftRequest};
use super::{Raft, RaftNode};
use crate::state::{Command, Replica, Response};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a write may wait for a commit before the caller hears why not.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(4);

/// A write or a consistent read could not be done.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// No leader could commit it in time.
    #[error("{what}: no quorum: the cluster could not commit within {secs} s ({leader}); this node may be cut off from the majority of the voters")]
    NoQuorum {
        /// The command.
        what: String,
        /// The deadline.
        secs: u64,
        /// Who was believed to lead.
        leader: String,
    },
    /// Raft stopped or failed.
    #[error("{what}: {message}")]
    Failed {
        /// The command.
        what: String,
        /// Why.
        message: String,
    },
}

/// This node's handle on Raft: its own instance, its replica, its peers.
#[derive(Clone)]
pub struct Consensus {
    /// The Raft instance.
    pub raft: Raft,
    /// This node's Raft id.
    pub id: u64,
    /// This node's copy of the state.
    pub replica: Arc<Replica>,
    /// Connections to other nodes.
    pub peers: Peers,
}

enum Step<T> {
    Done(T),
    Forward(Option<(u64, RaftNode)>),
}

impl Consensus {
    /// The leader's id and how to reach it, as this node knows it.
    pub fn leader(&self) -> Option<(u64, RaftNode)> {
        let m = self.raft.server_metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id).cloned()?;
        Some((id, node))
    }

    /// Commits `cmd` through the leader (forwarding it when this node is not
    /// the leader) and returns what applying it answered.
    pub async fn write(&self, cmd: Command) -> Result<Response, WriteError> {
        let what = cmd.kind().to_string();
        let start = Instant::now();
        let mut last_leader = None;
        loop {
            let left = WRITE_DEADLINE.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(no_quorum(&what, last_leader));
            }
            let step = tokio::time::timeout(left, self.write_once(&cmd, left)).await;
            match step {
                Err(_) => return Err(no_quorum(&what, last_leader.or_else(|| self.leader()))),
                Ok(Ok(Step::Done(r))) => return Ok(r),
                Ok(Err(message)) => return Err(WriteError::Failed { what, message }),
                Ok(Ok(Step::Forward(leader))) => {
                    if leader.is_none() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    last_leader = leader.or(last_leader);
                }
            }
        }
    }

    async fn write_once(&self, cmd: &Command, left: Duration) -> Result<Step<Response>, String> {
        let leader = match self.raft.client_write(super::SharedCommand::new(cmd.clone())).await {
            Ok(r) => return Ok(Step::Done(r.data)),
            Err(e) => match e.forward_to_leader() {
                Some(f) => f.leader_id.zip(f.leader_node.clone()),
                None => return Err(e.to_string()),
            },
        };
        let Some((id, node)) = leader else { return Ok(Step::Forward(None)) };
        if id == self.id {
            return Ok(Step::Forward(None)); // leadership is changing under us
        }
        match self.ask_leader(id, &node, RaftRequest::Forward(cmd.clone()), left).await {
            Some(RaftReply::Forward(Ok(r))) => Ok(Step::Done(r)),
            Some(RaftReply::Forward(Err(ForwardError::NotLeader { leader }))) => Ok(Step::Forward(leader)),
            Some(RaftReply::Forward(Err(ForwardError::Failed(m)))) => Err(m),
            _ => {
                // Unreachable or deposed leader: wait a little for a new one.
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(Step::Forward(None))
            }
        }
    }

    /// Sends `req` to the leader `id`; gives up as soon as this node sees
    /// another leader (or none), so a dead leader's open connection does not
    /// hold the request until the deadline.
    async fn ask_leader(&self, id: u64, node: &RaftNode, req: RaftRequest, left: Duration) -> Option<RaftReply> {
        let addr = node.socket_addr()?;
        let mut metrics = self.raft.server_metrics();
        let deposed = async move {
            loop {
                if metrics.borrow_and_update().current_leader != Some(id) {
                    return;
                }
                if metrics.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        };
        tokio::select! {
            r = self.peers.call(addr, &req, None, left) => r.ok(),
            _ = deposed => None,
        }
    }

    /// Waits until this node's replica holds every write committed before
    /// the call: the leader confirms its leadership with a quorum and names
    /// its commit index, then the local state machine catches up to it.
    pub async fn linearize(&self) -> Result<(), WriteError> {
        let what = "consistent read".to_string();
        let start = Instant::now();
        let mut last_leader = None;
        let index = loop {
            let left = WRITE_DEADLINE.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(no_quorum(&what, last_leader));
            }
            match tokio::time::timeout(left, self.read_index(left)).await {
                Err(_) => return Err(no_quorum(&what, last_leader)),
                Ok(Ok(Step::Done(i))) => break i,
                Ok(Err(message)) => return Err(WriteError::Failed { what, message }),
                Ok(Ok(Step::Forward(l))) => {
                    last_leader = l.or(last_leader);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let left = WRITE_DEADLINE.saturating_sub(start.elapsed());
        self.raft
            .wait(Some(left))
            .applied_index_at_least(Some(index), "consistent read")
            .await
            .map(|_| ())
            .map_err(|_| no_quorum(&what, last_leader))
    }

    async fn read_index(&self, left: Duration) -> Result<Step<u64>, String> {
        let leader = match self.raft.get_read_log_id().await {
            Ok((read, _)) => return Ok(Step::Done(read.map(|l| l.index).unwrap_or(0))),
            Err(e) => match e.forward_to_leader() {
                Some(f) => f.leader_id.zip(f.leader_node.clone()),
                None => return Err(e.to_string()),
            },
        };
        let Some((id, node)) = leader else { return Ok(Step::Forward(None)) };
        if id == self.id {
            return Ok(Step::Forward(None));
        }
        match self.ask_leader(id, &node, RaftRequest::ReadIndex, left).await {
            Some(RaftReply::ReadIndex(Ok(i))) => Ok(Step::Done(i)),
            Some(RaftReply::ReadIndex(Err(ForwardError::NotLeader { leader }))) => Ok(Step::Forward(leader)),
            Some(RaftReply::ReadIndex(Err(ForwardError::Failed(m)))) => Err(m),
            _ => Ok(Step::Forward(None)),
        }
    }
}

fn no_quorum(what: &str, leader: Option<(u64, RaftNode)>) -> WriteError {
    WriteError::NoQuorum {
        what: what.to_string(),
        secs: WRITE_DEADLINE.as_secs(),
        leader: match leader {
            Some((_, n)) => format!("last known leader {}", n.name),
            None => "no leader known".into(),
        },
    }
}

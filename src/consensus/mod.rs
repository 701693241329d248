//! Raft (openraft 0.9) among the nodes: the log and the state machine in
//! SQLite (`storage.rs`), RPCs on the node's QUIC endpoint (`network.rs`),
//! writes forwarded to the leader and linearizable reads (`client.rs`), and
//! the leader's choice of voters (`autopilot.rs`).
//!
//! Timing: heartbeats every 200 ms, elections after 600–900 ms of silence.
//! A follower notices a dead leader within 0.6–0.9 s and a new one commits
//! at once, so a write stalls for about a second; heartbeats reach every
//! learner too, and at 5 per second each costs about 1 kB/s on the wire
//! (see docs/BENCHMARKS.md), which is why they are not faster.

pub mod autopilot;
pub mod ca;
pub mod client;
pub mod network;
pub mod server;
pub mod storage;

pub use client::{Consensus, WriteError};

use crate::state::{Command, Response};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;

/// How a Raft member is reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftNode {
    /// Node name.
    pub name: String,
    /// QUIC address.
    pub addr: String,
}

impl RaftNode {
    /// A member at `addr`.
    pub fn new(name: &str, addr: SocketAddr) -> RaftNode {
        RaftNode {
            name: name.into(),
            addr: addr.to_string(),
        }
    }

    /// The address, if it parses.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.addr.parse().ok()
    }
}

impl std::fmt::Display for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.addr)
    }
}

openraft::declare_raft_types!(
    /// Shoal's Raft types: commands in, responses out, snapshots as bytes.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = u64,
        Node = RaftNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Vec<u8>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft instance.
pub type Raft = openraft::Raft<TypeConfig>;

/// Raft timing and log settings.
#[derive(Debug, Clone)]
pub struct RaftTiming {
    /// Leader heartbeat period.
    pub heartbeat_ms: u64,
    /// Shortest election timeout.
    pub election_min_ms: u64,
    /// Longest election timeout.
    pub election_max_ms: u64,
    /// Entries between snapshots.
    pub snapshot_every: u64,
}

impl Default for RaftTiming {
    fn default() -> RaftTiming {
        RaftTiming {
            heartbeat_ms: 200,
            election_min_ms: 600,
            election_max_ms: 900,
            snapshot_every: 5000,
        }
    }
}

impl RaftTiming {
    /// openraft's config from these settings.
    pub fn config(&self) -> Arc<openraft::Config> {
        let c = openraft::Config {
            cluster_name: "shoal".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_min_ms,
            election_timeout_max: self.election_max_ms,
            install_snapshot_timeout: 10_000,
            max_payload_entries: 1000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: 1000,
            purge_batch_size: 256,
            ..Default::default()
        };
        Arc::new(c.validate().expect("timing settings are consistent"))
    }
}

/// What starting this node's Raft needs.
pub struct Start {
    /// This node's Raft id.
    pub id: u64,
    /// How others reach it.
    pub me: RaftNode,
    /// The node that ran `init`: it founds the cluster alone if its log is empty.
    pub bootstrap: bool,
    /// Timers.
    pub timing: RaftTiming,
    /// The replica (log and state machine).
    pub replica: Arc<crate::state::Replica>,
    /// Connections to other nodes.
    pub peers: network::Peers,
}

/// Starts Raft on the node's replica; the first node of a cluster founds it.
pub async fn start(s: Start) -> Result<Consensus, openraft::error::Fatal<u64>> {
    let raft = Raft::new(
        s.id,
        s.timing.config(),
        network::Network { peers: s.peers.clone() },
        storage::LogStore::new(s.replica.clone()),
        storage::StateMachine::new(s.replica.clone()),
    )
    .await?;
    if s.bootstrap && !raft.is_initialized().await? {
        let members = std::collections::BTreeMap::from([(s.id, s.me.clone())]);
        if let Err(e) = raft.initialize(members).await {
            tracing::warn!(error = %e, "raft initialize");
        }
    } else {
        // A restarted member stays quiet for two election timeouts, long
        // enough to hear a living leader: without pre-vote (not in 0.9), a
        // restart that timed out first would raise the term and depose it.
        raft.runtime_config().elect(false);
        let r = raft.clone();
        let quiet = std::time::Duration::from_millis(2 * s.timing.election_max_ms);
        tokio::spawn(async move {
            tokio::time::sleep(quiet).await;
            r.runtime_config().elect(true);
        });
    }
    Ok(Consensus {
        raft,
        id: s.id,
        replica: s.replica,
        peers: s.peers,
    })
}

#[cfg(test)]
mod tests;

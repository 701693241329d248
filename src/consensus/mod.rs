//! Raft (openraft 0.9) among the nodes: the log and the state machine in
//! SQLite (`storage.rs`), RPCs on the node's QUIC endpoint (`network.rs`),
//! writes forwarded to the leader and linearizable reads (`client.rs`), the
//! command as entries carry it, shared and encoded once (`shared.rs`), and
//! the leader's choice of voters (`autopilot.rs`).
//!
//! Timing: heartbeats every 200 ms, election timeouts of 400–500 ms. openraft
//! 0.9 adds a leader lease of one maximum election timeout (500 ms) before a
//! follower that knew a leader may campaign, so a follower campaigns 0.9–1 s
//! after the last heartbeat it heard: 0.7–1 s after a leader dies, and a
//! healthy cluster never elects on fewer than four lost heartbeats in a row.
//! Heartbeats reach every learner too; at 5 per second each costs about
//! 1.9 kB/s on the wire (docs/BENCHMARKS.md), which is why they are not faster.

pub mod autopilot;
pub mod ca;
pub mod client;
pub mod network;
pub mod server;
pub mod shared;
pub mod storage;

pub use client::{Consensus, WriteError};
pub use shared::SharedCommand;

use crate::state::Response;
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
        D = SharedCommand,
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
            election_min_ms: 400,
            election_max_ms: 500,
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
            // openraft gives an AppendEntries one heartbeat interval to
            // answer; a payload must fit that on a slow learner (a Pi, or a
            // hundred hollow ones), else it is sent again and again.
            max_payload_entries: 64,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            // A learner that lags less than this behind a snapshot catches
            // up from the log instead of being sent the whole state.
            max_in_snapshot_log_to_keep: self.snapshot_every,
            purge_batch_size: 256,
            ..Default::default()
        };
        Arc::new(c.validate().expect("timing settings are consistent"))
    }
}

/// How long a restarted member keeps elections off.
const RESTART_QUIET_MS: u64 = 3000;

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
        // A restarted member stays quiet long enough to hear a living
        // leader (whose connection to the old process idles out within 2 s):
        // without pre-vote (not in 0.9), a restart that timed out first would
        // raise the term and depose it. (A restarted member does not restore
        // a lease, so without this it would campaign after one election
        // timeout.)
        raft.runtime_config().elect(false);
        let r = raft.clone();
        let quiet = std::time::Duration::from_millis(RESTART_QUIET_MS.max(2 * s.timing.election_max_ms));
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

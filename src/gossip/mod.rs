//! Membership: SWIM with suspicion (foca) over QUIC datagrams, with node
//! metadata, graceful leave and Lifeguard-style local health.
//!
//! ```text
//! config.rs  timers (probe 900 ms, suspicion from the cluster size, ...)
//! core.rs    Membership: handle_datagram / handle_tick / leave (input, now) -> [Effect]
//! order.rs   the probe order all members agree on (a rotation per wall-clock period)
//! wire.rs    datagram = tag + foca packet | compact ping/ack | Control{Hello, Meta, Leaving, Digest}
//! health.rs  local health multiplier (stretches our own timeouts when we are slow)
//! net.rs     the edge: one QUIC connection per peer (mTLS, ALPN shoal-gossip), timers
//! stats.rs   what gossip costs on the wire, by message kind (`shoal info`)
//! hollow.rs  many members in one process through the real edge and core
//! ```

pub mod config;
pub mod core;
pub mod health;
pub mod hollow;
pub mod identity;
pub mod net;
mod order;
pub mod stats;
pub mod wire;

#[cfg(test)]
mod tests;

pub use self::core::{Effect, Membership};
pub use config::GossipConfig;
pub use identity::MemberId;
pub use net::{GossipCmd, Handle};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// What a node does in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Holds the cluster CA; admits joins.
    Server,
    /// Joined with a token.
    Agent,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Server => "server",
            Role::Agent => "agent",
        })
    }
}

/// What a member tells the others about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeMeta {
    /// `--label k=v`.
    pub labels: BTreeMap<String, String>,
    /// `--zone`.
    pub zone: Option<String>,
    /// CPUs.
    pub cpus: u32,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Shoal version.
    pub version: String,
    /// Role.
    pub role: Role,
    /// When the node joined (Unix ms).
    pub joined_ms: u64,
}

/// Status of a member as one node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NodeStatus {
    /// Answers probes.
    Ready,
    /// Missed a probe; declared Down unless it refutes in time.
    Suspect,
    /// Failed: no answer through the suspicion timeout.
    Down,
    /// Left on purpose (`shoal leave`).
    Left,
}

impl std::fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// One row of `get nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// Status.
    pub status: NodeStatus,
    /// Address.
    pub addr: SocketAddr,
    /// Generation of the identity seen.
    pub generation: u64,
    /// Metadata, once the member answered a hello.
    pub meta: Option<NodeMeta>,
}

impl NodeMeta {
    /// This machine's metadata: its capacity and this binary's version.
    pub fn local(labels: BTreeMap<String, String>, zone: Option<String>, role: Role, joined_ms: u64) -> NodeMeta {
        let (cpus, memory_bytes) = capacity();
        NodeMeta {
            labels,
            zone,
            cpus,
            memory_bytes,
            version: env!("CARGO_PKG_VERSION").to_string(),
            role,
            joined_ms,
        }
    }
}

/// This machine's capacity: CPUs and memory.
pub fn capacity() -> (u32, u64) {
    let cpus = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        })
        .unwrap_or(0);
    (cpus, mem * 1024)
}

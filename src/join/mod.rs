//! Joining a cluster: `shoal join ADDR --token T` on a new node, and the
//! server side on a node that holds the cluster CA.
//!
//! ```text
//! joiner                                          CA node
//!   pin CA by the token's hash ── QUIC, ALPN shoal-join ──▶ (no client cert yet)
//!   JoinRequest{token id, check, proof(exporter, CSR), name, CSR} ─▶ verify token,
//!   ◀─ JoinReply::Joined{node cert, CA, seeds} | Refused{reason}      sign CSR
//! ```
//! The proof is an HMAC keyed by the secret's hash over this TLS session's
//! exporter and the CSR, so it cannot be replayed on another connection.

pub mod client;
pub mod server;
pub mod token;

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// TLS exporter label that binds a proof to one session.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-shoal-join";

/// The joiner's one request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Which token.
    pub token_id: String,
    /// Shows the secret is right ([`token::check_value`]).
    pub check: String,
    /// Proves the secret for this session and CSR ([`token::proof`]).
    pub proof: String,
    /// Node name wanted.
    pub name: String,
    /// PEM certificate request; its key stays with the joiner.
    pub csr: String,
    /// Where the node will serve.
    pub advertise: SocketAddr,
    /// `--label k=v`.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// `--zone`.
    #[serde(default)]
    pub zone: Option<String>,
    /// `--voter=false` keeps the node out of the voter set for good.
    #[serde(default)]
    pub voter: Option<bool>,
}

/// The server's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum JoinReply {
    /// Welcome: the signed certificate, the CA, and members to gossip with.
    Joined {
        /// PEM node certificate.
        cert: String,
        /// PEM cluster CA certificate.
        ca: String,
        /// Members to contact first.
        seeds: Vec<SocketAddr>,
        /// The node's Raft id, handed out once.
        #[serde(default)]
        raft_id: Option<u64>,
    },
    /// Not admitted.
    Refused {
        /// Why, naming the problem.
        reason: String,
    },
    /// This node holds no CA key: ask one of these voters, which do.
    Redirect {
        /// Voters' addresses.
        voters: Vec<SocketAddr>,
    },
}

/// Why a join was refused; the text goes back to the joiner verbatim.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// No token with this id.
    #[error("unknown join token {id}: create one with `shoal token create` on the first node")]
    UnknownToken {
        /// Token id.
        id: String,
    },
    /// `token rm` removed it.
    #[error("join token {id} was removed")]
    RemovedToken {
        /// Token id.
        id: String,
    },
    /// Past its TTL.
    #[error("join token {id} expired {ago_secs} s ago: create a new one with `shoal token create`")]
    Expired {
        /// Token id.
        id: String,
        /// Seconds since expiry.
        ago_secs: u64,
    },
    /// The secret does not match the token id.
    #[error("wrong secret for join token {id}")]
    WrongSecret {
        /// Token id.
        id: String,
    },
    /// The secret is right but the proof was made for another session.
    #[error("join proof does not match this connection: a replayed or relayed join request")]
    Replayed,
    /// The same key already joined.
    #[error("node {name} already joined with this key: a replayed join")]
    AlreadyJoined {
        /// Node name.
        name: String,
    },
    /// Another live member has the name.
    #[error("node name {name} is taken by a live member; choose another --name")]
    NameTaken {
        /// Node name.
        name: String,
    },
    /// Name not RFC 1123.
    #[error("node name {name:?} is not valid: {reason}")]
    BadName {
        /// Node name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The CSR did not parse or sign.
    #[error("bad certificate request: {0}")]
    BadRequest(String),
    /// No node holding the CA key is known.
    #[error("no voter holding the cluster CA key is known to this node; try again once the cluster has a leader")]
    NotCa,
    /// The cluster could not record the node.
    #[error("{0}")]
    Cluster(String),
    /// The server failed.
    #[error("server error: {0}")]
    Internal(String),
}

//! Raft RPCs on the node's QUIC endpoint, ALPN `shoal-raft`, node
//! certificates only: one bidirectional stream per RPC (a JSON request
//! frame, a JSON reply frame); a snapshot is streamed whole on one stream as
//! data frames after its metadata. One connection per peer, dialled on
//! demand and kept while it lives.

use super::{RaftNode, TypeConfig};
use crate::state::{Command, Response};
use crate::transport::framing::{read_frame, write_frame, Frame, FrameError};
use openraft::error::{Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{OptionalSend, Snapshot, SnapshotMeta, Vote};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bytes per data frame of a streamed snapshot.
const SNAPSHOT_CHUNK: usize = 1 << 20;

/// A request on a `shoal-raft` stream. Variants are only added at the end.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RaftRequest {
    /// Replication and heartbeats.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Elections.
    Vote(VoteRequest<u64>),
    /// A whole snapshot follows as data frames.
    Snapshot {
        /// The leader's vote.
        vote: Vote<u64>,
        /// What the snapshot covers.
        meta: SnapshotMeta<u64, RaftNode>,
    },
    /// A write for the leader, from a node that is not it.
    Forward(Command),
    /// The leader confirms it leads and names the index a linearizable read waits for.
    ReadIndex,
    /// The CA key, for a node that has become a voter.
    FetchCa,
}

/// Why the leader did not take a forwarded request.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
pub enum ForwardError {
    /// This node is not the leader; it names the one it knows.
    #[error("not the leader")]
    NotLeader {
        /// The leader it knows of.
        leader: Option<(u64, RaftNode)>,
    },
    /// Raft failed.
    #[error("{0}")]
    Failed(String),
}

/// A reply on a `shoal-raft` stream.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RaftReply {
    /// To `AppendEntries`.
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    /// To `Vote`.
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    /// To `Snapshot`.
    Snapshot(Result<SnapshotResponse<u64>, Fatal<u64>>),
    /// To `Forward`.
    Forward(Result<Response, ForwardError>),
    /// To `ReadIndex`.
    ReadIndex(Result<u64, ForwardError>),
    /// To `FetchCa`: the key PEM, or why not.
    FetchCa(Result<String, String>),
    /// The request was refused before it reached Raft.
    Refused(String),
}

/// A call failed on the way.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection.
    #[error("cannot reach {addr}: {message}")]
    Unreachable {
        /// The peer.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
    /// The stream broke or timed out.
    #[error("{addr}: {message}")]
    Stream {
        /// The peer.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
}

/// Connections to other nodes, shared by Raft's replication streams and
/// the write-forwarding client.
#[derive(Clone)]
pub struct Peers {
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    /// Per peer: the connection, while QUIC keeps it open (its idle timeout
    /// is 2 s with keep-alives, so a dead or restarted peer's goes soon).
    conns: Arc<Mutex<HashMap<SocketAddr, quinn::Connection>>>,
}

impl Peers {
    /// Dials from `endpoint` with `client` (a node certificate, ALPN `shoal-raft`).
    pub fn new(endpoint: quinn::Endpoint, client: quinn::ClientConfig) -> Peers {
        Peers {
            endpoint,
            client,
            conns: Arc::default(),
        }
    }

    async fn conn(&self, addr: SocketAddr) -> Result<quinn::Connection, CallError> {
        if let Some(c) = self.conns.lock().unwrap_or_else(|p| p.into_inner()).get(&addr) {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
        }
        let unreachable = |message: String| CallError::Unreachable { addr, message };
        let connecting = self
            .endpoint
            .connect_with(self.client.clone(), addr, crate::transport::pki::SERVER_NAME)
            .map_err(|e| unreachable(e.to_string()))?;
        let c = tokio::time::timeout(Duration::from_millis(1500), connecting)
            .await
            .map_err(|_| unreachable("no answer within 1.5 s".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).insert(addr, c.clone());
        Ok(c)
    }

    /// One request, one reply, with a deadline; `data` follows the request
    /// as data frames. A late reply does not drop the connection (a slow
    /// peer is not flooded with handshakes); a dead one closes by QUIC's
    /// idle timeout.
    pub async fn call(&self, addr: SocketAddr, req: &RaftRequest, data: Option<&[u8]>, ttl: Duration) -> Result<RaftReply, CallError> {
        self.call_inner(addr, req, data, ttl).await
    }

    async fn call_inner(&self, addr: SocketAddr, req: &RaftRequest, data: Option<&[u8]>, ttl: Duration) -> Result<RaftReply, CallError> {
        let stream_err = |message: String| CallError::Stream { addr, message };
        let work = async {
            let conn = self.conn(addr).await?;
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| CallError::Unreachable {
                addr,
                message: e.to_string(),
            })?;
            let fe = |e: FrameError| stream_err(e.to_string());
            write_frame(&mut send, &Frame::json(req)).await.map_err(fe)?;
            for chunk in data.unwrap_or_default().chunks(SNAPSHOT_CHUNK) {
                write_frame(&mut send, &Frame::Data(chunk.to_vec())).await.map_err(fe)?;
            }
            let _ = send.finish();
            match read_frame(&mut recv).await.map_err(fe)? {
                Some(f) => f.decode::<RaftReply>().map_err(fe),
                None => Err(stream_err("closed without a reply".into())),
            }
        };
        tokio::time::timeout(ttl, work)
            .await
            .map_err(|_| stream_err(format!("no reply within {} ms", ttl.as_millis())))?
    }
}

/// openraft's view of the network.
#[derive(Clone)]
pub struct Network {
    /// Connections.
    pub peers: Peers,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &RaftNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.socket_addr(),
            peers: self.peers.clone(),
        }
    }
}

/// Replication to one peer.
pub struct PeerClient {
    target: u64,
    addr: Option<SocketAddr>,
    peers: Peers,
}

impl PeerClient {
    async fn rpc<E: std::error::Error>(&self, req: RaftRequest, ttl: Duration) -> Result<RaftReply, RPCError<u64, RaftNode, E>> {
        let Some(addr) = self.addr else {
            let e = std::io::Error::other(format!("node {} has no valid address", self.target));
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        };
        match self.peers.call(addr, &req, None, ttl).await {
            Ok(RaftReply::Refused(why)) => Err(RPCError::Network(NetworkError::new(&std::io::Error::other(why)))),
            Ok(r) => Ok(r),
            Err(e @ CallError::Unreachable { .. }) => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

fn unexpected<E: std::error::Error>(r: RaftReply) -> RPCError<u64, RaftNode, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(format!("unexpected reply {r:?}"))))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, RaftNode, RaftError<u64>>> {
        match self.rpc(RaftRequest::AppendEntries(rpc), option.hard_ttl()).await? {
            RaftReply::AppendEntries(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, RaftNode, RaftError<u64>>> {
        match self.rpc(RaftRequest::Vote(rpc), option.hard_ttl()).await? {
            RaftReply::Vote(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(unexpected(other)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<u64>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<TypeConfig, Fatal<u64>>> {
        let Some(addr) = self.addr else {
            let e = std::io::Error::other(format!("node {} has no valid address", self.target));
            return Err(StreamingError::Unreachable(Unreachable::new(&e)));
        };
        let req = RaftRequest::Snapshot {
            vote,
            meta: snapshot.meta.clone(),
        };
        let call = self.peers.call(addr, &req, Some(&snapshot.snapshot), option.hard_ttl());
        let reply = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            r = call => r,
        };
        match reply {
            Ok(RaftReply::Snapshot(Ok(r))) => Ok(r),
            Ok(RaftReply::Snapshot(Err(e))) => Err(StreamingError::RemoteError(RemoteError::new(self.target, e))),
            Ok(other) => Err(StreamingError::Network(NetworkError::new(&std::io::Error::other(format!(
                "unexpected reply {other:?}"
            ))))),
            Err(e @ CallError::Unreachable { .. }) => Err(StreamingError::Unreachable(Unreachable::new(&e))),
            Err(e) => Err(StreamingError::Network(NetworkError::new(&e))),
        }
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // An unreachable peer is retried after 250 ms, then less and less
        // often up to every 2 s: a restarted node is caught up within a
        // couple of seconds, and a hundred dead ones do not keep the leader
        // busy with handshakes.
        let steps = (0..4)
            .map(|i| Duration::from_millis(250 << i))
            .chain(std::iter::repeat(Duration::from_secs(2)));
        openraft::network::Backoff::new(steps)
    }
}

//! The receiving side of `shoal-raft`: each stream is one RPC for this
//! node's Raft, a write forwarded to it as leader, a read-index request, or
//! a voter asking for the CA key.

use super::client::WRITE_DEADLINE;
use super::network::{ForwardError, RaftReply, RaftRequest};
use super::{Consensus, TypeConfig};
use crate::transport::framing::{read_frame, write_frame, Frame};
use crate::transport::pki::NODE_CN_PREFIX;
use openraft::Snapshot;
use std::path::PathBuf;
use tracing::{debug, info};

/// What the server needs.
#[derive(Clone)]
pub struct RaftServerDeps {
    /// This node's Raft.
    pub consensus: Consensus,
    /// `pki/ca.key`, served to voters only.
    pub ca_key: PathBuf,
}

/// Serves one connection from another node until it closes.
pub async fn serve(conn: quinn::Connection, peer: String, deps: RaftServerDeps) {
    let name = peer.strip_prefix(NODE_CN_PREFIX).unwrap_or(&peer).to_string();
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let deps = deps.clone();
        let name = name.clone();
        tokio::spawn(async move {
            let req = match read_frame(&mut recv).await {
                Ok(Some(f)) => match f.decode::<RaftRequest>() {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = write_frame(&mut send, &Frame::json(&RaftReply::Refused(format!("bad request: {e}")))).await;
                        return;
                    }
                },
                _ => return,
            };
            let reply = handle(&deps, &name, req, &mut recv).await;
            let _ = write_frame(&mut send, &Frame::json(&reply)).await;
            let _ = send.finish();
        });
    }
}

async fn handle(deps: &RaftServerDeps, peer: &str, req: RaftRequest, recv: &mut quinn::RecvStream) -> RaftReply {
    let c = &deps.consensus;
    // Only members of this cluster's state may speak Raft (a deleted node's
    // certificate stays CA-signed); before the state names anyone, anyone may.
    let known = c.replica.node(peer).ok().flatten().is_some() || c.replica.nodes().map(|n| n.is_empty()).unwrap_or(true);
    if !known {
        debug!(%peer, "refused a raft request from a node not in the cluster");
        return RaftReply::Refused(format!("node {peer:?} is not a member of this cluster"));
    }
    match req {
        RaftRequest::AppendEntries(r) => RaftReply::AppendEntries(c.raft.append_entries(r).await),
        RaftRequest::Vote(r) => RaftReply::Vote(c.raft.vote(r).await),
        RaftRequest::Snapshot { vote, meta } => {
            let mut data = Vec::new();
            loop {
                match read_frame(recv).await {
                    Ok(Some(Frame::Data(chunk))) => data.extend_from_slice(&chunk),
                    Ok(None) => break,
                    Ok(Some(_)) | Err(_) => return RaftReply::Refused("snapshot stream broken".into()),
                }
            }
            info!(from = %peer, bytes = data.len(), id = %meta.snapshot_id, "installing snapshot");
            let snap = Snapshot::<TypeConfig> {
                meta,
                snapshot: Box::new(data),
            };
            RaftReply::Snapshot(c.raft.install_full_snapshot(vote, snap).await)
        }
        RaftRequest::Forward(cmd) => {
            let r = tokio::time::timeout(WRITE_DEADLINE, c.raft.client_write(super::SharedCommand::new(cmd))).await;
            RaftReply::Forward(match r {
                Err(_) => Err(ForwardError::Failed("no quorum: the leader could not commit in time".into())),
                Ok(Ok(w)) => Ok(w.data),
                Ok(Err(e)) => Err(match e.forward_to_leader() {
                    Some(f) => ForwardError::NotLeader {
                        leader: f.leader_id.zip(f.leader_node.clone()),
                    },
                    None => ForwardError::Failed(e.to_string()),
                }),
            })
        }
        RaftRequest::ReadIndex => RaftReply::ReadIndex(match c.raft.get_read_log_id().await {
            Ok((read, _)) => Ok(read.map(|l| l.index).unwrap_or(0)),
            Err(e) => Err(match e.forward_to_leader() {
                Some(f) => ForwardError::NotLeader {
                    leader: f.leader_id.zip(f.leader_node.clone()),
                },
                None => ForwardError::Failed(e.to_string()),
            }),
        }),
        RaftRequest::FetchCa => RaftReply::FetchCa(ca_for(deps, peer)),
    }
}

/// The CA key goes only to a node that is a voter in the current membership.
fn ca_for(deps: &RaftServerDeps, peer: &str) -> Result<String, String> {
    let c = &deps.consensus;
    let node = c
        .replica
        .node(peer)
        .ok()
        .flatten()
        .ok_or_else(|| format!("node {peer:?} is not in the cluster"))?;
    let m = c.raft.metrics().borrow().membership_config.clone();
    if !m.membership().voter_ids().any(|v| v == node.raft_id) {
        return Err(format!("node {peer:?} is not a voter"));
    }
    std::fs::read_to_string(&deps.ca_key).map_err(|e| format!("this node holds no CA key: {e}"))
}

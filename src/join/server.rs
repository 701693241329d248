//! The server's side of a join: a node without the CA key sends the joiner
//! to the voters (which hold it); a voter checks the token against the
//! replicated state, records the node through Raft (which hands out its Raft
//! id), signs the CSR and hands out seeds.

use super::token::{check_value, proof, same_mac};
use super::{JoinReply, JoinRequest, Refusal, EXPORTER_LABEL};
use crate::consensus::Consensus;
use crate::gossip::{Handle, NodeStatus, NodeView};
use crate::state::{Command, NodeObject, Response};
use crate::transport::framing::{read_frame, write_frame, Frame};
use crate::transport::pki::{Authority, NodeRequest};
use std::net::SocketAddr;
use std::path::PathBuf;
use tracing::{info, warn};

/// What the join server needs.
#[derive(Clone)]
pub struct JoinDeps {
    /// Raft and the replicated tokens.
    pub consensus: Consensus,
    /// `pki/`: the CA key is there while this node is a voter.
    pub pki_dir: PathBuf,
    /// Membership, for seeds and name clashes.
    pub gossip: Handle,
}

impl JoinDeps {
    fn ca(&self) -> Option<Authority> {
        self.pki_dir
            .join("ca.key")
            .exists()
            .then(|| Authority::load(&self.pki_dir).ok())
            .flatten()
    }

    /// Other voters' addresses: they hold the CA key.
    fn voters(&self) -> Vec<SocketAddr> {
        let c = &self.consensus;
        let m = c.raft.metrics().borrow().membership_config.clone();
        let mut v: Vec<SocketAddr> = m
            .membership()
            .voter_ids()
            .filter(|id| *id != c.id)
            .filter_map(|id| m.membership().get_node(&id).and_then(|n| n.socket_addr()))
            .collect();
        v.sort();
        v
    }
}

/// Serves one `shoal-join` connection: one request, one reply.
pub async fn serve(conn: quinn::Connection, deps: JoinDeps) {
    let remote = conn.remote_address();
    let Ok((mut send, mut recv)) = conn.accept_bi().await else { return };
    let req: JoinRequest = match read_frame(&mut recv).await {
        Ok(Some(f)) => match f.decode() {
            Ok(r) => r,
            Err(e) => return refuse(&mut send, &remote, Refusal::BadRequest(e.to_string())).await,
        },
        _ => return,
    };
    let mut exporter = [0u8; 32];
    if conn.export_keying_material(&mut exporter, EXPORTER_LABEL, b"").is_err() {
        return refuse(&mut send, &remote, Refusal::Internal("no TLS exporter".into())).await;
    }
    let Some(ca) = deps.ca() else {
        let voters = deps.voters();
        if voters.is_empty() {
            return refuse(&mut send, &remote, Refusal::NotCa).await;
        }
        info!(%remote, node = %req.name, ?voters, "join sent on to the voters");
        let _ = write_frame(&mut send, &Frame::json(&JoinReply::Redirect { voters })).await;
        let _ = send.finish();
        let _ = send.stopped().await;
        return;
    };
    let nodes = deps.gossip.nodes().await;
    let now = crate::runtime::shim::now_ms();
    let reply = match admit(&deps, &ca, &req, &exporter, &nodes, now).await {
        Ok(reply) => {
            info!(%remote, node = %req.name, token = %req.token_id, "node joined");
            reply
        }
        Err(r) => return refuse(&mut send, &remote, r).await,
    };
    let _ = write_frame(&mut send, &Frame::json(&reply)).await;
    let _ = send.finish();
    let _ = send.stopped().await;
}

async fn refuse(send: &mut quinn::SendStream, remote: &std::net::SocketAddr, r: Refusal) {
    warn!(%remote, reason = %r, "join refused");
    let _ = write_frame(send, &Frame::json(&JoinReply::Refused { reason: r.to_string() })).await;
    let _ = send.finish();
    let _ = send.stopped().await;
}

/// Decides a join; on success the node is recorded through Raft (which
/// gives it its Raft id) and its certificate signed.
pub async fn admit(
    deps: &JoinDeps,
    ca: &Authority,
    req: &JoinRequest,
    exporter: &[u8],
    nodes: &[NodeView],
    now_ms: u64,
) -> Result<JoinReply, Refusal> {
    let internal = |e: rusqlite::Error| Refusal::Internal(e.to_string());
    let replica = &deps.consensus.replica;
    let id = req.token_id.clone();
    let token = replica
        .token(&id)
        .map_err(internal)?
        .ok_or(Refusal::UnknownToken { id: id.clone() })?;
    if token.removed_ms.is_some() {
        return Err(Refusal::RemovedToken { id });
    }
    if now_ms > token.expires_ms {
        return Err(Refusal::Expired {
            id,
            ago_secs: (now_ms - token.expires_ms) / 1000,
        });
    }
    if !same_mac(&req.check, &check_value(&token.secret_sha256)) {
        return Err(Refusal::WrongSecret { id });
    }
    let csr_der = pem_der(&req.csr).ok_or_else(|| Refusal::BadRequest("the CSR is not PEM".into()))?;
    if !same_mac(&req.proof, &proof(&token.secret_sha256, exporter, &csr_der)) {
        return Err(Refusal::Replayed);
    }
    crate::api::validate::dns_label(&req.name).map_err(|reason| Refusal::BadName {
        name: req.name.clone(),
        reason,
    })?;
    let csr = NodeRequest::parse(&req.csr).map_err(|e| Refusal::BadRequest(e.to_string()))?;
    let key_sha256 = csr.key_sha256();
    if replica.joined_key(&req.name).map_err(internal)?.as_deref() == Some(key_sha256.as_str()) {
        return Err(Refusal::AlreadyJoined { name: req.name.clone() });
    }
    let live = |n: &&NodeView| n.name == req.name && matches!(n.status, NodeStatus::Ready | NodeStatus::Suspect);
    if nodes.iter().any(|n| live(&n)) || replica.node(&req.name).map_err(internal)?.is_some() {
        return Err(Refusal::NameTaken { name: req.name.clone() });
    }
    let node = NodeObject {
        name: req.name.clone(),
        raft_id: 0,
        addr: req.advertise,
        labels: req.labels.clone(),
        zone: req.zone.clone(),
        cpus: 0,
        memory_bytes: 0,
        cordoned: false,
        taints: Vec::new(),
        voter_eligible: req.voter.unwrap_or(true),
        joined_ms: now_ms,
        version: String::new(),
        arch: String::new(),
        images: Vec::new(),
        pod_cidr: None,
    };
    let cmd = Command::RegisterNode {
        node,
        key_sha256,
        token: id,
        network: None,
    };
    let raft_id = match deps.consensus.write(cmd).await {
        Ok(Response::RaftId(i)) => i,
        Ok(Response::Refused(why)) => return Err(Refusal::Cluster(why)),
        Ok(other) => return Err(Refusal::Internal(format!("unexpected answer {other:?}"))),
        Err(e) => return Err(Refusal::Cluster(e.to_string())),
    };
    let ips = vec![std::net::IpAddr::from([127, 0, 0, 1]), req.advertise.ip()];
    let cert = ca
        .sign_node_csr(csr, &req.name, &ips)
        .map_err(|e| Refusal::BadRequest(e.to_string()))?;
    let seeds = nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Ready)
        .map(|n| n.addr)
        .take(8)
        .collect();
    Ok(JoinReply::Joined {
        cert,
        ca: ca.cert_pem().to_string(),
        seeds,
        raft_id: Some(raft_id),
    })
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    match rustls_pemfile::read_one(&mut pem.as_bytes()).ok()?? {
        rustls_pemfile::Item::Csr(der) => Some(der.to_vec()),
        _ => None,
    }
}

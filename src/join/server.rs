//! The CA node's side of a join: check the token, sign the CSR, hand out seeds.

use super::token::{check_value, proof, same_mac};
use super::{JoinReply, JoinRequest, Refusal, EXPORTER_LABEL};
use crate::gossip::{Handle, NodeStatus, NodeView};
use crate::store::{JoinRecord, Store};
use crate::transport::framing::{read_frame, write_frame, Frame};
use crate::transport::pki::{Authority, NodeRequest};
use std::sync::Arc;
use tracing::{info, warn};

/// What the join server needs.
#[derive(Clone)]
pub struct JoinDeps {
    /// Tokens and join records.
    pub store: Arc<Store>,
    /// The CA, when this node holds its key.
    pub ca: Option<Arc<Authority>>,
    /// Membership, for seeds and name clashes.
    pub gossip: Handle,
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
    let nodes = deps.gossip.nodes().await;
    let reply = match admit(&deps, &req, &exporter, &nodes, crate::runtime::shim::now_ms()) {
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

/// Decides a join; on success the certificate is signed and recorded.
pub fn admit(deps: &JoinDeps, req: &JoinRequest, exporter: &[u8], nodes: &[NodeView], now_ms: u64) -> Result<JoinReply, Refusal> {
    let ca = deps.ca.as_ref().ok_or(Refusal::NotCa)?;
    let internal = |e: crate::store::StoreError| Refusal::Internal(e.to_string());
    let id = req.token_id.clone();
    let token = deps
        .store
        .get_token(&id)
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
    if let Some(prev) = deps.store.get_join(&req.name).map_err(internal)? {
        if prev.key_sha256 == key_sha256 {
            return Err(Refusal::AlreadyJoined { name: req.name.clone() });
        }
    }
    let live = |n: &&NodeView| n.name == req.name && matches!(n.status, NodeStatus::Ready | NodeStatus::Suspect);
    if nodes.iter().any(|n| live(&n)) {
        return Err(Refusal::NameTaken { name: req.name.clone() });
    }
    let ips = vec![std::net::IpAddr::from([127, 0, 0, 1]), req.advertise.ip()];
    let cert = ca
        .sign_node_csr(csr, &req.name, &ips)
        .map_err(|e| Refusal::BadRequest(e.to_string()))?;
    deps.store
        .record_join(&JoinRecord {
            name: req.name.clone(),
            key_sha256,
            token: id,
            joined_ms: now_ms,
        })
        .map_err(internal)?;
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
    })
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    match rustls_pemfile::read_one(&mut pem.as_bytes()).ok()?? {
        rustls_pemfile::Item::Csr(der) => Some(der.to_vec()),
        _ => None,
    }
}

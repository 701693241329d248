//! The node's one accept loop: every QUIC connection to the node's UDP port
//! goes to the API, to gossip, to the join server or to Raft by its ALPN, once its
//! certificate is right for that purpose.

use super::api::{self, ApiDeps};
use super::shutdown::Shutdown;
use crate::join::server::{self as join, JoinDeps};
use crate::transport::quic::{alpn, peer_name, ALPN_API, ALPN_GOSSIP, ALPN_JOIN, ALPN_RAFT};
use tokio::sync::mpsc;
use tracing::info;

/// Where connections go.
pub struct Routes {
    /// API handlers.
    pub api: ApiDeps,
    /// The gossip task's intake.
    pub gossip: mpsc::Sender<quinn::Connection>,
    /// The join server.
    pub join: JoinDeps,
    /// Raft RPCs.
    pub raft: crate::consensus::server::RaftServerDeps,
}

/// Accepts connections until shutdown.
pub async fn serve(endpoint: quinn::Endpoint, routes: Routes, mut shutdown: Shutdown) {
    loop {
        let incoming = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
        };
        let api = routes.api.clone();
        let gossip = routes.gossip.clone();
        let join = routes.join.clone();
        let raft = routes.raft.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let conn = match incoming.await {
                Ok(conn) => conn,
                // A certificate from another CA ends here.
                Err(e) => return info!(%remote, error = %e, "refused connection"),
            };
            let peer = peer_name(&conn);
            match (alpn(&conn).as_deref(), peer) {
                (Some(ALPN_JOIN), _) => join::serve(conn, join).await,
                (Some(ALPN_GOSSIP), Some(p)) if p.starts_with(crate::transport::pki::NODE_CN_PREFIX) => {
                    let _ = gossip.send(conn).await;
                }
                (Some(ALPN_RAFT), Some(p)) if p.starts_with(crate::transport::pki::NODE_CN_PREFIX) => {
                    crate::consensus::server::serve(conn, p, raft).await
                }
                (Some(ALPN_API), Some(p)) => api::connection(conn, p, api, shutdown).await,
                (proto, _) => {
                    info!(%remote, alpn = ?proto.map(String::from_utf8_lossy), "refused connection without the right certificate");
                    conn.close(1u32.into(), b"a certificate signed by the cluster CA is required");
                }
            }
        });
    }
    endpoint.close(0u32.into(), b"shutdown");
    info!("accept loop is done");
}

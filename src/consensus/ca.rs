//! The CA key lives on voters only. A node that finds itself a voter without
//! the key asks another voter for it over `shoal-raft` (mutual TLS, node
//! certificates; the giver checks the asker is a voter); a node that is a
//! learner and still holds it deletes it. The key never enters the log.

use super::network::{RaftReply, RaftRequest};
use super::Consensus;
use crate::daemon::shutdown::Shutdown;
use std::path::PathBuf;
use std::time::Duration;
use tracing::{info, warn};

/// How often the role is looked at.
const EVERY: Duration = Duration::from_secs(1);

/// Runs until shutdown.
pub async fn run(c: Consensus, pki: PathBuf, mut shutdown: Shutdown) {
    let key = pki.join("ca.key");
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            _ = tick.tick() => {}
        }
        let m = c.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership().clone();
        let voter = membership.voter_ids().any(|v| v == c.id);
        let learner = membership.learner_ids().any(|v| v == c.id);
        // Only a committed membership counts, so a demotion that may still
        // be undone does not cost the key.
        let committed = m.membership_config.log_id().map(|l| l.index) <= m.last_applied.map(|l| l.index);
        let has = key.exists();
        if voter && !has {
            for (id, node) in membership.nodes() {
                if *id == c.id || !membership.voter_ids().any(|v| v == *id) {
                    continue;
                }
                let Some(addr) = node.socket_addr() else { continue };
                match c.peers.call(addr, &RaftRequest::FetchCa, None, Duration::from_secs(3)).await {
                    Ok(RaftReply::FetchCa(Ok(pem))) => {
                        match crate::transport::pki::write_private(&key, &pem) {
                            Ok(()) => info!(from = %node.name, "received the CA key: this node is a voter"),
                            Err(e) => warn!(error = %e, "could not store the CA key"),
                        }
                        break;
                    }
                    Ok(other) => info!(from = %node.name, answer = ?other, "no CA key from this voter"),
                    Err(e) => info!(from = %node.name, error = %e, "no CA key from this voter"),
                }
            }
        } else if learner && has && committed {
            match std::fs::remove_file(&key) {
                Ok(()) => info!("removed the CA key: this node is a learner now"),
                Err(e) => warn!(error = %e, "could not remove the CA key"),
            }
        }
    }
}

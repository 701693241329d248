//! API requests about the cluster rather than this node's pods: members,
//! leave, join tokens.

use super::shutdown::Trigger;
use crate::api::wire::{Reply, Request};
use crate::gossip::Handle;
use crate::join::token::JoinToken;
use crate::store::{Store, TokenRecord};
use crate::transport::pki::{Authority, NODE_CN_PREFIX};
use std::sync::Arc;
use tracing::info;

/// What these handlers share.
#[derive(Clone)]
pub struct ClusterDeps {
    /// Tokens.
    pub store: Arc<Store>,
    /// The CA, on the node that holds its key.
    pub ca: Option<Arc<Authority>>,
    /// Membership.
    pub gossip: Handle,
    /// Stops the agent after `leave`.
    pub stop: Arc<Trigger>,
    /// This node's name.
    pub node_name: String,
}

const ADMIN: &str = "user:admin";

fn error(message: impl Into<String>) -> Reply {
    Reply::Error { message: message.into() }
}

/// Answers one cluster request from the client `peer` (certificate CN).
pub async fn handle(deps: &ClusterDeps, peer: &str, req: Request) -> Reply {
    let admin = peer == ADMIN;
    match req {
        Request::GetNodes => Reply::Nodes {
            nodes: deps.gossip.nodes().await,
        },
        Request::Leave => {
            let own = format!("{NODE_CN_PREFIX}{}", deps.node_name);
            if !admin && peer != own {
                return error(format!("{peer} may not make node {} leave", deps.node_name));
            }
            deps.gossip.leave().await;
            info!(node = %deps.node_name, "left the cluster");
            Reply::Left {
                name: deps.node_name.clone(),
            }
        }
        _ if !admin => error(format!("join tokens need the admin credentials; {peer} is not admin")),
        Request::TokenCreate { ttl_secs } => {
            let Some(ca) = &deps.ca else {
                return error("this node does not hold the cluster CA; create tokens on the node that ran `shoal init`");
            };
            let token = JoinToken::generate(&ca.sha256());
            let now = crate::runtime::shim::now_ms();
            let rec = TokenRecord {
                id: token.id.clone(),
                secret_sha256: token.secret_sha256(),
                created_ms: now,
                expires_ms: now.saturating_add(ttl_secs.saturating_mul(1000)),
                removed_ms: None,
                uses: 0,
            };
            match deps.store.put_token(&rec) {
                Ok(()) => Reply::Token {
                    token: token.to_string(),
                    id: rec.id,
                    expires_ms: rec.expires_ms,
                },
                Err(e) => error(e.to_string()),
            }
        }
        Request::TokenList => match deps.store.list_tokens() {
            Ok(tokens) => Reply::Tokens { tokens },
            Err(e) => error(e.to_string()),
        },
        Request::TokenRemove { id } => match deps.store.remove_token(&id, crate::runtime::shim::now_ms()) {
            Ok(true) => Reply::TokenRemoved { id },
            Ok(false) => error(format!("no join token {id} (or it was already removed)")),
            Err(e) => error(e.to_string()),
        },
        _ => error("not a cluster request"),
    }
}

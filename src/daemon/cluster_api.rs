//! API requests about the cluster rather than one node's pods: nodes,
//! cordon, node removal, events, join tokens, leave, consistent reads.

use super::shutdown::Trigger;
use crate::api::wire::{NodeRow, Reply, Request};
use crate::consensus::Consensus;
use crate::gossip::Handle;
use crate::join::token::JoinToken;
use crate::state::TokenRecord;
use crate::state::{Command, Response};
use crate::transport::pki::NODE_CN_PREFIX;
use std::sync::Arc;
use tracing::info;

/// What these handlers share.
#[derive(Clone)]
pub struct ClusterDeps {
    /// Raft and the replica.
    pub consensus: Consensus,
    /// SHA-256 of the cluster CA certificate (tokens pin it).
    pub ca_sha256: String,
    /// Membership.
    pub gossip: Handle,
    /// Stops the agent after `leave`.
    pub stop: Arc<Trigger>,
    /// This node's name.
    pub node_name: String,
}

/// The common name of the admin certificate.
pub const ADMIN: &str = "user:admin";

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
        Request::GossipInfo => match deps.gossip.stats().await {
            Some(stats) => Reply::GossipInfo { stats },
            None => error("gossip is not running"),
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
        Request::GetClusterNodes => nodes(deps).await,
        Request::GetEvents { object } => match deps.consensus.replica.events(object.as_deref()) {
            Ok(events) => Reply::Events { events },
            Err(e) => error(format!("reading the state: {e}")),
        },
        Request::Linearize => match deps.consensus.linearize().await {
            Ok(()) => Reply::Linearized,
            Err(e) => error(e.to_string()),
        },
        Request::TokenList if admin => match deps.consensus.replica.tokens() {
            Ok(tokens) => Reply::Tokens { tokens },
            Err(e) => error(format!("reading the state: {e}")),
        },
        Request::Cordon { .. } | Request::DeleteNode { .. } | Request::Taint { .. } | Request::Label { .. } if !admin => {
            error(format!("changing nodes needs the admin credentials; {peer} is not admin"))
        }
        Request::Cordon { node, cordoned } => {
            node_write(
                deps,
                &node,
                Command::Cordon {
                    name: node.clone(),
                    cordoned,
                },
            )
            .await
        }
        Request::Taint { node, add, remove } => {
            let current = match deps.consensus.replica.node(&node) {
                Ok(Some(n)) => n.taints,
                Ok(None) => return error(format!("node {node:?} not found")),
                Err(e) => return error(format!("reading the state: {e}")),
            };
            for (key, effect) in &remove {
                if !current.iter().any(|t| &t.key == key && effect.is_none_or(|e| e == t.effect)) {
                    return error(format!("taint {key:?} not found on node {node:?}"));
                }
            }
            let mut taints: Vec<_> = current
                .into_iter()
                .filter(|t| !remove.iter().any(|(k, e)| *k == t.key && e.is_none_or(|e| e == t.effect)))
                .filter(|t| !add.iter().any(|a| a.key == t.key && a.effect == t.effect))
                .collect();
            taints.extend(add);
            node_write(
                deps,
                &node,
                Command::Taint {
                    name: node.clone(),
                    taints,
                },
            )
            .await
        }
        Request::Label {
            node,
            set,
            remove,
            overwrite,
        } => {
            let mut labels = match deps.consensus.replica.node(&node) {
                Ok(Some(n)) => n.labels,
                Ok(None) => return error(format!("node {node:?} not found")),
                Err(e) => return error(format!("reading the state: {e}")),
            };
            for (k, v) in &set {
                if let Err(why) = crate::api::validate::label_key(k).and_then(|_| crate::api::validate::label_value(v)) {
                    return error(format!("label {k}={v}: {why}"));
                }
                if labels.get(k).is_some_and(|old| old != v) && !overwrite {
                    return error(format!("'{k}' already has a value ({}), and --overwrite is false", labels[k]));
                }
            }
            for k in &remove {
                labels.remove(k);
            }
            labels.extend(set);
            node_write(
                deps,
                &node,
                Command::Label {
                    name: node.clone(),
                    labels,
                },
            )
            .await
        }
        Request::DeleteNode { name } => {
            let cmd = Command::DeleteNode {
                name: name.clone(),
                now_ms: crate::runtime::shim::now_ms(),
            };
            node_write(deps, &name, cmd).await
        }
        _ if !admin => error(format!("join tokens need the admin credentials; {peer} is not admin")),
        Request::TokenCreate { ttl_secs } => {
            let token = JoinToken::generate(&deps.ca_sha256);
            let now = crate::runtime::shim::now_ms();
            let rec = TokenRecord {
                id: token.id.clone(),
                secret_sha256: token.secret_sha256(),
                created_ms: now,
                expires_ms: now.saturating_add(ttl_secs.saturating_mul(1000)),
                removed_ms: None,
                uses: 0,
            };
            match deps.consensus.write(Command::PutToken(rec.clone())).await {
                Ok(_) => Reply::Token {
                    token: token.to_string(),
                    id: rec.id,
                    expires_ms: rec.expires_ms,
                },
                Err(e) => error(e.to_string()),
            }
        }
        Request::TokenRemove { id } => {
            let removed = deps
                .consensus
                .replica
                .token(&id)
                .ok()
                .flatten()
                .is_some_and(|t| t.removed_ms.is_some());
            if removed {
                return error(format!("no join token {id} (or it was already removed)"));
            }
            let cmd = Command::RemoveToken {
                id: id.clone(),
                now_ms: crate::runtime::shim::now_ms(),
            };
            match deps.consensus.write(cmd).await {
                Ok(Response::Refused(_)) => error(format!("no join token {id} (or it was already removed)")),
                Ok(_) => Reply::TokenRemoved { id },
                Err(e) => error(e.to_string()),
            }
        }
        _ => error("not a cluster request"),
    }
}

async fn node_write(deps: &ClusterDeps, name: &str, cmd: Command) -> Reply {
    match deps.consensus.write(cmd).await {
        Ok(Response::Done(action)) => Reply::NodeChanged {
            object: format!("node/{name}"),
            action,
        },
        Ok(Response::Refused(why)) => error(why),
        Ok(other) => error(format!("unexpected answer {other:?}")),
        Err(e) => error(e.to_string()),
    }
}

/// Node objects merged with gossip's status and Raft's roles.
async fn nodes(deps: &ClusterDeps) -> Reply {
    let c = &deps.consensus;
    let (objects, pods) = match (c.replica.nodes(), c.replica.pods()) {
        (Ok(n), Ok(p)) => (n, p),
        (Err(e), _) | (_, Err(e)) => return error(format!("reading the state: {e}")),
    };
    let gossip = deps.gossip.nodes().await;
    let m = c.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let learners: Vec<u64> = membership.learner_ids().collect();
    // Members gossip knows that the state does not (hollow members, a node
    // not registered yet, a deleted node still running) show with role "-".
    let strangers: Vec<NodeRow> = gossip
        .iter()
        .filter(|g| !objects.iter().any(|n| n.name == g.name))
        .map(|g| {
            let m = g.meta.as_ref();
            NodeRow {
                name: g.name.clone(),
                status: g.status.to_string(),
                role: "-".into(),
                cordoned: false,
                addr: g.addr,
                raft_id: 0,
                labels: m.map(|m| m.labels.clone()).unwrap_or_default(),
                zone: m.and_then(|m| m.zone.clone()),
                cpus: m.map(|m| m.cpus).unwrap_or(0),
                memory_bytes: m.map(|m| m.memory_bytes).unwrap_or(0),
                version: m.map(|m| m.version.clone()).unwrap_or_default(),
                joined_ms: m.map(|m| m.joined_ms).unwrap_or(0),
                pods: 0,
                pod_cidr: None,
            }
        })
        .collect();
    let mut nodes: Vec<NodeRow> = objects
        .into_iter()
        .map(|n| {
            let role = if m.current_leader == Some(n.raft_id) {
                "leader"
            } else if voters.contains(&n.raft_id) {
                "voter"
            } else if learners.contains(&n.raft_id) {
                "learner"
            } else {
                "-"
            };
            let status = gossip
                .iter()
                .find(|g| g.name == n.name)
                .map(|g| g.status.to_string())
                .unwrap_or_else(|| "Unknown".into());
            NodeRow {
                status,
                role: role.into(),
                cordoned: n.cordoned,
                addr: n.addr,
                raft_id: n.raft_id,
                pods: pods.iter().filter(|p| p.node.as_deref() == Some(n.name.as_str())).count(),
                labels: n.labels,
                zone: n.zone,
                cpus: n.cpus,
                memory_bytes: n.memory_bytes,
                version: n.version,
                joined_ms: n.joined_ms,
                pod_cidr: n.pod_cidr,
                name: n.name,
            }
        })
        .collect();
    nodes.extend(strangers);
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Reply::ClusterNodes { nodes }
}

//! Hollow nodes for scale, as Kubernetes' kubemark: each joins with a real
//! token, runs real gossip and a real Raft learner on its own endpoint and
//! replica, and a recording runtime that reports every pod bound to it
//! Running (and gone once deleted) without starting a process. A hundred
//! fit in one process on a 2-core machine, so thousands of pods go through
//! the real leader, Raft and scheduler.
//!
//! Their gossip timers are four times the default's. With the default's, a
//! hundred members and a hundred learners on two shared cores answered
//! probes late, suspected each other, and redialled their QUIC connections
//! about 600 times a second, mostly in vain: the process starved, and so did
//! Raft. The real node keeps the default's and probes them with it; gossip
//! at fleet size with the default timers is what the gossip-only hollow
//! fleet (`shoal hollow` without `--token`) tests.

use super::report::{self, ReportDeps};
use crate::api::status::{ContainerState, ContainerStatus, Phase, PodStatus};
use crate::consensus::network::Peers;
use crate::consensus::{self, Consensus, RaftNode, RaftTiming};
use crate::daemon::shutdown::Shutdown;
use crate::gossip::net::{self as gnet, GossipDeps, Handle};
use crate::gossip::{GossipConfig, MemberId, Membership, NodeMeta, Role};
use crate::join::client::{JoinAs, Joined};
use crate::join::token::JoinToken;
use crate::state::{NodeFacts, PodObject, Replica, StatusReport};
use crate::transport::pki::Identity;
use crate::transport::quic;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A hollow node could not start.
#[derive(Debug, thiserror::Error)]
pub enum HollowNodeError {
    /// The join failed.
    #[error("{name}: join: {message}")]
    Join {
        /// Node name.
        name: String,
        /// Why.
        message: String,
    },
    /// Its endpoint, replica or Raft failed.
    #[error("{name}: {message}")]
    Start {
        /// Node name.
        name: String,
        /// Why.
        message: String,
    },
}

/// A running hollow node: its gossip handle.
pub struct HollowNode {
    /// Membership view.
    pub gossip: Handle,
}

/// Joins through `server` as `name` at `addr`, then runs every task until `shutdown`.
pub async fn start(
    name: &str,
    addr: SocketAddr,
    server: SocketAddr,
    token: &JoinToken,
    dir: &Path,
    shutdown: Shutdown,
) -> Result<HollowNode, HollowNodeError> {
    let start_err = |message: String| HollowNodeError::Start {
        name: name.to_string(),
        message,
    };
    let who = JoinAs {
        name: name.to_string(),
        advertise: addr,
        labels: BTreeMap::from([("shoal.dev/hollow".to_string(), "true".to_string())]),
        zone: None,
        voter: false,
    };
    let Joined {
        key,
        cert,
        ca,
        seeds,
        raft_id,
    } = crate::join::client::join(server, token, &who)
        .await
        .map_err(|e| HollowNodeError::Join {
            name: name.to_string(),
            message: e.to_string(),
        })?;
    let raft_id = raft_id.ok_or_else(|| start_err("the cluster gave no Raft id".into()))?;
    let id = Identity { cert, key };
    let endpoint = quic::server(addr, &ca, &id).map_err(|e| start_err(e.to_string()))?;
    let replica = Arc::new(Replica::open_with(&dir.join(format!("{name}.db")), false).map_err(|e| start_err(e.to_string()))?);
    let peers = Peers::new(
        endpoint.clone(),
        quic::node_client(&ca, &id, quic::ALPN_RAFT).map_err(|e| start_err(e.to_string()))?,
    );
    let consensus = consensus::start(consensus::Start {
        id: raft_id,
        me: RaftNode::new(name, addr),
        bootstrap: false,
        timing: RaftTiming::default(),
        replica: replica.clone(),
        peers,
    })
    .await
    .map_err(|e| start_err(e.to_string()))?;

    let (cpus, memory_bytes) = crate::gossip::capacity();
    let now = crate::runtime::shim::now_ms();
    let meta = NodeMeta::local(who.labels.clone(), None, Role::Agent, now);
    let me = MemberId {
        name: name.to_string(),
        addr,
        generation: now,
    };
    let (gossip, cmds) = gnet::channel();
    let (in_tx, in_rx) = mpsc::channel(64);
    tokio::spawn(gnet::run(GossipDeps {
        core: Membership::new(me, meta, seeds, GossipConfig::default().slowed(4), now ^ raft_id),
        endpoint: endpoint.clone(),
        client: quic::gossip_client(&ca, &id).map_err(|e| start_err(e.to_string()))?,
        incoming: in_rx,
        cmds,
        remember: None,
        log_changes: false,
        shutdown: shutdown.clone(),
    }));
    let raft_deps = consensus::server::RaftServerDeps {
        consensus: consensus.clone(),
        ca_key: dir.join("no-ca.key"),
    };
    tokio::spawn(accept(endpoint, in_tx, raft_deps, shutdown.clone()));
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    tokio::spawn(report::run(ReportDeps {
        consensus: consensus.clone(),
        facts: NodeFacts {
            name: name.to_string(),
            addr,
            cpus,
            memory_bytes,
            version: env!("CARGO_PKG_VERSION").to_string(),
            arch: crate::state::kube_arch().to_string(),
        },
        register: None,
        images: None,
        reports: reports_rx,
        shutdown: shutdown.clone(),
    }));
    tokio::spawn(record(consensus, name.to_string(), reports_tx, shutdown));
    Ok(HollowNode { gossip })
}

/// Gossip and Raft connections; nothing else is served.
async fn accept(
    endpoint: quinn::Endpoint,
    gossip: mpsc::Sender<quinn::Connection>,
    raft: consensus::server::RaftServerDeps,
    mut shutdown: Shutdown,
) {
    loop {
        let incoming = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            i = endpoint.accept() => match i { Some(i) => i, None => break },
        };
        let gossip = gossip.clone();
        let raft = raft.clone();
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            let peer = quic::peer_name(&conn).filter(|_| gnet::is_node(&conn));
            match (quic::alpn(&conn).as_deref(), peer) {
                (Some(quic::ALPN_GOSSIP), Some(_)) => {
                    let _ = gossip.send(conn).await;
                }
                (Some(quic::ALPN_RAFT), Some(p)) => consensus::server::serve(conn, p, raft).await,
                _ => conn.close(1u32.into(), b"hollow nodes serve gossip and raft only"),
            }
        });
    }
    endpoint.close(0u32.into(), b"shutdown");
}

/// The recording runtime: a pod bound here is Running and Ready at once (as
/// if every probe passed: no process runs to probe); a pod being deleted is
/// gone at once.
async fn record(c: Consensus, name: String, reports: mpsc::UnboundedSender<StatusReport>, mut shutdown: Shutdown) {
    let mut applied = c.replica.subscribe();
    let mut told: HashMap<(String, String), (String, bool)> = HashMap::new();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            r = applied.changed() => if r.is_err() { break },
        }
        let Ok(pods) = c.replica.pods_on(&name) else { continue };
        let now = crate::runtime::shim::now_ms();
        for p in pods {
            let key = p.key();
            let gone = p.deleting_ms.is_some();
            if told.get(&key).is_some_and(|(uid, g)| *uid == p.uid && *g == gone) {
                continue;
            }
            if !gone && p.status.phase == Phase::Running {
                told.insert(key, (p.uid.clone(), false));
                continue;
            }
            told.insert(key.clone(), (p.uid.clone(), gone));
            let _ = reports.send(StatusReport {
                namespace: key.0,
                name: key.1,
                uid: p.uid.clone(),
                status: (!gone).then(|| running(&p, &name, now)),
            });
        }
    }
}

fn running(p: &PodObject, node: &str, now: u64) -> PodStatus {
    let view = |c: &crate::api::manifest::Container| ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        state: ContainerState::Running { started_at: now },
        last_state: None,
        restart_count: 0,
        ready: true,
        started: Some(true),
        pid: None,
    };
    PodStatus {
        phase: Phase::Running,
        node_name: node.to_string(),
        start_time: Some(now),
        terminating: false,
        ready_since: Some(now),
        init_container_statuses: Vec::new(),
        container_statuses: p.pod.spec.containers.iter().map(view).collect(),
        pod_ip: None,
    }
}

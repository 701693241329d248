//! Hollow members: many gossip members in one process, each with its own
//! QUIC endpoint, certificate, [`Membership`] core and edge task: the real
//! code, only without pods. They let a test or a benchmark watch a fleet of a
//! hundred converge on a 2-core machine.

use super::net::{self, GossipDeps, Handle};
use super::{GossipConfig, MemberId, Membership, NodeMeta, NodeStatus, Role};
use crate::daemon::shutdown::Shutdown;
use crate::transport::pki::{Authority, PkiError};
use crate::transport::quic::{self, TransportError};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use tokio::sync::mpsc;

/// A fleet to fake.
#[derive(Debug, Clone)]
pub struct HollowSpec {
    /// `pki/` of a node holding the cluster CA (signs the members' certificates).
    pub pki_dir: PathBuf,
    /// IP every member binds.
    pub bind: IpAddr,
    /// Member i listens on `base_port + i`.
    pub base_port: u16,
    /// How many members.
    pub count: usize,
    /// Name prefix.
    pub prefix: String,
    /// Where the cluster is.
    pub seeds: Vec<SocketAddr>,
    /// Gossip timers.
    pub cfg: GossipConfig,
}

/// Starting the hollow fleet failed.
#[derive(Debug, thiserror::Error)]
pub enum HollowError {
    /// The CA could not be loaded or sign.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// An endpoint could not be made.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// The running fleet.
pub struct Hollow {
    handles: Vec<Handle>,
}

/// Starts `spec.count` members; they stop when `shutdown` fires.
pub fn start(spec: &HollowSpec, shutdown: Shutdown) -> Result<Hollow, HollowError> {
    let ca = Authority::load(&spec.pki_dir)?;
    let ca_pem = ca.cert_pem().to_string();
    let now = crate::runtime::shim::now_ms();
    let mut handles = Vec::with_capacity(spec.count);
    for i in 0..spec.count {
        let name = format!("{}-{i:03}", spec.prefix);
        let addr = SocketAddr::new(spec.bind, spec.base_port + i as u16);
        let id = ca.issue_node(&name, &[spec.bind])?;
        let endpoint = quic::server(addr, &ca_pem, &id)?;
        let (handle, cmds) = net::channel();
        let (in_tx, in_rx) = mpsc::channel(64);
        tokio::spawn(accept(endpoint.clone(), in_tx, shutdown.clone()));
        let labels = BTreeMap::from([("shoal.dev/hollow".to_string(), "true".to_string())]);
        let meta = NodeMeta::local(labels, None, Role::Agent, now);
        let me = MemberId {
            name,
            addr,
            generation: now,
        };
        let core = Membership::new(me, meta, spec.seeds.clone(), spec.cfg.clone(), now ^ i as u64);
        tokio::spawn(net::run(GossipDeps {
            core,
            endpoint,
            client: quic::gossip_client(&ca_pem, &id)?,
            incoming: in_rx,
            cmds,
            remember: None,
            log_changes: false,
            shutdown: shutdown.clone(),
        }));
        handles.push(handle);
    }
    Ok(Hollow { handles })
}

async fn accept(endpoint: quinn::Endpoint, gossip: mpsc::Sender<quinn::Connection>, mut shutdown: Shutdown) {
    loop {
        let incoming = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            i = endpoint.accept() => match i { Some(i) => i, None => break },
        };
        let gossip = gossip.clone();
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            if quic::alpn(&conn).as_deref() == Some(quic::ALPN_GOSSIP) && net::is_node(&conn) {
                let _ = gossip.send(conn).await;
            } else {
                conn.close(1u32.into(), b"hollow members only gossip");
            }
        });
    }
    endpoint.close(0u32.into(), b"shutdown");
}

impl Hollow {
    /// How many members see at least `expect` members Ready, the fewest Ready
    /// any member sees, and an example of what a lagging member is missing.
    pub async fn convergence(&self, expect: usize) -> (usize, usize, Option<String>) {
        let mut done = 0;
        let mut fewest = usize::MAX;
        let mut example = None;
        for h in &self.handles {
            let nodes = h.nodes().await;
            let ready = nodes.iter().filter(|n| n.status == NodeStatus::Ready).count();
            fewest = fewest.min(ready);
            if ready >= expect {
                done += 1;
            } else if example.is_none() {
                let odd: Vec<String> = nodes
                    .iter()
                    .filter(|n| n.status != NodeStatus::Ready)
                    .map(|n| format!("{} {}", n.name, n.status))
                    .take(3)
                    .collect();
                let me = nodes.first().map(|n| n.name.clone()).unwrap_or_default();
                example = Some(format!("{me} knows {} members; not Ready: [{}]", nodes.len(), odd.join(", ")));
            }
        }
        (done, fewest, example)
    }

    /// The members.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }
}

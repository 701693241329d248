//! The reporter: carries this node's facts and its pods' status changes to
//! the leader as Raft writes. Changes are coalesced per pod and sent in one
//! batch; a batch that cannot commit (no quorum) is kept, newer changes
//! replace older ones, and it is sent again a second later. Only changes
//! are sent, so an idle node writes nothing. The images the node holds go
//! the same way, when they change.

use crate::consensus::Consensus;
use crate::daemon::shutdown::Shutdown;
use crate::state::{ClusterNetwork, Command, NodeFacts, NodeObject, Response, StatusReport};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// How long changes gather before a batch goes out.
const GATHER: Duration = Duration::from_millis(50);
/// Wait after a batch failed.
const RETRY: Duration = Duration::from_secs(1);

/// What the reporter needs.
pub struct ReportDeps {
    /// Raft.
    pub consensus: Consensus,
    /// This node's facts, written once when they differ from the state's.
    pub facts: NodeFacts,
    /// The first node registers itself once it leads the new cluster,
    /// with the address plan from its `init`.
    pub register: Option<(NodeObject, Option<ClusterNetwork>)>,
    /// The image store, whose images are reported when they change (none
    /// for a hollow node).
    pub images: Option<std::sync::Arc<crate::runtime::image::ImageStore>>,
    /// Status changes from the node loop.
    pub reports: mpsc::UnboundedReceiver<StatusReport>,
    /// Stop.
    pub shutdown: Shutdown,
}

/// Runs until shutdown.
pub async fn run(deps: ReportDeps) {
    let ReportDeps {
        consensus,
        facts,
        register,
        images,
        mut reports,
        mut shutdown,
    } = deps;
    let mut image_changes = images.as_ref().map(|i| i.subscribe());
    // Sent once at start (the state may be stale) and after each change.
    let mut images_dirty = images.is_some();
    let name = facts.name.clone();
    let mut facts = Some(facts);
    let mut pending: BTreeMap<(String, String), StatusReport> = BTreeMap::new();
    let mut retry_at: Option<tokio::time::Instant> = Some(tokio::time::Instant::now());
    loop {
        let wake = async {
            match retry_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let changed = async {
            match image_changes.as_mut() {
                Some(rx) => rx.changed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            Ok(()) = changed => {
                images_dirty = true;
                if retry_at.is_none() {
                    retry_at = Some(tokio::time::Instant::now() + GATHER);
                }
                continue;
            }
            r = reports.recv() => match r {
                Some(r) => {
                    pending.insert((r.namespace.clone(), r.name.clone()), r);
                    if retry_at.is_none() {
                        retry_at = Some(tokio::time::Instant::now() + GATHER);
                    }
                    continue;
                }
                None => break,
            },
            _ = wake => {}
        }
        retry_at = None;
        if let Some(f) = facts.take() {
            if !send_facts(&consensus, &f, register.as_ref()).await {
                facts = Some(f);
                retry_at = Some(tokio::time::Instant::now() + RETRY);
            }
        }
        if let (true, Some(store)) = (images_dirty, &images) {
            if send_images(&consensus, &name, store).await {
                images_dirty = false;
            } else {
                retry_at = Some(tokio::time::Instant::now() + RETRY);
            }
        }
        if pending.is_empty() {
            continue;
        }
        let items: Vec<StatusReport> = pending.values().cloned().collect();
        let n = items.len();
        let cmd = Command::Status { node: name.clone(), items };
        match consensus.write(cmd).await {
            Ok(_) => {
                debug!(pods = n, "pod statuses committed");
                pending.clear();
            }
            Err(e) => {
                warn!(error = %e, pods = n, "pod statuses not committed; retrying");
                retry_at = Some(tokio::time::Instant::now() + RETRY);
            }
        }
    }
}

/// Writes the facts if the state's copy differs; true when nothing is left to do.
async fn send_facts(c: &Consensus, f: &NodeFacts, register: Option<&(NodeObject, Option<ClusterNetwork>)>) -> bool {
    let n = match (c.replica.node(&f.name), register) {
        (Ok(Some(n)), _) => n,
        (Ok(None), Some((me, network))) if c.replica.nodes().is_ok_and(|all| all.is_empty()) => {
            let cmd = Command::RegisterNode {
                node: me.clone(),
                key_sha256: String::new(),
                token: String::new(),
                network: *network,
            };
            return match c.write(cmd).await {
                Ok(Response::RaftId(id)) if id == me.raft_id => false, // facts follow
                Ok(other) => {
                    warn!(answer = ?other, "could not register this node");
                    false
                }
                Err(e) => {
                    debug!(error = %e, "registering this node; retrying");
                    false
                }
            };
        }
        _ => return false, // not in the state yet
    };
    if n.pod_cidr.is_some()
        && n.addr == f.addr
        && n.cpus == f.cpus
        && n.memory_bytes == f.memory_bytes
        && n.version == f.version
        && n.arch == f.arch
    {
        return true;
    }
    match c.write(Command::NodeFacts(f.clone())).await {
        Ok(Response::Refused(why)) => {
            warn!(%why, "node facts refused");
            true
        }
        Ok(_) => true,
        Err(e) => {
            warn!(error = %e, "node facts not committed; retrying");
            false
        }
    }
}

/// Writes the node's images if the state's copy differs; true when nothing
/// is left to do.
async fn send_images(c: &Consensus, name: &str, store: &crate::runtime::image::ImageStore) -> bool {
    let images = match store.node_images() {
        Ok(i) => i,
        Err(e) => {
            warn!(error = %e, "listing this node's images failed");
            return true;
        }
    };
    match c.replica.node(name) {
        Ok(Some(n)) if n.images == images => return true,
        Ok(Some(_)) => {}
        _ => return false, // not in the state yet
    }
    let cmd = Command::NodeImages {
        name: name.to_string(),
        images,
    };
    match c.write(cmd).await {
        Ok(_) => true,
        Err(e) => {
            debug!(error = %e, "node images not committed; retrying");
            false
        }
    }
}

//! The node's network task: once the cluster has handed this node a subnet
//! (its replica says so), set the bridge up for it; at every agent start,
//! check that it is still in place. Retries every 2 s while the kernel
//! refuses.

use super::PodNetwork;
use crate::daemon::shutdown::Shutdown;
use crate::state::Replica;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

const RETRY: Duration = Duration::from_secs(2);

/// What the task needs.
pub struct NetDeps {
    /// The pod network.
    pub net: Arc<PodNetwork>,
    /// This node's copy of the cluster state.
    pub replica: Arc<Replica>,
    /// This node's name in it.
    pub node_name: String,
    /// The address other nodes reach this one at (its uplink).
    pub node_ip: Ipv4Addr,
    /// Stop.
    pub shutdown: Shutdown,
}

/// Runs until shutdown.
pub async fn run(deps: NetDeps) {
    let NetDeps {
        net,
        replica,
        node_name,
        node_ip,
        mut shutdown,
    } = deps;
    let mut changes = replica.subscribe();
    let mut failed = false;
    let mut peers_seen = None;
    let mut far_seen = Vec::new();
    loop {
        let nodes = replica.nodes().unwrap_or_default();
        let want = nodes.iter().find(|n| n.name == node_name).and_then(|n| n.pod_cidr);
        if let Some(subnet) = want.filter(|s| failed || net.subnet() != Some(*s)) {
            match net.ensure(subnet, node_ip).await {
                Ok(()) => {
                    info!(%subnet, bridge = %net.bridge(), "pod network ready");
                    failed = false;
                }
                Err(e) => {
                    warn!(%subnet, error = %e, "pod network not ready; retrying");
                    failed = true;
                }
            }
        }
        let peers: Vec<_> = nodes.iter().map(|n| (n.name.clone(), n.addr, n.pod_cidr)).collect();
        if failed || peers_seen.as_ref() != Some(&peers) {
            match net.sync_peers(&node_name, &nodes).await {
                Ok(far) => {
                    if far != far_seen && !far.is_empty() {
                        warn!(peers = ?far, "no direct route to these nodes' pods (not on a shared link; tunnels are not built yet)");
                    }
                    far_seen = far;
                    peers_seen = Some(peers);
                }
                Err(e) => {
                    warn!(error = %e, "routes to peers' pods not in place; retrying");
                    failed = true;
                }
            }
        }
        let retry = async {
            if failed {
                tokio::time::sleep(RETRY).await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            r = changes.changed() => if r.is_err() { break },
            _ = retry => {}
        }
    }
}

//! The node's network task: once the cluster has handed this node a subnet
//! (its replica says so), set the bridge up for it, keep the routes and
//! tunnels to the peers' subnets and the node's nftables table in step with
//! the replica; at every agent start, check that all of it is in place.
//! Retries every 2 s while the kernel refuses.

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
    let mut tunnels_seen = Vec::new();
    let mut table = super::nft::Table::new(net.bridge(), super::nft::Nft);
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
        if net.subnet().is_some() && (failed || peers_seen.as_ref() != Some(&peers)) {
            match net.sync_peers(&node_name, &nodes).await {
                Ok(plan) => {
                    if plan.tunnels != tunnels_seen {
                        let remotes: Vec<String> = plan.tunnels.iter().map(|t| format!("{}@{}", t.subnet, t.remote)).collect();
                        info!(peers = ?remotes, "pod subnets reached through VXLAN");
                    }
                    tunnels_seen = plan.tunnels;
                    peers_seen = Some(peers);
                }
                Err(e) => {
                    warn!(error = %e, "routes to peers' pods not in place; retrying");
                    failed = true;
                }
            }
        }
        if net.subnet().is_some() {
            let plan = replica.network().unwrap_or_default();
            let want = super::nft::model::desired(plan.cluster_cidr, &[]);
            if let Err(e) = table.sync(want).await {
                warn!(error = %e, "nftables table not in place; retrying");
                failed = true;
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

//! The node's network task: once the cluster has handed this node a subnet
//! (its replica says so), set the bridge up for it, keep the routes and
//! tunnels to the peers' subnets and the node's nftables table (masquerade
//! and every Service) in step with the replica and with gossip's view of
//! which nodes are Down; at every agent start, check that all of it is in
//! place. Retries every 2 s while the kernel refuses.

use super::dns::zone::Zone;
use super::nft::model::Addresses;
use super::nft::{Nft, Table};
use super::PodNetwork;
use crate::daemon::shutdown::Shutdown;
use crate::gossip::net::Handle as Gossip;
use crate::state::Replica;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

const RETRY: Duration = Duration::from_secs(2);
/// How often gossip is asked which nodes are Down (their pods stop being
/// endpoints).
const HEALTH: Duration = Duration::from_millis(250);
/// How often the kernel's table is compared with what was written (a
/// flushed ruleset is rewritten within this).
const DRIFT: Duration = Duration::from_secs(30);

/// What the task needs.
pub struct NetDeps {
    /// The pod network.
    pub net: Arc<PodNetwork>,
    /// This node's copy of the cluster state.
    pub replica: Arc<Replica>,
    /// Membership, for the nodes that are Down.
    pub gossip: Gossip,
    /// This node's name in it.
    pub node_name: String,
    /// The address other nodes reach this one at (its uplink).
    pub node_ip: Ipv4Addr,
    /// Where the cluster's names go, for the DNS task.
    pub zone: watch::Sender<Arc<Zone>>,
    /// Stop.
    pub shutdown: Shutdown,
}

/// What the last pass put in place.
struct Synced {
    peers: Option<Vec<(String, std::net::SocketAddr, Option<ipnet::Ipv4Net>)>>,
    tunnels: Vec<super::Tunnel>,
    table: Table<Nft>,
    /// The Service ports the table balances, for stale UDP entries; `None`
    /// until the first sync (an agent restart flushes nothing).
    ports: Option<Vec<super::nft::model::ServicePort>>,
    /// This node was in the replica's node table during this run.
    member: bool,
    /// Conntrack entries still to delete (a failed flush is retried).
    flush: Vec<super::conntrack::Flush>,
}

/// Runs until shutdown.
pub async fn run(deps: NetDeps) {
    let NetDeps {
        net,
        replica,
        gossip,
        node_name,
        node_ip,
        zone,
        mut shutdown,
    } = deps;
    let mut changes = replica.subscribe();
    let mut health = tokio::time::interval(HEALTH);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut drift = tokio::time::interval(DRIFT);
    drift.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut down = BTreeSet::new();
    let mut synced = Synced {
        peers: None,
        tunnels: Vec::new(),
        table: Table::new(net.bridge(), Nft),
        ports: None,
        member: false,
        flush: Vec::new(),
    };
    loop {
        let failed = !pass(&net, &replica, &node_name, node_ip, &down, &zone, &mut synced).await;
        let retry = async {
            if failed {
                tokio::time::sleep(RETRY).await
            } else {
                std::future::pending().await
            }
        };
        tokio::pin!(retry);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait() => return,
                r = changes.changed() => if r.is_err() { return } else { break },
                _ = health.tick() => {
                    let now = gossip.down().await;
                    if now != down {
                        down = now;
                        break;
                    }
                }
                _ = &mut retry => break,
                _ = drift.tick() => match synced.table.intact().await {
                    Ok(true) => {}
                    Ok(false) => {
                        warn!(table = %synced.table.name(), "the nftables table was changed outside Shoal; writing it again");
                        break;
                    }
                    Err(e) => debug!(error = %e, "could not list the nftables table"),
                },
            }
        }
    }
}

/// One pass over everything; false if some part must be retried.
async fn pass(
    net: &PodNetwork,
    replica: &Replica,
    me: &str,
    node_ip: Ipv4Addr,
    down: &BTreeSet<String>,
    zone: &watch::Sender<Arc<Zone>>,
    s: &mut Synced,
) -> bool {
    let nodes = match replica.nodes() {
        Ok(n) => n,
        Err(e) => {
            warn!(error = %e, "reading the node table failed; retrying");
            return false;
        }
    };
    let present = nodes.iter().any(|n| n.name == me);
    if s.member && !present {
        publish(zone, Zone::default());
        return remove_all(net, s).await;
    }
    s.member |= present;
    let Some(subnet) = nodes.iter().find(|n| n.name == me).and_then(|n| n.pod_cidr) else {
        return true; // no subnet yet: nothing to do until the replica changes
    };
    let mut ok = true;
    if net.subnet() != Some(subnet) || s.peers.is_none() {
        match net.ensure(subnet, node_ip).await {
            Ok(()) => info!(%subnet, bridge = %net.bridge(), "pod network ready"),
            Err(e) => {
                warn!(%subnet, error = %e, "pod network not ready; retrying");
                return false;
            }
        }
    }
    let peers: Vec<_> = nodes.iter().map(|n| (n.name.clone(), n.addr, n.pod_cidr)).collect();
    if s.peers.as_ref() != Some(&peers) {
        match net.sync_peers(me, &nodes).await {
            Ok(plan) => {
                if plan.tunnels != s.tunnels {
                    let remotes: Vec<String> = plan.tunnels.iter().map(|t| format!("{}@{}", t.subnet, t.remote)).collect();
                    info!(peers = ?remotes, "pod subnets reached through VXLAN");
                }
                s.tunnels = plan.tunnels;
                s.peers = Some(peers);
            }
            Err(e) => {
                warn!(error = %e, "routes to peers' pods not in place; retrying");
                s.peers = None;
                ok = false;
            }
        }
    }
    let read = || -> rusqlite::Result<_> {
        Ok((
            replica.network()?,
            replica.services()?,
            replica.endpoints_objects()?,
            replica.pods()?,
        ))
    };
    let (plan, services, manual, pods) = match read() {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "reading Services and pods failed; the table stays as it is; retrying");
            return false;
        }
    };
    let resolved = super::endpoints::resolve(&services, &manual, &pods, down);
    let ports = super::endpoints::proxy_ports(&resolved);
    publish(
        zone,
        Zone::build(&resolved, &pods, &[plan.cluster_cidr, plan.service_cidr]).at(plan.dns_ip()),
    );
    let addrs = Addresses {
        cluster: plan.cluster_cidr,
        services: plan.service_cidr,
        dns: Some((plan.dns_ip(), super::ipam::gateway(subnet))),
    };
    if let Err(e) = s.table.sync(super::nft::model::desired(&addrs, &ports)).await {
        warn!(error = %e, "nftables table not in place; retrying");
        return false;
    }
    // The rules send new flows to live endpoints; now forget the old ones.
    if let Some(old) = &s.ports {
        s.flush.extend(super::conntrack::stale(old, &ports));
    }
    s.ports = Some(ports);
    if !s.flush.is_empty() {
        let stale = s.flush.clone();
        match tokio::task::spawn_blocking(move || super::conntrack::flush(&stale)).await {
            Ok(Ok(n)) => {
                debug!(entries = n, "stale UDP conntrack entries removed");
                s.flush.clear();
            }
            Ok(Err(e)) => {
                warn!(error = %e, "removing stale UDP conntrack entries failed; retrying");
                ok = false;
            }
            Err(e) => {
                warn!(error = %e, "conntrack task failed; retrying");
                ok = false;
            }
        }
    }
    ok
}

/// Hands the DNS task a new zone, if it differs.
fn publish(tx: &watch::Sender<Arc<Zone>>, new: Zone) {
    tx.send_if_modified(|z| {
        let changed = **z != new;
        if changed {
            *z = Arc::new(new);
        }
        changed
    });
}

/// The node was deleted from the cluster: its table, routes, tunnel and
/// bridge go (its pods are stopped by the node's driver, which sees them
/// gone from the replica).
async fn remove_all(net: &PodNetwork, s: &mut Synced) -> bool {
    let table = s.table.remove().await;
    let links = net.remove_all().await;
    match (table, links) {
        (Ok(()), Ok(())) => {
            info!("node deleted from the cluster: its pod network is removed");
            s.member = false;
            s.peers = None;
            s.ports = None;
            true
        }
        (t, l) => {
            warn!(table = ?t.err(), links = ?l.err(), "removing the deleted node's pod network failed; retrying");
            false
        }
    }
}

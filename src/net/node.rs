//! A node's pod network: the subnet the cluster handed it, the bridge made
//! for it, and each pod's address (store) and links (`link`).

use super::routes::Plan;
use super::{LinkError, Links};
use crate::store::{Store, StoreError};
use ipnet::Ipv4Net;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// VXLAN's 50 bytes of headers: pod links leave room for them from the
/// start, so peers across a router can be reached without changing them.
pub const VXLAN_OVERHEAD: u32 = 50;

/// Setting up a pod's network failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The cluster has not handed this node a subnet yet.
    #[error("the node has no pod subnet yet (network not ready)")]
    NotReady,
    /// Every address of the subnet is taken.
    #[error("no free address in the node's pod subnet {0}")]
    Full(Ipv4Net),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The kernel refused.
    #[error(transparent)]
    Link(#[from] LinkError),
}

/// The node's subnet and bridge once they are in place.
#[derive(Debug, Clone, Copy)]
struct Ready {
    subnet: Ipv4Net,
    node_ip: Ipv4Addr,
    mtu: u32,
}

/// The node's pod network.
pub struct PodNetwork {
    links: Links,
    store: Arc<Store>,
    ready: Mutex<Option<Ready>>,
    /// One attach at a time per pod: its containers start side by side.
    attaching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl PodNetwork {
    /// A pod network over `links` whose addresses live in `store`.
    pub fn new(links: Links, store: Arc<Store>) -> PodNetwork {
        PodNetwork {
            links,
            store,
            ready: Mutex::new(None),
            attaching: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the node up for `subnet`: forwarding on, the bridge with the
    /// gateway address, pod links sized for the uplink that holds
    /// `node_ip` less VXLAN's headers.
    pub async fn ensure(&self, subnet: Ipv4Net, node_ip: Ipv4Addr) -> Result<(), NetError> {
        let uplink = self.links.uplink(node_ip).await?.map_or(1500, |(_, mtu)| mtu);
        let mtu = uplink.saturating_sub(VXLAN_OVERHEAD).max(576);
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");
        // Bridged pod-to-pod packets pass the ip hooks, so a Service's
        // DNAT is undone on the reply even when both pods share the bridge
        // (kube-proxy needs the same; per network namespace since 5.3).
        if let Err(e) = std::fs::write("/proc/sys/net/bridge/bridge-nf-call-iptables", "1") {
            // Without br_netfilter, a pod that reaches a Service whose
            // endpoint shares its bridge gets the reply from the pod's own
            // address and drops it; every other path works.
            tracing::warn!(error = %e, "bridge-nf-call-iptables cannot be set (is the br_netfilter module loaded? `modprobe br_netfilter`): Services between pods of one node will not answer");
        }
        self.links.ensure_bridge(subnet, mtu).await?;
        *self.ready.lock().unwrap_or_else(|e| e.into_inner()) = Some(Ready { subnet, node_ip, mtu });
        Ok(())
    }

    /// The bridge's name.
    pub fn bridge(&self) -> &str {
        &self.links.names().bridge
    }

    /// The node's subnet, once set up.
    pub fn subnet(&self) -> Option<Ipv4Net> {
        self.ready().map(|r| r.subnet)
    }

    fn ready(&self) -> Option<Ready> {
        *self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives pod `uid` (namespace at `netns`) its address and links; the
    /// same address on every call.
    pub async fn attach(&self, uid: &str, netns: &Path) -> Result<Ipv4Addr, NetError> {
        let r = self.ready().ok_or(NetError::NotReady)?;
        let lock = self
            .attaching
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(uid.to_string())
            .or_default()
            .clone();
        let _one = lock.lock().await;
        let ip = self.store.assign_ip(uid, r.subnet)?.ok_or(NetError::Full(r.subnet))?;
        self.links.attach(uid, netns, ip, r.subnet, r.mtu).await?;
        Ok(ip)
    }

    /// Takes pod `uid`'s links down and frees its address.
    pub async fn detach(&self, uid: &str) -> Result<(), NetError> {
        self.attaching.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
        self.links.detach(uid).await?;
        self.store.release_ip(uid)?;
        Ok(())
    }

    /// Removes everything the node added to the host's network: Shoal's
    /// routes, the VXLAN device and the bridge (the pods' veths go with
    /// their pods). For a node deleted from the cluster.
    pub async fn remove_all(&self) -> Result<(), NetError> {
        *self.ready.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.links.sync_routes(&[]).await?;
        let names = self.links.names().clone();
        self.links.delete(&names.vxlan).await?;
        self.links.delete(&names.bridge).await?;
        Ok(())
    }

    /// Routes to the peers' pod subnets: direct to peers on this node's
    /// links, through the VXLAN device to the others. Returns the plan.
    pub async fn sync_peers(&self, me: &str, nodes: &[crate::state::NodeObject]) -> Result<Plan, NetError> {
        let r = self.ready().ok_or(NetError::NotReady)?;
        let local = self.links.local().await?;
        let plan = super::routes::desired(me, nodes, &local);
        self.links.sync_tunnels(r.subnet, r.node_ip, r.mtu, &plan.tunnels).await?;
        self.links.sync_routes(&plan.routes).await?;
        Ok(plan)
    }
}

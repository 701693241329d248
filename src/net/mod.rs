//! Pod networking on a node: every pod gets an address from the node's
//! subnet (the leader hands each node one, `state::network`), a veth pair
//! whose pod end is `eth0` inside the pod's network namespace, and a default
//! route through the node's bridge, which holds the subnet's first address.
//!
//! ```text
//!   pod netns                      host netns
//!   eth0 10.42.3.7/24 ── veth ──── shoal<hash> bridge 10.42.3.1/24
//!   default via 10.42.3.1                 │ forwarding, masquerade off-cluster
//! ```
//!
//! `ipam` picks addresses (pure); the store keeps them; `link` talks netlink
//! (rtnetlink) and is the only part that needs root. Every link's name
//! starts with `shoal` and derives from the data dir, so two nodes on one
//! machine do not collide and leftovers can be found.

pub mod conntrack;
pub mod dns;
pub mod endpoints;
pub mod ipam;
mod link;
pub mod nft;
mod node;
pub mod routes;
mod task;
mod vxlan;

pub use link::{LinkError, Links};
pub use node::{NetError, PodNetwork};
pub use routes::{PeerRoute, Tunnel};
pub use task::{run, NetDeps};

use sha2::{Digest, Sha256};

/// The names of one node's links (at most 15 bytes, the kernel's limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `shoal<8 hex>`: the bridge.
    pub bridge: String,
    /// `shoal<8 hex>v`: the VXLAN device, to peers behind a router.
    pub vxlan: String,
    hash: String,
}

impl Names {
    /// Names for the node whose paths have `prefix` (`shoal-<8 hex>`).
    pub fn new(prefix: &str) -> Names {
        let hash: String = prefix.trim_start_matches("shoal-").chars().take(8).collect();
        Names {
            bridge: format!("shoal{hash}"),
            vxlan: format!("shoal{hash}v"),
            hash,
        }
    }

    /// The host end of pod `uid`'s veth: `shoal` and 10 hex of
    /// SHA-256(node, uid).
    pub fn veth(&self, uid: &str) -> String {
        let h = hex::encode(Sha256::digest(format!("{}/{uid}", self.hash)));
        format!("shoal{}", &h[..10])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_and_differ_per_node_and_pod() {
        let a = Names::new("shoal-0123abcd");
        let b = Names::new("shoal-89ef4567");
        assert_eq!(a.bridge, "shoal0123abcd");
        assert!(a.bridge.len() <= 15 && a.vxlan.len() <= 15 && a.veth("u1").len() == 15);
        assert_ne!(a.veth("u1"), a.veth("u2"));
        assert_ne!(a.veth("u1"), b.veth("u1"));
        assert!(a.veth("u1").starts_with("shoal"));
    }
}

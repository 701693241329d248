//! How a node reaches each peer's pod subnet, chosen per peer as flannel's
//! vxlan backend with DirectRouting does: a peer whose address lies on one
//! of this node's links gets a direct route through it (host-gw); a peer
//! behind a router is reached through the node's VXLAN device. A peer on
//! this very host (loopback, or an address of this node's own) needs
//! nothing: its bridge's subnet is already a connected route here.
//!
//! Routes follow the state: a deleted node loses its route, a Down one keeps
//! it (its pods may still run).

use crate::state::NodeObject;
use ipnet::Ipv4Net;
use std::net::{IpAddr, Ipv4Addr};

/// What this node's links look like, as far as choosing a path goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Local {
    /// The IPv4 networks of this node's links (its own bridge left out).
    pub networks: Vec<Ipv4Net>,
    /// This node's own IPv4 addresses.
    pub addrs: Vec<Ipv4Addr>,
}

/// A route to a peer's pod subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PeerRoute {
    /// The peer's pod subnet.
    pub subnet: Ipv4Net,
    /// The next hop: the peer's address on a shared link (host-gw), or the
    /// peer's tunnel address, its subnet's network address (VXLAN).
    pub via: Ipv4Addr,
    /// Through this node's VXLAN device (`via` is on-link there).
    pub tunnel: bool,
}

/// A peer reached through VXLAN: its tunnel address (`subnet`'s network
/// address) answers with the MAC its subnet gives it, and frames for that
/// MAC go to `remote` in UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tunnel {
    /// The peer's pod subnet.
    pub subnet: Ipv4Net,
    /// The peer's node address (the outer destination).
    pub remote: Ipv4Addr,
}

impl Tunnel {
    /// The peer's tunnel address: its subnet's network address (as flannel).
    pub fn inner(&self) -> Ipv4Addr {
        self.subnet.network()
    }

    /// The peer's VXLAN MAC.
    pub fn mac(&self) -> [u8; 6] {
        vtep_mac(self.subnet)
    }
}

/// A node's VXLAN MAC, from its subnet: locally administered, fixed, and
/// known to every peer without being published.
pub fn vtep_mac(subnet: Ipv4Net) -> [u8; 6] {
    let o = subnet.network().octets();
    [0x0e, o[0], o[1], o[2], o[3], 0x01]
}

/// Everything this node needs to reach its peers' pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Routes, direct and tunnelled, sorted.
    pub routes: Vec<PeerRoute>,
    /// Peers behind a router, sorted.
    pub tunnels: Vec<Tunnel>,
}

/// The plan for node `me` among `nodes`.
pub fn desired(me: &str, nodes: &[NodeObject], local: &Local) -> Plan {
    let mut plan = Plan::default();
    for n in nodes.iter().filter(|n| n.name != me) {
        let (Some(subnet), IpAddr::V4(addr)) = (n.pod_cidr, n.addr.ip()) else {
            continue;
        };
        if addr.is_loopback() || addr.is_unspecified() || local.addrs.contains(&addr) {
            continue;
        }
        if local.networks.iter().any(|l| l.contains(&addr)) {
            plan.routes.push(PeerRoute {
                subnet,
                via: addr,
                tunnel: false,
            });
        } else {
            let t = Tunnel { subnet, remote: addr };
            plan.routes.push(PeerRoute {
                subnet,
                via: t.inner(),
                tunnel: true,
            });
            plan.tunnels.push(t);
        }
    }
    plan.routes.sort();
    plan.tunnels.sort();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(name: &str, addr: &str, cidr: Option<&str>) -> NodeObject {
        let mut n = NodeObject::for_test(name, format!("{addr}:4740").parse().unwrap());
        n.pod_cidr = cidr.map(|c| c.parse().unwrap());
        n
    }

    fn local() -> Local {
        Local {
            networks: vec!["192.168.1.0/24".parse().unwrap()],
            addrs: vec!["192.168.1.2".parse().unwrap()],
        }
    }

    #[test]
    fn peers_on_a_link_get_a_direct_route_others_a_tunnel_and_same_host_peers_nothing() {
        let nodes = [
            node("a", "192.168.1.2", Some("10.42.0.0/24")),
            node("b", "192.168.1.3", Some("10.42.1.0/24")),
            node("c", "10.9.0.5", Some("10.42.2.0/24")),
            node("d", "192.168.1.4", None),
            node("e", "127.0.0.1", Some("10.42.4.0/24")),
            node("f", "192.168.1.2", Some("10.42.5.0/24")),
        ];
        let plan = desired("a", &nodes, &local());
        assert_eq!(
            plan.routes,
            vec![
                PeerRoute {
                    subnet: "10.42.1.0/24".parse().unwrap(),
                    via: "192.168.1.3".parse().unwrap(),
                    tunnel: false,
                },
                PeerRoute {
                    subnet: "10.42.2.0/24".parse().unwrap(),
                    via: "10.42.2.0".parse().unwrap(),
                    tunnel: true,
                },
            ]
        );
        assert_eq!(
            plan.tunnels,
            vec![Tunnel {
                subnet: "10.42.2.0/24".parse().unwrap(),
                remote: "10.9.0.5".parse().unwrap(),
            }]
        );
        assert_eq!(plan.tunnels[0].mac(), [0x0e, 10, 42, 2, 0, 1]);
    }

    proptest! {
        /// Every peer with a subnet and a distinct address is reached one
        /// way, exactly once; tunnels match tunnelled routes one to one; the
        /// MACs of distinct subnets differ.
        #[test]
        fn one_path_per_peer(peers in proptest::collection::btree_map(0u8..60, (any::<bool>(), 1u8..250), 0..20)) {
            let nodes: Vec<NodeObject> = peers
                .iter()
                .map(|(i, (on_link, host))| {
                    let addr = if *on_link { format!("192.168.1.{}", 3 + *i as u32) } else { format!("10.9.{i}.{host}") };
                    node(&format!("n{i}"), &addr, Some(&format!("10.42.{i}.0/24")))
                })
                .collect();
            let plan = desired("a", &nodes, &local());
            prop_assert_eq!(plan.routes.len(), nodes.len());
            let subnets: std::collections::BTreeSet<_> = plan.routes.iter().map(|r| r.subnet).collect();
            prop_assert_eq!(subnets.len(), nodes.len());
            prop_assert_eq!(plan.tunnels.len(), plan.routes.iter().filter(|r| r.tunnel).count());
            for t in &plan.tunnels {
                let route = PeerRoute { subnet: t.subnet, via: t.inner(), tunnel: true };
                prop_assert!(plan.routes.contains(&route), "no route for {:?}", t);
            }
            let macs: std::collections::BTreeSet<_> = plan.tunnels.iter().map(|t| t.mac()).collect();
            prop_assert_eq!(macs.len(), plan.tunnels.len());
        }
    }
}

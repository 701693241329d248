//! Which routes a node needs to its peers' pod subnets: a peer whose address
//! lies on one of this node's links is reached directly through it (as
//! flannel's host-gw); a peer behind a router will need a tunnel (VXLAN, not
//! built yet) and is reported. Routes follow the state: a deleted node loses
//! its route, a Down one keeps it (its pods may still run).

use super::link::PeerRoute;
use crate::state::NodeObject;
use ipnet::Ipv4Net;
use std::net::IpAddr;

/// The routes to peers, and the names of peers no direct route reaches.
pub fn desired(me: &str, nodes: &[NodeObject], local: &[Ipv4Net]) -> (Vec<PeerRoute>, Vec<String>) {
    let mut routes = Vec::new();
    let mut far = Vec::new();
    for n in nodes.iter().filter(|n| n.name != me) {
        let (Some(subnet), IpAddr::V4(via)) = (n.pod_cidr, n.addr.ip()) else {
            continue;
        };
        if local.iter().any(|l| l.contains(&via)) {
            routes.push(PeerRoute { subnet, via });
        } else {
            far.push(n.name.clone());
        }
    }
    routes.sort();
    (routes, far)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, addr: &str, cidr: Option<&str>) -> NodeObject {
        let mut n = NodeObject::for_test(name, format!("{addr}:4740").parse().unwrap());
        n.pod_cidr = cidr.map(|c| c.parse().unwrap());
        n
    }

    #[test]
    fn peers_on_a_link_get_a_direct_route_others_are_named() {
        let nodes = [
            node("a", "192.168.1.2", Some("10.42.0.0/24")),
            node("b", "192.168.1.3", Some("10.42.1.0/24")),
            node("c", "10.9.0.5", Some("10.42.2.0/24")),
            node("d", "192.168.1.4", None),
        ];
        let local = ["192.168.1.0/24".parse().unwrap()];
        let (routes, far) = desired("a", &nodes, &local);
        assert_eq!(
            routes,
            vec![PeerRoute {
                subnet: "10.42.1.0/24".parse().unwrap(),
                via: "192.168.1.3".parse().unwrap()
            }]
        );
        assert_eq!(far, vec!["c".to_string()]);
    }
}

//! The cluster's address plan: the pod CIDR every node's subnet comes from,
//! the service CIDR, and the subnet each node is handed when it registers.
//!
//! A node keeps its subnet until it is deleted, Down or not: its pods may
//! still run behind a partition (edge autonomy), so handing the subnet to
//! another node would put two pods on one address.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// The address plan, fixed at `init` (`--cluster-cidr`, `--service-cidr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetwork {
    /// Pod addresses; each node gets one subnet of it.
    pub cluster_cidr: Ipv4Net,
    /// Service virtual IPs.
    pub service_cidr: Ipv4Net,
    /// Prefix length of a node's subnet (24: 254 pods a node).
    pub node_prefix: u8,
}

impl Default for ClusterNetwork {
    /// k3s' defaults: pods in 10.42.0.0/16, services in 10.43.0.0/16, a /24 a node.
    fn default() -> Self {
        ClusterNetwork {
            cluster_cidr: Ipv4Net::new(Ipv4Addr::new(10, 42, 0, 0), 16).expect("valid prefix"),
            service_cidr: Ipv4Net::new(Ipv4Addr::new(10, 43, 0, 0), 16).expect("valid prefix"),
            node_prefix: 24,
        }
    }
}

/// A plan that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The node prefix does not fit inside the cluster CIDR, or leaves no room for pods.
    #[error("a node subnet of /{node_prefix} must lie inside the cluster CIDR {cluster_cidr} and hold pods (/{min}../30)")]
    NodePrefix {
        /// The cluster CIDR.
        cluster_cidr: Ipv4Net,
        /// The asked prefix.
        node_prefix: u8,
        /// The cluster CIDR's own prefix.
        min: u8,
    },
    /// The two ranges overlap.
    #[error("the cluster CIDR {cluster_cidr} and the service CIDR {service_cidr} overlap")]
    Overlap {
        /// Pods.
        cluster_cidr: Ipv4Net,
        /// Services.
        service_cidr: Ipv4Net,
    },
    /// A service range too small for the DNS address and one service.
    #[error("the service CIDR {0} is too small (at most /28)")]
    ServiceTooSmall(Ipv4Net),
}

impl ClusterNetwork {
    /// Checks the plan; both CIDRs are made canonical (host bits cleared).
    pub fn checked(cluster_cidr: Ipv4Net, service_cidr: Ipv4Net, node_prefix: u8) -> Result<ClusterNetwork, PlanError> {
        let (cluster_cidr, service_cidr) = (cluster_cidr.trunc(), service_cidr.trunc());
        if node_prefix < cluster_cidr.prefix_len() || node_prefix > 30 {
            return Err(PlanError::NodePrefix {
                cluster_cidr,
                node_prefix,
                min: cluster_cidr.prefix_len(),
            });
        }
        if cluster_cidr.contains(&service_cidr) || service_cidr.contains(&cluster_cidr) {
            return Err(PlanError::Overlap {
                cluster_cidr,
                service_cidr,
            });
        }
        if service_cidr.prefix_len() > 28 {
            return Err(PlanError::ServiceTooSmall(service_cidr));
        }
        Ok(ClusterNetwork {
            cluster_cidr,
            service_cidr,
            node_prefix,
        })
    }

    /// The address of the cluster DNS service: the tenth of the service
    /// range, as in Kubernetes distributions (10.43.0.10).
    pub fn dns_ip(&self) -> Ipv4Addr {
        nth(self.service_cidr, 10)
    }

    /// The first node subnet not in `taken`, lowest first; `None` when all are.
    pub fn free_subnet<'a>(&self, taken: impl IntoIterator<Item = &'a Ipv4Net>) -> Option<Ipv4Net> {
        let taken: std::collections::BTreeSet<&Ipv4Net> = taken.into_iter().collect();
        self.cluster_cidr
            .subnets(self.node_prefix)
            .ok()?
            .find(|s| !taken.iter().any(|t| t.contains(s) || s.contains(*t)))
    }
}

/// The `n`-th address of `net` (0 is the network address).
pub fn nth(net: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).wrapping_add(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn subnets_are_handed_out_lowest_first_and_a_freed_one_comes_back() {
        let plan = ClusterNetwork::default();
        let mut taken = Vec::new();
        for i in 0..3 {
            let s = plan.free_subnet(&taken).unwrap();
            assert_eq!(s, net(&format!("10.42.{i}.0/24")));
            taken.push(s);
        }
        taken.remove(1);
        assert_eq!(plan.free_subnet(&taken), Some(net("10.42.1.0/24")));
    }

    #[test]
    fn a_full_range_has_no_subnet_left() {
        let plan = ClusterNetwork::checked(net("10.42.0.0/23"), net("10.43.0.0/16"), 24).unwrap();
        let taken = [net("10.42.0.0/24"), net("10.42.1.0/24")];
        assert_eq!(plan.free_subnet(&taken), None);
    }

    #[test]
    fn bad_plans_are_refused_by_name() {
        let e = ClusterNetwork::checked(net("10.42.0.0/16"), net("10.42.128.0/17"), 24).unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
        let e = ClusterNetwork::checked(net("10.42.0.0/16"), net("10.43.0.0/16"), 8).unwrap_err();
        assert!(e.to_string().contains("/8"), "{e}");
        let e = ClusterNetwork::checked(net("10.42.0.0/16"), net("10.43.0.0/30"), 24).unwrap_err();
        assert!(e.to_string().contains("too small"), "{e}");
        let ok = ClusterNetwork::checked(net("10.42.7.9/16"), net("10.43.0.0/16"), 24).unwrap();
        assert_eq!(ok.cluster_cidr, net("10.42.0.0/16"));
        assert_eq!(ok.dns_ip(), Ipv4Addr::new(10, 43, 0, 10));
    }
}

#[cfg(test)]
mod apply_tests {
    use super::*;
    use crate::state::{Command, NodeObject, Replica};

    fn apply(r: &Replica, cmd: Command) {
        let mut conn = r.conn();
        let tx = conn.transaction().unwrap();
        crate::state::apply_command(&tx, &cmd).unwrap();
        tx.commit().unwrap();
    }

    fn register(r: &Replica, name: &str, network: Option<ClusterNetwork>) {
        let cmd = Command::RegisterNode {
            node: NodeObject::for_test(name, "127.0.0.1:4740".parse().unwrap()),
            key_sha256: format!("key-{name}"),
            token: String::new(),
            network,
        };
        apply(r, cmd);
    }

    #[test]
    fn the_first_node_sets_the_plan_every_node_gets_its_own_subnet_and_only_deletion_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let r = Replica::open(&dir.path().join("c.db")).unwrap();
        let plan = ClusterNetwork::checked("10.60.0.0/16".parse().unwrap(), "10.61.0.0/16".parse().unwrap(), 24).unwrap();
        register(&r, "a", Some(plan));
        // A later node cannot change the plan.
        register(&r, "b", Some(ClusterNetwork::default()));
        register(&r, "c", None);
        assert_eq!(r.network().unwrap(), plan);
        let cidr = |n: &str| r.node(n).unwrap().unwrap().pod_cidr.unwrap().to_string();
        assert_eq!(
            (cidr("a"), cidr("b"), cidr("c")),
            ("10.60.0.0/24".into(), "10.60.1.0/24".into(), "10.60.2.0/24".into())
        );
        // A Down node keeps its subnet (nothing here marks it, by design);
        // a deleted one gives it back.
        apply(
            &r,
            Command::DeleteNode {
                name: "b".into(),
                now_ms: 1,
            },
        );
        register(&r, "d", None);
        assert_eq!(cidr("d"), "10.60.1.0/24");
    }
}

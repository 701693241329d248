//! Pod addresses from the node's subnet: `.1` is the bridge (the pods'
//! gateway), the network and broadcast addresses are never handed out, and
//! a released address comes back only after every other free one was used
//! (as CNI's host-local IPAM), so a new pod does not inherit connections
//! still aimed at an old one. Assignments live in the node's store.

use ipnet::Ipv4Net;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// The bridge's address in `subnet`: the pods' default gateway.
pub fn gateway(subnet: Ipv4Net) -> Ipv4Addr {
    crate::state::network::nth(subnet, 1)
}

/// The next free pod address after `last` (wrapping), or `None` when the
/// subnet is full.
pub fn next_free(subnet: Ipv4Net, used: &BTreeSet<Ipv4Addr>, last: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
    let first = u32::from(gateway(subnet)) + 1;
    let end = u32::from(subnet.broadcast()); // exclusive
    if first >= end {
        return None;
    }
    let span = end - first;
    let start = match last.map(u32::from) {
        Some(l) if (first..end).contains(&l) => l + 1 - first,
        _ => 0,
    };
    (0..span)
        .map(|i| Ipv4Addr::from(first + (start + i) % span))
        .find(|ip| !used.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_go_round_and_skip_the_gateway_and_the_ends() {
        let s = net("10.42.3.0/24");
        let mut used = BTreeSet::new();
        assert_eq!(next_free(s, &used, None), Some(Ipv4Addr::new(10, 42, 3, 2)));
        used.insert(Ipv4Addr::new(10, 42, 3, 2));
        assert_eq!(
            next_free(s, &used, Some(Ipv4Addr::new(10, 42, 3, 2))),
            Some(Ipv4Addr::new(10, 42, 3, 3))
        );
        // .2 released: the next is still .3's successor, not .2 again.
        used.clear();
        assert_eq!(
            next_free(s, &used, Some(Ipv4Addr::new(10, 42, 3, 3))),
            Some(Ipv4Addr::new(10, 42, 3, 4))
        );
        // After .254 it wraps to .2.
        assert_eq!(
            next_free(s, &used, Some(Ipv4Addr::new(10, 42, 3, 254))),
            Some(Ipv4Addr::new(10, 42, 3, 2))
        );
        assert_eq!(next_free(net("10.42.3.0/31"), &used, None), None);
    }

    proptest! {
        #[test]
        fn never_a_used_or_reserved_address_and_none_only_when_full(
            prefix in 26u8..=30,
            used_bits in proptest::collection::vec(any::<bool>(), 64),
            last in 0u32..64,
        ) {
            let s = Ipv4Net::new(Ipv4Addr::new(10, 42, 9, 0), prefix).unwrap();
            let hosts: Vec<Ipv4Addr> = (2..(1u32 << (32 - prefix)) - 1).map(|i| crate::state::network::nth(s, i)).collect();
            let used: BTreeSet<Ipv4Addr> = hosts.iter().zip(&used_bits).filter(|(_, b)| **b).map(|(ip, _)| *ip).collect();
            let got = next_free(s, &used, Some(crate::state::network::nth(s, last)));
            match got {
                Some(ip) => {
                    prop_assert!(hosts.contains(&ip), "{ip} is not a pod address of {s}");
                    prop_assert!(!used.contains(&ip));
                }
                None => prop_assert!(hosts.iter().all(|h| used.contains(h)), "None while {s} has room"),
            }
        }
    }
}

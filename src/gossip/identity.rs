//! A member's identity in SWIM: its name (unique in the cluster), where it
//! listens, and a generation that grows with every start or rejoin.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Who a member is to foca. Two identities with the same name are the same
/// node; the higher generation wins.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberId {
    /// Node name.
    pub name: String,
    /// UDP address of its QUIC endpoint.
    pub addr: SocketAddr,
    /// Grows with every agent start (wall-clock ms) and every rejoin (+1).
    pub generation: u64,
}

impl foca::Identity for MemberId {
    type Addr = String;

    fn renew(&self) -> Option<Self> {
        Some(MemberId {
            generation: self.generation + 1,
            ..self.clone()
        })
    }

    fn addr(&self) -> String {
        self.name.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    #[test]
    fn a_renewed_identity_replaces_the_old_one() {
        let a = MemberId {
            name: "n1".into(),
            addr: "10.0.0.1:4740".parse().unwrap(),
            generation: 7,
        };
        let b = a.renew().unwrap();
        assert_eq!(a.addr(), b.addr());
        assert!(b.win_addr_conflict(&a));
        assert!(!a.win_addr_conflict(&b));
    }
}

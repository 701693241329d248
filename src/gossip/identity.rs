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

impl MemberId {
    /// A 32-bit tag of the whole identity (FNV-1a over name, address and
    /// generation; stable across builds and architectures). Compact
    /// probes name their sender by it: the receiver finds the member among
    /// those it knows.
    pub fn tag(&self) -> u32 {
        let mut h = Fnv::default();
        self.feed(&mut h);
        h.finish32()
    }

    /// Feeds the whole identity to `h`.
    pub(super) fn feed(&self, h: &mut Fnv) {
        h.write(self.name.as_bytes());
        h.write(&[0xff]);
        h.write(self.addr.to_string().as_bytes());
        h.write(&self.generation.to_le_bytes());
    }
}

/// FNV-1a, 64 bits folded to 32: a hash every build and architecture agrees
/// on (std's hasher promises no such thing).
pub(super) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Adds bytes.
    pub(super) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The hash so far, folded to 32 bits.
    pub(super) fn finish32(&self) -> u32 {
        (self.0 ^ (self.0 >> 32)) as u32
    }
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

    #[test]
    fn tags_are_stable_and_tell_generations_apart() {
        let a = MemberId {
            name: "n1".into(),
            addr: "10.0.0.1:4740".parse().unwrap(),
            generation: 7,
        };
        // Fixed: every build and architecture must agree on it.
        assert_eq!(a.tag(), 0xff26_4dcf);
        assert_ne!(a.tag(), a.renew().unwrap().tag());
        let b = MemberId {
            name: "n2".into(),
            ..a.clone()
        };
        assert_ne!(a.tag(), b.tag());
    }
}

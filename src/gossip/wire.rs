//! What travels in one gossip datagram: a tag byte, then either a foca packet
//! or one of our own control messages (postcard). A full-state [`Sync`] is
//! too big for a datagram and goes on a QUIC stream with the same framing.
//!
//! Pings and acks, nearly all of gossip's idle traffic, travel in a compact
//! frame ([`Probe`]) once both members know each other's identity: foca's
//! header carries both identities in full (about 40 bytes with short node
//! names), the compact frame tags them in 6.

use super::{MemberId, NodeMeta};
use serde::{Deserialize, Serialize};

const TAG_SWIM: u8 = 0;
const TAG_CONTROL: u8 = 1;
const TAG_SYNC: u8 = 2;
const TAG_PING: u8 = 3;
const TAG_ACK: u8 = 4;

/// A ping or ack in the compact frame: `tag, src tag (u32 LE), dst tag
/// (u16 LE), src incarnation (u16 LE), probe number, [updates]`, where
/// `updates` is foca's piggy-backed update section, left out when empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe<'a> {
    /// An ack (else a ping).
    pub ack: bool,
    /// [`MemberId::tag`] of the sender.
    pub src: u32,
    /// The low 16 bits of the receiver's tag, as the sender knows it.
    pub dst: u16,
    /// The sender's incarnation.
    pub incarnation: u16,
    /// foca's probe number.
    pub probe: u8,
    /// foca's update section (a u16 count, then members); empty for none.
    pub updates: &'a [u8],
}

/// foca's update section when it holds no updates.
pub const NO_UPDATES: [u8; 2] = [0, 0];

/// Anti-entropy: one member's whole view, sent now and then to a random
/// member (and answered with the receiver's when `reply` is set), so a
/// member that missed an update learns it in one round trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sync {
    /// The sender's membership state.
    pub members: Vec<foca::Member<MemberId>>,
    /// Answer with your own.
    pub reply: bool,
}

/// Our messages beside SWIM's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Control {
    /// "Here is who I am; tell me who you are." Sent to seeds and to members
    /// whose metadata is unknown.
    Hello {
        /// The sender.
        id: MemberId,
        /// Its metadata.
        meta: NodeMeta,
    },
    /// The answer to `Hello`.
    Meta {
        /// The sender.
        id: MemberId,
        /// Its metadata.
        meta: NodeMeta,
    },
    /// The member is leaving on purpose: show it Left, not Down.
    Leaving {
        /// The member.
        id: MemberId,
    },
    /// "I read compact probe frames": sent to a member once it knows our
    /// identity, so a node built before them is never sent one.
    CompactProbes {
        /// The sender.
        id: MemberId,
    },
    /// Anti-entropy in a quiet cluster: a hash of the sender's whole view.
    /// A receiver whose view hashes differently answers with a full
    /// [`Sync`], so converged members exchange one datagram, not two views.
    Digest {
        /// FNV-1a of every member's name, generation, incarnation and state.
        hash: u32,
    },
}

/// A decoded datagram.
#[derive(Debug)]
pub enum Datagram<'a> {
    /// Hand to foca.
    Swim(&'a [u8]),
    /// Ours.
    Control(Control),
    /// Whole view, from a stream.
    Sync(Sync),
    /// A compact ping or ack.
    Probe(Probe<'a>),
}

/// Frames a compact ping or ack.
pub fn probe(p: &Probe<'_>) -> Vec<u8> {
    let updates = if p.updates == NO_UPDATES { &[][..] } else { p.updates };
    let mut v = Vec::with_capacity(10 + updates.len());
    v.push(if p.ack { TAG_ACK } else { TAG_PING });
    v.extend_from_slice(&p.src.to_le_bytes());
    v.extend_from_slice(&p.dst.to_le_bytes());
    v.extend_from_slice(&p.incarnation.to_le_bytes());
    v.push(p.probe);
    v.extend_from_slice(updates);
    v
}

fn split_probe(ack: bool, rest: &[u8]) -> Option<Probe<'_>> {
    if rest.len() < 9 {
        return None;
    }
    let updates = &rest[9..];
    Some(Probe {
        ack,
        src: u32::from_le_bytes(rest[0..4].try_into().ok()?),
        dst: u16::from_le_bytes(rest[4..6].try_into().ok()?),
        incarnation: u16::from_le_bytes(rest[6..8].try_into().ok()?),
        probe: rest[8],
        updates: if updates.is_empty() { &NO_UPDATES } else { updates },
    })
}

/// Frames a foca packet.
pub fn swim(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(TAG_SWIM);
    v.extend_from_slice(data);
    v
}

/// Frames a control message.
pub fn control(c: &Control) -> Vec<u8> {
    let mut v = vec![TAG_CONTROL];
    v.extend(postcard::to_allocvec(c).expect("plain types serialise"));
    v
}

/// Frames a full-state sync (for a stream).
pub fn sync(s: &Sync) -> Vec<u8> {
    let mut v = vec![TAG_SYNC];
    v.extend(postcard::to_allocvec(s).expect("plain types serialise"));
    v
}

/// True if the framed message must travel on a stream.
pub fn is_stream(data: &[u8]) -> bool {
    data.first() == Some(&TAG_SYNC)
}

/// Splits a datagram; `None` for garbage.
pub fn decode(data: &[u8]) -> Option<Datagram<'_>> {
    match data.split_first()? {
        (&TAG_SWIM, rest) => Some(Datagram::Swim(rest)),
        (&TAG_CONTROL, rest) => postcard::from_bytes(rest).ok().map(Datagram::Control),
        (&TAG_SYNC, rest) => postcard::from_bytes(rest).ok().map(Datagram::Sync),
        (&TAG_PING, rest) => split_probe(false, rest).map(Datagram::Probe),
        (&TAG_ACK, rest) => split_probe(true, rest).map(Datagram::Probe),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compact_probe_round_trips_and_leaves_out_empty_updates() {
        let p = Probe {
            ack: true,
            src: 0xdead_beef,
            dst: 0x1234,
            incarnation: 3,
            probe: 9,
            updates: &NO_UPDATES,
        };
        let framed = probe(&p);
        assert_eq!(framed.len(), 10);
        match decode(&framed) {
            Some(Datagram::Probe(q)) => assert_eq!(q, p),
            other => panic!("decoded as {other:?}"),
        }
        let updates = [0, 1, 7, 7, 7];
        let with = Probe {
            updates: &updates,
            ..p.clone()
        };
        match decode(&probe(&with)) {
            Some(Datagram::Probe(q)) => assert_eq!(q.updates, &updates),
            other => panic!("decoded as {other:?}"),
        }
        assert!(decode(&framed[..9]).is_none(), "a truncated frame is garbage");
    }
}

//! What travels in one gossip datagram: a tag byte, then either a foca packet
//! or one of our own control messages (postcard). A full-state [`Sync`] is
//! too big for a datagram and goes on a QUIC stream with the same framing.

use super::{MemberId, NodeMeta};
use serde::{Deserialize, Serialize};

const TAG_SWIM: u8 = 0;
const TAG_CONTROL: u8 = 1;
const TAG_SYNC: u8 = 2;

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
        _ => None,
    }
}

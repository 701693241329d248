//! What gossip costs on the wire, counted by the edge: every message the
//! core handed it, by kind, and what its QUIC connections carried in UDP
//! payloads (QUIC headers, ACK-only packets, AEAD tags and handshakes
//! included). `shoal info` shows it; bench/cluster.sh reads it.

use super::wire::{self, Datagram};
use super::MemberId;
use foca::{Codec, Message, PostcardCodec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Ethernet, IPv4 and UDP headers around one UDP payload: what a bridge port
/// counts beyond it.
pub const WIRE_HEADERS: u64 = 14 + 20 + 8;

/// Messages and payload bytes of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// How many.
    pub messages: u64,
    /// Their framed length (our tag byte included), before QUIC.
    pub bytes: u64,
}

/// UDP datagrams and payload bytes one way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Udp {
    /// Datagrams.
    pub datagrams: u64,
    /// UDP payload bytes.
    pub bytes: u64,
}

impl Udp {
    /// Bytes a bridge port counts for these datagrams.
    pub fn wire_bytes(&self) -> u64 {
        self.bytes + self.datagrams * WIRE_HEADERS
    }
}

/// Some of the QUIC frames gossip's connections sent: what the packets
/// beyond the datagrams are for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Frames {
    /// Packets sent.
    pub packets: u64,
    /// ACK frames (alone, or riding on a datagram).
    pub acks: u64,
    /// DATAGRAM frames.
    pub datagrams: u64,
    /// STREAM frames (full-state syncs).
    pub streams: u64,
    /// PING frames (keep-alives, loss probes).
    pub pings: u64,
    /// Path MTU probes.
    pub mtu_probes: u64,
}

/// One or many connections' counters: sent, received, frames sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Traffic {
    /// UDP sent.
    pub tx: Udp,
    /// UDP received.
    pub rx: Udp,
    /// QUIC frames sent.
    pub frames: Frames,
}

impl Traffic {
    /// Adds one connection's counters.
    pub fn add(&mut self, s: &quinn::ConnectionStats) {
        self.tx.datagrams += s.udp_tx.datagrams;
        self.tx.bytes += s.udp_tx.bytes;
        self.rx.datagrams += s.udp_rx.datagrams;
        self.rx.bytes += s.udp_rx.bytes;
        self.frames.add(s);
    }
}

impl Frames {
    fn add(&mut self, s: &quinn::ConnectionStats) {
        self.packets += s.path.sent_packets;
        self.acks += s.frame_tx.acks;
        self.datagrams += s.frame_tx.datagram;
        self.streams += s.frame_tx.stream;
        self.pings += s.frame_tx.ping;
        self.mtu_probes += s.path.sent_plpmtud_probes;
    }
}

/// Gossip's traffic since the agent started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GossipStats {
    /// Milliseconds the gossip task has run.
    pub uptime_ms: u64,
    /// Members this node knows, itself included.
    pub members: usize,
    /// The local health score (0 = healthy).
    pub health: u32,
    /// Gossip connections open now.
    pub connections: usize,
    /// Sent by gossip's QUIC connections.
    pub udp_tx: Udp,
    /// Received by them.
    pub udp_rx: Udp,
    /// QUIC frames sent.
    pub frames_tx: Frames,
    /// What the core sent, by kind (`ping`, `ack` in the compact frame;
    /// `ping-full`, `ack-full`, `ping-req`, ... in foca's; `hello`, `sync`).
    pub sent: BTreeMap<String, Count>,
}

impl GossipStats {
    /// Bytes per second on the wire, both ways, over the whole uptime.
    pub fn wire_rate(&self) -> f64 {
        (self.udp_tx.wire_bytes() + self.udp_rx.wire_bytes()) as f64 * 1000.0 / self.uptime_ms.max(1) as f64
    }
}

/// Adds one sent message to `sent` (no allocation: kinds are static).
pub fn count(sent: &mut BTreeMap<&'static str, Count>, data: &[u8]) {
    let c = sent.entry(kind(data)).or_default();
    c.messages += 1;
    c.bytes += data.len() as u64;
}

/// The kind of a framed gossip message.
pub fn kind(data: &[u8]) -> &'static str {
    match wire::decode(data) {
        Some(Datagram::Swim(bytes)) => match PostcardCodec.decode_header(bytes) {
            Ok(foca::Header::<MemberId> { message, .. }) => match message {
                Message::Ping(_) => "ping-full",
                Message::Ack(_) => "ack-full",
                Message::PingReq { .. } => "ping-req",
                Message::IndirectPing { .. } => "indirect-ping",
                Message::IndirectAck { .. } => "indirect-ack",
                Message::ForwardedAck { .. } => "forwarded-ack",
                Message::Announce => "announce",
                Message::Feed => "feed",
                Message::Gossip => "gossip",
                Message::TurnUndead => "turn-undead",
                Message::Broadcast => "broadcast",
            },
            Err(_) => "swim?",
        },
        Some(Datagram::Control(wire::Control::Hello { .. })) => "hello",
        Some(Datagram::Control(wire::Control::Meta { .. })) => "meta",
        Some(Datagram::Control(wire::Control::Leaving { .. })) => "leaving",
        Some(Datagram::Control(wire::Control::Digest { .. })) => "digest",
        Some(Datagram::Control(wire::Control::CompactProbes { .. })) => "compact-probes",
        Some(Datagram::Sync(_)) => "sync",
        Some(Datagram::Probe(p)) if p.ack => "ack",
        Some(Datagram::Probe(_)) => "ping",
        None => "?",
    }
}

impl std::fmt::Display for GossipStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.uptime_ms.max(1) as f64 / 1000.0;
        writeln!(f, "members:      {}", self.members)?;
        writeln!(f, "health:       {}", self.health)?;
        writeln!(f, "connections:  {}", self.connections)?;
        writeln!(f, "uptime:       {secs:.1} s")?;
        for (dir, u) in [("sent", self.udp_tx), ("received", self.udp_rx)] {
            writeln!(
                f,
                "UDP {dir:<9} {} datagrams, {} B payload, {} B on the wire ({:.0} B/s)",
                u.datagrams,
                u.bytes,
                u.wire_bytes(),
                u.wire_bytes() as f64 / secs
            )?;
        }
        writeln!(f, "on the wire, both ways: {:.0} B/s", self.wire_rate())?;
        let q = self.frames_tx;
        writeln!(
            f,
            "QUIC sent:    {} packets: {} ACK, {} DATAGRAM, {} STREAM, {} PING frames, {} MTU probes",
            q.packets, q.acks, q.datagrams, q.streams, q.pings, q.mtu_probes
        )?;
        writeln!(f, "{:<16} {:>10} {:>12} {:>8}", "SENT", "MESSAGES", "BYTES", "B/MSG")?;
        for (k, c) in &self.sent {
            writeln!(
                f,
                "{k:<16} {:>10} {:>12} {:>8.1}",
                c.messages,
                c.bytes,
                c.bytes as f64 / c.messages.max(1) as f64
            )?;
        }
        Ok(())
    }
}

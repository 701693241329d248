//! One quinn endpoint on one UDP port, mutual TLS against the cluster CA, and
//! the frames spoken on its streams.

pub mod framing;
pub mod pki;
pub mod quic;

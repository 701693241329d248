//! The cluster's DNS, answered by every node for its own pods: the
//! cluster DNS address (the service range's tenth) is sent by the node's
//! nftables table to this node's bridge address, where `server` answers
//! `cluster.local` names from `zone` (built by the network task from the
//! same Services and endpoints as the table) and forwards every other
//! name to the node's resolvers. `resolv` writes each pod's
//! `/etc/resolv.conf`.
//!
//! ```text
//! pod ── udp/tcp 10.43.0.10:53 ── nat-prerouting dnat ── 10.42.3.1:53 server ─┬ zone (cluster.local, in-addr.arpa)
//!                                                                             └ forward (node's resolv.conf)
//! ```

mod forward;
pub mod resolv;
mod server;
mod task;
pub mod zone;

pub use forward::{ForwardError, Upstream};
pub use task::{run, DnsDeps};

/// The cluster's domain, as Kubernetes' default.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// Seconds a cluster answer may be cached (CoreDNS's default).
pub const TTL: u32 = 5;

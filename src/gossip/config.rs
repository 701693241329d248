//! Gossip timers, and the foca configuration they make for a cluster size.

use foca::PeriodicParams;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

/// Protocol timers. The defaults suit a LAN and a metered link alike: a
/// probe costs three QUIC packets (ping, ack, and the ACK of the ack), so
/// the probe period sets the idle bytes; a missed probe is settled
/// `3 × probe_rtt` after it was sent instead of at the next period, and the
/// suspicion timeout does not grow with the period, so a dead node is
/// declared down about as fast as with probes twice as frequent.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// Probe a member this often.
    pub probe_period_ms: u64,
    /// Wait this long for a direct ack before asking others to probe.
    pub probe_rtt_ms: u64,
    /// Suspicion lasts `factor × log10(members) × suspicion_unit_ms`...
    pub suspicion_factor: f64,
    /// ... (memberlist uses its probe interval here)...
    pub suspicion_unit_ms: u64,
    /// ...but never less than this.
    pub min_suspicion_ms: u64,
    /// Push updates to `gossip_fanout` members this often.
    pub gossip_every_ms: u64,
    /// How many members each push goes to.
    pub gossip_fanout: usize,
    /// Knock on members we hold down this often (heals partitions).
    pub announce_down_every_ms: u64,
    /// Resend hellos to seeds and metadata-less members this often.
    pub hello_every_ms: u64,
    /// Push-pull the whole view with one random member this often while the
    /// membership is settling (a status changed in the last `settle_ms`, or
    /// a member's metadata is missing)...
    pub sync_every_ms: u64,
    /// ...and this often once it is quiet.
    pub quiet_sync_every_ms: u64,
    /// How long after a status change the membership counts as settling.
    pub settle_ms: u64,
    /// Announce ourselves to one random member this often (a safety net for
    /// a member that missed us; joins and rejoins announce at once).
    pub announce_every_ms: u64,
    /// Largest datagram foca may build (a QUIC datagram carries about 1150 bytes).
    pub max_packet: usize,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            probe_period_ms: 900,
            probe_rtt_ms: 100,
            suspicion_factor: 3.0,
            suspicion_unit_ms: 250,
            min_suspicion_ms: 500,
            gossip_every_ms: 200,
            gossip_fanout: 3,
            announce_down_every_ms: 500,
            hello_every_ms: 1000,
            sync_every_ms: 5000,
            quiet_sync_every_ms: 30_000,
            settle_ms: 60_000,
            announce_every_ms: 60_000,
            max_packet: 1100,
        }
    }
}

impl GossipConfig {
    /// Every timer `k` times longer: for members that share a machine by the
    /// hundred (`shoal hollow --token`), whose load would otherwise make
    /// them suspect each other.
    pub fn slowed(&self, k: u64) -> GossipConfig {
        GossipConfig {
            probe_period_ms: self.probe_period_ms * k,
            probe_rtt_ms: self.probe_rtt_ms * k,
            suspicion_unit_ms: self.suspicion_unit_ms * k,
            min_suspicion_ms: self.min_suspicion_ms * k,
            gossip_every_ms: self.gossip_every_ms * k,
            announce_down_every_ms: self.announce_down_every_ms * k,
            hello_every_ms: self.hello_every_ms * k,
            sync_every_ms: self.sync_every_ms * k,
            quiet_sync_every_ms: self.quiet_sync_every_ms * k,
            announce_every_ms: self.announce_every_ms * k,
            ..self.clone()
        }
    }

    /// How long a suspect stays suspect in a cluster of `n`.
    pub fn suspicion_ms(&self, n: usize) -> u64 {
        let f = self.suspicion_factor * (n.max(2) as f64).log10() * self.suspicion_unit_ms as f64;
        (f as u64).max(self.min_suspicion_ms)
    }

    /// foca's settings for a cluster of `n`.
    pub(super) fn foca(&self, n: usize) -> foca::Config {
        let ms = Duration::from_millis;
        let mut c = foca::Config::new_lan(NonZeroU32::new(n.max(1) as u32).expect("at least one"));
        c.probe_period = ms(self.probe_period_ms);
        c.probe_rtt = ms(self.probe_rtt_ms);
        c.suspect_to_down_after = ms(self.suspicion_ms(n));
        c.max_packet_size = NonZeroUsize::new(self.max_packet).expect("non-zero");
        c.notify_down_members = true;
        c.periodic_gossip = Some(PeriodicParams {
            frequency: ms(self.gossip_every_ms),
            num_members: NonZeroUsize::new(self.gossip_fanout.max(1)).expect("non-zero"),
        });
        c.periodic_announce = Some(PeriodicParams {
            frequency: ms(self.announce_every_ms),
            num_members: NonZeroUsize::new(1).expect("non-zero"),
        });
        c.periodic_announce_to_down_members = Some(PeriodicParams {
            frequency: ms(self.announce_down_every_ms),
            num_members: NonZeroUsize::new(2).expect("non-zero"),
        });
        c
    }
}

//! Seeded simulations: many [`Membership`] cores on a virtual clock and a
//! virtual network that can lose datagrams, crash members and cut links.
//! No sockets, no sleeps.

use super::{Effect, GossipConfig, MemberId, Membership, NodeMeta, NodeStatus, Role};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;

struct Packet {
    from: usize,
    to: usize,
    data: Vec<u8>,
}

struct Sim {
    nodes: Vec<Option<Membership>>,
    addrs: Vec<SocketAddr>,
    by_addr: HashMap<SocketAddr, usize>,
    wire: BTreeMap<(u64, u64), Packet>,
    seq: u64,
    now: u64,
    rng: SmallRng,
    loss: f64,
    cut: BTreeSet<usize>,
    slow: BTreeSet<usize>,
    downs: Vec<(u64, usize, String)>,
    /// Messages sent, by kind.
    sent: BTreeMap<&'static str, u64>,
    /// Members standing in for a build without compact frames: what they
    /// would drop (`CompactProbes` to them) is dropped, and they never say
    /// they read compact frames.
    legacy: BTreeSet<usize>,
    /// Compact frames sent to a legacy member.
    compact_to_legacy: u64,
    /// Pings (compact or foca's) by probe period and the member probed.
    pings: BTreeMap<(u64, usize), u32>,
    /// Give each member, before each tick, a wall clock a whole number of
    /// probe periods ahead of `now`, read with 0-2 ms of jitter (as the edge
    /// reads two clocks one after the other).
    wall: bool,
}

fn meta() -> NodeMeta {
    NodeMeta {
        labels: Default::default(),
        zone: None,
        cpus: 2,
        memory_bytes: 1 << 30,
        version: "test".into(),
        role: Role::Agent,
        joined_ms: 0,
    }
}

fn name(i: usize) -> String {
    format!("n{i:03}")
}

impl Sim {
    fn new(n: usize, seed: u64) -> Sim {
        let addrs: Vec<SocketAddr> = (0..n)
            .map(|i| SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250 + 1) as u8], 4740)))
            .collect();
        let mut sim = Sim {
            nodes: Vec::new(),
            by_addr: addrs.iter().enumerate().map(|(i, a)| (*a, i)).collect(),
            addrs,
            wire: BTreeMap::new(),
            seq: 0,
            now: 0,
            rng: SmallRng::seed_from_u64(seed),
            loss: 0.0,
            cut: BTreeSet::new(),
            slow: BTreeSet::new(),
            downs: Vec::new(),
            sent: BTreeMap::new(),
            legacy: BTreeSet::new(),
            compact_to_legacy: 0,
            pings: BTreeMap::new(),
            wall: false,
        };
        for i in 0..n {
            sim.nodes.push(None);
            sim.boot(i, 1);
        }
        sim
    }

    /// Starts (or restarts) member i with generation `generation`; everyone seeds from member 0.
    fn boot(&mut self, i: usize, generation: u64) {
        let id = MemberId {
            name: name(i),
            addr: self.addrs[i],
            generation,
        };
        let mut m = Membership::new(
            id,
            meta(),
            vec![self.addrs[0]],
            GossipConfig::default(),
            i as u64 * 7919 + generation,
        );
        let fx = m.start(self.now);
        self.nodes[i] = Some(m);
        self.effects(i, fx);
    }

    fn effects(&mut self, from: usize, fx: Vec<Effect>) {
        for e in fx {
            match e {
                Effect::Send { to, data } => {
                    let kind = super::stats::kind(&data);
                    *self.sent.entry(kind).or_default() += 1;
                    let Some(&to) = self.by_addr.get(&to) else { continue };
                    if matches!(kind, "ping" | "ping-full") {
                        // The period whose start is nearest (clocks may be a few ms apart).
                        let p = GossipConfig::default().probe_period_ms;
                        let period = (self.now + p / 2) / p;
                        *self.pings.entry((period, to)).or_default() += 1;
                    }
                    let legacy = self.legacy.contains(&from) || self.legacy.contains(&to);
                    if legacy && kind == "compact-probes" {
                        continue;
                    }
                    if self.legacy.contains(&to) && matches!(kind, "ping" | "ack") {
                        self.compact_to_legacy += 1;
                    }
                    let cut = self.cut.contains(&from) != self.cut.contains(&to);
                    if cut || self.rng.random_bool(self.loss) {
                        continue;
                    }
                    let at = self.now + 1 + self.rng.random_range(0..3);
                    self.seq += 1;
                    self.wire.insert((at, self.seq), Packet { from, to, data });
                }
                Effect::Changed {
                    name,
                    to: NodeStatus::Down,
                    ..
                } => self.downs.push((self.now, from, name)),
                Effect::Changed { .. } => {}
            }
        }
    }

    /// Runs the world for `ms` virtual milliseconds.
    fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 1;
            while let Some(entry) = self.wire.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let p = entry.remove();
                let from = self.addrs[p.from];
                if let Some(m) = self.nodes[p.to].as_mut() {
                    let fx = m.handle_datagram(from, &p.data, self.now);
                    self.effects(p.to, fx);
                }
            }
            for i in 0..self.nodes.len() {
                let due = self.nodes[i].as_ref().and_then(|m| m.next_wake()).is_some_and(|w| w <= self.now);
                // Hellos are paced by ticks too: tick every 100 ms as the edge does.
                // A slow member only gets to run its timers every 250 ms.
                let tick = if self.slow.contains(&i) {
                    self.now % 250 == 0
                } else {
                    due || self.now % 100 == 0
                };
                if tick {
                    let jitter = if self.wall { self.rng.random_range(0..3) } else { 0 };
                    if let Some(m) = self.nodes[i].as_mut() {
                        if self.wall {
                            m.set_wall_clock(self.now + 10_000 * 900 + jitter, self.now);
                        }
                        let fx = m.handle_tick(self.now);
                        self.effects(i, fx);
                    }
                }
            }
        }
    }

    fn status(&self, viewer: usize, of: usize) -> Option<NodeStatus> {
        let m = self.nodes[viewer].as_ref()?;
        m.nodes().into_iter().find(|v| v.name == name(of)).map(|v| v.status)
    }

    fn ready_count(&self, viewer: usize) -> usize {
        self.nodes[viewer]
            .as_ref()
            .map(|m| m.nodes().iter().filter(|v| v.status == NodeStatus::Ready).count())
            .unwrap_or(0)
    }

    /// Runs until `pred` holds or `limit` ms pass; returns the time it took.
    fn until(&mut self, limit: u64, pred: impl Fn(&Sim) -> bool) -> Option<u64> {
        let start = self.now;
        while self.now - start < limit {
            if pred(self) {
                return Some(self.now - start);
            }
            self.run(10);
        }
        pred(self).then_some(self.now - start)
    }

    fn alive(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].is_some()).collect()
    }
}

fn all_see(sim: &Sim, of: usize, status: NodeStatus) -> bool {
    sim.alive()
        .into_iter()
        .filter(|v| *v != of)
        .all(|v| sim.status(v, of) == Some(status))
}

/// `n` members that all see each other Ready, then a second of quiet.
fn converged(n: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(n, seed);
    sim.until(5_000, |s| (0..n).all(|i| s.ready_count(i) == n))
        .expect("did not converge");
    sim.run(1_000);
    sim
}

#[test]
fn five_members_converge_then_a_crash_is_down_everywhere_within_one_period_and_the_suspicion() {
    // Every member is probed once per period (the agreed order), so the
    // crashed one is probed within a period; then the ack wait, the
    // indirect probes' wait (two round trips), the suspicion and a few
    // gossip rounds. SWIM's own round-robin needs up to 4 periods here.
    let cfg = GossipConfig::default();
    let bound = cfg.probe_period_ms + 3 * cfg.probe_rtt_ms + cfg.suspicion_ms(5) + 3 * cfg.gossip_every_ms;
    for seed in 1..17 {
        let mut sim = converged(5, seed);
        // Crash at any point of a probe period.
        sim.run(seed * 53 % cfg.probe_period_ms);
        sim.nodes[3] = None;
        let t = sim
            .until(10_000, |s| all_see(s, 3, NodeStatus::Down))
            .expect("crash never detected");
        assert!(t <= bound, "seed {seed}: detection took {t} ms, more than {bound}");
    }
    let mut sim = converged(5, 1);
    sim.nodes[3] = None;
    sim.until(10_000, |s| all_see(s, 3, NodeStatus::Down))
        .expect("crash never detected");
    // A restart with a higher generation is Ready again with the same name.
    sim.boot(3, 2);
    sim.until(3_000, |s| all_see(s, 3, NodeStatus::Ready)).expect("restart not Ready");
    assert_eq!(sim.nodes[3].as_ref().unwrap().me().name, name(3));
}

#[test]
fn in_a_quiet_cluster_every_member_is_probed_once_per_period() {
    let mut sim = converged(7, 3);
    let p = GossipConfig::default().probe_period_ms;
    sim.wall = true;
    sim.run(2 * p);
    sim.pings.clear();
    let first = (sim.now + p / 2) / p + 1;
    sim.run(30 * p);
    let last = (sim.now + p / 2) / p;
    for period in first..last {
        for m in 0..7 {
            let n = sim.pings.get(&(period, m)).copied().unwrap_or(0);
            assert_eq!(n, 1, "member {m} probed {n} times in period {period}: {:?}", sim.pings);
        }
    }
    assert!(sim.downs.is_empty(), "false Down: {:?}", sim.downs);
}

#[test]
fn a_partition_is_seen_from_both_sides_and_heals() {
    // Several seeds: the heal must not depend on luck.
    for seed in 20..28 {
        let mut sim = converged(5, seed);
        sim.cut.insert(2);
        sim.until(10_000, |s| all_see(s, 2, NodeStatus::Down))
            .expect("majority never saw the cut node Down");
        sim.until(30_000, |s| {
            [0, 1, 3, 4].iter().all(|o| matches!(s.status(2, *o), Some(NodeStatus::Down)))
        })
        .expect("the cut node never saw the others Down");
        sim.cut.clear();
        let t = sim.until(10_000, |s| (0..5).all(|i| s.ready_count(i) == 5)).expect("never healed");
        assert!(t <= 3_000, "seed {seed}: heal took {t} ms");
    }
}

#[test]
fn a_short_partition_healed_mid_suspicion_settles_quickly() {
    // Healed as soon as the majority marks the cut member Down, the cut member
    // starved (timers late, so its local health is up) meanwhile.
    for seed in 40..56 {
        let mut sim = converged(5, seed);
        sim.cut.insert(2);
        sim.slow.insert(2);
        sim.until(10_000, |s| all_see(s, 2, NodeStatus::Down))
            .expect("majority never saw the cut node Down");
        sim.cut.clear();
        sim.slow.clear();
        let t = sim.until(10_000, |s| (0..5).all(|i| s.ready_count(i) == 5)).expect("never healed");
        assert!(t <= 3_000, "seed {seed}: heal took {t} ms");
    }
}

#[test]
fn a_member_that_leaves_is_left_not_down() {
    let mut sim = converged(4, 3);
    let fx = sim.nodes[1].as_mut().unwrap().leave(sim.now);
    sim.effects(1, fx);
    sim.run(500);
    sim.nodes[1] = None;
    sim.run(5_000);
    assert!(
        all_see(&sim, 1, NodeStatus::Left),
        "{:?}",
        (0..4).map(|v| sim.status(v, 1)).collect::<Vec<_>>()
    );
}

#[test]
fn a_hundred_members_converge() {
    let mut sim = Sim::new(100, 4);
    let t = sim.until(60_000, |s| (0..100).all(|i| s.ready_count(i) == 100));
    assert!(t.is_some(), "fewest Ready: {}", (0..100).map(|i| sim.ready_count(i)).min().unwrap());
}

#[test]
fn ten_idle_minutes_with_lossy_links_mark_nobody_down() {
    let mut sim = converged(5, 5);
    sim.loss = 0.05;
    sim.run(600_000);
    assert!(sim.downs.is_empty(), "false Down marks: {:?}", sim.downs);
}

#[test]
fn a_late_clock_raises_local_health() {
    let mut sim = converged(3, 6);
    // Member 0 is starved: its timers fire half a second late, repeatedly.
    let m = sim.nodes[0].as_mut().unwrap();
    let mut now = sim.now;
    for _ in 0..5 {
        now = m.next_wake().unwrap_or(now) + 500;
        let _ = m.handle_tick(now);
    }
    assert!(m.health() >= 3, "health score {}", m.health());
}

#[test]
fn a_quiet_cluster_probes_in_compact_frames_and_syncs_by_digest() {
    let mut sim = converged(5, 3);
    // Past the settling minute after the last status change.
    sim.run(GossipConfig::default().settle_ms + 5_000);
    sim.sent.clear();
    sim.run(60_000);
    let sent = |k: &str| sim.sent.get(k).copied().unwrap_or(0);
    assert!(sent("ping") > 200 && sent("ack") > 200, "{:?}", sim.sent);
    assert_eq!(sent("ping-full") + sent("ack-full"), 0, "{:?}", sim.sent);
    assert_eq!(sent("sync"), 0, "converged views match: {:?}", sim.sent);
    assert!(sent("digest") >= 5, "{:?}", sim.sent);
    assert!(sim.downs.is_empty(), "false Down: {:?}", sim.downs);
    // A member back with a new identity is told apart from the old one by
    // its tag and is Ready again everywhere.
    sim.nodes[2] = None;
    sim.until(10_000, |s| all_see(s, 2, NodeStatus::Down))
        .expect("crash never detected");
    sim.boot(2, 2);
    sim.until(5_000, |s| all_see(s, 2, NodeStatus::Ready)).expect("restart not Ready");
    sim.until(5_000, |s| (0..5).all(|i| s.ready_count(i) == 5))
        .expect("restarted member does not see all");
}

#[test]
fn a_member_that_never_says_it_reads_compact_frames_gets_foca_frames() {
    // As in a rolling upgrade: member 0 runs a build that drops the compact
    // frames and the message announcing them.
    let mut sim = Sim::new(5, 11);
    sim.legacy.insert(0);
    sim.until(5_000, |s| (0..5).all(|i| s.ready_count(i) == 5))
        .expect("did not converge");
    sim.run(30_000);
    assert_eq!(sim.compact_to_legacy, 0, "{:?}", sim.sent);
    assert!(
        sim.sent.get("ping").copied().unwrap_or(0) > 50,
        "the others use compact frames: {:?}",
        sim.sent
    );
    assert!(sim.downs.is_empty(), "false Down: {:?}", sim.downs);
}

//! The membership core: foca's SWIM plus seeds, metadata, graceful leave and
//! local health. No sockets and no clock: `handle_*(input, now_ms)` returns
//! [`Effect`]s, and time only moves when the caller says so.

use super::config::GossipConfig;
use super::health::{LocalHealth, LATE_MS};
use super::order;
use super::wire::{self, Control, Datagram};
use super::{MemberId, NodeMeta, NodeStatus, NodeView};
use foca::{AccumulatingRuntime, Codec, Foca, Header, Message, NoCustomBroadcast, OwnedNotification, PostcardCodec, State, Timer};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;

/// How far the wall clock must move against `now` before probe periods
/// follow it.
const WALL_STEP_MS: u64 = 100;

/// What the core asks of the edge.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send one message: a datagram, or a stream when [`wire::is_stream`] says so.
    Send {
        /// To this member address.
        to: SocketAddr,
        /// The framed message.
        data: Vec<u8>,
    },
    /// A member's status changed as this node sees it.
    Changed {
        /// Node name.
        name: String,
        /// Before (`None`: first sight).
        from: Option<NodeStatus>,
        /// Now.
        to: NodeStatus,
        /// Its address.
        addr: SocketAddr,
    },
}

type Swim = Foca<MemberId, PostcardCodec, SmallRng, NoCustomBroadcast>;

/// One node's view of the cluster.
pub struct Membership {
    foca: Swim,
    rt: AccumulatingRuntime<MemberId>,
    cfg: GossipConfig,
    me: MemberId,
    meta: NodeMeta,
    seeds: Vec<SocketAddr>,
    timers: BTreeMap<(u64, u64), Timer<MemberId>>,
    seq: u64,
    health: LocalHealth,
    metas: HashMap<String, (u64, NodeMeta)>,
    hello_at: HashMap<SocketAddr, u64>,
    left: HashSet<(String, u64)>,
    statuses: BTreeMap<String, NodeStatus>,
    active: bool,
    leaving: bool,
    sized_for: usize,
    incarnation: Option<u16>,
    next_sync: u64,
    /// When a member's status last changed (the membership is settling).
    changed_at: u64,
    suspects: HashMap<String, (u64, bool)>,
    /// Members known to hold our current identity (they addressed us by it):
    /// pings and acks to them go in the compact frame.
    knows_me: HashSet<MemberId>,
    /// Members that read compact frames (they said so, or sent one).
    compact: HashSet<MemberId>,
    /// When we last told a member we read compact frames.
    told_at: HashMap<MemberId, u64>,
    /// [`MemberId::tag`] of every member, for compact frames.
    tags: HashMap<u32, MemberId>,
    /// The wall clock minus `now` (ms): probes start on the wall clock's
    /// period boundaries, in the order of [`super::order`].
    wall_offset: u64,
    rng: SmallRng,
    out: Vec<Effect>,
}

impl Membership {
    /// A node that will look for the cluster at `seeds`.
    pub fn new(me: MemberId, meta: NodeMeta, seeds: Vec<SocketAddr>, cfg: GossipConfig, rng_seed: u64) -> Membership {
        let foca = Foca::new(me.clone(), cfg.foca(1), SmallRng::seed_from_u64(rng_seed), PostcardCodec);
        let seeds = seeds.into_iter().filter(|s| *s != me.addr).collect();
        let mut m = Membership {
            foca,
            rt: AccumulatingRuntime::new(),
            cfg,
            me,
            meta,
            seeds,
            timers: BTreeMap::new(),
            seq: 0,
            health: LocalHealth::default(),
            metas: HashMap::new(),
            hello_at: HashMap::new(),
            left: HashSet::new(),
            statuses: BTreeMap::new(),
            active: false,
            leaving: false,
            sized_for: 1,
            incarnation: None,
            next_sync: 0,
            changed_at: 0,
            suspects: HashMap::new(),
            knows_me: HashSet::new(),
            compact: HashSet::new(),
            told_at: HashMap::new(),
            tags: HashMap::new(),
            wall_offset: 0,
            rng: SmallRng::seed_from_u64(rng_seed ^ 0x5_4041),
            out: Vec::new(),
        };
        let meta = m.meta.clone();
        m.metas.insert(m.me.name.clone(), (m.me.generation, meta));
        m
    }

    /// This node's identity (it changes on rejoin).
    pub fn me(&self) -> &MemberId {
        &self.me
    }

    /// Tells the core the wall clock (ms since the epoch) at `now`, so that
    /// members agree on when probe periods start. Without it, `now` itself
    /// is taken as the wall clock (as in a simulation on one virtual clock).
    /// Only a step of the wall clock moves the boundaries: readings that
    /// differ by a millisecond or NTP's slewing leave them where they are.
    pub fn set_wall_clock(&mut self, wall_ms: u64, now: u64) {
        let offset = wall_ms.wrapping_sub(now);
        if offset.abs_diff(self.wall_offset) > WALL_STEP_MS {
            self.wall_offset = offset;
        }
    }

    /// The local health score (0 = healthy).
    pub fn health(&self) -> u32 {
        self.health.score()
    }

    /// Starts looking for the cluster.
    pub fn start(&mut self, now: u64) -> Vec<Effect> {
        self.hellos(now);
        self.finish(now)
    }

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, from: SocketAddr, data: &[u8], now: u64) -> Vec<Effect> {
        match wire::decode(data) {
            Some(Datagram::Swim(bytes)) if !self.leaving => {
                if let Ok(h) = PostcardCodec.decode_header(bytes) {
                    let h: Header<MemberId> = h;
                    if h.dst == self.me {
                        self.knows_me.insert(h.src);
                    }
                    self.offer_compact(now);
                }
                // Errors are bad or stale packets from one peer: dropped, as UDP would.
                let _ = self.foca.handle_data(bytes, &mut self.rt);
            }
            Some(Datagram::Probe(p)) if !self.leaving => {
                if let Some(packet) = self.expand(&p) {
                    let _ = self.foca.handle_data(&packet, &mut self.rt);
                }
            }
            Some(Datagram::Control(c)) => self.control(from, c),
            Some(Datagram::Sync(sync)) if !self.leaving => {
                let _ = self.foca.apply_many(sync.members.into_iter(), true, &mut self.rt);
                if sync.reply {
                    self.out.push(Effect::Send {
                        to: from,
                        data: self.sync_message(false),
                    });
                }
            }
            _ => {}
        }
        self.finish(now)
    }

    fn control(&mut self, from: SocketAddr, c: Control) {
        match c {
            Control::CompactProbes { id } => {
                self.compact.insert(id);
            }
            Control::Digest { hash } => {
                if hash != self.digest() && !self.leaving {
                    self.out.push(Effect::Send {
                        to: from,
                        data: self.sync_message(true),
                    });
                }
            }
            Control::Hello { id, meta } => {
                self.learn(&id, meta);
                if !self.leaving {
                    let reply = wire::control(&Control::Meta {
                        id: self.me.clone(),
                        meta: self.meta.clone(),
                    });
                    self.out.push(Effect::Send { to: id.addr, data: reply });
                }
            }
            Control::Meta { id, meta } => {
                self.learn(&id, meta);
                let known = self.foca.iter_members().any(|m| m.id() == &id);
                if !known && !self.leaving {
                    let _ = self.foca.announce(id, &mut self.rt);
                }
            }
            Control::Leaving { id } => {
                if id.name == self.me.name || !self.left.insert((id.name.clone(), id.generation)) {
                    return;
                }
                // Down is final for this identity; Left is how we show it.
                let _ = self
                    .foca
                    .apply_many(std::iter::once(foca::Member::down(id.clone())), true, &mut self.rt);
                let relay = wire::control(&Control::Leaving { id });
                for to in self.pick_active(3) {
                    self.out.push(Effect::Send { to, data: relay.clone() });
                }
            }
        }
    }

    fn learn(&mut self, id: &MemberId, meta: NodeMeta) {
        if id.name == self.me.name {
            return;
        }
        let newer = self.metas.get(&id.name).is_none_or(|(g, _)| *g <= id.generation);
        if newer {
            self.metas.insert(id.name.clone(), (id.generation, meta));
        }
    }

    fn pick_active(&mut self, n: usize) -> Vec<SocketAddr> {
        let mut all: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        let mut picked = Vec::new();
        while picked.len() < n && !all.is_empty() {
            let i = self.rng.random_range(0..all.len());
            picked.push(all.swap_remove(i));
        }
        picked
    }

    /// Time passed: fire due timers, resend hellos.
    pub fn handle_tick(&mut self, now: u64) -> Vec<Effect> {
        while let Some(entry) = self.timers.first_entry() {
            let (due, _) = *entry.key();
            if due > now {
                break;
            }
            let timer = entry.remove();
            let late = now - due;
            self.health.timer_fired(late);
            if matches!(timer, Timer::ProbeRandomMember(_)) {
                if late < LATE_MS {
                    self.health.probe_period_ok();
                }
                self.choose_probe(due);
            }
            if !self.leaving {
                let _ = self.foca.handle_timer(timer, &mut self.rt);
            }
        }
        self.hellos(now);
        self.stale_suspicions(now);
        if self.active && now >= self.next_sync {
            let interval = self.sync_interval(now);
            self.next_sync = now + interval;
            if let Some(to) = self.pick_active(1).pop() {
                let data = if interval == self.cfg.sync_every_ms {
                    self.sync_message(true)
                } else {
                    wire::control(&Control::Digest { hash: self.digest() })
                };
                self.out.push(Effect::Send { to, data });
            }
        }
        self.finish(now)
    }

    /// foca drops its pending timers when our identity is renewed (after a
    /// partition, say), which can leave a member Suspect with no timer to
    /// settle it. Past the suspicion timeout we push our view to the suspect
    /// so that, if alive, it refutes at once; past twice that, we declare it
    /// Down ourselves, as its timer would have.
    fn stale_suspicions(&mut self, now: u64) {
        let limit = self.cfg.suspicion_ms(self.sized_for);
        let mut nudge = Vec::new();
        let mut down = Vec::new();
        for m in self.foca.iter_membership_state() {
            if m.state() != State::Suspect {
                continue;
            }
            let Some((since, nudged)) = self.suspects.get_mut(&m.id().name) else {
                continue;
            };
            if now >= *since + 2 * limit + self.cfg.probe_period_ms {
                down.push(foca::Member::new(m.id().clone(), m.incarnation(), State::Down));
            } else if !*nudged && now >= *since + limit + self.cfg.probe_period_ms {
                *nudged = true;
                nudge.push(m.id().addr);
            }
        }
        for to in nudge {
            let data = self.sync_message(true);
            self.out.push(Effect::Send { to, data });
        }
        if !down.is_empty() {
            let _ = self.foca.apply_many(down.into_iter(), true, &mut self.rt);
        }
    }

    /// Anti-entropy is frequent while the membership settles (a status
    /// changed lately, or a member's metadata is still missing) and rare in
    /// a quiet cluster, where it only guards against a lost update.
    fn sync_interval(&self, now: u64) -> u64 {
        let missing = self
            .foca
            .iter_members()
            .any(|m| self.metas.get(&m.id().name).is_none_or(|(g, _)| *g < m.id().generation));
        if missing || now < self.changed_at + self.cfg.settle_ms {
            self.cfg.sync_every_ms
        } else {
            self.cfg.quiet_sync_every_ms
        }
    }

    /// A hash of the whole view, this node included, in name order.
    fn digest(&self) -> u32 {
        // Our own old identities are left out (others replaced them), and a
        // Down member's incarnation too (the first Down wins, at whatever
        // incarnation its sender held).
        let mut view: Vec<(&MemberId, u16, u8)> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.id().name != self.me.name)
            .map(|m| match m.state() {
                State::Down => (m.id(), 0, State::Down as u8),
                s => (m.id(), m.incarnation(), s as u8),
            })
            .collect();
        view.push((&self.me, self.incarnation.unwrap_or_default(), State::Alive as u8));
        view.sort_by(|a, b| a.0.name.cmp(&b.0.name).then(a.0.generation.cmp(&b.0.generation)));
        let mut h = super::identity::Fnv::default();
        for (id, incarnation, state) in view {
            id.feed(&mut h);
            h.write(&incarnation.to_le_bytes());
            h.write(&[state]);
        }
        h.finish32()
    }

    fn sync_message(&self, reply: bool) -> Vec<u8> {
        wire::sync(&wire::Sync {
            members: self.foca.iter_membership_state().cloned().collect(),
            reply,
        })
    }

    /// When the next timer is due, if any.
    pub fn next_wake(&self) -> Option<u64> {
        self.timers.keys().next().map(|(due, _)| *due)
    }

    /// Leave on purpose: tell every member, then stop taking part.
    pub fn leave(&mut self, now: u64) -> Vec<Effect> {
        let notice = wire::control(&Control::Leaving { id: self.me.clone() });
        let members: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        for to in members {
            // Twice: a datagram may be lost, a duplicate is ignored.
            for _ in 0..2 {
                self.out.push(Effect::Send { to, data: notice.clone() });
            }
        }
        let _ = self.foca.leave_cluster(&mut self.rt);
        self.drain(now);
        self.leaving = true;
        self.timers.clear();
        self.statuses(now);
        std::mem::take(&mut self.out)
    }

    fn hellos(&mut self, now: u64) {
        if self.leaving {
            return;
        }
        let mut targets = Vec::new();
        if !self.active {
            targets.extend(self.seeds.iter().copied());
        }
        for m in self.foca.iter_members() {
            let id = m.id();
            if self.metas.get(&id.name).is_none_or(|(g, _)| *g < id.generation) {
                targets.push(id.addr);
            }
        }
        targets.retain(|to| self.hello_at.get(to).is_none_or(|t| now >= t + self.cfg.hello_every_ms));
        if targets.is_empty() {
            return;
        }
        let hello = wire::control(&Control::Hello {
            id: self.me.clone(),
            meta: self.meta.clone(),
        });
        for to in targets {
            self.hello_at.insert(to, now);
            self.out.push(Effect::Send { to, data: hello.clone() });
        }
    }

    fn finish(&mut self, now: u64) -> Vec<Effect> {
        self.drain(now);
        let n = self.foca.num_members() + 1;
        if n != self.sized_for {
            self.sized_for = n;
            let _ = self.foca.set_config(self.cfg.foca(n));
        }
        self.statuses(now);
        std::mem::take(&mut self.out)
    }

    /// foca's header of a compact probe, rebuilt; `None` if the sender is
    /// not a member we know or the probe is for an identity of ours that is
    /// gone (foca drops those too).
    fn expand(&mut self, p: &wire::Probe<'_>) -> Option<Vec<u8>> {
        if p.dst != self.me.tag() as u16 {
            return None;
        }
        if !self.tags.contains_key(&p.src) {
            self.tags = self.foca.iter_membership_state().map(|m| (m.id().tag(), m.id().clone())).collect();
            // Identities foca forgot are forgotten here too.
            let tags = &self.tags;
            self.knows_me.retain(|id| tags.contains_key(&id.tag()));
            self.compact.retain(|id| tags.contains_key(&id.tag()));
            self.told_at.retain(|id, _| tags.contains_key(&id.tag()));
        }
        let src = self.tags.get(&p.src)?.clone();
        self.knows_me.insert(src.clone());
        self.compact.insert(src.clone());
        let header = Header {
            src,
            src_incarnation: p.incarnation,
            dst: self.me.clone(),
            message: if p.ack { Message::Ack(p.probe) } else { Message::Ping(p.probe) },
        };
        let mut packet = Vec::with_capacity(64 + p.updates.len());
        PostcardCodec.encode_header(&header, &mut packet).ok()?;
        packet.extend_from_slice(p.updates);
        Some(packet)
    }

    /// Tells members that know our identity, and have not shown they read
    /// compact frames, that we do (again every 10 s while they stay silent
    /// about it: the datagram may be lost, or they run an older build,
    /// which drops it).
    fn offer_compact(&mut self, now: u64) {
        let due: Vec<MemberId> = self
            .knows_me
            .iter()
            .filter(|id| !self.compact.contains(*id))
            .filter(|id| self.told_at.get(*id).is_none_or(|t| now >= t + 10_000))
            .cloned()
            .collect();
        if due.is_empty() {
            return;
        }
        let data = wire::control(&Control::CompactProbes { id: self.me.clone() });
        for id in due {
            self.out.push(Effect::Send {
                to: id.addr,
                data: data.clone(),
            });
            self.told_at.insert(id, now);
        }
    }

    /// Frames one foca packet: pings and acks to members that know us go
    /// compact. Returns whether it asks others to probe for us.
    fn frame(&self, to: &MemberId, data: &[u8]) -> (Vec<u8>, bool) {
        let mut rest = data;
        let Ok(h) = PostcardCodec.decode_header(&mut rest) else {
            return (wire::swim(data), false);
        };
        let h: Header<MemberId> = h;
        let (ack, probe) = match h.message {
            Message::PingReq { .. } => return (wire::swim(data), true),
            Message::Ping(n) => (false, n),
            Message::Ack(n) => (true, n),
            _ => return (wire::swim(data), false),
        };
        if !self.knows_me.contains(to) || !self.compact.contains(to) || h.src != self.me {
            return (wire::swim(data), false);
        }
        let p = wire::Probe {
            ack,
            src: h.src.tag(),
            dst: to.tag() as u16,
            incarnation: h.src_incarnation,
            probe,
            updates: rest,
        };
        (wire::probe(&p), false)
    }

    fn drain(&mut self, now: u64) {
        let mut indirect = false;
        while let Some((to, data)) = self.rt.to_send() {
            let (framed, asks) = self.frame(&to, &data);
            indirect |= asks;
            self.out.push(Effect::Send { to: to.addr, data: framed });
        }
        if indirect {
            self.settle_probe_early(now);
        }
        while let Some((after, timer)) = self.rt.to_schedule() {
            let ms = after.as_millis() as u64;
            let due = match timer {
                // As memberlist does: local health stretches the probe interval
                // and timeout, never the suspicion timeout. A suspicion that
                // outlived a partition would otherwise hold a healthy member
                // Suspect for seconds after the heal.
                Timer::ProbeRandomMember(_) if self.health.scale(ms) == ms => {
                    let gap = 2 * self.cfg.probe_rtt_ms;
                    order::aligned_due(now, ms, self.cfg.probe_period_ms, self.wall_offset, gap)
                }
                Timer::ProbeRandomMember(_) | Timer::SendIndirectProbe { .. } => now + self.health.scale(ms),
                _ => now + ms,
            };
            self.seq += 1;
            self.timers.insert((due, self.seq), timer);
        }
        while let Some(n) = self.rt.to_notify() {
            match n {
                OwnedNotification::Active => self.active = true,
                OwnedNotification::Idle => self.active = false,
                OwnedNotification::Rejoin(id) => {
                    // Nobody knows the new identity yet.
                    self.me = id;
                    self.knows_me.clear();
                    self.told_at.clear();
                    // foca starts the new identity at incarnation 0.
                    self.incarnation = None;
                }
                OwnedNotification::DataSent(h) => {
                    let inc = h.src_incarnation;
                    match self.incarnation {
                        Some(prev) if inc > prev => {
                            // We raised our incarnation: someone suspected us.
                            self.health.refuted();
                            self.incarnation = Some(inc);
                        }
                        None => self.incarnation = Some(inc),
                        _ => {}
                    }
                }
                OwnedNotification::ProbeFailed(_, _) => self.health.probe_failed(now, 3 * self.cfg.probe_period_ms),
                _ => {}
            }
        }
    }

    /// A probe starting on a period boundary goes to this period's member
    /// in the agreed order; any other (one that settles a failed probe
    /// early, or one stretched by local health) to foca's round-robin.
    fn choose_probe(&mut self, due: u64) {
        let Some(k) = order::period_at(due, self.cfg.probe_period_ms, self.wall_offset) else {
            return;
        };
        let members = self.foca.iter_members().map(|m| m.id());
        if let Some(t) = order::target(&self.me, members, k).cloned() {
            self.foca.probe_next(t);
        }
    }

    /// The direct probe went unanswered and foca asked others to try: give
    /// their answers two probe timeouts (the indirect path is two round
    /// trips), then let foca settle the probe (Suspect if nobody answered)
    /// and start the next one, instead of waiting out the rest of the probe
    /// period. A long period then costs fewer bytes without slowing
    /// detection.
    fn settle_probe_early(&mut self, now: u64) {
        // The indirect path is two round trips: ping-req, ping, ack, forwarded ack.
        let due = now + self.health.scale(2 * self.cfg.probe_rtt_ms);
        let pending = self
            .timers
            .iter()
            .find(|(_, t)| matches!(t, Timer::ProbeRandomMember(_)))
            .map(|(k, _)| *k);
        if let Some(key) = pending.filter(|(at, _)| *at > due) {
            let timer = self.timers.remove(&key).expect("just found");
            self.timers.insert((due, key.1), timer);
        }
    }

    fn status(&self, m: &foca::Member<MemberId>) -> NodeStatus {
        match m.state() {
            State::Alive => NodeStatus::Ready,
            State::Suspect => NodeStatus::Suspect,
            State::Down if self.left.contains(&(m.id().name.clone(), m.id().generation)) => NodeStatus::Left,
            State::Down => NodeStatus::Down,
        }
    }

    /// Emits `Changed` for every member whose status moved (no allocation unless one did).
    fn statuses(&mut self, now: u64) {
        let mut changed = Vec::new();
        for m in self.foca.iter_membership_state() {
            let status = self.status(m);
            if self.statuses.get(&m.id().name) != Some(&status) {
                changed.push((m.id().name.clone(), m.id().addr, status));
            }
        }
        if !changed.is_empty() {
            self.changed_at = now;
            self.next_sync = self.next_sync.min(now + self.cfg.sync_every_ms);
        }
        for (name, addr, to) in changed {
            if to == NodeStatus::Suspect {
                self.suspects.insert(name.clone(), (now, false));
            } else {
                self.suspects.remove(&name);
            }
            let from = self.statuses.insert(name.clone(), to);
            self.out.push(Effect::Changed { name, from, to, addr });
        }
    }

    /// Every member this node knows, itself first.
    pub fn nodes(&self) -> Vec<NodeView> {
        let own = if self.leaving { NodeStatus::Left } else { NodeStatus::Ready };
        let mut v = vec![self.view(&self.me, own)];
        let mut rest: Vec<NodeView> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.id().name != self.me.name)
            .map(|m| self.view(m.id(), self.status(m)))
            .collect();
        rest.sort_by(|a, b| a.name.cmp(&b.name));
        v.extend(rest);
        v
    }

    fn view(&self, id: &MemberId, status: NodeStatus) -> NodeView {
        NodeView {
            name: id.name.clone(),
            status,
            addr: id.addr,
            generation: id.generation,
            meta: self.metas.get(&id.name).map(|(_, m)| m.clone()),
        }
    }
}

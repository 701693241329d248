//! The membership core: foca's SWIM plus seeds, metadata, graceful leave and
//! local health. No sockets and no clock: `handle_*(input, now_ms)` returns
//! [`Effect`]s, and time only moves when the caller says so.

use super::config::GossipConfig;
use super::health::{LocalHealth, LATE_MS};
use super::wire::{self, Control, Datagram};
use super::{MemberId, NodeMeta, NodeStatus, NodeView};
use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec, State, Timer};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;

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
    suspects: HashMap<String, (u64, bool)>,
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
            suspects: HashMap::new(),
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
                // Errors are bad or stale packets from one peer: dropped, as UDP would.
                let _ = self.foca.handle_data(bytes, &mut self.rt);
            }
            Some(Datagram::Control(c)) => self.control(c),
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

    fn control(&mut self, c: Control) {
        match c {
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
            if late < LATE_MS && matches!(timer, Timer::ProbeRandomMember(_)) {
                self.health.probe_period_ok();
            }
            if !self.leaving {
                let _ = self.foca.handle_timer(timer, &mut self.rt);
            }
        }
        self.hellos(now);
        self.stale_suspicions(now);
        if self.active && now >= self.next_sync {
            self.next_sync = now + self.cfg.sync_every_ms;
            if let Some(to) = self.pick_active(1).pop() {
                self.out.push(Effect::Send {
                    to,
                    data: self.sync_message(true),
                });
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

    fn drain(&mut self, now: u64) {
        while let Some((to, data)) = self.rt.to_send() {
            self.out.push(Effect::Send {
                to: to.addr,
                data: wire::swim(&data),
            });
        }
        while let Some((after, timer)) = self.rt.to_schedule() {
            let ms = after.as_millis() as u64;
            let ms = match timer {
                // As memberlist does: local health stretches the probe interval
                // and timeout, never the suspicion timeout. A suspicion that
                // outlived a partition would otherwise hold a healthy member
                // Suspect for seconds after the heal.
                Timer::ProbeRandomMember(_) | Timer::SendIndirectProbe { .. } => self.health.scale(ms),
                _ => ms,
            };
            self.seq += 1;
            self.timers.insert((now + ms, self.seq), timer);
        }
        while let Some(n) = self.rt.to_notify() {
            match n {
                OwnedNotification::Active => self.active = true,
                OwnedNotification::Idle => self.active = false,
                OwnedNotification::Rejoin(id) => self.me = id,
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

//! The edge of gossip: QUIC connections, datagrams and the clock. One task
//! owns the [`Membership`] core and feeds it what arrives; whatever the core
//! returns is sent. A peer is reached over one connection (mTLS, ALPN
//! `shoal-gossip`), dialled on demand from the node's own endpoint, so the
//! API and gossip share one UDP port.

use super::core::{Effect, Membership};
use super::stats::{self, Count, GossipStats, Traffic};
use super::NodeView;
use crate::daemon::shutdown::Shutdown;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info};

/// Requests to the gossip task.
#[derive(Debug)]
pub enum GossipCmd {
    /// The member list as this node sees it.
    Nodes(oneshot::Sender<Vec<NodeView>>),
    /// Leave the cluster; answered once the notices are out.
    Leave(oneshot::Sender<()>),
    /// What gossip has cost on the wire.
    Stats(oneshot::Sender<GossipStats>),
}

/// A cheap handle on the gossip task.
#[derive(Clone, Debug)]
pub struct Handle(mpsc::Sender<GossipCmd>);

/// A handle and the receiver the gossip task takes.
pub fn channel() -> (Handle, mpsc::Receiver<GossipCmd>) {
    let (tx, rx) = mpsc::channel(16);
    (Handle(tx), rx)
}

impl Handle {
    /// The member list; empty if the task is gone.
    pub async fn nodes(&self) -> Vec<NodeView> {
        let (tx, rx) = oneshot::channel();
        if self.0.send(GossipCmd::Nodes(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The names of the members gossip holds Down.
    pub async fn down(&self) -> std::collections::BTreeSet<String> {
        self.nodes()
            .await
            .into_iter()
            .filter(|n| n.status == super::NodeStatus::Down)
            .map(|n| n.name)
            .collect()
    }

    /// Gossip's traffic counters; `None` if the task is gone.
    pub async fn stats(&self) -> Option<GossipStats> {
        let (tx, rx) = oneshot::channel();
        self.0.send(GossipCmd::Stats(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Leaves the cluster.
    pub async fn leave(&self) {
        let (tx, rx) = oneshot::channel();
        if self.0.send(GossipCmd::Leave(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Everything the gossip task needs.
pub struct GossipDeps {
    /// The protocol core.
    pub core: Membership,
    /// The node's endpoint (shared with the API).
    pub endpoint: quinn::Endpoint,
    /// How to dial peers.
    pub client: quinn::ClientConfig,
    /// Gossip connections the accept loop admitted.
    pub incoming: mpsc::Receiver<quinn::Connection>,
    /// Requests.
    pub cmds: mpsc::Receiver<GossipCmd>,
    /// Called with the Ready members' addresses whenever that set grows.
    pub remember: Option<Box<dyn FnMut(Vec<SocketAddr>) + Send>>,
    /// Log member status changes at info (else debug).
    pub log_changes: bool,
    /// Stop.
    pub shutdown: Shutdown,
}

enum ConnEvent {
    Dialled(SocketAddr, Result<quinn::Connection, String>),
    Closed(SocketAddr, usize, Box<quinn::ConnectionStats>),
}

#[derive(Default)]
struct Peer {
    conn: Option<quinn::Connection>,
    dialling: bool,
    failed_at: Option<u64>,
    /// When a datagram last came from the peer.
    heard_at: Option<u64>,
    /// When the current connection was registered.
    since: u64,
    queue: Vec<Vec<u8>>,
}

const QUEUE_MAX: usize = 8;
/// A connection that brought nothing for this long is not trusted to reach
/// a member held down.
const STALE_MS: u64 = 2000;
const REDIAL_MS: u64 = 250;
const DIAL_TIMEOUT: Duration = Duration::from_millis(1500);
const TICK_MS: u64 = 100;
/// Largest full-state sync accepted (about 20 000 members).
const SYNC_MAX: usize = 1 << 20;

struct Edge {
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    peers: HashMap<SocketAddr, Peer>,
    datagrams: mpsc::Sender<(SocketAddr, Bytes)>,
    events: mpsc::Sender<ConnEvent>,
    shutdown: Shutdown,
    ready: std::collections::BTreeSet<SocketAddr>,
    down: std::collections::HashSet<SocketAddr>,
    remember: Option<Box<dyn FnMut(Vec<SocketAddr>) + Send>>,
    log_changes: bool,
    /// Every gossip connection open now, by stable id (for its counters).
    open: HashMap<usize, quinn::Connection>,
    /// Counters of the connections already closed: sent, received, frames.
    closed: Traffic,
    /// What the core sent, by kind.
    sent: std::collections::BTreeMap<&'static str, Count>,
}

/// Runs gossip until shutdown.
pub async fn run(deps: GossipDeps) {
    let GossipDeps {
        mut core,
        endpoint,
        client,
        mut incoming,
        mut cmds,
        remember,
        log_changes,
        mut shutdown,
    } = deps;
    let start = Instant::now();
    let now = move || start.elapsed().as_millis() as u64;
    let (dg_tx, mut dg_rx) = mpsc::channel(1024);
    let (ev_tx, mut ev_rx) = mpsc::channel(256);
    let mut edge = Edge {
        endpoint,
        client,
        peers: HashMap::new(),
        datagrams: dg_tx,
        events: ev_tx,
        shutdown: shutdown.clone(),
        ready: Default::default(),
        down: Default::default(),
        remember,
        log_changes,
        open: HashMap::new(),
        closed: Default::default(),
        sent: Default::default(),
    };
    // Probe periods start on the wall clock's boundaries, shared by members
    // whose clocks are in sync (NTP). Told again at every tick: a board
    // without a real-time clock may start before NTP has set the time.
    let wall_clock = |core: &mut Membership, now: u64| {
        if let Ok(wall) = SystemTime::now().duration_since(UNIX_EPOCH) {
            core.set_wall_clock(wall.as_millis() as u64, now);
        }
    };
    wall_clock(&mut core, now());
    let fx = core.start(now());
    edge.apply(fx, now());
    loop {
        let t = now();
        let wake = core.next_wake().unwrap_or(u64::MAX).min(t + TICK_MS).max(t);
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            Some(cmd) = cmds.recv() => match cmd {
                GossipCmd::Nodes(tx) => { let _ = tx.send(core.nodes()); }
                GossipCmd::Stats(tx) => { let _ = tx.send(edge.stats(&core, now())); }
                GossipCmd::Leave(tx) => {
                    let fx = core.leave(now());
                    edge.apply(fx, now());
                    // Let the notices leave the socket before answering.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let _ = tx.send(());
                }
            },
            Some(conn) = incoming.recv() => edge.register(conn, now()),
            Some((from, data)) = dg_rx.recv() => {
                if let Some(p) = edge.peers.get_mut(&from) {
                    p.heard_at = Some(now());
                }
                let fx = core.handle_datagram(from, &data, now());
                edge.apply(fx, now());
            }
            Some(ev) = ev_rx.recv() => edge.event(ev, now()),
            _ = tokio::time::sleep_until(start + Duration::from_millis(wake)) => {
                wall_clock(&mut core, now());
                let fx = core.handle_tick(now());
                edge.apply(fx, now());
            }
        }
    }
    debug!("gossip loop is done");
}

impl Edge {
    fn apply(&mut self, effects: Vec<Effect>, now: u64) {
        for e in effects {
            match e {
                Effect::Send { to, data } => self.send(to, data, now),
                Effect::Changed { name, from, to, addr } => {
                    if self.log_changes {
                        info!(node = %name, %addr, from = ?from, to = %to, "member status");
                    } else {
                        debug!(node = %name, %addr, from = ?from, to = %to, "member status");
                    }
                    if matches!(to, super::NodeStatus::Down | super::NodeStatus::Left) {
                        self.down.insert(addr);
                    } else {
                        self.down.remove(&addr);
                    }
                    if to == super::NodeStatus::Ready && self.ready.insert(addr) {
                        if let Some(r) = self.remember.as_mut() {
                            r(self.ready.iter().copied().collect());
                        }
                    }
                }
            }
        }
    }

    fn stats(&self, core: &Membership, now: u64) -> GossipStats {
        let mut t = self.closed;
        for c in self.open.values() {
            t.add(&c.stats());
        }
        GossipStats {
            uptime_ms: now,
            members: core.nodes().len(),
            health: core.health(),
            connections: self.open.len(),
            udp_tx: t.tx,
            udp_rx: t.rx,
            frames_tx: t.frames,
            sent: self.sent.iter().map(|(k, c)| (k.to_string(), *c)).collect(),
        }
    }

    fn send(&mut self, to: SocketAddr, data: Vec<u8>, now: u64) {
        stats::count(&mut self.sent, &data);
        self.deliver(to, data, now);
    }

    /// Sends on the peer's connection, or queues and dials.
    fn deliver(&mut self, to: SocketAddr, data: Vec<u8>, now: u64) {
        let peer = self.peers.entry(to).or_default();
        if self.down.contains(&to) && peer.conn.is_some() && now >= peer.heard_at.unwrap_or(0).max(peer.since) + STALE_MS {
            // A knock on a member held down over a connection that has
            // carried nothing from it lately: that connection may sit in
            // loss-recovery back-off for seconds, so start afresh. (Closing
            // on every Down instead made each false suspicion in a busy
            // fleet cost a hundred handshakes.)
            if let Some(c) = peer.conn.take() {
                c.close(0u32.into(), b"member down");
            }
        }
        if let Some(conn) = &peer.conn {
            if super::wire::is_stream(&data) {
                let conn = conn.clone();
                tokio::spawn(async move {
                    if let Ok(mut s) = conn.open_uni().await {
                        if s.write_all(&data).await.is_ok() {
                            let _ = s.finish();
                        }
                    }
                });
                return;
            }
            // A datagram that cannot go is lost, as UDP would lose it; SWIM
            // copes. The next send dials afresh.
            if let Err(e) = conn.send_datagram(Bytes::from(data)) {
                debug!(peer = %to, error = %e, "gossip connection unusable; redialling on the next send");
                peer.conn = None;
            }
            return;
        }
        if peer.queue.len() >= QUEUE_MAX {
            peer.queue.remove(0);
        }
        peer.queue.push(data);
        let backoff = peer.failed_at.is_some_and(|t| now < t + REDIAL_MS);
        if peer.dialling || backoff {
            return;
        }
        peer.dialling = true;
        let connecting = self
            .endpoint
            .connect_with(self.client.clone(), to, crate::transport::pki::SERVER_NAME);
        let events = self.events.clone();
        tokio::spawn(async move {
            let result = match connecting {
                Err(e) => Err(e.to_string()),
                Ok(c) => match tokio::time::timeout(DIAL_TIMEOUT, c).await {
                    Err(_) => Err("timed out".into()),
                    Ok(r) => r.map_err(|e| e.to_string()),
                },
            };
            let _ = events.send(ConnEvent::Dialled(to, result)).await;
        });
    }

    fn event(&mut self, ev: ConnEvent, now: u64) {
        match ev {
            ConnEvent::Dialled(addr, Ok(conn)) => {
                self.register(conn, now);
                let peer = self.peers.entry(addr).or_default();
                peer.dialling = false;
                peer.failed_at = None;
                let queue = std::mem::take(&mut peer.queue);
                for data in queue {
                    self.deliver(addr, data, now);
                }
            }
            ConnEvent::Dialled(addr, Err(e)) => {
                debug!(peer = %addr, error = %e, "gossip dial failed");
                let peer = self.peers.entry(addr).or_default();
                peer.dialling = false;
                peer.failed_at = Some(now);
                peer.queue.clear();
            }
            ConnEvent::Closed(addr, id, s) => {
                if self.open.remove(&id).is_some() {
                    self.closed.add(&s);
                }
                if let Some(p) = self.peers.get_mut(&addr) {
                    if p.conn.as_ref().is_some_and(|c| c.stable_id() == id) {
                        p.conn = None;
                    }
                }
            }
        }
    }

    /// Uses `conn` for sends to its peer from now on and reads its datagrams.
    fn register(&mut self, conn: quinn::Connection, now: u64) {
        let addr = conn.remote_address();
        let id = conn.stable_id();
        self.open.insert(id, conn.clone());
        let peer = self.peers.entry(addr).or_default();
        peer.conn = Some(conn.clone());
        peer.since = now;
        let datagrams = self.datagrams.clone();
        let events = self.events.clone();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let data = tokio::select! {
                    biased;
                    _ = shutdown.wait() => break,
                    d = conn.read_datagram() => match d {
                        Ok(d) => d,
                        Err(_) => break,
                    },
                    s = conn.accept_uni() => match s {
                        Ok(mut s) => {
                            // A full-state sync: bounded, read off the loop.
                            let datagrams = datagrams.clone();
                            tokio::spawn(async move {
                                if let Ok(data) = s.read_to_end(SYNC_MAX).await {
                                    let _ = datagrams.send((addr, Bytes::from(data))).await;
                                }
                            });
                            continue;
                        }
                        Err(_) => break,
                    },
                };
                if datagrams.send((addr, data)).await.is_err() {
                    break;
                }
            }
            let _ = events.send(ConnEvent::Closed(addr, id, Box::new(conn.stats()))).await;
        });
    }
}

/// True if the connection's peer presented a node certificate.
pub fn is_node(conn: &quinn::Connection) -> bool {
    crate::transport::quic::peer_name(conn).is_some_and(|n| n.starts_with(crate::transport::pki::NODE_CN_PREFIX))
}

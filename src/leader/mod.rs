//! What only the leader does, in one task that idles on other nodes: keep
//! Raft's membership in step with the node objects (learners in, deleted
//! nodes out, voters chosen by autopilot), and schedule pending pods.
//! Everything it decides is a Raft write; it never talks to a node.

mod control;
mod members;
pub(crate) mod schedule;

use crate::consensus::autopilot::AutopilotSettings;
use crate::consensus::Consensus;
use crate::daemon::shutdown::Shutdown;
use crate::gossip::Handle;
use std::time::Duration;
use tracing::{info, warn};

/// What the leader loop needs.
pub struct LeaderDeps {
    /// Raft and the replica.
    pub consensus: Consensus,
    /// Membership health.
    pub gossip: Handle,
    /// Voter choice figures.
    pub autopilot: AutopilotSettings,
    /// Controller settings.
    pub controllers: crate::controllers::Settings,
    /// Stop.
    pub shutdown: Shutdown,
}

/// How often membership and autopilot are looked at (and pods scheduled
/// at the latest).
const MEMBERS_EVERY: Duration = Duration::from_millis(500);
/// How long applied changes gather before a scheduling pass.
const SCHEDULE_AFTER: Duration = Duration::from_millis(20);

/// Runs until shutdown.
pub async fn run(deps: LeaderDeps) {
    let LeaderDeps {
        consensus,
        gossip,
        autopilot,
        controllers,
        mut shutdown,
    } = deps;
    let mut applied = consensus.replica.subscribe();
    // Server metrics change only with the vote, the leader and the
    // membership; the full metrics change with every heartbeat answer.
    let mut metrics = consensus.raft.server_metrics();
    let mut tick = tokio::time::interval(MEMBERS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut members = members::Members::default();
    let mut control = control::Control::new(controllers);
    let mut was_leader = false;
    // Applied changes arrive in bursts (a stream of applies); scheduling
    // runs once per burst, SCHEDULE_AFTER after its first change.
    let mut schedule_at: Option<tokio::time::Instant> = None;
    // Applied changes the controllers have not looked at yet.
    let mut dirty = false;
    loop {
        let scheduled = async {
            match schedule_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let clock = async {
            match control.wake_ms() {
                Some(ms) => {
                    let wait = ms.saturating_sub(crate::runtime::shim::now_ms());
                    tokio::time::sleep(Duration::from_millis(wait)).await
                }
                None => std::future::pending().await,
            }
        };
        let members_due = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            _ = tick.tick() => true,
            _ = scheduled => false,
            _ = clock => false,
            r = applied.changed() => {
                if r.is_err() { break }
                dirty = true;
                schedule_at.get_or_insert(tokio::time::Instant::now() + SCHEDULE_AFTER);
                continue;
            }
            r = metrics.changed() => { if r.is_err() { break } false }
        };
        schedule_at = None;
        let leader = consensus.raft.server_metrics().borrow().current_leader == Some(consensus.id);
        if leader != was_leader {
            info!(leader, "leadership changed");
            was_leader = leader;
            members = members::Members::default();
            control = control::Control::new(controllers);
        }
        if !leader {
            continue;
        }
        let nodes = gossip.nodes().await;
        if members_due {
            if let Err(e) = members.pass(&consensus, &nodes, &autopilot).await {
                warn!(error = %e, "membership pass failed");
            }
        }
        if let Err(e) = control.pass(&consensus, &nodes, std::mem::take(&mut dirty)).await {
            warn!(error = %e, "controller pass failed");
        }
        if let Err(e) = schedule::pass(&consensus, &nodes).await {
            warn!(error = %e, "scheduling pass failed");
        }
    }
}

/// A leader pass failed; the next one tries again.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Reading the replica failed.
    #[error("reading the state: {0}")]
    State(#[from] rusqlite::Error),
    /// A write did not commit.
    #[error(transparent)]
    Write(#[from] crate::consensus::WriteError),
    /// A membership change failed.
    #[error("membership change: {0}")]
    Membership(String),
}

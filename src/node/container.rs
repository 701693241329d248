//! One container slot of a pod: its status enum and the guards on it.

use super::probe::Probes;
use crate::api::status::{ContainerState, ContainerStatus};
use crate::runtime::ExitInfo;

/// Where a container slot is. The guards say what may happen next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Not running; may start at `not_before` (Unix ms).
    Waiting {
        /// `ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`, `ErrImageNeverPull`, `CreateContainerError`.
        reason: String,
        /// Detail for people.
        message: String,
        /// Earliest start, Unix ms.
        not_before: u64,
    },
    /// A start was handed to the runtime; its result is awaited.
    Starting {
        /// How its image pull goes, while one runs (empty otherwise).
        progress: String,
    },
    /// The process runs.
    Running {
        /// Host pid.
        pid: i32,
        /// Unix ms.
        started_at: u64,
        /// Whether SIGTERM was sent (pod deletion).
        term_sent: bool,
    },
    /// Exited and will not run again.
    Done,
}

impl Status {
    /// May a start be issued at `now`?
    pub fn can_start(&self, now: u64) -> bool {
        matches!(self, Status::Waiting { not_before, .. } if *not_before <= now)
    }

    /// Is there a process (or one about to be) to wait for?
    pub fn is_live(&self) -> bool {
        matches!(self, Status::Starting { .. } | Status::Running { .. })
    }
}

/// A container of a pod and its history.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Container name.
    pub name: String,
    /// Normalised image reference.
    pub image: String,
    /// An init container?
    pub init: bool,
    /// Where it is.
    pub status: Status,
    /// The last run's end.
    pub last: Option<ContainerState>,
    /// Starts after the first.
    pub restart_count: u32,
    /// Failures in a row, for the back-off.
    pub crashes: u32,
    /// Failed pulls in a row, for the image pull back-off (counted apart
    /// from crashes, as in Kubernetes; a start clears it).
    pub pull_failures: u32,
    /// Whether it ever ran.
    pub started_once: bool,
    /// The probes of the current run, while it runs.
    pub probes: Option<Probes>,
    /// When a probe failure killed the current run: the SIGKILL deadline
    /// after the SIGTERM, until the SIGKILL is sent.
    pub kill_at: Option<u64>,
    /// After a failed pull: when the back-off ends. `ErrImagePull` shows
    /// for [`PULL_ERROR_SHOWN_MS`], then `ImagePullBackOff` until then.
    pub pull_retry_at: Option<u64>,
}

/// How long a failed pull shows `ErrImagePull` before `ImagePullBackOff`.
pub const PULL_ERROR_SHOWN_MS: u64 = 2_000;

/// A run that lasted this long resets the back-off, as in Kubernetes.
pub const BACKOFF_RESET_MS: u64 = 10 * 60 * 1000;

/// Delay before restart `n` (1-based): `base * 2^(n-1)`, at most `max`.
pub fn backoff(base_ms: u64, max_ms: u64, n: u32) -> u64 {
    base_ms.saturating_mul(1u64 << (n.saturating_sub(1)).min(32)).min(max_ms)
}

impl Slot {
    /// A fresh slot, waiting to be created.
    pub fn new(name: &str, image: &str, init: bool, now: u64) -> Slot {
        let reason = if init { "ContainerCreating" } else { "PodInitializing" };
        Slot {
            name: name.into(),
            image: image.into(),
            init,
            status: Status::Waiting {
                reason: reason.into(),
                message: String::new(),
                not_before: now,
            },
            last: None,
            restart_count: 0,
            crashes: 0,
            pull_failures: 0,
            started_once: false,
            probes: None,
            kill_at: None,
            pull_retry_at: None,
        }
    }

    /// A pull failed at `now`: `ErrImagePull` with the registry's reason,
    /// and the back-off that follows it.
    pub fn pull_failed(&mut self, message: String, now: u64, backoff_ms: u64) {
        let retry = now + backoff_ms;
        self.pull_retry_at = Some(retry);
        self.status = Status::Waiting {
            reason: "ErrImagePull".into(),
            message,
            not_before: retry.min(now + PULL_ERROR_SHOWN_MS),
        };
    }

    /// When `ErrImagePull` has shown long enough but the back-off still
    /// runs, turns it into `ImagePullBackOff` (as the kubelet's next sync
    /// does) and says so: the caller persists instead of starting.
    pub fn enter_pull_backoff(&mut self, now: u64) -> bool {
        let Some(retry) = self.pull_retry_at.filter(|r| *r > now) else {
            return false;
        };
        let Status::Waiting { reason, message, .. } = &self.status else {
            return false;
        };
        if reason != "ErrImagePull" || !self.status.can_start(now) {
            return false;
        }
        self.status = Status::Waiting {
            reason: "ImagePullBackOff".into(),
            message: format!("Back-off pulling image \"{}\": {message}", self.image),
            not_before: retry,
        };
        true
    }

    /// The terminated state an exit turns into.
    pub fn terminated(exit: &ExitInfo) -> ContainerState {
        let reason = if exit.oom_killed {
            "OOMKilled"
        } else if exit.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        };
        ContainerState::Terminated {
            exit_code: exit.exit_code,
            signal: exit.signal,
            reason: reason.into(),
            started_at: exit.started_at,
            finished_at: exit.finished_at,
        }
    }

    /// Kubernetes' `started`: running, and the startup probe (if any) passed.
    pub fn started(&self) -> bool {
        matches!(self.status, Status::Running { .. }) && self.probes.as_ref().is_none_or(Probes::started)
    }

    /// Kubernetes' `ready`. An app container: started, and the readiness
    /// probe (if any) passes. An init container: it exited 0.
    pub fn ready(&self) -> bool {
        if self.init {
            return self.status == Status::Done && matches!(self.last, Some(ContainerState::Terminated { exit_code: 0, .. }));
        }
        self.started() && self.probes.as_ref().is_none_or(Probes::ready)
    }

    /// The API view of this slot.
    pub fn view(&self) -> ContainerStatus {
        let (state, last, pid) = match &self.status {
            Status::Waiting { reason, message, .. } => (
                ContainerState::Waiting {
                    reason: reason.clone(),
                    message: message.clone(),
                },
                self.last.clone(),
                None,
            ),
            Status::Starting { progress } => (
                ContainerState::Waiting {
                    reason: "ContainerCreating".into(),
                    message: progress.clone(),
                },
                self.last.clone(),
                None,
            ),
            Status::Running { pid, started_at, .. } => (ContainerState::Running { started_at: *started_at }, self.last.clone(), Some(*pid)),
            Status::Done => (
                self.last.clone().unwrap_or(ContainerState::Waiting {
                    reason: "Unknown".into(),
                    message: String::new(),
                }),
                None,
                None,
            ),
        };
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            ready: self.ready(),
            started: Some(self.started()),
            state,
            last_state: last,
            restart_count: self.restart_count,
            pid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let d: Vec<u64> = (1..=7).map(|n| backoff(10, 300, n)).collect();
        assert_eq!(d, vec![10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(10, 300, 200), 300);
    }

    #[test]
    fn only_due_waiting_slots_may_start() {
        let mut s = Slot::new("a", "i", false, 100);
        assert!(!s.status.can_start(99));
        assert!(s.status.can_start(100));
        s.status = Status::Starting { progress: String::new() };
        assert!(!s.status.can_start(1000) && s.status.is_live());
    }
}

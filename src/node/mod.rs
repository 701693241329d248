//! The node's reconcile loop, without I/O: it takes inputs with the current
//! time and returns effects. `driver.rs` carries the effects out (runtime,
//! store, timers) and feeds results back; tests drive it on a virtual clock.

pub mod container;
pub mod driver;
pub mod hollow;
pub mod report;

use crate::api::manifest::{Pod, RestartPolicy};
use crate::api::status::{ContainerState, Phase, PodStatus};
use crate::runtime::ExitInfo;
use container::{backoff, Slot, Status, BACKOFF_RESET_MS};
use std::collections::BTreeMap;

/// `(namespace, name)` of a pod.
pub type PodKey = (String, String);

/// Timing settings of the loop.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's name, reported in pod status.
    pub node_name: String,
    /// First restart delay; Kubernetes uses 10 s.
    pub backoff_base_ms: u64,
    /// Largest restart delay; Kubernetes uses 300 s.
    pub backoff_max_ms: u64,
}

/// Something that happened.
#[derive(Debug, Clone)]
pub enum Input {
    /// A new pod to run.
    Apply {
        /// The pod.
        pod: Box<Pod>,
        /// Its uid.
        uid: String,
    },
    /// Delete a pod: TERM, grace period, KILL, teardown.
    Delete(PodKey),
    /// A container's process runs.
    Started {
        /// The pod.
        key: PodKey,
        /// The container.
        container: String,
        /// Host pid.
        pid: i32,
    },
    /// A start failed before the process ran.
    StartFailed {
        /// The pod.
        key: PodKey,
        /// The container.
        container: String,
        /// Waiting reason to show.
        reason: String,
        /// The error, for people.
        message: String,
    },
    /// A container's process exited.
    Exited {
        /// The pod.
        key: PodKey,
        /// The container.
        container: String,
        /// How.
        exit: ExitInfo,
    },
    /// A container's process vanished without a record (host reboot).
    Lost {
        /// The pod.
        key: PodKey,
        /// The container.
        container: String,
    },
    /// Time passed.
    Tick,
}

/// Something to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Create the sandbox if needed, write the bundle and start the container.
    Start {
        /// The pod.
        key: PodKey,
        /// The pod's uid.
        uid: String,
        /// The container.
        container: String,
    },
    /// Signal a container process.
    Kill {
        /// Host pid.
        pid: i32,
        /// SIGTERM or SIGKILL.
        signal: i32,
    },
    /// Remove the pod's sandbox and its record.
    Teardown {
        /// The pod.
        key: PodKey,
        /// Its uid.
        uid: String,
        /// Its container names.
        containers: Vec<String>,
    },
    /// The pod's status changed: store it.
    Persist(PodKey),
}

struct PodState {
    pod: Pod,
    uid: String,
    slots: Vec<Slot>,
    start_time: Option<u64>,
    /// Deletion deadline for SIGKILL, Unix ms.
    deleting: Option<u64>,
}

/// The reconcile state of every pod on this node.
pub struct Node {
    cfg: NodeConfig,
    pods: BTreeMap<PodKey, PodState>,
}

impl Node {
    /// An empty node.
    pub fn new(cfg: NodeConfig) -> Node {
        Node {
            cfg,
            pods: BTreeMap::new(),
        }
    }

    /// Restores a pod from the store after an agent restart. Containers that
    /// were running are taken as running with their pid; the driver then
    /// confirms each with `Exited` or `Lost`, or keeps watching it.
    pub fn restore(&mut self, pod: Pod, uid: String, status: &PodStatus, now: u64) {
        let key = key_of(&pod);
        let mut state = new_state(pod, uid, now);
        state.start_time = status.start_time;
        let saved = status.init_container_statuses.iter().chain(&status.container_statuses);
        for s in saved {
            let Some(slot) = state.slots.iter_mut().find(|x| x.name == s.name) else {
                continue;
            };
            slot.restart_count = s.restart_count;
            slot.last = s.last_state.clone();
            slot.started_once = s.restart_count > 0 || !matches!(s.state, ContainerState::Waiting { .. });
            slot.status = match (&s.state, s.pid) {
                (ContainerState::Running { started_at }, Some(pid)) => Status::Running {
                    pid,
                    started_at: *started_at,
                    term_sent: false,
                },
                (ContainerState::Terminated { .. }, _) => {
                    slot.last = Some(s.state.clone());
                    Status::Done
                }
                _ => Status::Waiting {
                    reason: "ContainerCreating".into(),
                    message: String::new(),
                    not_before: now,
                },
            };
        }
        self.pods.insert(key, state);
    }

    /// Pods known to the loop.
    pub fn keys(&self) -> impl Iterator<Item = &PodKey> {
        self.pods.keys()
    }

    /// The uid of a pod the loop knows, and whether it is being deleted.
    pub fn incarnation(&self, key: &PodKey) -> Option<(&str, bool)> {
        self.pods.get(key).map(|p| (p.uid.as_str(), p.deleting.is_some()))
    }

    /// Running container pids of a pod, by container name.
    pub fn pids(&self, key: &PodKey) -> Vec<(String, i32)> {
        let Some(p) = self.pods.get(key) else { return Vec::new() };
        p.slots
            .iter()
            .filter_map(|s| match s.status {
                Status::Running { pid, .. } => Some((s.name.clone(), pid)),
                _ => None,
            })
            .collect()
    }

    /// Feeds one input; returns what to do.
    pub fn handle(&mut self, input: Input, now: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let key = match input {
            Input::Apply { pod, uid } => {
                let key = key_of(&pod);
                self.pods.insert(key.clone(), new_state(*pod, uid, now));
                fx.push(Effect::Persist(key.clone()));
                Some(key)
            }
            Input::Delete(key) => {
                if let Some(p) = self.pods.get_mut(&key) {
                    if p.deleting.is_none() {
                        p.deleting = Some(now + p.pod.spec.grace_seconds() * 1000);
                        for s in &mut p.slots {
                            if let Status::Waiting { .. } = s.status {
                                s.status = Status::Done;
                            }
                        }
                        fx.push(Effect::Persist(key.clone()));
                    }
                }
                Some(key)
            }
            Input::Started { key, container, pid } => {
                if let Some(s) = self.slot(&key, &container) {
                    s.status = Status::Running {
                        pid,
                        started_at: now,
                        term_sent: false,
                    };
                    s.started_once = true;
                }
                if let Some(p) = self.pods.get_mut(&key) {
                    p.start_time.get_or_insert(now);
                }
                fx.push(Effect::Persist(key.clone()));
                Some(key)
            }
            Input::StartFailed {
                key,
                container,
                reason,
                message,
            } => {
                let (base, max) = (self.cfg.backoff_base_ms, self.cfg.backoff_max_ms);
                let deleting = self.pods.get(&key).map(|p| p.deleting.is_some()).unwrap_or(true);
                if let Some(s) = self.slot(&key, &container) {
                    s.crashes += 1;
                    s.status = if deleting {
                        Status::Done
                    } else {
                        Status::Waiting {
                            reason,
                            message,
                            not_before: now + backoff(base, max, s.crashes),
                        }
                    };
                }
                fx.push(Effect::Persist(key.clone()));
                Some(key)
            }
            Input::Exited { key, container, exit } => {
                self.on_exit(&key, &container, Some(exit), now);
                fx.push(Effect::Persist(key.clone()));
                Some(key)
            }
            Input::Lost { key, container } => {
                self.on_exit(&key, &container, None, now);
                fx.push(Effect::Persist(key.clone()));
                Some(key)
            }
            Input::Tick => None,
        };
        match key {
            Some(k) => self.reconcile(&k, now, &mut fx),
            None => {
                let keys: Vec<PodKey> = self.pods.keys().cloned().collect();
                for k in keys {
                    self.reconcile(&k, now, &mut fx);
                }
            }
        }
        fx
    }

    fn slot(&mut self, key: &PodKey, name: &str) -> Option<&mut Slot> {
        self.pods.get_mut(key)?.slots.iter_mut().find(|s| s.name == name)
    }

    fn on_exit(&mut self, key: &PodKey, name: &str, exit: Option<ExitInfo>, now: u64) {
        let (base, max) = (self.cfg.backoff_base_ms, self.cfg.backoff_max_ms);
        let Some(p) = self.pods.get_mut(key) else { return };
        let policy = p.pod.spec.restart_policy;
        let deleting = p.deleting.is_some();
        let Some(s) = p.slots.iter_mut().find(|s| s.name == name) else {
            return;
        };
        let Some(exit) = exit else {
            // Lost with the host: start again at once, as after a reboot.
            s.last = Some(ContainerState::Terminated {
                exit_code: 255,
                signal: None,
                reason: "Unknown".into(),
                started_at: 0,
                finished_at: now,
            });
            s.status = if deleting {
                Status::Done
            } else {
                Status::Waiting {
                    reason: "ContainerCreating".into(),
                    message: String::new(),
                    not_before: now,
                }
            };
            return;
        };
        let ran = exit.finished_at.saturating_sub(exit.started_at);
        s.last = Some(Slot::terminated(&exit));
        let restart = !deleting
            && if s.init {
                exit.exit_code != 0 && policy != RestartPolicy::Never
            } else {
                policy.restarts(exit.exit_code)
            };
        if !restart {
            s.status = Status::Done;
            return;
        }
        s.crashes = if ran >= BACKOFF_RESET_MS { 1 } else { s.crashes + 1 };
        let delay = backoff(base, max, s.crashes);
        s.status = Status::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: format!("back-off {}s restarting failed container", delay.div_ceil(1000)),
            not_before: now + delay,
        };
    }

    fn reconcile(&mut self, key: &PodKey, now: u64, fx: &mut Vec<Effect>) {
        let Some(p) = self.pods.get_mut(key) else { return };
        if let Some(deadline) = p.deleting {
            let kill_now = now >= deadline;
            for s in &mut p.slots {
                if let Status::Running { pid, term_sent, .. } = &mut s.status {
                    if kill_now {
                        fx.push(Effect::Kill {
                            pid: *pid,
                            signal: libc::SIGKILL,
                        });
                    } else if !*term_sent {
                        *term_sent = true;
                        fx.push(Effect::Kill {
                            pid: *pid,
                            signal: libc::SIGTERM,
                        });
                    }
                }
            }
            if !p.slots.iter().any(|s| s.status.is_live()) {
                let p = self.pods.remove(key).expect("present");
                fx.push(Effect::Teardown {
                    key: key.clone(),
                    uid: p.uid,
                    containers: p.slots.into_iter().map(|s| s.name).collect(),
                });
            }
            return;
        }
        // Init containers one at a time, in order, each to success.
        let mut blocked = false;
        for s in p.slots.iter_mut().filter(|s| s.init) {
            let succeeded = matches!(&s.last, Some(ContainerState::Terminated { exit_code: 0, .. })) && s.status == Status::Done;
            if succeeded {
                continue;
            }
            if s.status.can_start(now) {
                s.status = Status::Starting;
                fx.push(Effect::Start {
                    key: key.clone(),
                    uid: p.uid.clone(),
                    container: s.name.clone(),
                });
            }
            blocked = true;
            break;
        }
        if blocked {
            return;
        }
        for s in p.slots.iter_mut().filter(|s| !s.init) {
            if s.status.can_start(now) {
                if s.started_once {
                    s.restart_count += 1;
                }
                s.status = Status::Starting;
                fx.push(Effect::Start {
                    key: key.clone(),
                    uid: p.uid.clone(),
                    container: s.name.clone(),
                });
            }
        }
    }

    /// The earliest time a waiting container becomes due or a grace period
    /// ends; the driver sets its timer to it.
    pub fn next_wake(&self) -> Option<u64> {
        self.pods
            .values()
            .flat_map(|p| {
                let slots = p.slots.iter().filter_map(|s| match s.status {
                    Status::Waiting { not_before, .. } if p.deleting.is_none() => Some(not_before),
                    _ => None,
                });
                slots.chain(p.deleting)
            })
            .min()
    }

    /// The pod's status as the API shows it.
    pub fn status(&self, key: &PodKey) -> Option<PodStatus> {
        let p = self.pods.get(key)?;
        let views = |init: bool| p.slots.iter().filter(|s| s.init == init).map(Slot::view).collect::<Vec<_>>();
        Some(PodStatus {
            phase: phase(p),
            node_name: self.cfg.node_name.clone(),
            start_time: p.start_time,
            terminating: p.deleting.is_some(),
            init_container_statuses: views(true),
            container_statuses: views(false),
        })
    }
}

fn key_of(pod: &Pod) -> PodKey {
    (pod.metadata.namespace().to_string(), pod.metadata.name.clone())
}

fn new_state(pod: Pod, uid: String, now: u64) -> PodState {
    let image = |i: &str| {
        crate::runtime::image::ImageRef::parse(i)
            .map(|r| r.to_string())
            .unwrap_or_else(|_| i.to_string())
    };
    let slots = pod
        .spec
        .init_containers
        .iter()
        .map(|c| Slot::new(&c.name, &image(&c.image), true, now))
        .chain(pod.spec.containers.iter().map(|c| Slot::new(&c.name, &image(&c.image), false, now)))
        .collect();
    PodState {
        pod,
        uid,
        slots,
        start_time: None,
        deleting: None,
    }
}

fn exit_code(s: &Slot) -> Option<i32> {
    match (&s.status, &s.last) {
        (Status::Done, Some(ContainerState::Terminated { exit_code, .. })) => Some(*exit_code),
        _ => None,
    }
}

fn phase(p: &PodState) -> Phase {
    let init_failed = p
        .slots
        .iter()
        .any(|s| s.init && s.status == Status::Done && exit_code(s) != Some(0));
    if init_failed {
        return Phase::Failed;
    }
    let apps: Vec<&Slot> = p.slots.iter().filter(|s| !s.init).collect();
    let codes: Vec<Option<i32>> = apps.iter().map(|s| exit_code(s)).collect();
    if codes.iter().all(|c| c.is_some()) && apps.iter().all(|s| s.started_once) {
        return if codes.iter().all(|c| *c == Some(0)) {
            Phase::Succeeded
        } else {
            Phase::Failed
        };
    }
    if apps.iter().all(|s| s.started_once) {
        return Phase::Running;
    }
    Phase::Pending
}

#[cfg(test)]
mod tests;

//! The node's reconcile loop, without I/O: it takes inputs with the current
//! time and returns effects. `driver.rs` carries the effects out (runtime,
//! store, timers) and feeds results back; tests drive it on a virtual clock.

pub mod configs;
pub mod container;
pub mod driver;
pub mod hollow;
pub mod probe;
pub mod pull;
pub mod report;

use crate::api::manifest::{Pod, Probe, RestartPolicy};
use crate::api::status::{ContainerState, Phase, PodStatus};
use crate::runtime::ExitInfo;
use container::{backoff, Slot, Status, BACKOFF_RESET_MS};
use probe::{ProbeKind, Probes};
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
    /// The pod's sandbox has its address on the pod network.
    Addressed {
        /// The pod.
        key: PodKey,
        /// Its address.
        ip: std::net::Ipv4Addr,
    },
    /// How a start's image pull goes.
    Pulling {
        /// The pod.
        key: PodKey,
        /// The container.
        container: String,
        /// E.g. `Pulling image "x": 12.3 of 48.1 MB, 2 of 5 layers`.
        progress: String,
    },
    /// A start failed before the process ran. `ErrImagePull` goes through
    /// `ImagePullBackOff`; any other reason waits out the back-off as is.
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
    /// A probe handed out by `Effect::Probe` ended.
    ProbeResult {
        /// The pod.
        key: PodKey,
        /// The container.
        container: String,
        /// Which probe.
        kind: ProbeKind,
        /// The host pid the probe was for: a result for an earlier run of
        /// the container is ignored.
        pid: i32,
        /// Passed.
        ok: bool,
        /// Why it failed, for people (the core does not read it).
        message: String,
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
    /// Run one probe against a running container and feed back
    /// `Input::ProbeResult`, within the probe's `timeoutSeconds`.
    Probe {
        /// The pod.
        key: PodKey,
        /// Its uid.
        uid: String,
        /// The container.
        container: String,
        /// Which probe.
        kind: ProbeKind,
        /// What to run; a named port is already resolved to its number.
        probe: Box<Probe>,
        /// Host pid of the container's process.
        pid: i32,
    },
}

struct PodState {
    pod: Pod,
    uid: String,
    slots: Vec<Slot>,
    start_time: Option<u64>,
    /// Deletion deadline for SIGKILL, Unix ms.
    deleting: Option<u64>,
    /// When every app container last became ready; None while one is not.
    ready_since: Option<u64>,
    /// Its address on the pod network, once its sandbox has one.
    pod_ip: Option<std::net::Ipv4Addr>,
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
        state.ready_since = status.ready_since;
        state.pod_ip = status.pod_ip;
        let saved = status.init_container_statuses.iter().chain(&status.container_statuses);
        for s in saved {
            let Some(slot) = state.slots.iter_mut().find(|x| x.name == s.name) else {
                continue;
            };
            slot.restart_count = s.restart_count;
            slot.last = s.last_state.clone();
            slot.started_once = s.restart_count > 0 || !matches!(s.state, ContainerState::Waiting { .. });
            slot.status = match (&s.state, s.pid) {
                (ContainerState::Running { started_at }, Some(pid)) => {
                    if let Some(c) = state.pod.spec.containers.iter().find(|c| c.name == s.name) {
                        let started = s.started.unwrap_or(s.ready);
                        slot.probes = Some(Probes::restored(c, *started_at, started, s.ready));
                    }
                    Status::Running {
                        pid,
                        started_at: *started_at,
                        term_sent: false,
                    }
                }
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
                if let Some(p) = self.pods.get_mut(&key) {
                    p.start_time.get_or_insert(now);
                    let spec = p.pod.spec.containers.iter().find(|c| c.name == container);
                    if let Some(s) = p.slots.iter_mut().find(|s| s.name == container) {
                        s.status = Status::Running {
                            pid,
                            started_at: now,
                            term_sent: false,
                        };
                        s.started_once = true;
                        s.kill_at = None;
                        s.pull_retry_at = None;
                        s.pull_failures = 0;
                        s.probes = spec.filter(|_| !s.init).map(|c| Probes::new(c, now));
                    }
                }
                fx.push(Effect::Persist(key.clone()));
                Some(key)
            }
            Input::Addressed { key, ip } => match self.pods.get_mut(&key) {
                Some(p) if p.pod_ip != Some(ip) => {
                    p.pod_ip = Some(ip);
                    fx.push(Effect::Persist(key.clone()));
                    Some(key)
                }
                _ => None,
            },
            Input::Pulling { key, container, progress } => match self.slot(&key, &container) {
                Some(Slot {
                    status: Status::Starting { progress: p },
                    ..
                }) if *p != progress => {
                    *p = progress;
                    fx.push(Effect::Persist(key.clone()));
                    Some(key)
                }
                _ => None,
            },
            Input::StartFailed {
                key,
                container,
                reason,
                message,
            } => {
                let (base, max) = (self.cfg.backoff_base_ms, self.cfg.backoff_max_ms);
                let deleting = self.pods.get(&key).map(|p| p.deleting.is_some()).unwrap_or(true);
                if let Some(s) = self.slot(&key, &container) {
                    let pull = reason == "ErrImagePull";
                    let delay = if pull {
                        s.pull_failures += 1;
                        backoff(base, max, s.pull_failures)
                    } else {
                        s.crashes += 1;
                        backoff(base, max, s.crashes)
                    };
                    if deleting {
                        s.status = Status::Done;
                    } else if pull {
                        s.pull_failed(message, now, delay);
                    } else {
                        s.status = Status::Waiting {
                            reason,
                            message,
                            not_before: now + delay,
                        };
                    }
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
            Input::ProbeResult {
                key,
                container,
                kind,
                pid,
                ok,
                message: _,
            } => {
                fx.extend(self.on_probe_result(&key, &container, kind, pid, ok, now));
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

    /// Counts a probe's result against the run it was for. A liveness or
    /// startup failure past its threshold kills the container: SIGTERM, then
    /// SIGKILL after the probe's grace period (else the pod's), as a delete
    /// does; the exit then goes through the restart policy and back-off.
    fn on_probe_result(&mut self, key: &PodKey, name: &str, kind: ProbeKind, pid: i32, ok: bool, now: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let Some(p) = self.pods.get_mut(key) else { return fx };
        let pod_grace = p.pod.spec.grace_seconds();
        let deleting = p.deleting.is_some();
        let Some(s) = p.slots.iter_mut().find(|s| s.name == name) else {
            return fx;
        };
        let (
            Status::Running {
                pid: running, term_sent, ..
            },
            Some(probes),
        ) = (&mut s.status, &mut s.probes)
        else {
            return fx;
        };
        if *running != pid {
            return fx;
        }
        let outcome = probes.record(kind, ok, now);
        if outcome.changed {
            fx.push(Effect::Persist(key.clone()));
        }
        if !outcome.kill || deleting {
            return fx;
        }
        let grace = probes
            .spec(kind)
            .and_then(|p| p.termination_grace_period_seconds)
            .map(|g| g.max(0) as u64)
            .unwrap_or(pod_grace);
        *term_sent = true;
        if grace == 0 {
            fx.push(Effect::Kill {
                pid,
                signal: libc::SIGKILL,
            });
        } else {
            fx.push(Effect::Kill {
                pid,
                signal: libc::SIGTERM,
            });
            s.kill_at = Some(now + grace * 1000);
        }
        fx
    }

    fn on_exit(&mut self, key: &PodKey, name: &str, exit: Option<ExitInfo>, now: u64) {
        let (base, max) = (self.cfg.backoff_base_ms, self.cfg.backoff_max_ms);
        let Some(p) = self.pods.get_mut(key) else { return };
        let policy = p.pod.spec.restart_policy;
        let deleting = p.deleting.is_some();
        let Some(s) = p.slots.iter_mut().find(|s| s.name == name) else {
            return;
        };
        s.probes = None;
        s.kill_at = None;
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
        if refresh_ready(p, now) && !fx.contains(&Effect::Persist(key.clone())) {
            fx.push(Effect::Persist(key.clone()));
        }
        if let Some(deadline) = p.deleting {
            for s in &mut p.slots {
                let kill_now = now >= deadline || s.kill_at.is_some_and(|at| now >= at);
                if let Status::Running { pid, term_sent, .. } = &mut s.status {
                    if kill_now {
                        s.kill_at = None;
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
        for s in p.slots.iter_mut().filter(|s| !s.init) {
            let Status::Running { pid, .. } = s.status else { continue };
            if s.kill_at.is_some_and(|at| now >= at) {
                s.kill_at = None;
                fx.push(Effect::Kill {
                    pid,
                    signal: libc::SIGKILL,
                });
            }
            for (kind, probe) in s.probes.as_mut().map(|p| p.take_due(now)).unwrap_or_default() {
                fx.push(Effect::Probe {
                    key: key.clone(),
                    uid: p.uid.clone(),
                    container: s.name.clone(),
                    kind,
                    probe: Box::new(probe),
                    pid,
                });
            }
        }
        // Init containers one at a time, in order, each to success.
        let mut blocked = false;
        let mut backoff_shown = false;
        for s in p.slots.iter_mut().filter(|s| s.init) {
            let succeeded = matches!(&s.last, Some(ContainerState::Terminated { exit_code: 0, .. })) && s.status == Status::Done;
            if succeeded {
                continue;
            }
            if s.enter_pull_backoff(now) {
                backoff_shown = true;
            } else if s.status.can_start(now) {
                s.status = Status::Starting { progress: String::new() };
                fx.push(Effect::Start {
                    key: key.clone(),
                    uid: p.uid.clone(),
                    container: s.name.clone(),
                });
            }
            blocked = true;
            break;
        }
        if !blocked {
            for s in p.slots.iter_mut().filter(|s| !s.init) {
                if s.enter_pull_backoff(now) {
                    backoff_shown = true;
                } else if s.status.can_start(now) {
                    if s.started_once {
                        s.restart_count += 1;
                    }
                    s.status = Status::Starting { progress: String::new() };
                    fx.push(Effect::Start {
                        key: key.clone(),
                        uid: p.uid.clone(),
                        container: s.name.clone(),
                    });
                }
            }
        }
        if backoff_shown && !fx.contains(&Effect::Persist(key.clone())) {
            fx.push(Effect::Persist(key.clone()));
        }
    }

    /// The earliest time a waiting container becomes due, a probe falls
    /// due or a grace period ends; the driver sets its timer to it.
    pub fn next_wake(&self) -> Option<u64> {
        self.pods
            .values()
            .flat_map(|p| {
                let live = p.deleting.is_none();
                let slots = p.slots.iter().filter_map(move |s| {
                    let start = match s.status {
                        Status::Waiting { not_before, .. } if live => Some(not_before),
                        _ => None,
                    };
                    let running = matches!(s.status, Status::Running { .. });
                    let probe = s.probes.as_ref().filter(|_| live && running).and_then(Probes::next_due);
                    [start, probe, s.kill_at.filter(|_| running)].into_iter().flatten().min()
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
            ready_since: p.ready_since,
            init_container_statuses: views(true),
            container_statuses: views(false),
            pod_ip: p.pod_ip,
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
        ready_since: None,
        pod_ip: None,
    }
}

/// Brings `ready_since` in line with the app containers: set when the last
/// one becomes ready, kept while all are, cleared when one is not. Returns
/// whether it changed.
fn refresh_ready(p: &mut PodState, now: u64) -> bool {
    let mut apps = p.slots.iter().filter(|s| !s.init).peekable();
    let ready = apps.peek().is_some() && apps.all(Slot::ready);
    match (ready, p.ready_since) {
        (true, None) => p.ready_since = Some(now),
        (false, Some(_)) => p.ready_since = None,
        _ => return false,
    }
    true
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
mod probe_tests;
#[cfg(test)]
mod tests;

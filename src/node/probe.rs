//! Container probes in the reconcile core, without I/O: when each probe of a
//! running container is due, and what its results mean. The driver runs a
//! due probe (`runtime/probe.rs`) and feeds the result back.
//!
//! As Kubernetes' prober (`pkg/kubelet/prober/worker.go`):
//! - a probe first runs `initialDelaySeconds` after the container started,
//!   then every `periodSeconds`; a probe still out delays the next one, so
//!   one kind never runs twice at once for a container;
//! - a result counts once it came `successThreshold` (passing) or
//!   `failureThreshold` (failing) times in a row; until then the previous
//!   result holds;
//! - while a startup probe has not passed, the container is not started and
//!   no liveness or readiness probe runs; once it passes it runs no more;
//! - readiness starts failed: a container with a readiness probe is not
//!   ready until the probe passes;
//! - a liveness or startup probe that fails past its threshold condemns the
//!   run: no probe runs any more and the container is killed (`Node`).

use crate::api::manifest::{Container, Probe};
use serde::{Deserialize, Serialize};

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ProbeKind {
    /// Gates the other two until it passes; failing kills the container.
    Startup,
    /// Failing kills the container.
    Liveness,
    /// Failing makes the container not ready.
    Readiness,
}

impl std::fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
        })
    }
}

/// One probe of one run of a container.
#[derive(Debug, Clone)]
struct Prober {
    kind: ProbeKind,
    /// The spec, with a named port resolved to its number.
    spec: Probe,
    /// Unix ms when it is next due.
    due: u64,
    /// Handed out, its result not back yet.
    out: bool,
    /// The last result and how many times in a row it came.
    last: Option<bool>,
    run: u32,
}

impl Prober {
    fn new(kind: ProbeKind, spec: &Probe, c: &Container, started_at: u64) -> Prober {
        Prober {
            kind,
            spec: spec.with_port_resolved(&c.ports),
            due: started_at + secs(spec.initial_delay_seconds),
            out: false,
            last: None,
            run: 0,
        }
    }

    /// Counts one result; returns the result once its run reaches the threshold.
    fn count(&mut self, ok: bool) -> Option<bool> {
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let threshold = if ok {
            self.spec.success_threshold
        } else {
            self.spec.failure_threshold
        };
        (self.run >= threshold.max(1) as u32).then_some(ok)
    }
}

fn secs(n: i32) -> u64 {
    n.max(0) as u64 * 1000
}

/// What one result changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// `started` or `ready` changed: the status is to be stored and reported.
    pub changed: bool,
    /// A liveness or startup probe failed past its threshold: kill the container.
    pub kill: bool,
}

/// The probes of one run of a container, from its start to its exit.
#[derive(Debug, Clone)]
pub struct Probes {
    probers: Vec<Prober>,
    started: bool,
    ready: bool,
    failed: Option<ProbeKind>,
}

impl Probes {
    /// The probes of container `c`, whose process started at `started_at`.
    pub fn new(c: &Container, started_at: u64) -> Probes {
        let specs = [
            (ProbeKind::Startup, &c.startup_probe),
            (ProbeKind::Liveness, &c.liveness_probe),
            (ProbeKind::Readiness, &c.readiness_probe),
        ];
        let probers: Vec<Prober> = specs
            .into_iter()
            .filter_map(|(kind, spec)| spec.as_ref().map(|s| Prober::new(kind, s, c, started_at)))
            .collect();
        Probes {
            started: c.startup_probe.is_none(),
            ready: c.readiness_probe.is_none(),
            probers,
            failed: None,
        }
    }

    /// The probes of a container found running after an agent restart, with
    /// the `started` and `ready` it last reported: they hold until the
    /// probes say otherwise, so a restart of the agent does not flap them.
    pub fn restored(c: &Container, started_at: u64, started: bool, ready: bool) -> Probes {
        let mut p = Probes::new(c, started_at);
        p.started |= started;
        p.ready |= ready && p.started;
        p
    }

    /// Kubernetes' `started`: the startup probe passed, or there is none.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Kubernetes' `ready` of a running container: started, and the
    /// readiness probe passes or there is none.
    pub fn ready(&self) -> bool {
        self.started && self.ready
    }

    /// The probe that condemned this run, if one did.
    pub fn failed(&self) -> Option<ProbeKind> {
        self.failed
    }

    /// The spec of one probe.
    pub fn spec(&self, kind: ProbeKind) -> Option<&Probe> {
        self.probers.iter().find(|p| p.kind == kind).map(|p| &p.spec)
    }

    fn may_run(&self, kind: ProbeKind) -> bool {
        self.failed.is_none() && (kind == ProbeKind::Startup) != self.started
    }

    /// The probes due at `now`, each marked as out until its result comes.
    pub fn take_due(&mut self, now: u64) -> Vec<(ProbeKind, Probe)> {
        let mut due = Vec::new();
        for i in 0..self.probers.len() {
            let kind = self.probers[i].kind;
            let p = &self.probers[i];
            if p.out || p.due > now || !self.may_run(kind) {
                continue;
            }
            let p = &mut self.probers[i];
            p.out = true;
            p.due = now + secs(p.spec.period_seconds.max(1));
            due.push((kind, p.spec.clone()));
        }
        due
    }

    /// When the next probe falls due; none while every probe that may run is out.
    pub fn next_due(&self) -> Option<u64> {
        self.probers.iter().filter(|p| !p.out && self.may_run(p.kind)).map(|p| p.due).min()
    }

    /// Whether a probe of this kind is out.
    pub fn is_out(&self, kind: ProbeKind) -> bool {
        self.probers.iter().any(|p| p.kind == kind && p.out)
    }

    /// Takes the result of the probe of `kind` that is out; a result for a
    /// probe that is not out (a duplicate) changes nothing.
    pub fn record(&mut self, kind: ProbeKind, ok: bool, now: u64) -> Outcome {
        let mut outcome = Outcome::default();
        let Some(p) = self.probers.iter_mut().find(|p| p.kind == kind && p.out) else {
            return outcome;
        };
        p.out = false;
        if self.failed.is_some() {
            return outcome;
        }
        let Some(result) = p.count(ok) else {
            return outcome;
        };
        match (kind, result) {
            (ProbeKind::Startup, true) => {
                self.started = true;
                outcome.changed = true;
                // Liveness and readiness start now, or after their own delay.
                for other in &mut self.probers {
                    other.due = other.due.max(now);
                }
            }
            (ProbeKind::Startup | ProbeKind::Liveness, false) => {
                self.failed = Some(kind);
                outcome.kill = true;
            }
            (ProbeKind::Liveness, true) => {}
            (ProbeKind::Readiness, r) => {
                outcome.changed = self.ready != r;
                self.ready = r;
            }
        }
        outcome
    }
}

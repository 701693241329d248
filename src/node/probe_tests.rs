//! Probes in the reconcile core, on a virtual clock: no sockets, no sleeps.

use super::probe::ProbeKind::{self, Liveness, Readiness, Startup};
use super::*;

fn node() -> Node {
    Node::new(NodeConfig {
        node_name: "n1".into(),
        backoff_base_ms: 10_000,
        backoff_max_ms: 300_000,
    })
}

fn key() -> PodKey {
    ("default".into(), "p".into())
}

fn pod(spec: &str) -> Box<Pod> {
    let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {spec}");
    Box::new(crate::api::parse_pods(&text).unwrap().remove(0))
}

/// A pod of one container `c` with the given probe fields.
fn apply(n: &mut Node, probes: &str, now: u64) {
    let spec = format!("{{terminationGracePeriodSeconds: 5, containers: [{{name: c, image: busybox, {probes}}}]}}");
    n.handle(
        Input::Apply {
            pod: pod(&spec),
            uid: "u".into(),
        },
        now,
    );
}

fn start(n: &mut Node, c: &str, pid: i32, now: u64) -> Vec<Effect> {
    n.handle(
        Input::Started {
            key: key(),
            container: c.into(),
            pid,
        },
        now,
    )
}

fn result(n: &mut Node, kind: ProbeKind, pid: i32, ok: bool, now: u64) -> Vec<Effect> {
    n.handle(
        Input::ProbeResult {
            key: key(),
            container: "c".into(),
            kind,
            pid,
            ok,
            message: String::new(),
        },
        now,
    )
}

/// The probes handed out, as (container, kind, pid).
fn probes(fx: &[Effect]) -> Vec<(String, ProbeKind, i32)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Probe { container, kind, pid, .. } => Some((container.clone(), *kind, *pid)),
            _ => None,
        })
        .collect()
}

fn kinds(fx: &[Effect]) -> Vec<ProbeKind> {
    probes(fx).into_iter().map(|(_, k, _)| k).collect()
}

fn persists(fx: &[Effect]) -> bool {
    fx.contains(&Effect::Persist(key()))
}

fn tick(n: &mut Node, now: u64) -> Vec<Effect> {
    n.handle(Input::Tick, now)
}

fn view(n: &Node) -> (bool, Option<bool>, Option<u64>) {
    let st = n.status(&key()).unwrap();
    let c = &st.container_statuses[0];
    (c.ready, c.started, st.ready_since)
}

const EXEC: &str = "exec: {command: [cat, /tmp/healthy]}";

#[test]
fn without_probes_a_container_is_started_and_ready_once_it_runs() {
    let mut n = node();
    apply(&mut n, "", 0);
    assert_eq!(view(&n), (false, Some(false), None));
    let fx = start(&mut n, "c", 7, 1_000);
    assert!(persists(&fx) && kinds(&fx).is_empty());
    assert_eq!(view(&n), (true, Some(true), Some(1_000)));
    assert_eq!(n.next_wake(), None, "nothing to probe");
}

#[test]
fn readiness_waits_for_the_initial_delay_then_runs_every_period() {
    let mut n = node();
    apply(
        &mut n,
        &format!("readinessProbe: {{{EXEC}, initialDelaySeconds: 5, periodSeconds: 2}}"),
        0,
    );
    let fx = start(&mut n, "c", 7, 1_000);
    assert!(kinds(&fx).is_empty());
    assert_eq!(view(&n), (false, Some(true), None), "not ready before the probe passes");
    assert_eq!(n.next_wake(), Some(6_000));
    assert!(kinds(&tick(&mut n, 5_999)).is_empty());
    let fx = tick(&mut n, 6_000);
    assert_eq!(probes(&fx), [("c".to_string(), Readiness, 7)]);
    assert_eq!(n.next_wake(), None, "no second probe while one is out");
    assert!(kinds(&tick(&mut n, 8_500)).is_empty());
    let fx = result(&mut n, Readiness, 7, true, 8_600);
    assert!(persists(&fx));
    assert_eq!(kinds(&fx), [Readiness], "the overdue probe goes out at once");
    assert_eq!(view(&n), (true, Some(true), Some(8_600)));
    // A passing probe that changes nothing stores nothing.
    assert!(!persists(&result(&mut n, Readiness, 7, true, 8_700)));
    assert_eq!(n.next_wake(), Some(10_600));
}

#[test]
fn readiness_follows_the_thresholds_and_ready_since_is_the_latest_becoming_ready() {
    let mut n = node();
    apply(
        &mut n,
        &format!("readinessProbe: {{{EXEC}, periodSeconds: 1, successThreshold: 2, failureThreshold: 2}}"),
        0,
    );
    assert_eq!(kinds(&start(&mut n, "c", 7, 0)), [Readiness], "no delay: at once");
    let mut now = 0;
    let mut step = |n: &mut Node, ok: bool| {
        let fx = result(n, Readiness, 7, ok, now + 10);
        now += 1_000;
        assert_eq!(kinds(&tick(n, now)), [Readiness], "at {now}");
        (persists(&fx), view(n))
    };
    assert_eq!(step(&mut n, true), (false, (false, Some(true), None)), "one success of two");
    assert_eq!(step(&mut n, true), (true, (true, Some(true), Some(1_010))));
    assert_eq!(step(&mut n, false), (false, (true, Some(true), Some(1_010))), "one failure of two");
    assert_eq!(
        step(&mut n, true),
        (false, (true, Some(true), Some(1_010))),
        "the run of failures broke"
    );
    assert_eq!(step(&mut n, false), (false, (true, Some(true), Some(1_010))));
    assert_eq!(step(&mut n, false), (true, (false, Some(true), None)));
    assert_eq!(step(&mut n, true), (false, (false, Some(true), None)));
    assert_eq!(
        step(&mut n, true),
        (true, (true, Some(true), Some(7_010))),
        "ready again, with the new time"
    );
}

#[test]
fn ready_since_waits_for_the_last_container() {
    let mut n = node();
    let spec = format!("{{containers: [{{name: a, image: busybox}}, {{name: c, image: busybox, readinessProbe: {{{EXEC}}}}}]}}");
    n.handle(
        Input::Apply {
            pod: pod(&spec),
            uid: "u".into(),
        },
        0,
    );
    start(&mut n, "a", 1, 100);
    assert_eq!(probes(&start(&mut n, "c", 2, 200)), [("c".to_string(), Readiness, 2)]);
    assert_eq!(n.status(&key()).unwrap().ready_since, None);
    result(&mut n, Readiness, 2, true, 500);
    assert_eq!(n.status(&key()).unwrap().ready_since, Some(500));
    // The other container dies: the pod is no longer ready.
    let fx = n.handle(
        Input::Exited {
            key: key(),
            container: "a".into(),
            exit: ExitInfo {
                exit_code: 1,
                signal: None,
                oom_killed: false,
                started_at: 100,
                finished_at: 900,
            },
        },
        900,
    );
    assert!(persists(&fx));
    let st = n.status(&key()).unwrap();
    assert_eq!(st.ready_since, None);
    assert_eq!(
        (st.container_statuses[0].ready, st.container_statuses[0].started),
        (false, Some(false))
    );
}

#[test]
fn liveness_failure_past_the_threshold_kills_and_the_restart_policy_restarts() {
    let mut n = node();
    apply(
        &mut n,
        &format!("livenessProbe: {{{EXEC}, periodSeconds: 1, initialDelaySeconds: 2}}"),
        0,
    );
    start(&mut n, "c", 7, 0);
    let mut kills = Vec::new();
    for (i, now) in [2_000, 3_000, 4_000].into_iter().enumerate() {
        assert_eq!(kinds(&tick(&mut n, now)), [Liveness]);
        let fx = result(&mut n, Liveness, 7, false, now + 1);
        kills.extend(fx.iter().filter(|e| matches!(e, Effect::Kill { .. })).cloned());
        assert_eq!(kills.is_empty(), i < 2, "killed after {} failures", i + 1);
    }
    assert_eq!(
        kills,
        [Effect::Kill {
            pid: 7,
            signal: libc::SIGTERM
        }]
    );
    // No probe runs on a condemned container; SIGKILL once the pod's grace (5 s) is over.
    assert_eq!(n.next_wake(), Some(9_001));
    assert!(tick(&mut n, 9_000).is_empty());
    assert_eq!(
        tick(&mut n, 9_001),
        [Effect::Kill {
            pid: 7,
            signal: libc::SIGKILL
        }]
    );
    assert!(tick(&mut n, 9_500).is_empty(), "SIGKILL is sent once");
    assert_eq!(n.next_wake(), None);
    let fx = n.handle(
        Input::Exited {
            key: key(),
            container: "c".into(),
            exit: ExitInfo {
                exit_code: 137,
                signal: Some(9),
                oom_killed: false,
                started_at: 0,
                finished_at: 9_010,
            },
        },
        9_010,
    );
    assert!(persists(&fx));
    let c = n.status(&key()).unwrap().container_statuses[0].clone();
    assert_eq!(c.state.word(), "CrashLoopBackOff");
    assert!(matches!(c.last_state, Some(ContainerState::Terminated { exit_code: 137, .. })));
    // The restart comes after the back-off; its probes start afresh.
    assert_eq!(n.next_wake(), Some(19_010));
    let fx = tick(&mut n, 19_010);
    assert!(fx.iter().any(|e| matches!(e, Effect::Start { .. })));
    start(&mut n, "c", 8, 19_500);
    assert_eq!(n.status(&key()).unwrap().container_statuses[0].restart_count, 1);
    assert_eq!(n.next_wake(), Some(21_500));
    assert_eq!(probes(&tick(&mut n, 21_500)), [("c".to_string(), Liveness, 8)]);
}

#[test]
fn the_probes_grace_period_overrides_the_pods_and_zero_kills_at_once() {
    let mut n = node();
    apply(
        &mut n,
        &format!("livenessProbe: {{{EXEC}, failureThreshold: 1, terminationGracePeriodSeconds: 1}}"),
        0,
    );
    start(&mut n, "c", 7, 0);
    tick(&mut n, 0);
    result(&mut n, Liveness, 7, false, 10);
    assert_eq!(n.next_wake(), Some(1_010));
    let mut n = node();
    n.handle(
        Input::Apply {
            pod: pod(&format!(
                "{{terminationGracePeriodSeconds: 0, containers: [{{name: c, image: busybox, livenessProbe: {{{EXEC}, failureThreshold: 1}}}}]}}"
            )),
            uid: "u".into(),
        },
        0,
    );
    start(&mut n, "c", 7, 0);
    tick(&mut n, 0);
    let fx = result(&mut n, Liveness, 7, false, 10);
    assert!(fx.contains(&Effect::Kill {
        pid: 7,
        signal: libc::SIGKILL
    }));
}

#[test]
fn startup_probe_gates_the_others_until_it_passes() {
    let mut n = node();
    let probes_yaml = format!(
        "startupProbe: {{{EXEC}, periodSeconds: 1, failureThreshold: 5}}, livenessProbe: {{{EXEC}, periodSeconds: 3}}, readinessProbe: {{{EXEC}, periodSeconds: 3, initialDelaySeconds: 1}}"
    );
    apply(&mut n, &probes_yaml, 0);
    assert_eq!(kinds(&start(&mut n, "c", 7, 0)), [Startup]);
    assert_eq!(view(&n), (false, Some(false), None));
    for now in [1_000, 2_000, 3_000] {
        assert!(!persists(&result(&mut n, Startup, 7, false, now - 995)));
        assert_eq!(kinds(&tick(&mut n, now)), [Startup], "only the startup probe runs at {now}");
    }
    let fx = result(&mut n, Startup, 7, true, 3_100);
    assert!(persists(&fx));
    assert_eq!(view(&n), (false, Some(true), None), "started, not yet ready");
    // Both start at once (their delays are over); the startup probe runs no more.
    assert_eq!(kinds(&fx), [Liveness, Readiness]);
    result(&mut n, Liveness, 7, true, 3_200);
    result(&mut n, Readiness, 7, true, 3_200);
    assert_eq!(view(&n), (true, Some(true), Some(3_200)));
    assert_eq!(n.next_wake(), Some(6_100));
}

#[test]
fn startup_failure_past_the_threshold_kills() {
    let mut n = node();
    apply(
        &mut n,
        &format!("startupProbe: {{{EXEC}, periodSeconds: 1, failureThreshold: 2}}"),
        0,
    );
    start(&mut n, "c", 7, 0);
    tick(&mut n, 0);
    assert!(result(&mut n, Startup, 7, false, 10).is_empty());
    tick(&mut n, 1_000);
    let fx = result(&mut n, Startup, 7, false, 1_010);
    assert!(fx.contains(&Effect::Kill {
        pid: 7,
        signal: libc::SIGTERM
    }));
    assert_eq!(view(&n), (false, Some(false), None));
}

#[test]
fn results_for_another_run_or_not_asked_for_change_nothing() {
    let mut n = node();
    apply(&mut n, &format!("readinessProbe: {{{EXEC}, periodSeconds: 1}}"), 0);
    assert_eq!(kinds(&start(&mut n, "c", 7, 0)), [Readiness]);
    assert!(result(&mut n, Readiness, 6, true, 110).is_empty(), "an earlier run's pid");
    assert!(result(&mut n, Liveness, 7, false, 110).is_empty(), "a kind the container lacks");
    assert!(!view(&n).0);
    assert!(persists(&result(&mut n, Readiness, 7, true, 120)));
    assert!(result(&mut n, Readiness, 7, false, 130).is_empty(), "a duplicate: no probe is out");
    assert!(view(&n).0);
}

#[test]
fn a_deleted_pod_runs_no_probes_and_a_failure_does_not_kill_it_again() {
    let mut n = node();
    apply(
        &mut n,
        &format!("livenessProbe: {{{EXEC}, periodSeconds: 1, failureThreshold: 1}}"),
        0,
    );
    start(&mut n, "c", 7, 0);
    tick(&mut n, 0);
    let fx = n.handle(Input::Delete(key()), 500);
    assert_eq!(
        fx.iter().filter(|e| matches!(e, Effect::Kill { .. })).count(),
        1,
        "one SIGTERM: {fx:?}"
    );
    assert!(result(&mut n, Liveness, 7, false, 600).is_empty());
    assert!(kinds(&tick(&mut n, 2_000)).is_empty());
}

#[test]
fn an_agent_restart_keeps_readiness_until_the_probes_say_otherwise() {
    let mut n = node();
    let yaml = format!("readinessProbe: {{{EXEC}, periodSeconds: 1}}");
    apply(&mut n, &yaml, 0);
    start(&mut n, "c", 7, 0);
    tick(&mut n, 0);
    result(&mut n, Readiness, 7, true, 50);
    let saved = n.status(&key()).unwrap();
    assert_eq!(saved.ready_since, Some(50));
    let spec = format!("{{terminationGracePeriodSeconds: 5, containers: [{{name: c, image: busybox, {yaml}}}]}}");
    let mut after = node();
    after.restore(*pod(&spec), "u".into(), &saved, 60_000);
    assert!(!persists(&after.handle(Input::Tick, 60_000)));
    assert_eq!(view(&after), (true, Some(true), Some(50)));
    // The probe runs at once (its delay is long over) and still counts.
    let fx = tick(&mut after, 60_000);
    assert!(kinds(&fx).is_empty(), "the first tick already handed it out");
    assert!(!persists(&result(&mut after, Readiness, 7, false, 60_100)));
    for now in [61_000, 62_000] {
        assert_eq!(kinds(&tick(&mut after, now)), [Readiness]);
        result(&mut after, Readiness, 7, false, now + 100);
    }
    assert_eq!(view(&after), (false, Some(true), None));
}

#[test]
fn a_seeded_random_history_keeps_the_probe_invariants() {
    use rand::{RngExt, SeedableRng};
    use std::collections::BTreeSet;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x9_80BE);
    let mut n = Node::new(NodeConfig {
        node_name: "n1".into(),
        backoff_base_ms: 1_000,
        backoff_max_ms: 4_000,
    });
    let spec = format!(
        "{{containers: [\
         {{name: a, image: busybox, readinessProbe: {{{EXEC}, initialDelaySeconds: 3, periodSeconds: 2, successThreshold: 2}}}},\
         {{name: c, image: busybox, startupProbe: {{{EXEC}, periodSeconds: 1, failureThreshold: 4}},\
           livenessProbe: {{{EXEC}, initialDelaySeconds: 1, periodSeconds: 1}}, readinessProbe: {{{EXEC}, periodSeconds: 1}}}}]}}"
    );
    let mut fx = n.handle(
        Input::Apply {
            pod: pod(&spec),
            uid: "u".into(),
        },
        0,
    );
    let delay = |c: &str, k: ProbeKind| match (c, k) {
        ("a", _) => 3_000,
        (_, Liveness) => 1_000,
        _ => 0,
    };
    // Per container: (pid, started at) of the run, if one runs.
    let mut runs: BTreeMap<String, (i32, u64)> = BTreeMap::new();
    let mut out: BTreeSet<(String, ProbeKind, i32)> = BTreeSet::new();
    let mut next_pid = 100;
    let mut now = 0u64;
    let mut since = None;
    let (mut issued, mut became_ready, mut kills) = (0, 0, 0);
    for _ in 0..5000 {
        // The effects of the input, then of each start it led to.
        let mut pending = vec![fx];
        while let Some(fx) = pending.pop() {
            let st_before = n.status(&key()).unwrap();
            kills += fx.iter().filter(|e| matches!(e, Effect::Kill { .. })).count();
            for (c, kind, pid) in probes(&fx) {
                issued += 1;
                let (run_pid, started) = runs[&c];
                assert_eq!(pid, run_pid, "probe for a run that is not the current one");
                assert!(now >= started + delay(&c, kind), "{c} {kind} probed before its initial delay");
                assert!(out.insert((c.clone(), kind, pid)), "second {kind} probe of {c} while one is out");
                let cs = st_before.container_statuses.iter().find(|s| s.name == c).unwrap();
                if kind != Startup {
                    assert_eq!(cs.started, Some(true), "{kind} probe of {c} before it started");
                }
            }
            for e in &fx {
                if let Effect::Start { container, .. } = e {
                    assert!(!runs.contains_key(container));
                    next_pid += 1;
                    runs.insert(container.clone(), (next_pid, now));
                    out.retain(|(c, _, _)| c != container);
                    pending.push(n.handle(
                        Input::Started {
                            key: key(),
                            container: container.clone(),
                            pid: next_pid,
                        },
                        now,
                    ));
                }
            }
        }
        let st = n.status(&key()).unwrap();
        let all_ready = st.container_statuses.iter().all(|c| c.ready);
        assert_eq!(st.ready_since.is_some(), all_ready, "ready_since disagrees with the containers");
        if let (Some(before), Some(after)) = (since, st.ready_since) {
            assert_eq!(before, after, "ready_since moved while the pod stayed ready");
        }
        became_ready += usize::from(since.is_none() && st.ready_since.is_some());
        assert!(st.ready_since.is_none_or(|t| t <= now));
        since = st.ready_since;
        for c in &st.container_statuses {
            assert!(!c.ready || c.started == Some(true), "{} ready but not started", c.name);
        }
        now += rng.random_range(0..700);
        fx = match rng.random_range(0..40) {
            0..=19 => tick(&mut n, now),
            20..=38 if !out.is_empty() => {
                let pick = out.iter().nth(rng.random_range(0..out.len())).cloned().unwrap();
                out.remove(&pick);
                let (c, kind, pid) = pick;
                let ok = rng.random_bool(0.6);
                n.handle(
                    Input::ProbeResult {
                        key: key(),
                        container: c,
                        kind,
                        pid,
                        ok,
                        message: String::new(),
                    },
                    now,
                )
            }
            39 if !runs.is_empty() => {
                let c = runs.keys().nth(rng.random_range(0..runs.len())).cloned().unwrap();
                let (_, started) = runs.remove(&c).unwrap();
                let exit = ExitInfo {
                    exit_code: 1,
                    signal: None,
                    oom_killed: false,
                    started_at: started,
                    finished_at: now,
                };
                n.handle(
                    Input::Exited {
                        key: key(),
                        container: c,
                        exit,
                    },
                    now,
                )
            }
            _ => Vec::new(),
        };
    }
    // The history went through every case, not around them.
    assert!(
        issued > 1000 && became_ready > 20 && kills > 10,
        "{issued} probes, {became_ready} times ready, {kills} kills"
    );
}

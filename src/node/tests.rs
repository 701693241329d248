//! The reconcile loop on a virtual clock: no sockets, no sleeps.

use super::*;

fn node() -> Node {
    Node::new(NodeConfig {
        node_name: "n1".into(),
        backoff_base_ms: 10_000,
        backoff_max_ms: 300_000,
    })
}

fn pod(yaml_spec: &str) -> Box<Pod> {
    let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {yaml_spec}");
    Box::new(crate::api::parse_pods(&text).unwrap().remove(0))
}

fn key() -> PodKey {
    ("default".into(), "p".into())
}

fn starts(fx: &[Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Start { container, .. } => Some(container.clone()),
            _ => None,
        })
        .collect()
}

fn apply(n: &mut Node, spec: &str, now: u64) -> Vec<Effect> {
    n.handle(
        Input::Apply {
            pod: pod(spec),
            uid: "u".into(),
        },
        now,
    )
}

fn started(n: &mut Node, c: &str, pid: i32, now: u64) -> Vec<Effect> {
    n.handle(
        Input::Started {
            key: key(),
            container: c.into(),
            pid,
        },
        now,
    )
}

fn exit(code: i32, started: u64, finished: u64) -> ExitInfo {
    ExitInfo {
        exit_code: code,
        signal: None,
        oom_killed: false,
        started_at: started,
        finished_at: finished,
    }
}

fn exited(n: &mut Node, c: &str, code: i32, now: u64) -> Vec<Effect> {
    n.handle(
        Input::Exited {
            key: key(),
            container: c.into(),
            exit: exit(code, now.saturating_sub(1), now),
        },
        now,
    )
}

#[test]
fn init_containers_run_in_order_before_the_app() {
    let mut n = node();
    let fx = n.handle(
        Input::Apply {
            pod: pod(
                "{initContainers: [{name: i1, image: busybox}, {name: i2, image: busybox}], containers: [{name: app, image: busybox}]}",
            ),
            uid: "u".into(),
        },
        0,
    );
    assert_eq!(starts(&fx), ["i1"]);
    started(&mut n, "i1", 10, 1);
    assert_eq!(starts(&exited(&mut n, "i1", 0, 2)), ["i2"]);
    started(&mut n, "i2", 11, 3);
    assert_eq!(starts(&exited(&mut n, "i2", 0, 4)), ["app"]);
    assert_eq!(n.status(&key()).unwrap().phase, Phase::Pending);
    started(&mut n, "app", 12, 5);
    assert_eq!(n.status(&key()).unwrap().phase, Phase::Running);
}

#[test]
fn crashing_container_restarts_with_doubling_back_off() {
    let mut n = node();
    apply(&mut n, "{containers: [{name: c, image: busybox}]}", 0);
    let mut now = 0;
    let mut delays = Vec::new();
    for round in 0..5 {
        started(&mut n, "c", 100 + round, now);
        now += 1000;
        let fx = exited(&mut n, "c", 1, now);
        assert!(starts(&fx).is_empty(), "restarted without waiting");
        let wake = n.next_wake().unwrap();
        delays.push(wake - now);
        let view = n.status(&key()).unwrap().container_statuses[0].clone();
        assert_eq!(view.state.word(), "CrashLoopBackOff");
        assert!(starts(&n.handle(Input::Tick, wake - 1)).is_empty());
        now = wake;
        assert_eq!(starts(&n.handle(Input::Tick, now)), ["c"]);
    }
    assert_eq!(delays, [10_000, 20_000, 40_000, 80_000, 160_000]);
    assert_eq!(n.status(&key()).unwrap().container_statuses[0].restart_count, 5);
}

#[test]
fn on_failure_pod_that_exits_zero_succeeds() {
    let mut n = node();
    apply(&mut n, "{restartPolicy: OnFailure, containers: [{name: c, image: busybox}]}", 0);
    started(&mut n, "c", 5, 1);
    let fx = exited(&mut n, "c", 0, 2);
    assert!(starts(&fx).is_empty());
    let st = n.status(&key()).unwrap();
    assert_eq!(st.phase, Phase::Succeeded);
    assert_eq!(st.container_statuses[0].state.word(), "Completed");
}

#[test]
fn never_policy_failure_fails_the_pod() {
    let mut n = node();
    apply(&mut n, "{restartPolicy: Never, containers: [{name: c, image: busybox}]}", 0);
    started(&mut n, "c", 5, 1);
    exited(&mut n, "c", 3, 2);
    assert_eq!(n.status(&key()).unwrap().phase, Phase::Failed);
    assert_eq!(n.next_wake(), None);
}

#[test]
fn oom_kill_is_reported_as_oomkilled() {
    let mut n = node();
    apply(&mut n, "{restartPolicy: Never, containers: [{name: c, image: busybox}]}", 0);
    started(&mut n, "c", 5, 1);
    let e = ExitInfo {
        exit_code: 137,
        signal: Some(9),
        oom_killed: true,
        started_at: 1,
        finished_at: 2,
    };
    n.handle(
        Input::Exited {
            key: key(),
            container: "c".into(),
            exit: e,
        },
        2,
    );
    assert_eq!(n.status(&key()).unwrap().container_statuses[0].state.word(), "OOMKilled");
}

#[test]
fn delete_sends_term_then_kill_after_grace_then_tears_down() {
    let mut n = node();
    apply(
        &mut n,
        "{terminationGracePeriodSeconds: 5, containers: [{name: c, image: busybox}]}",
        0,
    );
    started(&mut n, "c", 42, 1);
    let fx = n.handle(Input::Delete(key()), 1000);
    assert!(fx.contains(&Effect::Kill {
        pid: 42,
        signal: libc::SIGTERM
    }));
    assert!(!n.handle(Input::Tick, 5999).iter().any(|e| matches!(e, Effect::Kill { .. })));
    assert!(n.handle(Input::Tick, 6000).contains(&Effect::Kill {
        pid: 42,
        signal: libc::SIGKILL
    }));
    let fx = exited(&mut n, "c", 137, 6001);
    assert!(fx.iter().any(|e| matches!(e, Effect::Teardown { .. })));
    assert!(starts(&fx).is_empty());
    assert!(n.status(&key()).is_none());
}

#[test]
fn lost_container_after_reboot_starts_again_at_once() {
    let mut n = node();
    apply(&mut n, "{containers: [{name: c, image: busybox}]}", 0);
    started(&mut n, "c", 42, 1);
    let saved = n.status(&key()).unwrap();
    let mut after = node();
    after.restore(*pod("{containers: [{name: c, image: busybox}]}"), "u".into(), &saved, 50_000);
    assert_eq!(after.pids(&key()), vec![("c".to_string(), 42)]);
    let fx = after.handle(
        Input::Lost {
            key: key(),
            container: "c".into(),
        },
        50_000,
    );
    assert_eq!(starts(&fx), ["c"]);
    assert_eq!(after.status(&key()).unwrap().container_statuses[0].restart_count, 1);
}

#[test]
fn a_seeded_random_history_never_runs_two_copies_of_a_container() {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5_0A1);
    let mut n = node();
    apply(&mut n, "{containers: [{name: a, image: busybox}, {name: b, image: busybox}]}", 0);
    let mut live: BTreeMap<String, bool> = BTreeMap::new();
    let mut now = 0u64;
    for _ in 0..2000 {
        now += rng.random_range(0..20_000);
        let c = if rng.random_bool(0.5) { "a" } else { "b" };
        let fx = match rng.random_range(0..3) {
            0 if *live.get(c).unwrap_or(&false) => {
                live.insert(c.into(), false);
                exited(&mut n, c, rng.random_range(0..3), now)
            }
            1 => n.handle(Input::Tick, now),
            _ => Vec::new(),
        };
        for s in starts(&fx) {
            assert!(!live.get(&s).copied().unwrap_or(false), "second start of {s} while it runs");
            live.insert(s.clone(), true);
            n.handle(
                Input::Started {
                    key: key(),
                    container: s,
                    pid: 1,
                },
                now,
            );
        }
    }
}

fn waiting(n: &Node, c: &str) -> (String, String) {
    let s = n.status(&key()).unwrap();
    let v = s.container_statuses.iter().find(|x| x.name == c).unwrap();
    match &v.state {
        ContainerState::Waiting { reason, message } => (reason.clone(), message.clone()),
        other => panic!("{c} is not waiting: {other:?}"),
    }
}

#[test]
fn a_failed_pull_shows_err_image_pull_then_image_pull_back_off_then_retries() {
    let mut n = node();
    assert_eq!(
        starts(&apply(&mut n, "{containers: [{name: app, image: reg.local/app:1}]}", 0)),
        ["app"]
    );
    let fx = n.handle(
        Input::Pulling {
            key: key(),
            container: "app".into(),
            progress: "Pulling image: 1.0 of 2.0 MB".into(),
        },
        100,
    );
    assert!(fx.contains(&Effect::Persist(key())));
    assert_eq!(
        waiting(&n, "app"),
        ("ContainerCreating".into(), "Pulling image: 1.0 of 2.0 MB".into())
    );
    n.handle(
        Input::StartFailed {
            key: key(),
            container: "app".into(),
            reason: "ErrImagePull".into(),
            message: "401 Unauthorized (as user bob)".into(),
        },
        1_000,
    );
    assert_eq!(waiting(&n, "app").0, "ErrImagePull");
    assert_eq!(n.next_wake(), Some(1_000 + container::PULL_ERROR_SHOWN_MS));
    let fx = n.handle(Input::Tick, 1_000 + container::PULL_ERROR_SHOWN_MS);
    assert!(starts(&fx).is_empty(), "no pull during the back-off: {fx:?}");
    assert!(fx.contains(&Effect::Persist(key())));
    let (reason, message) = waiting(&n, "app");
    assert_eq!(reason, "ImagePullBackOff");
    assert!(message.contains("reg.local/app:1") && message.contains("as user bob"), "{message}");
    assert_eq!(n.next_wake(), Some(11_000), "the first back-off is 10 s");
    assert_eq!(starts(&n.handle(Input::Tick, 11_000)), ["app"]);
    // A second failure doubles the back-off.
    n.handle(
        Input::StartFailed {
            key: key(),
            container: "app".into(),
            reason: "ErrImagePull".into(),
            message: "still refused".into(),
        },
        12_000,
    );
    n.handle(Input::Tick, 14_000);
    assert_eq!(waiting(&n, "app").0, "ImagePullBackOff");
    assert_eq!(n.next_wake(), Some(32_000));
}

#[test]
fn other_start_failures_wait_out_the_back_off_under_their_own_reason() {
    let mut n = node();
    apply(&mut n, "{containers: [{name: app, image: busybox}]}", 0);
    n.handle(
        Input::StartFailed {
            key: key(),
            container: "app".into(),
            reason: "ErrImageNeverPull".into(),
            message: "Container image \"busybox\" is not present with pull policy of Never".into(),
        },
        1_000,
    );
    n.handle(Input::Tick, 5_000);
    assert_eq!(waiting(&n, "app").0, "ErrImageNeverPull");
    assert_eq!(starts(&n.handle(Input::Tick, 11_000)), ["app"]);
}

#[test]
fn failed_pulls_do_not_lengthen_the_crash_back_off() {
    let mut n = node();
    apply(&mut n, "{containers: [{name: app, image: reg.local/app:1}]}", 0);
    let mut now = 0;
    for _ in 0..3 {
        n.handle(
            Input::StartFailed {
                key: key(),
                container: "app".into(),
                reason: "ErrImagePull".into(),
                message: "refused".into(),
            },
            now,
        );
        now = n.next_wake().unwrap();
        n.handle(Input::Tick, now);
        now = n.next_wake().unwrap_or(now);
        n.handle(Input::Tick, now);
    }
    started(&mut n, "app", 42, now);
    exited(&mut n, "app", 1, now + 1_000);
    assert_eq!(n.next_wake(), Some(now + 1_000 + 10_000), "the first crash waits the base back-off");
}

//! The controllers with the real state on a virtual clock: each round runs
//! a controller pass, applies its writes through `state::apply_command`
//! (with its staleness checks), binds pending pods with the real scheduler,
//! and plays every live node's agent (pods start Ready at once, deleted
//! pods are reported gone). Nodes die and come back; nothing sleeps.

use super::*;
use crate::api::status::{ContainerState, ContainerStatus, Phase, PodStatus};
use crate::api::{parse_manifests, Object};
use crate::leader::schedule::node_info;
use crate::scheduler::{self, PendingPod};
use crate::state::{Binding, Command, Replica, Response, StatusReport};
use std::collections::{BTreeMap, BTreeSet};

struct Sim {
    replica: Replica,
    _dir: tempfile::TempDir,
    now: u64,
    seed: u64,
    /// Dead nodes and since when.
    down: BTreeMap<String, u64>,
    /// Every pod uid ever created, by owner uid.
    created: BTreeMap<String, BTreeSet<String>>,
}

impl Sim {
    fn new(nodes: &[&str]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let replica = Replica::open(&dir.path().join("c.db")).unwrap();
        let sim = Sim {
            replica,
            _dir: dir,
            now: 1_000_000,
            seed: 1,
            down: BTreeMap::new(),
            created: BTreeMap::new(),
        };
        for (i, n) in nodes.iter().enumerate() {
            let node = NodeObject::for_test(n, format!("127.0.0.1:{}", 5000 + i).parse().unwrap());
            sim.apply(Command::RegisterNode {
                node,
                key_sha256: format!("k{i}"),
                token: String::new(),
                network: None,
            });
        }
        sim
    }

    fn apply(&self, cmd: Command) -> Response {
        let mut conn = self.replica.conn();
        let tx = conn.transaction().unwrap();
        let r = crate::state::apply_command(&tx, &cmd).unwrap();
        tx.commit().unwrap();
        r
    }

    fn put(&self, yaml: &str) {
        for o in parse_manifests(yaml).unwrap() {
            let Object::Workload(w) = o else { panic!("workloads only") };
            let uid = format!("w{}-{}", self.now, w.metadata().name);
            let r = self.apply(Command::PutWorkload {
                workload: w,
                uid,
                now_ms: self.now,
                expect_generation: None,
            });
            assert!(matches!(r, Response::Done(_)), "{r:?}");
        }
    }

    fn nodes(&self) -> Vec<NodeHealth> {
        self.replica
            .nodes()
            .unwrap()
            .into_iter()
            .map(|n| NodeHealth {
                ready: !self.down.contains_key(&n.name),
                down_since_ms: self.down.get(&n.name).copied(),
                node: n,
            })
            .collect()
    }

    /// One leader round and one round of every live agent; 100 ms pass.
    fn step(&mut self) {
        let workloads = self.replica.workloads().unwrap();
        let pods = self.replica.pods().unwrap();
        let nodes = self.nodes();
        let snap = Snapshot {
            workloads: &workloads,
            pods: &pods,
            nodes: &nodes,
            now_ms: self.now,
        };
        self.seed += 1;
        let ops = reconcile(&snap, &Settings::default(), self.seed);
        if !ops.is_empty() {
            self.apply(Command::Reconcile { ops, now_ms: self.now });
        }
        for p in self.replica.pods().unwrap() {
            if let Some(o) = p.owner_uid() {
                self.created.entry(o.to_string()).or_default().insert(p.uid.clone());
            }
        }
        self.schedule(&nodes);
        self.agents();
        self.now += 100;
    }

    fn schedule(&self, nodes: &[NodeHealth]) {
        let pods = self.replica.pods().unwrap();
        let pending: Vec<_> = pods.iter().filter(|p| p.node.is_none() && p.deleting_ms.is_none()).collect();
        if pending.is_empty() {
            return;
        }
        let snapshot = scheduler::Snapshot {
            nodes: nodes.iter().map(|n| node_info(&n.node, n.ready)).collect(),
            placed: crate::leader::schedule::placed(&pods),
        };
        let asks: Vec<PendingPod<'_>> = pending.iter().map(|p| crate::leader::schedule::ask(p)).collect();
        let items = scheduler::schedule(&snapshot, &asks)
            .into_iter()
            .zip(&pending)
            .map(|(d, p)| Binding {
                namespace: p.key().0,
                name: p.key().1,
                uid: p.uid.clone(),
                node: match d {
                    scheduler::Decision::Bind { node, .. } => Some(node),
                    _ => None,
                },
                message: "no node".into(),
            })
            .collect();
        self.apply(Command::Bind { items, now_ms: self.now });
    }

    fn agents(&self) {
        let mut by_node: BTreeMap<String, Vec<StatusReport>> = BTreeMap::new();
        for p in self.replica.pods().unwrap() {
            let Some(node) = p.node.clone() else { continue };
            if self.down.contains_key(&node) {
                continue;
            }
            let (namespace, name) = p.key();
            let status = if p.deleting_ms.is_some() {
                None
            } else if p.status.phase == Phase::Running {
                continue;
            } else {
                Some(PodStatus {
                    phase: Phase::Running,
                    node_name: node.clone(),
                    start_time: Some(self.now),
                    ready_since: (!p.pod.spec.containers.iter().any(|c| c.image.contains("broken"))).then_some(self.now),
                    container_statuses: p
                        .pod
                        .spec
                        .containers
                        .iter()
                        .map(|c| ContainerStatus {
                            name: c.name.clone(),
                            image: c.image.clone(),
                            state: ContainerState::Running { started_at: self.now },
                            last_state: None,
                            restart_count: 0,
                            ready: !c.image.contains("broken"),
                            started: Some(true),
                            pid: Some(1),
                        })
                        .collect(),
                    ..Default::default()
                })
            };
            by_node.entry(node).or_default().push(StatusReport {
                namespace,
                name,
                uid: p.uid.clone(),
                status,
            });
        }
        for (node, items) in by_node {
            self.apply(Command::Status { node, items });
        }
    }

    fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            self.step();
        }
    }

    fn workload(&self, kind: Kind, name: &str) -> WorkloadObject {
        self.replica.workload(kind, "default", name).unwrap().unwrap()
    }

    /// Live pods whose labels carry `app=<app>`.
    fn live(&self, app: &str) -> Vec<PodObject> {
        self.replica
            .pods()
            .unwrap()
            .into_iter()
            .filter(|p| p.is_active() && p.pod.metadata.labels.get("app").map(String::as_str) == Some(app))
            .collect()
    }

    fn ready(&self, app: &str) -> usize {
        self.live(app).iter().filter(|p| pods::is_ready(p)).count()
    }
}

fn deployment(name: &str, replicas: i64, image: &str, extra: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n{extra}  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers: [{{name: web, image: {image}}}]\n"
    )
}

#[test]
fn replicaset_keeps_its_count_through_scaling() {
    let mut sim = Sim::new(&["n1", "n2", "n3"]);
    sim.put("apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: fe}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: fe}}\n  template:\n    metadata: {labels: {app: fe}}\n    spec: {containers: [{name: c, image: busybox}]}\n");
    sim.run(5);
    let pods = sim.live("fe");
    assert_eq!(pods.len(), 3);
    let nodes: BTreeSet<_> = pods.iter().filter_map(|p| p.node.clone()).collect();
    assert_eq!(nodes.len(), 3, "spread over the nodes");
    assert!(pods
        .iter()
        .all(|p| p.pod.metadata.name.starts_with("fe-") && p.pod.metadata.name.len() == 8));
    assert_eq!(sim.workload(Kind::ReplicaSet, "fe").status.ready_replicas, 3);
    sim.apply(Command::Scale {
        kind: Kind::ReplicaSet,
        namespace: "default".into(),
        name: "fe".into(),
        replicas: 5,
    });
    sim.run(5);
    assert_eq!(sim.live("fe").len(), 5);
    sim.apply(Command::Scale {
        kind: Kind::ReplicaSet,
        namespace: "default".into(),
        name: "fe".into(),
        replicas: 2,
    });
    sim.run(5);
    assert_eq!(sim.live("fe").len(), 2);
    assert_eq!(
        sim.replica.pods().unwrap().len(),
        2,
        "deleted pods are gone once their node reports it"
    );
    // Idle: a pass decides nothing.
    let (w, p, n) = (sim.replica.workloads().unwrap(), sim.replica.pods().unwrap(), sim.nodes());
    let snap = Snapshot {
        workloads: &w,
        pods: &p,
        nodes: &n,
        now_ms: sim.now,
    };
    assert!(reconcile(&snap, &Settings::default(), 9).is_empty());
}

#[test]
fn rolling_update_with_max_unavailable_0_keeps_every_replica_ready() {
    let mut sim = Sim::new(&["n1", "n2", "n3"]);
    let strategy = "  strategy: {rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}\n";
    sim.put(&deployment("web", 3, "web:v1", strategy));
    sim.run(10);
    assert_eq!(sim.ready("web"), 3);
    let d = sim.workload(Kind::Deployment, "web");
    assert_eq!((d.status.updated_replicas, d.status.available_replicas), (3, 3));
    sim.put(&deployment("web", 3, "web:v2", strategy));
    let mut most = 0;
    for _ in 0..60 {
        sim.step();
        assert!(sim.ready("web") >= 3, "fewer than 3 ready during the rollout");
        most = most.max(sim.live("web").len());
    }
    assert!(most <= 4, "more than replicas + maxSurge live: {most}");
    let live = sim.live("web");
    assert!(live.iter().all(|p| p.pod.spec.containers[0].image == "web:v2"), "{live:?}");
    assert_eq!(live.len(), 3);
    let d = sim.workload(Kind::Deployment, "web");
    let c = d.status.condition("Progressing").unwrap();
    assert_eq!(c.reason, "NewReplicaSetAvailable");
    let sets: Vec<_> = sim
        .replica
        .workloads()
        .unwrap()
        .into_iter()
        .filter(|w| w.workload.kind() == Kind::ReplicaSet)
        .collect();
    assert_eq!(sets.len(), 2, "two revisions kept");
}

#[test]
fn a_never_ready_version_stalls_and_reports_the_deadline() {
    let mut sim = Sim::new(&["n1", "n2", "n3"]);
    let extra = "  progressDeadlineSeconds: 5\n  strategy: {rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}\n";
    sim.put(&deployment("web", 3, "web:v1", extra));
    sim.run(10);
    sim.put(&deployment("web", 3, "web:broken", extra));
    sim.run(100);
    let old: Vec<_> = sim
        .live("web")
        .into_iter()
        .filter(|p| p.pod.spec.containers[0].image == "web:v1")
        .collect();
    assert_eq!(old.len(), 3, "old pods keep running");
    assert_eq!(sim.ready("web"), 3);
    let d = sim.workload(Kind::Deployment, "web");
    assert_eq!(d.status.condition("Progressing").unwrap().reason, "ProgressDeadlineExceeded");
}

#[test]
fn recreate_stops_old_pods_before_new_ones_start() {
    let mut sim = Sim::new(&["n1", "n2"]);
    let extra = "  strategy: {type: Recreate}\n";
    sim.put(&deployment("db", 2, "db:v1", extra));
    sim.run(10);
    sim.put(&deployment("db", 2, "db:v2", extra));
    for _ in 0..30 {
        sim.step();
        let images: BTreeSet<_> = sim.live("db").iter().map(|p| p.pod.spec.containers[0].image.clone()).collect();
        assert!(images.len() <= 1, "old and new at once: {images:?}");
    }
    assert!(sim.live("db").iter().all(|p| p.pod.spec.containers[0].image == "db:v2"));
    assert_eq!(sim.live("db").len(), 2);
}

#[test]
fn a_dead_node_is_replaced_and_its_return_converges_to_the_count() {
    let mut sim = Sim::new(&["n1", "n2", "n3"]);
    sim.put(&deployment("web", 3, "web:v1", ""));
    sim.run(10);
    let victim = sim.live("web")[0].node.clone().unwrap();
    sim.down.insert(victim.clone(), sim.now);
    sim.run(9);
    assert!(
        sim.live("web").iter().any(|p| p.node.as_deref() == Some(victim.as_str())),
        "kept within the toleration"
    );
    sim.run(3);
    assert!(sim.live("web").len() == 3 && sim.live("web").iter().all(|p| p.node.as_deref() != Some(victim.as_str())));
    // The old pod waits, deleting, for its node.
    assert_eq!(sim.replica.pods().unwrap().len(), 4);
    sim.down.remove(&victim);
    sim.run(3);
    assert_eq!(sim.replica.pods().unwrap().len(), 3, "back to exactly the desired count");
}

#[test]
fn a_daemonset_runs_once_per_allowed_node() {
    let mut sim = Sim::new(&["n1", "n2", "n3"]);
    sim.put("apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec: {containers: [{name: c, image: agent:v1}]}\n");
    sim.run(3);
    let nodes: BTreeSet<_> = sim.live("agent").iter().filter_map(|p| p.node.clone()).collect();
    assert_eq!(nodes.len(), 3);
    assert_eq!(sim.live("agent").len(), 3);
    sim.apply(Command::Taint {
        name: "n2".into(),
        taints: vec![crate::scheduler::Taint {
            key: "dedicated".into(),
            value: "db".into(),
            effect: crate::api::manifest::TaintEffect::NoExecute,
        }],
    });
    sim.run(3);
    let nodes: BTreeSet<_> = sim.live("agent").iter().filter_map(|p| p.node.clone()).collect();
    assert_eq!(nodes, BTreeSet::from(["n1".to_string(), "n3".to_string()]));
    // A dead node keeps its DaemonSet pod.
    sim.down.insert("n3".into(), sim.now);
    sim.run(30);
    assert!(sim.live("agent").iter().any(|p| p.node.as_deref() == Some("n3")));
    // A new template rolls over, one node at a time.
    sim.down.clear();
    sim.put("apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec: {containers: [{name: c, image: agent:v2}]}\n");
    for _ in 0..20 {
        sim.step();
        assert!(sim.ready("agent") >= 1, "more than maxUnavailable down at once");
    }
    assert!(sim.live("agent").iter().all(|p| p.pod.spec.containers[0].image == "agent:v2"));
    assert_eq!(sim.live("agent").len(), 2);
}

#[test]
fn deleting_a_deployment_cascades_or_orphans() {
    let mut sim = Sim::new(&["n1"]);
    sim.put(&deployment("a", 2, "a:v1", ""));
    sim.put(&deployment("b", 2, "b:v1", ""));
    sim.run(5);
    sim.apply(Command::DeleteWorkload {
        kind: Kind::Deployment,
        namespace: "default".into(),
        name: "a".into(),
        cascade: crate::state::Cascade::Background,
        now_ms: sim.now,
    });
    sim.apply(Command::DeleteWorkload {
        kind: Kind::Deployment,
        namespace: "default".into(),
        name: "b".into(),
        cascade: crate::state::Cascade::Orphan,
        now_ms: sim.now,
    });
    sim.run(5);
    assert!(sim.live("a").is_empty());
    assert_eq!(sim.live("b").len(), 2, "the orphaned ReplicaSet keeps its pods");
    let kinds: Vec<Kind> = sim.replica.workloads().unwrap().iter().map(|w| w.workload.kind()).collect();
    assert_eq!(kinds, vec![Kind::ReplicaSet], "b's ReplicaSet stays, without its owner");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]
    /// Any mix of scaling, new images and node deaths: the leader never
    /// has more live pods than `replicas + maxSurge` (the earlier count's,
    /// for the two passes after a scale-down), never starts a pod for a
    /// ReplicaSet already at its count, and after things settle the count
    /// is exact and every pod runs the newest template.
    #[test]
    fn random_histories_converge(events in proptest::collection::vec((0u8..4, 0u8..6), 1..12)) {
        let mut sim = Sim::new(&["n1", "n2", "n3", "n4"]);
        let strategy = "  strategy: {rollingUpdate: {maxUnavailable: 1, maxSurge: 1}}\n";
        let (mut replicas, mut version) = (3i64, 1);
        sim.put(&deployment("web", replicas, "web:v1", strategy));
        sim.run(5);
        // The pass that reads a scale-down sets the ReplicaSets' counts;
        // their pods go in the next pass, so until two steps have run the
        // earlier counts still bound what is live.
        let mut earlier = replicas;
        for (what, arg) in events {
            earlier = earlier.max(replicas);
            match what {
                0 => replicas = arg as i64,
                1 => version += 1,
                2 => { sim.down.insert(format!("n{}", 1 + arg % 4), sim.now); }
                _ => sim.down.clear(),
            }
            if sim.down.len() > 2 {
                sim.down.clear();
            }
            sim.put(&deployment("web", replicas, &format!("web:v{version}"), strategy));
            for i in 0..(arg as usize * 3) {
                sim.step();
                if i >= 2 {
                    earlier = replicas;
                }
                let live = sim.live("web").len() as i64;
                let bound = replicas.max(earlier) + 1;
                proptest::prop_assert!(live <= bound, "{live} live pods, {replicas} wanted (up to {earlier} before), step {i}");
            }
        }
        sim.down.clear();
        sim.run(120);
        let live = sim.live("web");
        proptest::prop_assert_eq!(live.len() as i64, replicas);
        let want = format!("web:v{version}");
        proptest::prop_assert!(live.iter().all(|p| p.pod.spec.containers[0].image == want));
        proptest::prop_assert_eq!(sim.replica.pods().unwrap().len() as i64, replicas, "deleted pods all gone");
    }
}

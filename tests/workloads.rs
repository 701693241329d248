//! Deployments, ReplicaSets and DaemonSets on real nodes (network
//! namespaces on a bridge, the real binary, real containers): spreading,
//! scaling, rolling updates watched from outside, rollbacks, node deaths
//! and partitions, DaemonSets following nodes, drain, cascading delete, and
//! the Kubernetes documentation's own example manifests.

mod common;

use common::netns::{Net, NetClient};
use common::workload::{parse, pods, wait_ready, Live};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A Deployment of `localhost/web:<version>` (busybox httpd), one second of grace.
/// Every kind of probe handler on real nodes: the pods become Ready only
/// through them (startup exec, then readiness tcpSocket; liveness httpGet).
const PROBES: &str = ", startupProbe: {exec: {command: [\"true\"]}, periodSeconds: 1}, readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}, livenessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}";

fn web(name: &str, replicas: u32, version: &str) -> String {
    web_with(name, replicas, version, "", PROBES)
}

/// As [`web`], with more `spec` fields and more fields of the container.
fn web_with(name: &str, replicas: u32, version: &str, spec: &str, container: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n{spec}  selector: {{matchLabels: {{app: {name}}}}}\n  strategy: {{rollingUpdate: {{maxUnavailable: 0, maxSurge: 1}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers: [{{name: web, image: \"localhost/web:{version}\"{container}}}]\n"
    )
}

/// Polls readiness from host `i` every 100 ms on another thread until
/// stopped (at most 2 minutes); returns once it has its first sample. The
/// thread answers the fewest Ready pods seen and how many samples there were.
fn watch(client: NetClient, i: usize, app: &'static str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, usize)> {
    let (first, sampled) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let (mut least, mut samples) = (usize::MAX, 0);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            if let Some(p) = client.pods(i) {
                let ready = parse(&p, app).iter().filter(|p| p.ready && !p.terminating).count();
                least = least.min(ready);
                samples += 1;
                let _ = first.send(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (least, samples)
    });
    sampled.recv_timeout(Duration::from_secs(10)).expect("the watcher's first sample");
    handle
}

/// `set image` or `rollout undo`, then `rollout status` to completion, with
/// a watcher throughout; returns the fewest Ready pods it saw.
fn roll(net: &Net, args: &[&str], app: &'static str) -> usize {
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(net.client(), 2, app, stop.clone());
    net.ok(1, args);
    let status = net.run(3, &["rollout", "status", &format!("deployment/{app}"), "--timeout", "90s"]);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let (least, samples) = watcher.join().unwrap();
    assert!(
        status.status.success(),
        "rollout status: {}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(samples >= 5, "the watcher took {samples} samples");
    least
}

#[test]
fn a_deployment_spreads_scales_rolls_out_and_back_without_losing_a_ready_replica() {
    let net = Net::cluster(3);
    for i in 1..=3 {
        net.import(i, "web-v1.tar");
        net.import(i, "web-v2.tar");
    }
    net.apply_ok(2, &web("web", 3, "v1"));
    let spread = wait_ready(&net, 1, "web", 3, 60, |p| {
        p.iter().map(|p| &p.node).collect::<BTreeSet<_>>().len() == 3
    });
    assert!(spread.iter().all(|p| p.name.starts_with("web-")), "{spread:?}");
    let out = net.wait_for(10, "the Deployment's status", || {
        let out = net.ok(1, &["get", "deployments"]);
        out.contains("3/3").then_some(out)
    });
    assert!(
        out.contains("READY") && out.contains("UP-TO-DATE") && out.contains("AVAILABLE"),
        "{out}"
    );

    net.ok(1, &["scale", "deployment/web", "--replicas", "5"]);
    wait_ready(&net, 1, "web", 5, 60, |_| true);
    net.ok(1, &["scale", "deployment/web", "--replicas", "2"]);
    wait_ready(&net, 1, "web", 2, 60, |_| true);
    net.ok(1, &["scale", "deployment/web", "--replicas", "3"]);
    wait_ready(&net, 1, "web", 3, 60, |_| true);

    // v1 to v2 with maxUnavailable 0: never fewer than 3 Ready.
    let least = roll(&net, &["set", "image", "deployment/web", "web=localhost/web:v2"], "web");
    assert!(least >= 3, "only {least} Ready pods during the rollout");
    wait_ready(&net, 1, "web", 3, 30, |p| p.iter().all(|p| p.image == "localhost/web:v2"));
    let history = net.ok(1, &["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history.lines().skip(2).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    // And back to v1 the same way.
    let least = roll(&net, &["rollout", "undo", "deployment/web"], "web");
    assert!(least >= 3, "only {least} Ready pods during the undo");
    wait_ready(&net, 1, "web", 3, 30, |p| p.iter().all(|p| p.image == "localhost/web:v1"));
    let rs = net.ok(1, &["get", "rs"]);
    assert_eq!(rs.lines().count(), 3, "two ReplicaSets: {rs}");
    let d = net.ok(1, &["describe", "deployment", "web"]);
    assert!(d.contains("NewReplicaSetAvailable") && d.contains("ScalingReplicaSet"), "{d}");

    // A version whose readiness probe never passes stalls: the old pods
    // stay Ready, and `rollout status` fails once the deadline passes.
    let probe = ", readinessProbe: {httpGet: {path: /nope, port: 8080}, periodSeconds: 1}";
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(net.client(), 2, "web", stop.clone());
    net.apply_ok(1, &web_with("web", 3, "v2", "  progressDeadlineSeconds: 6\n", probe));
    let started = Instant::now();
    let status = net.run(3, &["rollout", "status", "deployment/web", "--timeout", "60s"]);
    stop.store(true, Ordering::SeqCst);
    let (least, _) = watcher.join().unwrap();
    let said = String::from_utf8_lossy(&status.stderr);
    assert!(
        !status.status.success() && said.contains("exceeded its progress deadline"),
        "{said}"
    );
    assert!(started.elapsed() >= Duration::from_secs(5), "reported before the deadline");
    assert!(least >= 3, "only {least} Ready pods while the new version never got ready");
    let stuck = pods(&net, 1, "web").unwrap();
    let v1_ready = stuck
        .iter()
        .filter(|p| p.image == "localhost/web:v1" && p.ready && !p.terminating)
        .count();
    assert_eq!(v1_ready, 3, "{stuck:?}");
    assert!(stuck.iter().any(|p| p.image == "localhost/web:v2" && !p.ready), "{stuck:?}");
    // Undo returns to the v1 template: the never-ready pod goes.
    net.ok(1, &["rollout", "undo", "deployment/web"]);
    wait_ready(&net, 1, "web", 3, 30, |p| p.iter().all(|p| p.image == "localhost/web:v1"));

    // Deleting the Deployment removes its ReplicaSets and pods.
    net.ok(1, &["delete", "deployment", "web"]);
    net.wait_for(30, "web's pods and ReplicaSets gone", || {
        let gone = pods(&net, 2, "web")?.is_empty();
        let rs = net.ok(2, &["get", "rs"]);
        (gone && rs.lines().count() == 1).then_some(())
    });
}

/// SuccessfulCreate events of `app`'s ReplicaSets: pods the leader started.
fn creations(net: &Net, app: &str) -> usize {
    let out = net.ok(1, &["get", "events", "-o", "json"]);
    let events: Vec<Value> = serde_json::from_str(&out).unwrap();
    events
        .iter()
        .filter(|e| {
            e["reason"] == "SuccessfulCreate"
                && e["object"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(&format!("replicaset/default/{app}-"))
        })
        .count()
}

#[test]
fn replicas_of_a_dead_or_cut_off_node_are_replaced_and_the_count_converges() {
    let mut net = Net::cluster(3);
    net.apply_ok(1, &sleepers("sl", 3));
    let placed = wait_ready(&net, 1, "sl", 3, 60, |p| {
        p.iter().map(|p| &p.node).collect::<BTreeSet<_>>().len() == 3
    });
    assert_eq!(creations(&net, "sl"), 3);
    let on = |p: &[Live], node: &str| p.iter().filter(|x| x.node == node).count();
    assert_eq!(on(&placed, "h3"), 1);

    // kill -9 of h3, agent and containers, as a crash.
    net.kill9(3);
    net.kill_containers(3);
    let replaced = wait_ready(&net, 1, "sl", 3, 30, |p| on(p, "h3") == 0);
    assert_eq!(replaced.len(), 3);
    // It comes back: it learns its pod was replaced; exactly 3 pods remain.
    net.start_agent(3);
    net.wait_for(60, "exactly 3 pods after h3 is back", || {
        let all = pods(&net, 1, "sl")?;
        (all.len() == 3 && all.iter().all(|p| p.ready && !p.terminating)).then_some(())
    });
    assert_eq!(creations(&net, "sl"), 4, "one replacement for one dead replica");

    // A partition: h2 keeps running its pod while cut off; the others replace it.
    let before = pods(&net, 1, "sl").unwrap();
    let cut: Vec<String> = before.iter().filter(|p| p.node == "h2").map(|p| p.name.clone()).collect();
    assert!(!cut.is_empty(), "h2 runs a replica: {before:?}");
    net.partition(2);
    wait_ready(&net, 1, "sl", 3, 30, |p| on(p, "h2") == 0);
    let own = pods(&net, 2, "sl").expect("h2 answers its own replica");
    for name in &cut {
        let p = own.iter().find(|p| &p.name == name).expect("still known on h2");
        assert!(p.ready && !p.terminating, "h2 keeps running {name} while cut off: {p:?}");
    }
    net.heal(2);
    net.wait_for(60, "exactly 3 pods after the heal", || {
        let all = pods(&net, 1, "sl")?;
        (all.len() == 3
            && all
                .iter()
                .all(|p| p.ready && !p.terminating && !p.node.is_empty() && !cut.contains(&p.name)))
        .then_some(())
    });
    assert_eq!(creations(&net, "sl"), 5, "one replacement per replica cut off, never two");
}

/// A Deployment of busybox sleepers labelled `app=<name>`.
fn sleepers(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers: [{{name: c, image: localhost/busybox, command: [sleep, \"3600\"]}}]\n"
    )
}

#[test]
fn daemonsets_follow_nodes_drain_moves_pods_and_the_kubernetes_examples_apply() {
    let mut net = Net::cluster_of(4, 3);
    let ds = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      affinity:\n        nodeAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n            nodeSelectorTerms:\n            - matchExpressions: [{key: no-agent, operator: DoesNotExist}]\n      containers: [{name: c, image: localhost/busybox, command: [sleep, \"3600\"]}]\n";
    net.apply_ok(1, ds);
    let nodes = |p: &[Live]| p.iter().map(|p| p.node.clone()).collect::<BTreeSet<_>>();
    let all3: BTreeSet<String> = ["h1", "h2", "h3"].map(String::from).into();
    wait_ready(&net, 1, "agent", 3, 60, |p| nodes(p) == all3);

    // A node that joins afterwards gets one.
    let token = net.token.clone();
    net.join(4, 1, &token);
    net.start_agent(4);
    net.import_busybox(4);
    wait_ready(&net, 1, "agent", 4, 60, |p| nodes(p).contains("h4"));
    // A node whose labels stop matching loses it.
    net.ok(1, &["label", "node", "h2", "no-agent=true"]);
    wait_ready(&net, 1, "agent", 3, 30, |p| !nodes(p).contains("h2"));
    let out = net.ok(1, &["get", "ds"]);
    assert!(out.contains("agent") && out.contains("NODE SELECTOR"), "{out}");

    // drain: controller pods leave h3, DaemonSet pods stay, nothing new lands until uncordon.
    net.apply_ok(1, &sleepers("sl", 4));
    wait_ready(&net, 1, "sl", 4, 60, |p| nodes(p).contains("h3"));
    net.ok(1, &["drain", "h3"]);
    wait_ready(&net, 1, "sl", 4, 30, |p| !nodes(p).contains("h3"));
    net.ok(1, &["scale", "deployment/sl", "--replicas", "8"]);
    wait_ready(&net, 1, "sl", 8, 60, |p| !nodes(p).contains("h3"));
    assert!(
        nodes(&pods(&net, 1, "agent").unwrap()).contains("h3"),
        "the DaemonSet pod stays on a drained node"
    );
    net.ok(1, &["uncordon", "h3"]);
    net.ok(1, &["scale", "deployment/sl", "--replicas", "12"]);
    wait_ready(&net, 1, "sl", 12, 60, |p| nodes(p).contains("h3"));

    // --cascade=orphan leaves the pods running.
    net.ok(1, &["delete", "deployment", "sl", "--cascade=orphan"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(pods(&net, 1, "sl").unwrap().iter().filter(|p| !p.terminating).count(), 12);

    // The Kubernetes documentation's examples, unchanged, with stand-in images.
    for i in 1..=4 {
        for tar in ["nginx.tar", "gb-frontend.tar", "fluentd.tar"] {
            net.import(i, tar);
        }
    }
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes");
    for f in ["nginx-deployment.yaml", "frontend.yaml", "daemonset.yaml"] {
        let text = std::fs::read_to_string(examples.join(f)).unwrap();
        net.apply_ok(1, &text);
    }
    net.wait_for(90, "the examples Running", || {
        let all = net.pods(1, false)?;
        let mut running: BTreeMap<String, usize> = BTreeMap::new();
        for p in &all {
            let name = p["pod"]["metadata"]["name"].as_str().unwrap_or("");
            if p["status"]["phase"] == "Running" {
                for prefix in ["nginx-deployment-", "frontend-", "fluentd-elasticsearch-"] {
                    if name.starts_with(prefix) {
                        *running.entry(prefix.into()).or_default() += 1;
                    }
                }
            }
        }
        let want = BTreeMap::from([
            ("nginx-deployment-".to_string(), 3),
            ("frontend-".to_string(), 3),
            ("fluentd-elasticsearch-".to_string(), 4),
        ]);
        (running == want).then_some(())
    });
}

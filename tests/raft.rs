//! The cluster as one: Raft among real nodes (network namespaces on a
//! bridge, the real binary), the leader's scheduler, and every node running
//! exactly the pods placed on it. Kills, partitions and restarts are done to
//! real processes.

mod common;

use common::netns::Net;
use std::collections::BTreeMap;

fn sleeper(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{extra}  containers: [{{name: c, image: localhost/busybox, command: [sleep, \"3600\"]}}]\n"
    )
}

/// A pod requesting `cpu`, tolerating the `dedicated=db` taint the test puts on h2.
fn sleeper_cpu(name: &str, cpu: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  tolerations: [{{key: dedicated, operator: Exists}}]\n  containers: [{{name: c, image: localhost/busybox, command: [sleep, \"3600\"], resources: {{requests: {{cpu: \"{cpu}\"}}}}}}]\n"
    )
}

fn node_of(p: &[(String, String, String)], name: &str) -> String {
    p.iter()
        .find(|(n, _, _)| n == name)
        .map(|(_, node, _)| node.clone())
        .unwrap_or_default()
}

#[test]
fn three_nodes_place_pods_by_requests_selectors_affinity_and_taints_and_survive_the_leader() {
    let mut net = Net::cluster(3);
    // Placement rules, each applied through a different node.
    net.ok(1, &["taint", "node", "h2", "dedicated=db:NoSchedule"]);
    net.apply_ok(2, &sleeper("by-selector", "  nodeSelector: {rack: r3}\n"));
    let affinity = "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [h1]}]\n";
    net.apply_ok(3, &sleeper("by-affinity", affinity));
    let tolerates =
        "  nodeSelector: {kubernetes.io/hostname: h2}\n  tolerations: [{key: dedicated, operator: Equal, value: db, effect: NoSchedule}]\n";
    net.apply_ok(1, &sleeper("tolerates-h2", tolerates));
    net.apply_ok(2, &sleeper("untolerated-h2", "  nodeSelector: {kubernetes.io/hostname: h2}\n"));
    // Three pods that each need most of a node's 2 CPUs, then one too many.
    for (i, name) in ["cpu-a", "cpu-b", "cpu-c"].iter().enumerate() {
        net.apply_ok(i + 1, &sleeper_cpu(name, "1500m"));
    }
    net.apply_ok(1, &sleeper_cpu("cpu-d", "1500m"));

    let placed = net.wait_for(60, "placements Running", || {
        let p = net.placements(1)?;
        let running = ["by-selector", "by-affinity", "tolerates-h2", "cpu-a", "cpu-b", "cpu-c"]
            .iter()
            .all(|n| p.iter().any(|(x, _, phase)| x == n && phase == "Running"));
        running.then_some(p)
    });
    assert_eq!(node_of(&placed, "by-selector"), "h3");
    assert_eq!(node_of(&placed, "by-affinity"), "h1");
    assert_eq!(node_of(&placed, "tolerates-h2"), "h2");
    assert_eq!(node_of(&placed, "untolerated-h2"), "");
    assert_eq!(node_of(&placed, "cpu-d"), "");
    let cpu_nodes: std::collections::BTreeSet<String> = ["cpu-a", "cpu-b", "cpu-c"].iter().map(|n| node_of(&placed, n)).collect();
    assert_eq!(cpu_nodes.len(), 3, "one 1500m pod per 2-CPU node: {placed:?}");
    let why = net.ok(1, &["describe", "pod", "cpu-d"]);
    assert!(why.contains("0/3 nodes are available: 3 Insufficient cpu."), "{why}");
    let why = net.ok(2, &["describe", "pod", "untolerated-h2"]);
    assert!(why.contains("untolerated taint {dedicated: db}"), "{why}");
    // Every node's replica shows the same placements.
    for i in 2..=3 {
        let p = net.wait_for(10, "same placements everywhere", || net.placements(i).filter(|p| *p == placed));
        assert_eq!(p, placed);
    }

    // kill -9 of the leader: a new one is elected and applies go on.
    let old = net.leader(1).expect("a leader");
    net.kill9(old);
    let via = if old == 1 { 2 } else { 1 };
    net.apply_ok(via, &sleeper("after-failover", ""));
    let new = net.wait_for(10, "a new leader", || net.leader(via).filter(|l| *l != old));
    assert_ne!(new, old);
    // The old leader comes back as a follower with the same state.
    net.start_agent(old);
    net.wait_for(30, "old leader catches up", || {
        let mine = net.pods(old, true)?;
        let theirs = net.pods(via, true)?;
        let names = |v: &[serde_json::Value]| -> BTreeMap<String, String> {
            v.iter()
                .map(|p| {
                    (
                        p["pod"]["metadata"]["name"].as_str().unwrap_or("").to_string(),
                        p["uid"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        };
        (names(&mine) == names(&theirs) && names(&mine).contains_key("after-failover")).then_some(())
    });
    let role = net.roles(old).into_iter().find(|(n, _)| *n == format!("h{old}")).map(|(_, r)| r);
    assert_eq!(role.as_deref(), Some("voter"), "the old leader is a follower now");
}

/// A tiny deterministic generator, so a failing chaos run can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// A pod no node matches: it stays Pending, so a stream of them costs no containers.
fn pending(name: &str) -> String {
    sleeper(name, "  nodeSelector: {shoal.test/none: x}\n")
}

/// Pod name → uid, as host `i` reads it through the leader.
fn uids(net: &Net, i: usize) -> Option<BTreeMap<String, String>> {
    let pods = net.pods(i, true)?;
    let mut m = BTreeMap::new();
    for p in pods {
        let name = p["pod"]["metadata"]["name"].as_str()?.to_string();
        let uid = p["uid"].as_str()?.to_string();
        assert!(
            !uid.is_empty() && p["pod"]["spec"]["containers"].is_array(),
            "a half-present pod: {p}"
        );
        assert!(m.insert(name.clone(), uid).is_none(), "pod {name} listed twice");
    }
    Some(m)
}

/// Every host answers with the same pods; returns them.
fn converged(net: &Net, hosts: &[usize], secs: u64) -> BTreeMap<String, String> {
    net.wait_for(secs, "every replica holds the same pods", || {
        let first = uids(net, hosts[0])?;
        hosts[1..].iter().all(|i| uids(net, *i).as_ref() == Some(&first)).then_some(first)
    })
}

fn pinned(name: &str, host: usize) -> String {
    sleeper(name, &format!("  nodeSelector: {{kubernetes.io/hostname: h{host}}}\n"))
}

/// Whether `pod`'s container runs on host `i` (exec needs a running container there).
fn runs_on(net: &Net, i: usize, pod: &str) -> bool {
    net.run(i, &["exec", pod, "--server", &net.addr(i), "--", "true"]).status.success()
}

#[test]
fn five_nodes_keep_every_acknowledged_apply_through_kills_partitions_and_restarts() {
    let mut net = Net::cluster(5);
    for i in 1..=5 {
        net.apply_ok(1, &pinned(&format!("on-h{i}"), i));
    }
    net.wait_for(60, "a pod runs on every node", || {
        (1..=5).all(|i| runs_on(&net, i, &format!("on-h{i}"))).then_some(())
    });

    // A client streams applies through random nodes while random nodes,
    // the leader included, are killed -9 and restarted.
    let client = net.client();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (acked, failed) = std::thread::scope(|s| {
        let streamer = s.spawn(|| {
            let mut rng = Lcg(7);
            let (mut acked, mut failed) = (Vec::new(), Vec::new());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            for k in 0..400 {
                if stop.load(std::sync::atomic::Ordering::SeqCst) || std::time::Instant::now() > deadline {
                    break;
                }
                let name = format!("chaos-{k}");
                let via = rng.below(5) as usize + 1;
                match client.apply(via, &pending(&name)).status.success() {
                    true => acked.push(name),
                    false => failed.push(name),
                }
            }
            (acked, failed)
        });
        let mut rng = Lcg(11);
        for round in 0..4 {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            let victim = match round % 2 {
                0 => net.leader(1 + rng.below(5) as usize).unwrap_or(1),
                _ => rng.below(5) as usize + 1,
            };
            net.kill9(victim);
            std::thread::sleep(std::time::Duration::from_millis(1000 + 250 * rng.below(8)));
            net.start_agent(victim);
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        streamer.join().unwrap()
    });
    assert!(
        acked.len() >= 20,
        "too few applies got through: {} acked, {} failed",
        acked.len(),
        failed.len()
    );
    let state = converged(&net, &[1, 2, 3, 4, 5], 60);
    for name in &acked {
        assert!(state.contains_key(name), "acknowledged apply {name} is lost");
    }
    eprintln!(
        "chaos: {} acknowledged, {} failed; all acknowledged present on all 5 replicas",
        acked.len(),
        failed.len()
    );

    // A partitioned minority cannot commit, and says so within seconds; its
    // node keeps running its pods; after the heal everything converges.
    net.partition(5);
    let t0 = std::time::Instant::now();
    let out = net.apply(5, &pending("from-the-minority"));
    let took = t0.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no quorum"), "a minority write: {err}");
    assert!(took < std::time::Duration::from_secs(10), "the minority answered after {took:?}");
    assert!(runs_on(&net, 5, "on-h5"), "the cut-off node stopped its pod");
    net.apply_ok(1, &pending("from-the-majority"));
    net.heal(5);
    let state = converged(&net, &[1, 2, 3, 4, 5], 30);
    assert!(state.contains_key("from-the-majority"));

    // A node cut off from all others and restarted after a power cut brings
    // up its own pods from its local replica.
    net.partition(3);
    net.kill9(3);
    net.kill_containers(3);
    net.start_agent(3);
    net.wait_for(60, "h3 restarts its pod while cut off", || runs_on(&net, 3, "on-h3").then_some(()));
    net.heal(3);

    // Every node killed at once, containers too; the same state comes back
    // and every pod runs again.
    let before = converged(&net, &[1, 2, 3, 4, 5], 30);
    for i in 1..=5 {
        net.kill9(i);
        net.kill_containers(i);
    }
    for i in 1..=5 {
        net.start_agent(i);
    }
    let after = converged(&net, &[1, 2, 3, 4, 5], 60);
    assert_eq!(before, after, "the state changed across a restart of every node");
    net.wait_for(60, "every pod runs again", || {
        (1..=5).all(|i| runs_on(&net, i, &format!("on-h{i}"))).then_some(())
    });
}

fn role_of(net: &Net, viewer: usize, host: usize) -> String {
    let name = format!("h{host}");
    net.roles(viewer)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| r)
        .unwrap_or_default()
}

#[test]
fn a_dead_voter_is_replaced_and_joins_go_on_after_the_init_node_is_deleted() {
    let mut net = Net::cluster_of(5, 4);
    let learner = (1..=4).find(|i| role_of(&net, 1, *i) == "learner").expect("one learner of 4 nodes");
    let leader = net.leader(1).expect("a leader");
    let victim = (1..=4).find(|i| *i != leader && *i != learner).unwrap();
    net.kill9(victim);
    // Gossip sees it Down in about a second; after the grace (4 s here) the
    // stable learner takes its seat and the dead voter becomes a learner.
    net.wait_for(40, "the learner replaces the dead voter", || {
        (role_of(&net, leader, learner) == "voter" && role_of(&net, leader, victim) == "learner").then_some(())
    });
    net.start_agent(victim);

    // The node that ran `init` dies and is deleted; joins go on through
    // another node, which sends the joiner to a voter holding the CA key.
    net.kill9(1);
    let survivor = (2..=4).find(|i| role_of(&net, *i, *i) == "learner").unwrap_or(2);
    net.wait_for(20, "a leader without h1", || net.leader(survivor).filter(|l| *l != 1));
    net.ok(survivor, &["delete", "node", "h1", "--server", &net.addr(survivor)]);
    net.wait_for(20, "h1 out of the cluster", || {
        let roles = net.roles(survivor);
        (!roles.iter().any(|(n, r)| n == "h1" && r != "-")).then_some(())
    });
    let token = net
        .ok(survivor, &["token", "create", "--server", &net.addr(survivor)])
        .trim()
        .to_string();
    net.join(5, survivor, &token);
    net.start_agent(5);
    net.wait_for(40, "h5 joins through a surviving node", || {
        let r = role_of(&net, survivor, 5);
        (r == "learner" || r == "voter").then_some(())
    });
    // A deleted node cannot come back on its old credentials.
    net.start_agent(1);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let r = role_of(&net, survivor, 1);
    assert!(r.is_empty() || r == "-", "the deleted node came back as {r:?}");
}

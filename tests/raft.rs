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

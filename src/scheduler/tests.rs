//! Whole-pipeline tests of `schedule`, and the helpers the unit tests share.

use super::*;
use std::time::Instant;

/// A ready, uncordoned, untainted node with 4 cores and 8 GiB.
pub(crate) fn node(name: &str) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        labels: BTreeMap::new(),
        zone: None,
        taints: Vec::new(),
        allocatable_cpu_milli: 4000,
        allocatable_memory_bytes: 8 << 30,
        ready: true,
        cordoned: false,
    }
}

/// A taint.
pub(crate) fn taint(key: &str, value: &str, effect: TaintEffect) -> Taint {
    Taint {
        key: key.into(),
        value: value.into(),
        effect,
    }
}

/// A one-container spec without requests, plus the given YAML fields.
pub(crate) fn spec_with(yaml: &str) -> PodSpec {
    serde_yaml_ng::from_str(&format!("containers: [{{name: c, image: busybox}}]\n{yaml}")).unwrap()
}

/// A spec requesting `cpu` millicores and `memory` MiB, plus the given YAML fields.
fn sized(cpu: u64, memory: u64, yaml: &str) -> PodSpec {
    let resources = format!("resources: {{requests: {{cpu: {cpu}m, memory: {memory}Mi}}}}");
    serde_yaml_ng::from_str(&format!("containers: [{{name: c, image: busybox, {resources}}}]\n{yaml}")).unwrap()
}

fn run(snapshot: &Snapshot, specs: &[PodSpec]) -> Vec<Decision> {
    let pending: Vec<_> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| PendingPod {
            key: ("default".into(), format!("p{i}")),
            spec,
            owner: None,
            labels: &NO_LABELS,
        })
        .collect();
    schedule(snapshot, &pending)
}

fn nodes_of(decisions: &[Decision]) -> Vec<&str> {
    fn name(d: &Decision) -> &str {
        match d {
            Decision::Bind { node, .. } => node,
            Decision::Unschedulable { .. } => "-",
        }
    }
    decisions.iter().map(name).collect()
}

fn message(d: &Decision) -> &str {
    match d {
        Decision::Unschedulable { message, .. } => message,
        other => panic!("expected Unschedulable, got {other:?}"),
    }
}

fn snapshot(nodes: Vec<NodeInfo>) -> Snapshot {
    Snapshot { nodes, placed: Vec::new() }
}

#[test]
fn each_placement_counts_against_its_node() {
    let mut n = node("a");
    n.allocatable_cpu_milli = 1000;
    let d = run(&snapshot(vec![n]), &vec![sized(400, 1, ""); 3]);
    assert_eq!(nodes_of(&d), ["a", "a", "-"]);
    assert_eq!(message(&d[2]), "0/1 nodes are available: 1 Insufficient cpu.");
    assert_eq!(d[2].key(), &("default".to_string(), "p2".to_string()));
}

#[test]
fn placed_pods_count_against_allocatable() {
    let mut s = snapshot(vec![node("a")]);
    let big = Requests {
        cpu_milli: 3800,
        memory_bytes: 0,
    };
    s.placed.push(PlacedPod {
        node: "a".into(),
        requests: big,
        owner: None,
        ..Default::default()
    });
    s.placed.push(PlacedPod {
        node: "gone".into(),
        requests: big,
        owner: None,
        ..Default::default()
    });
    assert_eq!(nodes_of(&run(&s, &[sized(200, 1, ""), sized(1, 1, "")])), ["a", "-"]);
}

#[test]
fn node_name_binds_without_filters_but_the_node_must_exist() {
    let mut n = node("a");
    (n.cordoned, n.ready, n.allocatable_cpu_milli) = (true, false, 0);
    n.taints.push(taint("dedicated", "db", TaintEffect::NoSchedule));
    let s = snapshot(vec![n, node("b")]);
    let d = run(&s, &[sized(500, 1, "nodeName: a"), sized(1, 1, "nodeName: ghost")]);
    assert_eq!(nodes_of(&d), ["a", "-"]);
    assert_eq!(message(&d[1]), "node \"ghost\" not found");
}

#[test]
fn no_nodes_is_kubernetes_no_nodes_error() {
    let d = run(&snapshot(Vec::new()), &[spec_with("")]);
    assert_eq!(message(&d[0]), "no nodes available to schedule pods");
}

#[test]
fn message_counts_the_first_failing_filter_of_each_node() {
    let mut cordoned = node("a");
    cordoned.cordoned = true;
    cordoned.taints.push(taint("node-role", "master", TaintEffect::NoSchedule));
    let mut tainted = node("b");
    tainted.taints.push(taint("node-role", "master", TaintEffect::NoSchedule));
    let mut not_ready = node("c");
    not_ready.ready = false;
    let mut small = node("d");
    (small.allocatable_cpu_milli, small.allocatable_memory_bytes) = (100, 1 << 20);
    small.labels.insert("disk".into(), "ssd".into());
    let plain = node("e");
    let s = snapshot(vec![cordoned, tainted, not_ready, small, plain]);
    let d = run(&s, &[sized(500, 2, "nodeSelector: {disk: ssd}")]);
    assert_eq!(
        message(&d[0]),
        "0/5 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, \
         1 node(s) didn't match Pod's node affinity/selector, \
         1 node(s) had untolerated taint {node-role: master}, \
         1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, \
         1 node(s) were unschedulable."
    );
}

#[test]
fn the_briefs_example_reads_as_kubernetes_sorts_it() {
    let mut a = node("a");
    a.labels.insert("disk".into(), "ssd".into());
    let mut b = a.clone();
    b.name = "b".into();
    let c = node("c");
    let d = run(&snapshot(vec![a, b, c]), &[sized(1, 16 << 10, "nodeSelector: {disk: ssd}")]);
    assert_eq!(
        message(&d[0]),
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient memory."
    );
}

#[test]
fn least_allocated_spreads_over_equal_nodes() {
    let d = run(&snapshot(vec![node("b"), node("a")]), &vec![sized(500, 64, ""); 4]);
    assert_eq!(nodes_of(&d), ["a", "b", "a", "b"]);
    // Pods with no requests spread too: they score as 100m and 200 MiB.
    let d = run(&snapshot(vec![node("b"), node("a")]), &vec![spec_with(""); 2]);
    assert_eq!(nodes_of(&d), ["a", "b"]);
}

#[test]
fn zone_spread_prefers_the_zone_with_fewer_pods() {
    let zoned = |name: &str, zone: &str| NodeInfo {
        zone: Some(zone.into()),
        ..node(name)
    };
    let mut s = snapshot(vec![zoned("a", "x"), zoned("b", "x"), zoned("c", "y")]);
    let tiny = Requests {
        cpu_milli: 1,
        memory_bytes: 1,
    };
    s.placed = ["a", "b"]
        .map(|n| PlacedPod {
            node: n.into(),
            requests: tiny,
            owner: None,
            ..Default::default()
        })
        .into();
    assert_eq!(nodes_of(&run(&s, &[sized(100, 1, "")])), ["c"]);
}

#[test]
fn preferences_and_soft_taints_steer_placement() {
    let mut a = node("a");
    a.taints.push(taint("spot", "", TaintEffect::PreferNoSchedule));
    let mut b = node("b");
    b.allocatable_cpu_milli = 1000;
    let mut c = node("c");
    c.labels.insert("disk".into(), "ssd".into());
    c.allocatable_cpu_milli = 500;
    let s = snapshot(vec![a, b, c]);
    // "a" is the emptiest after placing, but tainted; "b" is next.
    assert_eq!(nodes_of(&run(&s, &[sized(100, 1, "")])), ["b"]);
    let tolerant = sized(100, 1, "tolerations: [{key: spot, operator: Exists}]");
    assert_eq!(nodes_of(&run(&s, &[tolerant])), ["a"]);
    let ssd = "affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: \
               [{weight: 10, preference: {matchExpressions: [{key: disk, operator: In, values: [ssd]}]}}]}}";
    assert_eq!(nodes_of(&run(&s, &[sized(100, 1, ssd)])), ["c"]);
}

#[test]
fn required_affinity_picks_by_name_and_label() {
    let mut s = snapshot(vec![node("a"), node("b"), node("c")]);
    s.nodes[2].labels.insert("cores".into(), "64".into());
    let by_name = "affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: \
                   [{matchFields: [{key: metadata.name, operator: In, values: [b]}]}]}}}";
    let by_label = by_name.replace(
        "matchFields: [{key: metadata.name, operator: In, values: [b]}]",
        "matchExpressions: [{key: cores, operator: Gt, values: ['32']}]",
    );
    assert_eq!(nodes_of(&run(&s, &[spec_with(by_name), spec_with(&by_label)])), ["b", "c"]);
}

#[test]
fn scheduler_decisions_do_not_depend_on_node_order() {
    let mut nodes: Vec<NodeInfo> = (0..6).map(|i| node(&format!("n{i}"))).collect();
    for (i, n) in nodes.iter_mut().enumerate() {
        n.zone = Some(["x", "y"][i % 2].into());
        n.allocatable_cpu_milli = 1000 + 250 * i as u64;
    }
    let pods: Vec<_> = (0..20).map(|i| sized(100 + 30 * i, 32, "")).collect();
    let forward = run(&snapshot(nodes.clone()), &pods);
    nodes.reverse();
    assert_eq!(forward, run(&snapshot(nodes), &pods));
}

/// 1,000 nodes × 10,000 pods; prints placements per second. Run with
/// `cargo test --release --lib scheduler_throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn scheduler_throughput() {
    let nodes: Vec<NodeInfo> = (0..1000)
        .map(|i| NodeInfo {
            zone: Some(format!("zone-{}", i % 3)),
            labels: [("disk".to_string(), ["ssd", "hdd"][i % 2].to_string())].into(),
            taints: if i % 10 == 0 {
                vec![taint("spot", "", TaintEffect::PreferNoSchedule)]
            } else {
                Vec::new()
            },
            allocatable_cpu_milli: 16_000,
            allocatable_memory_bytes: 64 << 30,
            ..node(&format!("node-{i:04}"))
        })
        .collect();
    let shapes = [
        sized(100, 128, ""),
        sized(250, 512, "nodeSelector: {disk: ssd}"),
        sized(500, 256, ""),
    ];
    let specs: Vec<PodSpec> = (0..10_000).map(|i| shapes[i % shapes.len()].clone()).collect();
    let s = snapshot(nodes);
    let start = Instant::now();
    let decisions = run(&s, &specs);
    let elapsed = start.elapsed();
    let bound = decisions.iter().filter(|d| matches!(d, Decision::Bind { .. })).count();
    println!(
        "scheduler: {bound} of {} pods placed on 1000 nodes in {elapsed:?}: {:.0} placements/s",
        specs.len(),
        bound as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(bound, specs.len());
}

#[test]
fn replicas_of_one_owner_spread_over_nodes() {
    let mut s = Snapshot {
        nodes: ["a", "b", "c"].map(node).into(),
        placed: vec![],
    };
    // "a" holds two of x's replicas and is otherwise the emptiest node.
    for _ in 0..2 {
        s.placed.push(PlacedPod {
            node: "a".into(),
            requests: Requests::default(),
            owner: Some("x".into()),
            ..Default::default()
        });
    }
    for n in ["b", "c"] {
        s.placed.push(PlacedPod {
            node: n.into(),
            requests: Requests {
                cpu_milli: 500,
                memory_bytes: 0,
            },
            owner: None,
            ..Default::default()
        });
    }
    let spec = spec_with("");
    let pending: Vec<_> = (0..3)
        .map(|i| PendingPod {
            key: ("default".into(), format!("x{i}")),
            spec: &spec,
            owner: Some("x"),
            labels: &NO_LABELS,
        })
        .collect();
    assert_eq!(nodes_of(&schedule(&s, &pending)), ["b", "c", "b"]);
}

#[test]
fn topology_spread_constraints_filter_and_prefer_as_kubernetes() {
    let mut nodes: Vec<NodeInfo> = ["a", "b", "c"].map(node).into();
    for (n, zone) in nodes.iter_mut().zip(["z1", "z1", "z2"]) {
        n.labels.insert("topology.kubernetes.io/zone".into(), zone.into());
        n.labels.insert("kubernetes.io/hostname".into(), n.name.clone());
    }
    let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
    let mut s = Snapshot { nodes, placed: vec![] };
    // Two of app=web in zone z1 already.
    for n in ["a", "b"] {
        s.placed.push(PlacedPod {
            node: n.into(),
            namespace: "default".into(),
            labels: labels.clone(),
            ..Default::default()
        });
    }
    let hard = spec_with(
        "topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}]",
    );
    let pods = |s: &Snapshot, spec: &PodSpec, n: usize| -> Vec<Decision> {
        let pending: Vec<_> = (0..n)
            .map(|i| PendingPod {
                key: ("default".into(), format!("w{i}")),
                spec,
                owner: None,
                labels: &labels,
            })
            .collect();
        schedule(s, &pending)
    };
    // z1 has 2, z2 has 0: only c (z2) keeps the skew ≤ 1, twice; then z1 and z2 tie.
    assert_eq!(nodes_of(&pods(&s, &hard, 3)), ["c", "c", "a"]);
    // A node without the key cannot take a hard-constrained pod.
    let keyless = spec_with(
        "topologySpreadConstraints: [{maxSkew: 1, topologyKey: rack, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}]",
    );
    let d = pods(&s, &keyless, 1);
    let Decision::Unschedulable { message, .. } = &d[0] else {
        panic!("{d:?}")
    };
    assert_eq!(
        message,
        "0/3 nodes are available: 3 node(s) didn't match pod topology spread constraints (missing required label)."
    );
    // Soft: prefers the emptier zone but may go anywhere.
    let soft = spec_with(
        "topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: web}}}]",
    );
    assert_eq!(nodes_of(&pods(&s, &soft, 1)), ["c"]);
    // Other namespaces' pods do not count.
    for p in &mut s.placed {
        p.namespace = "other".into();
    }
    assert_eq!(nodes_of(&pods(&s, &hard, 2)), ["c", "a"]);
}

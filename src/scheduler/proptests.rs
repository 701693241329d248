//! Properties of `schedule` over random clusters and pods, checked against a
//! naive restatement of Kubernetes' rules written separately from the filters.

use super::*;
use crate::api::manifest::{
    Affinity, Container, NodeAffinity, NodeSelector, NodeSelectorOperator as Op, NodeSelectorRequirement, NodeSelectorTerm,
    PreferredSchedulingTerm, Resources, Toleration, TolerationOperator,
};
use oracle::allowed;
use proptest::prelude::*;

mod oracle;

fn s(v: &str) -> String {
    v.to_string()
}

fn node_strategy() -> impl Strategy<Value = NodeInfo> {
    let labels = (
        prop::option::of(prop::sample::select(vec!["ssd", "hdd"])),
        prop::option::of(prop::sample::select(vec!["2", "4", "8", "x"])),
    );
    let taint = (
        prop::sample::select(vec!["dedicated", "spot", "node-role"]),
        prop::sample::select(vec!["", "a"]),
        prop::sample::select(vec![TaintEffect::NoSchedule, TaintEffect::PreferNoSchedule, TaintEffect::NoExecute]),
    );
    let zone = prop::option::of(prop::sample::select(vec!["x", "y", "z"]));
    let flags = (prop::bool::weighted(0.8), prop::bool::weighted(0.15));
    (labels, zone, prop::collection::vec(taint, 0..3), 0u64..4000, 0u64..4096, flags).prop_map(
        |((disk, cores), zone, taints, cpu, mem, (ready, cordoned))| {
            let mut labels = BTreeMap::new();
            if let Some(d) = disk {
                labels.insert(s("disk"), s(d));
            }
            if let Some(c) = cores {
                labels.insert(s("cores"), s(c));
            }
            let taints = taints
                .into_iter()
                .map(|(k, v, effect)| Taint {
                    key: s(k),
                    value: s(v),
                    effect,
                })
                .collect();
            NodeInfo {
                name: String::new(),
                labels,
                zone: zone.map(s),
                taints,
                allocatable_cpu_milli: cpu,
                allocatable_memory_bytes: mem << 20,
                ready,
                cordoned,
            }
        },
    )
}

fn container_strategy() -> impl Strategy<Value = Container> {
    let q = |unit: &'static str| prop::option::of((0u64..1500).prop_map(move |n| format!("{n}{unit}")));
    (q("m"), q("Mi"), q("m"), q("Mi")).prop_map(|(cpu, mem, cpu_limit, mem_limit)| {
        let map = |pairs: [(&str, Option<String>); 2]| -> BTreeMap<String, String> {
            pairs.into_iter().filter_map(|(k, v)| Some((s(k), v?))).collect()
        };
        Container {
            name: s("c"),
            resources: Resources {
                requests: map([("cpu", cpu), ("memory", mem)]),
                limits: map([("cpu", cpu_limit), ("memory", mem_limit)]),
            },
            ..Default::default()
        }
    })
}

fn requirement_strategy() -> impl Strategy<Value = (bool, NodeSelectorRequirement)> {
    let req = |key: &str, operator, values: &[&str]| NodeSelectorRequirement {
        key: s(key),
        operator,
        values: values.iter().map(|v| s(v)).collect(),
    };
    let field = (0..8usize, any::<bool>()).prop_map(move |(i, inn)| {
        let op = if inn { Op::In } else { Op::NotIn };
        (true, req("metadata.name", op, &[&format!("n{i}")]))
    });
    let expressions = vec![
        req("disk", Op::In, &["ssd"]),
        req("disk", Op::NotIn, &["ssd", "hdd"]),
        req("disk", Op::Exists, &[]),
        req("cores", Op::DoesNotExist, &[]),
        req("cores", Op::Gt, &["4"]),
        req("cores", Op::Lt, &["4"]),
    ];
    prop_oneof![3 => prop::sample::select(expressions).prop_map(|r| (false, r)), 1 => field]
}

fn term_strategy() -> impl Strategy<Value = NodeSelectorTerm> {
    prop::collection::vec(requirement_strategy(), 0..3).prop_map(|reqs| {
        let (fields, exprs): (Vec<_>, Vec<_>) = reqs.into_iter().partition(|(f, _)| *f);
        NodeSelectorTerm {
            match_expressions: exprs.into_iter().map(|(_, r)| r).collect(),
            match_fields: fields.into_iter().map(|(_, r)| r).collect(),
        }
    })
}

fn toleration_strategy() -> impl Strategy<Value = Toleration> {
    let t = |key: &str, operator, value: &str, effect| Toleration {
        key: s(key),
        operator,
        value: s(value),
        effect,
        toleration_seconds: None,
    };
    prop::sample::select(vec![
        t("", TolerationOperator::Exists, "", None),
        t(
            "node.kubernetes.io/unschedulable",
            TolerationOperator::Exists,
            "",
            Some(TaintEffect::NoSchedule),
        ),
        t("node.kubernetes.io/not-ready", TolerationOperator::Exists, "", None),
        t(
            "node.kubernetes.io/not-ready",
            TolerationOperator::Exists,
            "",
            Some(TaintEffect::NoExecute),
        ),
        t("dedicated", TolerationOperator::Equal, "a", Some(TaintEffect::NoSchedule)),
        t("dedicated", TolerationOperator::Equal, "", None),
        t("spot", TolerationOperator::Exists, "", None),
        t("node-role", TolerationOperator::Exists, "", Some(TaintEffect::NoExecute)),
    ])
}

fn pod_strategy() -> impl Strategy<Value = PodSpec> {
    let containers = (
        prop::collection::vec(container_strategy(), 1..3),
        prop::collection::vec(container_strategy(), 0..2),
    );
    let selector = prop::option::of(prop::sample::select(vec!["ssd", "hdd"]));
    let required = prop::option::weighted(0.3, prop::collection::vec(term_strategy(), 1..3));
    let preferred = prop::collection::vec((1i32..=100, term_strategy()), 0..2);
    let tolerations = prop::collection::vec(toleration_strategy(), 0..3);
    let node_name = prop::option::weighted(0.1, (0..10usize).prop_map(|i| format!("n{i}")));
    (containers, selector, required, preferred, tolerations, node_name).prop_map(
        |((containers, init_containers), disk, required, preferred, tolerations, node_name)| PodSpec {
            containers,
            init_containers,
            node_selector: disk.map(|d| (s("disk"), s(d))).into_iter().collect(),
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: required
                        .map(|node_selector_terms| NodeSelector { node_selector_terms }),
                    preferred_during_scheduling_ignored_during_execution: preferred
                        .into_iter()
                        .map(|(weight, preference)| PreferredSchedulingTerm { weight, preference })
                        .collect(),
                }),
            }),
            tolerations,
            node_name,
            ..Default::default()
        },
    )
}

fn case_strategy() -> impl Strategy<Value = (Snapshot, Vec<PodSpec>)> {
    let nodes = prop::collection::vec(node_strategy(), 0..8);
    let placed = prop::collection::vec((0..10usize, 0u64..1500, 0u64..1500), 0..6);
    let pods = prop::collection::vec(pod_strategy(), 1..12);
    (nodes, placed, pods).prop_map(|(mut nodes, placed, pods)| {
        for (i, n) in nodes.iter_mut().enumerate() {
            n.name = format!("n{i}");
        }
        let placed = placed
            .into_iter()
            .map(|(i, cpu_milli, mem)| PlacedPod {
                node: format!("n{i}"),
                requests: Requests {
                    cpu_milli,
                    memory_bytes: mem << 20,
                },
                owner: None,
                ..Default::default()
            })
            .collect();
        (Snapshot { nodes, placed }, pods)
    })
}

fn run(snapshot: &Snapshot, pods: &[PodSpec]) -> Vec<Decision> {
    let pending: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, spec)| PendingPod {
            key: (s("ns"), format!("p{i}")),
            spec,
            owner: None,
            labels: &NO_LABELS,
        })
        .collect();
    schedule(snapshot, &pending)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scheduler_respects_capacity_and_filters((snapshot, pods) in case_strategy()) {
        let decisions = run(&snapshot, &pods);
        prop_assert_eq!(decisions.len(), pods.len());
        let by_name: BTreeMap<&str, &NodeInfo> = snapshot.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        let mut used: BTreeMap<&str, Requests> = BTreeMap::new();
        for p in &snapshot.placed {
            if by_name.contains_key(p.node.as_str()) {
                let u = used.entry(p.node.as_str()).or_default();
                *u = u.plus(p.requests);
            }
        }
        let start = used.clone();
        let fits = |want: u64, have: u64, used: u64| want == 0 || used.saturating_add(want) <= have;
        for (i, (d, spec)) in decisions.iter().zip(&pods).enumerate() {
            prop_assert_eq!(d.key(), &(s("ns"), format!("p{i}")));
            let req = requests_of(spec);
            match (d, spec.bound_node()) {
                (Decision::Bind { node, .. }, Some(want)) => prop_assert_eq!(node.as_str(), want),
                (Decision::Unschedulable { message, .. }, Some(want)) => {
                    prop_assert!(!by_name.contains_key(want));
                    prop_assert_eq!(message, &format!("node \"{want}\" not found"));
                }
                (Decision::Bind { node, .. }, None) => {
                    let n = by_name[node.as_str()];
                    let u = used.get(node.as_str()).copied().unwrap_or_default();
                    prop_assert!(allowed(spec, n), "{} is not allowed on {:?}", i, n);
                    prop_assert!(fits(req.cpu_milli, n.allocatable_cpu_milli, u.cpu_milli), "cpu over on {}", node);
                    prop_assert!(fits(req.memory_bytes, n.allocatable_memory_bytes, u.memory_bytes), "memory over on {}", node);
                }
                (Decision::Unschedulable { message, .. }, None) => {
                    let prefix = format!("0/{} nodes are available: ", snapshot.nodes.len());
                    prop_assert!(message.starts_with(&prefix) || snapshot.nodes.is_empty(), "{}", message);
                    for n in &snapshot.nodes {
                        let u = used.get(n.name.as_str()).copied().unwrap_or_default();
                        let fit = fits(req.cpu_milli, n.allocatable_cpu_milli, u.cpu_milli)
                            && fits(req.memory_bytes, n.allocatable_memory_bytes, u.memory_bytes);
                        prop_assert!(!(allowed(spec, n) && fit), "{} fits {} yet: {}", i, n.name, message);
                    }
                }
            }
            if let Decision::Bind { node, .. } = d {
                let u = used.entry(node.as_str()).or_default();
                *u = u.plus(req);
            }
        }
        for n in &snapshot.nodes {
            let at = |m: &BTreeMap<&str, Requests>| m.get(n.name.as_str()).copied().unwrap_or_default();
            let (u, s0) = (at(&used), at(&start));
            let bound_by_name = pods.iter().any(|p| p.bound_node() == Some(n.name.as_str()));
            if !bound_by_name {
                prop_assert!(u.cpu_milli <= n.allocatable_cpu_milli.max(s0.cpu_milli));
                prop_assert!(u.memory_bytes <= n.allocatable_memory_bytes.max(s0.memory_bytes));
            }
        }
    }

    #[test]
    fn scheduler_is_deterministic_and_ignores_node_order((snapshot, pods) in case_strategy()) {
        let first = run(&snapshot, &pods);
        prop_assert_eq!(&first, &run(&snapshot, &pods));
        let mut reversed = snapshot.clone();
        reversed.nodes.reverse();
        prop_assert_eq!(&first, &run(&reversed, &pods));
    }
}

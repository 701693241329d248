//! PodTopologySpread: `topologySpreadConstraints`. For each constraint the
//! domains are the values of its `topologyKey` among the eligible nodes
//! (those matching the pod's node selector and affinity unless
//! `nodeAffinityPolicy: Ignore`; without untolerated taints with
//! `nodeTaintsPolicy: Honor`), and each domain counts the pods of the pod's
//! namespace that its selector (plus `matchLabelKeys`) matches.
//! `DoNotSchedule` keeps the pod off a node where placing it would make
//! `count + self - min > maxSkew`, or that lacks the key; `ScheduleAnyway`
//! prefers nodes whose domains hold fewer such pods.

use super::{affinity, selector, taints, Failure};
use crate::api::manifest::{LabelSelector, PodSpec, TopologySpreadConstraint, WhenUnsatisfiable};
use crate::scheduler::pipeline::NodeView;
use std::collections::BTreeMap;

/// A placed pod as the spread counts it.
pub(crate) struct Counted<'a> {
    /// Index of its node.
    pub node: usize,
    /// Namespace.
    pub namespace: &'a str,
    /// Labels.
    pub labels: &'a BTreeMap<String, String>,
}

/// One constraint, worked out for one pending pod.
pub(crate) struct Spread {
    key: String,
    hard: bool,
    max_skew: u64,
    /// Pods per domain value.
    counts: BTreeMap<String, u64>,
    /// The fewest in any domain (0 below `minDomains`).
    min: u64,
    /// 1 when the pod itself matches the selector.
    own: u64,
}

fn selector_of(c: &TopologySpreadConstraint, labels: &BTreeMap<String, String>) -> Option<LabelSelector> {
    let mut s = c.label_selector.clone()?;
    for k in &c.match_label_keys {
        if let Some(v) = labels.get(k) {
            s.match_labels.insert(k.clone(), v.clone());
        }
    }
    Some(s)
}

/// Works out every constraint of the pod over the nodes and the pods placed so far.
pub(crate) fn spreads(
    spec: &PodSpec,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    nodes: &[NodeView<'_>],
    placed: &[Counted<'_>],
) -> Vec<Spread> {
    spec.topology_spread_constraints
        .iter()
        .map(|c| {
            let eligible: Vec<bool> = nodes
                .iter()
                .map(|n| {
                    let affinity = c.node_affinity_policy.as_deref() == Some("Ignore")
                        || (selector::matches(spec, n.info) && affinity::required_matches(spec, n.info));
                    let tainted = c.node_taints_policy.as_deref() == Some("Honor") && taints::check(spec, n).is_err();
                    affinity && !tainted && n.info.labels.contains_key(&c.topology_key)
                })
                .collect();
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for (n, _) in nodes.iter().zip(&eligible).filter(|(_, e)| **e) {
                counts.entry(n.info.labels[&c.topology_key].clone()).or_default();
            }
            let sel = selector_of(c, labels);
            if let Some(sel) = &sel {
                for p in placed
                    .iter()
                    .filter(|p| p.namespace == namespace && eligible[p.node] && sel.matches(p.labels))
                {
                    *counts
                        .get_mut(&nodes[p.node].info.labels[&c.topology_key])
                        .expect("eligible node's domain") += 1;
                }
            }
            let too_few = c.min_domains.is_some_and(|m| (counts.len() as i64) < m);
            let min = if too_few { 0 } else { counts.values().copied().min().unwrap_or(0) };
            Spread {
                key: c.topology_key.clone(),
                hard: c.when_unsatisfiable == WhenUnsatisfiable::DoNotSchedule,
                max_skew: c.max_skew.max(1) as u64,
                counts,
                min,
                own: sel.is_some_and(|s| s.matches(labels)) as u64,
            }
        })
        .collect()
}

/// The hard constraints on one node.
pub(crate) fn check<'a>(spreads: &[Spread], node: &NodeView<'_>) -> Result<(), Failure<'a>> {
    for s in spreads.iter().filter(|s| s.hard) {
        let Some(value) = node.info.labels.get(&s.key) else {
            return Err(Failure::TopologySpread { missing_label: true });
        };
        let count = s.counts.get(value).copied().unwrap_or(0);
        if count + s.own > s.min + s.max_skew {
            return Err(Failure::TopologySpread { missing_label: false });
        }
    }
    Ok(())
}

/// The soft constraints' raw score of a node: matching pods in its domains
/// (lower is better; a node without the key counts as the fullest).
pub(crate) fn raw(spreads: &[Spread], node: &NodeView<'_>) -> u64 {
    spreads
        .iter()
        .filter(|s| !s.hard)
        .map(|s| match node.info.labels.get(&s.key) {
            Some(v) => s.counts.get(v).copied().unwrap_or(0),
            None => s.counts.values().copied().max().unwrap_or(0) + 1,
        })
        .sum()
}

/// Whether any constraint is soft (the score then replaces the default spread).
pub(crate) fn has_soft(spreads: &[Spread]) -> bool {
    spreads.iter().any(|s| !s.hard)
}

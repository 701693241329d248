//! Scores: each rates a node that passed the filters from 0 to 100, and the
//! node with the highest weighted sum wins, ties going to the smallest name.
//!
//! The weights are those of the Kubernetes plugins each score stands for in
//! the default profile: TaintToleration 3, NodeAffinity 2,
//! PodTopologySpread 2 (zone spread here) and NodeResourcesFit 1 (least
//! allocated). So a PreferNoSchedule taint or an unmet preference outweighs
//! how full a node is, and spreading over zones sits between the two, as in
//! a default Kubernetes cluster. Scores are integers, as in Kubernetes.

pub(crate) mod least_allocated;
pub(crate) mod node_affinity;
pub(crate) mod taint_toleration;
pub(crate) mod zone_spread;

use super::pipeline::{NodeView, PodView};

/// Kubernetes' `MaxNodeScore`.
pub(crate) const MAX_SCORE: u64 = 100;

const TAINT_TOLERATION_WEIGHT: u64 = 3;
const NODE_AFFINITY_WEIGHT: u64 = 2;
const ZONE_SPREAD_WEIGHT: u64 = 2;
/// Kubernetes' default topology spread has a hostname constraint beside
/// the zone one, in the same plugin: replicas of one owner avoid sharing a node.
const NODE_SPREAD_WEIGHT: u64 = 2;
const LEAST_ALLOCATED_WEIGHT: u64 = 1;

/// A node that passed the filters, with the raw value of each score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Index of the node.
    pub node: usize,
    /// Final least-allocated score, 0–100.
    pub least_allocated: u64,
    /// Pods in the node's zone; `None` for a node with no zone.
    pub zone_pods: Option<u64>,
    /// Pods of the same owner on the node.
    pub siblings: u64,
    /// Untolerated PreferNoSchedule taints.
    pub intolerable: u64,
    /// Sum of the weights of the preferred terms the node matches.
    pub preferred: u64,
}

/// The raw scores of one node; the relative ones are normalised in [`best`].
pub(crate) fn raw(index: usize, pod: &PodView<'_>, node: &NodeView<'_>, zone_pods: &[u64], siblings: u64) -> Candidate {
    Candidate {
        node: index,
        least_allocated: least_allocated::score(pod.non_zero, node),
        zone_pods: node.zone.map(|z| zone_pods.get(z).copied().unwrap_or(0)),
        siblings,
        intolerable: taint_toleration::raw(pod.spec, node.info),
        preferred: node_affinity::raw(pod.spec, node.info),
    }
}

/// The candidate with the highest weighted sum, ties to the smallest node name.
pub(crate) fn best(candidates: &[Candidate], nodes: &[NodeView<'_>]) -> Option<usize> {
    let max = |f: fn(&Candidate) -> u64| candidates.iter().map(f).max().unwrap_or(0);
    let max_zone = max(|c| c.zone_pods.unwrap_or(0));
    let max_siblings = max(|c| c.siblings);
    let max_intolerable = max(|c| c.intolerable);
    let max_preferred = max(|c| c.preferred);
    let total = |c: &Candidate| {
        TAINT_TOLERATION_WEIGHT * taint_toleration::normalize(c.intolerable, max_intolerable)
            + NODE_AFFINITY_WEIGHT * node_affinity::normalize(c.preferred, max_preferred)
            + ZONE_SPREAD_WEIGHT * zone_spread::normalize(c.zone_pods, max_zone)
            + NODE_SPREAD_WEIGHT * default_normalize(c.siblings, max_siblings, true)
            + LEAST_ALLOCATED_WEIGHT * c.least_allocated
    };
    let mut best: Option<(u64, usize)> = None;
    for c in candidates {
        let score = total(c);
        let better = match best {
            None => true,
            Some((s, i)) => score > s || (score == s && nodes[c.node].info.name < nodes[i].info.name),
        };
        if better {
            best = Some((score, c.node));
        }
    }
    best.map(|(_, i)| i)
}

/// Kubernetes' `DefaultNormalizeScore`: scales so the largest becomes 100;
/// `reverse` makes the largest 0 instead. All zero: 0, or 100 when reversed.
pub(crate) fn default_normalize(score: u64, max: u64, reverse: bool) -> u64 {
    if max == 0 {
        return if reverse { MAX_SCORE } else { score };
    }
    let scaled = MAX_SCORE * score / max;
    if reverse {
        MAX_SCORE - scaled
    } else {
        scaled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tests::node;

    fn cand(node: usize, least_allocated: u64, zone_pods: Option<u64>, intolerable: u64, preferred: u64) -> Candidate {
        Candidate {
            node,
            least_allocated,
            zone_pods,
            siblings: 0,
            intolerable,
            preferred,
        }
    }

    #[test]
    fn normalisation_matches_kubernetes() {
        assert_eq!(default_normalize(3, 4, false), 75);
        assert_eq!(default_normalize(3, 4, true), 25);
        assert_eq!(default_normalize(0, 0, false), 0);
        assert_eq!(default_normalize(0, 0, true), 100);
        assert_eq!(default_normalize(1, 3, false), 33);
    }

    #[test]
    fn ties_go_to_the_smallest_name() {
        let infos = [node("c"), node("a"), node("b")];
        let views: Vec<_> = infos.iter().map(|n| NodeView::new(n, None)).collect();
        let all: Vec<_> = (0..3).map(|i| cand(i, 50, None, 0, 0)).collect();
        assert_eq!(best(&all, &views), Some(1));
        assert_eq!(best(&[all[0], all[2]], &views), Some(2));
        assert_eq!(best(&[], &views), None);
    }

    #[test]
    fn weights_rank_taints_then_affinity_and_spread_then_fullness() {
        let infos = [node("a"), node("b")];
        let views: Vec<_> = infos.iter().map(|n| NodeView::new(n, None)).collect();
        // "a" is emptier but has an untolerated PreferNoSchedule taint: 3×100 > 1×100.
        assert_eq!(best(&[cand(0, 100, None, 1, 0), cand(1, 0, None, 0, 0)], &views), Some(1));
        // "a" is emptier, "b" matches a preference: 2×100 > 1×100.
        assert_eq!(best(&[cand(0, 100, None, 0, 0), cand(1, 0, None, 0, 5)], &views), Some(1));
        // "a"'s zone is fuller: 2×100 > 1×60.
        assert_eq!(best(&[cand(0, 60, Some(4), 0, 0), cand(1, 0, Some(0), 0, 0)], &views), Some(1));
    }
}

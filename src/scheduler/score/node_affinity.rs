//! Preferred node affinity (Kubernetes' NodeAffinity score): the sum of the
//! weights of the preferred terms a node matches, scaled so the best
//! candidate scores 100.

use super::default_normalize;
use crate::api::manifest::PodSpec;
use crate::scheduler::filter::affinity::term_matches;
use crate::scheduler::NodeInfo;

/// Sum of the weights of the matching preferred terms; empty terms never match.
pub(crate) fn raw(spec: &PodSpec, node: &NodeInfo) -> u64 {
    let terms = spec.preferred_node_terms().iter();
    terms
        .filter(|p| p.weight > 0 && term_matches(&p.preference, node))
        .map(|p| p.weight as u64)
        .sum()
}

/// 0–100 relative to the best candidate; all 0 when no candidate matches.
pub(crate) fn normalize(weight: u64, max: u64) -> u64 {
    default_normalize(weight, max, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tests::{node, spec_with};

    #[test]
    fn matching_terms_add_their_weights() {
        let spec = spec_with(
            "affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [
               {weight: 30, preference: {matchExpressions: [{key: disk, operator: In, values: [ssd]}]}},
               {weight: 20, preference: {matchExpressions: [{key: zone, operator: Exists}]}},
               {weight: 50, preference: {}}]}}",
        );
        let mut n = node("a");
        assert_eq!(raw(&spec, &n), 0);
        n.labels.insert("zone".into(), "x".into());
        assert_eq!(raw(&spec, &n), 20);
        n.labels.insert("disk".into(), "ssd".into());
        assert_eq!(raw(&spec, &n), 50);
        assert_eq!((normalize(20, 50), normalize(0, 0)), (40, 0));
    }
}

//! PreferNoSchedule taints (Kubernetes' TaintToleration score): the more of
//! them a node has that the pod does not tolerate, the lower it scores.

use super::default_normalize;
use crate::api::manifest::PodSpec;
use crate::scheduler::filter::taints::tolerated;
use crate::scheduler::{NodeInfo, TaintEffect};

/// How many of the node's PreferNoSchedule taints the pod does not tolerate.
pub(crate) fn raw(spec: &PodSpec, node: &NodeInfo) -> u64 {
    let soft = node.taints.iter().filter(|t| t.effect == TaintEffect::PreferNoSchedule);
    soft.filter(|t| !tolerated(&spec.tolerations, t)).count() as u64
}

/// 100 for no such taint, 0 for the most among the candidates.
pub(crate) fn normalize(count: u64, max: u64) -> u64 {
    default_normalize(count, max, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tests::{node, spec_with, taint};

    #[test]
    fn counts_untolerated_prefer_no_schedule_taints_only() {
        let mut n = node("a");
        n.taints = vec![
            taint("soft", "1", TaintEffect::PreferNoSchedule),
            taint("soft2", "", TaintEffect::PreferNoSchedule),
            taint("hard", "", TaintEffect::NoSchedule),
        ];
        assert_eq!(raw(&spec_with(""), &n), 2);
        assert_eq!(raw(&spec_with("tolerations: [{key: soft, value: '1'}]"), &n), 1);
        let wrong_effect = "tolerations: [{key: soft, value: '1', effect: NoSchedule}]";
        assert_eq!(raw(&spec_with(wrong_effect), &n), 2);
        assert_eq!(raw(&spec_with("tolerations: [{operator: Exists}]"), &n), 0);
        assert_eq!((normalize(0, 2), normalize(1, 2), normalize(2, 2)), (100, 50, 0));
    }
}

//! Node state: cordoned nodes take no new pods, and a node that is not ready
//! carries Kubernetes' not-ready taints for the taint filter.

use super::taints::tolerates;
use super::Failure;
use crate::api::manifest::PodSpec;
use crate::scheduler::{NodeInfo, Taint, TaintEffect};
use std::sync::LazyLock;

/// The taint Kubernetes puts on a cordoned node; tolerating it lets a pod on.
pub(crate) const UNSCHEDULABLE_KEY: &str = "node.kubernetes.io/unschedulable";
/// The taint key Kubernetes puts on a node whose Ready condition is false.
pub(crate) const NOT_READY_KEY: &str = "node.kubernetes.io/not-ready";

/// The node lifecycle controller adds both: NoSchedule keeps new pods off,
/// NoExecute evicts running ones. Tolerating the NoExecute one alone (as
/// Kubernetes' default 300 s toleration does) is not enough to be placed.
static NOT_READY: LazyLock<[Taint; 2]> = LazyLock::new(|| {
    [TaintEffect::NoSchedule, TaintEffect::NoExecute].map(|effect| Taint {
        key: NOT_READY_KEY.into(),
        value: String::new(),
        effect,
    })
});

/// Kubernetes' NodeUnschedulable filter.
pub(crate) fn check(spec: &PodSpec, node: &NodeInfo) -> Result<(), Failure<'static>> {
    if !node.cordoned {
        return Ok(());
    }
    let tolerated = spec
        .tolerations
        .iter()
        .any(|t| tolerates(t, UNSCHEDULABLE_KEY, "", TaintEffect::NoSchedule));
    if tolerated {
        Ok(())
    } else {
        Err(Failure::Unschedulable)
    }
}

/// The taints a node has from its conditions: the not-ready ones, or none.
pub(crate) fn condition_taints(node: &NodeInfo) -> &'static [Taint] {
    if node.ready {
        &[]
    } else {
        NOT_READY.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tests::{node, spec_with};

    #[test]
    fn cordoned_nodes_are_refused() {
        let mut n = node("a");
        assert_eq!(check(&spec_with(""), &n), Ok(()));
        n.cordoned = true;
        assert_eq!(check(&spec_with(""), &n), Err(Failure::Unschedulable));
    }

    #[test]
    fn tolerating_the_unschedulable_taint_gets_on_a_cordoned_node() {
        let mut n = node("a");
        n.cordoned = true;
        for t in [
            "tolerations: [{key: node.kubernetes.io/unschedulable, operator: Exists, effect: NoSchedule}]",
            "tolerations: [{operator: Exists}]",
        ] {
            assert_eq!(check(&spec_with(t), &n), Ok(()), "{t}");
        }
        let wrong_effect = "tolerations: [{key: node.kubernetes.io/unschedulable, operator: Exists, effect: NoExecute}]";
        assert_eq!(check(&spec_with(wrong_effect), &n), Err(Failure::Unschedulable));
    }

    #[test]
    fn not_ready_nodes_carry_both_not_ready_taints() {
        let mut n = node("a");
        assert!(condition_taints(&n).is_empty());
        n.ready = false;
        let effects: Vec<_> = condition_taints(&n).iter().map(|t| (t.key.as_str(), t.effect)).collect();
        assert_eq!(
            effects,
            [(NOT_READY_KEY, TaintEffect::NoSchedule), (NOT_READY_KEY, TaintEffect::NoExecute)]
        );
    }
}

//! Taints and tolerations: a node's NoSchedule and NoExecute taints keep off
//! every pod that does not tolerate them (Kubernetes' TaintToleration filter).

use super::Failure;
use crate::api::manifest::{PodSpec, Toleration, TolerationOperator};
use crate::scheduler::pipeline::NodeView;
use crate::scheduler::{Taint, TaintEffect};

/// Kubernetes' `Toleration.ToleratesTaint`: an empty effect matches every
/// effect, an empty key (operator Exists) every key; Exists matches any
/// value, Equal the same value.
pub(crate) fn tolerates(t: &Toleration, key: &str, value: &str, effect: TaintEffect) -> bool {
    if t.effect.is_some_and(|e| e != effect) || (!t.key.is_empty() && t.key != key) {
        return false;
    }
    match t.operator {
        TolerationOperator::Exists => true,
        TolerationOperator::Equal => t.value == value,
    }
}

/// Whether any of the tolerations tolerates the taint.
pub(crate) fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, &taint.key, &taint.value, taint.effect))
}

/// Fails with the node's first NoSchedule or NoExecute taint the pod does not tolerate.
pub(crate) fn check<'a>(spec: &PodSpec, node: &NodeView<'a>) -> Result<(), Failure<'a>> {
    let blocks = |t: &&Taint| matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute);
    match node.taints().filter(blocks).find(|t| !tolerated(&spec.tolerations, t)) {
        Some(taint) => Err(Failure::Taint(taint)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tests::{node, spec_with, taint};

    #[test]
    fn toleration_matching_follows_kubernetes() {
        let t = |yaml: &str| -> Toleration { serde_yaml_ng::from_str(yaml).unwrap() };
        let ns = TaintEffect::NoSchedule;
        assert!(tolerates(&t("{key: k, value: v}"), "k", "v", ns));
        assert!(!tolerates(&t("{key: k, value: v}"), "k", "w", ns));
        assert!(!tolerates(&t("{key: k, value: v}"), "j", "v", ns));
        assert!(tolerates(&t("{key: k, operator: Exists}"), "k", "anything", TaintEffect::NoExecute));
        assert!(tolerates(&t("{operator: Exists}"), "any", "thing", ns));
        assert!(!tolerates(&t("{key: k, operator: Exists, effect: NoExecute}"), "k", "", ns));
        assert!(tolerates(&t("{key: k, operator: Exists, effect: NoSchedule}"), "k", "", ns));
    }

    #[test]
    fn first_untolerated_blocking_taint_is_reported() {
        let mut n = node("a");
        n.taints = vec![
            taint("soft", "x", TaintEffect::PreferNoSchedule),
            taint("dedicated", "gpu", TaintEffect::NoSchedule),
            taint("evict", "", TaintEffect::NoExecute),
        ];
        let view = NodeView::new(&n, None);
        assert_eq!(check(&spec_with(""), &view), Err(Failure::Taint(&n.taints[1])));
        let gpu = "tolerations: [{key: dedicated, value: gpu}]";
        assert_eq!(check(&spec_with(gpu), &view), Err(Failure::Taint(&n.taints[2])));
        let both = "tolerations: [{key: dedicated, value: gpu}, {key: evict, operator: Exists}]";
        assert_eq!(check(&spec_with(both), &view), Ok(()));
    }

    #[test]
    fn not_ready_node_needs_the_not_ready_tolerations() {
        let mut n = node("a");
        n.ready = false;
        let view = NodeView::new(&n, None);
        match check(&spec_with(""), &view) {
            Err(Failure::Taint(t)) => assert_eq!(
                (t.key.as_str(), t.effect),
                ("node.kubernetes.io/not-ready", TaintEffect::NoSchedule)
            ),
            other => panic!("{other:?}"),
        }
        // Kubernetes' default toleration (NoExecute for 300 s) does not get a pod placed.
        let default = "tolerations: [{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 300}]";
        assert!(check(&spec_with(default), &view).is_err());
        let all = "tolerations: [{key: node.kubernetes.io/not-ready, operator: Exists}]";
        assert_eq!(check(&spec_with(all), &view), Ok(()));
    }
}

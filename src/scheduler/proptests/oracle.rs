//! The oracle: Kubernetes' placement rules restated naively, apart from the
//! filters, for the property tests to check the scheduler against.

use crate::api::manifest::{NodeSelectorOperator as Op, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, TolerationOperator};
use crate::scheduler::{NodeInfo, TaintEffect};

/// The toleration rule restated: effect, key, then value by operator.
fn tolerated(spec: &PodSpec, key: &str, value: &str, effect: TaintEffect) -> bool {
    spec.tolerations.iter().any(|t| {
        let effect_ok = t.effect.is_none() || t.effect == Some(effect);
        let key_ok = t.key.is_empty() || t.key == key;
        let value_ok = t.operator == TolerationOperator::Exists || t.value == value;
        effect_ok && key_ok && value_ok
    })
}

fn requirement_holds(r: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let int = |v: Option<&String>| v.and_then(|v| v.parse::<i64>().ok());
    match (r.operator, value) {
        (Op::In, Some(v)) => r.values.contains(v),
        (Op::In, None) => false,
        (Op::NotIn, v) => v.is_none_or(|v| !r.values.contains(v)),
        (Op::Exists, v) => v.is_some(),
        (Op::DoesNotExist, v) => v.is_none(),
        (Op::Gt, v) => matches!((int(v), int(r.values.first())), (Some(a), Some(b)) if a > b),
        (Op::Lt, v) => matches!((int(v), int(r.values.first())), (Some(a), Some(b)) if a < b),
    }
}

/// Every filter restated: where the scheduler may put a pod without `nodeName`.
pub(super) fn allowed(spec: &PodSpec, n: &NodeInfo) -> bool {
    if n.cordoned && !tolerated(spec, "node.kubernetes.io/unschedulable", "", TaintEffect::NoSchedule) {
        return false;
    }
    let not_ready =
        [TaintEffect::NoSchedule, TaintEffect::NoExecute].map(|e| ("node.kubernetes.io/not-ready".to_string(), String::new(), e));
    let own = n.taints.iter().map(|t| (t.key.clone(), t.value.clone(), t.effect));
    let mut taints = own.chain(not_ready.into_iter().filter(|_| !n.ready));
    if taints.any(|(k, v, e)| e != TaintEffect::PreferNoSchedule && !tolerated(spec, &k, &v, e)) {
        return false;
    }
    let selector_ok = spec.node_selector.iter().all(|(k, v)| n.labels.get(k) == Some(v));
    let term_ok = |t: &NodeSelectorTerm| {
        !(t.match_expressions.is_empty() && t.match_fields.is_empty())
            && t.match_expressions.iter().all(|r| requirement_holds(r, n.labels.get(&r.key)))
            && t.match_fields
                .iter()
                .all(|r| r.key == "metadata.name" && requirement_holds(r, Some(&n.name)))
    };
    let affinity_ok = spec
        .required_node_selector()
        .is_none_or(|sel| sel.node_selector_terms.iter().any(term_ok));
    selector_ok && affinity_ok
}

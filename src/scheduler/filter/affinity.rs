//! Required node affinity, and the term matching that preferred affinity
//! scores with. Terms are ORed, requirements within a term ANDed, and an
//! empty term matches nothing, as in Kubernetes.
//!
//! One difference: Kubernetes' PreFilter narrows the nodes up front when
//! every term names nodes by `metadata.name`, and reports the others as
//! "didn't satisfy plugin(s) [NodeAffinity]"; here they are reported as not
//! matching the affinity.

use crate::api::manifest::{NodeSelectorOperator as Op, NodeSelectorRequirement, NodeSelectorTerm, PodSpec};
use crate::scheduler::NodeInfo;

/// The only field `matchFields` can name.
const NAME_FIELD: &str = "metadata.name";

/// True when the pod has no required node affinity or the node matches one of its terms.
pub(crate) fn required_matches(spec: &PodSpec, node: &NodeInfo) -> bool {
    spec.required_node_selector()
        .is_none_or(|s| s.node_selector_terms.iter().any(|t| term_matches(t, node)))
}

/// True when the term is not empty and the node meets all its requirements.
pub(crate) fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        return false;
    }
    term.match_expressions.iter().all(|r| expression_matches(r, node)) && term.match_fields.iter().all(|r| field_matches(r, node))
}

/// Kubernetes' `labels.Requirement.Matches`.
fn expression_matches(r: &NodeSelectorRequirement, node: &NodeInfo) -> bool {
    let label = node.labels.get(&r.key);
    let listed = |v: &String| r.values.contains(v);
    match r.operator {
        Op::In => label.is_some_and(listed),
        Op::NotIn => !label.is_some_and(listed),
        Op::Exists => label.is_some(),
        Op::DoesNotExist => label.is_none(),
        Op::Gt | Op::Lt => {
            let (Some(have), [want]) = (label.and_then(|l| l.parse::<i64>().ok()), r.values.as_slice()) else {
                return false;
            };
            match want.parse::<i64>() {
                Ok(want) if r.operator == Op::Gt => have > want,
                Ok(want) => have < want,
                Err(_) => false,
            }
        }
    }
}

/// `metadata.name` with In or NotIn; anything else matches nothing.
fn field_matches(r: &NodeSelectorRequirement, node: &NodeInfo) -> bool {
    let listed = r.values.contains(&node.name);
    match r.operator {
        _ if r.key != NAME_FIELD => false,
        Op::In => listed,
        Op::NotIn => !listed,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tests::{node, spec_with};

    fn required(terms: &str) -> PodSpec {
        spec_with(&format!(
            "affinity: {{nodeAffinity: {{requiredDuringSchedulingIgnoredDuringExecution: {{nodeSelectorTerms: [{terms}]}}}}}}"
        ))
    }

    fn labelled() -> NodeInfo {
        let mut n = node("edge-1");
        n.labels = [("zone", "a"), ("cores", "8")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        n
    }

    #[test]
    fn each_operator_matches_as_in_kubernetes() {
        let n = labelled();
        let expr = |e: &str| required(&format!("{{matchExpressions: [{e}]}}"));
        for (e, want) in [
            ("{key: zone, operator: In, values: [a, b]}", true),
            ("{key: zone, operator: In, values: [b]}", false),
            ("{key: gpu, operator: In, values: [a]}", false),
            ("{key: zone, operator: NotIn, values: [b]}", true),
            ("{key: zone, operator: NotIn, values: [a]}", false),
            ("{key: gpu, operator: NotIn, values: [a]}", true),
            ("{key: zone, operator: Exists}", true),
            ("{key: gpu, operator: Exists}", false),
            ("{key: gpu, operator: DoesNotExist}", true),
            ("{key: zone, operator: DoesNotExist}", false),
            ("{key: cores, operator: Gt, values: ['4']}", true),
            ("{key: cores, operator: Gt, values: ['8']}", false),
            ("{key: cores, operator: Lt, values: ['16']}", true),
            ("{key: cores, operator: Lt, values: ['-1']}", false),
            ("{key: zone, operator: Gt, values: ['1']}", false),
            ("{key: gpu, operator: Lt, values: ['1']}", false),
        ] {
            assert_eq!(required_matches(&expr(e), &n), want, "{e}");
        }
    }

    #[test]
    fn terms_are_ored_and_expressions_anded() {
        let n = labelled();
        let both = "{key: zone, operator: In, values: [a]}, {key: cores, operator: Gt, values: ['10']}";
        assert!(!required_matches(&required(&format!("{{matchExpressions: [{both}]}}")), &n));
        let either = "{matchExpressions: [{key: zone, operator: In, values: [b]}]}, {matchExpressions: [{key: cores, operator: Exists}]}";
        assert!(required_matches(&required(either), &n));
        assert!(required_matches(&spec_with(""), &n));
    }

    #[test]
    fn empty_term_matches_nothing() {
        assert!(!required_matches(&required("{}"), &labelled()));
        assert!(required_matches(
            &required("{}, {matchExpressions: [{key: zone, operator: Exists}]}"),
            &labelled()
        ));
    }

    #[test]
    fn match_fields_compare_the_node_name() {
        let n = labelled();
        let field = |op: &str, v: &str| required(&format!("{{matchFields: [{{key: metadata.name, operator: {op}, values: [{v}]}}]}}"));
        assert!(required_matches(&field("In", "edge-1"), &n));
        assert!(!required_matches(&field("In", "edge-2"), &n));
        assert!(required_matches(&field("NotIn", "edge-2"), &n));
        assert!(!required_matches(&field("NotIn", "edge-1"), &n));
        let other_key = required("{matchFields: [{key: metadata.uid, operator: In, values: [edge-1]}]}");
        assert!(!required_matches(&other_key, &n));
    }
}

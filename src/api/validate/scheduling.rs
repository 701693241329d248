//! Checks on `nodeName`, `affinity` and `tolerations`, with Kubernetes' rules
//! (`ValidateNodeSelectorRequirement`, `ValidateTolerations`).

use super::{dns_subdomain, label_key, label_value};
use crate::api::manifest::{NodeSelectorOperator as Op, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, TaintEffect};
use crate::api::manifest::{Toleration, TolerationOperator, WhenUnsatisfiable};

/// Reports each problem as (`spec.…` field path, reason).
pub(super) fn validate_scheduling(spec: &PodSpec, bad: &mut impl FnMut(String, String)) {
    if let Some(node) = spec.bound_node() {
        if let Err(why) = dns_subdomain(node) {
            bad("spec.nodeName".into(), why);
        }
    }
    if let Some(required) = spec.required_node_selector() {
        let field = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms";
        if required.node_selector_terms.is_empty() {
            bad(field.into(), "must have at least one node selector term".into());
        }
        for (i, term) in required.node_selector_terms.iter().enumerate() {
            term_problems(term, &format!("{field}[{i}]"), bad);
        }
    }
    for (i, p) in spec.preferred_node_terms().iter().enumerate() {
        let field = format!("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
        if !(1..=100).contains(&p.weight) {
            bad(format!("{field}.weight"), format!("{} must be in the range 1-100", p.weight));
        }
        term_problems(&p.preference, &format!("{field}.preference"), bad);
    }
    for (i, t) in spec.tolerations.iter().enumerate() {
        for (sub, why) in toleration_problems(t) {
            bad(format!("spec.tolerations[{i}].{sub}"), why);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, c) in spec.topology_spread_constraints.iter().enumerate() {
        let field = format!("spec.topologySpreadConstraints[{i}]");
        if c.max_skew < 1 {
            bad(format!("{field}.maxSkew"), format!("{} must be greater than zero", c.max_skew));
        }
        if let Err(why) = label_key(&c.topology_key) {
            bad(format!("{field}.topologyKey"), why);
        }
        if !seen.insert((c.topology_key.clone(), c.when_unsatisfiable)) {
            bad(field.clone(), "duplicate pair of topologyKey and whenUnsatisfiable".into());
        }
        if let Some(m) = c.min_domains {
            if m < 1 {
                bad(format!("{field}.minDomains"), format!("{m} must be greater than zero"));
            } else if c.when_unsatisfiable != WhenUnsatisfiable::DoNotSchedule {
                bad(
                    format!("{field}.minDomains"),
                    "can only use minDomains if whenUnsatisfiable=DoNotSchedule".into(),
                );
            }
        }
        for (name, v) in [
            ("nodeAffinityPolicy", &c.node_affinity_policy),
            ("nodeTaintsPolicy", &c.node_taints_policy),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !matches!(*v, "Honor" | "Ignore")) {
                bad(
                    format!("{field}.{name}"),
                    format!("Unsupported value: {v:?}: supported values: \"Honor\", \"Ignore\""),
                );
            }
        }
        for k in &c.match_label_keys {
            if let Err(why) = label_key(k) {
                bad(format!("{field}.matchLabelKeys"), why);
            }
            if c.label_selector.as_ref().is_some_and(|s| s.match_labels.contains_key(k)) {
                bad(
                    format!("{field}.matchLabelKeys"),
                    format!("{k:?} exists in both matchLabelKeys and labelSelector"),
                );
            }
        }
    }
}

fn term_problems(term: &NodeSelectorTerm, field: &str, bad: &mut impl FnMut(String, String)) {
    for (j, r) in term.match_expressions.iter().enumerate() {
        for (sub, why) in expression_problems(r) {
            bad(format!("{field}.matchExpressions[{j}].{sub}"), why);
        }
    }
    for (j, r) in term.match_fields.iter().enumerate() {
        for (sub, why) in field_problems(r) {
            bad(format!("{field}.matchFields[{j}].{sub}"), why);
        }
    }
}

/// A label requirement: the values each operator needs or forbids.
fn expression_problems(r: &NodeSelectorRequirement) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Err(why) = label_key(&r.key) {
        out.push(("key", why));
    }
    match r.operator {
        Op::In | Op::NotIn => {
            if r.values.is_empty() {
                out.push(("values", "must be specified when `operator` is 'In' or 'NotIn'".into()));
            }
            for v in &r.values {
                if let Err(why) = label_value(v) {
                    out.push(("values", why));
                }
            }
        }
        Op::Exists | Op::DoesNotExist => {
            if !r.values.is_empty() {
                out.push((
                    "values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'".into(),
                ));
            }
        }
        Op::Gt | Op::Lt => match r.values.as_slice() {
            [v] if v.parse::<i64>().is_ok() => {}
            [v] => out.push(("values", format!("{v:?} must be an integer for 'Gt' or 'Lt'"))),
            _ => out.push(("values", "must be specified single value when `operator` is 'Lt' or 'Gt'".into())),
        },
    }
    out
}

/// A field requirement: `metadata.name` with In or NotIn and one value.
fn field_problems(r: &NodeSelectorRequirement) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if r.key != "metadata.name" {
        out.push(("key", format!("{:?} is not supported (supported: \"metadata.name\")", r.key)));
    }
    if !matches!(r.operator, Op::In | Op::NotIn) {
        out.push((
            "operator",
            format!("{:?} is not supported for a field (use In or NotIn)", r.operator),
        ));
    } else if r.values.len() != 1 {
        out.push((
            "values",
            "must be only one value when `operator` is 'In' or 'NotIn' for node field selector".into(),
        ));
    }
    out
}

fn toleration_problems(t: &Toleration) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if !t.key.is_empty() {
        if let Err(why) = label_key(&t.key) {
            out.push(("key", why));
        }
    } else if t.operator != TolerationOperator::Exists {
        out.push((
            "operator",
            "must be Exists when `key` is empty, which means \"match all values and all keys\"".into(),
        ));
    }
    if t.toleration_seconds.is_some() && t.effect != Some(TaintEffect::NoExecute) {
        out.push(("effect", "must be 'NoExecute' when `tolerationSeconds` is set".into()));
    }
    match t.operator {
        TolerationOperator::Equal => {
            if let Err(why) = label_value(&t.value) {
                out.push(("value", why));
            }
        }
        TolerationOperator::Exists => {
            if !t.value.is_empty() {
                out.push(("value", "must be empty when `operator` is 'Exists'".into()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let spec: PodSpec = serde_yaml_ng::from_str(&format!("containers: []\n{yaml}")).unwrap();
        let mut out = Vec::new();
        validate_scheduling(&spec, &mut |f, why| out.push(format!("{f}: {why}")));
        out
    }

    fn required(expr: &str) -> String {
        format!(
            "affinity:\n  nodeAffinity:\n    requiredDuringSchedulingIgnoredDuringExecution:\n      nodeSelectorTerms:\n      - matchExpressions: [{expr}]\n"
        )
    }

    #[test]
    fn operators_need_or_forbid_values() {
        assert!(problems(&required("{key: zone, operator: In, values: [a, b]}")).is_empty());
        assert!(problems(&required("{key: zone, operator: Exists}")).is_empty());
        assert!(problems(&required("{key: cores, operator: Gt, values: ['4']}")).is_empty());
        for (expr, want) in [
            ("{key: zone, operator: In}", "must be specified"),
            ("{key: zone, operator: NotIn, values: []}", "must be specified"),
            ("{key: zone, operator: Exists, values: [a]}", "may not be specified"),
            ("{key: zone, operator: DoesNotExist, values: [a]}", "may not be specified"),
            ("{key: cores, operator: Gt, values: ['1', '2']}", "single value"),
            ("{key: cores, operator: Lt}", "single value"),
            ("{key: cores, operator: Lt, values: [four]}", "must be an integer"),
            ("{key: 'bad key', operator: Exists}", "not a valid key"),
        ] {
            let p = problems(&required(expr));
            assert!(p.len() == 1 && p[0].contains(want), "{expr}: {p:?}");
            assert!(p[0].contains("nodeSelectorTerms[0].matchExpressions[0]"), "{p:?}");
        }
    }

    #[test]
    fn match_fields_take_metadata_name_with_one_value() {
        let term = |f: &str| required("").replace("matchExpressions: []", &format!("matchFields: [{f}]"));
        assert!(problems(&term("{key: metadata.name, operator: In, values: [n1]}")).is_empty());
        assert!(problems(&term("{key: metadata.uid, operator: In, values: [n1]}"))[0].contains("metadata.name"));
        assert!(problems(&term("{key: metadata.name, operator: In, values: [a, b]}"))[0].contains("only one value"));
        assert!(problems(&term("{key: metadata.name, operator: Exists}"))[0].contains("In or NotIn"));
    }

    #[test]
    fn required_needs_a_term_and_weights_are_1_to_100() {
        let empty = "affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: []}}}";
        assert!(problems(empty)[0].contains("at least one node selector term"));
        let pref = |w: i32| {
            format!("affinity: {{nodeAffinity: {{preferredDuringSchedulingIgnoredDuringExecution: [{{weight: {w}, preference: {{}}}}]}}}}")
        };
        assert!(problems(&pref(100)).is_empty());
        for w in [0, 101, -1] {
            assert!(problems(&pref(w))[0].contains("].weight: "), "{w}");
        }
    }

    #[test]
    fn tolerations_follow_kubernetes_rules() {
        for ok in [
            "{operator: Exists}",
            "{key: k, operator: Exists, effect: NoSchedule}",
            "{key: k, value: v}",
            "{key: k, operator: Equal, value: v, effect: NoExecute, tolerationSeconds: 30}",
        ] {
            assert!(problems(&format!("tolerations: [{ok}]")).is_empty(), "{ok}");
        }
        for (bad, want) in [
            ("{key: k, operator: Exists, value: v}", "value: must be empty"),
            ("{value: v}", "operator: must be Exists when `key` is empty"),
            ("{key: k, tolerationSeconds: 5}", "effect: must be 'NoExecute'"),
            ("{key: k, value: 'a b'}", "value: value \"a b\" is not valid"),
            ("{key: '-k', operator: Exists}", "key: "),
        ] {
            let p = problems(&format!("tolerations: [{bad}]"));
            assert!(p.len() == 1 && p[0].contains(want), "{bad}: {p:?}");
        }
    }

    #[test]
    fn node_name_is_a_dns_subdomain() {
        assert!(problems("nodeName: edge-1.lan").is_empty());
        assert!(problems("nodeName: ''").is_empty());
        assert!(problems("nodeName: Edge_1")[0].starts_with("spec.nodeName: "));
    }
}

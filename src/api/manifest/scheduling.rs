//! The scheduling fields of a PodSpec: node affinity and tolerations.
//!
//! Names and meanings are Kubernetes' (`core/v1` `Affinity`, `Toleration`).
//! Of `affinity` only `nodeAffinity` is supported; `podAffinity` and
//! `podAntiAffinity` are refused by name, like every other unknown field.

use serde::de::{Deserializer, IntoDeserializer};
use serde::{Deserialize, Serialize};

/// Scheduling constraints of a pod; Shoal implements node affinity only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Affinity {
    /// Rules on the labels and name of the node the pod runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<NodeAffinity>,
}

/// Node affinity: what a node must match, and what it is preferred to match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeAffinity {
    /// A node must match one of these terms for the pod to be placed on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
    /// Each term a node matches adds its weight to the node's score.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_during_scheduling_ignored_during_execution: Vec<PreferredSchedulingTerm>,
}

/// A set of terms, ORed: a node matches when it matches any one of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelector {
    /// At least one term; an empty term matches no node.
    #[serde(default)]
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

/// Requirements, ANDed: a node matches when it meets every one of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelectorTerm {
    /// Requirements on the node's labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<NodeSelectorRequirement>,
    /// Requirements on the node's fields; only `metadata.name` is supported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_fields: Vec<NodeSelectorRequirement>,
}

/// One requirement: a key, an operator and the values it compares with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelectorRequirement {
    /// The label key (or, in `matchFields`, the field path).
    pub key: String,
    /// How the node's value is compared with `values`.
    pub operator: NodeSelectorOperator,
    /// One or more for In/NotIn, none for Exists/DoesNotExist, one integer for Gt/Lt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Operators of a node selector requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeSelectorOperator {
    /// The node has the key with one of the values.
    In,
    /// The node lacks the key, or its value is none of the values.
    NotIn,
    /// The node has the key.
    Exists,
    /// The node lacks the key.
    DoesNotExist,
    /// The node's value, as an integer, is greater than the one value.
    Gt,
    /// The node's value, as an integer, is less than the one value.
    Lt,
}

/// A weighted preference for nodes that match a term.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreferredSchedulingTerm {
    /// 1..=100, added to the score of every node that matches `preference`.
    pub weight: i32,
    /// The term a node must match to earn the weight; an empty term earns nothing.
    pub preference: NodeSelectorTerm,
}

/// Effect of a taint, and the effect a toleration applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TaintEffect {
    /// No new pod is placed unless it tolerates the taint.
    NoSchedule,
    /// The scheduler avoids the node for pods that do not tolerate the taint.
    PreferNoSchedule,
    /// As NoSchedule, and running pods that do not tolerate it are evicted.
    NoExecute,
}

/// How a toleration's value is compared with a taint's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TolerationOperator {
    /// Key and value must be equal (`""` means the same).
    #[default]
    #[serde(alias = "")]
    Equal,
    /// Any value; with an empty key, any taint.
    Exists,
}

impl TolerationOperator {
    fn is_equal(&self) -> bool {
        *self == TolerationOperator::Equal
    }
}

/// Lets the pod be placed on (or stay on) nodes with a matching taint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toleration {
    /// The taint key; empty with operator Exists matches every taint.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// `Equal` (default) or `Exists`.
    #[serde(default, skip_serializing_if = "TolerationOperator::is_equal")]
    pub operator: TolerationOperator,
    /// The taint value for `Equal`; must be empty for `Exists`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// The effect matched; absent or `""` matches all effects.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "empty_effect_is_all")]
    pub effect: Option<TaintEffect>,
    /// With effect NoExecute: how long the pod stays after the taint appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// How the pods matched by a selector spread over the values of a node
/// label (`topologySpreadConstraints`), as Kubernetes' PodTopologySpread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologySpreadConstraint {
    /// The largest difference allowed between the pods in one domain and the fewest in any.
    pub max_skew: i64,
    /// The node label whose values are the domains (`kubernetes.io/hostname`, `topology.kubernetes.io/zone`).
    pub topology_key: String,
    /// `DoNotSchedule` (a filter) or `ScheduleAnyway` (a preference).
    pub when_unsatisfiable: WhenUnsatisfiable,
    /// The pods counted; none counts none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<super::LabelSelector>,
    /// With DoNotSchedule: fewer eligible domains than this count as a global minimum of 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_domains: Option<i64>,
    /// Pod label keys whose values are added to the selector (as a rollout's `pod-template-hash`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_label_keys: Vec<String>,
    /// `Honor` (default): only nodes matching the pod's node selector and affinity are domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity_policy: Option<String>,
    /// `Ignore` (default) or `Honor`: leave out nodes whose taints the pod does not tolerate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_taints_policy: Option<String>,
}

/// What a constraint that cannot be met does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WhenUnsatisfiable {
    /// Keep the pod off nodes that would break the skew.
    DoNotSchedule,
    /// Prefer nodes that keep the skew small.
    ScheduleAnyway,
}

/// `effect: ""` means every effect, as in Kubernetes.
fn empty_effect_is_all<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TaintEffect>, D::Error> {
    match Option::<String>::deserialize(d)?.as_deref() {
        None | Some("") => Ok(None),
        Some(effect) => {
            let de: serde::de::value::StrDeserializer<'_, D::Error> = effect.into_deserializer();
            TaintEffect::deserialize(de).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toleration_defaults_follow_kubernetes() {
        let t: Toleration = serde_json::from_str(r#"{"key": "k", "value": "v"}"#).unwrap();
        assert_eq!((t.operator, t.effect), (TolerationOperator::Equal, None));
        let t: Toleration = serde_json::from_str(r#"{"operator": "", "effect": ""}"#).unwrap();
        assert_eq!((t.operator, t.effect), (TolerationOperator::Equal, None));
        let t: Toleration = serde_json::from_str(r#"{"operator": "Exists", "effect": "NoExecute"}"#).unwrap();
        assert_eq!((t.operator, t.effect), (TolerationOperator::Exists, Some(TaintEffect::NoExecute)));
    }

    #[test]
    fn unknown_effect_is_named() {
        let err = serde_json::from_str::<Toleration>(r#"{"effect": "Sometimes"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Sometimes") && err.contains("NoSchedule"), "{err}");
    }

    #[test]
    fn toleration_round_trips_without_defaults() {
        let t: Toleration = serde_json::from_str(r#"{"key": "k", "operator": "Equal", "value": "v", "effect": ""}"#).unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"key":"k","value":"v"}"#);
    }

    #[test]
    fn pod_affinity_is_refused_by_name() {
        let err = serde_json::from_str::<Affinity>(r#"{"podAffinity": {}}"#).unwrap_err().to_string();
        assert!(err.contains("unknown field `podAffinity`") && err.contains("nodeAffinity"), "{err}");
    }
}

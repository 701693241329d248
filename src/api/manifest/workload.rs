//! The workload kinds of `apps/v1`: Deployment, ReplicaSet and DaemonSet,
//! with the label selectors and pod templates they share.
//!
//! Names and meanings are Kubernetes' own. `status` is accepted on input (so
//! `get -o yaml` output applies again) and ignored: the cluster owns it.

use super::{ObjectMeta, PodSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A label query: `matchLabels` and `matchExpressions`, ANDed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Each key must carry exactly this value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Each requirement must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One requirement of a [`LabelSelector`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: LabelSelectorOperator,
    /// Non-empty for In/NotIn, empty for Exists/DoesNotExist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// How a requirement compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabelSelectorOperator {
    /// The value is one of `values`.
    In,
    /// The label is absent or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector. An empty selector matches
    /// everything (the caller refuses empty selectors where Kubernetes does).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let v = labels.get(&r.key);
                match r.operator {
                    LabelSelectorOperator::In => v.is_some_and(|v| r.values.contains(v)),
                    LabelSelectorOperator::NotIn => v.is_none_or(|v| !r.values.contains(v)),
                    LabelSelectorOperator::Exists => v.is_some(),
                    LabelSelectorOperator::DoesNotExist => v.is_none(),
                }
            })
    }

    /// True when it has no requirement at all.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// As kubectl prints it: `app=web,tier in (a,b)`.
    pub fn to_text(&self) -> String {
        let mut parts: Vec<String> = self.match_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for r in &self.match_expressions {
            parts.push(match r.operator {
                LabelSelectorOperator::In => format!("{} in ({})", r.key, r.values.join(",")),
                LabelSelectorOperator::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
                LabelSelectorOperator::Exists => r.key.clone(),
                LabelSelectorOperator::DoesNotExist => format!("!{}", r.key),
            });
        }
        parts.join(",")
    }
}

/// The pod a workload stamps out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodTemplateSpec {
    /// Labels and annotations of every pod (the name is generated).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The pod's spec.
    pub spec: PodSpec,
}

/// A count or a percentage (`1` or `"25%"`), as Kubernetes' IntOrString.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrPercent {
    /// An absolute count.
    Int(i64),
    /// `"N%"` of the replicas (a plain number in a string is refused).
    Str(String),
}

impl IntOrPercent {
    /// The count for `total` replicas; percentages round up or down as
    /// asked (Kubernetes rounds maxSurge up and maxUnavailable down).
    pub fn scaled(&self, total: i64, round_up: bool) -> Result<i64, String> {
        match self {
            IntOrPercent::Int(n) => Ok(*n),
            IntOrPercent::Str(s) => {
                let pct: i64 = s
                    .strip_suffix('%')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| format!("{s:?} must be an integer or a percentage such as \"25%\""))?;
                let x = total * pct;
                Ok(if round_up { (x + 99).div_euclid(100) } else { x.div_euclid(100) })
            }
        }
    }
}

/// apps/v1 Deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployment {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// Name, namespace, labels, annotations.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: DeploymentSpec,
    /// Owned by the cluster; ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// What a Deployment wants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentSpec {
    /// Desired pods; 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    /// Which pods it manages; must match the template's labels.
    pub selector: LabelSelector,
    /// The pod to run.
    pub template: PodTemplateSpec,
    /// How old pods give way to new ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<DeploymentStrategy>,
    /// Seconds a new pod must be Ready to count as available; 0 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i64>,
    /// Old ReplicaSets kept for rollback; 10 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i64>,
    /// Seconds without progress before the rollout is reported failed; 600 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i64>,
    /// A paused Deployment does not roll out template changes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

impl DeploymentSpec {
    /// `replicas`, 1 when absent.
    pub fn replicas(&self) -> i64 {
        self.replicas.unwrap_or(1)
    }

    /// `minReadySeconds` in ms.
    pub fn min_ready_ms(&self) -> u64 {
        self.min_ready_seconds.unwrap_or(0).max(0) as u64 * 1000
    }

    /// `progressDeadlineSeconds` in ms.
    pub fn progress_deadline_ms(&self) -> u64 {
        self.progress_deadline_seconds.unwrap_or(600).max(0) as u64 * 1000
    }

    /// `revisionHistoryLimit`.
    pub fn history_limit(&self) -> usize {
        self.revision_history_limit.unwrap_or(10).max(0) as usize
    }
}

/// A Deployment's strategy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentStrategy {
    /// `RollingUpdate` (default) or `Recreate`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<StrategyType>,
    /// Only with `RollingUpdate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,
}

/// Deployment strategy types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StrategyType {
    /// Replace pods a few at a time.
    RollingUpdate,
    /// Stop every old pod, then start the new ones.
    Recreate,
    /// DaemonSet only: replace a pod only when it is deleted.
    OnDelete,
}

/// Rolling-update limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingUpdate {
    /// Pods above `replicas` during the update; 25% when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrPercent>,
    /// Pods below `replicas` during the update; 25% when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrPercent>,
}

/// apps/v1 ReplicaSet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSet {
    /// `apps/v1`.
    pub api_version: String,
    /// `ReplicaSet`.
    pub kind: String,
    /// Name, namespace, labels, annotations, owner.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: ReplicaSetSpec,
    /// Owned by the cluster; ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// What a ReplicaSet wants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSetSpec {
    /// Desired pods; 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    /// Which pods it manages; must match the template's labels.
    pub selector: LabelSelector,
    /// The pod to run.
    pub template: PodTemplateSpec,
    /// Seconds a new pod must be Ready to count as available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i64>,
}

impl ReplicaSetSpec {
    /// `replicas`, 1 when absent.
    pub fn replicas(&self) -> i64 {
        self.replicas.unwrap_or(1)
    }
}

/// apps/v1 DaemonSet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSet {
    /// `apps/v1`.
    pub api_version: String,
    /// `DaemonSet`.
    pub kind: String,
    /// Name, namespace, labels, annotations.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: DaemonSetSpec,
    /// Owned by the cluster; ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// What a DaemonSet wants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSetSpec {
    /// Which pods it manages; must match the template's labels.
    pub selector: LabelSelector,
    /// The pod to run on each node.
    pub template: PodTemplateSpec,
    /// How pods are replaced when the template changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<DaemonSetUpdateStrategy>,
    /// Seconds a new pod must be Ready to count as available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i64>,
    /// Old revisions kept; accepted, Shoal keeps none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i64>,
}

/// A DaemonSet's update strategy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSetUpdateStrategy {
    /// `RollingUpdate` (default) or `OnDelete`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<StrategyType>,
    /// Only with `RollingUpdate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,
}

/// A reference from a dependent to the object that owns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerReference {
    /// `apps/v1`.
    pub api_version: String,
    /// `ReplicaSet`, `Deployment`, `DaemonSet`.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// The owner's uid.
    pub uid: String,
    /// The managing controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    /// Foreground deletion waits for this dependent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

/// A workload manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Workload {
    /// apps/v1 Deployment.
    Deployment(Deployment),
    /// apps/v1 ReplicaSet.
    ReplicaSet(ReplicaSet),
    /// apps/v1 DaemonSet.
    DaemonSet(DaemonSet),
}

/// The three kinds, as their table column and CLI names say them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// Deployment.
    Deployment,
    /// ReplicaSet.
    ReplicaSet,
    /// DaemonSet.
    DaemonSet,
}

impl Kind {
    /// `Deployment`, `ReplicaSet`, `DaemonSet`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::DaemonSet => "DaemonSet",
        }
    }

    /// `deployment`, `replicaset`, `daemonset` (object names in events).
    pub fn lower(self) -> &'static str {
        match self {
            Kind::Deployment => "deployment",
            Kind::ReplicaSet => "replicaset",
            Kind::DaemonSet => "daemonset",
        }
    }

    /// From `Deployment` (the column).
    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Deployment, Kind::ReplicaSet, Kind::DaemonSet]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl Workload {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Workload::Deployment(_) => Kind::Deployment,
            Workload::ReplicaSet(_) => Kind::ReplicaSet,
            Workload::DaemonSet(_) => Kind::DaemonSet,
        }
    }

    /// Its metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Workload::Deployment(d) => &d.metadata,
            Workload::ReplicaSet(r) => &r.metadata,
            Workload::DaemonSet(d) => &d.metadata,
        }
    }

    /// Its metadata, to change.
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Workload::Deployment(d) => &mut d.metadata,
            Workload::ReplicaSet(r) => &mut r.metadata,
            Workload::DaemonSet(d) => &mut d.metadata,
        }
    }

    /// The spec as JSON, to tell a spec change from a metadata change.
    pub fn spec_json(&self) -> serde_json::Value {
        match self {
            Workload::Deployment(d) => serde_json::to_value(&d.spec),
            Workload::ReplicaSet(r) => serde_json::to_value(&r.spec),
            Workload::DaemonSet(d) => serde_json::to_value(&d.spec),
        }
        .expect("plain struct")
    }

    /// Drops what the cluster owns (`status`), as an apply does.
    pub fn without_status(mut self) -> Workload {
        match &mut self {
            Workload::Deployment(d) => d.status = None,
            Workload::ReplicaSet(r) => r.status = None,
            Workload::DaemonSet(d) => d.status = None,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn selector_ands_labels_and_expressions() {
        let s = LabelSelector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: LabelSelectorOperator::In,
                    values: vec!["a".into(), "b".into()],
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: LabelSelectorOperator::DoesNotExist,
                    values: vec![],
                },
            ],
        };
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "b")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "c")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "a"), ("canary", "1")])));
        assert!(!s.matches(&labels(&[("tier", "a")])));
        assert_eq!(s.to_text(), "app=web,tier in (a,b),!canary");
    }

    #[test]
    fn percentages_round_as_kubernetes() {
        let p = IntOrPercent::Str("25%".into());
        assert_eq!(p.scaled(10, true), Ok(3));
        assert_eq!(p.scaled(10, false), Ok(2));
        assert_eq!(IntOrPercent::Int(2).scaled(10, true), Ok(2));
        assert!(IntOrPercent::Str("2".into()).scaled(10, true).is_err());
    }
}

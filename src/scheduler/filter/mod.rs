//! Filters: each says whether one node can take one pod, and why not.
//!
//! They run in the order of Kubernetes' default Filter plugins, and a node is
//! reported under the first that fails, as Kubernetes does.

pub(crate) mod affinity;
pub(crate) mod node_state;
pub(crate) mod resources;
pub(crate) mod selector;
pub(crate) mod taints;
pub(crate) mod topology;

use super::pipeline::{NodeView, PodView};
use super::Taint;

/// Why a node cannot take the pod; each maps to Kubernetes' reason strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure<'a> {
    /// Cordoned: `node(s) were unschedulable`.
    Unschedulable,
    /// The first untolerated NoSchedule/NoExecute taint.
    Taint(&'a Taint),
    /// `nodeSelector` or required node affinity does not match.
    Affinity,
    /// `topologySpreadConstraints` with DoNotSchedule.
    TopologySpread {
        /// The node lacks the topology key.
        missing_label: bool,
    },
    /// Not enough left of one or both resources.
    Resources {
        /// CPU requests do not fit.
        cpu: bool,
        /// Memory requests do not fit.
        memory: bool,
    },
}

/// Runs every filter on the node, cheap ones first; the first failure wins.
pub(crate) fn run<'a>(pod: &PodView<'_>, node: &NodeView<'a>) -> Result<(), Failure<'a>> {
    // NodeUnschedulable: a cordoned node, unless the pod tolerates
    // `node.kubernetes.io/unschedulable:NoSchedule`.
    node_state::check(pod.spec, node.info)?;
    // TaintToleration: NoSchedule and NoExecute taints, the not-ready ones included.
    taints::check(pod.spec, node)?;
    // NodeAffinity: `nodeSelector` and the required terms, one reason for both.
    if !selector::matches(pod.spec, node.info) || !affinity::required_matches(pod.spec, node.info) {
        return Err(Failure::Affinity);
    }
    // NodeResourcesFit: requests against allocatable minus what is placed.
    resources::check(pod.requests, node)
}

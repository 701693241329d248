//! The Unschedulable message, worded as Kubernetes' `FitError.Error()`:
//! `0/N nodes are available: ` then `count reason` for each distinct reason,
//! sorted as strings (Go's `sort.Strings`, so by count text first), joined
//! with `, `, and a final `.`.

use super::filter::Failure;
use std::collections::BTreeMap;
use std::fmt;

/// Kubernetes' `ErrNoNodesAvailable`, for a cluster with no node at all.
pub(crate) const NO_NODES: &str = "no nodes available to schedule pods";

/// One reason string, Kubernetes' wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reason<'a> {
    InsufficientCpu,
    InsufficientMemory,
    Affinity,
    Unschedulable,
    Taint { key: &'a str, value: &'a str },
    Spread,
    SpreadLabel,
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::InsufficientCpu => f.write_str("Insufficient cpu"),
            Reason::InsufficientMemory => f.write_str("Insufficient memory"),
            Reason::Affinity => f.write_str("node(s) didn't match Pod's node affinity/selector"),
            Reason::Unschedulable => f.write_str("node(s) were unschedulable"),
            Reason::Taint { key, value } => write!(f, "node(s) had untolerated taint {{{key}: {value}}}"),
            Reason::Spread => f.write_str("node(s) didn't match pod topology spread constraints"),
            Reason::SpreadLabel => f.write_str("node(s) didn't match pod topology spread constraints (missing required label)"),
        }
    }
}

/// The message for a pod no node can take; `failures` has one entry per node.
pub(crate) fn fit_error<'a>(total_nodes: usize, failures: impl IntoIterator<Item = Failure<'a>>) -> String {
    let mut counts: BTreeMap<Reason<'a>, usize> = BTreeMap::new();
    let mut add = |r| *counts.entry(r).or_default() += 1;
    for failure in failures {
        match failure {
            Failure::Unschedulable => add(Reason::Unschedulable),
            Failure::Taint(t) => add(Reason::Taint {
                key: &t.key,
                value: &t.value,
            }),
            Failure::Affinity => add(Reason::Affinity),
            Failure::TopologySpread { missing_label: false } => add(Reason::Spread),
            Failure::TopologySpread { missing_label: true } => add(Reason::SpreadLabel),
            Failure::Resources { cpu, memory } => {
                if cpu {
                    add(Reason::InsufficientCpu);
                }
                if memory {
                    add(Reason::InsufficientMemory);
                }
            }
        }
    }
    let mut parts: Vec<String> = counts.iter().map(|(reason, n)| format!("{n} {reason}")).collect();
    parts.sort();
    format!("0/{total_nodes} nodes are available: {}.", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tests::taint;
    use crate::scheduler::TaintEffect;

    #[test]
    fn reasons_are_counted_and_sorted_as_kubernetes_does() {
        let memory = Failure::Resources { cpu: false, memory: true };
        let msg = fit_error(3, [memory, Failure::Affinity, memory]);
        assert_eq!(
            msg,
            "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient memory."
        );
    }

    #[test]
    fn resource_fit_reports_cpu_and_memory_for_one_node() {
        let both = Failure::Resources { cpu: true, memory: true };
        assert_eq!(
            fit_error(1, [both]),
            "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."
        );
    }

    #[test]
    fn taints_are_named_with_key_and_value() {
        let master = taint("node-role", "master", TaintEffect::NoSchedule);
        let cp = taint("node-role.kubernetes.io/control-plane", "", TaintEffect::NoSchedule);
        let msg = fit_error(
            4,
            [
                Failure::Taint(&master),
                Failure::Taint(&cp),
                Failure::Unschedulable,
                Failure::Taint(&cp),
            ],
        );
        assert_eq!(
            msg,
            "0/4 nodes are available: 1 node(s) had untolerated taint {node-role: master}, \
             1 node(s) were unschedulable, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }."
        );
    }

    #[test]
    fn counts_sort_as_text_like_go() {
        let aff = std::iter::repeat_n(Failure::Affinity, 10);
        let msg = fit_error(12, aff.chain([Failure::Unschedulable, Failure::Unschedulable]));
        assert_eq!(
            msg,
            "0/12 nodes are available: 10 node(s) didn't match Pod's node affinity/selector, 2 node(s) were unschedulable."
        );
    }
}

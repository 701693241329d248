//! `nodeSelector`: the node must carry every label with the same value.

use crate::api::manifest::PodSpec;
use crate::scheduler::NodeInfo;

/// True when every `nodeSelector` entry is one of the node's labels.
pub(crate) fn matches(spec: &PodSpec, node: &NodeInfo) -> bool {
    spec.node_selector.iter().all(|(k, v)| node.labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tests::{node, spec_with};

    #[test]
    fn every_label_must_match() {
        let mut n = node("a");
        n.labels = [("disk", "ssd"), ("arch", "arm64")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        assert!(matches(&spec_with(""), &n));
        assert!(matches(&spec_with("nodeSelector: {disk: ssd}"), &n));
        assert!(matches(&spec_with("nodeSelector: {disk: ssd, arch: arm64}"), &n));
        assert!(!matches(&spec_with("nodeSelector: {disk: ssd, arch: amd64}"), &n));
        assert!(!matches(&spec_with("nodeSelector: {gpu: 'true'}"), &n));
        assert!(!matches(&spec_with("nodeSelector: {disk: ''}"), &n));
    }
}

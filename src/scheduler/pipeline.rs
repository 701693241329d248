//! The running state of one `schedule` call and the per-pod pipeline:
//! filters, scores, choice, commit.

use super::filter::{self, node_state, topology};
use super::score::{self, Candidate};
use super::{message, requests_of, Decision, NodeInfo, PendingPod, Requests, Snapshot, Taint};
use crate::api::manifest::PodSpec;
use std::collections::BTreeMap;

/// One node with the totals placed on it so far.
pub(crate) struct NodeView<'a> {
    /// The node as given.
    pub info: &'a NodeInfo,
    /// Taints the node has from its conditions (not ready), after its own.
    pub condition_taints: &'static [Taint],
    /// Index into the zone counts.
    pub zone: Option<usize>,
    /// Requests of the pods on the node, for the resource filter.
    pub used: Requests,
    /// The same with Kubernetes' non-zero defaults, for scoring.
    pub used_non_zero: Requests,
}

impl<'a> NodeView<'a> {
    /// A node with nothing placed on it.
    pub fn new(info: &'a NodeInfo, zone: Option<usize>) -> Self {
        NodeView {
            info,
            condition_taints: node_state::condition_taints(info),
            zone,
            used: Requests::default(),
            used_non_zero: Requests::default(),
        }
    }

    /// The node's taints, then those of its conditions.
    pub fn taints(&self) -> impl Iterator<Item = &'a Taint> {
        let info: &'a NodeInfo = self.info;
        info.taints.iter().chain(self.condition_taints)
    }
}

/// A pending pod with its requests worked out once.
pub(crate) struct PodView<'a> {
    /// The specification.
    pub spec: &'a PodSpec,
    /// Effective requests, for the resource filter.
    pub requests: Requests,
    /// The same with Kubernetes' non-zero defaults, for scoring.
    pub non_zero: Requests,
}

impl<'a> PodView<'a> {
    /// Works out the pod's requests.
    pub fn new(spec: &'a PodSpec) -> Self {
        let requests = requests_of(spec);
        PodView {
            spec,
            requests,
            non_zero: requests.non_zero(),
        }
    }
}

/// The cluster during one `schedule` call.
pub(crate) struct Cluster<'a> {
    nodes: Vec<NodeView<'a>>,
    by_name: BTreeMap<&'a str, usize>,
    /// Pods per zone, placed before or during this call.
    zone_pods: Vec<u64>,
    /// Pods of each owner per node and per zone, for spreading replicas.
    owner_nodes: BTreeMap<String, Vec<u64>>,
    owner_zones: BTreeMap<String, Vec<u64>>,
    /// Placed pods by namespace and labels, for topology spread constraints.
    counted: Vec<topology::Counted<'a>>,
    /// Pods placed during this call, the same, kept when a pending pod has constraints.
    placed_now: Vec<(usize, String, BTreeMap<String, String>)>,
    /// Whether to keep `placed_now`.
    pub track_labels: bool,
    /// Reused for every pod: the nodes that passed the filters.
    candidates: Vec<Candidate>,
}

impl<'a> Cluster<'a> {
    /// Indexes the nodes and zones and adds up the placed pods: O(nodes + placed).
    pub fn new(snapshot: &'a Snapshot) -> Self {
        let zones: BTreeMap<&str, usize> = snapshot
            .nodes
            .iter()
            .filter_map(|n| n.zone.as_deref())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .enumerate()
            .map(|(i, z)| (z, i))
            .collect();
        let nodes: Vec<NodeView<'a>> = snapshot
            .nodes
            .iter()
            .map(|n| NodeView::new(n, n.zone.as_deref().map(|z| zones[z])))
            .collect();
        let by_name = nodes.iter().enumerate().map(|(i, n)| (n.info.name.as_str(), i)).collect();
        let mut cluster = Cluster {
            nodes,
            by_name,
            zone_pods: vec![0; zones.len()],
            owner_nodes: BTreeMap::new(),
            owner_zones: BTreeMap::new(),
            counted: Vec::new(),
            placed_now: Vec::new(),
            track_labels: false,
            candidates: Vec::with_capacity(snapshot.nodes.len()),
        };
        for p in &snapshot.placed {
            if let Some(&i) = cluster.by_name.get(p.node.as_str()) {
                cluster.commit(i, p.requests, p.requests.non_zero(), p.owner.as_deref());
                if !p.labels.is_empty() {
                    cluster.counted.push(topology::Counted {
                        node: i,
                        namespace: &p.namespace,
                        labels: &p.labels,
                    });
                }
            }
        }
        cluster
    }

    /// Decides one pod and, when it is bound, counts it against its node.
    pub fn place(&mut self, pending: &PendingPod<'_>) -> Decision {
        let key = pending.key.clone();
        let pod = PodView::new(pending.spec);
        if let Some(name) = pod.spec.bound_node() {
            let Some(&i) = self.by_name.get(name) else {
                let message = format!("node \"{name}\" not found");
                return Decision::Unschedulable { key, message };
            };
            self.commit(i, pod.requests, pod.non_zero, pending.owner);
            self.remember(i, pending);
            return Decision::Bind { key, node: name.into() };
        }
        if self.nodes.is_empty() {
            let message = message::NO_NODES.into();
            return Decision::Unschedulable { key, message };
        }
        self.candidates.clear();
        // A pod with an owner spreads among its siblings; a bare pod over all pods' zones.
        let (zone_pods, node_pods) = match pending.owner {
            Some(o) => (
                self.owner_zones.get(o).map(Vec::as_slice).unwrap_or(&[]),
                self.owner_nodes.get(o).map(Vec::as_slice).unwrap_or(&[]),
            ),
            None => (self.zone_pods.as_slice(), &[][..]),
        };
        let spreads = if pod.spec.topology_spread_constraints.is_empty() {
            Vec::new()
        } else {
            let now = self.placed_now.iter().map(|(node, namespace, labels)| topology::Counted {
                node: *node,
                namespace,
                labels,
            });
            let counted: Vec<topology::Counted<'_>> = self
                .counted
                .iter()
                .map(|c| topology::Counted {
                    node: c.node,
                    namespace: c.namespace,
                    labels: c.labels,
                })
                .chain(now)
                .collect();
            topology::spreads(pod.spec, &key.0, pending.labels, &self.nodes, &counted)
        };
        // Soft constraints of its own replace the default spread.
        let soft = topology::has_soft(&spreads);
        let zone_pods = if soft { &[][..] } else { zone_pods };
        for (i, node) in self.nodes.iter().enumerate() {
            if filter::run(&pod, node).is_ok() && topology::check(&spreads, node).is_ok() {
                let siblings = if soft {
                    topology::raw(&spreads, node)
                } else {
                    node_pods.get(i).copied().unwrap_or(0)
                };
                let mut c = score::raw(i, &pod, node, zone_pods, siblings);
                if soft {
                    c.zone_pods = None;
                }
                self.candidates.push(c);
            }
        }
        match score::best(&self.candidates, &self.nodes) {
            Some(i) => {
                self.commit(i, pod.requests, pod.non_zero, pending.owner);
                self.remember(i, pending);
                let node = self.nodes[i].info.name.clone();
                Decision::Bind { key, node }
            }
            None => {
                // Only now is the reason of each node worth its cost.
                let failures = self
                    .nodes
                    .iter()
                    .filter_map(|n| filter::run(&pod, n).err().or_else(|| topology::check(&spreads, n).err()));
                let message = message::fit_error(self.nodes.len(), failures);
                Decision::Unschedulable { key, message }
            }
        }
    }

    /// Keeps a pod placed in this call for the spread constraints of the next.
    fn remember(&mut self, i: usize, pending: &PendingPod<'_>) {
        if self.track_labels && !pending.labels.is_empty() {
            self.placed_now.push((i, pending.key.0.clone(), pending.labels.clone()));
        }
    }

    fn commit(&mut self, i: usize, requests: Requests, non_zero: Requests, owner: Option<&str>) {
        let node = &mut self.nodes[i];
        node.used = node.used.plus(requests);
        node.used_non_zero = node.used_non_zero.plus(non_zero);
        let zone = node.zone;
        if let Some(z) = zone {
            self.zone_pods[z] += 1;
        }
        if let Some(o) = owner {
            let (n, z) = (self.nodes.len(), self.zone_pods.len());
            self.owner_nodes.entry(o.to_string()).or_insert_with(|| vec![0; n])[i] += 1;
            if let Some(zi) = zone {
                self.owner_zones.entry(o.to_string()).or_insert_with(|| vec![0; z])[zi] += 1;
            }
        }
    }
}

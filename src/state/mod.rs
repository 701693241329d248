//! The replicated cluster state: the objects every node keeps a full copy of,
//! the commands that change them (Raft log entries) and their reads.
//!
//! ```text
//! sm_pods(namespace, name, uid, node, json)  -- PodObject: manifest, binding, status
//! sm_nodes(name, raft_id, json)              -- NodeObject
//! sm_tokens(id, json)                        -- join tokens (SHA-256 of the secret only)
//! sm_joined(name, key_sha256, token, joined_ms)
//! sm_events(seq, json)                       -- the last EVENTS_KEPT events
//! sm_workloads(kind, namespace, name, uid, json) -- WorkloadObject: Deployment, ReplicaSet, DaemonSet
//! sm_config(kind, namespace, name, json)   -- ConfigObject: ConfigMap, Secret
//! sm_meta(key, value)                        -- last applied log id, membership, next raft id,
//!                                               the address plan (ClusterNetwork)
//! ```
//! Commands and objects only ever grow (new variants and fields at the end,
//! new fields with defaults), so two versions can share a cluster. Applying a
//! command is deterministic: every input it needs, the time included, is in
//! the command, so every replica computes the same state.

mod apply;
mod apply_workload;
pub mod config;
pub mod network;
mod read;
pub mod service;
mod snapshot;
pub mod workload;

pub use apply::apply_command;
pub use network::ClusterNetwork;
pub use read::Replica;
pub use snapshot::{dump, load};
pub use workload::{Cascade, Kind, Op, Workload, WorkloadObject, WorkloadStatus};

use crate::api::manifest::Pod;
use crate::api::status::PodStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// How many events the state keeps (oldest dropped first).
pub const EVENTS_KEPT: i64 = 1000;

/// A pod as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodObject {
    /// The manifest.
    pub pod: Pod,
    /// Unique id of this incarnation.
    pub uid: String,
    /// Unix ms the apply committed.
    pub created_ms: u64,
    /// The node it is bound to; `None` while Pending for the scheduler.
    #[serde(default)]
    pub node: Option<String>,
    /// Last status its node reported.
    #[serde(default)]
    pub status: PodStatus,
    /// Unix ms of the delete request, while its node tears it down.
    #[serde(default)]
    pub deleting_ms: Option<u64>,
    /// Why the scheduler could not place it (PodScheduled=False).
    #[serde(default)]
    pub unschedulable: Option<String>,
}

impl PodObject {
    /// `(namespace, name)`.
    pub fn key(&self) -> (String, String) {
        (self.pod.metadata.namespace().to_string(), self.pod.metadata.name.clone())
    }

    /// Counts toward its controller's replicas: not being deleted and not
    /// finished (Succeeded or Failed), as Kubernetes' active pods.
    pub fn is_active(&self) -> bool {
        use crate::api::status::Phase;
        self.deleting_ms.is_none() && !matches!(self.status.phase, Phase::Succeeded | Phase::Failed)
    }

    /// The uid of its controlling owner, if any.
    pub fn owner_uid(&self) -> Option<&str> {
        self.pod.metadata.controller().map(|o| o.uid.as_str())
    }
}

/// A join token as stored: only the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// The public part, shown by `token ls`.
    pub id: String,
    /// Hex SHA-256 of the secret part.
    pub secret_sha256: String,
    /// Unix ms.
    pub created_ms: u64,
    /// Unix ms after which joins are refused.
    pub expires_ms: u64,
    /// Unix ms of `token rm`, if removed.
    pub removed_ms: Option<u64>,
    /// Successful joins.
    pub uses: u64,
}

/// A node as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeObject {
    /// Node name, unique.
    pub name: String,
    /// Raft id; never reused.
    pub raft_id: u64,
    /// Address of its QUIC endpoint.
    pub addr: SocketAddr,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Zone.
    #[serde(default)]
    pub zone: Option<String>,
    /// CPUs.
    #[serde(default)]
    pub cpus: u32,
    /// Memory in bytes.
    #[serde(default)]
    pub memory_bytes: u64,
    /// Cordoned: no new pods.
    #[serde(default)]
    pub cordoned: bool,
    /// Taints.
    #[serde(default)]
    pub taints: Vec<crate::scheduler::Taint>,
    /// May become a Raft voter (`join --voter=false` says no).
    #[serde(default = "yes")]
    pub voter_eligible: bool,
    /// Unix ms of init or join.
    #[serde(default)]
    pub joined_ms: u64,
    /// Agent version last reported.
    #[serde(default)]
    pub version: String,
    /// CPU architecture in Kubernetes' words (`amd64`, `arm64`, `arm`).
    #[serde(default)]
    pub arch: String,
    /// The images it holds (Kubernetes' `status.images`), as it last
    /// reported them: where a node that needs one can fetch it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<NodeImage>,
    /// Its pod subnet (Kubernetes' `spec.podCIDR`), held until the node is
    /// deleted; `None` while the cluster CIDR has no subnet left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<ipnet::Ipv4Net>,
}

impl NodeObject {
    /// A plain node for tests: 4 CPUs, 8 GiB, amd64, no labels.
    #[cfg(test)]
    pub(crate) fn for_test(name: &str, addr: SocketAddr) -> NodeObject {
        NodeObject {
            name: name.into(),
            raft_id: 0,
            addr,
            labels: Default::default(),
            zone: None,
            cpus: 4,
            memory_bytes: 8 << 30,
            cordoned: false,
            taints: vec![],
            voter_eligible: true,
            joined_ms: 0,
            version: String::new(),
            arch: "amd64".into(),
            images: Vec::new(),
            pod_cidr: None,
        }
    }

    /// Its labels plus Kubernetes' well-known ones (`kubernetes.io/hostname`,
    /// `kubernetes.io/os`, `kubernetes.io/arch`, `topology.kubernetes.io/zone`)
    /// where the user did not set them.
    pub fn all_labels(&self) -> BTreeMap<String, String> {
        let mut l = self.labels.clone();
        let mut well_known = vec![("kubernetes.io/hostname", self.name.clone()), ("kubernetes.io/os", "linux".into())];
        if !self.arch.is_empty() {
            well_known.push(("kubernetes.io/arch", self.arch.clone()));
        }
        if let Some(z) = &self.zone {
            well_known.push(("topology.kubernetes.io/zone", z.clone()));
        }
        for (k, v) in well_known {
            l.entry(k.to_string()).or_insert(v);
        }
        l
    }
}

/// This machine's architecture in Kubernetes' words.
pub fn kube_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

fn yes() -> bool {
    true
}

/// What a node says of itself when its agent starts (written only on change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFacts {
    /// Node name.
    pub name: String,
    /// Address.
    pub addr: SocketAddr,
    /// CPUs.
    pub cpus: u32,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Agent version.
    pub version: String,
    /// CPU architecture in Kubernetes' words.
    #[serde(default)]
    pub arch: String,
}

/// An image a node holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeImage {
    /// Its references.
    pub names: Vec<String>,
    /// Its manifest's digest.
    pub digest: String,
    /// Sum of its compressed layers.
    pub size_bytes: u64,
}

/// A scheduler placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The incarnation the decision was for.
    pub uid: String,
    /// The node, or `None` with `message` when nothing can hold it.
    pub node: Option<String>,
    /// Why not, in Kubernetes' words.
    #[serde(default)]
    pub message: String,
}

/// A pod status a node reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Incarnation.
    pub uid: String,
    /// The status; `None` when the node finished tearing the pod down.
    pub status: Option<PodStatus>,
}

/// An event (`get events`, `describe`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Unix ms.
    pub time_ms: u64,
    /// `Normal` or `Warning`.
    pub kind: String,
    /// `Scheduled`, `FailedScheduling`, `NodeDeleted`...
    pub reason: String,
    /// `pod/default/web`, `node/pi3`.
    pub object: String,
    /// For people.
    pub message: String,
}

/// A change to the cluster state: one Raft log entry. Variants are only
/// ever added at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Command {
    /// Create a pod, or update its metadata (a pod's spec cannot change).
    PutPod {
        /// The manifest.
        pod: Box<Pod>,
        /// Uid for a new pod.
        uid: String,
        /// Proposer's clock.
        now_ms: u64,
    },
    /// Delete a pod: at once if unbound, else its node tears it down.
    DeletePod {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Proposer's clock.
        now_ms: u64,
    },
    /// Scheduler decisions.
    Bind {
        /// Placements and refusals.
        items: Vec<Binding>,
        /// Proposer's clock.
        now_ms: u64,
    },
    /// Pod statuses from one node (only its own pods are accepted).
    Status {
        /// The reporting node.
        node: String,
        /// Changed statuses.
        items: Vec<StatusReport>,
    },
    /// Admit a node: allocates its Raft id (never reused) and records its key.
    RegisterNode {
        /// The node (its `raft_id` is ignored and allocated).
        node: NodeObject,
        /// Hex SHA-256 of its public key.
        key_sha256: String,
        /// Token id it joined with (empty for the first node).
        token: String,
        /// The address plan, from the first node (later ones leave it out).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network: Option<ClusterNetwork>,
    },
    /// A node's own facts at agent start.
    NodeFacts(NodeFacts),
    /// Cordon or uncordon.
    Cordon {
        /// Node.
        name: String,
        /// Cordoned or not.
        cordoned: bool,
    },
    /// Remove a node and every pod bound to it.
    DeleteNode {
        /// Node.
        name: String,
        /// Proposer's clock.
        now_ms: u64,
    },
    /// Store a new join token.
    PutToken(TokenRecord),
    /// Remove a join token.
    RemoveToken {
        /// Token id.
        id: String,
        /// Proposer's clock.
        now_ms: u64,
    },
    /// Set a node's taints (the whole list).
    Taint {
        /// Node.
        name: String,
        /// The new taints.
        taints: Vec<crate::scheduler::Taint>,
    },
    /// Create or change a Deployment, ReplicaSet or DaemonSet.
    PutWorkload {
        /// The manifest.
        workload: Box<Workload>,
        /// Uid for a new object.
        uid: String,
        /// Proposer's clock.
        now_ms: u64,
        /// Refuse unless the object is at this generation (read-modify-write).
        #[serde(default)]
        expect_generation: Option<u64>,
    },
    /// Delete a workload and, unless orphaning, what it owns.
    DeleteWorkload {
        /// Kind.
        kind: Kind,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// What happens to its dependents.
        cascade: Cascade,
        /// Proposer's clock.
        now_ms: u64,
    },
    /// Set `spec.replicas` of a Deployment or ReplicaSet.
    Scale {
        /// Kind.
        kind: Kind,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// New count.
        replicas: i64,
    },
    /// One controller pass's writes.
    Reconcile {
        /// The writes, each checked again when applied.
        ops: Vec<Op>,
        /// Proposer's clock.
        now_ms: u64,
    },
    /// Set a node's labels (the whole map).
    Label {
        /// Node.
        name: String,
        /// The new labels.
        labels: BTreeMap<String, String>,
    },
    /// Create or update a Service (its address and node ports are chosen
    /// when applied).
    PutService {
        /// The manifest.
        service: Box<crate::api::manifest::Service>,
        /// Uid, if it is created.
        uid: String,
        /// Proposer's clock.
        now_ms: u64,
    },
    /// Delete a Service.
    DeleteService {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Create or update hand-written Endpoints or an EndpointSlice.
    PutEndpoints {
        /// The manifest.
        endpoints: Box<service::Manual>,
        /// Proposer's clock.
        now_ms: u64,
    },
    /// Delete hand-written Endpoints or an EndpointSlice.
    DeleteEndpoints {
        /// `Endpoints` or `EndpointSlice`.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Create or update a ConfigMap or Secret.
    PutConfig {
        /// The object.
        config: Box<crate::api::manifest::Config>,
        /// Uid, if it is created.
        uid: String,
        /// Proposer's clock.
        now_ms: u64,
        /// Refuse if it exists (`create`).
        create_only: bool,
    },
    /// The images a node holds now (it sends this when they change).
    NodeImages {
        /// The node.
        name: String,
        /// Its images.
        images: Vec<NodeImage>,
    },
    /// Delete a ConfigMap or Secret.
    DeleteConfig {
        /// `ConfigMap` or `Secret`.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
}

impl Command {
    /// Short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::PutPod { .. } => "apply pod",
            Command::DeletePod { .. } => "delete pod",
            Command::Bind { .. } => "bind",
            Command::Status { .. } => "pod status",
            Command::RegisterNode { .. } => "register node",
            Command::NodeFacts(_) => "node facts",
            Command::Cordon { .. } => "cordon",
            Command::DeleteNode { .. } => "delete node",
            Command::PutToken(_) => "create token",
            Command::RemoveToken { .. } => "remove token",
            Command::Taint { .. } => "taint",
            Command::PutWorkload { .. } => "apply workload",
            Command::DeleteWorkload { .. } => "delete workload",
            Command::Scale { .. } => "scale",
            Command::Reconcile { .. } => "reconcile",
            Command::Label { .. } => "label",
            Command::PutService { .. } => "apply service",
            Command::DeleteService { .. } => "delete service",
            Command::PutEndpoints { .. } => "apply endpoints",
            Command::DeleteEndpoints { .. } => "delete endpoints",
            Command::PutConfig { .. } => "apply config",
            Command::DeleteConfig { .. } => "delete config",
            Command::NodeImages { .. } => "node images",
        }
    }
}

/// What applying a command answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Response {
    /// Done, nothing to say.
    #[default]
    Ok,
    /// `created`, `configured`, `unchanged`, `deleted`...
    Done(String),
    /// A node's Raft id.
    RaftId(u64),
    /// Refused: the state is unchanged; the text names the problem.
    Refused(String),
}

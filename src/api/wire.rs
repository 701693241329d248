//! What the client and the agent say to each other on an `shoal-api` stream.
//!
//! A request is one JSON [`Request`] frame; the answer is one JSON [`Reply`]
//! frame, followed for `Logs`, `Exec` and `ImageImport` by data frames (see
//! `transport::framing`). Variants are only ever added at the end, so an older
//! client keeps working against a newer agent.

use super::manifest::{Kind, Pod};
use super::status::PodStatus;
use serde::{Deserialize, Serialize};

/// Which pod a request is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    /// Namespace; `default` when the user gave none.
    pub namespace: String,
    /// Pod name.
    pub name: String,
}

/// A client request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    /// Create or update the objects of one or many YAML documents.
    Apply {
        /// The manifest text as the user wrote it.
        manifest: String,
    },
    /// List pods; all namespaces when `namespace` is `None`.
    GetPods {
        /// Namespace filter.
        namespace: Option<String>,
    },
    /// One pod with its status.
    GetPod(PodRef),
    /// Delete a pod: SIGTERM, grace period, SIGKILL.
    DeletePod(PodRef),
    /// A container's log; with `follow`, new lines until the client hangs up.
    Logs {
        /// The pod.
        pod: PodRef,
        /// The container; the first one when `None`.
        container: Option<String>,
        /// Keep streaming.
        follow: bool,
    },
    /// Run a command in a running container.
    Exec {
        /// The pod.
        pod: PodRef,
        /// The container; the first one when `None`.
        container: Option<String>,
        /// Program and arguments.
        command: Vec<String>,
    },
    /// Import an image archive; `size` bytes of it follow this frame.
    ImageImport {
        /// Archive length in bytes.
        size: u64,
    },
    /// List stored images.
    ImageList,
    /// Remove an image reference (its blobs go when nothing else uses them).
    ImageRemove {
        /// Image reference.
        reference: String,
    },
    /// The members as the node asked sees them.
    GetNodes,
    /// Leave the cluster gracefully and stop the agent (node credentials or admin).
    Leave,
    /// Create a join token (admin only, on a node holding the CA).
    TokenCreate {
        /// Lifetime in seconds.
        ttl_secs: u64,
    },
    /// List join tokens (admin only).
    TokenList,
    /// Remove a join token (admin only).
    TokenRemove {
        /// Token id.
        id: String,
    },
    /// The cluster's nodes: node objects merged with gossip status and Raft roles.
    GetClusterNodes,
    /// Cordon (`true`) or uncordon a node (admin only).
    Cordon {
        /// Node name.
        node: String,
        /// Cordoned or not.
        cordoned: bool,
    },
    /// Remove a node from Raft and the state (admin only).
    DeleteNode {
        /// Node name.
        name: String,
    },
    /// Events, all or about one object (`pod/NS/NAME`, `node/NAME`).
    GetEvents {
        /// Object filter.
        object: Option<String>,
    },
    /// Wait until this node's replica holds every write committed so far
    /// (the leader's read index); reads after it on the same connection are
    /// linearizable.
    Linearize,
    /// Add or remove taints on a node (admin only), as `kubectl taint`.
    Taint {
        /// Node name.
        node: String,
        /// Taints to add or replace (same key and effect).
        add: Vec<crate::scheduler::Taint>,
        /// `(key, effect)` of taints to remove; no effect removes every effect of the key.
        remove: Vec<(String, Option<crate::scheduler::TaintEffect>)>,
    },
    /// Deployments, ReplicaSets or DaemonSets; one when `name` is given.
    GetWorkloads {
        /// Kind.
        kind: Kind,
        /// Namespace filter; all when `None`.
        namespace: Option<String>,
        /// One by name.
        name: Option<String>,
    },
    /// Delete a workload (admin only).
    DeleteWorkload {
        /// Kind.
        kind: Kind,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Whether what it owns goes too.
        cascade: crate::state::Cascade,
    },
    /// Change a Deployment (or scale a ReplicaSet) in place (admin only).
    Workload {
        /// Kind.
        kind: Kind,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// What to do.
        action: WorkloadAction,
    },
    /// Cordon a node and evict its controller-managed pods (admin only).
    Drain {
        /// Node name.
        node: String,
        /// Also DaemonSet pods.
        include_daemonsets: bool,
    },
    /// Add, change or remove a node's labels (admin only), as `kubectl label`.
    Label {
        /// Node name.
        node: String,
        /// Labels to set.
        set: std::collections::BTreeMap<String, String>,
        /// Keys to remove.
        remove: Vec<String>,
        /// Whether an existing value may change.
        overwrite: bool,
    },
    /// Services with their endpoints as this node works them out; one
    /// when `name` is given.
    GetServices {
        /// Namespace filter; all when `None`.
        namespace: Option<String>,
        /// One by name.
        name: Option<String>,
    },
    /// Delete a Service, hand-written Endpoints or an EndpointSlice (admin only).
    DeleteService {
        /// `Service`, `Endpoints` or `EndpointSlice`.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// What gossip costs on the node asked (`shoal info`).
    GossipInfo,
    /// ConfigMaps or Secrets (`kind`); all namespaces when `namespace` is
    /// `None`, one object when `name` is given.
    GetConfigs {
        /// `ConfigMap` or `Secret`.
        kind: String,
        /// Namespace filter.
        namespace: Option<String>,
        /// One object.
        name: Option<String>,
    },
    /// Delete a ConfigMap or Secret (admin only).
    DeleteConfig {
        /// `ConfigMap` or `Secret`.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Create the objects of a manifest, refusing any that exists
    /// (ConfigMaps and Secrets; admin only).
    Create {
        /// The manifest text.
        manifest: String,
    },
    /// Pull an image into the node asked. Progress follows as data frames
    /// (each a JSON `PullEvent`), then the answer as a JSON frame.
    ImagePull {
        /// Image reference.
        reference: String,
    },
}

/// A Service and the addresses behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    /// The Service as stored (address and node ports filled in).
    pub service: crate::state::service::ServiceObject,
    /// Its backends, ready or not.
    pub backends: Vec<crate::net::endpoints::Backend>,
    /// Unix ms the hand-written Endpoints were created, for a Service without a selector.
    #[serde(default)]
    pub endpoints_created_ms: Option<u64>,
}

/// A change to a workload, as `scale`, `set image` and `rollout` make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum WorkloadAction {
    /// `scale --replicas N`.
    Scale {
        /// New count.
        replicas: i64,
    },
    /// `set image CONTAINER=IMAGE...`.
    SetImage {
        /// Container name and image.
        images: Vec<(String, String)>,
    },
    /// `rollout pause`.
    Pause,
    /// `rollout resume`.
    Resume,
    /// `rollout restart`: a new template annotation, so every pod is replaced.
    Restart {
        /// The time stamp written.
        at: String,
    },
    /// `rollout undo [--to-revision N]`; 0 is the previous revision.
    Undo {
        /// Revision.
        to_revision: u64,
    },
}

/// A node as `get nodes` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRow {
    /// Name.
    pub name: String,
    /// Gossip status as the node asked sees it (`Ready`, `Suspect`, `Down`, `Left`, `Unknown`).
    pub status: String,
    /// `leader`, `voter`, `learner`, or `-` while Raft does not know it yet.
    pub role: String,
    /// Cordoned.
    pub cordoned: bool,
    /// Address.
    pub addr: std::net::SocketAddr,
    /// Raft id.
    pub raft_id: u64,
    /// Labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Zone.
    pub zone: Option<String>,
    /// CPUs.
    pub cpus: u32,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Agent version.
    pub version: String,
    /// Unix ms of init or join.
    pub joined_ms: u64,
    /// Pods bound to it.
    pub pods: usize,
    /// Its pod subnet (Kubernetes' `spec.podCIDR`).
    #[serde(default, rename = "podCIDR")]
    pub pod_cidr: Option<ipnet::Ipv4Net>,
}

/// What happened to one applied object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// `pod/NAME`.
    pub object: String,
    /// `created`, `configured` or `unchanged`.
    pub action: String,
}

/// A pod with its identity and status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodView {
    /// The manifest as stored.
    pub pod: Pod,
    /// Unique id of this incarnation of the pod.
    pub uid: String,
    /// Unix milliseconds.
    pub created_at: u64,
    /// Where it is now.
    pub status: PodStatus,
    /// Why the scheduler could not place it yet (PodScheduled=False).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unschedulable: Option<String>,
}

/// A stored image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Normalised reference.
    pub reference: String,
    /// Manifest digest.
    pub digest: String,
    /// Sum of the compressed layer sizes.
    pub size: u64,
    /// The nodes that hold it, as the cluster state knows them (`image ls`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

/// The agent's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "camelCase")]
pub enum Reply {
    /// Apply succeeded for every object.
    Applied {
        /// One entry per object.
        objects: Vec<Applied>,
    },
    /// Pods.
    Pods {
        /// The list.
        pods: Vec<PodView>,
    },
    /// A deletion was accepted.
    Deleted {
        /// `pod/NAME`.
        object: String,
    },
    /// The stream of data frames follows.
    Streaming,
    /// Images.
    Images {
        /// The list.
        images: Vec<ImageInfo>,
    },
    /// Members.
    Nodes {
        /// The list, the node asked first.
        nodes: Vec<crate::gossip::NodeView>,
    },
    /// The node left the cluster and is stopping.
    Left {
        /// Its name.
        name: String,
    },
    /// A new join token.
    Token {
        /// The whole token; shown once.
        token: String,
        /// Its id.
        id: String,
        /// Unix ms.
        expires_ms: u64,
    },
    /// Join tokens (no secrets).
    Tokens {
        /// The list.
        tokens: Vec<crate::state::TokenRecord>,
    },
    /// A token was removed.
    TokenRemoved {
        /// Its id.
        id: String,
    },
    /// The request failed; nothing changed unless `message` says so.
    Error {
        /// What went wrong, naming the problem.
        message: String,
    },
    /// The cluster's nodes.
    ClusterNodes {
        /// By name.
        nodes: Vec<NodeRow>,
    },
    /// A node was cordoned, uncordoned or deleted.
    NodeChanged {
        /// `node/NAME`.
        object: String,
        /// `cordoned`, `uncordoned`, `unchanged`, `deleted`.
        action: String,
    },
    /// Events, oldest first.
    Events {
        /// The list.
        events: Vec<crate::state::Event>,
    },
    /// The replica is up to date with the leader.
    Linearized,
    /// Workloads, with the ReplicaSets of a single Deployment asked for.
    Workloads {
        /// The list.
        items: Vec<crate::state::WorkloadObject>,
        /// Pods they own (a single object asked for).
        #[serde(default)]
        pods: Vec<PodView>,
        /// ReplicaSets of a single Deployment asked for.
        #[serde(default)]
        owned: Vec<crate::state::WorkloadObject>,
    },
    /// An object changed: `deployment.apps/web scaled`.
    Changed {
        /// `deployment.apps/web`.
        object: String,
        /// `scaled`, `paused`, `rolled back`, `deleted`...
        action: String,
    },
    /// Services.
    Services {
        /// The list.
        items: Vec<ServiceView>,
    },
    /// Gossip's traffic on the node asked.
    GossipInfo {
        /// Its counters.
        stats: crate::gossip::stats::GossipStats,
    },
    /// ConfigMaps or Secrets.
    Configs {
        /// The list.
        items: Vec<crate::state::config::ConfigObject>,
    },
}

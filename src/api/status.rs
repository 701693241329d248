//! Pod status as the API reports it, shaped like Kubernetes' `PodStatus`.

use serde::{Deserialize, Serialize};

/// Lifecycle phase of a pod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Accepted; not every container has started yet.
    #[default]
    Pending,
    /// Every app container started and at least one runs or restarts.
    Running,
    /// Every container exited 0 and none will restart.
    Succeeded,
    /// Every container exited, at least one in failure, and none will restart.
    Failed,
}

/// Why a container is where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ContainerState {
    /// Not running: being created, backing off, or blocked.
    Waiting {
        /// `ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`, `ErrImageNeverPull`, `CreateContainerError`.
        reason: String,
        /// Detail for people.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        message: String,
    },
    /// The process runs.
    Running {
        /// Unix milliseconds.
        started_at: u64,
    },
    /// The process exited.
    Terminated {
        /// Exit code; 128+signal when killed by a signal.
        exit_code: i32,
        /// Signal number when killed by one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        /// `Completed`, `Error` or `OOMKilled`.
        reason: String,
        /// Unix milliseconds.
        started_at: u64,
        /// Unix milliseconds.
        finished_at: u64,
    },
}

impl ContainerState {
    /// The short word `get pods` shows.
    pub fn word(&self) -> &str {
        match self {
            ContainerState::Waiting { reason, .. } => reason,
            ContainerState::Running { .. } => "Running",
            ContainerState::Terminated { reason, .. } => reason,
        }
    }
}

/// Status of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// Container name.
    pub name: String,
    /// Normalised image reference.
    pub image: String,
    /// Where it is now.
    pub state: ContainerState,
    /// The previous run's end, if it ran before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_state: Option<ContainerState>,
    /// How often it was started again.
    pub restart_count: u32,
    /// Kubernetes' ready. An app container: it runs, its startup probe (if
    /// any) has passed, and its readiness probe (if any) passes. An init
    /// container: it exited 0.
    pub ready: bool,
    /// Kubernetes' started: it runs and its startup probe (if any) has
    /// passed. False while not running. Absent in statuses from before probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
    /// Host pid of the container's process while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
}

/// Status of a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// Lifecycle phase.
    pub phase: Phase,
    /// Node the pod runs on.
    #[serde(default)]
    pub node_name: String,
    /// Unix milliseconds of the first start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    /// True while the pod is being deleted.
    #[serde(default)]
    pub terminating: bool,
    /// Unix ms when the pod last became Ready (every app container ready);
    /// absent while it is not Ready. Kept while the pod stays Ready, so a
    /// pod that stopped being Ready and became Ready again carries the later time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_since: Option<u64>,
    /// Init containers, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_container_statuses: Vec<ContainerStatus>,
    /// App containers, in order.
    #[serde(default)]
    pub container_statuses: Vec<ContainerStatus>,
    /// The pod's address on the pod network (Kubernetes' `status.podIP`).
    #[serde(default, rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<std::net::Ipv4Addr>,
}

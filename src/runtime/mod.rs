//! Running containers: images, OCI bundles, and libcontainer behind a shim.
//!
//! One file per lifecycle verb, each adding to [`Runtime`]: `create` (bundle
//! and spec), `start` (shim), `kill`, `delete` (pod teardown), `exec`,
//! `probe` (one container probe). The shim (`shim.rs`) is the only code
//! that calls libcontainer.

pub mod cgroups;
mod create;
mod delete;
mod exec;
pub mod image;
mod kill;
pub mod layout;
pub mod probe;
pub mod proc;
pub mod projection;
pub mod sandbox;
pub mod shim;
pub mod spec;
mod start;

pub use exec::exec_main;
pub use shim::ExitInfo;
pub use start::Started;

use image::ImageStore;
use layout::NodePaths;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A runtime operation failed. Unless the text says otherwise the container
/// did not start and nothing of it is left running.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The image is missing or broken.
    #[error(transparent)]
    Image(#[from] image::ImageError),
    /// The OCI spec could not be built.
    #[error("{0}")]
    Spec(String),
    /// A ConfigMap or Secret the container refers to is missing.
    #[error(transparent)]
    Config(#[from] projection::ConfigError),
    /// libcontainer refused or failed.
    #[error("container {id}: {message}")]
    Libcontainer {
        /// Container id.
        id: String,
        /// libcontainer's message.
        message: String,
    },
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was attempted.
        what: String,
        /// errno.
        source: nix::Error,
    },
    /// File I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The shim failed before it started the container.
    #[error("shim: {0}")]
    Shim(String),
}

/// The node's container runtime: the agent-side half of every verb.
pub struct Runtime {
    paths: NodePaths,
    images: Arc<ImageStore>,
    exe: PathBuf,
    /// One lock per pod uid: the containers of a pod start concurrently, and
    /// the first to hold it creates the sandbox while the others wait, then
    /// find it ready (`create.rs`). The entry goes with the pod (`delete.rs`).
    sandboxes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// One writer at a time of a pod's configMap and secret volumes.
    projections: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Runtime {
    /// A runtime for the node at `paths`, spawning shims from `exe`
    /// (normally `/proc/self/exe`).
    pub fn new(paths: NodePaths, images: Arc<ImageStore>, exe: PathBuf) -> Runtime {
        Runtime {
            paths,
            images,
            exe,
            sandboxes: Mutex::default(),
            projections: Mutex::default(),
        }
    }

    /// The node's paths.
    pub fn paths(&self) -> &NodePaths {
        &self.paths
    }

    /// The image store.
    pub fn images(&self) -> &Arc<ImageStore> {
        &self.images
    }
}

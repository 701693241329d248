//! Where a node keeps things on the host. Every name derives from the data
//! dir, so several nodes can share one machine and leftovers can be found.
//!
//! ```text
//! DATA/shoal.db                      SQLite store
//! DATA/pki/, DATA/admin.conf         credentials
//! DATA/images/                       image store
//! DATA/run/oci/<container id>/       libcontainer state
//! DATA/pods/<uid>/ns/{net,ipc,uts}   the pod's namespaces, bind-mounted
//! DATA/pods/<uid>/volumes/<name>/    emptyDir and configMap volumes
//! DATA/pods/<uid>/tmpfs/             a tmpfs: the containers' config.json
//!                                    (their environment) and secret volumes
//! DATA/pods/<uid>/logs/<ctr>.log     stdout and stderr
//! DATA/pods/<uid>/containers/<ctr>/  bundle: config.json, shim.json, rootfs/,
//!                                    upper/, work/, exit.json, shim.log
//! cgroups: /shoal-<node>/pod-<uid>/<ctr> in every hierarchy
//! ```

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The host paths and names of one node.
#[derive(Debug, Clone)]
pub struct NodePaths {
    /// The data dir.
    pub data: PathBuf,
    /// `shoal-<8 hex of sha256(data dir)>`: prefix of cgroups and container ids.
    pub prefix: String,
}

impl NodePaths {
    /// Paths for the data dir `data` (made absolute).
    pub fn new(data: &Path) -> NodePaths {
        let data = std::path::absolute(data).unwrap_or_else(|_| data.to_path_buf());
        let hash = hex::encode(Sha256::digest(data.as_os_str().as_encoded_bytes()));
        NodePaths {
            prefix: format!("shoal-{}", &hash[..8]),
            data,
        }
    }

    /// The SQLite file.
    pub fn db(&self) -> PathBuf {
        self.data.join("shoal.db")
    }

    /// The PKI dir.
    pub fn pki(&self) -> PathBuf {
        self.data.join("pki")
    }

    /// Admin client credentials.
    pub fn admin_conf(&self) -> PathBuf {
        self.data.join("admin.conf")
    }

    /// The image store root.
    pub fn images(&self) -> PathBuf {
        self.data.join("images")
    }

    /// libcontainer's state root.
    pub fn oci_root(&self) -> PathBuf {
        self.data.join("run/oci")
    }

    /// A pod's directory.
    pub fn pod(&self, uid: &str) -> PathBuf {
        self.data.join("pods").join(uid)
    }

    /// The pod's tmpfs: what holds Secrets' values.
    pub fn pod_tmpfs(&self, uid: &str) -> PathBuf {
        self.pod(uid).join("tmpfs")
    }

    /// A container's bundle directory.
    pub fn bundle(&self, uid: &str, container: &str) -> PathBuf {
        self.pod(uid).join("containers").join(container)
    }

    /// A container's log file.
    pub fn log(&self, uid: &str, container: &str) -> PathBuf {
        self.pod(uid).join("logs").join(format!("{container}.log"))
    }

    /// The libcontainer id of a container.
    pub fn container_id(&self, uid: &str, container: &str) -> String {
        format!("{}-{}-{container}", self.prefix, &uid[..uid.len().min(12)])
    }

    /// The node's cgroup parent, relative to each hierarchy's root.
    pub fn cgroup_root(&self) -> String {
        format!("/{}", self.prefix)
    }

    /// A pod's cgroup, relative to each hierarchy's root.
    pub fn pod_cgroup(&self, uid: &str) -> String {
        format!("/{}/pod-{}", self.prefix, &uid[..uid.len().min(12)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_the_data_dir() {
        let a = NodePaths::new(Path::new("/var/lib/shoal"));
        let b = NodePaths::new(Path::new("/tmp/shoal-test-1"));
        assert_ne!(a.prefix, b.prefix);
        assert!(a.prefix.starts_with("shoal-") && a.prefix.len() == 14);
        assert!(a.container_id("0123456789abcdef", "web").starts_with(&a.prefix));
    }
}

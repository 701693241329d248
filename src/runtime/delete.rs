//! `delete`: tear a pod's sandbox down once its containers have exited.

use super::{cgroups, sandbox, shim, Runtime};
use std::sync::PoisonError;

impl Runtime {
    /// Removes everything the pod left on the host: rootfs mounts, libcontainer
    /// state, namespaces, cgroups, volumes and logs. Idempotent.
    pub fn delete_pod(&self, uid: &str, containers: &[String]) {
        for c in containers {
            let bundle = self.paths.bundle(uid, c);
            shim::remove_stale(&self.paths.oci_root(), &self.paths.container_id(uid, c));
            shim::unmount_rootfs(&bundle);
        }
        let dir = self.paths.pod(uid);
        sandbox::remove(&dir.join("ns"));
        sandbox::remove_tmpfs(&self.paths.pod_tmpfs(uid));
        cgroups::remove(&self.paths.pod_cgroup(uid));
        let _ = std::fs::remove_dir_all(&dir);
        self.sandboxes.lock().unwrap_or_else(PoisonError::into_inner).remove(uid);
    }
}

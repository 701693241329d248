//! `create`: the pod's sandbox and a container's bundle.

use super::shim::ShimConfig;
use super::{sandbox, spec, Runtime, RuntimeError};
use crate::api::downward::PodFacts;
use crate::api::manifest::{Container, Pod};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};

impl Runtime {
    /// Makes the pod's directories and namespaces, unless they exist.
    ///
    /// Every container of a pod calls this as it starts, concurrently. The
    /// pod's lock makes one caller create the sandbox while the others wait
    /// and then find it ready; after a failure the next caller tries again.
    /// (Two creations at once would each unmount and remove the other's
    /// namespaces: `bind /proc/self/ns/net: ENOENT`.)
    pub async fn create_sandbox(&self, uid: &str, pod: &Pod) -> Result<(), RuntimeError> {
        let lock = self.sandbox_lock(uid);
        let _held = lock.lock().await;
        let dir = self.paths.pod(uid);
        for d in ["logs", "volumes", "containers"] {
            let p = dir.join(d);
            std::fs::create_dir_all(&p).map_err(|e| RuntimeError::Io {
                path: p.clone(),
                source: e,
            })?;
        }
        sandbox::ensure_tmpfs(&self.paths.pod_tmpfs(uid))?;
        let ns = dir.join("ns");
        if sandbox::is_ready(&ns) {
            return Ok(());
        }
        let out = tokio::process::Command::new(&self.exe)
            .args(["shim", "sandbox"])
            .arg(&ns)
            .arg(pod.spec.host_name(&pod.metadata.name))
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| RuntimeError::Io {
                path: self.exe.clone(),
                source: e,
            })?;
        if !out.status.success() {
            return Err(RuntimeError::Shim(format!(
                "creating the pod sandbox: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Writes the pod's `/etc/hosts` and `/etc/resolv.conf` (`resolv`), once
    /// it has its address `ip`: the kubelet's hosts file, with the pod's
    /// own name on its address (and its `<hostname>.<subdomain>` name).
    pub async fn write_pod_files(&self, uid: &str, pod: &Pod, ip: std::net::Ipv4Addr, resolv: &str) -> Result<(), RuntimeError> {
        // Each container of the pod calls this as it starts; one at a time.
        let lock = self.sandbox_lock(uid);
        let _held = lock.lock().await;
        let host = pod.spec.host_name(&pod.metadata.name);
        let mut hosts = String::from(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
        );
        match pod.spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => hosts.push_str(&format!(
                "{ip}\t{host}.{sub}.{}.svc.{}\t{host}\n",
                pod.metadata.namespace(),
                crate::net::dns::CLUSTER_DOMAIN
            )),
            None => hosts.push_str(&format!("{ip}\t{host}\n")),
        }
        let dir = self.paths.pod(uid);
        for (name, text) in [("hosts", hosts.as_str()), ("resolv.conf", resolv)] {
            let path = dir.join(name);
            // Running containers bind-mount these files: rewrite only what differs.
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
                std::fs::write(&path, text).map_err(|source| RuntimeError::Io { path, source })?;
            }
        }
        Ok(())
    }

    /// The lock that serialises the sandbox creation of pod `uid`.
    fn sandbox_lock(&self, uid: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.sandboxes.lock().unwrap_or_else(PoisonError::into_inner);
        locks.entry(uid.to_string()).or_default().clone()
    }

    /// Writes the bundle of container `c`: `config.json` and `shim.json`.
    pub fn create_bundle(&self, uid: &str, pod: &Pod, c: &Container, facts: &PodFacts) -> Result<PathBuf, RuntimeError> {
        let image = self.images.resolve(&c.image)?;
        self.images.touch(&image.digest);
        self.project(uid, pod, &facts.configs)?;
        let bundle = self.paths.bundle(uid, &c.name);
        std::fs::create_dir_all(&bundle).map_err(|e| RuntimeError::Io {
            path: bundle.clone(),
            source: e,
        })?;
        spec::write_spec(&self.paths, uid, pod, c, &image, facts, &bundle)?;
        let cfg = ShimConfig {
            id: self.paths.container_id(uid, &c.name),
            oci_root: self.paths.oci_root(),
            log: self.paths.log(uid, &c.name),
            layers: image.layers,
            cgroup: format!("{}/{}", self.paths.pod_cgroup(uid), c.name),
        };
        let p = bundle.join("shim.json");
        std::fs::write(&p, serde_json::to_vec_pretty(&cfg).expect("plain struct")).map_err(|e| RuntimeError::Io { path: p, source: e })?;
        Ok(bundle)
    }

    /// Writes the files of the pod's configMap and secret volumes from
    /// `configs`; a volume whose files are there already is left alone.
    /// Returns the names of the volumes it changed.
    pub fn project(&self, uid: &str, pod: &Pod, configs: &super::projection::PodConfigs) -> Result<Vec<String>, RuntimeError> {
        let mut changed = Vec::new();
        let lock = {
            let mut all = self.projections.lock().unwrap_or_else(PoisonError::into_inner);
            all.retain(|_, l| Arc::strong_count(l) > 1);
            all.entry(uid.to_string()).or_default().clone()
        };
        let _one = lock.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.paths.pod(uid).join("ns").exists() {
            return Ok(changed); // torn down (or not yet set up): nothing to write into
        }
        if pod.spec.volumes.iter().any(|v| v.secret.is_some()) {
            // Never a Secret's value on disk: its tmpfs first.
            sandbox::ensure_tmpfs(&self.paths.pod_tmpfs(uid))?;
        }
        for vol in &pod.spec.volumes {
            let Some(files) = super::projection::files_of(vol, pod.metadata.namespace(), configs) else {
                continue;
            };
            let dir = super::spec::config_volume_dir(&self.paths, uid, vol);
            let files = super::projection::sorted(files?);
            if super::projection::write(&dir, &files).map_err(|e| RuntimeError::Io { path: dir, source: e })? {
                changed.push(vol.name.clone());
            }
        }
        Ok(changed)
    }
}

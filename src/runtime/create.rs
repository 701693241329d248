//! `create`: the pod's sandbox and a container's bundle.

use super::shim::ShimConfig;
use super::{sandbox, spec, Runtime, RuntimeError};
use crate::api::manifest::{Container, Pod};
use std::path::PathBuf;

impl Runtime {
    /// Makes the pod's directories, `/etc/hosts` and namespaces, unless they exist.
    pub async fn create_sandbox(&self, uid: &str, pod: &Pod) -> Result<(), RuntimeError> {
        let dir = self.paths.pod(uid);
        for d in ["logs", "volumes", "containers"] {
            let p = dir.join(d);
            std::fs::create_dir_all(&p).map_err(|e| RuntimeError::Io {
                path: p.clone(),
                source: e,
            })?;
        }
        let hosts = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n127.0.1.1\t{}\n",
            pod.metadata.name
        );
        let hp = dir.join("hosts");
        std::fs::write(&hp, hosts).map_err(|e| RuntimeError::Io {
            path: hp.clone(),
            source: e,
        })?;
        let ns = dir.join("ns");
        if sandbox::is_ready(&ns) {
            return Ok(());
        }
        let out = tokio::process::Command::new(&self.exe)
            .args(["shim", "sandbox"])
            .arg(&ns)
            .arg(&pod.metadata.name)
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

    /// Writes the bundle of container `c`: `config.json` and `shim.json`.
    pub fn create_bundle(&self, uid: &str, pod: &Pod, c: &Container) -> Result<PathBuf, RuntimeError> {
        let image = self.images.resolve(&c.image)?;
        let bundle = self.paths.bundle(uid, &c.name);
        std::fs::create_dir_all(&bundle).map_err(|e| RuntimeError::Io {
            path: bundle.clone(),
            source: e,
        })?;
        spec::write_spec(&self.paths, uid, pod, c, &image, &bundle)?;
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
}

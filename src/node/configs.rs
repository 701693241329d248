//! What a pod on this node takes from ConfigMaps and Secrets, read from the
//! node's replica: the values its environment and volumes refer to, and
//! the registry credentials of its `imagePullSecrets`.

use crate::api::manifest::{Config, Pod, DOCKER_CONFIG_JSON};
use crate::runtime::image::docker_config;
use crate::runtime::projection::{PodConfigs, Source};
use crate::state::Replica;
use std::collections::BTreeMap;
use tracing::warn;

/// The ConfigMaps and Secrets `pod` refers to, as the replica has them.
pub fn pod_configs(replica: &Replica, pod: &Pod) -> PodConfigs {
    let ns = pod.metadata.namespace();
    let mut out = PodConfigs::default();
    for (source, name) in PodConfigs::refs(pod) {
        let got = match replica.config(source.kind(), ns, &name) {
            Ok(g) => g,
            Err(e) => {
                warn!(%ns, %name, error = %e, "reading a {} failed", source.kind());
                continue;
            }
        };
        let Some(obj) = got else { continue };
        let values = obj.config.values();
        match source {
            Source::ConfigMap => out.config_maps.insert(name, values),
            Source::Secret => out.secrets.insert(name, values),
        };
    }
    out
}

/// Whether `pod` has configMap or secret volumes (what changes reach).
pub fn has_config_volumes(pod: &Pod) -> bool {
    pod.spec.volumes.iter().any(|v| v.config_map.is_some() || v.secret.is_some())
}

/// The registry credentials of the pod's `imagePullSecrets`, in order. A
/// Secret that is missing or not a pull secret is skipped with a warning,
/// as the kubelet does: the pull goes on without it.
pub fn pull_secrets(replica: &Replica, pod: &Pod) -> Vec<BTreeMap<String, (String, String)>> {
    let ns = pod.metadata.namespace();
    let mut out = Vec::new();
    for r in &pod.spec.image_pull_secrets {
        let s = match replica.config("Secret", ns, &r.name) {
            Ok(Some(obj)) => match obj.config {
                Config::Secret(s) => s,
                Config::ConfigMap(_) => continue,
            },
            Ok(None) => {
                warn!(pod = %pod.metadata.name, secret = %r.name, "image pull secret not found; pulling without it");
                continue;
            }
            Err(e) => {
                warn!(secret = %r.name, error = %e, "reading an image pull secret failed");
                continue;
            }
        };
        if s.type_name() != DOCKER_CONFIG_JSON {
            warn!(secret = %r.name, "image pull secret is of type {}, not {DOCKER_CONFIG_JSON}; skipped", s.type_name());
            continue;
        }
        match s.values().get(".dockerconfigjson").map(|v| docker_config::parse(v)) {
            Some(Ok(f)) => out.push(f),
            // The parser's text may quote the Secret's content: not logged.
            Some(Err(_)) => warn!(secret = %r.name, "image pull secret's .dockerconfigjson is not valid; skipped"),
            None => {}
        }
    }
    out
}

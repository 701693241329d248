//! The downward API's environment variables: `valueFrom.fieldRef` names a
//! field of the pod, resolved when the container is created (Kubernetes'
//! supported `fieldPath`s).

use super::manifest::Pod;
use std::net::IpAddr;

/// What only the node knows when it creates a container.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    /// The pod's uid.
    pub uid: String,
    /// The node running it.
    pub node_name: String,
    /// Its address on the pod network.
    pub pod_ip: Option<IpAddr>,
    /// The node's address.
    pub host_ip: Option<IpAddr>,
    /// The ConfigMaps and Secrets the pod refers to, as the state has them.
    pub configs: crate::runtime::projection::PodConfigs,
}

/// The field paths Kubernetes allows in an env var's `fieldRef`.
pub const FIELD_PATHS: [&str; 9] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels['<KEY>']",
    "spec.nodeName",
    "status.podIP",
    "status.podIPs",
    "status.hostIP",
    "status.hostIPs",
];

/// The label key of `metadata.labels['key']`.
fn label_key(path: &str) -> Option<&str> {
    let k = path.strip_prefix("metadata.labels['")?.strip_suffix("']")?;
    (!k.is_empty()).then_some(k)
}

/// Whether `path` is a supported field path (its value may still be empty).
pub fn supported(path: &str) -> bool {
    label_key(path).is_some_and(|k| super::validate::label_key(k).is_ok()) || FIELD_PATHS.iter().any(|p| *p == path && !p.contains('<'))
}

/// The value of `path` for `pod`; empty when the field has no value (a label
/// the pod does not carry).
pub fn field_value(pod: &Pod, facts: &PodFacts, path: &str) -> String {
    let ip = |v: &Option<IpAddr>| v.map(|i| i.to_string()).unwrap_or_default();
    match path {
        "metadata.name" => pod.metadata.name.clone(),
        "metadata.namespace" => pod.metadata.namespace().to_string(),
        "metadata.uid" => facts.uid.clone(),
        "spec.nodeName" => facts.node_name.clone(),
        "status.podIP" | "status.podIPs" => ip(&facts.pod_ip),
        "status.hostIP" | "status.hostIPs" => ip(&facts.host_ip),
        other => label_key(other)
            .and_then(|k| pod.metadata.labels.get(k).cloned())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_resolve_and_only_kubernetes_paths_are_supported() {
        let pod: Pod = serde_yaml_ng::from_str(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop, labels: {app: web}}\nspec: {containers: [{name: c, image: busybox}]}",
        )
        .unwrap();
        let facts = PodFacts {
            configs: Default::default(),
            uid: "u1".into(),
            node_name: "pi-3".into(),
            pod_ip: Some("10.42.3.7".parse().unwrap()),
            host_ip: Some("192.168.1.3".parse().unwrap()),
        };
        let v = |p: &str| field_value(&pod, &facts, p);
        assert_eq!(v("metadata.name"), "web");
        assert_eq!(v("metadata.namespace"), "shop");
        assert_eq!(v("metadata.uid"), "u1");
        assert_eq!(v("spec.nodeName"), "pi-3");
        assert_eq!(v("status.podIP"), "10.42.3.7");
        assert_eq!(v("status.hostIP"), "192.168.1.3");
        assert_eq!(v("metadata.labels['app']"), "web");
        assert_eq!(v("metadata.labels['tier']"), "");
        assert!(supported("status.podIPs") && supported("metadata.labels['app']"));
        assert!(!supported("spec.containers") && !supported("metadata.labels['']") && !supported("metadata.labels['<KEY>']"));
    }
}

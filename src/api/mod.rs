//! The user-facing API: manifest types, their validation, pod status, and the
//! requests the client sends over QUIC.

pub mod downward;
pub mod manifest;
pub mod quantity;
pub mod status;
pub mod validate;
pub mod wire;

use manifest::Pod;
use serde::Deserialize;

/// A manifest document that was refused; nothing of the apply was stored.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The text is not YAML.
    #[error("document {document}: malformed YAML: {message}")]
    Yaml {
        /// 1-based document index.
        document: usize,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A field has the wrong shape or is not supported.
    #[error("document {document} ({kind}): {path}: {message}")]
    Field {
        /// 1-based document index.
        document: usize,
        /// The object kind.
        kind: String,
        /// Path of the field, such as `spec.containers[0]`.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The kind is not one Shoal runs yet.
    #[error("document {document}: kind {kind:?} (apiVersion {api_version:?}) is not supported; supported: {SUPPORTED}")]
    UnsupportedKind {
        /// 1-based document index.
        document: usize,
        /// The kind given.
        kind: String,
        /// The apiVersion given.
        api_version: String,
    },
    /// The object parsed but breaks a rule.
    #[error("document {document} ({kind} {name:?}): {}", problems.join("; "))]
    Invalid {
        /// 1-based document index.
        document: usize,
        /// The object kind.
        kind: String,
        /// The object's name.
        name: String,
        /// Each problem as `field: reason`.
        problems: Vec<String>,
    },
    /// No object in the input.
    #[error("no objects in the input")]
    Empty,
}

/// One object of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A v1 Pod.
    Pod(Box<Pod>),
    /// An apps/v1 Deployment, ReplicaSet or DaemonSet.
    Workload(Box<manifest::Workload>),
    /// A v1 Service.
    Service(Box<manifest::Service>),
    /// v1 Endpoints or a discovery.k8s.io/v1 EndpointSlice given by hand.
    Endpoints(Box<manifest::Manual>),
    /// A v1 ConfigMap or Secret.
    Config(Box<manifest::Config>),
}

/// The kinds Shoal runs, as an error lists them.
const SUPPORTED: &str =
    "Pod, Service, Endpoints, ConfigMap, Secret (v1), Deployment, ReplicaSet, DaemonSet (apps/v1), EndpointSlice (discovery.k8s.io/v1)";

/// Parses one or many YAML documents (block or flow style) into validated objects.
pub fn parse_manifests(text: &str) -> Result<Vec<Object>, ManifestError> {
    let mut objects = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let value = serde_yaml_ng::Value::deserialize(doc).map_err(|e| ManifestError::Yaml {
            document,
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        let field = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let (kind, api_version) = (field("kind"), field("apiVersion"));
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("")
            .to_string();
        fn typed<T: serde::de::DeserializeOwned>(v: serde_yaml_ng::Value, document: usize, kind: &str) -> Result<T, ManifestError> {
            serde_path_to_error::deserialize(v).map_err(|e| ManifestError::Field {
                document,
                kind: kind.to_string(),
                path: e.path().to_string(),
                message: e.inner().to_string(),
            })
        }
        let (object, problems) = match kind.as_str() {
            "Pod" => {
                let pod: Pod = typed(value, document, &kind)?;
                let problems = validate::validate_pod(&pod);
                (Object::Pod(Box::new(pod)), problems)
            }
            "Deployment" | "ReplicaSet" | "DaemonSet" => {
                let w = match kind.as_str() {
                    "Deployment" => manifest::Workload::Deployment(typed(value, document, &kind)?),
                    "ReplicaSet" => manifest::Workload::ReplicaSet(typed(value, document, &kind)?),
                    _ => manifest::Workload::DaemonSet(typed(value, document, &kind)?),
                };
                let problems = validate::validate_workload(&w);
                (Object::Workload(Box::new(w.without_status())), problems)
            }
            "Service" => {
                let s: manifest::Service = typed(value, document, &kind)?;
                let problems = validate::validate_service(&s);
                (Object::Service(Box::new(s)), problems)
            }
            "Endpoints" => {
                let e: manifest::Endpoints = typed(value, document, &kind)?;
                let problems = validate::validate_endpoints(&e);
                (Object::Endpoints(Box::new(manifest::Manual::Endpoints(e))), problems)
            }
            "EndpointSlice" => {
                let e: manifest::EndpointSlice = typed(value, document, &kind)?;
                let problems = validate::validate_endpoint_slice(&e);
                (Object::Endpoints(Box::new(manifest::Manual::EndpointSlice(e))), problems)
            }
            "ConfigMap" => {
                let c: manifest::ConfigMap = typed(value, document, &kind)?;
                let problems = validate::validate_config_map(&c);
                (Object::Config(Box::new(manifest::Config::ConfigMap(c))), problems)
            }
            "Secret" => {
                let s: manifest::Secret = typed(value, document, &kind)?;
                let problems = validate::validate_secret(&s);
                (Object::Config(Box::new(manifest::Config::Secret(s.normalised()))), problems)
            }
            _ => {
                return Err(ManifestError::UnsupportedKind {
                    document,
                    kind,
                    api_version,
                })
            }
        };
        if !problems.is_empty() {
            return Err(ManifestError::Invalid {
                document,
                kind,
                name,
                problems,
            });
        }
        objects.push(object);
    }
    if objects.is_empty() {
        return Err(ManifestError::Empty);
    }
    Ok(objects)
}

/// Parses manifests that must hold pods only (tests and tools).
pub fn parse_pods(text: &str) -> Result<Vec<Pod>, ManifestError> {
    Ok(parse_manifests(text)?
        .into_iter()
        .filter_map(|o| match o {
            Object::Pod(p) => Some(*p),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubernetes_documentations_examples_parse_unchanged() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes");
        let mut kinds = std::collections::BTreeSet::new();
        for f in std::fs::read_dir(&dir).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let objects = parse_manifests(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                for o in objects {
                    kinds.insert(match o {
                        Object::Pod(_) => "Pod",
                        Object::Workload(_) => "Workload",
                        Object::Service(_) => "Service",
                        Object::Endpoints(e) => e.kind(),
                        Object::Config(c) => c.kind(),
                    });
                }
            }
        }
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            ["EndpointSlice", "Pod", "Service", "Workload"]
        );
    }

    #[test]
    fn bad_services_are_refused_by_field() {
        let refused = |yaml: &str, want: &str| {
            let e = parse_manifests(yaml).unwrap_err().to_string();
            assert!(e.contains(want), "{want:?} not in {e}");
        };
        let svc = |spec: &str| format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {spec}\n");
        refused(&svc("{ports: [{port: 80, protocol: SCTP}]}"), "spec.ports[0].protocol");
        refused(&svc("{ports: [{port: 70000}]}"), "spec.ports[0].port");
        refused(&svc("{ports: [{port: 80}, {port: 81}]}"), "spec.ports[0].name: Required value");
        refused(&svc("{ports: [{port: 80, nodePort: 30001}]}"), "spec.ports[0].nodePort");
        refused(&svc("{type: NodePort, ports: [{port: 80, nodePort: 80}]}"), "30000-32767");
        refused(&svc("{type: Magic, ports: [{port: 80}]}"), "spec.type");
        refused(&svc("{clusterIP: 10.43.0.300, ports: [{port: 80}]}"), "spec.clusterIP");
        refused(&svc("{sessionAffinity: Cookie, ports: [{port: 80}]}"), "spec.sessionAffinity");
        refused(
            &svc("{ports: [{port: 80}], loadBalancerSourceRangez: []}"),
            "loadBalancerSourceRangez",
        );
        refused(&svc("{type: ExternalName}"), "spec.externalName: Required value");
        refused(&svc("{ipFamilies: [IPv6], ports: [{port: 80}]}"), "spec.ipFamilies[0]");
        refused(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\naddressType: FQDN\nendpoints: []\n",
            "addressType",
        );
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n";

    #[test]
    fn block_and_flow_style_parse_the_same() {
        let flow = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}"#;
        assert_eq!(parse_pods(POD).unwrap(), parse_pods(flow).unwrap());
    }

    #[test]
    fn many_documents_parse_in_order() {
        let two = format!("{POD}---\n{}", POD.replace("name: web", "name: api"));
        let pods = parse_pods(&two).unwrap();
        assert_eq!(pods[1].metadata.name, "api");
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let text = POD.replace("image: busybox", "image: busybox\n    lifecycle: {}");
        let err = parse_manifests(&text).unwrap_err().to_string();
        assert!(err.contains("spec.containers[0]") && err.contains("lifecycle"), "{err}");
    }

    #[test]
    fn pod_affinity_is_refused_with_its_path() {
        let text = POD.replace("containers:", "affinity:\n    podAntiAffinity: {}\n  containers:");
        let err = parse_manifests(&text).unwrap_err().to_string();
        assert!(
            err.ends_with("spec.affinity.podAntiAffinity: unknown field `podAntiAffinity`, expected `nodeAffinity`"),
            "{err}"
        );
    }

    #[test]
    fn malformed_yaml_names_the_line() {
        let err = parse_manifests("kind: Pod\n  bad: [").unwrap_err().to_string();
        assert!(err.contains("malformed YAML") && err.contains("line"), "{err}");
    }

    #[test]
    fn invalid_name_is_refused() {
        let err = parse_manifests(&POD.replace("name: web", "name: Web_1")).unwrap_err().to_string();
        assert!(err.contains("metadata.name") && err.contains("RFC 1123"), "{err}");
    }

    #[test]
    fn unsupported_kind_is_named() {
        let err = parse_manifests("apiVersion: batch/v1\nkind: CronJob\n").unwrap_err().to_string();
        assert!(err.contains("CronJob") && err.contains("Deployment"), "{err}");
    }

    #[test]
    fn topology_spread_constraints_parse_and_are_checked() {
        let spread = "topologySpreadConstraints:\n  - maxSkew: 1\n    topologyKey: topology.kubernetes.io/zone\n    whenUnsatisfiable: DoNotSchedule\n    labelSelector: {matchLabels: {app: web}}\n  containers:";
        let pods = parse_pods(&POD.replace("containers:", spread)).unwrap();
        assert_eq!(pods[0].spec.topology_spread_constraints[0].max_skew, 1);
        let err = parse_manifests(&POD.replace("containers:", &spread.replace("maxSkew: 1", "maxSkew: 0")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("spec.topologySpreadConstraints[0].maxSkew: 0 must be greater than zero"),
            "{err}"
        );
        let err = parse_manifests(&POD.replace("containers:", &spread.replace("DoNotSchedule", "Sometimes")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("whenUnsatisfiable") && err.contains("Sometimes"), "{err}");
    }

    #[test]
    fn volume_mount_must_name_a_volume() {
        let text = POD.replace("image: busybox", "image: busybox\n    volumeMounts: [{name: data, mountPath: /d}]");
        let err = parse_manifests(&text).unwrap_err().to_string();
        assert!(err.contains("volumeMounts[0].name"), "{err}");
    }
}

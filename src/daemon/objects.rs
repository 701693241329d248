//! Object requests: writes go through Raft (forwarded to the leader,
//! answered once committed); reads come from this node's replica.

use crate::api::wire::{Applied, PodRef, PodView, Reply};
use crate::api::{parse_manifests, Object};
use crate::consensus::Consensus;
use crate::state::{Command, PodObject, Response};

fn error(message: impl Into<String>) -> Reply {
    Reply::Error { message: message.into() }
}

/// A pod as the API shows it.
pub fn view(p: PodObject) -> PodView {
    PodView {
        pod: p.pod,
        uid: p.uid,
        created_at: p.created_ms,
        status: p.status,
        unschedulable: p.unschedulable,
    }
}

pub(crate) fn new_uid() -> String {
    format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>())
}

/// Validates every document, then commits each object in turn; the first
/// refusal stops the rest and says what was applied before it.
pub async fn apply(c: &Consensus, manifest: &str) -> Reply {
    write(c, manifest, false).await
}

/// As [`apply`], but an object that exists is refused (`shoal create`);
/// only ConfigMaps and Secrets.
pub async fn create(c: &Consensus, manifest: &str) -> Reply {
    write(c, manifest, true).await
}

async fn write(c: &Consensus, manifest: &str, create_only: bool) -> Reply {
    let parsed = match parse_manifests(manifest) {
        Ok(p) => p,
        Err(e) => return error(e.to_string()),
    };
    let mut objects: Vec<Applied> = Vec::new();
    if create_only && parsed.iter().any(|o| !matches!(o, Object::Config(_))) {
        return error("create makes ConfigMaps and Secrets; use apply for other objects");
    }
    for obj in parsed {
        let now_ms = crate::runtime::shim::now_ms();
        let (object, cmd) = match obj {
            Object::Pod(pod) => (
                format!("pod/{}", pod.metadata.name),
                Command::PutPod {
                    pod,
                    uid: new_uid(),
                    now_ms,
                },
            ),
            Object::Workload(w) => (
                format!("{}.apps/{}", w.kind().lower(), w.metadata().name),
                Command::PutWorkload {
                    workload: w,
                    uid: new_uid(),
                    now_ms,
                    expect_generation: None,
                },
            ),
            Object::Service(s) => (
                format!("service/{}", s.metadata.name),
                Command::PutService {
                    service: s,
                    uid: new_uid(),
                    now_ms,
                },
            ),
            Object::Endpoints(e) => (
                match &*e {
                    crate::api::manifest::Manual::Endpoints(x) => format!("endpoints/{}", x.metadata.name),
                    crate::api::manifest::Manual::EndpointSlice(x) => format!("endpointslice.discovery.k8s.io/{}", x.metadata.name),
                },
                Command::PutEndpoints { endpoints: e, now_ms },
            ),
            Object::Config(config) => (
                format!("{}/{}", config.kind().to_lowercase(), config.metadata().name),
                Command::PutConfig {
                    config,
                    uid: new_uid(),
                    now_ms,
                    create_only,
                },
            ),
        };
        let failure = match c.write(cmd).await {
            Ok(Response::Done(action)) => {
                objects.push(Applied { object, action });
                continue;
            }
            Ok(Response::Refused(why)) => why,
            Ok(other) => format!("{object}: unexpected answer {other:?}"),
            Err(e) => format!("{object}: {e}"),
        };
        let done: Vec<String> = objects.iter().map(|a| format!("{} {}", a.object, a.action)).collect();
        let prefix = if done.is_empty() {
            String::new()
        } else {
            format!("(applied before the error: {}) ", done.join(", "))
        };
        return error(format!("{prefix}{failure}"));
    }
    Reply::Applied { objects }
}

/// Deletes a pod: its node stops it (SIGTERM, grace period, SIGKILL).
pub async fn delete(c: &Consensus, p: &PodRef) -> Reply {
    let cmd = Command::DeletePod {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        now_ms: crate::runtime::shim::now_ms(),
    };
    match c.write(cmd).await {
        Ok(Response::Refused(why)) => error(why),
        Ok(_) => Reply::Deleted {
            object: format!("pod/{}", p.name),
        },
        Err(e) => error(e.to_string()),
    }
}

/// Every pod, or those of one namespace.
pub fn pods(c: &Consensus, namespace: Option<&str>) -> Reply {
    match c.replica.pods() {
        Ok(pods) => Reply::Pods {
            pods: pods
                .into_iter()
                .filter(|p| namespace.is_none_or(|n| p.key().0 == n))
                .map(view)
                .collect(),
        },
        Err(e) => error(format!("reading the state: {e}")),
    }
}

/// One pod.
pub fn pod(c: &Consensus, p: &PodRef) -> Reply {
    match c.replica.pod(&p.namespace, &p.name) {
        Ok(Some(obj)) => Reply::Pods { pods: vec![view(obj)] },
        Ok(None) => error(format!("pod {:?} not found in namespace {:?}", p.name, p.namespace)),
        Err(e) => error(format!("reading the state: {e}")),
    }
}

/// ConfigMaps or Secrets, from this node's replica.
pub fn configs(c: &Consensus, kind: &str, namespace: Option<&str>, name: Option<&str>) -> Reply {
    if !matches!(kind, "ConfigMap" | "Secret") {
        return error(format!("unknown kind {kind:?} (ConfigMap or Secret)"));
    }
    let items = match c.replica.configs(kind) {
        Ok(all) => all,
        Err(e) => return error(format!("reading the state: {e}")),
    };
    let items: Vec<_> = items
        .into_iter()
        .filter(|o| namespace.is_none_or(|n| o.key().0 == n) && name.is_none_or(|n| o.key().1 == n))
        .collect();
    if let (Some(n), true) = (name, items.is_empty()) {
        let ns = namespace.unwrap_or("default");
        return error(format!("{} {n:?} not found in namespace {ns:?}", kind.to_lowercase()));
    }
    Reply::Configs { items }
}

/// Deletes a ConfigMap or Secret. Pods that use it keep what they have.
pub async fn delete_config(c: &Consensus, kind: &str, namespace: &str, name: &str) -> Reply {
    let cmd = Command::DeleteConfig {
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    };
    match c.write(cmd).await {
        Ok(Response::Refused(why)) => error(why),
        Ok(_) => Reply::Deleted {
            object: format!("{}/{name}", kind.to_lowercase()),
        },
        Err(e) => error(e.to_string()),
    }
}

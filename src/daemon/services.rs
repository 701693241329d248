//! Service requests: reads from this node's replica, with each Service's
//! endpoints worked out here as the node's own proxy works them out
//! (gossip says which nodes are Down); writes through Raft.

use super::cluster_api::ClusterDeps;
use crate::api::wire::{Reply, ServiceView};
use crate::consensus::Consensus;
use crate::state::{Command, Response};

fn error(message: impl Into<String>) -> Reply {
    Reply::Error { message: message.into() }
}

/// Services in `namespace` (all when `None`), or the one named.
pub async fn get(deps: &ClusterDeps, namespace: Option<&str>, name: Option<&str>) -> Reply {
    let replica = &deps.consensus.replica;
    let read = || -> rusqlite::Result<_> { Ok((replica.services()?, replica.endpoints_objects()?, replica.pods()?)) };
    let (services, manual, pods) = match read() {
        Ok(r) => r,
        Err(e) => return error(format!("reading the state: {e}")),
    };
    let services: Vec<_> = services
        .into_iter()
        .filter(|s| namespace.is_none_or(|ns| s.service.metadata.namespace() == ns))
        .filter(|s| name.is_none_or(|n| s.service.metadata.name == n))
        .collect();
    if let (Some(n), true) = (name, services.is_empty()) {
        return error(format!(
            "services {n:?} not found in namespace {:?}",
            namespace.unwrap_or("default")
        ));
    }
    let down = deps.gossip.down().await;
    let items = crate::net::endpoints::resolve(&services, &manual, &pods, &down)
        .into_iter()
        .map(|r| {
            let endpoints_created_ms = manual
                .iter()
                .filter(|e| e.manual.service() == r.service.key())
                .map(|e| e.created_ms)
                .min();
            ServiceView {
                service: r.service,
                backends: r.backends,
                endpoints_created_ms,
            }
        })
        .collect();
    Reply::Services { items }
}

/// Deletes a Service (`kind` `Service`), hand-written Endpoints or an
/// EndpointSlice.
pub async fn delete(c: &Consensus, kind: &str, namespace: &str, name: &str) -> Reply {
    let (cmd, object) = match kind {
        "Service" => (
            Command::DeleteService {
                namespace: namespace.into(),
                name: name.into(),
            },
            format!("service/{name}"),
        ),
        "Endpoints" | "EndpointSlice" => (
            Command::DeleteEndpoints {
                kind: kind.into(),
                namespace: namespace.into(),
                name: name.into(),
            },
            if kind == "Endpoints" {
                format!("endpoints/{name}")
            } else {
                format!("endpointslice.discovery.k8s.io/{name}")
            },
        ),
        other => return error(format!("cannot delete kind {other:?} here")),
    };
    match c.write(cmd).await {
        Ok(Response::Refused(why)) => error(why),
        Ok(_) => Reply::Changed {
            object,
            action: "deleted".into(),
        },
        Err(e) => error(e.to_string()),
    }
}

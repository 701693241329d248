//! `shoal delete pod NAME`, `shoal delete node NAME`

use super::Ctx;
use crate::api::wire::{PodRef, Reply, Request};
use anyhow::{bail, Result};

#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Kind: `pod`, `node`, `deployment`, `replicaset`, `daemonset` (or TYPE/NAME).
    kind: String,
    /// Name.
    name: Option<String>,
    /// What happens to what a workload owns: `background` (deleted with
    /// it) or `orphan` (left running, without the owner).
    #[arg(long, default_value = "background")]
    cascade: String,
}

pub(super) async fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let (kind, name) = super::kind_name_required("delete", &a.kind, a.name)?;
    if let Some(k) = super::workloads::kind_of(&kind) {
        return super::workloads::delete(ctx, k, name, &a.cascade).await;
    }
    if super::nodes::is_kind(&kind) {
        let req = Request::DeleteNode { name };
        if let Reply::NodeChanged { object, .. } = ctx.simple(&req).await? {
            println!("{object} deleted; it cannot come back without a new join token");
        }
        return Ok(0);
    }
    if super::services::is_service(&kind) || super::services::is_endpoints(&kind) || super::services::is_slice(&kind) {
        return super::services::delete(ctx, &kind, name).await;
    }
    if let Some(k) = super::config::kind_of(&kind) {
        return super::config::delete(ctx, k, name).await;
    }
    if !matches!(kind.as_str(), "pod" | "pods" | "po") {
        bail!("kind {kind:?} is not supported (use pod, node, deployment, replicaset, daemonset, service, endpoints, configmap or secret)");
    }
    let req = Request::DeletePod(PodRef {
        namespace: ctx.namespace.clone(),
        name,
    });
    if let Reply::Deleted { object } = ctx.simple(&req).await? {
        println!("{object} deleted");
    }
    Ok(0)
}

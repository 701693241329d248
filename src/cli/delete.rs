//! `shoal delete pod NAME`, `shoal delete node NAME`

use super::Ctx;
use crate::api::wire::{PodRef, Reply, Request};
use anyhow::{bail, Result};

#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Kind: `pod` or `node`.
    kind: String,
    /// Name.
    name: String,
}

pub(super) async fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    if super::nodes::is_kind(&a.kind) {
        let req = Request::DeleteNode { name: a.name };
        if let Reply::NodeChanged { object, .. } = ctx.simple(&req).await? {
            println!("{object} deleted; it cannot come back without a new join token");
        }
        return Ok(0);
    }
    if !matches!(a.kind.as_str(), "pod" | "pods" | "po") {
        bail!("kind {:?} is not supported (use pod or node)", a.kind);
    }
    let req = Request::DeletePod(PodRef {
        namespace: ctx.namespace.clone(),
        name: a.name,
    });
    if let Reply::Deleted { object } = ctx.simple(&req).await? {
        println!("{object} deleted");
    }
    Ok(0)
}

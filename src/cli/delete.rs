//! `shoal delete pod NAME`

use super::Ctx;
use crate::api::wire::{PodRef, Reply, Request};
use anyhow::{bail, Result};

#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Kind: `pod`.
    kind: String,
    /// Name.
    name: String,
}

pub(super) async fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    if !matches!(a.kind.as_str(), "pod" | "pods" | "po") {
        bail!("kind {:?} is not supported (use pod)", a.kind);
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

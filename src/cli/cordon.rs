//! `shoal cordon|uncordon NODE`: no new pods on a node, or again.

use super::Ctx;
use crate::api::wire::{Reply, Request};
use anyhow::{bail, Result};

#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Node name.
    node: String,
}

pub(super) async fn run(ctx: &Ctx, a: Args, cordoned: bool) -> Result<i32> {
    let req = Request::Cordon { node: a.node, cordoned };
    match ctx.simple(&req).await? {
        Reply::NodeChanged { object, action } if action == "unchanged" => {
            println!("{object} already {}", if cordoned { "cordoned" } else { "uncordoned" })
        }
        Reply::NodeChanged { object, action } => println!("{object} {action}"),
        other => bail!("unexpected answer {other:?}"),
    }
    Ok(0)
}

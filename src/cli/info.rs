//! `shoal info`: what gossip has cost on the node asked (as `serf info`
//! shows memberlist's figures): members, health, and its traffic by kind.

use super::{Ctx, Output};
use crate::api::wire::{Reply, Request};
use anyhow::{bail, Result};

#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Output format: json or yaml (default: text).
    #[arg(short, long, value_enum)]
    output: Option<Output>,
}

pub(super) async fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let Reply::GossipInfo { stats } = ctx.simple(&Request::GossipInfo).await? else {
        bail!("unexpected answer")
    };
    match a.output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&stats)?),
        Some(Output::Yaml) => print!("{}", serde_yaml_ng::to_string(&stats)?),
        Some(Output::Wide) | None => print!("{stats}"),
    }
    Ok(0)
}

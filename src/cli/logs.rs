//! `shoal logs [-f] [-c CONTAINER] POD`

use super::Ctx;
use crate::api::wire::{PodRef, Request};
use crate::transport::framing::{read_frame, Frame};
use anyhow::Result;
use std::io::Write;

#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Keep printing new output.
    #[arg(short, long)]
    follow: bool,
    /// Container (default: the first).
    #[arg(short, long)]
    container: Option<String>,
    /// Pod name.
    pod: String,
}

pub(super) async fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let req = Request::Logs {
        pod: PodRef {
            namespace: ctx.namespace.clone(),
            name: a.pod,
        },
        container: a.container,
        follow: a.follow,
    };
    let mut call = ctx.stream(&req).await?;
    let mut out = std::io::stdout();
    while let Some(f) = read_frame(&mut call.recv).await? {
        if let Frame::Stdout(b) = f {
            out.write_all(&b)?;
            out.flush()?;
        }
    }
    Ok(0)
}

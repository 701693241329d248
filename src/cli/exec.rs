//! `shoal exec POD [-c CONTAINER] -- CMD...`

use super::Ctx;
use crate::api::wire::{PodRef, Request};
use crate::transport::framing::{read_frame, Frame};
use anyhow::{bail, Result};
use std::io::Write;

#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Container (default: the first).
    #[arg(short, long)]
    container: Option<String>,
    /// Pod name.
    pod: String,
    /// Program and arguments, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub(super) async fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let req = Request::Exec {
        pod: PodRef {
            namespace: ctx.namespace.clone(),
            name: a.pod,
        },
        container: a.container,
        command: a.command,
    };
    let mut call = ctx.stream(&req).await?;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    while let Some(f) = read_frame(&mut call.recv).await? {
        match f {
            Frame::Stdout(b) => out.write_all(&b)?,
            Frame::Stderr(b) => err.write_all(&b)?,
            Frame::Exit(code) => {
                out.flush()?;
                return Ok(code);
            }
            _ => {}
        }
    }
    bail!("the connection ended before the command's exit code arrived")
}

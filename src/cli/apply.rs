//! `shoal apply -f FILE|-`

use super::Ctx;
use crate::api::wire::{Reply, Request};
use anyhow::{Context, Result};
use std::io::Read;

#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Manifest file, or `-` for standard input.
    #[arg(short = 'f', long = "filename")]
    file: String,
}

pub(super) async fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let manifest = if a.file == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading standard input")?;
        s
    } else {
        std::fs::read_to_string(&a.file).with_context(|| format!("reading {}", a.file))?
    };
    if let Reply::Applied { objects } = ctx.simple(&Request::Apply { manifest }).await? {
        for o in objects {
            println!("{} {}", o.object, o.action);
        }
    }
    Ok(0)
}

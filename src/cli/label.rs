//! `shoal label node NAME key=value ... key-`, as `kubectl label`.

use super::Ctx;
use crate::api::wire::{Reply, Request};
use anyhow::{bail, Result};
use std::collections::BTreeMap;

#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Kind: `node`.
    kind: String,
    /// Node name.
    name: String,
    /// `key=value` sets; `key-` removes.
    #[arg(required = true)]
    labels: Vec<String>,
    /// Let a label that has a value take another.
    #[arg(long)]
    overwrite: bool,
}

pub(super) async fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    if !super::nodes::is_kind(&a.kind) {
        bail!(
            "kind {:?} cannot be labeled by Shoal (use node; pods and workloads take labels from their manifest)",
            a.kind
        );
    }
    let (mut set, mut remove) = (BTreeMap::new(), Vec::new());
    for l in &a.labels {
        match (l.strip_suffix('-'), l.split_once('=')) {
            (Some(key), None) => remove.push(key.to_string()),
            (_, Some((k, v))) if !k.is_empty() => {
                set.insert(k.to_string(), v.to_string());
            }
            _ => bail!("label {l:?}: write key=value to set or key- to remove"),
        }
    }
    let req = Request::Label {
        node: a.name,
        set,
        remove,
        overwrite: a.overwrite,
    };
    match ctx.simple(&req).await? {
        Reply::NodeChanged { object, action } => println!("{object} {action}"),
        other => bail!("unexpected answer {other:?}"),
    }
    Ok(0)
}

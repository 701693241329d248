//! `shoal taint node NAME KEY[=VALUE]:EFFECT ... | KEY[:EFFECT]-`, as `kubectl taint`.

use super::Ctx;
use crate::api::wire::{Reply, Request};
use crate::scheduler::{Taint, TaintEffect};
use anyhow::{anyhow, bail, Result};

#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Kind: `node`.
    kind: String,
    /// Node name.
    name: String,
    /// `key=value:Effect` adds; `key:Effect-` or `key-` removes.
    #[arg(required = true)]
    taints: Vec<String>,
}

fn effect(s: &str) -> Result<TaintEffect> {
    match s {
        "NoSchedule" => Ok(TaintEffect::NoSchedule),
        "PreferNoSchedule" => Ok(TaintEffect::PreferNoSchedule),
        "NoExecute" => Ok(TaintEffect::NoExecute),
        other => bail!("unknown taint effect {other:?}: use NoSchedule, PreferNoSchedule or NoExecute"),
    }
}

/// Parses one argument: an addition, or a removal when it ends in `-`.
fn parse(arg: &str) -> Result<std::result::Result<Taint, (String, Option<TaintEffect>)>> {
    if let Some(rest) = arg.strip_suffix('-') {
        return Ok(Err(match rest.split_once(':') {
            Some((k, e)) => (k.to_string(), Some(effect(e)?)),
            None => (rest.to_string(), None),
        }));
    }
    let (kv, e) = arg
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("taint {arg:?} has no effect: write key=value:NoSchedule"))?;
    let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
    if key.is_empty() {
        bail!("taint {arg:?} has no key");
    }
    Ok(Ok(Taint {
        key: key.into(),
        value: value.into(),
        effect: effect(e)?,
    }))
}

pub(super) async fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    if !super::nodes::is_kind(&a.kind) {
        bail!("kind {:?} cannot be tainted (use node)", a.kind);
    }
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    for t in &a.taints {
        match parse(t)? {
            Ok(t) => add.push(t),
            Err(r) => remove.push(r),
        }
    }
    let req = Request::Taint { node: a.name, add, remove };
    match ctx.simple(&req).await? {
        Reply::NodeChanged { object, action } => println!("{object} {action}"),
        other => bail!("unexpected answer {other:?}"),
    }
    Ok(0)
}

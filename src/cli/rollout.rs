//! `scale`, `set image`, `rollout status|history|undo|pause|resume|restart`
//! and `drain`, as kubectl's.

use super::workloads::{fetch, kind_and_name};
use super::Ctx;
use crate::api::manifest::{Kind, Workload};
use crate::api::wire::{Reply, Request, WorkloadAction};
use crate::state::workload::REVISION;
use anyhow::{bail, Result};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub(super) struct ScaleArgs {
    /// `deployment/NAME` or `replicaset/NAME`.
    target: String,
    /// New number of replicas.
    #[arg(long)]
    replicas: i64,
}

#[derive(clap::Subcommand, Debug)]
pub(super) enum SetCmd {
    /// `set image deployment/NAME CONTAINER=IMAGE...`
    Image {
        /// `deployment/NAME`.
        target: String,
        /// `CONTAINER=IMAGE` pairs.
        #[arg(required = true)]
        images: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
pub(super) struct RolloutArgs {
    /// `status`, `history`, `undo`, `pause`, `resume` or `restart`.
    verb: String,
    /// `deployment/NAME`.
    target: String,
    /// `undo`: the revision to go back to (0: the previous one).
    #[arg(long, default_value_t = 0)]
    to_revision: u64,
    /// `status`: give up after this long (0: wait for ever).
    #[arg(long, default_value = "0s")]
    timeout: humantime::Duration,
    /// `status`: print once and return instead of following.
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set)]
    watch: bool,
}

#[derive(clap::Args, Debug)]
pub(super) struct DrainArgs {
    /// Node name.
    node: String,
    /// Evict DaemonSet pods too.
    #[arg(long)]
    include_daemonsets: bool,
    /// Accepted for kubectl compatibility: DaemonSet pods are left alone unless --include-daemonsets.
    #[arg(long)]
    ignore_daemonsets: bool,
}

async fn act(ctx: &Ctx, kind: Kind, name: String, action: WorkloadAction) -> Result<i32> {
    let req = Request::Workload {
        kind,
        namespace: ctx.namespace.clone(),
        name,
        action,
    };
    if let Reply::Changed { object, action } = ctx.simple(&req).await? {
        println!("{object} {action}");
    }
    Ok(0)
}

pub(super) async fn scale(ctx: &Ctx, a: ScaleArgs) -> Result<i32> {
    let (kind, name) = kind_and_name(&a.target)?;
    act(ctx, kind, name, WorkloadAction::Scale { replicas: a.replicas }).await
}

pub(super) async fn set(ctx: &Ctx, c: SetCmd) -> Result<i32> {
    let SetCmd::Image { target, images } = c;
    let (kind, name) = kind_and_name(&target)?;
    let mut pairs = Vec::new();
    for i in images {
        let Some((c, img)) = i.split_once('=') else {
            bail!("expected CONTAINER=IMAGE, got {i:?}")
        };
        pairs.push((c.to_string(), img.to_string()));
    }
    act(ctx, kind, name, WorkloadAction::SetImage { images: pairs }).await
}

pub(super) async fn drain(ctx: &Ctx, a: DrainArgs) -> Result<i32> {
    let req = Request::Drain {
        node: a.node,
        include_daemonsets: a.include_daemonsets,
    };
    if let Reply::Changed { object, action } = ctx.simple(&req).await? {
        println!("{object} {action}");
    }
    Ok(0)
}

pub(super) async fn rollout(ctx: &Ctx, a: RolloutArgs) -> Result<i32> {
    let (kind, name) = kind_and_name(&a.target)?;
    if kind != Kind::Deployment {
        bail!("rollout is supported for deployments only");
    }
    match a.verb.as_str() {
        "pause" => act(ctx, kind, name, WorkloadAction::Pause).await,
        "resume" => act(ctx, kind, name, WorkloadAction::Resume).await,
        "restart" => {
            let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
            act(ctx, kind, name, WorkloadAction::Restart { at }).await
        }
        "undo" => {
            act(
                ctx,
                kind,
                name,
                WorkloadAction::Undo {
                    to_revision: a.to_revision,
                },
            )
            .await
        }
        "history" => history(ctx, &name).await,
        "status" => status(ctx, &name, a.timeout.into(), a.watch).await,
        other => bail!("unknown rollout verb {other:?} (use status, history, undo, pause, resume or restart)"),
    }
}

async fn history(ctx: &Ctx, name: &str) -> Result<i32> {
    let (_, _, owned) = fetch(ctx, Kind::Deployment, Some(name), false).await?;
    let mut rows: Vec<(u64, String)> = owned
        .iter()
        .filter_map(|w| {
            let Workload::ReplicaSet(rs) = &w.workload else { return None };
            let rev = rs.metadata.annotations.get(REVISION)?.parse().ok()?;
            let cause = rs.spec.template.metadata.annotations.get("kubernetes.io/change-cause").cloned();
            Some((rev, cause.unwrap_or_else(|| "<none>".into())))
        })
        .collect();
    rows.sort();
    println!("deployment.apps/{name}");
    println!("{:<10} CHANGE-CAUSE", "REVISION");
    for (r, c) in rows {
        println!("{r:<10} {c}");
    }
    Ok(0)
}

/// Follows the rollout as `kubectl rollout status`: 0 once complete, 1
/// when the progress deadline passed or the wait timed out.
async fn status(ctx: &Ctx, name: &str, timeout: Duration, watch: bool) -> Result<i32> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let (items, _, _) = fetch(ctx, Kind::Deployment, Some(name), false).await?;
        let w = &items[0];
        let Workload::Deployment(d) = &w.workload else {
            bail!("not a Deployment")
        };
        let s = &w.status;
        let want = d.spec.replicas();
        let line = if s.observed_generation < w.generation {
            "Waiting for deployment spec update to be observed...".to_string()
        } else if let Some(c) = s.condition("Progressing").filter(|c| c.reason == "ProgressDeadlineExceeded") {
            eprintln!("error: deployment {name:?} exceeded its progress deadline ({})", c.message);
            return Ok(1);
        } else if s.updated_replicas < want {
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} out of {want} new replicas have been updated...",
                s.updated_replicas
            )
        } else if s.replicas > s.updated_replicas {
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                s.replicas - s.updated_replicas
            )
        } else if s.available_replicas < s.updated_replicas {
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} of {} updated replicas are available...",
                s.available_replicas, s.updated_replicas
            )
        } else {
            println!("deployment {name:?} successfully rolled out");
            return Ok(0);
        };
        if line != last {
            println!("{line}");
            last = line;
        }
        if !watch {
            return Ok(1);
        }
        if !timeout.is_zero() && start.elapsed() > timeout {
            eprintln!("error: timed out waiting for the condition");
            return Ok(1);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

//! `shoal get nodes`: the cluster's node objects with gossip's status (as
//! the node asked sees it) and their Raft roles.

use super::{age, Ctx, Output};
use crate::api::wire::{NodeRow, Reply, Request};
use anyhow::{bail, Result};

pub(super) fn is_kind(kind: &str) -> bool {
    matches!(kind, "nodes" | "node" | "no")
}

pub(super) async fn get(ctx: &Ctx, name: Option<String>, output: Option<Output>) -> Result<i32> {
    let Reply::ClusterNodes { mut nodes } = ctx.read(&Request::GetClusterNodes).await? else {
        bail!("unexpected answer")
    };
    if let Some(n) = &name {
        nodes.retain(|v| &v.name == n);
        if nodes.is_empty() {
            bail!("node {n:?} not found");
        }
    }
    match output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&nodes)?),
        Some(Output::Yaml) => print!("{}", serde_yaml_ng::to_string(&nodes)?),
        Some(Output::Wide) => table(&nodes, true),
        None => table(&nodes, false),
    }
    Ok(0)
}

fn gib(bytes: u64) -> String {
    format!("{:.1}Gi", bytes as f64 / (1u64 << 30) as f64)
}

fn table(nodes: &[NodeRow], wide: bool) {
    print!(
        "{:<20} {:<8} {:<8} {:<11} {:<6} {:<8} {:<22} {:<10}",
        "NAME", "STATUS", "ROLE", "SCHEDULING", "AGE", "VERSION", "ADDRESS", "ZONE"
    );
    if wide {
        print!(" {:<4} {:<8} {:<5} {:<7} LABELS", "CPU", "MEMORY", "PODS", "RAFT-ID");
    }
    println!();
    for n in nodes {
        print!(
            "{:<20} {:<8} {:<8} {:<11} {:<6} {:<8} {:<22} {:<10}",
            n.name,
            n.status,
            n.role,
            if n.cordoned { "Disabled" } else { "Enabled" },
            age(n.joined_ms),
            if n.version.is_empty() { "-" } else { &n.version },
            n.addr.to_string(),
            n.zone.as_deref().unwrap_or("-"),
        );
        if wide {
            let labels = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
            print!(
                " {:<4} {:<8} {:<5} {:<7} {}",
                n.cpus,
                gib(n.memory_bytes),
                n.pods,
                n.raft_id,
                if labels.is_empty() { "-".into() } else { labels }
            );
        }
        println!();
    }
}

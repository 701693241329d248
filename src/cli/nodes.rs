//! `shoal get nodes`: the members as the node asked sees them.

use super::{age, Ctx, Output};
use crate::api::wire::{Reply, Request};
use crate::gossip::NodeView;
use anyhow::{bail, Result};

pub(super) fn is_kind(kind: &str) -> bool {
    matches!(kind, "nodes" | "node" | "no")
}

pub(super) async fn get(ctx: &Ctx, name: Option<String>, output: Option<Output>) -> Result<i32> {
    let Reply::Nodes { mut nodes } = ctx.simple(&Request::GetNodes).await? else {
        bail!("unexpected answer")
    };
    if let Some(n) = &name {
        nodes.retain(|v| &v.name == n);
        if nodes.is_empty() {
            bail!("node {n:?} is not a member known to this node");
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

fn table(nodes: &[NodeView], wide: bool) {
    print!(
        "{:<20} {:<8} {:<7} {:<6} {:<8} {:<22} {:<10}",
        "NAME", "STATUS", "ROLE", "AGE", "VERSION", "ADDRESS", "ZONE"
    );
    if wide {
        print!(" {:<4} {:<8} LABELS", "CPU", "MEMORY");
    }
    println!();
    for n in nodes {
        let m = n.meta.as_ref();
        let dash = || "<unknown>".to_string();
        print!(
            "{:<20} {:<8} {:<7} {:<6} {:<8} {:<22} {:<10}",
            n.name,
            n.status.to_string(),
            m.map(|m| m.role.to_string()).unwrap_or_else(dash),
            m.map(|m| age(m.joined_ms)).unwrap_or_else(dash),
            m.map(|m| m.version.clone()).unwrap_or_else(dash),
            n.addr.to_string(),
            m.and_then(|m| m.zone.clone()).unwrap_or_else(|| "-".into()),
        );
        if wide {
            let labels = m
                .map(|m| m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
                .unwrap_or_default();
            print!(
                " {:<4} {:<8} {}",
                m.map(|m| m.cpus.to_string()).unwrap_or_else(dash),
                m.map(|m| gib(m.memory_bytes)).unwrap_or_else(dash),
                if labels.is_empty() { "-".into() } else { labels }
            );
        }
        println!();
    }
}

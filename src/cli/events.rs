//! `shoal get events`: what the cluster decided (scheduling, node removal).

use super::{age, Ctx, Output};
use crate::api::wire::{Reply, Request};
use crate::state::Event;
use anyhow::{bail, Result};

pub(super) fn is_kind(kind: &str) -> bool {
    matches!(kind, "events" | "event" | "ev")
}

/// Events about one object (`pod/NS/NAME`), or all.
pub(super) async fn fetch(ctx: &Ctx, object: Option<String>) -> Result<Vec<Event>> {
    let Reply::Events { events } = ctx.read(&Request::GetEvents { object }).await? else {
        bail!("unexpected answer")
    };
    Ok(events)
}

pub(super) async fn get(ctx: &Ctx, output: Option<Output>) -> Result<i32> {
    let events = fetch(ctx, None).await?;
    match output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&events)?),
        Some(Output::Yaml) => print!("{}", serde_yaml_ng::to_string(&events)?),
        _ => {
            println!("{:<8} {:<8} {:<18} {:<36} MESSAGE", "AGE", "TYPE", "REASON", "OBJECT");
            for e in &events {
                println!(
                    "{:<8} {:<8} {:<18} {:<36} {}",
                    age(e.time_ms),
                    e.kind,
                    e.reason,
                    e.object,
                    e.message
                );
            }
        }
    }
    Ok(0)
}

/// The `Events:` section of `describe`.
pub(super) fn print_section(events: &[Event]) {
    println!("Events:");
    if events.is_empty() {
        println!("  <none>");
        return;
    }
    println!("  {:<8} {:<18} {:<6} MESSAGE", "TYPE", "REASON", "AGE");
    for e in events {
        println!("  {:<8} {:<18} {:<6} {}", e.kind, e.reason, age(e.time_ms), e.message);
    }
}

//! `get`, `describe` and `delete` of Deployments, ReplicaSets and
//! DaemonSets, in kubectl's columns and words.

use super::{age, Ctx, Output};
use crate::api::manifest::{Kind, Workload};
use crate::api::wire::{PodView, Reply, Request};
use crate::state::{Cascade, WorkloadObject};
use anyhow::{bail, Result};

/// The kind a kubectl-style word names (`deploy`, `rs`, `daemonsets.apps`...).
pub(super) fn kind_of(word: &str) -> Option<Kind> {
    let w = word.strip_suffix(".apps").unwrap_or(word);
    match w {
        "deployment" | "deployments" | "deploy" => Some(Kind::Deployment),
        "replicaset" | "replicasets" | "rs" => Some(Kind::ReplicaSet),
        "daemonset" | "daemonsets" | "ds" => Some(Kind::DaemonSet),
        _ => None,
    }
}

/// Splits `deployment/web` into the kind and the name.
pub(super) fn kind_and_name(arg: &str) -> Result<(Kind, String)> {
    let Some((k, n)) = arg.split_once('/') else {
        bail!("expected TYPE/NAME such as deployment/web, got {arg:?}")
    };
    match kind_of(k) {
        Some(kind) => Ok((kind, n.to_string())),
        None => bail!("{k:?} is not a workload kind (use deployment, replicaset or daemonset)"),
    }
}

pub(super) async fn fetch(
    ctx: &Ctx,
    kind: Kind,
    name: Option<&str>,
    all: bool,
) -> Result<(Vec<WorkloadObject>, Vec<PodView>, Vec<WorkloadObject>)> {
    let req = Request::GetWorkloads {
        kind,
        namespace: (!all).then(|| ctx.namespace.clone()),
        name: name.map(str::to_string),
    };
    let Reply::Workloads { items, pods, owned } = ctx.read(&req).await? else {
        bail!("unexpected answer")
    };
    Ok((items, pods, owned))
}

/// The object as Kubernetes shows it: manifest, server metadata, status.
pub(super) fn kube_shape(w: &WorkloadObject) -> serde_json::Value {
    let mut v = match &w.workload {
        Workload::Deployment(d) => serde_json::to_value(d),
        Workload::ReplicaSet(r) => serde_json::to_value(r),
        Workload::DaemonSet(d) => serde_json::to_value(d),
    }
    .expect("plain struct");
    let m = &mut v["metadata"];
    m["uid"] = w.uid.clone().into();
    m["generation"] = w.generation.into();
    m["creationTimestamp"] = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(w.created_ms))
        .to_string()
        .into();
    let s = &w.status;
    let mut status = serde_json::json!({ "observedGeneration": s.observed_generation });
    let put = |status: &mut serde_json::Value, k: &str, n: i64| {
        if n != 0 {
            status[k] = n.into();
        }
    };
    match w.workload.kind() {
        Kind::DaemonSet => {
            status["desiredNumberScheduled"] = s.desired_number_scheduled.into();
            status["currentNumberScheduled"] = s.current_number_scheduled.into();
            status["numberMisscheduled"] = s.number_misscheduled.into();
            status["numberReady"] = s.ready_replicas.into();
            put(&mut status, "numberAvailable", s.available_replicas);
            put(&mut status, "updatedNumberScheduled", s.updated_number_scheduled);
            put(&mut status, "numberUnavailable", s.desired_number_scheduled - s.available_replicas);
        }
        kind => {
            status["replicas"] = s.replicas.into();
            put(&mut status, "readyReplicas", s.ready_replicas);
            put(&mut status, "availableReplicas", s.available_replicas);
            if kind == Kind::Deployment {
                put(&mut status, "updatedReplicas", s.updated_replicas);
                put(&mut status, "unavailableReplicas", s.unavailable_replicas);
                let time =
                    |ms: u64| humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string();
                status["conditions"] = s
                    .conditions
                    .iter()
                    .map(|c| {
                        serde_json::json!({"type": c.kind, "status": c.status, "reason": c.reason, "message": c.message,
                            "lastUpdateTime": time(c.last_update_ms), "lastTransitionTime": time(c.last_transition_ms)})
                    })
                    .collect();
            }
        }
    }
    v["status"] = status;
    v
}

fn desired(w: &WorkloadObject) -> i64 {
    match &w.workload {
        Workload::Deployment(d) => d.spec.replicas(),
        Workload::ReplicaSet(r) => r.spec.replicas(),
        Workload::DaemonSet(_) => w.status.desired_number_scheduled,
    }
}

pub(super) fn template(w: &WorkloadObject) -> &crate::api::manifest::PodTemplateSpec {
    match &w.workload {
        Workload::Deployment(d) => &d.spec.template,
        Workload::ReplicaSet(r) => &r.spec.template,
        Workload::DaemonSet(d) => &d.spec.template,
    }
}

fn selector(w: &WorkloadObject) -> String {
    match &w.workload {
        Workload::Deployment(d) => d.spec.selector.to_text(),
        Workload::ReplicaSet(r) => r.spec.selector.to_text(),
        Workload::DaemonSet(d) => d.spec.selector.to_text(),
    }
}

pub(super) fn table(items: &[WorkloadObject], kind: Kind, wide: bool, all: bool) {
    let ns = |w: &WorkloadObject| {
        if all {
            format!("{:<16}", w.workload.metadata().namespace())
        } else {
            String::new()
        }
    };
    let head = if all { format!("{:<16}", "NAMESPACE") } else { String::new() };
    let cols = match kind {
        Kind::Deployment => format!("{:<32} {:<7} {:<10} {:<9} {:<6}", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"),
        Kind::ReplicaSet => format!("{:<40} {:<7} {:<7} {:<6} {:<6}", "NAME", "DESIRED", "CURRENT", "READY", "AGE"),
        Kind::DaemonSet => format!(
            "{:<32} {:<7} {:<7} {:<6} {:<10} {:<9} {:<20} {:<6}",
            "NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"
        ),
    };
    let wide_cols = if wide {
        format!(" {:<20} {:<32} {}", "CONTAINERS", "IMAGES", "SELECTOR")
    } else {
        String::new()
    };
    println!("{head}{cols}{wide_cols}");
    for w in items {
        let s = &w.status;
        let name = &w.workload.metadata().name;
        let row = match kind {
            Kind::Deployment => format!(
                "{:<32} {:<7} {:<10} {:<9} {:<6}",
                name,
                format!("{}/{}", s.ready_replicas, desired(w)),
                s.updated_replicas,
                s.available_replicas,
                age(w.created_ms)
            ),
            Kind::ReplicaSet => format!(
                "{:<40} {:<7} {:<7} {:<6} {:<6}",
                name,
                desired(w),
                s.replicas,
                s.ready_replicas,
                age(w.created_ms)
            ),
            Kind::DaemonSet => {
                let sel = &template(w).spec.node_selector;
                let sel = if sel.is_empty() {
                    "<none>".to_string()
                } else {
                    sel.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
                };
                format!(
                    "{:<32} {:<7} {:<7} {:<6} {:<10} {:<9} {:<20} {:<6}",
                    name,
                    s.desired_number_scheduled,
                    s.current_number_scheduled,
                    s.ready_replicas,
                    s.updated_number_scheduled,
                    s.available_replicas,
                    sel,
                    age(w.created_ms)
                )
            }
        };
        let extra = if wide {
            let t = template(w);
            let names: Vec<&str> = t.spec.containers.iter().map(|c| c.name.as_str()).collect();
            let images: Vec<&str> = t.spec.containers.iter().map(|c| c.image.as_str()).collect();
            format!(" {:<20} {:<32} {}", names.join(","), images.join(","), selector(w))
        } else {
            String::new()
        };
        println!("{}{row}{extra}", ns(w));
    }
}

pub(super) async fn get(ctx: &Ctx, kind: Kind, name: Option<String>, output: Option<Output>, all: bool) -> Result<i32> {
    let (items, _, _) = fetch(ctx, kind, name.as_deref(), all).await?;
    let shaped = || -> serde_json::Value {
        if name.is_some() {
            kube_shape(&items[0])
        } else {
            serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items.iter().map(kube_shape).collect::<Vec<_>>()})
        }
    };
    match output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&shaped())?),
        Some(Output::Yaml) => print!("{}", serde_yaml_ng::to_string(&shaped())?),
        Some(Output::Wide) => table(&items, kind, true, all),
        None => table(&items, kind, false, all),
    }
    Ok(0)
}

pub(super) async fn describe(ctx: &Ctx, kind: Kind, name: &str) -> Result<i32> {
    let (items, pods, owned) = fetch(ctx, kind, Some(name), false).await?;
    let w = &items[0];
    let m = w.workload.metadata();
    let s = &w.status;
    let labels = |l: &std::collections::BTreeMap<String, String>| {
        if l.is_empty() {
            "<none>".to_string()
        } else {
            l.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
        }
    };
    println!("Name:               {}", m.name);
    println!("Namespace:          {}", m.namespace());
    println!("CreationTimestamp:  {} ago", age(w.created_ms));
    println!("Labels:             {}", labels(&m.labels));
    println!("Annotations:        {}", labels(&m.annotations));
    if let Some(o) = m.controller() {
        println!("Controlled By:      {}/{}", o.kind, o.name);
    }
    println!("Selector:           {}", selector(w));
    match &w.workload {
        Workload::Deployment(d) => {
            println!(
                "Replicas:           {} desired | {} updated | {} total | {} available | {} unavailable",
                d.spec.replicas(),
                s.updated_replicas,
                s.replicas,
                s.available_replicas,
                s.unavailable_replicas
            );
            let strategy = d
                .spec
                .strategy
                .as_ref()
                .and_then(|x| x.kind)
                .map_or("RollingUpdate".into(), |k| format!("{k:?}"));
            println!("StrategyType:       {strategy}");
            println!("MinReadySeconds:    {}", d.spec.min_ready_seconds.unwrap_or(0));
            if strategy == "RollingUpdate" {
                let (surge, unavailable) = crate::controllers::deployment::surge_and_unavailable(d);
                println!("RollingUpdateStrategy:  {unavailable} max unavailable, {surge} max surge");
            }
            if d.spec.paused {
                println!("Paused:             true");
            }
        }
        Workload::ReplicaSet(r) => {
            println!("Replicas:           {} current / {} desired", s.replicas, r.spec.replicas());
            println!(
                "Pods Status:        {} Ready / {} Available",
                s.ready_replicas, s.available_replicas
            );
        }
        Workload::DaemonSet(_) => {
            println!("Desired Number of Nodes Scheduled: {}", s.desired_number_scheduled);
            println!("Current Number of Nodes Scheduled: {}", s.current_number_scheduled);
            println!("Number of Nodes Scheduled with Up-to-date Pods: {}", s.updated_number_scheduled);
            println!("Number of Nodes Scheduled with Available Pods: {}", s.available_replicas);
            println!("Number of Nodes Misscheduled: {}", s.number_misscheduled);
            println!(
                "Pods Status:  {} Running / {} Ready",
                pods.iter().filter(|p| p.status.phase == crate::api::status::Phase::Running).count(),
                s.ready_replicas
            );
        }
    }
    let t = template(w);
    println!("Pod Template:");
    println!("  Labels:  {}", labels(&t.metadata.labels));
    for c in &t.spec.containers {
        println!("  {}:", c.name);
        println!("    Image:  {}", c.image);
    }
    if !s.conditions.is_empty() {
        println!("Conditions:");
        println!("  {:<14} {:<7} Reason", "Type", "Status");
        for c in &s.conditions {
            println!("  {:<14} {:<7} {}", c.kind, c.status, c.reason);
        }
    }
    if kind == Kind::Deployment {
        let rev = |x: &WorkloadObject| {
            x.workload
                .metadata()
                .annotations
                .get(crate::state::workload::REVISION)
                .cloned()
                .unwrap_or_default()
        };
        let newest = owned.iter().max_by_key(|x| rev(x).parse::<u64>().unwrap_or(0));
        let olds: Vec<String> = owned
            .iter()
            .filter(|x| Some(*x) != newest && x.status.replicas > 0)
            .map(|x| {
                format!(
                    "{} ({}/{} replicas created)",
                    x.workload.metadata().name,
                    x.status.replicas,
                    desired(x)
                )
            })
            .collect();
        println!(
            "OldReplicaSets:     {}",
            if olds.is_empty() { "<none>".into() } else { olds.join(", ") }
        );
        if let Some(n) = newest {
            println!(
                "NewReplicaSet:      {} ({}/{} replicas created)",
                n.workload.metadata().name,
                n.status.replicas,
                desired(n)
            );
        }
    }
    let object = format!("{}/{}/{}", kind.lower(), m.namespace(), m.name);
    let events = super::events::fetch(ctx, Some(object)).await?;
    super::events::print_section(&events);
    Ok(0)
}

pub(super) async fn delete(ctx: &Ctx, kind: Kind, name: String, cascade: &str) -> Result<i32> {
    let cascade = match cascade {
        "background" | "true" | "foreground" => Cascade::Background,
        "orphan" | "false" => Cascade::Orphan,
        other => bail!("--cascade must be background, foreground or orphan, got {other:?}"),
    };
    let req = Request::DeleteWorkload {
        kind,
        namespace: ctx.namespace.clone(),
        name,
        cascade,
    };
    if let Reply::Changed { object, action } = ctx.simple(&req).await? {
        println!("{object} {action}");
    }
    Ok(0)
}

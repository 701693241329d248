//! `shoal get pods|nodes` and `shoal describe pod NAME`.

use super::{age, Ctx, Output};
use crate::api::manifest::{Container, Probe};
use crate::api::status::ContainerState;
use crate::api::wire::{PodRef, PodView, Reply, Request};
use anyhow::{bail, Result};

#[derive(clap::Args, Debug)]
pub(super) struct GetArgs {
    /// Kind: `pods`, `nodes`, `events`, `deployments`, `replicasets`, `daemonsets` (or TYPE/NAME).
    kind: String,
    /// One pod by name.
    name: Option<String>,
    /// Output: wide, yaml or json.
    #[arg(short, long, value_enum)]
    output: Option<Output>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
}

#[derive(clap::Args, Debug)]
pub(super) struct DescribeArgs {
    /// Kind: `pod`, `deployment`, `replicaset`, `daemonset` (or TYPE/NAME).
    kind: String,
    /// Name.
    name: Option<String>,
}

fn pod_kind(kind: &str) -> Result<()> {
    if !matches!(kind, "pod" | "pods" | "po") {
        bail!("kind {kind:?} is not supported (use pods, nodes, events, deployments, replicasets or daemonsets)");
    }
    Ok(())
}

/// The STATUS column, as kubectl computes it.
pub(super) fn status_word(p: &PodView) -> String {
    if p.status.terminating {
        return "Terminating".into();
    }
    for c in p.status.init_container_statuses.iter() {
        match &c.state {
            ContainerState::Terminated { exit_code: 0, .. } => continue,
            ContainerState::Terminated { reason, .. } => return format!("Init:{reason}"),
            ContainerState::Waiting { reason, .. } if reason != "PodInitializing" && reason != "ContainerCreating" => {
                return format!("Init:{reason}")
            }
            _ => {
                return format!(
                    "Init:{}/{}",
                    p.status
                        .init_container_statuses
                        .iter()
                        .filter(|c| matches!(c.state, ContainerState::Terminated { exit_code: 0, .. }))
                        .count(),
                    p.status.init_container_statuses.len()
                )
            }
        }
    }
    let mut word = format!("{:?}", p.status.phase);
    for c in &p.status.container_statuses {
        match &c.state {
            ContainerState::Waiting { reason, .. }
                if p.status.phase != crate::api::status::Phase::Pending || reason != "PodInitializing" =>
            {
                word = reason.clone()
            }
            ContainerState::Terminated { reason, .. } => word = reason.clone(),
            _ => {}
        }
    }
    word
}

fn table(pods: &[PodView], wide: bool, all: bool) {
    let ns = |p: &PodView| {
        if all {
            format!("{:<16}", p.pod.metadata.namespace())
        } else {
            String::new()
        }
    };
    let nsh = if all { format!("{:<16}", "NAMESPACE") } else { String::new() };
    print!("{nsh}{:<32} {:<7} {:<20} {:<9} {:<6}", "NAME", "READY", "STATUS", "RESTARTS", "AGE");
    println!(
        "{}",
        if wide {
            format!(" {:<15} {:<12} {}", "IP", "NODE", "PIDS")
        } else {
            String::new()
        }
    );
    for p in pods {
        let cs = &p.status.container_statuses;
        let ready = format!("{}/{}", cs.iter().filter(|c| c.ready).count(), p.pod.spec.containers.len());
        let restarts: u32 = cs.iter().map(|c| c.restart_count).sum();
        print!(
            "{}{:<32} {:<7} {:<20} {:<9} {:<6}",
            ns(p),
            p.pod.metadata.name,
            ready,
            status_word(p),
            restarts,
            age(p.created_at)
        );
        if wide {
            let pids: Vec<String> = cs.iter().filter_map(|c| c.pid.map(|pid| format!("{}={pid}", c.name))).collect();
            let node = if p.status.node_name.is_empty() {
                "<none>"
            } else {
                &p.status.node_name
            };
            let ip = p.status.pod_ip.map(|i| i.to_string()).unwrap_or_else(|| "<none>".into());
            print!(" {:<15} {:<12} {}", ip, node, pids.join(","));
        }
        println!();
    }
}

pub(super) async fn get(ctx: &Ctx, mut a: GetArgs) -> Result<i32> {
    (a.kind, a.name) = super::kind_name(&a.kind, a.name);
    if let Some(kind) = super::workloads::kind_of(&a.kind) {
        return super::workloads::get(ctx, kind, a.name, a.output, a.all_namespaces).await;
    }
    if super::nodes::is_kind(&a.kind) {
        return super::nodes::get(ctx, a.name, a.output).await;
    }
    if super::events::is_kind(&a.kind) {
        return super::events::get(ctx, a.output).await;
    }
    if let Some(kind) = super::config::kind_of(&a.kind) {
        return super::config::get(ctx, kind, a.name, a.output, a.all_namespaces).await;
    }
    if super::services::is_service(&a.kind) || super::services::is_endpoints(&a.kind) {
        let endpoints = super::services::is_endpoints(&a.kind);
        return super::services::get(ctx, endpoints, a.name, a.output, a.all_namespaces).await;
    }
    pod_kind(&a.kind)?;
    let req = match &a.name {
        Some(n) => Request::GetPod(PodRef {
            namespace: ctx.namespace.clone(),
            name: n.clone(),
        }),
        None => Request::GetPods {
            namespace: (!a.all_namespaces).then(|| ctx.namespace.clone()),
        },
    };
    let Reply::Pods { pods } = ctx.read(&req).await? else {
        bail!("unexpected answer")
    };
    match a.output {
        Some(Output::Json) => println!(
            "{}",
            serde_json::to_string_pretty(&if a.name.is_some() {
                serde_json::to_value(&pods[0])?
            } else {
                serde_json::to_value(&pods)?
            })?
        ),
        Some(Output::Yaml) => print!(
            "{}",
            if a.name.is_some() {
                serde_yaml_ng::to_string(&pods[0])?
            } else {
                serde_yaml_ng::to_string(&pods)?
            }
        ),
        Some(Output::Wide) => table(&pods, true, a.all_namespaces),
        None => table(&pods, false, a.all_namespaces),
    }
    Ok(0)
}

fn state_line(s: &ContainerState) -> String {
    match s {
        ContainerState::Waiting { reason, message } => format!(
            "Waiting ({reason}{})",
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        ),
        ContainerState::Running { started_at } => format!("Running since {} ago", age(*started_at)),
        ContainerState::Terminated {
            exit_code,
            reason,
            finished_at,
            ..
        } => format!("Terminated ({reason}, exit code {exit_code}) {} ago", age(*finished_at)),
    }
}

fn title_case(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// The probes of a container, as kubectl describes them.
fn probe_lines(c: &Container) {
    let probes = [
        ("Liveness: ", &c.liveness_probe),
        ("Readiness:", &c.readiness_probe),
        ("Startup:  ", &c.startup_probe),
    ];
    for (title, probe) in probes {
        if let Some(p) = probe {
            println!("    {title} {}", probe_line(p));
        }
    }
}

fn probe_line(p: &Probe) -> String {
    let handler = match (&p.exec, &p.http_get, &p.tcp_socket) {
        (Some(e), _, _) => format!("exec {:?}", e.command),
        (None, Some(h), _) => format!("http-get http://{}:{}{}", h.host, h.port, h.path),
        (None, None, Some(t)) => format!("tcp-socket {}:{}", t.host, t.port),
        (None, None, None) => "<none>".into(),
    };
    format!(
        "{handler} delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds, p.timeout_seconds, p.period_seconds, p.success_threshold, p.failure_threshold
    )
}

pub(super) async fn describe(ctx: &Ctx, a: DescribeArgs) -> Result<i32> {
    let (kind_word, name) = super::kind_name_required("describe", &a.kind, a.name)?;
    if let Some(kind) = super::workloads::kind_of(&kind_word) {
        return super::workloads::describe(ctx, kind, &name).await;
    }
    if super::services::is_service(&kind_word) {
        return super::services::describe(ctx, &name).await;
    }
    if let Some(kind) = super::config::kind_of(&kind_word) {
        return super::config::describe(ctx, kind, name).await;
    }
    pod_kind(&kind_word)?;
    let req = Request::GetPod(PodRef {
        namespace: ctx.namespace.clone(),
        name,
    });
    let Reply::Pods { pods } = ctx.read(&req).await? else {
        bail!("unexpected answer")
    };
    let p = &pods[0];
    let m = &p.pod.metadata;
    println!("Name:         {}", m.name);
    println!("Namespace:    {}", m.namespace());
    println!("UID:          {}", p.uid);
    if let Some(ip) = p.status.pod_ip {
        println!("IP:           {ip}");
    }
    println!(
        "Node:         {}",
        if p.status.node_name.is_empty() {
            "<none>"
        } else {
            &p.status.node_name
        }
    );
    println!(
        "Labels:       {}",
        m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
    );
    println!("Status:       {} (phase {:?})", status_word(p), p.status.phase);
    println!("Age:          {}", age(p.created_at));
    println!("Restart:      {:?}", p.pod.spec.restart_policy);
    for (title, list, specs) in [
        ("Init Containers:", &p.status.init_container_statuses, &p.pod.spec.init_containers),
        ("Containers:", &p.status.container_statuses, &p.pod.spec.containers),
    ] {
        if specs.is_empty() {
            continue;
        }
        println!("{title}");
        for c in specs {
            println!("  {}:", c.name);
            println!("    Image:     {}", c.image);
            if let Some(s) = list.iter().find(|s| s.name == c.name) {
                println!("    State:     {}", state_line(&s.state));
                if let Some(l) = &s.last_state {
                    println!("    Last:      {}", state_line(l));
                }
                println!("    Ready:     {}", title_case(s.ready));
                if let Some(started) = s.started {
                    println!("    Started:   {}", title_case(started));
                }
                println!("    Restarts:  {}", s.restart_count);
                if let Some(pid) = s.pid {
                    println!("    Pid:       {pid}");
                }
            }
            probe_lines(c);
            if !c.resources.is_empty() {
                println!("    Limits:    {:?}", c.resources.limits);
                println!("    Requests:  {:?}", c.resources.requests);
            }
        }
    }
    println!("Conditions:");
    match &p.unschedulable {
        Some(why) => println!("  PodScheduled   False (Unschedulable: {why})"),
        None if p.status.node_name.is_empty() => println!("  PodScheduled   False"),
        None => println!("  PodScheduled   True"),
    }
    if !p.status.node_name.is_empty() {
        match p.status.ready_since {
            Some(t) => println!("  Ready          True (since {} ago)", age(t)),
            None => println!("  Ready          False"),
        }
    }
    let object = format!("pod/{}/{}", m.namespace(), m.name);
    let events = super::events::fetch(ctx, Some(object)).await?;
    super::events::print_section(&events);
    Ok(0)
}

//! `get|describe|delete services|endpoints` and `expose`, as kubectl's.

use super::{age, Ctx, Output};
use crate::api::manifest::{EndpointAddress, EndpointPort, EndpointSubset, LabelSelector, ObjectReference, ServicePort, Workload};
use crate::api::wire::{Reply, Request, ServiceView};
use crate::net::endpoints::Backend;
use anyhow::{bail, Result};

/// `services`, `service`, `svc`.
pub(super) fn is_service(word: &str) -> bool {
    matches!(word, "services" | "service" | "svc")
}

/// `endpoints`, `endpoint`, `ep`.
pub(super) fn is_endpoints(word: &str) -> bool {
    matches!(word, "endpoints" | "endpoint" | "ep")
}

async fn fetch(ctx: &Ctx, name: Option<&str>, all: bool) -> Result<Vec<ServiceView>> {
    let req = Request::GetServices {
        namespace: (!all).then(|| ctx.namespace.clone()),
        name: name.map(str::to_string),
    };
    let Reply::Services { items } = ctx.read(&req).await? else {
        bail!("unexpected answer")
    };
    Ok(items)
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

/// The Service as Kubernetes shows it.
fn service_shape(v: &ServiceView) -> serde_json::Value {
    let mut j = serde_json::to_value(&v.service.service).expect("plain struct");
    j["metadata"]["uid"] = v.service.uid.clone().into();
    j["metadata"]["creationTimestamp"] = rfc3339(v.service.created_ms).into();
    if j["metadata"].get("namespace").is_none() {
        j["metadata"]["namespace"] = "default".into();
    }
    let spec = &v.service.service.spec;
    j["spec"]["type"] = spec.service_type().into();
    j["spec"]["sessionAffinity"] = spec.session_affinity.clone().unwrap_or_else(|| "None".into()).into();
    if spec.service_type() != "ExternalName" {
        j["spec"]["ipFamilies"] = serde_json::json!(["IPv4"]);
        j["spec"]["ipFamilyPolicy"] = "SingleStack".into();
        for (i, p) in spec.ports.iter().enumerate() {
            let port = &mut j["spec"]["ports"][i];
            port["protocol"] = p.protocol().into();
            if p.target_port.is_none() {
                port["targetPort"] = p.port.into();
            }
        }
    }
    j["status"] = serde_json::json!({"loadBalancer": {}});
    j
}

/// The Endpoints object as Kubernetes' endpoint controller would write it:
/// addresses grouped by the ports they serve.
fn endpoints_shape(v: &ServiceView) -> serde_json::Value {
    let ports = &v.service.service.spec.ports;
    let mut subsets: Vec<(Vec<EndpointPort>, EndpointSubset)> = Vec::new();
    for b in &v.backends {
        let eps: Vec<EndpointPort> = ports
            .iter()
            .zip(&b.ports)
            .filter_map(|(sp, p)| {
                Some(EndpointPort {
                    name: sp.name.clone(),
                    port: (*p)? as i64,
                    protocol: Some(sp.protocol().to_string()),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        if eps.is_empty() {
            continue;
        }
        let addr = EndpointAddress {
            ip: b.ip.to_string(),
            hostname: None,
            node_name: b.node.clone(),
            target_ref: b.pod.as_ref().map(|(ns, name, uid)| ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some(ns.clone()),
                name: Some(name.clone()),
                uid: Some(uid.clone()),
            }),
        };
        let i = match subsets.iter().position(|(p, _)| *p == eps) {
            Some(i) => i,
            None => {
                subsets.push((
                    eps.clone(),
                    EndpointSubset {
                        ports: eps,
                        ..Default::default()
                    },
                ));
                subsets.len() - 1
            }
        };
        let s = &mut subsets[i].1;
        if b.ready {
            s.addresses.push(addr);
        } else {
            s.not_ready_addresses.push(addr);
        }
    }
    let (ns, name) = v.service.key();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": name,
            "namespace": ns,
            "creationTimestamp": rfc3339(v.endpoints_created_ms.unwrap_or(v.service.created_ms)),
        },
        "subsets": subsets.into_iter().map(|(_, s)| s).collect::<Vec<_>>(),
    })
}

fn port_list(ports: &[ServicePort]) -> String {
    if ports.is_empty() {
        return "<none>".into();
    }
    ports
        .iter()
        .map(|p| match p.node_port {
            Some(n) => format!("{}:{n}/{}", p.port, p.protocol()),
            None => format!("{}/{}", p.port, p.protocol()),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `10.42.0.5:8080,10.42.1.3:8080 + 2 more...`, as kubectl prints ENDPOINTS.
fn endpoint_list(v: &ServiceView) -> String {
    let all: Vec<String> = v
        .backends
        .iter()
        .filter(|b| b.ready)
        .flat_map(|b: &Backend| b.ports.iter().flatten().map(move |p| format!("{}:{p}", b.ip)))
        .collect();
    match all.len() {
        0 => "<none>".into(),
        1..=3 => all.join(","),
        n => format!("{} + {} more...", all[..3].join(","), n - 3),
    }
}

fn selector_text(v: &ServiceView) -> String {
    let s = &v.service.service.spec.selector;
    if s.is_empty() {
        "<none>".into()
    } else {
        s.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    }
}

/// `get services` / `get endpoints`.
pub(super) async fn get(ctx: &Ctx, endpoints: bool, name: Option<String>, output: Option<Output>, all: bool) -> Result<i32> {
    let items = fetch(ctx, name.as_deref(), all).await?;
    let shape = if endpoints { endpoints_shape } else { service_shape };
    let shaped = || -> serde_json::Value {
        if name.is_some() {
            shape(&items[0])
        } else {
            serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items.iter().map(shape).collect::<Vec<_>>()})
        }
    };
    let ns = |v: &ServiceView| if all { format!("{:<16}", v.service.key().0) } else { String::new() };
    let head = if all { format!("{:<16}", "NAMESPACE") } else { String::new() };
    match output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&shaped())?),
        Some(Output::Yaml) => print!("{}", serde_yaml_ng::to_string(&shaped())?),
        _ if endpoints => {
            println!("{head}{:<32} {:<48} AGE", "NAME", "ENDPOINTS");
            for v in &items {
                let created = v.endpoints_created_ms.unwrap_or(v.service.created_ms);
                println!("{}{:<32} {:<48} {}", ns(v), v.service.key().1, endpoint_list(v), age(created));
            }
        }
        wide => {
            let wide = wide == Some(Output::Wide);
            print!(
                "{head}{:<32} {:<12} {:<15} {:<12} {:<24} {:<6}",
                "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"
            );
            println!("{}", if wide { " SELECTOR" } else { "" });
            for v in &items {
                let spec = &v.service.service.spec;
                let ip = spec.cluster_ip.clone().unwrap_or_else(|| "<none>".into());
                let external = match spec.service_type() {
                    "ExternalName" => spec.external_name.clone().unwrap_or_default(),
                    "LoadBalancer" => "<pending>".into(),
                    _ => "<none>".into(),
                };
                print!(
                    "{}{:<32} {:<12} {:<15} {:<12} {:<24} {:<6}",
                    ns(v),
                    v.service.key().1,
                    spec.service_type(),
                    ip,
                    external,
                    port_list(&spec.ports),
                    age(v.service.created_ms)
                );
                println!("{}", if wide { format!(" {}", selector_text(v)) } else { String::new() });
            }
        }
    }
    Ok(0)
}

/// `describe service NAME`.
pub(super) async fn describe(ctx: &Ctx, name: &str) -> Result<i32> {
    let items = fetch(ctx, Some(name), false).await?;
    let v = &items[0];
    let s = &v.service.service;
    let kv = |m: &std::collections::BTreeMap<String, String>| {
        if m.is_empty() {
            "<none>".to_string()
        } else {
            m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
        }
    };
    println!("Name:              {}", s.metadata.name);
    println!("Namespace:         {}", s.metadata.namespace());
    println!("Labels:            {}", kv(&s.metadata.labels));
    println!("Annotations:       {}", kv(&s.metadata.annotations));
    println!("Selector:          {}", selector_text(v));
    println!("Type:              {}", s.spec.service_type());
    if s.spec.service_type() == "ExternalName" {
        println!("External Name:     {}", s.spec.external_name.clone().unwrap_or_default());
    } else {
        println!("IP Family Policy:  SingleStack");
        println!("IP Families:       IPv4");
        let ip = s.spec.cluster_ip.clone().unwrap_or_else(|| "<none>".into());
        println!("IP:                {ip}");
        println!("IPs:               {ip}");
    }
    for (i, p) in s.spec.ports.iter().enumerate() {
        let name = p.name.clone().unwrap_or_else(|| "<unset>".into());
        println!("Port:              {name}  {}/{}", p.port, p.protocol());
        let target = match &p.target_port {
            Some(crate::api::manifest::IntOrString::Int(n)) => n.to_string(),
            Some(crate::api::manifest::IntOrString::String(s)) => s.clone(),
            None => p.port.to_string(),
        };
        println!("TargetPort:        {target}/{}", p.protocol());
        if let Some(n) = p.node_port {
            println!("NodePort:          {name}  {n}/{}", p.protocol());
        }
        let eps: Vec<String> = v
            .backends
            .iter()
            .filter(|b| b.ready)
            .filter_map(|b| Some(format!("{}:{}", b.ip, b.ports.get(i).copied().flatten()?)))
            .collect();
        println!(
            "Endpoints:         {}",
            if eps.is_empty() { "<none>".into() } else { eps.join(",") }
        );
    }
    let affinity = s.spec.session_affinity.clone().unwrap_or_else(|| "None".into());
    println!("Session Affinity:  {affinity}");
    if let Some(t) = s.spec.affinity_secs() {
        println!("Affinity Timeout:  {t}s");
    }
    let not_ready: Vec<String> = v.backends.iter().filter(|b| !b.ready).map(|b| b.ip.to_string()).collect();
    if !not_ready.is_empty() {
        println!("Not Ready:         {}", not_ready.join(","));
    }
    println!("Events:            <none>");
    Ok(0)
}

/// `endpointslices`, `endpointslice`.
pub(super) fn is_slice(word: &str) -> bool {
    matches!(word, "endpointslices" | "endpointslice" | "endpointslices.discovery.k8s.io")
}

/// `delete service|endpoints|endpointslice NAME`.
pub(super) async fn delete(ctx: &Ctx, word: &str, name: String) -> Result<i32> {
    let kind = if is_service(word) {
        "Service"
    } else if is_endpoints(word) {
        "Endpoints"
    } else {
        "EndpointSlice"
    };
    let req = Request::DeleteService {
        kind: kind.into(),
        namespace: ctx.namespace.clone(),
        name,
    };
    if let Reply::Changed { object, action } = ctx.simple(&req).await? {
        println!("{object} {action}");
    }
    Ok(0)
}

/// `shoal expose deployment/NAME --port P ...`, as kubectl's.
#[derive(clap::Args, Debug)]
pub(super) struct ExposeArgs {
    /// What to expose: deployment/NAME, replicaset/NAME or daemonset/NAME.
    target: String,
    /// The Service's port (default: the pod template's first container port).
    #[arg(long)]
    port: Option<u16>,
    /// The pods' port, a number or a container port's name (default: --port).
    #[arg(long)]
    target_port: Option<String>,
    /// ClusterIP (default), NodePort or LoadBalancer.
    #[arg(long = "type")]
    service_type: Option<String>,
    /// The Service's name (default: the workload's).
    #[arg(long)]
    name: Option<String>,
    /// TCP (default) or UDP.
    #[arg(long, default_value = "TCP")]
    protocol: String,
}

pub(super) async fn expose(ctx: &Ctx, a: ExposeArgs) -> Result<i32> {
    let (kind, name) = super::workloads::kind_and_name(&a.target)?;
    let (items, _, _) = super::workloads::fetch(ctx, kind, Some(&name), false).await?;
    let w = &items[0];
    let selector: &LabelSelector = match &w.workload {
        Workload::Deployment(d) => &d.spec.selector,
        Workload::ReplicaSet(r) => &r.spec.selector,
        Workload::DaemonSet(d) => &d.spec.selector,
    };
    if !selector.match_expressions.is_empty() {
        bail!(
            "couldn't retrieve selectors via --selector flag or introspection: {} has matchExpressions, which a Service selector cannot hold",
            a.target
        );
    }
    let template = super::workloads::template(w);
    let first = template
        .spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter())
        .next()
        .and_then(|p| u16::try_from(p.container_port).ok());
    let Some(port) = a.port.or(first) else {
        bail!("couldn't find port via --port flag or introspection")
    };
    let target = a.target_port.map(|t| match t.parse::<i64>() {
        Ok(n) => serde_json::Value::from(n),
        Err(_) => serde_json::Value::from(t),
    });
    let mut port_spec = serde_json::json!({"port": port, "protocol": a.protocol});
    if let Some(t) = target {
        port_spec["targetPort"] = t;
    }
    let mut spec = serde_json::json!({"selector": selector.match_labels, "ports": [port_spec]});
    if let Some(t) = a.service_type {
        spec["type"] = t.into();
    }
    let manifest = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": a.name.unwrap_or(name), "namespace": ctx.namespace, "labels": template.metadata.labels},
        "spec": spec,
    });
    let req = Request::Apply {
        manifest: serde_yaml_ng::to_string(&manifest)?,
    };
    if let Reply::Applied { objects } = ctx.simple(&req).await? {
        for o in objects {
            println!("{} exposed", o.object);
        }
    }
    Ok(0)
}

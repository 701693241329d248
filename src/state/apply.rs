//! Applying one [`Command`] to the state tables inside the caller's
//! transaction. Deterministic: the same command on the same state gives the
//! same rows and the same [`Response`] on every replica.

use super::apply_workload;
use super::read::{get_node, get_pod, put_node, put_pod, NETWORK};
use super::{Binding, ClusterNetwork, Command, Event, NodeObject, PodObject, Response, StatusReport, EVENTS_KEPT};
use rusqlite::{params, Transaction};

/// The next Raft id to hand out lives here.
const NEXT_RAFT_ID: &str = "next_raft_id";

/// Applies `cmd`; a refusal leaves the state unchanged.
pub fn apply_command(tx: &Transaction<'_>, cmd: &Command) -> rusqlite::Result<Response> {
    Ok(match cmd {
        Command::PutPod { pod, uid, now_ms } => put_pod_cmd(tx, pod, uid, *now_ms)?,
        Command::DeletePod { namespace, name, now_ms } => match get_pod(tx, namespace, name)? {
            None => Response::Refused(format!("pod {name:?} not found in namespace {namespace:?}")),
            Some(_) => {
                delete_pod(tx, namespace, name, *now_ms)?;
                Response::Done("deleted".into())
            }
        },
        Command::Bind { items, now_ms } => {
            for b in items {
                bind(tx, b, *now_ms)?;
            }
            Response::Ok
        }
        Command::Status { node, items } => {
            for r in items {
                status(tx, node, r)?;
            }
            Response::Ok
        }
        Command::RegisterNode {
            node,
            key_sha256,
            token,
            network,
        } => register(tx, node, key_sha256, token, network.as_ref())?,
        Command::NodeImages { name, images } => match get_node(tx, name)? {
            None => Response::Refused(format!("node {name:?} not found")),
            Some(mut n) => {
                n.images = images.clone();
                put_node(tx, &n)?;
                Response::Ok
            }
        },
        Command::NodeFacts(f) => match get_node(tx, &f.name)? {
            None => Response::Refused(format!("node {:?} not found", f.name)),
            Some(mut n) => {
                n.addr = f.addr;
                n.cpus = f.cpus;
                n.memory_bytes = f.memory_bytes;
                n.version = f.version.clone();
                n.arch = f.arch.clone();
                if n.pod_cidr.is_none() {
                    // A node from before pod networking, or one that found
                    // the range full: try again.
                    n.pod_cidr = free_subnet(tx)?;
                }
                put_node(tx, &n)?;
                Response::Ok
            }
        },
        Command::Cordon { name, cordoned } => match get_node(tx, name)? {
            None => Response::Refused(format!("node {name:?} not found")),
            Some(mut n) => {
                let action = match (n.cordoned, *cordoned) {
                    (a, b) if a == b => "unchanged",
                    (_, true) => "cordoned",
                    (_, false) => "uncordoned",
                };
                n.cordoned = *cordoned;
                put_node(tx, &n)?;
                Response::Done(action.into())
            }
        },
        Command::DeleteNode { name, now_ms } => match get_node(tx, name)? {
            None => Response::Refused(format!("node {name:?} not found")),
            Some(_) => {
                tx.execute("DELETE FROM sm_nodes WHERE name = ?1", params![name])?;
                tx.execute("DELETE FROM sm_pods WHERE node = ?1", params![name])?;
                event(
                    tx,
                    *now_ms,
                    "Normal",
                    "NodeDeleted",
                    &format!("node/{name}"),
                    "node removed from the cluster",
                )?;
                Response::Done("deleted".into())
            }
        },
        Command::Taint { name, taints } => match get_node(tx, name)? {
            None => Response::Refused(format!("node {name:?} not found")),
            Some(mut n) => {
                let action = if n.taints == *taints { "unchanged" } else { "tainted" };
                n.taints = taints.clone();
                put_node(tx, &n)?;
                Response::Done(action.into())
            }
        },
        Command::PutToken(t) => {
            let json = serde_json::to_string(t).expect("plain struct");
            tx.execute("INSERT OR REPLACE INTO sm_tokens VALUES (?1, ?2)", params![t.id, json])?;
            Response::Ok
        }
        Command::RemoveToken { id, now_ms } => match super::read::get_token(tx, id)? {
            None => Response::Refused(format!("token {id:?} not found")),
            Some(mut t) => {
                t.removed_ms.get_or_insert(*now_ms);
                let json = serde_json::to_string(&t).expect("plain struct");
                tx.execute("UPDATE sm_tokens SET json = ?2 WHERE id = ?1", params![id, json])?;
                Response::Ok
            }
        },
        Command::PutWorkload {
            workload,
            uid,
            now_ms,
            expect_generation,
        } => apply_workload::put(tx, workload, uid, *now_ms, *expect_generation)?,
        Command::DeleteWorkload {
            kind,
            namespace,
            name,
            cascade,
            now_ms,
        } => apply_workload::delete(tx, *kind, namespace, name, *cascade, *now_ms)?,
        Command::Scale {
            kind,
            namespace,
            name,
            replicas,
        } => apply_workload::scale(tx, *kind, namespace, name, *replicas)?,
        Command::Reconcile { ops, now_ms } => apply_workload::reconcile(tx, ops, *now_ms)?,
        Command::Label { name, labels } => match get_node(tx, name)? {
            None => Response::Refused(format!("node {name:?} not found")),
            Some(mut n) => {
                let action = if n.labels == *labels { "not labeled" } else { "labeled" };
                n.labels = labels.clone();
                put_node(tx, &n)?;
                Response::Done(action.into())
            }
        },
        Command::PutService { service, uid, now_ms } => super::service::put(tx, (**service).clone(), uid, *now_ms)?,
        Command::DeleteService { namespace, name } => super::service::delete(tx, namespace, name)?,
        Command::PutConfig {
            config,
            uid,
            now_ms,
            create_only,
        } => super::config::put(tx, (**config).clone(), uid, *now_ms, *create_only)?,
        Command::DeleteConfig { kind, namespace, name } => super::config::delete(tx, kind, namespace, name)?,
        Command::PutEndpoints { endpoints, now_ms } => super::service::put_endpoints(tx, (**endpoints).clone(), *now_ms)?,
        Command::DeleteEndpoints { kind, namespace, name } => super::service::delete_endpoints(tx, kind, namespace, name)?,
    })
}

/// Deletes a pod: at once if no node holds it, else marks it for its node
/// to stop (the node's report of it gone removes it).
pub(super) fn delete_pod(tx: &Transaction<'_>, ns: &str, name: &str, now_ms: u64) -> rusqlite::Result<()> {
    match get_pod(tx, ns, name)? {
        Some(mut p) if p.node.is_some() => {
            if p.deleting_ms.is_none() {
                p.deleting_ms = Some(now_ms);
                p.status.terminating = true;
                put_pod(tx, &p)?;
            }
            Ok(())
        }
        Some(_) => remove_pod(tx, ns, name),
        None => Ok(()),
    }
}

pub(super) fn put_pod_cmd(tx: &Transaction<'_>, pod: &crate::api::manifest::Pod, uid: &str, now_ms: u64) -> rusqlite::Result<Response> {
    let (ns, name) = (pod.metadata.namespace(), pod.metadata.name.as_str());
    if let Some(mut existing) = get_pod(tx, ns, name)? {
        if existing.deleting_ms.is_some() {
            return Ok(Response::Refused(format!(
                "pod/{name}: the pod is being deleted; apply again once it is gone"
            )));
        }
        if existing.pod.spec != pod.spec {
            return Ok(Response::Refused(format!(
                "pod/{name}: a pod's spec cannot change once created (as in Kubernetes); delete it and apply again"
            )));
        }
        if existing.pod == *pod {
            return Ok(Response::Done("unchanged".into()));
        }
        existing.pod = pod.clone();
        put_pod(tx, &existing)?;
        return Ok(Response::Done("configured".into()));
    }
    let node = pod.spec.node_name.clone();
    if let Some(n) = &node {
        if get_node(tx, n)?.is_none() {
            return Ok(Response::Refused(format!("pod/{name}: spec.nodeName: node {n:?} not found")));
        }
    }
    let mut obj = PodObject {
        pod: pod.clone(),
        uid: uid.to_string(),
        created_ms: now_ms,
        node: node.clone(),
        status: Default::default(),
        deleting_ms: None,
        unschedulable: None,
    };
    if let Some(n) = node {
        obj.status.node_name = n;
    }
    put_pod(tx, &obj)?;
    Ok(Response::Done("created".into()))
}

fn bind(tx: &Transaction<'_>, b: &Binding, now_ms: u64) -> rusqlite::Result<()> {
    let Some(mut p) = get_pod(tx, &b.namespace, &b.name)? else {
        return Ok(());
    };
    if p.uid != b.uid || p.node.is_some() || p.deleting_ms.is_some() {
        return Ok(()); // decided for an older state; the scheduler looks again
    }
    let object = format!("pod/{}/{}", b.namespace, b.name);
    match &b.node {
        Some(n) if get_node(tx, n)?.is_some() => {
            p.node = Some(n.clone());
            p.status.node_name = n.clone();
            p.unschedulable = None;
            put_pod(tx, &p)?;
            let msg = format!("Successfully assigned {}/{} to {n}", b.namespace, b.name);
            event(tx, now_ms, "Normal", "Scheduled", &object, &msg)?;
        }
        Some(_) => {}
        None => {
            if p.unschedulable.as_deref() != Some(b.message.as_str()) {
                p.unschedulable = Some(b.message.clone());
                put_pod(tx, &p)?;
                event(tx, now_ms, "Warning", "FailedScheduling", &object, &b.message)?;
            }
        }
    }
    Ok(())
}

fn status(tx: &Transaction<'_>, node: &str, r: &StatusReport) -> rusqlite::Result<()> {
    let Some(mut p) = get_pod(tx, &r.namespace, &r.name)? else {
        return Ok(());
    };
    // A node reports only its own pods, and only the incarnation it runs.
    if p.uid != r.uid || p.node.as_deref() != Some(node) {
        return Ok(());
    }
    match &r.status {
        None => remove_pod(tx, &r.namespace, &r.name),
        Some(s) => {
            p.status = s.clone();
            p.status.node_name = node.to_string();
            p.status.terminating = p.deleting_ms.is_some();
            put_pod(tx, &p)
        }
    }
}

fn register(
    tx: &Transaction<'_>,
    node: &NodeObject,
    key_sha256: &str,
    token: &str,
    network: Option<&ClusterNetwork>,
) -> rusqlite::Result<Response> {
    if get_node(tx, &node.name)?.is_some() {
        return Ok(Response::Refused(format!("a node named {:?} is already in the cluster", node.name)));
    }
    let prev: Option<String> = tx
        .query_row("SELECT key_sha256 FROM sm_joined WHERE name = ?1", params![node.name], |r| r.get(0))
        .ok();
    if prev.as_deref() == Some(key_sha256) {
        return Ok(Response::Refused(format!("node {:?} already joined with this key", node.name)));
    }
    let next: u64 = super::read::meta(tx, NEXT_RAFT_ID)?.and_then(|v| v.parse().ok()).unwrap_or(1);
    let id = next.max(1);
    super::read::set_meta(tx, NEXT_RAFT_ID, &(id + 1).to_string())?;
    if let (Some(plan), None) = (network, super::read::meta(tx, NETWORK)?) {
        super::read::set_meta(tx, NETWORK, &serde_json::to_string(plan).expect("plain struct"))?;
    }
    let mut n = node.clone();
    n.raft_id = id;
    n.pod_cidr = free_subnet(tx)?;
    put_node(tx, &n)?;
    tx.execute(
        "INSERT OR REPLACE INTO sm_joined VALUES (?1, ?2, ?3, ?4)",
        params![n.name, key_sha256, token, n.joined_ms as i64],
    )?;
    if !token.is_empty() {
        if let Some(mut t) = super::read::get_token(tx, token)? {
            t.uses += 1;
            let json = serde_json::to_string(&t).expect("plain struct");
            tx.execute("UPDATE sm_tokens SET json = ?2 WHERE id = ?1", params![token, json])?;
        }
    }
    Ok(Response::RaftId(id))
}

/// The lowest node subnet no node holds.
fn free_subnet(tx: &Transaction<'_>) -> rusqlite::Result<Option<ipnet::Ipv4Net>> {
    let plan = super::read::network_in(tx)?;
    let taken: Vec<ipnet::Ipv4Net> = super::read::nodes_in(tx)?.into_iter().filter_map(|n| n.pod_cidr).collect();
    Ok(plan.free_subnet(&taken))
}

fn remove_pod(tx: &Transaction<'_>, ns: &str, name: &str) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM sm_pods WHERE namespace = ?1 AND name = ?2", params![ns, name])?;
    Ok(())
}

pub(super) fn event(tx: &Transaction<'_>, time_ms: u64, kind: &str, reason: &str, object: &str, message: &str) -> rusqlite::Result<()> {
    let e = Event {
        time_ms,
        kind: kind.into(),
        reason: reason.into(),
        object: object.into(),
        message: message.into(),
    };
    let json = serde_json::to_string(&e).expect("plain struct");
    tx.execute("INSERT INTO sm_events (json) VALUES (?1)", params![json])?;
    tx.execute(
        "DELETE FROM sm_events WHERE seq <= (SELECT MAX(seq) FROM sm_events) - ?1",
        params![EVENTS_KEPT],
    )?;
    Ok(())
}

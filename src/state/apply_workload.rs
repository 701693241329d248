//! Applying the workload commands: apply, delete (cascading or orphaning),
//! scale, and the controllers' batched writes with their staleness checks.

use super::apply::{delete_pod, event, put_pod_cmd};
use super::read::{get_pod, get_workload, owned_pods, owned_workloads, put_pod, put_workload, remove_workload};
use super::workload::{Cascade, Kind, Op, Workload, WorkloadObject};
use super::Response;
use crate::api::manifest::Pod;
use rusqlite::Transaction;
use std::collections::hash_map::{Entry, HashMap};

/// Creates or changes a workload. A changed spec bumps the generation; the
/// selector cannot change, as in apps/v1; `expect_generation` refuses a
/// read-modify-write that raced another change.
pub fn put(tx: &Transaction<'_>, w: &Workload, uid: &str, now_ms: u64, expect_generation: Option<u64>) -> rusqlite::Result<Response> {
    let w = w.clone().without_status();
    let kind = w.kind();
    let m = w.metadata();
    let (ns, name) = (m.namespace().to_string(), m.name.clone());
    let object = format!("{}/{name}", kind.lower());
    let Some(mut existing) = get_workload(tx, kind, &ns, &name)? else {
        if expect_generation.is_some() {
            return Ok(Response::Refused(format!("{object} not found in namespace {ns:?}")));
        }
        let obj = WorkloadObject {
            workload: w,
            uid: uid.to_string(),
            created_ms: now_ms,
            generation: 1,
            status: Default::default(),
        };
        put_workload(tx, &obj)?;
        return Ok(Response::Done("created".into()));
    };
    if expect_generation.is_some_and(|g| g != existing.generation) {
        return Ok(Response::Refused(format!(
            "{object}: the object has been modified; apply your changes to the latest version and try again"
        )));
    }
    if selector_json(&existing.workload) != selector_json(&w) {
        return Ok(Response::Refused(format!("{object}: spec.selector: field is immutable")));
    }
    if existing.workload == w {
        return Ok(Response::Done("unchanged".into()));
    }
    if existing.workload.spec_json() != w.spec_json() {
        existing.generation += 1;
    }
    // What controllers own in the metadata stays theirs.
    let mut w = w;
    if w.metadata().owner_references.is_empty() {
        w.metadata_mut().owner_references = existing.workload.metadata().owner_references.clone();
    }
    if let Some(rev) = existing.workload.metadata().annotations.get(super::workload::REVISION) {
        w.metadata_mut()
            .annotations
            .entry(super::workload::REVISION.into())
            .or_insert_with(|| rev.clone());
    }
    existing.workload = w;
    put_workload(tx, &existing)?;
    Ok(Response::Done("configured".into()))
}

fn selector_json(w: &Workload) -> serde_json::Value {
    match w {
        Workload::Deployment(d) => serde_json::to_value(&d.spec.selector),
        Workload::ReplicaSet(r) => serde_json::to_value(&r.spec.selector),
        Workload::DaemonSet(d) => serde_json::to_value(&d.spec.selector),
    }
    .expect("plain struct")
}

/// Deletes a workload; with `Background` what it owns goes too (pods are
/// stopped by their nodes), with `Orphan` its dependents lose the reference.
pub fn delete(tx: &Transaction<'_>, kind: Kind, ns: &str, name: &str, cascade: Cascade, now_ms: u64) -> rusqlite::Result<Response> {
    match get_workload(tx, kind, ns, name)? {
        None => Ok(Response::Refused(format!(
            "{} {name:?} not found in namespace {ns:?}",
            kind.lower()
        ))),
        Some(w) => {
            remove(tx, &w, cascade, now_ms)?;
            Ok(Response::Done("deleted".into()))
        }
    }
}

fn remove(tx: &Transaction<'_>, w: &WorkloadObject, cascade: Cascade, now_ms: u64) -> rusqlite::Result<()> {
    let (kind, ns, name) = w.key();
    remove_workload(tx, kind, &ns, &name)?;
    for dep in owned_workloads(tx, &ns, &w.uid)? {
        match cascade {
            Cascade::Background => remove(tx, &dep, cascade, now_ms)?,
            Cascade::Orphan => {
                let mut dep = dep;
                dep.workload.metadata_mut().owner_references.retain(|o| o.uid != w.uid);
                put_workload(tx, &dep)?;
            }
        }
    }
    for mut pod in owned_pods(tx, &ns, &w.uid)? {
        match cascade {
            Cascade::Background => delete_pod(tx, &ns, &pod.pod.metadata.name, now_ms)?,
            Cascade::Orphan => {
                pod.pod.metadata.owner_references.retain(|o| o.uid != w.uid);
                put_pod(tx, &pod)?;
            }
        }
    }
    Ok(())
}

/// `scale`: sets `spec.replicas` of a Deployment or ReplicaSet.
pub fn scale(tx: &Transaction<'_>, kind: Kind, ns: &str, name: &str, replicas: i64) -> rusqlite::Result<Response> {
    let object = format!("{}/{name}", kind.lower());
    let Some(mut w) = get_workload(tx, kind, ns, name)? else {
        return Ok(Response::Refused(format!("{object} not found in namespace {ns:?}")));
    };
    let slot = match &mut w.workload {
        Workload::Deployment(d) => &mut d.spec.replicas,
        Workload::ReplicaSet(r) => &mut r.spec.replicas,
        Workload::DaemonSet(_) => return Ok(Response::Refused(format!("{object}: a DaemonSet cannot be scaled"))),
    };
    if *slot == Some(replicas) {
        return Ok(Response::Done("unchanged".into()));
    }
    *slot = Some(replicas);
    w.generation += 1;
    put_workload(tx, &w)?;
    Ok(Response::Done("scaled".into()))
}

/// Applies a controller pass's writes, each checked against the state as
/// it is now; a stale one is skipped.
pub fn reconcile(tx: &Transaction<'_>, ops: &[Op], now_ms: u64) -> rusqlite::Result<Response> {
    // Live pods per owner, read once per entry and kept up to date by the
    // creations in it (a pass creates up to 500 pods for one ReplicaSet).
    let mut live: HashMap<String, Vec<Option<String>>> = HashMap::new();
    for op in ops {
        match op {
            Op::CreatePod { pod, uid } => create_pod(tx, pod, uid, now_ms, &mut live)?,
            Op::DeletePod {
                namespace,
                name,
                uid,
                reason,
                object,
                message,
            } => {
                let Some(p) = get_pod(tx, namespace, name)? else { continue };
                if p.uid != *uid || p.deleting_ms.is_some() {
                    continue;
                }
                delete_pod(tx, namespace, name, now_ms)?;
                event(tx, now_ms, "Normal", reason, object, message)?;
            }
            Op::CreateWorkload { workload, uid } => {
                let m = workload.metadata();
                let ns = m.namespace().to_string();
                if get_workload(tx, workload.kind(), &ns, &m.name)?.is_some() || !owner_current(tx, m)? {
                    continue;
                }
                let obj = WorkloadObject {
                    workload: (**workload).clone(),
                    uid: uid.clone(),
                    created_ms: now_ms,
                    generation: 1,
                    status: Default::default(),
                };
                put_workload(tx, &obj)?;
                if let (Workload::ReplicaSet(rs), Some(owner)) = (&obj.workload, m.controller()) {
                    let msg = format!("Scaled up replica set {} to {}", m.name, rs.spec.replicas());
                    event(
                        tx,
                        now_ms,
                        "Normal",
                        "ScalingReplicaSet",
                        &format!("deployment/{ns}/{}", owner.name),
                        &msg,
                    )?;
                }
            }
            Op::ScaleReplicaSet {
                namespace,
                name,
                uid,
                replicas,
                annotations,
                by,
            } => {
                let Some(mut w) = get_workload(tx, Kind::ReplicaSet, namespace, name)? else {
                    continue;
                };
                if w.uid != *uid {
                    continue;
                }
                let Workload::ReplicaSet(rs) = &mut w.workload else { continue };
                let before = rs.spec.replicas();
                if before != *replicas {
                    rs.spec.replicas = Some(*replicas);
                    w.generation += 1;
                }
                rs.metadata.annotations.extend(annotations.clone());
                put_workload(tx, &w)?;
                if let (Some(by), true) = (by, before != *replicas) {
                    let dir = if *replicas > before { "up" } else { "down" };
                    let msg = format!("Scaled {dir} replica set {name} to {replicas} from {before}");
                    event(tx, now_ms, "Normal", "ScalingReplicaSet", by, &msg)?;
                }
            }
            Op::DeleteWorkload {
                kind,
                namespace,
                name,
                uid,
            } => {
                if let Some(w) = get_workload(tx, *kind, namespace, name)? {
                    if w.uid == *uid {
                        remove(tx, &w, Cascade::Background, now_ms)?;
                    }
                }
            }
            Op::Status {
                kind,
                namespace,
                name,
                uid,
                status,
            } => {
                if let Some(mut w) = get_workload(tx, *kind, namespace, name)? {
                    if w.uid == *uid {
                        w.status = status.clone();
                        put_workload(tx, &w)?;
                    }
                }
            }
        }
    }
    Ok(Response::Ok)
}

/// Whether the object's controller still exists as the incarnation named.
fn owner_current(tx: &Transaction<'_>, m: &crate::api::manifest::ObjectMeta) -> rusqlite::Result<bool> {
    let Some(o) = m.controller() else { return Ok(false) };
    let Some(kind) = Kind::parse(&o.kind) else { return Ok(false) };
    Ok(get_workload(tx, kind, m.namespace(), &o.name)?.is_some_and(|w| w.uid == o.uid))
}

/// A controller's new pod: only while its owner is current and still
/// short of pods (a ReplicaSet below `replicas`, a DaemonSet without a
/// live pod on that node).
fn create_pod(
    tx: &Transaction<'_>,
    pod: &Pod,
    uid: &str,
    now_ms: u64,
    live: &mut HashMap<String, Vec<Option<String>>>,
) -> rusqlite::Result<()> {
    let m = &pod.metadata;
    let ns = m.namespace();
    if !owner_current(tx, m)? || get_pod(tx, ns, &m.name)?.is_some() {
        return Ok(());
    }
    let owner = m.controller().expect("checked by owner_current");
    // The nodes of the owner's live pods (None: not bound yet).
    let nodes = match live.entry(owner.uid.clone()) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => e.insert(
            owned_pods(tx, ns, &owner.uid)?
                .into_iter()
                .filter(|p| p.is_active())
                .map(|p| p.node)
                .collect(),
        ),
    };
    let room = match Kind::parse(&owner.kind) {
        Some(Kind::ReplicaSet) => {
            let Some(w) = get_workload(tx, Kind::ReplicaSet, ns, &owner.name)? else {
                return Ok(());
            };
            let Workload::ReplicaSet(rs) = &w.workload else { return Ok(()) };
            (nodes.len() as i64) < rs.spec.replicas()
        }
        Some(Kind::DaemonSet) => {
            let node = pod.spec.bound_node();
            node.is_some() && !nodes.iter().any(|n| n.as_deref() == node)
        }
        _ => false,
    };
    if !room {
        return Ok(());
    }
    if let Response::Done(_) = put_pod_cmd(tx, pod, uid, now_ms)? {
        nodes.push(pod.spec.bound_node().map(str::to_string));
        let object = format!("{}/{ns}/{}", owner.kind.to_lowercase(), owner.name);
        event(
            tx,
            now_ms,
            "Normal",
            "SuccessfulCreate",
            &object,
            &format!("Created pod: {}", m.name),
        )?;
    }
    Ok(())
}

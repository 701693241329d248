//! Workload requests: list and show, delete (cascading or orphaning),
//! and the in-place changes of `scale`, `set image`, `rollout` and `drain`.
//! A change of a Deployment is a read-modify-write of its manifest checked
//! by generation in the state, so a concurrent change is never lost.

use super::objects::{new_uid, view};
use crate::api::manifest::{Deployment, Kind, Workload};
use crate::api::wire::{Reply, WorkloadAction};
use crate::consensus::Consensus;
use crate::state::workload::{Op, POD_TEMPLATE_HASH, REVISION};
use crate::state::{Cascade, Command, Response, WorkloadObject};

fn error(message: impl Into<String>) -> Reply {
    Reply::Error { message: message.into() }
}

fn object(kind: Kind, name: &str) -> String {
    format!("{}.apps/{name}", kind.lower())
}

/// Every workload of a kind, or one with what it owns.
pub fn get(c: &Consensus, kind: Kind, namespace: Option<&str>, name: Option<&str>) -> Reply {
    let all = match c.replica.workloads() {
        Ok(w) => w,
        Err(e) => return error(format!("reading the state: {e}")),
    };
    let items: Vec<WorkloadObject> = all
        .iter()
        .filter(|w| {
            let (k, ns, n) = w.key();
            k == kind && namespace.is_none_or(|x| x == ns) && name.is_none_or(|x| x == n)
        })
        .cloned()
        .collect();
    let Some(name) = name else {
        return Reply::Workloads {
            items,
            pods: vec![],
            owned: vec![],
        };
    };
    let Some(one) = items.first() else {
        return error(format!(
            "{} {name:?} not found in namespace {:?}",
            kind.lower(),
            namespace.unwrap_or("default")
        ));
    };
    let owned: Vec<WorkloadObject> = all
        .iter()
        .filter(|w| w.workload.metadata().controller().is_some_and(|o| o.uid == one.uid))
        .cloned()
        .collect();
    let owners: Vec<&str> = std::iter::once(one.uid.as_str())
        .chain(owned.iter().map(|w| w.uid.as_str()))
        .collect();
    let pods = match c.replica.pods() {
        Ok(p) => p
            .into_iter()
            .filter(|p| p.owner_uid().is_some_and(|u| owners.contains(&u)))
            .map(view)
            .collect(),
        Err(e) => return error(format!("reading the state: {e}")),
    };
    Reply::Workloads { items, pods, owned }
}

/// Deletes a workload.
pub async fn delete(c: &Consensus, kind: Kind, namespace: &str, name: &str, cascade: Cascade) -> Reply {
    let cmd = Command::DeleteWorkload {
        kind,
        namespace: namespace.into(),
        name: name.into(),
        cascade,
        now_ms: crate::runtime::shim::now_ms(),
    };
    match c.write(cmd).await {
        Ok(Response::Refused(why)) => error(why),
        Ok(_) => Reply::Changed {
            object: object(kind, name),
            action: "deleted".into(),
        },
        Err(e) => error(e.to_string()),
    }
}

/// `scale`, `set image`, `rollout pause|resume|restart|undo`.
pub async fn act(c: &Consensus, kind: Kind, namespace: &str, name: &str, action: WorkloadAction) -> Reply {
    if let WorkloadAction::Scale { replicas } = action {
        if replicas < 0 {
            return error("--replicas must be 0 or more");
        }
        let cmd = Command::Scale {
            kind,
            namespace: namespace.into(),
            name: name.into(),
            replicas,
        };
        return match c.write(cmd).await {
            Ok(Response::Refused(why)) => error(why),
            Ok(Response::Done(action)) => Reply::Changed {
                object: object(kind, name),
                action,
            },
            Ok(other) => error(format!("unexpected answer {other:?}")),
            Err(e) => error(e.to_string()),
        };
    }
    if kind != Kind::Deployment {
        return error(format!("{} is not supported for {}s", verb(&action), kind.lower()));
    }
    // Read, change, write with the generation read; retried if it moved.
    for _ in 0..3 {
        let current = match c.replica.workload(kind, namespace, name) {
            Ok(Some(w)) => w,
            Ok(None) => return error(format!("deployment {name:?} not found in namespace {namespace:?}")),
            Err(e) => return error(format!("reading the state: {e}")),
        };
        let Workload::Deployment(mut d) = current.workload.clone() else {
            return error("not a Deployment");
        };
        let done = match change(c, &current, &mut d, &action) {
            Ok(done) => done,
            Err(why) => return error(why),
        };
        if Workload::Deployment(d.clone()) == current.workload {
            return Reply::Changed {
                object: object(kind, name),
                action: format!("{done} (no change)"),
            };
        }
        let cmd = Command::PutWorkload {
            workload: Box::new(Workload::Deployment(d)),
            uid: new_uid(),
            now_ms: crate::runtime::shim::now_ms(),
            expect_generation: Some(current.generation),
        };
        match c.write(cmd).await {
            Ok(Response::Refused(why)) if why.contains("has been modified") => continue,
            Ok(Response::Refused(why)) => return error(why),
            Ok(_) => {
                return Reply::Changed {
                    object: object(kind, name),
                    action: done,
                }
            }
            Err(e) => return error(e.to_string()),
        }
    }
    error(format!("deployment {name:?} kept changing; try again"))
}

fn verb(a: &WorkloadAction) -> &'static str {
    match a {
        WorkloadAction::Scale { .. } => "scale",
        WorkloadAction::SetImage { .. } => "set image",
        WorkloadAction::Pause => "rollout pause",
        WorkloadAction::Resume => "rollout resume",
        WorkloadAction::Restart { .. } => "rollout restart",
        WorkloadAction::Undo { .. } => "rollout undo",
    }
}

/// Applies the action to the manifest; the answer's word, or why not.
fn change(c: &Consensus, current: &WorkloadObject, d: &mut Deployment, action: &WorkloadAction) -> Result<String, String> {
    match action {
        WorkloadAction::Scale { .. } => unreachable!("handled by Command::Scale"),
        WorkloadAction::SetImage { images } => {
            for (container, image) in images {
                let spec = &mut d.spec.template.spec;
                let Some(slot) = spec
                    .containers
                    .iter_mut()
                    .chain(spec.init_containers.iter_mut())
                    .find(|x| &x.name == container)
                else {
                    return Err(format!("unable to find container named {container:?}"));
                };
                slot.image = image.clone();
            }
            Ok("image updated".into())
        }
        WorkloadAction::Pause => {
            d.spec.paused = true;
            Ok("paused".into())
        }
        WorkloadAction::Resume => {
            d.spec.paused = false;
            Ok("resumed".into())
        }
        WorkloadAction::Restart { at } => {
            d.spec
                .template
                .metadata
                .annotations
                .insert("kubectl.kubernetes.io/restartedAt".into(), at.clone());
            Ok("restarted".into())
        }
        WorkloadAction::Undo { to_revision } => {
            let sets: Vec<WorkloadObject> = c
                .replica
                .workloads()
                .map_err(|e| format!("reading the state: {e}"))?
                .into_iter()
                .filter(|w| w.workload.metadata().controller().is_some_and(|o| o.uid == current.uid))
                .collect();
            let mut history: Vec<(u64, crate::api::manifest::PodTemplateSpec)> = sets
                .iter()
                .filter_map(|w| match &w.workload {
                    Workload::ReplicaSet(rs) => {
                        let rev = rs.metadata.annotations.get(REVISION)?.parse().ok()?;
                        let mut t = rs.spec.template.clone();
                        t.metadata.labels.remove(POD_TEMPLATE_HASH);
                        Some((rev, t))
                    }
                    _ => None,
                })
                .collect();
            history.sort_by_key(|(r, _)| *r);
            let target = if *to_revision == 0 {
                let current_rev = history.iter().rev().find(|(_, t)| *t == d.spec.template).map(|(r, _)| *r);
                history
                    .iter()
                    .rev()
                    .find(|(r, _)| Some(*r) != current_rev && current_rev.is_none_or(|c| *r < c))
            } else {
                history.iter().find(|(r, _)| r == to_revision)
            };
            let Some((rev, t)) = target else {
                return Err(if *to_revision == 0 {
                    "no rollout history found for this deployment".into()
                } else {
                    format!("unable to find specified revision {to_revision} in history")
                });
            };
            d.spec.template = t.clone();
            Ok(format!("rolled back (to revision {rev})"))
        }
    }
}

/// Cordons a node, then deletes its controller-managed pods so their
/// controllers place them elsewhere (DaemonSet pods only if asked).
pub async fn drain(c: &Consensus, node: &str, include_daemonsets: bool) -> Reply {
    let cordon = Command::Cordon {
        name: node.into(),
        cordoned: true,
    };
    match c.write(cordon).await {
        Ok(Response::Refused(why)) => return error(why),
        Ok(_) => {}
        Err(e) => return error(e.to_string()),
    }
    let pods = match c.replica.pods_on(node) {
        Ok(p) => p,
        Err(e) => return error(format!("reading the state: {e}")),
    };
    let mut skipped = Vec::new();
    let mut ops = Vec::new();
    for p in pods.iter().filter(|p| p.deleting_ms.is_none()) {
        let (ns, name) = p.key();
        match p.pod.metadata.controller() {
            None => skipped.push(format!("{ns}/{name} (no controller)")),
            Some(o) if o.kind == "DaemonSet" && !include_daemonsets => {}
            Some(_) => ops.push(Op::DeletePod {
                object: format!("pod/{ns}/{name}"),
                namespace: ns,
                name,
                uid: p.uid.clone(),
                reason: "Evicted".into(),
                message: format!("Evicted by drain of node {node}"),
            }),
        }
    }
    let evicted = ops.len();
    if !ops.is_empty() {
        let cmd = Command::Reconcile {
            ops,
            now_ms: crate::runtime::shim::now_ms(),
        };
        if let Err(e) = c.write(cmd).await {
            return error(e.to_string());
        }
    }
    let mut action = format!("drained ({evicted} pods evicted)");
    if !skipped.is_empty() {
        action.push_str(&format!("; left pods without a controller: {}", skipped.join(", ")));
    }
    Reply::Changed {
        object: format!("node/{node}"),
        action,
    }
}

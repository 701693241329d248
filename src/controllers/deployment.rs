//! The Deployment controller: one ReplicaSet per revision of the pod
//! template, named `<deployment>-<pod-template-hash>`, and a rollout from
//! the old ones to the new one, as Kubernetes' `deployment_controller`:
//!
//! - `RollingUpdate`: the new ReplicaSet grows while all pods stay within
//!   `replicas + maxSurge`; old ones shrink while available pods stay at
//!   least `replicas - maxUnavailable` (unhealthy old pods go first). One
//!   step a pass; the next pass sees its effect.
//! - `Recreate`: old ReplicaSets go to 0; once their pods are gone, the new
//!   one goes to `replicas`.
//!
//! A template equal to an old revision's (a rollback) reuses that
//! ReplicaSet and gives it the next revision number. Status and the
//! `Available` and `Progressing` conditions are written only when they
//! change; `Progressing` turns False with `ProgressDeadlineExceeded` when
//! nothing moved for `progressDeadlineSeconds`.

use super::names::{template_hash, Names};
use super::{owner_ref, pods, status_op};
use crate::api::manifest::{Deployment, PodTemplateSpec, ReplicaSet, ReplicaSetSpec, StrategyType};
use crate::state::workload::{Condition, Kind, Op, Workload, WorkloadObject, WorkloadStatus, POD_TEMPLATE_HASH, REVISION};
use crate::state::PodObject;
use std::collections::BTreeMap;

/// A ReplicaSet the Deployment owns, with its pods.
pub struct Owned<'a> {
    /// The stored object.
    pub object: &'a WorkloadObject,
    /// Its manifest.
    pub rs: &'a ReplicaSet,
    /// Pods it owns.
    pub pods: &'a [&'a PodObject],
}

/// Counts of one ReplicaSet, projected: live pods beyond `spec.replicas`
/// are about to go, the least available first.
struct Counts {
    spec: i64,
    live: i64,
    ready: i64,
    available: i64,
}

fn revision(rs: &ReplicaSet) -> u64 {
    rs.metadata.annotations.get(REVISION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// The template without the hash label the ReplicaSet adds.
fn plain_template(rs: &ReplicaSet) -> PodTemplateSpec {
    let mut t = rs.spec.template.clone();
    t.metadata.labels.remove(POD_TEMPLATE_HASH);
    t
}

/// `maxSurge` and `maxUnavailable` as counts (Kubernetes' fenceposts:
/// surge rounds up, unavailable down, and both 0 means unavailable 1).
pub fn surge_and_unavailable(d: &Deployment) -> (i64, i64) {
    let replicas = d.spec.replicas().max(0);
    let ru = d.spec.strategy.as_ref().and_then(|s| s.rolling_update.clone()).unwrap_or_default();
    let quarter = crate::api::manifest::IntOrPercent::Str("25%".into());
    let surge = ru.max_surge.as_ref().unwrap_or(&quarter).scaled(replicas, true).unwrap_or(0).max(0);
    let unavailable = ru
        .max_unavailable
        .as_ref()
        .unwrap_or(&quarter)
        .scaled(replicas, false)
        .unwrap_or(0)
        .max(0);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable.min(replicas))
    }
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec.strategy.as_ref().and_then(|s| s.kind) == Some(StrategyType::Recreate)
}

/// The writes for one Deployment.
pub fn reconcile(w: &WorkloadObject, d: &Deployment, sets: &[Owned<'_>], now: u64, names: &mut Names) -> Vec<Op> {
    let replicas = d.spec.replicas().max(0);
    let min_ready = d.spec.min_ready_ms();
    let ns = d.metadata.namespace().to_string();
    let dep_object = format!("deployment/{ns}/{}", d.metadata.name);
    let mut sets: Vec<&Owned<'_>> = sets.iter().collect();
    sets.sort_by_key(|o| (o.object.created_ms, o.rs.metadata.name.clone()));
    let counts: Vec<Counts> = sets
        .iter()
        .map(|o| {
            let live: Vec<&&PodObject> = o.pods.iter().filter(|p| p.is_active()).collect();
            let spec = o.rs.spec.replicas().max(0);
            let cap = |n: usize| (n as i64).min(spec);
            Counts {
                spec,
                live: live.len() as i64,
                ready: cap(live.iter().filter(|p| pods::is_ready(p)).count()),
                available: cap(live.iter().filter(|p| pods::is_available(p, min_ready, now)).count()),
            }
        })
        .collect();
    let new_idx = sets.iter().position(|o| plain_template(o.rs) == d.spec.template);
    let max_rev = sets.iter().map(|o| revision(o.rs)).max().unwrap_or(0);
    let mut ops = Vec::new();
    let mut moved = false;
    let scale = |o: &Owned<'_>, to: i64, annotations: BTreeMap<String, String>| Op::ScaleReplicaSet {
        namespace: ns.clone(),
        name: o.rs.metadata.name.clone(),
        uid: o.object.uid.clone(),
        replicas: to,
        annotations,
        by: Some(dep_object.clone()),
    };

    // A rollback to an old template: that ReplicaSet becomes the newest revision.
    if let Some(i) = new_idx {
        if revision(sets[i].rs) < max_rev && !d.spec.paused {
            let rev = BTreeMap::from([(REVISION.to_string(), (max_rev + 1).to_string())]);
            ops.push(scale(sets[i], counts[i].spec, rev));
            return ops;
        }
    }
    let old: Vec<usize> = (0..sets.len()).filter(|&i| Some(i) != new_idx).collect();
    let old_spec: i64 = old.iter().map(|&i| counts[i].spec).sum();
    let old_live: i64 = old.iter().map(|&i| counts[i].live).sum();

    if d.spec.paused {
        // Paused: scaling only, onto the newest ReplicaSet with pods.
        if let Some(i) = new_idx.filter(|_| old_spec == 0) {
            if counts[i].spec != replicas {
                ops.push(scale(sets[i], replicas, BTreeMap::new()));
            }
        }
    } else if is_recreate(d) {
        if old_spec > 0 {
            for &i in &old {
                if counts[i].spec > 0 {
                    ops.push(scale(sets[i], 0, BTreeMap::new()));
                }
            }
            moved = true;
        } else if old_live == 0 {
            match new_idx {
                None => {
                    ops.push(create_new(w, d, replicas, max_rev + 1, names));
                    moved = true;
                }
                Some(i) if counts[i].spec != replicas => {
                    ops.push(scale(sets[i], replicas, BTreeMap::new()));
                    moved = true;
                }
                Some(_) => {}
            }
        }
    } else {
        let (surge, unavailable) = surge_and_unavailable(d);
        let all_spec: i64 = counts.iter().map(|c| c.spec).sum();
        match new_idx {
            None => {
                let room = (replicas + surge - old_spec).clamp(0, replicas);
                ops.push(create_new(w, d, room, max_rev + 1, names));
                moved = true;
            }
            Some(i) if counts[i].spec > replicas => {
                ops.push(scale(sets[i], replicas, BTreeMap::new()));
                moved = true;
            }
            Some(i) if counts[i].spec < replicas && all_spec < replicas + surge => {
                let up = (replicas + surge - all_spec).min(replicas - counts[i].spec);
                ops.push(scale(sets[i], counts[i].spec + up, BTreeMap::new()));
                moved = true;
            }
            Some(i) if old_spec > 0 => {
                let min_available = replicas - unavailable;
                let new_unavailable = counts[i].spec - counts[i].available;
                let mut budget = all_spec - min_available - new_unavailable;
                let mut to: BTreeMap<usize, i64> = BTreeMap::new();
                // Unhealthy old pods first: they serve nothing.
                for &j in &old {
                    let unhealthy = counts[j].spec - counts[j].available;
                    if budget <= 0 || unhealthy <= 0 {
                        continue;
                    }
                    let cut = unhealthy.min(budget);
                    budget -= cut;
                    to.insert(j, counts[j].spec - cut);
                }
                // Then available ones, while enough stay available.
                let available: i64 = (0..sets.len())
                    .map(|j| to.get(&j).map_or(counts[j].available, |&s| counts[j].available.min(s)))
                    .sum();
                let mut extra = available - min_available;
                for &j in &old {
                    let spec = to.get(&j).copied().unwrap_or(counts[j].spec);
                    if extra <= 0 || spec == 0 {
                        continue;
                    }
                    let cut = spec.min(extra);
                    extra -= cut;
                    to.insert(j, spec - cut);
                }
                for (j, n) in to {
                    if n != counts[j].spec {
                        ops.push(scale(sets[j], n, BTreeMap::new()));
                        moved = true;
                    }
                }
            }
            Some(_) => {}
        }
    }

    let complete = new_idx.is_some_and(|i| counts[i].live == replicas && counts[i].available == replicas) && old_live == 0;
    if complete && !d.spec.paused {
        ops.extend(history_cleanup(d, &sets, &counts, new_idx));
    }
    let status = status(w, d, &sets, &counts, new_idx, moved, complete, now);
    ops.extend(status_op(w, status));
    ops
}

fn create_new(w: &WorkloadObject, d: &Deployment, replicas: i64, revision: u64, names: &mut Names) -> Op {
    let hash = template_hash(&d.spec.template);
    let mut template = d.spec.template.clone();
    template.metadata.labels.insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let mut selector = d.spec.selector.clone();
    selector.match_labels.insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let mut metadata = template.metadata.clone();
    metadata.name = format!("{}-{hash}", d.metadata.name);
    metadata.namespace = Some(d.metadata.namespace().to_string());
    metadata.annotations = BTreeMap::from([(REVISION.to_string(), revision.to_string())]);
    metadata.owner_references = vec![owner_ref(w)];
    let rs = ReplicaSet {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        metadata,
        spec: ReplicaSetSpec {
            replicas: Some(replicas),
            selector,
            template,
            min_ready_seconds: d.spec.min_ready_seconds,
        },
        status: None,
    };
    Op::CreateWorkload {
        workload: Box::new(Workload::ReplicaSet(rs)),
        uid: names.uid(),
    }
}

/// Old ReplicaSets with no pods beyond `revisionHistoryLimit`, oldest first.
fn history_cleanup(d: &Deployment, sets: &[&Owned<'_>], counts: &[Counts], new_idx: Option<usize>) -> Vec<Op> {
    let mut idle: Vec<usize> = (0..sets.len())
        .filter(|&i| Some(i) != new_idx && counts[i].spec == 0 && counts[i].live == 0)
        .collect();
    idle.sort_by_key(|&i| revision(sets[i].rs));
    let extra = idle.len().saturating_sub(d.spec.history_limit());
    idle.into_iter()
        .take(extra)
        .map(|i| Op::DeleteWorkload {
            kind: Kind::ReplicaSet,
            namespace: d.metadata.namespace().to_string(),
            name: sets[i].rs.metadata.name.clone(),
            uid: sets[i].object.uid.clone(),
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn status(
    w: &WorkloadObject,
    d: &Deployment,
    sets: &[&Owned<'_>],
    counts: &[Counts],
    new_idx: Option<usize>,
    moved: bool,
    complete: bool,
    now: u64,
) -> WorkloadStatus {
    let replicas = d.spec.replicas().max(0);
    let (_, unavailable) = surge_and_unavailable(d);
    let old = &w.status;
    let mut s = WorkloadStatus {
        observed_generation: w.generation,
        replicas: counts.iter().map(|c| c.live).sum(),
        updated_replicas: new_idx.map_or(0, |i| counts[i].live),
        ready_replicas: counts.iter().map(|c| c.ready).sum(),
        available_replicas: counts.iter().map(|c| c.available).sum(),
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    s.unavailable_replicas = (replicas - s.available_replicas).max(0);
    let (av, reason, msg) = if s.available_replicas >= replicas - unavailable {
        ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    set_condition(&mut s.conditions, "Available", av, reason, msg, now, false);
    let rs_name = new_idx.map(|i| sets[i].rs.metadata.name.clone()).unwrap_or_default();
    let progressed = moved
        || s.updated_replicas > old.updated_replicas
        || s.ready_replicas > old.ready_replicas
        || s.available_replicas > old.available_replicas
        || s.replicas < old.replicas
        || w.generation != old.observed_generation;
    let current = s.conditions.iter().find(|c| c.kind == "Progressing").cloned();
    if d.spec.paused {
        set_condition(
            &mut s.conditions,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            now,
            false,
        );
    } else if complete {
        let msg = format!("ReplicaSet {rs_name:?} has successfully progressed.");
        set_condition(&mut s.conditions, "Progressing", "True", "NewReplicaSetAvailable", &msg, now, false);
    } else if progressed || current.as_ref().is_none_or(|c| c.status == "Unknown") {
        let msg = format!("ReplicaSet {rs_name:?} is progressing.");
        set_condition(&mut s.conditions, "Progressing", "True", "ReplicaSetUpdated", &msg, now, true);
    } else if let Some(c) = current.filter(|c| c.reason != "ProgressDeadlineExceeded") {
        if now.saturating_sub(c.last_update_ms) > d.spec.progress_deadline_ms() {
            let msg = format!("ReplicaSet {rs_name:?} has timed out progressing.");
            set_condition(
                &mut s.conditions,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                &msg,
                now,
                true,
            );
        }
    }
    s
}

/// Sets a condition; `touch` moves its update time even when nothing else changes.
fn set_condition(conds: &mut Vec<Condition>, kind: &str, status: &str, reason: &str, message: &str, now: u64, touch: bool) {
    match conds.iter_mut().find(|c| c.kind == kind) {
        Some(c) => {
            if c.status != status {
                c.last_transition_ms = now;
            }
            if c.status != status || c.reason != reason || c.message != message || touch {
                c.last_update_ms = now;
            }
            c.status = status.into();
            c.reason = reason.into();
            c.message = message.into();
        }
        None => conds.push(Condition {
            kind: kind.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_update_ms: now,
            last_transition_ms: now,
        }),
    }
}

/// When time alone changes this Deployment's view: the progress deadline.
pub fn deadline(w: &WorkloadObject, d: &Deployment) -> Option<u64> {
    let c = w.status.condition("Progressing")?;
    (c.status == "True" && c.reason == "ReplicaSetUpdated" && !d.spec.paused).then(|| c.last_update_ms + d.spec.progress_deadline_ms() + 1)
}

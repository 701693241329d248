//! Semantic checks on Deployments, ReplicaSets and DaemonSets, each naming
//! the field it refuses, as the Kubernetes API server words them where it can.

use super::{dns_subdomain, label_key, label_value, validate_pod};
use crate::api::manifest::{
    IntOrPercent, LabelSelector, LabelSelectorOperator, ObjectMeta, Pod, PodTemplateSpec, RestartPolicy, RollingUpdate, StrategyType,
    Workload,
};

/// Every problem found, each as `field.path: what is wrong`.
pub fn validate_workload(w: &Workload) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bad = |field: &str, why: String| problems.push(format!("{field}: {why}"));
    let (api_version, kind) = match w {
        Workload::Deployment(d) => (&d.api_version, "Deployment"),
        Workload::ReplicaSet(r) => (&r.api_version, "ReplicaSet"),
        Workload::DaemonSet(d) => (&d.api_version, "DaemonSet"),
    };
    if api_version != "apps/v1" {
        bad("apiVersion", format!("{api_version:?} is not supported for {kind} (use apps/v1)"));
    }
    meta(w.metadata(), &mut bad);
    match w {
        Workload::Deployment(d) => {
            replicas(d.spec.replicas, &mut bad);
            selector_and_template(&d.metadata, &d.spec.selector, &d.spec.template, &mut bad);
            non_negative("spec.minReadySeconds", d.spec.min_ready_seconds, &mut bad);
            non_negative("spec.revisionHistoryLimit", d.spec.revision_history_limit, &mut bad);
            non_negative("spec.progressDeadlineSeconds", d.spec.progress_deadline_seconds, &mut bad);
            if let (Some(p), Some(m)) = (d.spec.progress_deadline_seconds, d.spec.min_ready_seconds) {
                if p <= m {
                    bad("spec.progressDeadlineSeconds", "must be greater than minReadySeconds".into());
                }
            }
            if let Some(s) = &d.spec.strategy {
                match (s.kind, &s.rolling_update) {
                    (Some(StrategyType::OnDelete), _) => bad(
                        "spec.strategy.type",
                        "Unsupported value: \"OnDelete\": supported values: \"Recreate\", \"RollingUpdate\"".into(),
                    ),
                    (Some(StrategyType::Recreate), Some(_)) => bad(
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'".into(),
                    ),
                    (_, Some(ru)) => rolling("spec.strategy.rollingUpdate", ru, true, &mut bad),
                    _ => {}
                }
            }
        }
        Workload::ReplicaSet(r) => {
            replicas(r.spec.replicas, &mut bad);
            selector_and_template(&r.metadata, &r.spec.selector, &r.spec.template, &mut bad);
            non_negative("spec.minReadySeconds", r.spec.min_ready_seconds, &mut bad);
        }
        Workload::DaemonSet(d) => {
            selector_and_template(&d.metadata, &d.spec.selector, &d.spec.template, &mut bad);
            non_negative("spec.minReadySeconds", d.spec.min_ready_seconds, &mut bad);
            if let Some(u) = &d.spec.update_strategy {
                match (u.kind, &u.rolling_update) {
                    (Some(StrategyType::Recreate), _) => bad(
                        "spec.updateStrategy.type",
                        "Unsupported value: \"Recreate\": supported values: \"OnDelete\", \"RollingUpdate\"".into(),
                    ),
                    (Some(StrategyType::OnDelete), Some(_)) => bad(
                        "spec.updateStrategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'OnDelete'".into(),
                    ),
                    (_, Some(ru)) => rolling("spec.updateStrategy.rollingUpdate", ru, false, &mut bad),
                    _ => {}
                }
            }
        }
    }
    problems
}

fn meta(m: &ObjectMeta, bad: &mut impl FnMut(&str, String)) {
    if let Err(why) = dns_subdomain(&m.name) {
        bad("metadata.name", why);
    }
    // Pods are named `<name>-<10 chars>-<5 chars>` at most.
    if m.name.len() > 253 - 17 {
        bad(
            "metadata.name",
            format!("must be at most {} characters so its pods' names fit", 253 - 17),
        );
    }
    if let Some(ns) = &m.namespace {
        if let Err(why) = super::dns_label(ns) {
            bad("metadata.namespace", why);
        }
    }
    for (k, v) in &m.labels {
        if let Err(why) = label_key(k).and_then(|_| label_value(v)) {
            bad(&format!("metadata.labels[{k:?}]"), why);
        }
    }
}

fn replicas(r: Option<i64>, bad: &mut impl FnMut(&str, String)) {
    if r.is_some_and(|r| !(0..=i32::MAX as i64).contains(&r)) {
        bad("spec.replicas", "must be greater than or equal to 0".into());
    }
}

fn non_negative(field: &str, v: Option<i64>, bad: &mut impl FnMut(&str, String)) {
    if v.is_some_and(|v| v < 0) {
        bad(field, "must be greater than or equal to 0".into());
    }
}

fn selector_and_template(m: &ObjectMeta, s: &LabelSelector, t: &PodTemplateSpec, bad: &mut impl FnMut(&str, String)) {
    if s.is_empty() {
        bad("spec.selector", "empty selector is invalid for deployment".into());
    }
    for (i, r) in s.match_expressions.iter().enumerate() {
        let field = format!("spec.selector.matchExpressions[{i}]");
        if let Err(why) = label_key(&r.key) {
            bad(&format!("{field}.key"), why);
        }
        let wants_values = matches!(r.operator, LabelSelectorOperator::In | LabelSelectorOperator::NotIn);
        if wants_values && r.values.is_empty() {
            bad(
                &format!("{field}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'".into(),
            );
        }
        if !wants_values && !r.values.is_empty() {
            bad(
                &format!("{field}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'".into(),
            );
        }
    }
    for (k, v) in &s.match_labels {
        if let Err(why) = label_key(k).and_then(|_| label_value(v)) {
            bad(&format!("spec.selector.matchLabels[{k:?}]"), why);
        }
    }
    if !s.is_empty() && !s.matches(&t.metadata.labels) {
        bad(
            "spec.template.metadata.labels",
            format!("`selector` does not match template `labels` (selector: {})", s.to_text()),
        );
    }
    if t.spec.restart_policy != RestartPolicy::Always {
        bad(
            "spec.template.spec.restartPolicy",
            format!("Unsupported value: {:?}: supported values: \"Always\"", t.spec.restart_policy),
        );
    }
    // The template must be a valid pod, named as its pods will be.
    let pod = Pod {
        api_version: "v1".into(),
        kind: "Pod".into(),
        metadata: ObjectMeta {
            name: format!("{}-xxxxx", m.name),
            namespace: m.namespace.clone(),
            labels: t.metadata.labels.clone(),
            annotations: t.metadata.annotations.clone(),
            owner_references: vec![],
        },
        spec: t.spec.clone(),
    };
    for p in validate_pod(&pod) {
        if p.starts_with("metadata.name") || p.starts_with("metadata.namespace") {
            continue;
        }
        bad("spec.template", p);
    }
}

fn rolling(field: &str, ru: &RollingUpdate, surge_allowed: bool, bad: &mut impl FnMut(&str, String)) {
    let check = |v: &Option<IntOrPercent>, name: &str, bad: &mut dyn FnMut(&str, String)| -> i64 {
        match v {
            None => 1,
            Some(v) => match v.scaled(100, true) {
                Err(why) => {
                    bad(&format!("{field}.{name}"), why);
                    1
                }
                Ok(n) if n < 0 => {
                    bad(&format!("{field}.{name}"), "must be greater than or equal to 0".into());
                    1
                }
                Ok(n) if matches!(v, IntOrPercent::Str(_)) && n > 100 => {
                    bad(&format!("{field}.{name}"), "must not be greater than 100%".into());
                    n
                }
                Ok(n) => n,
            },
        }
    };
    let unavailable = check(&ru.max_unavailable, "maxUnavailable", bad);
    if !surge_allowed {
        if ru.max_surge.as_ref().is_some_and(|s| s.scaled(100, true) != Ok(0)) {
            bad(
                &format!("{field}.maxSurge"),
                "is not supported for DaemonSets by Shoal (use 0)".into(),
            );
        }
        if unavailable == 0 {
            bad(&format!("{field}.maxUnavailable"), "may not be 0".into());
        }
        return;
    }
    let surge = check(&ru.max_surge, "maxSurge", bad);
    if surge == 0 && unavailable == 0 {
        bad(&format!("{field}.maxUnavailable"), "may not be 0 when `maxSurge` is 0".into());
    }
}

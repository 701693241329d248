//! Semantic checks on a parsed Pod, each naming the field it refuses.

use super::manifest::{Container, Pod};
use super::quantity::Quantity;
use crate::runtime::image::ImageRef;
use std::collections::HashSet;

mod config;
pub mod dns;
mod probe;
mod scheduling;
mod service;
mod workload;

pub use config::{key_problem, validate_config_map, validate_secret};
pub use service::{validate_endpoint_slice, validate_endpoints, validate_service};
pub use workload::validate_workload;

/// Returns every problem found, each as `field.path: what is wrong`.
pub fn validate_pod(pod: &Pod) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bad = |field: String, why: String| problems.push(format!("{field}: {why}"));

    if pod.api_version != "v1" {
        bad(
            "apiVersion".into(),
            format!("{:?} is not supported for Pod (use v1)", pod.api_version),
        );
    }
    if let Err(why) = dns_subdomain(&pod.metadata.name) {
        bad("metadata.name".into(), why);
    }
    if let Some(ns) = &pod.metadata.namespace {
        if let Err(why) = dns_label(ns) {
            bad("metadata.namespace".into(), why);
        }
    }
    for (k, v) in &pod.metadata.labels {
        if let Err(why) = label_key(k) {
            bad(format!("metadata.labels[{k:?}]"), why);
        }
        if let Err(why) = label_value(v) {
            bad(format!("metadata.labels[{k:?}]"), why);
        }
    }
    for k in pod.metadata.annotations.keys() {
        if let Err(why) = label_key(k) {
            bad(format!("metadata.annotations[{k:?}]"), why);
        }
    }
    for (k, v) in &pod.spec.node_selector {
        if let Err(why) = label_key(k).and_then(|_| label_value(v)) {
            bad(format!("spec.nodeSelector[{k:?}]"), why);
        }
    }
    scheduling::validate_scheduling(&pod.spec, &mut bad);
    dns::validate_dns(&pod.spec, &mut bad);
    if let Some(g) = pod.spec.termination_grace_period_seconds {
        if g < 0 {
            bad("spec.terminationGracePeriodSeconds".into(), "must not be negative".into());
        }
    }
    if pod.spec.containers.is_empty() {
        bad("spec.containers".into(), "at least one container is required".into());
    }

    let mut volumes = HashSet::new();
    for (i, v) in pod.spec.volumes.iter().enumerate() {
        let field = format!("spec.volumes[{i}]");
        if let Err(why) = dns_label(&v.name) {
            bad(format!("{field}.name"), why);
        }
        if !volumes.insert(v.name.as_str()) {
            bad(format!("{field}.name"), format!("duplicate volume name {:?}", v.name));
        }
        let sources = [
            v.empty_dir.is_some(),
            v.host_path.is_some(),
            v.config_map.is_some(),
            v.secret.is_some(),
        ];
        match sources.iter().filter(|x| **x).count() {
            0 => bad(field.clone(), "needs a source: emptyDir, hostPath, configMap or secret".into()),
            1 => {}
            _ => bad(field.clone(), "has more than one source".into()),
        }
        if let Some(c) = &v.config_map {
            config_volume(&format!("{field}.configMap"), "name", &c.name, &c.items, c.default_mode, &mut bad);
        }
        if let Some(sv) = &v.secret {
            config_volume(
                &format!("{field}.secret"),
                "secretName",
                &sv.secret_name,
                &sv.items,
                sv.default_mode,
                &mut bad,
            );
        }
        match (&v.empty_dir, &v.host_path) {
            (Some(e), None) => {
                if let Some(m) = &e.medium {
                    if !m.is_empty() && m != "Memory" {
                        bad(
                            format!("{field}.emptyDir.medium"),
                            format!("{m:?} is not supported (use \"\" or Memory)"),
                        );
                    }
                }
                if let Some(s) = &e.size_limit {
                    if let Err(e) = Quantity::parse(s) {
                        bad(format!("{field}.emptyDir.sizeLimit"), e.to_string());
                    }
                }
            }
            (None, Some(h)) => {
                if !h.path.starts_with('/') {
                    bad(format!("{field}.hostPath.path"), format!("{:?} must be absolute", h.path));
                }
                let kinds = ["", "Directory", "DirectoryOrCreate", "File", "FileOrCreate"];
                if let Some(k) = &h.kind {
                    if !kinds.contains(&k.as_str()) {
                        bad(
                            format!("{field}.hostPath.type"),
                            format!("{k:?} is not supported (use one of {kinds:?})"),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    for (i, r) in pod.spec.image_pull_secrets.iter().enumerate() {
        if let Err(why) = dns_subdomain(&r.name) {
            bad(format!("spec.imagePullSecrets[{i}].name"), why);
        }
    }
    let mut names = HashSet::new();
    let all = pod
        .spec
        .init_containers
        .iter()
        .map(|c| ("initContainers", c))
        .chain(pod.spec.containers.iter().map(|c| ("containers", c)));
    for (i, (list, c)) in all.enumerate() {
        let idx = if list == "containers" {
            i - pod.spec.init_containers.len()
        } else {
            i
        };
        let field = format!("spec.{list}[{idx}]");
        if !names.insert(c.name.as_str()) {
            bad(format!("{field}.name"), format!("duplicate container name {:?}", c.name));
        }
        for p in validate_container(c, &volumes) {
            problems_push(&mut bad, &field, p);
        }
        for p in probe::validate_probes(c, list == "initContainers") {
            problems_push(&mut bad, &field, p);
        }
    }
    problems
}

fn problems_push(bad: &mut impl FnMut(String, String), field: &str, (sub, why): (String, String)) {
    bad(format!("{field}.{sub}"), why);
}

fn validate_container(c: &Container, volumes: &HashSet<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Err(why) = dns_label(&c.name) {
        out.push(("name".into(), why));
    }
    if c.image.trim().is_empty() {
        out.push(("image".into(), "is required".into()));
    } else if let Err(e) = ImageRef::parse(&c.image) {
        out.push(("image".into(), e.to_string()));
    }
    for (i, e) in c.env.iter().enumerate() {
        if e.name.is_empty() || e.name.contains('=') || e.name.contains('\0') {
            out.push((format!("env[{i}].name"), format!("{:?} is not a valid variable name", e.name)));
        }
        if let Some(from) = &e.value_from {
            let at = format!("env[{i}].valueFrom");
            if !e.value.is_empty() {
                out.push((at.clone(), "may not be specified when `value` is not empty".into()));
            }
            let set = [
                from.field_ref.is_some(),
                from.config_map_key_ref.is_some(),
                from.secret_key_ref.is_some(),
            ];
            if set.iter().filter(|x| **x).count() != 1 {
                out.push((
                    at.clone(),
                    "must specify exactly one of: `fieldRef`, `configMapKeyRef` or `secretKeyRef`".into(),
                ));
            }
            for (what, sel) in [
                ("configMapKeyRef", &from.config_map_key_ref),
                ("secretKeyRef", &from.secret_key_ref),
            ] {
                if let Some(k) = sel {
                    if let Err(why) = dns_subdomain(&k.name) {
                        out.push((format!("{at}.{what}.name"), why));
                    }
                    if let Some(why) = config::key_problem(&k.key) {
                        out.push((format!("{at}.{what}.key"), why));
                    }
                }
            }
            match &from.field_ref {
                None => {}
                Some(f) if f.api_version.as_deref().is_some_and(|v| v != "v1") => out.push((
                    format!("{at}.fieldRef.apiVersion"),
                    format!("{:?}: only \"v1\" is supported", f.api_version.as_deref().unwrap_or_default()),
                )),
                Some(f) if !crate::api::downward::supported(&f.field_path) => out.push((
                    format!("{at}.fieldRef.fieldPath"),
                    format!(
                        "Unsupported value: {:?}: supported values: {}",
                        f.field_path,
                        crate::api::downward::FIELD_PATHS.join(", ")
                    ),
                )),
                Some(_) => {}
            }
        }
    }
    for (i, e) in c.env_from.iter().enumerate() {
        let at = format!("envFrom[{i}]");
        match (&e.config_map_ref, &e.secret_ref) {
            (Some(r), None) | (None, Some(r)) => {
                if let Err(why) = dns_subdomain(&r.name) {
                    let what = if e.config_map_ref.is_some() { "configMapRef" } else { "secretRef" };
                    out.push((format!("{at}.{what}.name"), why));
                }
            }
            _ => out.push((at.clone(), "must specify exactly one of: `configMapRef` or `secretRef`".into())),
        }
        if let Some(p) = &e.prefix {
            if p.contains('=') || p.contains('\0') {
                out.push((format!("{at}.prefix"), format!("{p:?} is not a valid variable name prefix")));
            }
        }
    }
    if let Some(w) = &c.working_dir {
        if !w.starts_with('/') {
            out.push(("workingDir".into(), format!("{w:?} must be absolute")));
        }
    }
    for (i, p) in c.ports.iter().enumerate() {
        if !(1..=65535).contains(&p.container_port) {
            out.push((
                format!("ports[{i}].containerPort"),
                format!("{} is not in 1..65535", p.container_port),
            ));
        }
        if let Some(proto) = &p.protocol {
            if !["TCP", "UDP", "SCTP"].contains(&proto.as_str()) {
                out.push((format!("ports[{i}].protocol"), format!("{proto:?} is not TCP, UDP or SCTP")));
            }
        }
    }
    let mut parsed = std::collections::BTreeMap::new();
    for (kind, map) in [("requests", &c.resources.requests), ("limits", &c.resources.limits)] {
        for (res, value) in map {
            let field = format!("resources.{kind}.{res}");
            if res != "cpu" && res != "memory" {
                out.push((field, format!("resource {res:?} is not supported (use cpu or memory)")));
                continue;
            }
            match Quantity::parse(value) {
                Ok(q) => {
                    parsed.insert((kind, res.as_str()), q);
                }
                Err(e) => out.push((field, e.to_string())),
            }
        }
    }
    for res in ["cpu", "memory"] {
        if let (Some(r), Some(l)) = (parsed.get(&("requests", res)), parsed.get(&("limits", res))) {
            if r > l {
                out.push((
                    format!("resources.requests.{res}"),
                    format!("must be less than or equal to the {res} limit"),
                ));
            }
        }
    }
    for (i, m) in c.volume_mounts.iter().enumerate() {
        if !volumes.contains(m.name.as_str()) {
            out.push((
                format!("volumeMounts[{i}].name"),
                format!("no volume named {:?} in spec.volumes", m.name),
            ));
        }
        if !m.mount_path.starts_with('/') {
            out.push((
                format!("volumeMounts[{i}].mountPath"),
                format!("{:?} must be absolute", m.mount_path),
            ));
        }
        if m.mount_path.split('/').any(|p| p == "..") {
            out.push((format!("volumeMounts[{i}].mountPath"), "must not contain \"..\"".into()));
        }
    }
    if let Some(sc) = &c.security_context {
        for (f, v) in [("runAsUser", sc.run_as_user), ("runAsGroup", sc.run_as_group)] {
            if let Some(v) = v {
                if !(0..=u32::MAX as i64).contains(&v) {
                    out.push((format!("securityContext.{f}"), format!("{v} is not a valid id")));
                }
            }
        }
    }
    out
}

/// RFC 1123 label: at most 63 of `[a-z0-9-]`, starting and ending alphanumeric.
pub fn dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is required".into());
    }
    if s.len() > 63 {
        return Err(format!("{s:?} is longer than 63 characters"));
    }
    let ok = s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ends = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !ok || !ends(s.as_bytes()[0]) || !ends(s.as_bytes()[s.len() - 1]) {
        return Err(format!(
            "{s:?} is not a valid RFC 1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is required".into());
    }
    if s.len() > 253 || s.split('.').any(|l| dns_label(l).is_err()) {
        return Err(format!(
            "{s:?} is not a valid RFC 1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

pub(crate) fn label_key(k: &str) -> Result<(), String> {
    let (prefix, name) = k.rsplit_once('/').map(|(p, n)| (Some(p), n)).unwrap_or((None, k));
    if let Some(p) = prefix {
        dns_subdomain(p).map_err(|e| format!("key prefix {e}"))?;
    }
    if name.is_empty() || name.len() > 63 || !qualified(name) {
        return Err(format!(
            "{k:?} is not a valid key (at most 63 alphanumerics, '-', '_' or '.', alphanumeric at both ends)"
        ));
    }
    Ok(())
}

pub(crate) fn label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > 63 || !qualified(v) {
        return Err(format!(
            "value {v:?} is not valid (at most 63 alphanumerics, '-', '_' or '.', alphanumeric at both ends)"
        ));
    }
    Ok(())
}

fn qualified(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A configMap or secret volume's name, items and modes.
fn config_volume(
    field: &str,
    name_field: &str,
    name: &str,
    items: &[crate::api::manifest::KeyToPath],
    default_mode: Option<i32>,
    bad: &mut impl FnMut(String, String),
) {
    if let Err(why) = dns_subdomain(name) {
        bad(format!("{field}.{name_field}"), why);
    }
    let mode_ok = |m: i32| (0..=0o777).contains(&m);
    if let Some(m) = default_mode.filter(|m| !mode_ok(*m)) {
        bad(
            format!("{field}.defaultMode"),
            format!("Invalid value: {m}: must be a number between 0 and 0777 (octal), both inclusive"),
        );
    }
    for (i, it) in items.iter().enumerate() {
        let at = format!("{field}.items[{i}]");
        if let Some(why) = config::key_problem(&it.key) {
            bad(format!("{at}.key"), why);
        }
        let p = &it.path;
        if p.is_empty() || p.starts_with('/') || p.split('/').any(|part| part == ".." || part.is_empty()) || p.starts_with("..") {
            bad(
                format!("{at}.path"),
                format!("Invalid value: {p:?}: must be a relative path without '..' and not start with '..'"),
            );
        }
        if let Some(m) = it.mode.filter(|m| !mode_ok(*m)) {
            bad(
                format!("{at}.mode"),
                format!("Invalid value: {m}: must be a number between 0 and 0777 (octal), both inclusive"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1123_names() {
        assert!(dns_subdomain("web-1.a").is_ok());
        for bad in ["Web", "-a", "a-", "a_b", "", "a..b"] {
            assert!(dns_subdomain(bad).is_err(), "{bad} accepted");
        }
        assert!(dns_label(&"a".repeat(64)).is_err());
    }

    #[test]
    fn label_keys_take_a_dns_prefix() {
        assert!(label_key("app.kubernetes.io/name").is_ok());
        assert!(label_key("app").is_ok());
        assert!(label_key("bad key").is_err());
        assert!(label_value("").is_ok());
    }
}

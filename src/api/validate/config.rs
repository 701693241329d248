//! Semantic checks on ConfigMaps and Secrets, worded as the Kubernetes API
//! server words them.

use super::{dns_label, dns_subdomain, label_key, label_value};
use crate::api::manifest::{decode_base64, ConfigMap, ObjectMeta, Secret, DOCKER_CONFIG_JSON};

/// The most a ConfigMap's or Secret's values may hold, as in Kubernetes.
pub const MAX_BYTES: usize = 1024 * 1024;

/// Every problem of a ConfigMap, each as `field: reason`.
pub fn validate_config_map(c: &ConfigMap) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bad = |field: String, why: String| problems.push(format!("{field}: {why}"));
    head(&c.api_version, "ConfigMap", &c.metadata, &mut bad);
    let mut total = 0;
    for (k, v) in &c.data {
        key(&format!("data[{k:?}]"), k, &mut bad);
        total += v.len();
    }
    for (k, v) in &c.binary_data {
        let field = format!("binaryData[{k:?}]");
        key(&field, k, &mut bad);
        if c.data.contains_key(k) {
            bad(field.clone(), format!("Invalid value: {k:?}: duplicate of key present in data"));
        }
        match decode_base64(v) {
            Ok(b) => total += b.len(),
            Err(e) => bad(field, format!("illegal base64 data: {e}")),
        }
    }
    if total > MAX_BYTES {
        bad(
            "data".into(),
            format!("Too long: must have at most {MAX_BYTES} bytes (has {total})"),
        );
    }
    problems
}

/// Every problem of a Secret, each as `field: reason`.
pub fn validate_secret(s: &Secret) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bad = |field: String, why: String| problems.push(format!("{field}: {why}"));
    head(&s.api_version, "Secret", &s.metadata, &mut bad);
    let mut total = 0;
    for (k, v) in &s.data {
        let field = format!("data[{k:?}]");
        key(&field, k, &mut bad);
        match decode_base64(v) {
            Ok(b) => total += b.len(),
            Err(e) => bad(field, format!("illegal base64 data: {e}")),
        }
    }
    for (k, v) in &s.string_data {
        key(&format!("stringData[{k:?}]"), k, &mut bad);
        total += v.len();
    }
    if total > MAX_BYTES {
        bad(
            "data".into(),
            format!("Too long: must have at most {MAX_BYTES} bytes (has {total})"),
        );
    }
    let ty = s.type_name();
    if ty.is_empty() {
        bad("type".into(), "Required value".into());
    }
    if ty == DOCKER_CONFIG_JSON {
        let values = s.values();
        match values.get(".dockerconfigjson") {
            None => bad("data[.dockerconfigjson]".into(), "Required value".into()),
            Some(v) => {
                if let Err(e) = serde_json::from_slice::<serde_json::Value>(v) {
                    bad("data[.dockerconfigjson]".into(), format!("Invalid value: not JSON: {e}"));
                }
            }
        }
    }
    problems
}

fn head(api_version: &str, kind: &str, m: &ObjectMeta, bad: &mut impl FnMut(String, String)) {
    if api_version != "v1" {
        bad("apiVersion".into(), format!("{api_version:?} is not supported for {kind} (use v1)"));
    }
    if let Err(why) = dns_subdomain(&m.name) {
        bad("metadata.name".into(), why);
    }
    if let Some(ns) = &m.namespace {
        if let Err(why) = dns_label(ns) {
            bad("metadata.namespace".into(), why);
        }
    }
    for (k, v) in &m.labels {
        if let Err(why) = label_key(k).and_then(|_| label_value(v)) {
            bad(format!("metadata.labels[{k:?}]"), why);
        }
    }
}

/// A key is a file name in a volume and may be an env name: Kubernetes'
/// `IsConfigMapKey`.
pub fn key_problem(k: &str) -> Option<String> {
    let ok_chars = k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if k.is_empty() || k.len() > 253 || !ok_chars {
        return Some(format!(
            "Invalid value: {k:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (at most 253)"
        ));
    }
    if k == "." || k == ".." || k.starts_with("..") {
        return Some(format!("Invalid value: {k:?}: must not be '.' or '..' or start with '..'"));
    }
    None
}

fn key(field: &str, k: &str, bad: &mut impl FnMut(String, String)) {
    if let Some(why) = key_problem(k) {
        bad(field.into(), why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(yaml: &str) -> Secret {
        serde_yaml_ng::from_str(&format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\n{yaml}")).unwrap()
    }

    #[test]
    fn secrets_are_checked_by_field() {
        assert!(validate_secret(&secret("data: {a: aGVsbG8=}\nstringData: {b: clear}")).is_empty());
        let p = validate_secret(&secret("data: {a: 'not base64!'}"));
        assert!(p[0].starts_with("data[\"a\"]: illegal base64"), "{p:?}");
        let p = validate_secret(&secret("data: {'a/b': aGVsbG8=}"));
        assert!(p[0].contains("valid config key"), "{p:?}");
        let p = validate_secret(&secret("type: kubernetes.io/dockerconfigjson\nstringData: {x: y}"));
        assert!(p[0].starts_with("data[.dockerconfigjson]: Required"), "{p:?}");
        let p = validate_secret(&secret(
            "type: kubernetes.io/dockerconfigjson\nstringData: {.dockerconfigjson: '{'}",
        ));
        assert!(p[0].contains("not JSON"), "{p:?}");
    }

    #[test]
    fn string_data_is_merged_into_data_and_wins() {
        let s = secret("data: {a: b2xk}\nstringData: {a: new, b: clear}").normalised();
        assert!(s.string_data.is_empty());
        assert_eq!(s.type_name(), "Opaque");
        assert_eq!(s.values()["a"], b"new");
        assert_eq!(s.data["b"], "Y2xlYXI=");
    }

    #[test]
    fn config_maps_refuse_a_key_in_both_maps_and_bad_keys() {
        let cm: ConfigMap =
            serde_yaml_ng::from_str("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v, '..x': y}\nbinaryData: {k: AAE=}")
                .unwrap();
        let p = validate_config_map(&cm);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().any(|x| x.contains("duplicate of key present in data")));
        assert!(p.iter().any(|x| x.contains("start with '..'")));
    }
}

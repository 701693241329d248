//! Checks on a container's probes, with Kubernetes' rules (`validateProbe`,
//! `validateHandler`, `ValidatePortNumOrName`).

use crate::api::manifest::{Container, IntOrString, Probe, Scheme};

/// Reports each problem as (field path below the container, reason).
pub(super) fn validate_probes(c: &Container, init: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let probes = [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ];
    for (field, probe) in probes {
        let Some(p) = probe else { continue };
        if init {
            out.push((field.to_string(), "must not be set for init containers".into()));
            continue;
        }
        for (sub, why) in probe_problems(p, c) {
            let path = if sub.is_empty() {
                field.to_string()
            } else {
                format!("{field}.{sub}")
            };
            out.push((path, why));
        }
        if field != "readinessProbe" && p.success_threshold != 1 {
            out.push((format!("{field}.successThreshold"), "must be 1".into()));
        }
        if field == "readinessProbe" && p.termination_grace_period_seconds.is_some() {
            out.push((
                format!("{field}.terminationGracePeriodSeconds"),
                "must not be set for readinessProbes".into(),
            ));
        }
    }
    out
}

fn probe_problems(p: &Probe, c: &Container) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let handlers = [p.exec.is_some(), p.http_get.is_some(), p.tcp_socket.is_some()];
    match handlers.iter().filter(|h| **h).count() {
        0 => out.push(("", "must specify a handler type (exec, httpGet or tcpSocket)".into())),
        1 => {}
        _ => out.push(("", "may not specify more than 1 handler type".into())),
    }
    if let Some(e) = &p.exec {
        if e.command.is_empty() {
            out.push(("exec.command", "is required".into()));
        }
    }
    if let Some(h) = &p.http_get {
        if let Err(why) = port(&h.port, c) {
            out.push(("httpGet.port", why));
        }
        if h.scheme == Scheme::HTTPS {
            out.push(("httpGet.scheme", "\"HTTPS\" is not supported yet (use HTTP)".into()));
        }
        if h.path.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            out.push((
                "httpGet.path",
                format!("{:?} must not contain spaces or control characters", h.path),
            ));
        }
        if let Err(why) = host(&h.host) {
            out.push(("httpGet.host", why));
        }
        for hd in &h.http_headers {
            if hd.name.is_empty() || !hd.name.bytes().all(is_token) {
                out.push(("httpGet.httpHeaders", format!("{:?} is not a valid HTTP header name", hd.name)));
            }
            if hd.value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                out.push((
                    "httpGet.httpHeaders",
                    format!("the value of {:?} must not contain CR, LF or NUL", hd.name),
                ));
            }
        }
    }
    if let Some(t) = &p.tcp_socket {
        if let Err(why) = port(&t.port, c) {
            out.push(("tcpSocket.port", why));
        }
        if let Err(why) = host(&t.host) {
            out.push(("tcpSocket.host", why));
        }
    }
    if p.initial_delay_seconds < 0 {
        out.push(("initialDelaySeconds", "must be greater than or equal to 0".into()));
    }
    let counts = [
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ];
    for (field, n) in counts {
        // 0 took the default when parsed, so only a negative value lands here.
        if n < 1 {
            out.push((field, "must be greater than or equal to 1".into()));
        }
    }
    if let Some(g) = p.termination_grace_period_seconds {
        if g <= 0 {
            out.push(("terminationGracePeriodSeconds", "must be greater than 0".into()));
        }
    }
    out
}

/// A number in 1..=65535, or an IANA_SVC_NAME naming a port of the container.
fn port(p: &IntOrString, c: &Container) -> Result<(), String> {
    match p {
        IntOrString::Int(n) if (1..=65535).contains(n) => Ok(()),
        IntOrString::Int(n) => Err(format!("{n} must be between 1 and 65535, inclusive")),
        IntOrString::String(name) => {
            port_name(name)?;
            if c.ports.iter().any(|cp| cp.name.as_deref() == Some(name.as_str())) {
                Ok(())
            } else {
                Err(format!(
                    "{name:?} does not name a port of this container (containerPort with that name)"
                ))
            }
        }
    }
}

/// IANA_SVC_NAME: at most 15 of `[a-z0-9-]`, at least one letter, no `-`
/// at either end and no `--`.
fn port_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} must be a port number or a port name (IANA_SVC_NAME: at most 15 lowercase letters, digits and '-', with a letter)"
        ))
    }
}

fn host(h: &str) -> Result<(), String> {
    if h.bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b"/@?#".contains(&b))
    {
        return Err(format!("{h:?} is not a host name or address"));
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let c: Container = serde_yaml_ng::from_str(&format!(
            "{{name: c, image: busybox, ports: [{{name: http, containerPort: 8080}}], {yaml}}}"
        ))
        .unwrap();
        validate_probes(&c, false).into_iter().map(|(f, w)| format!("{f}: {w}")).collect()
    }

    #[test]
    fn well_formed_probes_pass() {
        for ok in [
            "livenessProbe: {exec: {command: [cat, /tmp/healthy]}, periodSeconds: 1}",
            "readinessProbe: {httpGet: {path: /healthz, port: 8080, httpHeaders: [{name: X-Probe, value: yes}]}, successThreshold: 3}",
            "readinessProbe: {httpGet: {port: http}}",
            "startupProbe: {tcpSocket: {port: http, host: 127.0.0.1}, failureThreshold: 30, terminationGracePeriodSeconds: 5}",
        ] {
            assert!(problems(ok).is_empty(), "{ok}: {:?}", problems(ok));
        }
    }

    #[test]
    fn exactly_one_handler() {
        assert_eq!(
            problems("livenessProbe: {periodSeconds: 1}"),
            ["livenessProbe: must specify a handler type (exec, httpGet or tcpSocket)"]
        );
        let p = problems("readinessProbe: {exec: {command: [x]}, tcpSocket: {port: 1}}");
        assert_eq!(p, ["readinessProbe: may not specify more than 1 handler type"]);
        assert_eq!(problems("livenessProbe: {exec: {}}"), ["livenessProbe.exec.command: is required"]);
    }

    #[test]
    fn counts_are_at_least_one_and_delay_not_negative() {
        for (field, value) in [
            ("timeoutSeconds", -1),
            ("periodSeconds", -5),
            ("successThreshold", -1),
            ("failureThreshold", -2),
        ] {
            let p = problems(&format!("readinessProbe: {{exec: {{command: [x]}}, {field}: {value}}}"));
            assert_eq!(p, [format!("readinessProbe.{field}: must be greater than or equal to 1")]);
        }
        let p = problems("readinessProbe: {exec: {command: [x]}, initialDelaySeconds: -1}");
        assert_eq!(p, ["readinessProbe.initialDelaySeconds: must be greater than or equal to 0"]);
    }

    #[test]
    fn liveness_and_startup_success_threshold_must_be_1() {
        for kind in ["livenessProbe", "startupProbe"] {
            let p = problems(&format!("{kind}: {{exec: {{command: [x]}}, successThreshold: 2}}"));
            assert_eq!(p, [format!("{kind}.successThreshold: must be 1")]);
        }
        assert!(problems("readinessProbe: {exec: {command: [x]}, successThreshold: 2}").is_empty());
    }

    #[test]
    fn ports_are_in_range_or_name_a_container_port() {
        for (port, want) in [
            ("0", "must be between 1 and 65535"),
            ("65536", "must be between 1 and 65535"),
            ("metrics", "does not name a port of this container"),
            ("'8080'", "must be a port number or a port name"),
            ("Http", "must be a port number or a port name"),
            ("a--b", "must be a port number or a port name"),
        ] {
            let p = problems(&format!("livenessProbe: {{tcpSocket: {{port: {port}}}}}"));
            assert!(
                p.len() == 1 && p[0].starts_with("livenessProbe.tcpSocket.port: ") && p[0].contains(want),
                "{port}: {p:?}"
            );
        }
    }

    #[test]
    fn http_scheme_headers_and_grace_follow_the_rules() {
        let p = problems("livenessProbe: {httpGet: {port: 80, scheme: HTTPS}}");
        assert_eq!(p, ["livenessProbe.httpGet.scheme: \"HTTPS\" is not supported yet (use HTTP)"]);
        let p = problems("livenessProbe: {httpGet: {port: 80, httpHeaders: [{name: 'a b', value: v}]}}");
        assert!(p[0].contains("not a valid HTTP header name"), "{p:?}");
        let p = problems("livenessProbe: {httpGet: {port: 80, httpHeaders: [{name: a, value: \"v\\r\\nX: y\"}]}}");
        assert!(p[0].contains("must not contain CR, LF"), "{p:?}");
        let p = problems("livenessProbe: {httpGet: {port: 80, path: '/a b'}}");
        assert!(p[0].starts_with("livenessProbe.httpGet.path: "), "{p:?}");
        let p = problems("readinessProbe: {exec: {command: [x]}, terminationGracePeriodSeconds: 3}");
        assert_eq!(
            p,
            ["readinessProbe.terminationGracePeriodSeconds: must not be set for readinessProbes"]
        );
        let p = problems("livenessProbe: {exec: {command: [x]}, terminationGracePeriodSeconds: 0}");
        assert_eq!(p, ["livenessProbe.terminationGracePeriodSeconds: must be greater than 0"]);
    }

    #[test]
    fn init_containers_take_no_probes() {
        let c: Container = serde_yaml_ng::from_str("{name: i, image: busybox, readinessProbe: {exec: {command: [x]}}}").unwrap();
        let p = validate_probes(&c, true);
        assert_eq!(
            p,
            [("readinessProbe".to_string(), "must not be set for init containers".to_string())]
        );
    }
}

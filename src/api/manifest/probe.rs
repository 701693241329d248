//! Container probes: Kubernetes' `core/v1` `Probe` and its three handlers.
//!
//! Names, defaults and meanings are Kubernetes'. As there, a count left out
//! or given as 0 takes its default (the API server defaults the zero value),
//! so the parsed struct always holds the values in effect. The `grpc`
//! handler is not supported and is refused by name, like every unknown field.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// A health check run against a container while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Probe {
    /// Run a command in the container; success is exit code 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    /// An HTTP GET; success is a status from 200 to 399.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    /// A TCP connect; success is an established connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    /// Seconds after the container started before the first probe; 0 when absent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub initial_delay_seconds: i32,
    /// Seconds after which one probe counts as failed; 1 when absent or 0.
    #[serde(default = "one", deserialize_with = "zero_is_one")]
    pub timeout_seconds: i32,
    /// Seconds between probes; 10 when absent or 0.
    #[serde(default = "ten", deserialize_with = "zero_is_ten")]
    pub period_seconds: i32,
    /// Successes in a row after a failure to count as passed; 1 when absent or
    /// 0, and must be 1 for liveness and startup probes.
    #[serde(default = "one", deserialize_with = "zero_is_one")]
    pub success_threshold: i32,
    /// Failures in a row to count as failed; 3 when absent or 0.
    #[serde(default = "three", deserialize_with = "zero_is_three")]
    pub failure_threshold: i32,
    /// Grace period between SIGTERM and SIGKILL when a liveness or startup
    /// failure kills the container; the pod's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
}

/// A command run in the container, not in a shell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecAction {
    /// The command line; the first word is the program.
    #[serde(default)]
    pub command: Vec<String>,
}

/// An HTTP GET against the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGetAction {
    /// The path (and query) to request; `/` when absent.
    #[serde(default = "root")]
    pub path: String,
    /// A port number, or the name of one of the container's ports.
    pub port: IntOrString,
    /// Host to connect to; the pod's own address when absent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// `HTTP` (default) or `HTTPS`; Shoal refuses `HTTPS` for now.
    #[serde(default, skip_serializing_if = "Scheme::is_http")]
    pub scheme: Scheme,
    /// Headers to send; a `Host` header sets the request's host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<HttpHeader>,
}

/// The scheme of an HTTP probe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum Scheme {
    /// Plain HTTP.
    #[default]
    HTTP,
    /// TLS without certificate checks, as Kubernetes does; not supported yet.
    HTTPS,
}

impl Scheme {
    fn is_http(&self) -> bool {
        *self == Scheme::HTTP
    }
}

/// One header of an HTTP probe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHeader {
    /// Header name.
    pub name: String,
    /// Header value.
    #[serde(default)]
    pub value: String,
}

/// A TCP connect to the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpSocketAction {
    /// A port number, or the name of one of the container's ports.
    pub port: IntOrString,
    /// Host to connect to; the pod's own address when absent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
}

/// Kubernetes' `IntOrString`: a number, or a name (here, of a container port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntOrString {
    /// A number.
    Int(i64),
    /// A name; `"8080"` is a name too, as in Kubernetes.
    String(String),
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(n) => s.serialize_i64(*n),
            IntOrString::String(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<IntOrString, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number or a port name")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i64::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom(format!("{v} is out of range")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            IntOrString::Int(n) => write!(f, "{n}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}

impl Probe {
    /// The handler's port, for httpGet and tcpSocket.
    pub fn port(&self) -> Option<&IntOrString> {
        match (&self.http_get, &self.tcp_socket) {
            (Some(h), _) => Some(&h.port),
            (None, Some(t)) => Some(&t.port),
            (None, None) => None,
        }
    }

    /// The same probe with a named port replaced by the number of the
    /// container port of that name (unchanged when no port has it).
    pub fn with_port_resolved(&self, ports: &[super::ContainerPort]) -> Probe {
        let resolve = |p: &mut IntOrString| {
            if let IntOrString::String(name) = p {
                if let Some(cp) = ports.iter().find(|cp| cp.name.as_deref() == Some(name.as_str())) {
                    *p = IntOrString::Int(cp.container_port);
                }
            }
        };
        let mut out = self.clone();
        if let Some(h) = &mut out.http_get {
            resolve(&mut h.port);
        }
        if let Some(t) = &mut out.tcp_socket {
            resolve(&mut t.port);
        }
        out
    }
}

fn root() -> String {
    "/".into()
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

const fn one() -> i32 {
    1
}

const fn three() -> i32 {
    3
}

const fn ten() -> i32 {
    10
}

fn zero_is<'de, D: Deserializer<'de>>(d: D, default: i32) -> Result<i32, D::Error> {
    let n = i32::deserialize(d)?;
    Ok(if n == 0 { default } else { n })
}

fn zero_is_one<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    zero_is(d, one())
}

fn zero_is_three<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    zero_is(d, three())
}

fn zero_is_ten<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    zero_is(d, ten())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Probe {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_follow_kubernetes() {
        let p = parse("exec: {command: [true]}");
        assert_eq!(
            (
                p.initial_delay_seconds,
                p.timeout_seconds,
                p.period_seconds,
                p.success_threshold,
                p.failure_threshold
            ),
            (0, 1, 10, 1, 3)
        );
        assert_eq!(p.termination_grace_period_seconds, None);
        let zeros = parse("{exec: {command: [true]}, timeoutSeconds: 0, periodSeconds: 0, successThreshold: 0, failureThreshold: 0}");
        assert_eq!(zeros, p);
        let set = parse("{tcpSocket: {port: 80}, periodSeconds: 2, failureThreshold: 5, timeoutSeconds: 4}");
        assert_eq!((set.period_seconds, set.failure_threshold, set.timeout_seconds), (2, 5, 4));
    }

    #[test]
    fn port_is_a_number_or_a_name() {
        let p = parse("httpGet: {path: /healthz, port: 8080}");
        assert_eq!(p.port(), Some(&IntOrString::Int(8080)));
        let p = parse("httpGet: {port: http}");
        assert_eq!(p.port(), Some(&IntOrString::String("http".into())));
        let p = parse("tcpSocket: {port: '8080'}");
        assert_eq!(p.port(), Some(&IntOrString::String("8080".into())));
        let err = serde_yaml_ng::from_str::<Probe>("tcpSocket: {port: [1]}").unwrap_err().to_string();
        assert!(err.contains("a port number or a port name"), "{err}");
    }

    #[test]
    fn named_ports_resolve_against_the_container() {
        let ports = vec![super::super::ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            protocol: None,
        }];
        let p = parse("httpGet: {port: http}").with_port_resolved(&ports);
        assert_eq!(p.port(), Some(&IntOrString::Int(8080)));
        let p = parse("tcpSocket: {port: admin}").with_port_resolved(&ports);
        assert_eq!(p.port(), Some(&IntOrString::String("admin".into())));
    }

    #[test]
    fn grpc_and_unknown_fields_are_refused_by_name() {
        let err = serde_yaml_ng::from_str::<Probe>("grpc: {port: 9000}").unwrap_err().to_string();
        assert!(err.contains("unknown field `grpc`"), "{err}");
        let err = serde_yaml_ng::from_str::<Probe>("httpGet: {port: 80, url: /x}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `url`"), "{err}");
    }

    #[test]
    fn round_trips_with_defaults_written_out() {
        let p = parse("httpGet: {port: 80, httpHeaders: [{name: X-A, value: b}]}\ninitialDelaySeconds: 3");
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"httpGet":{"path":"/","port":80,"httpHeaders":[{"name":"X-A","value":"b"}]},"initialDelaySeconds":3,"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3}"#
        );
        assert_eq!(serde_json::from_str::<Probe>(&json).unwrap(), p);
    }
}

//! The node's registry settings, `DATA/registries.yaml`, in k3s's format so
//! an existing file moves over unchanged:
//!
//! ```yaml
//! mirrors:
//!   docker.io:                      # the registry an image names
//!     endpoint: ["https://mirror.example:5000", "http://10.0.0.5:5000"]
//!     rewrite: {"^library/(.*)": "hub/$1"}
//!   "*":                            # every registry without its own entry
//!     endpoint: ["https://cache.example"]
//! configs:
//!   mirror.example:5000:            # an endpoint's host[:port]
//!     auth: {username: u, password: p}   # or auth: base64(u:p), identitytoken, token
//!     tls: {ca_file: ..., cert_file: ..., key_file: ..., insecure_skip_verify: false}
//! ```
//!
//! A pull tries the registry's mirrors in order, then the registry itself
//! over HTTPS (Docker Hub's is `registry-1.docker.io`). Plain HTTP is used
//! only for an endpoint written `http://`.

use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What is wrong with a registries.yaml.
#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not YAML of this shape (the field's path is named).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// serde's message with the field's path.
        message: String,
    },
    /// An endpoint is not a `http://` or `https://` URL with a host.
    #[error("{path}: mirrors.{registry}: endpoint {endpoint:?}: {why}")]
    Endpoint {
        /// The file.
        path: PathBuf,
        /// The mirror entry.
        registry: String,
        /// The endpoint as written.
        endpoint: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A rewrite's pattern is not a regular expression.
    #[error("{path}: mirrors.{registry}: rewrite {pattern:?}: {source}")]
    Rewrite {
        /// The file.
        path: PathBuf,
        /// The mirror entry.
        registry: String,
        /// The pattern.
        pattern: String,
        /// Why it does not compile.
        source: regex::Error,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    mirrors: BTreeMap<String, MirrorFile>,
    #[serde(default)]
    configs: BTreeMap<String, HostConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorFile {
    #[serde(default)]
    endpoint: Vec<String>,
    #[serde(default)]
    rewrite: BTreeMap<String, String>,
}

/// Credentials and TLS for one endpoint host (`configs.<host[:port]>`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// How to log in.
    pub auth: Option<Auth>,
    /// How to trust it and present ourselves.
    pub tls: Option<Tls>,
}

/// `configs.<host>.auth`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Basic auth user.
    pub username: Option<String>,
    /// Basic auth password.
    pub password: Option<String>,
    /// base64 of `user:password`, as in a Docker config.
    pub auth: Option<String>,
    /// An OAuth2 refresh token, exchanged at the registry's token service.
    pub identitytoken: Option<String>,
    /// A bearer token sent as it is.
    pub token: Option<String>,
}

/// `configs.<host>.tls`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM file of the CA that signs the registry's certificate (besides
    /// the system's roots).
    pub ca_file: Option<PathBuf>,
    /// Our client certificate (PEM), with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// Our client key (PEM).
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// The node's registry settings, checked.
#[derive(Debug, Default)]
pub struct Registries {
    mirrors: BTreeMap<String, Mirror>,
    configs: BTreeMap<String, HostConfig>,
}

#[derive(Debug)]
struct Mirror {
    endpoints: Vec<(Scheme, String, String)>,
    rewrites: Vec<(Regex, String)>,
}

/// How an endpoint is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// TLS.
    Https,
    /// Plain HTTP (only where registries.yaml says `http://`).
    Http,
}

/// One place to pull an image from, in the order to try.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// HTTP or HTTPS.
    pub scheme: Scheme,
    /// `host[:port]`.
    pub host: String,
    /// Path before `/v2/` (empty for most).
    pub prefix: String,
    /// The repository there (a mirror's rewrite may change it).
    pub repository: String,
    /// Credentials and TLS for `host`.
    pub config: HostConfig,
}

impl Endpoint {
    /// The base URL of the registry API: `https://host[:port][/prefix]/v2`.
    pub fn api(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Https => "https",
            Scheme::Http => "http",
        };
        format!("{scheme}://{}{}/v2", self.host, self.prefix)
    }
}

impl Registries {
    /// Reads `path`; a missing file means no mirrors and no settings.
    pub fn load(path: &Path) -> Result<Registries, RegistriesError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Registries::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registries::default()),
            Err(source) => Err(RegistriesError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses and checks a registries.yaml (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Registries, RegistriesError> {
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            let de = serde_yaml_ng::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| RegistriesError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
        };
        let mut mirrors = BTreeMap::new();
        for (registry, m) in file.mirrors {
            let mut endpoints = Vec::new();
            for e in &m.endpoint {
                let parsed = parse_endpoint(e).map_err(|why| RegistriesError::Endpoint {
                    path: path.to_path_buf(),
                    registry: registry.clone(),
                    endpoint: e.clone(),
                    why,
                })?;
                endpoints.push(parsed);
            }
            let mut rewrites = Vec::new();
            for (pattern, to) in m.rewrite {
                let re = Regex::new(&pattern).map_err(|source| RegistriesError::Rewrite {
                    path: path.to_path_buf(),
                    registry: registry.clone(),
                    pattern: pattern.clone(),
                    source,
                })?;
                rewrites.push((re, to));
            }
            mirrors.insert(registry, Mirror { endpoints, rewrites });
        }
        Ok(Registries {
            mirrors,
            configs: file.configs,
        })
    }

    /// Where to pull `repository` of `registry` (as an image reference
    /// names them: `docker.io`, `library/nginx`) from, in order: the
    /// registry's mirrors (or the `"*"` entry's), then the registry itself.
    pub fn endpoints(&self, registry: &str, repository: &str) -> Vec<Endpoint> {
        let mut out = Vec::new();
        if let Some(m) = self.mirrors.get(registry).or_else(|| self.mirrors.get("*")) {
            // k3s applies the first rewrite whose pattern matches.
            let repository = m
                .rewrites
                .iter()
                .find(|(re, _)| re.is_match(repository))
                .map(|(re, to)| re.replace(repository, to.as_str()).into_owned())
                .unwrap_or_else(|| repository.to_string());
            for (scheme, host, prefix) in &m.endpoints {
                out.push(self.endpoint(*scheme, host, prefix, &repository));
            }
        }
        let default = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        if !out.iter().any(|e| e.host == default && e.prefix.is_empty()) {
            out.push(self.endpoint(Scheme::Https, default, "", repository));
        }
        out
    }

    fn endpoint(&self, scheme: Scheme, host: &str, prefix: &str, repository: &str) -> Endpoint {
        Endpoint {
            scheme,
            host: host.to_string(),
            prefix: prefix.to_string(),
            repository: repository.to_string(),
            config: self.configs.get(host).cloned().unwrap_or_default(),
        }
    }
}

/// `http[s]://host[:port][/prefix][/v2]` → (scheme, host[:port], prefix);
/// no scheme means HTTPS, as in k3s.
fn parse_endpoint(e: &str) -> Result<(Scheme, String, String), &'static str> {
    let (scheme, rest) = if let Some(r) = e.strip_prefix("https://") {
        (Scheme::Https, r)
    } else if let Some(r) = e.strip_prefix("http://") {
        (Scheme::Http, r)
    } else if e.contains("://") {
        return Err("only http:// and https:// endpoints are supported");
    } else {
        (Scheme::Https, e)
    };
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    if host.is_empty() || host.contains(['@', '?', '#', ' ']) {
        return Err("no host, or a host with user info, a query or spaces");
    }
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix("v2").unwrap_or(path).trim_end_matches('/');
    let prefix = if path.is_empty() { String::new() } else { format!("/{path}") };
    Ok((scheme, host.to_string(), prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Registries, RegistriesError> {
        Registries::parse(Path::new("registries.yaml"), text)
    }

    const K3S_DOCS: &str = r#"
mirrors:
  docker.io:
    endpoint:
      - "https://mycustomreg.com:5000"
  "my.company.registry:5000":
    endpoint:
      - http://my.company.registry:5000
  "*":
    endpoint:
      - "https://cache.example/prefix/v2"
configs:
  "mycustomreg.com:5000":
    auth:
      username: xxxxxx # this is the registry username
      password: xxxxxx # this is the registry password
    tls:
      cert_file: /etc/ssl/client.pem
      key_file: /etc/ssl/client.key
      ca_file: /etc/ssl/ca.pem
"#;

    #[test]
    fn mirrors_come_first_then_the_registry_over_https() {
        let r = parse(K3S_DOCS).unwrap();
        let e = r.endpoints("docker.io", "library/nginx");
        let apis: Vec<String> = e.iter().map(Endpoint::api).collect();
        assert_eq!(apis, ["https://mycustomreg.com:5000/v2", "https://registry-1.docker.io/v2"]);
        assert_eq!(e[0].config.auth.as_ref().unwrap().username.as_deref(), Some("xxxxxx"));
        assert_eq!(
            e[0].config.tls.as_ref().unwrap().ca_file.as_deref(),
            Some(Path::new("/etc/ssl/ca.pem"))
        );
        assert_eq!(e[1].config, HostConfig::default());
        // A registry that is its own mirror over plain HTTP is not tried over HTTPS too.
        let e = r.endpoints("my.company.registry:5000", "team/app");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].api(), "http://my.company.registry:5000/v2");
        // "*" covers every other registry; the path before /v2 is kept.
        let e = r.endpoints("ghcr.io", "org/tool");
        let apis: Vec<String> = e.iter().map(Endpoint::api).collect();
        assert_eq!(apis, ["https://cache.example/prefix/v2", "https://ghcr.io/v2"]);
    }

    #[test]
    fn no_file_means_the_registry_itself() {
        let r = Registries::load(Path::new("/nonexistent/shoal-registries.yaml")).unwrap();
        let e = r.endpoints("docker.io", "library/busybox");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].api(), "https://registry-1.docker.io/v2");
        assert_eq!(e[0].repository, "library/busybox");
        assert!(parse("").unwrap().endpoints("quay.io", "a/b")[0].api() == "https://quay.io/v2");
    }

    #[test]
    fn rewrites_change_the_repository_on_the_mirror_only() {
        let r = parse("mirrors:\n  docker.io:\n    endpoint: [\"https://m.example\"]\n    rewrite:\n      \"^rancher/(.*)\": \"mirrorproject/rancher-images/$1\"\n").unwrap();
        let e = r.endpoints("docker.io", "rancher/k3s");
        assert_eq!(e[0].repository, "mirrorproject/rancher-images/k3s");
        assert_eq!(e[1].repository, "rancher/k3s");
        assert_eq!(r.endpoints("docker.io", "library/nginx")[0].repository, "library/nginx");
    }

    #[test]
    fn mistakes_are_named() {
        let e = parse("mirrors:\n  docker.io:\n    endpoints: [\"https://m\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mirrors.docker.io") && e.contains("endpoints"), "{e}");
        let e = parse("mirrors:\n  docker.io:\n    endpoint: [\"ftp://m\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ftp://m") && e.contains("http://"), "{e}");
        let e = parse("mirrors:\n  docker.io:\n    endpoint: [\"https://m\"]\n    rewrite: {\"(\": x}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rewrite \"(\""), "{e}");
        let e = parse("configs:\n  m:\n    tls: {insecure: true}\n").unwrap_err().to_string();
        assert!(e.contains("configs.m.tls") && e.contains("insecure"), "{e}");
    }
}

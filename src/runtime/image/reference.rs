//! Image references, normalised as Docker does: `busybox` is
//! `docker.io/library/busybox:latest`.

use std::fmt;

/// A normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    /// Registry host, `docker.io` by default.
    pub domain: String,
    /// Repository path, with `library/` for Docker Hub official images.
    pub path: String,
    /// Tag, `latest` when neither tag nor digest is given.
    pub tag: Option<String>,
    /// `sha256:<hex>` when pinned by digest.
    pub digest: Option<String>,
}

/// Why a reference was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct RefError {
    /// The text as given.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

impl ImageRef {
    /// Parses and normalises a reference.
    pub fn parse(input: &str) -> Result<ImageRef, RefError> {
        let err = |reason: &str| RefError {
            input: input.into(),
            reason: reason.into(),
        };
        if input.is_empty() || input.len() > 4096 || input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("empty, too long or contains whitespace"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                let hex = d.strip_prefix("sha256:").ok_or_else(|| err("digest must be sha256:<64 hex>"))?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                    return Err(err("digest must be sha256:<64 lowercase hex>"));
                }
                (r, Some(d.to_string()))
            }
            None => (input, None),
        };
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(rest[last_slash + i + 1..].to_string())),
            None => (rest, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                && (t.as_bytes()[0].is_ascii_alphanumeric() || t.as_bytes()[0] == b'_');
            if !ok {
                return Err(err("tag must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'"));
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((d, p)) if d.contains('.') || d.contains(':') || d == "localhost" => (d.to_string(), p.to_string()),
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let path = if domain == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        for component in path.split('/') {
            let ok = !component.is_empty()
                && component
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && component.as_bytes()[0].is_ascii_alphanumeric()
                && component.as_bytes()[component.len() - 1].is_ascii_alphanumeric();
            if !ok {
                return Err(err("repository must be lowercase letters, digits and separators"));
            }
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".into())
        } else {
            tag
        };
        Ok(ImageRef { domain, path, tag, digest })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        ImageRef::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_as_docker_does() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("user/app:1.0"), "docker.io/user/app:1.0");
        assert_eq!(norm("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(norm("ghcr.io/a/b/c:v1"), "ghcr.io/a/b/c:v1");
        assert_eq!(norm("docker.io/library/busybox:latest"), "docker.io/library/busybox:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(norm(&format!("busybox@{d}")), format!("docker.io/library/busybox@{d}"));
    }

    #[test]
    fn refuses_bad_references() {
        for bad in ["", "Busybox", "a b", "app:", "app@sha256:12", "/app", "app:-x"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad} accepted");
        }
    }
}

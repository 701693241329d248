//! Join tokens: `SHOAL1-<sha256 of the CA certificate>-<id>.<secret>`.
//!
//! The CA hash lets a joiner pin the cluster's CA before it trusts anything;
//! the id names the token in `token ls`/`rm`; only a SHA-256 of the secret is
//! stored on the server. The joiner proves it knows the secret with an HMAC
//! over the TLS session's exporter, so a proof is good for one connection only.

use ring::hmac;
use sha2::{Digest, Sha256};
use std::fmt;

const PREFIX: &str = "SHOAL1";
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 24;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A token string that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed join token: {reason} (expected SHOAL1-<64 hex digits>-<6 chars>.<24 chars>)")]
pub struct TokenError {
    /// What is wrong.
    pub reason: &'static str,
}

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Lowercase hex SHA-256 of the cluster CA certificate (DER).
    pub ca_sha256: String,
    /// Public id.
    pub id: String,
    /// The secret.
    pub secret: String,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinToken({}-{}.<secret>)", self.ca_sha256, self.id)
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}-{}-{}.{}", self.ca_sha256, self.id, self.secret)
    }
}

fn random_chars(n: usize) -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..n).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

impl JoinToken {
    /// A fresh token for the CA with this hash.
    pub fn generate(ca_sha256: &str) -> JoinToken {
        JoinToken {
            ca_sha256: ca_sha256.to_string(),
            id: random_chars(ID_LEN),
            secret: random_chars(SECRET_LEN),
        }
    }

    /// Parses `SHOAL1-<hash>-<id>.<secret>`.
    pub fn parse(text: &str) -> Result<JoinToken, TokenError> {
        let err = |reason| TokenError { reason };
        let mut parts = text.trim().splitn(3, '-');
        if parts.next() != Some(PREFIX) {
            return Err(err("it does not start with SHOAL1-"));
        }
        let ca = parts.next().ok_or(err("no CA hash"))?;
        if ca.len() != 64 || !ca.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err("the CA hash is not 64 hex digits"));
        }
        let rest = parts.next().ok_or(err("no secret"))?;
        let (id, secret) = rest.split_once('.').ok_or(err("no '.' between id and secret"))?;
        let ok = |s: &str, n| s.len() == n && s.bytes().all(|b| ALPHABET.contains(&b));
        if !ok(id, ID_LEN) || !ok(secret, SECRET_LEN) {
            return Err(err("the id or secret has the wrong length or characters"));
        }
        Ok(JoinToken {
            ca_sha256: ca.to_ascii_lowercase(),
            id: id.into(),
            secret: secret.into(),
        })
    }

    /// What the server stores: hex SHA-256 of the secret.
    pub fn secret_sha256(&self) -> String {
        secret_hash(&self.secret)
    }
}

/// Hex SHA-256 of a secret.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Hex SHA-256 of DER bytes (certificates, public keys).
pub fn der_sha256(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// A value that shows the secret hash is right without proving freshness:
/// lets the server tell a wrong secret from a replayed proof.
pub fn check_value(secret_sha256: &str) -> String {
    mac(secret_sha256, &[b"shoal-join-check"])
}

/// The proof of the secret, bound to one TLS session (its exporter) and one CSR.
pub fn proof(secret_sha256: &str, exporter: &[u8], csr_der: &[u8]) -> String {
    mac(secret_sha256, &[b"shoal-join-proof", exporter, csr_der])
}

fn mac(secret_sha256: &str, parts: &[&[u8]]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret_sha256.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    hex::encode(ctx.sign().as_ref())
}

/// Compares two hex MACs in constant time.
pub fn same_mac(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses a TTL such as `24h`, `30m`, `7d`.
pub fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("bad --ttl {text:?}: {e} (use e.g. 30m, 24h, 7d)"))?;
    if d.is_zero() {
        return Err(format!("bad --ttl {text:?}: must be more than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let t = JoinToken::generate(&"ab".repeat(32));
        assert_eq!(JoinToken::parse(&t.to_string()).unwrap(), t);
        for bad in [
            "",
            "SHOAL2-x",
            &format!("SHOAL1-{}-abcdef.short", "ab".repeat(32)),
            &format!("SHOAL1-{}-abcdef.{}", "zz".repeat(32), "a".repeat(24)),
            &format!("SHOAL1-{}-abcdef{}", "ab".repeat(32), "a".repeat(24)),
        ] {
            assert!(JoinToken::parse(bad).is_err(), "{bad} parsed");
        }
        assert!(!format!("{t:?}").contains(&t.secret), "Debug must not print the secret");
    }

    #[test]
    fn a_proof_binds_the_session_and_the_csr() {
        let h = secret_hash("s3cret");
        let p = proof(&h, b"session-1", b"csr");
        assert!(same_mac(&p, &proof(&h, b"session-1", b"csr")));
        assert!(!same_mac(&p, &proof(&h, b"session-2", b"csr")));
        assert!(!same_mac(&p, &proof(&h, b"session-1", b"csr2")));
        assert!(!same_mac(&p, &proof(&secret_hash("other"), b"session-1", b"csr")));
    }

    #[test]
    fn ttl_parses() {
        assert_eq!(parse_ttl("24h").unwrap().as_secs(), 86400);
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("soon").is_err());
    }
}

//! The cluster's certificate authority and the certificates it signs.
//!
//! Files under `DATA/pki/`: `ca.crt`, `ca.key` (0600), `node.crt`, `node.key`
//! (0600). Admin credentials go to `DATA/admin.conf` (0600) as YAML holding
//! the server address, the CA certificate and the admin's certificate and key.

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// A PKI operation failed; no file was left half-written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Certificate generation or parsing failed.
    #[error("certificate {what}: {source}")]
    Cert {
        /// Which certificate.
        what: &'static str,
        /// The underlying error.
        source: rcgen::Error,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A credentials file is not what it should be.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// PEM certificate.
    pub cert: String,
    /// PEM PKCS#8 private key.
    pub key: String,
}

/// Client credentials: where to connect and as whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientConfig {
    /// `IP:PORT` of a node.
    pub server: SocketAddr,
    /// PEM of the cluster CA certificate.
    pub ca: String,
    /// PEM client certificate.
    pub cert: String,
    /// PEM client private key.
    pub key: String,
}

impl ClientConfig {
    /// Reads a credentials file.
    pub fn load(path: &Path) -> Result<ClientConfig, PkiError> {
        let text = read(path)?;
        serde_yaml_ng::from_str(&text).map_err(|e| PkiError::Invalid {
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// Writes the file with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), PkiError> {
        let text = serde_yaml_ng::to_string(self).expect("plain struct serialises");
        write_private(path, &text)
    }
}

/// The cluster CA, able to sign node and client certificates.
pub struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
    cert_pem: String,
}

/// Name every node certificate carries, so clients need no per-node name.
pub const SERVER_NAME: &str = "shoal";

const VALIDITY_DAYS: i64 = 3650;

impl Authority {
    /// Makes a new CA for a new cluster.
    pub fn generate(cluster: &str) -> Result<Authority, PkiError> {
        let err = |source| PkiError::Cert { what: "ca", source };
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("shoal cluster CA {cluster}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params);
        let cert = params.self_signed(&key).map_err(err)?;
        let cert_pem = cert.pem();
        Ok(Authority { cert, key, cert_pem })
    }

    /// Loads the CA from `dir/ca.crt` and `dir/ca.key`.
    pub fn load(dir: &Path) -> Result<Authority, PkiError> {
        let err = |source| PkiError::Cert { what: "ca", source };
        let cert_pem = read(&dir.join("ca.crt"))?;
        let key = KeyPair::from_pem(&read(&dir.join("ca.key"))?).map_err(err)?;
        let params = CertificateParams::from_ca_cert_pem(&cert_pem).map_err(err)?;
        // Re-signing yields an issuer object with the same subject and key; the
        // PEM we hand out stays the original one.
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(Authority { cert, key, cert_pem })
    }

    /// Writes `ca.crt` and `ca.key` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        write_public(&dir.join("ca.crt"), &self.cert_pem)?;
        write_private(&dir.join("ca.key"), &self.key.serialize_pem())
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Signs a node certificate valid as TLS server and client.
    pub fn issue_node(&self, node: &str, ips: &[IpAddr]) -> Result<Identity, PkiError> {
        let err = |source| PkiError::Cert { what: "node", source };
        let key = KeyPair::generate().map_err(err)?;
        let params = node_params(node, ips).map_err(err)?;
        let cert = params.signed_by(&key, &self.cert, &self.key).map_err(err)?;
        Ok(Identity {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    /// Signs a joining node's CSR. Only its public key is taken from the
    /// request: names, usages and validity are the CA's choice. Returns the
    /// certificate PEM.
    pub fn sign_node_csr(&self, csr: NodeRequest, node: &str, ips: &[IpAddr]) -> Result<String, PkiError> {
        let err = |source| PkiError::Cert {
            what: "node request",
            source,
        };
        let mut csr = csr.0;
        csr.params = node_params(node, ips).map_err(err)?;
        let cert = csr.signed_by(&self.cert, &self.key).map_err(err)?;
        Ok(cert.pem())
    }

    /// Hex SHA-256 of the CA certificate (DER): what join tokens pin.
    pub fn sha256(&self) -> String {
        // Of the PEM handed out: after `load` the in-memory certificate is a
        // re-signed twin with other bytes.
        pem_sha256(&self.cert_pem).unwrap_or_default()
    }

    /// Signs a client certificate for `user` (such as `admin`).
    pub fn issue_client(&self, user: &str) -> Result<Identity, PkiError> {
        self.issue("client", &format!("user:{user}"), Vec::new(), false)
    }

    fn issue(&self, what: &'static str, cn: &str, sans: Vec<SanType>, server: bool) -> Result<Identity, PkiError> {
        let err = |source| PkiError::Cert { what, source };
        let key = KeyPair::generate().map_err(err)?;
        let params = leaf_params(cn, sans, server).map_err(err)?;
        let cert = params.signed_by(&key, &self.cert, &self.key).map_err(err)?;
        Ok(Identity {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// A parsed certificate request from a joining node.
pub struct NodeRequest(rcgen::CertificateSigningRequestParams);

impl NodeRequest {
    /// Parses a PEM CSR.
    pub fn parse(csr_pem: &str) -> Result<NodeRequest, PkiError> {
        rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map(NodeRequest)
            .map_err(|source| PkiError::Cert {
                what: "node request",
                source,
            })
    }

    /// Hex SHA-256 of the requested public key.
    pub fn key_sha256(&self) -> String {
        crate::join::token::der_sha256(rcgen::PublicKeyData::der_bytes(&self.0.public_key))
    }
}

/// Common-name prefix of node certificates; clients carry `user:`.
pub const NODE_CN_PREFIX: &str = "node:";

fn node_params(node: &str, ips: &[IpAddr]) -> Result<CertificateParams, rcgen::Error> {
    let mut sans = vec![SanType::DnsName(SERVER_NAME.try_into()?)];
    if let Ok(name) = node.try_into() {
        sans.push(SanType::DnsName(name));
    }
    sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    leaf_params(&format!("{NODE_CN_PREFIX}{node}"), sans, true)
}

fn leaf_params(cn: &str, sans: Vec<SanType>, server: bool) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = sans;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if server {
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params);
    Ok(params)
}

/// A new key pair and a certificate request for it; the key never leaves the caller.
/// Returns (key PEM, CSR PEM, CSR DER).
pub fn node_request(node: &str) -> Result<(String, String, Vec<u8>), PkiError> {
    let err = |source| PkiError::Cert {
        what: "node request",
        source,
    };
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{NODE_CN_PREFIX}{node}"));
    let csr = params.serialize_request(&key).map_err(err)?;
    Ok((key.serialize_pem(), csr.pem().map_err(err)?, csr.der().to_vec()))
}

/// Hex SHA-256 of the first certificate in a PEM text.
pub fn pem_sha256(pem: &str) -> Option<String> {
    let der = rustls_pemfile::certs(&mut pem.as_bytes()).next()?.ok()?;
    Some(crate::join::token::der_sha256(&der))
}

/// The subject common name of a DER certificate.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}

fn set_validity(params: &mut CertificateParams) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // An hour of slack for clocks that disagree a little.
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(secs.saturating_sub(3600));
    params.not_after = params.not_before + std::time::Duration::from_secs(VALIDITY_DAYS as u64 * 86400);
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io { path: path.into(), source })
}

/// Writes a secret file: created 0600, then renamed into place.
pub fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    write_mode(path, text, 0o600)
}

fn write_public(path: &Path, text: &str) -> Result<(), PkiError> {
    write_mode(path, text, 0o644)
}

fn write_mode(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io { path: path.into(), source };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Loads `node.crt`/`node.key` from `dir`.
pub fn load_identity(dir: &Path, name: &str) -> Result<Identity, PkiError> {
    Ok(Identity {
        cert: read(&dir.join(format!("{name}.crt")))?,
        key: read(&dir.join(format!("{name}.key")))?,
    })
}

/// Writes `NAME.crt` and `NAME.key` into `dir`.
pub fn save_identity(dir: &Path, name: &str, id: &Identity) -> Result<(), PkiError> {
    write_public(&dir.join(format!("{name}.crt")), &id.cert)?;
    write_private(&dir.join(format!("{name}.key")), &id.key)
}

//! The joiner's side: pin the CA by hash, prove the secret, send a CSR.

use super::token::{check_value, der_sha256, proof, JoinToken};
use super::{JoinReply, JoinRequest, EXPORTER_LABEL};
use crate::transport::framing::{read_frame, write_frame, Frame};
use crate::transport::pki::{self, PkiError, SERVER_NAME};
use crate::transport::quic::{certs, provider, ALPN_JOIN};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A join failed on the joiner's side or was refused.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The server's CA is not the one the token names.
    #[error("the server at {server} does not belong to the cluster in the token: its CA has sha256 {presented}, the token pins {pinned}")]
    CaMismatch {
        /// The server.
        server: SocketAddr,
        /// Hash of the CA it presented (or "none").
        presented: String,
        /// Hash from the token.
        pinned: String,
    },
    /// No connection.
    #[error("join {server}: {message}")]
    Connect {
        /// The server.
        server: SocketAddr,
        /// What failed.
        message: String,
    },
    /// The server said no.
    #[error("join refused by {server}: {reason}")]
    Refused {
        /// The server.
        server: SocketAddr,
        /// Its reason.
        reason: String,
    },
    /// Keys or certificates failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// What a successful join hands back; the caller writes it to the data dir.
#[derive(Debug, Clone)]
pub struct Joined {
    /// PEM private key (generated here, never sent).
    pub key: String,
    /// PEM node certificate.
    pub cert: String,
    /// PEM cluster CA.
    pub ca: String,
    /// Members to gossip with first.
    pub seeds: Vec<SocketAddr>,
    /// The node's Raft id.
    pub raft_id: Option<u64>,
}

/// Who the joiner wants to be.
#[derive(Debug, Clone)]
pub struct JoinAs {
    /// Node name.
    pub name: String,
    /// Where it will serve.
    pub advertise: SocketAddr,
    /// Labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Zone.
    pub zone: Option<String>,
    /// May vote.
    pub voter: bool,
}

/// Checks the server's chain against the CA the token pins, nothing else.
#[derive(Debug)]
struct PinnedCa {
    pinned: String,
    presented: Mutex<Option<String>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let hashes: Vec<String> = intermediates.iter().map(|c| der_sha256(c)).collect();
        *self.presented.lock().unwrap_or_else(|p| p.into_inner()) = Some(hashes.join(",")).filter(|s| !s.is_empty());
        let Some(ca) = intermediates.iter().zip(&hashes).find(|(_, h)| **h == self.pinned).map(|(c, _)| c) else {
            return Err(rustls::Error::General("server CA does not match the token".into()));
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens a join connection to `server`, trusting only the CA with hash `pinned`.
pub async fn connect(server: SocketAddr, pinned: &str) -> Result<(quinn::Endpoint, quinn::Connection), JoinError> {
    let cerr = |message: String| JoinError::Connect { server, message };
    let verifier = Arc::new(PinnedCa {
        pinned: pinned.to_string(),
        presented: Mutex::new(None),
        provider: provider(),
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| cerr(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN_JOIN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| cerr(e.to_string()))?;
    let bind: SocketAddr = if server.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().expect("literal");
    let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| cerr(e.to_string()))?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connecting = endpoint.connect(server, SERVER_NAME).map_err(|e| cerr(e.to_string()))?;
    let result = tokio::time::timeout(Duration::from_secs(10), connecting).await;
    let presented = verifier.presented.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match result {
        Err(_) => Err(cerr("timed out after 10 s (is a shoal agent running there?)".into())),
        Ok(Ok(conn)) => Ok((endpoint, conn)),
        Ok(Err(e)) => match presented {
            Some(p) if !p.split(',').any(|h| h == pinned) => Err(JoinError::CaMismatch {
                server,
                presented: p,
                pinned: pinned.into(),
            }),
            _ => Err(cerr(e.to_string())),
        },
    }
}

/// Builds the request for this connection: the proof binds its TLS session.
pub fn request(conn: &quinn::Connection, token: &JoinToken, who: &JoinAs, csr_pem: &str, csr_der: &[u8]) -> JoinRequest {
    let mut exporter = [0u8; 32];
    // Only fails before the handshake is done, and the connection is established.
    let _ = conn.export_keying_material(&mut exporter, EXPORTER_LABEL, b"");
    let hash = token.secret_sha256();
    JoinRequest {
        token_id: token.id.clone(),
        check: check_value(&hash),
        proof: proof(&hash, &exporter, csr_der),
        name: who.name.clone(),
        csr: csr_pem.into(),
        advertise: who.advertise,
        labels: who.labels.clone(),
        zone: who.zone.clone(),
        voter: Some(who.voter),
    }
}

/// Sends one request and reads the reply.
pub async fn send(conn: &quinn::Connection, req: &JoinRequest) -> Result<JoinReply, JoinError> {
    let server = conn.remote_address();
    let cerr = |message: String| JoinError::Connect { server, message };
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| cerr(e.to_string()))?;
    write_frame(&mut send, &Frame::json(req)).await.map_err(|e| cerr(e.to_string()))?;
    let _ = send.finish();
    match read_frame(&mut recv).await {
        Ok(Some(f)) => f.decode().map_err(|e| cerr(format!("bad reply: {e}"))),
        Ok(None) => Err(cerr("the server closed the stream without answering".into())),
        Err(e) => Err(cerr(e.to_string())),
    }
}

/// The whole handshake, following a node without the CA key to a voter
/// that holds it (each hop pins the CA again). Nothing is written here.
pub async fn join(server: SocketAddr, token: &JoinToken, who: &JoinAs) -> Result<Joined, JoinError> {
    let (key, csr_pem, csr_der) = pki::node_request(&who.name)?;
    let mut targets = vec![server];
    let mut last = None;
    for _hop in 0..3 {
        let mut next = Vec::new();
        for server in targets {
            let reply = match once(server, token, who, &csr_pem, &csr_der).await {
                Ok(r) => r,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match reply {
                JoinReply::Refused { reason } => return Err(JoinError::Refused { server, reason }),
                JoinReply::Redirect { voters } => next.extend(voters),
                JoinReply::Joined { cert, ca, seeds, raft_id } => {
                    // The CA handed over must be the pinned one, and sign our certificate.
                    let ca_ok = certs("cluster CA", &ca)
                        .ok()
                        .and_then(|c| c.first().map(|c| der_sha256(c) == token.ca_sha256))
                        .unwrap_or(false);
                    if !ca_ok {
                        return Err(JoinError::CaMismatch {
                            server,
                            presented: pki::pem_sha256(&ca).unwrap_or_else(|| "none".into()),
                            pinned: token.ca_sha256.clone(),
                        });
                    }
                    return Ok(Joined {
                        key,
                        cert,
                        ca,
                        seeds,
                        raft_id,
                    });
                }
            }
        }
        if next.is_empty() {
            break;
        }
        targets = next;
    }
    Err(last.unwrap_or(JoinError::Refused {
        server,
        reason: "no node holding the cluster CA key answered".into(),
    }))
}

async fn once(server: SocketAddr, token: &JoinToken, who: &JoinAs, csr_pem: &str, csr_der: &[u8]) -> Result<JoinReply, JoinError> {
    let (endpoint, conn) = connect(server, &token.ca_sha256).await?;
    let req = request(&conn, token, who, csr_pem, csr_der);
    let reply = send(&conn, &req).await;
    conn.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    reply
}

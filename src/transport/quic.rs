//! QUIC endpoints with mutual TLS: only certificates signed by the cluster CA
//! get through the handshake, in either direction.

use super::pki::{ClientConfig, Identity, SERVER_NAME};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// ALPN of the client API.
pub const ALPN_API: &[u8] = b"shoal-api";

/// Setting up or using the transport failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A PEM block did not parse.
    #[error("{what}: {message}")]
    Pem {
        /// Which credential.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// Binding the UDP socket failed.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The connection could not be set up.
    #[error("connect to {addr}: {message}")]
    Connect {
        /// The server.
        addr: SocketAddr,
        /// What failed, including TLS refusals.
        message: String,
    },
}

fn certs(what: &'static str, pem: &str) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_bytes()).collect();
    let certs = certs.map_err(|e| TransportError::Pem {
        what,
        message: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TransportError::Pem {
            what,
            message: "no certificate in PEM".into(),
        });
    }
    Ok(certs)
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, TransportError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| TransportError::Pem {
            what: "private key",
            message: e.to_string(),
        })?
        .ok_or(TransportError::Pem {
            what: "private key",
            message: "no key in PEM".into(),
        })
}

fn roots(ca_pem: &str) -> Result<Arc<rustls::RootCertStore>, TransportError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs("cluster CA", ca_pem)? {
        roots.add(c)?;
    }
    Ok(Arc::new(roots))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(Duration::from_secs(30).try_into().expect("in range")));
    t.keep_alive_interval(Some(Duration::from_secs(10)));
    Arc::new(t)
}

/// A server endpoint that asks every client for a CA-signed certificate.
pub fn server(bind: SocketAddr, ca_pem: &str, id: &Identity) -> Result<quinn::Endpoint, TransportError> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
        .build()
        .map_err(|e| TransportError::Pem {
            what: "client verifier",
            message: e.to_string(),
        })?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs("node certificate", &id.cert)?, key(&id.key)?)?;
    tls.alpn_protocols = vec![ALPN_API.to_vec()];
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| TransportError::Pem {
        what: "quic",
        message: e.to_string(),
    })?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport_config());
    quinn::Endpoint::server(config, bind).map_err(|source| TransportError::Bind { addr: bind, source })
}

/// Connects to `config.server` (or `server`) with the client's credentials.
pub async fn connect(config: &ClientConfig, server: Option<SocketAddr>) -> Result<(quinn::Endpoint, quinn::Connection), TransportError> {
    let addr = server.unwrap_or(config.server);
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(&config.ca)?)
        .with_client_auth_cert(certs("client certificate", &config.cert)?, key(&config.key)?)?;
    tls.alpn_protocols = vec![ALPN_API.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| TransportError::Pem {
        what: "quic",
        message: e.to_string(),
    })?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(transport_config());
    let bind: SocketAddr = if addr.is_ipv6() {
        "[::]:0".parse().expect("literal")
    } else {
        "0.0.0.0:0".parse().expect("literal")
    };
    let mut endpoint = quinn::Endpoint::client(bind).map_err(|source| TransportError::Bind { addr: bind, source })?;
    endpoint.set_default_client_config(client);
    let connecting = endpoint.connect(addr, SERVER_NAME).map_err(|e| TransportError::Connect {
        addr,
        message: e.to_string(),
    })?;
    let conn = tokio::time::timeout(Duration::from_secs(10), connecting)
        .await
        .map_err(|_| TransportError::Connect {
            addr,
            message: "timed out after 10 s (is the agent running?)".into(),
        })?
        .map_err(|e| TransportError::Connect {
            addr,
            message: e.to_string(),
        })?;
    Ok((endpoint, conn))
}

//! QUIC endpoints with mutual TLS: only certificates signed by the cluster CA
//! get through the handshake, in either direction.

use super::pki::{ClientConfig, Identity, SERVER_NAME};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// ALPN of the client API (client certificate required).
pub const ALPN_API: &[u8] = b"shoal-api";
/// ALPN of node-to-node gossip datagrams (node certificate required).
pub const ALPN_GOSSIP: &[u8] = b"shoal-gossip";
/// ALPN of the join handshake (no client certificate yet: the token vouches).
pub const ALPN_JOIN: &[u8] = b"shoal-join";
/// Raft RPCs, write forwarding and CA hand-over between nodes (node certificates only).
pub const ALPN_RAFT: &[u8] = b"shoal-raft";

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

pub(crate) fn certs(what: &'static str, pem: &str) -> Result<Vec<CertificateDer<'static>>, TransportError> {
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

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(Duration::from_secs(30).try_into().expect("in range")));
    t.keep_alive_interval(Some(Duration::from_secs(10)));
    // No path-MTU probing from this side: its big packets (up to 1452 bytes,
    // a few per connection every 10 minutes) cost a gossip connection more
    // than its idle probes. What this side sends in bulk goes on connections
    // it dialled (Raft's appends, the CLI's imports), which still probe.
    t.mtu_discovery_config(None);
    Arc::new(t)
}

/// The node's endpoint: serves the API, gossip and joins on one UDP port and
/// dials other nodes for gossip. A client certificate is optional in the
/// handshake (a joiner has none yet) but must be CA-signed when present; the
/// accept loop refuses API and gossip connections without one.
pub fn server(bind: SocketAddr, ca_pem: &str, id: &Identity) -> Result<quinn::Endpoint, TransportError> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TransportError::Pem {
            what: "client verifier",
            message: e.to_string(),
        })?;
    // The chain carries the CA so a joiner can pin it by hash.
    let mut chain = certs("node certificate", &id.cert)?;
    chain.extend(certs("cluster CA", ca_pem)?);
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key(&id.key)?)?;
    tls.alpn_protocols = vec![ALPN_API.to_vec(), ALPN_GOSSIP.to_vec(), ALPN_JOIN.to_vec(), ALPN_RAFT.to_vec()];
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| TransportError::Pem {
        what: "quic",
        message: e.to_string(),
    })?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport_config());
    // A reset key derived from the node key: after a restart the node can
    // still reset its peers' stale connections, so they redial at once.
    let mut endpoint_config = quinn::EndpointConfig::default();
    let seed = sha2::Sha256::digest([b"shoal-stateless-reset".as_slice(), id.key.as_bytes()].concat());
    endpoint_config.reset_key(Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &seed)));
    let bind_err = |source| TransportError::Bind { addr: bind, source };
    let socket = std::net::UdpSocket::bind(bind).map_err(bind_err)?;
    quinn::Endpoint::new(endpoint_config, Some(config), socket, Arc::new(quinn::TokioRuntime)).map_err(bind_err)
}

/// Client settings for gossip connections from this node to other nodes.
pub fn gossip_client(ca_pem: &str, id: &Identity) -> Result<quinn::ClientConfig, TransportError> {
    node_client(ca_pem, id, ALPN_GOSSIP)
}

/// Client settings for node-to-node connections under `alpn`, with the
/// node's certificate.
pub fn node_client(ca_pem: &str, id: &Identity, alpn: &[u8]) -> Result<quinn::ClientConfig, TransportError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(certs("node certificate", &id.cert)?, key(&id.key)?)?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| TransportError::Pem {
        what: "quic",
        message: e.to_string(),
    })?;
    let mut t = quinn::TransportConfig::default();
    // A LAN: start from a small RTT guess so a lost handshake packet is
    // resent in tens of milliseconds, not a second.
    t.initial_rtt(Duration::from_millis(20));
    if alpn == ALPN_RAFT {
        // Raft's connections carry heartbeats every 200 ms; two quiet seconds
        // mean the peer died or restarted, and the next call dials afresh.
        t.max_idle_timeout(Some(Duration::from_secs(2).try_into().expect("in range")));
        t.keep_alive_interval(Some(Duration::from_millis(500)));
    } else {
        t.max_idle_timeout(Some(Duration::from_secs(15).try_into().expect("in range")));
        // Gossip datagrams stay under 1200 bytes: path-MTU probes would be
        // its biggest packets.
        t.mtu_discovery_config(None);
    }
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(Arc::new(t));
    Ok(client)
}

/// The ALPN a connection agreed on.
pub fn alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

/// The common name of the peer's certificate (`node:NAME`, `user:NAME`), if it sent one.
pub fn peer_name(conn: &quinn::Connection) -> Option<String> {
    let certs = conn.peer_identity()?.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    super::pki::common_name(certs.first()?)
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

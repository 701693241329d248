//! Names outside the cluster go to the node's resolvers, as CoreDNS's
//! `forward . /etc/resolv.conf`: the query's bytes as the pod sent them,
//! over UDP (TCP when the answer is truncated and the pod asked over TCP),
//! to each name server in turn until one answers.

use super::resolv::ResolvConf;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one name server has to answer.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The node's resolv.conf names no usable server.
    #[error("{path} names no name server to forward to")]
    NoServers {
        /// The file.
        path: PathBuf,
    },
    /// Every server failed; the last one's error.
    #[error("no name server answered; {server}: {message}")]
    Failed {
        /// The last server tried.
        server: SocketAddr,
        /// What went wrong.
        message: String,
    },
}

/// The node's name servers, re-read when the file changes.
pub struct Upstream {
    path: PathBuf,
    /// Addresses never forwarded to: this node's own, which would loop.
    own: Vec<IpAddr>,
    cache: std::sync::Mutex<(Option<SystemTime>, Vec<SocketAddr>)>,
}

impl Upstream {
    /// The name servers of `path`, leaving out `own`.
    pub fn new(path: PathBuf, own: Vec<IpAddr>) -> Upstream {
        Upstream {
            path,
            own,
            cache: Default::default(),
        }
    }

    fn servers(&self) -> Vec<SocketAddr> {
        let mtime = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.0.is_none() || cache.0 != mtime {
            let text = std::fs::read_to_string(&self.path).unwrap_or_default();
            let servers = ResolvConf::parse(&text)
                .nameservers
                .iter()
                .filter_map(|s| s.parse::<IpAddr>().ok())
                .filter(|ip| !self.own.contains(ip))
                .map(|ip| SocketAddr::new(ip, 53))
                .collect();
            *cache = (mtime, servers);
        }
        cache.1.clone()
    }

    /// Sends `query` (a whole DNS message) to the node's name servers and
    /// returns the first answer; over TCP after a truncated one if `tcp`.
    pub async fn exchange(&self, query: &[u8], tcp: bool) -> Result<Vec<u8>, ForwardError> {
        let servers = self.servers();
        let mut last = None;
        for server in servers {
            match exchange_with(server, query, tcp).await {
                Ok(answer) => return Ok(answer),
                Err(e) => last = Some((server, e.to_string())),
            }
        }
        Err(match last {
            Some((server, message)) => ForwardError::Failed { server, message },
            None => ForwardError::NoServers { path: self.path.clone() },
        })
    }
}

async fn exchange_with(server: SocketAddr, query: &[u8], tcp: bool) -> std::io::Result<Vec<u8>> {
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
    let answer = tokio::time::timeout(TIMEOUT, udp(server, query)).await.map_err(|_| timed_out())??;
    // The TC bit is bit 1 of the third byte.
    if tcp && answer.get(2).is_some_and(|b| b & 0x02 != 0) {
        return tokio::time::timeout(TIMEOUT, over_tcp(server, query))
            .await
            .map_err(|_| timed_out())?;
    }
    Ok(answer)
}

async fn udp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Only the answer to this query (same id) counts.
        if n >= 12 && buf[..2] == query[..2] {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn over_tcp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = tokio::net::TcpStream::connect(server).await?;
    let len = u16::try_from(query.len()).map_err(|_| std::io::Error::other("query too long"))?;
    s.write_all(&len.to_be_bytes()).await?;
    s.write_all(query).await?;
    let n = s.read_u16().await? as usize;
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

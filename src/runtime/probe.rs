//! `probe`: run one container probe (exec, httpGet or tcpSocket) within its
//! `timeoutSeconds`.
//!
//! tcpSocket and httpGet connect from inside the pod's network namespace
//! without starting a process: a short-lived thread enters the namespace
//! (`setns`, which acts on the calling thread only) and creates the socket
//! there, then ends; a socket stays in the namespace it was created in, so
//! the connect and the HTTP exchange run on tokio like any other socket. No
//! tokio worker thread ever changes namespace. exec runs the command in the
//! container as `shoal exec` does.

use super::{Runtime, RuntimeError};
use crate::api::manifest::{ExecAction, HttpGetAction, IntOrString, Probe, TcpSocketAction};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Why a probe failed. Nothing is left running: a command that outlived the
/// timeout was killed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The probe did not finish within `timeoutSeconds`.
    #[error("probe timed out after {0}s")]
    Timeout(i32),
    /// The probe has no handler, or a port that is not a number.
    #[error("{0}")]
    Spec(String),
    /// The host name did not resolve.
    #[error("resolve {host}: {message}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        message: String,
    },
    /// Entering the pod's network namespace or making the socket failed.
    #[error("{what}: {source}")]
    Netns {
        /// What was attempted.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The connection was refused or broke.
    #[error("dial tcp {addr}: {source}")]
    Connect {
        /// Where to.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The HTTP exchange broke or the answer was not HTTP.
    #[error("HTTP probe to {addr}: {message}")]
    Http {
        /// Where to.
        addr: SocketAddr,
        /// What went wrong.
        message: String,
    },
    /// The answer's status was not 200..=399.
    #[error("HTTP probe failed with statuscode: {0}")]
    Status(u16),
    /// The command exited with a code other than 0.
    #[error("command {command:?} exited with {code}: {output}")]
    Exit {
        /// The command.
        command: Vec<String>,
        /// Its exit code.
        code: i32,
        /// The start of its stdout and stderr.
        output: String,
    },
    /// The command could not be started.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Kubernetes keeps this much of a probe's output.
const MAX_OUTPUT: usize = 10 * 1024;
/// Largest HTTP response head read.
const MAX_HEAD: usize = 16 * 1024;
/// As Go's HTTP client, which Kubernetes' prober uses.
const MAX_REDIRECTS: usize = 10;

impl Runtime {
    /// Runs `probe` against container `name` of pod `uid`: Ok when it passed.
    pub async fn probe(&self, uid: &str, name: &str, probe: &Probe) -> Result<(), ProbeError> {
        let timeout = Duration::from_secs(probe.timeout_seconds.max(1) as u64);
        let netns = self.paths.pod(uid).join("ns/net");
        let ran = match (&probe.exec, &probe.http_get, &probe.tcp_socket) {
            (Some(e), _, _) => return self.exec_probe(uid, name, e, timeout).await,
            (None, Some(h), _) => tokio::time::timeout(timeout, http_get(&netns, h)).await,
            (None, None, Some(t)) => tokio::time::timeout(timeout, tcp_socket(&netns, t)).await,
            (None, None, None) => return Err(ProbeError::Spec("the probe has no handler".into())),
        };
        ran.unwrap_or(Err(ProbeError::Timeout(probe.timeout_seconds)))
    }

    async fn exec_probe(&self, uid: &str, name: &str, e: &ExecAction, timeout: Duration) -> Result<(), ProbeError> {
        let mut child = self.exec(uid, name, &e.command)?;
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let finished = tokio::time::timeout(timeout, async {
            let (out, err, status) = tokio::join!(read_capped(out), read_capped(err), child.wait());
            (out, err, status)
        })
        .await;
        let Ok((mut output, err, status)) = finished else {
            // The shim kills the command on SIGTERM (`exec_main`); killing
            // the shim alone would leave the command running.
            if let Some(pid) = child.id() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            return Err(ProbeError::Timeout(timeout.as_secs() as i32));
        };
        output.extend(err);
        output.truncate(MAX_OUTPUT);
        let code = status
            .map_err(|source| RuntimeError::Io {
                path: self.exe.clone(),
                source,
            })?
            .code()
            .unwrap_or(255);
        if code == 0 {
            return Ok(());
        }
        Err(ProbeError::Exit {
            command: e.command.clone(),
            code,
            output: String::from_utf8_lossy(&output).trim().to_string(),
        })
    }
}

/// Reads a pipe to its end, keeping the first `MAX_OUTPUT` bytes (reading
/// on, so the command never blocks on a full pipe).
async fn read_capped(r: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let Some(mut r) = r else { return Vec::new() };
    let (mut kept, mut buf) = (Vec::new(), [0u8; 4096]);
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = MAX_OUTPUT.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

async fn tcp_socket(netns: &Path, t: &TcpSocketAction) -> Result<(), ProbeError> {
    let addr = address(&t.host, &t.port).await?;
    connect(netns, addr).await.map(drop)
}

async fn http_get(netns: &Path, h: &HttpGetAction) -> Result<(), ProbeError> {
    let mut addr = address(&h.host, &h.port).await?;
    let mut path = if h.path.starts_with('/') {
        h.path.clone()
    } else {
        format!("/{}", h.path)
    };
    for _ in 0..=MAX_REDIRECTS {
        let (code, location) = http_exchange(netns, addr, h, &path).await?;
        if !(200..400).contains(&code) {
            return Err(ProbeError::Status(code));
        }
        // A 3xx is followed on the same host only; elsewhere it counts as
        // a pass, as in Kubernetes ("Probe terminated redirects").
        match location.and_then(|l| same_host_redirect(addr, &path, &l)) {
            Some((next, p)) if (300..400).contains(&code) => (addr, path) = (next, p),
            _ => return Ok(()),
        }
    }
    Err(ProbeError::Http {
        addr,
        message: format!("stopped after {MAX_REDIRECTS} redirects"),
    })
}

/// One GET: returns the status code and the Location header.
async fn http_exchange(netns: &Path, addr: SocketAddr, h: &HttpGetAction, path: &str) -> Result<(u16, Option<String>), ProbeError> {
    let mut stream = connect(netns, addr).await?;
    let http = |message: String| ProbeError::Http { addr, message };
    let mut headers: Vec<(String, String)> = vec![
        ("Host".into(), addr.to_string()),
        ("User-Agent".into(), format!("shoal-probe/{}", env!("CARGO_PKG_VERSION"))),
        ("Accept".into(), "*/*".into()),
    ];
    for hd in &h.http_headers {
        match headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(&hd.name)) {
            Some(slot) => slot.1 = hd.value.clone(),
            None => headers.push((hd.name.clone(), hd.value.clone())),
        }
    }
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    for (n, v) in headers {
        req += &format!("{n}: {v}\r\n");
    }
    req += "Connection: close\r\n\r\n";
    stream.write_all(req.as_bytes()).await.map_err(|e| http(format!("write: {e}")))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.map_err(|e| http(format!("read: {e}")))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return Err(http(format!("response head larger than {MAX_HEAD} bytes")));
        }
    }
    parse_head(&head).ok_or_else(|| {
        http(format!(
            "malformed response {:?}",
            String::from_utf8_lossy(&head[..head.len().min(64)])
        ))
    })
}

/// The status code and Location of an HTTP/1.x response head.
fn parse_head(head: &[u8]) -> Option<(u16, Option<String>)> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let mut status = lines.next()?.splitn(3, ' ');
    if !status.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = status.next()?.parse::<u16>().ok().filter(|c| (100..1000).contains(c))?;
    let location = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("location"))
        .map(|(_, v)| v.trim().to_string());
    Some((code, location))
}

/// Where a redirect from `path` on `addr` leads, if it stays on that host
/// over plain HTTP (Kubernetes follows redirects only to the same host name,
/// any port).
fn same_host_redirect(addr: SocketAddr, path: &str, location: &str) -> Option<(SocketAddr, String)> {
    if let Some(rest) = location.strip_prefix("http://") {
        let (authority, p) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h, p.parse().ok()?),
            _ => (authority, 80),
        };
        let ip: IpAddr = host.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
        if ip != addr.ip() {
            return None;
        }
        let p = if p.is_empty() { "/" } else { p };
        return Some((SocketAddr::new(ip, port), p.to_string()));
    }
    if location.contains("://") || location.starts_with("//") {
        return None;
    }
    if location.starts_with('/') {
        return Some((addr, location.to_string()));
    }
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    Some((addr, format!("{dir}{location}")))
}

/// The address to probe. Pods have loopback only, so the default host is
/// 127.0.0.1 inside the pod's namespace; once pods get their own addresses
/// it should be the pod IP, as in Kubernetes. A host name resolves as the
/// kubelet resolves it: with the node's resolver.
async fn address(host: &str, port: &IntOrString) -> Result<SocketAddr, ProbeError> {
    let port = match port {
        IntOrString::Int(n) => u16::try_from(*n)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| ProbeError::Spec(format!("port {n} is not in 1..65535")))?,
        IntOrString::String(name) => return Err(ProbeError::Spec(format!("no container port named {name:?}"))),
    };
    if host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let resolve = |message: String| ProbeError::Resolve {
        host: host.to_string(),
        message,
    };
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| resolve(e.to_string()))?
        .next()
        .ok_or_else(|| resolve("no address".into()))
}

/// Connects to `addr` from inside the network namespace at `netns`.
async fn connect(netns: &Path, addr: SocketAddr) -> Result<tokio::net::TcpStream, ProbeError> {
    let fd = socket_in(netns.to_path_buf(), addr).await?;
    let socket = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
    socket.connect(addr).await.map_err(|source| ProbeError::Connect { addr, source })
}

/// A non-blocking TCP socket for `addr`'s family, created in the network
/// namespace at `netns` by a thread of its own, which enters the namespace
/// and ends (so no thread is left in the pod's namespace).
async fn socket_in(netns: PathBuf, addr: SocketAddr) -> Result<OwnedFd, ProbeError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let err = |what: String| {
        move |e: nix::Error| ProbeError::Netns {
            what,
            source: std::io::Error::from(e),
        }
    };
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let work = move || -> Result<OwnedFd, ProbeError> {
        let ns = std::fs::File::open(&netns).map_err(|source| ProbeError::Netns {
            what: format!("open {}", netns.display()),
            source,
        })?;
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(err(format!("setns {}", netns.display())))?;
        socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None).map_err(err("socket".into()))
    };
    std::thread::Builder::new()
        .name("probe-netns".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|source| ProbeError::Netns {
            what: "spawn a thread".into(),
            source,
        })?;
    rx.await.map_err(|_| ProbeError::Netns {
        what: "the namespace thread".into(),
        source: std::io::Error::other("ended without an answer"),
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads_give_status_and_location() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), Some((200, None)));
        assert_eq!(parse_head(b"HTTP/1.0 404 Not Found\r\n\r\n"), Some((404, None)));
        assert_eq!(
            parse_head(b"HTTP/1.1 302 Found\r\nlocation: /next\r\n\r\n"),
            Some((302, Some("/next".into())))
        );
        assert_eq!(parse_head(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_head(b""), None);
        assert_eq!(parse_head(b"HTTP/1.1 abc\r\n\r\n"), None);
    }

    #[test]
    fn redirects_are_followed_on_the_same_host_only() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(same_host_redirect(a, "/x", "/healthz"), Some((a, "/healthz".into())));
        assert_eq!(same_host_redirect(a, "/a/b", "c"), Some((a, "/a/c".into())));
        let other_port = "127.0.0.1:9090".parse().unwrap();
        assert_eq!(
            same_host_redirect(a, "/", "http://127.0.0.1:9090/z"),
            Some((other_port, "/z".into()))
        );
        assert_eq!(
            same_host_redirect(a, "/", "http://127.0.0.1"),
            Some(("127.0.0.1:80".parse().unwrap(), "/".into()))
        );
        assert_eq!(same_host_redirect(a, "/", "http://10.0.0.1:8080/"), None);
        assert_eq!(same_host_redirect(a, "/", "https://127.0.0.1/"), None);
        assert_eq!(same_host_redirect(a, "/", "//example.com/"), None);
    }

    #[tokio::test]
    async fn the_default_host_is_loopback_and_named_ports_are_refused() {
        let a = address("", &IntOrString::Int(80)).await.unwrap();
        assert_eq!(a, "127.0.0.1:80".parse().unwrap());
        let a = address("::1", &IntOrString::Int(81)).await.unwrap();
        assert_eq!(a, "[::1]:81".parse().unwrap());
        assert!(address("", &IntOrString::String("http".into())).await.is_err());
        assert!(address("", &IntOrString::Int(0)).await.is_err());
    }
}

//! `DATA/node.yaml`: who this node is and where it finds the cluster,
//! written by `init` or `join`, read by every `agent` start.

use crate::gossip::Role;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

/// The node's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSettings {
    /// Node name, unique in the cluster.
    pub name: String,
    /// UDP address to bind.
    pub listen: SocketAddr,
    /// Address other nodes use to reach this one.
    pub advertise: SocketAddr,
    /// `--label k=v`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `--zone`.
    #[serde(default)]
    pub zone: Option<String>,
    /// Server (holds the CA) or agent.
    pub role: Role,
    /// Members to contact at start (the join address and what the join returned).
    #[serde(default)]
    pub seeds: Vec<SocketAddr>,
    /// Unix ms of init or join.
    pub joined_ms: u64,
    /// Raft id, handed out once by the cluster (1 for the node that ran
    /// `init`); never reused.
    #[serde(default)]
    pub raft_id: Option<u64>,
    /// May become a Raft voter (`join --voter=false` keeps a weak node out).
    #[serde(default = "yes")]
    pub voter: bool,
    /// The address plan `init` chose (the first node only; it hands the
    /// plan to the cluster when it registers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::state::ClusterNetwork>,
}

fn yes() -> bool {
    true
}

/// The settings file is missing or broken.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// No node.yaml.
    #[error("{dir} holds no cluster: run `shoal init` or `shoal join` first")]
    Missing {
        /// The data dir.
        dir: PathBuf,
    },
    /// Unreadable.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Path of the settings file.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("node.yaml")
}

impl NodeSettings {
    /// Reads `DATA/node.yaml`.
    pub fn load(data_dir: &Path) -> Result<NodeSettings, SettingsError> {
        let p = path(data_dir);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SettingsError::Missing { dir: data_dir.into() }),
            Err(e) => {
                return Err(SettingsError::Invalid {
                    path: p,
                    message: e.to_string(),
                })
            }
        };
        serde_yaml_ng::from_str(&text).map_err(|e| SettingsError::Invalid {
            path: p,
            message: e.to_string(),
        })
    }

    /// Writes `DATA/node.yaml` (atomically).
    pub fn save(&self, data_dir: &Path) -> Result<(), crate::transport::pki::PkiError> {
        let text = serde_yaml_ng::to_string(self).expect("plain struct serialises");
        crate::transport::pki::write_private(&path(data_dir), &text)
    }
}

/// Parses `--label k=v` arguments; the names follow Kubernetes label rules loosely.
pub fn parse_labels(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for a in args {
        let (k, v) = a.split_once('=').ok_or_else(|| format!("label {a:?} is not KEY=VALUE"))?;
        let ok = |s: &str| s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
        if k.is_empty() || !ok(k) || !ok(v) {
            return Err(format!(
                "label {a:?}: keys and values are up to 63 letters, digits, '-', '_', '.', '/'"
            ));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// The address to advertise: the listen address if it names an IP, else the
/// local address the kernel would use toward `toward` (no packet is sent),
/// else loopback.
pub fn advertise_for(listen: SocketAddr, toward: Option<SocketAddr>) -> SocketAddr {
    if !listen.ip().is_unspecified() {
        return listen;
    }
    let guess = |to: SocketAddr| -> Option<IpAddr> {
        let s = UdpSocket::bind(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0)).ok()?;
        s.connect(to).ok()?;
        Some(s.local_addr().ok()?.ip())
    };
    let ip = toward
        .and_then(guess)
        .or_else(first_interface_ip)
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    SocketAddr::new(ip, listen.port())
}

fn first_interface_ip() -> Option<IpAddr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for a in addrs {
        let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in().copied()) else {
            continue;
        };
        let ip = IpAddr::V4(sin.ip());
        if !ip.is_loopback() && a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP) {
            return Some(ip);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_refuse() {
        let l = parse_labels(&["zone=a".into(), "disk=ssd".into()]).unwrap();
        assert_eq!(l.get("disk").map(String::as_str), Some("ssd"));
        assert!(parse_labels(&["nokey".into()]).is_err());
        assert!(parse_labels(&["=v".into()]).is_err());
        assert!(parse_labels(&["a=b c".into()]).is_err());
    }

    #[test]
    fn an_explicit_listen_ip_is_advertised() {
        let l: SocketAddr = "10.1.2.3:4740".parse().unwrap();
        assert_eq!(advertise_for(l, None), l);
        let any: SocketAddr = "0.0.0.0:4740".parse().unwrap();
        assert_eq!(
            advertise_for(any, Some("127.0.0.1:9".parse().unwrap())).ip(),
            IpAddr::from([127, 0, 0, 1])
        );
    }
}

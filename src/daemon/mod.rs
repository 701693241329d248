//! The agent: `init` creates a node's data dir, `run` wires every task.

pub mod accept;
pub mod api;
pub mod cluster_api;
pub mod image_gc;
pub mod objects;
pub mod services;
pub mod settings;
pub mod shutdown;
pub mod systemd;
pub mod workloads;

use crate::consensus::autopilot::AutopilotSettings;
use crate::consensus::network::Peers;
use crate::consensus::{self, RaftNode, RaftTiming};
use crate::gossip::{self, GossipConfig, MemberId, Membership, NodeMeta, Role};
use crate::join::client::Joined;
use crate::leader;
use crate::node::{driver, report, Node, NodeConfig};
use crate::runtime::image::ImageStore;
use crate::runtime::layout::NodePaths;
use crate::runtime::Runtime;
use crate::state::{NodeFacts, NodeObject, Replica};
use crate::store::Store;
use crate::transport::pki::{self, Authority, ClientConfig};
use crate::transport::quic;
use settings::NodeSettings;
use shutdown::{Shutdown, Trigger};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::info;

/// Default API port (UDP).
pub const DEFAULT_PORT: u16 = 4740;

/// The Raft id of the node that ran `init`; the cluster hands out the rest.
pub const FIRST_RAFT_ID: u64 = 1;

/// How to run a node; who it is comes from `DATA/node.yaml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data dir.
    pub data_dir: PathBuf,
    /// First restart delay.
    pub backoff_base_ms: u64,
    /// Largest restart delay.
    pub backoff_max_ms: u64,
    /// Gossip timers.
    pub gossip: GossipConfig,
    /// Raft timers.
    pub raft: RaftTiming,
    /// Voter choice.
    pub autopilot: AutopilotSettings,
    /// The node's resolv.conf (`--resolv-conf`).
    pub resolv_conf: PathBuf,
    /// Image GC's water marks.
    pub image_gc: crate::runtime::image::gc::Thresholds,
    /// Between image GC runs.
    pub image_gc_period: std::time::Duration,
}

impl Config {
    /// Embedded defaults for a data dir: Kubernetes' back-off, LAN gossip.
    pub fn new(data_dir: PathBuf) -> Config {
        Config {
            data_dir,
            backoff_base_ms: 10_000,
            backoff_max_ms: 300_000,
            gossip: GossipConfig::default(),
            raft: RaftTiming::default(),
            autopilot: AutopilotSettings::default(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            image_gc: Default::default(),
            image_gc_period: std::time::Duration::from_secs(300),
        }
    }
}

/// Who a new node is: `init` and `join` options.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Data dir.
    pub data_dir: PathBuf,
    /// Node name (default: the hostname).
    pub name: String,
    /// UDP address to bind.
    pub listen: SocketAddr,
    /// Address others use (default: from `listen` or the interfaces).
    pub advertise: Option<SocketAddr>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Zone.
    pub zone: Option<String>,
    /// The address plan (`init` only).
    pub network: crate::state::ClusterNetwork,
}

impl InitOptions {
    /// Defaults for a data dir: hostname, 0.0.0.0:4740.
    pub fn new(data_dir: PathBuf) -> InitOptions {
        InitOptions {
            data_dir,
            name: hostname(),
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            advertise: None,
            labels: BTreeMap::new(),
            zone: None,
            network: Default::default(),
        }
    }

    fn settings(&self, role: Role, advertise: SocketAddr, seeds: Vec<SocketAddr>, raft_id: Option<u64>) -> NodeSettings {
        NodeSettings {
            name: self.name.clone(),
            listen: self.listen,
            advertise,
            labels: self.labels.clone(),
            zone: self.zone.clone(),
            role,
            seeds,
            joined_ms: crate::runtime::shim::now_ms(),
            raft_id,
            voter: true,
            network: (role == Role::Server && raft_id == Some(FIRST_RAFT_ID)).then_some(self.network),
        }
    }
}

/// The machine's hostname, lowercased.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "node".into())
        .to_lowercase()
}

/// Starting the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Credentials are missing or broken.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    /// No netlink socket for the pod network.
    #[error(transparent)]
    Net(#[from] crate::net::LinkError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] crate::runtime::image::ImageError),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] quic::TransportError),
    /// The data dir holds no cluster.
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    /// The data dir already holds a cluster.
    #[error("{dir} already holds a cluster (node {name}); use another --data-dir")]
    Exists {
        /// The data dir.
        dir: PathBuf,
        /// The node there.
        name: String,
    },
    /// A joined node's settings carry no Raft id.
    #[error("{dir}: node.yaml has no raftId (the node joined before Raft); join again with a new token")]
    NoRaftId {
        /// The data dir.
        dir: PathBuf,
    },
    /// The replica's database failed.
    #[error("{path}: {message}")]
    Replica {
        /// The database.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Raft did not start.
    #[error("raft: {0}")]
    Raft(String),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn prepare_dir(data: &std::path::Path) -> Result<PathBuf, DaemonError> {
    let paths = NodePaths::new(data);
    if let Ok(existing) = NodeSettings::load(data) {
        return Err(DaemonError::Exists {
            dir: data.into(),
            name: existing.name,
        });
    }
    let pki_dir = paths.pki();
    let io = |path: &PathBuf| {
        let path = path.clone();
        move |source| DaemonError::Io { path, source }
    };
    std::fs::create_dir_all(&pki_dir).map_err(io(&pki_dir))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&paths.data, std::fs::Permissions::from_mode(0o711)).map_err(io(&paths.data))?;
    Ok(pki_dir)
}

/// Creates a new cluster in the data dir unless one is there: CA, node
/// certificate, admin credentials, node.yaml. Returns whether it created one.
pub fn init(opts: &InitOptions) -> Result<bool, DaemonError> {
    let paths = NodePaths::new(&opts.data_dir);
    let advertise = opts.advertise.unwrap_or_else(|| settings::advertise_for(opts.listen, None));
    if paths.pki().join("ca.crt").exists() {
        if NodeSettings::load(&opts.data_dir).is_err() {
            // A data dir from before node.yaml existed: keep its credentials.
            let role = if paths.pki().join("ca.key").exists() {
                Role::Server
            } else {
                Role::Agent
            };
            let raft_id = (role == Role::Server).then_some(FIRST_RAFT_ID);
            opts.settings(role, advertise, Vec::new(), raft_id).save(&opts.data_dir)?;
        }
        return Ok(false);
    }
    let pki_dir = prepare_dir(&opts.data_dir)?;
    let ca = Authority::generate(&opts.name)?;
    let node = ca.issue_node(&opts.name, &advertised_ips(opts.listen, advertise))?;
    pki::save_identity(&pki_dir, "node", &node)?;
    let admin = ca.issue_client("admin")?;
    let server = if opts.listen.ip().is_unspecified() {
        SocketAddr::new(IpAddr::from([127, 0, 0, 1]), opts.listen.port())
    } else {
        opts.listen
    };
    ClientConfig {
        server,
        ca: ca.cert_pem().to_string(),
        cert: admin.cert,
        key: admin.key,
    }
    .save(&paths.admin_conf())?;
    ca.save(&pki_dir)?;
    // The settings last: their presence marks a complete init.
    opts.settings(Role::Server, advertise, Vec::new(), Some(FIRST_RAFT_ID))
        .save(&opts.data_dir)?;
    Ok(true)
}

/// Writes what a successful join returned: the node's key and certificate,
/// the CA, node.yaml with the seeds. Nothing is written on a failed join.
pub fn write_joined(
    opts: &InitOptions,
    advertise: SocketAddr,
    server: SocketAddr,
    joined: &Joined,
    voter: bool,
) -> Result<(), DaemonError> {
    let pki_dir = prepare_dir(&opts.data_dir)?;
    pki::save_identity(
        &pki_dir,
        "node",
        &pki::Identity {
            cert: joined.cert.clone(),
            key: joined.key.clone(),
        },
    )?;
    std::fs::write(pki_dir.join("ca.crt"), &joined.ca).map_err(|source| DaemonError::Io {
        path: pki_dir.join("ca.crt"),
        source,
    })?;
    let mut seeds = vec![server];
    seeds.extend(joined.seeds.iter().copied().filter(|s| *s != server && *s != advertise));
    let mut s = opts.settings(Role::Agent, advertise, seeds, joined.raft_id);
    s.voter = voter;
    s.save(&opts.data_dir)?;
    Ok(())
}

fn advertised_ips(listen: SocketAddr, advertise: SocketAddr) -> Vec<IpAddr> {
    let mut ips = vec![IpAddr::from([127, 0, 0, 1])];
    for ip in [listen.ip(), advertise.ip()] {
        if !ip.is_unspecified() && !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

/// Runs the node until `shutdown` fires (or `trigger`, which `leave`
/// uses): creates every channel and spawns every task. Containers keep
/// running after it returns.
pub async fn run(cfg: Config, trigger: Arc<Trigger>, shutdown: Shutdown) -> Result<(), DaemonError> {
    let me = NodeSettings::load(&cfg.data_dir)?;
    let paths = NodePaths::new(&cfg.data_dir);
    let store = Arc::new(Store::open(&paths.db())?);
    let images = Arc::new(ImageStore::open(&paths.images(), store.clone())?);
    let exe = std::fs::read_link("/proc/self/exe").map_err(|source| DaemonError::Io {
        path: "/proc/self/exe".into(),
        source,
    })?;
    let runtime = Arc::new(Runtime::new(paths.clone(), images, exe));
    let ca_pem = std::fs::read_to_string(paths.pki().join("ca.crt")).map_err(|source| DaemonError::Io {
        path: paths.pki().join("ca.crt"),
        source,
    })?;
    let id = pki::load_identity(&paths.pki(), "node")?;
    let endpoint = quic::server(me.listen, &ca_pem, &id)?;
    let raft_id = match (me.raft_id, me.role) {
        (Some(r), _) => r,
        (None, Role::Server) => FIRST_RAFT_ID, // a data dir from before Raft
        (None, Role::Agent) => return Err(DaemonError::NoRaftId { dir: paths.data.clone() }),
    };

    let (gossip_handle, gossip_cmds) = gossip::net::channel(); // api, join, leader -> gossip
    let (gossip_in_tx, gossip_in_rx) = mpsc::channel(64); // accept loop -> gossip
    let (reports_tx, reports_rx) = mpsc::unbounded_channel(); // node loop -> reporter

    let replica = Arc::new(Replica::open(&paths.data.join("cluster.db")).map_err(|e| DaemonError::Replica {
        path: paths.data.join("cluster.db"),
        message: e.to_string(),
    })?);
    let consensus = consensus::start(consensus::Start {
        id: raft_id,
        me: RaftNode::new(&me.name, me.advertise),
        bootstrap: me.role == Role::Server && raft_id == FIRST_RAFT_ID,
        timing: cfg.raft.clone(),
        replica: replica.clone(),
        peers: Peers::new(endpoint.clone(), quic::node_client(&ca_pem, &id, quic::ALPN_RAFT)?),
    })
    .await
    .map_err(|e| DaemonError::Raft(e.to_string()))?;

    let core = membership(&cfg, &me, &store)?;
    let remember_store = store.clone();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(gossip::net::run(gossip::net::GossipDeps {
        core,
        endpoint: endpoint.clone(),
        client: quic::gossip_client(&ca_pem, &id)?,
        incoming: gossip_in_rx,
        cmds: gossip_cmds,
        remember: Some(Box::new(move |peers: Vec<SocketAddr>| {
            let json = serde_json::to_string(&peers).expect("addresses serialise");
            if let Err(e) = remember_store.set_meta(PEERS_KEY, &json) {
                tracing::warn!(error = %e, "could not remember peers");
            }
        })),
        log_changes: true,
        shutdown: shutdown.clone(),
    }));
    let node = Node::new(NodeConfig {
        node_name: me.name.clone(),
        backoff_base_ms: cfg.backoff_base_ms,
        backoff_max_ms: cfg.backoff_max_ms,
    });
    let links = crate::net::Links::connect(crate::net::Names::new(&paths.prefix))?;
    let net = Arc::new(crate::net::PodNetwork::new(links, store.clone()));
    let (zone_tx, zone_rx) = tokio::sync::watch::channel(Arc::default()); // net task -> DNS
    tasks.spawn(crate::net::dns::run(crate::net::dns::DnsDeps {
        net: net.clone(),
        zone: zone_rx,
        resolv_conf: cfg.resolv_conf.clone(),
        shutdown: shutdown.clone(),
    }));
    tasks.spawn(crate::net::run(crate::net::NetDeps {
        net: net.clone(),
        replica: replica.clone(),
        gossip: gossip_handle.clone(),
        node_name: me.name.clone(),
        node_ip: match me.advertise.ip() {
            std::net::IpAddr::V4(ip) => ip,
            std::net::IpAddr::V6(_) => std::net::Ipv4Addr::LOCALHOST,
        },
        zone: zone_tx,
        shutdown: shutdown.clone(),
    }));
    tasks.spawn(image_gc::run(image_gc::GcDeps {
        images: runtime.images().clone(),
        store: store.clone(),
        thresholds: cfg.image_gc,
        period: cfg.image_gc_period,
        shutdown: shutdown.clone(),
    }));
    tasks.spawn(driver::run(driver::NodeDeps {
        node,
        runtime: runtime.clone(),
        net,
        store: store.clone(),
        replica: replica.clone(),
        node_name: me.name.clone(),
        host_ip: me.advertise.ip(),
        resolv_conf: cfg.resolv_conf.clone(),
        reports: reports_tx,
        shutdown: shutdown.clone(),
    }));
    let (cpus, memory_bytes) = gossip::capacity();
    tasks.spawn(report::run(report::ReportDeps {
        consensus: consensus.clone(),
        facts: NodeFacts {
            name: me.name.clone(),
            addr: me.advertise,
            cpus,
            memory_bytes,
            version: env!("CARGO_PKG_VERSION").to_string(),
            arch: crate::state::kube_arch().to_string(),
        },
        register: (raft_id == FIRST_RAFT_ID).then(|| (self_object(&me, cpus, memory_bytes), me.network)),
        images: Some(runtime.images().clone()),
        reports: reports_rx,
        shutdown: shutdown.clone(),
    }));
    tasks.spawn(leader::run(leader::LeaderDeps {
        consensus: consensus.clone(),
        gossip: gossip_handle.clone(),
        autopilot: cfg.autopilot.clone(),
        controllers: Default::default(),
        shutdown: shutdown.clone(),
    }));
    tasks.spawn(consensus::ca::run(consensus.clone(), paths.pki(), shutdown.clone()));
    let routes = accept::Routes {
        api: api::ApiDeps {
            store: store.clone(),
            runtime,
            cluster: cluster_api::ClusterDeps {
                consensus: consensus.clone(),
                ca_sha256: pki::pem_sha256(&ca_pem).unwrap_or_default(),
                gossip: gossip_handle.clone(),
                stop: trigger,
                node_name: me.name.clone(),
            },
        },
        gossip: gossip_in_tx,
        join: crate::join::server::JoinDeps {
            consensus: consensus.clone(),
            pki_dir: paths.pki(),
            gossip: gossip_handle,
        },
        raft: consensus::server::RaftServerDeps {
            consensus: consensus.clone(),
            ca_key: paths.pki().join("ca.key"),
        },
    };
    info!(listen = %endpoint.local_addr().map(|a| a.to_string()).unwrap_or_default(), advertise = %me.advertise, node = %me.name, raft_id, data = %paths.data.display(), "shoal agent serving");
    tasks.spawn(accept::serve(endpoint, routes, shutdown.clone()));
    tasks.spawn(systemd::watchdog(shutdown.clone()));
    systemd::ready();
    let mut s = shutdown;
    s.wait().await;
    systemd::stopping();
    while tasks.join_next().await.is_some() {}
    if let Err(e) = consensus.raft.shutdown().await {
        tracing::warn!(error = %e, "raft did not stop cleanly");
    }
    info!("agent stopped");
    Ok(())
}

/// The first node's own object, which it registers once it leads.
fn self_object(me: &NodeSettings, cpus: u32, memory_bytes: u64) -> NodeObject {
    NodeObject {
        name: me.name.clone(),
        raft_id: FIRST_RAFT_ID,
        addr: me.advertise,
        labels: me.labels.clone(),
        zone: me.zone.clone(),
        cpus,
        memory_bytes,
        cordoned: false,
        taints: Vec::new(),
        voter_eligible: true,
        joined_ms: me.joined_ms,
        version: env!("CARGO_PKG_VERSION").to_string(),
        arch: crate::state::kube_arch().to_string(),
        images: Vec::new(),
        pod_cidr: None,
    }
}

const PEERS_KEY: &str = "gossip_peers";
const GENERATION_KEY: &str = "gossip_generation";

/// The gossip core for this start: a generation above every earlier one,
/// seeds from node.yaml plus the members seen Ready before.
fn membership(cfg: &Config, me: &NodeSettings, store: &Store) -> Result<Membership, DaemonError> {
    let last = store.meta(GENERATION_KEY)?.and_then(|g| g.parse::<u64>().ok()).unwrap_or(0);
    let generation = crate::runtime::shim::now_ms().max(last + 1);
    store.set_meta(GENERATION_KEY, &generation.to_string())?;
    let mut seeds = me.seeds.clone();
    if let Some(json) = store.meta(PEERS_KEY)? {
        seeds.extend(serde_json::from_str::<Vec<SocketAddr>>(&json).unwrap_or_default());
    }
    seeds.sort();
    seeds.dedup();
    let meta = NodeMeta::local(me.labels.clone(), me.zone.clone(), me.role, me.joined_ms);
    let id = MemberId {
        name: me.name.clone(),
        addr: me.advertise,
        generation,
    };
    Ok(Membership::new(id, meta, seeds, cfg.gossip.clone(), generation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_keeps_an_existing_cluster_and_completes_an_old_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = InitOptions::new(dir.path().join("d"));
        opts.name = "n1".into();
        opts.listen = "127.0.0.1:4740".parse().unwrap();
        assert!(init(&opts).unwrap());
        let ca = std::fs::read_to_string(dir.path().join("d/pki/ca.crt")).unwrap();
        assert!(!init(&opts).unwrap(), "a second init must not make a new CA");
        // A data dir from before node.yaml: the CA stays, the settings appear.
        std::fs::remove_file(settings::path(&opts.data_dir)).unwrap();
        assert!(!init(&opts).unwrap());
        assert_eq!(ca, std::fs::read_to_string(dir.path().join("d/pki/ca.crt")).unwrap());
        let s = NodeSettings::load(&opts.data_dir).unwrap();
        assert_eq!((s.name.as_str(), s.role), ("n1", Role::Server));
    }
}

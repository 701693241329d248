//! The agent: `init` creates a node's data dir, `run` wires every task.

pub mod api;
pub mod shutdown;
pub mod systemd;

use crate::node::{driver, Node, NodeConfig};
use crate::runtime::image::ImageStore;
use crate::runtime::layout::NodePaths;
use crate::runtime::Runtime;
use crate::store::Store;
use crate::transport::pki::{self, Authority, ClientConfig};
use crate::transport::quic;
use shutdown::Shutdown;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::info;

/// Default API port (UDP).
pub const DEFAULT_PORT: u16 = 4740;

/// How to run a node.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data dir.
    pub data_dir: PathBuf,
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Node name; the hostname by default.
    pub node_name: String,
    /// First restart delay.
    pub backoff_base_ms: u64,
    /// Largest restart delay.
    pub backoff_max_ms: u64,
}

impl Config {
    /// Embedded defaults for a data dir: Kubernetes' back-off, port 4740.
    pub fn new(data_dir: PathBuf) -> Config {
        Config {
            data_dir,
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            node_name: hostname(),
            backoff_base_ms: 10_000,
            backoff_max_ms: 300_000,
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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] crate::runtime::image::ImageError),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] quic::TransportError),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Creates a new one-node cluster in the data dir unless one is there:
/// CA, node certificate, admin credentials. Returns whether it created one.
pub fn init(cfg: &Config) -> Result<bool, DaemonError> {
    let paths = NodePaths::new(&cfg.data_dir);
    let pki_dir = paths.pki();
    if pki_dir.join("ca.crt").exists() {
        return Ok(false);
    }
    let io = |path: &PathBuf| {
        let path = path.clone();
        move |source| DaemonError::Io { path, source }
    };
    std::fs::create_dir_all(&pki_dir).map_err(io(&pki_dir))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&paths.data, std::fs::Permissions::from_mode(0o711)).map_err(io(&paths.data))?;
    let ca = Authority::generate(&cfg.node_name)?;
    let ips = advertised_ips(cfg.listen);
    let node = ca.issue_node(&cfg.node_name, &ips)?;
    pki::save_identity(&pki_dir, "node", &node)?;
    let admin = ca.issue_client("admin")?;
    let server = if cfg.listen.ip().is_unspecified() {
        SocketAddr::new(IpAddr::from([127, 0, 0, 1]), cfg.listen.port())
    } else {
        cfg.listen
    };
    ClientConfig {
        server,
        ca: ca.cert_pem().to_string(),
        cert: admin.cert,
        key: admin.key,
    }
    .save(&paths.admin_conf())?;
    // The CA last: its presence marks a complete init.
    ca.save(&pki_dir)?;
    Ok(true)
}

fn advertised_ips(listen: SocketAddr) -> Vec<IpAddr> {
    let mut ips = vec![IpAddr::from([127, 0, 0, 1])];
    if !listen.ip().is_unspecified() && !ips.contains(&listen.ip()) {
        ips.push(listen.ip());
    }
    ips
}

/// Runs the node until `shutdown` fires: creates every channel and spawns
/// every task. Containers keep running after it returns.
pub async fn run(cfg: Config, shutdown: Shutdown) -> Result<(), DaemonError> {
    let paths = NodePaths::new(&cfg.data_dir);
    let store = Arc::new(Store::open(&paths.db())?);
    let images = Arc::new(ImageStore::open(&paths.images(), store.clone())?);
    let exe = std::fs::read_link("/proc/self/exe").map_err(|source| DaemonError::Io {
        path: "/proc/self/exe".into(),
        source,
    })?;
    let runtime = Arc::new(Runtime::new(paths.clone(), images, exe));
    let ca = std::fs::read_to_string(paths.pki().join("ca.crt")).map_err(|source| DaemonError::Io {
        path: paths.pki().join("ca.crt"),
        source,
    })?;
    let id = pki::load_identity(&paths.pki(), "node")?;
    let endpoint = quic::server(cfg.listen, &ca, &id)?;

    let (node_tx, node_rx) = mpsc::channel(64); // api -> node loop
    let node = Node::new(NodeConfig {
        node_name: cfg.node_name.clone(),
        backoff_base_ms: cfg.backoff_base_ms,
        backoff_max_ms: cfg.backoff_max_ms,
    });
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(driver::run(driver::NodeDeps {
        node,
        runtime: runtime.clone(),
        store: store.clone(),
        cmds: node_rx,
        shutdown: shutdown.clone(),
    }));
    let api = api::ApiDeps {
        store,
        runtime,
        node: node_tx,
    };
    info!(listen = %endpoint.local_addr().map(|a| a.to_string()).unwrap_or_default(), node = %cfg.node_name, data = %paths.data.display(), "shoal agent serving");
    tasks.spawn(api::serve(endpoint, api, shutdown.clone()));
    tasks.spawn(systemd::watchdog(shutdown.clone()));
    systemd::ready();
    let mut s = shutdown;
    s.wait().await;
    systemd::stopping();
    while tasks.join_next().await.is_some() {}
    info!("agent stopped");
    Ok(())
}

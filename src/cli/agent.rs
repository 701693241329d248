//! `shoal up`, `init`, `agent`, `join`, `leave`, and the hidden `shim` helper.

use crate::daemon::{self, shutdown, Config, InitOptions, DEFAULT_PORT};
use crate::join::token::JoinToken;
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub(super) struct AgentArgs {
    /// Data dir: store, images, credentials, pods.
    #[arg(long, default_value = "/var/lib/shoal")]
    data_dir: PathBuf,
    /// First restart back-off in milliseconds (Kubernetes: 10000).
    #[arg(long, default_value_t = 10_000)]
    backoff_base_ms: u64,
    /// Largest restart back-off in milliseconds (Kubernetes: 300000).
    #[arg(long, default_value_t = 300_000)]
    backoff_max_ms: u64,
    /// Seconds a voter may stay Down before a healthy learner replaces it.
    #[arg(long, default_value_t = 30)]
    voter_grace_secs: u64,
    /// Seconds a learner must be healthy and caught up before it may vote.
    #[arg(long, default_value_t = 10)]
    voter_stabilize_secs: u64,
    /// Raft log entries between snapshots (the log behind one is purged).
    #[arg(long, default_value_t = 5000)]
    raft_snapshot_every: u64,
    /// The node's resolvers: what pods with `dnsPolicy: Default` get, and
    /// where the cluster DNS forwards names outside the cluster (as the
    /// kubelet's flag).
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// Disk use (percent) of the data dir's disk above which unused images
    /// are removed (as the kubelet's flag).
    #[arg(long, default_value_t = 85.0)]
    image_gc_high_threshold: f64,
    /// Disk use (percent) image GC brings it down to.
    #[arg(long, default_value_t = 80.0)]
    image_gc_low_threshold: f64,
    /// Seconds between image GC runs.
    #[arg(long, default_value_t = 300)]
    image_gc_period_secs: u64,
}

/// Who a new node is (`init`, `up`, `join`).
#[derive(clap::Args, Debug)]
pub(super) struct NodeArgs {
    /// Node name (default: the hostname).
    #[arg(long)]
    name: Option<String>,
    /// UDP address for the API and gossip.
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))]
    listen: SocketAddr,
    /// Address other nodes use (default: the listen IP, else this host's address).
    #[arg(long)]
    advertise: Option<SocketAddr>,
    /// A node label, KEY=VALUE (repeatable).
    #[arg(long = "label")]
    labels: Vec<String>,
    /// The node's zone.
    #[arg(long)]
    zone: Option<String>,
}

impl NodeArgs {
    fn options(&self, data_dir: &std::path::Path) -> Result<InitOptions> {
        let mut o = InitOptions::new(data_dir.to_path_buf());
        if let Some(n) = &self.name {
            o.name = n.clone();
        }
        crate::api::validate::dns_label(&o.name).map_err(|e| anyhow::anyhow!("node name {:?}: {e} (give --name)", o.name))?;
        o.listen = self.listen;
        o.advertise = self.advertise;
        o.labels = daemon::settings::parse_labels(&self.labels).map_err(anyhow::Error::msg)?;
        o.zone = self.zone.clone();
        Ok(o)
    }
}

#[derive(clap::Args, Debug)]
pub(super) struct InitArgs {
    /// Data dir for the new cluster.
    #[arg(long, default_value = "/var/lib/shoal")]
    data_dir: PathBuf,
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    network: NetworkArgs,
}

#[derive(clap::Args, Debug)]
pub(super) struct UpArgs {
    #[command(flatten)]
    agent: AgentArgs,
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    network: NetworkArgs,
}

/// The address plan of a new cluster (k3s' flags and defaults).
#[derive(clap::Args, Debug)]
pub(super) struct NetworkArgs {
    /// Pod addresses; every node gets a subnet of it.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: ipnet::Ipv4Net,
    /// Service virtual IPs (the cluster DNS takes the tenth).
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: ipnet::Ipv4Net,
    /// Prefix length of each node's pod subnet.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
}

impl NetworkArgs {
    fn plan(&self) -> Result<crate::state::ClusterNetwork> {
        Ok(crate::state::ClusterNetwork::checked(
            self.cluster_cidr,
            self.service_cidr,
            self.node_cidr_mask_size,
        )?)
    }
}

#[derive(clap::Args, Debug)]
pub(super) struct JoinArgs {
    /// Any node of the cluster (one without the CA key sends the joiner on to a voter).
    addr: SocketAddr,
    /// Whether this node may become a Raft voter; `--voter=false` keeps a weak node out for good.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    voter: bool,
    /// The join token from `shoal token create`.
    #[arg(long, env = "SHOAL_TOKEN", hide_env_values = true)]
    token: String,
    /// Data dir for this node.
    #[arg(long, default_value = "/var/lib/shoal")]
    data_dir: PathBuf,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(clap::Args, Debug)]
pub(super) struct LeaveArgs {
    /// Data dir of the node that leaves.
    #[arg(long, default_value = "/var/lib/shoal")]
    data_dir: PathBuf,
}

impl AgentArgs {
    fn config(&self) -> Config {
        let mut c = Config::new(self.data_dir.clone());
        c.backoff_base_ms = self.backoff_base_ms;
        c.backoff_max_ms = self.backoff_max_ms.max(self.backoff_base_ms);
        c.autopilot.grace_ms = self.voter_grace_secs * 1000;
        c.autopilot.stabilization_ms = self.voter_stabilize_secs * 1000;
        c.raft.snapshot_every = self.raft_snapshot_every.max(10);
        c.resolv_conf = self.resolv_conf.clone();
        c.image_gc = crate::runtime::image::gc::Thresholds {
            high: self.image_gc_high_threshold,
            low: self.image_gc_low_threshold.min(self.image_gc_high_threshold),
        };
        c.image_gc_period = std::time::Duration::from_secs(self.image_gc_period_secs.max(1));
        c
    }
}

pub(super) fn init(a: InitArgs) -> Result<i32> {
    let mut opts = a.node.options(&a.data_dir)?;
    opts.network = a.network.plan()?;
    if daemon::init(&opts)? {
        println!(
            "cluster created in {}; admin credentials: {}",
            opts.data_dir.display(),
            opts.data_dir.join("admin.conf").display()
        );
    } else {
        println!("{} already holds a cluster", opts.data_dir.display());
    }
    Ok(0)
}

pub(super) async fn agent(a: AgentArgs) -> Result<i32> {
    let cfg = a.config();
    let (trigger, shutdown) = shutdown::channel();
    let trigger = std::sync::Arc::new(trigger);
    let on_signal = trigger.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        on_signal.fire();
    });
    daemon::run(cfg, trigger, shutdown).await.context("agent")?;
    Ok(0)
}

pub(super) async fn up(a: UpArgs) -> Result<i32> {
    let mut opts = a.node.options(&a.agent.data_dir)?;
    opts.network = a.network.plan()?;
    if daemon::init(&opts)? {
        eprintln!("new cluster in {}", opts.data_dir.display());
    }
    // On the default data dir, make the credentials the user's default, as k3s does.
    if opts.data_dir == std::path::Path::new("/var/lib/shoal") {
        if let Some(home) = std::env::var_os("HOME") {
            let dest = PathBuf::from(home).join(".shoal/config");
            if !dest.exists() {
                std::fs::create_dir_all(dest.parent().expect("has parent"))?;
                std::fs::copy(opts.data_dir.join("admin.conf"), &dest)?;
            }
        }
    }
    agent(a.agent).await
}

pub(super) async fn join(a: JoinArgs) -> Result<i32> {
    let token = JoinToken::parse(&a.token)?;
    let opts = a.node.options(&a.data_dir)?;
    if let Ok(s) = daemon::settings::NodeSettings::load(&opts.data_dir) {
        bail!(
            "{} already holds node {} of a cluster; use another --data-dir",
            opts.data_dir.display(),
            s.name
        );
    }
    let advertise = opts
        .advertise
        .unwrap_or_else(|| daemon::settings::advertise_for(opts.listen, Some(a.addr)));
    let who = crate::join::client::JoinAs {
        name: opts.name.clone(),
        advertise,
        labels: opts.labels.clone(),
        zone: opts.zone.clone(),
        voter: a.voter,
    };
    let joined = crate::join::client::join(a.addr, &token, &who).await?;
    daemon::write_joined(&opts, advertise, a.addr, &joined, a.voter)?;
    println!(
        "node {} joined the cluster at {}; start it with: shoal agent --data-dir {}",
        opts.name,
        a.addr,
        opts.data_dir.display()
    );
    Ok(0)
}

/// Asks the local agent to leave, with the node's own credentials.
pub(super) async fn leave(a: LeaveArgs) -> Result<i32> {
    let me = daemon::settings::NodeSettings::load(&a.data_dir)?;
    let pki = a.data_dir.join("pki");
    let id = crate::transport::pki::load_identity(&pki, "node")?;
    let ca = std::fs::read_to_string(pki.join("ca.crt")).with_context(|| format!("reading {}", pki.join("ca.crt").display()))?;
    let server = if me.listen.ip().is_unspecified() {
        SocketAddr::new(std::net::IpAddr::from([127, 0, 0, 1]), me.listen.port())
    } else {
        me.listen
    };
    let cfg = crate::transport::pki::ClientConfig {
        server,
        ca,
        cert: id.cert,
        key: id.key,
    };
    let (endpoint, conn) = crate::transport::quic::connect(&cfg, None).await?;
    let reply = super::request_on(&conn, &crate::api::wire::Request::Leave).await?;
    conn.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    match reply {
        crate::api::wire::Reply::Left { name } => {
            println!("node {name} left the cluster; its agent has stopped");
            Ok(0)
        }
        crate::api::wire::Reply::Error { message } => bail!(message),
        other => bail!("unexpected reply {other:?}"),
    }
}

#[derive(clap::Subcommand, Debug)]
pub(super) enum ShimCmd {
    /// Create, start and supervise the container of BUNDLE.
    Run { bundle: PathBuf },
    /// Run a plain OCI bundle to its exit (benchmarks).
    RunBundle { bundle: PathBuf, id: String },
    /// Create and pin a pod's namespaces under DIR.
    Sandbox { dir: PathBuf, hostname: String },
    /// Run a command in container ID.
    Exec {
        oci_root: PathBuf,
        id: String,
        #[arg(last = true)]
        command: Vec<String>,
    },
}

pub(super) fn shim(cmd: ShimCmd) -> ! {
    match cmd {
        ShimCmd::Run { bundle } => crate::runtime::shim::run(&bundle),
        ShimCmd::RunBundle { bundle, id } => crate::runtime::shim::run_bundle(&bundle, &id),
        ShimCmd::Sandbox { dir, hostname } => match crate::runtime::sandbox::create(&dir, &hostname) {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1)
            }
        },
        ShimCmd::Exec { oci_root, id, command } => crate::runtime::exec_main(&oci_root, &id, command),
    }
}

//! `shoal up`, `init`, `agent`, and the hidden `shim` helper.

use crate::daemon::{self, shutdown, Config, DEFAULT_PORT};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub(super) struct AgentArgs {
    /// Data dir: store, images, credentials, pods.
    #[arg(long, default_value = "/var/lib/shoal")]
    data_dir: PathBuf,
    /// UDP address for the API.
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))]
    listen: SocketAddr,
    /// Node name (default: the hostname).
    #[arg(long)]
    name: Option<String>,
    /// First restart back-off in milliseconds (Kubernetes: 10000).
    #[arg(long, default_value_t = 10_000)]
    backoff_base_ms: u64,
    /// Largest restart back-off in milliseconds (Kubernetes: 300000).
    #[arg(long, default_value_t = 300_000)]
    backoff_max_ms: u64,
}

impl AgentArgs {
    fn config(&self) -> Config {
        let mut c = Config::new(self.data_dir.clone());
        c.listen = self.listen;
        if let Some(n) = &self.name {
            c.node_name = n.clone();
        }
        c.backoff_base_ms = self.backoff_base_ms;
        c.backoff_max_ms = self.backoff_max_ms.max(self.backoff_base_ms);
        c
    }
}

pub(super) fn init(a: AgentArgs) -> Result<i32> {
    let cfg = a.config();
    if daemon::init(&cfg)? {
        println!(
            "cluster created in {}; admin credentials: {}",
            cfg.data_dir.display(),
            cfg.data_dir.join("admin.conf").display()
        );
    } else {
        println!("{} already holds a cluster", cfg.data_dir.display());
    }
    Ok(0)
}

pub(super) async fn agent(a: AgentArgs) -> Result<i32> {
    let cfg = a.config();
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        trigger.fire();
    });
    daemon::run(cfg, shutdown).await.context("agent")?;
    Ok(0)
}

pub(super) async fn up(a: AgentArgs) -> Result<i32> {
    let cfg = a.config();
    if daemon::init(&cfg)? {
        eprintln!("new cluster in {}", cfg.data_dir.display());
    }
    // On the default data dir, make the credentials the user's default, as k3s does.
    if cfg.data_dir == std::path::Path::new("/var/lib/shoal") {
        if let Some(home) = std::env::var_os("HOME") {
            let dest = PathBuf::from(home).join(".shoal/config");
            if !dest.exists() {
                std::fs::create_dir_all(dest.parent().expect("has parent"))?;
                std::fs::copy(cfg.data_dir.join("admin.conf"), &dest)?;
            }
        }
    }
    agent(a).await
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

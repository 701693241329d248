//! The `shoal` command line: one file per command, each a thin client of
//! the QUIC API (or, for `up`/`init`/`agent`, of the daemon).

mod agent;
mod apply;
mod bench;
mod config;
mod cordon;
mod delete;
mod events;
mod exec;
mod get;
mod hollow;
mod image;
mod info;
mod label;
mod logs;
mod nodes;
mod rollout;
mod services;
mod taint;
mod token;
mod workloads;

use crate::api::wire::{Reply, Request};
use crate::transport::framing::{read_frame, write_frame, Frame};
use crate::transport::pki::ClientConfig;
use crate::transport::quic;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Shoal: pods on a small fleet, one binary, no Docker.
#[derive(Parser, Debug)]
#[command(name = "shoal", version, about)]
pub struct Cli {
    /// Client credentials (else $SHOAL_CONFIG, else ~/.shoal/config).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Ask this node instead of the one in the credentials.
    #[arg(long, global = true)]
    server: Option<SocketAddr>,
    /// Namespace.
    #[arg(short, long, global = true, default_value = "default")]
    namespace: String,
    /// Reads are linearizable: the node first catches up with the leader's
    /// commit index (else they come from its own replica as it is).
    #[arg(long, global = true)]
    consistent: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a cluster here (init if needed, then run the agent).
    Up(agent::UpArgs),
    /// Create a new cluster in the data dir and exit.
    Init(agent::InitArgs),
    /// Run this node's agent in the foreground (the systemd unit's command).
    Agent(agent::AgentArgs),
    /// Join a cluster with a token, write the data dir and exit.
    Join(agent::JoinArgs),
    /// Leave the cluster gracefully and stop this node's agent.
    Leave(agent::LeaveArgs),
    /// What gossip costs on the node asked: members, health, traffic by kind.
    Info(info::Args),
    /// Manage join tokens (admin credentials, through any node).
    #[command(subcommand)]
    Token(token::Cmd),
    /// Run many gossip members in one process (fleet-size tests).
    Hollow(hollow::Args),
    /// Create or update objects from YAML (`-f -` reads stdin).
    Apply(apply::Args),
    /// Create a Secret or ConfigMap from literals or files.
    #[command(subcommand)]
    Create(config::CreateCmd),
    /// List objects.
    Get(get::GetArgs),
    /// Show one object in detail.
    Describe(get::DescribeArgs),
    /// Print a container's log.
    Logs(logs::Args),
    /// Delete an object.
    Delete(delete::Args),
    /// Run a command in a container.
    Exec(exec::Args),
    /// Mark a node unschedulable: no new pods land on it.
    Cordon(cordon::Args),
    /// Mark a node schedulable again.
    Uncordon(cordon::Args),
    /// Add or remove taints on a node.
    Taint(taint::Args),
    /// Add, change or remove a node's labels.
    Label(label::Args),
    /// Set the replicas of a deployment or replicaset.
    Scale(rollout::ScaleArgs),
    /// Change a deployment's image.
    #[command(subcommand)]
    Set(rollout::SetCmd),
    /// Follow, inspect, undo, pause, resume or restart a deployment's rollout.
    Rollout(rollout::RolloutArgs),
    /// Cordon a node and evict its controller-managed pods.
    Drain(rollout::DrainArgs),
    /// Make a Service for a deployment, replicaset or daemonset.
    Expose(services::ExposeArgs),
    /// Manage the node's images.
    #[command(subcommand)]
    Image(image::Cmd),
    /// Internal: the per-container helper process.
    #[command(subcommand, hide = true)]
    Shim(agent::ShimCmd),
    /// Internal: apply throughput and latency over one connection (bench/raft.sh).
    #[command(hide = true)]
    BenchApply(bench::Args),
}

impl Cli {
    /// Runs the command; returns the process exit code.
    pub fn run(self) -> Result<i32> {
        if let Command::Shim(cmd) = self.command {
            agent::shim(cmd);
        }
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let ctx = Ctx {
            config: self.config,
            server: self.server,
            namespace: self.namespace,
            consistent: self.consistent,
        };
        rt.block_on(async move {
            match self.command {
                Command::Up(a) => agent::up(a).await,
                Command::Init(a) => agent::init(a),
                Command::Agent(a) => agent::agent(a).await,
                Command::Join(a) => agent::join(a).await,
                Command::Leave(a) => agent::leave(a).await,
                Command::Token(c) => token::run(&ctx, c).await,
                Command::Info(a) => info::run(&ctx, a).await,
                Command::Hollow(a) => hollow::run(a).await,
                Command::Apply(a) => apply::run(&ctx, a).await,
                Command::Get(a) => get::get(&ctx, a).await,
                Command::Create(c) => config::create(&ctx, c).await,
                Command::Describe(a) => get::describe(&ctx, a).await,
                Command::Logs(a) => logs::run(&ctx, a).await,
                Command::Delete(a) => delete::run(&ctx, a).await,
                Command::Exec(a) => exec::run(&ctx, a).await,
                Command::Cordon(a) => cordon::run(&ctx, a, true).await,
                Command::Uncordon(a) => cordon::run(&ctx, a, false).await,
                Command::Taint(a) => taint::run(&ctx, a).await,
                Command::Label(a) => label::run(&ctx, a).await,
                Command::Scale(a) => rollout::scale(&ctx, a).await,
                Command::Set(c) => rollout::set(&ctx, c).await,
                Command::Rollout(a) => rollout::rollout(&ctx, a).await,
                Command::Drain(a) => rollout::drain(&ctx, a).await,
                Command::Expose(a) => services::expose(&ctx, a).await,
                Command::Image(c) => image::run(&ctx, c).await,
                Command::BenchApply(a) => bench::run(&ctx, a).await,
                Command::Shim(_) => unreachable!("handled above"),
            }
        })
    }
}

/// Where and how the client connects.
struct Ctx {
    config: Option<PathBuf>,
    server: Option<SocketAddr>,
    namespace: String,
    consistent: bool,
}

/// An open request stream.
struct Call {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    _send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl Ctx {
    fn credentials(&self) -> Result<(PathBuf, ClientConfig)> {
        let path = match (&self.config, std::env::var_os("SHOAL_CONFIG")) {
            (Some(p), _) => p.clone(),
            (None, Some(p)) => PathBuf::from(p),
            (None, None) => {
                let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("no --config, no SHOAL_CONFIG and no HOME"))?;
                PathBuf::from(home).join(".shoal/config")
            }
        };
        let cfg = ClientConfig::load(&path).with_context(|| "reading client credentials (give --config FILE or set SHOAL_CONFIG)")?;
        Ok((path, cfg))
    }

    /// Sends a request and reads the reply frame.
    async fn call(&self, req: &Request) -> Result<(Call, Reply)> {
        let (_, cfg) = self.credentials()?;
        let (endpoint, conn) = quic::connect(&cfg, self.server).await?;
        let (send, recv, reply) = exchange(&conn, req).await?;
        Ok((
            Call {
                _endpoint: endpoint,
                conn,
                _send: send,
                recv,
            },
            reply,
        ))
    }

    /// A request answered by `Reply::Streaming` and data frames; server errors become errors.
    async fn stream(&self, req: &Request) -> Result<Call> {
        let (call, reply) = self.call(req).await?;
        match reply {
            Reply::Error { message } => Err(anyhow!(message)),
            _ => Ok(call),
        }
    }

    /// A read: with `--consistent`, the node first catches up with the
    /// leader on the same connection. Server errors become errors.
    async fn read(&self, req: &Request) -> Result<Reply> {
        if !self.consistent {
            return self.simple(req).await;
        }
        let (call, reply) = self.call(&Request::Linearize).await?;
        if let Reply::Error { message } = reply {
            call.conn.close(0u32.into(), b"done");
            bail!(message);
        }
        let reply = request_on(&call.conn, req).await;
        call.conn.close(0u32.into(), b"done");
        match reply? {
            Reply::Error { message } => Err(anyhow!(message)),
            r => Ok(r),
        }
    }

    /// A request whose reply is all there is; server errors become errors.
    async fn simple(&self, req: &Request) -> Result<Reply> {
        let (call, reply) = self.call(req).await?;
        call.conn.close(0u32.into(), b"done");
        match reply {
            Reply::Error { message } => Err(anyhow!(message)),
            r => Ok(r),
        }
    }
}

/// Opens a stream on `conn`, sends `req`, reads the reply frame.
async fn exchange(conn: &quinn::Connection, req: &Request) -> Result<(quinn::SendStream, quinn::RecvStream, Reply)> {
    let (mut send, mut recv) = conn.open_bi().await.context("opening a stream")?;
    write_frame(&mut send, &Frame::json(req)).await?;
    let reply = match read_frame(&mut recv).await {
        Ok(Some(f)) => f.decode::<Reply>()?,
        Ok(None) => bail!("the server closed the stream without answering"),
        Err(e) => return Err(anyhow!(e)).context("the server refused or dropped the connection"),
    };
    Ok((send, recv, reply))
}

/// One request on an open connection; only the reply.
async fn request_on(conn: &quinn::Connection, req: &Request) -> Result<Reply> {
    Ok(exchange(conn, req).await?.2)
}

/// Output format of `get`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Wide,
    Yaml,
    Json,
}

/// `5s`, `3m`, `2h`, `4d` since a Unix-ms instant.
fn age(since_ms: u64) -> String {
    let s = crate::runtime::shim::now_ms().saturating_sub(since_ms) / 1000;
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// `TYPE/NAME` in the kind argument, as kubectl takes it: the kind word and the name.
fn kind_name(kind: &str, name: Option<String>) -> (String, Option<String>) {
    match kind.split_once('/') {
        Some((k, n)) => (k.to_string(), Some(n.to_string())),
        None => (kind.to_string(), name),
    }
}

/// As [`kind_name`], for commands that need the name.
fn kind_name_required(verb: &str, kind: &str, name: Option<String>) -> Result<(String, String)> {
    match kind_name(kind, name) {
        (k, Some(n)) => Ok((k, n)),
        (_, None) => bail!("{verb} needs a NAME (or TYPE/NAME)"),
    }
}

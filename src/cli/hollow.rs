//! `shoal hollow`: many members in this process, for fleet-size tests:
//! gossip only (signed by the CA in `--data-dir`), or with `--token` whole
//! hollow nodes that join, replicate Raft as learners and record the pods
//! placed on them as Running.

use crate::daemon::shutdown;
use crate::gossip::hollow::{self, HollowSpec};
use crate::gossip::GossipConfig;
use anyhow::{bail, Result};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Data dir of the node holding the cluster CA (signs the members' certificates).
    #[arg(long, default_value = "/var/lib/shoal")]
    data_dir: PathBuf,
    /// Number of members.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// IP the members bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Member i listens on UDP BASE_PORT + i.
    #[arg(long, default_value_t = 5000)]
    base_port: u16,
    /// Name prefix.
    #[arg(long, default_value = "hollow")]
    prefix: String,
    /// A cluster member to join through (repeatable).
    #[arg(long = "join", required = true)]
    seeds: Vec<SocketAddr>,
    /// Converged when every member sees this many Ready (default: count + 1).
    #[arg(long)]
    expect: Option<usize>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Stay up this many seconds after converging, then exit.
    #[arg(long, default_value_t = 0)]
    stay_secs: u64,
    /// Join with this token as whole hollow nodes (Raft learners with a
    /// recording runtime) instead of gossip-only members.
    #[arg(long, env = "SHOAL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Where hollow nodes keep their replicas (removed at exit).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

pub(super) async fn run(a: Args) -> Result<i32> {
    if a.count == 0 || a.count > 1000 || usize::from(a.base_port) + a.count > 65535 {
        bail!("--count must be 1..=1000 and fit above --base-port");
    }
    let spec = HollowSpec {
        pki_dir: a.data_dir.join("pki"),
        bind: a.bind,
        base_port: a.base_port,
        count: a.count,
        prefix: a.prefix.clone(),
        seeds: a.seeds.clone(),
        cfg: GossipConfig::default(),
    };
    let expect = a.expect.unwrap_or(a.count + 1);
    let (trigger, shutdown) = shutdown::channel();
    let t0 = Instant::now();
    if let Some(token) = &a.token {
        let state = a
            .state_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("shoal-hollow-{}", std::process::id())));
        std::fs::create_dir_all(&state)?;
        let r = nodes(&a, &spec, token, &state, expect, t0, shutdown).await;
        trigger.fire();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = std::fs::remove_dir_all(&state);
        return r;
    }
    let fleet = hollow::start(&spec, shutdown)?;
    println!("hollow: {} members started in {} ms", fleet.len(), t0.elapsed().as_millis());
    let deadline = t0 + Duration::from_secs(a.timeout_secs);
    let mut converged = false;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (done, fewest, example) = fleet.convergence(expect).await;
        println!(
            "hollow: {} ms: {done}/{} members see {expect} Ready (fewest: {fewest}){}",
            t0.elapsed().as_millis(),
            fleet.len(),
            example.map(|e| format!("; e.g. {e}")).unwrap_or_default()
        );
        if done == fleet.len() {
            println!("hollow: converged in {} ms", t0.elapsed().as_millis());
            converged = true;
            break;
        }
    }
    if converged {
        tokio::time::sleep(Duration::from_secs(a.stay_secs)).await;
    }
    trigger.fire();
    tokio::time::sleep(Duration::from_millis(200)).await;
    if !converged {
        bail!(
            "{} hollow members did not converge to {expect} Ready within {} s",
            fleet.len(),
            a.timeout_secs
        );
    }
    Ok(0)
}

/// Whole hollow nodes: join (eight at a time), then wait for gossip to converge.
async fn nodes(
    a: &Args,
    spec: &HollowSpec,
    token: &str,
    state: &std::path::Path,
    expect: usize,
    t0: Instant,
    shutdown: shutdown::Shutdown,
) -> Result<i32> {
    use crate::node::hollow as hn;
    let token = crate::join::token::JoinToken::parse(token)?;
    let server = spec.seeds[0];
    let mut members = Vec::with_capacity(spec.count);
    let mut pending = tokio::task::JoinSet::new();
    for i in 0..spec.count {
        let name = format!("{}-{i:03}", spec.prefix);
        let addr = SocketAddr::new(spec.bind, spec.base_port + i as u16);
        let (token, state, shutdown) = (token.clone(), state.to_path_buf(), shutdown.clone());
        pending.spawn(async move { hn::start(&name, addr, server, &token, &state, shutdown).await });
        if pending.len() >= 8 {
            members.push(pending.join_next().await.expect("not empty")??);
        }
    }
    while let Some(m) = pending.join_next().await {
        members.push(m??);
    }
    println!("hollow: {} nodes joined in {} ms", members.len(), t0.elapsed().as_millis());
    let deadline = t0 + Duration::from_secs(a.timeout_secs);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut done = 0;
        for m in &members {
            let ready = m
                .gossip
                .nodes()
                .await
                .iter()
                .filter(|n| n.status == crate::gossip::NodeStatus::Ready)
                .count();
            done += usize::from(ready >= expect);
        }
        if done == members.len() {
            println!("hollow: converged in {} ms", t0.elapsed().as_millis());
            tokio::time::sleep(Duration::from_secs(a.stay_secs)).await;
            return Ok(0);
        }
    }
    bail!(
        "{} hollow nodes did not converge to {expect} Ready within {} s",
        members.len(),
        a.timeout_secs
    )
}

//! `shoal hollow`: many gossip members in this process, for fleet-size tests.

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
        prefix: a.prefix,
        seeds: a.seeds,
        cfg: GossipConfig::default(),
    };
    let expect = a.expect.unwrap_or(a.count + 1);
    let (trigger, shutdown) = shutdown::channel();
    let t0 = Instant::now();
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

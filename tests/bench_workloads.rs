//! Benchmarks of the workload controllers on the netns harness, not tests:
//! ignored by the suite, run by `bench/workloads.sh` on the release build.
//! Each prints `BENCH <figure> <values...>` lines.
//!
//! - node death: kill -9 of a node's agent and containers until every
//!   replica is Running and Ready elsewhere, 10 runs;
//! - rolling update of 10 replicas from v1 to v2 (Kubernetes' default
//!   25 % / 25 %), until `rollout status` returns;
//! - idle: Raft entries and the leader's CPU over 30 s with the Deployment settled;
//! - 100 hollow nodes: a Deployment scaled from 0 to 1,000 until all Running.

mod common;

use common::netns::Net;
use common::workload::{pods, wait_ready};
use std::time::{Duration, Instant};

fn sleepers(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      nodeSelector: {{shoal.dev/hollow: \"true\"}}\n      containers: [{{name: c, image: localhost/busybox, command: [sleep, \"3600\"]}}]\n"
    )
}

fn web(replicas: u32, version: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers: [{{name: web, image: \"localhost/web:{version}\"}}]\n"
    )
}

fn stats(name: &str, v: &mut [f64]) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = v[v.len() / 2];
    let all: Vec<String> = v.iter().map(|x| format!("{x:.2}")).collect();
    eprintln!(
        "BENCH {name} n={} median={median:.2} min={:.2} max={:.2} all=[{}]",
        v.len(),
        v[0],
        v[v.len() - 1],
        all.join(" ")
    );
}

/// The highest Raft log index in host `i`'s replica.
fn raft_index(net: &Net, i: usize) -> i64 {
    let db = rusqlite::Connection::open(net.host(i).dir.join("cluster.db")).unwrap();
    db.query_row("SELECT COALESCE(MAX(idx), 0) FROM raft_log", [], |r| r.get(0))
        .unwrap()
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
#[ignore = "benchmark: bench/workloads.sh"]
fn bench_node_death_rolling_update_and_idle() {
    let mut net = Net::cluster(3);
    for i in 1..=3 {
        net.import(i, "web-v1.tar");
        net.import(i, "web-v2.tar");
    }
    net.apply_ok(1, &web(3, "v1"));
    wait_ready(&net, 1, "web", 3, 60, |_| true);

    // Node death, 10 runs: victims rotate over the followers that run a replica.
    let mut times = Vec::new();
    for run in 0..10 {
        std::thread::sleep(Duration::from_secs(3));
        let leader = net.leader(1).unwrap_or(1);
        let placed = pods(&net, leader, "web").unwrap();
        let victim = (1..=3)
            .map(|k| (k + run) % 3 + 1)
            .find(|&v| v != leader && placed.iter().any(|p| p.node == format!("h{v}") && !p.terminating))
            .expect("a follower runs a replica");
        let t0 = Instant::now();
        net.kill9(victim);
        net.kill_containers(victim);
        let name = format!("h{victim}");
        net.wait_for(60, "replicas Ready elsewhere", || {
            let p = pods(&net, leader, "web")?;
            let live: Vec<_> = p.iter().filter(|p| !p.terminating).collect();
            (live.len() == 3 && live.iter().all(|p| p.ready && p.node != name)).then_some(())
        });
        times.push(t0.elapsed().as_secs_f64());
        net.start_agent(victim);
        net.wait_for(60, "exactly 3 pods again", || {
            let p = pods(&net, leader, "web")?;
            (p.len() == 3 && p.iter().all(|p| p.ready && !p.terminating)).then_some(())
        });
        // Spread again, so the next victim runs a replica too.
        net.ok(1, &["rollout", "restart", "deployment/web"]);
        net.ok(1, &["rollout", "status", "deployment/web", "--timeout", "60s"]);
        wait_ready(&net, leader, "web", 3, 60, |p| {
            p.iter().map(|p| &p.node).collect::<std::collections::BTreeSet<_>>().len() == 3
        });
    }
    stats("node_death_to_replicas_ready_s", &mut times);

    // Rolling update of 10 replicas, alternating v1 → v2 → v1.
    net.ok(1, &["scale", "deployment/web", "--replicas", "10"]);
    wait_ready(&net, 1, "web", 10, 60, |_| true);
    let mut rolls = Vec::new();
    for (k, version) in ["v2", "v1", "v2"].iter().enumerate() {
        std::thread::sleep(Duration::from_secs(3));
        let t0 = Instant::now();
        net.ok(1, &["set", "image", "deployment/web", &format!("web=localhost/web:{version}")]);
        net.ok(1, &["rollout", "status", "deployment/web", "--timeout", "120s"]);
        rolls.push(t0.elapsed().as_secs_f64());
        let want = format!("localhost/web:{version}");
        wait_ready(&net, 1, "web", 10, 60, |p| p.iter().all(|p| p.image == want));
        eprintln!("roll {k}: {:.2} s", rolls[k]);
    }
    stats("rolling_update_10_replicas_s", &mut rolls);

    // Idle: nothing changes, nothing is written.
    std::thread::sleep(Duration::from_secs(5));
    let leader = net.leader(1).unwrap_or(1);
    let pid = net.hosts[leader - 1].agent.as_ref().unwrap().id();
    let (i0, c0) = (raft_index(&net, leader), cpu_ticks(pid));
    std::thread::sleep(Duration::from_secs(30));
    let (i1, c1) = (raft_index(&net, leader), cpu_ticks(pid));
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    eprintln!(
        "BENCH idle_30s raft_entries={} leader_cpu_percent={:.2} pods=10 nodes=3",
        i1 - i0,
        (c1 - c0) as f64 / ticks / 30.0 * 100.0
    );
}

#[test]
#[ignore = "benchmark: bench/workloads.sh"]
fn bench_hollow_deployment_0_to_1000() {
    let (net, _hollow) = Net::hollow_cluster(100, 240);
    net.apply_ok(1, &sleepers("big", 0));
    std::thread::sleep(Duration::from_secs(3));
    let t0 = Instant::now();
    net.ok(1, &["scale", "deployment/big", "--replicas", "1000"]);
    let nodes = net.wait_for(300, "1,000 pods Running", || {
        let p = pods(&net, 1, "big")?;
        let running: Vec<_> = p.iter().filter(|p| p.ready && !p.terminating).collect();
        (running.len() == 1000).then(|| {
            running
                .iter()
                .map(|p| p.node.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        })
    });
    let t = t0.elapsed().as_secs_f64();
    eprintln!("BENCH hollow_scale_0_to_1000_s {t:.2} nodes_used={nodes}");
    let (i0, c0) = (raft_index(&net, 1), cpu_ticks(net.hosts[0].agent.as_ref().unwrap().id()));
    std::thread::sleep(Duration::from_secs(30));
    let (i1, c1) = (raft_index(&net, 1), cpu_ticks(net.hosts[0].agent.as_ref().unwrap().id()));
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    eprintln!(
        "BENCH hollow_idle_30s raft_entries={} leader_cpu_percent={:.2} pods=1000 nodes=101",
        i1 - i0,
        (c1 - c0) as f64 / ticks / 30.0 * 100.0
    );
}

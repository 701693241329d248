//! Many nodes: hosts as network namespaces on a bridge, each running the real
//! binary. Join, crash, partition, heal, leave, and a hundred hollow members.

mod common;

use common::netns::{status_of, Net};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn all_ready(n: usize) -> impl Fn(usize, &[(String, String)]) -> bool {
    move |_, view| view.len() == n && view.iter().all(|(_, s)| s == "Ready")
}

fn sees(name: &'static str, status: &'static str) -> impl Fn(usize, &[(String, String)]) -> bool {
    move |_, view| status_of(view, name) == Some(status)
}

#[test]
fn five_hosts_join_then_survive_a_crash_a_partition_and_a_leave() {
    let mut net = Net::new(5);
    net.init(1);
    net.start_agent(1);
    net.wait_views(&[1], 20, "first node up", all_ready(1));
    let token = net.ok(1, &["token", "create", "--ttl", "10m"]).trim().to_string();
    for i in 2..=5 {
        net.join(i, 1, &token);
        net.start_agent(i);
    }
    net.wait_views(&[1, 2, 3, 4, 5], 20, "5 nodes Ready everywhere", all_ready(5));
    let wide = net.ok(2, &["get", "nodes", "-o", "wide", "--server", &net.addr(2)]);
    assert!(
        wide.contains("rack=r3") && wide.contains("lab") && wide.contains("leader") && wide.contains("learner"),
        "{wide}"
    );

    // kill -9: every survivor shows it Down; a restart brings the same identity back.
    let cert = std::fs::read_to_string(net.host(3).dir.join("pki/node.crt")).unwrap();
    net.kill9(3);
    net.wait_views(&[1, 2, 4, 5], 20, "h3 Down on every survivor", sees("h3", "Down"));
    net.start_agent(3);
    net.wait_views(&[1, 2, 3, 4, 5], 20, "h3 back Ready", all_ready(5));
    assert_eq!(cert, std::fs::read_to_string(net.host(3).dir.join("pki/node.crt")).unwrap());

    // A partition: both sides see the other Down; after the heal all are Ready.
    net.partition(4);
    net.wait_views(&[1, 2, 3, 5], 20, "h4 Down on the majority side", sees("h4", "Down"));
    net.wait_views(&[4], 60, "the others Down on h4", |_, view| {
        ["h1", "h2", "h3", "h5"].iter().all(|n| status_of(view, n) == Some("Down"))
    });
    net.heal(4);
    net.wait_views(&[1, 2, 3, 4, 5], 20, "all Ready after the heal", all_ready(5));

    // leave: Left, not Down, and the agent stops.
    net.ok(5, &["leave", "--data-dir", net.host(5).dir.to_str().unwrap()]);
    assert!(net.wait_exit(5, 10), "agent of h5 did not stop after leave");
    net.wait_views(&[1, 2, 3, 4], 20, "h5 Left", sees("h5", "Left"));
}

#[test]
fn a_hundred_hollow_members_converge_with_a_real_node() {
    let mut net = Net::new(2);
    net.init(1);
    net.start_agent(1);
    net.wait_views(&[1], 20, "first node up", all_ready(1));
    let h = net.host(2);
    let log = std::fs::File::create(h.dir.with_extension("hollow.log")).unwrap();
    let hollow = common::netns::in_ns(&h.ns)
        .args([common::BIN, "hollow"])
        .args(["--data-dir", net.host(1).dir.to_str().unwrap(), "--count", "100", "--bind", &h.ip])
        .args([
            "--base-port",
            "5000",
            "--join",
            &net.addr(1),
            "--expect",
            "101",
            "--timeout-secs",
            "150",
            "--stay-secs",
            "5",
        ])
        .env("SHOAL_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut hollow = Reap(hollow);
    // The real node sees all 101 Ready, and every hollow member does too.
    net.wait_views(&[1], 150, "101 Ready on the real node", all_ready(101));
    let deadline = Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(s) = hollow.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "hollow did not finish");
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = std::fs::read_to_string(net.host(2).dir.with_extension("hollow.log")).unwrap_or_default();
    let _ = std::fs::remove_file(net.host(2).dir.with_extension("hollow.log"));
    assert!(status.success() && out.contains("converged in"), "{out}");
    eprintln!(
        "{}",
        out.lines()
            .filter(|l| l.contains("started") || l.contains("converged"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

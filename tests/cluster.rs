//! Many nodes: hosts as network namespaces on a bridge, each running the real
//! binary. Join, crash, partition, heal and leave (a hundred hollow members:
//! `tests/fleet.rs`).

mod common;

use common::netns::{status_of, Net};

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

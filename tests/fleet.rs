//! A fleet of a hundred on two cores: hollow members (gossip only) and hollow
//! nodes (Raft learners that record their pods) in one process beside a real
//! node. Each test takes the whole machine, so they run one at a time (this
//! binary's lock) and never beside another binary's tests (cargo runs test
//! binaries one after another).

mod common;

use common::netns::Net;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static MACHINE: Mutex<()> = Mutex::new(());

fn whole_machine() -> std::sync::MutexGuard<'static, ()> {
    MACHINE.lock().unwrap_or_else(|e| e.into_inner())
}

fn all_ready(n: usize) -> impl Fn(usize, &[(String, String)]) -> bool {
    move |_, view| view.len() == n && view.iter().all(|(_, s)| s == "Ready")
}

fn sleeper(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{extra}  containers: [{{name: c, image: localhost/busybox, command: [sleep, \"3600\"]}}]\n"
    )
}

#[test]
fn a_hundred_hollow_members_converge_with_a_real_node() {
    let _machine = whole_machine();
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

#[test]
fn a_hundred_hollow_nodes_take_three_thousand_pods_through_the_real_leader() {
    let _machine = whole_machine();
    let t = std::time::Instant::now();
    let (net, _hollow) = Net::hollow_cluster(100, 240);
    eprintln!("hollow: 100 learners reported in {:.1} s", t.elapsed().as_secs_f64());
    // 3,000 pods in batches of 300, kept off the real node by a selector.
    let t0 = std::time::Instant::now();
    for batch in 0..10 {
        let docs: Vec<String> = (0..300)
            .map(|k| sleeper(&format!("scale-{batch}-{k}"), "  nodeSelector: {shoal.dev/hollow: \"true\"}\n"))
            .collect();
        net.apply_ok(1, &docs.join("---\n"));
    }
    let applied = t0.elapsed();
    let nodes = net.wait_for(360, "3,000 pods Running", || {
        let pods = net.pods(1, false)?;
        let running: Vec<&str> = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .filter_map(|p| p["status"]["nodeName"].as_str())
            .collect();
        (running.len() == 3000).then(|| running.iter().map(|n| n.to_string()).collect::<std::collections::BTreeSet<_>>())
    });
    eprintln!(
        "hollow: 3000 pods applied in {:.1} s, all Running after {:.1} s, on {} nodes",
        applied.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        nodes.len()
    );
    assert!(nodes.iter().all(|n| n.starts_with("hollow-")), "a pod landed on a real node");
    assert!(nodes.len() >= 90, "the scheduler spread 3,000 pods over only {} nodes", nodes.len());
}

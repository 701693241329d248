//! Benchmarks of the pod network and Services on the netns harness, not
//! tests: ignored by the suite, run by `bench/net.sh` on the release build.
//! Each prints `BENCH <figure> <values...>` lines.
//!
//! - paths: TCP throughput (iperf3, 5 s) and 1-byte request/response
//!   latency between pods across nodes, host-gw (h1→h2) and VXLAN (h1→h4,
//!   behind the router), each against host to host on the same path; and
//!   through a ClusterIP against straight to the pod (throughput,
//!   round trips, new connections per second). iperf3 and the loops run in
//!   the pods' own network namespaces (nsenter / setns), so the packets take
//!   the pods' path.
//! - table: the node's nftables table written whole and changed by one
//!   Service, with 10, 100 and 1,000 Services, and the first-packet
//!   (TCP connect) latency through a Service address at each size.
//! - rss: an agent's RSS with no Services and with 1,000.
//! - dns: dnsperf from a pod against the cluster DNS and against dnsmasq
//!   serving the same names: latency and queries per second.

mod common;

use common::netns::{dnsmasq, in_ns, Net};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const PODS: &str = "apiVersion: v1
kind: Pod
metadata: {name: a}
spec:
  nodeSelector: {kubernetes.io/hostname: h1}
  containers: [{name: c, image: localhost/netcheck, command: [sleep, '3600']}]
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: b}}
spec:
  nodeSelector: {kubernetes.io/hostname: h2}
  containers: [{name: c, image: localhost/netcheck, command: [sleep, '3600']}]
---
apiVersion: v1
kind: Pod
metadata: {name: c}
spec:
  nodeSelector: {kubernetes.io/hostname: h4}
  containers: [{name: c, image: localhost/netcheck, command: [sleep, '3600']}]
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec:
  selector: {app: b}
  ports: [{name: iperf, port: 5201}, {name: rr, port: 7000}]
";

/// Runs `f` on a thread inside the network namespace at `path`.
fn inside<T: Send + 'static>(path: PathBuf, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
}

/// (pod network namespace path, pod IP) of pod `name`.
fn pod_ns(net: &Net, name: &str) -> (PathBuf, String) {
    net.wait_for(90, &format!("{name} running"), || {
        let pods = net.pods(1, false)?;
        let p = pods.iter().find(|p| p["pod"]["metadata"]["name"] == name)?;
        if p["status"]["phase"] != "Running" {
            return None;
        }
        let node = p["status"]["nodeName"].as_str()?.trim_start_matches('h').parse::<usize>().ok()?;
        let uid = p["uid"].as_str()?;
        let ip = p["status"]["podIP"].as_str()?.to_string();
        Some((net.host(node).dir.join("pods").join(uid).join("ns/net"), ip))
    })
}

fn host_ns(net: &Net, i: usize) -> PathBuf {
    PathBuf::from(format!("/run/netns/{}", net.host(i).ns))
}

/// iperf3 for 5 s from namespace `client` to `addr` (a server runs in `server`); Gbit/s received.
fn iperf(server: &std::path::Path, client: &std::path::Path, addr: &str, port: u16) -> f64 {
    let mut s = std::process::Command::new("nsenter")
        .arg(format!("--net={}", server.display()))
        .args(["iperf3", "-s", "-1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 (apt-get install iperf3)");
    std::thread::sleep(Duration::from_millis(300));
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", client.display()))
        .args(["iperf3", "-J", "-t", "5", "-c", addr, "-p", &port.to_string()])
        .output()
        .unwrap();
    let _ = s.wait();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0) / 1e9
}

/// A 1-byte echo server on `port` in namespace `ns`, for `secs`.
fn echo_server(ns: PathBuf, port: u16) {
    inside(ns, move || {
        let l = TcpListener::bind(("0.0.0.0", port)).unwrap();
        l.set_nonblocking(false).unwrap();
        for c in l.incoming().take(100_000) {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let _ = c.set_nodelay(true);
                let mut b = [0u8; 1];
                while c.read_exact(&mut b).is_ok() {
                    if c.write_all(&b).is_err() {
                        break;
                    }
                }
            });
        }
    });
    std::thread::sleep(Duration::from_millis(200));
}

/// 5,000 one-byte round trips on one connection from `ns` to `addr`: (mean µs, p99 µs).
fn round_trips(ns: PathBuf, addr: String) -> (f64, f64) {
    inside(ns, move || {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.set_nodelay(true).unwrap();
        let mut times = Vec::with_capacity(5000);
        let mut b = [7u8; 1];
        for _ in 0..5000 {
            let t = Instant::now();
            c.write_all(&b).unwrap();
            c.read_exact(&mut b).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (times.iter().sum::<f64>() / times.len() as f64, times[times.len() * 99 / 100])
    })
    .join()
    .unwrap()
}

/// New connections per second for 3 s (connect, 1-byte round trip, close).
fn connections(ns: PathBuf, addr: String) -> f64 {
    inside(ns, move || {
        let t = Instant::now();
        let mut n = 0u32;
        while t.elapsed() < Duration::from_secs(3) {
            let mut c = TcpStream::connect(&addr).unwrap();
            let mut b = [1u8; 1];
            c.write_all(&b).unwrap();
            c.read_exact(&mut b).unwrap();
            // Close with a reset, so no TIME_WAIT piles up across runs.
            let hard = nix::sys::socket::sockopt::Linger;
            let _ = nix::sys::socket::setsockopt(&c, hard, &nix::libc::linger { l_onoff: 1, l_linger: 0 });
            n += 1;
        }
        n as f64 / t.elapsed().as_secs_f64()
    })
    .join()
    .unwrap()
}

#[test]
#[ignore = "benchmark: bench/net.sh"]
fn bench_paths() {
    let net = Net::routed(3, 1);
    for i in 1..=4 {
        net.import(i, "netcheck.tar");
    }
    net.apply_ok(1, PODS);
    let (a, _) = pod_ns(&net, "a");
    let (b, b_ip) = pod_ns(&net, "b");
    let (c, c_ip) = pod_ns(&net, "c");
    let svc: serde_json::Value = serde_json::from_str(&net.ok(1, &["get", "svc", "b", "-o", "json", "--server", &net.addr(1)])).unwrap();
    let vip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    net.wait_for(30, "b's endpoints", || {
        let out = net.ok(1, &["get", "ep", "b", "--server", &net.addr(1)]);
        out.contains(&format!("{b_ip}:5201")).then_some(())
    });
    let (h1, h2, h4) = (host_ns(&net, 1), host_ns(&net, 2), host_ns(&net, 4));
    let (ip2, ip4) = (net.host(2).ip.clone(), net.host(4).ip.clone());
    for (name, server, client, addr) in [
        ("throughput_gbps host-gw pod->pod", &b, &a, b_ip.clone()),
        ("throughput_gbps host-gw host->host", &h2, &h1, ip2.clone()),
        ("throughput_gbps vxlan pod->pod", &c, &a, c_ip.clone()),
        ("throughput_gbps vxlan(router) host->host", &h4, &h1, ip4.clone()),
        ("throughput_gbps clusterip pod->svc->pod", &b, &a, vip.clone()),
    ] {
        let runs: Vec<String> = (0..3).map(|_| format!("{:.2}", iperf(server, client, &addr, 5201))).collect();
        eprintln!("BENCH {name} runs=[{}]", runs.join(" "));
    }
    echo_server(b.clone(), 7000);
    echo_server(c.clone(), 7000);
    echo_server(h2.clone(), 7000);
    echo_server(h4.clone(), 7000);
    for (name, client, addr) in [
        ("rr_us host-gw pod->pod", &a, format!("{b_ip}:7000")),
        ("rr_us host-gw host->host", &h1, format!("{ip2}:7000")),
        ("rr_us vxlan pod->pod", &a, format!("{c_ip}:7000")),
        ("rr_us vxlan(router) host->host", &h1, format!("{ip4}:7000")),
        ("rr_us clusterip pod->svc->pod", &a, format!("{vip}:7000")),
    ] {
        let runs: Vec<String> = (0..3)
            .map(|_| {
                let (mean, p99) = round_trips(client.clone(), addr.clone());
                format!("mean={mean:.1}/p99={p99:.1}")
            })
            .collect();
        eprintln!("BENCH {name} runs=[{}]", runs.join(" "));
    }
    for (name, addr) in [
        ("conn_per_s direct pod->pod", format!("{b_ip}:7000")),
        ("conn_per_s clusterip pod->svc->pod", format!("{vip}:7000")),
    ] {
        let runs: Vec<String> = (0..3).map(|_| format!("{:.0}", connections(a.clone(), addr.clone()))).collect();
        eprintln!("BENCH {name} runs=[{}]", runs.join(" "));
    }
}

#[test]
#[ignore = "benchmark: bench/net.sh"]
fn bench_table() {
    use shoal::net::nft::model::{desired, Addresses, Proto, ServicePort};
    use shoal::net::nft::{Nft, Table};
    let net = Net::new(1); // one namespace of the harness's own, no agent
    let ns = host_ns(&net, 1);
    std::process::Command::new("ip")
        .args(["-n", &net.host(1).ns, "addr", "add", "10.42.0.2/32", "dev", "lo"])
        .status()
        .unwrap();
    // Service addresses need a route for a local connect() to leave at all.
    std::process::Command::new("ip")
        .args(["-n", &net.host(1).ns, "route", "add", "10.43.0.0/16", "dev", "eth0"])
        .status()
        .unwrap();
    let addrs = Addresses {
        cluster: "10.42.0.0/16".parse().unwrap(),
        services: "10.43.0.0/16".parse().unwrap(),
        dns: Some(("10.43.0.10".parse().unwrap(), "10.42.0.1".parse().unwrap())),
    };
    let services = |n: u32, drop_one: bool| -> Vec<ServicePort> {
        (0..n)
            .map(|i| {
                let vip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 43, 0, 20)) + i);
                let mut eps = vec![
                    (std::net::Ipv4Addr::new(10, 42, (i % 200) as u8 + 1, 2), 8080),
                    (std::net::Ipv4Addr::new(10, 42, (i % 200) as u8 + 1, 3), 8080),
                ];
                if i == n / 2 {
                    // The measured one: its only endpoint is the local listener.
                    eps = vec![(std::net::Ipv4Addr::new(10, 42, 0, 2), 8080)];
                }
                if drop_one && i == n / 3 {
                    eps.pop();
                }
                ServicePort {
                    service: format!("default/s{i}"),
                    port_name: "http".into(),
                    proto: Proto::Tcp,
                    cluster_ip: Some(vip),
                    external_ips: vec![],
                    port: 80,
                    node_port: Some(30000 + (i % 2700) as u16),
                    affinity_secs: None,
                    endpoints: eps,
                }
            })
            .collect()
    };
    inside(ns.clone(), move || {
        let l = TcpListener::bind("10.42.0.2:8080").unwrap();
        for c in l.incoming() {
            drop(c);
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    for n in [10u32, 100, 1000] {
        let (full, change) = inside(ns.clone(), move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut t = Table::new(&format!("shoalbench{n}"), Nft);
                let t0 = Instant::now();
                t.sync(desired(&addrs, &services(n, false))).await.unwrap();
                let full = t0.elapsed().as_secs_f64() * 1e3;
                let want = desired(&addrs, &services(n, true));
                let t1 = Instant::now();
                t.sync(want).await.unwrap();
                let change = t1.elapsed().as_secs_f64() * 1e3;
                (full, change)
            })
        })
        .join()
        .unwrap();
        let vip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 43, 0, 20)) + n / 2);
        let first = inside(ns.clone(), move || {
            let mut times: Vec<f64> = (0..500)
                .map(|_| {
                    let t = Instant::now();
                    drop(TcpStream::connect((vip, 80)).unwrap());
                    t.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            times.sort_by(|a, b| a.partial_cmp(b).unwrap());
            (times.iter().sum::<f64>() / 500.0, times[495])
        })
        .join()
        .unwrap();
        eprintln!(
            "BENCH table services={n} full_sync_ms={full:.1} one_change_ms={change:.1} connect_us_mean={:.1} connect_us_p99={:.1}",
            first.0, first.1
        );
        let name = format!("shoalbench{n}");
        in_ns(&net.host(1).ns)
            .args(["nft", "delete", "table", "ip", &name])
            .status()
            .unwrap();
    }
    let direct = inside(ns.clone(), || {
        let t = Instant::now();
        for _ in 0..500 {
            drop(TcpStream::connect("10.42.0.2:8080").unwrap());
        }
        t.elapsed().as_secs_f64() * 1e6 / 500.0
    })
    .join()
    .unwrap();
    eprintln!("BENCH table services=0 connect_us_mean={direct:.1} (straight to the listener)");
}

/// VmRSS of `pid` in kB.
fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "benchmark: bench/net.sh"]
fn bench_rss() {
    let net = Net::cluster(1);
    let pid = net.host(1).agent.as_ref().unwrap().id();
    std::thread::sleep(Duration::from_secs(5));
    let idle = rss_kb(pid);
    for batch in 0..10 {
        let docs: Vec<String> = (0..100)
            .map(|i| {
                let n = batch * 100 + i;
                format!(
                    "apiVersion: v1\nkind: Service\nmetadata: {{name: s{n}}}\nspec:\n  selector: {{app: s{n}}}\n  ports: [{{port: 80}}]\n"
                )
            })
            .collect();
        net.apply_ok(1, &docs.join("---\n"));
    }
    let table = shoal::net::Names::new(&shoal::runtime::layout::NodePaths::new(&net.host(1).dir).prefix).bridge;
    let t = Instant::now();
    net.wait_for(60, "1,000 Services in the table", || {
        let out = in_ns(&net.host(1).ns)
            .args(["nft", "list", "map", "ip", &table, "no-endpoint-services"])
            .output()
            .ok()?;
        (String::from_utf8_lossy(&out.stdout).matches("goto reject-chain").count() >= 1000).then_some(())
    });
    eprintln!("BENCH rss table_ready_after_last_apply_s={:.2}", t.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_secs(5));
    eprintln!("BENCH rss agent_kb services=0 {idle} services=1000 {}", rss_kb(pid));
}

/// dnsperf from namespace `ns` against `server` for `secs` seconds with at
/// most `outstanding` queries in flight: (queries per second, average
/// latency in µs, queries lost).
fn dnsperf(ns: &std::path::Path, server: &str, queries: &std::path::Path, secs: u32, outstanding: u32) -> (f64, f64, u64) {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["dnsperf", "-s", server, "-d"])
        .arg(queries)
        .args(["-l", &secs.to_string(), "-q", &outstanding.to_string(), "-t", "2"])
        .output()
        .expect("run dnsperf (bench/net.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name:?} in dnsperf's output:\n{text}"))
    };
    (
        field("Queries per second:"),
        field("Average Latency (s):") * 1e6,
        field("Queries lost:") as u64,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The cluster DNS from a pod: 100 Service names asked over and over,
/// through the cluster DNS address (DNAT to the node's server), straight
/// to the node's server, and to dnsmasq serving the same 100 names from a
/// hosts file on the node's address (the peer: CoreDNS is not packaged
/// here). Latency with one query in flight; throughput with 100.
#[test]
#[ignore = "benchmark: bench/net.sh"]
fn bench_dns() {
    let net = Net::cluster(1);
    net.import(1, "netcheck.tar");
    let docs: Vec<String> = (0..100)
        .map(|n| {
            format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s{n}}}\nspec:\n  selector: {{app: s{n}}}\n  ports: [{{port: 80}}]\n")
        })
        .collect();
    net.apply_ok(1, &docs.join("---\n"));
    net.apply_ok(1, PODS.split("---").next().unwrap());
    let (pod, pod_ip) = pod_ns(&net, "a");
    let listing: serde_json::Value = serde_json::from_str(&net.ok(1, &["get", "svc", "-o", "json", "--server", &net.addr(1)])).unwrap();
    let dir = PathBuf::from(format!("/tmp/{}-dns", net.id));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut hosts, mut queries) = (String::new(), String::new());
    for s in listing["items"].as_array().unwrap() {
        let (name, ip) = (s["metadata"]["name"].as_str().unwrap(), s["spec"]["clusterIP"].as_str().unwrap());
        if name.starts_with('s') {
            hosts.push_str(&format!("{ip} {name}.default.svc.cluster.local\n"));
            queries.push_str(&format!("{name}.default.svc.cluster.local A\n"));
        }
    }
    assert_eq!(queries.lines().count(), 100);
    std::fs::write(dir.join("hosts"), hosts).unwrap();
    std::fs::write(dir.join("queries"), queries).unwrap();
    let node_ip = net.host(1).ip.clone();
    let dnsmasq = Ended(
        dnsmasq(&net.host(1).ns, &node_ip)
            .arg("--local-ttl=5")
            .arg(format!("--addn-hosts={}", dir.join("hosts").display()))
            .spawn()
            .expect("dnsmasq (scripts/deps.sh installs dnsmasq-base)"),
    );
    let gateway = pod_ip.rsplit_once('.').map(|(net, _)| format!("{net}.1")).unwrap();
    let q = dir.join("queries");
    let servers = [
        ("shoal_via_cluster_ip", "10.43.0.10"),
        ("shoal_direct", gateway.as_str()),
        ("dnsmasq", node_ip.as_str()),
    ];
    for (name, server) in servers {
        net.wait_for(30, &format!("{name} answers"), || {
            let (_, _, lost) = dnsperf(&pod, server, &q, 1, 1);
            (lost == 0).then_some(())
        });
    }
    for (name, server) in servers {
        let mut lat = Vec::new();
        let mut qps = Vec::new();
        let mut lost = 0;
        for _ in 0..3 {
            lat.push(dnsperf(&pod, server, &q, 3, 1).1);
            let (rate, _, l) = dnsperf(&pod, server, &q, 5, 100);
            qps.push(rate);
            lost += l;
        }
        eprintln!(
            "BENCH dns {name} latency_us_one_in_flight={:.1} qps_100_in_flight={:.0} lost={lost} runs={lat:.1?}/{qps:.0?}",
            median(lat.clone()),
            median(qps.clone())
        );
    }
    eprintln!(
        "BENCH dns agent_rss_kb={} dnsmasq_rss_kb={}",
        rss_kb(net.host(1).agent.as_ref().unwrap().id()),
        rss_kb(dnsmasq.0.id())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A process this benchmark started, ended by pid when it goes out of scope
/// (a failed run too).
struct Ended(std::process::Child);

impl Drop for Ended {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

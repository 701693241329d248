//! Pod links made by the real netlink code, in namespaces of the test's own:
//! a "host" namespace gets the node's bridge, a "pod" namespace gets `eth0`
//! with its address and default route, and the pod reaches its gateway.

mod common;

use shoal::net::{Links, Names};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Named network namespaces, deleted on drop (on failure too).
struct Namespaces(Vec<String>);

impl Namespaces {
    fn new(names: &[&str]) -> Namespaces {
        common::require_root();
        let id = format!("shoal{}l{}", std::process::id() % 100_000, SEQ.fetch_add(1, Ordering::SeqCst));
        let ns = Namespaces(names.iter().map(|n| format!("{id}-{n}")).collect());
        for n in &ns.0 {
            run("ip", &["netns", "add", n]);
        }
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `f` on a thread inside namespace `ns` with a runtime of its own.
fn inside<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

#[test]
fn a_pod_gets_its_address_route_and_gateway_and_everything_goes_away() {
    let ns = Namespaces::new(&["host", "pod"]);
    let (host, pod) = (ns.0[0].clone(), ns.0[1].clone());
    let names = Names::new("shoal-1234abcd");
    let subnet: ipnet::Ipv4Net = "10.42.3.0/24".parse().unwrap();
    let pod_path = std::path::PathBuf::from(format!("/run/netns/{pod}"));
    let veth = names.veth("uid-1");
    let n = names.clone();
    inside(&host, move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let links = Links::connect(n).unwrap();
            links.ensure_bridge(subnet, 1450).await.unwrap();
            links.ensure_bridge(subnet, 1450).await.unwrap(); // again: nothing changes
            let ip = "10.42.3.2".parse().unwrap();
            links.attach("uid-1", &pod_path, ip, subnet, 1450).await.unwrap();
            links.attach("uid-1", &pod_path, ip, subnet, 1450).await.unwrap(); // a container restart
        })
    });
    let pod_addr = run("ip", &["-n", &pod, "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(pod_addr.contains("10.42.3.2/24"), "{pod_addr}");
    let route = run("ip", &["-n", &pod, "route", "show", "default"]);
    assert!(route.contains("via 10.42.3.1 dev eth0"), "{route}");
    let mtu = run("ip", &["-n", &pod, "-o", "link", "show", "eth0"]);
    assert!(mtu.contains("mtu 1450"), "{mtu}");
    let bridge = run("ip", &["-n", &host, "-o", "link", "show", "master", &names.bridge]);
    assert!(bridge.contains(&veth), "{bridge}");
    assert!(run("ip", &["-n", &host, "-d", "-o", "link", "show", &veth]).contains("hairpin on"));
    // The pod reaches its gateway, the bridge in the host namespace.
    run("ip", &["netns", "exec", &pod, "ping", "-c", "1", "-W", "2", "10.42.3.1"]);

    let n = names.clone();
    inside(&host, move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let links = Links::connect(n).unwrap();
            links.detach("uid-1").await.unwrap();
            links.detach("uid-1").await.unwrap(); // gone already: fine
            links.remove_all(&["uid-1".to_string()]).await.unwrap();
        })
    });
    let left = run("ip", &["-n", &host, "-o", "link", "show"]);
    assert!(!left.contains("shoal"), "links left behind: {left}");
    let pod_links = run("ip", &["-n", &pod, "-o", "link", "show"]);
    assert!(!pod_links.contains("eth0"), "{pod_links}");
}

/// A pod on `host` (by name), as YAML.
fn pod_on(name: &str, host: &str, image: &str, command: Option<&str>) -> String {
    let cmd = command.map(|c| format!("    command: [sh, -c, '{c}']\n")).unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  nodeSelector: {{kubernetes.io/hostname: {host}}}\n  containers:\n  - name: c\n    image: {image}\n{cmd}"
    )
}

#[test]
fn pods_on_two_nodes_of_one_link_reach_each_other_by_address() {
    let net = common::netns::Net::cluster(2);
    net.import(1, "hello-http.tar");
    net.apply_ok(1, &pod_on("server", "h1", "localhost/hello-http", None));
    let ip = net.wait_for(60, "the server's address", || {
        let pods = net.pods(1, false)?;
        let p = pods
            .iter()
            .find(|p| p["pod"]["metadata"]["name"] == "server" || p["metadata"]["name"] == "server")?;
        (p["status"]["phase"] == "Running").then(|| p["status"]["podIP"].as_str().map(str::to_string))?
    });
    // h1 routes h2's pod subnet through h2's address on their shared link.
    let routes = run("ip", &["-n", &net.host(1).ns, "route", "show", "proto", "83"]);
    assert!(routes.contains("via 10.88.0.2"), "{routes}");
    net.apply_ok(
        1,
        &pod_on(
            "client",
            "h2",
            "localhost/busybox",
            // busybox's static wget crashes resolving a non-loopback address
            // in glibc's getaddrinfo; nc takes the address as it is.
            Some(&format!(
                "while true; do printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | nc -w 2 {ip} 8080 | grep Hello && sleep 600; sleep 0.2; done"
            )),
        ),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = net.run(2, &["logs", "client", "--server", &net.addr(2)]);
        if String::from_utf8_lossy(&out.stdout).contains("Hello from a Shoal pod") {
            break;
        }
        if std::time::Instant::now() > deadline {
            let h2 = &net.host(2).ns;
            panic!(
                "the client on h2 did not reach the server at {ip}: logs {:?} {:?}\nh2 routes:\n{}\nh2 links:\n{}\npods: {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                run("ip", &["-n", h2, "route"]),
                run("ip", &["-n", h2, "-br", "addr"]),
                net.placements(1)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// The node's nftables table, written by the real code through `nft -j`
/// in a namespace of the test's own: whole, then changed in place (one
/// Service's endpoints), then removed. `nft list` shows each step.
#[test]
fn the_nftables_table_goes_in_whole_changes_in_place_and_comes_out() {
    use shoal::net::nft::model::{desired, Addresses, Proto, ServicePort};
    use shoal::net::nft::{Nft, Table};
    let ns = Namespaces::new(&["nft"]);
    let host = ns.0[0].clone();
    let sp = |name: &str, eps: Vec<(&str, u16)>, node_port: Option<u16>, affinity: Option<u32>| ServicePort {
        service: format!("default/{name}"),
        port_name: "http".into(),
        proto: Proto::Tcp,
        cluster_ip: Some("10.43.0.20".parse().unwrap()),
        external_ips: vec![],
        port: 80,
        node_port,
        affinity_secs: affinity,
        endpoints: eps.into_iter().map(|(ip, p)| (ip.parse().unwrap(), p)).collect(),
    };
    let mut udp = sp("dns", vec![("10.42.0.5", 53)], None, None);
    udp.proto = Proto::Udp;
    udp.cluster_ip = Some("10.43.0.11".parse().unwrap());
    udp.port = 53;
    let mut empty = sp("empty", vec![], Some(30081), None);
    empty.cluster_ip = Some("10.43.0.30".parse().unwrap());
    let first = vec![
        sp("web", vec![("10.42.0.2", 8080), ("10.42.1.2", 8080)], Some(30080), Some(10800)),
        udp.clone(),
        empty.clone(),
    ];
    let second = vec![sp("web", vec![("10.42.0.2", 8080)], Some(30080), Some(10800)), udp, empty];
    let addrs = Addresses {
        cluster: "10.42.0.0/16".parse().unwrap(),
        services: "10.43.0.0/16".parse().unwrap(),
        dns: Some(("10.43.0.10".parse().unwrap(), "10.42.0.1".parse().unwrap())),
    };
    let table_name = format!("{host}t").replace('-', "");
    let t = table_name.clone();
    let counts = inside(&host, move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut table = Table::new(&t, Nft);
            let a = table.sync(desired(&addrs, &first)).await.unwrap();
            let again = table.sync(desired(&addrs, &first)).await.unwrap();
            let b = table.sync(desired(&addrs, &second)).await.unwrap();
            (a, again, b)
        })
    });
    assert_eq!(counts.1, 0, "an unchanged table is not written");
    assert!(
        counts.2 < 10 && counts.2 > 0,
        "a change of one Service is a small transaction: {counts:?}"
    );
    let listing = run("ip", &["netns", "exec", &host, "nft", "list", "table", "ip", &table_name]);
    for want in [
        "numgen random mod 1",
        "dnat to 10.42.0.2:8080",
        "10.43.0.20 . tcp . 80 : goto service-default/web/tcp/http",
        "tcp . 30080 : goto external-default/web/tcp/http",
        "10.43.0.30 . tcp . 80 : goto reject-chain",
        "tcp . 30081 : goto reject-chain",
        "10.43.0.11 . udp . 53 : goto service-default/dns/udp/http",
        "ip daddr 10.43.0.10 udp dport 53 dnat to 10.42.0.1",
        "ip daddr 10.43.0.0/16 reject",
        "update @affinity-10800-default/web/tcp/http__10.42.0.2/8080 { ip saddr }",
        "ip saddr 10.42.0.0/16 ip daddr != 10.42.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random",
    ] {
        assert!(listing.contains(want), "missing {want:?} in:\n{listing}");
    }
    assert!(!listing.contains("10.42.1.2"), "the gone endpoint is still there:\n{listing}");
    let t = table_name.clone();
    inside(&host, move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async { Table::new(&t, Nft).remove().await.unwrap() })
    });
    let left = run("ip", &["netns", "exec", &host, "nft", "list", "ruleset"]);
    assert!(left.trim().is_empty(), "{left}");
}

/// A pod on host `host` named `name` that answers HTTP on 8080 with its
/// name and UDP on 9000 with its name and the datagram.
fn echo_pod(name: &str, host: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: echo}}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  nodeSelector: {{kubernetes.io/hostname: {host}}}\n  containers:\n  - name: c\n    image: localhost/netcheck\n    command: [sh, -c, 'mkdir -p /www && echo {name} > /www/index.html && (udpecho -l 9000 &) && exec httpd -f -p 8080 -h /www']\n"
    )
}

/// Three nodes on one link and a fourth behind a router: pods reach the
/// pods of every other node by address over TCP and UDP (host-gw routes
/// between the three, VXLAN to and from the fourth), and reach a host
/// outside the cluster, which routes back to node addresses only, through
/// masquerade.
#[test]
fn pods_reach_pods_on_every_node_across_a_router_and_the_outside_through_masquerade() {
    use common::netns::{Net, OUTSIDE};
    let net = Net::routed(3, 1);
    for i in 1..=4 {
        net.import(i, "netcheck.tar");
        net.apply_ok(1, &echo_pod(&format!("echo{i}"), &format!("h{i}")));
    }
    let ips: Vec<String> = (1..=4)
        .map(|i| {
            net.wait_for(90, &format!("echo{i} running with an address"), || {
                let pods = net.pods(1, false)?;
                let name = format!("echo{i}");
                let p = pods.iter().find(|p| p["pod"]["metadata"]["name"] == name.as_str())?;
                (p["status"]["phase"] == "Running").then(|| p["status"]["podIP"].as_str().map(str::to_string))?
            })
        })
        .collect();
    // Host-gw between the three on the link, VXLAN to the fourth, on both sides.
    let h1_routes = run("ip", &["-n", &net.host(1).ns, "route", "show", "proto", "83"]);
    assert!(h1_routes.contains("via 10.88.0.2") && h1_routes.contains("onlink"), "{h1_routes}");
    let h4_routes = run("ip", &["-n", &net.host(4).ns, "route", "show", "proto", "83"]);
    assert_eq!(h4_routes.matches("onlink").count(), 3, "{h4_routes}");

    // An HTTP server outside the cluster, ended by pid on drop.
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "outside\n").unwrap();
    let outside = Child(
        common::netns::in_ns(net.outside())
            .args(["busybox", "httpd", "-f", "-p", &format!("{OUTSIDE}.1:9000"), "-h"])
            .arg(www.path())
            .spawn()
            .unwrap(),
    );

    let get = |ip: &str, port: u16| format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} {port}");
    for i in 1..=4 {
        let pod = format!("echo{i}");
        for j in (1..=4).filter(|j| *j != i) {
            let ip = &ips[j - 1];
            let tcp = net.wait_for(30, &format!("TCP from echo{i} to echo{j} at {ip}"), || {
                net.exec(i, &pod, &get(ip, 8080)).ok().filter(|o| o.contains(&format!("echo{j}")))
            });
            assert!(tcp.contains("200 OK"), "{tcp}");
            let udp = net.exec(i, &pod, &format!("udpecho {ip} 9000 from-{i}")).unwrap_or_else(|e| {
                panic!(
                    "UDP from echo{i} to echo{j} at {ip}: {e}\nroutes on h{i}:\n{}",
                    run("ip", &["-n", &net.host(i).ns, "route"])
                )
            });
            assert_eq!(udp.trim(), format!("echo{j} from-{i}"));
        }
        let out = net.wait_for(30, &format!("echo{i} reaches the outside"), || {
            net.exec(i, &pod, &get(&format!("{OUTSIDE}.1"), 9000))
                .ok()
                .filter(|o| o.contains("outside"))
        });
        assert!(out.contains("200 OK"), "{out}");
    }
    drop(outside);
}

/// A child process, killed and reaped on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

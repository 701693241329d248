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

//! Test hosts made of network namespaces on one bridge, each running the real
//! `shoal` binary with its own data dir. Hosts can be killed, cut off from
//! the bridge (a silent black hole) and healed. Every namespace, link,
//! process and data dir is removed on drop, on failure too.

use super::BIN;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Subnet of every harness; each harness has its own bridge in its own namespace.
pub const NET: &str = "10.88.0";
/// The far link of [`Net::routed`], behind the router.
pub const FAR: &str = "10.89.0";
/// The outside of [`Net::routed`].
pub const OUTSIDE: &str = "10.90.0";
pub const PORT: u16 = 4740;

pub struct Host {
    pub ns: String,
    pub ip: String,
    pub dir: PathBuf,
    pub agent: Option<Child>,
}

pub struct Net {
    pub id: String,
    core: String,
    pub hosts: Vec<Host>,
    /// The join token `cluster` made (10 minutes).
    pub token: String,
    /// Extra `shoal agent` arguments for every host.
    pub agent_args: Vec<String>,
    /// Namespaces that are not hosts (the outside), deleted on drop.
    pub extra: Vec<String>,
    /// Servers a test started in them, ended on drop.
    servers: Vec<Child>,
}

/// A command run in network namespace `ns` only. Unlike `ip netns exec`,
/// nsenter leaves /sys alone, so the agent still sees the host's cgroups.
pub fn in_ns(ns: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{ns}"));
    c
}

/// dnsmasq in namespace `ns` answering on `listen` only, in the
/// foreground, reading no file of the host's: callers add what it serves.
pub fn dnsmasq(ns: &str, listen: &str) -> Command {
    let mut cmd = in_ns(ns);
    cmd.args([
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--user=root",
        "--pid-file",
    ])
    .arg(format!("--listen-address={listen}"));
    cmd
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (iproute2)");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Net {
    /// `n` hosts, `NET.1` to `NET.n`.
    pub fn new(n: usize) -> Net {
        super::require_root();
        let id = format!("shoal{}n{}", std::process::id() % 100_000, SEQ.fetch_add(1, Ordering::SeqCst));
        let core = format!("{id}-core");
        let mut net = Net {
            id: id.clone(),
            core: core.clone(),
            hosts: Vec::new(),
            token: String::new(),
            // Autopilot's figures shortened so voter changes fit a test;
            // snapshots every 100 entries, so a late joiner is sent one.
            agent_args: [
                "--voter-grace-secs",
                "4",
                "--voter-stabilize-secs",
                "2",
                "--raft-snapshot-every",
                "100",
            ]
            .map(String::from)
            .to_vec(),
            extra: Vec::new(),
            servers: Vec::new(),
        };
        ip(&["netns", "add", &core]);
        ip(&["-n", &core, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &core,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ]);
        ip(&["-n", &core, "link", "set", "br0", "up"]);
        for i in 1..=n {
            net.add_near_host(i);
        }
        net
    }

    /// Host `i` at `addr`/24: its namespace, and a veth pair whose end
    /// `port` is in the core namespace (down) and whose other end is the
    /// host's `eth0` with the address. Returns the namespace and the port.
    fn add_host(&mut self, i: usize, addr: &str, port: &str) -> (String, String) {
        let ns = format!("{}-h{i}", self.id);
        let dir = PathBuf::from(format!("/tmp/shoal-it-{}-h{i}", self.id));
        let _ = std::fs::remove_dir_all(&dir);
        // Pushed before it is built, so a failure half-way is still cleaned up.
        self.hosts.push(Host {
            ns: ns.clone(),
            ip: addr.to_string(),
            dir,
            agent: None,
        });
        ip(&["netns", "add", &ns]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n", &self.core, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip(&["-n", &self.core, "link", "set", port, "up"]);
        ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        (ns, port.to_string())
    }

    /// Host `i` at `NET.i` on the bridge; returns its namespace.
    fn add_near_host(&mut self, i: usize) -> String {
        let (ns, port) = self.add_host(i, &format!("{NET}.{i}"), &format!("p{i}"));
        ip(&["-n", &self.core, "link", "set", &port, "master", "br0"]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ns
    }

    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i - 1]
    }

    pub fn addr(&self, i: usize) -> String {
        format!("{}:{PORT}", self.host(i).ip)
    }

    pub fn admin_conf(&self) -> PathBuf {
        self.host(1).dir.join("admin.conf")
    }

    /// Runs `shoal ARGS` inside host `i` with the admin credentials.
    pub fn run(&self, i: usize, args: &[&str]) -> Output {
        in_ns(&self.host(i).ns)
            .arg(BIN)
            .args(args)
            .env("SHOAL_CONFIG", self.admin_conf())
            .env("SHOAL_LOG", "warn")
            .output()
            .expect("run shoal in a namespace")
    }

    pub fn ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.run(i, args);
        assert!(
            out.status.success(),
            "shoal {args:?} on host {i} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `--data-dir`, `--name` and `--listen` of host `i`.
    fn node_args(&self, i: usize) -> Vec<String> {
        let dir = self.host(i).dir.to_str().unwrap().to_string();
        ["--data-dir", &dir, "--name", &format!("h{i}"), "--listen", &self.addr(i)]
            .map(String::from)
            .to_vec()
    }

    fn ok_owned(&self, i: usize, args: Vec<String>) -> String {
        self.ok(i, &args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `shoal init` on host `i` (the first node).
    pub fn init(&self, i: usize) {
        let mut args = vec!["init".to_string()];
        args.extend(self.node_args(i));
        self.ok_owned(i, args);
    }

    /// `shoal join` from host `i` to host `via`, in zone `lab` with label `rack=r<i>`.
    pub fn join(&self, i: usize, via: usize, token: &str) {
        let mut args = ["join", &self.addr(via), "--token", token].map(String::from).to_vec();
        args.extend(self.node_args(i));
        args.extend(["--zone", "lab", "--label", &format!("rack=r{i}")].map(String::from));
        self.ok_owned(i, args);
    }

    /// Starts `shoal agent` in host `i` (nsenter execs it, so the child pid is the agent's).
    pub fn start_agent(&mut self, i: usize) {
        let h = &self.hosts[i - 1];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(h.dir.with_extension("log"))
            .unwrap();
        let child = in_ns(&h.ns)
            .args([BIN, "agent", "--data-dir", h.dir.to_str().unwrap()])
            // No image GC: a full CI disk must not take a test's images.
            .args(["--image-gc-high-threshold", "100"])
            .args(&self.agent_args)
            .env("SHOAL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn agent");
        self.hosts[i - 1].agent = Some(child);
    }

    /// SIGKILL host `i`'s agent.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.hosts[i - 1].agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for host `i`'s agent to exit on its own.
    pub fn wait_exit(&mut self, i: usize, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(c) = self.hosts[i - 1].agent.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    self.hosts[i - 1].agent = None;
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Cuts host `i` off: its bridge port leaves the bridge, so frames vanish silently.
    pub fn partition(&self, i: usize) {
        ip(&["-n", &self.core, "link", "set", &format!("p{i}"), "nomaster"]);
    }

    pub fn heal(&self, i: usize) {
        ip(&["-n", &self.core, "link", "set", &format!("p{i}"), "master", "br0"]);
    }

    /// Node name → status, as host `viewer` sees the cluster (empty if it does not answer).
    pub fn view(&self, viewer: usize) -> Vec<(String, String)> {
        self.node_field(viewer, "status")
    }

    /// Node name → one field of `get nodes -o json` as host `viewer` sees it.
    fn node_field(&self, viewer: usize, field: &str) -> Vec<(String, String)> {
        let out = self.run(viewer, &["get", "nodes", "-o", "json", "--server", &self.addr(viewer)]);
        if !out.status.success() {
            return Vec::new();
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|n| {
                        (
                            n["name"].as_str().unwrap_or("").to_string(),
                            n[field].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Polls until `pred(viewer, view)` holds for every viewer, or panics after `secs`.
    pub fn wait_views(&self, viewers: &[usize], secs: u64, what: &str, pred: impl Fn(usize, &[(String, String)]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let views: Vec<_> = viewers.iter().map(|v| (*v, self.view(*v))).collect();
            if views.iter().all(|(v, view)| pred(*v, view)) {
                return;
            }
            if Instant::now() > deadline {
                panic!("{what}: not reached in {secs} s; views: {views:?}\nlogs:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn logs(&self) -> String {
        self.hosts
            .iter()
            .map(|h| {
                format!(
                    "--- {}\n{}",
                    h.ns,
                    std::fs::read_to_string(h.dir.with_extension("log")).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Net {
    /// Imports `images/out/<tar>` on host `i`.
    pub fn import(&self, i: usize, tar: &str) {
        let tar = super::images_dir().join(tar);
        self.ok(i, &["image", "import", tar.to_str().unwrap(), "--server", &self.addr(i)]);
    }

    /// Imports the test busybox image on host `i`.
    pub fn import_busybox(&self, i: usize) {
        let tar = super::images_dir().join("busybox.tar");
        self.ok(i, &["image", "import", tar.to_str().unwrap(), "--server", &self.addr(i)]);
    }

    /// `shoal apply -f -` of `yaml` through host `i`.
    pub fn apply(&self, i: usize, yaml: &str) -> Output {
        self.client().apply(i, yaml)
    }

    /// A handle that applies through any host, for another thread.
    pub fn client(&self) -> NetClient {
        NetClient {
            hosts: self.hosts.iter().map(|h| (h.ns.clone(), format!("{}:{PORT}", h.ip))).collect(),
            conf: self.admin_conf(),
        }
    }

    /// Applies `yaml` through host `i`; panics with the error if it fails.
    pub fn apply_ok(&self, i: usize, yaml: &str) {
        let out = self.apply(i, yaml);
        assert!(out.status.success(), "apply via h{i}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Runs `sh -c SCRIPT` in pod `pod` (default namespace) through host
    /// `i`, which must run it; its stdout, or the failure with stderr.
    pub fn exec(&self, i: usize, pod: &str, script: &str) -> Result<String, String> {
        let addr = self.addr(i);
        let out = self.run(i, &["exec", pod, "--server", &addr, "--", "sh", "-c", script]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// `get pods -o json` on host `i` (from its replica; `consistent` asks the leader first).
    pub fn pods(&self, i: usize, consistent: bool) -> Option<Vec<serde_json::Value>> {
        let addr = self.addr(i);
        let mut args = vec!["get", "pods", "-A", "-o", "json", "--server", &addr];
        if consistent {
            args.push("--consistent");
        }
        let out = self.run(i, &args);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Pod name → (node, STATUS-like phase) as host `i` sees it.
    pub fn placements(&self, i: usize) -> Option<Vec<(String, String, String)>> {
        let pods = self.pods(i, false)?;
        let mut v: Vec<_> = pods
            .iter()
            .map(|p| {
                (
                    p["pod"]["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    p["status"]["nodeName"].as_str().unwrap_or("").to_string(),
                    p["status"]["phase"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        v.sort();
        Some(v)
    }

    /// Node name → Raft role as host `viewer` sees it.
    pub fn roles(&self, viewer: usize) -> Vec<(String, String)> {
        self.node_field(viewer, "role")
    }

    /// The leader's host number, as host `viewer` sees it.
    pub fn leader(&self, viewer: usize) -> Option<usize> {
        self.roles(viewer)
            .iter()
            .find(|(_, r)| r == "leader")
            .and_then(|(n, _)| n.strip_prefix('h')?.parse().ok())
    }

    /// Polls `f` every 200 ms until it returns `Some`, or panics after `secs` with the logs.
    pub fn wait_for<T>(&self, secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(t) = f() {
                return t;
            }
            if Instant::now() > deadline {
                panic!("{what}: not reached in {secs} s\nlogs:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills host `i`'s shims and containers, as a reboot would.
    pub fn kill_containers(&self, i: usize) {
        super::kill_containers(&self.host(i).dir);
    }

    /// A cluster of `n` hosts: h1 inits, the others join through h1, every
    /// agent runs, every node has the busybox image, and h1 leads with
    /// min(n, 3 or 5) voters.
    pub fn cluster(n: usize) -> Net {
        Net::cluster_of(n, n)
    }

    /// As [`Net::cluster`] with `n` members among `hosts` hosts; the rest
    /// are left for the test to join.
    pub fn cluster_of(hosts: usize, n: usize) -> Net {
        Net::form(Net::new(hosts), n)
    }

    /// `near` hosts on the bridge and `far` hosts on `FAR.0/24` behind a
    /// router (the core namespace routes between the bridge, at
    /// `NET.254`, and the far link, at `FAR.254`), plus an outside
    /// namespace at `OUTSIDE.1` standing in for the internet: it routes
    /// back to node addresses only, so pods reach it through masquerade or
    /// not at all. All hosts form one cluster.
    pub fn routed(near: usize, far: usize) -> Net {
        Net::routed_with_spare(near, far, 0)
    }

    /// As [`Net::routed`], with `spare` more hosts on the bridge after the
    /// far ones, left out of the cluster for the test to join.
    pub fn routed_with_spare(near: usize, far: usize, spare: usize) -> Net {
        let mut net = Net::new(near);
        let core = net.core.clone();
        ip(&["-n", &core, "addr", "add", &format!("{NET}.254/24"), "dev", "br0"]);
        let fwd = in_ns(&core)
            .args(["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])
            .status()
            .expect("forwarding on in the router");
        assert!(fwd.success());
        for h in &net.hosts {
            ip(&["-n", &h.ns, "route", "add", "default", "via", &format!("{NET}.254")]);
        }
        for i in near + 1..=near + far {
            let (ns, port) = net.add_host(i, &format!("{FAR}.{i}"), &format!("f{i}"));
            ip(&["-n", &core, "addr", "add", &format!("{FAR}.254/24"), "dev", &port]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "route", "add", "default", "via", &format!("{FAR}.254")]);
        }
        let out = format!("{}-out", net.id);
        net.extra.push(out.clone());
        ip(&["netns", "add", &out]);
        ip(&["-n", &out, "link", "set", "lo", "up"]);
        ip(&[
            "-n", &core, "link", "add", "o1", "type", "veth", "peer", "name", "eth0", "netns", &out,
        ]);
        ip(&["-n", &core, "addr", "add", &format!("{OUTSIDE}.254/24"), "dev", "o1"]);
        ip(&["-n", &core, "link", "set", "o1", "up"]);
        ip(&["-n", &out, "addr", "add", &format!("{OUTSIDE}.1/24"), "dev", "eth0"]);
        ip(&["-n", &out, "link", "set", "eth0", "up"]);
        ip(&["-n", &out, "route", "add", &format!("{NET}.0/24"), "via", &format!("{OUTSIDE}.254")]);
        ip(&["-n", &out, "route", "add", &format!("{FAR}.0/24"), "via", &format!("{OUTSIDE}.254")]);
        // The nodes' own resolver is the outside's (a test may serve DNS
        // there); pods with dnsPolicy Default get it, the cluster DNS
        // forwards to it.
        std::fs::write(net.resolv_conf(), format!("nameserver {OUTSIDE}.1\noptions timeout:1\n")).unwrap();
        let flag = ["--resolv-conf".to_string(), net.resolv_conf().display().to_string()];
        net.agent_args.extend(flag);
        let n = net.hosts.len();
        for i in n + 1..=n + spare {
            let ns = net.add_near_host(i);
            ip(&["-n", &ns, "route", "add", "default", "via", &format!("{NET}.254")]);
        }
        Net::form(net, n)
    }

    /// Node name → its pod subnet, as host `viewer` sees the cluster.
    pub fn pod_cidrs(&self, viewer: usize) -> Vec<(String, String)> {
        self.node_field(viewer, "podCIDR")
    }

    /// The nodes' resolv.conf (`--resolv-conf`) in [`Net::routed`].
    pub fn resolv_conf(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/shoal-it-{}-resolv.conf", self.id))
    }

    /// Serves DNS in the outside namespace of [`Net::routed`] at
    /// `OUTSIDE.1`: `name` → `ip`, nothing else (dnsmasq, ended with the
    /// namespace).
    pub fn serve_outside_dns(&mut self, name: &str, ip: &str) {
        let child = dnsmasq(self.outside(), &format!("{OUTSIDE}.1"))
            .arg(format!("--address=/{name}/{ip}"))
            .stdin(Stdio::null())
            .spawn()
            .expect("run dnsmasq (scripts/deps.sh installs dnsmasq-base)");
        self.servers.push(child);
    }

    /// The outside namespace of [`Net::routed`].
    pub fn outside(&self) -> &str {
        &self.extra[0]
    }

    /// Forms a cluster of the first `n` hosts: `init` on host 1, the rest join.
    fn form(mut net: Net, n: usize) -> Net {
        net.init(1);
        net.start_agent(1);
        net.wait_for(20, "first node leads", || (net.leader(1) == Some(1)).then_some(()));
        let token = net.ok(1, &["token", "create", "--ttl", "10m"]).trim().to_string();
        for i in 2..=n {
            net.join(i, 1, &token);
            net.start_agent(i);
        }
        for i in 1..=n {
            net.import_busybox(i);
        }
        net.token = token;
        let voters = match n {
            0..=2 => 1,
            3..=6 => 3,
            _ => 5,
        };
        net.wait_for(40, "voters chosen", || {
            let roles = net.roles(1);
            let v = roles.iter().filter(|(_, r)| r == "voter" || r == "leader").count();
            (roles.len() == n && v == voters && roles.iter().all(|(_, r)| r != "-")).then_some(())
        });
        net
    }
}

/// A `shoal hollow` process; ended, and its log removed, on drop.
pub struct Hollow(Child, PathBuf);

impl Drop for Hollow {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::env::var_os("SHOAL_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_file(&self.1);
        }
    }
}

impl Net {
    /// Starts `count` hollow nodes in host `i` that join host 1 with `token`.
    pub fn spawn_hollow(&self, i: usize, count: usize, token: &str) -> Hollow {
        let h = self.host(i);
        let log_path = h.dir.with_extension("hollow.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let state = h.dir.join("hollow");
        let (count, expect) = (count.to_string(), (count + 1).to_string());
        let child = in_ns(&h.ns)
            .args([BIN, "hollow", "--token", token, "--count", &count, "--bind", &h.ip])
            .args(["--base-port", "5000", "--join", &self.addr(1), "--expect", &expect])
            .args([
                "--timeout-secs",
                "240",
                "--stay-secs",
                "600",
                "--state-dir",
                state.to_str().unwrap(),
            ])
            .env("SHOAL_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Hollow(child, log_path)
    }
}

impl Net {
    /// A first node in host 1 and `count` hollow nodes in host 2 that joined
    /// Raft as learners and reported their capacity; the default snapshot
    /// interval (a hundred learners, each sent a snapshot every hundred
    /// entries, would measure only that).
    pub fn hollow_cluster(count: usize, secs: u64) -> (Net, Hollow) {
        let mut net = Net::new(2);
        net.agent_args.clear();
        net.init(1);
        net.start_agent(1);
        net.wait_for(20, "first node leads", || (net.leader(1) == Some(1)).then_some(()));
        let token = net.ok(1, &["token", "create", "--ttl", "10m"]).trim().to_string();
        let hollow = net.spawn_hollow(2, count, &token);
        net.wait_for(secs, &format!("{count} hollow learners that reported their capacity"), || {
            let out = net.run(1, &["get", "nodes", "-o", "json", "--server", &net.addr(1)]);
            let nodes: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
            let ready = nodes.iter().filter(|n| {
                n["name"].as_str().is_some_and(|x| x.starts_with("hollow-")) && n["role"] == "learner" && n["cpus"].as_u64() > Some(0)
            });
            (ready.count() == count).then_some(())
        });
        (net, hollow)
    }
}

/// Applies through the hosts of a [`Net`] without borrowing it.
pub struct NetClient {
    hosts: Vec<(String, String)>,
    conf: PathBuf,
}

impl NetClient {
    /// `shoal apply -f -` of `yaml` through host `i`.
    pub fn apply(&self, i: usize, yaml: &str) -> Output {
        use std::io::Write;
        let (ns, addr) = &self.hosts[i - 1];
        let mut child = in_ns(ns)
            .args([BIN, "apply", "-f", "-", "--server", addr])
            .env("SHOAL_CONFIG", &self.conf)
            .env("SHOAL_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run shoal apply");
        child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }
}

impl NetClient {
    /// `shoal ARGS --server <host i>` inside host `i`.
    pub fn run(&self, i: usize, args: &[&str]) -> Output {
        let (ns, addr) = &self.hosts[i - 1];
        in_ns(ns)
            .arg(BIN)
            .args(args)
            .args(["--server", addr])
            .env("SHOAL_CONFIG", &self.conf)
            .env("SHOAL_LOG", "warn")
            .output()
            .expect("run shoal in a namespace")
    }

    /// `get pods -A -o json` from host `i`'s replica.
    pub fn pods(&self, i: usize) -> Option<Vec<serde_json::Value>> {
        let out = self.run(i, &["get", "pods", "-A", "-o", "json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }
}

/// Status of `name` in a view.
pub fn status_of<'a>(view: &'a [(String, String)], name: &str) -> Option<&'a str> {
    view.iter().find(|(n, _)| n == name).map(|(_, s)| s.as_str())
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            if let Some(mut c) = h.agent.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for h in &self.hosts {
            // Anything still in the namespace was started by this harness.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &h.ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &h.ns]).status();
            // Containers live in their pods' namespaces: found by cgroup.
            super::remove_node_leftovers(&h.dir);
        }
        for c in &mut self.servers {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.extra {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_file(self.resolv_conf());
        let _ = Command::new("ip").args(["netns", "del", &self.core]).status();
    }
}

//! A real `shoal` agent in a unique data dir on a loopback port, driven
//! through the real CLI binary, and removed again (processes, mounts,
//! cgroups, files) even when the test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

pub const BIN: &str = env!("CARGO_BIN_EXE_shoal");

pub fn images_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/out");
    if !["busybox.tar", "web-v2.tar", "fluentd.tar"].iter().all(|t| dir.join(t).exists()) {
        let st = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("images/build.sh"))
            .status()
            .expect("run images/build.sh");
        assert!(st.success(), "images/build.sh failed");
    }
    dir
}

pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "these tests start real containers and must run as root"
    );
}

pub struct TestNode {
    pub dir: PathBuf,
    pub port: u16,
    pub agent: Option<Child>,
    pub prefix: String,
    /// A pod CIDR of its own, so test nodes side by side in the host's
    /// namespace do not put one subnet on two bridges.
    pub cluster_cidr: String,
    /// More agent flags.
    pub extra_args: Vec<String>,
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl TestNode {
    /// Starts an agent with a short back-off and imports the project's images.
    pub fn start(label: &str) -> TestNode {
        let node = TestNode::start_bare(label);
        let images = images_dir();
        for i in ["busybox.tar", "hello-http.tar"] {
            node.ok(&["image", "import", images.join(i).to_str().unwrap()]);
        }
        node
    }

    /// Starts an agent without images (cluster tests).
    pub fn start_bare(label: &str) -> TestNode {
        TestNode::start_with(label, &[])
    }

    /// Starts an agent without images, with more agent flags.
    pub fn start_with(label: &str, extra: &[&str]) -> TestNode {
        require_root();
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = PathBuf::from(format!("/tmp/shoal-it-{}-{label}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let prefix = shoal::runtime::layout::NodePaths::new(&dir).prefix;
        let mut node = TestNode {
            dir,
            port: free_udp_port(),
            agent: None,
            prefix,
            cluster_cidr: format!("10.{}.0.0/16", 100 + (std::process::id() + n) % 100),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        node.start_agent();
        node
    }

    pub fn start_agent(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .unwrap();
        let child = Command::new(BIN)
            .args([
                "up",
                "--data-dir",
                self.dir.to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--name",
                "testnode",
                "--cluster-cidr",
                &self.cluster_cidr,
            ])
            .args(["--backoff-base-ms", "500", "--backoff-max-ms", "8000"])
            .args(&self.extra_args)
            // Image GC only where a test asks for it: a full CI disk must
            // not take the images a test imported.
            .args(if self.extra_args.iter().any(|a| a == "--image-gc-high-threshold") {
                &[][..]
            } else {
                &["--image-gc-high-threshold", "100"][..]
            })
            .env("SHOAL_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn agent");
        self.agent = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.dir.join("admin.conf").exists() && self.cli(&["get", "pods"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("agent did not come up; log: {}", self.log());
    }

    /// SIGKILL the agent (containers and shims live on).
    pub fn kill_agent(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default()
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("SHOAL_CONFIG", self.dir.join("admin.conf"))
            .env("SHOAL_LOG", "warn")
            .output()
            .expect("run shoal")
    }

    pub fn cli_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(BIN)
            .args(args)
            .env("SHOAL_CONFIG", self.dir.join("admin.conf"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs the CLI and insists on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "shoal {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn apply(&self, yaml: &str) -> Output {
        self.cli_stdin(&["apply", "-f", "-"], yaml)
    }

    pub fn pod(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["get", "pods", name, "-o", "json"])).unwrap()
    }

    /// Polls `f` on the pod's JSON until it holds or `secs` pass.
    pub fn wait_pod(&self, name: &str, secs: u64, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let p = self.pod(name);
            if f(&p) {
                return p;
            }
            if Instant::now() > deadline {
                panic!(
                    "pod {name}: {what} not reached in {secs}s: {}\nagent log:\n{}",
                    serde_json::to_string_pretty(&p["status"]).unwrap(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_running(&self, name: &str) -> serde_json::Value {
        self.wait_pod(name, 30, "all containers running", |p| {
            let cs = p["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
            !cs.is_empty() && cs.iter().all(|c| c["ready"] == true)
        })
    }

    pub fn wait_gone(&self, name: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.cli(&["get", "pods", name]).status.success() {
            assert!(Instant::now() < deadline, "pod {name} not gone after {secs}s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Pids of every process in this node's cgroups (its containers).
    pub fn container_pids(&self) -> Vec<i32> {
        container_pids(&self.prefix)
    }

    /// Shim pids, found by their bundle paths in our data dir.
    pub fn shim_pids(&self) -> Vec<i32> {
        shim_pids(&self.dir)
    }
}

/// Pids of every process in the cgroups named `prefix` (a node's containers).
pub fn container_pids(prefix: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for root in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        collect_pids(&Path::new(root).join(prefix), &mut pids);
    }
    pids.sort();
    pids.dedup();
    pids
}

/// Shim pids of the node with data dir `dir`, found by their bundle paths.
pub fn shim_pids(dir: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(" shim ") && cmd.contains(dir.to_str().unwrap()) {
            pids.push(pid);
        }
    }
    pids
}

/// Kills the shims and containers of the node with data dir `dir` (what a
/// reboot would do), leaving its files.
pub fn kill_containers(dir: &Path) {
    let prefix = shoal::runtime::layout::NodePaths::new(dir).prefix;
    for pid in shim_pids(dir).into_iter().chain(container_pids(&prefix)) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Unmounts every mount below `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let d = dir.to_str().unwrap().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut ours: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&d))
        .collect();
    ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in ours {
        let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Removes everything a node with data dir `dir` left on the machine:
/// shims, containers, mounts under `dir`, cgroups, and (unless
/// SHOAL_KEEP_TEST_DIRS is set) the dir itself.
pub fn remove_node_leftovers(dir: &Path) {
    kill_containers(dir);
    std::thread::sleep(Duration::from_millis(200));
    let prefix = shoal::runtime::layout::NodePaths::new(dir).prefix;
    unmount_under(dir);
    // The pods' veths went with their namespaces; the bridge, the VXLAN
    // device and the nftables table are left.
    let names = shoal::net::Names::new(&prefix);
    for link in [&names.bridge, &names.vxlan] {
        let _ = Command::new("ip")
            .args(["link", "del", link])
            .stderr(std::process::Stdio::null())
            .status();
    }
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", &names.bridge])
        .stderr(std::process::Stdio::null())
        .status();
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            remove_cgroups(&e.path().join(&prefix));
        }
    }
    remove_cgroups(&Path::new("/sys/fs/cgroup").join(&prefix));
    if std::env::var_os("SHOAL_KEEP_TEST_DIRS").is_none() {
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_file(dir.with_extension("log"));
    }
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_pids(&e.path(), out);
            }
        }
    }
}

fn remove_cgroups(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroups(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill_agent();
        // Only what this node started: shims by their bundle path, containers by our cgroups.
        remove_node_leftovers(&self.dir);
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
pub mod netns;
pub mod registry;
pub mod workload;

//! Real pods through the real binary: run as root, real libcontainer containers.

mod common;
use common::*;
use std::time::Duration;

fn pid_of(p: &serde_json::Value, i: usize) -> i64 {
    p["status"]["containerStatuses"][i]["pid"].as_i64().unwrap_or(0)
}

#[test]
fn apply_runs_logs_and_deletes_a_pod() {
    let node = TestNode::start("basic");
    let out = node.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: hello, labels: {app: hello}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: localhost/busybox\n    command: [sh, -c, 'echo hello from shoal; exec sleep 600']\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "pod/hello created");
    let p = node.wait_running("hello");
    assert_eq!(p["status"]["phase"], "Running");
    let pid = pid_of(&p, 0);
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "container pid {pid} not alive"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !node.ok(&["logs", "hello"]).contains("hello from shoal") {
        assert!(std::time::Instant::now() < deadline, "log never showed the output");
        std::thread::sleep(Duration::from_millis(100));
    }
    let table = node.ok(&["get", "pods"]);
    assert!(table.contains("hello") && table.contains("Running"), "{table}");
    // Applying the same manifest again changes nothing.
    let again = node.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: hello, labels: {app: hello}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: localhost/busybox\n    command: [sh, -c, 'echo hello from shoal; exec sleep 600']\n");
    assert_eq!(stdout(&again).trim(), "pod/hello unchanged");
    assert!(node.ok(&["delete", "pod", "hello"]).contains("pod/hello deleted"));
    node.wait_gone("hello", 15);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
    );
    assert!(node.container_pids().is_empty(), "processes left in the pod's cgroups");
    let pods = node.dir.join("pods");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::fs::read_dir(&pods).map(|d| d.count()).unwrap_or(0) > 0 {
        assert!(std::time::Instant::now() < deadline, "pod directory left behind");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(pods.to_str().unwrap()), "mounts left behind");
}

#[test]
fn two_containers_of_a_pod_share_localhost() {
    let node = TestNode::start("localhost");
    let out = node.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: pair}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: localhost/hello-http
  - name: client
    image: localhost/busybox
    command: [sh, -c, 'while true; do wget -q -O- http://127.0.0.1:8080/ && sleep 600; sleep 0.2; done']
",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    node.wait_running("pair");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let logs = node.ok(&["logs", "pair", "-c", "client"]);
        if logs.contains("Hello from a Shoal pod") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "client never reached the web container over localhost: {logs:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Each container its own pid namespace, one network namespace.
    let p = node.pod("pair");
    let (a, b) = (pid_of(&p, 0), pid_of(&p, 1));
    let net = |pid: i64| std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let pidns = |pid: i64| std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    assert_eq!(net(a), net(b));
    assert_ne!(pidns(a), pidns(b));
    assert_ne!(net(a), std::fs::read_link("/proc/self/ns/net").unwrap());
}

#[test]
fn env_args_and_working_dir_reach_the_process() {
    let node = TestNode::start("env");
    let out = node.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: envp}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: localhost/busybox
    command: [sh, -c]
    args: ['echo \"GREETING=$GREETING ARG=$1 PWD=$(pwd) REF=$REF\"', 'argzero', '$(GREETING)-arg']
    workingDir: /tmp
    env:
    - {name: GREETING, value: hi}
    - {name: REF, value: '$(GREETING)-there'}
",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    node.wait_pod("envp", 20, "Succeeded", |p| p["status"]["phase"] == "Succeeded");
    let logs = node.ok(&["logs", "envp"]);
    assert!(logs.contains("GREETING=hi ARG=hi-arg PWD=/tmp REF=hi-there"), "{logs:?}");
}

#[test]
fn memory_limit_is_enforced_and_reported_oomkilled() {
    let node = TestNode::start("oom");
    let out = node.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: localhost/busybox
    command: [sh, -c, 'x=$(head -c 200000000 /dev/zero | tr \"\\\\000\" a); echo survived']
    resources: {limits: {memory: 32Mi}, requests: {memory: 16Mi, cpu: 100m}}
",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let p = node.wait_pod("hog", 60, "terminated", |p| {
        p["status"]["phase"] == "Failed" || p["status"]["phase"] == "Succeeded"
    });
    let state = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(state["reason"], "OOMKilled", "{p:#}");
    assert_eq!(state["exitCode"], 137);
    assert!(!node.ok(&["logs", "hog"]).contains("survived"));
}

#[test]
fn failing_container_restarts_with_growing_back_off() {
    let node = TestNode::start("backoff");
    let out = node.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: crash}\nspec:\n  containers:\n  - name: c\n    image: localhost/busybox\n    command: [sh, -c, 'cut -d\" \" -f1 /proc/uptime; exit 2']\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Base 500 ms: restarts after 0.5, 1, 2, 4 s.
    let p = node.wait_pod("crash", 30, "4 restarts", |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_u64().unwrap_or(0) >= 4
    });
    let c = &p["status"]["containerStatuses"][0];
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 2, "{c:#}");
    std::thread::sleep(Duration::from_millis(500));
    let starts: Vec<f64> = node.ok(&["logs", "crash"]).lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert!(starts.len() >= 5, "{starts:?}");
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // Each gap is at least the back-off (0.5, 1, 2, 4 s) and larger than the last.
    for (i, g) in gaps.iter().take(4).enumerate() {
        assert!(
            *g >= 0.5 * (1u32 << i) as f64 * 0.9,
            "restart {} came before its back-off: gaps {gaps:?}",
            i + 1
        );
    }
    for w in gaps.windows(2).take(3) {
        assert!(w[1] > w[0], "back-off did not grow: gaps {gaps:?}");
    }
    let word = node.ok(&["get", "pods"]);
    assert!(
        word.contains("CrashLoopBackOff") || word.contains("Running") || word.contains("Error"),
        "{word}"
    );
}

#[test]
fn agent_kill9_readopts_running_containers() {
    let mut node = TestNode::start("adopt");
    let out = node.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: keep}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: localhost/busybox\n    command: [sleep, '600']\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let before = node.wait_running("keep");
    let pid = pid_of(&before, 0);
    node.kill_agent();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "container died with the agent"
    );
    node.start_agent();
    let after = node.wait_running("keep");
    assert_eq!(pid_of(&after, 0), pid, "container was restarted, not re-adopted");
    assert_eq!(after["status"]["containerStatuses"][0]["restartCount"], 0);
    assert!(node.log().contains("re-adopted"));
    // Still supervised: killing the container is noticed and it restarts.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let p = node.wait_pod("keep", 20, "restarted", |p| {
        p["status"]["containerStatuses"][0]["restartCount"] == 1 && p["status"]["containerStatuses"][0]["ready"] == true
    });
    assert_ne!(pid_of(&p, 0), pid);
}

#[test]
fn after_a_reboot_pods_come_back_from_the_store() {
    let mut node = TestNode::start("reboot");
    let out = node.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: back}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: localhost/busybox\n    command: [sleep, '600']\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = pid_of(&node.wait_running("back"), 0);
    // A reboot: the agent, the shims and the containers all die, mounts vanish.
    node.kill_agent();
    for s in node.shim_pids() {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(s), nix::sys::signal::Signal::SIGKILL).unwrap();
    }
    for c in node.container_pids() {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c), nix::sys::signal::Signal::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(300));
    let dir = node.dir.to_str().unwrap().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for m in mounts.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&dir)) {
        let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
    }
    node.start_agent();
    // The replica shows the last status reported before the reboot until
    // the restarted agent reports the new start.
    let p = node.wait_pod("back", 20, "started again", |p| {
        p["status"]["phase"] == "Running" && p["status"]["containerStatuses"][0]["restartCount"] == 1
    });
    assert_ne!(pid_of(&p, 0), pid);
}

#[test]
fn exec_runs_in_the_container_and_returns_its_exit_code() {
    let node = TestNode::start("exec");
    let out = node.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: ex}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: localhost/busybox\n    command: [sh, -c, 'echo marker > /tmp/inside; exec sleep 600']\n    env: [{name: FOO, value: bar}]\n");
    assert!(out.status.success(), "{}", stderr(&out));
    node.wait_running("ex");
    std::thread::sleep(Duration::from_millis(300));
    let r = node.cli(&[
        "exec",
        "ex",
        "--",
        "sh",
        "-c",
        "cat /tmp/inside; echo FOO=$FOO; hostname; echo oops >&2; exit 3",
    ]);
    assert_eq!(r.status.code(), Some(3), "{}", stderr(&r));
    let o = stdout(&r);
    assert!(o.contains("marker") && o.contains("FOO=bar") && o.contains("ex"), "{o:?}");
    assert!(stderr(&r).contains("oops"));
    let missing = node.cli(&["exec", "nope", "--", "true"]);
    assert!(!missing.status.success() && stderr(&missing).contains("not found"));
}

#[test]
fn logs_follow_streams_new_output_until_the_pod_goes() {
    use std::io::{BufRead, BufReader};
    let node = TestNode::start("follow");
    let out = node.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: ticker}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: localhost/busybox\n    command: [sh, -c, 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done']\n");
    assert!(out.status.success(), "{}", stderr(&out));
    node.wait_running("ticker");
    let mut follow = std::process::Command::new(BIN)
        .args(["logs", "-f", "ticker"])
        .env("SHOAL_CONFIG", node.dir.join("admin.conf"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let mut seen = 0;
    for line in lines.by_ref().take(15) {
        let line = line.unwrap();
        let n: u32 = line.trim_start_matches("tick ").parse().unwrap();
        assert!(n > seen, "lines out of order: {n} after {seen}");
        seen = n;
    }
    assert!(seen >= 15, "follow stopped early at {seen}");
    node.ok(&["delete", "pod", "ticker"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(st) = follow.try_wait().unwrap() {
            assert!(st.success());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "logs -f did not end after the pod was deleted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_container_of_a_pod_starts_on_the_first_try() {
    // The containers of a pod start at once and share one sandbox: it must be
    // created once, not by each of them (which failed with `bind
    // /proc/self/ns/net: ENOENT` and a CreateContainerError retry).
    let node = TestNode::start("quad");
    let names = ["a", "b", "c", "d"];
    let mut yaml =
        String::from("apiVersion: v1\nkind: Pod\nmetadata: {name: quad}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n");
    for n in names {
        yaml += &format!("  - name: {n}\n    image: localhost/busybox\n    command: [sleep, '600']\n");
    }
    let out = node.apply(&yaml);
    assert!(out.status.success(), "{}", stderr(&out));
    let p = node.wait_pod("quad", 30, "all containers running", |p| {
        let st = p["status"].to_string();
        assert!(
            !st.contains("CreateContainerError"),
            "a container failed to start: {st}\nagent log:\n{}",
            node.log()
        );
        let cs = p["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
        cs.len() == names.len() && cs.iter().all(|c| c["ready"] == true)
    });
    for (i, n) in names.iter().enumerate() {
        let c = &p["status"]["containerStatuses"][i];
        assert_eq!(c["name"], *n);
        assert_eq!(c["restartCount"], 0, "{c:#}");
        assert!(c.get("lastState").is_none(), "{n} ran before: {c:#}");
    }
    let described = node.ok(&["describe", "pod", "quad"]);
    assert!(!described.contains("CreateContainerError"), "{described}");
    assert!(
        !node.log().contains("did not start"),
        "a container failed to start:\n{}",
        node.log()
    );
    let net = |i: usize| std::fs::read_link(format!("/proc/{}/ns/net", pid_of(&p, i))).unwrap();
    for (i, n) in names.iter().enumerate().skip(1) {
        assert_eq!(net(0), net(i), "container {n} is in another network namespace");
    }
}

/// A data dir for a bare `Runtime`, unmounted and removed even on failure.
struct ScratchRuntime {
    dir: std::path::PathBuf,
    rt: shoal::runtime::Runtime,
}

impl ScratchRuntime {
    fn new(label: &str) -> ScratchRuntime {
        require_root();
        let dir = std::path::PathBuf::from(format!("/tmp/shoal-it-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let paths = shoal::runtime::layout::NodePaths::new(&dir);
        let store = std::sync::Arc::new(shoal::store::Store::open(&paths.db()).unwrap());
        let images = std::sync::Arc::new(shoal::runtime::image::ImageStore::open(&paths.images(), store).unwrap());
        let rt = shoal::runtime::Runtime::new(paths, images, BIN.into());
        ScratchRuntime { dir, rt }
    }

    /// How many mounts sit on `path`.
    fn mounts_on(path: &std::path::Path) -> usize {
        let p = path.display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        mounts.lines().filter(|l| l.split(' ').nth(4) == Some(p.as_str())).count()
    }
}

impl Drop for ScratchRuntime {
    fn drop(&mut self) {
        common::unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_create_sandbox_calls_share_one_sandbox() {
    let s = std::sync::Arc::new(ScratchRuntime::new("sandbox"));
    let pod = shoal::api::parse_pods(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: many}\nspec:\n  containers:\n  - {name: c, image: localhost/busybox}\n",
    )
    .unwrap()
    .remove(0);
    for round in 0..3 {
        let uid = format!("uid-{round}");
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let (s, uid, pod) = (s.clone(), uid.clone(), pod.clone());
                tokio::spawn(async move { s.rt.create_sandbox(&uid, &pod).await })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            if let Err(e) = call.await.unwrap() {
                panic!("round {round}: caller {i} of 8 failed: {e}");
            }
        }
        let ns = s.rt.paths().pod(&uid).join("ns");
        assert!(shoal::runtime::sandbox::is_ready(&ns), "round {round}: sandbox not ready");
        for k in ["net", "ipc", "uts"] {
            assert_eq!(
                ScratchRuntime::mounts_on(&ns.join(k)),
                1,
                "round {round}: {k} namespace mounted more than once"
            );
        }
        // A later caller finds the sandbox and keeps it.
        let net_ns = || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(ns.join("net")).unwrap());
        let first = net_ns();
        s.rt.create_sandbox(&uid, &pod).await.unwrap();
        assert_eq!(first, net_ns(), "round {round}: the sandbox was made again");
        s.rt.delete_pod(&uid, &[]);
        assert!(!shoal::runtime::sandbox::is_ready(&ns));
        assert!(!s.rt.paths().pod(&uid).exists(), "round {round}: pod directory left behind");
    }
}

#[test]
fn a_pod_gets_an_address_of_the_nodes_subnet_that_the_host_reaches_and_keeps_across_an_agent_restart() {
    let mut node = TestNode::start("podip");
    let out = node.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: hello}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: localhost/hello-http\n  - name: env\n    image: localhost/busybox\n    command: [sh, -c, 'echo \"ip=$POD_IP node=$NODE ns=$NS name=$NAME app=$APP host=$HOST\"; exec sleep 600']\n    env:\n    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}\n    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}\n    - {name: NS, valueFrom: {fieldRef: {apiVersion: v1, fieldPath: metadata.namespace}}}\n    - {name: NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n    - {name: APP, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}}\n    - {name: HOST, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let p = node.wait_pod("web", 30, "an address", |p| {
        p["status"]["podIP"].is_string() && p["status"]["phase"] == "Running"
    });
    let ip: std::net::Ipv4Addr = p["status"]["podIP"].as_str().unwrap().parse().unwrap();
    let cidr: ipnet::Ipv4Net = node.cluster_cidr.parse().unwrap();
    assert!(cidr.contains(&ip), "{ip} is not in the cluster CIDR {cidr}");
    assert_ne!(ip.octets()[3], 1, "{ip} is the gateway's address");
    let get = |ip: std::net::Ipv4Addr| -> String {
        use std::io::{Read, Write};
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = std::net::TcpStream::connect_timeout(&(ip, 8080).into(), Duration::from_secs(1)).and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
                let mut body = String::new();
                s.read_to_string(&mut body)?;
                Ok(body)
            });
            match got {
                Ok(b) if b.contains("Hello from a Shoal pod") => return b,
                other => assert!(std::time::Instant::now() < deadline, "no answer from {ip}:8080: {other:?}"),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    get(ip);
    // The downward API: the second container was told its pod's fields.
    let want = format!("ip={ip} node=testnode ns=default name=web app=hello host=127.0.0.1");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !node.ok(&["logs", "web", "-c", "env"]).contains(&want) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?} lacks {want:?}",
            node.ok(&["logs", "web", "-c", "env"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The agent dies and comes back: same address, still reachable, the
    // connection from before still answers.
    use std::io::{Read, Write};
    let mut held = std::net::TcpStream::connect((ip, 8080)).unwrap();
    node.kill_agent();
    node.start_agent();
    held.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    held.read_to_string(&mut body).unwrap();
    assert!(body.contains("Hello from a Shoal pod"), "{body}");
    let p = node.pod("web");
    assert_eq!(p["status"]["podIP"].as_str(), Some(ip.to_string().as_str()));
    get(ip);
    // Deleted: its veth goes.
    let wide = node.ok(&["get", "pods", "-o", "wide"]);
    assert!(wide.contains(&ip.to_string()), "{wide}");
    let uid = p["uid"].as_str().unwrap_or_default().to_string();
    node.ok(&["delete", "pod", "web"]);
    node.wait_gone("web", 15);
    let veth = shoal::net::Names::new(&node.prefix).veth(&uid);
    let links = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(!uid.is_empty() && !links.contains(&veth), "{veth} left behind (uid {uid:?})");
}

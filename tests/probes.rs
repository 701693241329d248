//! Container probes on real containers, through the real binary (as root).
//! `localhost/hello-http` serves /www with busybox httpd on port 8080.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn applied(node: &TestNode, yaml: &str) {
    let out = node.apply(yaml);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn container(p: &serde_json::Value) -> &serde_json::Value {
    &p["status"]["containerStatuses"][0]
}

/// The READY column of `get pods` for one pod.
fn ready_column(node: &TestNode, name: &str) -> String {
    let table = node.ok(&["get", "pods"]);
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("{name} not in {table}"));
    line.split_whitespace().nth(1).unwrap().to_string()
}

/// Watches `name` for `secs`: it must stay Running and not ready.
fn stays_unready(node: &TestNode, name: &str, secs: u64) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        let p = node.pod(name);
        assert!(container(&p)["state"]["running"].is_object(), "{name} not running: {p:#}");
        assert_eq!(container(&p)["ready"], false, "{name} became ready: {p:#}");
        assert!(p["status"].get("readySince").is_none(), "{name}: {p:#}");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(ready_column(node, name), "0/1");
}

fn wait_ready(node: &TestNode, name: &str) -> serde_json::Value {
    node.wait_pod(name, 30, "ready", |p| {
        container(p)["ready"] == true && p["status"]["readySince"].is_u64()
    })
}

#[test]
fn http_get_readiness_gates_ready() {
    let node = TestNode::start("probe-http");
    applied(
        &node,
        "apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: localhost/hello-http
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /index.html, port: http, httpHeaders: [{name: X-Probe, value: shoal}]}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: web-wrong-path}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: localhost/hello-http
    readinessProbe: {httpGet: {path: /nope, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: web-wrong-port}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: localhost/hello-http
    readinessProbe: {httpGet: {path: /, port: 8081}, periodSeconds: 1}
",
    );
    let p = wait_ready(&node, "web");
    assert_eq!(container(&p)["started"], true);
    assert_eq!(ready_column(&node, "web"), "1/1");
    let described = node.ok(&["describe", "pod", "web"]);
    assert!(described.contains("Ready          True"), "{described}");
    assert!(described.contains("Readiness: http-get http://:http/index.html"), "{described}");
    // The wrong ones run but never become ready (both were probed by now).
    for name in ["web-wrong-path", "web-wrong-port"] {
        node.wait_pod(name, 30, "running", |p| container(p)["state"]["running"].is_object());
        stays_unready(&node, name, 3);
        let described = node.ok(&["describe", "pod", name]);
        assert!(described.contains("Ready          False"), "{described}");
    }
    // The probes reached httpd over the pod's loopback, with their paths.
    let logs = node.ok(&["logs", "web"]);
    assert!(logs.contains("127.0.0.1]") && logs.contains("response:200"), "{logs}");
    let logs = node.ok(&["logs", "web-wrong-path"]);
    assert!(logs.contains("response:404"), "{logs}");
}

#[test]
fn tcp_socket_probes_connect_inside_the_pod() {
    let mut node = TestNode::start("probe-tcp");
    applied(
        &node,
        "apiVersion: v1
kind: Pod
metadata: {name: tcp-ok}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: localhost/hello-http
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
    livenessProbe: {tcpSocket: {port: 8080, host: 127.0.0.1}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: tcp-closed}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: localhost/hello-http
    readinessProbe: {tcpSocket: {port: 9999}, periodSeconds: 1}
",
    );
    let ready = wait_ready(&node, "tcp-ok");
    node.wait_pod("tcp-closed", 30, "running", |p| container(p)["state"]["running"].is_object());
    stays_unready(&node, "tcp-closed", 3);
    // The liveness probe kept passing: no restart.
    assert_eq!(container(&node.pod("tcp-ok"))["restartCount"], 0);
    // A restarted agent re-adopts the pod and probes on: still ready, since the same time.
    node.kill_agent();
    node.start_agent();
    std::thread::sleep(Duration::from_secs(3));
    let p = node.pod("tcp-ok");
    assert_eq!(container(&p)["ready"], true, "{p:#}");
    assert_eq!(p["status"]["readySince"], ready["status"]["readySince"], "{p:#}");
    assert_eq!(container(&p)["pid"], container(&ready)["pid"]);
    stays_unready(&node, "tcp-closed", 2);
}

#[test]
fn exec_probes_run_in_the_container_and_time_out() {
    let node = TestNode::start("probe-exec");
    applied(
        &node,
        "apiVersion: v1
kind: Pod
metadata: {name: exec-ok}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/busybox
    command: [sh, -c, 'touch /tmp/healthy; exec sleep 600']
    readinessProbe: {exec: {command: [cat, /tmp/healthy]}, periodSeconds: 1}
    startupProbe: {exec: {command: [cat, /tmp/healthy]}, periodSeconds: 1, failureThreshold: 10}
---
apiVersion: v1
kind: Pod
metadata: {name: exec-slow}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/busybox
    command: [sleep, '600']
    readinessProbe: {exec: {command: [sleep, '30']}, periodSeconds: 1, timeoutSeconds: 1}
",
    );
    let p = wait_ready(&node, "exec-ok");
    assert_eq!(container(&p)["started"], true);
    node.wait_pod("exec-slow", 30, "running", |p| container(p)["state"]["running"].is_object());
    stays_unready(&node, "exec-slow", 5);
    // Each timed-out `sleep 30` was killed: at most the one in flight lives.
    let sleeping = node
        .container_pids()
        .into_iter()
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default() == b"sleep\x0030\x00")
        .count();
    assert!(sleeping <= 1, "{sleeping} timed-out probe commands still run");
}

#[test]
fn failing_liveness_probe_restarts_the_container() {
    let node = TestNode::start("probe-live");
    // As the Kubernetes docs' example: healthy for a few seconds, then not.
    applied(
        &node,
        "apiVersion: v1
kind: Pod
metadata: {name: liveness}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/busybox
    command: [sh, -c, 'touch /tmp/healthy; sleep 2; rm -f /tmp/healthy; exec sleep 600']
    livenessProbe: {exec: {command: [cat, /tmp/healthy]}, periodSeconds: 1, failureThreshold: 2}
",
    );
    let first = node.wait_running("liveness");
    let pid = container(&first)["pid"].as_i64().unwrap();
    let p = node.wait_pod("liveness", 40, "a restart after the liveness probe failed", |p| {
        container(p)["restartCount"].as_u64().unwrap_or(0) >= 1
    });
    // SIGTERM is ignored by the shell's `sleep` as pid 1: SIGKILL after the 1 s grace.
    let last = &container(&p)["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "{p:#}");
    assert!(node.log().contains("probe failed past its threshold"), "{}", node.log());
    let p = node.wait_pod("liveness", 20, "running again", |p| container(p)["state"]["running"].is_object());
    assert_ne!(container(&p)["pid"].as_i64().unwrap(), pid);
}

/// A runtime whose pod "namespace" is this test's own network namespace, so
/// the HTTP probe can be checked against a server in the test.
#[test]
fn http_probe_sends_headers_and_follows_redirects_on_the_same_host() {
    use std::io::{BufRead, BufReader, Write};
    require_root();
    let dir = std::path::PathBuf::from(format!("/tmp/shoal-it-{}-probe-rt", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let paths = shoal::runtime::layout::NodePaths::new(&dir);
    std::fs::create_dir_all(paths.pod("uid-1").join("ns")).unwrap();
    std::os::unix::fs::symlink(format!("/proc/{}/ns/net", std::process::id()), paths.pod("uid-1").join("ns/net")).unwrap();
    let store = std::sync::Arc::new(shoal::store::Store::open(&paths.db()).unwrap());
    let images = std::sync::Arc::new(shoal::runtime::image::ImageStore::open(&paths.images(), store).unwrap());
    let rt = shoal::runtime::Runtime::new(paths, images, BIN.into());

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for answer in [
            "HTTP/1.1 302 Found\r\nLocation: /healthz\r\n\r\n".to_string(),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_string(),
            "HTTP/1.1 503 Service Unavailable\r\n\r\n".to_string(),
            "HTTP/1.1 301 Moved\r\nLocation: http://10.255.255.1/\r\n\r\n".to_string(),
        ] {
            let (mut s, _) = listener.accept().unwrap();
            let mut head = String::new();
            let mut r = BufReader::new(s.try_clone().unwrap());
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                head += &line;
            }
            s.write_all(answer.as_bytes()).unwrap();
            seen.push(head);
        }
        seen
    });
    let probe: shoal::api::manifest::Probe = serde_yaml_ng::from_str(&format!(
        "httpGet: {{path: /start, port: {port}, httpHeaders: [{{name: X-Probe, value: one}}, {{name: user-agent, value: mine}}]}}"
    ))
    .unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // 302 to /healthz on the same host, then 200: passes.
    tokio.block_on(rt.probe("uid-1", "c", &probe)).unwrap();
    // 503: fails with Kubernetes' wording.
    let err = tokio.block_on(rt.probe("uid-1", "c", &probe)).unwrap_err().to_string();
    assert_eq!(err, "HTTP probe failed with statuscode: 503");
    // A redirect to another host is not followed and counts as a pass.
    tokio.block_on(rt.probe("uid-1", "c", &probe)).unwrap();
    let seen = server.join().unwrap();
    assert!(seen[0].starts_with("GET /start HTTP/1.1\r\n"), "{seen:?}");
    assert!(seen[1].starts_with("GET /healthz HTTP/1.1\r\n"), "{seen:?}");
    assert!(seen[0].contains(&format!("Host: 127.0.0.1:{port}\r\n")), "{seen:?}");
    assert!(
        seen[0].contains("X-Probe: one\r\n") && seen[0].contains("User-Agent: mine\r\n"),
        "{seen:?}"
    );
    assert!(!seen[0].contains("shoal-probe"), "a given header replaces the default: {seen:?}");
    // Nothing listens: refused.
    let closed: shoal::api::manifest::Probe = serde_yaml_ng::from_str("tcpSocket: {port: 1}").unwrap();
    let err = tokio.block_on(rt.probe("uid-1", "c", &closed)).unwrap_err().to_string();
    assert!(err.starts_with("dial tcp 127.0.0.1:1: "), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

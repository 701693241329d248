//! Joining with a token, and every way a join or a foreign certificate is
//! refused, against a real agent on loopback.

mod common;

use common::{stderr, TestNode, BIN};
use shoal::join::client::{self, JoinError};
use shoal::join::token::JoinToken;
use shoal::join::JoinReply;
use shoal::transport::pki::{self, ClientConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Dir(PathBuf);

impl Dir {
    fn new(label: &str) -> Dir {
        let p = PathBuf::from(format!("/tmp/shoal-it-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn join(node: &TestNode, token: &str, dir: &Path, name: &str) -> Output {
    Command::new(BIN)
        .args(["join", &format!("127.0.0.1:{}", node.port), "--token", token])
        .args(["--data-dir", dir.to_str().unwrap(), "--name", name, "--listen", "127.0.0.1:9"])
        .env("SHOAL_LOG", "warn")
        .output()
        .unwrap()
}

fn refused(node: &TestNode, token: &str, dir: &Path, want: &str) {
    let out = join(node, token, dir, "joiner");
    assert!(!out.status.success(), "join with {token} succeeded");
    assert!(stderr(&out).contains(want), "want {want:?}, got: {}", stderr(&out));
    assert!(!dir.join("node.yaml").exists(), "a refused join wrote the data dir");
}

fn other_cluster(label: &str) -> Dir {
    let d = Dir::new(label);
    let out = Command::new(BIN)
        .args([
            "init",
            "--data-dir",
            d.0.to_str().unwrap(),
            "--name",
            "intruder",
            "--listen",
            "127.0.0.1:9",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    d
}

#[test]
fn bad_tokens_are_refused_each_with_its_reason_and_a_good_one_joins() {
    let node = TestNode::start_bare("join");
    let dir = Dir::new("joiner");
    let token = node.ok(&["token", "create", "--ttl", "1h"]).trim().to_string();
    let t = JoinToken::parse(&token).unwrap();

    refused(&node, "SHOAL1-nonsense", &dir.0, "malformed join token");
    let mut wrong = t.clone();
    wrong.secret = "x".repeat(24);
    refused(&node, &wrong.to_string(), &dir.0, &format!("wrong secret for join token {}", t.id));
    let mut unknown = t.clone();
    unknown.id = "zzzzzz".into();
    refused(&node, &unknown.to_string(), &dir.0, "unknown join token zzzzzz");

    let other = other_cluster("other-ca");
    let other_pem = std::fs::read_to_string(other.0.join("pki/ca.crt")).unwrap();
    let mut foreign = t.clone();
    foreign.ca_sha256 = pki::pem_sha256(&other_pem).unwrap();
    refused(&node, &foreign.to_string(), &dir.0, "does not belong to the cluster in the token");

    let removed = node.ok(&["token", "create"]).trim().to_string();
    let removed_id = JoinToken::parse(&removed).unwrap().id;
    node.ok(&["token", "rm", &removed_id]);
    refused(&node, &removed, &dir.0, &format!("join token {removed_id} was removed"));

    let short = node.ok(&["token", "create", "--ttl", "1s"]).trim().to_string();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    refused(&node, &short, &dir.0, "expired");

    let out = join(&node, &token, &dir.0, "joiner");
    assert!(out.status.success(), "{}", stderr(&out));
    let settings = std::fs::read_to_string(dir.0.join("node.yaml")).unwrap();
    assert!(settings.contains("name: joiner") && settings.contains("role: agent"), "{settings}");
    assert!(dir.0.join("pki/node.key").exists() && !dir.0.join("pki/ca.key").exists());
    let ls = node.ok(&["token", "ls"]);
    let row = ls.lines().find(|l| l.starts_with(&t.id)).unwrap();
    assert!(row.contains(" 1 ") && row.ends_with("valid"), "{ls}");
    assert!(ls.contains("removed") && ls.contains("expired"), "{ls}");
    // Only a hash of the secret is on disk (node store, replica, Raft log).
    let has = |hay: &[u8]| hay.windows(t.secret.len()).any(|w| w == t.secret.as_bytes());
    for f in ["shoal.db", "shoal.db-wal", "cluster.db", "cluster.db-wal"] {
        let bytes = std::fs::read(node.dir.join(f)).unwrap_or_default();
        assert!(!has(&bytes), "the token secret is stored in clear in {f}");
    }
}

#[test]
fn a_replayed_join_request_is_refused() {
    let node = TestNode::start_bare("replay");
    let token = JoinToken::parse(node.ok(&["token", "create"]).trim()).unwrap();
    let server = format!("127.0.0.1:{}", node.port).parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (_key, csr_pem, csr_der) = pki::node_request("replayer").unwrap();
        let (_e1, first) = client::connect(server, &token.ca_sha256).await.unwrap();
        let (_e2, second) = client::connect(server, &token.ca_sha256).await.unwrap();
        let who = client::JoinAs {
            name: "replayer".into(),
            advertise: server,
            labels: Default::default(),
            zone: None,
            voter: true,
        };
        let req = client::request(&first, &token, &who, &csr_pem, &csr_der);
        // The same request on another connection: its proof is for the first session.
        match client::send(&second, &req).await.unwrap() {
            JoinReply::Refused { reason } => assert!(reason.contains("replayed"), "{reason}"),
            r => panic!("replay admitted: {r:?}"),
        }
        // On its own connection it joins, once.
        assert!(matches!(client::send(&first, &req).await.unwrap(), JoinReply::Joined { .. }));
        // The same key again, even with a fresh proof, is a replay too.
        let (_e3, third) = client::connect(server, &token.ca_sha256).await.unwrap();
        let again = client::request(&third, &token, &who, &csr_pem, &csr_der);
        match client::send(&third, &again).await.unwrap() {
            JoinReply::Refused { reason } => assert!(reason.contains("already joined"), "{reason}"),
            r => panic!("second use admitted: {r:?}"),
        }
        // A token pinned to another CA never even sends the request.
        let bad_pin = "0".repeat(64);
        assert!(matches!(client::connect(server, &bad_pin).await, Err(JoinError::CaMismatch { .. })));
    });
}

#[test]
fn client_and_node_certificates_of_another_cluster_are_refused() {
    let node = TestNode::start_bare("foreign");
    let other = other_cluster("foreign-ca");
    let ours = ClientConfig::load(&node.dir.join("admin.conf")).unwrap();
    let theirs = ClientConfig::load(&other.0.join("admin.conf")).unwrap();
    // Their admin, trusting our CA for the server: our node must refuse the client.
    let cfg = other.0.join("mixed.conf");
    ClientConfig {
        server: ours.server,
        ca: ours.ca.clone(),
        cert: theirs.cert.clone(),
        key: theirs.key.clone(),
    }
    .save(&cfg)
    .unwrap();
    let out = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "get", "nodes"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a foreign client certificate was let in");
    assert!(!stderr(&out).is_empty());

    // Their node certificate on the gossip and Raft ALPNs.
    let their_node = pki::load_identity(&other.0.join("pki"), "node").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for alpn in [shoal::transport::quic::ALPN_GOSSIP, shoal::transport::quic::ALPN_RAFT] {
        let admitted = foreign_admitted(&rt, &ours, &their_node, alpn);
        let which = String::from_utf8_lossy(alpn);
        assert!(!admitted, "a foreign node certificate was let in to {which}");
    }
    let nodes = node.ok(&["get", "nodes"]);
    assert!(!nodes.contains("intruder"), "{nodes}");
}

/// Whether a connection with another cluster's node certificate stays open.
fn foreign_admitted(rt: &tokio::runtime::Runtime, ours: &ClientConfig, their_node: &pki::Identity, alpn: &[u8]) -> bool {
    rt.block_on(async {
        let client = shoal::transport::quic::node_client(&ours.ca, their_node, alpn).unwrap();
        let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = match ep.connect_with(client, ours.server, pki::SERVER_NAME).unwrap().await {
            Ok(c) => c,
            Err(_) => return false,
        };
        // TLS 1.3: the server checks the client's certificate after the
        // client thinks it is done; a refusal closes the connection.
        let _ = conn.send_datagram(vec![0u8; 8].into());
        tokio::time::timeout(std::time::Duration::from_secs(5), conn.closed())
            .await
            .is_err()
    })
}

//! Pods whose images come from a registry: a real docker-registry on
//! loopback (TLS from the test's CA, htpasswd auth), a real agent.

mod common;

use common::registry::{TestRegistry, PASSWORD, USER};
use common::TestNode;

/// The waiting reason and message of the pod's first container.
fn waiting(p: &serde_json::Value) -> (String, String) {
    let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
    (
        w["reason"].as_str().unwrap_or_default().to_string(),
        w["message"].as_str().unwrap_or_default().to_string(),
    )
}

fn pod_yaml(name: &str, image: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n{extra}  containers:\n  - name: c\n    image: {image}\n    command: [sh, -c, 'echo pulled and running; exec sleep 600']\n"
    )
}

/// registries.yaml in the node's data dir trusting the test CA, with the
/// registry's credentials if given.
fn trust(node: &TestNode, reg: &TestRegistry, auth: bool) {
    let mut yaml = format!("configs:\n  \"{}\":\n    tls: {{ca_file: {}}}\n", reg.host, reg.ca_file.display());
    if auth {
        yaml += &format!("    auth: {{username: {USER}, password: {PASSWORD}}}\n");
    }
    std::fs::write(node.dir.join("registries.yaml"), yaml).unwrap();
}

#[test]
fn a_pod_pulls_its_image_from_the_registry_and_never_means_never() {
    common::require_root();
    let reg = TestRegistry::start("pods");
    reg.push(&common::images_dir().join("busybox.tar"), "team/busybox:1");
    let node = TestNode::start_bare("pulls");
    trust(&node, &reg, true);
    let image = format!("{}/team/busybox:1", reg.host);

    // Never, and the image is not here: ErrImageNeverPull.
    let never = pod_yaml("never", &image, "");
    let never = never.replace("    command:", "    imagePullPolicy: Never\n    command:");
    assert!(node.apply(&never).status.success());
    let p = node.wait_pod("never", 20, "ErrImageNeverPull", |p| waiting(p).0 == "ErrImageNeverPull");
    let (_, message) = waiting(&p);
    assert!(message.contains(&image) && message.contains("Never"), "{message}");

    // The default (IfNotPresent for a tag): pulled, then it runs.
    assert!(node.apply(&pod_yaml("pulled", &image, "")).status.success());
    node.wait_running("pulled");
    let logs = node.ok(&["logs", "pulled"]);
    assert!(logs.contains("pulled and running"), "{logs}");
    let listed = node.ok(&["image", "ls"]);
    assert!(listed.contains(&format!("{}/team/busybox:1", reg.host)), "{listed}");

    // The Never pod starts once the image is here (its back-off is short).
    node.wait_running("never");

    // `image pull` by hand: a two-layer image; no bars when not on a terminal.
    reg.push(&common::images_dir().join("hello-http.tar"), "team/hello:2");
    let hello = format!("{}/team/hello:2", reg.host);
    let out = node.cli(&["image", "pull", &hello]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(
        common::stdout(&out).starts_with(&format!("pulled {hello} (sha256:")),
        "{}",
        common::stdout(&out)
    );
    assert!(
        common::stderr(&out).is_empty(),
        "progress drawn without a terminal: {}",
        common::stderr(&out)
    );
    // `image ls` names the nodes that hold it, once the node reported it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ls = node.ok(&["image", "ls"]);
        let line = ls.lines().find(|l| l.starts_with(&hello)).unwrap_or_default().to_string();
        if line.ends_with("testnode") {
            assert!(ls.starts_with("IMAGE") && ls.lines().next().unwrap().ends_with("NODES"), "{ls}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no node holds {hello}: {ls}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let missing = node.cli(&["image", "pull", &format!("{}/team/none:1", reg.host)]);
    assert!(!missing.status.success());
    assert!(common::stderr(&missing).contains("team/none"), "{}", common::stderr(&missing));
}

#[test]
fn a_refused_pull_shows_err_image_pull_with_the_registrys_reason() {
    common::require_root();
    let reg = TestRegistry::start("refused");
    reg.push(&common::images_dir().join("busybox.tar"), "team/busybox:1");
    let node = TestNode::start_bare("refused");
    trust(&node, &reg, false);
    let image = format!("{}/team/busybox:1", reg.host);
    assert!(node.apply(&pod_yaml("nocreds", &image, "")).status.success());
    let p = node.wait_pod("nocreds", 20, "ErrImagePull", |p| waiting(p).0 == "ErrImagePull");
    let (_, message) = waiting(&p);
    assert!(message.contains(&image) && message.contains("without credentials"), "{message}");
    // Then the back-off shows, with the reason still in it.
    let p = node.wait_pod("nocreds", 30, "ImagePullBackOff", |p| waiting(p).0 == "ImagePullBackOff");
    let (_, message) = waiting(&p);
    assert!(
        message.starts_with("Back-off pulling image") && message.contains("without credentials"),
        "{message}"
    );
    let describe = node.ok(&["describe", "pod", "nocreds"]);
    assert!(describe.contains("ImagePullBackOff"), "{describe}");
}

#[test]
fn a_private_image_pulls_with_an_image_pull_secret_and_not_with_a_wrong_one() {
    common::require_root();
    let reg = TestRegistry::start("secret");
    reg.push(&common::images_dir().join("busybox.tar"), "team/busybox:1");
    let node = TestNode::start_bare("pullsecret");
    trust(&node, &reg, false);
    let image = format!("{}/team/busybox:1", reg.host);
    let server = format!("--docker-server={}", reg.host);
    node.ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &server,
        &format!("--docker-username={USER}"),
        &format!("--docker-password={PASSWORD}"),
    ]);
    node.ok(&[
        "create",
        "secret",
        "docker-registry",
        "wrongcred",
        &server,
        &format!("--docker-username={USER}"),
        "--docker-password=not-it",
    ]);
    let listed = node.ok(&["get", "secrets"]);
    assert!(
        listed.contains("regcred") && listed.contains("kubernetes.io/dockerconfigjson"),
        "{listed}"
    );

    let wrong = pod_yaml("wrong", &image, "  imagePullSecrets: [{name: wrongcred}]\n");
    assert!(node.apply(&wrong).status.success());
    let p = node.wait_pod("wrong", 20, "a refused pull", |p| {
        matches!(waiting(p).0.as_str(), "ErrImagePull" | "ImagePullBackOff") && waiting(p).1.contains("as user")
    });
    let (_, message) = waiting(&p);
    assert!(
        message.contains(&image) && message.contains(&format!("as user {USER}")),
        "{message}"
    );

    let right = pod_yaml("right", &image, "  imagePullSecrets: [{name: regcred}]\n");
    assert!(node.apply(&right).status.success());
    node.wait_running("right");
}

#[test]
fn image_gc_removes_unused_images_past_the_high_mark_and_never_one_in_use() {
    // A high mark of 1 % (this disk is surely fuller) and a low one of 0:
    // every unused image goes, the one a pod runs stays.
    let node = TestNode::start_with(
        "gc",
        &[
            "--image-gc-high-threshold",
            "1",
            "--image-gc-low-threshold",
            "0",
            "--image-gc-period-secs",
            "1",
        ],
    );
    let images = common::images_dir();
    // busybox first: the older of the two, so it would go first if unused.
    node.ok(&["image", "import", images.join("busybox.tar").to_str().unwrap()]);
    let pod = pod_yaml("keeps", "localhost/busybox", "");
    assert!(node.apply(&pod).status.success());
    node.wait_running("keeps");
    node.ok(&["image", "import", images.join("hello-http.tar").to_str().unwrap()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while node.ok(&["image", "ls"]).contains("localhost/hello-http") {
        assert!(
            std::time::Instant::now() < deadline,
            "GC did not remove the unused image:\n{}",
            node.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let left = node.ok(&["image", "ls"]);
    assert!(left.contains("localhost/busybox"), "the image in use was removed: {left}");
    assert!(node.log().contains("image GC removed unused images"));
    // Once its pod is gone, it goes too.
    node.ok(&["delete", "pod", "keeps"]);
    node.wait_gone("keeps", 20);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while node.ok(&["image", "ls"]).contains("localhost/busybox") {
        assert!(std::time::Instant::now() < deadline, "GC left the image of a deleted pod");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

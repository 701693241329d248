//! Bad input: a clear error naming the problem, the node keeps working, nothing lost.

mod common;
use common::*;
use sha2::{Digest, Sha256};

const GOOD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: good}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: c, image: localhost/busybox, command: [sleep, '600']}\n";

fn refused(node: &TestNode, yaml: &str, needles: &[&str]) {
    let out = node.apply(yaml);
    assert!(!out.status.success(), "accepted: {yaml}");
    let err = stderr(&out);
    for n in needles {
        assert!(err.contains(n), "error {err:?} does not name {n:?}");
    }
}

#[test]
fn bad_manifests_are_refused_by_name_and_nothing_is_lost() {
    let node = TestNode::start("badyaml");
    assert!(node.apply(GOOD).status.success());
    node.wait_running("good");
    refused(&node, "kind: Pod\nmetadata: {name: x\n", &["malformed YAML", "line"]);
    refused(
        &node,
        &GOOD
            .replace("name: good", "name: other")
            .replace("command:", "lifecycle: {}, command:"),
        &["lifecycle", "spec.containers[0]"],
    );
    refused(
        &node,
        &GOOD
            .replace("name: good", "name: other")
            .replace("command:", "livenessProbe: {httpGet: {port: http}}, command:"),
        &["spec.containers[0].livenessProbe.httpGet.port", "does not name a port"],
    );
    refused(&node, &GOOD.replace("name: good", "name: Bad_Name"), &["metadata.name", "RFC 1123"]);
    refused(
        &node,
        &GOOD.replace("name: good", "name: other").replace(
            "command:",
            "env: [{name: X, valueFrom: {fieldRef: {fieldPath: spec.containers}}}], command:",
        ),
        &[
            "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath",
            "Unsupported value",
            "status.podIP",
        ],
    );
    refused(
        &node,
        &GOOD.replace("name: good", "name: other").replace(
            "command:",
            "env: [{name: X, valueFrom: {secretKeyRef: {name: s, key: 'a/b'}}}], command:",
        ),
        &["spec.containers[0].env[0].valueFrom.secretKeyRef.key", "valid config key"],
    );
    refused(
        &node,
        &GOOD.replace("name: good", "name: other").replace(
            "command:",
            "env: [{name: X, valueFrom: {secretKeyRef: {name: s, key: k}, fieldRef: {fieldPath: status.podIP}}}], command:",
        ),
        &["spec.containers[0].env[0].valueFrom", "exactly one of"],
    );
    refused(
        &node,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: 'not base64!'}\n",
        &["Secret", "data[\"k\"]", "illegal base64"],
    );
    refused(
        &node,
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: d}\n",
        &["CronJob", "not supported"],
    );
    refused(
        &node,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
        &["Deployment", "missing field `spec`"],
    );
    let mismatch = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: b}}\n    spec: {containers: [{name: c, image: localhost/busybox}]}\n";
    refused(
        &node,
        mismatch,
        &["spec.template.metadata.labels", "`selector` does not match template `labels`"],
    );
    refused(
        &node,
        &mismatch.replace("app: b", "app: a").replace("image:", "bogus: 1, image:"),
        &["Deployment", "spec.template.spec.containers[0]", "bogus"],
    );
    refused(
        &node,
        &GOOD.replace("command:", "resources: {limits: {memory: lots}}, command:"),
        &["resources.limits.memory", "lots"],
    );
    // The spec of an existing pod cannot change.
    refused(&node, &GOOD.replace("'600'", "'700'"), &["cannot change"]);
    // The node still works and the first pod is untouched.
    let p = node.wait_running("good");
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
    let list = node.ok(&["get", "pods"]);
    assert!(list.contains("good") && !list.contains("other"), "{list}");
}

#[test]
fn a_missing_image_is_named_in_the_pod_status() {
    // No registry answers here: the pull fails with the image and the reason.
    let node = TestNode::start("noimage");
    let out =
        node.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: ghost}\nspec:\n  containers:\n  - {name: c, image: 'nosuch/image:1.0'}\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let reason = |p: &serde_json::Value| p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].clone();
    let p = node.wait_pod("ghost", 20, "ErrImagePull", |p| {
        reason(p) == "ErrImagePull" || reason(p) == "ImagePullBackOff"
    });
    let msg = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("nosuch/image:1.0") && msg.contains("no registry reachable"), "{msg}");
    let listed = node.ok(&["get", "pods"]);
    assert!(listed.contains("ErrImagePull") || listed.contains("ImagePullBackOff"), "{listed}");
    // A local name that is not here is never looked for in a registry.
    let out =
        node.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: ghost2}\nspec:\n  containers:\n  - {name: c, image: 'localhost/nosuch'}\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let p = node.wait_pod("ghost2", 20, "ErrImagePull", |p| {
        reason(p) == "ErrImagePull" || reason(p) == "ImagePullBackOff"
    });
    let msg = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"].to_string();
    assert!(msg.contains("localhost/nosuch") && msg.contains("image import"), "{msg}");
}

/// An OCI layout archive whose single layer holds `entries` (path, kind, link).
fn oci_archive(entries: &[(&str, tar::EntryType, &str)], corrupt_layer: bool) -> Vec<u8> {
    let mut layer = tar::Builder::new(Vec::new());
    for (path, kind, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        h.set_cksum();
        layer.append(&h, &[][..]).unwrap();
    }
    let layer = layer.into_inner().unwrap();
    let hex = |b: &[u8]| format!("{:x}", Sha256::digest(b));
    let diff = hex(&layer);
    let stored = if corrupt_layer {
        [&layer[..], b"tampered"].concat()
    } else {
        layer.clone()
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{diff}"]}}}}"#
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{diff}","size":{}}}]}}"#,
        hex(config.as_bytes()),
        config.len(),
        layer.len()
    );
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":{},"annotations":{{"io.containerd.image.name":"localhost/evil:1"}}}}]}}"#,
        hex(manifest.as_bytes()),
        manifest.len()
    );
    let mut out = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        out.append_data(&mut h, name, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", index.as_bytes());
    add(&format!("blobs/sha256/{}", hex(manifest.as_bytes())), manifest.as_bytes());
    add(&format!("blobs/sha256/{}", hex(config.as_bytes())), config.as_bytes());
    add(&format!("blobs/sha256/{diff}"), &stored);
    out.into_inner().unwrap()
}

fn import_refused(node: &TestNode, archive: Vec<u8>, needles: &[&str]) {
    let path = node.dir.with_extension("evil.tar");
    std::fs::write(&path, archive).unwrap();
    let out = node.cli(&["image", "import", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success(), "hostile archive accepted");
    let err = stderr(&out);
    for n in needles {
        assert!(err.contains(n), "error {err:?} does not name {n:?}");
    }
}

#[test]
fn hostile_image_archives_are_refused_and_leave_nothing_behind() {
    let node = TestNode::start("evilimg");
    use tar::EntryType::*;
    import_refused(&node, oci_archive(&[("../escape", Regular, "")], false), &["../escape", "\"..\""]);
    import_refused(&node, oci_archive(&[("/etc/evil", Regular, "")], false), &["/etc/evil", "absolute"]);
    import_refused(
        &node,
        oci_archive(&[("bin/link", Symlink, "../../../etc")], false),
        &["bin/link", "escapes"],
    );
    import_refused(
        &node,
        oci_archive(&[("lnk", Symlink, "/tmp"), ("lnk/x", Regular, "")], false),
        &["lnk/x", "symlink"],
    );
    import_refused(&node, oci_archive(&[("ok", Regular, "")], true), &["digest mismatch"]);
    assert!(!std::path::Path::new("/escape").exists() && !std::path::Path::new("/etc/evil").exists());
    let list = node.ok(&["image", "ls"]);
    assert!(!list.contains("evil"), "{list}");
    let tmp = node.dir.join("images/tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "import left files in {}",
        tmp.display()
    );
    // The node still imports and runs good images, docker save ones too.
    let docker = images_dir().join("busybox-docker.tar");
    assert!(node
        .ok(&["image", "import", docker.to_str().unwrap()])
        .contains("localhost/busybox-docker:latest"));
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: fromdocker}\nspec:\n  restartPolicy: Never\n  containers:\n  - {name: c, image: localhost/busybox-docker, command: [echo, docker-save-works]}\n";
    assert!(node.apply(pod).status.success());
    node.wait_pod("fromdocker", 20, "Succeeded", |p| p["status"]["phase"] == "Succeeded");
    assert!(node.ok(&["logs", "fromdocker"]).contains("docker-save-works"));
    // An image in use cannot be removed; an unused one can.
    let rm = node.cli(&["image", "rm", "localhost/busybox-docker"]);
    assert!(!rm.status.success() && stderr(&rm).contains("used by pod default/fromdocker"));
    node.ok(&["delete", "pod", "fromdocker"]);
    node.wait_gone("fromdocker", 10);
    assert!(node.ok(&["image", "rm", "localhost/busybox-docker"]).contains("removed"));
}

#[test]
fn a_client_certificate_from_another_cluster_is_refused() {
    let node = TestNode::start("foreign");
    let other = node.dir.with_extension("other");
    let _ = std::fs::remove_dir_all(&other);
    let init = std::process::Command::new(BIN)
        .args([
            "init",
            "--data-dir",
            other.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{}", node.port),
        ])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", stderr(&init));
    let out = std::process::Command::new(BIN)
        .args(["get", "pods"])
        .env("SHOAL_CONFIG", other.join("admin.conf"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&other);
    assert!(!out.status.success(), "foreign client was served");
    let err = stderr(&out);
    assert!(
        err.contains("refused") || err.contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(node.log().contains("refused connection"), "agent did not log the refusal");
    // The admin still gets in.
    node.ok(&["get", "pods"]);
}

#[test]
fn unknown_nodes_and_unplaceable_pods_are_named_and_nothing_is_lost() {
    let node = TestNode::start("badnode");
    assert!(node.apply(GOOD).status.success());
    node.wait_running("good");
    for (args, needle) in [
        (&["cordon", "nosuch"][..], "node \"nosuch\" not found"),
        (&["uncordon", "nosuch"][..], "node \"nosuch\" not found"),
        (&["delete", "node", "nosuch"][..], "node \"nosuch\" not found"),
        (&["taint", "node", "nosuch", "a=b:NoSchedule"][..], "node \"nosuch\" not found"),
        (&["taint", "node", "nosuch", "a=b:Sometimes"][..], "unknown taint effect"),
    ] {
        let out = node.cli(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    refused(
        &node,
        &GOOD
            .replace("name: good", "name: bound")
            .replace("  containers:", "  nodeName: nosuch\n  containers:"),
        &["spec.nodeName", "nosuch", "not found"],
    );
    // A pod no node can hold is kept Pending, and describe says why in Kubernetes' words.
    let big = GOOD
        .replace("name: good", "name: huge")
        .replace("command:", "resources: {requests: {memory: 100Ti}}, command:");
    assert!(node.apply(&big).status.success());
    let p = node.wait_pod("huge", 20, "unschedulable", |p| p["unschedulable"].is_string());
    assert_eq!(p["status"]["phase"], "Pending");
    let why = node.ok(&["describe", "pod", "huge"]);
    assert!(why.contains("0/1 nodes are available: 1 Insufficient memory."), "{why}");
    assert!(why.contains("FailedScheduling"), "{why}");
    // Nothing else changed.
    let p = node.wait_running("good");
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
}

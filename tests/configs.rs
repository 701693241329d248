//! ConfigMaps and Secrets reaching a real container: env, envFrom and
//! volumes, a ConfigMap change reaching a mounted volume, secret files on a
//! tmpfs and no Secret value in clear on the node's disk.

mod common;

use common::TestNode;
use std::time::{Duration, Instant};

const OBJECTS: &str = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: game-config}
data:
  player_initial_lives: '3'
  ui_properties_file_name: user-interface.properties
  game.properties: |
    enemy.types=aliens,monsters
---
apiVersion: v1
kind: Secret
metadata: {name: db-creds}
type: Opaque
data:
  username: YWRtaW4=
stringData:
  password: n0t-in-clear-on-disk
";

const POD: &str = "\
apiVersion: v1
kind: Pod
metadata: {name: consumer}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/busybox
    command: [sh, -c, 'exec sleep 600']
    env:
    - name: LIVES
      valueFrom: {configMapKeyRef: {name: game-config, key: player_initial_lives}}
    - name: DB_USER
      valueFrom: {secretKeyRef: {name: db-creds, key: username}}
    - name: NOT_THERE
      valueFrom: {secretKeyRef: {name: db-creds, key: nope, optional: true}}
    envFrom:
    - prefix: CFG_
      configMapRef: {name: game-config}
    - secretRef: {name: db-creds}
    volumeMounts:
    - {name: config, mountPath: /etc/game}
    - {name: creds, mountPath: /etc/creds, readOnly: true}
  volumes:
  - name: config
    configMap:
      name: game-config
      items:
      - {key: game.properties, path: conf/game.properties}
  - name: creds
    secret: {secretName: db-creds, defaultMode: 0400}
";

fn exec(node: &TestNode, cmd: &str) -> String {
    node.ok(&["exec", "consumer", "--", "sh", "-c", cmd])
}

#[test]
fn config_maps_and_secrets_reach_env_and_volumes_and_changes_reach_the_volume() {
    let node = TestNode::start("configs");
    let out = node.apply(OBJECTS);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let out = node.apply(POD);
    assert!(out.status.success(), "{}", common::stderr(&out));
    node.wait_running("consumer");

    let env = exec(&node, "env");
    for want in [
        "LIVES=3",
        "DB_USER=admin",
        "CFG_player_initial_lives=3",
        "CFG_ui_properties_file_name=user-interface.properties",
        "username=admin",
        "password=n0t-in-clear-on-disk",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} not in:\n{env}");
    }
    assert!(!env.contains("NOT_THERE"), "an optional missing key sets nothing");
    assert!(!env.contains("CFG_game.properties"), "a key that is not a variable name is skipped");

    let game = exec(&node, "cat /etc/game/conf/game.properties");
    assert_eq!(game, "enemy.types=aliens,monsters\n");
    assert_eq!(exec(&node, "ls /etc/game"), "conf\n", "items pick the keys");
    assert_eq!(exec(&node, "cat /etc/creds/password"), "n0t-in-clear-on-disk");
    assert_eq!(exec(&node, "stat -L -c %a /etc/creds/username"), "400\n", "defaultMode");
    assert_eq!(exec(&node, "stat -f -c %T /etc/creds/"), "tmpfs\n", "secret files are on a tmpfs");
    assert_ne!(exec(&node, "stat -f -c %T /etc/game/"), "tmpfs\n");

    // No file of the node's data dir holds the Secret's value in clear
    // (the pod's tmpfs aside): not the store, not a bundle's config.json.
    let found = std::process::Command::new("grep")
        .args(["-rlF", "--exclude-dir=tmpfs", "--exclude-dir=rootfs", "n0t-in-clear-on-disk"])
        .arg(&node.dir)
        .output()
        .unwrap();
    let files = common::stdout(&found);
    assert!(files.trim().is_empty(), "the Secret's value is in clear in: {files}");

    // A change reaches the mounted volume without a restart; env stays.
    let changed = OBJECTS.replace("enemy.types=aliens,monsters", "enemy.types=robots");
    assert!(node.apply(&changed).status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = exec(&node, "cat /etc/game/conf/game.properties");
        if now == "enemy.types=robots\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the change did not reach the volume: {now:?}\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let p = node.pod("consumer");
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);

    // get -o yaml shows the Secret base64-encoded, as kubectl does.
    let yaml = node.ok(&["get", "secret", "db-creds", "-o", "yaml"]);
    assert!(
        yaml.contains("password: bjB0LWluLWNsZWFyLW9uLWRpc2s=") && !yaml.contains("n0t-in-clear"),
        "{yaml}"
    );
}

#[test]
fn a_missing_config_map_holds_the_container_with_create_container_config_error() {
    let node = TestNode::start("configmissing");
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: waits}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: localhost/busybox\n    command: [sh, -c, 'echo $MODE; exec sleep 600']\n    env:\n    - name: MODE\n      valueFrom: {configMapKeyRef: {name: settings, key: mode}}\n";
    assert!(node.apply(pod).status.success());
    let p = node.wait_pod("waits", 20, "CreateContainerConfigError", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    let message = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"].to_string();
    assert!(message.contains("configmap \\\"settings\\\" not found"), "{message}");
    // Created from literals, the pod starts.
    node.ok(&["create", "configmap", "settings", "--from-literal=mode=fast"]);
    node.wait_running("waits");
    assert_eq!(node.ok(&["logs", "waits"]), "fast\n");
    let again = node.cli(&["create", "configmap", "settings", "--from-literal=mode=slow"]);
    assert!(!again.status.success() && common::stderr(&again).contains("already exists"));
}

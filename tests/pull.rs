//! Pulls from a real registry on loopback (Debian's docker-registry with
//! TLS from the test's CA and htpasswd auth; images pushed by skopeo) into
//! a real image store.

mod common;

use common::registry::{TestRegistry, PASSWORD, USER};
use shoal::runtime::image::pull::{pull, Credentials, Progress};
use shoal::runtime::image::registries::Registries;
use shoal::runtime::image::ImageStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn store(label: &str) -> (Dir, ImageStore) {
    let dir = Dir(PathBuf::from(format!("/tmp/shoal-pull-{label}-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let db = Arc::new(shoal::store::Store::open(&dir.0.join("shoal.db")).unwrap());
    let images = ImageStore::open(&dir.0.join("images"), db).unwrap();
    (dir, images)
}

/// registries.yaml trusting the test's CA, with basic auth if given.
fn registries(reg: &TestRegistry, auth: Option<(&str, &str)>) -> Registries {
    let mut yaml = format!("configs:\n  \"{}\":\n    tls: {{ca_file: {}}}\n", reg.host, reg.ca_file.display());
    if let Some((u, p)) = auth {
        yaml += &format!("    auth: {{username: {u}, password: {p}}}\n");
    }
    Registries::parse(Path::new("registries.yaml"), &yaml).unwrap()
}

/// A registry holding busybox as `team/busybox:1`, and that image's name.
fn registry_with_busybox(label: &str) -> (TestRegistry, String) {
    common::require_root();
    let reg = TestRegistry::start(label);
    reg.push(&common::images_dir().join("busybox.tar"), "team/busybox:1");
    let image = format!("{}/team/busybox:1", reg.host);
    (reg, image)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_image_pulls_with_credentials_and_is_refused_without() {
    let (reg, image) = registry_with_busybox("private");
    let (_dir, st) = store("private");

    let none = pull(&st, &registries(&reg, None), &image, &Credentials::default(), &Progress::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        none.contains(&image) && none.contains("Not authorized") && none.contains("without credentials"),
        "{none}"
    );
    let wrong = pull(
        &st,
        &registries(&reg, Some((USER, "wrong"))),
        &image,
        &Credentials::default(),
        &Progress::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(wrong.contains("Not authorized") && wrong.contains("as user shoal"), "{wrong}");
    assert!(st.resolve(&image).is_err(), "nothing stored after a refusal");

    // From registries.yaml.
    let got = pull(
        &st,
        &registries(&reg, Some((USER, PASSWORD))),
        &image,
        &Credentials::default(),
        &Progress::default(),
    )
    .await
    .unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].digest.starts_with("sha256:") && got[0].size > 0, "{got:?}");
    let resolved = st.resolve(&image).unwrap();
    assert!(!resolved.layers.is_empty() && resolved.layers.iter().all(|l| l.is_dir()));
    assert!(resolved.layers.iter().any(|l| l.join("bin/busybox").exists()));

    // From the pod's pull secret, over a registries.yaml without auth.
    let (_dir2, st2) = store("private-secret");
    let creds = Credentials {
        basic: Some((USER.into(), PASSWORD.into())),
        registry: Some(reg.host.clone()),
    };
    pull(&st2, &registries(&reg, None), &image, &creds, &Progress::default())
        .await
        .unwrap();
    assert!(st2.resolve(&image).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_registry_certificate_is_refused() {
    let (reg, image) = registry_with_busybox("untrusted");
    let (_dir, st) = store("untrusted");
    // No ca_file: the system roots do not know the test's CA.
    let yaml = format!(
        "configs:\n  \"{}\":\n    auth: {{username: {USER}, password: {PASSWORD}}}\n",
        reg.host
    );
    let r = Registries::parse(Path::new("registries.yaml"), &yaml).unwrap();
    let e = pull(&st, &r, &image, &Credentials::default(), &Progress::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&image) && e.contains("certificate"), "{e}");
    assert!(st.resolve(&image).is_err());
}

/// The registry's stored copy of the largest blob (the layer).
fn largest_blob(reg: &TestRegistry) -> PathBuf {
    let out = std::process::Command::new("find")
        .arg(reg.dir.join("data"))
        .args(["-path", "*/blobs/sha256/*", "-name", "data", "-printf", "%s %p\n"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (_, path) = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .max_by_key(|(size, _)| size.parse::<u64>().unwrap_or(0))
        .expect("blobs in the registry");
    PathBuf::from(path)
}

fn no_files_under(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_layer_leaves_nothing_behind_and_the_next_pull_succeeds() {
    let (reg, image) = registry_with_busybox("corrupt");
    let (dir, st) = store("corrupt");
    let r = registries(&reg, Some((USER, PASSWORD)));
    // The registry serves the layer with bytes changed in the middle.
    let blob = largest_blob(&reg);
    let good = std::fs::read(&blob).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(&blob, &bad).unwrap();
    let e = pull(&st, &r, &image, &Credentials::default(), &Progress::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&image) && e.to_lowercase().contains("digest"), "{e}");
    assert!(st.resolve(&image).is_err());
    let images = dir.0.join("images");
    assert!(no_files_under(&images.join("tmp")), "half-pulled files left in tmp/");
    assert!(no_files_under(&images.join("layers")), "a layer was unpacked from a corrupt blob");
    assert!(no_files_under(&images.join("partial")), "the corrupt download is kept");

    std::fs::write(&blob, &good).unwrap();
    pull(&st, &r, &image, &Credentials::default(), &Progress::default()).await.unwrap();
    assert!(st.resolve(&image).unwrap().layers.iter().any(|l| l.join("bin/busybox").exists()));
}

/// An OCI layout in `dir` with busybox and hello-http, and an index named
/// `name` listing busybox as `busybox_platform` and hello-http as
/// `other_platform` (`os/arch[/variant]`).
fn multi_platform_layout(dir: &Path, name: &str, busybox_platform: &str, other_platform: &str) {
    use sha2::{Digest, Sha256};
    let mut manifests = Vec::new();
    // The other platform first, so taking the first entry would be wrong.
    for (archive, platform) in [("hello-http.tar", other_platform), ("busybox.tar", busybox_platform)] {
        let unpacked = dir.join(format!("{archive}.d"));
        std::fs::create_dir_all(&unpacked).unwrap();
        let st = std::process::Command::new("tar")
            .arg("xf")
            .arg(common::images_dir().join(archive))
            .arg("-C")
            .arg(&unpacked)
            .status()
            .unwrap();
        assert!(st.success());
        let st = std::process::Command::new("cp")
            .arg("-r")
            .arg(unpacked.join("blobs"))
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success());
        let index: serde_json::Value = serde_json::from_slice(&std::fs::read(unpacked.join("index.json")).unwrap()).unwrap();
        let mut entry = index["manifests"][0].clone();
        entry.as_object_mut().unwrap().remove("annotations");
        let parts: Vec<&str> = platform.split('/').collect();
        let mut p = serde_json::json!({"os": parts[0], "architecture": parts[1]});
        if let Some(v) = parts.get(2) {
            p["variant"] = serde_json::json!(v);
        }
        entry["platform"] = p;
        manifests.push(entry);
    }
    let nested = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap();
    let hex = hex::encode(Sha256::digest(&nested));
    std::fs::write(dir.join("blobs/sha256").join(&hex), &nested).unwrap();
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{hex}"),
            "size": nested.len(),
            "annotations": {"org.opencontainers.image.ref.name": name},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_platform_index_gives_this_nodes_image_or_names_what_it_offers() {
    common::require_root();
    let reg = TestRegistry::start("index");
    let (dir, st) = store("index");
    let host = shoal::runtime::image::platform::Platform::host().to_string();
    let layout = dir.0.join("layout");
    multi_platform_layout(&layout, "multi", &host, "linux/s390x");
    reg.push_index(&layout, "multi", "team/multi:1");
    let r = registries(&reg, Some((USER, PASSWORD)));
    let image = format!("{}/team/multi:1", reg.host);
    pull(&st, &r, &image, &Credentials::default(), &Progress::default()).await.unwrap();
    let layers = st.resolve(&image).unwrap().layers;
    assert!(
        layers.iter().any(|l| l.join("bin/busybox").exists()),
        "not this platform's image: {layers:?}"
    );

    let other = dir.0.join("other");
    multi_platform_layout(&other, "other", "linux/s390x", "linux/ppc64le");
    reg.push_index(&other, "other", "team/other:1");
    let image = format!("{}/team/other:1", reg.host);
    let e = pull(&st, &r, &image, &Credentials::default(), &Progress::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("no image for {host}")) && e.contains("linux/ppc64le, linux/s390x"),
        "{e}"
    );
}

/// A TCP pass-through to the registry that cuts the first connection whose
/// answers pass `cut` bytes, and counts the bytes it passes back.
struct CutProxy {
    host: String,
    passed: Arc<std::sync::atomic::AtomicU64>,
    armed: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn cut_proxy(upstream: String, cut: u64) -> CutProxy {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let passed = Arc::new(AtomicU64::new(0));
    let armed = Arc::new(AtomicBool::new(true));
    let (p, a) = (passed.clone(), armed.clone());
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            let (p, a) = (p.clone(), a.clone());
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let mut buf = vec![0u8; 16 * 1024];
                let mut here = 0u64;
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    here += n as u64;
                    if here > cut && a.swap(false, Ordering::SeqCst) {
                        break; // cut: both halves drop
                    }
                    p.fetch_add(n as u64, Ordering::SeqCst);
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                up.abort();
            });
        }
    });
    CutProxy { host, passed, armed, task }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_layer_leaves_no_layer_and_the_next_pull_resumes() {
    use std::sync::atomic::Ordering;
    let (reg, _) = registry_with_busybox("cut");
    let (dir, st) = store("cut");
    let layer = std::fs::metadata(largest_blob(&reg)).unwrap().len();
    let proxy = cut_proxy(reg.host.clone(), layer / 2).await;
    // The image by the proxy's address; the certificate names 127.0.0.1.
    let image = format!("{}/team/busybox:1", proxy.host);
    let yaml = format!(
        "configs:\n  \"{}\":\n    tls: {{ca_file: {}}}\n    auth: {{username: {USER}, password: {PASSWORD}}}\n",
        proxy.host,
        reg.ca_file.display()
    );
    let r = Registries::parse(Path::new("registries.yaml"), &yaml).unwrap();

    let e = pull(&st, &r, &image, &Credentials::default(), &Progress::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(!proxy.armed.load(Ordering::SeqCst), "the proxy never cut: {e}");
    assert!(e.contains("cut off"), "{e}");
    assert!(st.resolve(&image).is_err());
    let images = dir.0.join("images");
    assert!(no_files_under(&images.join("tmp")), "files left in tmp/");
    assert!(no_files_under(&images.join("layers")), "a layer was unpacked from half a blob");
    let partial: Vec<_> = std::fs::read_dir(images.join("partial")).unwrap().flatten().collect();
    assert_eq!(partial.len(), 1, "the cut-off layer is kept to resume");
    let kept = partial[0].metadata().unwrap().len();
    assert!(kept > 0 && kept < layer, "kept {kept} of {layer}");

    let before = proxy.passed.load(Ordering::SeqCst);
    pull(&st, &r, &image, &Credentials::default(), &Progress::default()).await.unwrap();
    let second = proxy.passed.load(Ordering::SeqCst) - before;
    assert!(st.resolve(&image).unwrap().layers.iter().any(|l| l.join("bin/busybox").exists()));
    assert!(no_files_under(&images.join("partial")), "the partial file stays after the pull");
    // TLS and the manifests add a few kB; the whole layer again would not fit.
    assert!(
        second < layer - kept / 2,
        "the second pull moved {second} bytes for a layer of {layer} with {kept} kept: it did not resume"
    );
}

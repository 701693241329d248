//! A real registry on loopback for pull tests: Debian's `docker-registry`
//! (the CNCF distribution registry), serving TLS with a certificate from a
//! CA of the test's own and asking for basic auth (htpasswd, bcrypt), with
//! images pushed to it by `skopeo` from images/out. Stopped by pid and its
//! directory removed when dropped, also when the test fails.
#![allow(dead_code)]

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user and password the registry accepts.
pub const USER: &str = "shoal";
pub const PASSWORD: &str = "s3cret-pull";

pub struct TestRegistry {
    pub dir: PathBuf,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// PEM of the CA that signed the registry's certificate.
    pub ca_file: PathBuf,
    child: Child,
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl TestRegistry {
    /// Starts a registry in `/tmp/shoal-registry-<label>-<pid>` and waits
    /// until it answers.
    pub fn start(label: &str) -> TestRegistry {
        for tool in ["docker-registry", "skopeo", "htpasswd"] {
            let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap();
            assert!(found.status.success(), "{tool} is missing: run scripts/deps.sh");
        }
        let dir = PathBuf::from(format!("/tmp/shoal-registry-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::create_dir_all(dir.join("certs")).unwrap();

        // The test's CA and the registry's certificate for 127.0.0.1.
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "shoal test registry CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let ca_file = dir.join("certs/ca.crt");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        std::fs::write(dir.join("server.crt"), cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();

        let htpasswd = Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]).output().unwrap();
        assert!(htpasswd.status.success());
        std::fs::write(dir.join("htpasswd"), &htpasswd.stdout).unwrap();

        let port = free_tcp_port();
        let host = format!("127.0.0.1:{port}");
        let d = dir.display();
        std::fs::write(
            dir.join("config.yml"),
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {d}/data}}}}\n\
                 http:\n  addr: {host}\n  tls: {{certificate: {d}/server.crt, key: {d}/server.key}}\n\
                 auth:\n  htpasswd: {{realm: shoal-test, path: {d}/htpasswd}}\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", dir.join("config.yml").to_str().unwrap()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let reg = TestRegistry { dir, host, ca_file, child };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&reg.host).is_err() {
            assert!(Instant::now() < deadline, "registry did not listen: {}", reg.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Pushes an image archive from images/out (an OCI layout tar or a
    /// `docker save` tar) as `REPO:TAG` with skopeo.
    pub fn push(&self, archive: &Path, repo_tag: &str) {
        let kind = if tar_has(archive, "index.json") {
            "oci-archive"
        } else {
            "docker-archive"
        };
        self.skopeo_copy(&[], &format!("{kind}:{}", archive.display()), repo_tag);
    }

    /// Pushes the image `name` of the OCI layout directory `layout`, an
    /// index with every manifest in it, as `REPO:TAG`.
    pub fn push_index(&self, layout: &Path, name: &str, repo_tag: &str) {
        self.skopeo_copy(&["--all"], &format!("oci:{}:{name}", layout.display()), repo_tag);
    }

    fn skopeo_copy(&self, extra: &[&str], from: &str, repo_tag: &str) {
        let out = Command::new("skopeo")
            .args(["copy", "-q"])
            .args(extra)
            .arg("--dest-cert-dir")
            .arg(self.dir.join("certs"))
            .args(["--dest-creds", &format!("{USER}:{PASSWORD}")])
            .arg(from)
            .arg(format!("docker://{}/{repo_tag}", self.host))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo push: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn tar_has(archive: &Path, name: &str) -> bool {
    let out = Command::new("tar").arg("tf").arg(archive).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim_start_matches("./") == name)
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! The shipped unit passes `systemd-analyze verify` (with ExecStart pointed
//! at the binary under test, since it is not installed here).

#[test]
fn unit_file_verifies() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/shoal.service")).unwrap();
    for must in ["Type=notify", "KillMode=process", "Delegate=yes", "WatchdogSec="] {
        assert!(unit.contains(must), "unit lacks {must}");
    }
    let dir = std::env::temp_dir().join(format!("shoal-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("shoal.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/shoal", env!("CARGO_BIN_EXE_shoal"))).unwrap();
    let out = std::process::Command::new("systemd-analyze").arg("verify").arg(&path).output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.expect("systemd-analyze (package systemd) is needed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("shoal.service"),
        "systemd-analyze verify: {err}"
    );
}

//! The shim: a small single-threaded process of the same binary that owns one
//! container. libcontainer forks its caller and changes process-wide state
//! (working directory, signal dispositions, subreaper), which a multi-threaded
//! tokio daemon must not have done to it; the shim takes that instead.
//!
//! `shoal shim run BUNDLE` mounts the rootfs, creates and starts the container
//! with its stdout and stderr going straight to the log file, prints
//! `ok <pid>` (or `error <message>`) on stdout, and then, as the container's
//! subreaper, waits for it. On exit it records `exit.json`, removes the
//! container and unmounts. The shim outlives the agent (`KillMode=process`),
//! so a restarted agent finds the container still supervised.

use super::cgroups;
use super::RuntimeError;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// What the agent tells the shim, written as `shim.json` in the bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    /// libcontainer container id.
    pub id: String,
    /// libcontainer state root.
    pub oci_root: PathBuf,
    /// Log file for stdout and stderr.
    pub log: PathBuf,
    /// Unpacked layers, bottom first.
    pub layers: Vec<PathBuf>,
    /// The container's cgroup, relative to each hierarchy root.
    pub cgroup: String,
}

/// How a container ended, written by the shim as `exit.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code, or 128 + signal.
    pub exit_code: i32,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// Whether the kernel's OOM killer ended it.
    pub oom_killed: bool,
    /// Unix milliseconds.
    pub started_at: u64,
    /// Unix milliseconds.
    pub finished_at: u64,
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError + '_ {
    move |source| RuntimeError::Io { path: path.into(), source }
}

/// Mounts a fresh overlay rootfs for the bundle: shared read-only layers
/// below, a new writable layer on top (a restarted container starts clean,
/// as in Kubernetes).
fn mount_rootfs(bundle: &Path, layers: &[PathBuf]) -> Result<(), RuntimeError> {
    let rootfs = bundle.join("rootfs");
    let _ = umount2(&rootfs, MntFlags::MNT_DETACH);
    for d in ["upper", "work"] {
        let _ = std::fs::remove_dir_all(bundle.join(d));
    }
    for d in ["rootfs", "upper", "work", "empty"] {
        let p = bundle.join(d);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
    }
    let mut lower: Vec<String> = layers.iter().rev().map(|p| p.display().to_string()).collect();
    if lower.is_empty() {
        lower.push(bundle.join("empty").display().to_string());
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        bundle.join("upper").display(),
        bundle.join("work").display()
    );
    mount(Some("overlay"), &rootfs, Some("overlay"), MsFlags::empty(), Some(opts.as_str())).map_err(|e| RuntimeError::Sys {
        what: format!("mount overlay on {}", rootfs.display()),
        source: e,
    })
}

/// Unmounts the rootfs and drops the writable layer.
pub fn unmount_rootfs(bundle: &Path) {
    let _ = umount2(&bundle.join("rootfs"), MntFlags::MNT_DETACH);
    for d in ["upper", "work"] {
        let _ = std::fs::remove_dir_all(bundle.join(d));
    }
}

/// Removes a libcontainer state left behind (after a reboot or a crash).
pub fn remove_stale(oci_root: &Path, id: &str) {
    let dir = oci_root.join(id);
    if dir.exists() {
        if let Ok(mut c) = Container::load(dir.clone()) {
            let _ = c.delete(true);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn create_and_start(cfg: &ShimConfig, bundle: &Path) -> Result<i32, RuntimeError> {
    // No layers: the bundle brings its own rootfs (the `run-bundle` benchmark path).
    if !cfg.layers.is_empty() {
        mount_rootfs(bundle, &cfg.layers)?;
    }
    std::fs::create_dir_all(&cfg.oci_root).map_err(io(&cfg.oci_root))?;
    remove_stale(&cfg.oci_root, &cfg.id);
    let log = OpenOptions::new().create(true).append(true).open(&cfg.log).map_err(io(&cfg.log))?;
    let log2 = log.try_clone().map_err(io(&cfg.log))?;
    let null = File::open("/dev/null").map_err(io(Path::new("/dev/null")))?;
    let lc = |e: libcontainer::error::LibcontainerError| RuntimeError::Libcontainer {
        id: cfg.id.clone(),
        message: e.to_string(),
    };
    let mut container = ContainerBuilder::new(cfg.id.clone(), SyscallType::default())
        .with_root_path(&cfg.oci_root)
        .map_err(lc)?
        .with_stdin(OwnedFd::from(null))
        .with_stdout(OwnedFd::from(log))
        .with_stderr(OwnedFd::from(log2))
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(lc)?;
    container.start().map_err(lc)?;
    container.pid().map(|p| p.as_raw()).ok_or_else(|| RuntimeError::Libcontainer {
        id: cfg.id.clone(),
        message: "started without a pid".into(),
    })
}

/// Entry point of `shoal shim run BUNDLE`. Never returns.
pub fn run(bundle: &Path) -> ! {
    let code = match run_inner(bundle) {
        Ok(()) => 0,
        Err(e) => {
            // Only reached before the start was reported: tell the agent.
            println!("error {e}");
            1
        }
    };
    std::process::exit(code)
}

fn run_inner(bundle: &Path) -> Result<(), RuntimeError> {
    let cfg_path = bundle.join("shim.json");
    let cfg: ShimConfig = serde_json::from_slice(&std::fs::read(&cfg_path).map_err(io(&cfg_path))?)
        .map_err(|e| RuntimeError::Spec(format!("{}: {e}", cfg_path.display())))?;
    // Our own session, so a signal to the agent's process group spares us.
    let _ = nix::unistd::setsid();
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| RuntimeError::Sys {
        what: "set subreaper".into(),
        source: e,
    })?;
    let _ = std::fs::remove_file(bundle.join("exit.json"));
    let pid = match create_and_start(&cfg, bundle) {
        Ok(pid) => pid,
        Err(e) => {
            remove_stale(&cfg.oci_root, &cfg.id);
            unmount_rootfs(bundle);
            return Err(e);
        }
    };
    let started_at = now_ms();
    println!("ok {pid}");
    let _ = std::io::stdout().flush();
    // Let the agent see end-of-file: point our stdout at /dev/null.
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 1);
    }
    let (exit_code, signal) = wait_for(pid);
    let oom_killed = signal == Some(libc::SIGKILL) && cgroups::oom_kills(&cfg.cgroup) > 0;
    remove_stale(&cfg.oci_root, &cfg.id);
    unmount_rootfs(bundle);
    let info = ExitInfo {
        exit_code,
        signal,
        oom_killed,
        started_at,
        finished_at: now_ms(),
    };
    let tmp = bundle.join("exit.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&info).expect("plain struct")).map_err(io(&tmp))?;
    std::fs::rename(&tmp, bundle.join("exit.json")).map_err(io(&tmp))?;
    Ok(())
}

/// Entry point of `shoal shim run-bundle BUNDLE ID`: the shim's create,
/// start, wait and delete on a plain OCI bundle, for comparison with other
/// runtimes on the very same bundle. Exits with the container's code.
pub fn run_bundle(bundle: &Path, id: &str) -> ! {
    let cfg = ShimConfig {
        id: id.into(),
        oci_root: PathBuf::from("/tmp/shoal-bench-state"),
        log: PathBuf::from("/dev/null"),
        layers: Vec::new(),
        cgroup: String::new(),
    };
    let _ = nix::sys::prctl::set_child_subreaper(true);
    match create_and_start(&cfg, bundle) {
        Ok(pid) => {
            let (code, _) = wait_for(pid);
            remove_stale(&cfg.oci_root, id);
            std::process::exit(code)
        }
        Err(e) => {
            remove_stale(&cfg.oci_root, id);
            eprintln!("{e}");
            std::process::exit(125)
        }
    }
}

/// Reaps children until `pid` exits; returns its exit code and signal.
pub fn wait_for(pid: i32) -> (i32, Option<i32>) {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return (code, None),
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => return (128 + sig as i32, Some(sig as i32)),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            // No children left: the container is gone without us seeing it.
            Err(_) => return (255, None),
        }
    }
}

/// Reads `exit.json` of a bundle, if the shim wrote one.
pub fn read_exit(bundle: &Path) -> Option<ExitInfo> {
    serde_json::from_slice(&std::fs::read(bundle.join("exit.json")).ok()?).ok()
}

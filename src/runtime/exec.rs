//! `exec`: run a command in a running container, through a shim process.

use super::{shim, Runtime, RuntimeError};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

impl Runtime {
    /// Spawns `shoal shim exec` for container `name`; its stdout and stderr
    /// are the command's, its exit code the command's.
    pub fn exec(&self, uid: &str, name: &str, command: &[String]) -> Result<tokio::process::Child, RuntimeError> {
        tokio::process::Command::new(&self.exe)
            .args(["shim", "exec"])
            .arg(self.paths.oci_root())
            .arg(self.paths.container_id(uid, name))
            .arg("--")
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RuntimeError::Io {
                path: self.exe.clone(),
                source: e,
            })
    }
}

/// Host pid of the command once it runs, for the SIGTERM handler.
static COMMAND: AtomicI32 = AtomicI32::new(0);
/// Set by the SIGTERM handler.
static TERMINATED: AtomicBool = AtomicBool::new(false);

/// SIGTERM to the shim kills the command (a probe's timeout): killing only
/// the shim would leave the command running in the container.
extern "C" fn on_sigterm(_: libc::c_int) {
    TERMINATED.store(true, Ordering::SeqCst);
    let pid = COMMAND.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe and takes no pointers.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Entry point of `shoal shim exec ROOT ID -- CMD...`. Never returns.
pub fn exec_main(oci_root: &Path, id: &str, command: Vec<String>) -> ! {
    let run = || -> Result<i32, String> {
        nix::sys::prctl::set_child_subreaper(true).map_err(|e| e.to_string())?;
        let term = SigAction::new(SigHandler::Handler(on_sigterm), SaFlags::SA_RESTART, SigSet::empty());
        // SAFETY: the handler only touches atomics and calls kill(2), both
        // async-signal-safe.
        unsafe { sigaction(Signal::SIGTERM, &term) }.map_err(|e| e.to_string())?;
        let pid = ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_root_path(oci_root)
            .map_err(|e| e.to_string())?
            .as_tenant()
            .with_container_args(command)
            .with_detach(false)
            .build()
            .map_err(|e| e.to_string())?;
        COMMAND.store(pid.as_raw(), Ordering::SeqCst);
        if TERMINATED.load(Ordering::SeqCst) {
            // SIGTERM came while the command was being started.
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
        Ok(shim::wait_for(pid.as_raw()).0)
    };
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("shoal exec: {e}");
            std::process::exit(126)
        }
    }
}

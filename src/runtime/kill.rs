//! `kill`: signal a container's process.

use super::Runtime;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

impl Runtime {
    /// Sends `signal` to the container process `pid`; a process that is
    /// already gone is not an error.
    pub fn kill(&self, pid: i32, signal: Signal) {
        if pid > 0 {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }
}

//! Processes we did not necessarily spawn: identity across pid reuse, and
//! waiting for their exit through a pidfd.

use std::os::fd::{FromRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;

/// A process's start time in clock ticks since boot (field 22 of `stat`),
/// `None` when it does not exist.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether `pid` is still the process that started at `start`.
pub fn is_same(pid: i32, start: u64) -> bool {
    pid > 0 && start_time(pid) == Some(start) && !is_zombie(pid)
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(true)
}

/// Resolves when process `pid` exits (works for processes that are not our
/// children, such as shims adopted after an agent restart).
pub async fn exited(pid: i32) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return;
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the AsyncFd owns the OwnedFd, so the fd stays open for as long
    // as it is registered and is closed only after deregistration.
    let Ok(afd) = (unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }) else {
        return;
    };
    let _ = afd.readable().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_itself() {
        let pid = std::process::id() as i32;
        let start = start_time(pid).unwrap();
        assert!(is_same(pid, start));
        assert!(!is_same(pid, start + 1));
    }

    #[tokio::test]
    async fn pidfd_sees_a_child_exit() {
        let mut child = tokio::process::Command::new("sleep").arg("0.1").spawn().unwrap();
        let pid = child.id().unwrap() as i32;
        let (_, _) = tokio::join!(exited(pid), child.wait());
    }
}

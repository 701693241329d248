//! A pod's sandbox: the network, IPC and UTS namespaces its containers share,
//! kept alive by bind mounts under `DATA/pods/<uid>/ns/` so they outlive any
//! one container and the agent.
//!
//! Creation runs in `shoal shim sandbox DIR HOSTNAME`: `unshare` would move
//! the calling thread of the daemon into the new namespaces.

use super::RuntimeError;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use std::path::Path;

const KINDS: [&str; 3] = ["net", "ipc", "uts"];

/// Whether the namespaces under `dir` are mounted (after a reboot they are not).
pub fn is_ready(dir: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    KINDS.iter().all(|k| {
        let p = dir.join(k).display().to_string();
        mounts.lines().any(|l| l.split(' ').nth(4) == Some(p.as_str()))
    })
}

/// Entry point of `shoal shim sandbox`: creates and pins the namespaces.
pub fn create(dir: &Path, hostname: &str) -> Result<(), RuntimeError> {
    remove(dir);
    std::fs::create_dir_all(dir).map_err(|e| RuntimeError::Io {
        path: dir.into(),
        source: e,
    })?;
    for k in KINDS {
        let p = dir.join(k);
        std::fs::write(&p, b"").map_err(|e| RuntimeError::Io {
            path: p.clone(),
            source: e,
        })?;
    }
    let sys = |what: &str| {
        let what = what.to_string();
        move |source| RuntimeError::Sys { what, source }
    };
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS).map_err(sys("unshare pod namespaces"))?;
    nix::unistd::sethostname(hostname).map_err(sys("sethostname"))?;
    loopback_up().map_err(sys("bring up lo"))?;
    for k in KINDS {
        let src = format!("/proc/self/ns/{k}");
        mount(Some(src.as_str()), &dir.join(k), None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(sys(&format!("bind {src}")))?;
    }
    Ok(())
}

/// Unmounts and removes the namespaces of a pod.
/// Mounts a tmpfs at `dir` unless one is there (it goes with a reboot;
/// the starts after it write its contents again).
pub fn ensure_tmpfs(dir: &Path) -> Result<(), crate::runtime::RuntimeError> {
    use nix::mount::{mount, MsFlags};
    let io = |e: std::io::Error| crate::runtime::RuntimeError::Io {
        path: dir.to_path_buf(),
        source: e,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let is_tmpfs = nix::sys::statfs::statfs(dir).map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
    if is_tmpfs.unwrap_or(false) {
        return Ok(());
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some("mode=0700,size=32m")).map_err(|e| crate::runtime::RuntimeError::Sys {
        what: format!("mount tmpfs on {}", dir.display()),
        source: e,
    })
}

/// Unmounts the pod's tmpfs (its Secrets' values go with it).
pub fn remove_tmpfs(dir: &Path) {
    let _ = umount2(dir, MntFlags::MNT_DETACH);
}

pub fn remove(dir: &Path) {
    for k in KINDS {
        let _ = umount2(&dir.join(k), MntFlags::MNT_DETACH);
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn loopback_up() -> nix::Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: the fd is a live socket and `req` a valid ifreq naming "lo";
    // SIOCGIFFLAGS fills ifru_flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: ifru_flags is the member SIOCGIFFLAGS just wrote.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above; SIOCSIFFLAGS reads ifru_flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(nix::errno::Errno::last());
    }
    Ok(())
}

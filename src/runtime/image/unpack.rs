//! Unpacks one layer tar into its own directory, converting OCI whiteouts to
//! overlayfs ones (`.wh.NAME` → a 0:0 character device, `.wh..wh..opq` → the
//! `trusted.overlay.opaque` xattr), so the layer can be a lower dir as is.
//!
//! Refused, naming the entry: absolute paths, `..`, writing through a symlink,
//! symlinks whose relative target climbs out of the root, hard links outside
//! the layer.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// A layer could not be unpacked; the partial directory must be discarded.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// An entry is unsafe or malformed.
    #[error("layer entry {entry:?}: {reason}")]
    Refused {
        /// The entry's path as written in the archive.
        entry: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Reading the archive or writing the file failed.
    #[error("layer entry {entry:?}: {source}")]
    Io {
        /// The entry being written.
        entry: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// Checks an archive path and returns it relative, without `.` components.
pub fn safe_relative(raw: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
            Component::ParentDir => return Err("path contains \"..\""),
        }
    }
    Ok(out)
}

/// Whether a symlink at `link` (relative to the root) pointing to `target`
/// stays inside the root when resolved lexically.
fn symlink_stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        // Resolved against the container's own root at run time.
        return true;
    }
    let mut depth = link.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Unpacks the tar stream `reader` into the empty directory `dest`.
pub fn unpack_layer<R: Read>(reader: R, dest: &Path) -> Result<(), UnpackError> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|source| UnpackError::Io {
        entry: String::new(),
        source,
    })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| UnpackError::Io {
            entry: String::new(),
            source,
        })?;
        let raw = entry
            .path()
            .map_err(|source| UnpackError::Io {
                entry: String::new(),
                source,
            })?
            .into_owned();
        let name = raw.display().to_string();
        let refused = |reason| UnpackError::Refused {
            entry: name.clone(),
            reason,
        };
        let io = |source| UnpackError::Io {
            entry: name.clone(),
            source,
        };
        let rel = safe_relative(&raw).map_err(refused)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let parent = rel.parent().unwrap_or(Path::new(""));
        ensure_parents(dest, parent).map_err(|e| match e {
            ParentError::Symlink => refused("would be written through a symlink"),
            ParentError::Io(source) => io(source),
        })?;
        let file_name = rel.file_name().expect("non-empty normal path").as_bytes();
        if let Some(hidden) = file_name.strip_prefix(b".wh.") {
            if hidden == b".wh..opq" {
                xattr_set(&dest.join(parent), "trusted.overlay.opaque", b"y").map_err(io)?;
            } else {
                let target = dest.join(parent).join(OsStr::from_bytes(hidden));
                remove_any(&target).map_err(io)?;
                nix::sys::stat::mknod(&target, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0)
                    .map_err(|e| io(e.into()))?;
            }
            continue;
        }
        let path = dest.join(&rel);
        let header = entry.header();
        let mode = header.mode().map_err(io)? & 0o7777;
        // Some writers leave the id fields blank; that means root.
        let (uid, gid) = (header.uid().unwrap_or(0) as u32, header.gid().unwrap_or(0) as u32);
        let kind = header.entry_type();
        match kind {
            tar::EntryType::Directory => {
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove_any(&path).map_err(io)?;
                        fs::create_dir(&path).map_err(io)?;
                    }
                    Err(_) => fs::create_dir(&path).map_err(io)?,
                }
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(io)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_any(&path).map_err(io)?;
                let mut f = fs::File::create(&path).map_err(io)?;
                io::copy(&mut entry, &mut f).map_err(io)?;
                f.set_permissions(fs::Permissions::from_mode(mode)).map_err(io)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(io)?
                    .ok_or_else(|| refused("symlink without target"))?
                    .into_owned();
                if !symlink_stays_inside(&rel, &target) {
                    return Err(refused("symlink target escapes the root"));
                }
                remove_any(&path).map_err(io)?;
                symlink(&target, &path).map_err(io)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(io)?
                    .ok_or_else(|| refused("hard link without target"))?
                    .into_owned();
                let target_rel = safe_relative(&target).map_err(|_| refused("hard link target outside the layer"))?;
                let tparent = target_rel.parent().unwrap_or(Path::new(""));
                ensure_parents(dest, tparent).map_err(|_| refused("hard link target behind a symlink"))?;
                let source = dest.join(&target_rel);
                if fs::symlink_metadata(&source).map(|m| m.file_type().is_symlink()).unwrap_or(true) {
                    return Err(refused("hard link target missing or a symlink"));
                }
                remove_any(&path).map_err(io)?;
                fs::hard_link(&source, &path).map_err(io)?;
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                use nix::sys::stat::{makedev, mknod, Mode, SFlag};
                let flag = match kind {
                    tar::EntryType::Char => SFlag::S_IFCHR,
                    tar::EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let dev = makedev(
                    header.device_major().map_err(io)?.unwrap_or(0) as u64,
                    header.device_minor().map_err(io)?.unwrap_or(0) as u64,
                );
                remove_any(&path).map_err(io)?;
                mknod(&path, flag, Mode::from_bits_truncate(mode), dev).map_err(|e| io(e.into()))?;
            }
            // PAX and GNU metadata entries are consumed by the tar crate.
            _ => continue,
        }
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(io)?;
        if kind != tar::EntryType::Symlink && mode & 0o7000 != 0 {
            // chown clears set-id bits; put them back.
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(io)?;
        }
    }
    Ok(())
}

enum ParentError {
    Symlink,
    Io(io::Error),
}

/// Creates the missing directories of `parent` under `dest`, refusing to
/// pass through a symlink that an earlier entry of this layer created.
fn ensure_parents(dest: &Path, parent: &Path) -> Result<(), ParentError> {
    let mut cur = dest.to_path_buf();
    for c in parent.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => return Err(ParentError::Symlink),
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                fs::remove_file(&cur).map_err(ParentError::Io)?;
                fs::create_dir(&cur).map_err(ParentError::Io)?;
            }
            Err(_) => fs::create_dir(&cur).map_err(ParentError::Io)?,
        }
    }
    Ok(())
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn xattr_set(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    use std::ffi::CString;
    let p = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::other("path has NUL"))?;
    let n = CString::new(name).map_err(|_| io::Error::other("name has NUL"))?;
    // SAFETY: both strings are valid NUL-terminated C strings and `value` is a
    // live slice for the length passed.
    let rc = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_size(0);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            // Bypass the builder's own path checks: we test hostile archives.
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            h.set_cksum();
            b.append(&h, &[][..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn unpack(entries: &[(&str, tar::EntryType, &str)]) -> Result<tempfile::TempDir, UnpackError> {
        let dir = tempfile::tempdir().unwrap();
        unpack_layer(&tar_with(entries)[..], dir.path()).map(|_| dir)
    }

    #[test]
    fn dotdot_entries_are_refused() {
        let err = unpack(&[("../evil", tar::EntryType::Regular, "")]).unwrap_err();
        assert!(err.to_string().contains("\"..\""), "{err}");
    }

    #[test]
    fn absolute_entries_are_refused() {
        let err = unpack(&[("/etc/evil", tar::EntryType::Regular, "")]).unwrap_err();
        assert!(err.to_string().contains("absolute"), "{err}");
    }

    #[test]
    fn escaping_symlinks_are_refused() {
        let err = unpack(&[("a/link", tar::EntryType::Symlink, "../../etc")]).unwrap_err();
        assert!(err.to_string().contains("escapes"), "{err}");
    }

    #[test]
    fn writing_through_a_symlink_is_refused() {
        let err = unpack(&[
            ("link", tar::EntryType::Symlink, "/tmp"),
            ("link/evil", tar::EntryType::Regular, ""),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("through a symlink"), "{err}");
    }

    #[test]
    fn inside_symlinks_and_hardlinks_unpack() {
        let dir = unpack(&[
            ("bin/busybox", tar::EntryType::Regular, ""),
            ("bin/sh", tar::EntryType::Symlink, "busybox"),
            ("bin/ls", tar::EntryType::Symlink, "/bin/busybox"),
            ("bin/cat", tar::EntryType::Link, "bin/busybox"),
        ])
        .unwrap();
        assert_eq!(fs::read_link(dir.path().join("bin/sh")).unwrap(), Path::new("busybox"));
        assert!(dir.path().join("bin/cat").is_file());
    }

    #[test]
    fn hardlink_out_of_the_layer_is_refused() {
        let err = unpack(&[("x", tar::EntryType::Link, "../../etc/shadow")]).unwrap_err();
        assert!(err.to_string().contains("hard link"), "{err}");
    }
}

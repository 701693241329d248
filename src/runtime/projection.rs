//! ConfigMaps and Secrets as a pod sees them: the values its environment
//! and volumes refer to (taken from the node's replica when a container
//! starts, and again when they change), the files a configMap or secret
//! volume shows, and the kubelet's atomic writer that puts them in place.
//!
//! A volume directory holds `..<stamp>/` with the files, `..data` pointing
//! at it, and one link per top-level name into `..data`. An update writes a
//! new stamp directory and swaps `..data` with one rename, so a process in
//! the container reads either the old set or the new one, never a mix.

use crate::api::manifest::{KeyToPath, Pod, Volume};
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Values by key.
pub type Values = BTreeMap<String, Vec<u8>>;

/// The ConfigMaps and Secrets a pod refers to, by name; one the state does
/// not have is absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodConfigs {
    /// ConfigMaps.
    pub config_maps: BTreeMap<String, Values>,
    /// Secrets.
    pub secrets: BTreeMap<String, Values>,
}

/// Which kind an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

impl Source {
    /// As Kubernetes names the kind.
    pub fn kind(self) -> &'static str {
        match self {
            Source::ConfigMap => "ConfigMap",
            Source::Secret => "Secret",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Source::ConfigMap => "configmap",
            Source::Secret => "secret",
        }
    }
}

/// Why a container cannot start with what it refers to
/// (`CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The object does not exist.
    #[error("{} {name:?} not found", of.word())]
    Missing {
        /// Its kind.
        of: Source,
        /// Its name.
        name: String,
    },
    /// The key is not in it.
    #[error("couldn't find key {key} in {} {namespace}/{name}", of.kind())]
    NoKey {
        /// Its kind.
        of: Source,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The key.
        key: String,
    },
}

impl PodConfigs {
    /// The names `pod` refers to in env, envFrom and volumes, by kind.
    pub fn refs(pod: &Pod) -> Vec<(Source, String)> {
        let mut out = Vec::new();
        for c in pod.spec.init_containers.iter().chain(&pod.spec.containers) {
            for e in &c.env {
                if let Some(f) = &e.value_from {
                    if let Some(k) = &f.config_map_key_ref {
                        out.push((Source::ConfigMap, k.name.clone()));
                    }
                    if let Some(k) = &f.secret_key_ref {
                        out.push((Source::Secret, k.name.clone()));
                    }
                }
            }
            for e in &c.env_from {
                if let Some(r) = &e.config_map_ref {
                    out.push((Source::ConfigMap, r.name.clone()));
                }
                if let Some(r) = &e.secret_ref {
                    out.push((Source::Secret, r.name.clone()));
                }
            }
        }
        for v in &pod.spec.volumes {
            if let Some(c) = &v.config_map {
                out.push((Source::ConfigMap, c.name.clone()));
            }
            if let Some(s) = &v.secret {
                out.push((Source::Secret, s.secret_name.clone()));
            }
        }
        out.sort_by(|a, b| (a.0.kind(), &a.1).cmp(&(b.0.kind(), &b.1)));
        out.dedup();
        out
    }

    /// An object's values, if the state has it.
    pub fn get(&self, source: Source, name: &str) -> Option<&Values> {
        match source {
            Source::ConfigMap => self.config_maps.get(name),
            Source::Secret => self.secrets.get(name),
        }
    }
}

/// One file of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Relative path.
    pub path: String,
    /// Content.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// Kubernetes' default file mode of these volumes (0644).
pub const DEFAULT_MODE: u32 = 0o644;

/// The files a configMap or secret volume shows, or `None` for another
/// kind of volume.
pub fn files_of(vol: &Volume, namespace: &str, configs: &PodConfigs) -> Option<Result<Vec<File>, ConfigError>> {
    let (source, name, items, default_mode, optional) = match (&vol.config_map, &vol.secret) {
        (Some(c), _) => (Source::ConfigMap, &c.name, &c.items, c.default_mode, c.optional),
        (None, Some(s)) => (Source::Secret, &s.secret_name, &s.items, s.default_mode, s.optional),
        (None, None) => return None,
    };
    let optional = optional.unwrap_or(false);
    let mode = default_mode.map(|m| m as u32 & 0o777).unwrap_or(DEFAULT_MODE);
    let Some(values) = configs.get(source, name) else {
        return Some(if optional {
            Ok(Vec::new())
        } else {
            Err(ConfigError::Missing {
                of: source,
                name: name.clone(),
            })
        });
    };
    Some(select(values, items, mode, optional).map_err(|key| ConfigError::NoKey {
        of: source,
        namespace: namespace.into(),
        name: name.clone(),
        key,
    }))
}

fn select(values: &Values, items: &[KeyToPath], mode: u32, optional: bool) -> Result<Vec<File>, String> {
    if items.is_empty() {
        return Ok(values
            .iter()
            .map(|(k, v)| File {
                path: k.clone(),
                data: v.clone(),
                mode,
            })
            .collect());
    }
    let mut out = Vec::new();
    for it in items {
        match values.get(&it.key) {
            Some(v) => out.push(File {
                path: it.path.clone(),
                data: v.clone(),
                mode: it.mode.map(|m| m as u32 & 0o777).unwrap_or(mode),
            }),
            None if optional => {}
            None => return Err(it.key.clone()),
        }
    }
    Ok(out)
}

/// Puts `files` into `dir` as the kubelet's atomic writer does; returns
/// false when they were there already.
pub fn write(dir: &Path, files: &[File]) -> io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    if current(dir).as_deref() == Some(files) {
        return Ok(false);
    }
    let stamp = format!("..{}_{:08x}", crate::runtime::shim::now_ms(), rand::random::<u32>());
    let new = dir.join(&stamp);
    std::fs::create_dir(&new)?;
    let filled = (|| {
        for f in files {
            let p = new.join(&f.path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&p, &f.data)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode))?;
        }
        let tmp = dir.join(format!("..data_tmp{}", &stamp[1..]));
        std::os::unix::fs::symlink(&stamp, &tmp)?;
        std::fs::rename(&tmp, dir.join("..data"))
    })();
    if let Err(e) = filled {
        // Nothing half-written stays (on a full tmpfs, retries must not pile up).
        let _ = std::fs::remove_dir_all(&new);
        return Err(e);
    }
    // Top-level names: a link for each new one, none for a gone one.
    let tops: std::collections::BTreeSet<String> = files.iter().filter_map(|f| f.path.split('/').next().map(str::to_string)).collect();
    for t in &tops {
        let link = dir.join(t);
        if std::fs::symlink_metadata(&link).is_err() {
            match std::os::unix::fs::symlink(Path::new("..data").join(t), &link) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
    }
    // Everything but the set `..data` points at and the top-level links goes.
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "..data" || name == stamp || tops.contains(&name) {
            continue;
        }
        let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
    }
    Ok(true)
}

/// The files `dir` shows now, if it was written by [`write`].
fn current(dir: &Path) -> Option<Vec<File>> {
    let data = dir.join("..data");
    std::fs::read_link(&data).ok()?;
    let mut out = Vec::new();
    walk(&data, "", &mut out).ok()?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Some(out)
}

fn walk(root: &Path, prefix: &str, out: &mut Vec<File>) -> io::Result<()> {
    for e in std::fs::read_dir(root.join(prefix))? {
        let e = e?;
        let rel = if prefix.is_empty() {
            e.file_name().to_string_lossy().into_owned()
        } else {
            format!("{prefix}/{}", e.file_name().to_string_lossy())
        };
        let meta = e.metadata()?;
        if meta.is_dir() {
            walk(root, &rel, out)?;
        } else {
            out.push(File {
                data: std::fs::read(e.path())?,
                mode: meta.permissions().mode() & 0o777,
                path: rel,
            });
        }
    }
    Ok(())
}

/// Sorted by path, as [`current`] reads them back.
pub fn sorted(mut files: Vec<File>) -> Vec<File> {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &str, mode: u32) -> File {
        File {
            path: path.into(),
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn the_writer_swaps_whole_sets_and_drops_gone_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("vol");
        let one = sorted(vec![file("a", "1", 0o644), file("sub/b", "2", 0o600)]);
        assert!(write(&d, &one).unwrap());
        assert!(!write(&d, &one).unwrap(), "the same set is not written again");
        assert_eq!(std::fs::read_to_string(d.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(d.join("sub/b")).unwrap(), "2");
        assert_eq!(std::fs::metadata(d.join("sub/b")).unwrap().permissions().mode() & 0o777, 0o600);
        let first = std::fs::read_link(d.join("..data")).unwrap();
        let two = sorted(vec![file("a", "changed", 0o644)]);
        assert!(write(&d, &two).unwrap());
        assert_eq!(std::fs::read_to_string(d.join("a")).unwrap(), "changed");
        assert!(std::fs::symlink_metadata(d.join("sub")).is_err(), "a gone name is gone");
        assert!(!d.join(first).exists(), "the old set is removed");
        let stamps = std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_dir())
            .count();
        assert_eq!(stamps, 1);
    }

    #[test]
    fn items_pick_keys_and_modes_and_a_missing_key_is_named() {
        let values: Values = [("k1".to_string(), b"v1".to_vec()), ("k2".to_string(), b"v2".to_vec())].into();
        let items = vec![KeyToPath {
            key: "k2".into(),
            path: "dir/two".into(),
            mode: Some(0o400),
        }];
        let got = select(&values, &items, 0o644, false).unwrap();
        assert_eq!(got, vec![file("dir/two", "v2", 0o400)]);
        assert_eq!(select(&values, &[], 0o640, false).unwrap().len(), 2);
        let missing = vec![KeyToPath {
            key: "nope".into(),
            path: "x".into(),
            mode: None,
        }];
        assert_eq!(select(&values, &missing, 0o644, false), Err("nope".into()));
        assert!(select(&values, &missing, 0o644, true).unwrap().is_empty());
    }
}

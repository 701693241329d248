//! Reading an image archive: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/`) or a `docker save` tar (`manifest.json`, layer tars, config).
//!
//! Entries are streamed into `tmp/` while hashed; nothing reaches `blobs/` or
//! `layers/` before every digest was checked.

use super::platform::{self, Platform};
use super::store::{io_err, ImageError, ImageStore};
use super::unpack::{safe_relative, unpack_layer};
use super::ImageRef;
use crate::store::{ImageRecord, LayerRecord};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

struct Staged {
    path: PathBuf,
    digest: String,
    size: u64,
}

/// The archive's regular files by normalised name, in `tmp/`.
struct Staging {
    dir: PathBuf,
    files: HashMap<String, Staged>,
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Staging {
    fn get(&self, name: &str) -> Result<&Staged, ImageError> {
        self.files
            .get(name.trim_start_matches("./"))
            .ok_or_else(|| ImageError::Archive(format!("missing file {name:?}")))
    }

    fn blob(&self, digest: &str) -> Result<&Staged, ImageError> {
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| ImageError::Archive(format!("unsupported digest {digest:?} (sha256 only)")))?;
        let name = format!("blobs/sha256/{hex}");
        let s = self.get(&name)?;
        verify(&name, digest, &s.digest)?;
        Ok(s)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let s = self.get(name)?;
        std::fs::read(&s.path).map_err(io_err(&s.path))
    }
}

fn verify(name: &str, expected: &str, actual: &str) -> Result<(), ImageError> {
    if expected != actual {
        return Err(ImageError::DigestMismatch {
            name: name.into(),
            expected: expected.into(),
            actual: actual.into(),
        });
    }
    Ok(())
}

fn open_maybe_gzip(path: &Path) -> Result<Box<dyn Read>, ImageError> {
    let mut f = BufReader::new(File::open(path).map_err(io_err(path))?);
    let mut magic = [0u8; 4];
    let n = read_prefix(&mut f, &mut magic).map_err(io_err(path))?;
    let f = io::Cursor::new(magic[..n].to_vec()).chain(f);
    Ok(match magic {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(f)),
        [0x28, 0xb5, 0x2f, 0xfd] => {
            return Err(ImageError::Archive(format!(
                "{}: zstd compression is not supported",
                path.display()
            )))
        }
        _ => Box::new(f),
    })
}

fn read_prefix(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn stage(store: &ImageStore, archive: &Path) -> Result<Staging, ImageError> {
    let dir = store.root().join("tmp").join(format!("import-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let mut staging = Staging {
        dir,
        files: HashMap::new(),
    };
    let mut links = Vec::new();
    let mut tar = tar::Archive::new(open_maybe_gzip(archive)?);
    let entries = tar.entries().map_err(|e| ImageError::Archive(e.to_string()))?;
    for (i, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| ImageError::Archive(format!("not a tar archive: {e}")))?;
        let raw = entry.path().map_err(|e| ImageError::Archive(e.to_string()))?.into_owned();
        let rel = safe_relative(&raw).map_err(|why| ImageError::Archive(format!("entry {:?}: {why}", raw.display().to_string())))?;
        let name = rel.to_string_lossy().into_owned();
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let path = staging.dir.join(i.to_string());
                let mut out = File::create(&path).map_err(io_err(&path))?;
                let mut hasher = Sha256::new();
                let mut buf = vec![0u8; 1 << 16];
                let mut size = 0u64;
                loop {
                    let n = entry.read(&mut buf).map_err(io_err(&path))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    out.write_all(&buf[..n]).map_err(io_err(&path))?;
                    size += n as u64;
                }
                let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
                staging.files.insert(name, Staged { path, digest, size });
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                // docker save links duplicate layers; resolve inside the archive only.
                let target = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .ok_or_else(|| ImageError::Archive(format!("entry {name:?}: link without target")))?;
                let base = if entry.header().entry_type() == tar::EntryType::Symlink {
                    rel.parent().unwrap_or(Path::new("")).to_path_buf()
                } else {
                    PathBuf::new()
                };
                let joined = normalise(&base.join(&target))
                    .ok_or_else(|| ImageError::Archive(format!("entry {name:?}: link escapes the archive")))?;
                links.push((name, joined));
            }
            _ => {}
        }
    }
    for (name, target) in links {
        if let Some(s) = staging.files.get(&target) {
            let copy = Staged {
                path: s.path.clone(),
                digest: s.digest.clone(),
                size: s.size,
            };
            staging.files.insert(name, copy);
        }
    }
    Ok(staging)
}

fn normalise(p: &Path) -> Option<String> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(s) => parts.push(s),
            std::path::Component::ParentDir => {
                parts.pop()?;
            }
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.iter().map(|s| s.to_string_lossy()).collect::<Vec<_>>().join("/"))
}

/// One image ready to go into the store: its names, manifest, config and
/// verified layer files.
pub(super) struct Candidate {
    pub(super) references: Vec<String>,
    pub(super) manifest: Option<(String, Vec<u8>)>,
    pub(super) config: (String, Vec<u8>),
    pub(super) layers: Vec<(String, PathBuf, u64)>,
    pub(super) diff_ids: Vec<String>,
}

/// Imports every image of the archive; returns the records to store.
pub(super) fn import_archive(store: &ImageStore, archive: &Path) -> Result<Vec<ImageRecord>, ImageError> {
    let staging = stage(store, archive)?;
    let candidates = if staging.files.contains_key("index.json") {
        oci_layout(&staging)?
    } else if staging.files.contains_key("manifest.json") {
        docker_save(&staging)?
    } else {
        return Err(ImageError::Archive(
            "neither an OCI image layout (index.json) nor a docker save archive (manifest.json)".into(),
        ));
    };
    if candidates.is_empty() {
        return Err(ImageError::Archive("no image for this node's platform in the archive".into()));
    }
    let mut records = Vec::new();
    for c in candidates {
        records.extend(commit(store, c)?);
    }
    Ok(records)
}

fn oci_layout(st: &Staging) -> Result<Vec<Candidate>, ImageError> {
    let index = ImageIndex::from_reader(&st.read("index.json")?[..]).map_err(|e| ImageError::Archive(format!("index.json: {e}")))?;
    let mut out = Vec::new();
    for desc in index.manifests() {
        let annotations = desc.annotations().clone().unwrap_or_default();
        let name = annotations
            .get("io.containerd.image.name")
            .or_else(|| annotations.get("org.opencontainers.image.ref.name"))
            .cloned()
            .ok_or_else(|| ImageError::Archive(format!("manifest {} has no image name annotation", desc.digest())))?;
        let reference = ImageRef::parse(&name)?.to_string();
        let digest = desc.digest().to_string();
        let bytes = std::fs::read(&st.blob(&digest)?.path).map_err(|e| ImageError::Archive(e.to_string()))?;
        // A nested index (multi-platform): pick this node's platform.
        let (digest, bytes) = if desc.media_type().to_string().contains("index") {
            let nested = ImageIndex::from_reader(&bytes[..]).map_err(|e| ImageError::Archive(format!("{digest}: {e}")))?;
            let m =
                platform::choose(&Platform::host(), nested.manifests()).map_err(|e| ImageError::Archive(format!("{reference}: {e}")))?;
            let d = m.digest().to_string();
            let b = std::fs::read(&st.blob(&d)?.path).map_err(|e| ImageError::Archive(e.to_string()))?;
            (d, b)
        } else {
            (digest, bytes)
        };
        let manifest = ImageManifest::from_reader(&bytes[..]).map_err(|e| ImageError::Archive(format!("manifest {digest}: {e}")))?;
        let cfg_digest = manifest.config().digest().to_string();
        let cfg = std::fs::read(&st.blob(&cfg_digest)?.path).map_err(|e| ImageError::Archive(e.to_string()))?;
        let config = ImageConfiguration::from_reader(&cfg[..]).map_err(|e| ImageError::Archive(format!("config {cfg_digest}: {e}")))?;
        let mut layers = Vec::new();
        for l in manifest.layers() {
            let d = l.digest().to_string();
            let s = st.blob(&d)?;
            layers.push((d, s.path.clone(), s.size));
        }
        out.push(Candidate {
            references: vec![reference],
            manifest: Some((digest, bytes)),
            diff_ids: config.rootfs().diff_ids().clone(),
            config: (cfg_digest, cfg),
            layers,
        });
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn docker_save(st: &Staging) -> Result<Vec<Candidate>, ImageError> {
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&st.read("manifest.json")?).map_err(|e| ImageError::Archive(format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for e in entries {
        let cfg_file = st.get(&e.config)?;
        let cfg = std::fs::read(&cfg_file.path).map_err(io_err(&cfg_file.path))?;
        // The config file is named by its digest in both docker save layouts.
        let named = e.config.trim_end_matches(".json").rsplit('/').next().unwrap_or("").to_string();
        if named.len() == 64 {
            verify(&e.config, &format!("sha256:{named}"), &cfg_file.digest)?;
        }
        let config = ImageConfiguration::from_reader(&cfg[..]).map_err(|err| ImageError::Archive(format!("{}: {err}", e.config)))?;
        let diff_ids = config.rootfs().diff_ids().clone();
        if diff_ids.len() != e.layers.len() {
            return Err(ImageError::Archive(format!(
                "{}: {} layers but {} diff_ids",
                e.config,
                e.layers.len(),
                diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (name, diff_id) in e.layers.iter().zip(&diff_ids) {
            let s = st.get(name)?;
            // Layers here are plain tars, so the file's digest is its diff_id.
            verify(name, diff_id, &s.digest)?;
            layers.push((s.digest.clone(), s.path.clone(), s.size));
        }
        let references = e
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| ImageRef::parse(t).map(|r| r.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if references.is_empty() {
            return Err(ImageError::Archive(format!(
                "{}: image has no RepoTags; tag it before saving",
                e.config
            )));
        }
        out.push(Candidate {
            references,
            manifest: None,
            config: (cfg_file.digest.clone(), cfg),
            layers,
            diff_ids,
        });
    }
    Ok(out)
}

fn place_blob(store: &ImageStore, digest: &str, from: &Path) -> Result<(), ImageError> {
    let dest = store.blob_path(digest);
    if !dest.exists() {
        std::fs::copy(from, &dest).map_err(io_err(&dest))?;
    }
    Ok(())
}

pub(super) fn commit(store: &ImageStore, c: Candidate) -> Result<Vec<ImageRecord>, ImageError> {
    let arch = ImageConfiguration::from_reader(&c.config.1[..])
        .map(|cfg| cfg.architecture().to_string())
        .unwrap_or_default();
    let host = Platform::host().architecture;
    if !arch.is_empty() && arch != host {
        return Err(ImageError::Archive(format!(
            "image {} is for {arch}; this node is {host}",
            c.references.join(", "),
        )));
    }
    let mut layer_records = Vec::new();
    for ((digest, path, size), diff_id) in c.layers.iter().zip(&c.diff_ids) {
        unpack_once(store, digest, diff_id, path)?;
        place_blob(store, digest, path)?;
        let gzip = File::open(path).and_then(|mut f| {
            let mut m = [0u8; 2];
            read_prefix(&mut f, &mut m).map(|n| n == 2 && m == [0x1f, 0x8b])
        });
        layer_records.push(LayerRecord {
            digest: digest.clone(),
            diff_id: diff_id.clone(),
            size: *size,
            gzip: gzip.unwrap_or(false),
        });
    }
    let config_text = String::from_utf8(c.config.1.clone()).map_err(|_| ImageError::Archive("config is not UTF-8".into()))?;
    let config_path = store.blob_path(&c.config.0);
    std::fs::write(&config_path, &c.config.1).map_err(io_err(&config_path))?;
    let manifest_digest = match &c.manifest {
        Some((d, bytes)) => {
            let p = store.blob_path(d);
            std::fs::write(&p, bytes).map_err(io_err(&p))?;
            d.clone()
        }
        // docker save has no manifest blob; the config digest identifies the image.
        None => c.config.0.clone(),
    };
    Ok(c.references
        .into_iter()
        .map(|reference| ImageRecord {
            reference,
            digest: manifest_digest.clone(),
            config: config_text.clone(),
            layers: layer_records.clone(),
        })
        .collect())
}

/// Unpacks a layer unless already present, checking its diff_id on the way.
/// Safe to run for one layer from two pulls at once: each works in a
/// directory of its own and the first to finish moves its result in.
pub(super) fn unpack_once(store: &ImageStore, digest: &str, diff_id: &str, blob: &Path) -> Result<(), ImageError> {
    let dest = store.layer_path(diff_id);
    if dest.exists() {
        return Ok(());
    }
    let work = store.root().join("tmp").join(format!(
        "layer-{}-{:08x}",
        diff_id.trim_start_matches("sha256:"),
        rand::random::<u32>()
    ));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(io_err(&work))?;
    let mut hashing = HashingReader {
        inner: open_maybe_gzip(blob)?,
        hasher: Sha256::new(),
    };
    let result = unpack_layer(&mut hashing, &work)
        .map_err(|source| ImageError::Unpack {
            digest: digest.into(),
            source,
        })
        .and_then(|_| io::copy(&mut hashing, &mut io::sink()).map_err(io_err(blob)));
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&work);
        return Err(e);
    }
    let actual = format!("sha256:{}", hex::encode(hashing.hasher.finalize()));
    if actual != diff_id {
        let _ = std::fs::remove_dir_all(&work);
        return Err(ImageError::DigestMismatch {
            name: format!("layer {digest} (uncompressed)"),
            expected: diff_id.into(),
            actual,
        });
    }
    match std::fs::rename(&work, &dest) {
        Ok(()) => Ok(()),
        Err(_) if dest.exists() => {
            // Another pull unpacked it first.
            let _ = std::fs::remove_dir_all(&work);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            Err(io_err(&dest)(e))
        }
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

//! The content-addressed image store.
//!
//! One store serves every pull, import and peer on the node at once: a blob
//! is downloaded by one task at a time (the others wait for it and then find
//! it in place), and layers are unpacked one commit at a time.

use super::import;
use super::reference::ImageRef;
use crate::api::wire::ImageInfo;
use crate::store::{ImageRecord, Store, StoreError};
use oci_spec::image::ImageConfiguration;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An image operation failed. Unless the text says otherwise, the store is
/// unchanged: import writes into `tmp/` and moves into place only after every
/// digest was checked.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The reference did not parse.
    #[error(transparent)]
    Reference(#[from] super::RefError),
    /// No such image in the local store.
    #[error("image {reference} is not in the local store")]
    NotFound {
        /// The normalised reference.
        reference: String,
    },
    /// A blob's content does not hash to its digest.
    #[error("blob {name}: digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch {
        /// The blob's name in the archive.
        name: String,
        /// The digest the manifest names.
        expected: String,
        /// What the content hashes to.
        actual: String,
    },
    /// The archive is not an OCI image layout nor a `docker save` tar.
    #[error("image archive: {0}")]
    Archive(String),
    /// A layer could not be unpacked safely.
    #[error("layer {digest}: {source}")]
    Unpack {
        /// The layer digest.
        digest: String,
        /// What went wrong.
        source: super::unpack::UnpackError,
    },
    /// The image is still used by a pod.
    #[error("image {reference} is used by pod {pod}; delete the pod first")]
    InUse {
        /// The reference.
        reference: String,
        /// `namespace/name` of a pod using it.
        pod: String,
    },
    /// File I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An image ready to run: its configuration and its layer directories.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// Normalised reference.
    pub reference: String,
    /// Its manifest's digest (its config's, for a `docker save` import).
    pub digest: String,
    /// ENTRYPOINT, CMD, ENV, WORKDIR, USER.
    pub config: ImageConfiguration,
    /// Unpacked layers, bottom first.
    pub layers: Vec<PathBuf>,
}

/// The content-addressed store of blobs and unpacked layers (a handle:
/// clones share it).
#[derive(Clone)]
pub struct ImageStore {
    root: PathBuf,
    db: Arc<Store>,
    /// One lock per blob being downloaded, by digest.
    downloads: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Held while a commit unpacks layers and records images.
    commits: Arc<Mutex<()>>,
    /// Counts changes to the set of images (for the node's report).
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io { path: path.into(), source }
}

impl ImageStore {
    /// Opens the store under `root`, clearing leftovers of interrupted
    /// imports. Partial downloads stay: they are checked against their
    /// digest when they complete.
    pub fn open(root: &Path, db: Arc<Store>) -> Result<ImageStore, ImageError> {
        for d in ["blobs/sha256", "layers", "tmp", "partial"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let tmp = root.join("tmp");
        for e in std::fs::read_dir(&tmp).map_err(io_err(&tmp))?.flatten() {
            let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
        }
        Ok(ImageStore {
            root: root.into(),
            db,
            downloads: Arc::default(),
            commits: Arc::default(),
            changes: Arc::new(tokio::sync::watch::channel(0).0),
        })
    }

    /// The lock a download of `digest` holds, shared by every task that
    /// wants that blob.
    pub(super) fn download_lock(&self, digest: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.downloads.lock().expect("download locks");
        // Drop the locks nobody holds or waits for, so the map stays small.
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry(digest.to_string()).or_default().clone()
    }

    /// Runs `f` as the only commit in progress.
    pub(super) fn committing<T>(&self, f: impl FnOnce() -> T) -> T {
        let _one = self.commits.lock().unwrap_or_else(|e| e.into_inner());
        f()
    }

    /// Where a download of `digest` accumulates until it is verified.
    pub(super) fn partial_path(&self, digest: &str) -> PathBuf {
        self.root.join("partial").join(digest.trim_start_matches("sha256:"))
    }

    /// A fresh path under `tmp/` for an upload.
    pub fn upload_path(&self) -> PathBuf {
        self.root.join("tmp").join(format!("upload-{:016x}", rand::random::<u64>()))
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// Where a verified blob lives.
    pub(super) fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
    }

    pub(super) fn layer_path(&self, diff_id: &str) -> PathBuf {
        self.root.join("layers").join(diff_id.trim_start_matches("sha256:"))
    }

    /// Imports an OCI image-layout or `docker save` archive (optionally gzip).
    pub fn import(&self, archive: &Path) -> Result<Vec<ImageInfo>, ImageError> {
        self.committing(|| {
            let records = import::import_archive(self, archive)?;
            self.put(&records)
        })
    }

    /// Changes to the set of images, as a counter to watch.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// This node's images as the cluster state lists them: one entry per
    /// manifest digest with every reference to it.
    pub fn node_images(&self) -> Result<Vec<crate::state::NodeImage>, ImageError> {
        let mut by_digest: std::collections::BTreeMap<String, crate::state::NodeImage> = Default::default();
        for i in self.list()? {
            let e = by_digest.entry(i.digest.clone()).or_insert_with(|| crate::state::NodeImage {
                names: Vec::new(),
                digest: i.digest.clone(),
                size_bytes: i.size,
            });
            e.names.push(i.reference);
        }
        Ok(by_digest.into_values().collect())
    }

    /// Records images whose blobs and layers are in place.
    pub(super) fn put(&self, records: &[ImageRecord]) -> Result<Vec<ImageInfo>, ImageError> {
        for r in records {
            self.db.put_image(r)?;
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(records.iter().map(info).collect())
    }

    /// When the image with manifest `digest` was last pulled, imported or
    /// started from (Unix ms; 0 if unknown).
    pub fn last_used_ms(&self, digest: &str) -> u64 {
        std::fs::metadata(self.blob_path(digest))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// Marks the image as used now (a container starts from it).
    pub fn touch(&self, digest: &str) {
        if let Ok(f) = std::fs::File::options().write(true).open(self.blob_path(digest)) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
    }

    /// Every stored reference.
    pub fn list(&self) -> Result<Vec<ImageInfo>, ImageError> {
        Ok(self.db.list_images()?.iter().map(info).collect())
    }

    /// Removes a reference and every blob and layer nothing else uses.
    /// `in_use` names the pod that still uses the reference, if any.
    /// It waits for a commit in progress, which may rely on the same layers.
    pub fn remove(&self, reference: &str, in_use: impl Fn(&str) -> Option<String>) -> Result<ImageInfo, ImageError> {
        self.committing(|| self.remove_now(reference, in_use))
    }

    fn remove_now(&self, reference: &str, in_use: impl Fn(&str) -> Option<String>) -> Result<ImageInfo, ImageError> {
        let reference = ImageRef::parse(reference)?.to_string();
        let rec = self.db.get_image(&reference)?.ok_or_else(|| ImageError::NotFound {
            reference: reference.clone(),
        })?;
        if let Some(pod) = in_use(&reference) {
            return Err(ImageError::InUse { reference, pod });
        }
        self.db.delete_image(&reference)?;
        self.changes.send_modify(|n| *n += 1);
        let rest = self.db.list_images()?;
        let keep = |f: &dyn Fn(&LayerRef) -> bool| rest.iter().flat_map(|i| i.layers.iter()).any(f);
        for layer in &rec.layers {
            if !keep(&|l| l.digest == layer.digest) {
                let _ = std::fs::remove_file(self.blob_path(&layer.digest));
            }
            if !keep(&|l| l.diff_id == layer.diff_id) {
                let _ = std::fs::remove_dir_all(self.layer_path(&layer.diff_id));
            }
        }
        if !rest.iter().any(|i| i.digest == rec.digest) {
            let _ = std::fs::remove_file(self.blob_path(&rec.digest));
        }
        Ok(info(&rec))
    }

    /// Looks an image up for running.
    pub fn resolve(&self, image: &str) -> Result<ResolvedImage, ImageError> {
        let reference = ImageRef::parse(image)?.to_string();
        let rec = self.db.get_image(&reference)?.ok_or_else(|| ImageError::NotFound {
            reference: reference.clone(),
        })?;
        let config = ImageConfiguration::from_reader(rec.config.as_bytes())
            .map_err(|e| ImageError::Archive(format!("stored config of {reference}: {e}")))?;
        let layers = rec.layers.iter().map(|l| self.layer_path(&l.diff_id)).collect();
        Ok(ResolvedImage {
            reference,
            digest: rec.digest,
            config,
            layers,
        })
    }
}

type LayerRef = crate::store::LayerRecord;

fn info(r: &ImageRecord) -> ImageInfo {
    ImageInfo {
        reference: r.reference.clone(),
        digest: r.digest.clone(),
        size: r.layers.iter().map(|l| l.size).sum(),
        nodes: Vec::new(),
    }
}

//! One blob into the store from any source (a registry, a peer): streamed to
//! `partial/<hex>` while it is hashed, moved into `blobs/` only when its
//! digest matches. A download cut off keeps its partial file, and the next
//! one asks the source for the rest (a range request) after hashing what is
//! there; a source that answers with the whole blob starts it over. A
//! digest mismatch removes the partial file, so a wrong prefix costs one
//! retry, never a corrupt blob. Concurrent downloads of one blob are one:
//! the others wait for it and then find it in place.

use super::pull::Progress;
use super::store::ImageStore;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The bytes of a blob from `offset` on, or all of them.
pub struct Body {
    /// The bytes.
    pub stream: BoxStream<'static, Result<Bytes, std::io::Error>>,
    /// Whether the stream starts at the offset asked for (else at 0).
    pub from_offset: bool,
}

/// Why a blob did not arrive.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The source failed (refused, or cut off: what arrived is kept).
    #[error("{0}")]
    Source(String),
    /// What arrived does not hash to the digest (and is removed).
    #[error("blob {expected}: digest mismatch: the content hashes to {actual}")]
    Digest {
        /// The digest asked for.
        expected: String,
        /// What the content hashes to.
        actual: String,
    },
    /// More bytes than the descriptor's size (removed).
    #[error("blob {digest}: more than the {size} bytes its descriptor gives")]
    TooLong {
        /// The blob.
        digest: String,
        /// Its size.
        size: u64,
    },
    /// Only sha256 digests are supported.
    #[error("blob {0}: unsupported digest algorithm (only sha256)")]
    Algorithm(String),
    /// The disk failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Progress is sent at most once per this many bytes of a blob.
const PROGRESS_STEP: u64 = 256 * 1024;

/// Makes sure the blob `digest` of `size` bytes is in the store, fetching it
/// with `open(offset)` if it is not; returns its path under `blobs/`.
pub async fn fetch<F, Fut>(store: &ImageStore, digest: &str, size: u64, progress: &Progress, open: F) -> Result<PathBuf, BlobError>
where
    F: FnOnce(u64) -> Fut,
    Fut: Future<Output = Result<Body, String>>,
{
    if !digest.starts_with("sha256:") {
        return Err(BlobError::Algorithm(digest.into()));
    }
    let lock = store.download_lock(digest);
    let _only = lock.lock().await;
    let dest = store.blob_path(digest);
    if dest.exists() {
        progress.bytes(digest, size);
        return Ok(dest);
    }
    let part = store.partial_path(digest);
    let io = |source| BlobError::Io {
        path: part.clone(),
        source,
    };
    let (mut have, mut hasher) = hash_prefix(&part, size).await.map_err(io)?;
    if size > 0 && have == size {
        // Complete but never moved (the agent stopped in between).
        if format!("sha256:{}", hex::encode(hasher.clone().finalize())) == digest {
            return place(&part, &dest, digest, size, progress).await;
        }
        tokio::fs::remove_file(&part).await.map_err(io)?;
        (have, hasher) = (0, Sha256::new());
    }
    let body = open(have).await.map_err(BlobError::Source)?;
    let mut file = if body.from_offset && have > 0 {
        tokio::fs::OpenOptions::new().append(true).open(&part).await.map_err(io)?
    } else {
        (have, hasher) = (0, Sha256::new());
        tokio::fs::File::create(&part).await.map_err(io)?
    };
    progress.bytes(digest, have);
    let mut stream = body.stream;
    let mut reported = have;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                // Keep what arrived for the next try.
                let _ = file.flush().await;
                return Err(BlobError::Source(format!(
                    "blob {digest}: cut off after {have} of {size} bytes: {e}"
                )));
            }
        };
        have += chunk.len() as u64;
        if size > 0 && have > size {
            drop(file);
            let _ = tokio::fs::remove_file(&part).await;
            return Err(BlobError::TooLong {
                digest: digest.into(),
                size,
            });
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io)?;
        if have - reported >= PROGRESS_STEP {
            reported = have;
            progress.bytes(digest, have);
        }
    }
    file.sync_all().await.map_err(io)?;
    drop(file);
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != digest {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(BlobError::Digest {
            expected: digest.into(),
            actual,
        });
    }
    place(&part, &dest, digest, have, progress).await
}

async fn place(part: &std::path::Path, dest: &std::path::Path, digest: &str, size: u64, progress: &Progress) -> Result<PathBuf, BlobError> {
    tokio::fs::rename(part, dest)
        .await
        .map_err(|source| BlobError::Io { path: dest.into(), source })?;
    progress.bytes(digest, size);
    Ok(dest.into())
}

/// The length and running hash of a partial download; a partial file
/// longer than the blob is dropped.
async fn hash_prefix(part: &std::path::Path, size: u64) -> std::io::Result<(u64, Sha256)> {
    let mut hasher = Sha256::new();
    let mut f = match tokio::fs::File::open(part).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, hasher)),
        Err(e) => return Err(e),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let got = f.read(&mut buf).await?;
        if got == 0 {
            break;
        }
        hasher.update(&buf[..got]);
        n += got as u64;
    }
    if size > 0 && n > size {
        tokio::fs::remove_file(part).await?;
        return Ok((0, Sha256::new()));
    }
    Ok((n, hasher))
}

//! The node's local state in one SQLite file (WAL): pods with their status and
//! runtime handles, and image references.
//!
//! ```text
//! pods(namespace, name, uid, manifest JSON, created_at, status JSON, runtime JSON)
//! images(reference, digest, config JSON, layers JSON, size)
//! meta(key, value)            -- boot id of the last start, gossip generation, last pod IP
//! pod_ips(ip, uid)            -- pod addresses from the node's subnet (ipam.rs)
//! ```
//! Writes happen only on changes of state, never on a timer, to spare SD cards.

use crate::api::manifest::Pod;
use crate::api::status::PodStatus;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod ipam;

/// A store operation failed; the transaction was rolled back.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        source: rusqlite::Error,
    },
    /// A stored JSON column did not decode.
    #[error("store {path}: corrupt row: {source}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
}

/// How the agent finds a container process again after its own restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeHandle {
    /// Container name.
    pub container: String,
    /// Pid of the shim that supervises it.
    pub shim_pid: i32,
    /// The shim's start time in clock ticks since boot (guards against pid reuse).
    pub shim_start: u64,
}

/// A pod as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodRecord {
    /// The manifest.
    pub pod: Pod,
    /// Unique id of this incarnation.
    pub uid: String,
    /// Unix milliseconds.
    pub created_at: u64,
    /// Last known status.
    pub status: PodStatus,
    /// Live shims.
    pub runtime: Vec<RuntimeHandle>,
}

impl PodRecord {
    /// `(namespace, name)`.
    pub fn key(&self) -> (String, String) {
        (self.pod.metadata.namespace().to_string(), self.pod.metadata.name.clone())
    }
}

/// One layer of a stored image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the blob as stored (compressed or not).
    pub digest: String,
    /// Digest of the uncompressed tar.
    pub diff_id: String,
    /// Blob size in bytes.
    pub size: u64,
    /// Whether the blob is gzip-compressed.
    pub gzip: bool,
}

/// A stored image reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Normalised reference.
    pub reference: String,
    /// Manifest digest.
    pub digest: String,
    /// The image configuration JSON, as in the config blob.
    pub config: String,
    /// Layers, bottom first.
    pub layers: Vec<LayerRecord>,
}

/// The SQLite store. A std `Mutex` is right here: every critical section is
/// one short statement or transaction and never awaits.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pods (
  namespace TEXT NOT NULL, name TEXT NOT NULL, uid TEXT NOT NULL,
  manifest TEXT NOT NULL, created_at INTEGER NOT NULL,
  status TEXT NOT NULL, runtime TEXT NOT NULL,
  PRIMARY KEY (namespace, name));
CREATE TABLE IF NOT EXISTS images (
  reference TEXT PRIMARY KEY, digest TEXT NOT NULL, config TEXT NOT NULL, layers TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pod_ips (ip TEXT PRIMARY KEY, uid TEXT NOT NULL UNIQUE);
";

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let err = |source| StoreError::Sqlite { path: path.into(), source };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        // FULL: an acknowledged apply must survive a power cut; writes are
        // rare (changes of state only), so the fsync per commit is cheap.
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        conn.pragma_update(None, "busy_timeout", 5000).map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.into(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, source: serde_json::Error) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            source,
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts or replaces a pod.
    pub fn put_pod(&self, rec: &PodRecord) -> Result<(), StoreError> {
        let (ns, name) = rec.key();
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO pods VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    ns,
                    name,
                    rec.uid,
                    json(&rec.pod),
                    rec.created_at as i64,
                    json(&rec.status),
                    json(&rec.runtime)
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// All pods, ordered by namespace and name.
    pub fn list_pods(&self) -> Result<Vec<PodRecord>, StoreError> {
        self.query_pods(
            "SELECT manifest, uid, created_at, status, runtime FROM pods ORDER BY namespace, name",
            &[],
        )
    }

    /// One pod.
    pub fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<PodRecord>, StoreError> {
        let sql = "SELECT manifest, uid, created_at, status, runtime FROM pods WHERE namespace = ?1 AND name = ?2";
        Ok(self.query_pods(sql, &[&namespace, &name])?.pop())
    }

    fn query_pods(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<PodRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (m, uid, created, s, rt) = row.map_err(|e| self.err(e))?;
            out.push(PodRecord {
                pod: serde_json::from_str(&m).map_err(|e| self.corrupt(e))?,
                uid,
                created_at: created as u64,
                status: serde_json::from_str(&s).map_err(|e| self.corrupt(e))?,
                runtime: serde_json::from_str(&rt).map_err(|e| self.corrupt(e))?,
            });
        }
        Ok(out)
    }

    /// Removes a pod; true if it existed.
    pub fn delete_pod(&self, namespace: &str, name: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM pods WHERE namespace = ?1 AND name = ?2", params![namespace, name])
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// Inserts or replaces an image reference.
    pub fn put_image(&self, rec: &ImageRecord) -> Result<(), StoreError> {
        let layers = serde_json::to_string(&rec.layers).expect("plain struct");
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO images VALUES (?1, ?2, ?3, ?4)",
                params![rec.reference, rec.digest, rec.config, layers],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// All image references.
    pub fn list_images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT reference, digest, config, layers FROM images ORDER BY reference")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?)))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (reference, digest, config, layers) = row.map_err(|e| self.err(e))?;
            out.push(ImageRecord {
                reference,
                digest,
                config,
                layers: serde_json::from_str(&layers).map_err(|e| self.corrupt(e))?,
            });
        }
        Ok(out)
    }

    /// One image reference.
    pub fn get_image(&self, reference: &str) -> Result<Option<ImageRecord>, StoreError> {
        Ok(self.list_images()?.into_iter().find(|i| i.reference == reference))
    }

    /// Removes an image reference; true if it existed.
    pub fn delete_image(&self, reference: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM images WHERE reference = ?1", params![reference])
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// A value of the meta table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Sets a value of the meta table.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("INSERT OR REPLACE INTO meta VALUES (?1, ?2)", params![key, value])
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("stored types serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shoal.db");
        let pod: Pod =
            serde_yaml_ng::from_str("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: busybox}]}")
                .unwrap();
        let rec = PodRecord {
            pod,
            uid: "u1".into(),
            created_at: 5,
            status: PodStatus::default(),
            runtime: vec![],
        };
        Store::open(&path).unwrap().put_pod(&rec).unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.get_pod("default", "a").unwrap(), Some(rec));
        assert!(store.delete_pod("default", "a").unwrap());
        assert!(store.list_pods().unwrap().is_empty());
    }
}

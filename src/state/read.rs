//! Reads of the replicated state from this node's own copy, and the row
//! helpers [`apply`](super::apply) writes with.

use super::workload::{Kind, WorkloadObject};
use super::TokenRecord;
use super::{ClusterNetwork, Event, NodeObject, PodObject};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// The state tables; the Raft tables live beside them (`consensus::storage`).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sm_pods (
  namespace TEXT NOT NULL, name TEXT NOT NULL, uid TEXT NOT NULL, node TEXT, json TEXT NOT NULL,
  PRIMARY KEY (namespace, name));
CREATE INDEX IF NOT EXISTS sm_pods_node ON sm_pods (node);
CREATE TABLE IF NOT EXISTS sm_nodes (name TEXT PRIMARY KEY, raft_id INTEGER NOT NULL, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sm_tokens (id TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sm_joined (
  name TEXT PRIMARY KEY, key_sha256 TEXT NOT NULL, token TEXT NOT NULL, joined_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sm_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sm_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sm_workloads (
  kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, uid TEXT NOT NULL, json TEXT NOT NULL,
  PRIMARY KEY (kind, namespace, name));
CREATE TABLE IF NOT EXISTS sm_services (namespace TEXT NOT NULL, name TEXT NOT NULL, json TEXT NOT NULL,
  PRIMARY KEY (namespace, name));
CREATE TABLE IF NOT EXISTS sm_endpoints (kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
  json TEXT NOT NULL, PRIMARY KEY (kind, namespace, name));
CREATE TABLE IF NOT EXISTS sm_config (kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
  json TEXT NOT NULL, PRIMARY KEY (kind, namespace, name));
";

/// This node's copy of the cluster state: one SQLite connection shared by
/// the Raft storage (which writes) and every reader. A std `Mutex`: each
/// critical section is one statement or transaction and never awaits.
pub struct Replica {
    conn: Arc<Mutex<Connection>>,
    applied: watch::Sender<u64>,
    durable: bool,
}

impl Replica {
    /// Opens the database at `path` (WAL, `synchronous=FULL`), creating the tables.
    pub fn open(path: &Path) -> rusqlite::Result<Replica> {
        Replica::open_with(path, true)
    }

    /// As [`Replica::open`]; `durable: false` skips the fsyncs, for hollow
    /// members only (a hundred replicas on one test machine's disk).
    pub fn open_with(path: &Path, durable: bool) -> rusqlite::Result<Replica> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: the vote and every append are fsync'd before Raft hears "done".
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "OFF" })?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(crate::consensus::storage::SCHEMA)?;
        Ok(Replica {
            conn: Arc::new(Mutex::new(conn)),
            applied: watch::channel(0).0,
            durable,
        })
    }

    /// `synchronous` for writes that must be on disk when they return
    /// (`FULL`), and for those the next such write may carry (`NORMAL`).
    pub fn sync_modes(&self) -> (&'static str, &'static str) {
        match self.durable {
            true => ("FULL", "NORMAL"),
            false => ("OFF", "OFF"),
        }
    }

    /// The connection (Raft storage and reads).
    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells watchers that entries up to `index` are applied.
    pub fn notify_applied(&self, index: u64) {
        self.applied.send_replace(index);
    }

    /// Wakes on every applied change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Every pod, by namespace and name.
    pub fn pods(&self) -> rusqlite::Result<Vec<PodObject>> {
        query_json(&self.conn(), "SELECT json FROM sm_pods ORDER BY namespace, name", params![])
    }

    /// Pods bound to `node`.
    pub fn pods_on(&self, node: &str) -> rusqlite::Result<Vec<PodObject>> {
        query_json(
            &self.conn(),
            "SELECT json FROM sm_pods WHERE node = ?1 ORDER BY namespace, name",
            params![node],
        )
    }

    /// Pods no node holds yet and not being deleted, oldest first.
    pub fn pending(&self) -> rusqlite::Result<Vec<PodObject>> {
        let mut v: Vec<PodObject> = query_json(&self.conn(), "SELECT json FROM sm_pods WHERE node IS NULL", params![])?;
        v.sort_by_key(|p| (p.created_ms, p.key()));
        Ok(v)
    }

    /// One pod.
    pub fn pod(&self, namespace: &str, name: &str) -> rusqlite::Result<Option<PodObject>> {
        get_pod(&self.conn(), namespace, name)
    }

    /// Every node, by name.
    pub fn nodes(&self) -> rusqlite::Result<Vec<NodeObject>> {
        nodes_in(&self.conn())
    }

    /// One node.
    pub fn node(&self, name: &str) -> rusqlite::Result<Option<NodeObject>> {
        get_node(&self.conn(), name)
    }

    /// The address plan.
    pub fn network(&self) -> rusqlite::Result<ClusterNetwork> {
        network_in(&self.conn())
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> rusqlite::Result<Vec<TokenRecord>> {
        let mut v: Vec<TokenRecord> = query_json(&self.conn(), "SELECT json FROM sm_tokens", params![])?;
        v.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(v)
    }

    /// One token.
    pub fn token(&self, id: &str) -> rusqlite::Result<Option<TokenRecord>> {
        get_token(&self.conn(), id)
    }

    /// The key a node joined with, if it did.
    pub fn joined_key(&self, name: &str) -> rusqlite::Result<Option<String>> {
        self.conn()
            .query_row("SELECT key_sha256 FROM sm_joined WHERE name = ?1", params![name], |r| r.get(0))
            .optional()
    }

    /// Every workload, by kind, namespace and name.
    pub fn workloads(&self) -> rusqlite::Result<Vec<WorkloadObject>> {
        query_json(
            &self.conn(),
            "SELECT json FROM sm_workloads ORDER BY kind, namespace, name",
            params![],
        )
    }

    /// One workload.
    pub fn workload(&self, kind: Kind, namespace: &str, name: &str) -> rusqlite::Result<Option<WorkloadObject>> {
        get_workload(&self.conn(), kind, namespace, name)
    }

    /// Events, oldest first; only those about `object` when given.
    pub fn events(&self, object: Option<&str>) -> rusqlite::Result<Vec<Event>> {
        let all: Vec<Event> = query_json(&self.conn(), "SELECT json FROM sm_events ORDER BY seq", params![])?;
        Ok(all.into_iter().filter(|e| object.is_none_or(|o| e.object == o)).collect())
    }
}

pub(crate) fn query_json<T: serde::de::DeserializeOwned>(
    c: &Connection,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(args, |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(decode(&row?)?);
    }
    Ok(out)
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(json: &str) -> rusqlite::Result<T> {
    serde_json::from_str(json).map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

pub(crate) fn get_pod(c: &Connection, ns: &str, name: &str) -> rusqlite::Result<Option<PodObject>> {
    Ok(query_json(c, "SELECT json FROM sm_pods WHERE namespace = ?1 AND name = ?2", params![ns, name])?.pop())
}

pub(crate) fn put_pod(c: &Connection, p: &PodObject) -> rusqlite::Result<()> {
    let (ns, name) = p.key();
    let json = serde_json::to_string(p).expect("plain struct");
    c.execute(
        "INSERT OR REPLACE INTO sm_pods VALUES (?1, ?2, ?3, ?4, ?5)",
        params![ns, name, p.uid, p.node, json],
    )?;
    Ok(())
}

pub(crate) fn nodes_in(c: &Connection) -> rusqlite::Result<Vec<NodeObject>> {
    query_json(c, "SELECT json FROM sm_nodes ORDER BY name", params![])
}

pub(crate) fn get_node(c: &Connection, name: &str) -> rusqlite::Result<Option<NodeObject>> {
    Ok(query_json(c, "SELECT json FROM sm_nodes WHERE name = ?1", params![name])?.pop())
}

pub(crate) fn put_node(c: &Connection, n: &NodeObject) -> rusqlite::Result<()> {
    let json = serde_json::to_string(n).expect("plain struct");
    c.execute(
        "INSERT OR REPLACE INTO sm_nodes VALUES (?1, ?2, ?3)",
        params![n.name, n.raft_id as i64, json],
    )?;
    Ok(())
}

pub(crate) fn get_token(c: &Connection, id: &str) -> rusqlite::Result<Option<TokenRecord>> {
    Ok(query_json(c, "SELECT json FROM sm_tokens WHERE id = ?1", params![id])?.pop())
}

/// The `sm_meta` key of the address plan.
pub(crate) const NETWORK: &str = "network";

/// The address plan: as the first node gave it, else the defaults.
pub(crate) fn network_in(c: &Connection) -> rusqlite::Result<ClusterNetwork> {
    Ok(meta(c, NETWORK)?.and_then(|v| serde_json::from_str(&v).ok()).unwrap_or_default())
}

pub(crate) fn meta(c: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    c.query_row("SELECT value FROM sm_meta WHERE key = ?1", params![key], |r| r.get(0))
        .optional()
}

pub(crate) fn set_meta(c: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    c.execute("INSERT OR REPLACE INTO sm_meta VALUES (?1, ?2)", params![key, value])?;
    Ok(())
}

pub(crate) fn get_workload(c: &Connection, kind: Kind, ns: &str, name: &str) -> rusqlite::Result<Option<WorkloadObject>> {
    Ok(query_json(
        c,
        "SELECT json FROM sm_workloads WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
        params![kind.as_str(), ns, name],
    )?
    .pop())
}

pub(crate) fn put_workload(c: &Connection, w: &WorkloadObject) -> rusqlite::Result<()> {
    let (kind, ns, name) = w.key();
    let json = serde_json::to_string(w).expect("plain struct");
    c.execute(
        "INSERT OR REPLACE INTO sm_workloads VALUES (?1, ?2, ?3, ?4, ?5)",
        params![kind.as_str(), ns, name, w.uid, json],
    )?;
    Ok(())
}

pub(crate) fn remove_workload(c: &Connection, kind: Kind, ns: &str, name: &str) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM sm_workloads WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
        params![kind.as_str(), ns, name],
    )?;
    Ok(())
}

/// Workloads of `ns` whose controller is the object with `uid` (uids are
/// random, so the text search only narrows; the owner check decides).
pub(crate) fn owned_workloads(c: &Connection, ns: &str, uid: &str) -> rusqlite::Result<Vec<WorkloadObject>> {
    let v: Vec<WorkloadObject> = query_json(
        c,
        "SELECT json FROM sm_workloads WHERE namespace = ?1 AND instr(json, ?2) > 0",
        params![ns, uid],
    )?;
    Ok(v.into_iter()
        .filter(|w| w.workload.metadata().owner_references.iter().any(|o| o.uid == uid))
        .collect())
}

/// Pods of `ns` with an owner reference to `uid`.
pub(crate) fn owned_pods(c: &Connection, ns: &str, uid: &str) -> rusqlite::Result<Vec<PodObject>> {
    let v: Vec<PodObject> = query_json(
        c,
        "SELECT json FROM sm_pods WHERE namespace = ?1 AND instr(json, ?2) > 0",
        params![ns, uid],
    )?;
    Ok(v.into_iter()
        .filter(|p| p.pod.metadata.owner_references.iter().any(|o| o.uid == uid))
        .collect())
}

//! openraft's storage in SQLite, in the replica's database beside the state
//! tables: the vote, the log, the committed id and the state machine.
//!
//! The vote, appends, truncations and purges are transactions on a
//! `synchronous=FULL` WAL database, so each is fsync'd before openraft hears
//! it is done. Applying a batch of entries and recording the last applied id
//! is one transaction too, but with `synchronous=NORMAL` (no fsync of its
//! own), as is the committed id: the WAL is written in order, so the next
//! fsync'd log write makes them durable too, and a power cut can only lose a
//! tail of applies, which openraft replays from the log (entries are purged
//! only behind a snapshot, itself written before the purge). That keeps one
//! fsync, not two, on the leader's path of a write. Snapshots are the whole
//! state (`state::dump`); the newest is kept in `raft_snapshot`.

use super::TypeConfig;
use crate::state::{self, Replica, Response};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership, Vote,
};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

/// The Raft tables.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS raft_log (idx INTEGER PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS raft_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS raft_snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), meta TEXT NOT NULL, data BLOB NOT NULL);
";

type SE = StorageError<u64>;
type RNode = super::RaftNode;

fn meta_get<T: serde::de::DeserializeOwned>(c: &Connection, key: &str) -> rusqlite::Result<Option<T>> {
    let v: Option<String> = c
        .query_row("SELECT value FROM raft_meta WHERE key = ?1", params![key], |r| r.get(0))
        .optional()?;
    Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
}

fn meta_put<T: serde::Serialize>(c: &Connection, key: &str, value: &T) -> rusqlite::Result<()> {
    let json = serde_json::to_string(value).expect("plain values");
    c.execute("INSERT OR REPLACE INTO raft_meta VALUES (?1, ?2)", params![key, json])?;
    Ok(())
}

/// Runs `f` with `synchronous=NORMAL`: durable with the next fsync'd write.
fn lazily<T>(c: &Connection, (full, normal): (&str, &str), f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    c.pragma_update(None, "synchronous", normal)?;
    let r = f(c);
    c.pragma_update(None, "synchronous", full)?;
    r
}

fn any<E: std::error::Error + 'static>(e: E) -> AnyError {
    AnyError::new(&e)
}

/// How many of the newest entries stay decoded in memory, and at most how
/// many bytes of them (as stored): every replication stream reads each new
/// entry, and a hundred learners would otherwise read and decode it a
/// hundred times from SQLite.
const CACHED_ENTRIES: usize = 2048;
const CACHED_BYTES: usize = 16 << 20;

/// Most bytes of entries (as stored) in one AppendEntries, though always at
/// least one entry. openraft gives the call one heartbeat interval (200 ms)
/// and counts only entries: sixty-four entries of a few hundred pods each,
/// to a hundred learners on one small machine, never fit, are sent again and
/// again, and starve the leader (the hollow 0 → 1,000 scale-up did that).
const PAYLOAD_BYTES: usize = 256 * 1024;

/// The newest entries, contiguous, as appended (a copy of the table's
/// tail), each with the length of its stored form.
#[derive(Default)]
struct Cache {
    entries: BTreeMap<u64, (Entry<TypeConfig>, usize)>,
    bytes: usize,
}

impl Cache {
    fn push(&mut self, e: Entry<TypeConfig>, len: usize) {
        // Only a contiguous tail is kept: a gap empties the cache.
        if self.entries.last_key_value().is_some_and(|(i, _)| *i + 1 != e.log_id.index) {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += len;
        if let Some((_, old)) = self.entries.insert(e.log_id.index, (e, len)) {
            self.bytes -= old;
        }
        while self.entries.len() > CACHED_ENTRIES || (self.bytes > CACHED_BYTES && self.entries.len() > 1) {
            if let Some((_, (_, len))) = self.entries.pop_first() {
                self.bytes -= len;
            }
        }
    }

    fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        self.entries.retain(|i, _| keep(*i));
        self.bytes = self.entries.values().map(|(_, len)| len).sum();
    }
}

/// The log half: vote, entries, committed id, purge point.
#[derive(Clone)]
pub struct LogStore {
    replica: Arc<Replica>,
    cache: Arc<std::sync::Mutex<Cache>>,
}

impl LogStore {
    /// On the replica's database.
    pub fn new(replica: Arc<Replica>) -> LogStore {
        LogStore {
            replica,
            cache: Arc::default(),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries `lo..=hi` from the cache, if it holds all of them that exist,
    /// up to `budget` bytes (but at least one entry).
    fn cached(&self, lo: u64, hi: u64, budget: usize) -> Option<Vec<Entry<TypeConfig>>> {
        let cache = self.cache();
        let first = *cache.entries.keys().next()?;
        (first <= lo).then(|| within(budget, cache.entries.range(lo..=hi).map(|(_, (e, len))| (e.clone(), *len))))
    }

    /// Entries `lo..=hi`, up to `budget` bytes of their stored form.
    pub(super) fn read(&self, lo: u64, hi: u64, budget: usize) -> Result<Vec<Entry<TypeConfig>>, Box<SE>> {
        if hi < lo {
            return Ok(Vec::new());
        }
        if let Some(hit) = self.cached(lo, hi, budget) {
            return Ok(hit);
        }
        let c = self.replica.conn();
        let read = |e: rusqlite::Error| -> Box<SE> { Box::new(StorageIOError::read_logs(any(e)).into()) };
        let mut stmt = c
            .prepare_cached("SELECT json FROM raft_log WHERE idx >= ?1 AND idx <= ?2 ORDER BY idx")
            .map_err(read)?;
        let mut rows = stmt.query(params![lo as i64, hi.min(i64::MAX as u64) as i64]).map_err(read)?;
        let (mut out, mut used) = (Vec::new(), 0);
        while let Some(row) = rows.next().map_err(read)? {
            let json: String = row.get(0).map_err(read)?;
            if !out.is_empty() && used + json.len() > budget {
                break;
            }
            used += json.len();
            out.push(serde_json::from_str(&json).map_err(|e| Box::new(StorageIOError::read_logs(any(e)).into()))?);
        }
        Ok(out)
    }
}

/// The leading entries whose lengths sum to at most `budget`, and at least one.
pub(super) fn within<T>(budget: usize, entries: impl Iterator<Item = (T, usize)>) -> Vec<T> {
    let mut used = 0;
    let mut out = Vec::new();
    for (e, len) in entries {
        if !out.is_empty() && used + len > budget {
            break;
        }
        used += len;
        out.push(e);
    }
    out
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SE> {
        let lo = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => *x + 1,
            Bound::Unbounded => 0,
        };
        let hi = match range.end_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(0) => return Ok(Vec::new()),
            Bound::Excluded(x) => *x - 1,
            Bound::Unbounded => i64::MAX as u64,
        };
        self.read(lo, hi, usize::MAX).map_err(|e| *e)
    }

    /// What replication sends: `start..end`, cut at [`PAYLOAD_BYTES`].
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry<TypeConfig>>, SE> {
        if end <= start {
            return Ok(Vec::new());
        }
        self.read(start, end - 1, PAYLOAD_BYTES).map_err(|e| *e)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SE> {
        let c = self.replica.conn();
        let read = |e: rusqlite::Error| -> SE { StorageIOError::read_logs(any(e)).into() };
        let purged: Option<LogId<u64>> = meta_get(&c, "purged").map_err(read)?;
        let last: Option<String> = c
            .query_row("SELECT json FROM raft_log ORDER BY idx DESC LIMIT 1", [], |r| r.get(0))
            .optional()
            .map_err(read)?;
        let last = match last {
            Some(j) => {
                let e: Entry<TypeConfig> = serde_json::from_str(&j).map_err(|e| StorageIOError::read_logs(any(e)))?;
                Some(e.log_id)
            }
            None => purged,
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), SE> {
        meta_put(&self.replica.conn(), "vote", vote).map_err(|e| StorageIOError::write_vote(any(e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, SE> {
        meta_get(&self.replica.conn(), "vote").map_err(|e| StorageIOError::read_vote(any(e)).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), SE> {
        let c = self.replica.conn();
        let modes = self.replica.sync_modes();
        lazily(&c, modes, |c| meta_put(c, "committed", &committed)).map_err(|e| StorageIOError::write(any(e)).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, SE> {
        Ok(meta_get::<Option<LogId<u64>>>(&self.replica.conn(), "committed")
            .map_err(|e| StorageIOError::read(any(e)))?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SE>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let mut lens = Vec::with_capacity(entries.len());
        let result = (|| -> rusqlite::Result<()> {
            let mut c = self.replica.conn();
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached("INSERT OR REPLACE INTO raft_log VALUES (?1, ?2)")?;
                for e in &entries {
                    let json = serde_json::to_string(e).expect("entries serialise");
                    stmt.execute(params![e.log_id.index as i64, json])?;
                    lens.push(json.len());
                }
            }
            tx.commit()
        })();
        match result {
            Ok(()) => {
                let mut cache = self.cache();
                for (e, len) in entries.into_iter().zip(lens) {
                    cache.push(e, len);
                }
                drop(cache);
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(any(e)).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), SE> {
        self.cache().retain(|i| i < log_id.index);
        self.replica
            .conn()
            .execute("DELETE FROM raft_log WHERE idx >= ?1", params![log_id.index as i64])
            .map_err(|e| StorageIOError::write_logs(any(e)))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), SE> {
        self.cache().retain(|i| i > log_id.index);
        let r = (|| -> rusqlite::Result<()> {
            let mut c = self.replica.conn();
            let tx = c.transaction()?;
            meta_put(&tx, "purged", &log_id)?;
            tx.execute("DELETE FROM raft_log WHERE idx <= ?1", params![log_id.index as i64])?;
            tx.commit()
        })();
        r.map_err(|e| StorageIOError::write_logs(any(e)).into())
    }
}

/// The state-machine half: applies entries to the state tables and keeps
/// the newest snapshot.
#[derive(Clone)]
pub struct StateMachine {
    replica: Arc<Replica>,
}

impl StateMachine {
    /// On the replica's database.
    pub fn new(replica: Arc<Replica>) -> StateMachine {
        StateMachine { replica }
    }
}

type Applied = (Option<LogId<u64>>, StoredMembership<u64, RNode>);

fn applied_in(c: &Connection) -> rusqlite::Result<Applied> {
    Ok((
        meta_get::<Option<LogId<u64>>>(c, "applied")?.flatten(),
        meta_get(c, "membership")?.unwrap_or_default(),
    ))
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SE> {
        let err = |e: rusqlite::Error| -> SE { StorageIOError::read_state_machine(any(e)).into() };
        let mut c = self.replica.conn();
        let tx = c.transaction().map_err(err)?;
        let (last, membership) = applied_in(&tx).map_err(err)?;
        let data = state::dump(&tx).map_err(err)?;
        let id = match last {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, crate::runtime::shim::now_ms()),
            None => format!("0-0-{}", crate::runtime::shim::now_ms()),
        };
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: membership,
            snapshot_id: id,
        };
        let meta_json = serde_json::to_string(&meta).expect("plain values");
        tx.execute("INSERT OR REPLACE INTO raft_snapshot VALUES (1, ?1, ?2)", params![meta_json, data])
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(data),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<Applied, SE> {
        applied_in(&self.replica.conn()).map_err(|e| StorageIOError::read_state_machine(any(e)).into())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, SE>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        // Commands that came as JSON are decoded here, before the batch.
        for e in &entries {
            if let EntryPayload::Normal(cmd) = &e.payload {
                cmd.command().map_err(|err| StorageIOError::apply(e.log_id, any(err)))?;
            }
        }
        let mut last = None;
        let (full, normal) = self.replica.sync_modes();
        let r = {
            // One guard for the whole batch: no log write may slip in while
            // the connection is in NORMAL mode.
            let mut c = self.replica.conn();
            let r = c.pragma_update(None, "synchronous", normal).and_then(|()| {
                let tx = c.transaction()?;
                let mut out = Vec::new();
                for e in entries {
                    last = Some(e.log_id);
                    out.push(match e.payload {
                        EntryPayload::Blank => Response::Ok,
                        EntryPayload::Normal(cmd) => match cmd.command() {
                            Ok(cmd) => state::apply_command(&tx, cmd)?,
                            Err(_) => unreachable!("decoded before the batch"),
                        },
                        EntryPayload::Membership(m) => {
                            meta_put(&tx, "membership", &StoredMembership::new(Some(e.log_id), m))?;
                            Response::Ok
                        }
                    });
                    meta_put(&tx, "applied", &Some(e.log_id))?;
                }
                tx.commit()?;
                Ok(out)
            });
            // Whatever happened, the log's writes are fsync'd again.
            let _ = c.pragma_update(None, "synchronous", full);
            r
        };
        let out = r.map_err(|e| StorageIOError::write_state_machine(any(e)))?;
        if let Some(l) = last {
            self.replica.notify_applied(l.index);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Vec<u8>>, SE> {
        Ok(Box::default())
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta<u64, RNode>, snapshot: Box<Vec<u8>>) -> Result<(), SE> {
        let err = |e: String| -> SE { StorageIOError::write_snapshot(Some(meta.signature()), AnyError::error(e)).into() };
        {
            let mut c = self.replica.conn();
            let tx = c.transaction().map_err(|e| err(e.to_string()))?;
            state::load(&tx, &snapshot).map_err(|e| err(e.to_string()))?;
            let meta_json = serde_json::to_string(meta).expect("plain values");
            (|| -> rusqlite::Result<()> {
                meta_put(&tx, "applied", &meta.last_log_id)?;
                meta_put(&tx, "membership", &meta.last_membership)?;
                tx.execute(
                    "INSERT OR REPLACE INTO raft_snapshot VALUES (1, ?1, ?2)",
                    params![meta_json, *snapshot],
                )?;
                tx.commit()
            })()
            .map_err(|e| err(e.to_string()))?;
        }
        if let Some(l) = meta.last_log_id {
            self.replica.notify_applied(l.index);
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SE> {
        let c = self.replica.conn();
        let row: Option<(String, Vec<u8>)> = c
            .query_row("SELECT meta, data FROM raft_snapshot WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(|e| StorageIOError::read_snapshot(None, any(e)))?;
        let Some((meta, data)) = row else { return Ok(None) };
        let meta: SnapshotMeta<u64, RNode> = serde_json::from_str(&meta).map_err(|e| StorageIOError::read_snapshot(None, any(e)))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(data),
        }))
    }
}

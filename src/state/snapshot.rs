//! A snapshot of the state: every row of every `sm_` table, as JSON. Rows
//! are copied column by column, so columns added later travel without
//! changes here; a new table must be added to `TABLES` (a snapshot from
//! before it simply leaves it empty).

use rusqlite::types::Value;
use rusqlite::Transaction;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The tables a snapshot carries, in the order they are restored.
const TABLES: [&str; 10] = [
    "sm_meta",
    "sm_nodes",
    "sm_tokens",
    "sm_joined",
    "sm_pods",
    "sm_events",
    "sm_workloads",
    "sm_services",
    "sm_endpoints",
    "sm_config",
];

#[derive(Serialize, Deserialize, Default)]
struct Dump {
    version: u32,
    tables: BTreeMap<String, Vec<Vec<serde_json::Value>>>,
}

fn to_json(v: Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => i.into(),
        Value::Real(f) => f.into(),
        Value::Text(s) => s.into(),
        Value::Blob(b) => hex::encode(b).into(),
    }
}

fn from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    }
}

/// Every row of the state, read inside one transaction so it is consistent.
pub fn dump(tx: &Transaction<'_>) -> rusqlite::Result<Vec<u8>> {
    let mut d = Dump {
        version: 1,
        ..Default::default()
    };
    for t in TABLES {
        let mut stmt = tx.prepare(&format!("SELECT * FROM {t}"))?;
        let n = stmt.column_count();
        let rows = stmt.query_map([], |r| {
            (0..n)
                .map(|i| r.get::<_, Value>(i).map(to_json))
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        d.tables.insert(t.to_string(), rows.collect::<rusqlite::Result<_>>()?);
    }
    Ok(serde_json::to_vec(&d).expect("plain values"))
}

/// Replaces the state with a snapshot's rows. `Err` leaves the caller's
/// transaction to roll back.
pub fn load(tx: &Transaction<'_>, bytes: &[u8]) -> Result<(), LoadError> {
    let d: Dump = if bytes.is_empty() {
        Dump::default()
    } else {
        serde_json::from_slice(bytes).map_err(LoadError::Decode)?
    };
    for t in TABLES {
        tx.execute(&format!("DELETE FROM {t}"), [])?;
        for row in d.tables.get(t).into_iter().flatten() {
            let marks = vec!["?"; row.len()].join(", ");
            let values: Vec<Value> = row.iter().map(from_json).collect();
            tx.execute(&format!("INSERT INTO {t} VALUES ({marks})"), rusqlite::params_from_iter(values))?;
        }
    }
    Ok(())
}

/// A snapshot could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not a snapshot.
    #[error("snapshot does not decode: {0}")]
    Decode(serde_json::Error),
    /// SQLite failed.
    #[error("snapshot install: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

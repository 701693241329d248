//! ConfigMaps and Secrets in the replicated state. Secrets are kept here
//! (and in the Raft log) as their manifests carry them, base64; a node
//! writes their values only to the tmpfs of a pod's secret volume and into
//! a container's environment.

use super::read::{decode, query_json};
use super::Response::{self, Done, Refused};
use crate::api::manifest::Config;
use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

/// A ConfigMap or Secret as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigObject {
    /// The object (a Secret's `stringData` already merged into `data`).
    pub config: Config,
    /// Unique id.
    pub uid: String,
    /// Unix ms it was created.
    pub created_ms: u64,
    /// Counts the changes to its values (1 when created).
    pub version: u64,
}

impl ConfigObject {
    /// `(namespace, name)`.
    pub fn key(&self) -> (String, String) {
        let m = self.config.metadata();
        (m.namespace().to_string(), m.name.clone())
    }
}

/// Creates or updates a ConfigMap or Secret; `create_only` refuses one that
/// exists (`shoal create`).
pub fn put(tx: &Transaction<'_>, config: Config, uid: &str, now_ms: u64, create_only: bool) -> rusqlite::Result<Response> {
    let kind = config.kind();
    let lower = kind.to_lowercase();
    let ns = config.metadata().namespace().to_string();
    let name = config.metadata().name.clone();
    let old = get(tx, kind, &ns, &name)?;
    let (uid, created_ms, version, action) = match &old {
        Some(_) if create_only => return Ok(Refused(format!("{lower}s {name:?} already exists in namespace {ns:?}"))),
        Some(o) if o.config == config => return Ok(Done("unchanged".into())),
        Some(o) if o.config.immutable() && o.config.values() != config.values() => {
            return Ok(Refused(format!(
                "{lower} {ns}/{name}: data: Forbidden: field is immutable when `immutable` is set; delete and create it again to change it"
            )))
        }
        Some(o) if o.config.immutable() && !config.immutable() => {
            return Ok(Refused(format!(
                "{lower} {ns}/{name}: immutable: Forbidden: field is immutable when `immutable` is set"
            )))
        }
        Some(o) => {
            let changed = o.config.values() != config.values();
            (o.uid.clone(), o.created_ms, o.version + changed as u64, "configured")
        }
        None => (uid.to_string(), now_ms, 1, "created"),
    };
    let obj = ConfigObject {
        config,
        uid,
        created_ms,
        version,
    };
    tx.execute(
        "INSERT OR REPLACE INTO sm_config VALUES (?1, ?2, ?3, ?4)",
        params![kind, ns, name, serde_json::to_string(&obj).expect("plain struct")],
    )?;
    Ok(Done(action.into()))
}

/// Deletes a ConfigMap or Secret.
pub fn delete(tx: &Transaction<'_>, kind: &str, ns: &str, name: &str) -> rusqlite::Result<Response> {
    let sql = "DELETE FROM sm_config WHERE kind = ?1 AND namespace = ?2 AND name = ?3";
    Ok(match tx.execute(sql, params![kind, ns, name])? {
        0 => Refused(format!("{} {name:?} not found in namespace {ns:?}", kind.to_lowercase())),
        _ => Done("deleted".into()),
    })
}

fn get(c: &rusqlite::Connection, kind: &str, ns: &str, name: &str) -> rusqlite::Result<Option<ConfigObject>> {
    c.query_row(
        "SELECT json FROM sm_config WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
        params![kind, ns, name],
        |r| r.get::<_, String>(0),
    )
    .optional()?
    .map(|j| decode(&j))
    .transpose()
}

impl super::Replica {
    /// Every ConfigMap or Secret (`kind`), by namespace and name.
    pub fn configs(&self, kind: &str) -> rusqlite::Result<Vec<ConfigObject>> {
        query_json(
            &self.conn(),
            "SELECT json FROM sm_config WHERE kind = ?1 ORDER BY namespace, name",
            &[&kind],
        )
    }

    /// One ConfigMap or Secret.
    pub fn config(&self, kind: &str, ns: &str, name: &str) -> rusqlite::Result<Option<ConfigObject>> {
        get(&self.conn(), kind, ns, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{parse_manifests, Object};

    fn apply(r: &crate::state::Replica, yaml: &str, create_only: bool) -> Response {
        let Object::Config(c) = parse_manifests(yaml).unwrap().remove(0) else {
            panic!("not a config")
        };
        let cmd = crate::state::Command::PutConfig {
            config: c,
            uid: "u".into(),
            now_ms: 1,
            create_only,
        };
        let mut conn = r.conn();
        let tx = conn.transaction().unwrap();
        let resp = crate::state::apply_command(&tx, &cmd).unwrap();
        tx.commit().unwrap();
        resp
    }

    #[test]
    fn versions_count_value_changes_and_immutable_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let r = crate::state::Replica::open(&dir.path().join("c.db")).unwrap();
        let cm = |v: &str, extra: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{k: '{v}'}}\n{extra}");
        assert_eq!(apply(&r, &cm("1", ""), false), Done("created".into()));
        assert_eq!(apply(&r, &cm("1", ""), false), Done("unchanged".into()));
        assert!(matches!(apply(&r, &cm("1", ""), true), Refused(m) if m.contains("already exists")));
        assert_eq!(apply(&r, &cm("2", ""), false), Done("configured".into()));
        assert_eq!(r.config("ConfigMap", "default", "c").unwrap().unwrap().version, 2);
        assert_eq!(apply(&r, &cm("2", "immutable: true"), false), Done("configured".into()));
        assert_eq!(
            r.config("ConfigMap", "default", "c").unwrap().unwrap().version,
            2,
            "no value changed"
        );
        assert!(matches!(apply(&r, &cm("3", "immutable: true"), false), Refused(m) if m.contains("immutable")));
        // A Secret of the same name is another object.
        let s = "apiVersion: v1\nkind: Secret\nmetadata: {name: c}\nstringData: {password: s3cret}\n";
        assert_eq!(apply(&r, s, false), Done("created".into()));
        let stored = r.config("Secret", "default", "c").unwrap().unwrap();
        let crate::api::manifest::Config::Secret(sec) = &stored.config else {
            panic!()
        };
        assert_eq!(sec.data["password"], "czNjcmV0", "stored base64, stringData merged");
        assert!(sec.string_data.is_empty());
    }
}

//! Join tokens and the nodes that joined with them (CA-holding nodes only).

use super::{Store, StoreError};
use rusqlite::{params, OptionalExtension};

/// A join token as stored: only the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// The public part, shown by `token ls`.
    pub id: String,
    /// Hex SHA-256 of the secret part.
    pub secret_sha256: String,
    /// Unix ms.
    pub created_ms: u64,
    /// Unix ms after which joins are refused.
    pub expires_ms: u64,
    /// Unix ms of `token rm`, if removed.
    pub removed_ms: Option<u64>,
    /// Successful joins.
    pub uses: u64,
}

/// A node certificate this CA signed through a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRecord {
    /// Node name.
    pub name: String,
    /// Hex SHA-256 of the node's public key.
    pub key_sha256: String,
    /// Token id it joined with.
    pub token: String,
    /// Unix ms.
    pub joined_ms: u64,
}

impl Store {
    /// Stores a new token.
    pub fn put_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO tokens VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![t.id, t.secret_sha256, t.created_ms, t.expires_ms, t.removed_ms, t.uses],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every token, removed ones included, oldest first.
    pub fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT * FROM tokens ORDER BY created_ms").map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], row_token).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// One token by id.
    pub fn get_token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.conn()
            .query_row("SELECT * FROM tokens WHERE id = ?1", params![id], row_token)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Marks a token removed (kept, so a join with it says so); false if unknown or already removed.
    pub fn remove_token(&self, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute(
                "UPDATE tokens SET removed_ms = ?2 WHERE id = ?1 AND removed_ms IS NULL",
                params![id, now_ms],
            )
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// Records a signed node certificate and counts the token's use, in one transaction.
    pub fn record_join(&self, j: &JoinRecord) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT OR REPLACE INTO joined VALUES (?1, ?2, ?3, ?4)",
            params![j.name, j.key_sha256, j.token, j.joined_ms],
        )
        .map_err(|e| self.err(e))?;
        tx.execute("UPDATE tokens SET uses = uses + 1 WHERE id = ?1", params![j.token])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// The join record of a node name.
    pub fn get_join(&self, name: &str) -> Result<Option<JoinRecord>, StoreError> {
        self.conn()
            .query_row("SELECT * FROM joined WHERE name = ?1", params![name], |r| {
                Ok(JoinRecord {
                    name: r.get(0)?,
                    key_sha256: r.get(1)?,
                    token: r.get(2)?,
                    joined_ms: r.get(3)?,
                })
            })
            .optional()
            .map_err(|e| self.err(e))
    }
}

fn row_token(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.get(0)?,
        secret_sha256: r.get(1)?,
        created_ms: r.get(2)?,
        expires_ms: r.get(3)?,
        removed_ms: r.get(4)?,
        uses: r.get(5)?,
    })
}

//! The node's pod addresses: which pod holds which address of the node's
//! subnet, and the last one handed out (for round-robin reuse).

use super::{Store, StoreError};
use ipnet::Ipv4Net;
use rusqlite::{params, OptionalExtension};
use std::net::Ipv4Addr;

const LAST: &str = "ipam_last";

impl Store {
    /// The address of pod `uid`, assigned from `subnet` if it has none yet.
    /// `None` when the subnet is full.
    pub fn assign_ip(&self, uid: &str, subnet: Ipv4Net) -> Result<Option<Ipv4Addr>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let held: Option<String> = tx
            .query_row("SELECT ip FROM pod_ips WHERE uid = ?1", params![uid], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        if let Some(ip) = held.and_then(|s| s.parse::<Ipv4Addr>().ok()).filter(|ip| subnet.contains(ip)) {
            return Ok(Some(ip));
        }
        // An address from another subnet (the node was deleted and joined
        // again) is stale: let it go.
        tx.execute("DELETE FROM pod_ips WHERE uid = ?1", params![uid])
            .map_err(|e| self.err(e))?;
        let used = {
            let mut st = tx.prepare("SELECT ip FROM pod_ips").map_err(|e| self.err(e))?;
            let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
            rows.filter_map(|r| r.ok()?.parse().ok()).collect()
        };
        let last = tx
            .query_row("SELECT value FROM meta WHERE key = ?1", params![LAST], |r| r.get::<_, String>(0))
            .optional()
            .map_err(|e| self.err(e))?
            .and_then(|s| s.parse().ok());
        let Some(ip) = crate::net::ipam::next_free(subnet, &used, last) else {
            return Ok(None);
        };
        tx.execute("INSERT INTO pod_ips VALUES (?1, ?2)", params![ip.to_string(), uid])
            .map_err(|e| self.err(e))?;
        tx.execute("INSERT OR REPLACE INTO meta VALUES (?1, ?2)", params![LAST, ip.to_string()])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Some(ip))
    }

    /// The address pod `uid` holds.
    pub fn pod_ip(&self, uid: &str) -> Result<Option<Ipv4Addr>, StoreError> {
        let ip: Option<String> = self
            .conn()
            .query_row("SELECT ip FROM pod_ips WHERE uid = ?1", params![uid], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(ip.and_then(|s| s.parse().ok()))
    }

    /// Gives pod `uid`'s address back.
    pub fn release_ip(&self, uid: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM pod_ips WHERE uid = ?1", params![uid])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every assignment: (address, pod uid).
    pub fn pod_ips(&self) -> Result<Vec<(Ipv4Addr, String)>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT ip, uid FROM pod_ips ORDER BY ip").map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        Ok(rows
            .filter_map(|r| r.ok())
            .filter_map(|(ip, uid)| Some((ip.parse().ok()?, uid)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_held_once_kept_across_reopen_and_not_reused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shoal.db");
        let s: Ipv4Net = "10.42.1.0/24".parse().unwrap();
        let a = {
            let store = Store::open(&path).unwrap();
            let a = store.assign_ip("a", s).unwrap().unwrap();
            assert_eq!(store.assign_ip("a", s).unwrap(), Some(a), "a second ask returns the same address");
            a
        };
        let store = Store::open(&path).unwrap();
        assert_eq!(store.pod_ip("a").unwrap(), Some(a));
        let b = store.assign_ip("b", s).unwrap().unwrap();
        assert_ne!(a, b);
        store.release_ip("a").unwrap();
        let c = store.assign_ip("c", s).unwrap().unwrap();
        assert!(c != a && c != b, "{c} reused at once");
        assert_eq!(store.pod_ips().unwrap().len(), 2);
        // A new subnet (the node joined again): the old address is dropped.
        let t: Ipv4Net = "10.42.9.0/24".parse().unwrap();
        assert!(t.contains(&store.assign_ip("b", t).unwrap().unwrap()));
    }
}

//! The SQLite storage against openraft's own storage test suite.

use super::storage::{LogStore, StateMachine};
use super::TypeConfig;
use crate::state::Replica;
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use std::sync::Arc;

struct SqliteBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SqliteBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let replica = Arc::new(Replica::open(&dir.path().join("cluster.db")).expect("open replica"));
        Ok((dir, LogStore::new(replica.clone()), StateMachine::new(replica)))
    }
}

#[test]
fn storage_passes_openrafts_suite() {
    Suite::test_all(SqliteBuilder).unwrap();
}

fn facts(name: &str) -> openraft::Entry<TypeConfig> {
    let cmd = crate::state::Command::NodeFacts(crate::state::NodeFacts {
        name: name.to_string(),
        addr: "127.0.0.1:1".parse().unwrap(),
        cpus: 1,
        memory_bytes: 1,
        version: String::new(),
        arch: String::new(),
    });
    openraft::Entry {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), 0),
        payload: openraft::EntryPayload::Normal(super::SharedCommand::new(cmd)),
    }
}

#[test]
fn replication_reads_are_cut_at_the_byte_budget_but_never_empty() {
    use super::storage::within;
    let sized = |lens: &[usize]| lens.iter().enumerate().map(|(i, l)| (i, *l)).collect::<Vec<_>>();
    assert_eq!(within(100, sized(&[40, 40, 40]).into_iter()), vec![0, 1]);
    assert_eq!(within(100, sized(&[500, 10]).into_iter()), vec![0], "one entry even over budget");
    assert_eq!(within(100, sized(&[]).into_iter()), Vec::<usize>::new());
    assert_eq!(within(usize::MAX, sized(&[7; 9]).into_iter()).len(), 9);

    // The same cut from the table, for a log the cache does not hold.
    let dir = tempfile::tempdir().unwrap();
    let replica = Arc::new(Replica::open(&dir.path().join("cluster.db")).unwrap());
    let store = LogStore::new(replica.clone());
    for i in 1..=5u64 {
        let mut e = facts(&"n".repeat(10_000));
        e.log_id.index = i;
        let json = serde_json::to_string(&e).unwrap();
        replica
            .conn()
            .execute("INSERT INTO raft_log VALUES (?1, ?2)", rusqlite::params![i as i64, json])
            .unwrap();
    }
    let two = store.read(1, 5, 25_000).unwrap();
    assert_eq!(two.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(store.read(3, 5, 10).unwrap().len(), 1);
    assert_eq!(store.read(1, 5, usize::MAX).unwrap().len(), 5);
    assert!(store.read(4, 3, usize::MAX).unwrap().is_empty());
}

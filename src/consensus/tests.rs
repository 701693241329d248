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

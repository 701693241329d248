//! The node's nftables table: pod egress masquerade now, Services next,
//! in one table per node named like its bridge (`ip shoal<8 hex>`), so two
//! nodes on one host keep apart and leftovers are easy to find.
//!
//! `model` says what the table should hold (pure), `plan` turns one model
//! into the next as one transaction's operations (pure, property tested
//! against a model of the kernel's refusals), `render` writes them in
//! nftables' JSON, and a [`Netfilter`] hands that to the kernel: the real
//! one runs `nft -j -f -` through the `nftables` crate, as kube-proxy's
//! nftables mode hands its transactions to `nft` through knftables.

pub mod model;
pub mod plan;
mod render;

use model::Model;
use std::collections::BTreeSet;
use std::future::Future;

/// `nft` refused a transaction, or could not be run.
#[derive(Debug, thiserror::Error)]
#[error("nft -j -f - (table {table}): {message}")]
pub struct NftError {
    /// The table.
    pub table: String,
    /// nft's own words.
    pub message: String,
}

/// Where transactions go: the kernel, through `nft`.
pub trait Netfilter: Send + Sync + 'static {
    /// Applies one transaction (nftables JSON), all or nothing.
    fn apply(&self, table: &str, json: String) -> impl Future<Output = Result<(), NftError>> + Send;

    /// The names of the chains `table` holds in the kernel (none if it is
    /// not there).
    fn chains(&self, table: &str) -> impl Future<Output = Result<BTreeSet<String>, NftError>> + Send;
}

/// The real one: `nft -j -f -` in the agent's network namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nft;

impl Netfilter for Nft {
    async fn apply(&self, table: &str, json: String) -> Result<(), NftError> {
        let r = nftables::helper::apply_ruleset_raw_async(&json, nftables::helper::DEFAULT_NFT, nftables::helper::DEFAULT_ARGS).await;
        r.map(drop).map_err(|e| NftError {
            table: table.to_string(),
            message: nft_message(e),
        })
    }

    async fn chains(&self, table: &str) -> Result<BTreeSet<String>, NftError> {
        let out = nftables::helper::get_current_ruleset_raw_async(nftables::helper::DEFAULT_NFT, ["list", "chains", "ip"])
            .await
            .map_err(|e| NftError {
                table: table.to_string(),
                message: nft_message(e),
            })?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| NftError {
            table: table.to_string(),
            message: format!("nft -j list chains: {e}"),
        })?;
        Ok(v["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("chain"))
            .filter(|c| c["table"] == table)
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect())
    }
}

fn nft_message(e: nftables::helper::NftablesError) -> String {
    match e {
        nftables::helper::NftablesError::NftFailed { stderr, .. } => stderr.trim().to_string(),
        other => other.to_string(),
    }
}

/// The node's table and what was last written to it.
pub struct Table<N: Netfilter> {
    name: String,
    nft: N,
    last: Option<Model>,
}

impl<N: Netfilter> Table<N> {
    /// Table `name` (nothing is written yet).
    pub fn new(name: &str, nft: N) -> Table<N> {
        Table {
            name: name.to_string(),
            nft,
            last: None,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes the table hold `want`: whole the first time (and after a
    /// failure), only what changed after that. Returns how many operations
    /// the transaction held (0: nothing to do, nothing run).
    pub async fn sync(&mut self, want: Model) -> Result<usize, NftError> {
        let ops = match &self.last {
            None => plan::full(&want),
            Some(old) => plan::diff(old, &want),
        };
        if ops.is_empty() {
            return Ok(0);
        }
        match self.nft.apply(&self.name, render::transaction(&self.name, &ops)).await {
            Ok(()) => {
                self.last = Some(want);
                Ok(ops.len())
            }
            Err(e) => {
                self.last = None;
                Err(e)
            }
        }
    }

    /// Whether the kernel's table still has the chains last written (an
    /// `nft flush ruleset`, or a table or chain deleted by hand, says no);
    /// if not, the next sync writes it whole. Nothing written yet: true.
    pub async fn intact(&mut self) -> Result<bool, NftError> {
        let Some(last) = &self.last else { return Ok(true) };
        let have = self.nft.chains(&self.name).await?;
        let intact = last.chains.keys().eq(have.iter());
        if !intact {
            self.last = None;
        }
        Ok(intact)
    }

    /// Deletes the table and everything in it (gone already is fine).
    pub async fn remove(&mut self) -> Result<(), NftError> {
        self.last = None;
        self.nft.apply(&self.name, render::remove(&self.name)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// The kernel as far as `Table` sees it: the last transaction's chains
    /// (a full write's), cleared by `flush`.
    #[derive(Clone, Default)]
    struct Fake {
        chains: Arc<Mutex<BTreeSet<String>>>,
        writes: Arc<Mutex<Vec<String>>>,
    }

    impl Netfilter for Fake {
        async fn apply(&self, _table: &str, json: String) -> Result<(), NftError> {
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            let mut chains = self.chains.lock().unwrap();
            for cmd in v["nftables"].as_array().unwrap() {
                if let Some(c) = cmd.get("add").and_then(|a| a.get("chain")) {
                    chains.insert(c["name"].as_str().unwrap().to_string());
                }
            }
            self.writes.lock().unwrap().push(json);
            Ok(())
        }

        async fn chains(&self, _table: &str) -> Result<BTreeSet<String>, NftError> {
            Ok(self.chains.lock().unwrap().clone())
        }
    }

    fn addrs() -> model::Addresses {
        model::Addresses {
            cluster: "10.42.0.0/16".parse().unwrap(),
            services: "10.43.0.0/16".parse().unwrap(),
            dns: None,
        }
    }

    #[tokio::test]
    async fn a_table_changed_behind_its_back_is_written_whole_again() {
        let fake = Fake::default();
        let mut t = Table::new("shoaltest", fake.clone());
        assert!(t.intact().await.unwrap(), "nothing written yet");
        let want = model::desired(&addrs(), &[]);
        assert!(t.sync(want.clone()).await.unwrap() > 0);
        assert!(t.intact().await.unwrap());
        assert_eq!(t.sync(want.clone()).await.unwrap(), 0, "unchanged: nothing written");
        fake.chains.lock().unwrap().clear(); // nft flush ruleset
        assert!(!t.intact().await.unwrap());
        let n = t.sync(want.clone()).await.unwrap();
        assert!(
            n > 0 && fake.writes.lock().unwrap().len() == 2,
            "written whole again ({n} operations)"
        );
        assert!(t.intact().await.unwrap());
    }
}

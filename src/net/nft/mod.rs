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
}

/// The real one: `nft -j -f -` in the agent's network namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nft;

impl Netfilter for Nft {
    async fn apply(&self, table: &str, json: String) -> Result<(), NftError> {
        let r = nftables::helper::apply_ruleset_raw_async(&json, nftables::helper::DEFAULT_NFT, nftables::helper::DEFAULT_ARGS).await;
        r.map(drop).map_err(|e| NftError {
            table: table.to_string(),
            message: match e {
                nftables::helper::NftablesError::NftFailed { stderr, .. } => stderr.trim().to_string(),
                other => other.to_string(),
            },
        })
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

    /// Deletes the table and everything in it (gone already is fine).
    pub async fn remove(&mut self) -> Result<(), NftError> {
        self.last = None;
        self.nft.apply(&self.name, render::remove(&self.name)).await
    }
}

//! [`LedgerReads`]: the few reads the application layer needs beyond the
//! [`Store`] trait — one trial, the ledger's size and an inclusion proof from the
//! store's Merkle cache. Each has a default built from `Store` alone (reading
//! every trial or entry), so any store works; the SQLite and PostgreSQL stores
//! (and `AnyStore`) answer them with their own indexed queries.
//!
//! Why a trait here rather than in `firebreak-store`: these reads are inherent
//! methods of the concrete stores today; lifting them into `Store` is the
//! store crate's change to make, after which this trait folds away.

use std::future::Future;

use firebreak_core::Trial;
use firebreak_store::{AnyStore, LedgerProof, PgStore, SqliteStore, Store, StoreError};

/// Reads beyond [`Store`] that make `explain` and `audit proof` cheap.
pub trait LedgerReads: Store {
    /// Trial `number` of `campaign`.
    fn trial(
        &self,
        campaign: &str,
        number: u64,
    ) -> impl Future<Output = Result<Trial, StoreError>> + Send {
        async move {
            self.trials(campaign)
                .await?
                .into_iter()
                .find(|t| t.number == number)
                .ok_or_else(|| StoreError::NoTrial {
                    campaign: campaign.to_string(),
                    number,
                })
        }
    }

    /// The number of ledger entries.
    fn ledger_size(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move { Ok(self.ledger().await?.len() as u64) }
    }

    /// The inclusion proof of entry `seq` in the tree of the first `tree_size`
    /// entries from stored hashes, or `None` when the store cannot give it that
    /// way (the caller then builds it from every entry).
    fn inclusion_proof(
        &self,
        seq: u64,
        tree_size: u64,
    ) -> impl Future<Output = Result<Option<LedgerProof>, StoreError>> + Send {
        let _ = (seq, tree_size);
        async { Ok(None) }
    }
}

macro_rules! inherent {
    ($store:ty) => {
        impl LedgerReads for $store {
            async fn trial(&self, campaign: &str, number: u64) -> Result<Trial, StoreError> {
                <$store>::trial(self, campaign, number).await
            }

            async fn ledger_size(&self) -> Result<u64, StoreError> {
                <$store>::ledger_size(self).await
            }

            async fn inclusion_proof(
                &self,
                seq: u64,
                tree_size: u64,
            ) -> Result<Option<LedgerProof>, StoreError> {
                <$store>::inclusion_proof(self, seq, tree_size).await
            }
        }
    };
}

inherent!(AnyStore);
inherent!(SqliteStore);
inherent!(PgStore);

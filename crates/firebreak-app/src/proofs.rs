//! Inclusion proofs of ledger entries (RFC 6962), checked before they are
//! shown: a proof is `verified` only when its path leads to the root of a
//! stored checkpoint whose signature verifies — a root rebuilt from the same
//! stored leaves would prove nothing.

use firebreak_ledger::{Checkpoint, Entry, Hash, hex};
use firebreak_store::Store;
use serde::Serialize;

use crate::checkpoints::leaves;
use crate::{App, AppError, LedgerReads};

/// The inclusion proof of one ledger entry, as `audit proof` and `explain` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InclusionProof {
    /// The entry's sequence number.
    pub seq: u64,
    /// The entry's leaf hash (hex).
    pub leaf_hash: String,
    /// The size of the tree the proof is in.
    pub tree_size: u64,
    /// That tree's root (hex).
    pub root: String,
    /// The audit path, bottom up (hex).
    pub proof: Vec<String>,
    /// The signed checkpoint the proof is checked against, if one covers the entry.
    pub checkpoint: Option<Checkpoint>,
    /// Which root the proof was checked against, in words.
    pub against: String,
    /// True when the path leads to the root of the signed checkpoint.
    pub verified: bool,
}

impl InclusionProof {
    fn new(
        seq: u64,
        leaf: &Hash,
        size: u64,
        root: &Hash,
        path: &[Hash],
        checkpoint: Option<Checkpoint>,
        proved: bool,
    ) -> Self {
        let against = match &checkpoint {
            Some(c) => format!(
                "the checkpoint of tree size {} signed by {} at {}",
                c.tree_size, c.key, c.at
            ),
            None => format!(
                "no signed checkpoint covers entry {seq} yet (`firebreak audit checkpoint` signs one)"
            ),
        };
        let verified = proved && checkpoint.as_ref().is_some_and(|c| c.root == hex(root));
        InclusionProof {
            seq,
            leaf_hash: hex(leaf),
            tree_size: size,
            root: hex(root),
            proof: path.iter().map(|h| hex(h)).collect(),
            checkpoint,
            against,
            verified,
        }
    }
}

impl<S: Store + LedgerReads> App<S> {
    /// The inclusion proof of ledger entry `seq` against the newest signed
    /// checkpoint that covers it (else the whole ledger). From the stored leaf
    /// hashes and the Merkle cache where the store keeps them, without reading
    /// the whole ledger; anything short of a proof that verifies is redone
    /// from every entry, whose answer stands.
    pub async fn prove(&self, seq: u64) -> Result<InclusionProof, AppError> {
        match self.cached_inclusion(seq).await? {
            Some(proof) if proof.verified => Ok(proof),
            _ => {
                let rows = self.store.ledger().await?;
                self.inclusion(&rows, seq).await
            }
        }
    }

    /// [`App::prove`] from the store's cached subtree hashes; `None` when the
    /// store cannot give the proof that way.
    async fn cached_inclusion(&self, seq: u64) -> Result<Option<InclusionProof>, AppError> {
        let entries = self.store.ledger_size().await?;
        if seq >= entries {
            return Ok(None);
        }
        let checkpoint = self.signed_checkpoint(seq, entries).await?;
        let size = checkpoint.as_ref().map_or(entries, |c| c.tree_size);
        let Some(proof) = self.store.inclusion_proof(seq, size).await? else {
            return Ok(None);
        };
        let proved =
            firebreak_ledger::verify_inclusion(&proof.leaf, seq, size, &proof.path, &proof.root);
        Ok(Some(InclusionProof::new(
            seq,
            &proof.leaf,
            size,
            &proof.root,
            &proof.path,
            checkpoint,
            proved,
        )))
    }
}

impl<S: Store> App<S> {
    /// The inclusion proof of entry `seq` of `rows` (the whole ledger) against
    /// the newest stored checkpoint that covers it (else the whole ledger).
    pub(crate) async fn inclusion(
        &self,
        rows: &[Entry],
        seq: u64,
    ) -> Result<InclusionProof, AppError> {
        let leaves = leaves(rows);
        let Some(leaf) = leaves.get(seq as usize) else {
            return Err(AppError::NoEntry {
                seq,
                entries: leaves.len(),
            });
        };
        let checkpoint = self.signed_checkpoint(seq, leaves.len() as u64).await?;
        let size = checkpoint
            .as_ref()
            .map_or(leaves.len(), |c| c.tree_size as usize);
        let root = firebreak_ledger::root(&leaves[..size]);
        let path = firebreak_ledger::inclusion_proof(&leaves[..size], seq as usize);
        let proved = firebreak_ledger::verify_inclusion(leaf, seq, size as u64, &path, &root);
        Ok(InclusionProof::new(
            seq,
            leaf,
            size as u64,
            &root,
            &path,
            checkpoint,
            proved,
        ))
    }

    /// The newest stored checkpoint that covers entry `seq` of a ledger of
    /// `entries` and whose signature verifies: the only root a proof is
    /// checked against.
    async fn signed_checkpoint(
        &self,
        seq: u64,
        entries: u64,
    ) -> Result<Option<Checkpoint>, AppError> {
        Ok(self
            .store
            .checkpoints()
            .await?
            .into_iter()
            .rev()
            .find(|c| c.tree_size > seq && c.tree_size <= entries && c.verify_signature().is_ok()))
    }
}

//! Inclusion proofs of ledger entries and consistency proofs between two sizes
//! of the ledger (RFC 6962), checked before they are shown: a proof is
//! `verified` only when it leads to the roots of stored checkpoints whose
//! signatures verify — a root rebuilt from the same stored leaves would prove
//! nothing.

use firebreak_ledger::{Checkpoint, Entry, Hash, hex};
use firebreak_store::Store;
use serde::Serialize;

use crate::checkpoints::leaves;
use crate::{App, AppError};

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

/// The proof that a larger tree of the ledger extends a smaller one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsistencyProof {
    /// The smaller tree's size.
    pub old_size: u64,
    /// The larger tree's size.
    pub new_size: u64,
    /// The smaller tree's root (hex).
    pub old_root: String,
    /// The larger tree's root (hex).
    pub new_root: String,
    /// The RFC 6962 consistency proof (hex).
    pub proof: Vec<String>,
    /// True when the proof checks and both roots are those of signed checkpoints.
    pub verified: bool,
    /// The signed checkpoint of the smaller tree, if one is stored.
    pub old_checkpoint: Option<Checkpoint>,
    /// The signed checkpoint of the larger tree, if one is stored.
    pub new_checkpoint: Option<Checkpoint>,
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

impl<S: Store> App<S> {
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

    /// The consistency proof that the ledger's first `new_size` entries extend
    /// its first `old_size` (nothing rewritten, only appended), checked against
    /// the stored checkpoints of those two sizes whose signatures verify.
    pub async fn prove_consistency(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<ConsistencyProof, AppError> {
        let rows = self.store.ledger().await?;
        let leaves = leaves(&rows);
        if new_size > leaves.len() as u64 {
            return Err(AppError::NoEntry {
                seq: new_size.saturating_sub(1),
                entries: leaves.len(),
            });
        }
        if old_size > new_size {
            return Err(AppError::Invalid(format!(
                "a consistency proof goes from a smaller tree to a larger one, not from {old_size} entries to {new_size}\nhint: swap the two sizes"
            )));
        }
        let (old, new) = (old_size as usize, new_size as usize);
        let old_root = firebreak_ledger::root(&leaves[..old]);
        let new_root = firebreak_ledger::root(&leaves[..new]);
        let path = firebreak_ledger::consistency_proof(&leaves[..new], old);
        let proved =
            firebreak_ledger::verify_consistency(old_size, new_size, &old_root, &new_root, &path);
        let checkpoints = self.store.checkpoints().await?;
        let signed = |size: u64, root: &Hash| {
            checkpoints
                .iter()
                .rev()
                .find(|c| {
                    c.tree_size == size && c.root == hex(root) && c.verify_signature().is_ok()
                })
                .cloned()
        };
        let old_checkpoint = signed(old_size, &old_root);
        let new_checkpoint = signed(new_size, &new_root);
        Ok(ConsistencyProof {
            old_size,
            new_size,
            old_root: hex(&old_root),
            new_root: hex(&new_root),
            proof: path.iter().map(|h| hex(h)).collect(),
            verified: proved && old_checkpoint.is_some() && new_checkpoint.is_some(),
            old_checkpoint,
            new_checkpoint,
        })
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

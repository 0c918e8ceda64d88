//! `audit verify`: the hash chain, the replay of the ledger (governance rules
//! included) compared with the state tables, every stored checkpoint, every
//! checkpoint published outside the database, and optionally a trusted
//! checkpoint file or the engine key stored checkpoints must be signed with.

use firebreak_ledger::{Checkpoint, MerkleTree, audit, hex};
use firebreak_store::Store;
use serde::Serialize;

use crate::checkpoints::{check_checkpoint, leaves, published};
use crate::{App, AppError};

/// What `audit verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// True when everything checked agrees.
    pub ok: bool,
    /// Entries in the ledger.
    pub entries: usize,
    /// Entries of the campaign asked about, if one was.
    pub campaign_entries: Option<usize>,
    /// The first entry at fault, when one is known.
    pub first_bad_seq: Option<u64>,
    /// Why verification failed.
    pub reason: Option<String>,
    /// The newest entry's hash (hex).
    pub head: Option<String>,
    /// The root of the whole ledger (hex).
    pub root: String,
    /// Checkpoints stored in the database.
    pub checkpoints: usize,
    /// Checkpoint files published outside it.
    pub published_checkpoints: usize,
    /// Whether a trusted key or checkpoint was given (and so checked).
    pub trusted: bool,
    /// The campaign asked about.
    #[serde(skip)]
    pub campaign: Option<String>,
}

impl<S: Store> App<S> {
    /// Verifies the whole ledger (reporting on `campaign` when given) against
    /// the state, its stored and published checkpoints and, with `trusted`, a
    /// checkpoint file or an `ed25519:` key stored checkpoints must be signed
    /// with. A failed verification is an answer (`ok: false`), not an error.
    pub async fn verify(
        &self,
        campaign: Option<&str>,
        trusted: Option<&str>,
    ) -> Result<Verification, AppError> {
        if let Some(name) = campaign {
            self.exists(name).await?;
        }
        let (rows, state) = self.store.ledger_and_snapshot().await?;
        // Every subtree hashed once (on every core): each checkpoint's root is
        // then a few lookups.
        let tree = MerkleTree::new(leaves(&rows));
        let mut failure: Option<(Option<u64>, String)> =
            audit(&rows, &state).err().map(|v| (v.seq, v.reason));
        let stored = self.store.checkpoints().await?;
        for checkpoint in &stored {
            if failure.is_none() {
                failure = check_checkpoint(checkpoint, &tree);
            }
        }
        match trusted {
            None => {}
            Some(key) if key.starts_with("ed25519:") => {
                firebreak_ledger::parse_public_key(key)
                    .map_err(|e| AppError::Invalid(format!("--trusted: {e}")))?;
                // Entries after the last trusted checkpoint are vouched for by
                // the chain only.
                if failure.is_none() && !stored.iter().any(|c| c.key == key) {
                    failure = Some((
                        None,
                        "no stored checkpoint is signed by the trusted key".into(),
                    ));
                }
            }
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    AppError::Invalid(format!("--trusted {path}: {e}\nhint: give a checkpoint file written by `audit checkpoint --out`, or an `ed25519:` key"))
                })?;
                let checkpoint: Checkpoint = serde_json::from_str(&text).map_err(|e| {
                    AppError::Invalid(format!("--trusted {path}: not a checkpoint: {e}"))
                })?;
                if failure.is_none() {
                    failure = check_checkpoint(&checkpoint, &tree);
                }
            }
        }
        let published =
            published(&self.checkpoint_dir).map_err(|e| AppError::Unpublished(Box::new(e)))?;
        for (path, checkpoint) in &published {
            if failure.is_none() {
                failure = check_checkpoint(checkpoint, &tree).map(|(seq, why)| {
                    (
                        seq,
                        format!("published checkpoint {}: {why}", path.display()),
                    )
                });
            }
        }
        let ok = failure.is_none();
        let (first_bad, reason) = failure.unzip();
        Ok(Verification {
            ok,
            entries: rows.len(),
            campaign_entries: campaign.map(|c| rows.iter().filter(|e| e.campaign == c).count()),
            first_bad_seq: first_bad.flatten(),
            reason,
            head: rows.last().map(|e| hex(&e.hash)),
            root: hex(&tree.root(tree.len()).unwrap_or_default()),
            checkpoints: stored.len(),
            published_checkpoints: published.len(),
            trusted: trusted.is_some(),
            campaign: campaign.map(str::to_string),
        })
    }
}

//! `audit export`: the ledger as JSON lines for independent verifiers — every
//! entry (those of other campaigns as their hashes alone when one campaign is
//! asked for), then every stored checkpoint.

use firebreak_ledger::{Checkpoint, Entry, hex};
use firebreak_store::Store;
use serde_json::{Value, json};

use crate::{App, AppError};

/// The ledger and its checkpoints, to be written out line by line.
#[derive(Debug, Clone)]
pub struct Export {
    /// Only this campaign's entries in full.
    pub campaign: Option<String>,
    /// Every ledger entry, in order.
    pub entries: Vec<Entry>,
    /// Every stored checkpoint.
    pub checkpoints: Vec<Checkpoint>,
}

impl Export {
    /// The export's lines, in order, built one at a time: entries (`seq`,
    /// `campaign`, `kind`, `payload`, `hash`; or `seq`, `hash`, `redacted`
    /// outside the campaign asked for), then `{"checkpoint": …}` objects.
    pub fn lines(&self) -> impl Iterator<Item = Value> + '_ {
        let entries = self.entries.iter().map(|entry| {
            if self.campaign.as_deref().is_none_or(|c| c == entry.campaign) {
                json!({
                    "seq": entry.seq,
                    "campaign": entry.campaign,
                    "kind": entry.kind,
                    "payload": entry.payload,
                    "hash": hex(&entry.hash),
                })
            } else {
                json!({"seq": entry.seq, "hash": hex(&entry.hash), "redacted": true})
            }
        });
        let checkpoints = self
            .checkpoints
            .iter()
            .map(|checkpoint| json!({ "checkpoint": checkpoint }));
        entries.chain(checkpoints)
    }
}

impl<S: Store> App<S> {
    /// The ledger and its checkpoints for export (with `campaign`, which must
    /// exist, only its entries in full).
    pub async fn export(&self, campaign: Option<&str>) -> Result<Export, AppError> {
        if let Some(name) = campaign {
            self.exists(name).await?;
        }
        Ok(Export {
            campaign: campaign.map(str::to_string),
            entries: self.store.ledger().await?,
            checkpoints: self.store.checkpoints().await?,
        })
    }
}

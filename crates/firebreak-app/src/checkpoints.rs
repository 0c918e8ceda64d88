//! Signed checkpoints: signing the ledger's root with the engine key, checking a
//! checkpoint against the ledger, and publishing every checkpoint the engine
//! signs as a file outside the database (a folder beside it, or
//! `FIREBREAK_CHECKPOINT_DIR`), which `audit verify` checks the ledger against.
//!
//! Why publish: a checkpoint stored in the database proves nothing once an
//! attacker who truncates or rewrites the ledger deletes it too; a file kept
//! where that attacker cannot write (another disk, another owner, an
//! append-only mount, a copy sent elsewhere) still holds the root the first
//! `tree_size` entries must have. With the default folder, truncation is caught
//! unless the attacker also finds and deletes these files.

use std::path::{Path, PathBuf};

use firebreak_ledger::{Checkpoint, Entry, Hash, MerkleTree, audit, hex};
use firebreak_runner::RunnerError;
use firebreak_store::Store;

use crate::{App, AppError};

/// The environment variable that names the folder checkpoints are published to.
pub const CHECKPOINT_DIR_ENV: &str = "FIREBREAK_CHECKPOINT_DIR";

/// The folder the checkpoints of the database at `database` are published to:
/// `FIREBREAK_CHECKPOINT_DIR`, else `<database>.checkpoints`.
pub fn checkpoint_folder(database: &Path) -> PathBuf {
    match std::env::var_os(CHECKPOINT_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let mut name = database.as_os_str().to_owned();
            name.push(".checkpoints");
            PathBuf::from(name)
        }
    }
}

/// Writes `checkpoint` to `dir` as `checkpoint-<tree size>.json` (through a
/// temporary file and a rename, so a reader never sees half of one).
pub(crate) fn publish(dir: &Path, checkpoint: &Checkpoint) -> Result<PathBuf, AppError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        AppError::io(
            format!("creating the checkpoint folder {}", dir.display()),
            e,
        )
    })?;
    let path = dir.join(format!("checkpoint-{:012}.json", checkpoint.tree_size));
    let partial = dir.join(format!(".checkpoint-{:012}.partial", checkpoint.tree_size));
    let text = pretty(checkpoint);
    std::fs::write(&partial, format!("{text}\n"))
        .map_err(|e| AppError::io(format!("writing {}", partial.display()), e))?;
    std::fs::rename(&partial, &path)
        .map_err(|e| AppError::io(format!("publishing {}", path.display()), e))?;
    Ok(path)
}

/// A checkpoint as its files hold it (and `audit checkpoint` prints it).
pub fn pretty(checkpoint: &Checkpoint) -> String {
    serde_json::to_string_pretty(checkpoint).unwrap_or_default()
}

/// Every checkpoint file in `dir` (none when it does not exist), in name order;
/// a file that is not a checkpoint is an error naming it.
pub(crate) fn published(dir: &Path) -> Result<Vec<(PathBuf, Checkpoint)>, AppError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AppError::io(format!("reading {}", dir.display()), e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("checkpoint-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| AppError::io(format!("reading {}", path.display()), e))?;
            let checkpoint: Checkpoint =
                serde_json::from_str(&text).map_err(|source| AppError::NotACheckpoint {
                    path: path.clone(),
                    source,
                })?;
            Ok((path, checkpoint))
        })
        .collect()
}

/// A checkpoint the engine signed and stored.
#[derive(Debug)]
pub struct Signed {
    /// The checkpoint, stored in the database.
    pub checkpoint: Checkpoint,
    /// Why it could not also be published outside the database, if it could not.
    pub unpublished: Option<AppError>,
}

/// The leaf hashes of ledger entries.
pub(crate) fn leaves(rows: &[Entry]) -> Vec<Hash> {
    rows.iter().map(|e| e.hash).collect()
}

/// Why `checkpoint` does not describe the ledger whose tree is `tree`, if it
/// does not: the entry at fault when one is known, and the reason.
pub(crate) fn check_checkpoint(
    checkpoint: &Checkpoint,
    tree: &MerkleTree,
) -> Option<(Option<u64>, String)> {
    if let Err(e) = checkpoint.verify_signature() {
        return Some((None, e));
    }
    let size = checkpoint.tree_size;
    let Some(root) = tree.root(size) else {
        return Some((
            Some(tree.len()),
            format!(
                "the checkpoint signed at {} covers {size} entries but the ledger has {}: entries were removed",
                checkpoint.at,
                tree.len()
            ),
        ));
    };
    if hex(&root) != checkpoint.root {
        return Some((
            None,
            format!(
                "the first {size} entries do not have the root of the checkpoint signed at {}: history was rewritten",
                checkpoint.at
            ),
        ));
    }
    None
}

impl<S: Store> App<S> {
    /// Signs the root of the whole ledger with the engine key, stores it and
    /// publishes it, after checking that the ledger verifies against the
    /// database: the engine never signs over a ledger that does not.
    pub async fn sign_checkpoint(&self) -> Result<Signed, AppError> {
        let (rows, state) = self.store.ledger_and_snapshot().await?;
        audit(&rows, &state).map_err(RunnerError::Tampered)?;
        let key = crate::keys::engine_key()?;
        let leaves = leaves(&rows);
        let now = firebreak_core::Clock::now(&firebreak_core::SystemClock);
        let checkpoint = Checkpoint::sign(
            &key,
            leaves.len() as u64,
            &firebreak_ledger::root(&leaves),
            now,
        );
        self.store.add_checkpoint(&checkpoint).await?;
        // Also outside the database, where a truncation cannot take it along.
        let unpublished = publish(&self.checkpoint_dir, &checkpoint).err();
        Ok(Signed {
            checkpoint,
            unpublished,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> firebreak_ledger::SigningKey {
        firebreak_ledger::SigningKey::from_bytes(&[7; 32])
    }

    fn tree(n: u8) -> MerkleTree {
        MerkleTree::new((0..n).map(|i| [i; 32]).collect())
    }

    fn signed(tree: &MerkleTree, size: u64) -> Checkpoint {
        let root = tree.root(size).unwrap_or_default();
        Checkpoint::sign(&key(), size, &root, 0)
    }

    #[test]
    fn a_checkpoint_of_the_same_entries_passes() {
        let t = tree(5);
        assert_eq!(check_checkpoint(&signed(&t, 3), &t), None);
        assert_eq!(check_checkpoint(&signed(&t, 5), &t), None);
    }

    #[test]
    fn a_checkpoint_longer_than_the_ledger_says_entries_were_removed() {
        let checkpoint = signed(&tree(5), 5);
        let (seq, why) = check_checkpoint(&checkpoint, &tree(3)).unwrap_or_default();
        assert_eq!(seq, Some(3));
        assert!(why.contains("entries were removed"), "{why}");
    }

    #[test]
    fn a_checkpoint_of_other_entries_says_history_was_rewritten() {
        let checkpoint = signed(&tree(4), 4);
        let other = MerkleTree::new((0..4).map(|i| [i + 1; 32]).collect());
        let (_, why) = check_checkpoint(&checkpoint, &other).unwrap_or_default();
        assert!(why.contains("history was rewritten"), "{why}");
    }

    #[test]
    fn published_checkpoints_are_read_back_in_order() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let t = tree(6);
        for size in [4, 2] {
            publish(dir.path(), &signed(&t, size)).expect("published");
        }
        let sizes: Vec<u64> = published(dir.path())
            .expect("read back")
            .iter()
            .map(|(_, c)| c.tree_size)
            .collect();
        assert_eq!(sizes, [2, 4]);
        assert!(published(&dir.path().join("missing")).is_ok_and(|v| v.is_empty()));
    }
}

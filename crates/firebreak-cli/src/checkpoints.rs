//! Signed checkpoints published outside the database: every checkpoint the
//! engine signs is also written as a file to a folder beside the database (or
//! `FIREBREAK_CHECKPOINT_DIR`), and `audit verify` checks the ledger against
//! every file there.
//!
//! Why: a checkpoint stored in the database proves nothing once an attacker who
//! truncates or rewrites the ledger deletes it too; a file kept where that
//! attacker cannot write (another disk, another owner, an append-only mount, a
//! copy sent elsewhere) still holds the root the first `tree_size` entries must
//! have. With the default folder, truncation is caught unless the attacker also
//! finds and deletes these files.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use firebreak_ledger::Checkpoint;

/// The environment variable that names the folder checkpoints are published to.
pub const CHECKPOINT_DIR_ENV: &str = "FIREBREAK_CHECKPOINT_DIR";

/// The folder the checkpoints of the database at `database` are published to:
/// `FIREBREAK_CHECKPOINT_DIR`, else `<database>.checkpoints`.
pub fn folder(database: &Path) -> PathBuf {
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
pub fn publish(dir: &Path, checkpoint: &Checkpoint) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the checkpoint folder {}", dir.display()))?;
    let path = dir.join(format!("checkpoint-{:012}.json", checkpoint.tree_size));
    let partial = dir.join(format!(".checkpoint-{:012}.partial", checkpoint.tree_size));
    let text = serde_json::to_string_pretty(checkpoint)?;
    std::fs::write(&partial, format!("{text}\n"))
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &path).with_context(|| format!("publishing {}", path.display()))?;
    Ok(path)
}

/// Every checkpoint file in `dir` (none when it does not exist), in name order;
/// a file that is not a checkpoint is an error naming it.
pub fn published(dir: &Path) -> anyhow::Result<Vec<(PathBuf, Checkpoint)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
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
                .with_context(|| format!("reading {}", path.display()))?;
            let checkpoint: Checkpoint = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a checkpoint", path.display()))?;
            Ok((path, checkpoint))
        })
        .collect()
}

//! Campaign run locks: an exclusive OS file lock (`flock`) per campaign, which the
//! kernel releases the moment the holding process dies, so a killed run never
//! blocks the next one and no timeout is needed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::StoreError;

/// Held while a run owns its campaign; dropping it releases the lock.
#[derive(Debug)]
pub struct CampaignLock {
    file: File,
    path: PathBuf,
}

impl CampaignLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the holder description others see (e.g. once the run id is known).
    pub fn describe(&mut self, holder: &str) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            context: format!("writing lock file {}", self.path.display()),
            source,
        };
        self.file.set_len(0).map_err(io)?;
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        self.file.write_all(holder.as_bytes()).map_err(io)
    }
}

fn lock_path(dir: &Path, campaign: &str) -> PathBuf {
    // Campaign names are limited to [A-Za-z0-9._-] by the spec, so they are safe
    // file names; the prefix keeps `.` and `..` out.
    dir.join(format!("campaign-{campaign}.lock"))
}

fn open(dir: &Path, campaign: &str) -> Result<(File, PathBuf), StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
        context: format!("creating lock folder {}", dir.display()),
        source,
    })?;
    let path = lock_path(dir, campaign);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| StoreError::Io {
            context: format!("opening lock file {}", path.display()),
            source,
        })?;
    Ok((file, path))
}

fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut text);
    if text.trim().is_empty() {
        "unknown holder".to_string()
    } else {
        text.trim().to_string()
    }
}

/// Takes the lock or names who holds it.
pub(crate) fn acquire(
    dir: &Path,
    campaign: &str,
    holder: &str,
) -> Result<CampaignLock, StoreError> {
    let (mut file, path) = open(dir, campaign)?;
    match file.try_lock() {
        Ok(()) => {
            let mut lock = CampaignLock { file, path };
            lock.describe(holder)?;
            Ok(lock)
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            campaign: campaign.to_string(),
            holder: read_holder(&mut file),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io {
            context: format!("locking {}", path.display()),
            source,
        }),
    }
}

/// Who holds the lock now. The probe takes a shared lock for an instant, which
/// `lock_campaign` tolerates by retrying briefly.
pub(crate) fn holder(dir: &Path, campaign: &str) -> Result<Option<String>, StoreError> {
    if !lock_path(dir, campaign).exists() {
        return Ok(None);
    }
    let (mut file, _) = open(dir, campaign)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(None),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Some(read_holder(&mut file))),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io {
            context: "reading a campaign lock".to_string(),
            source,
        }),
    }
}

//! Campaign run locks, released the moment the holding process dies, so a killed
//! run never blocks the next one and no timeout is needed.
//!
//! On SQLite, an exclusive OS file lock (`flock`) on a file per campaign beside
//! the database, holding the holder's description. On PostgreSQL, a session-level
//! advisory lock `(CAMPAIGN_NAMESPACE, lock_id)` taken on a connection of its
//! own, which the lock keeps open: the server releases it when that connection
//! closes, whether by `Drop` or by the process dying, on whatever machine. Each
//! campaign's `lock_id` and its holder's description are a row of
//! `campaign_locks`; the description counts only while the lock is held
//! (`pg_locks` says so), so a dead holder's stale text is never reported.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sqlx::{Connection as _, Row as _};
use tokio::sync::mpsc;

use crate::StoreError;

/// Held while a run owns its campaign; dropping it releases the lock.
#[derive(Debug)]
pub struct CampaignLock {
    held: Held,
}

#[derive(Debug)]
enum Held {
    /// SQLite: the locked file.
    File { file: File, path: PathBuf },
    /// PostgreSQL: the task that keeps the locking connection, and how to send
    /// it new descriptions. Dropping the sender tells the task to unlock and
    /// close the connection.
    Postgres {
        campaign: String,
        describe: mpsc::UnboundedSender<String>,
    },
}

impl CampaignLock {
    /// The lock file; `None` for a PostgreSQL store, whose locks live in the
    /// database.
    pub fn path(&self) -> Option<&Path> {
        match &self.held {
            Held::File { path, .. } => Some(path),
            Held::Postgres { .. } => None,
        }
    }

    /// Replaces the holder description others see (e.g. once the run id is known).
    ///
    /// On PostgreSQL the row is written by the task that keeps the lock's
    /// connection, in order, a moment later; this fails only when that
    /// connection is gone (and with it the lock).
    pub fn describe(&mut self, holder: &str) -> Result<(), StoreError> {
        match &mut self.held {
            Held::File { file, path } => {
                let io = |source| StoreError::Io {
                    context: format!("writing lock file {}", path.display()),
                    source,
                };
                file.set_len(0).map_err(io)?;
                file.seek(SeekFrom::Start(0)).map_err(io)?;
                file.write_all(holder.as_bytes()).map_err(io)
            }
            Held::Postgres { campaign, describe } => {
                describe
                    .send(holder.to_string())
                    .map_err(|_| StoreError::Io {
                        context: format!("describing the run lock of campaign {campaign:?}"),
                        source: std::io::Error::new(
                            std::io::ErrorKind::BrokenPipe,
                            "the connection holding the lock was lost",
                        ),
                    })
            }
        }
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
            let mut lock = CampaignLock {
                held: Held::File { file, path },
            };
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

/// The campaign's advisory lock key, made on first use.
async fn lock_id(pool: &PgPool, campaign: &str) -> Result<i32, StoreError> {
    // Inserted only when missing, so that lookups do not use up identity values.
    sqlx::query(
        "INSERT INTO campaign_locks (campaign) SELECT $1 \
         WHERE NOT EXISTS (SELECT 1 FROM campaign_locks WHERE campaign = $1) \
         ON CONFLICT DO NOTHING",
    )
    .bind(campaign)
    .execute(pool)
    .await?;
    Ok(
        sqlx::query_scalar("SELECT lock_id FROM campaign_locks WHERE campaign = $1")
            .bind(campaign)
            .fetch_one(pool)
            .await?,
    )
}

fn described(holder: Option<String>) -> String {
    match holder {
        Some(text) if !text.trim().is_empty() => text.trim().to_string(),
        _ => "unknown holder".to_string(),
    }
}

/// Takes the PostgreSQL lock of `campaign` on a new connection, or names who
/// holds it.
pub(crate) async fn acquire_pg(
    pool: &PgPool,
    options: &PgConnectOptions,
    campaign: &str,
    holder: &str,
) -> Result<CampaignLock, StoreError> {
    let id = lock_id(pool, campaign).await?;
    let mut conn = PgConnection::connect_with(options).await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
        .bind(crate::postgres::CAMPAIGN_NAMESPACE)
        .bind(id)
        .fetch_one(&mut conn)
        .await?;
    if !locked {
        let _ = conn.close().await;
        let holder: Option<String> =
            sqlx::query_scalar("SELECT holder FROM campaign_locks WHERE campaign = $1")
                .bind(campaign)
                .fetch_optional(pool)
                .await?;
        return Err(StoreError::Locked {
            campaign: campaign.to_string(),
            holder: described(holder),
        });
    }
    write_holder(&mut conn, campaign, holder).await?;
    let (describe, descriptions) = mpsc::unbounded_channel();
    tokio::spawn(keep_pg(conn, campaign.to_string(), id, descriptions));
    Ok(CampaignLock {
        held: Held::Postgres {
            campaign: campaign.to_string(),
            describe,
        },
    })
}

async fn write_holder(
    conn: &mut PgConnection,
    campaign: &str,
    holder: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE campaign_locks SET holder = $1 WHERE campaign = $2")
        .bind(holder)
        .bind(campaign)
        .execute(conn)
        .await?;
    Ok(())
}

/// Keeps the locking connection: writes each new description, and when the lock
/// is dropped clears the description, unlocks and closes. If a write fails the
/// connection is dropped (the server then releases the lock) and the next
/// `describe` reports it.
async fn keep_pg(
    mut conn: PgConnection,
    campaign: String,
    id: i32,
    mut descriptions: mpsc::UnboundedReceiver<String>,
) {
    while let Some(holder) = descriptions.recv().await {
        if write_holder(&mut conn, &campaign, &holder).await.is_err() {
            return;
        }
    }
    let _ = write_holder(&mut conn, &campaign, "").await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
        .bind(crate::postgres::CAMPAIGN_NAMESPACE)
        .bind(id)
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
}

/// Who holds the PostgreSQL lock of `campaign` now: its description, if some
/// session holds the advisory lock in this database.
pub(crate) async fn holder_pg(pool: &PgPool, campaign: &str) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(
        "SELECT c.holder FROM campaign_locks c WHERE c.campaign = $1 AND EXISTS ( \
           SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted \
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND l.classid::bigint = $2 AND l.objid::bigint = c.lock_id AND l.objsubid = 2)",
    )
    .bind(campaign)
    .bind(i64::from(crate::postgres::CAMPAIGN_NAMESPACE))
    .fetch_optional(pool)
    .await?;
    row.map(|row| Ok(described(row.try_get(0)?))).transpose()
}

//! The SQLite store: one writer connection (transactions begin `IMMEDIATE`, so
//! concurrent processes queue on SQLite's lock instead of failing on upgrade), a
//! small pool of readers, WAL journal, `synchronous = NORMAL`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use firebreak_core::{Clock, Metrics, Params, Report, SystemClock, Timestamp, Trial, TrialState};
use firebreak_ledger::{
    Authorization, Checkpoint, Entry, Event, GENESIS, Hash, Request, RequestState, RunRow,
    SignedDecision, StateSnapshot, Unsealed, canonical_json, hex,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, Row, SqliteConnection};

use crate::codec::{json, parse, sha256, to_hash};
use crate::merkle_cache::{self, CACHE_LEVEL, ProofPlan};
use crate::schema::{MIGRATIONS, SCHEMA_VERSION};
use crate::types::{
    CampaignRecord, CampaignSummary, Closing, Counts, DEFAULT_LEASE_MS, NewTrial, Outcome,
    ProcessInfo, RequestDraft, Requeued, RunInfo, RunRecord, SpecUpdate, Start, Store, TokenRecord,
};
use crate::{CampaignLock, StoreError, lock};

mod fast;
mod govern;
mod raw;

/// The embedded store. Cheap to clone; clones share connections.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: SqlitePool,
    readers: SqlitePool,
    clock: Arc<dyn Clock>,
    /// Ledger head and next trial numbers, valid while only this process writes;
    /// see `fast`.
    heads: std::sync::Mutex<fast::Heads>,
    /// The group-commit writer task's queue; see `fast`.
    ops: tokio::sync::mpsc::UnboundedSender<fast::Op>,
    #[cfg(test)]
    fault_after_state_write: std::sync::atomic::AtomicBool,
}

/// Which trials to load.
#[derive(Debug, Clone, Copy)]
enum Which<'a> {
    All,
    Campaign(&'a str),
    Trial(&'a str, u64),
}

impl Which<'_> {
    /// The SQL filter; its placeholders are bound in `load_trials`.
    fn filter(self) -> &'static str {
        match self {
            Which::All => "",
            Which::Campaign(_) => " WHERE campaign = ?",
            Which::Trial(..) => " WHERE campaign = ? AND number = ?",
        }
    }
}

/// Where the next ledger entry goes, read once per transaction.
struct Cursor {
    next_seq: u64,
    prev: Hash,
}

/// A write transaction with its ledger cursor.
struct Tx {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    cursor: Cursor,
}

/// An inclusion proof computed by the store: entry `seq` is in the tree of the
/// first `tree_size` entries, whose root is `root`, by the audit path `path`.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerProof {
    /// The entry.
    pub seq: u64,
    /// The size of the tree.
    pub tree_size: u64,
    /// The entry's stored leaf hash.
    pub leaf: Hash,
    /// The root of the tree, computed from the same stored hashes.
    pub root: Hash,
    /// The RFC 6962 audit path, bottom up.
    pub path: Vec<Hash>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://PATH` or a
    /// plain path). A new database gets the current schema; an older one is refused
    /// with a hint to run `firebreak storage upgrade`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, Arc::new(SystemClock), false).await
    }

    /// Opens a database that must exist already (for commands that only read).
    pub async fn open_existing(url: &str) -> Result<Self, StoreError> {
        let path = path_of(url)?;
        if !path.exists() {
            return Err(StoreError::NoDatabase(path.display().to_string()));
        }
        Self::open(url).await
    }

    /// Opens the database and brings its schema up to date (`storage upgrade`).
    /// Returns the store and the version the database had.
    pub async fn upgrade(url: &str) -> Result<(Self, u32), StoreError> {
        let path = path_of(url)?;
        let before = {
            let mut conn = connect(&path).await?;
            version_of(&mut conn).await?
        };
        let store = Self::open_with(url, Arc::new(SystemClock), true).await?;
        Ok((store, before.unwrap_or(0)))
    }

    /// Opens with an injected clock; `upgrade` allows migrating an older schema.
    pub async fn open_with(
        url: &str,
        clock: Arc<dyn Clock>,
        upgrade: bool,
    ) -> Result<Self, StoreError> {
        let path = path_of(url)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                context: format!("creating database folder {}", parent.display()),
                source,
            })?;
        }
        // Two processes creating one database at once race to switch it to WAL;
        // the loser gets "database is locked" at once, without the busy timeout,
        // and simply tries again.
        let mut attempts = 0;
        loop {
            let result = async {
                let mut conn = connect(&path).await?;
                migrate(&mut conn, upgrade, SCHEMA_VERSION).await?;
                conn.close().await?;
                Ok::<(), StoreError>(())
            }
            .await;
            match result {
                Err(StoreError::Database(e)) if is_busy(&e) && attempts < 100 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => break other?,
            }
        }
        // One writer connection: writes in this process queue here, writes of other
        // processes queue on SQLite's lock (busy timeout).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options(&path))
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options(&path))
            .await?;
        let (ops, queue) = tokio::sync::mpsc::unbounded_channel();
        let store = SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer,
                readers,
                clock,
                heads: std::sync::Mutex::new(fast::Heads::default()),
                ops,
                #[cfg(test)]
                fault_after_state_write: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        tokio::spawn(fast::writer(Arc::downgrade(&store.inner), queue));
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The schema version stored in the database.
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        let mut conn = self.inner.writer.acquire().await?;
        Ok(version_of(&mut conn).await?.unwrap_or(0))
    }

    /// The pragmas in force on the writer connection (for benchmarks and docs).
    pub async fn pragmas(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut conn = self.inner.writer.acquire().await?;
        let mut out = Vec::new();
        for name in [
            "journal_mode",
            "synchronous",
            "busy_timeout",
            "locking_mode",
        ] {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA {name}")))
                .fetch_one(&mut *conn)
                .await?;
            let value: String = row
                .try_get::<String, _>(0)
                .or_else(|_| row.try_get::<i64, _>(0).map(|v| v.to_string()))?;
            out.push((name.to_string(), value));
        }
        Ok(out)
    }

    fn lock_dir(&self) -> PathBuf {
        let mut name = self.inner.path.as_os_str().to_owned();
        name.push(".locks");
        PathBuf::from(name)
    }

    fn heads(&self) -> std::sync::MutexGuard<'_, fast::Heads> {
        self.inner
            .heads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// True when both triggers that make ledger rows append-only are present.
    async fn snapshot_guards(&self) -> Result<bool, StoreError> {
        let guards: i64 = sqlx::query(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'ledger' \
             AND name IN ('ledger_append_only_update', 'ledger_append_only_delete')",
        )
        .fetch_one(&self.inner.readers)
        .await?
        .try_get(0)?;
        Ok(guards == 2)
    }

    /// Begins an `IMMEDIATE` transaction on the writer connection and reads the
    /// ledger head. Dropping the returned transaction without `commit` rolls back.
    async fn begin(&self) -> Result<Tx, StoreError> {
        let mut tx = self.inner.writer.begin_with("BEGIN IMMEDIATE").await?;
        let head = sqlx::query("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let cursor = match head {
            Some(row) => Cursor {
                next_seq: row.try_get::<i64, _>(0)? as u64 + 1,
                prev: to_hash(&row.try_get::<Vec<u8>, _>(1)?),
            },
            None => Cursor {
                next_seq: 0,
                prev: GENESIS,
            },
        };
        Ok(Tx { tx, cursor })
    }

    /// Commits a write transaction. The hot path's cached ledger head and trial
    /// numbers are dropped, to be read afresh by the next batch.
    async fn commit(&self, w: Tx) -> Result<(), StoreError> {
        w.tx.commit().await?;
        *self.heads() = fast::Heads::default();
        Ok(())
    }

    async fn append(&self, w: &mut Tx, campaign: &str, event: &Event) -> Result<(), StoreError> {
        self.append_at(w, campaign, event, self.now()).await
    }

    /// Appends `event` as written at `at`: the time a state row records too, so
    /// the audit can compare the two.
    async fn append_at(
        &self,
        w: &mut Tx,
        campaign: &str,
        event: &Event,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        #[cfg(test)]
        if self
            .inner
            .fault_after_state_write
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(StoreError::Injected);
        }
        let entry = Entry::seal(w.cursor.next_seq, &w.cursor.prev, campaign, at, event)?;
        sqlx::query(
            "INSERT INTO ledger (seq, campaign, kind, payload, hash) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(entry.seq as i64)
        .bind(&entry.campaign)
        .bind(&entry.kind)
        .bind(&entry.payload)
        .bind(&entry.hash[..])
        .execute(&mut *w.tx)
        .await?;
        w.cursor.next_seq += 1;
        w.cursor.prev = entry.hash;
        Ok(())
    }

    /// Inserts a queued trial and its `trial_proposed` entry.
    async fn insert_queued(
        &self,
        w: &mut Tx,
        campaign: &str,
        trial: &NewTrial,
    ) -> Result<u64, StoreError> {
        let number: i64 = match trial.number {
            Some(n) => n as i64,
            None => {
                sqlx::query("SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE campaign = ?")
                    .bind(campaign)
                    .fetch_one(&mut *w.tx)
                    .await?
                    .try_get(0)?
            }
        };
        sqlx::query(
            "INSERT INTO trials (campaign, number, state, params, proposer, rationale, proposer_state, retry_of, priority) \
             VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
        )
        .bind(campaign)
        .bind(number)
        .bind(json(&trial.params))
        .bind(&trial.proposer)
        .bind(&trial.rationale)
        .bind(trial.state.as_ref().map(json))
        .bind(trial.retry_of.map(|n| n as i64))
        .bind(trial.priority)
        .execute(&mut *w.tx)
        .await?;
        let number = number as u64;
        let event = trial.proposed(number);
        self.append(w, campaign, &event).await?;
        Ok(number)
    }

    /// Re-queues the campaign's running trials: with `expired_at`, only those
    /// whose run's lease had run out by then (ended, or silent for longer than
    /// its lease); with `only_run`, only that run's.
    async fn requeue_where(
        &self,
        campaign: &str,
        (expired_at, only_run): (Option<Timestamp>, Option<u64>),
        reason: &str,
    ) -> Result<Vec<Requeued>, StoreError> {
        let mut w = self.begin().await?;
        const WHICH: &str = "campaign = ? AND state = 'running' AND (? IS NULL OR run = ?) \
             AND (? IS NULL OR run IS NULL OR run IN ( \
               SELECT id FROM runs WHERE ended_at IS NOT NULL \
               OR heartbeat_at + COALESCE(json_extract(info, '$.lease_ms'), ?) < ?))";
        let only_run = only_run.map(|r| r as i64);
        // Read before the update: RETURNING would show the cleared process.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT number, process FROM trials WHERE {WHICH}"
        )))
        .bind(campaign)
        .bind(only_run)
        .bind(only_run)
        .bind(expired_at)
        .bind(DEFAULT_LEASE_MS as i64)
        .bind(expired_at)
        .fetch_all(&mut *w.tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE trials SET state = 'queued', run = NULL, worker = NULL, process = NULL \
             WHERE {WHICH}"
        )))
        .bind(campaign)
        .bind(only_run)
        .bind(only_run)
        .bind(expired_at)
        .bind(DEFAULT_LEASE_MS as i64)
        .bind(expired_at)
        .execute(&mut *w.tx)
        .await?;
        let mut requeued = Vec::new();
        for row in rows {
            let process: Option<String> = row.try_get(1)?;
            requeued.push(Requeued {
                number: row.try_get::<i64, _>(0)? as u64,
                process: process.as_deref().map(parse).transpose()?,
            });
        }
        if requeued.is_empty() {
            return Ok(requeued); // the empty transaction rolls back
        }
        requeued.sort_by_key(|r| r.number);
        // Reports of an abandoned attempt are kept: they were observed and ledgered.
        for r in &requeued {
            let event = Event::TrialRequeued {
                number: r.number,
                reason: reason.to_string(),
            };
            self.append(&mut w, campaign, &event).await?;
        }
        self.commit(w).await?;
        Ok(requeued)
    }

    async fn require_campaign(&self, name: &str) -> Result<(), StoreError> {
        match self.campaign(name).await? {
            Some(_) => Ok(()),
            None => Err(StoreError::NoCampaign(name.to_string())),
        }
    }

    /// Trials with their intermediate reports, by campaign and number.
    async fn load_trials(&self, which: Which<'_>) -> Result<Vec<(String, Trial)>, StoreError> {
        let bind = |sql: String| {
            let query = sqlx::query(sqlx::AssertSqlSafe(sql));
            match which {
                Which::All => query,
                Which::Campaign(c) => query.bind(c.to_string()),
                Which::Trial(c, n) => query.bind(c.to_string()).bind(n as i64),
            }
        };
        let filter = which.filter();
        let rows = bind(format!(
            "SELECT campaign, number, state, params, metrics, error, proposer, rationale, retry_of, \
             started_at, finished_at, cpu_seconds, wall_seconds, proposer_state, generation FROM trials{filter} \
             ORDER BY campaign, number"
        ))
        .fetch_all(&self.inner.readers)
        .await?;
        let report_rows = bind(format!(
            "SELECT campaign, number, step, metrics FROM reports{filter} ORDER BY campaign, number, step"
        ))
        .fetch_all(&self.inner.readers)
        .await?;
        let mut reports: BTreeMap<(String, u64), Vec<Report>> = BTreeMap::new();
        for row in report_rows {
            let key = (
                row.try_get::<String, _>(0)?,
                row.try_get::<i64, _>(1)? as u64,
            );
            reports.entry(key).or_default().push(Report {
                step: row.try_get::<i64, _>(2)? as u64,
                metrics: parse(&row.try_get::<String, _>(3)?)?,
            });
        }
        rows.iter()
            .map(|row| {
                let campaign: String = row.try_get(0)?;
                let mut trial = trial_from_row(row)?;
                trial.intermediate = reports
                    .remove(&(campaign.clone(), trial.number))
                    .unwrap_or_default();
                Ok((campaign, trial))
            })
            .collect()
    }

    async fn runs_where(
        &self,
        campaign: &str,
        latest_only: bool,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let sql = if latest_only {
            "SELECT id, info, started_at, heartbeat_at, ended_at, end_reason FROM runs WHERE campaign = ? ORDER BY id DESC LIMIT 1"
        } else {
            "SELECT id, info, started_at, heartbeat_at, ended_at, end_reason FROM runs WHERE campaign = ? ORDER BY id"
        };
        let rows = sqlx::query(sql)
            .bind(campaign)
            .fetch_all(&self.inner.readers)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(RunRecord {
                    id: row.try_get::<i64, _>(0)? as u64,
                    info: parse(&row.try_get::<String, _>(1)?)?,
                    started_at: row.try_get(2)?,
                    heartbeat_at: row.try_get(3)?,
                    ended_at: row.try_get(4)?,
                    end_reason: row.try_get(5)?,
                })
            })
            .collect()
    }
}

/// SQLite's "database is locked" (SQLITE_BUSY, code 5).
fn is_busy(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("5"))
}

fn path_of(url: &str) -> Result<PathBuf, StoreError> {
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    if path.is_empty() || path.contains("://") || path.starts_with(':') {
        return Err(StoreError::Url {
            url: url.to_string(),
        });
    }
    Ok(PathBuf::from(path))
}

fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous())
        .busy_timeout(Duration::from_secs(60))
        .foreign_keys(false)
}

/// `synchronous = NORMAL` (durable at each checkpoint; a power cut may lose the
/// last commits, never corrupt), or `FULL` (every commit synced) when
/// `FIREBREAK_SQLITE_SYNCHRONOUS=FULL`: the benchmarks' knob for comparing at
/// equal durability (`bench/spine.sh`).
fn synchronous() -> SqliteSynchronous {
    match std::env::var("FIREBREAK_SQLITE_SYNCHRONOUS") {
        Ok(v) if v.eq_ignore_ascii_case("full") => SqliteSynchronous::Full,
        _ => SqliteSynchronous::Normal,
    }
}

async fn connect(path: &Path) -> Result<SqliteConnection, StoreError> {
    Ok(SqliteConnection::connect_with(&options(path)).await?)
}

async fn version_of(conn: &mut SqliteConnection) -> Result<Option<u32>, StoreError> {
    let has_meta =
        sqlx::query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'")
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
    if !has_meta {
        let any = sqlx::query("SELECT 1 FROM sqlite_master WHERE type = 'table'")
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
        return if any {
            Err(StoreError::Schema {
                message: "this SQLite file is not a firebreak database".into(),
                hint: "point --storage at a firebreak database or at a new file".into(),
            })
        } else {
            Ok(None)
        };
    }
    let value: Option<String> = sqlx::query("SELECT value FROM meta WHERE key = 'schema_version'")
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    value
        .map(|v| {
            v.parse()
                .map_err(|_| StoreError::Corrupt(format!("schema_version {v:?}")))
        })
        .transpose()
}

/// Brings the schema to `target`: a new database silently, an older one only when
/// `upgrade` is set; a newer one never.
pub(crate) async fn migrate(
    conn: &mut SqliteConnection,
    upgrade: bool,
    target: u32,
) -> Result<(), StoreError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let current = version_of(&mut tx).await?;
    match current {
        Some(v) if v == target => return Ok(()),
        Some(v) if v > target => {
            return Err(StoreError::Schema {
                message: format!(
                    "the database schema is version {v}, newer than this binary's version {target}"
                ),
                hint: "use a newer firebreak with this database".into(),
            });
        }
        Some(v) if !upgrade => {
            return Err(StoreError::Schema {
                message: format!(
                    "the database schema is version {v}; this binary needs version {target}"
                ),
                hint: "run `firebreak storage upgrade` (it never rewrites ledger rows)".into(),
            });
        }
        _ => {}
    }
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(current.unwrap_or(0) as usize)
        .take((target as usize).saturating_sub(current.unwrap_or(0) as usize))
    {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)")
            .bind((index + 1).to_string())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// How many complete blocks of `2^CACHE_LEVEL` entries the cache covers. It is
/// filled in order and every level above at once, so level `j` holds exactly the
/// nodes `0..(blocks >> (j - CACHE_LEVEL))`.
async fn cached_blocks<'e, E>(executor: E) -> Result<u64, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let blocks: i64 =
        sqlx::query("SELECT COALESCE(MAX(idx) + 1, 0) FROM merkle_nodes WHERE level = ?")
            .bind(CACHE_LEVEL as i64)
            .fetch_one(executor)
            .await?
            .try_get(0)?;
    Ok(blocks.max(0) as u64)
}

/// Adds the cache nodes of every complete block below `size` that it lacks, and
/// the levels above, inside `tx`. Leaf hashes come from `recent` (the hashes of
/// entries `recent.0..`, just appended) where it has them, else from the ledger.
/// Does nothing when a leaf row is missing (the cache stays short; proofs then use
/// every leaf).
async fn extend_merkle_cache(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    size: u64,
    recent: Option<(u64, &[Hash])>,
) -> Result<(), StoreError> {
    let have = cached_blocks(&mut **tx).await?;
    let want = size >> CACHE_LEVEL;
    if have >= want {
        return Ok(());
    }
    let (start, end) = (have << CACHE_LEVEL, want << CACHE_LEVEL);
    let mut leaves: Vec<Hash> = Vec::with_capacity((end - start) as usize);
    let stored_until = recent.map_or(end, |(first, _)| first.clamp(start, end));
    if stored_until > start {
        let rows =
            sqlx::query("SELECT seq, hash FROM ledger WHERE seq >= ? AND seq < ? ORDER BY seq")
                .bind(start as i64)
                .bind(stored_until as i64)
                .fetch_all(&mut **tx)
                .await?;
        for (offset, row) in rows.iter().enumerate() {
            if row.try_get::<i64, _>(0)? as u64 != start + offset as u64 {
                return Ok(());
            }
            leaves.push(to_hash(row.try_get::<&[u8], _>(1)?));
        }
    }
    if let Some((first, hashes)) = recent {
        let skip = (stored_until - first) as usize;
        let take = (end - stored_until) as usize;
        leaves.extend(hashes.iter().skip(skip).take(take));
    }
    if leaves.len() as u64 != end - start {
        return Ok(());
    }
    // A level's first new node may pair with the last cached node on its left.
    let mut left = HashMap::new();
    for node in merkle_cache::left_neighbours(have, want) {
        let hash: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT hash FROM merkle_nodes WHERE level = ? AND idx = ?")
                .bind(i64::from(node.level))
                .bind(node.index as i64)
                .fetch_optional(&mut **tx)
                .await?;
        match hash {
            Some(hash) if hash.len() == 32 => left.insert(node, to_hash(&hash)),
            _ => return Ok(()),
        };
    }
    let Some(new_nodes) = merkle_cache::new_nodes(have, &leaves, &left) else {
        return Ok(());
    };
    for chunk in new_nodes.chunks(300) {
        let mut sql = String::from("INSERT OR IGNORE INTO merkle_nodes (level, idx, hash) VALUES ");
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "(?, ?, ?)" } else { ", (?, ?, ?)" });
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (level, index, hash) in chunk {
            query = query
                .bind(*level as i64)
                .bind(*index as i64)
                .bind(hash.to_vec());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Events per thread below which `unsealed` stays on one thread.
const MIN_EVENTS_PER_THREAD: usize = 256;

/// Each event of `campaign` at `at` unsealed (`Unsealed::new`: its canonical
/// text, which does not depend on the chain), on every core: the costly part of
/// sealing, which the hash chain would otherwise keep on one.
fn unsealed(campaign: &str, at: Timestamp, events: &[Event]) -> Result<Vec<Unsealed>, StoreError> {
    let unseal = |events: &[Event]| -> Result<Vec<Unsealed>, StoreError> {
        events
            .iter()
            .map(|event| Ok(Unsealed::new(campaign, at, event)?))
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(events.len() / MIN_EVENTS_PER_THREAD)
        .max(1);
    if threads == 1 {
        return unseal(events);
    }
    let chunk = events.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = events
            .chunks(chunk)
            .map(|part| scope.spawn(move || unseal(part)))
            .collect();
        let mut all = Vec::with_capacity(events.len());
        for handle in handles {
            let part = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            all.extend(part);
        }
        Ok(all)
    })
}

fn trial_from_row(row: &SqliteRow) -> Result<Trial, StoreError> {
    let state: String = row.try_get(2)?;
    Ok(Trial {
        number: row.try_get::<i64, _>(1)? as u64,
        state: TrialState::from_str(&state).map_err(StoreError::Corrupt)?,
        params: parse::<Params>(&row.try_get::<String, _>(3)?)?,
        metrics: parse::<Metrics>(&row.try_get::<String, _>(4)?)?,
        intermediate: Vec::new(),
        error: row.try_get(5)?,
        proposer: row.try_get(6)?,
        rationale: row.try_get(7)?,
        proposer_state: row
            .try_get::<Option<String>, _>(13)?
            .map(|text| parse(&text))
            .transpose()?,
        retry_of: row.try_get::<Option<i64>, _>(8)?.map(|n| n as u64),
        started_at: row.try_get(9)?,
        finished_at: row.try_get(10)?,
        cpu_seconds: row.try_get(11)?,
        wall_seconds: row.try_get(12)?,
        generation: row
            .try_get::<Option<i64>, _>(14)?
            .and_then(|g| u32::try_from(g).ok()),
    })
}

impl Store for SqliteStore {
    async fn trial(&self, campaign: &str, number: u64) -> Result<Trial, StoreError> {
        SqliteStore::trial(self, campaign, number).await
    }

    async fn ledger_size(&self) -> Result<u64, StoreError> {
        SqliteStore::ledger_size(self).await
    }

    async fn inclusion_proof(
        &self,
        seq: u64,
        tree_size: u64,
    ) -> Result<Option<LedgerProof>, StoreError> {
        SqliteStore::inclusion_proof(self, seq, tree_size).await
    }

    async fn create_campaign(
        &self,
        name: &str,
        spec: &serde_json::Value,
    ) -> Result<CampaignRecord, StoreError> {
        let canonical = canonical_json(spec)?;
        let spec_hash = hex(&sha256(canonical.as_bytes()));
        let created_at = self.now();
        let mut w = self.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM campaigns WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *w.tx)
            .await?
            .is_some();
        if exists {
            return Err(StoreError::CampaignExists(name.to_string()));
        }
        sqlx::query(
            "INSERT INTO campaigns (name, spec, spec_hash, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(name)
        .bind(&canonical)
        .bind(&spec_hash)
        .bind(created_at)
        .execute(&mut *w.tx)
        .await?;
        let event = Event::CampaignCreated {
            spec: spec.clone(),
            spec_hash: spec_hash.clone(),
        };
        self.append(&mut w, name, &event).await?;
        self.commit(w).await?;
        Ok(CampaignRecord {
            name: name.to_string(),
            spec: spec.clone(),
            spec_hash,
            created_at,
            submitted: spec.clone(),
        })
    }

    async fn campaign(&self, name: &str) -> Result<Option<CampaignRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT name, spec, spec_hash, created_at, submitted FROM campaigns WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.inner.readers)
        .await?;
        row.map(|row| campaign_from_row(&row)).transpose()
    }

    async fn campaigns(&self) -> Result<Vec<CampaignSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, spec, spec_hash, created_at, submitted FROM campaigns ORDER BY name",
        )
        .fetch_all(&self.inner.readers)
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let campaign = campaign_from_row(&row)?;
            let counts = self.counts(&campaign.name).await?;
            let last_run = self.runs_where(&campaign.name, true).await?.pop();
            out.push(CampaignSummary {
                campaign,
                counts,
                last_run,
            });
        }
        Ok(out)
    }

    async fn lock_campaign(&self, name: &str, holder: &str) -> Result<CampaignLock, StoreError> {
        // `lock_holder` probes with a brief shared lock (`status`, `campaigns`); a
        // run that starts during a probe tries again for a moment. A live run holds
        // the lock for its whole life, so it is still refused.
        let mut attempts = 0;
        loop {
            match lock::acquire(&self.lock_dir(), name, holder) {
                Err(StoreError::Locked { .. }) if attempts < 40 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                result => return result,
            }
        }
    }

    async fn lock_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        lock::holder(&self.lock_dir(), name)
    }

    async fn start_run(&self, campaign: &str, info: &RunInfo) -> Result<u64, StoreError> {
        let now = self.now();
        let mut w = self.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO runs (campaign, info, started_at, heartbeat_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(campaign)
        .bind(json(info))
        .bind(now)
        .bind(now)
        .fetch_one(&mut *w.tx)
        .await?
        .try_get(0)?;
        let run = id as u64;
        let event = Event::RunStarted {
            run,
            version: info.version.clone(),
            os_user: info.os_user.clone(),
            sandbox: info.sandbox.clone(),
            host: info.host.clone(),
            pid: info.pid,
        };
        self.append_at(&mut w, campaign, &event, now).await?;
        self.commit(w).await?;
        Ok(run)
    }

    async fn runs(&self, campaign: &str) -> Result<Vec<RunRecord>, StoreError> {
        self.runs_where(campaign, false).await
    }

    async fn heartbeat(&self, run: u64) -> Result<(), StoreError> {
        let now = self.now();
        let mut conn = self.inner.writer.acquire().await?;
        sqlx::query("UPDATE runs SET heartbeat_at = ? WHERE id = ?")
            .bind(now)
            .bind(run as i64)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn end_run(&self, campaign: &str, run: u64, reason: &str) -> Result<(), StoreError> {
        let now = self.now();
        let mut w = self.begin().await?;
        sqlx::query("UPDATE runs SET ended_at = ?, end_reason = ? WHERE id = ?")
            .bind(now)
            .bind(reason)
            .bind(run as i64)
            .execute(&mut *w.tx)
            .await?;
        let event = Event::RunEnded {
            run,
            reason: reason.to_string(),
        };
        self.append_at(&mut w, campaign, &event, now).await?;
        self.commit(w).await
    }

    async fn requeue_running(
        &self,
        campaign: &str,
        reason: &str,
    ) -> Result<Vec<Requeued>, StoreError> {
        self.requeue_where(campaign, (None, None), reason).await
    }

    async fn requeue_run(
        &self,
        campaign: &str,
        run: u64,
        reason: &str,
    ) -> Result<Vec<Requeued>, StoreError> {
        self.requeue_where(campaign, (None, Some(run)), reason)
            .await
    }

    async fn requeue_expired(
        &self,
        campaign: &str,
        reason: &str,
    ) -> Result<Vec<Requeued>, StoreError> {
        self.requeue_where(campaign, (Some(self.now()), None), reason)
            .await
    }

    async fn resume_paused(
        &self,
        campaign: &str,
        number: u64,
        run: u64,
        worker: u32,
        reason: &str,
    ) -> Result<Option<Trial>, StoreError> {
        let mut w = self.begin().await?;
        let resumed = sqlx::query(
            "UPDATE trials SET state = 'running', error = NULL, metrics = '{}', run = ?, worker = ?, \
             process = NULL, finished_at = NULL \
             WHERE campaign = ? AND number = ? AND state = 'pruned' RETURNING number",
        )
        .bind(run as i64)
        .bind(i64::from(worker))
        .bind(campaign)
        .bind(number as i64)
        .fetch_optional(&mut *w.tx)
        .await?;
        if resumed.is_none() {
            return Ok(None); // not paused any more; the empty transaction rolls back
        }
        let event = Event::TrialResumed {
            number,
            run,
            worker,
            reason: reason.to_string(),
        };
        self.append(&mut w, campaign, &event).await?;
        self.commit(w).await?;
        Ok(Some(self.trial(campaign, number).await?))
    }

    async fn enqueue(&self, campaign: &str, trial: &NewTrial) -> Result<u64, StoreError> {
        self.require_campaign(campaign).await?;
        let mut w = self.begin().await?;
        let number = self.insert_queued(&mut w, campaign, trial).await?;
        self.commit(w).await?;
        Ok(number)
    }

    async fn claim_queued(
        &self,
        campaign: &str,
        start: &Start,
    ) -> Result<Option<Trial>, StoreError> {
        let now = self.now();
        let mut w = self.begin().await?;
        if let Some(slots) = start.slots {
            let started: i64 =
                sqlx::query("SELECT count(*) FROM trials WHERE campaign = ? AND state <> 'queued'")
                    .bind(campaign)
                    .fetch_one(&mut *w.tx)
                    .await?
                    .try_get(0)?;
            if started as u64 >= slots {
                return Err(StoreError::NoSlot); // the empty transaction rolls back
            }
        }
        // The state condition in the UPDATE is the compare-and-set.
        let claimed = sqlx::query(
            "UPDATE trials SET state = 'running', run = ?, worker = ?, started_at = ?, \
             generation = COALESCE(generation, (SELECT generation FROM campaigns WHERE name = campaign)) \
             WHERE campaign = ? AND state = 'queued' AND number = ( \
               SELECT number FROM trials WHERE campaign = ? AND state = 'queued' \
               ORDER BY priority DESC, number LIMIT 1) \
             RETURNING number",
        )
        .bind(start.run as i64)
        .bind(i64::from(start.worker))
        .bind(now)
        .bind(campaign)
        .bind(campaign)
        .fetch_optional(&mut *w.tx)
        .await?;
        let Some(row) = claimed else {
            return Ok(None); // nothing queued; the empty transaction rolls back
        };
        let number = row.try_get::<i64, _>(0)? as u64;
        let event = Event::TrialStarted {
            number,
            run: start.run,
            worker: start.worker,
            policy: start.policy.clone(),
        };
        self.append(&mut w, campaign, &event).await?;
        self.commit(w).await?;
        Ok(Some(self.trial(campaign, number).await?))
    }

    async fn has_queued(&self, campaign: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM trials WHERE campaign = ? AND state = 'queued' LIMIT 1")
                .bind(campaign)
                .fetch_optional(&self.inner.readers)
                .await?
                .is_some(),
        )
    }

    async fn propose_and_start(
        &self,
        campaign: &str,
        trial: &NewTrial,
        start: &Start,
    ) -> Result<Trial, StoreError> {
        self.fast_propose_and_start(campaign, trial, start).await
    }

    async fn set_process(
        &self,
        campaign: &str,
        number: u64,
        process: &ProcessInfo,
    ) -> Result<(), StoreError> {
        self.fast_set_process(campaign, number, json(process))
            .await?;
        Ok(())
    }

    async fn report(
        &self,
        campaign: &str,
        number: u64,
        run: u64,
        report: &Report,
    ) -> Result<bool, StoreError> {
        self.fast_report(campaign, number, run, report).await
    }

    async fn finish(
        &self,
        campaign: &str,
        number: u64,
        run: u64,
        outcome: &Outcome,
    ) -> Result<bool, StoreError> {
        self.fast_finish(campaign, number, run, outcome).await
    }

    async fn trials(&self, campaign: &str) -> Result<Vec<Trial>, StoreError> {
        Ok(self
            .load_trials(Which::Campaign(campaign))
            .await?
            .into_iter()
            .map(|(_, t)| t)
            .collect())
    }

    async fn counts(&self, campaign: &str) -> Result<Counts, StoreError> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) FROM trials WHERE campaign = ? GROUP BY state")
                .bind(campaign)
                .fetch_all(&self.inner.readers)
                .await?;
        let mut counts = Counts::default();
        for row in rows {
            let state: String = row.try_get(0)?;
            let n = row.try_get::<i64, _>(1)? as u64;
            match TrialState::from_str(&state).map_err(StoreError::Corrupt)? {
                TrialState::Queued => counts.queued = n,
                TrialState::Running => counts.running = n,
                TrialState::Complete => counts.complete = n,
                TrialState::Pruned => counts.pruned = n,
                TrialState::Failed => counts.failed = n,
            }
        }
        Ok(counts)
    }

    async fn log(&self, campaign: &str, number: u64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT log FROM trials WHERE campaign = ? AND number = ?")
            .bind(campaign)
            .bind(number as i64)
            .fetch_optional(&self.inner.readers)
            .await?;
        match row {
            Some(row) => Ok(row.try_get(0)?),
            None => Err(StoreError::NoTrial {
                campaign: campaign.to_string(),
                number,
            }),
        }
    }

    async fn ledger(&self) -> Result<Vec<Entry>, StoreError> {
        // Two halves read at once on two reader connections, each on its own
        // thread through SQLite's C API (`raw`: sqlx's per-row decoding cost four
        // times the rest of `audit verify`). The first half is open below and the
        // second open above, so every row is returned whatever its `seq`.
        let size = self.ledger_size().await?;
        let half = (size / 2).min(i64::MAX as u64) as i64;
        let mut first = self.inner.readers.acquire().await?;
        let mut second = self.inner.readers.acquire().await?;
        let mut first = first.lock_handle().await?;
        let mut second = second.lock_handle().await?;
        raw::read_ranges(
            vec![
                (raw::Handle::new(&mut first), i64::MIN, half - 1),
                (raw::Handle::new(&mut second), half, i64::MAX),
            ],
            // A hint only: a stray huge `seq` must not reserve the memory it names.
            size.min(1 << 24) as usize,
        )
    }

    async fn ledger_range(&self, from: u64, limit: u64) -> Result<Vec<Entry>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, campaign, kind, payload, hash FROM ledger \
             WHERE seq >= ? ORDER BY seq LIMIT ?",
        )
        .bind(from.min(i64::MAX as u64) as i64)
        .bind(limit.min(i64::MAX as u64) as i64)
        .fetch_all(&self.inner.readers)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Entry {
                    seq: row.try_get::<i64, _>(0)? as u64,
                    campaign: row.try_get(1)?,
                    kind: row.try_get(2)?,
                    payload: row.try_get(3)?,
                    hash: to_hash(row.try_get::<&[u8], _>(4)?),
                })
            })
            .collect()
    }

    async fn add_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let mut conn = self.inner.writer.acquire().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, hash, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.id)
        .bind(&token.name)
        .bind(&token.role)
        .bind(&token.hash)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, role, hash, created_at, expires_at, revoked_at FROM api_tokens WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.inner.readers)
        .await?;
        row.as_ref().map(crate::codec::token_from_row).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, role, hash, created_at, expires_at, revoked_at \
             FROM api_tokens ORDER BY created_at, id",
        )
        .fetch_all(&self.inner.readers)
        .await?;
        rows.iter().map(crate::codec::token_from_row).collect()
    }

    async fn revoke_token(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        let mut conn = self.inner.writer.acquire().await?;
        let done =
            sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(at)
                .bind(id)
                .execute(&mut *conn)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let mut conn = self.inner.writer.acquire().await?;
        sqlx::query("INSERT INTO checkpoints (tree_size, payload) VALUES (?, ?)")
            .bind(checkpoint.tree_size as i64)
            .bind(json(checkpoint))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query("SELECT payload FROM checkpoints ORDER BY id")
            .fetch_all(&self.inner.readers)
            .await?;
        rows.iter()
            .map(|row| parse(&row.try_get::<String, _>(0)?))
            .collect()
    }

    async fn snapshot(&self) -> Result<StateSnapshot, StoreError> {
        let rows = sqlx::query("SELECT name, spec, generation FROM campaigns")
            .fetch_all(&self.inner.readers)
            .await?;
        let mut campaigns = BTreeMap::new();
        let mut generations = BTreeMap::new();
        for row in rows {
            let name = row.try_get::<String, _>(0)?;
            if let Some(generation) = row.try_get::<Option<i64>, _>(2)? {
                generations.insert(name.clone(), generation);
            }
            campaigns.insert(name, parse(&row.try_get::<String, _>(1)?)?);
        }
        let requests = self
            .gov_requests(None)
            .await?
            .into_iter()
            .map(|request| (request.body.id.clone(), request))
            .collect();
        let mut runs = Vec::new();
        let rows = sqlx::query("SELECT campaign, id, started_at, ended_at, end_reason FROM runs")
            .fetch_all(&self.inner.readers)
            .await?;
        for row in rows {
            let run = RunRow {
                id: row.try_get::<i64, _>(1)? as u64,
                started_at: row.try_get(2)?,
                ended_at: row.try_get(3)?,
                end_reason: row.try_get(4)?,
            };
            runs.push((row.try_get::<String, _>(0)?, run));
        }
        let mut tests = BTreeMap::new();
        let rows = sqlx::query("SELECT campaign, number, metrics FROM trial_tests")
            .fetch_all(&self.inner.readers)
            .await?;
        for row in rows {
            let key = (
                row.try_get::<String, _>(0)?,
                row.try_get::<i64, _>(1)? as u64,
            );
            tests.insert(key, parse(&row.try_get::<String, _>(2)?)?);
        }
        let mut agent_texts = BTreeMap::new();
        let rows = sqlx::query("SELECT sha256, body FROM agent_texts")
            .fetch_all(&self.inner.readers)
            .await?;
        for row in rows {
            let body: String = row.try_get(1)?;
            agent_texts.insert(row.try_get::<String, _>(0)?, hex(&sha256(body.as_bytes())));
        }
        let guarded = self.snapshot_guards().await?;
        Ok(StateSnapshot {
            campaigns,
            trials: self.load_trials(Which::All).await?,
            requests,
            runs,
            tests,
            agent_texts,
            generations,
            ledger_writable: !guarded,
        })
    }

    async fn file_request(&self, draft: &RequestDraft) -> Result<(Request, bool), StoreError> {
        self.gov_file_request(draft).await
    }

    async fn requests(&self, campaign: Option<&str>) -> Result<Vec<Request>, StoreError> {
        self.gov_requests(campaign).await
    }

    async fn decide_request(
        &self,
        id: &str,
        decision: &SignedDecision,
        policy: &Authorization,
        decisions_seen: usize,
        closing: Option<&Closing>,
    ) -> Result<Request, StoreError> {
        self.gov_decide(id, decision, policy, decisions_seen, closing)
            .await
    }

    async fn close_request(
        &self,
        id: &str,
        state: RequestState,
        reason: &str,
    ) -> Result<bool, StoreError> {
        self.gov_close(id, state, reason).await
    }

    async fn change_spec(&self, campaign: &str, update: &SpecUpdate) -> Result<(), StoreError> {
        self.gov_change_spec(campaign, update).await
    }

    async fn record_note(&self, campaign: &str, note: &Event) -> Result<(), StoreError> {
        self.gov_record_note(campaign, note).await
    }

    async fn ledger_and_snapshot(&self) -> Result<(Vec<Entry>, StateSnapshot), StoreError> {
        // Holding the write lock (rolled back unused) keeps every writer, in this
        // process or another, from committing while both are read.
        let hold = self.begin().await?;
        // Both on reader connections at once: the ledger's rows come in while
        // the state tables are decoded.
        let (rows, state) = tokio::try_join!(self.ledger(), self.snapshot())?;
        drop(hold);
        Ok((rows, state))
    }

    async fn record_test(
        &self,
        campaign: &str,
        number: u64,
        metrics: &Metrics,
        cpu_seconds: Option<f64>,
    ) -> Result<bool, StoreError> {
        let mut w = self.begin().await?;
        let complete = sqlx::query(
            "SELECT 1 FROM trials WHERE campaign = ? AND number = ? AND state = 'complete'",
        )
        .bind(campaign)
        .bind(number as i64)
        .fetch_optional(&mut *w.tx)
        .await?
        .is_some();
        if !complete {
            return Ok(false);
        }
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO trial_tests (campaign, number, metrics) VALUES (?, ?, ?)",
        )
        .bind(campaign)
        .bind(number as i64)
        .bind(json(metrics))
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        let event = Event::TrialTested {
            number,
            metrics: metrics.clone(),
            cpu_seconds: cpu_seconds.filter(|s| s.is_finite()),
        };
        self.append(&mut w, campaign, &event).await?;
        self.commit(w).await?;
        Ok(true)
    }

    async fn tests(&self, campaign: &str) -> Result<BTreeMap<u64, Metrics>, StoreError> {
        let rows = sqlx::query("SELECT number, metrics FROM trial_tests WHERE campaign = ?")
            .bind(campaign)
            .fetch_all(&self.inner.readers)
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>(0)? as u64,
                    parse(&row.try_get::<String, _>(1)?)?,
                ))
            })
            .collect()
    }

    async fn record_agent_exchange(
        &self,
        campaign: &str,
        event: &Event,
        texts: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut w = self.begin().await?;
        for (hash, body) in texts {
            sqlx::query(
                "INSERT OR IGNORE INTO agent_texts (sha256, campaign, body) VALUES (?, ?, ?)",
            )
            .bind(hash)
            .bind(campaign)
            .bind(body)
            .execute(&mut *w.tx)
            .await?;
        }
        self.append(&mut w, campaign, event).await?;
        self.commit(w).await
    }

    async fn agent_text(&self, hash: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT body FROM agent_texts WHERE sha256 = ?")
                .bind(hash)
                .fetch_optional(&self.inner.readers)
                .await?,
        )
    }

    async fn restore_guards(&self) -> Result<bool, StoreError> {
        let before = self.snapshot_guards().await?;
        if before {
            return Ok(false);
        }
        let mut conn = self.inner.writer.acquire().await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(crate::schema::LEDGER_GUARDS))
            .execute(&mut *conn)
            .await?;
        Ok(true)
    }
}

impl SqliteStore {
    /// Appends `events` of `campaign` to the ledger in one transaction, sealed
    /// exactly as every state change seals its entries, and returns how many were
    /// appended. The events change no state table: this is for records that stand
    /// alone (imports, benchmarks); state changes append through their own methods.
    ///
    /// Why: a transaction per entry costs a commit each, and a statement per entry
    /// through sqlx a hand-off to the driver's thread each; here the rows go in one
    /// transaction, through one prepared statement stepped on the connection
    /// itself (`raw`), which costs less than sqlx's binding of multi-row `INSERT`s.
    pub async fn append_batch(&self, campaign: &str, events: &[Event]) -> Result<u64, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        let mut w = self.begin().await?;
        let at = self.now();
        let unsealed = unsealed(campaign, at, events)?;
        let first_seq = w.cursor.next_seq;
        let mut entries = Vec::with_capacity(events.len());
        for entry in unsealed {
            let entry = entry.seal(w.cursor.next_seq, &w.cursor.prev);
            w.cursor.next_seq += 1;
            w.cursor.prev = entry.hash;
            entries.push(entry);
        }
        {
            let mut locked = w.tx.lock_handle().await?;
            raw::insert_entries(&raw::Handle::new(&mut locked), &entries)?;
        }
        // The tree update: cache nodes of the blocks this batch completed.
        let hashes: Vec<Hash> = entries.iter().map(|e| e.hash).collect();
        extend_merkle_cache(&mut w.tx, w.cursor.next_seq, Some((first_seq, &hashes))).await?;
        self.commit(w).await?;
        Ok(entries.len() as u64)
    }

    /// One more than the highest `seq` in the ledger: its length when intact.
    pub async fn ledger_size(&self) -> Result<u64, StoreError> {
        // The sum in Rust: SQLite would turn `MAX(seq) + 1` into a float at
        // `i64::MAX`.
        let last: Option<i64> = sqlx::query("SELECT MAX(seq) FROM ledger")
            .fetch_one(&self.inner.readers)
            .await?
            .try_get(0)?;
        match last {
            None => Ok(0),
            Some(seq) => u64::try_from(seq).map(|seq| seq + 1).map_err(|_| {
                StoreError::Corrupt(format!("the ledger holds a negative sequence number {seq}"))
            }),
        }
    }

    /// Every leaf hash (the `hash` column) in `seq` order.
    pub async fn ledger_hashes(&self) -> Result<Vec<Hash>, StoreError> {
        let rows = sqlx::query("SELECT hash FROM ledger ORDER BY seq")
            .fetch_all(&self.inner.readers)
            .await?;
        rows.iter()
            .map(|row| Ok(to_hash(row.try_get::<&[u8], _>(0)?)))
            .collect()
    }

    /// The inclusion proof of entry `seq` in the tree of the first `tree_size`
    /// entries, from the stored leaf hashes and the Merkle cache (`merkle_nodes`,
    /// brought up to `tree_size` first), reading a few hundred rows at most.
    /// `None` when `seq >= tree_size`, when the ledger is shorter, or when a row
    /// it needs is missing: the caller then falls back to all leaves.
    ///
    /// The cache is derived data and is not trusted: a proof is only as good as
    /// its check against a signed root (`verify_inclusion`), which a forged cache
    /// row fails.
    pub async fn inclusion_proof(
        &self,
        seq: u64,
        tree_size: u64,
    ) -> Result<Option<LedgerProof>, StoreError> {
        // Everything is read through SQLite's C API on one reader connection
        // (`raw`): through sqlx, decoding the few hundred rows of leaf hashes cost
        // more than the rest of the proof.
        let mut conn = self.inner.readers.acquire().await?;
        let (size, blocks) = {
            let mut locked = conn.lock_handle().await?;
            raw::proof_extent(&raw::Handle::new(&mut locked), CACHE_LEVEL)?
        };
        if seq >= tree_size || tree_size > size.max(0) as u64 {
            return Ok(None);
        }
        if (blocks.max(0) as u64) < tree_size >> CACHE_LEVEL {
            self.fill_merkle_cache(tree_size).await?;
        }
        let mut plan = ProofPlan::new(seq, tree_size);
        let mut locked = conn.lock_handle().await?;
        let handle = raw::Handle::new(&mut locked);
        // Cached subtrees: one primary-key lookup each.
        for (node, hash) in raw::cached_nodes(&handle, &plan.cached)? {
            plan.add_cached(node, hash);
        }
        // Smaller subtrees, and the leaf, from the leaf hashes of their blocks.
        for b in plan.blocks.clone() {
            let (start, end) = plan.block_range(b);
            let Some(leaves) = raw::leaf_hashes(&handle, start, end)? else {
                return Ok(None);
            };
            plan.add_block(b, leaves);
        }
        Ok(plan.finish())
    }

    /// Brings the Merkle cache up to the first `size` entries, in its own
    /// transaction, when it lags.
    async fn fill_merkle_cache(&self, size: u64) -> Result<(), StoreError> {
        if cached_blocks(&self.inner.readers).await? >= size >> CACHE_LEVEL {
            return Ok(());
        }
        let mut tx = self.inner.writer.begin_with("BEGIN IMMEDIATE").await?;
        extend_merkle_cache(&mut tx, size, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One trial of a campaign.
    pub async fn trial(&self, campaign: &str, number: u64) -> Result<Trial, StoreError> {
        match self
            .load_trials(Which::Trial(campaign, number))
            .await?
            .pop()
        {
            Some((_, trial)) => Ok(trial),
            None => Err(StoreError::NoTrial {
                campaign: campaign.to_string(),
                number,
            }),
        }
    }
}

fn campaign_from_row(row: &SqliteRow) -> Result<CampaignRecord, StoreError> {
    let spec: serde_json::Value = parse(&row.try_get::<String, _>(1)?)?;
    let submitted = match row.try_get::<Option<String>, _>(4)? {
        Some(text) => parse(&text)?,
        None => spec.clone(),
    };
    Ok(CampaignRecord {
        name: row.try_get(0)?,
        spec,
        spec_hash: row.try_get(2)?,
        created_at: row.try_get(3)?,
        submitted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_ledger::MerkleTree;

    fn url(dir: &tempfile::TempDir) -> String {
        format!("sqlite://{}/db.sqlite", dir.path().display())
    }

    fn sample_events(n: u64) -> Vec<Event> {
        (0..n)
            .map(|i| match i % 4 {
                0 => serde_json::from_value(serde_json::json!({
                    "kind": "trial_proposed",
                    "data": {
                        "number": i,
                        "params": {"x\u{1F600}\"\n": 0.1 * i as f64 + 1e-7},
                        "proposer": "tpe",
                        "rationale": "é \u{1} tab\t",
                        "retry_of": (i % 8 == 0).then_some(1),
                    }
                }))
                .expect("an event"),
                1 => Event::TrialStarted {
                    number: i,
                    run: 1,
                    worker: 0,
                    policy: Some(Authorization {
                        decision: "allow".into(),
                        policies: vec!["p".into()],
                    }),
                },
                2 => Event::TrialFinished {
                    number: i,
                    state: TrialState::Complete,
                    metrics: [("loss".to_string(), 1e21 + i as f64)].into(),
                    error: None,
                    cpu_seconds: Some(2.5),
                    wall_seconds: None,
                },
                _ => Event::CampaignCreated {
                    spec: serde_json::json!({"b": [1, 2.0, null], "a": {"z": "ü"}}),
                    spec_hash: "abc".into(),
                },
            })
            .collect()
    }

    #[tokio::test]
    async fn the_ledger_read_returns_every_row_whatever_its_seq() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&url(&dir)).await.expect("opened");
        assert_eq!(store.ledger().await.expect("ledger"), Vec::new());
        store
            .append_batch("c", &sample_events(5))
            .await
            .expect("appended");
        let mut expected = store.ledger().await.expect("ledger");
        assert_eq!(expected.len(), 5);
        // Rows a damaged or hand-edited ledger could hold: seq below 0 and far
        // beyond the rest. The read returns them, in order; the chain check rejects
        // them.
        for seq in [-3i64, i64::MAX - 1] {
            sqlx::query("INSERT INTO ledger (seq, campaign, kind, payload, hash) VALUES (?, 'é', 'k', '{}', x'01')")
                .bind(seq)
                .execute(&store.inner.writer)
                .await
                .expect("inserted");
        }
        let rows = store.ledger().await.expect("ledger");
        let seqs: Vec<u64> = rows.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [-3i64 as u64, 0, 1, 2, 3, 4, (i64::MAX - 1) as u64]);
        assert_eq!(rows[0].campaign, "é");
        assert_eq!(rows[0].hash, [0u8; 32]);
        expected.insert(0, rows[0].clone());
        expected.push(rows[6].clone());
        assert_eq!(rows, expected);
        // A payload that is not text is a corrupt row, as it was through sqlx.
        sqlx::query("INSERT INTO ledger (seq, campaign, kind, payload, hash) VALUES (9, 'c', 'k', x'7b7d', x'01')")
            .execute(&store.inner.writer)
            .await
            .expect("inserted");
        let error = store.ledger().await.expect_err("a blob payload");
        assert_eq!(
            error.to_string(),
            "corrupt row: ledger row 9: payload is not text"
        );
    }

    #[tokio::test]
    async fn ledger_size_counts_up_to_the_largest_sequence_number() {
        // Rows only a hand-edited ledger holds (the ledger is append-only).
        for (seq, size) in [
            (None, Ok(0)),
            (Some(i64::MAX), Ok(1 << 63)),
            (Some(-2), Err(())),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = SqliteStore::open(&url(&dir)).await.expect("opened");
            if let Some(seq) = seq {
                sqlx::query("INSERT INTO ledger (seq, campaign, kind, payload, hash) VALUES (?, 'c', 'k', '{}', x'01')")
                    .bind(seq)
                    .execute(&store.inner.writer)
                    .await
                    .expect("inserted");
            }
            match (store.ledger_size().await, size) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(error), Err(())) => {
                    assert!(
                        error.to_string().contains("negative sequence number -2"),
                        "{error}"
                    );
                }
                (got, want) => panic!("seq {seq:?}: {got:?}, expected {want:?}"),
            }
        }
    }

    #[tokio::test]
    async fn cached_inclusion_proofs_equal_proofs_from_every_leaf() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&url(&dir)).await.expect("opened");
        // Batches of odd sizes, so blocks complete mid-batch and across batches.
        for size in [1, 300, 255, 700, 2, 1_300] {
            store
                .append_batch("c", &sample_events(size))
                .await
                .expect("appended");
        }
        let total = store.ledger_size().await.expect("size");
        assert_eq!(total, 2_558);
        let rows = store.ledger().await.expect("ledger");
        assert_eq!(rows.len() as u64, total);
        assert_eq!(firebreak_ledger::verify_chain(&rows), Ok(total));
        let hashes = store.ledger_hashes().await.expect("hashes");
        assert_eq!(hashes, rows.iter().map(|e| e.hash).collect::<Vec<_>>());
        let tree = MerkleTree::new(hashes.clone());
        let check = |proof: Option<LedgerProof>, seq: u64, size: u64| {
            let proof = proof.expect("a proof");
            assert_eq!(proof.leaf, hashes[seq as usize]);
            assert_eq!(Some(proof.root), tree.root(size), "root of {size}");
            assert_eq!(
                Some(proof.path),
                tree.inclusion_proof(seq, size),
                "seq {seq} of {size}"
            );
        };
        for (seq, size) in [
            (0, 1),
            (0, 2_558),
            (2_557, 2_558),
            (700, 1_024),
            (1_023, 1_025),
            (511, 2_000),
        ] {
            check(
                store.inclusion_proof(seq, size).await.expect("proof"),
                seq,
                size,
            );
        }
        assert_eq!(store.inclusion_proof(5, 5).await.expect("none"), None);
        assert_eq!(store.inclusion_proof(5, 9_999).await.expect("none"), None);
        // A cache built from scratch (entries appended one by one) agrees.
        let dir2 = tempfile::tempdir().expect("tempdir");
        let plain = SqliteStore::open(&url(&dir2)).await.expect("opened");
        for chunk in sample_events(600).chunks(1) {
            let mut w = plain.begin().await.expect("begin");
            plain.append(&mut w, "c", &chunk[0]).await.expect("append");
            plain.commit(w).await.expect("commit");
        }
        let hashes2 = plain.ledger_hashes().await.expect("hashes");
        let tree2 = MerkleTree::new(hashes2);
        let proof = plain
            .inclusion_proof(300, 600)
            .await
            .expect("proof")
            .expect("some");
        assert_eq!(Some(proof.path), tree2.inclusion_proof(300, 600));
        assert_eq!(
            cached_blocks(&plain.inner.readers).await.expect("blocks"),
            2
        );
    }

    #[tokio::test]
    async fn an_old_schema_is_refused_until_upgraded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = path_of(&url(&dir)).expect("path");
        let mut conn = connect(&path).await.expect("connected");
        migrate(&mut conn, false, 1).await.expect("version 1");
        conn.close().await.expect("closed");
        let error = SqliteStore::open(&url(&dir)).await.expect_err("refused");
        assert_eq!(
            error.to_string(),
            format!(
                "the database schema is version 1; this binary needs version {SCHEMA_VERSION}\n\
                 hint: run `firebreak storage upgrade` (it never rewrites ledger rows)"
            )
        );
        let (store, before) = SqliteStore::upgrade(&url(&dir)).await.expect("upgraded");
        assert_eq!(
            (before, store.schema_version().await.expect("v")),
            (1, SCHEMA_VERSION)
        );
    }

    #[tokio::test]
    async fn an_abort_between_state_and_ledger_write_leaves_neither() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&url(&dir)).await.expect("opened");
        store
            .create_campaign("c", &serde_json::json!({}))
            .await
            .expect("created");
        let trial = NewTrial {
            params: Params::new(),
            proposer: "test".into(),
            rationale: String::new(),
            retry_of: None,
            priority: 0,
            number: None,
            policy: None,
            exploit: None,
            state: None,
        };
        let started = store
            .propose_and_start(
                "c",
                &trial,
                &Start {
                    run: 1,
                    worker: 0,
                    policy: None,
                    slots: None,
                },
            )
            .await
            .expect("started");
        let before = (
            store.ledger().await.expect("ledger").len(),
            store.trials("c").await.expect("trials"),
        );
        store
            .inner
            .fault_after_state_write
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let outcome = Outcome {
            state: TrialState::Complete,
            metrics: Metrics::new(),
            error: None,
            cpu_seconds: None,
            wall_seconds: None,
            log: None,
        };
        assert!(matches!(
            store.finish("c", started.number, 1, &outcome).await,
            Err(StoreError::Injected)
        ));
        assert!(matches!(
            store.enqueue("c", &trial).await,
            Err(StoreError::Injected)
        ));
        store
            .inner
            .fault_after_state_write
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let after = (
            store.ledger().await.expect("ledger").len(),
            store.trials("c").await.expect("trials"),
        );
        assert_eq!(before, after);
        let rows = store.ledger().await.expect("ledger");
        firebreak_ledger::audit(&rows, &store.snapshot().await.expect("state"))
            .expect("consistent");
        // The writer connection is usable again: the failed transactions rolled back.
        assert!(
            store
                .finish("c", started.number, 1, &outcome)
                .await
                .expect("finished")
        );
    }
}

//! The PostgreSQL store, [`PgStore`]: the same tables, ledger events, compare-and-
//! set answers, snapshot and errors as [`crate::SqliteStore`], for campaigns
//! whose workers run on many machines against one database.
//!
//! # How appends are serialised
//! The ledger is one hash chain per database: entry `n` names the hash of entry
//! `n - 1`, so two transactions must never both append after the same head.
//! Every transaction that appends (every state change but a heartbeat, a
//! checkpoint or a trial's process id, which the ledger does not record) begins
//! with `SELECT pg_advisory_xact_lock(LEDGER_LOCK)` (sent with its `BEGIN`), a
//! transaction-level advisory lock that PostgreSQL releases at commit or
//! rollback, and only *then*, in a later statement, reads the head (`seq` and
//! `hash` of the last entry). Under `READ COMMITTED` each statement sees every
//! transaction committed before it began, and a committing transaction is
//! visible before its lock is released, so the head read after the lock is the
//! true head: appends from any number of processes on any number of machines
//! queue on the lock and chain in order.
//! The head read must not share the statement that takes the lock, whose
//! snapshot predates the wait. Trial numbers (`MAX(number) + 1`), run ids and
//! request ids are allocated inside the same locked transaction, so they have no
//! gaps and are never handed out twice; the primary keys would refuse a
//! duplicate anyway.
//!
//! Claims, finishes, reports and decisions are compare-and-sets on the row's
//! state (`UPDATE … WHERE state = 'queued'`/`'running'`, a request's decision
//! count) inside that transaction, so they answer whether they won exactly as on
//! SQLite. Reads need no lock; [`Store::snapshot`] and
//! [`Store::ledger_and_snapshot`] read in one `REPEATABLE READ` transaction, so
//! they see whole transactions only and never hold writers back.
//!
//! The lock is held from `BEGIN` to `COMMIT`, so every round trip inside an
//! appending transaction is time every other writer waits: the hot paths (a
//! start, a report, a finish) are four round trips each: `BEGIN` with the lock;
//! the head (with the next trial number and the started count, for a start); the
//! state change and its entries as one statement (a data-modifying `WITH`, whose
//! entry is inserted only when the compare-and-set matched a row); `COMMIT`.
//!
//! Why no group commit (SQLite's `sqlite/fast.rs`) and no raw reads
//! (`sqlite/raw.rs`): both work around costs of SQLite's driver thread; here each
//! operation is a plain transaction, correctness first.
//!
//! Ledger rows can never be updated, deleted or truncated: PL/pgSQL triggers
//! raise an exception (`postgres/schema.rs`); the snapshot reports them missing,
//! disabled or altered, and [`Store::restore_guards`] reinstalls them. (A
//! superuser can still bypass triggers, e.g. with `session_replication_role`; the
//! hash chain and signed checkpoints are what catch such edits.)
//!
//! Campaign run locks are session-level advisory locks held on a dedicated
//! connection (`crate::lock`), released by the server the moment that
//! connection or its process dies.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use firebreak_core::{Clock, Metrics, Report, SystemClock, Timestamp, Trial, TrialState};
use firebreak_ledger::{
    Authorization, Checkpoint, Entry, Event, GENESIS, Hash, Request, RequestState, SignedDecision,
    StateSnapshot, Unsealed, canonical_json, hex,
};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow, Postgres};
use sqlx::{Connection, Row};

use crate::codec::{finite_metrics, json, parse, sha256, to_hash};
use crate::types::{
    CampaignRecord, CampaignSummary, Closing, Counts, DEFAULT_LEASE_MS, NewTrial, Outcome,
    ProcessInfo, RequestDraft, Requeued, RunInfo, RunRecord, SpecUpdate, Start, Store, TokenRecord,
};
use crate::{CampaignLock, LedgerProof, SCHEMA_VERSION, StoreError};

mod govern;
mod merkle;
mod read;
mod schema;

/// The first key of every advisory lock firebreak takes ("FBLG"); the second is
/// 0 for the ledger. Advisory locks are per database, so databases on one server
/// do not contend.
const LEDGER_NAMESPACE: i32 = 0x4642_4C47;
/// The first key of campaign run locks ("FBCL"); the second is the campaign's
/// `campaign_locks.lock_id`.
pub(crate) const CAMPAIGN_NAMESPACE: i32 = 0x4642_434C;

/// `BEGIN` and the ledger lock (`LEDGER_NAMESPACE`, 0) in one round trip: one
/// simple query of two statements. A test holds the literal to the constant.
const BEGIN_LOCKED: &str = "BEGIN; SELECT pg_advisory_xact_lock(1178750023, 0)";

/// Connections per store: enough for a run's workers to read while one writes.
const POOL_SIZE: u32 = 8;

/// The PostgreSQL store. Cheap to clone; clones share connections.
#[derive(Debug, Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    /// Where to open the dedicated connections of campaign locks.
    options: PgConnectOptions,
    /// The URL without its password, for messages.
    shown: String,
    clock: Arc<dyn Clock>,
    #[cfg(test)]
    fault_after_state_write: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Inner {
    // By hand: the connect options hold the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("url", &self.shown)
            .field("pool", &self.pool)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Where the next ledger entry goes, read once per transaction under the lock.
struct Cursor {
    next_seq: u64,
    prev: Hash,
}

/// A write transaction holding the ledger lock, with its ledger cursor.
/// Dropping it without [`PgStore::commit`] rolls back.
struct Tx {
    tx: sqlx::Transaction<'static, Postgres>,
    cursor: Cursor,
}

impl Tx {
    /// Seals `event` as the next entry of the chain and moves the cursor past it;
    /// the caller inserts it in this transaction.
    fn seal(&mut self, campaign: &str, at: Timestamp, event: &Event) -> Result<Entry, StoreError> {
        let entry = Entry::seal(self.cursor.next_seq, &self.cursor.prev, campaign, at, event)?;
        self.cursor.next_seq += 1;
        self.cursor.prev = entry.hash;
        Ok(entry)
    }
}

/// The cursor after the head row `(seq, hash, …)`.
fn cursor_of(row: &PgRow) -> Result<Cursor, StoreError> {
    Ok(Cursor {
        next_seq: row.try_get::<i64, _>(0)? as u64 + 1,
        prev: to_hash(&row.try_get::<Vec<u8>, _>(1)?),
    })
}

/// The cursor of an empty ledger.
fn cursor_of_none() -> Cursor {
    Cursor {
        next_seq: 0,
        prev: GENESIS,
    }
}

/// What a trial's start decides from, read with the head under the lock.
struct Begun {
    /// The campaign's next free trial number.
    next: u64,
    /// Its trials started already (running or finished), when counted.
    started: u64,
    /// The campaign's generation, which a started trial belongs to.
    generation: Option<i64>,
}

/// Fails with [`StoreError::NoSlot`] when `slots` trials of the campaign are
/// started already (read inside the locked transaction, so the count and the
/// start are one step).
fn check_slots(started: u64, slots: Option<u64>) -> Result<(), StoreError> {
    match slots {
        Some(slots) if started >= slots => Err(StoreError::NoSlot),
        _ => Ok(()),
    }
}

/// Which trials to load.
#[derive(Debug, Clone, Copy)]
enum Which<'a> {
    All,
    Campaign(&'a str),
    Trial(&'a str, u64),
}

impl PgStore {
    /// Opens the database at `url` (`postgres://USER:PASSWORD@HOST:PORT/DB` or
    /// `postgresql://…`), creating the schema in an empty database. The database
    /// itself must exist (`createdb`); an older schema is refused with a hint to
    /// run `firebreak storage upgrade`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, Arc::new(SystemClock), false).await
    }

    /// Opens a database that must hold a firebreak schema already (for commands
    /// that only read): a missing database or an empty one is
    /// [`StoreError::NoDatabase`].
    pub async fn open_existing(url: &str) -> Result<Self, StoreError> {
        let options = options_of(url)?;
        let shown = shown_url(&options);
        let mut conn = match PgConnection::connect_with(&options).await {
            Err(e) if is_missing_database(&e) => return Err(StoreError::NoDatabase(shown)),
            other => other?,
        };
        let version = version_of(&mut conn).await?;
        let _ = conn.close().await;
        if version.is_none() {
            return Err(StoreError::NoDatabase(shown));
        }
        Self::open(url).await
    }

    /// Opens the database and brings its schema up to date (`storage upgrade`).
    /// Returns the store and the version the database had (0 when it was
    /// empty). PostgreSQL databases start at version 9, so until a later version
    /// exists there is nothing to migrate.
    pub async fn upgrade(url: &str) -> Result<(Self, u32), StoreError> {
        let options = options_of(url)?;
        let before = {
            let mut conn = connect(&options).await?;
            let version = version_of(&mut conn).await?;
            let _ = conn.close().await;
            version
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
        let options = options_of(url)?;
        let mut conn = connect(&options).await?;
        migrate(&mut conn, upgrade).await?;
        let _ = conn.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options.clone())
            .await?;
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                shown: shown_url(&options),
                options,
                clock,
                #[cfg(test)]
                fault_after_state_write: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// The database's URL without its password. (SQLite's `path()`: a
    /// PostgreSQL database is not a file, and its campaign locks live in the
    /// database rather than in lock files beside it.)
    pub fn url(&self) -> &str {
        &self.inner.shown
    }

    /// The schema version stored in the database.
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        Ok(version_of(&mut conn).await?.unwrap_or(0))
    }

    /// The server settings that matter for durability and isolation (SQLite's
    /// `pragmas()`): `server_version`, `synchronous_commit`, `fsync`,
    /// `default_transaction_isolation`.
    pub async fn settings(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        let mut out = Vec::new();
        for name in [
            "server_version",
            "synchronous_commit",
            "fsync",
            "default_transaction_isolation",
        ] {
            let value: String = sqlx::query_scalar("SELECT current_setting($1)")
                .bind(name)
                .fetch_one(&mut *conn)
                .await?;
            out.push((name.to_string(), value));
        }
        Ok(out)
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// Begins a transaction, takes the ledger lock and reads the ledger head:
    /// two round trips.
    async fn begin(&self) -> Result<Tx, StoreError> {
        let mut tx = self.inner.pool.begin_with(BEGIN_LOCKED).await?;
        // A statement of its own: its snapshot is taken after the lock was granted.
        let head = sqlx::query("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let cursor = match head {
            Some(row) => cursor_of(&row)?,
            None => cursor_of_none(),
        };
        Ok(Tx { tx, cursor })
    }

    /// [`Self::begin`] for a trial's start: the head read together with what a
    /// start decides from (the campaign's next trial number, its started trials
    /// when `count_started`, its generation), in the same one statement.
    async fn begin_start(
        &self,
        campaign: &str,
        count_started: bool,
    ) -> Result<(Tx, Begun), StoreError> {
        let mut tx = self.inner.pool.begin_with(BEGIN_LOCKED).await?;
        let row = sqlx::query(
            "SELECT h.seq, h.hash, \
               (SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE campaign = $1), \
               (SELECT count(*) FROM trials WHERE campaign = $1 AND state <> 'queued' AND $2), \
               (SELECT generation FROM campaigns WHERE name = $1) \
             FROM (SELECT 1) AS one \
             LEFT JOIN (SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1) AS h ON true",
        )
        .bind(campaign)
        .bind(count_started)
        .fetch_one(&mut *tx)
        .await?;
        let cursor = match row.try_get::<Option<i64>, _>(0)? {
            Some(_) => cursor_of(&row)?,
            None => cursor_of_none(),
        };
        let begun = Begun {
            next: row.try_get::<i64, _>(2)? as u64,
            started: row.try_get::<i64, _>(3)? as u64,
            generation: row.try_get(4)?,
        };
        Ok((Tx { tx, cursor }, begun))
    }

    async fn commit(&self, w: Tx) -> Result<(), StoreError> {
        w.tx.commit().await?;
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
        self.fault()?;
        let entry = w.seal(campaign, at, event)?;
        insert_entries(&mut w.tx, std::slice::from_ref(&entry)).await?;
        Ok(())
    }

    /// The injected failure between a state write and its ledger write (tests
    /// only), for the check that such a transaction leaves neither.
    fn fault(&self) -> Result<(), StoreError> {
        #[cfg(test)]
        if self
            .inner
            .fault_after_state_write
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(StoreError::Injected);
        }
        Ok(())
    }

    /// The next free trial number of `campaign`, read inside the locked
    /// transaction.
    async fn next_number(&self, w: &mut Tx, campaign: &str) -> Result<u64, StoreError> {
        let next: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE campaign = $1",
        )
        .bind(campaign)
        .fetch_one(&mut *w.tx)
        .await?;
        Ok(next as u64)
    }

    /// Inserts a queued trial and its `trial_proposed` entry.
    async fn insert_queued(
        &self,
        w: &mut Tx,
        campaign: &str,
        trial: &NewTrial,
    ) -> Result<u64, StoreError> {
        let number = match trial.number {
            Some(n) => n,
            None => self.next_number(w, campaign).await?,
        };
        bind_new_trial(
            sqlx::query(
                "INSERT INTO trials (campaign, number, state, params, proposer, rationale, proposer_state, retry_of, priority) \
                 VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8)",
            ),
            campaign,
            number,
            trial,
        )
        .execute(&mut *w.tx)
        .await?;
        let event = trial.proposed(number);
        self.append(w, campaign, &event).await?;
        Ok(number)
    }

    /// Re-queues the campaign's running trials (with `expired_at`: only those
    /// whose run's lease had run out by then: ended, or silent for longer than
    /// its lease), returning each with the process it had.
    async fn requeue_where(
        &self,
        campaign: &str,
        (expired_at, only_run): (Option<Timestamp>, Option<u64>),
        reason: &str,
    ) -> Result<Vec<Requeued>, StoreError> {
        let mut w = self.begin().await?;
        // `old` holds each row as it was, so the process is the one the trial had
        // (PostgreSQL's RETURNING shows the updated row). A run's lease is the
        // `lease_ms` of its recorded `RunInfo`.
        let rows = sqlx::query(
            "UPDATE trials t SET state = 'queued', run = NULL, worker = NULL, process = NULL \
             FROM (SELECT number, process FROM trials \
                   WHERE campaign = $1 AND state = 'running' AND ($4::bigint IS NULL OR run = $4) \
                     AND ($2::bigint IS NULL OR run IS NULL \
                     OR run IN (SELECT id FROM runs WHERE ended_at IS NOT NULL \
                       OR heartbeat_at + COALESCE((info::jsonb ->> 'lease_ms')::bigint, $3) < $2)) \
                   FOR UPDATE) old \
             WHERE t.campaign = $1 AND t.number = old.number \
             RETURNING t.number, old.process",
        )
        .bind(campaign)
        .bind(expired_at)
        .bind(DEFAULT_LEASE_MS as i64)
        .bind(only_run.map(|r| r as i64))
        .fetch_all(&mut *w.tx)
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

    async fn load_trials(&self, which: Which<'_>) -> Result<Vec<(String, Trial)>, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        read::trials(&mut conn, which).await
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

    /// Appends `events` of `campaign` to the ledger in one transaction, sealed
    /// exactly as every state change seals its entries, and returns how many were
    /// appended. The events change no state table: this is for records that stand
    /// alone (imports, benchmarks); state changes append through their own methods.
    pub async fn append_batch(&self, campaign: &str, events: &[Event]) -> Result<u64, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        let at = self.now();
        // The canonical text does not depend on the chain: built before the lock.
        let unsealed = events
            .iter()
            .map(|event| Ok(Unsealed::new(campaign, at, event)?))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut w = self.begin().await?;
        let first_seq = w.cursor.next_seq;
        let mut entries = Vec::with_capacity(events.len());
        for entry in unsealed {
            let entry = entry.seal(w.cursor.next_seq, &w.cursor.prev);
            w.cursor.next_seq += 1;
            w.cursor.prev = entry.hash;
            entries.push(entry);
        }
        for chunk in entries.chunks(INSERT_CHUNK) {
            insert_entries(&mut w.tx, chunk).await?;
        }
        // The tree update: cache nodes of the blocks this batch completed.
        let hashes: Vec<Hash> = entries.iter().map(|e| e.hash).collect();
        merkle::extend(&mut w.tx, w.cursor.next_seq, Some((first_seq, &hashes))).await?;
        self.commit(w).await?;
        Ok(entries.len() as u64)
    }

    /// One more than the highest `seq` in the ledger: its length when intact.
    pub async fn ledger_size(&self) -> Result<u64, StoreError> {
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM ledger")
            .fetch_one(&self.inner.pool)
            .await?;
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
            .fetch_all(&self.inner.pool)
            .await?;
        rows.iter()
            .map(|row| Ok(to_hash(row.try_get::<&[u8], _>(0)?)))
            .collect()
    }
}

/// Ledger rows per multi-row `INSERT` (five parameters each, under PostgreSQL's
/// 65,535 bind parameters).
const INSERT_CHUNK: usize = 1_000;

/// A statement with its bound parameters.
type Query<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// The head of an insert of ledger rows.
const INSERT_LEDGER: &str = "INSERT INTO ledger (seq, campaign, kind, payload, hash) ";

/// `VALUES` rows of `n` ledger entries whose parameters start at `$first`.
fn ledger_values(first: usize, n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let p = first + i * 5;
            format!("(${p}, ${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4)
        })
        .collect();
    format!("VALUES {}", rows.join(", "))
}

/// Binds a new trial's columns as `$1`…`$8`: campaign, number, params, proposer,
/// rationale, proposer state, retry of, priority.
fn bind_new_trial<'q>(
    query: Query<'q>,
    campaign: &'q str,
    number: u64,
    trial: &'q NewTrial,
) -> Query<'q> {
    query
        .bind(campaign)
        .bind(number as i64)
        .bind(json(&trial.params))
        .bind(&trial.proposer)
        .bind(&trial.rationale)
        .bind(trial.state.as_ref().map(json))
        .bind(trial.retry_of.map(|n| n as i64))
        .bind(trial.priority)
}

/// Binds `entries`' columns in [`ledger_values`]' order.
fn bind_entries<'q>(mut query: Query<'q>, entries: &'q [Entry]) -> Query<'q> {
    for entry in entries {
        query = query
            .bind(entry.seq as i64)
            .bind(&entry.campaign)
            .bind(&entry.kind)
            .bind(&entry.payload)
            .bind(&entry.hash[..]);
    }
    query
}

/// Inserts sealed entries with one statement.
async fn insert_entries(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    entries: &[Entry],
) -> Result<(), StoreError> {
    let sql = format!("{INSERT_LEDGER}{}", ledger_values(1, entries.len()));
    bind_entries(sqlx::query(sqlx::AssertSqlSafe(sql)), entries)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn options_of(url: &str) -> Result<PgConnectOptions, StoreError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::Url {
            url: url.to_string(),
        });
    }
    PgConnectOptions::from_str(url).map_err(|_| StoreError::Url { url: redact(url) })
}

/// `url` with any password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// `postgres://USER@HOST:PORT/DB`, without the password.
fn shown_url(options: &PgConnectOptions) -> String {
    let database = options.get_database().unwrap_or(options.get_username());
    match options.get_socket() {
        Some(socket) => format!(
            "postgres://{}@{}/{database}",
            options.get_username(),
            socket.display()
        ),
        None => format!(
            "postgres://{}@{}:{}/{database}",
            options.get_username(),
            options.get_host(),
            options.get_port()
        ),
    }
}

/// PostgreSQL's `invalid_catalog_name`: the database does not exist.
fn is_missing_database(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("3D000"))
}

async fn connect(options: &PgConnectOptions) -> Result<PgConnection, StoreError> {
    match PgConnection::connect_with(options).await {
        Err(e) if is_missing_database(&e) => Err(StoreError::Schema {
            message: format!(
                "the PostgreSQL database {} does not exist",
                shown_url(options)
            ),
            hint: format!(
                "create it first, e.g. `createdb {}`",
                options.get_database().unwrap_or(options.get_username())
            ),
        }),
        other => Ok(other?),
    }
}

/// The stored schema version; `None` for a database without firebreak's tables.
async fn version_of(conn: &mut PgConnection) -> Result<Option<u32>, StoreError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema()",
    )
    .fetch_all(&mut *conn)
    .await?;
    if !tables.iter().any(|t| t == "meta") {
        return if tables.is_empty() {
            Ok(None)
        } else {
            Err(StoreError::Schema {
                message: "this PostgreSQL database is not a firebreak database".into(),
                hint: "point --storage at a firebreak database or at a new, empty one".into(),
            })
        };
    }
    let value: Option<String> =
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'schema_version'")
            .fetch_optional(&mut *conn)
            .await?;
    value
        .map(|v| {
            v.parse()
                .map_err(|_| StoreError::Corrupt(format!("schema_version {v:?}")))
        })
        .transpose()
}

/// Brings the schema to [`SCHEMA_VERSION`]: a new database silently, an older
/// one only when `upgrade` is set; a newer one never. Runs under the ledger lock,
/// so processes opening one new database at once create it once.
async fn migrate(conn: &mut PgConnection, upgrade: bool) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
        .bind(LEDGER_NAMESPACE)
        .execute(&mut *tx)
        .await?;
    let current = version_of(&mut tx).await?;
    let target = SCHEMA_VERSION;
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
    let from = current.unwrap_or(0);
    if from > 0 && !schema::MIGRATIONS.iter().any(|(v, _)| *v > from) {
        return Err(StoreError::Schema {
            message: format!("no PostgreSQL migration starts from schema version {from}"),
            hint: "PostgreSQL databases start at version 9; recreate this one".into(),
        });
    }
    if from > 0 && schema::MIGRATIONS[0].0 > from {
        return Err(StoreError::Schema {
            message: format!(
                "the database schema is version {from}, older than any PostgreSQL schema"
            ),
            hint: "PostgreSQL databases start at version 9; recreate this one".into(),
        });
    }
    for (version, sql) in schema::MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await?;
        if from == 0 && *version == schema::MIGRATIONS[0].0 {
            sqlx::raw_sql(sqlx::AssertSqlSafe(schema::guards_script()))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('schema_version', $1) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(version.to_string())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn campaign_from_row(row: &PgRow) -> Result<CampaignRecord, StoreError> {
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

impl Store for PgStore {
    async fn trial(&self, campaign: &str, number: u64) -> Result<Trial, StoreError> {
        PgStore::trial(self, campaign, number).await
    }

    async fn ledger_size(&self) -> Result<u64, StoreError> {
        PgStore::ledger_size(self).await
    }

    async fn inclusion_proof(
        &self,
        seq: u64,
        tree_size: u64,
    ) -> Result<Option<LedgerProof>, StoreError> {
        PgStore::inclusion_proof(self, seq, tree_size).await
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
        let exists = sqlx::query("SELECT 1 FROM campaigns WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *w.tx)
            .await?
            .is_some();
        if exists {
            return Err(StoreError::CampaignExists(name.to_string()));
        }
        sqlx::query(
            "INSERT INTO campaigns (name, spec, spec_hash, created_at) VALUES ($1, $2, $3, $4)",
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
            "SELECT name, spec, spec_hash, created_at, submitted FROM campaigns WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.inner.pool)
        .await?;
        row.map(|row| campaign_from_row(&row)).transpose()
    }

    async fn campaigns(&self) -> Result<Vec<CampaignSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, spec, spec_hash, created_at, submitted FROM campaigns ORDER BY name",
        )
        .fetch_all(&self.inner.pool)
        .await?;
        let mut out = Vec::new();
        let mut conn = self.inner.pool.acquire().await?;
        for row in rows {
            let campaign = campaign_from_row(&row)?;
            let counts = read::counts(&mut conn, &campaign.name).await?;
            let last_run = read::runs(&mut conn, &campaign.name, true).await?.pop();
            out.push(CampaignSummary {
                campaign,
                counts,
                last_run,
            });
        }
        Ok(out)
    }

    async fn lock_campaign(&self, name: &str, holder: &str) -> Result<CampaignLock, StoreError> {
        // A lock dropped a moment ago is released by a task of its own; a run
        // that starts meanwhile tries again for a moment, as on SQLite. A live run
        // holds the lock for its whole life, so it is still refused.
        let mut attempts = 0;
        loop {
            match crate::lock::acquire_pg(&self.inner.pool, &self.inner.options, name, holder).await
            {
                Err(StoreError::Locked { .. }) if attempts < 40 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                result => return result,
            }
        }
    }

    async fn lock_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        crate::lock::holder_pg(&self.inner.pool, name).await
    }

    async fn start_run(&self, campaign: &str, info: &RunInfo) -> Result<u64, StoreError> {
        let now = self.now();
        let mut w = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO runs (id, campaign, info, started_at, heartbeat_at) \
             VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM runs), $1, $2, $3, $4) RETURNING id",
        )
        .bind(campaign)
        .bind(json(info))
        .bind(now)
        .bind(now)
        .fetch_one(&mut *w.tx)
        .await?;
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
        let mut conn = self.inner.pool.acquire().await?;
        read::runs(&mut conn, campaign, false).await
    }

    async fn heartbeat(&self, run: u64) -> Result<(), StoreError> {
        // Not ledgered: no ledger lock.
        sqlx::query("UPDATE runs SET heartbeat_at = $1 WHERE id = $2")
            .bind(self.now())
            .bind(run as i64)
            .execute(&self.inner.pool)
            .await?;
        Ok(())
    }

    async fn end_run(&self, campaign: &str, run: u64, reason: &str) -> Result<(), StoreError> {
        let now = self.now();
        let mut w = self.begin().await?;
        sqlx::query("UPDATE runs SET ended_at = $1, end_reason = $2 WHERE id = $3")
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
            "UPDATE trials SET state = 'running', error = NULL, metrics = '{}', run = $1, worker = $2, \
             process = NULL, finished_at = NULL \
             WHERE campaign = $3 AND number = $4 AND state = 'pruned' RETURNING number",
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
        let (mut w, begun) = self.begin_start(campaign, start.slots.is_some()).await?;
        check_slots(begun.started, start.slots)?;
        // The state condition in the UPDATE is the compare-and-set.
        let claimed = sqlx::query(
            "UPDATE trials SET state = 'running', run = $1, worker = $2, started_at = $3, \
             generation = COALESCE(generation, $5) \
             WHERE campaign = $4 AND state = 'queued' AND number = ( \
               SELECT number FROM trials WHERE campaign = $4 AND state = 'queued' \
               ORDER BY priority DESC, number LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING number",
        )
        .bind(start.run as i64)
        .bind(i64::from(start.worker))
        .bind(now)
        .bind(campaign)
        .bind(begun.generation)
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
            sqlx::query("SELECT 1 FROM trials WHERE campaign = $1 AND state = 'queued' LIMIT 1")
                .bind(campaign)
                .fetch_optional(&self.inner.pool)
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
        let now = self.now();
        let (mut w, begun) = self.begin_start(campaign, start.slots.is_some()).await?;
        let number = match trial.number {
            // Taken, or skipped over by a later number: as SQLite's fast path.
            Some(n) if n < begun.next => return Err(StoreError::NumberTaken(n)),
            Some(n) => n,
            None => begun.next,
        };
        check_slots(begun.started, start.slots)?;
        let started = Event::TrialStarted {
            number,
            run: start.run,
            worker: start.worker,
            policy: start.policy.clone(),
        };
        let entries = [
            w.seal(campaign, now, &trial.proposed(number))?,
            w.seal(campaign, now, &started)?,
        ];
        // The row and its two entries in one statement: one round trip.
        let sql = format!(
            "WITH t AS (INSERT INTO trials (campaign, number, state, params, proposer, rationale, \
             proposer_state, retry_of, priority, run, worker, started_at, generation) \
             VALUES ($1, $2, 'running', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)) \
             {INSERT_LEDGER}{}",
            ledger_values(13, entries.len())
        );
        let query = bind_new_trial(
            sqlx::query(sqlx::AssertSqlSafe(sql)),
            campaign,
            number,
            trial,
        )
        .bind(start.run as i64)
        .bind(i64::from(start.worker))
        .bind(now)
        .bind(begun.generation);
        bind_entries(query, &entries).execute(&mut *w.tx).await?;
        self.fault()?;
        self.commit(w).await?;
        let mut out = Trial::queued(
            number,
            trial.params.clone(),
            &trial.proposer,
            &trial.rationale,
        );
        out.state = TrialState::Running;
        out.proposer_state = trial.state.clone();
        out.retry_of = trial.retry_of;
        out.started_at = Some(now);
        out.generation = begun.generation.and_then(|g| u32::try_from(g).ok());
        Ok(out)
    }

    async fn set_process(
        &self,
        campaign: &str,
        number: u64,
        process: &ProcessInfo,
    ) -> Result<(), StoreError> {
        // A host fact, not ledgered (no ledger lock); a trial no longer running
        // is left alone.
        sqlx::query(
            "UPDATE trials SET process = $1 WHERE campaign = $2 AND number = $3 AND state = 'running'",
        )
        .bind(json(process))
        .bind(campaign)
        .bind(number as i64)
        .execute(&self.inner.pool)
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
        let metrics = finite_metrics(&report.metrics);
        let mut w = self.begin().await?;
        let event = Event::TrialReported {
            number,
            step: report.step,
            metrics: metrics.clone(),
        };
        let entry = w.seal(campaign, self.now(), &event)?;
        // Only a trial running under `run` takes reports, and its entry is
        // inserted only with the report (`FROM r`); otherwise nothing is written
        // (the run's id is the fence against a holder whose lease was taken).
        let sql = format!(
            "WITH r AS (INSERT INTO reports (campaign, number, step, metrics) SELECT $1, $2, $3, $4 \
             WHERE EXISTS (SELECT 1 FROM trials WHERE campaign = $1 AND number = $2 \
                           AND state = 'running' AND run = $5) \
             ON CONFLICT (campaign, number, step) DO UPDATE SET metrics = EXCLUDED.metrics \
             RETURNING 1) \
             {INSERT_LEDGER}SELECT $6, $7, $8, $9, $10 FROM r"
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(campaign)
            .bind(number as i64)
            .bind(report.step as i64)
            .bind(json(&metrics))
            .bind(run as i64);
        let written = bind_entries(query, std::slice::from_ref(&entry))
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        if written == 0 {
            return Ok(false); // the empty transaction rolls back
        }
        self.fault()?;
        self.commit(w).await?;
        Ok(true)
    }

    async fn finish(
        &self,
        campaign: &str,
        number: u64,
        run: u64,
        outcome: &Outcome,
    ) -> Result<bool, StoreError> {
        let metrics = finite_metrics(&outcome.metrics);
        let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
        let now = self.now();
        let mut w = self.begin().await?;
        let event = Event::TrialFinished {
            number,
            state: outcome.state,
            metrics: metrics.clone(),
            error: outcome.error.clone(),
            cpu_seconds: finite(outcome.cpu_seconds),
            wall_seconds: finite(outcome.wall_seconds),
        };
        let entry = w.seal(campaign, now, &event)?;
        // The compare-and-set and its entry in one statement; the entry is
        // inserted only when the trial was running under `run` (`FROM u`).
        let sql = format!(
            "WITH u AS (UPDATE trials SET state = $1, metrics = $2, error = $3, finished_at = $4, \
             cpu_seconds = $5, wall_seconds = $6, log = COALESCE($7, log), process = NULL \
             WHERE campaign = $8 AND number = $9 AND state = 'running' AND run = $10 RETURNING 1) \
             {INSERT_LEDGER}SELECT $11, $12, $13, $14, $15 FROM u"
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(outcome.state.as_str())
            .bind(json(&metrics))
            .bind(outcome.error.as_deref())
            .bind(now)
            .bind(finite(outcome.cpu_seconds))
            .bind(finite(outcome.wall_seconds))
            .bind(outcome.log.as_deref().map(|l| l.replace('\0', "\u{fffd}")))
            .bind(campaign)
            .bind(number as i64)
            .bind(run as i64);
        let changed = bind_entries(query, std::slice::from_ref(&entry))
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Ok(false); // not running under `run`: the empty transaction rolls back
        }
        self.fault()?;
        self.commit(w).await?;
        Ok(true)
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
        let mut conn = self.inner.pool.acquire().await?;
        read::counts(&mut conn, campaign).await
    }

    async fn log(&self, campaign: &str, number: u64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT log FROM trials WHERE campaign = $1 AND number = $2")
            .bind(campaign)
            .bind(number as i64)
            .fetch_optional(&self.inner.pool)
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
        let mut conn = self.inner.pool.acquire().await?;
        read::ledger(&mut conn).await
    }

    async fn ledger_range(&self, from: u64, limit: u64) -> Result<Vec<Entry>, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        read::ledger_range(&mut conn, from, limit).await
    }

    async fn add_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&token.id)
        .bind(&token.name)
        .bind(&token.role)
        .bind(&token.hash)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, role, hash, created_at, expires_at, revoked_at FROM api_tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.inner.pool)
        .await?;
        row.as_ref().map(crate::codec::token_from_row).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, role, hash, created_at, expires_at, revoked_at \
             FROM api_tokens ORDER BY created_at, id",
        )
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(crate::codec::token_from_row).collect()
    }

    async fn revoke_token(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(&self.inner.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO checkpoints (tree_size, payload) VALUES ($1, $2)")
            .bind(checkpoint.tree_size as i64)
            .bind(json(checkpoint))
            .execute(&self.inner.pool)
            .await?;
        Ok(())
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT payload FROM checkpoints ORDER BY id")
            .fetch_all(&self.inner.pool)
            .await?;
        rows.iter().map(|text| parse(text)).collect()
    }

    async fn file_request(&self, draft: &RequestDraft) -> Result<(Request, bool), StoreError> {
        self.gov_file_request(draft).await
    }

    async fn requests(&self, campaign: Option<&str>) -> Result<Vec<Request>, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        read::requests(&mut conn, campaign).await
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

    async fn record_test(
        &self,
        campaign: &str,
        number: u64,
        metrics: &Metrics,
        cpu_seconds: Option<f64>,
    ) -> Result<bool, StoreError> {
        let mut w = self.begin().await?;
        let complete = sqlx::query(
            "SELECT 1 FROM trials WHERE campaign = $1 AND number = $2 AND state = 'complete'",
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
            "INSERT INTO trial_tests (campaign, number, metrics) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
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
        let rows = sqlx::query("SELECT number, metrics FROM trial_tests WHERE campaign = $1")
            .bind(campaign)
            .fetch_all(&self.inner.pool)
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
                "INSERT INTO agent_texts (sha256, campaign, body) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
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
            sqlx::query_scalar("SELECT body FROM agent_texts WHERE sha256 = $1")
                .bind(hash)
                .fetch_optional(&self.inner.pool)
                .await?,
        )
    }

    async fn restore_guards(&self) -> Result<bool, StoreError> {
        let mut tx = self.inner.pool.begin().await?;
        if read::guards_present(&mut tx).await? {
            return Ok(false);
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(schema::guards_script()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn snapshot(&self) -> Result<StateSnapshot, StoreError> {
        let mut tx = self.read_transaction().await?;
        let state = read::snapshot(&mut tx).await?;
        tx.commit().await?;
        Ok(state)
    }

    async fn ledger_and_snapshot(&self) -> Result<(Vec<Entry>, StateSnapshot), StoreError> {
        // One snapshot of the database for both: every transaction committed
        // before it, whole, and none after; writers are not held back.
        let mut tx = self.read_transaction().await?;
        let rows = read::ledger(&mut tx).await?;
        let state = read::snapshot(&mut tx).await?;
        tx.commit().await?;
        Ok((rows, state))
    }
}

impl PgStore {
    /// A read-only transaction that sees one snapshot throughout.
    async fn read_transaction(&self) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        Ok(self
            .inner
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?)
    }
}

#[cfg(test)]
mod tests;

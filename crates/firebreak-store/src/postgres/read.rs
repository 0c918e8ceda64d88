//! Reads of the PostgreSQL store, on one connection: a pooled one for a single
//! read, or a `REPEATABLE READ` transaction when several reads must see one
//! instant (`snapshot`, `ledger_and_snapshot`). No locks are taken.

use std::collections::BTreeMap;
use std::str::FromStr;

use firebreak_core::{Metrics, Params, Report, Trial, TrialState};
use firebreak_ledger::{Entry, Request, RunRow, StateSnapshot, hex};
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgRow};

use super::{Which, parse, schema, sha256, to_hash};
use crate::{Counts, RunRecord, StoreError};

impl Which<'_> {
    /// The SQL filter; its placeholders are bound in `trials`.
    fn filter(self) -> &'static str {
        match self {
            Which::All => "",
            Which::Campaign(_) => " WHERE campaign = $1",
            Which::Trial(..) => " WHERE campaign = $1 AND number = $2",
        }
    }
}

/// Trials with their intermediate reports, by campaign and number.
pub(super) async fn trials(
    conn: &mut PgConnection,
    which: Which<'_>,
) -> Result<Vec<(String, Trial)>, StoreError> {
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
    .fetch_all(&mut *conn)
    .await?;
    let report_rows = bind(format!(
        "SELECT campaign, number, step, metrics FROM reports{filter} ORDER BY campaign, number, step"
    ))
    .fetch_all(&mut *conn)
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

fn trial_from_row(row: &PgRow) -> Result<Trial, StoreError> {
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

/// The campaign's runs, oldest first, or only its latest.
pub(super) async fn runs(
    conn: &mut PgConnection,
    campaign: &str,
    latest_only: bool,
) -> Result<Vec<RunRecord>, StoreError> {
    let sql = if latest_only {
        "SELECT id, info, started_at, heartbeat_at, ended_at, end_reason FROM runs WHERE campaign = $1 ORDER BY id DESC LIMIT 1"
    } else {
        "SELECT id, info, started_at, heartbeat_at, ended_at, end_reason FROM runs WHERE campaign = $1 ORDER BY id"
    };
    let rows = sqlx::query(sql)
        .bind(campaign)
        .fetch_all(&mut *conn)
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

/// Trial counts by state.
pub(super) async fn counts(conn: &mut PgConnection, campaign: &str) -> Result<Counts, StoreError> {
    let rows = sqlx::query("SELECT state, COUNT(*) FROM trials WHERE campaign = $1 GROUP BY state")
        .bind(campaign)
        .fetch_all(&mut *conn)
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

/// Every request (of one campaign, or all), in filing order.
pub(super) async fn requests(
    conn: &mut PgConnection,
    campaign: Option<&str>,
) -> Result<Vec<Request>, StoreError> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT record FROM requests WHERE $1::text IS NULL OR campaign = $1 ORDER BY seq",
    )
    .bind(campaign)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|text| parse(text)).collect()
}

/// Every ledger row, by `seq`.
pub(super) async fn ledger(conn: &mut PgConnection) -> Result<Vec<Entry>, StoreError> {
    ledger_range(conn, 0, i64::MAX as u64).await
}

/// At most `limit` ledger rows from `from` on.
pub(super) async fn ledger_range(
    conn: &mut PgConnection,
    from: u64,
    limit: u64,
) -> Result<Vec<Entry>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, campaign, kind, payload, hash FROM ledger \
         WHERE seq >= $1 ORDER BY seq LIMIT $2",
    )
    .bind(from.min(i64::MAX as u64) as i64)
    .bind(limit.min(i64::MAX as u64) as i64)
    .fetch_all(&mut *conn)
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

/// True when every guard that makes ledger rows append-only is installed,
/// enabled for ordinary sessions, fires on its event, and calls the guard
/// function with its original body.
pub(super) async fn guards_present(conn: &mut PgConnection) -> Result<bool, StoreError> {
    let rows = sqlx::query(
        "SELECT t.tgname::text, t.tgtype FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid \
         WHERE t.tgrelid = to_regclass('ledger') AND NOT t.tgisinternal \
           AND t.tgenabled IN ('O', 'A') AND p.proname = 'firebreak_ledger_append_only' \
           AND p.prosrc = $1",
    )
    .bind(schema::GUARD_BODY)
    .fetch_all(&mut *conn)
    .await?;
    let mut found = Vec::new();
    for row in rows {
        found.push((row.try_get::<String, _>(0)?, row.try_get::<i16, _>(1)?));
    }
    Ok(schema::GUARDS
        .iter()
        .all(|(name, kind, _)| found.iter().any(|(n, k)| n == name && k == kind)))
}

/// The state tables, for comparison with the ledger.
pub(super) async fn snapshot(conn: &mut PgConnection) -> Result<StateSnapshot, StoreError> {
    let rows = sqlx::query("SELECT name, spec, generation FROM campaigns")
        .fetch_all(&mut *conn)
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
    let requests = requests(conn, None)
        .await?
        .into_iter()
        .map(|request| (request.body.id.clone(), request))
        .collect();
    let mut runs = Vec::new();
    let rows =
        sqlx::query("SELECT campaign, id, started_at, ended_at, end_reason FROM runs ORDER BY id")
            .fetch_all(&mut *conn)
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
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        let key = (
            row.try_get::<String, _>(0)?,
            row.try_get::<i64, _>(1)? as u64,
        );
        tests.insert(key, parse::<Metrics>(&row.try_get::<String, _>(2)?)?);
    }
    let mut agent_texts = BTreeMap::new();
    let rows = sqlx::query("SELECT sha256, body FROM agent_texts")
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        let body: String = row.try_get(1)?;
        agent_texts.insert(row.try_get::<String, _>(0)?, hex(&sha256(body.as_bytes())));
    }
    let guarded = guards_present(conn).await?;
    Ok(StateSnapshot {
        campaigns,
        trials: trials(conn, Which::All).await?,
        requests,
        runs,
        tests,
        agent_texts,
        generations,
        ledger_writable: !guarded,
    })
}

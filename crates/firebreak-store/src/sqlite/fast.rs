//! Group commit for the hot path: starting a proposed trial, recording a report,
//! finishing a trial, and appending a note that changes no table (a refusal, a
//! re-evaluation, a gate verdict, an Optuna study's operation).
//!
//! Why: the driver runs SQLite on its own thread, so every statement costs thread
//! hand-offs that dwarf SQLite's own work on a trivial trial. These operations are
//! therefore sent to one writer task, which takes every operation waiting at that
//! moment (workers' concurrent `ask`s and `tell`s) and commits them as one
//! multi-statement transaction — `BEGIN IMMEDIATE`, each state change with its
//! ledger entries, `COMMIT` — in a single round trip. Each caller is answered only
//! after the commit, so every `tell` is durable before its worker's next `ask`.
//!
//! The ledger head and each campaign's next trial number are cached from the
//! previous write and checked by the primary keys themselves: if another process
//! appended ledger entry `seq` (or took trial `number`) meanwhile, the insert
//! violates the key, the transaction rolls back, and the batch is retried with
//! values read after `BEGIN IMMEDIATE`, under the write lock, so that many
//! processes writing at once cannot keep a batch losing. Ledger rows are never changed or deleted, so a free `seq` means
//! the cached previous entry is still the last one.
//!
//! A compare-and-set (finish or report only a running trial) writes its ledger
//! entry only when its state statement changed a row; the statement after it
//! raises an error when not, so a lost race rolls the batch back instead of
//! leaving a gap in the sequence; the batch is then replayed one operation at a
//! time to tell the loser `false`.

use std::collections::HashMap;
use std::sync::Weak;

use firebreak_core::{Report, Trial, TrialState};
use firebreak_ledger::{Entry, Event};
use sqlx::Row;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqliteArguments};
use tokio::sync::{mpsc, oneshot};

use super::{Cursor, Inner, SqliteStore, json, to_hash};
use crate::codec::finite_metrics;
use crate::{NewTrial, Outcome, Start, StoreError};

/// Attempts of a batch: the first with the cached heads, the others with heads
/// read under the write lock, which another process cannot race (so a second
/// attempt conflicts only through a bug; the bound turns one into an error).
const RETRIES: usize = 3;
/// The most operations committed together.
const MAX_BATCH: usize = 256;
/// Raised (as "integer overflow") when a compare-and-set found no running trial.
const LOST: &str = "SELECT abs(-9223372036854775807 - 1) WHERE changes() = 0;\n";

/// The cached ledger head and next trial numbers.
#[derive(Debug, Default)]
pub(super) struct Heads {
    pub(super) head: Option<(u64, firebreak_ledger::Hash)>,
    pub(super) numbers: HashMap<String, u64>,
}

/// One hot-path operation and where its answer goes.
#[derive(Debug)]
pub(super) enum Op {
    Propose {
        campaign: String,
        /// Boxed: a trial and its start are far larger than the other variants.
        trial: Box<(NewTrial, Start)>,
        reply: oneshot::Sender<Result<Trial, StoreError>>,
    },
    Finish {
        campaign: String,
        number: u64,
        run: u64,
        outcome: Outcome,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    Report {
        campaign: String,
        number: u64,
        run: u64,
        report: Report,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    Process {
        campaign: String,
        number: u64,
        process: String,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    Note {
        campaign: String,
        /// Boxed: events are far larger than the other variants' fields.
        event: Box<Event>,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
}

/// What a batch produced for one operation, before replying.
enum Done {
    /// Boxed: a trial is far larger than the other variants.
    Trial(Box<Trial>),
    Won,
    Failed(StoreError),
}

enum Failure {
    /// Another process took a key: retry with fresh heads.
    Conflict,
    /// A compare-and-set lost.
    Lost,
    Other(StoreError),
}

fn classify(error: sqlx::Error) -> Failure {
    match &error {
        sqlx::Error::Database(e) if e.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            Failure::Conflict
        }
        sqlx::Error::Database(e) if e.message().contains("integer overflow") => Failure::Lost,
        _ => Failure::Other(error.into()),
    }
}

/// The writer task: batches operations until the store is dropped.
pub(super) async fn writer(inner: Weak<Inner>, mut ops: mpsc::UnboundedReceiver<Op>) {
    while let Some(first) = ops.recv().await {
        // Let workers that are ready to submit do so, so they share this commit.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match ops.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        SqliteStore { inner }.commit_batch(batch).await;
    }
}

/// A multi-statement script and its arguments, in order.
struct Script {
    sql: String,
    binds: Vec<Bind>,
}

enum Bind {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Blob(Vec<u8>),
}

impl Script {
    fn entry(&mut self, entry: &Entry, guarded: bool) {
        if guarded {
            self.sql.push_str(
                "INSERT INTO ledger (seq, campaign, kind, payload, hash) SELECT ?, ?, ?, ?, ? WHERE changes() = 1;\n",
            );
        } else {
            self.sql.push_str(
                "INSERT INTO ledger (seq, campaign, kind, payload, hash) VALUES (?, ?, ?, ?, ?);\n",
            );
        }
        self.binds.extend([
            Bind::Int(Some(entry.seq as i64)),
            Bind::Text(Some(entry.campaign.clone())),
            Bind::Text(Some(entry.kind.clone())),
            Bind::Text(Some(entry.payload.clone())),
            Bind::Blob(entry.hash.to_vec()),
        ]);
        if guarded {
            self.sql.push_str(LOST);
        }
    }

    fn query(&self) -> sqlx::query::Query<'_, Sqlite, SqliteArguments> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql.as_str()));
        for bind in &self.binds {
            query = match bind {
                Bind::Int(v) => query.bind(*v),
                Bind::Real(v) => query.bind(*v),
                Bind::Text(v) => query.bind(v.as_deref()),
                Bind::Blob(v) => query.bind(v.as_slice()),
            };
        }
        query
    }
}

impl SqliteStore {
    async fn cursor(&self, conn: &mut PoolConnection<Sqlite>) -> Result<Cursor, StoreError> {
        if let Some((next_seq, prev)) = self.heads().head {
            return Ok(Cursor { next_seq, prev });
        }
        let head = sqlx::query("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **conn)
            .await?;
        Ok(match head {
            Some(row) => Cursor {
                next_seq: row.try_get::<i64, _>(0)? as u64 + 1,
                prev: to_hash(&row.try_get::<Vec<u8>, _>(1)?),
            },
            None => Cursor {
                next_seq: 0,
                prev: firebreak_ledger::GENESIS,
            },
        })
    }

    async fn next_number(
        &self,
        conn: &mut PoolConnection<Sqlite>,
        numbers: &mut HashMap<String, u64>,
        campaign: &str,
    ) -> Result<u64, StoreError> {
        if let Some(n) = numbers.get(campaign) {
            return Ok(*n);
        }
        let n: i64 =
            sqlx::query("SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE campaign = ?")
                .bind(campaign)
                .fetch_one(&mut **conn)
                .await?
                .try_get(0)?;
        numbers.insert(campaign.to_string(), n as u64);
        Ok(n as u64)
    }

    fn seal(
        &self,
        cursor: &mut Cursor,
        campaign: &str,
        event: &Event,
    ) -> Result<Entry, StoreError> {
        let entry = Entry::seal(cursor.next_seq, &cursor.prev, campaign, self.now(), event)?;
        cursor.next_seq += 1;
        cursor.prev = entry.hash;
        Ok(entry)
    }

    /// Sends `op` to the writer task and waits for its commit.
    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .ops
            .send(make(reply))
            .map_err(|_| StoreError::Corrupt("the store's writer task has stopped".into()))?;
        answer.await.map_err(|_| {
            StoreError::Corrupt("the store's writer task dropped an operation".into())
        })?
    }

    pub(super) async fn fast_propose_and_start(
        &self,
        campaign: &str,
        trial: &NewTrial,
        start: &Start,
    ) -> Result<Trial, StoreError> {
        self.submit(|reply| Op::Propose {
            campaign: campaign.to_string(),
            trial: Box::new((trial.clone(), start.clone())),
            reply,
        })
        .await
    }

    pub(super) async fn fast_finish(
        &self,
        campaign: &str,
        number: u64,
        run: u64,
        outcome: &Outcome,
    ) -> Result<bool, StoreError> {
        self.submit(|reply| Op::Finish {
            campaign: campaign.to_string(),
            number,
            run,
            outcome: outcome.clone(),
            reply,
        })
        .await
    }

    pub(super) async fn fast_set_process(
        &self,
        campaign: &str,
        number: u64,
        process: String,
    ) -> Result<bool, StoreError> {
        self.submit(|reply| Op::Process {
            campaign: campaign.to_string(),
            number,
            process,
            reply,
        })
        .await
    }

    pub(super) async fn fast_report(
        &self,
        campaign: &str,
        number: u64,
        run: u64,
        report: &Report,
    ) -> Result<bool, StoreError> {
        self.submit(|reply| Op::Report {
            campaign: campaign.to_string(),
            number,
            run,
            report: report.clone(),
            reply,
        })
        .await
    }

    pub(super) async fn fast_note(&self, campaign: &str, event: &Event) -> Result<(), StoreError> {
        self.submit(|reply| Op::Note {
            campaign: campaign.to_string(),
            event: Box::new(event.clone()),
            reply,
        })
        .await
        .map(|_| ())
    }

    async fn commit_batch(&self, batch: Vec<Op>) {
        #[cfg(test)]
        if self
            .inner
            .fault_after_state_write
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            for op in batch {
                self.inject_fault(op).await;
            }
            return;
        }
        let mut conn = match self.inner.writer.acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                let message = e.to_string();
                return reply_all(batch, |_| {
                    Failure::Other(StoreError::Corrupt(message.clone()))
                });
            }
        };
        match self.try_batch(&mut conn, &batch).await {
            Ok(done) => reply_done(batch, done),
            Err(Failure::Lost) if batch.len() > 1 => {
                // Someone lost a compare-and-set: replay one by one to find who.
                for op in batch {
                    let result = self.try_batch(&mut conn, std::slice::from_ref(&op)).await;
                    match result {
                        Ok(done) => reply_done(vec![op], done),
                        Err(failure) => reply_all(vec![op], |_| failure_copy(&failure)),
                    }
                }
            }
            Err(failure) => reply_all(batch, |_| failure_copy(&failure)),
        }
    }

    /// Commits `ops` as one transaction, retrying after conflicts: first with
    /// the cached heads in one script, then, after another process took a key,
    /// reading the heads under the write lock, which no process can then race.
    async fn try_batch(
        &self,
        conn: &mut PoolConnection<Sqlite>,
        ops: &[Op],
    ) -> Result<Vec<Done>, Failure> {
        for attempt in 0..RETRIES {
            let attempt = self.attempt(conn, ops, attempt > 0).await;
            match attempt {
                Ok(done) => return Ok(done),
                Err(failure) => {
                    // Fails harmlessly when the failing statement ended the transaction.
                    let _ = sqlx::query("ROLLBACK").execute(&mut **conn).await;
                    *self.heads() = Heads::default();
                    if !matches!(failure, Failure::Conflict) {
                        return Err(failure);
                    }
                }
            }
        }
        Err(Failure::Other(StoreError::Corrupt(
            "lost the race for the ledger head too often".into(),
        )))
    }

    async fn attempt(
        &self,
        conn: &mut PoolConnection<Sqlite>,
        ops: &[Op],
        locked: bool,
    ) -> Result<Vec<Done>, Failure> {
        let mut script = Script {
            sql: String::new(),
            binds: Vec::new(),
        };
        if locked {
            // The heads are read below inside the write lock: they are current.
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut **conn)
                .await
                .map_err(classify)?;
        } else {
            script.sql.push_str("BEGIN IMMEDIATE;\n");
        }
        let mut cursor = self.cursor(conn).await.map_err(Failure::Other)?;
        let mut numbers = std::mem::take(&mut self.heads().numbers);
        let mut done = Vec::with_capacity(ops.len());
        let now = self.now();
        for op in ops {
            match op {
                Op::Propose {
                    campaign, trial, ..
                } => {
                    let (trial, start) = &**trial;
                    let next = self
                        .next_number(conn, &mut numbers, campaign)
                        .await
                        .map_err(Failure::Other)?;
                    let number = match trial.number {
                        Some(n) if n < next => {
                            // Known taken (the cache is fresh after a conflict).
                            done.push(Done::Failed(StoreError::NumberTaken(n)));
                            continue;
                        }
                        Some(n) => n,
                        None => next,
                    };
                    numbers.insert(campaign.clone(), number + 1);
                    if let Some(slots) = start.slots {
                        // Every slot taken: the batch rolls back and is replayed
                        // one by one, and this proposal gets `NoSlot`.
                        script.sql.push_str(
                            "SELECT abs(-9223372036854775807 - 1) WHERE (SELECT count(*) FROM trials \
                             WHERE campaign = ? AND state <> 'queued') >= ?;\n",
                        );
                        script.binds.extend([
                            Bind::Text(Some(campaign.clone())),
                            Bind::Int(Some(i64::try_from(slots).unwrap_or(i64::MAX))),
                        ]);
                    }
                    script.sql.push_str(
                        "INSERT INTO trials (campaign, number, state, params, proposer, rationale, proposer_state, retry_of, priority, run, worker, started_at, generation) \
                         VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT generation FROM campaigns WHERE name = ?));\n",
                    );
                    script.binds.extend([
                        Bind::Text(Some(campaign.clone())),
                        Bind::Int(Some(number as i64)),
                        Bind::Text(Some(json(&trial.params))),
                        Bind::Text(Some(trial.proposer.clone())),
                        Bind::Text(Some(trial.rationale.clone())),
                        Bind::Text(trial.state.as_ref().map(json)),
                        Bind::Int(trial.retry_of.map(|n| n as i64)),
                        Bind::Int(Some(trial.priority)),
                        Bind::Int(Some(start.run as i64)),
                        Bind::Int(Some(i64::from(start.worker))),
                        Bind::Int(Some(now)),
                        Bind::Text(Some(campaign.clone())),
                    ]);
                    let proposed = trial.proposed(number);
                    let started = Event::TrialStarted {
                        number,
                        run: start.run,
                        worker: start.worker,
                        policy: start.policy.clone(),
                    };
                    for event in [proposed, started] {
                        let entry = self
                            .seal(&mut cursor, campaign, &event)
                            .map_err(Failure::Other)?;
                        script.entry(&entry, false);
                    }
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
                    done.push(Done::Trial(Box::new(out)));
                }
                Op::Finish {
                    campaign,
                    number,
                    run,
                    outcome,
                    ..
                } => {
                    let metrics = finite_metrics(&outcome.metrics);
                    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
                    script.sql.push_str(
                        "UPDATE trials SET state = ?, metrics = ?, error = ?, finished_at = ?, cpu_seconds = ?, \
                         wall_seconds = ?, log = COALESCE(?, log), process = NULL \
                         WHERE campaign = ? AND number = ? AND state = 'running' AND run = ?;\n",
                    );
                    script.binds.extend([
                        Bind::Text(Some(outcome.state.as_str().to_string())),
                        Bind::Text(Some(json(&metrics))),
                        Bind::Text(outcome.error.clone()),
                        Bind::Int(Some(now)),
                        Bind::Real(finite(outcome.cpu_seconds)),
                        Bind::Real(finite(outcome.wall_seconds)),
                        Bind::Text(outcome.log.as_deref().map(|l| l.replace('\0', "\u{fffd}"))),
                        Bind::Text(Some(campaign.clone())),
                        Bind::Int(Some(*number as i64)),
                        Bind::Int(Some(*run as i64)),
                    ]);
                    let event = Event::TrialFinished {
                        number: *number,
                        state: outcome.state,
                        metrics,
                        error: outcome.error.clone(),
                        cpu_seconds: finite(outcome.cpu_seconds),
                        wall_seconds: finite(outcome.wall_seconds),
                    };
                    let entry = self
                        .seal(&mut cursor, campaign, &event)
                        .map_err(Failure::Other)?;
                    script.entry(&entry, true);
                    done.push(Done::Won);
                }
                Op::Report {
                    campaign,
                    number,
                    run,
                    report,
                    ..
                } => {
                    let metrics = finite_metrics(&report.metrics);
                    script.sql.push_str(
                        "INSERT OR REPLACE INTO reports (campaign, number, step, metrics) SELECT ?, ?, ?, ? \
                         WHERE EXISTS (SELECT 1 FROM trials WHERE campaign = ? AND number = ? AND state = 'running' AND run = ?);\n",
                    );
                    script.binds.extend([
                        Bind::Text(Some(campaign.clone())),
                        Bind::Int(Some(*number as i64)),
                        Bind::Int(Some(report.step as i64)),
                        Bind::Text(Some(json(&metrics))),
                        Bind::Text(Some(campaign.clone())),
                        Bind::Int(Some(*number as i64)),
                        Bind::Int(Some(*run as i64)),
                    ]);
                    let event = Event::TrialReported {
                        number: *number,
                        step: report.step,
                        metrics,
                    };
                    let entry = self
                        .seal(&mut cursor, campaign, &event)
                        .map_err(Failure::Other)?;
                    script.entry(&entry, true);
                    done.push(Done::Won);
                }
                Op::Process {
                    campaign,
                    number,
                    process,
                    ..
                } => {
                    // A host fact, not ledgered; a trial no longer running is left alone.
                    script.sql.push_str(
                        "UPDATE trials SET process = ? WHERE campaign = ? AND number = ? AND state = 'running';\n",
                    );
                    script.binds.extend([
                        Bind::Text(Some(process.clone())),
                        Bind::Text(Some(campaign.clone())),
                        Bind::Int(Some(*number as i64)),
                    ]);
                    done.push(Done::Won);
                }
                Op::Note {
                    campaign, event, ..
                } => {
                    let entry = self
                        .seal(&mut cursor, campaign, event)
                        .map_err(Failure::Other)?;
                    script.entry(&entry, false);
                    done.push(Done::Won);
                }
            }
        }
        script.sql.push_str("COMMIT;\n");
        script
            .query()
            .execute(&mut **conn)
            .await
            .map_err(classify)?;
        let mut heads = self.heads();
        heads.head = Some((cursor.next_seq, cursor.prev));
        heads.numbers = numbers;
        Ok(done)
    }

    #[cfg(test)]
    async fn inject_fault(&self, op: Op) {
        // Abort between the state write and the ledger write: run the state
        // statement inside a transaction, then roll back.
        let result: Result<(), StoreError> = async {
            let mut conn = self.inner.writer.acquire().await?;
            sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
            if let Op::Finish {
                campaign, number, ..
            } = &op
            {
                sqlx::query(
                    "UPDATE trials SET state = 'complete' WHERE campaign = ? AND number = ?",
                )
                .bind(campaign)
                .bind(*number as i64)
                .execute(&mut *conn)
                .await?;
            }
            sqlx::query("ROLLBACK").execute(&mut *conn).await?;
            Ok(())
        }
        .await;
        let message = result.err().map(|e| e.to_string());
        reply_all(vec![op], |_| {
            Failure::Other(match &message {
                None => StoreError::Injected,
                Some(m) => StoreError::Corrupt(m.clone()),
            })
        });
    }
}

fn failure_copy(failure: &Failure) -> Failure {
    match failure {
        Failure::Conflict => Failure::Conflict,
        Failure::Lost => Failure::Lost,
        Failure::Other(e) => Failure::Other(StoreError::Corrupt(e.to_string())),
    }
}

fn reply_done(batch: Vec<Op>, done: Vec<Done>) {
    for (op, done) in batch.into_iter().zip(done) {
        match (op, done) {
            (Op::Propose { reply, .. }, Done::Trial(trial)) => {
                let _ = reply.send(Ok(*trial));
            }
            (
                Op::Finish { reply, .. }
                | Op::Report { reply, .. }
                | Op::Process { reply, .. }
                | Op::Note { reply, .. },
                _,
            ) => {
                let _ = reply.send(Ok(true));
            }
            (Op::Propose { reply, .. }, Done::Failed(e)) => {
                let _ = reply.send(Err(e));
            }
            (Op::Propose { reply, .. }, Done::Won) => {
                let _ = reply.send(Err(StoreError::Corrupt(
                    "batch answers out of order".into(),
                )));
            }
        }
    }
}

fn reply_all(batch: Vec<Op>, failure: impl Fn(&Op) -> Failure) {
    for op in batch {
        let f = failure(&op);
        let error = |f: Failure| match f {
            Failure::Other(e) => e,
            Failure::Conflict => {
                StoreError::Corrupt("lost the race for the ledger head too often".into())
            }
            Failure::Lost => StoreError::Corrupt("compare-and-set lost".into()),
        };
        match op {
            Op::Propose { reply, .. } => {
                let _ = reply.send(Err(match f {
                    Failure::Lost => StoreError::NoSlot,
                    other => error(other),
                }));
            }
            Op::Finish { reply, .. }
            | Op::Report { reply, .. }
            | Op::Process { reply, .. }
            | Op::Note { reply, .. } => {
                let _ = reply.send(match f {
                    Failure::Lost => Ok(false),
                    other => Err(error(other)),
                });
            }
        }
    }
}

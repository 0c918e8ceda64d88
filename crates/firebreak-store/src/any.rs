//! [`AnyStore`]: the store a storage URL names, SQLite or PostgreSQL, behind one
//! type, so the command line and the runner are written once for both.
//!
//! Why an enum and not `dyn Store`: the trait's methods return `impl Future`,
//! which is not object-safe; two variants cost one `match` per call.

use std::collections::BTreeMap;
use std::path::PathBuf;

use firebreak_core::{Metrics, Report, Timestamp, Trial};
use firebreak_ledger::{
    Authorization, Checkpoint, Entry, Event, Hash, Request, RequestState, SignedDecision,
    StateSnapshot,
};

use crate::{
    CampaignLock, CampaignRecord, CampaignSummary, Closing, Counts, LedgerProof, NewTrial, Outcome,
    PgStore, ProcessInfo, RequestDraft, Requeued, RunInfo, RunRecord, SpecUpdate, SqliteStore,
    Start, Store, StoreError, TokenRecord,
};

/// A store opened from a storage URL: `sqlite://PATH` or
/// `postgres://USER[:PASS]@HOST[:PORT]/DB`.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// The embedded default: one SQLite file.
    Sqlite(SqliteStore),
    /// A PostgreSQL database shared by many machines.
    Postgres(PgStore),
}

macro_rules! both {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call.await,
            AnyStore::Postgres($s) => $call.await,
        }
    };
}

/// True when `url` names a PostgreSQL database.
fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `.firebreak/postgres/HOST_PORT_DB` for a PostgreSQL URL (no user, no
/// password: the path is printed and may be shared).
fn postgres_local_path(url: &str) -> PathBuf {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let (host, db) = rest.split_once('/').unwrap_or((rest, "postgres"));
    let (host, port) = host.rsplit_once(':').unwrap_or((host, "5432"));
    let name: String = format!("{host}_{port}_{db}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from(".firebreak/postgres").join(name)
}

impl AnyStore {
    /// Opens (creating when missing) the store `url` names.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Ok(if is_postgres(url) {
            AnyStore::Postgres(PgStore::open(url).await?)
        } else {
            AnyStore::Sqlite(SqliteStore::open(url).await?)
        })
    }

    /// Opens the existing store `url` names, refusing to create one.
    pub async fn open_existing(url: &str) -> Result<Self, StoreError> {
        Ok(if is_postgres(url) {
            AnyStore::Postgres(PgStore::open_existing(url).await?)
        } else {
            AnyStore::Sqlite(SqliteStore::open_existing(url).await?)
        })
    }

    /// Migrates the store's schema to this binary's; returns the version before.
    pub async fn upgrade(url: &str) -> Result<(Self, u32), StoreError> {
        Ok(if is_postgres(url) {
            let (store, before) = PgStore::upgrade(url).await?;
            (AnyStore::Postgres(store), before)
        } else {
            let (store, before) = SqliteStore::upgrade(url).await?;
            (AnyStore::Sqlite(store), before)
        })
    }

    /// Where this store's files on this machine go (trial folders, published
    /// checkpoints), as a path that names the database: the SQLite file
    /// itself, or `.firebreak/postgres/HOST_PORT_DB` under the current folder.
    pub fn local_path(&self) -> PathBuf {
        match self {
            AnyStore::Sqlite(s) => s.path().to_path_buf(),
            AnyStore::Postgres(s) => postgres_local_path(s.url()),
        }
    }

    /// The schema version the database records.
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        both!(self, s => s.schema_version())
    }

    /// Appends events to the ledger as one transaction (tests and benchmarks).
    pub async fn append_batch(&self, campaign: &str, events: &[Event]) -> Result<u64, StoreError> {
        both!(self, s => s.append_batch(campaign, events))
    }

    /// Every ledger entry's leaf hash, in order.
    pub async fn ledger_hashes(&self) -> Result<Vec<Hash>, StoreError> {
        both!(self, s => s.ledger_hashes())
    }
}

impl Store for AnyStore {
    async fn trial(&self, campaign: &str, number: u64) -> Result<Trial, StoreError> {
        both!(self, s => s.trial(campaign, number))
    }

    async fn ledger_size(&self) -> Result<u64, StoreError> {
        both!(self, s => s.ledger_size())
    }

    async fn inclusion_proof(
        &self,
        seq: u64,
        tree_size: u64,
    ) -> Result<Option<LedgerProof>, StoreError> {
        both!(self, s => s.inclusion_proof(seq, tree_size))
    }

    async fn create_campaign(
        &self,
        name: &str,
        spec: &serde_json::Value,
    ) -> Result<CampaignRecord, StoreError> {
        both!(self, s => s.create_campaign(name, spec))
    }

    async fn campaign(&self, name: &str) -> Result<Option<CampaignRecord>, StoreError> {
        both!(self, s => s.campaign(name))
    }

    async fn campaigns(&self) -> Result<Vec<CampaignSummary>, StoreError> {
        both!(self, s => s.campaigns())
    }

    async fn lock_campaign(&self, name: &str, holder: &str) -> Result<CampaignLock, StoreError> {
        both!(self, s => s.lock_campaign(name, holder))
    }

    async fn lock_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        both!(self, s => s.lock_holder(name))
    }

    async fn start_run(&self, campaign: &str, info: &RunInfo) -> Result<u64, StoreError> {
        both!(self, s => s.start_run(campaign, info))
    }

    async fn runs(&self, campaign: &str) -> Result<Vec<RunRecord>, StoreError> {
        both!(self, s => s.runs(campaign))
    }

    async fn heartbeat(&self, run: u64) -> Result<(), StoreError> {
        both!(self, s => s.heartbeat(run))
    }

    async fn end_run(&self, campaign: &str, run: u64, reason: &str) -> Result<(), StoreError> {
        both!(self, s => s.end_run(campaign, run, reason))
    }

    async fn requeue_running(
        &self,
        campaign: &str,
        reason: &str,
    ) -> Result<Vec<Requeued>, StoreError> {
        both!(self, s => s.requeue_running(campaign, reason))
    }

    async fn requeue_run(
        &self,
        campaign: &str,
        run: u64,
        reason: &str,
    ) -> Result<Vec<Requeued>, StoreError> {
        both!(self, s => s.requeue_run(campaign, run, reason))
    }

    async fn requeue_expired(
        &self,
        campaign: &str,
        reason: &str,
    ) -> Result<Vec<Requeued>, StoreError> {
        both!(self, s => s.requeue_expired(campaign, reason))
    }

    async fn resume_paused(
        &self,
        campaign: &str,
        number: u64,
        run: u64,
        worker: u32,
        reason: &str,
    ) -> Result<Option<Trial>, StoreError> {
        both!(self, s => s.resume_paused(campaign, number, run, worker, reason))
    }

    async fn enqueue(&self, campaign: &str, trial: &NewTrial) -> Result<u64, StoreError> {
        both!(self, s => s.enqueue(campaign, trial))
    }

    async fn claim_queued(
        &self,
        campaign: &str,
        start: &Start,
    ) -> Result<Option<Trial>, StoreError> {
        both!(self, s => s.claim_queued(campaign, start))
    }

    async fn has_queued(&self, campaign: &str) -> Result<bool, StoreError> {
        both!(self, s => s.has_queued(campaign))
    }

    async fn propose_and_start(
        &self,
        campaign: &str,
        trial: &NewTrial,
        start: &Start,
    ) -> Result<Trial, StoreError> {
        both!(self, s => s.propose_and_start(campaign, trial, start))
    }

    async fn set_process(
        &self,
        campaign: &str,
        number: u64,
        process: &ProcessInfo,
    ) -> Result<(), StoreError> {
        both!(self, s => s.set_process(campaign, number, process))
    }

    async fn report(
        &self,
        campaign: &str,
        number: u64,
        run: u64,
        report: &Report,
    ) -> Result<bool, StoreError> {
        both!(self, s => s.report(campaign, number, run, report))
    }

    async fn finish(
        &self,
        campaign: &str,
        number: u64,
        run: u64,
        outcome: &Outcome,
    ) -> Result<bool, StoreError> {
        both!(self, s => s.finish(campaign, number, run, outcome))
    }

    async fn trials(&self, campaign: &str) -> Result<Vec<Trial>, StoreError> {
        both!(self, s => s.trials(campaign))
    }

    async fn counts(&self, campaign: &str) -> Result<Counts, StoreError> {
        both!(self, s => s.counts(campaign))
    }

    async fn log(&self, campaign: &str, number: u64) -> Result<Option<String>, StoreError> {
        both!(self, s => s.log(campaign, number))
    }

    async fn ledger(&self) -> Result<Vec<Entry>, StoreError> {
        both!(self, s => s.ledger())
    }

    async fn ledger_range(&self, from: u64, limit: u64) -> Result<Vec<Entry>, StoreError> {
        both!(self, s => s.ledger_range(from, limit))
    }

    async fn add_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        both!(self, s => s.add_token(token))
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        both!(self, s => s.token(id))
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        both!(self, s => s.tokens())
    }

    async fn revoke_token(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        both!(self, s => s.revoke_token(id, at))
    }

    async fn add_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        both!(self, s => s.add_checkpoint(checkpoint))
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        both!(self, s => s.checkpoints())
    }

    async fn file_request(&self, draft: &RequestDraft) -> Result<(Request, bool), StoreError> {
        both!(self, s => s.file_request(draft))
    }

    async fn requests(&self, campaign: Option<&str>) -> Result<Vec<Request>, StoreError> {
        both!(self, s => s.requests(campaign))
    }

    async fn decide_request(
        &self,
        id: &str,
        decision: &SignedDecision,
        policy: &Authorization,
        decisions_seen: usize,
        closing: Option<&Closing>,
    ) -> Result<Request, StoreError> {
        both!(self, s => s.decide_request(id, decision, policy, decisions_seen, closing))
    }

    async fn close_request(
        &self,
        id: &str,
        state: RequestState,
        reason: &str,
    ) -> Result<bool, StoreError> {
        both!(self, s => s.close_request(id, state, reason))
    }

    async fn change_spec(&self, campaign: &str, update: &SpecUpdate) -> Result<(), StoreError> {
        both!(self, s => s.change_spec(campaign, update))
    }

    async fn record_note(&self, campaign: &str, note: &Event) -> Result<(), StoreError> {
        both!(self, s => s.record_note(campaign, note))
    }

    async fn record_test(
        &self,
        campaign: &str,
        number: u64,
        metrics: &Metrics,
        cpu_seconds: Option<f64>,
    ) -> Result<bool, StoreError> {
        both!(self, s => s.record_test(campaign, number, metrics, cpu_seconds))
    }

    async fn tests(&self, campaign: &str) -> Result<BTreeMap<u64, Metrics>, StoreError> {
        both!(self, s => s.tests(campaign))
    }

    async fn record_agent_exchange(
        &self,
        campaign: &str,
        event: &Event,
        texts: &[(String, String)],
    ) -> Result<(), StoreError> {
        both!(self, s => s.record_agent_exchange(campaign, event, texts))
    }

    async fn agent_text(&self, hash: &str) -> Result<Option<String>, StoreError> {
        both!(self, s => s.agent_text(hash))
    }

    async fn restore_guards(&self) -> Result<bool, StoreError> {
        both!(self, s => s.restore_guards())
    }

    async fn snapshot(&self) -> Result<StateSnapshot, StoreError> {
        both!(self, s => s.snapshot())
    }

    async fn ledger_and_snapshot(&self) -> Result<(Vec<Entry>, StateSnapshot), StoreError> {
        both!(self, s => s.ledger_and_snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_names_a_local_folder_without_its_password() {
        assert_eq!(
            postgres_local_path("postgres://bob:s3cret@db.lab:6543/research?sslmode=require"),
            PathBuf::from(".firebreak/postgres/db.lab_6543_research")
        );
        assert_eq!(
            postgres_local_path("postgresql://localhost/fb"),
            PathBuf::from(".firebreak/postgres/localhost_5432_fb")
        );
    }
}

//! Storage of firebreak: the [`Store`] trait (campaigns, runs, trials, reports and
//! the ledger) and its two implementations, [`SqliteStore`] (embedded, the
//! default) and [`PgStore`] (PostgreSQL, for workers on many machines).
//!
//! Principal types: [`Store`], [`SqliteStore`], [`PgStore`], [`NewTrial`],
//! [`Outcome`], [`CampaignRecord`], [`CampaignLock`], [`StoreError`].
//!
//! Every state change is one transaction that also appends its ledger entries
//! ([`firebreak_ledger::Entry`]), so state and ledger never disagree; no code path
//! updates or deletes a ledger row (SQLite and PostgreSQL triggers refuse it too).
//! Claiming a queued trial and finishing a running one are compare-and-set
//! operations that say whether they won, so concurrent workers never run a trial
//! twice. The ledger is one hash chain per database however many processes
//! write: SQLite serialises writers with its database lock (`BEGIN IMMEDIATE`),
//! PostgreSQL with a transaction-level advisory lock taken before the ledger head
//! is read (see the `postgres` module).
//!
//! Why `sqlx`: one async driver for SQLite and PostgreSQL, behind the same trait;
//! SQLite is bundled, so the embedded default needs nothing installed.
//! Durability: SQLite runs a WAL journal with `synchronous = NORMAL`. A committed
//! transaction survives the process being killed (`kill -9`); a power loss may
//! lose the last commits but never corrupts the database or splits state from
//! ledger. PostgreSQL's durability is the server's (`synchronous_commit`,
//! `fsync`).
#![warn(missing_docs)]

mod any;
mod codec;
mod error;
mod lock;
mod merkle_cache;
mod postgres;
mod schema;
mod sqlite;
mod types;

pub use any::AnyStore;
pub use error::StoreError;
pub use lock::CampaignLock;
pub use postgres::PgStore;
pub use schema::SCHEMA_VERSION;
pub use sqlite::{LedgerProof, SqliteStore};
pub use types::{
    CampaignRecord, CampaignSummary, Closing, Counts, DEFAULT_LEASE_MS, NewTrial, Outcome,
    ProcessInfo, RequestDraft, Requeued, RunInfo, RunRecord, SpecUpdate, Start, Store, TokenRecord,
};

//! The campaign runner: opens a campaign over a store ([`Campaign`], also the
//! ask/tell library API), executes trials — external commands under the trial
//! protocol ([`CommandTask`]), benchmark-table lookups ([`TableTask`]) or networks
//! trained in-process ([`BuiltinTask`]), chosen by [`Executor`] — and drives `parallelism` workers to the end of the campaign
//! ([`run()`]).
//!
//! Principal types: [`Campaign`], [`Executor`], [`CommandTask`], [`TableTask`],
//! [`BuiltinTask`], [`RunEvent`], [`RunSummary`],
//! [`Stop`], [`RunnerError`].
//!
//! Invariants: one live run per campaign, enforced by the store's OS lock; a trial
//! number is never reused; a trial left running by a dead process is re-queued with
//! its number and parameters (and the ledger says why) before anything else runs;
//! exactly `n_trials` trials finish. This crate never prints: progress leaves as
//! [`RunEvent`]s for the CLI to show.
//!
//! Determinism: proposal `k` of a campaign draws from the stream
//! `derive_seed(seed, [1, k])` and trial `n`'s program gets `FIREBREAK_SEED` from
//! `derive_seed(seed, [2, n])`, so with one worker the same spec gives the same
//! trials, whatever the timing.
#![warn(missing_docs)]

mod agent;
mod builtin;
mod campaign;
mod code;
mod command;
mod error;
mod governance;
mod host;
mod protocol;
mod run;
mod table;

pub use builtin::{BuiltinTask, EPOCH_METRICS};
pub use campaign::{Campaign, Components, ENQUEUED, Halt, PARENT, RETRY, components, counts_of};
pub use command::{
    CommandTask, GRACE_PERIOD, TaskSandbox, expand_args, param_env_name, sandbox_of,
};
pub use error::RunnerError;
pub use firebreak_store::Outcome;
pub use governance::{authorizer, enqueue, load_policy, verify_ledger};
pub use host::{host_name, os_user};
pub use protocol::{LOG_TAIL_BYTES, Line, parse_line};
pub use run::{Executor, RunEvent, RunSummary, Stop, run, test_champion};
pub use table::TableTask;

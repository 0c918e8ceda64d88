//! The storage trait and the plain types that cross it.

use std::collections::BTreeMap;
use std::future::Future;

use firebreak_core::{Metrics, Params, Report, Timestamp, Trial, TrialState};
use firebreak_ledger::{
    Authorization, Checkpoint, Entry, Event, Exploit, Request, RequestKind, RequestState,
    SignedDecision, StateSnapshot,
};
use serde::{Deserialize, Serialize};

use crate::{CampaignLock, StoreError};

/// A stored campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignRecord {
    /// Its unique name.
    pub name: String,
    /// The canonical spec in effect: as created, changed by approved requests
    /// and by edits of settings outside governance.
    pub spec: serde_json::Value,
    /// Hex SHA-256 of the canonical spec in effect.
    pub spec_hash: String,
    /// The spec as people last submitted it (approved changes asked for by
    /// agents apply to `spec` only), what an edited spec file is compared with.
    pub submitted: serde_json::Value,
    /// When it was created.
    pub created_at: Timestamp,
}

/// Trial counts by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Waiting for a worker.
    pub queued: u64,
    /// Being evaluated.
    pub running: u64,
    /// Finished with a result.
    pub complete: u64,
    /// Stopped by a scheduler.
    pub pruned: u64,
    /// Finished without a result.
    pub failed: u64,
}

impl Counts {
    /// Trials in a final state; what `n_trials` counts.
    pub fn finished(&self) -> u64 {
        self.complete + self.pruned + self.failed
    }
}

/// A campaign with its progress, for listings.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignSummary {
    /// The campaign.
    pub campaign: CampaignRecord,
    /// Its trials by state.
    pub counts: Counts,
    /// Its latest run, if any.
    pub last_run: Option<RunRecord>,
}

/// Facts about the process that starts a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The engine's version.
    pub version: String,
    /// The operating-system user.
    pub os_user: String,
    /// The host name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// The trial sandbox the run applies (recorded in its `run_started`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<firebreak_ledger::SandboxRecord>,
    /// How long the run's trials stay its own without a heartbeat, in
    /// milliseconds ([`DEFAULT_LEASE_MS`] when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
}

/// The lease of a run that names none (`contract.md`: 60 s).
pub const DEFAULT_LEASE_MS: u64 = 60_000;

/// A stored run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Its id.
    pub id: u64,
    /// Who and where.
    pub info: RunInfo,
    /// When it started.
    pub started_at: Timestamp,
    /// Its last heartbeat.
    pub heartbeat_at: Timestamp,
    /// When it ended, if it ended cleanly.
    pub ended_at: Option<Timestamp>,
    /// Why it ended.
    pub end_reason: Option<String>,
}

impl RunRecord {
    /// Whether the run still holds its lease at `now`: not ended, and its last
    /// heartbeat younger than its lease (the rule the re-queue applies).
    pub fn live_at(&self, now: Timestamp) -> bool {
        let lease = self.info.lease_ms.unwrap_or(DEFAULT_LEASE_MS);
        self.ended_at.is_none() && now <= self.heartbeat_at.saturating_add(lease as i64)
    }
}

/// A trial to add: parameters and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTrial {
    /// The parameters.
    pub params: Params,
    /// Who proposed them.
    pub proposer: String,
    /// Why.
    pub rationale: String,
    /// The trial this one re-runs.
    pub retry_of: Option<u64>,
    /// Queue order: higher first, then by number. People's configurations get 1.
    pub priority: i64,
    /// The number to give it; `None` lets the store take the next free one. A
    /// number already taken fails with [`StoreError::NumberTaken`].
    pub number: Option<u64>,
    /// The policy decision that allowed the proposal (recorded in the ledger).
    pub policy: Option<Authorization>,
    /// For PBT: which trial's checkpoint it copies and which it replaces.
    pub exploit: Option<Exploit>,
    /// The proposer's structured, versioned state for this proposal (kept as the
    /// trial's `proposer_state` and recorded in the ledger); `None` for
    /// proposers without state, people's, retries and PBT.
    pub state: Option<serde_json::Value>,
}

impl NewTrial {
    /// Its `trial_proposed` ledger event under `number`.
    pub fn proposed(&self, number: u64) -> Event {
        Event::TrialProposed {
            number,
            params: self.params.clone(),
            proposer: self.proposer.clone(),
            rationale: self.rationale.clone(),
            retry_of: self.retry_of,
            policy: self.policy.clone(),
            exploit: self.exploit,
            state: self.state.clone(),
        }
    }
}

/// Who starts a trial, and on what condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    /// The run (a `run` or a `worker` process) that will hold the trial: its
    /// heartbeat is the trial's lease, and only it may report or finish it.
    pub run: u64,
    /// The worker slot within that run.
    pub worker: u32,
    /// The decision that allowed the start (recorded in the ledger).
    pub policy: Option<Authorization>,
    /// Start only while the campaign has fewer than this many started trials
    /// (running or finished), else [`StoreError::NoSlot`]. The count and the start
    /// are one transaction, so workers on many machines never start a trial past
    /// `n_trials`.
    pub slots: Option<u64>,
}

/// How a running trial ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `complete`, `pruned` or `failed`.
    pub state: TrialState,
    /// Final metrics (finite values only).
    pub metrics: Metrics,
    /// Why it failed or was pruned.
    pub error: Option<String>,
    /// CPU seconds of its process tree.
    pub cpu_seconds: Option<f64>,
    /// Wall seconds.
    pub wall_seconds: Option<f64>,
    /// The tail of its log.
    pub log: Option<String>,
}

impl Outcome {
    /// A complete trial with these metrics.
    pub fn complete(metrics: Metrics) -> Self {
        Outcome {
            state: TrialState::Complete,
            metrics,
            error: None,
            cpu_seconds: None,
            wall_seconds: None,
            log: None,
        }
    }

    /// A failed trial with this reason.
    pub fn failed(error: impl Into<String>) -> Self {
        Outcome {
            state: TrialState::Failed,
            metrics: Metrics::new(),
            error: Some(error.into()),
            cpu_seconds: None,
            wall_seconds: None,
            log: None,
        }
    }
}

/// The operating-system process of a running trial, recorded so that a later run
/// can kill what a dead run left behind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Host the process runs on.
    pub host: String,
    /// Its process id (also its process-group id).
    pub pid: i32,
}

/// A trial that went back to the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Requeued {
    /// Its number.
    pub number: u64,
    /// The process it had, if one was recorded.
    pub process: Option<ProcessInfo>,
}

/// A governed change to park as a request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestDraft {
    /// The campaign.
    pub campaign: String,
    /// What it would change.
    pub kind: RequestKind,
    /// RFC 6902 patch against the spec in effect.
    pub diff: serde_json::Value,
    /// Hash of the spec in effect.
    pub base_spec_hash: String,
    /// Who asks.
    pub requested_by: String,
    /// Why.
    pub reason: String,
    /// Time to live in milliseconds.
    pub ttl_ms: i64,
    /// The decision that let them ask (`None` for a tripwire, which code files
    /// whatever a policy says).
    pub policy: Option<Authorization>,
    /// What the deciders should see besides the diff (see
    /// [`firebreak_ledger::RequestBody::evidence`]).
    pub evidence: Option<serde_json::Value>,
}

/// A change of a campaign's spec.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecUpdate {
    /// The full canonical spec now in effect.
    pub spec: serde_json::Value,
    /// The spec as people submitted it, when it changes too.
    pub submitted: Option<serde_json::Value>,
    /// The RFC 6902 patch from the old spec in effect to `spec`.
    pub diff: serde_json::Value,
    /// Who made the change.
    pub by: String,
}

/// How a decision closes its request.
#[derive(Debug, Clone, PartialEq)]
pub struct Closing {
    /// `approved` or `rejected`.
    pub state: RequestState,
    /// Why, in words.
    pub reason: String,
    /// For an approval: the change taking effect.
    pub spec: Option<SpecUpdate>,
}

/// An API token of the server (`firebreak tokens new`): a name, a role and a
/// lifetime. Only the hex SHA-256 of its secret is stored, so the database never
/// holds a usable token. Tokens authenticate callers of the server; they never
/// decide a request (a decision needs the approver's signature).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// Its public id (the part of the token before the secret).
    pub id: String,
    /// Who or what it was issued to.
    pub name: String,
    /// `auditor`, `researcher`, `approver` or `admin`.
    pub role: String,
    /// Hex SHA-256 of the whole token.
    #[serde(skip)]
    pub hash: String,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// The storage primitives. Every method that changes state appends its ledger
/// entries in the same transaction. Implementations: [`crate::SqliteStore`],
/// [`crate::PgStore`], and [`crate::AnyStore`] (whichever a storage URL names).
pub trait Store: Send + Sync + 'static {
    /// Creates a campaign and records its full canonical spec in the ledger.
    fn create_campaign(
        &self,
        name: &str,
        spec: &serde_json::Value,
    ) -> impl Future<Output = Result<CampaignRecord, StoreError>> + Send;
    /// The campaign called `name`.
    fn campaign(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<CampaignRecord>, StoreError>> + Send;
    /// Every campaign with its progress, by name.
    fn campaigns(&self) -> impl Future<Output = Result<Vec<CampaignSummary>, StoreError>> + Send;
    /// Takes the campaign's exclusive run lock: an OS lock released when the holding
    /// process dies. Fails with [`StoreError::Locked`] naming the holder.
    fn lock_campaign(
        &self,
        name: &str,
        holder: &str,
    ) -> impl Future<Output = Result<CampaignLock, StoreError>> + Send;
    /// Who holds the campaign's run lock now, if anyone.
    fn lock_holder(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Records a run start.
    fn start_run(
        &self,
        campaign: &str,
        info: &RunInfo,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Every run of the campaign, oldest first.
    fn runs(
        &self,
        campaign: &str,
    ) -> impl Future<Output = Result<Vec<RunRecord>, StoreError>> + Send;
    /// Updates a run's heartbeat.
    fn heartbeat(&self, run: u64) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records a clean run end.
    fn end_run(
        &self,
        campaign: &str,
        run: u64,
        reason: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Sets every running trial of the campaign back to queued (keeping number and
    /// params), recording `reason`. Call only while holding the campaign lock.
    fn requeue_running(
        &self,
        campaign: &str,
        reason: &str,
    ) -> impl Future<Output = Result<Vec<Requeued>, StoreError>> + Send;
    /// Re-queues (keeping number and params, recording `reason`) the running
    /// trials `run` holds: a run that stops early gives back its own trials
    /// and leaves other workers' alone.
    fn requeue_run(
        &self,
        campaign: &str,
        run: u64,
        reason: &str,
    ) -> impl Future<Output = Result<Vec<Requeued>, StoreError>> + Send;
    /// Re-queues (keeping number and params, recording `reason`) every running
    /// trial of the campaign whose run's lease ran out: its last heartbeat is
    /// older than its own lease ([`RunInfo::lease_ms`]), or the run has ended.
    /// Safe without the campaign lock: a run that still heartbeats keeps its
    /// trials.
    fn requeue_expired(
        &self,
        campaign: &str,
        reason: &str,
    ) -> impl Future<Output = Result<Vec<Requeued>, StoreError>> + Send;
    /// Resumes a paused trial (pruned by a scheduler, its checkpoint kept) that
    /// the scheduler promoted: a compare-and-set from `pruned` to `running` on
    /// `run`/`worker`, recorded as `trial_resumed`. `None` when it was not pruned.
    fn resume_paused(
        &self,
        campaign: &str,
        number: u64,
        run: u64,
        worker: u32,
        reason: &str,
    ) -> impl Future<Output = Result<Option<Trial>, StoreError>> + Send;
    /// Adds a queued trial; returns its number.
    fn enqueue(
        &self,
        campaign: &str,
        trial: &NewTrial,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Claims the first queued trial (priority, then number) for `start`'s
    /// run and worker: a compare-and-set, so two claimers never get the same
    /// trial; [`StoreError::NoSlot`] when `start.slots` are taken.
    fn claim_queued(
        &self,
        campaign: &str,
        start: &Start,
    ) -> impl Future<Output = Result<Option<Trial>, StoreError>> + Send;
    /// True when the campaign has a queued trial (a cheap read).
    fn has_queued(&self, campaign: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Adds a trial and starts it at once as `start` says (the proposer's fast
    /// path); [`StoreError::NoSlot`] when `start.slots` are taken.
    fn propose_and_start(
        &self,
        campaign: &str,
        trial: &NewTrial,
        start: &Start,
    ) -> impl Future<Output = Result<Trial, StoreError>> + Send;
    /// Records the process evaluating a running trial (not ledgered: a host fact).
    fn set_process(
        &self,
        campaign: &str,
        number: u64,
        process: &ProcessInfo,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records an intermediate report of a trial `run` holds: a compare-and-set
    /// that returns false (and records nothing) when the trial is not running
    /// under `run` (its lease was taken: the run's token is the fence).
    fn report(
        &self,
        campaign: &str,
        number: u64,
        run: u64,
        report: &Report,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Finishes a trial `run` holds: a compare-and-set that returns false when the
    /// trial is not running under `run` (finished trials are immutable; a holder
    /// whose lease was taken is refused).
    fn finish(
        &self,
        campaign: &str,
        number: u64,
        run: u64,
        outcome: &Outcome,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Every trial of the campaign, by number, with intermediate reports.
    fn trials(&self, campaign: &str)
    -> impl Future<Output = Result<Vec<Trial>, StoreError>> + Send;
    /// Trial `number` of the campaign, with its intermediate reports
    /// ([`StoreError::NoTrial`] when there is none).
    fn trial(
        &self,
        campaign: &str,
        number: u64,
    ) -> impl Future<Output = Result<Trial, StoreError>> + Send;
    /// Trial counts by state.
    fn counts(&self, campaign: &str) -> impl Future<Output = Result<Counts, StoreError>> + Send;
    /// The stored log tail of a trial.
    fn log(
        &self,
        campaign: &str,
        number: u64,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Every ledger row, by seq.
    fn ledger(&self) -> impl Future<Output = Result<Vec<Entry>, StoreError>> + Send;
    /// The number of ledger entries (one more than the largest `seq`).
    fn ledger_size(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// The inclusion proof of entry `seq` in the tree of the first `tree_size`
    /// entries, from the store's cache of subtree hashes (`None` when `seq` is
    /// not in that tree).
    fn inclusion_proof(
        &self,
        seq: u64,
        tree_size: u64,
    ) -> impl Future<Output = Result<Option<crate::LedgerProof>, StoreError>> + Send;
    /// At most `limit` ledger rows from `seq` on, by seq.
    fn ledger_range(
        &self,
        from: u64,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<Entry>, StoreError>> + Send;
    /// Stores a signed checkpoint (not a ledger entry: a statement about the ledger).
    fn add_checkpoint(
        &self,
        checkpoint: &Checkpoint,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every stored checkpoint, oldest first.
    fn checkpoints(&self) -> impl Future<Output = Result<Vec<Checkpoint>, StoreError>> + Send;
    /// Parks a governed change as a pending request, superseding a pending one
    /// of the same kind; an identical pending change (same diff hash) is reused
    /// instead (`true` in the answer).
    fn file_request(
        &self,
        draft: &RequestDraft,
    ) -> impl Future<Output = Result<(Request, bool), StoreError>> + Send;
    /// Change requests, of one campaign or all, oldest first.
    fn requests(
        &self,
        campaign: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Request>, StoreError>> + Send;
    /// Records a signed decision on a pending request that has exactly
    /// `decisions_seen` decisions (a compare-and-set: [`StoreError::RequestChanged`]
    /// otherwise), closing it and changing the spec as `closing` says, all in one
    /// transaction.
    fn decide_request(
        &self,
        id: &str,
        decision: &SignedDecision,
        policy: &Authorization,
        decisions_seen: usize,
        closing: Option<&Closing>,
    ) -> impl Future<Output = Result<Request, StoreError>> + Send;
    /// Closes a pending request without a decision (`expired`); false when it
    /// was not pending.
    fn close_request(
        &self,
        id: &str,
        state: RequestState,
        reason: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Changes settings outside governance (recorded as `spec_changed`).
    fn change_spec(
        &self,
        campaign: &str,
        update: &SpecUpdate,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records an event beside the trials' own: a refused action
    /// ([`Event::Denied`]), an operation on an Optuna study ([`Event::Optuna`]),
    /// a re-evaluation ([`Event::TrialReevaluated`]), or a
    /// generation's start, gate verdict or close (`generation_*`; a start also
    /// sets the campaign's current generation, which the trials started after
    /// it carry).
    fn record_note(
        &self,
        campaign: &str,
        note: &Event,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records a complete trial's one evaluation on the test split (recorded as
    /// `trial_tested`), kept apart from its metrics so that no proposer or
    /// scheduler ever sees it; false when the trial is not complete or was
    /// tested already.
    fn record_test(
        &self,
        campaign: &str,
        number: u64,
        metrics: &Metrics,
        cpu_seconds: Option<f64>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The test-split results of a campaign's trials, by trial number.
    fn tests(
        &self,
        campaign: &str,
    ) -> impl Future<Output = Result<BTreeMap<u64, Metrics>, StoreError>> + Send;
    /// Stores an agent's request and answer whole (`texts`: each body under its
    /// hex SHA-256; a text stored already is kept) and appends `event` (an
    /// [`Event::AgentAnswered`] naming them), in one transaction.
    fn record_agent_exchange(
        &self,
        campaign: &str,
        event: &Event,
        texts: &[(String, String)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// An agent's request or answer by its hex SHA-256.
    fn agent_text(
        &self,
        hash: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Puts back the guards that make ledger rows append-only if they are
    /// missing; true when they were missing.
    fn restore_guards(&self) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The state tables, for comparison with the ledger.
    fn snapshot(&self) -> impl Future<Output = Result<StateSnapshot, StoreError>> + Send;
    /// The ledger and the state tables as of one instant (no write commits in
    /// between), for an audit that must not see half of a concurrent write.
    fn ledger_and_snapshot(
        &self,
    ) -> impl Future<Output = Result<(Vec<Entry>, StateSnapshot), StoreError>> + Send;
    /// Stores a new API token (its id must be new).
    fn add_token(&self, token: &TokenRecord)
    -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The API token with public id `id`.
    fn token(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<TokenRecord>, StoreError>> + Send;
    /// Every API token, oldest first.
    fn tokens(&self) -> impl Future<Output = Result<Vec<TokenRecord>, StoreError>> + Send;
    /// Revokes token `id` at `at`; false when there is no such live token.
    fn revoke_token(
        &self,
        id: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

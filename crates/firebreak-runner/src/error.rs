//! The runner's error enum.

use firebreak_spec::{Change, SpecError};
use firebreak_store::StoreError;

/// Errors of the campaign runner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// The spec is invalid (including component options found invalid here).
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The spec of a campaign without approvers changed in a governed way.
    #[error("{}", spec_changed_message(.campaign, .changes))]
    Ungoverned {
        /// The campaign.
        campaign: String,
        /// What changed.
        changes: Vec<Change>,
    },
    /// A governance rule or the policy refused an action.
    #[error(transparent)]
    Governance(#[from] firebreak_govern::GovernError),
    /// A tripwire tripped (now or in an earlier run) and its request is pending.
    #[error(
        "halted at a firebreak: {reason}; request {request} must be approved before new trials start\nhint: `firebreak requests` shows it; `firebreak approve {request} --key FILE` decides it"
    )]
    Halted {
        /// The pending request.
        request: String,
        /// What tripped.
        reason: String,
    },
    /// The database disagrees with its ledger (or the ledger with its own
    /// rules): nothing acts on a campaign until `audit verify` passes again.
    #[error(
        "the ledger does not verify ({0}), so nothing acts on its state\nhint: `firebreak audit verify` names the first bad entry; restore the database from a backup that verifies"
    )]
    Tampered(firebreak_ledger::Violation),
    /// A configuration was queued on a campaign whose `n_trials` leaves no room
    /// for it: no run would ever start it.
    #[error(
        "campaign {campaign:?} has no room for another trial: {finished} finished and {waiting} running or queued of n_trials = {n_trials}, so no run would start it\nhint: raise `[search] n_trials` in the spec and run it (a governed budget change, approved like any other), then enqueue again"
    )]
    NoRoom {
        /// The campaign.
        campaign: String,
        /// Its budget of trials.
        n_trials: u64,
        /// Trials finished.
        finished: u64,
        /// Trials running or queued.
        waiting: u64,
    },
    /// A proposer kept proposing outside the space.
    #[error(
        "proposer {proposer} made {count} invalid proposals in a row (last: {last}); every one is recorded in the ledger\nhint: fix or replace the proposer"
    )]
    Proposer {
        /// The proposer.
        proposer: String,
        /// How many in a row.
        count: u32,
        /// The last reason.
        last: String,
    },
    /// The agent proposer cannot start (its API key's variable is unset).
    #[error(
        "{0}\nhint: export the variable `api_key_env` names before `run` (its value is never stored)"
    )]
    Agent(#[from] firebreak_agent::AgentError),
    /// The campaign's language-model agents used `max_llm_tokens`.
    #[error("{0}")]
    LlmBudget(String),
    /// The spec in effect changed (an approved request) while a joined worker
    /// ran the old one: it starts no more trials under the old spec.
    #[error(
        "the spec in effect of campaign {0:?} changed while this worker ran (an approved request)\nhint: join it again; `firebreak worker` does so by itself"
    )]
    SpecChanged(String),
    /// A campaign a joined worker cannot drive (yet).
    #[error("{0}\nhint: run it with `firebreak run SPEC`")]
    NotForWorkers(String),
    /// The task kind exists in the spec language but not in this build.
    #[error("task kind {0:?} is not available in this build\nhint: use kind = \"command\"")]
    TaskUnavailable(String),
    /// A benchmark table cannot serve this campaign.
    #[error("table {path}: {message}\nhint: {hint}")]
    Table {
        /// The table's file.
        path: String,
        /// What is wrong, with the line and the value where there is one.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// A trial asked about is not running in this campaign.
    #[error("trial {0} is not running in this campaign")]
    NotRunning(u64),
    /// File-system error preparing a trial's folders.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

fn spec_changed_message(campaign: &str, changes: &[Change]) -> String {
    let mut text = format!(
        "campaign {campaign:?} has no approvers, so its governed settings cannot change:\n"
    );
    for change in changes {
        let show = |v: &Option<serde_json::Value>| {
            v.as_ref().map_or("(absent)".to_string(), |v| v.to_string())
        };
        text.push_str(&format!(
            "  {}: {} -> {}\n",
            change.path,
            show(&change.old),
            show(&change.new)
        ));
    }
    text.push_str(
        "hint: revert the edit, or start a new campaign (a new name) whose [governance] \
         lists approvers, so that such changes can be requested and approved",
    );
    text
}

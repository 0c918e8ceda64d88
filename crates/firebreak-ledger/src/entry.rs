//! Ledger entries: the events recorded, their canonical payload and hash.

use firebreak_core::{Metrics, Params, Timestamp, TrialState, format_rfc3339};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::LedgerError;
use crate::jcs;
use crate::request::{RequestBody, RequestState, SignedDecision};

/// A PBT exploit: a new trial starts from a better trial's checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exploit {
    /// The better trial whose checkpoint and parameters are copied.
    pub from: u64,
    /// The worse trial it replaces (stopped).
    pub replaces: u64,
}

/// A policy decision as recorded: allow or deny, and the policies that decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    /// `allow` or `deny`.
    pub decision: String,
    /// Ids of the policies that decided (for a deny with no policy: empty, the
    /// default deny).
    pub policies: Vec<String>,
}

impl Authorization {
    /// True for an allow.
    pub fn allowed(&self) -> bool {
        self.decision == "allow"
    }
}

/// The trial sandbox of a run (`run_started.sandbox`): what this host enforces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// Kernel features enforced (`landlock`, `landlock-network`,
    /// `landlock-scope`, `seccomp`, `pids-cgroup`, `rlimit-nproc`); rlimits, a
    /// scrubbed environment, no capabilities and `no_new_privs` always are.
    pub enforced: Vec<String>,
    /// Features the sandbox needs that this host lacks (only with `require =
    /// false`: the run goes on without them).
    pub missing: Vec<String>,
    /// `[task.sandbox] require`.
    pub require: bool,
}

/// The payload format version, `v` in every payload.
pub const FORMAT_VERSION: u32 = 1;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The `prev` of the first entry.
pub const GENESIS: Hash = [0; 32];

/// What an entry records. Serialized as `"kind"` and `"data"` of the payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A campaign was created from this canonical spec.
    CampaignCreated {
        /// The full canonical spec.
        spec: serde_json::Value,
        /// Hex SHA-256 of the spec's canonical JSON.
        spec_hash: String,
    },
    /// A `run` of the campaign started.
    RunStarted {
        /// The run's id in the store.
        run: u64,
        /// The engine's version.
        version: String,
        /// Who ran it (operating-system user).
        os_user: String,
        /// Where.
        host: String,
        /// Process id.
        pid: u32,
        /// The trial sandbox this run applies, when the task has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sandbox: Option<SandboxRecord>,
    },
    /// A run ended without dying.
    RunEnded {
        /// The run's id.
        run: u64,
        /// Why it ended (`done`, `interrupted`, `limit: …`).
        reason: String,
    },
    /// A trial was proposed and queued (or started at once).
    TrialProposed {
        /// Its number.
        number: u64,
        /// Its parameters.
        params: Params,
        /// Who proposed it.
        proposer: String,
        /// Why.
        rationale: String,
        /// The trial it re-runs, for retries.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_of: Option<u64>,
        /// The policy decision that allowed the proposal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<Authorization>,
        /// For PBT: the trial whose checkpoint and parameters it copies, and the
        /// trial it replaces.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exploit: Option<Exploit>,
        /// Structured, versioned state the proposer attached to its proposal
        /// (`{"v": 1, "cmaes": {…}}`), which it reads back on later asks; the
        /// rationale is for people. Absent for proposers without state.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<serde_json::Value>,
    },
    /// A worker claimed the trial and started it.
    TrialStarted {
        /// Its number.
        number: u64,
        /// The run that started it.
        run: u64,
        /// The worker slot within that run.
        worker: u32,
        /// The policy decision that allowed the start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<Authorization>,
    },
    /// An intermediate report.
    TrialReported {
        /// Its number.
        number: u64,
        /// The step reported.
        step: u64,
        /// The finite metrics of the report.
        metrics: Metrics,
    },
    /// The trial finished.
    TrialFinished {
        /// Its number.
        number: u64,
        /// `complete`, `pruned` or `failed`.
        state: TrialState,
        /// Final metrics.
        metrics: Metrics,
        /// Why it failed or was pruned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// CPU seconds of its process tree.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpu_seconds: Option<f64>,
        /// Wall seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wall_seconds: Option<f64>,
    },
    /// A trial a scheduler paused (pruned at a rung, its checkpoint kept) was
    /// promoted and resumed from its checkpoint.
    TrialResumed {
        /// Its number.
        number: u64,
        /// The run that resumed it.
        run: u64,
        /// The worker slot.
        worker: u32,
        /// Why (the promotion).
        reason: String,
    },
    /// A running trial went back to the queue, keeping number and parameters.
    TrialRequeued {
        /// Its number.
        number: u64,
        /// Why (the run that held it died, or was interrupted).
        reason: String,
    },
    /// A governed change was asked for and parked as a request.
    RequestFiled {
        /// The hashed body.
        request: RequestBody,
        /// Its hash (hex), what decisions sign.
        hash: String,
        /// Hash of the diff alone: an identical edit reuses the request.
        diff_hash: String,
        /// The policy decision that let the principal ask; absent for a
        /// tripwire's request, which the engine files whatever a policy says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<Authorization>,
    },
    /// A signed decision on a request.
    RequestDecided {
        /// The request's id.
        id: String,
        /// The decision with its signature.
        decision: SignedDecision,
        /// The policy decision that let the approver decide.
        policy: Authorization,
    },
    /// A request left the pending state.
    RequestClosed {
        /// The request's id.
        id: String,
        /// `approved`, `rejected`, `expired` or `superseded`.
        state: RequestState,
        /// Why, in words.
        reason: String,
    },
    /// The campaign's spec changed: an approved request took effect, or a setting
    /// outside governance was edited.
    SpecChanged {
        /// The full canonical spec now in effect.
        spec: serde_json::Value,
        /// Hex SHA-256 of its canonical JSON.
        spec_hash: String,
        /// The RFC 6902 patch applied.
        diff: serde_json::Value,
        /// The approved request it carries out, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<String>,
        /// Who made the change.
        by: String,
    },
    /// A trial was evaluated again, independently (a `reeval` tripwire's check): a
    /// fresh process with another seed. Changes no state.
    TrialReevaluated {
        /// The trial.
        number: u64,
        /// The seed of the re-evaluation.
        seed: u64,
        /// Its final metrics.
        metrics: Metrics,
        /// Why it failed, if it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// CPU seconds the re-evaluation took (counted against the budgets).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpu_seconds: Option<f64>,
    },
    /// A complete trial was evaluated on the held-out test split (the champion of
    /// a built-in task). The result is a record of its own, never part of the
    /// trial's metrics, so no proposer or scheduler ever sees a test metric.
    TrialTested {
        /// The trial.
        number: u64,
        /// The test metrics (`test_accuracy`, `test_loss`, and
        /// `refit_cpu_seconds` after a refit).
        metrics: Metrics,
        /// CPU seconds of the refit and the test (counted against the budgets).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpu_seconds: Option<f64>,
    },
    /// A language-model agent was asked for a proposal: the request and the
    /// answer are stored whole (`agent_texts`) under these hashes; a valid
    /// answer's trial carries the same hashes in its proposer state.
    AgentAnswered {
        /// The model named in the request.
        model: String,
        /// `config` or `code`.
        mode: String,
        /// Hex SHA-256 of the request body sent.
        request_sha256: String,
        /// Hex SHA-256 of the response body, when one came.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response_sha256: Option<String>,
        /// Code mode: the candidate's editable files by path, each the hex
        /// SHA-256 of its text (stored whole beside the request and answer).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        files: Option<std::collections::BTreeMap<String, String>>,
        /// Prompt tokens the server counted (against `max_llm_tokens`).
        prompt_tokens: u64,
        /// Completion tokens the server counted.
        completion_tokens: u64,
        /// Requests sent (1 + retries).
        attempts: u32,
        /// `proposal` (valid), `invalid` (refused) or `error` (no usable answer).
        outcome: String,
        /// Why it was refused or failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A generation of a `[generations]` campaign began: its trials are those
    /// started from here until it closes.
    GenerationStarted {
        /// 1-based.
        generation: u32,
        /// The space it searches, as a `[space]` table in canonical JSON: the
        /// approved `[space]` (or `[generations.next_space]`), narrowed or not.
        space: serde_json::Value,
        /// The last promoted champion it starts from (trial number), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<u64>,
        /// The champion whose soft labels its students learn from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        teacher: Option<u64>,
        /// True when the champion's configuration is queued as its first trial.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        parent: bool,
    },
    /// A generation's champion was judged by the spec's gates.
    GenerationGated {
        /// 1-based.
        generation: u32,
        /// Its champion (best complete trial on the objective), if any finished.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        champion: Option<u64>,
        /// The champion's objective value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<f64>,
        /// The last promoted champion's value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<f64>,
        /// The objective of each re-evaluation from scratch (fresh seeds).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reevals: Vec<f64>,
        /// True when every gate passed.
        passed: bool,
        /// Each gate's verdict, in words.
        reasons: Vec<String>,
    },
    /// A generation ended: its champion promoted, or not.
    GenerationClosed {
        /// 1-based.
        generation: u32,
        /// The champion judged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        champion: Option<u64>,
        /// True when the champion is promoted.
        promoted: bool,
        /// The `promotion` request whose decision this carries out; absent when
        /// the gates alone decided (`promotion = "auto"`, or a failed gate).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<String>,
        /// Why, in words.
        reason: String,
    },
    /// An operation of Optuna's storage API on the campaign's study
    /// (`firebreak serve-optuna`; the rules are in [`crate::optuna`]).
    Optuna {
        /// Who called (`token:ID` or `local:USER`).
        principal: String,
        /// The operation.
        op: crate::optuna::OptunaOp,
    },
    /// An action was refused: by policy, or because a proposal was out of the space.
    Denied {
        /// The action (`propose_trial`, `request_change`, …).
        action: String,
        /// Who tried.
        principal: String,
        /// Why.
        reason: String,
        /// The policy decision, when policy decided.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<Authorization>,
        /// The refused proposal or change.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<serde_json::Value>,
    },
}

impl Event {
    /// The `kind` string of the payload.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::CampaignCreated { .. } => "campaign_created",
            Event::RunStarted { .. } => "run_started",
            Event::RunEnded { .. } => "run_ended",
            Event::TrialProposed { .. } => "trial_proposed",
            Event::TrialStarted { .. } => "trial_started",
            Event::TrialReported { .. } => "trial_reported",
            Event::TrialFinished { .. } => "trial_finished",
            Event::TrialRequeued { .. } => "trial_requeued",
            Event::TrialResumed { .. } => "trial_resumed",
            Event::RequestFiled { .. } => "request_filed",
            Event::RequestDecided { .. } => "request_decided",
            Event::RequestClosed { .. } => "request_closed",
            Event::SpecChanged { .. } => "spec_changed",
            Event::TrialReevaluated { .. } => "trial_reevaluated",
            Event::TrialTested { .. } => "trial_tested",
            Event::AgentAnswered { .. } => "agent_answered",
            Event::GenerationStarted { .. } => "generation_started",
            Event::GenerationGated { .. } => "generation_gated",
            Event::GenerationClosed { .. } => "generation_closed",
            Event::Optuna { .. } => "optuna",
            Event::Denied { .. } => "denied",
        }
    }
}

/// A sealed entry, ready to append: its row in the `ledger` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Global sequence number from 0.
    pub seq: u64,
    /// The campaign named by the entry.
    pub campaign: String,
    /// The event kind.
    pub kind: String,
    /// The canonical JSON payload.
    pub payload: String,
    /// `SHA-256(0x00 ‖ payload)`.
    pub hash: Hash,
}

/// The payload as the generic canonicalizer sees it: the reference the tests
/// hold `Unsealed`'s direct text to.
#[cfg(test)]
#[derive(Serialize)]
pub(crate) struct Payload<'a> {
    pub(crate) v: u32,
    pub(crate) seq: u64,
    pub(crate) prev: String,
    pub(crate) campaign: &'a str,
    pub(crate) at: String,
    #[serde(flatten)]
    pub(crate) event: &'a Event,
}

impl Entry {
    /// Seals `event` as entry `seq` after the entry whose hash is `prev`.
    pub fn seal(
        seq: u64,
        prev: &Hash,
        campaign: &str,
        at: Timestamp,
        event: &Event,
    ) -> Result<Entry, LedgerError> {
        Ok(Unsealed::new(campaign, at, event)?.seal(seq, prev))
    }
}

/// An entry before its place in the chain: its canonical payload up to the
/// chain's members, `{"at":…,"campaign":…,"data":…,"kind":…`. Canonical JSON
/// sorts the payload's members as `at`, `campaign`, `data`, `kind`, `prev`,
/// `seq`, `v`, so the chain's come last, and the costly part of sealing (the
/// event's canonical text) can run ahead, on any thread, for a whole batch.
#[derive(Debug, Clone)]
pub struct Unsealed {
    campaign: String,
    kind: &'static str,
    head: String,
}

impl Unsealed {
    /// The unsealed entry of `event` of `campaign` at `at`.
    pub fn new(campaign: &str, at: Timestamp, event: &Event) -> Result<Unsealed, LedgerError> {
        let mut head = String::with_capacity(384);
        head.push_str("{\"at\":");
        jcs::write_string(&mut head, &format_rfc3339(at));
        head.push_str(",\"campaign\":");
        jcs::write_string(&mut head, campaign);
        head.push(',');
        write_event(&mut head, event)?;
        Ok(Unsealed {
            campaign: campaign.to_string(),
            kind: event.kind(),
            head,
        })
    }

    /// Seals this as entry `seq` after the entry whose hash is `prev`.
    pub fn seal(self, seq: u64, prev: &Hash) -> Entry {
        let mut payload = self.head;
        payload.push_str(",\"prev\":\"");
        payload.push_str(&hex(prev));
        payload.push_str("\",\"seq\":");
        jcs::write_unsigned(&mut payload, seq);
        payload.push_str(",\"v\":");
        jcs::write_unsigned(&mut payload, u64::from(FORMAT_VERSION));
        payload.push('}');
        Entry {
            seq,
            campaign: self.campaign,
            kind: self.kind.to_string(),
            hash: leaf_hash(payload.as_bytes()),
            payload,
        }
    }
}

/// Appends an event's canonical members (`"data":…,"kind":"…"`, those of
/// `canonical_json(event)` without its braces): written directly for the events
/// that make up most ledgers (trials, runs), through the generic canonicalizer
/// for the rest.
pub(crate) fn write_event(out: &mut String, event: &Event) -> Result<(), LedgerError> {
    let start = out.len();
    if jcs::write_event_members(out, event).is_none() {
        // The direct writer may stop part way: start the members again.
        out.truncate(start);
        let object = canonical_json(event)?;
        out.push_str(
            object
                .strip_prefix('{')
                .and_then(|o| o.strip_suffix('}'))
                .unwrap_or_default(),
        );
    }
    Ok(())
}

/// RFC 8785 canonical JSON of any serializable value.
pub fn canonical_json<T: Serialize>(value: &T) -> Result<String, LedgerError> {
    serde_json_canonicalizer::to_string(value).map_err(|e| LedgerError::Encode(e.to_string()))
}

/// RFC 6962 leaf hash: `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(data);
    hasher.finalize().into()
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_canonical_and_hash_is_a_leaf_hash() {
        let event = Event::TrialReported {
            number: 3,
            step: 1,
            metrics: [("val_accuracy".to_string(), 0.5)].into_iter().collect(),
        };
        let entry = Entry::seal(0, &GENESIS, "c", 0, &event).expect("sealed");
        assert_eq!(
            entry.payload,
            r#"{"at":"1970-01-01T00:00:00.000Z","campaign":"c","data":{"metrics":{"val_accuracy":0.5},"number":3,"step":1},"kind":"trial_reported","prev":"0000000000000000000000000000000000000000000000000000000000000000","seq":0,"v":1}"#
        );
        // RFC 6962: the leaf hash of the empty string.
        assert_eq!(
            hex(&leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }
}

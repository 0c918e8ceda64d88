//! The TOML schema of a campaign spec. Every table rejects unknown keys; defaults
//! live here and nowhere else. `contract.md` is the outside reference for these names.

use std::collections::BTreeMap;

use firebreak_core::{Direction, ParamValue};
use serde::{Deserialize, Serialize};

use crate::Duration;

/// A whole spec file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `[campaign]`: identity and seed.
    pub campaign: CampaignSection,
    /// `[objective]`: what to optimise.
    pub objective: ObjectiveSection,
    /// `[space]`: parameter name to its definition.
    pub space: BTreeMap<String, ParamSpec>,
    /// `[search]`: proposer, scheduler, budget of trials.
    pub search: SearchSection,
    /// `[task]`: what evaluates a configuration.
    pub task: TaskSection,
    /// `[constraints]`: governed limits.
    #[serde(default)]
    pub constraints: Constraints,
    /// `[governance]`: approvers, policy, tripwires.
    #[serde(default)]
    pub governance: Governance,
    /// `[generations]`: the campaign as a sequence of searches, each seeded by
    /// the last promoted champion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generations: Option<crate::GenerationsSpec>,
}

/// `[campaign]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSection {
    /// Unique per database; the CLI addresses campaigns by this name.
    pub name: String,
    /// Seed of every random draw of the campaign.
    #[serde(default)]
    pub seed: u64,
    /// Free text; the only setting that may change on an existing campaign freely.
    #[serde(default)]
    pub description: String,
}

/// `[objective]`: either `metric` + `direction`, or `metrics` + `directions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveSection {
    /// The one metric to optimise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Its direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Several metrics to optimise jointly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<String>>,
    /// One direction per metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directions: Option<Vec<Direction>>,
}

/// A number written as a TOML integer or float.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Number {
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
}

impl Number {
    /// The value as a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

/// The kind of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamKind {
    /// A real number in `[low, high]`.
    Float,
    /// An integer in `[low, high]`.
    Int,
    /// One of `choices`.
    Categorical,
}

/// A value or a list of values (for `when`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value.
    One(ParamValue),
    /// Several values.
    Many(Vec<ParamValue>),
}

/// One entry of `[space]`, e.g. `lr = { type = "float", low = 1e-4, high = 0.1, log = true }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// `float`, `int` or `categorical`.
    #[serde(rename = "type")]
    pub kind: ParamKind,
    /// Lower bound (float, int).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<Number>,
    /// Upper bound (float, int).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<Number>,
    /// Sample on a log scale (float, int).
    #[serde(default)]
    pub log: bool,
    /// Grid step (float, int).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Number>,
    /// The choices (categorical): strings, integers, floats or booleans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<ParamValue>>,
    /// Active only when each named parameter has one of the given values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<BTreeMap<String, OneOrMany>>,
}

/// `[search]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSection {
    /// The proposer: `tpe` (default), `random`, `grid`, `evolution` or `nsga2` in this build.
    #[serde(default = "default_sampler")]
    pub sampler: String,
    /// The scheduler: `none` or `median` in this build.
    #[serde(default = "default_scheduler")]
    pub scheduler: String,
    /// Total finished trials of any state over all runs; governed.
    pub n_trials: u64,
    /// Let the proposer ask for changes of the campaign's own limits (wider
    /// bounds, more trials); each ask becomes a change request for people to decide.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ask_changes: bool,
    /// Trials evaluated at once on this machine.
    #[serde(default = "default_parallelism")]
    pub parallelism: u32,
    /// A trial running longer than this is stopped and `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_timeout: Option<Duration>,
    /// Re-run a failed trial up to this many times (new trial, same params, linked).
    #[serde(default)]
    pub retries: u32,
    /// Options of the proposer (documented per proposer).
    #[serde(default)]
    pub sampler_options: BTreeMap<String, toml::Value>,
    /// Options of the scheduler (documented per scheduler).
    #[serde(default)]
    pub scheduler_options: BTreeMap<String, toml::Value>,
}

fn default_sampler() -> String {
    "tpe".to_string()
}

fn default_scheduler() -> String {
    "none".to_string()
}

fn default_parallelism() -> u32 {
    1
}

/// What evaluates a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Any external command speaking the trial protocol.
    Command,
    /// A lookup in a tabular benchmark CSV.
    Table,
    /// The built-in trainer.
    Builtin,
    /// A program a language-model agent edits (`sampler = "agent"`, `mode =
    /// "code"`), run like a command in its sandbox and scored by the engine on
    /// the predictions it writes.
    Code,
}

/// `[task]`: exactly one kind, with that kind's keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSection {
    /// `command`, `table` or `builtin`.
    pub kind: TaskKind,
    /// (command) Program and arguments; `{name}` expands to a parameter's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// (command) Working directory, relative to the spec file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// (command) Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// (table) The CSV file, relative to the spec file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// (builtin) The data set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// (builtin) The model family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// (builtin) Epochs of a full-length trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_epochs: Option<u32>,
    /// (builtin) Retrain the champion's configuration on the training and
    /// validation splits together before its test evaluation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refit: bool,
    /// (builtin) The seed the stratified train / validation / test partition is
    /// drawn from (absent: the dataset's bundled partition). Choose it before a
    /// run that makes a claim (`docs/evaluation.md`); like every `[task]` key, a
    /// change on an existing campaign is a governed `evaluation` change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_seed: Option<u64>,
    /// (code) The parent program's folder, relative to the spec file's folder;
    /// each candidate runs in a copy of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// (code) The files of `workspace` the agent may replace, as paths relative
    /// to it; a candidate touching any other file is refused before it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub editable: Vec<String>,
    /// (command, code) `[task.sandbox]`: the operating-system sandbox of the
    /// trial's process; absent: none for a command task, the defaults for a
    /// code task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<crate::SandboxSpec>,
}

/// `[constraints]`: the campaign's governed limits. Absent means unlimited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    /// `n_trials` must not exceed this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_trials: Option<u64>,
    /// Wall time summed over every run of the campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wall_time: Option<Duration>,
    /// Trials' CPU time, children included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpu_time: Option<Duration>,
    /// Estimated energy of all trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_energy_kwh: Option<f64>,
    /// Tokens (prompt and completion) the campaign's language-model agents may
    /// use over every run; a hard stop, like the CPU time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_llm_tokens: Option<u64>,
    /// Watts per busy core, for the energy estimate.
    #[serde(default = "default_watts_per_core")]
    pub watts_per_core: f64,
}

impl Default for Constraints {
    fn default() -> Self {
        Constraints {
            max_trials: None,
            max_wall_time: None,
            max_cpu_time: None,
            max_energy_kwh: None,
            max_llm_tokens: None,
            watts_per_core: default_watts_per_core(),
        }
    }
}

fn default_watts_per_core() -> f64 {
    15.0
}

/// `[governance]`: parsed and checked now; acted on by the governance layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Governance {
    /// Approvals needed for a request; defaults to 1 when approvers are listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    /// Who may approve changes.
    #[serde(default)]
    pub approvers: Vec<Approver>,
    /// A Cedar policy file; the shipped default otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The Cedar policy's text: written inline, or loaded by the engine from
    /// `policy` when the campaign is created or resumed, so that an edit of the file
    /// is a governed change like any other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_text: Option<String>,
    /// How long a change request stays open.
    #[serde(default = "default_request_ttl")]
    pub request_ttl: Duration,
    /// Rules on observed results that raise a firebreak.
    #[serde(default)]
    pub tripwires: Vec<Tripwire>,
}

impl Default for Governance {
    fn default() -> Self {
        Governance {
            quorum: None,
            approvers: Vec::new(),
            policy: None,
            policy_text: None,
            request_ttl: default_request_ttl(),
            tripwires: Vec::new(),
        }
    }
}

fn default_request_ttl() -> Duration {
    Duration(7 * 86_400)
}

/// One approver: a name, an Ed25519 public key, a role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approver {
    /// The person's name.
    pub name: String,
    /// `ed25519:` followed by the standard base64 of the 32-byte public key.
    pub key: String,
    /// `approver` (default), `researcher`, `auditor` or `admin`.
    #[serde(default = "default_role")]
    pub role: String,
    /// The operating-system user this person runs firebreak as, when it is
    /// known: a request filed as `local:<os_user>` is theirs, so they may not
    /// decide it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_user: Option<String>,
}

fn default_role() -> String {
    "approver".to_string()
}

/// The kinds of tripwire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TripwireKind {
    /// A metric crosses `above` or `below`.
    Threshold,
    /// Improvement per generation faster than `max_delta`.
    Rate,
    /// A re-evaluation disagrees with a reported metric by more than `tolerance`.
    Reeval,
    /// Compute spent faster than `max_cores`.
    ComputeRate,
}

/// What a `rate` tripwire measures its improvement over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RatePer {
    /// A promoted generation's champion over the previous one.
    Generation,
}

/// `[[governance.tripwires]]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tripwire {
    /// Which rule.
    pub kind: TripwireKind,
    /// The metric watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// (threshold) Trips when the metric exceeds this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// (threshold) Trips when the metric falls below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// (rate) Largest allowed improvement of the best value over the last
    /// `window` finished trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delta: Option<f64>,
    /// (rate) How many finished trials the improvement is measured over (10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
    /// (rate) `generation`: the improvement measured is a generation's
    /// champion over the last promoted one, at the promotion (needs
    /// `[generations]`); absent: over `window` finished trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<RatePer>,
    /// (reeval) Largest allowed disagreement between report and re-evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// (compute_rate) Largest allowed average number of busy cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cores: Option<f64>,
}

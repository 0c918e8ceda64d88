//! Trials: the frozen record of one evaluated configuration, and its states.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::space::Params;
use crate::time::Timestamp;

/// Metric name to value.
pub type Metrics = BTreeMap<String, f64>;

/// The life of a trial: `queued → running → complete | pruned | failed`; a running
/// trial whose process died may go back to `queued`, keeping its number and params.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    /// Waiting for a worker.
    Queued,
    /// Claimed by a worker and being evaluated.
    Running,
    /// Stopped early by a scheduler.
    Pruned,
    /// Finished with a result.
    Complete,
    /// Finished without a usable result; see its error.
    Failed,
}

impl TrialState {
    /// True for the three final states; finished trials are immutable.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TrialState::Pruned | TrialState::Complete | TrialState::Failed
        )
    }

    /// The lower-case name used in JSON, SQL and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Queued => "queued",
            TrialState::Running => "running",
            TrialState::Pruned => "pruned",
            TrialState::Complete => "complete",
            TrialState::Failed => "failed",
        }
    }
}

impl fmt::Display for TrialState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TrialState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => TrialState::Queued,
            "running" => TrialState::Running,
            "pruned" => TrialState::Pruned,
            "complete" => TrialState::Complete,
            "failed" => TrialState::Failed,
            other => return Err(format!("unknown trial state `{other}`")),
        })
    }
}

/// An intermediate report: the metrics a trial printed at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The step (epoch, iteration) the trial reported.
    pub step: u64,
    /// The metrics at that step.
    pub metrics: Metrics,
}

/// The frozen record of one trial, as stored and as shown by `trials`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// 0-based per campaign, stable across resumes and re-queues.
    pub number: u64,
    /// Current state.
    pub state: TrialState,
    /// Active parameters.
    pub params: Params,
    /// Final metrics; empty if none.
    pub metrics: Metrics,
    /// Intermediate reports in step order.
    pub intermediate: Vec<Report>,
    /// Why the trial failed (or was pruned), if it did.
    pub error: Option<String>,
    /// The proposer that suggested it (`random`, `grid`, `enqueued`, `retry`, …).
    pub proposer: String,
    /// Why it was proposed, in the proposer's words: for people only, never
    /// parsed back.
    pub rationale: String,
    /// Structured, versioned state the proposer attached to its proposal, which it
    /// reads back from the history on later asks (CMA-ES:
    /// `{"v":1,"cmaes":{"generation":3,"restart":0,"popsize":6}}`; Sobol':
    /// `{"v":1,"sobol":{"point":5,"seed":"…"}}`). Recorded in the trial's
    /// `trial_proposed` ledger entry; `None` for proposers that keep no state and
    /// for queued, retried and PBT trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposer_state: Option<serde_json::Value>,
    /// The trial this one re-runs, when it is a retry.
    pub retry_of: Option<u64>,
    /// When a worker last started it.
    pub started_at: Option<Timestamp>,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// CPU seconds of the trial's process tree.
    pub cpu_seconds: Option<f64>,
    /// Wall-clock seconds.
    pub wall_seconds: Option<f64>,
    /// The generation (1-based) that started it, in a campaign with
    /// `[generations]`; `None` elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u32>,
}

impl Trial {
    /// A queued trial with nothing measured yet.
    pub fn queued(number: u64, params: Params, proposer: &str, rationale: &str) -> Self {
        Trial {
            number,
            state: TrialState::Queued,
            params,
            metrics: Metrics::new(),
            intermediate: Vec::new(),
            error: None,
            proposer: proposer.to_string(),
            rationale: rationale.to_string(),
            proposer_state: None,
            retry_of: None,
            started_at: None,
            finished_at: None,
            cpu_seconds: None,
            wall_seconds: None,
            generation: None,
        }
    }

    /// The best value of `metric` over the intermediate reports, in `direction`.
    pub fn best_intermediate(&self, metric: &str, direction: crate::Direction) -> Option<f64> {
        self.intermediate
            .iter()
            .filter_map(|r| r.metrics.get(metric).copied())
            .filter(|v| v.is_finite())
            .reduce(|a, b| if direction.better(b, a) { b } else { a })
    }
}

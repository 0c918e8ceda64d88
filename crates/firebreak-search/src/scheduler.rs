//! The scheduler contract: one decision per intermediate report.

use firebreak_core::Trial;

use crate::proposer::History;

/// Whether a running trial continues.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Let it run.
    Continue,
    /// Stop it now; it becomes `pruned` with this reason.
    Stop {
        /// Why, in words recorded with the trial.
        reason: String,
    },
    /// Stop it now (`pruned`, with this reason) and replace it by a new trial with
    /// `params` that starts from trial `from`'s checkpoint (PBT's exploit and
    /// explore). Without checkpoints the new trial starts afresh.
    Exploit {
        /// The better trial whose checkpoint is copied.
        from: u64,
        /// The new trial's parameters (explored from `from`'s).
        params: firebreak_core::Params,
        /// Why, in words recorded with both trials.
        reason: String,
    },
}

/// Decides from intermediate results which running trials continue. Like Optuna's
/// pruner it has one method; it is called after each report of `trial`, whose
/// `intermediate` already holds that report.
pub trait Scheduler: Send + Sync + std::fmt::Debug {
    /// The name used in specs.
    fn name(&self) -> &'static str;
    /// Continue or stop `trial`, which just reported `step`.
    fn decide(&self, trial: &Trial, step: u64, history: &History<'_>) -> Decision;

    /// A trial stopped earlier that now deserves to go on from its checkpoint
    /// (ASHA's promotion of a paused trial), asked whenever a worker is free and
    /// before any new trial starts. Only for tasks that save checkpoints.
    /// Default: none.
    fn promote(&self, _history: &History<'_>) -> Option<u64> {
        None
    }
}

/// Never stops a trial.
#[derive(Debug, Default, Clone)]
pub struct NoScheduler;

impl Scheduler for NoScheduler {
    fn name(&self) -> &'static str {
        "none"
    }

    fn decide(&self, _trial: &Trial, _step: u64, _history: &History<'_>) -> Decision {
        Decision::Continue
    }
}

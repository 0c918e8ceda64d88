//! The summary at the end of a run: the champion (with generations, the last
//! promoted one; several objectives, the Pareto set) with its test results, the
//! compute spent and its energy estimate, the ledger's size and head, and
//! whether every finished trial failed (and why, most often).

use std::collections::BTreeMap;

use firebreak_core::{Trial, TrialState};
use firebreak_ledger::hex;
use firebreak_spec::CampaignSpec;
use firebreak_store::Store;
use serde::Serialize;

use crate::{App, AppError};

/// A champion of a campaign, its test results joined to its metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Champion {
    /// The trial.
    pub trial: Trial,
    /// Its final metrics, then its test-split results, in that order.
    pub metrics: Vec<(String, f64)>,
}

/// What a campaign amounts to after a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The champion, or the Pareto set (empty without a complete trial).
    pub champions: Vec<Champion>,
    /// CPU seconds of every trial.
    pub cpu_seconds: f64,
    /// CPU seconds spent refitting the champion for its test evaluation.
    pub refit_cpu_seconds: f64,
    /// The energy estimate of both, in kWh.
    pub energy_kwh: f64,
    /// The watts per core the estimate assumes.
    pub watts_per_core: f64,
    /// Entries in the ledger.
    pub ledger_entries: usize,
    /// The newest entry's hash (hex; empty for an empty ledger).
    pub head: String,
    /// When every finished trial failed: what to tell the person.
    pub all_failed: Option<String>,
}

impl<S: Store> App<S> {
    /// The summary of the campaign whose spec in effect is `spec`.
    pub async fn run_summary(&self, spec: &CampaignSpec) -> Result<RunSummary, AppError> {
        let name = spec.name();
        let trials = self.store.trials(name).await?;
        let ledger = self.store.ledger().await?;
        let head = ledger.last().map(|e| hex(&e.hash)).unwrap_or_default();
        let tests = self.store.tests(name).await?;
        // With generations, the champion is the last promoted one.
        let generations = match spec.spec.generations.is_some() {
            true => {
                let requests = self.store.requests(Some(name)).await?;
                crate::lineage::generations(&ledger, name, &requests, &trials)
            }
            false => Vec::new(),
        };
        let promoted = generations
            .iter()
            .rev()
            .find(|g| g["promoted"] == true)
            .and_then(|g| g["champion"].as_u64())
            .and_then(|n| trials.iter().find(|t| t.number == n));
        let champions = match promoted {
            Some(trial) => vec![trial],
            None => spec.objectives.best(&trials),
        };
        let champions = champions
            .into_iter()
            .map(|champion| Champion {
                metrics: champion
                    .metrics
                    .iter()
                    .chain(tests.get(&champion.number).into_iter().flatten())
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
                trial: champion.clone(),
            })
            .collect();
        // `+ 0.0` turns the empty sum's -0.0 into 0.0.
        let cpu_seconds: f64 = trials.iter().filter_map(|t| t.cpu_seconds).sum::<f64>() + 0.0;
        let refit_cpu_seconds: f64 = tests
            .values()
            .filter_map(|t| t.get("refit_cpu_seconds"))
            .sum();
        let watts_per_core = spec.spec.constraints.watts_per_core;
        Ok(RunSummary {
            champions,
            cpu_seconds,
            refit_cpu_seconds,
            energy_kwh: (cpu_seconds + refit_cpu_seconds) * watts_per_core / 3.6e6,
            watts_per_core,
            ledger_entries: ledger.len(),
            head,
            all_failed: all_failed(&trials),
        })
    }
}

/// When every finished trial of the campaign failed: what to tell the person,
/// with the most common failure reason (such a run exits 1, whatever stopped it).
pub fn all_failed(trials: &[Trial]) -> Option<String> {
    let finished: Vec<&Trial> = trials.iter().filter(|t| t.state.is_finished()).collect();
    if finished.is_empty() || finished.iter().any(|t| t.state != TrialState::Failed) {
        return None;
    }
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &finished {
        *reasons
            .entry(t.error.as_deref().unwrap_or("no reason recorded"))
            .or_default() += 1;
    }
    let (reason, count) = reasons.into_iter().max_by_key(|(_, n)| *n)?;
    Some(format!(
        "error: every trial failed ({} of {}); the most common reason ({count} of them): {reason}\nhint: `firebreak logs CAMPAIGN NUMBER` shows a trial's log; run the task's command by hand to see it fail",
        finished.len(),
        finished.len()
    ))
}

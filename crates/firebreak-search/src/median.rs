//! Median stopping: stop a trial whose best result so far is worse than the median
//! of complete trials' results at the same step.

use firebreak_core::{Direction, Trial, TrialState};

use crate::SearchError;
use crate::proposer::History;
use crate::scheduler::{Decision, Scheduler};

/// The median stopping rule (Golovin et al. 2017, as in Optuna's `MedianPruner`).
#[derive(Debug, Clone)]
pub struct MedianScheduler {
    metric: String,
    direction: Direction,
    /// No trial is stopped before this step.
    pub min_steps: u64,
    /// No trial is stopped until this many complete trials reported the step.
    pub min_trials: usize,
}

impl MedianScheduler {
    /// A median rule on the single objective `metric`.
    pub fn new(
        metrics: &[String],
        directions: &[Direction],
        min_steps: u64,
        min_trials: usize,
    ) -> Result<Self, SearchError> {
        match (metrics, directions) {
            ([metric], [direction]) => Ok(MedianScheduler {
                metric: metric.clone(),
                direction: *direction,
                min_steps,
                min_trials,
            }),
            _ => Err(SearchError::Unsupported(
                "the median scheduler needs exactly one objective".into(),
            )),
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

impl Scheduler for MedianScheduler {
    fn name(&self) -> &'static str {
        "median"
    }

    fn decide(&self, trial: &Trial, step: u64, history: &History<'_>) -> Decision {
        if step < self.min_steps {
            return Decision::Continue;
        }
        let Some(best) = trial.best_intermediate(&self.metric, self.direction) else {
            return Decision::Continue;
        };
        let mut others: Vec<f64> = history
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && t.number != trial.number)
            .filter_map(|t| {
                t.intermediate
                    .iter()
                    .find(|r| r.step == step)
                    .and_then(|r| r.metrics.get(&self.metric).copied())
            })
            .filter(|v| v.is_finite())
            .collect();
        if others.is_empty() || others.len() < self.min_trials {
            return Decision::Continue;
        }
        let n = others.len();
        let middle = median(&mut others);
        if self.direction.better(middle, best) {
            Decision::Stop {
                reason: format!(
                    "median stopping at step {step}: best {} so far {best} is worse than the median {middle} of {n} complete trials",
                    self.metric
                ),
            }
        } else {
            Decision::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_core::{Objectives, Params, Report};

    fn trial(number: u64, state: TrialState, values: &[f64]) -> Trial {
        let mut t = Trial::queued(number, Params::new(), "test", "");
        t.state = state;
        t.intermediate = values
            .iter()
            .enumerate()
            .map(|(i, v)| Report {
                step: i as u64,
                metrics: [("acc".to_string(), *v)].into_iter().collect(),
            })
            .collect();
        t
    }

    fn check(min_trials: usize, current: &[f64], expect_stop: bool) {
        let objectives = Objectives::single("acc", Direction::Maximize);
        let scheduler =
            MedianScheduler::new(&objectives.metrics, &objectives.directions, 1, min_trials)
                .expect("single objective");
        let history = vec![
            trial(0, TrialState::Complete, &[0.5, 0.6, 0.7]),
            trial(1, TrialState::Complete, &[0.5, 0.7, 0.8]),
            trial(2, TrialState::Complete, &[0.5, 0.8, 0.9]),
            trial(3, TrialState::Pruned, &[0.1, 0.1]),
        ];
        let view = History {
            trials: &history,
            objectives: &objectives,
        };
        let me = trial(9, TrialState::Running, current);
        let step = current.len() as u64 - 1;
        let stopped = matches!(scheduler.decide(&me, step, &view), Decision::Stop { .. });
        assert_eq!(stopped, expect_stop, "{current:?}");
    }

    #[test]
    fn stops_below_the_median_of_complete_trials() {
        check(3, &[0.5, 0.65], true); // median at step 1 is 0.7
        check(3, &[0.5, 0.75], false);
        check(3, &[0.5], false); // before min_steps
        check(4, &[0.5, 0.1], false); // only 3 complete trials reported step 1
    }
}

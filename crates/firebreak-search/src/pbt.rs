//! Population-based training (Jaderberg et al. 2017) as a scheduler: every
//! `interval` steps a trial in the bottom `quantile` of the population (the
//! running trials, each by its latest reported value) is stopped and replaced by a copy of a trial
//! drawn from the top `quantile` — its checkpoint and parameters (exploit) —
//! with the parameters perturbed or resampled (explore). The runner carries the
//! copy out and records it with both trial numbers.

use firebreak_core::{
    Direction, Distribution, Objectives, ParamValue, Params, Rng, SearchSpace, Trial, TrialState,
    derive_seed,
};

use crate::asha::{best_first, single};
use crate::proposer::History;
use crate::scheduler::{Decision, Scheduler};
use crate::{SearchError, sample_uniform};

/// PBT's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PbtOptions {
    /// Steps between exploit decisions.
    pub interval: u64,
    /// The fraction of the population that is "bottom" and "top".
    pub quantile: f64,
    /// Chance that explore resamples a parameter instead of perturbing it.
    pub resample_probability: f64,
    /// Perturbation: a numeric value is multiplied by `1 ± perturbation`.
    pub perturbation: f64,
    /// No exploit at or after this step (the end of training), when set.
    pub last_step: Option<u64>,
}

impl Default for PbtOptions {
    fn default() -> Self {
        PbtOptions {
            interval: 4,
            quantile: 0.25,
            resample_probability: 0.25,
            perturbation: 0.2,
            last_step: None,
        }
    }
}

/// Population-based training.
#[derive(Debug, Clone)]
pub struct PbtScheduler {
    options: PbtOptions,
    metric: String,
    direction: Direction,
    space: SearchSpace,
}

impl PbtScheduler {
    /// PBT on the single objective over `space`.
    pub fn new(
        objectives: &Objectives,
        space: &SearchSpace,
        options: PbtOptions,
    ) -> Result<Self, SearchError> {
        let objective = single(objectives, "pbt")?;
        if options.interval == 0 || !(0.0 < options.quantile && options.quantile <= 0.5) {
            return Err(SearchError::BadOption {
                key: "interval / quantile".into(),
                message: "interval must be at least 1 and quantile in (0, 0.5]".into(),
            });
        }
        Ok(PbtScheduler {
            options,
            metric: objective.metric,
            direction: objective.direction,
            space: space.clone(),
        })
    }

    /// Explore: perturb numeric parameters by `1 ± perturbation` (kept inside
    /// their bounds) or resample them; resample categorical ones that no other
    /// parameter depends on. A result outside the space keeps `params`.
    fn explore(&self, params: &Params, rng: &mut Rng) -> (Params, Vec<String>) {
        let mut out = params.clone();
        let mut changes = Vec::new();
        for parameter in self.space.parameters() {
            let Some(value) = params.get(&parameter.name) else {
                continue;
            };
            let parent = self.space.parameters().iter().any(|p| {
                p.condition
                    .as_ref()
                    .is_some_and(|c| c.when.contains_key(&parameter.name))
            });
            let resample = rng.next_f64() < self.options.resample_probability;
            let factor = if rng.next_f64() < 0.5 {
                1.0 - self.options.perturbation
            } else {
                1.0 + self.options.perturbation
            };
            let new = match (&parameter.distribution, value) {
                (_, _) if resample && !parent => sample_uniform(&parameter.distribution, rng),
                (Distribution::Float { low, high, .. }, v) => {
                    let x = v.as_f64().unwrap_or(*low) * factor;
                    ParamValue::Float(x.clamp(*low, *high))
                }
                (Distribution::Int { low, high, .. }, v) => {
                    let x = v.as_f64().unwrap_or(*low as f64);
                    let mut n = (x * factor).round() as i64;
                    if n as f64 == x {
                        n += if factor > 1.0 { 1 } else { -1 };
                    }
                    ParamValue::Int(n.clamp(*low, *high))
                }
                (Distribution::Categorical { .. }, v) => v.clone(),
            };
            if !new.matches(value) {
                changes.push(format!(
                    "{} {} -> {}",
                    parameter.name,
                    value.to_plain_string(),
                    new.to_plain_string()
                ));
            }
            out.insert(parameter.name.clone(), new);
        }
        if self.space.validate(&out).is_err() {
            return (params.clone(), vec!["(explore kept the parameters)".into()]);
        }
        (out, changes)
    }
}

impl Scheduler for PbtScheduler {
    fn name(&self) -> &'static str {
        "pbt"
    }

    fn decide(&self, trial: &Trial, step: u64, history: &History<'_>) -> Decision {
        if !step.is_multiple_of(self.options.interval)
            || self.options.last_step.is_some_and(|last| step >= last)
        {
            return Decision::Continue;
        }
        let latest = |t: &Trial| {
            t.intermediate
                .iter()
                .rev()
                .find_map(|r| r.metrics.get(&self.metric).copied())
                .filter(|v| v.is_finite())
        };
        let mut population: Vec<(u64, f64)> = history
            .trials
            .iter()
            // The live population: trials still training.
            .filter(|t| t.state == TrialState::Running)
            .filter_map(|t| Some((t.number, latest(t)?)))
            .collect();
        let n = population.len();
        let k = (n as f64 * self.options.quantile).floor() as usize;
        if k == 0 {
            return Decision::Continue;
        }
        population.sort_by(|a, b| best_first(self.direction, (a.0, a.1), (b.0, b.1)));
        let Some(rank) = population
            .iter()
            .position(|(number, _)| *number == trial.number)
        else {
            return Decision::Continue;
        };
        if rank < n - k {
            return Decision::Continue;
        }
        let mine = population[rank].1;
        let mut rng = Rng::new(derive_seed(trial.number, &[step, 0x0070_6274]));
        let (from, theirs) = population[rng.below(k as u64) as usize];
        let Some(donor) = history.trials.iter().find(|t| t.number == from) else {
            return Decision::Continue;
        };
        let (params, changes) = self.explore(&donor.params, &mut rng);
        Decision::Exploit {
            from,
            params,
            reason: format!(
                "pbt: at step {step} {} = {mine} ranks {} of {n} (bottom {k}); exploit trial {from} ({theirs}), explore: {}",
                self.metric,
                rank + 1,
                if changes.is_empty() {
                    "no change".to_string()
                } else {
                    changes.join(", ")
                }
            ),
        }
    }
}

//! Asynchronous successive halving (ASHA, Li et al. 2020) and Hyperband (Li et al.
//! 2018) as stop-or-continue schedulers.
//!
//! Rungs sit at `min_resource · η^k` steps below `max_resource`. When a trial first
//! reports a step at or past a rung, it is compared with every result that rung has
//! seen so far (its own included, `n` in all): it continues — is promoted — only if
//! it ranks in the top `⌊n/η⌋` and the rung has promoted fewer than `⌊n/η⌋` trials;
//! otherwise it stops and becomes `pruned`. Decisions are recomputed from the
//! history, so they survive restarts and need no hidden state.
//!
//! Hyperband runs several ASHA brackets with different starting resources; trial
//! `n` joins bracket `s` in proportion to the bracket's size `n_s`.

use firebreak_core::{Direction, Objectives, Trial, TrialState};

use crate::SearchError;
use crate::proposer::History;
use crate::scheduler::{Decision, Scheduler};

/// Successive-halving settings shared by ASHA and each Hyperband bracket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Halving {
    /// η: one in η trials of a rung continues.
    pub reduction_factor: u64,
    /// The first rung's step.
    pub min_resource: u64,
    /// Steps of a full-length trial; no rung at or beyond it.
    pub max_resource: u64,
}

impl Halving {
    /// Checks the settings.
    pub fn new(
        reduction_factor: u64,
        min_resource: u64,
        max_resource: u64,
    ) -> Result<Self, SearchError> {
        if reduction_factor < 2 || min_resource == 0 || max_resource < min_resource {
            return Err(SearchError::BadOption {
                key: "reduction_factor".into(),
                message: format!(
                    "needs reduction_factor >= 2 and 1 <= min_resource <= max_resource, got {reduction_factor}, {min_resource}, {max_resource}"
                ),
            });
        }
        Ok(Halving {
            reduction_factor,
            min_resource,
            max_resource,
        })
    }

    /// The rung steps: `min_resource · η^k` below `max_resource`.
    pub fn rungs(&self) -> Vec<u64> {
        let mut rungs = Vec::new();
        let mut r = self.min_resource;
        while r < self.max_resource {
            rungs.push(r);
            r = r.saturating_mul(self.reduction_factor);
        }
        rungs
    }
}

/// The value a trial recorded at rung `step`: its first report at or past it.
fn rung_value(trial: &Trial, step: u64, metric: &str) -> Option<(u64, f64)> {
    trial
        .intermediate
        .iter()
        .find(|r| r.step >= step)
        .and_then(|r| r.metrics.get(metric).map(|v| (r.step, *v)))
        .filter(|(_, v)| v.is_finite())
}

/// Orders (trial number, value) pairs best first, ties by number.
pub(crate) fn best_first(direction: Direction, a: (u64, f64), b: (u64, f64)) -> std::cmp::Ordering {
    let order = a.1.total_cmp(&b.1);
    let order = if direction == Direction::Maximize {
        order.reverse()
    } else {
        order
    };
    order.then(a.0.cmp(&b.0))
}

/// The single objective a scheduler ranks by.
#[derive(Debug, Clone)]
pub(crate) struct Objective {
    pub(crate) metric: String,
    pub(crate) direction: Direction,
}

/// One successive-halving decision for `trial`, which just reported `step`, among
/// the trials `peers` accepts.
fn halving_decision(
    name: &str,
    halving: &Halving,
    objective: &Objective,
    trial: &Trial,
    step: u64,
    history: &History<'_>,
    peers: &dyn Fn(&Trial) -> bool,
) -> Decision {
    let (metric, direction) = (objective.metric.as_str(), objective.direction);
    let rungs = halving.rungs();
    // The rung this report decides: the highest rung it reaches first.
    let Some((index, &rung)) = rungs.iter().enumerate().rev().find(|(_, r)| step >= **r) else {
        return Decision::Continue;
    };
    match rung_value(trial, rung, metric) {
        Some((first, _)) if first == step => {}
        _ => return Decision::Continue, // decided at an earlier report, or no value
    }
    let next = rungs
        .get(index + 1)
        .copied()
        .unwrap_or(halving.max_resource);
    let mut results: Vec<(u64, f64)> = Vec::new();
    let mut promoted = 0usize;
    for other in history
        .trials
        .iter()
        .filter(|t| t.number != trial.number && peers(t))
    {
        if let Some((_, v)) = rung_value(other, rung, metric) {
            results.push((other.number, v));
            // Promoted past this rung: it reported a step beyond the rung, or it is
            // still running after its report here (promoted, its next report not
            // in yet).
            if other.state == TrialState::Running
                || other
                    .intermediate
                    .iter()
                    .any(|r| r.step > rung && r.step <= next.max(rung + 1))
            {
                promoted += 1;
            }
        }
    }
    let Some((_, mine)) = rung_value(trial, rung, metric) else {
        return Decision::Continue;
    };
    results.push((trial.number, mine));
    let n = results.len();
    let quota = n / halving.reduction_factor as usize;
    results.sort_by(|a, b| best_first(direction, (a.0, a.1), (b.0, b.1)));
    let rank = results
        .iter()
        .position(|(number, _)| *number == trial.number)
        .unwrap_or(n);
    if rank < quota && promoted < quota {
        Decision::Continue
    } else {
        Decision::Stop {
            reason: format!(
                "{name}: at rung {index} (step {rung}) {metric} {mine} ranks {} of {n}; {promoted} of at most {quota} promoted",
                rank + 1
            ),
        }
    }
}

/// ASHA's promotion (Li et al. 2020, `get_job`): from the highest rung down, the
/// best paused trial — stopped at that rung, not promoted — that is in the top
/// ⌊n/η⌋ of the rung's results, while the rung has promoted fewer than ⌊n/η⌋.
fn promotable(
    halving: &Halving,
    objective: &Objective,
    history: &History<'_>,
    peers: &dyn Fn(&Trial) -> bool,
) -> Option<u64> {
    let (metric, direction) = (objective.metric.as_str(), objective.direction);
    let rungs = halving.rungs();
    for (index, &rung) in rungs.iter().enumerate().rev() {
        let next = rungs
            .get(index + 1)
            .copied()
            .unwrap_or(halving.max_resource);
        let mut results: Vec<(u64, f64, bool)> = Vec::new();
        let mut promoted = 0usize;
        for t in history.trials.iter().filter(|t| peers(t)) {
            let Some((_, v)) = rung_value(t, rung, metric) else {
                continue;
            };
            let beyond = t
                .intermediate
                .iter()
                .any(|r| r.step > rung && r.step <= next.max(rung + 1));
            if t.state == TrialState::Running || beyond {
                promoted += 1;
            }
            let paused = t.state == TrialState::Pruned
                && !beyond
                && t.intermediate.last().is_some_and(|r| r.step == rung);
            results.push((t.number, v, paused));
        }
        let quota = results.len() / halving.reduction_factor as usize;
        if promoted >= quota {
            continue;
        }
        results.sort_by(|a, b| best_first(direction, (a.0, a.1), (b.0, b.1)));
        if let Some((number, _, _)) = results[..quota].iter().find(|r| r.2) {
            return Some(*number);
        }
    }
    None
}

pub(crate) fn single(objectives: &Objectives, name: &str) -> Result<Objective, SearchError> {
    match (
        objectives.metrics.as_slice(),
        objectives.directions.as_slice(),
    ) {
        ([metric], [direction]) => Ok(Objective {
            metric: metric.clone(),
            direction: *direction,
        }),
        _ => Err(SearchError::Unsupported(format!(
            "{name} needs exactly one objective"
        ))),
    }
}

/// Asynchronous successive halving.
#[derive(Debug, Clone)]
pub struct AshaScheduler {
    halving: Halving,
    objective: Objective,
    pause: bool,
    synchronous: bool,
}

impl AshaScheduler {
    /// ASHA on the single objective.
    pub fn new(objectives: &Objectives, halving: Halving) -> Result<Self, SearchError> {
        Ok(AshaScheduler {
            halving,
            objective: single(objectives, "asha")?,
            pause: false,
            synchronous: false,
        })
    }

    /// Synchronous successive halving instead of ASHA: trials are taken in
    /// brackets of `η^(number of rungs)` by number; every trial pauses at each rung
    /// until all of its bracket that should reach the rung have, then the top
    /// ⌊n/η⌋ of them are promoted. Implies pausing (needs checkpoints); a last,
    /// incomplete bracket never fills its rungs, so choose `n_trials` as a
    /// multiple of the bracket size.
    pub fn synchronous(mut self, synchronous: bool) -> Self {
        self.synchronous = synchronous;
        self.pause |= synchronous;
        self
    }

    /// Trials per synchronous bracket: `η^(number of rungs)`.
    pub fn bracket_size(&self) -> u64 {
        let rungs = self.halving.rungs().len() as u32;
        self.halving.reduction_factor.saturating_pow(rungs)
    }

    /// With `pause`, a trial stopped at a rung is paused, not ended: it is
    /// promoted later ([`Scheduler::promote`]) when it ranks in its rung's top
    /// ⌊n/η⌋ (the original ASHA; needs a task that saves checkpoints).
    pub fn pausing(mut self, pause: bool) -> Self {
        self.pause = pause;
        self
    }
}

impl Scheduler for AshaScheduler {
    fn name(&self) -> &'static str {
        "asha"
    }

    fn decide(&self, trial: &Trial, step: u64, history: &History<'_>) -> Decision {
        if self.synchronous {
            return match self.halving.rungs().iter().position(|r| *r == step) {
                Some(index) => Decision::Stop {
                    reason: format!(
                        "successive halving: paused at rung {index} (step {step}) until its bracket of {} has reached it",
                        self.bracket_size()
                    ),
                },
                None => Decision::Continue,
            };
        }
        halving_decision(
            "asha",
            &self.halving,
            &self.objective,
            trial,
            step,
            history,
            &|_| true,
        )
    }

    fn promote(&self, history: &History<'_>) -> Option<u64> {
        if !self.pause {
            return None;
        }
        if self.synchronous {
            return self.promote_synchronously(history);
        }
        promotable(&self.halving, &self.objective, history, &|_| true)
    }
}

impl AshaScheduler {
    /// Synchronous successive halving's promotion: in a bracket whose rung has
    /// been reached by all `size / η^k` trials that should reach it, the best
    /// paused one among its top ⌊n/η⌋.
    fn promote_synchronously(&self, history: &History<'_>) -> Option<u64> {
        let (metric, direction) = (self.objective.metric.as_str(), self.objective.direction);
        let eta = self.halving.reduction_factor;
        let size = self.bracket_size();
        let brackets = history
            .trials
            .iter()
            .map(|t| t.number / size)
            .max()
            .map_or(0, |b| b + 1);
        for bracket in 0..brackets {
            let members: Vec<&Trial> = history
                .trials
                .iter()
                .filter(|t| t.number / size == bracket)
                .collect();
            for (k, &rung) in self.halving.rungs().iter().enumerate().rev() {
                let expected = size / eta.saturating_pow(k as u32);
                let mut at: Vec<(u64, f64, bool)> = members
                    .iter()
                    .filter_map(|t| {
                        let (_, v) = rung_value(t, rung, metric)?;
                        let paused = t.state == TrialState::Pruned
                            && t.intermediate.last().is_some_and(|r| r.step == rung);
                        Some((t.number, v, paused))
                    })
                    .collect();
                if (at.len() as u64) < expected {
                    continue;
                }
                at.sort_by(|a, b| best_first(direction, (a.0, a.1), (b.0, b.1)));
                let quota = at.len() / eta as usize;
                if let Some((number, _, _)) = at[..quota].iter().find(|r| r.2) {
                    return Some(*number);
                }
            }
        }
        None
    }
}

/// One Hyperband bracket: its size and starting resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bracket {
    /// `s`, from the most aggressive (`s_max`) down to 0 (no early stopping).
    pub s: u32,
    /// `n_s = ⌈(s_max + 1) / (s + 1) · η^s⌉` configurations.
    pub n: u64,
    /// `r_s = max_resource · η^(−s)` steps for each at the start.
    pub min_resource: u64,
}

/// Hyperband's brackets for `halving` (Li et al. 2018, Algorithm 1).
pub fn hyperband_brackets(halving: &Halving) -> Vec<Bracket> {
    let eta = halving.reduction_factor;
    let ratio = halving.max_resource / halving.min_resource;
    let mut s_max = 0u32;
    while eta.saturating_pow(s_max + 1) <= ratio {
        s_max += 1;
    }
    (0..=s_max)
        .rev()
        .map(|s| Bracket {
            s,
            n: ((u64::from(s_max) + 1) * eta.pow(s)).div_ceil(u64::from(s) + 1),
            min_resource: (halving.max_resource / eta.pow(s)).max(1),
        })
        .collect()
}

/// Hyperband: ASHA brackets with different starting resources.
#[derive(Debug, Clone)]
pub struct HyperbandScheduler {
    halving: Halving,
    brackets: Vec<Bracket>,
    objective: Objective,
    pause: bool,
}

impl HyperbandScheduler {
    /// Hyperband on the single objective.
    pub fn new(objectives: &Objectives, halving: Halving) -> Result<Self, SearchError> {
        Ok(HyperbandScheduler {
            brackets: hyperband_brackets(&halving),
            halving,
            objective: single(objectives, "hyperband")?,
            pause: false,
        })
    }

    /// Pause and promote as [`AshaScheduler::pausing`] does, per bracket.
    pub fn pausing(mut self, pause: bool) -> Self {
        self.pause = pause;
        self
    }

    /// The bracket of trial `number`: round robin over a cycle in which bracket
    /// `s` has `n_s` places.
    pub fn bracket_of(&self, number: u64) -> Bracket {
        let cycle: u64 = self.brackets.iter().map(|b| b.n).sum();
        let mut place = number % cycle.max(1);
        for bracket in &self.brackets {
            if place < bracket.n {
                return *bracket;
            }
            place -= bracket.n;
        }
        self.brackets[0]
    }
}

impl Scheduler for HyperbandScheduler {
    fn name(&self) -> &'static str {
        "hyperband"
    }

    fn decide(&self, trial: &Trial, step: u64, history: &History<'_>) -> Decision {
        let bracket = self.bracket_of(trial.number);
        let halving = Halving {
            min_resource: bracket.min_resource,
            ..self.halving
        };
        let same = |t: &Trial| self.bracket_of(t.number).s == bracket.s;
        halving_decision(
            "hyperband",
            &halving,
            &self.objective,
            trial,
            step,
            history,
            &same,
        )
    }

    fn promote(&self, history: &History<'_>) -> Option<u64> {
        if !self.pause {
            return None;
        }
        self.brackets.iter().find_map(|bracket| {
            let halving = Halving {
                min_resource: bracket.min_resource,
                ..self.halving
            };
            let same = |t: &Trial| self.bracket_of(t.number).s == bracket.s;
            promotable(&halving, &self.objective, history, &same)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_and_brackets_follow_the_formulas() {
        let h = Halving::new(3, 1, 27).expect("valid");
        assert_eq!(h.rungs(), vec![1, 3, 9]);
        let brackets = hyperband_brackets(&h);
        // s_max = 3: (n, r) = (27, 1), (12, 3), (6, 9), (4, 27).
        let got: Vec<(u32, u64, u64)> = brackets
            .iter()
            .map(|b| (b.s, b.n, b.min_resource))
            .collect();
        assert_eq!(got, vec![(3, 27, 1), (2, 12, 3), (1, 6, 9), (0, 4, 27)]);
        let h = Halving::new(2, 1, 8).expect("valid");
        let got: Vec<(u64, u64)> = hyperband_brackets(&h)
            .iter()
            .map(|b| (b.n, b.min_resource))
            .collect();
        assert_eq!(got, vec![(8, 1), (6, 2), (4, 4), (4, 8)]);
    }
}

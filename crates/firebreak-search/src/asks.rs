//! Proposers asking to change the campaign's own limits: widen a bound the best
//! results sit on, or raise `n_trials` while results still improve. Asking decides
//! nothing: the engine turns each ask into a change request that only a quorum of
//! people can approve (a firebreak).

use firebreak_core::{Distribution, Parameter, SearchSpace, TrialState};

use crate::History;

/// A change of the campaign's limits a proposer asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeAsk {
    /// New bounds for a numeric parameter (`None` keeps that side).
    Bounds {
        /// The parameter.
        parameter: String,
        /// The new lower bound.
        low: Option<f64>,
        /// The new upper bound.
        high: Option<f64>,
        /// Why, in words.
        why: String,
    },
    /// A new `n_trials`.
    Trials {
        /// The new budget.
        n_trials: u64,
        /// Why, in words.
        why: String,
    },
    /// A new value of the spec setting at `path` (RFC 6901), as a language-model
    /// agent asks for one (a new editable file, a longer timeout, more tokens).
    Setting {
        /// Where, in the canonical spec.
        path: String,
        /// The value asked for.
        value: serde_json::Value,
        /// Why, in words.
        why: String,
    },
}

/// The asks a model-based proposer makes from the history: for each numeric
/// parameter, when at least 3 of the 5 best complete trials lie within 2% of the
/// range from a bound, widen that side by the width of the range (a factor of 10
/// on a log scale); when the best value was found in the last quarter of the
/// trials and 90% of `n_trials` have finished, double `n_trials`. Needs at least
/// 10 complete trials.
pub fn suggest_changes(
    space: &SearchSpace,
    history: &History<'_>,
    n_trials: u64,
) -> Vec<ChangeAsk> {
    let Some(direction) = history.objectives.directions.first().copied() else {
        return Vec::new();
    };
    let metric = &history.objectives.metrics[0];
    let mut complete: Vec<(u64, f64, &firebreak_core::Params)> = history
        .trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| Some((t.number, *t.metrics.get(metric)?, &t.params)))
        .collect();
    if complete.len() < 10 || history.objectives.metrics.len() != 1 {
        return Vec::new();
    }
    let finished = history
        .trials
        .iter()
        .filter(|t| t.state.is_finished())
        .count() as u64;
    let best_number = complete
        .iter()
        .copied()
        .reduce(|a, b| if direction.better(b.1, a.1) { b } else { a })
        .map_or(0, |b| b.0);
    complete.sort_by(|a, b| {
        if direction.better(a.1, b.1) {
            std::cmp::Ordering::Less
        } else if direction.better(b.1, a.1) {
            std::cmp::Ordering::Greater
        } else {
            a.0.cmp(&b.0)
        }
    });
    let top = &complete[..5];
    let mut asks: Vec<ChangeAsk> = space
        .parameters()
        .iter()
        .filter_map(|p| {
            widen(
                p,
                top.iter()
                    .filter_map(|(_, _, params)| params.get(&p.name)?.as_f64()),
            )
        })
        .collect();
    if finished * 10 >= n_trials * 9 && best_number * 4 >= finished * 3 {
        asks.push(ChangeAsk::Trials {
            n_trials: n_trials * 2,
            why: format!(
                "the best trial ({best_number}) came in the last quarter of {finished} trials: results still improve"
            ),
        });
    }
    asks
}

fn widen(parameter: &Parameter, values: impl Iterator<Item = f64>) -> Option<ChangeAsk> {
    let (low, high, log) = match parameter.distribution {
        Distribution::Float { low, high, log, .. } => (low, high, log),
        Distribution::Int { low, high, log, .. } => (low as f64, high as f64, log),
        Distribution::Categorical { .. } => return None,
    };
    let scale = |v: f64| if log { v.ln() } else { v };
    let (lo, hi) = (scale(low), scale(high));
    let margin = 0.02 * (hi - lo);
    let values: Vec<f64> = values.map(scale).collect();
    let near_high = values.iter().filter(|v| hi - **v <= margin).count();
    let near_low = values.iter().filter(|v| **v - lo <= margin).count();
    let name = &parameter.name;
    if near_high >= 3 {
        let new = if log {
            high * 10.0
        } else {
            high + (high - low)
        };
        return Some(ChangeAsk::Bounds {
            parameter: name.clone(),
            low: None,
            high: Some(new),
            why: format!("{near_high} of the 5 best trials have {name} at its upper bound {high}"),
        });
    }
    if near_low >= 3 {
        let new = if log { low / 10.0 } else { low - (high - low) };
        return Some(ChangeAsk::Bounds {
            parameter: name.clone(),
            low: Some(new),
            high: None,
            why: format!("{near_low} of the 5 best trials have {name} at its lower bound {low}"),
        });
    }
    None
}

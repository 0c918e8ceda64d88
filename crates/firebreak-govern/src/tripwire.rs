//! Tripwires: rules on observed results that halt a campaign for human review.
//!
//! Each is checked when a trial finishes and trips on an edge, not a level, so a
//! reviewed and approved trip does not fire again for the same evidence:
//! - `threshold` trips when a finished trial's metric is beyond `above`/`below`
//!   and beyond every earlier finished trial's value (a new record past the line);
//! - `rate` trips when the best value improved by more than `max_delta` over the
//!   last `window` finished trials (default 10), and had not at the trial before;
//! - `compute_rate` trips when the campaign's CPU seconds per wall second (busy
//!   cores) first exceed `max_cores` in this run;
//! - `reeval` is carried out by the runner, which re-runs each new champion and
//!   asks [`Tripwires::reeval_disagrees`].

use firebreak_core::{Direction, Objectives, Trial, TrialState};
use firebreak_spec::{Tripwire, TripwireKind};

/// A tripped tripwire.
#[derive(Debug, Clone, PartialEq)]
pub struct Trip {
    /// Its index in `[[governance.tripwires]]`.
    pub index: usize,
    /// What was seen, in words.
    pub reason: String,
}

/// A campaign's tripwires and the little state edge-triggering needs.
#[derive(Debug, Clone)]
pub struct Tripwires {
    wires: Vec<Tripwire>,
    objectives: Objectives,
    compute_tripped: Vec<bool>,
}

impl Tripwires {
    /// The tripwires of a spec.
    pub fn new(wires: &[Tripwire], objectives: &Objectives) -> Self {
        Tripwires {
            wires: wires.to_vec(),
            objectives: objectives.clone(),
            compute_tripped: vec![false; wires.len()],
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.wires.is_empty()
    }

    fn direction(&self, metric: &str) -> Direction {
        self.objectives
            .metrics
            .iter()
            .position(|m| m == metric)
            .map_or(Direction::Maximize, |i| self.objectives.directions[i])
    }

    /// Checks every tripwire after `finished` finished. `trials` are the
    /// campaign's trials by number (including `finished`); `cpu_seconds` and
    /// `wall_seconds` are the campaign's totals so far.
    pub fn check(
        &mut self,
        trials: &[Trial],
        finished: &Trial,
        cpu_seconds: f64,
        wall_seconds: f64,
    ) -> Option<Trip> {
        for index in 0..self.wires.len() {
            let wire = &self.wires[index];
            let metric = wire.metric.as_deref().unwrap_or_default();
            let reason = match wire.kind {
                TripwireKind::Threshold => self.threshold(wire, metric, trials, finished),
                TripwireKind::Rate => self.rate(wire, metric, trials, finished),
                TripwireKind::ComputeRate => {
                    let cores = cpu_seconds / wall_seconds.max(1.0);
                    let limit = wire.max_cores.unwrap_or(f64::INFINITY);
                    (cores > limit && !self.compute_tripped[index]).then(|| {
                        self.compute_tripped[index] = true;
                        format!("compute_rate: {cores:.2} busy cores on average, above max_cores = {limit}")
                    })
                }
                TripwireKind::Reeval => None,
            };
            if let Some(reason) = reason {
                return Some(Trip {
                    index,
                    reason: format!(
                        "tripwire {index} ({reason}) after trial {}",
                        finished.number
                    ),
                });
            }
        }
        None
    }

    fn threshold(
        &self,
        wire: &Tripwire,
        metric: &str,
        trials: &[Trial],
        finished: &Trial,
    ) -> Option<String> {
        let value = *finished.metrics.get(metric)?;
        let earlier = || {
            trials
                .iter()
                .filter(|t| t.number != finished.number && t.state.is_finished())
                .filter_map(|t| t.metrics.get(metric).copied())
        };
        if let Some(above) = wire.above
            && value > above
            && earlier().all(|v| v < value)
        {
            return Some(format!("threshold: {metric} = {value} is above {above}"));
        }
        if let Some(below) = wire.below
            && value < below
            && earlier().all(|v| v > value)
        {
            return Some(format!("threshold: {metric} = {value} is below {below}"));
        }
        None
    }

    fn rate(
        &self,
        wire: &Tripwire,
        metric: &str,
        trials: &[Trial],
        finished: &Trial,
    ) -> Option<String> {
        if wire.per.is_some() {
            return None; // checked at each promotion: `generation_rate`
        }
        let direction = self.direction(metric);
        let window = wire.window.unwrap_or(10) as usize;
        let max_delta = wire.max_delta?;
        let values: Vec<f64> = trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && t.number <= finished.number)
            .filter_map(|t| t.metrics.get(metric).copied())
            .collect();
        let gain = |n: usize| -> Option<f64> {
            if n <= window {
                return None;
            }
            let best = |vals: &[f64]| {
                vals.iter()
                    .copied()
                    .reduce(|a, b| if direction.better(b, a) { b } else { a })
            };
            let before = best(&values[..n - window])?;
            let after = best(&values[..n])?;
            Some((after - before).abs())
        };
        let now = gain(values.len())?;
        let was = gain(values.len() - 1).unwrap_or(0.0);
        (now > max_delta && was <= max_delta).then(|| {
            format!("rate: best {metric} moved by {now:.4} over the last {window} trials, more than max_delta = {max_delta}")
        })
    }

    /// The trip of the first `rate` tripwire with `per = "generation"` on the
    /// objective `metric` when a generation's champion scores `value` against the
    /// last promoted champion's `previous`: an improvement larger than
    /// `max_delta` in one generation halts for review.
    pub fn generation_rate(
        &self,
        generation: u32,
        metric: &str,
        previous: f64,
        value: f64,
    ) -> Option<Trip> {
        let direction = self.direction(metric);
        let gain = if direction.better(value, previous) {
            (value - previous).abs()
        } else {
            0.0
        };
        self.wires.iter().enumerate().find_map(|(index, wire)| {
            let max_delta = wire.max_delta?;
            let watched = wire.kind == TripwireKind::Rate
                && wire.per.is_some()
                && wire.metric.as_deref() == Some(metric);
            (watched && gain > max_delta).then(|| Trip {
                index,
                reason: format!(
                    "tripwire {index} (rate: generation {generation}'s champion improved {metric} \
                     by {gain:.4} over the last promoted champion, more than max_delta = \
                     {max_delta})"
                ),
            })
        })
    }

    /// The `reeval` tripwires: (index, metric, tolerance).
    pub fn reevals(&self) -> Vec<(usize, String, f64)> {
        self.wires
            .iter()
            .enumerate()
            .filter(|(_, w)| w.kind == TripwireKind::Reeval)
            .map(|(i, w)| {
                (
                    i,
                    w.metric.clone().unwrap_or_default(),
                    w.tolerance.unwrap_or(0.0),
                )
            })
            .collect()
    }

    /// The trip of `reeval` tripwire `index` when a re-evaluation of trial
    /// `number` disagrees with its report by more than the tolerance.
    pub fn reeval_disagrees(
        index: usize,
        metric: &str,
        tolerance: f64,
        number: u64,
        reported: f64,
        again: f64,
    ) -> Option<Trip> {
        ((reported - again).abs() > tolerance).then(|| Trip {
            index,
            reason: format!(
                "tripwire {index} (reeval: trial {number} reported {metric} = {reported}, a fresh re-evaluation gave {again}, more than tolerance = {tolerance} apart)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_core::Params;

    fn trial(number: u64, value: f64) -> Trial {
        let mut t = Trial::queued(number, Params::new(), "random", "");
        t.state = TrialState::Complete;
        t.metrics.insert("acc".into(), value);
        t
    }

    fn wire(kind: TripwireKind) -> Tripwire {
        Tripwire {
            kind,
            metric: Some("acc".into()),
            above: Some(0.9),
            below: None,
            max_delta: Some(0.2),
            window: Some(2),
            per: None,
            tolerance: Some(0.01),
            max_cores: Some(1.5),
        }
    }

    fn run(kind: TripwireKind, values: &[f64]) -> Vec<u64> {
        let objectives = Objectives::single("acc", Direction::Maximize);
        let mut wires = Tripwires::new(&[wire(kind)], &objectives);
        let mut trials = Vec::new();
        let mut tripped = Vec::new();
        for (i, v) in values.iter().enumerate() {
            trials.push(trial(i as u64, *v));
            if wires.check(&trials, &trials[i], 0.0, 1.0).is_some() {
                tripped.push(i as u64);
            }
        }
        tripped
    }

    #[test]
    fn threshold_trips_on_each_new_record_past_the_line() {
        assert_eq!(
            run(TripwireKind::Threshold, &[0.5, 0.95, 0.93, 0.97, 0.8]),
            [1, 3]
        );
    }

    #[test]
    fn rate_trips_on_the_edge() {
        // gains over a window of 2: -, -, 0.1, 0.3 (trip), 0.3, 0.0, 0.5 (trip)
        assert_eq!(
            run(TripwireKind::Rate, &[0.1, 0.2, 0.2, 0.5, 0.5, 0.5, 1.0]),
            [3, 6]
        );
    }

    #[test]
    fn compute_rate_trips_once_per_run() {
        let objectives = Objectives::single("acc", Direction::Maximize);
        let mut wires = Tripwires::new(&[wire(TripwireKind::ComputeRate)], &objectives);
        let t = trial(0, 0.1);
        assert!(
            wires
                .check(std::slice::from_ref(&t), &t, 10.0, 10.0)
                .is_none()
        );
        assert!(
            wires
                .check(std::slice::from_ref(&t), &t, 20.0, 10.0)
                .is_some()
        );
        assert!(
            wires
                .check(std::slice::from_ref(&t), &t, 30.0, 10.0)
                .is_none()
        );
    }
}

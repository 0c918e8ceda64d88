//! The tree-structured Parzen estimator (Bergstra et al. 2011), univariate, in the
//! form Optuna made standard: past trials are split into a good group (the best
//! `gamma(n) = min(⌈0.1·n⌉, 25)`) and the rest; for each parameter, a Parzen
//! estimator `l` is fitted to the good group's values and `g` to the rest's (each
//! with a prior component spanning the range), `n_ei_candidates` values are drawn
//! from `l`, and the one with the largest `log l − log g` is proposed.
//!
//! By default the parameters that every past trial shares are modelled jointly
//! (multivariate TPE, as Falkner et al.'s BOHB and Optuna's default do): each past
//! trial is one kernel over all of them (a product of its per-dimension kernels),
//! so combinations that did well together are proposed together. The remaining (conditional) parameters are modelled one by one.
//! Where the jointly modelled parameters are all numeric, `n_ei_candidates` joint
//! draws are scored per parameter (`scale_candidates`, firebreak's departure from
//! Optuna's defaults: it finds better points on 10-D functions and leaves spaces
//! with categorical parameters as they were).
//!
//! Numerical parameters use truncated-normal mixtures on the parameter's range (on
//! the log scale for `log = true`); a kernel's bandwidth is the larger gap to its
//! neighbouring observations (the inner gap for the outermost two), clipped to
//! `[range / min(100, 1 + kernels), range]`, and the prior kernel spans the range; ints and stepped
//! floats are scored by the probability mass of their grid cell. Categorical
//! parameters use smoothed, weighted counts. Older trials of the bad group weigh
//! less (a linear ramp beyond the 25 most recent). With `constant_liar`, running
//! trials count as bad, so concurrent workers spread out.

use firebreak_core::{
    Direction, Distribution, Objectives, ParamValue, Parameter, Params, Rng, SearchSpace, Trial,
    TrialState,
};

use crate::SearchError;
use crate::proposer::{History, Proposal, Proposer};
use crate::random::sample_uniform;
use crate::tpe_columns::Columns;

/// Trials up to which `scale_candidates` keeps its full count.
const SCALED_UP_TO: usize = 500;

/// TPE's options; the defaults are Optuna's except `scale_candidates`.
#[derive(Debug, Clone, PartialEq)]
pub struct TpeOptions {
    /// Random proposals until this many trials have finished (complete or pruned).
    pub n_startup_trials: usize,
    /// Candidates drawn from `l` per parameter.
    pub n_ei_candidates: usize,
    /// Weight of each estimator's prior component.
    pub prior_weight: f64,
    /// Count running trials as bad ones, so concurrent workers spread out (the
    /// default, as in Optuna 5; it changes nothing with one worker).
    pub constant_liar: bool,
    /// Model the parameters every past trial shares jointly (one kernel per trial
    /// across all of them), which captures interactions; the others, and all of
    /// them when false, are modelled one by one.
    pub multivariate: bool,
    /// When every jointly modelled parameter is numeric (int or float), draw
    /// `n_ei_candidates` per parameter instead of in all: more dimensions need
    /// more draws from `l` to find where `l/g` peaks. With a categorical among
    /// them, more candidates commit early to the choice the first trials
    /// favoured, so the count stays `n_ei_candidates`. Beyond 500 trials the
    /// scaled count shrinks in proportion (never below `n_ei_candidates`), so an
    /// ask costs no more than at 500.
    pub scale_candidates: bool,
}

impl Default for TpeOptions {
    fn default() -> Self {
        TpeOptions {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            prior_weight: 1.0,
            constant_liar: true,
            multivariate: true,
            scale_candidates: true,
        }
    }
}

/// TPE: multivariate by default, univariate as an option; one or several
/// objectives.
#[derive(Debug, Clone)]
pub struct TpeProposer {
    options: TpeOptions,
    objectives: Objectives,
    /// The history as columns, for the multivariate fast path.
    columns: Columns,
    /// Always take the straightforward path (for tests of the fast one).
    reference: bool,
}

impl TpeProposer {
    /// TPE with `options` on `objectives`: one, or several (multi-objective TPE,
    /// Ozaki et al. 2020: the good group is filled front by front of the
    /// non-dominated sorting, ties in the last front broken by crowding distance).
    pub fn new(objectives: &Objectives, options: TpeOptions) -> Result<Self, SearchError> {
        if options.n_ei_candidates == 0
            || options.prior_weight.is_nan()
            || options.prior_weight <= 0.0
        {
            return Err(SearchError::BadOption {
                key: "n_ei_candidates".into(),
                message: "needs n_ei_candidates >= 1 and prior_weight > 0".into(),
            });
        }
        Ok(TpeProposer {
            options,
            objectives: objectives.clone(),
            columns: Columns::default(),
            reference: false,
        })
    }

    /// The same proposer computing every ask from the history's trials directly,
    /// without the columns it otherwise keeps: slower, with the same proposals.
    /// For tests.
    #[doc(hidden)]
    pub fn reference(mut self) -> Self {
        self.reference = true;
        self
    }

    /// Syncs the columns with the history; true when the fast path applies (the
    /// multivariate estimator, a history in chronological order).
    fn fast(&mut self, space: &SearchSpace, history: &History<'_>) -> bool {
        if self.reference || !self.options.multivariate {
            return false;
        }
        self.columns
            .sync(space.parameters(), &self.objectives, history.trials);
        self.columns.ordered
    }

    /// The trials TPE learns from, best first, and how many form the good group.
    fn ranked<'a>(&self, history: &History<'a>) -> (Vec<&'a Trial>, usize) {
        let values = |t: &Trial| {
            self.objectives
                .values(&t.metrics)
                .filter(|v| v.iter().all(|x| x.is_finite()))
        };
        let complete: Vec<(&Trial, Vec<f64>)> = history
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .filter_map(|t| Some((t, values(t)?)))
            .collect();
        let mut complete: Vec<&Trial> = if let [direction] = self.objectives.directions[..] {
            let mut sorted = complete;
            sorted.sort_by(|(a, x), (b, y)| {
                let order = x[0].total_cmp(&y[0]);
                let order = if direction == Direction::Maximize {
                    order.reverse()
                } else {
                    order
                };
                order.then(a.number.cmp(&b.number))
            });
            sorted.into_iter().map(|(t, _)| t).collect()
        } else {
            // Front by front; within a front the least crowded first.
            let points: Vec<Vec<f64>> = complete.iter().map(|(_, v)| v.clone()).collect();
            let mut order = Vec::with_capacity(points.len());
            for front in crate::nsga2::fronts(&self.objectives, &points) {
                let distance = crate::nsga2::crowding(&front, &points);
                let mut members: Vec<(usize, f64)> = front.into_iter().zip(distance).collect();
                members.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                order.extend(members.into_iter().map(|(i, _)| complete[i].0));
            }
            order
        };
        // Pruned trials (and, with the constant liar, running ones) rank below every
        // complete trial: they only ever inform `g`.
        let worse = history.trials.iter().filter(|t| {
            t.state == TrialState::Pruned
                || (self.options.constant_liar && t.state == TrialState::Running)
        });
        let n = complete.len() + worse.clone().count();
        let n_good = ((0.1 * n as f64).ceil() as usize)
            .min(25)
            .min(complete.len());
        complete.extend(worse);
        (complete, n_good)
    }
}

/// Optuna's default observation weights for `n` trials in chronological order:
/// equal for the 25 most recent, a linear ramp from `1/n` for older ones.
pub(crate) fn recency_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    (0..ramp)
        .map(|i| {
            let t = if ramp > 1 {
                i as f64 / (ramp - 1) as f64
            } else {
                0.0
            };
            1.0 / n as f64 + t * (1.0 - 1.0 / n as f64)
        })
        .chain(std::iter::repeat_n(1.0, 25))
        .collect()
}

/// The internal (possibly log) axis of a numerical parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Axis {
    pub(crate) low: f64,
    pub(crate) high: f64,
    log: bool,
    /// Grid step in the original space (1 for ints), if discrete.
    pub(crate) step: Option<f64>,
    int: bool,
    original_low: f64,
    original_high: f64,
}

impl Axis {
    pub(crate) fn of(distribution: &Distribution) -> Option<Axis> {
        let n = crate::cube::Numeric::of(distribution)?;
        Some(Axis::new(n.low, n.high, n.log, n.step, n.int))
    }

    fn new(low: f64, high: f64, log: bool, step: Option<f64>, int: bool) -> Axis {
        let t = |x: f64| if log { x.ln() } else { x };
        let half = step.map_or(0.0, |q| q / 2.0);
        Axis {
            low: t((low - half).max(if log { f64::MIN_POSITIVE } else { f64::MIN })),
            high: t(high + half),
            log,
            step,
            int,
            original_low: low,
            original_high: high,
        }
    }

    pub(crate) fn internal(&self, value: &ParamValue) -> Option<f64> {
        let x = value.as_f64()?;
        Some(if self.log {
            x.max(f64::MIN_POSITIVE).ln()
        } else {
            x
        })
    }

    /// The valid value nearest to an internal coordinate.
    pub(crate) fn snap(&self, internal: f64) -> ParamValue {
        let x = if self.log { internal.exp() } else { internal };
        let x = match self.step {
            Some(q) => self.original_low + ((x - self.original_low) / q).round() * q,
            None => x,
        };
        let x = x.clamp(self.original_low, self.original_high);
        if self.int {
            ParamValue::Int(x.round() as i64)
        } else {
            ParamValue::Float(x)
        }
    }

    /// The internal interval a discrete value stands for.
    pub(crate) fn cell(&self, value: &ParamValue) -> Option<(f64, f64)> {
        let q = self.step?;
        let x = value.as_f64()?;
        let t = |x: f64| {
            if self.log {
                x.max(f64::MIN_POSITIVE).ln()
            } else {
                x
            }
        };
        Some((t(x - q / 2.0).max(self.low), t(x + q / 2.0).min(self.high)))
    }
}

/// A mixture of normals truncated to `[low, high]`.
#[derive(Debug)]
struct Mixture {
    low: f64,
    high: f64,
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    log_weights: Vec<f64>,
    /// Log of each component's mass inside the range.
    log_mass: Vec<f64>,
}

const SQRT_2: f64 = std::f64::consts::SQRT_2;

/// P(lo < Z < hi) for a standard normal Z, accurate in both tails.
pub(crate) fn normal_mass(lo: f64, hi: f64) -> f64 {
    if hi <= lo {
        return 0.0;
    }
    let mass = if lo >= 0.0 {
        0.5 * (libm::erfc(lo / SQRT_2) - libm::erfc(hi / SQRT_2))
    } else if hi <= 0.0 {
        0.5 * (libm::erfc(-hi / SQRT_2) - libm::erfc(-lo / SQRT_2))
    } else {
        1.0 - 0.5 * libm::erfc(hi / SQRT_2) - 0.5 * libm::erfc(-lo / SQRT_2)
    };
    mass.max(0.0)
}

fn log_sum_exp(values: impl Iterator<Item = f64>) -> f64 {
    let values: Vec<f64> = values.collect();
    let top = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !top.is_finite() {
        return top;
    }
    top + values.iter().map(|v| (v - top).exp()).sum::<f64>().ln()
}

/// The bandwidths of kernels at the ascending observations `sorted`, by rank
/// (see `bandwidth`).
pub(crate) fn bandwidths(sorted: &[f64], low: f64, high: f64, mut set: impl FnMut(usize, f64)) {
    let n = sorted.len();
    for rank in 0..n {
        set(rank, bandwidth(n, rank, |r| sorted[r], low, high));
    }
}

/// The bandwidth of the kernel at `rank` of `n` ascending observations (`at`
/// reads one by rank): the larger gap to a neighbour (the range's ends count as
/// neighbours, but the outermost two kernels use their inner gap), clipped to
/// `[range / min(100, 2 + n), range]`.
#[inline(always)]
pub(crate) fn bandwidth(
    n: usize,
    rank: usize,
    at: impl Fn(usize) -> f64,
    low: f64,
    high: f64,
) -> f64 {
    let range = high - low;
    let min_sigma = range / (100.0f64).min(2.0 + n as f64);
    let below = if rank == 0 { low } else { at(rank - 1) };
    let above = if rank + 1 == n { high } else { at(rank + 1) };
    let left = at(rank) - below;
    let right = above - at(rank);
    let sigma = if n >= 2 && rank == 0 {
        right
    } else if n >= 2 && rank == n - 1 {
        left
    } else {
        left.max(right)
    };
    sigma.clamp(min_sigma, range)
}

/// Kernel centres and bandwidths for observations `xs` (internal coordinates),
/// plus the prior kernel (centred, spanning the range) last.
pub(crate) fn kernels(xs: &[f64], low: f64, high: f64) -> (Vec<f64>, Vec<f64>) {
    let n = xs.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let sorted: Vec<f64> = order.iter().map(|&i| xs[i]).collect();
    let mut sigmas = vec![0.0; n + 1];
    bandwidths(&sorted, low, high, |rank, sigma| {
        sigmas[order[rank]] = sigma
    });
    sigmas[n] = high - low; // the prior spans the range
    let mut mus = xs.to_vec();
    mus.push((low + high) / 2.0);
    (mus, sigmas)
}

/// Log of the mass inside `[low, high]` of the normal `(mu, sigma)`.
pub(crate) fn log_mass(mu: f64, sigma: f64, low: f64, high: f64) -> f64 {
    normal_mass((low - mu) / sigma, (high - mu) / sigma)
        .max(1e-300)
        .ln()
}

/// Rejection-samples the normal `(mu, sigma)` truncated to `[low, high]` (its
/// mean lies inside the range and its sigma is at most the range, so acceptance
/// is high); a uniform draw after 64 rejections.
pub(crate) fn sample_truncated(mu: f64, sigma: f64, low: f64, high: f64, rng: &mut Rng) -> f64 {
    for _ in 0..64 {
        // Box–Muller.
        let (u1, u2) = (rng.next_f64().max(f64::MIN_POSITIVE), rng.next_f64());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let x = mu + sigma * z;
        if (low..=high).contains(&x) {
            return x;
        }
    }
    low + rng.next_f64() * (high - low)
}

impl Mixture {
    /// The Parzen estimator of observations `xs` (internal coordinates) with
    /// `weights`, plus the prior component.
    fn fit(xs: &[f64], weights: &[f64], low: f64, high: f64, prior_weight: f64) -> Mixture {
        let mut w: Vec<f64> = weights.to_vec();
        w.push(prior_weight);
        let total: f64 = w.iter().sum();
        let log_weights = w.iter().map(|x| (x / total).ln()).collect();
        Mixture::with_kernels(xs, low, high, log_weights)
    }

    /// Kernels at the observations `xs` with neighbour-gap bandwidths, plus the
    /// prior kernel (centred, spanning the range); `log_weights` may be empty when
    /// the caller weighs kernels itself (the joint estimator).
    fn with_kernels(xs: &[f64], low: f64, high: f64, log_weights: Vec<f64>) -> Mixture {
        let (mus, sigmas) = kernels(xs, low, high);
        let log_mass = mus
            .iter()
            .zip(&sigmas)
            .map(|(mu, s)| log_mass(*mu, *s, low, high))
            .collect();
        Mixture {
            low,
            high,
            mus,
            sigmas,
            log_weights,
            log_mass,
        }
    }

    fn sample(&self, rng: &mut Rng) -> f64 {
        // Pick a component by weight, then sample it.
        let u = rng.next_f64();
        let mut acc = 0.0;
        let mut chosen = self.mus.len() - 1;
        for (i, lw) in self.log_weights.iter().enumerate() {
            acc += lw.exp();
            if u < acc {
                chosen = i;
                break;
            }
        }
        self.sample_component(chosen, rng)
    }

    /// Samples component `i`'s truncated normal.
    fn sample_component(&self, i: usize, rng: &mut Rng) -> f64 {
        sample_truncated(self.mus[i], self.sigmas[i], self.low, self.high, rng)
    }

    /// Log density at `x`, or log mass of `[lo, hi]` for a discrete cell.
    fn log_likelihood(&self, x: f64, cell: Option<(f64, f64)>) -> f64 {
        log_sum_exp(
            (0..self.mus.len())
                .map(|i| self.log_weights[i] + self.component_log_likelihood(i, x, cell)),
        )
    }

    /// Component `i`'s log density at `x` (or log mass of a discrete cell),
    /// normalised to the range.
    fn component_log_likelihood(&self, i: usize, x: f64, cell: Option<(f64, f64)>) -> f64 {
        let (mu, s) = (self.mus[i], self.sigmas[i]);
        let log_p = match cell {
            Some((lo, hi)) => normal_mass((lo - mu) / s, (hi - mu) / s).max(1e-300).ln(),
            None => {
                let z = (x - mu) / s;
                -0.5 * z * z - s.ln() - 0.5 * (std::f64::consts::TAU).ln()
            }
        };
        log_p - self.log_mass[i]
    }
}

/// Smoothed, weighted category frequencies.
fn categorical(
    choices: &[ParamValue],
    observed: &[(&ParamValue, f64)],
    prior_weight: f64,
) -> Vec<f64> {
    let mut counts = vec![prior_weight / choices.len() as f64; choices.len()];
    for (value, w) in observed {
        if let Some(i) = choices.iter().position(|c| c.matches(value)) {
            counts[i] += w;
        }
    }
    let total: f64 = counts.iter().sum();
    counts.iter().map(|c| c / total).collect()
}

impl TpeProposer {
    /// Values and weights of `parameter` in `trials` (chronological weights).
    fn observations<'t>(
        &self,
        parameter: &Parameter,
        trials: &[&'t Trial],
    ) -> (Vec<&'t ParamValue>, Vec<f64>) {
        let mut chronological: Vec<&Trial> = trials.to_vec();
        chronological.sort_by_key(|t| t.number);
        let values: Vec<&ParamValue> = chronological
            .iter()
            .filter_map(|t| t.params.get(&parameter.name))
            .collect();
        let weights = recency_weights(values.len());
        (values, weights)
    }

    /// Samples one parameter; returns the value and its `log l − log g`.
    fn sample_parameter(
        &self,
        parameter: &Parameter,
        good: &[&Trial],
        bad: &[&Trial],
        rng: &mut Rng,
    ) -> (ParamValue, f64) {
        let (good_values, good_weights) = self.observations(parameter, good);
        let (bad_values, bad_weights) = self.observations(parameter, bad);
        let n = self.options.n_ei_candidates;
        if let Distribution::Categorical { choices } = &parameter.distribution {
            let pair = |values: &[&ParamValue], weights: &[f64]| -> Vec<f64> {
                let observed: Vec<(&ParamValue, f64)> = values
                    .iter()
                    .copied()
                    .zip(weights.iter().copied())
                    .collect();
                categorical(choices, &observed, self.options.prior_weight)
            };
            let l = pair(&good_values, &good_weights);
            let g = pair(&bad_values, &bad_weights);
            let mut best = (0usize, f64::NEG_INFINITY);
            for _ in 0..n {
                let u = rng.next_f64();
                let mut acc = 0.0;
                let mut i = choices.len() - 1;
                for (j, p) in l.iter().enumerate() {
                    acc += p;
                    if u < acc {
                        i = j;
                        break;
                    }
                }
                let score = l[i].ln() - g[i].ln();
                if score > best.1 {
                    best = (i, score);
                }
            }
            return (choices[best.0].clone(), best.1);
        }
        let Some(axis) = Axis::of(&parameter.distribution) else {
            return (sample_uniform(&parameter.distribution, rng), 0.0);
        };
        let fit = |values: &[&ParamValue], weights: &[f64]| {
            let xs: Vec<f64> = values.iter().filter_map(|v| axis.internal(v)).collect();
            Mixture::fit(
                &xs,
                &weights[..xs.len()],
                axis.low,
                axis.high,
                self.options.prior_weight,
            )
        };
        let l = fit(&good_values, &good_weights);
        let g = fit(&bad_values, &bad_weights);
        let mut best: Option<(ParamValue, f64)> = None;
        for _ in 0..n {
            let candidate = axis.snap(l.sample(rng));
            let Some(x) = axis.internal(&candidate) else {
                continue;
            };
            let cell = axis.cell(&candidate);
            let score = l.log_likelihood(x, cell) - g.log_likelihood(x, cell);
            if best.as_ref().is_none_or(|(_, s)| score > *s) {
                best = Some((candidate, score));
            }
        }
        best.unwrap_or_else(|| (sample_uniform(&parameter.distribution, rng), 0.0))
    }
}

/// A joint Parzen estimator: one kernel per observation (plus the prior kernel)
/// over several parameters.
#[derive(Debug)]
struct Joint {
    log_weights: Vec<f64>,
    dims: Vec<Dim>,
}

#[derive(Debug)]
enum Dim {
    Numeric {
        axis: Axis,
        mixture: Mixture,
    },
    Categorical {
        choices: Vec<ParamValue>,
        /// Per kernel, the probability of each choice.
        rows: Vec<Vec<f64>>,
    },
}

impl Joint {
    fn fit(parameters: &[&Parameter], trials: &[&Trial], prior_weight: f64) -> Joint {
        let mut chronological: Vec<&Trial> = trials.to_vec();
        chronological.sort_by_key(|t| t.number);
        let n = chronological.len();
        let kernels = n + 1;
        let mut weights = recency_weights(n);
        weights.push(prior_weight);
        let total: f64 = weights.iter().sum();
        let dims = parameters
            .iter()
            .map(|p| {
                let numeric = |axis: Axis| {
                    let xs: Vec<f64> = chronological
                        .iter()
                        .map(|t| {
                            t.params
                                .get(&p.name)
                                .and_then(|v| axis.internal(v))
                                .unwrap_or((axis.low + axis.high) / 2.0)
                        })
                        .collect();
                    // The joint weighs kernels itself: no per-dimension weights.
                    Dim::Numeric {
                        axis,
                        mixture: Mixture::with_kernels(&xs, axis.low, axis.high, Vec::new()),
                    }
                };
                if let Some(axis) = Axis::of(&p.distribution) {
                    return numeric(axis);
                }
                match p.distribution {
                    Distribution::Float { .. } | Distribution::Int { .. } => {
                        unreachable!("numerical distributions have an axis")
                    }
                    Distribution::Categorical { ref choices } => {
                        let k = choices.len();
                        let mut rows: Vec<Vec<f64>> = chronological
                            .iter()
                            .map(|t| {
                                let mut row = vec![prior_weight / kernels as f64; k];
                                if let Some(i) = t
                                    .params
                                    .get(&p.name)
                                    .and_then(|v| choices.iter().position(|c| c.matches(v)))
                                {
                                    row[i] += 1.0;
                                }
                                let sum: f64 = row.iter().sum();
                                row.iter().map(|x| x / sum).collect()
                            })
                            .collect();
                        rows.push(vec![1.0 / k as f64; k]);
                        Dim::Categorical {
                            choices: choices.clone(),
                            rows,
                        }
                    }
                }
            })
            .collect();
        Joint {
            log_weights: weights.iter().map(|w| (w / total).ln()).collect(),
            dims,
        }
    }

    fn sample(&self, rng: &mut Rng) -> Vec<ParamValue> {
        let u = rng.next_f64();
        let mut acc = 0.0;
        let mut kernel = self.log_weights.len() - 1;
        for (i, lw) in self.log_weights.iter().enumerate() {
            acc += lw.exp();
            if u < acc {
                kernel = i;
                break;
            }
        }
        self.dims
            .iter()
            .map(|dim| match dim {
                Dim::Categorical { choices, rows } => {
                    let u = rng.next_f64();
                    let mut acc = 0.0;
                    let mut chosen = choices.len() - 1;
                    for (i, p) in rows[kernel].iter().enumerate() {
                        acc += p;
                        if u < acc {
                            chosen = i;
                            break;
                        }
                    }
                    choices[chosen].clone()
                }
                Dim::Numeric { axis, mixture } => axis.snap(mixture.sample_component(kernel, rng)),
            })
            .collect()
    }

    fn log_likelihood(&self, values: &[ParamValue]) -> f64 {
        log_sum_exp((0..self.log_weights.len()).map(|k| {
            let mut log_p = self.log_weights[k];
            for (dim, value) in self.dims.iter().zip(values) {
                log_p += match dim {
                    Dim::Categorical { choices, rows } => choices
                        .iter()
                        .position(|c| c.matches(value))
                        .map_or(f64::NEG_INFINITY, |i| rows[k][i].ln()),
                    Dim::Numeric { axis, mixture } => match axis.internal(value) {
                        Some(x) => mixture.component_log_likelihood(k, x, axis.cell(value)),
                        None => f64::NEG_INFINITY,
                    },
                };
            }
            log_p
        }))
    }
}

impl TpeProposer {
    fn started(&self, history: &History<'_>) -> bool {
        let finished = history
            .trials
            .iter()
            .filter(|t| matches!(t.state, TrialState::Complete | TrialState::Pruned))
            .count();
        finished >= self.options.n_startup_trials && self.ranked(history).1 > 0
    }
}

impl TpeProposer {
    /// Candidates drawn from the joint `l` over `parameters` with `observed`
    /// trials in the two groups (see [`TpeOptions::scale_candidates`]).
    fn joint_candidates(&self, parameters: &[&Parameter], observed: usize) -> usize {
        let base = self.options.n_ei_candidates;
        let numeric = parameters
            .iter()
            .all(|p| !matches!(p.distribution, Distribution::Categorical { .. }));
        if !self.options.scale_candidates || !numeric {
            return base;
        }
        let scaled = base * parameters.len().max(1);
        // Scoring costs candidates × observed trials: past SCALED_UP_TO trials the
        // scaled count shrinks so an ask costs no more than it did there.
        let capped = scaled * SCALED_UP_TO / observed.max(SCALED_UP_TO);
        capped.max(base)
    }

    /// Multivariate TPE from the columns (the fast path of `sample_relative`).
    fn sample_joint(
        &mut self,
        space: &SearchSpace,
        relative: &[String],
        rng: &mut Rng,
    ) -> (Params, String) {
        let (good, bad) = self
            .columns
            .groups(&self.objectives, self.options.constant_liar);
        let (dims, parameters): (Vec<usize>, Vec<&Parameter>) = space
            .parameters()
            .iter()
            .enumerate()
            .filter(|(_, p)| relative.contains(&p.name))
            .unzip();
        let prior = self.options.prior_weight;
        let n = self.joint_candidates(&parameters, good.len() + bad.len());
        self.columns.fit(&dims, &good, 0, prior);
        self.columns.fit_other(&dims, &bad, prior);
        let [l, g] = &mut self.columns.fits;
        // Scoring draws nothing, so the candidates are drawn first and scored
        // together (the same draws as one at a time).
        let candidates: Vec<Vec<ParamValue>> = (0..n).map(|_| l.sample(rng)).collect();
        let scores = l
            .log_likelihoods(&candidates)
            .into_iter()
            .zip(g.log_likelihoods(&candidates))
            .map(|(l, g)| l - g);
        let mut best: Option<(Vec<ParamValue>, f64)> = None;
        for (candidate, score) in candidates.into_iter().zip(scores) {
            if best.as_ref().is_none_or(|(_, s)| score > *s) {
                best = Some((candidate, score));
            }
        }
        joint_proposal(&parameters, best, n, (good.len(), bad.len()))
    }
}

/// The proposal of a joint draw: the best candidate's values under their
/// parameters' names, and its rationale (`n` candidates scored, group sizes).
fn joint_proposal(
    parameters: &[&Parameter],
    best: Option<(Vec<ParamValue>, f64)>,
    n: usize,
    (good, bad): (usize, usize),
) -> (Params, String) {
    let (values, score) = best.unwrap_or_default();
    let params: Params = parameters
        .iter()
        .map(|p| p.name.clone())
        .zip(values)
        .collect();
    let rationale = format!(
        "tpe: joint log l/g {score:.3} over {} parameters, best of {n} candidates; {good} good and {bad} other trials",
        parameters.len()
    );
    (params, rationale)
}

impl Proposer for TpeProposer {
    fn asks(
        &mut self,
        space: &SearchSpace,
        history: &History<'_>,
        n_trials: u64,
    ) -> Vec<crate::ChangeAsk> {
        crate::suggest_changes(space, history, n_trials)
    }

    fn name(&self) -> &'static str {
        "tpe"
    }

    fn infer_relative_space(&mut self, space: &SearchSpace, history: &History<'_>) -> Vec<String> {
        if self.fast(space, history) {
            let (good, bad) = self
                .columns
                .groups(&self.objectives, self.options.constant_liar);
            if self.columns.finished() < self.options.n_startup_trials || good.is_empty() {
                return Vec::new(); // random start-up
            }
            let shared = self.columns.shared(&good);
            let shared_bad = self.columns.shared(&bad);
            return space
                .parameters()
                .iter()
                .zip(shared.iter().zip(shared_bad))
                .filter(|(_, (a, b))| **a && *b)
                .map(|(p, _)| p.name.clone())
                .collect();
        }
        if !self.started(history) {
            return Vec::new(); // random start-up
        }
        let (ranked, _) = self.ranked(history);
        space
            .parameters()
            .iter()
            .filter(|p| {
                !self.options.multivariate || ranked.iter().all(|t| t.params.contains_key(&p.name))
            })
            .map(|p| p.name.clone())
            .collect()
    }

    fn sample_relative(
        &mut self,
        space: &SearchSpace,
        history: &History<'_>,
        relative: &[String],
        rng: &mut Rng,
    ) -> Proposal {
        if self.fast(space, history) {
            return self.sample_joint(space, relative, rng).into();
        }
        let (ranked, n_good) = self.ranked(history);
        let (good, bad) = ranked.split_at(n_good);
        let parameters: Vec<&Parameter> = space
            .parameters()
            .iter()
            .filter(|p| relative.contains(&p.name))
            .collect();
        if !self.options.multivariate {
            // Univariate: each parameter on its own, one rationale for all.
            let mut params = Params::new();
            let mut total = 0.0;
            for parameter in space.parameters() {
                if !SearchSpace::is_active(parameter, &params) {
                    continue;
                }
                let (value, score) = self.sample_parameter(parameter, good, bad, rng);
                total += score;
                params.insert(parameter.name.clone(), value);
            }
            let rationale = format!(
                "tpe (univariate): sum of log l/g {total:.3} over {} parameters, best of {} candidates each; {} good and {} other trials",
                params.len(),
                self.options.n_ei_candidates,
                good.len(),
                bad.len()
            );
            return Proposal::new(params, rationale);
        }
        let l = Joint::fit(&parameters, good, self.options.prior_weight);
        let g = Joint::fit(&parameters, bad, self.options.prior_weight);
        let mut best: Option<(Vec<ParamValue>, f64)> = None;
        let n = self.joint_candidates(&parameters, good.len() + bad.len());
        for _ in 0..n {
            let candidate = l.sample(rng);
            let score = l.log_likelihood(&candidate) - g.log_likelihood(&candidate);
            if best.as_ref().is_none_or(|(_, s)| score > *s) {
                best = Some((candidate, score));
            }
        }
        joint_proposal(&parameters, best, n, (good.len(), bad.len())).into()
    }

    fn sample_independent(
        &mut self,
        history: &History<'_>,
        parameter: &Parameter,
        _drawn: &Params,
        rng: &mut Rng,
    ) -> ParamValue {
        if !self.started(history) {
            return sample_uniform(&parameter.distribution, rng);
        }
        let (ranked, n_good) = self.ranked(history);
        let (good, bad) = ranked.split_at(n_good);
        self.sample_parameter(parameter, good, bad, rng).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_mass_is_accurate_in_the_tails() {
        assert!((normal_mass(-1.0, 1.0) - 0.682_689_492_137).abs() < 1e-12);
        let tail = normal_mass(8.0, 9.0); // about 6.2e-16
        assert!(tail > 6.0e-16 && tail < 6.3e-16, "{tail}");
    }

    #[test]
    fn scaled_candidates_need_all_numeric_parameters_and_shrink_past_500_trials() {
        let parameter = |distribution| Parameter {
            name: "p".into(),
            distribution,
            condition: None,
        };
        let float = parameter(Distribution::Float {
            low: 0.0,
            high: 1.0,
            log: false,
            step: None,
        });
        let choice = parameter(Distribution::Categorical {
            choices: vec![ParamValue::Int(1), ParamValue::Int(2)],
        });
        let objectives = Objectives::single("y", Direction::Minimize);
        let tpe = TpeProposer::new(&objectives, TpeOptions::default()).expect("valid");
        let floats = vec![&float; 10];
        let counts: Vec<usize> = [100, 500, 1000, 4000, 100_000]
            .map(|observed| tpe.joint_candidates(&floats, observed))
            .to_vec();
        assert_eq!(counts, [240, 240, 120, 30, 24]);
        let mut mixed = floats.clone();
        mixed.push(&choice);
        assert_eq!(tpe.joint_candidates(&mixed, 100), 24);
        let optuna = TpeProposer::new(
            &objectives,
            TpeOptions {
                scale_candidates: false,
                ..TpeOptions::default()
            },
        )
        .expect("valid");
        assert_eq!(optuna.joint_candidates(&floats, 100), 24);
    }

    #[test]
    fn recency_weights_ramp_old_trials() {
        assert_eq!(recency_weights(3), vec![1.0; 3]);
        let w = recency_weights(30);
        assert_eq!(w.len(), 30);
        assert!((w[0] - 1.0 / 30.0).abs() < 1e-12);
        assert!(w[..5].windows(2).all(|p| p[0] < p[1]));
        assert!(w[5..].iter().all(|x| *x == 1.0));
    }

    #[test]
    fn the_mixture_prefers_where_good_observations_are() {
        let l = Mixture::fit(&[0.1, 0.12, 0.15], &[1.0; 3], 0.0, 1.0, 1.0);
        let g = Mixture::fit(&[0.7, 0.8, 0.9, 0.85], &[1.0; 4], 0.0, 1.0, 1.0);
        let score = |x: f64| l.log_likelihood(x, None) - g.log_likelihood(x, None);
        assert!(score(0.12) > score(0.8));
        let mut rng = Rng::new(3);
        let draws: Vec<f64> = (0..2000).map(|_| l.sample(&mut rng)).collect();
        assert!(draws.iter().all(|x| (0.0..=1.0).contains(x)));
        let near = draws.iter().filter(|x| **x < 0.3).count();
        assert!(
            near > 1000,
            "{near} of 2000 draws near the good observations"
        );
    }
}

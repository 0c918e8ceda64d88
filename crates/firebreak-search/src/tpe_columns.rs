//! Multivariate TPE's fast path: the history kept as columns inside the
//! proposer, so an ask reads no parameter maps, sorts nothing it sorted before and
//! evaluates no transcendental function it evaluated before.
//!
//! [`Columns`] holds, per trial of the history (in the history's order), its
//! number, state, objective values and, per parameter of the space, the internal
//! coordinate TPE's kernels sit at; per numerical parameter, the trials sorted by
//! that coordinate (so a group's bandwidths are one linear walk); and per trial,
//! parameter and group (good, bad), the last bandwidth with its log normaliser
//! (so `erfc` and `ln` run only for kernels whose bandwidth changed). Every ask
//! re-checks each trial's number and state against the history and re-reads a
//! trial whose state changed, so the cache relies on one fact of every campaign:
//! a trial's parameters and metrics change only together with its state.
//!
//! The proposals equal those of the straightforward computation in `tpe.rs`
//! (the same draws from the same numbers); only the scores' rounding differs,
//! and a kernel whose log density falls more than `40 + ln(kernels)` below the
//! best kernel's is left out of the sum (less than `1e-17` of it).

use firebreak_core::{Distribution, Objectives, ParamValue, Parameter, Rng, Trial, TrialState};

use crate::tpe::{Axis, bandwidths, kernels, log_mass, normal_mass, recency_weights};

/// Half of `ln(2π)`.
const HALF_LN_TAU: f64 = 0.918_938_533_204_672_8;

/// Log-density margin below the best kernel under which kernels are skipped.
const MARGIN: f64 = 40.0;

/// One parameter's column.
#[derive(Debug, Clone, Default)]
struct Column {
    /// Per trial: the internal coordinate (the range's midpoint when absent) of a
    /// numerical parameter, or the choice index (NaN when absent) of a categorical.
    xs: Vec<f64>,
    /// Per trial: whether it has the parameter.
    has: Vec<bool>,
    /// Numerical parameters: trials by ascending coordinate, ties by position.
    sorted: Vec<u32>,
    /// Per group (good, bad), per trial: the last bandwidth, with the log of the
    /// kernel's mass in the range and the log of the bandwidth.
    normalisers: [Vec<(f64, f64, f64)>; 2],
}

/// The history as columns (see the module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct Columns {
    parameters: Vec<Parameter>,
    axes: Vec<Option<Axis>>,
    numbers: Vec<u64>,
    states: Vec<TrialState>,
    /// Objective values of complete trials with finite values.
    values: Vec<Option<Vec<f64>>>,
    columns: Vec<Column>,
    /// Whether the trials' numbers strictly increase (the history's order is the
    /// chronological order); the fast path needs it.
    pub(crate) ordered: bool,
}

const NO_NORMALISER: (f64, f64, f64) = (f64::NAN, 0.0, 0.0);

impl Columns {
    /// Brings the columns up to date with `trials` of a campaign on `parameters`.
    pub(crate) fn sync(
        &mut self,
        parameters: &[Parameter],
        objectives: &Objectives,
        trials: &[Trial],
    ) {
        if self.parameters != parameters {
            *self = Columns {
                parameters: parameters.to_vec(),
                axes: parameters
                    .iter()
                    .map(|p| Axis::of(&p.distribution))
                    .collect(),
                columns: vec![Column::default(); parameters.len()],
                ordered: true,
                ..Columns::default()
            };
        }
        let same = self
            .numbers
            .iter()
            .zip(trials)
            .take_while(|(n, t)| **n == t.number)
            .count();
        if same < self.numbers.len() {
            self.truncate(same);
        }
        let mut resort = false;
        for (i, trial) in trials.iter().enumerate().take(same) {
            if self.states[i] != trial.state {
                resort |= self.read(i, objectives, trial);
            }
        }
        for (i, trial) in trials.iter().enumerate().skip(same) {
            self.ordered &= i == 0 || self.numbers[i - 1] < trial.number;
            self.numbers.push(trial.number);
            self.states.push(trial.state);
            self.values.push(None);
            for column in &mut self.columns {
                column.xs.push(f64::NAN);
                column.has.push(false);
                for group in &mut column.normalisers {
                    group.push(NO_NORMALISER);
                }
            }
            self.read(i, objectives, trial);
            if !resort {
                self.insert_sorted(i);
            }
        }
        if resort {
            self.resort();
        }
    }

    fn truncate(&mut self, n: usize) {
        self.numbers.truncate(n);
        self.states.truncate(n);
        self.values.truncate(n);
        for column in &mut self.columns {
            column.xs.truncate(n);
            column.has.truncate(n);
            for group in &mut column.normalisers {
                group.truncate(n);
            }
        }
        self.ordered = self.numbers.windows(2).all(|w| w[0] < w[1]);
        self.resort();
    }

    /// Reads trial `i`'s state, values and parameters; true when a coordinate
    /// changed (the sorted orders must be rebuilt).
    fn read(&mut self, i: usize, objectives: &Objectives, trial: &Trial) -> bool {
        self.states[i] = trial.state;
        self.values[i] = if trial.state == TrialState::Complete {
            objectives.values(&trial.metrics)
        } else {
            None
        };
        let mut changed = false;
        for ((parameter, axis), column) in self
            .parameters
            .iter()
            .zip(&self.axes)
            .zip(&mut self.columns)
        {
            let value = trial.params.get(&parameter.name);
            let x = match (axis, &parameter.distribution) {
                (Some(axis), _) => value
                    .and_then(|v| axis.internal(v))
                    .unwrap_or((axis.low + axis.high) / 2.0),
                (None, Distribution::Categorical { choices }) => value
                    .and_then(|v| choices.iter().position(|c| c.matches(v)))
                    .map_or(f64::NAN, |c| c as f64),
                (None, _) => f64::NAN,
            };
            column.has[i] = value.is_some();
            if column.xs[i].to_bits() != x.to_bits() {
                changed |= !column.xs[i].is_nan() || column.sorted.len() > i;
                column.xs[i] = x;
                for group in &mut column.normalisers {
                    group[i] = NO_NORMALISER;
                }
            }
        }
        changed
    }

    fn insert_sorted(&mut self, i: usize) {
        for (axis, column) in self.axes.iter().zip(&mut self.columns) {
            if axis.is_some() {
                let x = column.xs[i];
                let xs = &column.xs;
                let at = column
                    .sorted
                    .partition_point(|&r| xs[r as usize].total_cmp(&x).is_le());
                column.sorted.insert(at, i as u32);
            }
        }
    }

    fn resort(&mut self) {
        for (axis, column) in self.axes.iter().zip(&mut self.columns) {
            column.sorted.clear();
            if axis.is_some() {
                column.sorted.extend(0..column.xs.len() as u32);
                let xs = &column.xs;
                column
                    .sorted
                    .sort_by(|&a, &b| xs[a as usize].total_cmp(&xs[b as usize]).then(a.cmp(&b)));
            }
        }
    }

    /// Trials that finished (complete or pruned).
    pub(crate) fn finished(&self) -> usize {
        self.states
            .iter()
            .filter(|s| matches!(s, TrialState::Complete | TrialState::Pruned))
            .count()
    }

    /// The good group and the other trials TPE learns from (pruned ones, and
    /// running ones with the constant liar), each in chronological order: the same
    /// split as `TpeProposer::ranked`.
    pub(crate) fn groups(&self, objectives: &Objectives, liar: bool) -> (Vec<usize>, Vec<usize>) {
        let complete: Vec<usize> = (0..self.numbers.len())
            .filter(|&i| self.values[i].is_some())
            .collect();
        let worse = self
            .states
            .iter()
            .filter(|s| **s == TrialState::Pruned || (liar && **s == TrialState::Running))
            .count();
        let n = complete.len() + worse;
        let n_good = ((0.1 * n as f64).ceil() as usize)
            .min(25)
            .min(complete.len());
        let value = |i: usize| self.values[i].as_deref().unwrap_or_default();
        let mut good: Vec<usize> = if let [direction] = objectives.directions[..] {
            let mut order = complete;
            let by = |&a: &usize, &b: &usize| {
                let order = value(a)[0].total_cmp(&value(b)[0]);
                let order = if direction == firebreak_core::Direction::Maximize {
                    order.reverse()
                } else {
                    order
                };
                order.then(self.numbers[a].cmp(&self.numbers[b]))
            };
            if n_good > 0 && n_good < order.len() {
                order.select_nth_unstable_by(n_good - 1, by);
            }
            order.truncate(n_good);
            order
        } else {
            let points: Vec<Vec<f64>> = complete.iter().map(|&i| value(i).to_vec()).collect();
            let mut order = Vec::with_capacity(n_good);
            for front in crate::nsga2::fronts(objectives, &points) {
                let distance = crate::nsga2::crowding(&front, &points);
                let mut members: Vec<(usize, f64)> = front.into_iter().zip(distance).collect();
                members.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                order.extend(members.into_iter().map(|(i, _)| complete[i]));
                if order.len() >= n_good {
                    break;
                }
            }
            order.truncate(n_good);
            order
        };
        good.sort_unstable();
        let mut in_good = vec![false; self.numbers.len()];
        for &i in &good {
            in_good[i] = true;
        }
        let bad = (0..self.numbers.len())
            .filter(|&i| {
                !in_good[i]
                    && (self.values[i].is_some()
                        || self.states[i] == TrialState::Pruned
                        || (liar && self.states[i] == TrialState::Running))
            })
            .collect();
        (good, bad)
    }

    /// The parameters (by index) that every trial of `rows` has.
    pub(crate) fn shared(&self, rows: &[usize]) -> Vec<bool> {
        self.columns
            .iter()
            .map(|c| rows.iter().all(|&i| c.has[i]))
            .collect()
    }

    /// Fits the joint estimator of `rows` (chronological) over the parameters
    /// `dims` (indices); `group` 0 is the good group, 1 the other trials.
    pub(crate) fn fit(&mut self, dims: &[usize], rows: &[usize], group: usize, prior: f64) -> Fit {
        let n = rows.len();
        let kernels_n = n + 1;
        let mut weights = recency_weights(n);
        weights.push(prior);
        let total: f64 = weights.iter().sum();
        let log_weights: Vec<f64> = weights.iter().map(|w| (w / total).ln()).collect();
        // Position of each trial among `rows`, for the walks over sorted columns.
        let walk = n > 64;
        let mut position = Vec::new();
        if walk {
            position = vec![u32::MAX; self.numbers.len()];
            for (k, &i) in rows.iter().enumerate() {
                position[i] = k as u32;
            }
        }
        let mut members = Vec::with_capacity(n);
        let mut sorted = Vec::with_capacity(n);
        let dims = dims
            .iter()
            .map(|&d| {
                let column = &mut self.columns[d];
                let Some(axis) = self.axes[d] else {
                    let Distribution::Categorical { choices } = &self.parameters[d].distribution
                    else {
                        unreachable!("non-numerical parameters are categorical")
                    };
                    return Dim::Categorical {
                        choices: choices.clone(),
                        kernel_choice: rows.iter().map(|&i| column.xs[i]).collect(),
                        p: prior / kernels_n as f64,
                    };
                };
                let (low, high) = (axis.low, axis.high);
                let (mus, sigmas) = if walk {
                    let mus: Vec<f64> = rows.iter().map(|&i| column.xs[i]).collect();
                    members.clear();
                    members.extend(
                        column
                            .sorted
                            .iter()
                            .map(|&r| position[r as usize])
                            .filter(|&k| k != u32::MAX),
                    );
                    sorted.clear();
                    sorted.extend(members.iter().map(|&k| mus[k as usize]));
                    let mut sigmas = vec![high - low; kernels_n];
                    bandwidths(&sorted, low, high, |rank, s| {
                        sigmas[members[rank] as usize] = s;
                    });
                    let mut mus = mus;
                    mus.push((low + high) / 2.0);
                    (mus, sigmas)
                } else {
                    let xs: Vec<f64> = rows.iter().map(|&i| column.xs[i]).collect();
                    kernels(&xs, low, high)
                };
                let cache = &mut column.normalisers[group];
                let mut log_masses = Vec::with_capacity(kernels_n);
                let mut log_sigmas = Vec::with_capacity(kernels_n);
                for (k, &i) in rows.iter().enumerate() {
                    let entry = &mut cache[i];
                    if entry.0.to_bits() != sigmas[k].to_bits() {
                        *entry = (
                            sigmas[k],
                            log_mass(mus[k], sigmas[k], low, high),
                            sigmas[k].ln(),
                        );
                    }
                    log_masses.push(entry.1);
                    log_sigmas.push(entry.2);
                }
                log_masses.push(log_mass(mus[n], sigmas[n], low, high));
                log_sigmas.push(sigmas[n].ln());
                Dim::Numeric {
                    axis,
                    mus,
                    sigmas,
                    log_masses,
                    log_sigmas,
                }
            })
            .collect();
        Fit { log_weights, dims }
    }
}

/// One parameter of a fitted joint estimator.
#[derive(Debug)]
pub(crate) enum Dim {
    Numeric {
        axis: Axis,
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        log_masses: Vec<f64>,
        log_sigmas: Vec<f64>,
    },
    Categorical {
        choices: Vec<ParamValue>,
        /// Per observation kernel, its choice's index (NaN when absent).
        kernel_choice: Vec<f64>,
        /// The prior's share of each observation kernel's choice weights.
        p: f64,
    },
}

/// A fitted joint estimator: one kernel per observation, and the prior last.
#[derive(Debug)]
pub(crate) struct Fit {
    log_weights: Vec<f64>,
    dims: Vec<Dim>,
}

impl Fit {
    /// One draw: a kernel by weight, then each parameter from that kernel (the
    /// draws of the straightforward estimator, number for number).
    pub(crate) fn sample(&self, rng: &mut Rng) -> Vec<ParamValue> {
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
                Dim::Categorical {
                    choices,
                    kernel_choice,
                    p,
                } => {
                    let k = choices.len();
                    let row: Vec<f64> = match kernel_choice.get(kernel) {
                        Some(&c) => {
                            let mut row = vec![*p; k];
                            if !c.is_nan() {
                                row[c as usize] += 1.0;
                            }
                            let sum: f64 = row.iter().sum();
                            row.iter().map(|x| x / sum).collect()
                        }
                        None => vec![1.0 / k as f64; k],
                    };
                    let u = rng.next_f64();
                    let mut acc = 0.0;
                    let mut chosen = k - 1;
                    for (i, p) in row.iter().enumerate() {
                        acc += p;
                        if u < acc {
                            chosen = i;
                            break;
                        }
                    }
                    choices[chosen].clone()
                }
                Dim::Numeric {
                    axis, mus, sigmas, ..
                } => axis.snap(crate::tpe::sample_truncated(
                    mus[kernel],
                    sigmas[kernel],
                    axis.low,
                    axis.high,
                    rng,
                )),
            })
            .collect()
    }

    /// The estimator laid out for scoring.
    pub(crate) fn scorer(&self) -> Scorer {
        let kernels_n = self.log_weights.len();
        let mut constant = self.log_weights.clone();
        let mut continuous = Vec::new();
        let mut discrete = Vec::new();
        let mut categorical = Vec::new();
        for (d, dim) in self.dims.iter().enumerate() {
            match dim {
                Dim::Numeric {
                    axis,
                    mus,
                    sigmas,
                    log_masses,
                    log_sigmas,
                } => {
                    if axis.step.is_some() {
                        discrete.push(d);
                        continue;
                    }
                    for (k, c) in constant.iter_mut().enumerate() {
                        *c -= log_sigmas[k] + HALF_LN_TAU + log_masses[k];
                    }
                    continuous.push((
                        d,
                        mus.clone(),
                        sigmas.iter().map(|s| 1.0 / s).collect::<Vec<f64>>(),
                    ));
                }
                Dim::Categorical {
                    choices,
                    kernel_choice,
                    p,
                } => {
                    let k = choices.len() as f64;
                    let matched = p * k + 1.0;
                    categorical.push(CategoricalTerms {
                        dim: d,
                        kernel_choice: kernel_choice.clone(),
                        matched: ((p + 1.0) / matched).ln(),
                        other: (p / matched).ln(),
                        absent: (p / (p * k)).ln(),
                        prior: (1.0 / k).ln(),
                    });
                }
            }
        }
        Scorer {
            kernels: kernels_n,
            margin: MARGIN + (kernels_n as f64).ln(),
            constant,
            continuous,
            discrete,
            categorical,
            upper: vec![0.0; kernels_n],
            survivors: Vec::with_capacity(kernels_n),
            logs: Vec::with_capacity(kernels_n),
        }
    }
}

#[derive(Debug)]
struct CategoricalTerms {
    dim: usize,
    kernel_choice: Vec<f64>,
    matched: f64,
    other: f64,
    absent: f64,
    prior: f64,
}

/// A joint estimator's log density, laid out by parameter (centres and inverse
/// bandwidths as columns) with each kernel's constant terms summed once.
#[derive(Debug)]
pub(crate) struct Scorer {
    kernels: usize,
    margin: f64,
    /// Per kernel: log weight minus the continuous dimensions' log normalisers.
    constant: Vec<f64>,
    /// Continuous dimensions: (index, centres, inverse bandwidths).
    continuous: Vec<(usize, Vec<f64>, Vec<f64>)>,
    /// Discrete numerical dimensions (scored by their cell's mass).
    discrete: Vec<usize>,
    categorical: Vec<CategoricalTerms>,
    upper: Vec<f64>,
    survivors: Vec<u32>,
    logs: Vec<f64>,
}

impl Scorer {
    /// The log density of `values` under `fit` (the estimator this scorer was
    /// made from).
    pub(crate) fn log_likelihood(&mut self, fit: &Fit, values: &[ParamValue]) -> f64 {
        // The candidate's coordinates; an unknown value has density zero.
        let mut xs = Vec::with_capacity(self.continuous.len());
        for (d, _, _) in &self.continuous {
            let Dim::Numeric { axis, .. } = &fit.dims[*d] else {
                unreachable!("continuous dimensions are numerical")
            };
            match axis.internal(&values[*d]) {
                Some(x) => xs.push(x),
                None => return f64::NEG_INFINITY,
            }
        }
        let mut cells = Vec::with_capacity(self.discrete.len());
        for &d in &self.discrete {
            let Dim::Numeric { axis, .. } = &fit.dims[d] else {
                unreachable!("discrete dimensions are numerical")
            };
            match axis.cell(&values[d]) {
                Some(cell) => cells.push(cell),
                None => return f64::NEG_INFINITY,
            }
        }
        let mut choices = Vec::with_capacity(self.categorical.len());
        for terms in &self.categorical {
            let Dim::Categorical { choices: all, .. } = &fit.dims[terms.dim] else {
                unreachable!("categorical dimensions are categorical")
            };
            match all.iter().position(|c| c.matches(&values[terms.dim])) {
                Some(c) => choices.push(c as f64),
                None => return f64::NEG_INFINITY,
            }
        }
        // The discrete and categorical terms of kernel `k`.
        let other_terms = |k: usize| -> f64 {
            let mut v = 0.0;
            for (&d, &(lo, hi)) in self.discrete.iter().zip(&cells) {
                let Dim::Numeric {
                    mus,
                    sigmas,
                    log_masses,
                    ..
                } = &fit.dims[d]
                else {
                    unreachable!("discrete dimensions are numerical")
                };
                let (mu, s) = (mus[k], sigmas[k]);
                v += normal_mass((lo - mu) / s, (hi - mu) / s).max(1e-300).ln() - log_masses[k];
            }
            for (terms, &c) in self.categorical.iter().zip(&choices) {
                v += match terms.kernel_choice.get(k) {
                    None => terms.prior,
                    Some(kc) if kc.is_nan() => terms.absent,
                    Some(&kc) if kc == c => terms.matched,
                    Some(_) => terms.other,
                };
            }
            v
        };
        // The continuous dimensions' terms of every kernel, in one dense pass
        // (columns, no branches); the other terms are at most zero, so these bound
        // each kernel's log density from above. The exact values of the prior and
        // of the kernel with the best bound bound the best kernel from below, and
        // only kernels within the margin of that are finished and summed.
        let upper = &mut self.upper;
        upper.copy_from_slice(&self.constant);
        for ((_, mus, inverse), x) in self.continuous.iter().zip(&xs) {
            for ((u, mu), inv) in upper.iter_mut().zip(mus).zip(inverse) {
                let z = (x - mu) * inv;
                *u -= 0.5 * z * z;
            }
        }
        let prior = self.kernels - 1;
        let mut leader = prior;
        for (k, &u) in upper.iter().enumerate() {
            if u > upper[leader] {
                leader = k;
            }
        }
        let floor = (upper[prior] + other_terms(prior)).max(upper[leader] + other_terms(leader))
            - self.margin;
        let floor = if floor.is_nan() {
            f64::NEG_INFINITY
        } else {
            floor
        };
        let survivors = &mut self.survivors;
        survivors.clear();
        for (k, &u) in upper.iter().enumerate() {
            if u >= floor {
                survivors.push(k as u32);
            }
        }
        self.logs.clear();
        let mut top = f64::NEG_INFINITY;
        for &k in survivors.iter() {
            let v = upper[k as usize] + other_terms(k as usize);
            top = top.max(v);
            self.logs.push(v);
        }
        if !top.is_finite() {
            return top;
        }
        top + self.logs.iter().map(|v| (v - top).exp()).sum::<f64>().ln()
    }
}

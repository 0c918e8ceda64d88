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
//! The other trials' estimator is kept from ask to ask (see `kept`), and all
//! candidates are scored in one pass over the kernels (see `bounds`), which
//! keeps per candidate only kernels within the margin of its best.
//!
//! The proposals equal those of the straightforward computation in `tpe.rs`
//! (the same draws from the same numbers); only the scores' rounding differs,
//! and a kernel whose log density falls more than `40 + ln(kernels)` below the
//! best kernel's is left out of the sum (less than `1e-17` of it).

use firebreak_core::{Distribution, Objectives, ParamValue, Parameter, Rng, Trial, TrialState};

use crate::tpe::{Axis, bandwidths, kernels, log_mass, normal_mass, recency_weights};

mod kept;

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
    /// Per trial: whether it has the parameter; how many do not.
    has: Vec<bool>,
    lacking: usize,
    /// Numerical parameters: trials by ascending coordinate, ties by position.
    sorted: Vec<u32>,
    /// Per group (good, bad), per trial: the last bandwidth, with the log of the
    /// kernel's mass in the range and the log of the bandwidth.
    normalisers: [Vec<Normaliser>; 2],
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
    /// With one objective, its value made smaller-is-better (NaN when none).
    keys: Vec<f64>,
    /// The last split into groups, until the history changes.
    groups: Option<(Vec<usize>, Vec<usize>)>,
    columns: Vec<Column>,
    /// Whether the trials' numbers strictly increase (the history's order is the
    /// chronological order); the fast path needs it.
    pub(crate) ordered: bool,
    /// The good group's estimator and the other trials', reused between asks.
    pub(crate) fits: [Fit; 2],
    /// The other trials' fit kept from ask to ask (see `kept`); dropped when a
    /// coordinate changes or the history shrinks.
    kept: Option<kept::Kept>,
    /// Scratch for the walks over sorted columns.
    position: Vec<u32>,
    members: Vec<u32>,
    sorted: Vec<f64>,
}

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
        self.groups = self.groups.take().filter(|_| {
            trials.len() == self.numbers.len()
                && trials
                    .iter()
                    .zip(&self.numbers)
                    .zip(&self.states)
                    .all(|((t, n), s)| t.number == *n && t.state == *s)
        });
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
            self.keys.push(f64::NAN);
            for column in &mut self.columns {
                column.xs.push(f64::NAN);
                column.has.push(false);
                column.lacking += 1;
                for group in &mut column.normalisers {
                    group.push(Normaliser::NONE);
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
        self.keys.truncate(n);
        for column in &mut self.columns {
            column.xs.truncate(n);
            column.has.truncate(n);
            column.lacking = column.has.iter().filter(|h| !**h).count();
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
        self.keys[i] = match (&self.values[i], &objectives.directions[..]) {
            (Some(v), [firebreak_core::Direction::Maximize]) => -v[0],
            (Some(v), [_]) => v[0],
            _ => f64::NAN,
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
            if column.has[i] != value.is_some() {
                column.has[i] = value.is_some();
                column.lacking = if value.is_some() {
                    column.lacking - 1
                } else {
                    column.lacking + 1
                };
            }
            if column.xs[i].to_bits() != x.to_bits() {
                changed |= !column.xs[i].is_nan() || column.sorted.len() > i;
                column.xs[i] = x;
                for group in &mut column.normalisers {
                    group[i] = Normaliser::NONE;
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
        self.kept = None;
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
    pub(crate) fn groups(
        &mut self,
        objectives: &Objectives,
        liar: bool,
    ) -> (Vec<usize>, Vec<usize>) {
        if let Some(groups) = &self.groups {
            return groups.clone();
        }
        let groups = self.split(objectives, liar);
        self.groups = Some(groups.clone());
        groups
    }

    fn split(&self, objectives: &Objectives, liar: bool) -> (Vec<usize>, Vec<usize>) {
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
        let mut good: Vec<usize> = if let [_] = objectives.directions[..] {
            // Smaller keys first (the negated value when maximising reverses the
            // total order exactly), ties by number.
            let mut order = complete;
            let by = |&a: &usize, &b: &usize| {
                self.keys[a]
                    .total_cmp(&self.keys[b])
                    .then(self.numbers[a].cmp(&self.numbers[b]))
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
            .map(|c| c.lacking == 0 || rows.iter().all(|&i| c.has[i]))
            .collect()
    }

    /// Fits the joint estimator of `rows` (chronological) over the parameters
    /// `dims` (indices) into `self.fits[group]`; `group` 0 is the good group, 1
    /// the other trials. The fit's buffers are reused from ask to ask.
    pub(crate) fn fit(&mut self, dims: &[usize], rows: &[usize], group: usize, prior: f64) {
        let fit = &mut self.fits[group];
        let n = rows.len();
        let kernels_n = n + 1;
        let mut weights = recency_weights(n);
        weights.push(prior);
        let total: f64 = weights.iter().sum();
        fit.log_weights.clear();
        fit.log_weights
            .extend(weights.iter().map(|w| (w / total).ln()));
        fit.weights.clear();
        fit.weights
            .extend(fit.log_weights.iter().map(|lw| lw.exp()));
        fit.kernels = kernels_n;
        fit.margin = MARGIN + (kernels_n as f64).ln();
        fit.constant.clear();
        fit.constant.extend_from_slice(&fit.log_weights);
        fit.continuous.clear();
        fit.discrete.clear();
        fit.categorical.clear();
        // Position of each trial among `rows`, for the walks over sorted columns.
        let walk = n > 64;
        let position = &mut self.position;
        if walk {
            position.clear();
            position.resize(self.numbers.len(), u32::MAX);
            for (k, &i) in rows.iter().enumerate() {
                position[i] = k as u32;
            }
        }
        let mut spare = std::mem::take(&mut fit.dims).into_iter();
        for (j, &d) in dims.iter().enumerate() {
            let column = &mut self.columns[d];
            let recycled = spare.next();
            let Some(axis) = self.axes[d] else {
                let Distribution::Categorical { choices } = &self.parameters[d].distribution else {
                    unreachable!("non-numerical parameters are categorical")
                };
                let (p, matched, other, absent) = choice_weights(prior, kernels_n, choices.len());
                fit.categorical.push(j);
                fit.dims.push(Dim::Categorical {
                    choices: choices.clone(),
                    kernel_choice: rows.iter().map(|&i| column.xs[i]).collect(),
                    p,
                    matched,
                    other,
                    absent,
                    prior: (1.0 / choices.len() as f64).ln(),
                });
                continue;
            };
            let (mut mus, mut sigmas, mut square, mut linear, mut log_masses) = match recycled {
                Some(Dim::Numeric {
                    mus,
                    sigmas,
                    square,
                    linear,
                    log_masses,
                    ..
                }) => (mus, sigmas, square, linear, log_masses),
                _ => Default::default(),
            };
            let (low, high) = (axis.low, axis.high);
            mus.clear();
            mus.extend(rows.iter().map(|&i| column.xs[i]));
            mus.push((low + high) / 2.0);
            sigmas.clear();
            sigmas.resize(kernels_n, high - low);
            if walk {
                let (members, sorted) = (&mut self.members, &mut self.sorted);
                members.clear();
                members.resize(n, 0);
                let mut m = 0;
                for &r in &column.sorted {
                    let k = position[r as usize];
                    if k != u32::MAX {
                        members[m] = k;
                        m += 1;
                    }
                }
                sorted.clear();
                sorted.extend(members.iter().map(|&k| mus[k as usize]));
                bandwidths(sorted, low, high, |rank, s| {
                    sigmas[members[rank] as usize] = s;
                });
            } else {
                let (_, s) = kernels(&mus[..n], low, high);
                sigmas.copy_from_slice(&s);
            }
            let cache = &mut column.normalisers[group];
            square.clear();
            square.resize(kernels_n, 0.0);
            linear.clear();
            linear.resize(kernels_n, 0.0);
            log_masses.clear();
            log_masses.resize(kernels_n, 0.0);
            let continuous = axis.step.is_none();
            let constant = &mut fit.constant[..kernels_n];
            for (k, &i) in rows.iter().enumerate() {
                let entry = &mut cache[i];
                if entry.sigma.to_bits() != sigmas[k].to_bits() {
                    *entry = Normaliser::new(mus[k], sigmas[k], low, high);
                }
                square[k] = entry.square;
                linear[k] = entry.linear;
                log_masses[k] = entry.log_mass;
                if continuous {
                    constant[k] -= entry.term;
                }
            }
            let last = Normaliser::new(mus[n], sigmas[n], low, high);
            square[n] = last.square;
            linear[n] = last.linear;
            log_masses[n] = last.log_mass;
            if continuous {
                constant[n] -= last.term;
                fit.continuous.push(j);
            } else {
                fit.discrete.push(j);
            }
            fit.dims.push(Dim::Numeric {
                axis,
                mus,
                sigmas,
                square,
                linear,
                log_masses,
            });
        }
    }
}

/// A categorical dimension's kernel weights with `kernels` kernels (the prior's
/// included), `prior` the prior's weight and `choices` choices: the prior's
/// share `p` of each observation kernel's choice weights, and the log
/// probabilities of a kernel's own choice, of another choice, and of any choice
/// for a kernel without one.
fn choice_weights(prior: f64, kernels: usize, choices: usize) -> (f64, f64, f64, f64) {
    let p = prior / kernels as f64;
    let k = choices as f64;
    let total = p * k + 1.0;
    (
        p,
        ((p + 1.0) / total).ln(),
        (p / total).ln(),
        (p / (p * k)).ln(),
    )
}

/// A kernel's bandwidth with what scoring needs of it.
#[derive(Debug, Clone, Copy)]
struct Normaliser {
    sigma: f64,
    /// With `u` the coordinate centred on the range and divided by its width,
    /// `z²/2 = square·u² - linear·u + square·m²` for the kernel's centre `m` in
    /// the same units: two fused multiply-adds per kernel and candidate, the
    /// last term (constant per kernel) in `term`. Scaled to the range, `square`
    /// stays below 5,000 (bandwidths are at least a hundredth of the range), so
    /// the expansion loses no more than about 1e-12 to rounding.
    square: f64,
    linear: f64,
    /// Log of the kernel's mass inside the range.
    log_mass: f64,
    /// `ln sigma + ln(2π)/2 + log_mass + square·m²`: what a continuous dimension
    /// takes off the kernel's log density besides the terms in `u`.
    term: f64,
}

impl Normaliser {
    const NONE: Normaliser = Normaliser {
        sigma: f64::NAN,
        square: 0.0,
        linear: 0.0,
        log_mass: 0.0,
        term: 0.0,
    };

    fn new(mu: f64, sigma: f64, low: f64, high: f64) -> Normaliser {
        let log_mass = log_mass(mu, sigma, low, high);
        let range = high - low;
        let centre = centred(mu, low, high);
        let scaled = std::f64::consts::FRAC_1_SQRT_2 * range / sigma;
        let square = scaled * scaled;
        Normaliser {
            sigma,
            square,
            linear: 2.0 * centre * square,
            log_mass,
            term: sigma.ln() + HALF_LN_TAU + log_mass + centre * centre * square,
        }
    }
}

/// A candidate's discrete cells and categorical choice indices.
type Found = (Vec<(f64, f64)>, Vec<f64>);

/// One parameter of a fitted joint estimator.
#[derive(Debug, Clone)]
enum Dim {
    Numeric {
        axis: Axis,
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        /// Continuous dimensions: the kernels' `square` and `linear` (see
        /// `Normaliser`).
        square: Vec<f64>,
        linear: Vec<f64>,
        log_masses: Vec<f64>,
    },
    Categorical {
        choices: Vec<ParamValue>,
        /// Per observation kernel, its choice's index (NaN when absent).
        kernel_choice: Vec<f64>,
        /// The prior's share of each observation kernel's choice weights.
        p: f64,
        /// Log probabilities: of a kernel's own choice, of another choice, of any
        /// choice for a kernel without one, of any choice under the prior.
        matched: f64,
        other: f64,
        absent: f64,
        prior: f64,
    },
}

/// A fitted joint estimator: one kernel per observation and the prior last,
/// laid out for scoring (centres and inverse bandwidths as columns, each kernel's
/// constant terms summed once), with its scratch buffers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fit {
    log_weights: Vec<f64>,
    /// The weights themselves, for `sample`: the full fit's (the kept fit of
    /// the other trials is never sampled and leaves them out).
    weights: Vec<f64>,
    dims: Vec<Dim>,
    kernels: usize,
    margin: f64,
    /// Per kernel: log weight minus the continuous dimensions' normalisers.
    constant: Vec<f64>,
    /// Indices into `dims` by kind.
    continuous: Vec<usize>,
    discrete: Vec<usize>,
    categorical: Vec<usize>,
    /// Per candidate, the kernels a scan kept (see `Scan`).
    scans: Vec<Scan>,
}

impl Fit {
    /// One draw: a kernel by weight, then each parameter from that kernel (the
    /// draws of the straightforward estimator, number for number).
    pub(crate) fn sample(&self, rng: &mut Rng) -> Vec<ParamValue> {
        let u = rng.next_f64();
        let mut acc = 0.0;
        let mut kernel = self.log_weights.len() - 1;
        for (i, w) in self.weights.iter().enumerate() {
            acc += w;
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
                    ..
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

    /// The log densities of `candidates` (each one value per dimension).
    ///
    /// The continuous dimensions' terms bound each kernel's log density from
    /// above (the other terms are at most zero). The prior's exact value, less
    /// the margin, is a first floor; one dense pass over the kernels computes
    /// every candidate's bounds (see `bounds`) and keeps the kernels above its
    /// floor, raising the floor as better bounds appear when the bounds are
    /// exact. Then, per candidate, the exact values of the prior and of the
    /// kernel with the best bound give the final floor, and only kept kernels
    /// above it are finished and summed: the kernels the straightforward sum
    /// over every kernel keeps, in the same order.
    pub(crate) fn log_likelihoods(&mut self, candidates: &[Vec<ParamValue>]) -> Vec<f64> {
        let n = self.kernels;
        let prior = n - 1;
        let width = self.continuous.len();
        let exact = self.discrete.is_empty() && self.categorical.is_empty();
        // Per candidate, its coordinates (`None`: a value outside the estimator,
        // density zero); the continuous ones, with their squares, in `terms`.
        let mut terms = Vec::with_capacity(candidates.len() * width);
        let coordinates: Vec<Option<Found>> = candidates
            .iter()
            .map(|values| {
                let start = terms.len();
                let found = self.coordinates(values, &mut terms);
                if found.is_none() {
                    terms.truncate(start);
                    terms.resize(start + width, (0.0, 0.0));
                }
                found
            })
            .collect();
        let columns: Vec<(&[f64], &[f64])> = self
            .continuous
            .iter()
            .map(|&d| {
                let Dim::Numeric { square, linear, .. } = &self.dims[d] else {
                    unreachable!("continuous dimensions are numerical")
                };
                (&square[..n], &linear[..n])
            })
            .collect();
        // The prior's exact values: the first floors.
        let mut priors = Vec::with_capacity(candidates.len());
        let mut scans = std::mem::take(&mut self.scans);
        scans.resize_with(candidates.len(), Scan::default);
        for (c, (scan, found)) in scans.iter_mut().zip(&coordinates).enumerate() {
            let row = &terms[c * width..(c + 1) * width];
            let prior_bound = bound(prior, self.constant[prior], &columns, row);
            let value = match found {
                Some((cells, choices)) => prior_bound + self.other_terms(prior, cells, choices),
                None => f64::NEG_INFINITY,
            };
            priors.push((prior_bound, value));
            scan.start(not_nan(value - self.margin), self.margin, exact);
        }
        bounds(&mut scans, &self.constant[..n], &columns, &terms);
        let values = coordinates
            .iter()
            .zip(&scans)
            .zip(&priors)
            .map(|((found, scan), &(prior_bound, prior_value))| match found {
                Some((cells, choices)) => {
                    self.finish(scan, prior_bound, prior_value, cells, choices)
                }
                None => f64::NEG_INFINITY,
            })
            .collect();
        self.scans = scans;
        values
    }

    /// A candidate's discrete cells and categorical choice indices, its
    /// continuous coordinates (centred, with their negated squares) pushed onto
    /// `terms`; `None` when a value is outside the estimator.
    fn coordinates(&self, values: &[ParamValue], terms: &mut Vec<(f64, f64)>) -> Option<Found> {
        let mut cells = Vec::with_capacity(self.discrete.len());
        let mut choices = Vec::with_capacity(self.categorical.len());
        for (dim, value) in self.dims.iter().zip(values) {
            match dim {
                Dim::Numeric { axis, .. } if axis.step.is_none() => {
                    let u = centred(axis.internal(value)?, axis.low, axis.high);
                    terms.push((u, -(u * u)));
                }
                Dim::Numeric { axis, .. } => cells.push(axis.cell(value)?),
                Dim::Categorical { choices: all, .. } => {
                    choices.push(all.iter().position(|c| c.matches(value))? as f64);
                }
            }
        }
        Some((cells, choices))
    }

    /// The discrete and categorical terms of kernel `k` for a candidate's
    /// `cells` and `choices`.
    fn other_terms(&self, k: usize, cells: &[(f64, f64)], choices: &[f64]) -> f64 {
        let mut v = 0.0;
        for (&d, &(lo, hi)) in self.discrete.iter().zip(cells) {
            let Dim::Numeric {
                mus,
                sigmas,
                log_masses,
                ..
            } = &self.dims[d]
            else {
                unreachable!("discrete dimensions are numerical")
            };
            let (mu, s) = (mus[k], sigmas[k]);
            v += normal_mass((lo - mu) / s, (hi - mu) / s).max(1e-300).ln() - log_masses[k];
        }
        for (&d, &c) in self.categorical.iter().zip(choices) {
            let Dim::Categorical {
                kernel_choice,
                matched,
                other,
                absent,
                prior,
                ..
            } = &self.dims[d]
            else {
                unreachable!("categorical dimensions are categorical")
            };
            v += match kernel_choice.get(k) {
                None => *prior,
                Some(kc) if kc.is_nan() => *absent,
                Some(&kc) if kc == c => *matched,
                Some(_) => *other,
            };
        }
        v
    }

    /// A candidate's log density from its `scan`, the prior's bound and exact
    /// value, its discrete `cells` and categorical `choices`.
    fn finish(
        &self,
        scan: &Scan,
        prior_bound: f64,
        prior_value: f64,
        cells: &[(f64, f64)],
        choices: &[f64],
    ) -> f64 {
        let best = if scan.exact {
            scan.best
        } else {
            match scan.leader {
                Some(k) => scan.best + self.other_terms(k as usize, cells, choices),
                None => prior_bound + self.other_terms(self.kernels - 1, cells, choices),
            }
        };
        let floor = not_nan(prior_value.max(best) - self.margin);
        let mut logs = Vec::with_capacity(scan.kept.len());
        let mut top = f64::NEG_INFINITY;
        for &(k, u) in &scan.kept {
            if u >= floor {
                let v = u + self.other_terms(k as usize, cells, choices);
                top = top.max(v);
                logs.push(v);
            }
        }
        if !top.is_finite() {
            return top;
        }
        top + logs.iter().map(|v| (v - top).exp()).sum::<f64>().ln()
    }
}

/// `floor`, or no floor when it is NaN.
fn not_nan(floor: f64) -> f64 {
    if floor.is_nan() {
        f64::NEG_INFINITY
    } else {
        floor
    }
}

/// One candidate's pass over the kernels: the best bound with its first
/// kernel, and the kernels whose bound reached the floor when they were seen,
/// in kernel order. The floor starts at the prior's exact value less the
/// margin and, when bounds are exact values, rises to the best bound less the
/// margin; it never exceeds the final floor, so every kernel the final floor
/// keeps is kept here.
#[derive(Debug, Clone, Default)]
struct Scan {
    floor: f64,
    margin: f64,
    exact: bool,
    best: f64,
    leader: Option<u32>,
    kept: Vec<(u32, f64)>,
}

impl Scan {
    fn start(&mut self, floor: f64, margin: f64, exact: bool) {
        *self = Scan {
            floor,
            margin,
            exact,
            best: f64::NEG_INFINITY,
            leader: None,
            kept: std::mem::take(&mut self.kept),
        };
        self.kept.clear();
    }

    /// Kernel `k`'s bound `u`, kernels in order.
    #[inline(always)]
    fn see(&mut self, k: usize, u: f64) {
        if u >= self.floor {
            self.kept.push((k as u32, u));
            if u > self.best {
                self.best = u;
                self.leader = Some(k as u32);
                if self.exact {
                    self.floor = self.floor.max(u - self.margin);
                }
            }
        }
    }
}

/// `x` centred on `[low, high]` and divided by its width.
fn centred(x: f64, low: f64, high: f64) -> f64 {
    (x - (low + high) / 2.0) / (high - low)
}

/// For every candidate `c` and kernel `k`, the bound `constant[k] + Σ
/// (linear[k]·u + square[k]·v)` over the `(square, linear)` columns, with
/// `(u, v)` the candidate's row of `terms` (its centred coordinate and the
/// negated square of it), seen by the candidate's `Scan` in kernel order. The
/// scoring's inner loop: two fused multiply-adds per kernel, candidate and
/// column. In AVX2 and FMA where the CPU has them; the portable path's
/// `mul_add` rounds once too, and the columns go in the same order, so the bits
/// are the same either way.
fn bounds(
    scans: &mut [Scan],
    constant: &[f64],
    columns: &[(&[f64], &[f64])],
    terms: &[(f64, f64)],
) {
    let n = constant.len();
    assert!(
        terms.len() == scans.len() * columns.len()
            && columns.iter().all(|c| c.0.len() == n && c.1.len() == n)
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above, and the
        // slices' lengths agree, asserted above.
        unsafe { bounds_avx2(scans, constant, columns, terms) };
        return;
    }
    bounds_from(0, scans, constant, columns, terms);
}

/// Kernel `k`'s bound for a candidate's `row` of terms, from its `constant`:
/// the computation `bounds_avx2` makes lane by lane, in the same order.
#[inline(always)]
fn bound(k: usize, constant: f64, columns: &[(&[f64], &[f64])], row: &[(f64, f64)]) -> f64 {
    let mut sum = constant;
    for (&(square, linear), &(u, v)) in columns.iter().zip(row) {
        sum = linear[k].mul_add(u, sum);
        sum = square[k].mul_add(v, sum);
    }
    sum
}

/// `bounds` for the kernels from `start` on, one at a time (inlined into
/// `bounds_avx2`, so `mul_add` is one instruction there).
#[inline(always)]
fn bounds_from(
    start: usize,
    scans: &mut [Scan],
    constant: &[f64],
    columns: &[(&[f64], &[f64])],
    terms: &[(f64, f64)],
) {
    let width = columns.len();
    for (c, scan) in scans.iter_mut().enumerate() {
        let row = &terms[c * width..(c + 1) * width];
        for (k, &base) in constant.iter().enumerate().skip(start) {
            scan.see(k, bound(k, base, columns, row));
        }
    }
}

/// `bounds` in blocks of 32 kernels: a block's columns stay in the first-level
/// cache while every candidate passes over them (one pass from memory, not one
/// per candidate), and a candidate's sums stay in eight registers across the
/// columns (eight independent chains keep both FMA units busy). A block goes to
/// the candidate's scan only when one of its bounds reaches the scan's floor.
///
/// # Safety
/// The CPU supports AVX2 and FMA; the slices' lengths agree as `bounds`
/// asserts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bounds_avx2(
    scans: &mut [Scan],
    constant: &[f64],
    columns: &[(&[f64], &[f64])],
    terms: &[(f64, f64)],
) {
    use std::arch::x86_64::{
        _CMP_GE_OQ, _mm256_cmp_pd, _mm256_fmadd_pd, _mm256_loadu_pd, _mm256_max_pd,
        _mm256_movemask_pd, _mm256_set1_pd, _mm256_setzero_pd, _mm256_storeu_pd,
    };
    const VECTORS: usize = 8;
    const BLOCK: usize = 4 * VECTORS;
    let n = constant.len();
    let width = columns.len();
    let blocks = n - n % BLOCK;
    for start in (0..blocks).step_by(BLOCK) {
        for (c, scan) in scans.iter_mut().enumerate() {
            let row = &terms[c * width..(c + 1) * width];
            // SAFETY (every load below): `start + BLOCK <= n`, and every column
            // and `constant` have length `n`.
            let mut sums = [_mm256_setzero_pd(); VECTORS];
            for (v, sum) in sums.iter_mut().enumerate() {
                *sum = unsafe { _mm256_loadu_pd(constant.as_ptr().add(start + 4 * v)) };
            }
            for (&(square, linear), &(u, v)) in columns.iter().zip(row) {
                let (u, v) = (_mm256_set1_pd(u), _mm256_set1_pd(v));
                for (j, sum) in sums.iter_mut().enumerate() {
                    let at = start + 4 * j;
                    let (l, q) = unsafe {
                        (
                            _mm256_loadu_pd(linear.as_ptr().add(at)),
                            _mm256_loadu_pd(square.as_ptr().add(at)),
                        )
                    };
                    *sum = _mm256_fmadd_pd(q, v, _mm256_fmadd_pd(l, u, *sum));
                }
            }
            // NaN lanes give way (`max` returns its second operand then).
            let lowest = _mm256_set1_pd(f64::NEG_INFINITY);
            let top = sums.iter().fold(lowest, |m, &s| _mm256_max_pd(s, m));
            let reached = _mm256_cmp_pd::<_CMP_GE_OQ>(top, _mm256_set1_pd(scan.floor));
            if _mm256_movemask_pd(reached) != 0 {
                let mut block = [0.0; BLOCK];
                for (j, sum) in sums.into_iter().enumerate() {
                    // SAFETY: `block` holds `BLOCK` values.
                    unsafe { _mm256_storeu_pd(block.as_mut_ptr().add(4 * j), sum) };
                }
                for (k, u) in block.into_iter().enumerate() {
                    scan.see(start + k, u);
                }
            }
        }
    }
    bounds_from(blocks, scans, constant, columns, terms);
}

//! The other trials' estimator kept from ask to ask.
//!
//! Between two asks the other trials (TPE's `g`) change by a trial or two: the
//! one just told joins, and one may move to or from the good group. Refitting
//! them all is linear in the history per ask (quadratic over a campaign) and was
//! most of an ask's cost. [`Kept`] instead keeps the fit's kernels in slots (a
//! joining trial takes a new slot at the end, a leaving one's slot takes the
//! last kernel), each numerical dimension's members in coordinate order, and per
//! slot its continuous dimensions' normalising terms summed; an ask then removes
//! and inserts the changed members, recomputes the bandwidths of their
//! neighbours only, and rewrites the recency weights (they depend on the group's
//! size). The bandwidths and normalisers equal the full fit's, bit for bit; the
//! kernels' order and the rounding of each kernel's constant differ, which only
//! the scores' last bits see. `g` is only scored, never sampled, so its kernel
//! order is free.

use super::{Columns, Dim, Normaliser, choice_weights};
use crate::tpe::{bandwidth, recency_weights};

/// Below this many members the bandwidths' floor depends on the count, so every
/// bandwidth may change: the full fit runs instead.
const FLOOR_FIXED: usize = 98;

/// The kept state of the other trials' fit (see the module docs).
#[derive(Debug, Clone, Default)]
pub(super) struct Kept {
    dims: Vec<usize>,
    prior: f64,
    /// Per slot, its trial; per trial, its slot (`u32::MAX` when not a member).
    trials: Vec<u32>,
    slots: Vec<u32>,
    /// Per dimension of `dims`: for a numerical one, the members by ascending
    /// coordinate, ties by trial (the order of the column's `sorted`).
    orders: Vec<Vec<u32>>,
    /// Per slot: the continuous dimensions' `term`s summed, in `dims` order.
    terms: Vec<f64>,
}

impl Columns {
    /// Fits the other trials, `rows` (chronological), over `dims` into
    /// `self.fits[1]`: from the kept state when it applies, else by the full
    /// fit, after which the state is kept.
    pub(crate) fn fit_other(&mut self, dims: &[usize], rows: &[usize], prior: f64) {
        let kept = self.kept.take().filter(|k| {
            k.dims == dims
                && k.prior.to_bits() == prior.to_bits()
                && k.trials.len() >= FLOOR_FIXED
                && rows.len() >= FLOOR_FIXED
        });
        match kept {
            Some(kept) => self.kept = Some(self.update(kept, rows, prior)),
            None => {
                self.fit(dims, rows, 1, prior);
                self.kept = Some(self.keep(dims, rows, prior));
            }
        }
    }

    /// The kept state of a full fit of `rows`.
    fn keep(&self, dims: &[usize], rows: &[usize], prior: f64) -> Kept {
        let mut slots = vec![u32::MAX; self.numbers.len()];
        for (s, &i) in rows.iter().enumerate() {
            slots[i] = s as u32;
        }
        let orders = dims
            .iter()
            .map(|&d| match self.axes[d] {
                Some(_) => self.columns[d]
                    .sorted
                    .iter()
                    .copied()
                    .filter(|&i| slots[i as usize] != u32::MAX)
                    .collect(),
                None => Vec::new(),
            })
            .collect();
        let mut kept = Kept {
            dims: dims.to_vec(),
            prior,
            trials: rows.iter().map(|&i| i as u32).collect(),
            slots,
            orders,
            terms: Vec::new(),
        };
        kept.terms = rows.iter().map(|&i| self.terms_of(&kept, i)).collect();
        kept
    }

    /// Trial `i`'s continuous dimensions' normalising terms, summed in order.
    fn terms_of(&self, kept: &Kept, i: usize) -> f64 {
        kept.dims
            .iter()
            .filter(|&&d| self.axes[d].is_some_and(|a| a.step.is_none()))
            .map(|&d| self.columns[d].normalisers[1][i].term)
            .sum()
    }

    /// One ask's changes applied to `kept` and the fit.
    fn update(&mut self, mut kept: Kept, rows: &[usize], prior: f64) -> Kept {
        let old = kept.trials.len();
        kept.slots.resize(self.numbers.len(), u32::MAX);
        let mut member = vec![false; self.numbers.len()];
        for &i in rows {
            member[i] = true;
        }
        let leaving: Vec<u32> = kept
            .trials
            .iter()
            .copied()
            .filter(|&i| !member[i as usize])
            .collect();
        let joining: Vec<u32> = rows
            .iter()
            .map(|&i| i as u32)
            .filter(|&i| kept.slots[i as usize] == u32::MAX)
            .collect();
        let fit = &mut self.fits[1];
        // The prior kernel goes last again at the end.
        for dim in &mut fit.dims {
            for column in dim.kernel_columns().into_iter().flatten() {
                column.truncate(old);
            }
        }
        // Per numerical dimension, the members whose bandwidth may have changed.
        let mut touched: Vec<Vec<u32>> = vec![Vec::new(); kept.dims.len()];
        for &i in &leaving {
            let s = kept.slots[i as usize] as usize;
            kept.trials.swap_remove(s);
            kept.terms.swap_remove(s);
            for dim in &mut fit.dims {
                match dim.kernel_columns() {
                    Some(columns) => {
                        for column in columns {
                            column.swap_remove(s);
                        }
                    }
                    None => {
                        dim.kernel_choice().swap_remove(s);
                    }
                }
            }
            if let Some(&moved) = kept.trials.get(s) {
                kept.slots[moved as usize] = s as u32;
            }
            kept.slots[i as usize] = u32::MAX;
            for ((order, &d), touched) in kept.orders.iter_mut().zip(&kept.dims).zip(&mut touched) {
                if self.axes[d].is_none() {
                    continue;
                }
                let r = rank(order, &self.columns[d].xs, i);
                order.remove(r);
                touched.extend(r.checked_sub(1).map(|r| order[r]));
                touched.extend(order.get(r).copied());
            }
        }
        for &i in &joining {
            kept.slots[i as usize] = kept.trials.len() as u32;
            kept.trials.push(i);
            kept.terms.push(0.0);
            for (dim, &d) in fit.dims.iter_mut().zip(&kept.dims) {
                let x = self.columns[d].xs[i as usize];
                match dim.kernel_columns() {
                    // The centre now, the rest once its bandwidth is known.
                    Some([mus, rest @ ..]) => {
                        mus.push(x);
                        for column in rest {
                            column.push(f64::NAN);
                        }
                    }
                    None => dim.kernel_choice().push(x),
                }
            }
            for ((order, &d), touched) in kept.orders.iter_mut().zip(&kept.dims).zip(&mut touched) {
                if self.axes[d].is_none() {
                    continue;
                }
                let r = rank(order, &self.columns[d].xs, i);
                order.insert(r, i);
                touched.extend(r.checked_sub(1).map(|r| order[r]));
                touched.push(i);
                touched.extend(order.get(r + 1).copied());
            }
        }
        // The touched members' bandwidths, normalisers and summed terms.
        let n = kept.trials.len();
        let mut dirty = Vec::new();
        for (((dim, &d), order), touched) in fit
            .dims
            .iter_mut()
            .zip(&kept.dims)
            .zip(&kept.orders)
            .zip(&touched)
        {
            let (
                Some(axis),
                Dim::Numeric {
                    sigmas,
                    square,
                    linear,
                    log_masses,
                    ..
                },
            ) = (self.axes[d], dim)
            else {
                continue;
            };
            let column = &mut self.columns[d];
            let (low, high) = (axis.low, axis.high);
            for &i in touched {
                if kept.slots[i as usize] == u32::MAX {
                    continue; // left after it was touched
                }
                let r = rank(order, &column.xs, i);
                let xs = &column.xs;
                let sigma = bandwidth(n, r, |r| xs[order[r] as usize], low, high);
                let entry = &mut column.normalisers[1][i as usize];
                if entry.sigma.to_bits() != sigma.to_bits() {
                    *entry = Normaliser::new(column.xs[i as usize], sigma, low, high);
                }
                let s = kept.slots[i as usize] as usize;
                sigmas[s] = entry.sigma;
                square[s] = entry.square;
                linear[s] = entry.linear;
                log_masses[s] = entry.log_mass;
                dirty.push(i);
            }
        }
        for &i in &dirty {
            let s = kept.slots[i as usize] as usize;
            kept.terms[s] = self.terms_of(&kept, i as usize);
        }
        // Weights by recency, the prior kernel last, the constants.
        let fit = &mut self.fits[1];
        let kernels = n + 1;
        let weights = recency_weights(n);
        let total = weights.iter().sum::<f64>() + prior;
        fit.weights.clear(); // never sampled
        fit.log_weights.resize(kernels, 0.0);
        fit.constant.resize(kernels, 0.0);
        for (&i, w) in rows.iter().zip(&weights) {
            let s = kept.slots[i] as usize;
            let log_weight = (w / total).ln();
            fit.log_weights[s] = log_weight;
            fit.constant[s] = log_weight - kept.terms[s];
        }
        let log_prior = (prior / total).ln();
        fit.log_weights[n] = log_prior;
        fit.constant[n] = log_prior;
        fit.kernels = kernels;
        fit.margin = super::MARGIN + (kernels as f64).ln();
        for dim in &mut fit.dims {
            match dim {
                Dim::Numeric {
                    axis,
                    mus,
                    sigmas,
                    square,
                    linear,
                    log_masses,
                } => {
                    let (low, high) = (axis.low, axis.high);
                    let last = Normaliser::new((low + high) / 2.0, high - low, low, high);
                    mus.push((low + high) / 2.0);
                    sigmas.push(high - low);
                    square.push(last.square);
                    linear.push(last.linear);
                    log_masses.push(last.log_mass);
                    if axis.step.is_none() {
                        fit.constant[n] -= last.term;
                    }
                }
                Dim::Categorical {
                    choices,
                    p,
                    matched,
                    other,
                    absent,
                    ..
                } => {
                    (*p, *matched, *other, *absent) = choice_weights(prior, kernels, choices.len());
                }
            }
        }
        kept
    }
}

impl Dim {
    /// A numerical dimension's per-kernel columns: centres, bandwidths,
    /// `square`, `linear` and log masses.
    fn kernel_columns(&mut self) -> Option<[&mut Vec<f64>; 5]> {
        match self {
            Dim::Numeric {
                mus,
                sigmas,
                square,
                linear,
                log_masses,
                ..
            } => Some([mus, sigmas, square, linear, log_masses]),
            Dim::Categorical { .. } => None,
        }
    }

    /// A categorical dimension's per-kernel choices.
    fn kernel_choice(&mut self) -> &mut Vec<f64> {
        match self {
            Dim::Categorical { kernel_choice, .. } => kernel_choice,
            Dim::Numeric { .. } => unreachable!("numerical dimensions have kernel columns"),
        }
    }
}

/// Where trial `i` is (or would go) in `order` (ascending coordinate, ties by
/// trial).
fn rank(order: &[u32], xs: &[f64], i: u32) -> usize {
    let x = xs[i as usize];
    order.partition_point(|&j| xs[j as usize].total_cmp(&x).then(j.cmp(&i)).is_lt())
}

#[cfg(test)]
mod tests {
    use firebreak_core::{
        Direction, Distribution, Objectives, ParamValue, Parameter, Params, Rng, Trial, TrialState,
    };

    use super::super::{Columns, Dim};

    fn parameter(name: &str, distribution: Distribution) -> Parameter {
        Parameter {
            name: name.into(),
            distribution,
            condition: None,
        }
    }

    /// After every ask of a long campaign (every kind of parameter; trials that
    /// run, complete, are pruned or fail; the good group changing), the kept fit
    /// holds the full fit's kernels: the same values bit for bit, in other slots,
    /// with constants equal up to rounding.
    #[test]
    fn the_kept_fit_equals_the_full_fit() {
        let parameters = vec![
            parameter(
                "a",
                Distribution::Float {
                    low: -5.0,
                    high: 5.0,
                    log: false,
                    step: None,
                },
            ),
            parameter(
                "b",
                Distribution::Float {
                    low: 1e-4,
                    high: 1.0,
                    log: true,
                    step: None,
                },
            ),
            parameter(
                "c",
                Distribution::Float {
                    low: 0.0,
                    high: 1.0,
                    log: false,
                    step: Some(0.1),
                },
            ),
            parameter(
                "n",
                Distribution::Int {
                    low: 1,
                    high: 9,
                    log: false,
                    step: None,
                },
            ),
            parameter(
                "k",
                Distribution::Categorical {
                    choices: ["p", "q", "r"].map(|c| ParamValue::Str(c.into())).to_vec(),
                },
            ),
        ];
        let objectives = Objectives::single("y", Direction::Minimize);
        let dims: Vec<usize> = (0..parameters.len()).collect();
        let mut rng = Rng::new(11);
        let mut trials: Vec<Trial> = Vec::new();
        let mut columns = Columns::default();
        let (mut checked, mut reordered) = (0, false);
        for number in 0..400u64 {
            let mut params = Params::new();
            params.insert("a".into(), ParamValue::Float(rng.next_f64() * 10.0 - 5.0));
            params.insert("b".into(), ParamValue::Float(1e-4f64.powf(rng.next_f64())));
            params.insert(
                "c".into(),
                ParamValue::Float((rng.next_f64() * 10.0).floor() / 10.0),
            );
            params.insert(
                "n".into(),
                ParamValue::Int(1 + (rng.next_f64() * 9.0) as i64),
            );
            let k = ["p", "q", "r"][(rng.next_f64() * 3.0) as usize];
            params.insert("k".into(), ParamValue::Str(k.into()));
            let mut trial = Trial::queued(number, params, "tpe", "");
            trial.state = TrialState::Running;
            trials.push(trial);
            // Trials finish two asks after they start.
            if let Some(t) = number.checked_sub(2).map(|i| &mut trials[i as usize]) {
                t.state = match number % 11 {
                    4 => TrialState::Pruned,
                    7 => TrialState::Failed,
                    _ => TrialState::Complete,
                };
                t.metrics.insert("y".into(), rng.next_f64());
            }
            columns.sync(&parameters, &objectives, &trials);
            let (_, bad) = columns.groups(&objectives, true);
            columns.fit_other(&dims, &bad, 1.0);
            let kept = columns.kept.clone().expect("kept");
            let mut full = columns.clone();
            full.fit(&dims, &bad, 1, 1.0);
            let (a, b) = (&mut full.fits[1], &mut columns.fits[1]);
            let n = bad.len();
            assert_eq!(
                (a.kernels, a.margin.to_bits()),
                (b.kernels, b.margin.to_bits())
            );
            // Chronological position in the full fit, slot in the kept one; the
            // prior last in both.
            let pairs: Vec<(usize, usize)> = bad
                .iter()
                .enumerate()
                .map(|(k, &i)| (k, kept.slots[i] as usize))
                .chain([(n, n)])
                .collect();
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(1.0);
            for &(k, s) in &pairs {
                assert!(
                    close(a.constant[k], b.constant[s]),
                    "trial {number} kernel {k}"
                );
                assert_eq!(a.log_weights[k].to_bits(), b.log_weights[s].to_bits());
            }
            for (x, y) in a.dims.iter_mut().zip(&mut b.dims) {
                if let (Some(xs), Some(ys)) = (x.kernel_columns(), y.kernel_columns()) {
                    for &(k, s) in &pairs {
                        for (p, q) in xs.iter().zip(&ys) {
                            assert_eq!(p[k].to_bits(), q[s].to_bits(), "trial {number} kernel {k}");
                        }
                    }
                    continue;
                }
                match (x, y) {
                    (
                        Dim::Categorical {
                            kernel_choice,
                            p,
                            matched,
                            other,
                            absent,
                            ..
                        },
                        Dim::Categorical {
                            kernel_choice: choice2,
                            p: p2,
                            matched: matched2,
                            other: other2,
                            absent: absent2,
                            ..
                        },
                    ) => {
                        for &(k, s) in &pairs[..n] {
                            assert_eq!(kernel_choice[k].to_bits(), choice2[s].to_bits());
                        }
                        assert_eq!(
                            [p, matched, other, absent].map(|v| v.to_bits()),
                            [p2, matched2, other2, absent2].map(|v| v.to_bits())
                        );
                    }
                    _ => panic!("dimension kinds differ"),
                }
            }
            checked += usize::from(n >= super::FLOOR_FIXED);
            // Slots out of chronological order: the kept path moved kernels.
            reordered |= kept
                .trials
                .iter()
                .map(|&t| t as usize)
                .ne(bad.iter().copied());
        }
        assert!(
            checked > 250 && reordered,
            "the kept path ran {checked} times"
        );
    }
}

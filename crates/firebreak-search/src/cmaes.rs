//! CMA-ES, the covariance matrix adaptation evolution strategy, in its standard
//! (μ/μ_w, λ) form (Hansen, "The CMA Evolution Strategy: A Tutorial", 2016:
//! log-rank weights on the better half, cumulative step-size adaptation, rank-one
//! and rank-μ covariance updates, an eigendecomposition of `C` each generation),
//! with IPOP or BIPOP restarts (Auger and Hansen 2005; Hansen 2009).
//!
//! **Space.** CMA-ES samples jointly the numerical parameters that are always
//! active, in the unit cube of [`crate::cube`]: log parameters on the log scale,
//! ints and stepped floats rounded to their grid when proposed. A sample outside
//! the cube is redrawn (up to 100 times), then clipped. Categorical and
//! conditional parameters are drawn independently: uniformly by default (as
//! Optuna's `CmaEsSampler` does), or by univariate TPE with `independent = "tpe"`.
//!
//! **State from the history.** A proposal carries its generation, restart and
//! population as structured, versioned state (`{"v": 1, "cmaes": {"generation": G,
//! "restart": R, "popsize": λ}}`, recorded in its `trial_proposed` entry and kept
//! as the trial's `proposer_state`), the way Optuna keeps them in a trial's system
//! attributes; the rationale (`cmaes: generation G, sigma S, restart R (popsize
//! λ)`) is for people and never read back, except for trials recorded before
//! proposals carried state (see [`generation_of`]). Generation `G` is told once
//! its first λ complete trials, in trial-number order, are known and no earlier
//! trial of `G` is still unfinished; so the state is a function of the history
//! alone (independent of the order trials finished in, and unchanged by a
//! straggler that finishes later). Until then, asks keep sampling generation
//! `G`, which is how parallel workers are served and how failed and pruned trials
//! (never told) are replaced. The state is cached between asks; each ask checks
//! the cache against the history (the fingerprints of every told generation) and
//! tells only new generations, so an ask costs one pass over the history.
//!
//! **Restarts.** A run stops on the usual criteria (pycma's and the `cmaes`
//! package's defaults): the function values of the last `10 + ⌈30n/λ⌉`
//! generations within 1e-12 (tolfun), every coordinate's standard deviation and
//! the evolution path below 1e-12·σ₀ (tolx), σ·max(D) above 1e4 (tolxup), a step
//! that no longer changes the mean along a coordinate or an axis, a covariance
//! condition number above 1e14, or stagnation (the median of the recent best and
//! median values no better than of the older ones, over at least
//! `120 + 30n/λ` generations). `restart = "ipop"` (the default: it only acts once
//! a run has stopped, so on budgets that end before that it is plain CMA-ES)
//! doubles λ each restart; `"bipop"` alternates such large-population runs with
//! small-population runs with a smaller, random σ₀, whichever regime has spent
//! fewer evaluations; `"none"` never restarts and ignores the stopping criteria.
//! A restart's mean is a uniform point of the cube, drawn from a seed derived from
//! the history (the stopped run's last generation), so it too is deterministic.

use std::collections::{BTreeMap, VecDeque};

use firebreak_core::{
    Direction, Objectives, ParamValue, Parameter, Params, Rng, SearchSpace, Trial, TrialState,
    derive_seed,
};

use crate::cube::Axis;
use crate::linalg::symmetric_eigen;
use crate::proposer::{History, Proposal, Proposer};
use crate::random::sample_uniform;
use crate::{SearchError, TpeOptions, TpeProposer};

/// When CMA-ES starts a new run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Restart {
    /// Never: one run, stopping criteria ignored.
    None,
    /// After a stop, a new run with twice the population (Auger and Hansen 2005).
    Ipop,
    /// After a stop, a large-population (IPOP) or a small-population run,
    /// whichever regime has used fewer evaluations (Hansen 2009).
    Bipop,
}

impl Restart {
    /// The strategy named `name` (`none`, `ipop`, `bipop`).
    pub fn from_name(name: &str) -> Option<Restart> {
        match name {
            "none" => Some(Restart::None),
            "ipop" => Some(Restart::Ipop),
            "bipop" => Some(Restart::Bipop),
            _ => None,
        }
    }
}

/// How a model-based proposer draws the parameters outside its joint space
/// (categorical and conditional ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Independent {
    /// Uniformly at random.
    Random,
    /// By univariate TPE (default options) on the same history.
    Tpe,
}

impl Independent {
    /// The fallback named `name` (`random`, `tpe`).
    pub fn from_name(name: &str) -> Option<Independent> {
        match name {
            "random" => Some(Independent::Random),
            "tpe" => Some(Independent::Tpe),
            _ => None,
        }
    }
}

/// CMA-ES's options.
#[derive(Debug, Clone, PartialEq)]
pub struct CmaEsOptions {
    /// Initial step size as a fraction of each coordinate's range (default 1/6,
    /// Optuna's choice: the initial distribution's ±3σ spans the range).
    pub sigma0: f64,
    /// The first run's population λ; default `4 + ⌊3 ln n⌋` for `n` dimensions.
    pub popsize: Option<usize>,
    /// The restart strategy (default IPOP).
    pub restart: Restart,
    /// How categorical and conditional parameters are drawn (default random).
    pub independent: Independent,
}

impl Default for CmaEsOptions {
    fn default() -> Self {
        CmaEsOptions {
            sigma0: 1.0 / 6.0,
            popsize: None,
            restart: Restart::Ipop,
            independent: Independent::Random,
        }
    }
}

/// CMA-ES for one objective; see the module documentation.
#[derive(Debug)]
pub struct CmaEsProposer {
    options: CmaEsOptions,
    metric: String,
    direction: Direction,
    tpe: Option<TpeProposer>,
    state: Option<State>,
}

impl CmaEsProposer {
    /// CMA-ES with `options` on the single objective of `objectives`.
    pub fn new(objectives: &Objectives, options: CmaEsOptions) -> Result<Self, SearchError> {
        let ([metric], [direction]) = (
            objectives.metrics.as_slice(),
            objectives.directions.as_slice(),
        ) else {
            return Err(SearchError::Unsupported(
                "cmaes optimises exactly one objective; hint: use nsga2 for several".into(),
            ));
        };
        if !(options.sigma0 > 0.0 && options.sigma0 <= 1.0) {
            return Err(SearchError::BadOption {
                key: "sigma0".into(),
                message: format!(
                    "needs 0 < sigma0 <= 1 (a fraction of each parameter's range), got {}",
                    options.sigma0
                ),
            });
        }
        if options.popsize.is_some_and(|p| p < 2) {
            return Err(SearchError::BadOption {
                key: "popsize".into(),
                message: format!(
                    "needs at least 2, got {}",
                    options.popsize.unwrap_or_default()
                ),
            });
        }
        let tpe = match options.independent {
            Independent::Tpe => Some(TpeProposer::new(
                objectives,
                TpeOptions {
                    multivariate: false,
                    ..TpeOptions::default()
                },
            )?),
            Independent::Random => None,
        };
        Ok(CmaEsProposer {
            options,
            metric: metric.clone(),
            direction: *direction,
            tpe,
            state: None,
        })
    }

    /// The value CMA-ES minimises, for a complete trial with a finite metric.
    fn loss(&self, trial: &Trial) -> Option<f64> {
        if trial.state != TrialState::Complete {
            return None;
        }
        let v = trial.metrics.get(&self.metric).copied()?;
        if !v.is_finite() {
            return None;
        }
        Some(if self.direction == Direction::Maximize {
            -v
        } else {
            v
        })
    }

    fn lambda0(&self, n: usize) -> usize {
        self.options
            .popsize
            .unwrap_or(4 + (3.0 * (n as f64).ln()).floor() as usize)
    }

    /// Brings the cached state up to date with `history`.
    fn catch_up(&mut self, axes: &[(String, Axis)], history: &History<'_>) {
        let names: Vec<String> = axes.iter().map(|(n, _)| n.clone()).collect();
        // Every trial CMA-ES proposed, by generation, in trial-number order.
        let mut tagged: BTreeMap<u64, Vec<&Trial>> = BTreeMap::new();
        for trial in history.trials {
            if let Some(generation) = generation_of(trial) {
                tagged.entry(generation).or_default().push(trial);
            }
        }
        for trials in tagged.values_mut() {
            trials.sort_by_key(|t| t.number);
        }
        let n = axes.len();
        let lambda0 = self.lambda0(n);
        let fresh = || State::new(names.clone(), lambda0, self.options.sigma0);
        let mut state = match self.state.take() {
            Some(state) if state.dims == names => state,
            _ => fresh(),
        };
        // The cache holds only if every generation it told still selects the same
        // trials with the same values (finished trials never change, so this
        // fails only when the history is another campaign's).
        let consistent = state.told.iter().enumerate().all(|(g, fingerprint)| {
            let members = tagged.get(&(g as u64)).map_or(&[][..], Vec::as_slice);
            match self.select(members, axes, fingerprint.len()) {
                Some(selected) => selected
                    .iter()
                    .map(|s| (s.0, s.1.to_bits()))
                    .eq(fingerprint.iter().copied()),
                None => false,
            }
        });
        if !consistent {
            state = fresh();
        }
        loop {
            let g = state.told.len() as u64;
            let members = tagged.get(&g).map_or(&[][..], Vec::as_slice);
            let Some(mut selected) = self.select(members, axes, state.strategy.lambda) else {
                break;
            };
            selected.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            let solutions: Vec<(&[f64], f64)> =
                selected.iter().map(|s| (s.2.as_slice(), s.1)).collect();
            state.strategy.tell(&solutions);
            let fingerprint: Vec<(u64, u64)> =
                selected.iter().map(|s| (s.0, s.1.to_bits())).collect();
            let seed = fingerprint
                .iter()
                .fold(g, |acc, (number, bits)| derive_seed(acc, &[*number, *bits]));
            state.told.push(fingerprint);
            if self.options.restart == Restart::None {
                continue;
            }
            if let Some(reason) = state.strategy.should_stop() {
                state.restart_after(reason, self.options.restart, seed);
            }
        }
        self.state = Some(state);
    }

    /// The first `lambda` complete trials of one generation (number, loss, point),
    /// or `None` while fewer are known or an earlier one is unfinished.
    fn select(
        &self,
        members: &[&Trial],
        axes: &[(String, Axis)],
        lambda: usize,
    ) -> Option<Vec<(u64, f64, Vec<f64>)>> {
        let mut selected = Vec::with_capacity(lambda);
        for trial in members {
            if selected.len() == lambda {
                break;
            }
            if !trial.state.is_finished() {
                return None; // wait: it may still complete and belong here
            }
            let Some(loss) = self.loss(trial) else {
                continue; // failed, pruned or without the metric: never told
            };
            let point: Option<Vec<f64>> = axes
                .iter()
                .map(|(name, axis)| trial.params.get(name).and_then(|v| axis.coordinate(v)))
                .collect();
            if let Some(point) = point {
                selected.push((trial.number, loss, point));
            }
        }
        (selected.len() == lambda).then_some(selected)
    }
}

/// The version of the state CMA-ES attaches to its proposals.
const STATE_VERSION: u64 = 1;

/// The state recorded with a proposal of `generation`.
fn state_value(generation: u64, restart: u64, popsize: usize) -> serde_json::Value {
    serde_json::json!({
        "v": STATE_VERSION,
        "cmaes": {"generation": generation, "restart": restart, "popsize": popsize},
    })
}

/// The generation a trial was proposed in: from its `proposer_state` (another
/// proposer's state, or another version, names none). A trial without state
/// that CMA-ES proposed was recorded before proposals carried state (database
/// schema 6 and older): its rationale, in the format of that time, is read
/// instead, so such campaigns resume where they were.
fn generation_of(trial: &Trial) -> Option<u64> {
    match &trial.proposer_state {
        Some(state) => {
            if state.get("v")?.as_u64()? != STATE_VERSION {
                return None;
            }
            state.get("cmaes")?.get("generation")?.as_u64()
        }
        None if trial.proposer == "cmaes" => parse_legacy_tag(&trial.rationale).map(|(g, _)| g),
        None => None,
    }
}

/// The `(generation, restart)` a CMA-ES rationale named before proposals carried
/// state; frozen in that format, only for such trials.
fn parse_legacy_tag(rationale: &str) -> Option<(u64, u64)> {
    let rest = rationale.strip_prefix("cmaes: generation ")?;
    let (generation, rest) = rest.split_once(',')?;
    let (_, rest) = rest.split_once("restart ")?;
    let restart: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((generation.parse().ok()?, restart.parse().ok()?))
}

/// The whole search: the current run and what it needs to start the next.
#[derive(Debug, Clone)]
struct State {
    dims: Vec<String>,
    lambda0: usize,
    sigma0: f64,
    /// Runs started after the first.
    restart: u64,
    strategy: Strategy,
    /// Why the previous run stopped.
    stopped_by: Option<&'static str>,
    /// Whether the current run is a small-population (BIPOP) one.
    small: bool,
    /// Large-population restarts so far (IPOP's and BIPOP's doubling exponent).
    large_restarts: u32,
    evaluations_large: usize,
    evaluations_small: usize,
    /// Per told generation (global numbering), the trials and loss bits used.
    told: Vec<Vec<(u64, u64)>>,
}

impl State {
    fn new(dims: Vec<String>, lambda0: usize, sigma0: f64) -> State {
        let n = dims.len();
        State {
            strategy: Strategy::new(vec![0.5; n], sigma0, lambda0),
            dims,
            lambda0,
            sigma0,
            restart: 0,
            stopped_by: None,
            small: false,
            large_restarts: 0,
            evaluations_large: 0,
            evaluations_small: 0,
            told: Vec::new(),
        }
    }

    fn restart_after(&mut self, reason: &'static str, restart: Restart, seed: u64) {
        let spent = self.strategy.generation * self.strategy.lambda;
        if self.small {
            self.evaluations_small += spent;
        } else {
            self.evaluations_large += spent;
        }
        let mut rng = Rng::new(derive_seed(seed, &[0x636d_6165_7321, self.restart]));
        let n = self.dims.len();
        let mean: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
        let large = |exponent: u32| self.lambda0.saturating_mul(1 << exponent.min(16));
        let (lambda, sigma, small) =
            if restart == Restart::Bipop && self.evaluations_small < self.evaluations_large {
                let (u, v) = (rng.next_f64(), rng.next_f64());
                let ratio = 0.5 * large(self.large_restarts) as f64 / self.lambda0 as f64;
                let lambda = (self.lambda0 as f64 * ratio.powf(u * u)).floor() as usize;
                (
                    lambda.max(self.lambda0),
                    self.sigma0 * 10f64.powf(-2.0 * v),
                    true,
                )
            } else {
                self.large_restarts += 1;
                (large(self.large_restarts), self.sigma0, false)
            };
        self.strategy = Strategy::new(mean, sigma, lambda);
        self.small = small;
        self.restart += 1;
        self.stopped_by = Some(reason);
    }
}

/// One CMA-ES run in the unit cube.
#[derive(Debug, Clone)]
struct Strategy {
    n: usize,
    lambda: usize,
    weights: Vec<f64>,
    mu_eff: f64,
    c_sigma: f64,
    d_sigma: f64,
    c_c: f64,
    c_1: f64,
    c_mu: f64,
    chi_n: f64,
    mean: Vec<f64>,
    sigma: f64,
    sigma0: f64,
    /// The covariance matrix, row-major.
    cov: Vec<f64>,
    p_sigma: Vec<f64>,
    p_c: Vec<f64>,
    /// `C = B D² Bᵀ`: eigenvectors in `basis`'s columns, `scales` = D.
    basis: Vec<f64>,
    scales: Vec<f64>,
    /// Generations told in this run.
    generation: usize,
    /// Best and worst loss of each recent generation (tolfun).
    fun_history: VecDeque<f64>,
    /// Best and median loss of every generation (stagnation).
    best_history: Vec<f64>,
    median_history: Vec<f64>,
}

const TOLFUN: f64 = 1e-12;
const TOLX_FACTOR: f64 = 1e-12;
const TOLXUP: f64 = 1e4;
const MAX_CONDITION: f64 = 1e14;

impl Strategy {
    fn new(mean: Vec<f64>, sigma: f64, lambda: usize) -> Strategy {
        let n = mean.len();
        let nf = n as f64;
        let mu = (lambda / 2).max(1);
        let raw: Vec<f64> = (1..=mu)
            .map(|i| ((lambda as f64 + 1.0) / 2.0).ln() - (i as f64).ln())
            .collect();
        let total: f64 = raw.iter().sum();
        let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
        let mu_eff = 1.0 / weights.iter().map(|w| w * w).sum::<f64>();
        let c_sigma = (mu_eff + 2.0) / (nf + mu_eff + 5.0);
        let d_sigma = 1.0 + 2.0 * (((mu_eff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + c_sigma;
        let c_c = (4.0 + mu_eff / nf) / (nf + 4.0 + 2.0 * mu_eff / nf);
        let c_1 = 2.0 / ((nf + 1.3).powi(2) + mu_eff);
        let c_mu =
            (1.0 - c_1).min(2.0 * (mu_eff - 2.0 + 1.0 / mu_eff) / ((nf + 2.0).powi(2) + mu_eff));
        let chi_n = nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf));
        let mut identity = vec![0.0; n * n];
        for i in 0..n {
            identity[i * n + i] = 1.0;
        }
        Strategy {
            n,
            lambda,
            weights,
            mu_eff,
            c_sigma,
            d_sigma,
            c_c,
            c_1,
            c_mu,
            chi_n,
            mean,
            sigma,
            sigma0: sigma,
            cov: identity.clone(),
            p_sigma: vec![0.0; n],
            p_c: vec![0.0; n],
            basis: identity,
            scales: vec![1.0; n],
            generation: 0,
            fun_history: VecDeque::new(),
            best_history: Vec::new(),
            median_history: Vec::new(),
        }
    }

    /// One draw of `N(m, σ² C)` inside the cube: redrawn up to 100 times, then
    /// clipped.
    fn sample(&self, rng: &mut Rng) -> Vec<f64> {
        let n = self.n;
        let mut x = vec![0.0; n];
        for _ in 0..100 {
            let z: Vec<f64> = (0..n).map(|i| self.scales[i] * normal(rng)).collect();
            for (i, xi) in x.iter_mut().enumerate() {
                let y: f64 = (0..n).map(|k| self.basis[i * n + k] * z[k]).sum();
                *xi = self.mean[i] + self.sigma * y;
            }
            if x.iter().all(|v| (0.0..=1.0).contains(v)) {
                return x;
            }
        }
        x.iter().map(|v| v.clamp(0.0, 1.0)).collect()
    }

    /// Tells one generation: `solutions` sorted best (lowest loss) first.
    fn tell(&mut self, solutions: &[(&[f64], f64)]) {
        let n = self.n;
        let mu = self.weights.len();
        let ys: Vec<Vec<f64>> = solutions[..mu]
            .iter()
            .map(|(x, _)| {
                x.iter()
                    .zip(&self.mean)
                    .map(|(xi, mi)| (xi - mi) / self.sigma)
                    .collect()
            })
            .collect();
        let mut y_w = vec![0.0; n];
        for (w, y) in self.weights.iter().zip(&ys) {
            for i in 0..n {
                y_w[i] += w * y[i];
            }
        }
        for (m, y) in self.mean.iter_mut().zip(&y_w) {
            *m += self.sigma * y;
        }
        // C^{-1/2} y_w = B D⁻¹ Bᵀ y_w.
        let bt_y: Vec<f64> = (0..n)
            .map(|k| (0..n).map(|i| self.basis[i * n + k] * y_w[i]).sum::<f64>() / self.scales[k])
            .collect();
        let whitened: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|k| self.basis[i * n + k] * bt_y[k]).sum())
            .collect();
        let cs = self.c_sigma;
        let a = (cs * (2.0 - cs) * self.mu_eff).sqrt();
        for (p, w) in self.p_sigma.iter_mut().zip(&whitened) {
            *p = (1.0 - cs) * *p + a * w;
        }
        self.generation += 1;
        let norm_ps = self.p_sigma.iter().map(|v| v * v).sum::<f64>().sqrt();
        let correction = (1.0 - (1.0 - cs).powi(2 * self.generation as i32)).sqrt();
        let h_sigma =
            norm_ps / correction.max(1e-300) < (1.4 + 2.0 / (n as f64 + 1.0)) * self.chi_n;
        let cc = self.c_c;
        let b = if h_sigma {
            (cc * (2.0 - cc) * self.mu_eff).sqrt()
        } else {
            0.0
        };
        for (p, y) in self.p_c.iter_mut().zip(&y_w) {
            *p = (1.0 - cc) * *p + b * y;
        }
        let delta = if h_sigma { 0.0 } else { cc * (2.0 - cc) };
        let keep = 1.0 + self.c_1 * delta - self.c_1 - self.c_mu;
        for i in 0..n {
            for j in 0..=i {
                let rank_mu: f64 = self
                    .weights
                    .iter()
                    .zip(&ys)
                    .map(|(w, y)| w * y[i] * y[j])
                    .sum();
                let value = keep * self.cov[i * n + j]
                    + self.c_1 * self.p_c[i] * self.p_c[j]
                    + self.c_mu * rank_mu;
                self.cov[i * n + j] = value;
                self.cov[j * n + i] = value;
            }
        }
        let exponent = (cs / self.d_sigma) * (norm_ps / self.chi_n - 1.0);
        self.sigma = (self.sigma * exponent.min(1.0).exp()).clamp(1e-300, 1e32);
        let (values, vectors) = symmetric_eigen(&self.cov, n);
        self.basis = vectors;
        self.scales = values.iter().map(|v| v.max(1e-30).sqrt()).collect();
        // Bookkeeping for the stopping criteria.
        let losses: Vec<f64> = solutions.iter().map(|(_, f)| *f).collect();
        let (best, worst) = (losses[0], losses[losses.len() - 1]);
        let term = self.history_term();
        self.fun_history.push_back(best);
        self.fun_history.push_back(worst);
        while self.fun_history.len() > 2 * term {
            self.fun_history.pop_front();
        }
        self.best_history.push(best);
        self.median_history.push(losses[losses.len() / 2]);
    }

    fn history_term(&self) -> usize {
        10 + (30.0 * self.n as f64 / self.lambda as f64).ceil() as usize
    }

    /// Why this run should stop, if it should.
    fn should_stop(&self) -> Option<&'static str> {
        let n = self.n;
        let (lowest, highest) = self
            .fun_history
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(*v), b.max(*v))
            });
        if self.generation > self.history_term() && highest - lowest < TOLFUN {
            return Some("tolfun");
        }
        let tolx = TOLX_FACTOR * self.sigma0;
        if (0..n).all(|i| self.sigma * self.cov[i * n + i].sqrt() < tolx)
            && self.p_c.iter().all(|p| self.sigma * p.abs() < tolx)
        {
            return Some("tolx");
        }
        let (d_min, d_max) = self
            .scales
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(a, b), d| (a.min(*d), b.max(*d)));
        if self.sigma * d_max > TOLXUP {
            return Some("tolxup");
        }
        if (0..n).any(|i| {
            let m = self.mean[i];
            m == m + 0.2 * self.sigma * self.cov[i * n + i].sqrt()
        }) {
            return Some("no effect coordinate");
        }
        let axis = self.generation % n.max(1);
        if (0..n).all(|i| {
            let m = self.mean[i];
            m == m + 0.1 * self.sigma * self.scales[axis] * self.basis[i * n + axis]
        }) {
            return Some("no effect axis");
        }
        if (d_max / d_min).powi(2) > MAX_CONDITION {
            return Some("condition number");
        }
        if self.stagnated() {
            return Some("stagnation");
        }
        None
    }

    /// Hansen's stagnation test: over the last 20% of generations (at least
    /// `120 + 30n/λ`, at most 20 000), the median of the most recent 30% of best
    /// and of median values is not better than that of the oldest 30%.
    fn stagnated(&self) -> bool {
        let minimum = 120 + (30.0 * self.n as f64 / self.lambda as f64).ceil() as usize;
        let window = (self.generation / 5).max(minimum).min(20_000);
        if self.generation < window {
            return false;
        }
        let no_better = |history: &[f64]| {
            let recent = &history[history.len() - window..];
            let k = (window * 3 / 10).max(1);
            median(&recent[window - k..]) >= median(&recent[..k])
        };
        no_better(&self.best_history) && no_better(&self.median_history)
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// A standard normal draw (Box–Muller).
pub(crate) fn normal(rng: &mut Rng) -> f64 {
    let (u1, u2) = (rng.next_f64().max(f64::MIN_POSITIVE), rng.next_f64());
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The parameters CMA-ES models jointly: numerical and always active.
fn joint_axes(space: &SearchSpace) -> Vec<(String, Axis)> {
    space
        .parameters()
        .iter()
        .filter(|p| p.condition.is_none())
        .filter_map(|p| Axis::of(&p.distribution).map(|axis| (p.name.clone(), axis)))
        .collect()
}

impl Proposer for CmaEsProposer {
    fn name(&self) -> &'static str {
        "cmaes"
    }

    fn infer_relative_space(&mut self, space: &SearchSpace, _history: &History<'_>) -> Vec<String> {
        joint_axes(space)
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    fn sample_relative(
        &mut self,
        space: &SearchSpace,
        history: &History<'_>,
        _relative: &[String],
        rng: &mut Rng,
    ) -> Proposal {
        let axes = joint_axes(space);
        self.catch_up(&axes, history);
        let Some(state) = self.state.as_ref() else {
            return Proposal::default();
        };
        let x = state.strategy.sample(rng);
        let params: Params = axes
            .iter()
            .zip(&x)
            .map(|((name, axis), u)| (name.clone(), axis.value_at(*u)))
            .collect();
        let mut rationale = format!(
            "cmaes: generation {}, sigma {:.3e}, restart {} (popsize {})",
            state.told.len(),
            state.strategy.sigma,
            state.restart,
            state.strategy.lambda
        );
        if let Some(reason) = state.stopped_by {
            rationale.push_str(&format!(", previous run stopped by {reason}"));
        }
        Proposal {
            params,
            rationale,
            state: Some(state_value(
                state.told.len() as u64,
                state.restart,
                state.strategy.lambda,
            )),
        }
    }

    fn sample_independent(
        &mut self,
        history: &History<'_>,
        parameter: &Parameter,
        drawn: &Params,
        rng: &mut Rng,
    ) -> ParamValue {
        match self.tpe.as_mut() {
            Some(tpe) => tpe.sample_independent(history, parameter, drawn, rng),
            None => sample_uniform(&parameter.distribution, rng),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_tags_round_trip() {
        assert_eq!(
            parse_legacy_tag(
                "cmaes: generation 12, sigma 1.667e-1, restart 2 (popsize 24); 1 parameter(s) sampled independently"
            ),
            Some((12, 2))
        );
        assert_eq!(parse_legacy_tag("tpe: joint"), None);
    }

    #[test]
    fn the_generation_comes_from_the_state_not_the_rationale() {
        let tag = "cmaes: generation 12, sigma 1.667e-1, restart 2 (popsize 24)";
        let mut trial = Trial::queued(0, Params::new(), "cmaes", "reworded for people");
        trial.proposer_state = Some(state_value(3, 0, 6));
        assert_eq!(generation_of(&trial), Some(3));
        trial.rationale = tag.into();
        assert_eq!(generation_of(&trial), Some(3));
        // Another version, or another proposer's state, names no generation.
        trial.proposer_state = Some(serde_json::json!({"v": 2, "cmaes": {"generation": 3}}));
        assert_eq!(generation_of(&trial), None);
        trial.proposer_state = Some(serde_json::json!({"v": 1, "sobol": {"point": 3}}));
        assert_eq!(generation_of(&trial), None);
        // Without state: the legacy tag, and only on CMA-ES's own trials.
        trial.proposer_state = None;
        assert_eq!(generation_of(&trial), Some(12));
        trial.proposer = "enqueued".into();
        assert_eq!(generation_of(&trial), None);
    }

    /// The plain strategy, without the proposer around it, on a 10-D sphere.
    #[test]
    fn the_strategy_converges_on_a_sphere() {
        let n = 10;
        let mut strategy = Strategy::new(vec![0.8; n], 0.3, 10);
        let mut rng = Rng::new(1);
        let f = |x: &[f64]| x.iter().map(|v| (v - 0.3).powi(2)).sum::<f64>();
        let mut best = f64::INFINITY;
        for _ in 0..300 {
            let mut pop: Vec<(Vec<f64>, f64)> = (0..strategy.lambda)
                .map(|_| {
                    let x = strategy.sample(&mut rng);
                    let y = f(&x);
                    (x, y)
                })
                .collect();
            pop.sort_by(|a, b| a.1.total_cmp(&b.1));
            best = best.min(pop[0].1);
            let solutions: Vec<(&[f64], f64)> =
                pop.iter().map(|(x, y)| (x.as_slice(), *y)).collect();
            strategy.tell(&solutions);
        }
        assert!(best < 1e-10, "best {best}");
    }
}

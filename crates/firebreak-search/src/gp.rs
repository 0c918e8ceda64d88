//! Gaussian-process Bayesian optimisation for expensive trials and budgets up to
//! a few hundred: a GP with a Matérn 5/2 ARD kernel models the objective, and
//! the next trial maximises log expected improvement.
//!
//! **Space.** The always-active parameters are modelled jointly: numerical ones
//! as coordinates of the unit cube of [`crate::cube`] (log scale for `log`, ints
//! and stepped floats rounded to their grid when proposed), categorical ones as
//! the choice's index, with a Hamming distance (0 for the same choice, 1 for
//! another) in place of the coordinate difference, each with its own
//! lengthscale, as Optuna's `GPSampler` does. Conditional parameters are drawn
//! independently: uniformly, or by univariate TPE with `independent = "tpe"`.
//! Until `n_startup_trials` (10) trials are complete, every parameter is drawn
//! uniformly.
//!
//! **Model.** Observations (complete trials with a finite metric; failed and
//! pruned ones are not observations) are standardised. The kernel is
//! `s² (1 + √5 r + 5r²/3) e^{−√5 r}` with `r² = Σ_d δ_d² / ℓ_d²`, plus noise
//! `σ_n² ≥ 1e-6` on the diagonal. The lengthscales, `s²` and `σ_n²` maximise the
//! log marginal likelihood plus log priors (per lengthscale `−0.1 (ℓ² + ℓ⁻²)`,
//! Optuna's `GPSampler`'s: under 1.2 nats from ℓ = 0.3 to 3 in the unit cube,
//! 10 nats at 0.1 or 10; `s² ~ Gamma(2, 1)`; `σ_n² ~ Gamma(1.1, 30)`), by
//! bounded L-BFGS with analytic gradients from two fixed starting points (every
//! ℓ at 0.5, every ℓ at 2). Why not a dimension-scaled prior (Hvarfner et al.
//! 2024, median ℓ ≈ 13 at 10 dimensions): long lengthscales cost it little, and
//! on Ackley-10 its fits declared dimensions irrelevant (ℓ ≈ 13 beside ≈ 0.5 for
//! the rest, on an isotropic function) and then proposed arbitrary, often
//! extreme, values along them (bench/results/gp-ackley.md). Every fit is a
//! function of the observations alone (no warm start from an earlier ask), so a
//! resumed campaign proposes what an uninterrupted one would; a fit is reused
//! while the observations are the same (concurrent asks).
//!
//! **Acquisition.** Log expected improvement, computed stably far into the tail
//! (Ament et al. 2023, "Unexpected improvements to expected improvement":
//! `log h(z)` through `erfcx` for `z < −1`, its asymptote beyond `−1/√ε`), over
//! the best posterior mean at an observation (the plug-in threshold). On a
//! noise-free fit that is the best observation; on a noisy one the best
//! observation is partly luck the model does not expect to meet again, and EI
//! over it vanishes everywhere but where the variance is largest, the cube's
//! corners. It is maximised over `n_candidates` uniform points plus jittered
//! copies of the best observations, then refined from the nine best of them and
//! from the best observation by L-BFGS bounded to the cube, in coordinates
//! divided by the lengthscales, alternating with a sweep over each categorical
//! coordinate; a point some trial already has is passed over for the next best.
//! Running trials enter as fantasies with the worst observed value (the
//! constant liar), so concurrent workers spread out.
//!
//! Cost: the fit is `O(n³)` per likelihood evaluation, tens of evaluations per
//! ask: about 0.2 s per ask at 200 observations of 10 parameters in a release
//! build (a few seconds at 500).

use firebreak_core::{
    Direction, Distribution, Objectives, ParamValue, Parameter, Params, Rng, SearchSpace, Trial,
    TrialState, derive_seed,
};

use crate::cmaes::{Independent, normal};
use crate::cube::Axis;
use crate::linalg::{cholesky, cholesky_inverse, dot, solve_lower, solve_lower_transposed};
use crate::proposer::{History, Proposal, Proposer};
use crate::random::sample_uniform;
use crate::{SearchError, TpeOptions, TpeProposer};

/// GP-BO's options.
#[derive(Debug, Clone, PartialEq)]
pub struct GpOptions {
    /// Uniform proposals until this many trials are complete (default 10).
    pub n_startup_trials: usize,
    /// Uniform candidates scored per ask before local refinement (default 1000).
    pub n_candidates: usize,
    /// How conditional parameters are drawn (default random).
    pub independent: Independent,
}

impl Default for GpOptions {
    fn default() -> Self {
        GpOptions {
            n_startup_trials: 10,
            n_candidates: 1000,
            independent: Independent::Random,
        }
    }
}

/// GP-BO for one objective; see the module documentation.
#[derive(Debug)]
pub struct GpProposer {
    options: GpOptions,
    metric: String,
    direction: Direction,
    tpe: Option<TpeProposer>,
    /// The last fit and the fingerprint of the observations it was made on.
    fitted: Option<(u64, Hyper)>,
}

impl GpProposer {
    /// GP-BO with `options` on the single objective of `objectives`.
    pub fn new(objectives: &Objectives, options: GpOptions) -> Result<Self, SearchError> {
        let ([metric], [direction]) = (
            objectives.metrics.as_slice(),
            objectives.directions.as_slice(),
        ) else {
            return Err(SearchError::Unsupported(
                "gp optimises exactly one objective; hint: use nsga2 for several".into(),
            ));
        };
        if options.n_candidates == 0 {
            return Err(SearchError::BadOption {
                key: "n_candidates".into(),
                message: "needs at least 1, got 0".into(),
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
        Ok(GpProposer {
            options,
            metric: metric.clone(),
            direction: *direction,
            tpe,
            fitted: None,
        })
    }

    /// The value GP-BO maximises, for a complete trial with a finite metric.
    fn gain(&self, trial: &Trial) -> Option<f64> {
        if trial.state != TrialState::Complete {
            return None;
        }
        let v = trial.metrics.get(&self.metric).copied()?;
        if !v.is_finite() {
            return None;
        }
        Some(if self.direction == Direction::Maximize {
            v
        } else {
            -v
        })
    }

    fn complete(&self, history: &History<'_>) -> usize {
        history
            .trials
            .iter()
            .filter(|t| self.gain(t).is_some())
            .count()
    }
}

/// One modelled dimension.
#[derive(Debug, Clone)]
enum Dim {
    Numeric(Axis),
    Categorical(Vec<ParamValue>),
}

impl Dim {
    fn of(parameter: &Parameter) -> Dim {
        match &parameter.distribution {
            Distribution::Categorical { choices } => Dim::Categorical(choices.clone()),
            numerical => match Axis::of(numerical) {
                Some(axis) => Dim::Numeric(axis),
                None => Dim::Categorical(Vec::new()),
            },
        }
    }

    /// The coordinate of `value`: in `[0, 1]`, or the choice's index.
    fn coordinate(&self, value: &ParamValue) -> Option<f64> {
        match self {
            Dim::Numeric(axis) => axis.coordinate(value),
            Dim::Categorical(choices) => choices
                .iter()
                .position(|c| c.matches(value))
                .map(|i| i as f64),
        }
    }

    fn value(&self, x: f64) -> ParamValue {
        match self {
            Dim::Numeric(axis) => axis.value_at(x),
            Dim::Categorical(choices) => {
                let i = (x.max(0.0) as usize).min(choices.len().saturating_sub(1));
                choices[i].clone()
            }
        }
    }

    /// `x` moved to the coordinate of the value it stands for.
    fn snap(&self, x: f64) -> f64 {
        match self {
            Dim::Numeric(axis) => axis.coordinate(&axis.value_at(x)).unwrap_or(x),
            Dim::Categorical(_) => x,
        }
    }

    fn is_categorical(&self) -> bool {
        matches!(self, Dim::Categorical(_))
    }
}

/// Kernel hyperparameters.
#[derive(Debug, Clone, PartialEq)]
struct Hyper {
    lengthscales: Vec<f64>,
    signal: f64,
    noise: f64,
}

const SQRT5: f64 = 2.236_067_977_499_79;
const MIN_NOISE: f64 = 1e-6;

/// The squared, per-dimension difference of two points (Hamming for categorical
/// dimensions).
fn difference(categorical: bool, a: f64, b: f64) -> f64 {
    if categorical {
        if a == b { 0.0 } else { 1.0 }
    } else {
        (a - b) * (a - b)
    }
}

/// The negative log posterior of the hyperparameters `theta` (log lengthscales,
/// log signal variance, log excess noise) and its gradient.
struct Likelihood<'a> {
    n: usize,
    dims: usize,
    /// Per pair `a < b` (row-major upper triangle), the squared difference per
    /// dimension.
    pairs: Vec<f64>,
    y: &'a [f64],
}

impl<'a> Likelihood<'a> {
    fn new(categorical: &[bool], x: &[Vec<f64>], y: &'a [f64]) -> Self {
        let n = x.len();
        let dims = categorical.len();
        let mut pairs = Vec::with_capacity(n * n.saturating_sub(1) / 2 * dims);
        for a in 0..n {
            for b in a + 1..n {
                for d in 0..dims {
                    pairs.push(difference(categorical[d], x[a][d], x[b][d]));
                }
            }
        }
        Likelihood { n, dims, pairs, y }
    }

    fn hyper(&self, theta: &[f64]) -> Hyper {
        Hyper {
            lengthscales: theta[..self.dims].iter().map(|t| t.exp()).collect(),
            signal: theta[self.dims].exp(),
            noise: MIN_NOISE + theta[self.dims + 1].exp(),
        }
    }

    fn evaluate(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let (n, dims) = (self.n, self.dims);
        let h = self.hyper(theta);
        let inverse_squared: Vec<f64> = h.lengthscales.iter().map(|l| 1.0 / (l * l)).collect();
        let mut k = vec![0.0; n * n];
        // Per pair: the kernel's derivative factor (5/3) s² (1 + √5 r) e^{−√5 r}.
        let mut factor = vec![0.0; self.pairs.len() / dims.max(1)];
        let mut p = 0;
        for a in 0..n {
            k[a * n + a] = h.signal + h.noise;
            for b in a + 1..n {
                let row = &self.pairs[p * dims..(p + 1) * dims];
                let r2: f64 = row.iter().zip(&inverse_squared).map(|(d, w)| d * w).sum();
                let r = r2.sqrt();
                let e = (-SQRT5 * r).exp();
                let value = h.signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * e;
                k[a * n + b] = value;
                k[b * n + a] = value;
                factor[p] = 5.0 / 3.0 * h.signal * (1.0 + SQRT5 * r) * e;
                p += 1;
            }
        }
        let bad = (f64::INFINITY, vec![0.0; dims + 2]);
        let Some(l) = cholesky(&k, n) else {
            return bad;
        };
        let alpha = solve_lower_transposed(&l, n, &solve_lower(&l, n, self.y));
        let fit: f64 = self.y.iter().zip(&alpha).map(|(y, a)| y * a).sum();
        let log_det: f64 = (0..n).map(|i| l[i * n + i].ln()).sum();
        let lml = -0.5 * fit - log_det - 0.5 * n as f64 * std::f64::consts::TAU.ln();
        let inverse = cholesky_inverse(&l, n);
        // W = α αᵀ − K⁻¹; ∂lml/∂θ = ½ tr(W ∂K/∂θ).
        let w = |a: usize, b: usize| alpha[a] * alpha[b] - inverse[a * n + b];
        let mut grad = vec![0.0; dims + 2];
        let mut p = 0;
        let mut signal_sum = 0.0;
        for a in 0..n {
            let waa = w(a, a);
            signal_sum += 0.5 * waa * h.signal;
            grad[dims + 1] += 0.5 * waa * (h.noise - MIN_NOISE);
            for b in a + 1..n {
                let wab = w(a, b);
                signal_sum += wab * k[a * n + b];
                let g = wab * factor[p];
                let row = &self.pairs[p * dims..(p + 1) * dims];
                for d in 0..dims {
                    grad[d] += g * row[d] * inverse_squared[d];
                }
                p += 1;
            }
        }
        grad[dims] = signal_sum;
        // Log priors.
        let mut prior = 0.0;
        // −0.1 (ℓ² + ℓ⁻²) per lengthscale, with θ = ln ℓ.
        for (t, slot) in theta[..dims].iter().zip(&mut grad[..dims]) {
            let (up, down) = ((2.0 * t).exp(), (-2.0 * t).exp());
            prior -= 0.1 * (up + down);
            *slot -= 0.2 * (up - down);
        }
        prior += theta[dims] - h.signal; // Gamma(2, 1) on s²
        grad[dims] += 1.0 - h.signal;
        let excess = h.noise - MIN_NOISE;
        prior += 0.1 * h.noise.ln() - 30.0 * h.noise; // Gamma(1.1, 30) on σ_n²
        grad[dims + 1] += (0.1 / h.noise - 30.0) * excess;
        let value = -(lml + prior);
        if !value.is_finite() {
            return bad;
        }
        (value, grad.iter().map(|g| -g).collect())
    }
}

/// A function to minimise, returning its value and gradient.
type Objective<'a> = dyn Fn(&[f64]) -> (f64, Vec<f64>) + 'a;

/// Minimises `f` over the box `[lower, upper]` from `x0` by projected L-BFGS
/// (memory 8) with a backtracking Armijo line search; returns the best point
/// and value. A coordinate at a bound whose gradient pushes outward is held
/// there (left out of the quasi-Newton direction), as L-BFGS-B does; the
/// search stops when the projected gradient's largest component is below
/// `gradient_tolerance` or an iteration improves by less than a relative 1e-9.
fn lbfgs(
    f: &Objective<'_>,
    x0: Vec<f64>,
    (lower, upper): (&[f64], &[f64]),
    max_iterations: usize,
    gradient_tolerance: f64,
) -> (Vec<f64>, f64) {
    let mut x = x0;
    let (mut fx, mut g) = f(&x);
    if !fx.is_finite() {
        return (x, fx);
    }
    // The gradient with the components that push against an active bound zeroed.
    let projected = |x: &[f64], g: &[f64]| -> Vec<f64> {
        g.iter()
            .enumerate()
            .map(|(i, &gi)| {
                if (x[i] <= lower[i] && gi > 0.0) || (x[i] >= upper[i] && gi < 0.0) {
                    0.0
                } else {
                    gi
                }
            })
            .collect()
    };
    let mut history: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::new();
    for iteration in 0..max_iterations {
        let pg = projected(&x, &g);
        if pg.iter().all(|v| v.abs() < gradient_tolerance) {
            break;
        }
        // Two-loop recursion: d = −H g.
        let mut q = pg.clone();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let a = rho * dot(s, &q);
            for (qi, yi) in q.iter_mut().zip(y) {
                *qi -= a * yi;
            }
            alphas.push(a);
        }
        let gamma = history
            .last()
            .map_or(1.0, |(s, y, _)| dot(s, y) / dot(y, y).max(1e-300));
        for qi in &mut q {
            *qi *= gamma;
        }
        for ((s, y, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            for (qi, si) in q.iter_mut().zip(s) {
                *qi += (a - b) * si;
            }
        }
        let mut direction: Vec<f64> = q
            .iter()
            .zip(&pg)
            .map(|(v, p)| if *p == 0.0 { 0.0 } else { -v })
            .collect();
        if dot(&direction, &pg) >= 0.0 {
            direction = pg.iter().map(|v| -v).collect();
            history.clear();
        }
        let norm = dot(&direction, &direction).sqrt();
        let mut step = if iteration == 0 || history.is_empty() {
            (1.0 / norm.max(1e-12)).min(1.0)
        } else {
            1.0
        };
        let mut accepted = None;
        for _ in 0..30 {
            let candidate: Vec<f64> = x
                .iter()
                .zip(&direction)
                .enumerate()
                .map(|(i, (xi, di))| (xi + step * di).clamp(lower[i], upper[i]))
                .collect();
            let moved: Vec<f64> = candidate.iter().zip(&x).map(|(a, b)| a - b).collect();
            let (fc, gc) = f(&candidate);
            if fc.is_finite() && fc <= fx + 1e-4 * dot(&g, &moved) {
                accepted = Some((candidate, fc, gc));
                break;
            }
            step *= 0.5;
        }
        let Some((next, f_next, g_next)) = accepted else {
            break;
        };
        let s: Vec<f64> = next.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_next.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-10 {
            history.push((s, y, 1.0 / sy));
            if history.len() > 8 {
                history.remove(0);
            }
        }
        let improvement = fx - f_next;
        x = next;
        fx = f_next;
        g = g_next;
        if improvement.abs() < 1e-9 * (1.0 + fx.abs()) {
            break;
        }
    }
    (x, fx)
}

/// Fits the kernel's hyperparameters to standardised observations.
fn fit(categorical: &[bool], x: &[Vec<f64>], y: &[f64]) -> Hyper {
    let likelihood = Likelihood::new(categorical, x, y);
    let dims = categorical.len();
    let start = |lengthscale: f64| -> Vec<f64> {
        let mut theta = vec![lengthscale.ln(); dims];
        theta.push(0.0); // s² = 1
        theta.push((1e-2f64).ln()); // σ_n² ≈ 0.01
        theta
    };
    let objective = |theta: &[f64]| likelihood.evaluate(theta);
    let (lower, upper) = (vec![-12.0; dims + 2], vec![12.0; dims + 2]);
    let best = [start(0.5), start(2.0)]
        .into_iter()
        .map(|theta0| lbfgs(&objective, theta0, (&lower, &upper), 60, 1e-6))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(theta, _)| theta)
        .unwrap_or_else(|| start(0.5));
    likelihood.hyper(&best)
}

/// A GP conditioned on observations, with fixed hyperparameters.
#[derive(Debug)]
struct Posterior {
    categorical: Vec<bool>,
    x: Vec<Vec<f64>>,
    hyper: Hyper,
    chol: Vec<f64>,
    alpha: Vec<f64>,
}

impl Posterior {
    fn new(categorical: &[bool], x: Vec<Vec<f64>>, y: &[f64], hyper: Hyper) -> Option<Posterior> {
        let n = x.len();
        let mut k = vec![0.0; n * n];
        let mut post = Posterior {
            categorical: categorical.to_vec(),
            x: Vec::new(),
            hyper,
            chol: Vec::new(),
            alpha: Vec::new(),
        };
        for a in 0..n {
            k[a * n + a] = post.hyper.signal + post.hyper.noise;
            for b in a + 1..n {
                let value = post.kernel(&x[a], &x[b]);
                k[a * n + b] = value;
                k[b * n + a] = value;
            }
        }
        let chol = cholesky(&k, n)?;
        post.alpha = solve_lower_transposed(&chol, n, &solve_lower(&chol, n, y));
        post.chol = chol;
        post.x = x;
        Some(post)
    }

    fn r2(&self, a: &[f64], b: &[f64]) -> f64 {
        (0..a.len())
            .map(|d| {
                let l = self.hyper.lengthscales[d];
                difference(self.categorical[d], a[d], b[d]) / (l * l)
            })
            .sum()
    }

    fn kernel(&self, a: &[f64], b: &[f64]) -> f64 {
        let r2 = self.r2(a, b);
        let r = r2.sqrt();
        self.hyper.signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * (-SQRT5 * r).exp()
    }

    /// Posterior mean and variance of the latent function at `x`.
    fn predict(&self, x: &[f64]) -> (f64, f64) {
        let n = self.x.len();
        let k: Vec<f64> = self.x.iter().map(|xi| self.kernel(x, xi)).collect();
        let mean = dot(&k, &self.alpha);
        let v = solve_lower(&self.chol, n, &k);
        let variance = (self.hyper.signal - dot(&v, &v)).max(1e-12 * self.hyper.signal);
        (mean, variance)
    }

    /// Log EI at `x` over `best`, and its gradient along the numerical
    /// coordinates (zero along categorical ones).
    fn log_ei_with_gradient(&self, x: &[f64], best: f64) -> (f64, Vec<f64>) {
        let n = self.x.len();
        let dims = x.len();
        let mut k = Vec::with_capacity(n);
        // ∂k_i/∂x_d = −(5/3) s² (1 + √5 r) e^{−√5 r} (x_d − x_i,d) / ℓ_d².
        let mut dk = vec![0.0; n * dims];
        for (i, xi) in self.x.iter().enumerate() {
            let r2 = self.r2(x, xi);
            let r = r2.sqrt();
            let e = (-SQRT5 * r).exp();
            k.push(self.hyper.signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * e);
            let f = -5.0 / 3.0 * self.hyper.signal * (1.0 + SQRT5 * r) * e;
            for d in 0..dims {
                if !self.categorical[d] {
                    let l = self.hyper.lengthscales[d];
                    dk[i * dims + d] = f * (x[d] - xi[d]) / (l * l);
                }
            }
        }
        let mean = dot(&k, &self.alpha);
        let u = solve_lower_transposed(&self.chol, n, &solve_lower(&self.chol, n, &k));
        let variance = (self.hyper.signal - dot(&k, &u)).max(1e-12 * self.hyper.signal);
        let sigma = variance.sqrt();
        let z = (mean - best) / sigma;
        let value = sigma.ln() + log_h(z);
        // d log EI = dσ/σ + (Φ(z)/h(z)) (dμ − z dσ)/σ.
        let ratio = (log_normal_cdf(z) - log_h(z)).exp();
        let mut grad = vec![0.0; dims];
        for (d, slot) in grad.iter_mut().enumerate() {
            if self.categorical[d] {
                continue;
            }
            let (mut dmean, mut dvar) = (0.0, 0.0);
            for i in 0..n {
                dmean += dk[i * dims + d] * self.alpha[i];
                dvar -= 2.0 * dk[i * dims + d] * u[i];
            }
            let dsigma = dvar / (2.0 * sigma);
            *slot = dsigma / sigma + ratio * (dmean - z * dsigma) / sigma;
        }
        (value, grad)
    }

    fn log_ei(&self, x: &[f64], best: f64) -> f64 {
        let (mean, variance) = self.predict(x);
        let sigma = variance.sqrt();
        sigma.ln() + log_h((mean - best) / sigma)
    }
}

const LN_SQRT_TAU: f64 = 0.918_938_533_204_672_8; // ln √(2π)
const LN_SQRT_HALF_PI: f64 = 0.225_791_352_644_727_4; // ln √(π/2)

/// `ln h(z)` with `h(z) = φ(z) + z Φ(z)` (EI for unit variance), accurate for
/// very negative `z` (Ament et al. 2023, eq. 9).
pub(crate) fn log_h(z: f64) -> f64 {
    if z > -1.0 {
        let pdf = (-0.5 * z * z).exp() / (std::f64::consts::TAU).sqrt();
        let cdf = 0.5 * libm::erfc(-z / std::f64::consts::SQRT_2);
        return (pdf + z * cdf).ln();
    }
    if z > -1.0 / f64::EPSILON.sqrt() {
        let t = (erfcx(-z / std::f64::consts::SQRT_2) * z.abs()).ln() + LN_SQRT_HALF_PI;
        return -0.5 * z * z - LN_SQRT_TAU + log1mexp(t);
    }
    -0.5 * z * z - LN_SQRT_TAU - 2.0 * z.abs().ln()
}

/// `ln Φ(z)`, accurate in the lower tail.
fn log_normal_cdf(z: f64) -> f64 {
    if z > -5.0 {
        (0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)).ln()
    } else {
        (0.5 * erfcx(-z / std::f64::consts::SQRT_2)).ln() - 0.5 * z * z
    }
}

/// `ln(1 − eˣ)` for `x < 0` (Mächler's two branches).
fn log1mexp(x: f64) -> f64 {
    if x > -std::f64::consts::LN_2 {
        (-x.exp_m1()).ln()
    } else {
        (-x.exp()).ln_1p()
    }
}

/// The scaled complementary error function `e^{x²} erfc(x)`, for `x ≥ 0`.
fn erfcx(x: f64) -> f64 {
    if x < 26.0 {
        return (x * x).exp() * libm::erfc(x);
    }
    // The asymptotic series 1/(x√π) Σ (−1)^k (2k−1)!! / (2x²)^k; its terms are
    // below 1e-24 by the ninth at x ≥ 26.
    let w = 1.0 / (2.0 * x * x);
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..9 {
        term *= -((2 * k - 1) as f64) * w;
        sum += term;
    }
    sum / (x * std::f64::consts::PI.sqrt())
}

/// The parameters GP-BO models jointly: the always-active ones.
fn joint_dims(space: &SearchSpace) -> Vec<(String, Dim)> {
    space
        .parameters()
        .iter()
        .filter(|p| p.condition.is_none())
        .map(|p| (p.name.clone(), Dim::of(p)))
        .collect()
}

/// A uniform point: numerical coordinates in `[0, 1]`, choice indices.
fn uniform_point(dims: &[(String, Dim)], rng: &mut Rng) -> Vec<f64> {
    dims.iter()
        .map(|(_, dim)| match dim {
            Dim::Numeric(_) => rng.next_f64(),
            Dim::Categorical(choices) => rng.below(choices.len().max(1) as u64) as f64,
        })
        .collect()
}

/// How many of the best-scoring candidates are refined (the best observation
/// is refined as well).
const N_STARTS: usize = 9;

/// Local refinement of `x`: bounded L-BFGS on the numerical coordinates, in
/// units of their lengthscales (`z_d = x_d / ℓ_d` in `[0, 1/ℓ_d]`, which makes
/// the acquisition about equally curved in every direction, as Optuna's
/// `GPSampler` does), then a sweep over each categorical one; again while the
/// sweep changes something, at most three rounds.
fn refine(
    posterior: &Posterior,
    dims: &[(String, Dim)],
    mut x: Vec<f64>,
    best: f64,
) -> (Vec<f64>, f64) {
    let numeric: Vec<usize> = (0..dims.len())
        .filter(|&d| !dims[d].1.is_categorical())
        .collect();
    let scale: Vec<f64> = numeric
        .iter()
        .map(|&d| posterior.hyper.lengthscales[d])
        .collect();
    let lower = vec![0.0; numeric.len()];
    let upper: Vec<f64> = scale.iter().map(|l| 1.0 / l).collect();
    let mut value = posterior.log_ei(&x, best);
    for _round in 0..3 {
        if !numeric.is_empty() {
            let base = x.clone();
            let point = |z: &[f64]| -> Vec<f64> {
                let mut p = base.clone();
                for ((&d, zi), l) in numeric.iter().zip(z).zip(&scale) {
                    p[d] = (zi * l).clamp(0.0, 1.0);
                }
                p
            };
            let objective = |z: &[f64]| -> (f64, Vec<f64>) {
                let (v, g) = posterior.log_ei_with_gradient(&point(z), best);
                (
                    -v,
                    numeric
                        .iter()
                        .zip(&scale)
                        .map(|(&d, l)| -g[d] * l)
                        .collect(),
                )
            };
            let z0: Vec<f64> = numeric.iter().zip(&scale).map(|(&d, l)| x[d] / l).collect();
            let (z, f) = lbfgs(&objective, z0, (&lower, &upper), 200, 1e-2);
            if -f > value {
                x = point(&z);
                value = -f;
            }
        }
        let mut swept = false;
        for (d, (_, dim)) in dims.iter().enumerate() {
            if let Dim::Categorical(choices) = dim {
                for c in 0..choices.len() {
                    let mut candidate = x.clone();
                    candidate[d] = c as f64;
                    let next = posterior.log_ei(&candidate, best);
                    if next > value {
                        x = candidate;
                        value = next;
                        swept = true;
                    }
                }
            }
        }
        if !swept {
            break;
        }
    }
    let snapped: Vec<f64> = x
        .iter()
        .zip(dims)
        .map(|(xi, (_, dim))| dim.snap(*xi))
        .collect();
    let value = posterior.log_ei(&snapped, best);
    (snapped, value)
}

impl Proposer for GpProposer {
    fn name(&self) -> &'static str {
        "gp"
    }

    fn infer_relative_space(&mut self, space: &SearchSpace, history: &History<'_>) -> Vec<String> {
        if self.complete(history) < self.options.n_startup_trials.max(2) {
            return Vec::new();
        }
        joint_dims(space)
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
        let dims = joint_dims(space);
        let categorical: Vec<bool> = dims.iter().map(|(_, d)| d.is_categorical()).collect();
        let point = |trial: &Trial| -> Option<Vec<f64>> {
            dims.iter()
                .map(|(name, dim)| trial.params.get(name).and_then(|v| dim.coordinate(v)))
                .collect()
        };
        let mut x = Vec::new();
        let mut gains = Vec::new();
        let mut running = Vec::new();
        let mut fingerprint = 0x6770u64;
        for trial in history.trials {
            match (self.gain(trial), point(trial)) {
                (Some(g), Some(p)) => {
                    fingerprint = derive_seed(fingerprint, &[trial.number, g.to_bits()]);
                    x.push(p);
                    gains.push(g);
                }
                (None, Some(p)) if trial.state == TrialState::Running => running.push(p),
                _ => {}
            }
        }
        if x.len() < 2 {
            return Proposal::default();
        }
        let mean = gains.iter().sum::<f64>() / gains.len() as f64;
        let sd =
            (gains.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gains.len() as f64).sqrt();
        let sd = if sd > 0.0 { sd } else { 1.0 };
        let y: Vec<f64> = gains.iter().map(|g| (g - mean) / sd).collect();
        let hyper = match &self.fitted {
            Some((key, hyper)) if *key == fingerprint => hyper.clone(),
            _ => {
                let hyper = fit(&categorical, &x, &y);
                self.fitted = Some((fingerprint, hyper.clone()));
                hyper
            }
        };
        let Some(observed) = Posterior::new(&categorical, x.clone(), &y, hyper.clone()) else {
            return Proposal::default();
        };
        // The threshold: the best posterior mean at an observation, μ_i = y_i −
        // σ_n² α_i (as (K + σ_n² I) α = y). The best observed value itself
        // would be, on a noisy fit, partly luck the model cannot reach, and EI
        // would fall to nothing everywhere but at the cube's corners.
        let best = y
            .iter()
            .zip(&observed.alpha)
            .map(|(yi, ai)| yi - hyper.noise * ai)
            .fold(f64::NEG_INFINITY, f64::max);
        // Running trials as fantasies with the worst observed value (the
        // constant liar): the model steers away from where others are working.
        let worst = y.iter().copied().fold(f64::INFINITY, f64::min);
        let posterior = if running.is_empty() {
            observed
        } else {
            let mut all_x = x.clone();
            let mut all_y = y.clone();
            for p in &running {
                all_x.push(p.clone());
                all_y.push(worst);
            }
            match Posterior::new(&categorical, all_x, &all_y, hyper.clone()) {
                Some(p) => p,
                None => observed,
            }
        };
        // Candidates: uniform points, and the best observations jittered.
        let mut candidates: Vec<Vec<f64>> = (0..self.options.n_candidates)
            .map(|_| uniform_point(&dims, rng))
            .collect();
        let mut order: Vec<usize> = (0..x.len()).collect();
        order.sort_by(|&a, &b| y[b].total_cmp(&y[a]));
        for &i in order.iter().take(5) {
            for _ in 0..20 {
                let jittered = x[i]
                    .iter()
                    .zip(&dims)
                    .map(|(xi, (_, dim))| match dim {
                        Dim::Numeric(_) => (xi + 0.05 * normal(rng)).clamp(0.0, 1.0),
                        Dim::Categorical(_) => *xi,
                    })
                    .collect();
                candidates.push(jittered);
            }
        }
        let n_scored = candidates.len();
        let mut scored: Vec<(f64, Vec<f64>)> = candidates
            .into_iter()
            .map(|c| (posterior.log_ei(&c, best), c))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        // The best refined candidate that is no trial's point already (a
        // repeat is likely on discrete spaces); else the best unrefined one.
        let taken = |c: &[f64]| x.iter().chain(&running).any(|p| p.as_slice() == c);
        let mut starts: Vec<Vec<f64>> = scored
            .iter()
            .take(N_STARTS)
            .map(|(_, c)| c.clone())
            .collect();
        starts.push(x[order[0]].clone());
        let mut refined: Vec<(Vec<f64>, f64)> = starts
            .into_iter()
            .map(|c| refine(&posterior, &dims, c, best))
            .collect();
        refined.sort_by(|a, b| b.1.total_cmp(&a.1));
        let fallback = || {
            scored
                .iter()
                .map(|(_, c)| {
                    let snapped: Vec<f64> = c
                        .iter()
                        .zip(&dims)
                        .map(|(xi, (_, d))| d.snap(*xi))
                        .collect();
                    let value = posterior.log_ei(&snapped, best);
                    (snapped, value)
                })
                .find(|(c, _)| !taken(c))
        };
        let (chosen, log_ei) = refined
            .iter()
            .find(|(c, _)| !taken(c))
            .cloned()
            .or_else(fallback)
            .or_else(|| refined.first().cloned())
            .unwrap_or_else(|| (uniform_point(&dims, rng), f64::NEG_INFINITY));
        let params: Params = dims
            .iter()
            .zip(&chosen)
            .map(|((name, dim), xi)| (name.clone(), dim.value(*xi)))
            .collect();
        let lengthscales: Vec<String> = dims
            .iter()
            .zip(&hyper.lengthscales)
            .map(|((name, _), l)| format!("{name}={l:.3}"))
            .collect();
        let rationale = format!(
            "gp: logEI {log_ei:.3} over {n_scored} candidates, lengthscales {}; noise {:.2e}, {} observations, {} running",
            lengthscales.join(" "),
            hyper.noise,
            x.len(),
            running.len()
        );
        Proposal::new(params, rationale)
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
    fn log_h_matches_high_precision_values() {
        // Reference values from mpmath at 50 digits: ln(φ(z) + z Φ(z)).
        let cases = [
            (3.0, 1.098_739_665_327_707_8),
            (0.0, -0.918_938_533_204_672_7),
            (-0.5, -1.620_516_264_387_32),
            (-1.0, -2.485_121_025_712_641_3),
            (-2.0, -4.768_783_523_917_114),
            (-5.0, -16.744_301_162_660_99),
            (-10.0, -55.553_122_036_122_36),
            (-20.0, -206.917_838_509_425_1),
            (-30.0, -457.724_653_760_598),
            (-40.0, -808.298_568_356_62),
            (-100.0, -5_010.129_578_800_25),
            (-1e4, -50_000_019.339_619_31),
            (-1e9, -5.000_000_000_000_000_4e17),
        ];
        for (z, expected) in cases {
            let got = log_h(z);
            assert!(
                (got - expected).abs() <= 1e-10 * expected.abs().max(1.0),
                "log_h({z}) = {got}, expected {expected}"
            );
        }
        let cdf = [
            (-5.0, -15.064_998_393_988_726),
            (-40.0, -804.608_442_013_753_8),
        ];
        for (z, expected) in cdf {
            assert!((log_normal_cdf(z) - expected).abs() < 1e-10 * expected.abs());
        }
    }

    #[test]
    fn the_likelihood_gradient_matches_finite_differences() {
        let mut rng = Rng::new(4);
        let categorical = [false, false, true];
        let x: Vec<Vec<f64>> = (0..12)
            .map(|_| vec![rng.next_f64(), rng.next_f64(), rng.below(3) as f64])
            .collect();
        let y: Vec<f64> = x
            .iter()
            .map(|p| (3.0 * p[0]).sin() + p[1] * p[1] + 0.3 * p[2])
            .collect();
        let likelihood = Likelihood::new(&categorical, &x, &y);
        let theta = [-0.7, 0.2, 0.1, 0.3, -3.0];
        let (_, grad) = likelihood.evaluate(&theta);
        for j in 0..theta.len() {
            let h = 1e-5;
            let mut plus = theta;
            plus[j] += h;
            let mut minus = theta;
            minus[j] -= h;
            let numeric =
                (likelihood.evaluate(&plus).0 - likelihood.evaluate(&minus).0) / (2.0 * h);
            assert!(
                (numeric - grad[j]).abs() < 1e-5 * (1.0 + numeric.abs()),
                "θ{j}: analytic {}, numeric {numeric}",
                grad[j]
            );
        }
    }

    #[test]
    fn lbfgs_stays_in_its_box() {
        // A valley whose minimum (2, 0.3) lies outside the box in x0: the
        // constrained minimum is on the face x0 = 1.
        let f = |x: &[f64]| -> (f64, Vec<f64>) {
            let (a, b) = (x[0] - 2.0, x[1] - 0.3);
            (
                a * a + 10.0 * b * b + a * b,
                vec![2.0 * a + b, 20.0 * b + a],
            )
        };
        let (lower, upper) = ([0.0, 0.0], [1.0, 1.0]);
        let (x, _) = lbfgs(&f, vec![0.2, 0.9], (&lower, &upper), 100, 1e-9);
        // On x0 = 1: ∂f/∂x1 = 20 (x1 − 0.3) − 1 = 0.
        assert!((x[0] - 1.0).abs() < 1e-12, "{x:?}");
        assert!((x[1] - 0.35).abs() < 1e-6, "{x:?}");
        let (lower, upper) = ([-5.0, -5.0], [5.0, 5.0]);
        let (x, value) = lbfgs(&f, vec![0.2, 0.9], (&lower, &upper), 100, 1e-9);
        assert!(
            (x[0] - 2.0).abs() < 1e-5 && (x[1] - 0.3).abs() < 1e-5,
            "{x:?}"
        );
        assert!(value.abs() < 1e-9);
    }

    /// A posterior over `n` uniform points of the unit square observed through
    /// `f`, with fixed lengthscales and little noise; also the observations.
    fn posterior_2d(
        rng: &mut Rng,
        n: usize,
        lengthscales: [f64; 2],
        f: impl Fn(&[f64]) -> f64,
    ) -> (Posterior, Vec<f64>) {
        let x: Vec<Vec<f64>> = (0..n)
            .map(|_| vec![rng.next_f64(), rng.next_f64()])
            .collect();
        let y: Vec<f64> = x.iter().map(|p| f(p)).collect();
        let hyper = Hyper {
            lengthscales: lengthscales.to_vec(),
            signal: 1.0,
            noise: 1e-4,
        };
        let posterior = Posterior::new(&[false, false], x, &y, hyper).expect("positive definite");
        (posterior, y)
    }

    #[test]
    fn refinement_reaches_the_acquisition_maximum() {
        let mut rng = Rng::new(3);
        let (posterior, y) = posterior_2d(&mut rng, 20, [0.15, 0.4], |p| {
            (6.0 * p[0]).sin() * (4.0 * p[1]).cos()
        });
        let best = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut grid_best = f64::NEG_INFINITY;
        for i in 0..=200 {
            for j in 0..=200 {
                let point = [i as f64 / 200.0, j as f64 / 200.0];
                grid_best = grid_best.max(posterior.log_ei(&point, best));
            }
        }
        let axis = Axis::of(&Distribution::Float {
            low: 0.0,
            high: 1.0,
            log: false,
            step: None,
        })
        .expect("a float axis");
        let dims = vec![
            ("a".to_string(), Dim::Numeric(axis)),
            ("b".to_string(), Dim::Numeric(axis)),
        ];
        let refined = (0..10)
            .map(|_| refine(&posterior, &dims, uniform_point(&dims, &mut rng), best).1)
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(
            refined >= grid_best - 1e-9,
            "refined {refined}, grid {grid_best}"
        );
    }

    #[test]
    fn the_acquisition_gradient_matches_finite_differences() {
        let mut rng = Rng::new(9);
        let (posterior, _) = posterior_2d(&mut rng, 15, [0.3, 0.5], |p| {
            -(p[0] - 0.3).powi(2) - (p[1] - 0.6).powi(2)
        });
        let best = 0.0;
        let point = [0.42, 0.17];
        let (value, grad) = posterior.log_ei_with_gradient(&point, best);
        assert!((value - posterior.log_ei(&point, best)).abs() < 1e-9);
        for d in 0..2 {
            let h = 1e-6;
            let mut plus = point;
            plus[d] += h;
            let mut minus = point;
            minus[d] -= h;
            let numeric =
                (posterior.log_ei(&plus, best) - posterior.log_ei(&minus, best)) / (2.0 * h);
            assert!(
                (numeric - grad[d]).abs() < 1e-4 * (1.0 + numeric.abs()),
                "x{d}: analytic {}, numeric {numeric}",
                grad[d]
            );
        }
    }
}

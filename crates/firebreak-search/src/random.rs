//! Random search: every parameter drawn uniformly (on the log scale for `log`).

use firebreak_core::{Distribution, ParamValue, Rng};

use crate::proposer::Proposer;

/// Uniform random search, the baseline every other proposer must beat.
#[derive(Debug, Default, Clone)]
pub struct RandomProposer;

impl Proposer for RandomProposer {
    fn name(&self) -> &'static str {
        "random"
    }
}

/// One uniform draw from `distribution` (log-uniform when `log`, on the `step` grid
/// when stepped). Every other proposer uses it for startup and fallback draws.
pub fn sample_uniform(distribution: &Distribution, rng: &mut Rng) -> ParamValue {
    match *distribution {
        Distribution::Float {
            low,
            high,
            log,
            step,
        } => {
            if let Some(step) = step {
                let n = ((high - low) / step + 1e-9).floor() as u64 + 1;
                let k = rng.below(n) as f64;
                return ParamValue::Float((low + k * step).min(high));
            }
            let u = rng.next_f64();
            let x = if log {
                (low.ln() + u * (high.ln() - low.ln())).exp()
            } else {
                low + u * (high - low)
            };
            ParamValue::Float(x.clamp(low, high))
        }
        Distribution::Int {
            low,
            high,
            log,
            step,
        } => {
            if log {
                let (a, b) = ((low as f64 - 0.5).max(0.5).ln(), (high as f64 + 0.5).ln());
                let x = (a + rng.next_f64() * (b - a)).exp().round() as i64;
                return ParamValue::Int(x.clamp(low, high));
            }
            let step = step.unwrap_or(1);
            let n = ((high - low) / step) as u64 + 1;
            ParamValue::Int(low + step * rng.below(n) as i64)
        }
        Distribution::Categorical { ref choices } => {
            choices[rng.below(choices.len() as u64) as usize].clone()
        }
    }
}

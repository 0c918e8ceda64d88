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
                // `as` saturates: a huge count draws from all of u64 instead of overflowing.
                let last = ((high - low) / step + 1e-9).floor() as u64;
                let k = rng.up_to(last) as f64;
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
            // In i128: `high - low` of a range over all of i64 does not fit an i64.
            let step = i128::from(step.unwrap_or(1).max(1));
            let last = (i128::from(high) - i128::from(low)) / step;
            let k = rng.up_to(u64::try_from(last).unwrap_or(u64::MAX));
            ParamValue::Int((i128::from(low) + step * i128::from(k)) as i64)
        }
        Distribution::Categorical { ref choices } => {
            choices[rng.below(choices.len() as u64) as usize].clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_over_the_whole_i64_range_are_drawn_without_overflow() {
        let mut rng = Rng::new(11);
        let all = Distribution::Int {
            low: i64::MIN,
            high: i64::MAX,
            log: false,
            step: None,
        };
        let stepped = Distribution::Int {
            low: i64::MIN,
            high: i64::MAX,
            log: false,
            step: Some(3),
        };
        for _ in 0..1000 {
            assert!(matches!(sample_uniform(&all, &mut rng), ParamValue::Int(_)));
            let ParamValue::Int(x) = sample_uniform(&stepped, &mut rng) else {
                panic!("an int");
            };
            assert_eq!((i128::from(x) - i128::from(i64::MIN)) % 3, 0);
        }
        let tiny_steps = Distribution::Float {
            low: 0.0,
            high: 1e300,
            log: false,
            step: Some(1e-300),
        };
        let ParamValue::Float(x) = sample_uniform(&tiny_steps, &mut rng) else {
            panic!("a float");
        };
        assert!((0.0..=1e300).contains(&x));
    }
}

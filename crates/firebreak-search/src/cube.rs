//! The unit cube that model-based proposers (CMA-ES, Sobol, GP-BO) work in: each
//! numerical parameter is one coordinate in `[0, 1]`, categorical parameters are
//! one coordinate whose cells are the choices.
//!
//! A numerical coordinate is linear in the parameter's internal scale (the log for
//! `log = true`). Discrete parameters (ints, stepped floats) give each valid value
//! a cell of equal width, so a uniform coordinate draws every value equally often
//! (up to the log scale's stretching) and rounding a coordinate picks the value
//! whose cell holds it. No IO, no randomness.

use firebreak_core::{Distribution, ParamValue};

/// A numerical distribution's bounds as floats: ints have step 1 unless stepped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Numeric {
    pub(crate) low: f64,
    pub(crate) high: f64,
    pub(crate) log: bool,
    pub(crate) step: Option<f64>,
    pub(crate) int: bool,
}

impl Numeric {
    /// The bounds of a float or int distribution; `None` for a categorical one.
    pub(crate) fn of(distribution: &Distribution) -> Option<Numeric> {
        match *distribution {
            Distribution::Float {
                low,
                high,
                log,
                step,
            } => Some(Numeric {
                low,
                high,
                log,
                step,
                int: false,
            }),
            Distribution::Int {
                low,
                high,
                log,
                step,
            } => Some(Numeric {
                low: low as f64,
                high: high as f64,
                log,
                step: Some(step.unwrap_or(1) as f64),
                int: true,
            }),
            Distribution::Categorical { .. } => None,
        }
    }
}

/// One numerical parameter's coordinate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Axis {
    /// Internal (possibly log) bounds of the coordinate, widened by half a cell
    /// for discrete parameters.
    low: f64,
    high: f64,
    log: bool,
    /// The grid's step (1 for ints), for discrete parameters.
    step: Option<f64>,
    /// The number of grid values, for discrete parameters.
    cells: u64,
    int: bool,
    original_low: f64,
    original_high: f64,
}

impl Axis {
    /// The coordinate of a numerical distribution; `None` for categorical ones.
    pub(crate) fn of(distribution: &Distribution) -> Option<Axis> {
        let n = Numeric::of(distribution)?;
        Some(Axis::new(n.low, n.high, n.log, n.step, n.int))
    }

    fn new(low: f64, high: f64, log: bool, step: Option<f64>, int: bool) -> Axis {
        let t = |x: f64| {
            if log {
                x.max(f64::MIN_POSITIVE).ln()
            } else {
                x
            }
        };
        let (cells, last) = match step {
            Some(q) => {
                // The same count of grid values as `sample_uniform` uses.
                let n = ((high - low) / q + 1e-9).floor() as u64 + 1;
                (n, low + (n - 1) as f64 * q)
            }
            None => (0, high),
        };
        let half = step.map_or(0.0, |q| q / 2.0);
        // A log int starts at 1 or more, so `low - 0.5` stays positive.
        Axis {
            low: t(low - half),
            high: t(last + half),
            log,
            step,
            cells,
            int,
            original_low: low,
            original_high: high,
        }
    }

    /// Where `value` lies in `[0, 1]`; `None` for a non-numerical value.
    pub(crate) fn coordinate(&self, value: &ParamValue) -> Option<f64> {
        let x = value.as_f64()?;
        let internal = if self.log {
            x.max(f64::MIN_POSITIVE).ln()
        } else {
            x
        };
        let width = self.high - self.low;
        if width <= 0.0 {
            return Some(0.5);
        }
        Some(((internal - self.low) / width).clamp(0.0, 1.0))
    }

    /// The valid value at coordinate `u` (clamped to `[0, 1]`): the grid value
    /// whose cell holds it, for discrete parameters.
    pub(crate) fn value_at(&self, u: f64) -> ParamValue {
        let u = if u.is_nan() { 0.5 } else { u.clamp(0.0, 1.0) };
        let internal = self.low + u * (self.high - self.low);
        let x = if self.log { internal.exp() } else { internal };
        match self.step {
            Some(q) => {
                let k = ((x - self.original_low) / q)
                    .round()
                    .clamp(0.0, (self.cells - 1) as f64);
                if self.int {
                    ParamValue::Int(self.original_low as i64 + k as i64 * q as i64)
                } else {
                    ParamValue::Float(self.original_low + k * q)
                }
            }
            None => ParamValue::Float(x.clamp(self.original_low, self.original_high)),
        }
    }
}

/// The choice whose cell holds coordinate `u` of a categorical parameter with
/// `k` choices: `floor(u·k)`, kept below `k`.
pub(crate) fn choice_index(u: f64, k: usize) -> usize {
    let u = if u.is_nan() { 0.0 } else { u.clamp(0.0, 1.0) };
    ((u * k as f64).floor() as usize).min(k.saturating_sub(1))
}

/// The value of any distribution at coordinate `u`: [`Axis::value_at`] for
/// numerical ones, [`choice_index`] for categorical ones.
pub(crate) fn value_at(distribution: &Distribution, u: f64) -> ParamValue {
    if let Distribution::Categorical { choices } = distribution {
        return choices[choice_index(u, choices.len())].clone();
    }
    // Every non-categorical distribution has an axis.
    Axis::of(distribution).map_or(ParamValue::Float(u), |axis| axis.value_at(u))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(low: i64, high: i64, log: bool, step: Option<i64>) -> Axis {
        Axis::of(&Distribution::Int {
            low,
            high,
            log,
            step,
        })
        .expect("numerical")
    }

    #[test]
    fn ints_get_cells_of_equal_width() {
        let axis = int(1, 4, false, None);
        let values: Vec<ParamValue> = [0.0, 0.24, 0.26, 0.49, 0.51, 0.74, 0.76, 1.0]
            .iter()
            .map(|u| axis.value_at(*u))
            .collect();
        let expected = [1, 1, 2, 2, 3, 3, 4, 4].map(ParamValue::Int);
        assert_eq!(values, expected);
        // A value maps to the centre of its cell and back.
        for v in 1..=4 {
            let u = axis.coordinate(&ParamValue::Int(v)).expect("numeric");
            assert!((u - (v as f64 - 0.5) / 4.0).abs() < 1e-12);
            assert_eq!(axis.value_at(u), ParamValue::Int(v));
        }
    }

    #[test]
    fn stepped_floats_and_logs_stay_valid() {
        let stepped = Axis::of(&Distribution::Float {
            low: 0.0,
            high: 0.5,
            log: false,
            step: Some(0.1),
        })
        .expect("numerical");
        assert_eq!(stepped.value_at(1.0), ParamValue::Float(0.5));
        assert_eq!(stepped.value_at(0.0), ParamValue::Float(0.0));
        let log = Axis::of(&Distribution::Float {
            low: 1e-4,
            high: 0.1,
            log: true,
            step: None,
        })
        .expect("numerical");
        let mid = log.value_at(0.5).as_f64().expect("float");
        assert!((mid - (1e-4f64 * 0.1).sqrt()).abs() < 1e-12);
        assert_eq!(log.value_at(1.0), ParamValue::Float(0.1));
        let wide = int(16, 1024, true, None);
        assert_eq!(wide.value_at(0.0), ParamValue::Int(16));
        assert_eq!(wide.value_at(1.0), ParamValue::Int(1024));
        let odd = int(0, 10, false, Some(3)); // 0, 3, 6, 9
        assert_eq!(odd.value_at(1.0), ParamValue::Int(9));
    }

    #[test]
    fn categorical_cells() {
        assert_eq!(choice_index(0.0, 3), 0);
        assert_eq!(choice_index(0.34, 3), 1);
        assert_eq!(choice_index(0.999, 3), 2);
        assert_eq!(choice_index(1.0, 3), 2);
    }
}

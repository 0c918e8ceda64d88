//! Grid search: every combination of each parameter's grid values, visited in a
//! fixed order, skipping points the history already holds.

use firebreak_core::{Distribution, ParamValue, Parameter, Params, Rng, SearchSpace};

use crate::SearchError;
use crate::proposer::{History, Proposer};

/// The most grid points a campaign may enumerate.
const MAX_POINTS: usize = 1_000_000;

/// Exhaustive grid search. Categorical parameters contribute their choices; int
/// parameters every value (or `points_per_axis` values when there are more than
/// 64); float parameters every `step` value when stepped, else `points_per_axis`
/// values spread evenly (geometrically with `log`). Conditional parameters are
/// enumerated only where active.
#[derive(Debug, Clone)]
pub struct GridProposer {
    points: Vec<Params>,
}

impl GridProposer {
    /// Enumerates the grid of `space`.
    pub fn new(space: &SearchSpace, points_per_axis: usize) -> Result<Self, SearchError> {
        if points_per_axis < 2 {
            return Err(SearchError::BadOption {
                key: "points_per_axis".into(),
                message: format!("needs at least 2 points, got {points_per_axis}"),
            });
        }
        let mut points = vec![Params::new()];
        for parameter in space.parameters() {
            let values = axis(parameter, points_per_axis);
            let mut next = Vec::new();
            for point in points {
                if SearchSpace::is_active(parameter, &point) {
                    for value in &values {
                        let mut extended = point.clone();
                        extended.insert(parameter.name.clone(), value.clone());
                        next.push(extended);
                    }
                } else {
                    next.push(point);
                }
                if next.len() > MAX_POINTS {
                    return Err(SearchError::Unsupported(format!(
                        "the grid has more than {MAX_POINTS} points; give floats a `step` or lower points_per_axis"
                    )));
                }
            }
            points = next;
        }
        Ok(GridProposer { points })
    }

    /// How many points the grid has.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when the grid has no points (never: a space has at least one parameter).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

fn axis(parameter: &Parameter, n: usize) -> Vec<ParamValue> {
    match parameter.distribution {
        Distribution::Categorical { ref choices } => choices.clone(),
        Distribution::Int {
            low,
            high,
            log,
            step,
        } => {
            let step = step.unwrap_or(1);
            let count = ((high - low) / step) as usize + 1;
            if count <= 64 {
                return (0..count as i64)
                    .map(|k| ParamValue::Int(low + k * step))
                    .collect();
            }
            let mut values: Vec<i64> = spread(low as f64, high as f64, log, n)
                .into_iter()
                .map(|x| low + ((x - low as f64) / step as f64).round() as i64 * step)
                .collect();
            values.dedup();
            values.into_iter().map(ParamValue::Int).collect()
        }
        Distribution::Float {
            low,
            high,
            log,
            step,
        } => match step {
            Some(step) if ((high - low) / step) < 1000.0 => {
                let count = ((high - low) / step + 1e-9).floor() as usize + 1;
                (0..count)
                    .map(|k| ParamValue::Float(low + k as f64 * step))
                    .collect()
            }
            _ => spread(low, high, log, n)
                .into_iter()
                .map(ParamValue::Float)
                .collect(),
        },
    }
}

fn spread(low: f64, high: f64, log: bool, n: usize) -> Vec<f64> {
    (0..n)
        .map(|k| {
            let t = k as f64 / (n - 1) as f64;
            if log {
                (low.ln() + t * (high.ln() - low.ln())).exp()
            } else {
                low + t * (high - low)
            }
            .clamp(low, high)
        })
        .collect()
}

fn same_point(a: &Params, b: &Params) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && va.matches(vb))
}

impl Proposer for GridProposer {
    fn name(&self) -> &'static str {
        "grid"
    }

    fn infer_relative_space(&mut self, space: &SearchSpace, _history: &History<'_>) -> Vec<String> {
        space.parameters().iter().map(|p| p.name.clone()).collect()
    }

    fn sample_relative(
        &mut self,
        _space: &SearchSpace,
        history: &History<'_>,
        _relative: &[String],
        _rng: &mut Rng,
    ) -> (Params, String) {
        let total = self.points.len();
        let visited = |point: &Params| history.trials.iter().any(|t| same_point(&t.params, point));
        match self.points.iter().position(|p| !visited(p)) {
            Some(index) => (
                self.points[index].clone(),
                format!("grid point {} of {total}", index + 1),
            ),
            None => {
                // Every point was tried: repeat them in order (e.g. to average noise).
                let index = history.trials.len() % total;
                (
                    self.points[index].clone(),
                    format!("grid exhausted; repeating point {} of {total}", index + 1),
                )
            }
        }
    }
}

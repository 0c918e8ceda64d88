//! Grid search: every combination of each parameter's grid values, visited in a
//! fixed order, skipping points the history already holds.

use firebreak_core::{Distribution, ParamValue, Parameter, Params, Rng, SearchSpace};

use crate::SearchError;
use crate::proposer::{History, Proposal, Proposer};

/// The most grid points a campaign may enumerate.
const MAX_POINTS: usize = 1_000_000;

/// The most values one axis may be spread over (`points_per_axis`); each is
/// allocated before the grid's size is known.
const MAX_POINTS_PER_AXIS: usize = 10_000;

/// The most parameter values all grid points together may hold (points times
/// their active parameters): about a gigabyte of memory.
const MAX_VALUES: usize = 10_000_000;

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
        if !(2..=MAX_POINTS_PER_AXIS).contains(&points_per_axis) {
            return Err(SearchError::BadOption {
                key: "points_per_axis".into(),
                message: format!("needs 2 to {MAX_POINTS_PER_AXIS} points, got {points_per_axis}"),
            });
        }
        let too_big = || {
            SearchError::Unsupported(format!(
                "the grid has more than {MAX_POINTS} points (or {MAX_VALUES} values over all points); give floats a `step` or lower points_per_axis"
            ))
        };
        let mut points = vec![Params::new()];
        for parameter in space.parameters() {
            let values = axis(parameter, points_per_axis);
            if values.is_empty() {
                return Err(SearchError::Unsupported(format!(
                    "parameter `{}` has no grid values",
                    parameter.name
                )));
            }
            let mut next = Vec::new();
            // Values held by the points of `next`, checked as they grow.
            let mut held = 0usize;
            for point in points {
                if SearchSpace::is_active(parameter, &point) {
                    for value in &values {
                        held += point.len() + 1;
                        if next.len() >= MAX_POINTS || held > MAX_VALUES {
                            return Err(too_big());
                        }
                        let mut extended = point.clone();
                        extended.insert(parameter.name.clone(), value.clone());
                        next.push(extended);
                    }
                } else {
                    held += point.len();
                    if next.len() >= MAX_POINTS || held > MAX_VALUES {
                        return Err(too_big());
                    }
                    next.push(point);
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
            // In i128: `high - low` of a range over all of i64 does not fit an i64.
            let step = i128::from(step.unwrap_or(1).max(1));
            let last = (i128::from(high) - i128::from(low)) / step;
            let at = |k: i128| ParamValue::Int((i128::from(low) + k.clamp(0, last) * step) as i64);
            if last < 64 {
                return (0..=last).map(at).collect();
            }
            // Each spread value to its nearest step at or below `high`.
            let mut values: Vec<ParamValue> = spread(low as f64, high as f64, log, n)
                .into_iter()
                .map(|x| at(((x - low as f64) / step as f64).round() as i128))
                .collect();
            values.dedup();
            values
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
    ) -> Proposal {
        let total = self.points.len();
        let visited = |point: &Params| history.trials.iter().any(|t| same_point(&t.params, point));
        match self.points.iter().position(|p| !visited(p)) {
            Some(index) => Proposal::new(
                self.points[index].clone(),
                format!("grid point {} of {total}", index + 1),
            ),
            None => {
                // Every point was tried: repeat them in order (e.g. to average noise).
                let index = history.trials.len() % total;
                Proposal::new(
                    self.points[index].clone(),
                    format!("grid exhausted; repeating point {} of {total}", index + 1),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposer::History;

    fn int(name: &str, low: i64, high: i64, step: Option<i64>) -> Parameter {
        Parameter {
            name: name.into(),
            distribution: Distribution::Int {
                low,
                high,
                log: false,
                step,
            },
            condition: None,
        }
    }

    #[test]
    fn an_int_over_the_whole_i64_range_has_a_grid_inside_its_bounds() {
        // `SearchSpace::new` rejects such bounds; the grid must not overflow anyway.
        let whole = int("x", i64::MIN, i64::MAX, None);
        let values = axis(&whole, 5);
        assert_eq!(values.first(), Some(&ParamValue::Int(i64::MIN)));
        assert_eq!(values.len(), 5);
        assert!(values.iter().all(|v| whole.distribution.contains(v)));
    }

    #[test]
    fn spread_ints_stay_on_their_steps_and_below_high() {
        let p = int("x", 0, 6490, Some(100));
        let values = axis(&p, 5);
        assert!(
            values.iter().all(|v| p.distribution.contains(v)),
            "{values:?}"
        );
        assert_eq!(values.last(), Some(&ParamValue::Int(6400)));
    }

    #[test]
    fn huge_points_per_axis_is_an_error_not_an_allocation() {
        let space = SearchSpace::new(vec![Parameter {
            name: "lr".into(),
            distribution: Distribution::Float {
                low: 0.0,
                high: 1.0,
                log: false,
                step: None,
            },
            condition: None,
        }])
        .expect("valid space");
        let error = GridProposer::new(&space, 4_294_967_295).expect_err("too many");
        assert!(
            error.to_string().contains("points_per_axis")
                && error.to_string().contains("4294967295"),
            "{error}"
        );
        assert_eq!(
            GridProposer::new(&space, 10_000).expect("fits").len(),
            10_000
        );
        let mut grid = GridProposer::new(&space, 3).expect("fits");
        let objectives =
            firebreak_core::Objectives::single("y", firebreak_core::Direction::Minimize);
        let history = History {
            trials: &[],
            objectives: &objectives,
        };
        let point = grid
            .sample_relative(&space, &history, &[], &mut Rng::new(1))
            .params;
        assert_eq!(point["lr"], ParamValue::Float(0.0));
    }
}

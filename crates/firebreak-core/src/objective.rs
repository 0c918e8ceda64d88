//! Objectives: which metrics a campaign optimises and in which direction.

use serde::{Deserialize, Serialize};

use crate::trial::Metrics;

/// Whether larger or smaller values of a metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Larger is better.
    Maximize,
    /// Smaller is better.
    Minimize,
}

impl Direction {
    /// True when `a` is strictly better than `b` in this direction.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Maximize => a > b,
            Direction::Minimize => a < b,
        }
    }
}

/// One or more metrics with their directions (parallel vectors of equal length).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objectives {
    /// Metric names, as reported by trials.
    pub metrics: Vec<String>,
    /// One direction per metric.
    pub directions: Vec<Direction>,
}

impl Objectives {
    /// A single objective.
    pub fn single(metric: impl Into<String>, direction: Direction) -> Self {
        Objectives {
            metrics: vec![metric.into()],
            directions: vec![direction],
        }
    }

    /// The objective values of `metrics` in objective order, or `None` when one is
    /// missing or not finite.
    pub fn values(&self, metrics: &Metrics) -> Option<Vec<f64>> {
        self.metrics
            .iter()
            .map(|name| metrics.get(name).copied().filter(|v| v.is_finite()))
            .collect()
    }

    /// True when `a` Pareto-dominates `b` (no worse in every objective, better in one).
    pub fn dominates(&self, a: &[f64], b: &[f64]) -> bool {
        let mut strictly = false;
        for ((x, y), direction) in a.iter().zip(b).zip(&self.directions) {
            if direction.better(*y, *x) {
                return false;
            }
            if direction.better(*x, *y) {
                strictly = true;
            }
        }
        strictly
    }

    /// The best complete trials: the Pareto set of the complete trials with every
    /// objective, in number order (with one objective, the first best one).
    pub fn best<'a>(&self, trials: &'a [crate::Trial]) -> Vec<&'a crate::Trial> {
        let complete: Vec<(&crate::Trial, Vec<f64>)> = trials
            .iter()
            .filter(|t| t.state == crate::TrialState::Complete)
            .filter_map(|t| self.values(&t.metrics).map(|v| (t, v)))
            .collect();
        let points: Vec<Vec<f64>> = complete.iter().map(|(_, v)| v.clone()).collect();
        self.pareto_indices(&points)
            .into_iter()
            .map(|i| complete[i].0)
            .collect()
    }

    /// Indices of the non-dominated vectors among `points` (the Pareto set), in input order.
    /// With one objective this is every point sharing the best value, first one first.
    pub fn pareto_indices(&self, points: &[Vec<f64>]) -> Vec<usize> {
        if self.metrics.len() == 1 {
            let direction = self.directions[0];
            let best = points
                .iter()
                .enumerate()
                .fold(None::<usize>, |best, (i, p)| match best {
                    Some(b) if !direction.better(p[0], points[b][0]) => Some(b),
                    _ => Some(i),
                });
            return best.into_iter().collect();
        }
        (0..points.len())
            .filter(|&i| !points.iter().any(|q| self.dominates(q, &points[i])))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_set_of_two_objectives() {
        let o = Objectives {
            metrics: vec!["acc".into(), "latency".into()],
            directions: vec![Direction::Maximize, Direction::Minimize],
        };
        let points = vec![
            vec![0.9, 10.0],
            vec![0.8, 5.0],
            vec![0.7, 6.0],
            vec![0.9, 12.0],
        ];
        assert_eq!(o.pareto_indices(&points), vec![0, 1]);
    }

    #[test]
    fn single_objective_best_is_first_of_ties() {
        let o = Objectives::single("loss", Direction::Minimize);
        let points = vec![vec![3.0], vec![1.0], vec![1.0]];
        assert_eq!(o.pareto_indices(&points), vec![1]);
    }
}

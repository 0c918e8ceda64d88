//! NSGA-II (Deb et al. 2002) for one or more objectives: an elitist parent
//! population chosen by non-dominated sorting and crowding distance among all
//! complete trials, binary tournaments to pick two parents, uniform crossover and
//! per-gene mutation. Until `population` trials are complete, proposals are random.

use firebreak_core::{Objectives, ParamValue, Params, Rng, SearchSpace, Trial, TrialState};

use crate::SearchError;
use crate::proposer::{History, Proposal, Proposer};
use crate::random::sample_uniform;

/// NSGA-II with Optuna's defaults: population 50, crossover probability 0.9,
/// swapping probability 0.5, mutation probability 1/number of parameters.
#[derive(Debug, Clone)]
pub struct Nsga2Proposer {
    population: usize,
    crossover_prob: f64,
    swapping_prob: f64,
}

/// A complete trial's rank (0 = non-dominated) and crowding distance.
#[derive(Debug, Clone, Copy)]
struct Fitness {
    rank: usize,
    crowding: f64,
}

impl Nsga2Proposer {
    /// NSGA-II with a parent population of `population`.
    pub fn new(population: usize) -> Result<Self, SearchError> {
        if population < 2 {
            return Err(SearchError::BadOption {
                key: "population".into(),
                message: format!("needs at least 2, got {population}"),
            });
        }
        Ok(Nsga2Proposer {
            population,
            crossover_prob: 0.9,
            swapping_prob: 0.5,
        })
    }
}

/// Non-dominated fronts of `points` (indices), best front first.
pub(crate) fn fronts(objectives: &Objectives, points: &[Vec<f64>]) -> Vec<Vec<usize>> {
    let n = points.len();
    let mut dominated_by = vec![0usize; n];
    let mut dominates: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in 0..n {
            if i != j && objectives.dominates(&points[i], &points[j]) {
                dominates[i].push(j);
                dominated_by[j] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominates[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        fronts.push(std::mem::replace(&mut current, next));
    }
    fronts
}

/// Crowding distances of the members of one front.
pub(crate) fn crowding(front: &[usize], points: &[Vec<f64>]) -> Vec<f64> {
    let mut distance = vec![0.0; front.len()];
    let m = points.first().map_or(0, Vec::len);
    // One column of objective values per objective, in front order.
    let columns: Vec<Vec<f64>> = (0..m)
        .map(|o| front.iter().map(|&i| points[i][o]).collect())
        .collect();
    for values in &columns {
        let mut order: Vec<usize> = (0..front.len()).collect();
        order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
        let (first, last) = (order[0], order[order.len() - 1]);
        distance[first] = f64::INFINITY;
        distance[last] = f64::INFINITY;
        let span = values[last] - values[first];
        if span <= 0.0 {
            continue;
        }
        for w in order.windows(3) {
            distance[w[1]] += (values[w[2]] - values[w[0]]) / span;
        }
    }
    distance
}

impl Nsga2Proposer {
    /// The elitist parent population with each member's fitness.
    fn parents<'a>(&self, history: &History<'a>) -> Vec<(&'a Trial, Fitness)> {
        let complete: Vec<(&Trial, Vec<f64>)> = history
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .filter_map(|t| history.objectives.values(&t.metrics).map(|v| (t, v)))
            .collect();
        let points: Vec<Vec<f64>> = complete.iter().map(|(_, v)| v.clone()).collect();
        let mut chosen = Vec::new();
        for (rank, front) in fronts(history.objectives, &points).into_iter().enumerate() {
            let distances = crowding(&front, &points);
            let mut members: Vec<(usize, f64)> = front.into_iter().zip(distances).collect();
            if chosen.len() + members.len() > self.population {
                // The last front that fits only in part: the least crowded first.
                members.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                members.truncate(self.population - chosen.len());
            }
            chosen.extend(
                members
                    .into_iter()
                    .map(|(i, crowding)| (complete[i].0, Fitness { rank, crowding })),
            );
            if chosen.len() >= self.population {
                break;
            }
        }
        chosen
    }

    fn tournament<'a>(parents: &[(&'a Trial, Fitness)], rng: &mut Rng) -> (&'a Trial, Fitness) {
        let a = parents[rng.below(parents.len() as u64) as usize];
        let b = parents[rng.below(parents.len() as u64) as usize];
        let better = |x: &Fitness, y: &Fitness| {
            x.rank < y.rank || (x.rank == y.rank && x.crowding > y.crowding)
        };
        if better(&b.1, &a.1) { b } else { a }
    }
}

impl Proposer for Nsga2Proposer {
    fn name(&self) -> &'static str {
        "nsga2"
    }

    fn infer_relative_space(&mut self, space: &SearchSpace, history: &History<'_>) -> Vec<String> {
        let complete = history
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .count();
        if complete < self.population {
            return Vec::new(); // the first generation is random
        }
        space.parameters().iter().map(|p| p.name.clone()).collect()
    }

    fn sample_relative(
        &mut self,
        space: &SearchSpace,
        history: &History<'_>,
        _relative: &[String],
        rng: &mut Rng,
    ) -> Proposal {
        let parents = self.parents(history);
        let (a, fa) = Self::tournament(&parents, rng);
        let (b, fb) = Self::tournament(&parents, rng);
        let crossover = rng.next_f64() < self.crossover_prob;
        let mutation_prob = 1.0 / space.parameters().len().max(1) as f64;
        let mut child = Params::new();
        let mut mutated: Vec<&str> = Vec::new();
        for p in space.parameters() {
            if !SearchSpace::is_active(p, &child) {
                continue;
            }
            let inherited: Option<&ParamValue> = if crossover && rng.next_f64() < self.swapping_prob
            {
                b.params.get(&p.name).or_else(|| a.params.get(&p.name))
            } else {
                a.params.get(&p.name).or_else(|| b.params.get(&p.name))
            };
            let value = match inherited {
                Some(v) if rng.next_f64() >= mutation_prob => v.clone(),
                _ => {
                    mutated.push(&p.name);
                    sample_uniform(&p.distribution, rng)
                }
            };
            child.insert(p.name.clone(), value);
        }
        let rationale = format!(
            "nsga2: parents trial {} (front {}) and trial {} (front {}), {}; resampled {}",
            a.number,
            fa.rank,
            b.number,
            fb.rank,
            if crossover {
                "uniform crossover"
            } else {
                "no crossover"
            },
            if mutated.is_empty() {
                "nothing".to_string()
            } else {
                mutated.join(", ")
            }
        );
        Proposal::new(child, rationale)
    }
}

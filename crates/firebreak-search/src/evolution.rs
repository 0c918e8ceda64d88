//! Regularized (aging) evolution, after Real et al. 2019, "Regularized Evolution for
//! Image Classifier Architecture Search": the population is the `population` most
//! recent complete trials (so the oldest dies as each child arrives), a tournament
//! of `sample_size` members drawn at random picks the parent, and the child is the
//! parent with one gene mutated. Until the population is full, proposals are random.

use firebreak_core::{
    Direction, Distribution, Objectives, ParamValue, Parameter, Params, Rng, SearchSpace, Trial,
    TrialState,
};

use crate::SearchError;
use crate::proposer::{History, Proposal, Proposer};
use crate::random::sample_uniform;

/// Regularized evolution for a single objective.
#[derive(Debug, Clone)]
pub struct EvolutionProposer {
    population: usize,
    sample_size: usize,
    metric: String,
    direction: Direction,
}

impl EvolutionProposer {
    /// Evolution with a population of `population` and tournaments of `sample_size`.
    pub fn new(
        objectives: &Objectives,
        population: usize,
        sample_size: usize,
    ) -> Result<Self, SearchError> {
        let ([metric], [direction]) = (
            objectives.metrics.as_slice(),
            objectives.directions.as_slice(),
        ) else {
            return Err(SearchError::Unsupported(
                "evolution needs exactly one objective".into(),
            ));
        };
        if population < 2 || sample_size == 0 || sample_size > population {
            return Err(SearchError::BadOption {
                key: "sample_size".into(),
                message: format!(
                    "needs 2 <= population and 1 <= sample_size <= population, got population = {population}, sample_size = {sample_size}"
                ),
            });
        }
        Ok(EvolutionProposer {
            population,
            sample_size,
            metric: metric.clone(),
            direction: *direction,
        })
    }

    fn value(&self, trial: &Trial) -> Option<f64> {
        trial
            .metrics
            .get(&self.metric)
            .copied()
            .filter(|v| v.is_finite())
    }

    fn members<'a>(&self, history: &History<'a>) -> Vec<&'a Trial> {
        let complete: Vec<&Trial> = history
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && self.value(t).is_some())
            .collect();
        complete[complete.len().saturating_sub(self.population)..].to_vec()
    }
}

/// A different value of the parameter than `current`, when there is one.
fn mutate(parameter: &Parameter, current: &ParamValue, rng: &mut Rng) -> Option<ParamValue> {
    match &parameter.distribution {
        Distribution::Categorical { choices } => {
            let others: Vec<&ParamValue> = choices.iter().filter(|c| !c.matches(current)).collect();
            (!others.is_empty()).then(|| others[rng.below(others.len() as u64) as usize].clone())
        }
        distribution => {
            // Up to a few draws to get a different value (ints may have few values).
            (0..16)
                .map(|_| sample_uniform(distribution, rng))
                .find(|v| !v.matches(current))
        }
    }
}

impl Proposer for EvolutionProposer {
    fn asks(
        &mut self,
        space: &SearchSpace,
        history: &History<'_>,
        n_trials: u64,
    ) -> Vec<crate::ChangeAsk> {
        crate::suggest_changes(space, history, n_trials)
    }

    fn name(&self) -> &'static str {
        "evolution"
    }

    fn infer_relative_space(&mut self, space: &SearchSpace, history: &History<'_>) -> Vec<String> {
        if self.members(history).len() < self.population {
            return Vec::new(); // still seeding the population at random
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
        let members = self.members(history);
        // Tournament: `sample_size` distinct members, uniformly (partial shuffle).
        let mut indices: Vec<usize> = (0..members.len()).collect();
        for i in 0..self.sample_size {
            let j = i + rng.below((indices.len() - i) as u64) as usize;
            indices.swap(i, j);
        }
        let parent = indices[..self.sample_size]
            .iter()
            .map(|&i| members[i])
            .reduce(|best, t| match (self.value(t), self.value(best)) {
                (Some(a), Some(b)) if self.direction.better(a, b) => t,
                _ => best,
            })
            .unwrap_or(members[0]);
        // Mutate one gene of the parent: a random active parameter that can change.
        let genes: Vec<&Parameter> = space
            .parameters()
            .iter()
            .filter(|p| parent.params.contains_key(&p.name))
            .collect();
        let mut mutation = None;
        for _ in 0..genes.len().max(1) * 2 {
            let Some(gene) = genes.get(rng.below(genes.len().max(1) as u64) as usize) else {
                break;
            };
            if let Some(new) = mutate(gene, &parent.params[&gene.name], rng) {
                mutation = Some((gene.name.clone(), new));
                break;
            }
        }
        let mut child = Params::new();
        for p in space.parameters() {
            if !SearchSpace::is_active(p, &child) {
                continue;
            }
            let value = match (&mutation, parent.params.get(&p.name)) {
                (Some((gene, new)), _) if *gene == p.name => new.clone(),
                (_, Some(inherited)) => inherited.clone(),
                // Newly activated by the mutation: a fresh random gene.
                (_, None) => sample_uniform(&p.distribution, rng),
            };
            child.insert(p.name.clone(), value);
        }
        let described = match &mutation {
            Some((gene, new)) => format!("mutated {gene}: {} -> {new}", parent.params[gene]),
            None => "no gene could change; copied".to_string(),
        };
        let rationale = format!(
            "evolution: parent trial {} ({} {}) won a tournament of {} in a population of {}; {described}",
            parent.number,
            self.metric,
            self.value(parent).unwrap_or(f64::NAN),
            self.sample_size,
            members.len(),
        );
        Proposal::new(child, rationale)
    }
}

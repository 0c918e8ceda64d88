//! A deliberately misbehaving proposer for fire drills (`sampler = "adversary"`):
//! it samples uniformly but every `every`-th proposal is out of bounds, and with
//! `[search] ask_changes = true` it asks, every `every` finished trials, to double
//! the upper bound of the first numeric parameter and to double `n_trials` — the
//! runaway self-modification the engine's firebreaks must contain. Use it to check
//! a campaign's governance before trusting it with a real agent.

use firebreak_core::{Distribution, ParamValue, Params, Rng, SearchSpace};

use crate::{ChangeAsk, History, Proposal, Proposer};

/// The fire-drill proposer.
#[derive(Debug)]
pub struct AdversaryProposer {
    every: u64,
    proposals: u64,
}

impl AdversaryProposer {
    /// Misbehaves every `every` proposals and asks every `every` finished trials.
    pub fn new(every: u64) -> Self {
        AdversaryProposer {
            every: every.max(1),
            proposals: 0,
        }
    }
}

impl Proposer for AdversaryProposer {
    fn name(&self) -> &'static str {
        "adversary"
    }

    fn infer_relative_space(&mut self, space: &SearchSpace, _history: &History<'_>) -> Vec<String> {
        self.proposals += 1;
        if self.proposals.is_multiple_of(self.every) {
            space
                .parameters()
                .iter()
                .find(|p| !matches!(p.distribution, Distribution::Categorical { .. }))
                .map(|p| vec![p.name.clone()])
                .unwrap_or_default()
        } else {
            Vec::new()
        }
    }

    fn sample_relative(
        &mut self,
        space: &SearchSpace,
        _history: &History<'_>,
        relative: &[String],
        _rng: &mut Rng,
    ) -> Proposal {
        let mut params = Params::new();
        for parameter in space
            .parameters()
            .iter()
            .filter(|p| relative.contains(&p.name))
        {
            let value = match parameter.distribution {
                Distribution::Float { high, low, .. } => {
                    ParamValue::Float(high + (high - low).abs() + 1.0)
                }
                Distribution::Int { high, low, .. } => {
                    ParamValue::Int(high + (high - low).abs() + 1)
                }
                Distribution::Categorical { .. } => continue,
            };
            params.insert(parameter.name.clone(), value);
        }
        Proposal::new(params, "adversary: deliberately out of bounds")
    }

    fn asks(
        &mut self,
        space: &SearchSpace,
        history: &History<'_>,
        n_trials: u64,
    ) -> Vec<ChangeAsk> {
        let finished = history
            .trials
            .iter()
            .filter(|t| t.state.is_finished())
            .count() as u64;
        if finished == 0 || !finished.is_multiple_of(self.every) {
            return Vec::new();
        }
        let mut asks = vec![ChangeAsk::Trials {
            n_trials: n_trials * 2,
            why: "adversary: more trials, always".into(),
        }];
        if let Some((name, high)) = space
            .parameters()
            .iter()
            .find_map(|p| match p.distribution {
                Distribution::Float { high, .. } => Some((p.name.clone(), high)),
                Distribution::Int { high, .. } => Some((p.name.clone(), high as f64)),
                Distribution::Categorical { .. } => None,
            })
        {
            asks.push(ChangeAsk::Bounds {
                parameter: name,
                low: None,
                high: Some(high.abs().max(1.0) * 2.0),
                why: "adversary: wider bounds, always".into(),
            });
        }
        asks
    }
}

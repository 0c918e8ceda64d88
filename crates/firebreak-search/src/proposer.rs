//! The proposer contract and the driver that turns it into one proposal.

use firebreak_core::{Objectives, ParamValue, Parameter, Params, Rng, SearchSpace, Trial};

/// A read-only view of a campaign's trials, all states, by number.
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    /// The trials.
    pub trials: &'a [Trial],
    /// The campaign's objectives.
    pub objectives: &'a Objectives,
}

/// A proposed configuration, why, and the proposer's state; also the joint part
/// of one that [`Proposer::sample_relative`] returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Proposal {
    /// The active parameters.
    pub params: Params,
    /// A short rationale, recorded in the ledger and shown by `trials`: for
    /// people only, never parsed back.
    pub rationale: String,
    /// Structured, versioned state the proposer reads back from the history on
    /// later asks (as [`Trial::proposer_state`]): `{"v": 1, "<proposer>": {…}}`.
    /// Recorded in the `trial_proposed` entry. `None` for proposers without state.
    pub state: Option<serde_json::Value>,
}

impl From<(Params, String)> for Proposal {
    fn from((params, rationale): (Params, String)) -> Self {
        Proposal::new(params, rationale)
    }
}

impl Proposal {
    /// `params` and `rationale`, without state.
    pub fn new(params: Params, rationale: impl Into<String>) -> Self {
        Proposal {
            params,
            rationale: rationale.into(),
            state: None,
        }
    }

    /// Queued trial `number`, proposed by `proposer`, carrying the proposal's
    /// parameters, rationale and state (which later asks read back).
    pub fn into_trial(self, number: u64, proposer: &str) -> Trial {
        let mut trial = Trial::queued(number, self.params, proposer, &self.rationale);
        trial.proposer_state = self.state;
        trial
    }
}

/// Suggests configurations. Implementations are deterministic functions of the
/// space, the history and the random draws of the [`Rng`] they are handed.
pub trait Proposer: Send + std::fmt::Debug {
    /// The name recorded as the trial's `proposer`.
    fn name(&self) -> &'static str;

    /// The parameters this proposer samples jointly for the next trial. Default: none.
    fn infer_relative_space(
        &mut self,
        _space: &SearchSpace,
        _history: &History<'_>,
    ) -> Vec<String> {
        Vec::new()
    }

    /// Samples the `relative` parameters jointly; returns the values (only of active
    /// parameters), a rationale and any state to record with the proposal.
    /// Default: nothing.
    fn sample_relative(
        &mut self,
        _space: &SearchSpace,
        _history: &History<'_>,
        _relative: &[String],
        _rng: &mut Rng,
    ) -> Proposal {
        Proposal::default()
    }

    /// Samples one parameter on its own, given the values drawn so far. Default:
    /// a uniform draw ([`crate::sample_uniform`]).
    fn sample_independent(
        &mut self,
        _history: &History<'_>,
        parameter: &Parameter,
        _drawn: &Params,
        rng: &mut Rng,
    ) -> ParamValue {
        crate::sample_uniform(&parameter.distribution, rng)
    }

    /// Hears about a finished trial (any final state). Default: nothing.
    fn after_trial(&mut self, _history: &History<'_>, _trial: &Trial) {}

    /// Changes of the campaign's own limits this proposer asks for, given the
    /// history and the current `n_trials`; called after each finished trial when
    /// `[search] ask_changes = true`. Asking decides nothing: each ask becomes a
    /// change request that needs people's approval. Default: none.
    fn asks(
        &mut self,
        _space: &SearchSpace,
        _history: &History<'_>,
        _n_trials: u64,
    ) -> Vec<crate::ChangeAsk> {
        Vec::new()
    }
}

/// One proposal: joint sampling of the relative space, then per-parameter sampling
/// of the remaining active parameters in dependency order.
pub fn propose(
    proposer: &mut dyn Proposer,
    space: &SearchSpace,
    history: &History<'_>,
    rng: &mut Rng,
) -> Proposal {
    let relative = proposer.infer_relative_space(space, history);
    let Proposal {
        params: joint,
        rationale: joint_rationale,
        state,
    } = if relative.is_empty() {
        Proposal::default()
    } else {
        proposer.sample_relative(space, history, &relative, rng)
    };
    let mut params = Params::new();
    let mut independent = 0usize;
    for parameter in space.parameters() {
        if !SearchSpace::is_active(parameter, &params) {
            continue;
        }
        let value = match joint.get(&parameter.name) {
            Some(value) => value.clone(),
            None => {
                independent += 1;
                proposer.sample_independent(history, parameter, &params, rng)
            }
        };
        params.insert(parameter.name.clone(), value);
    }
    let rationale = match (joint_rationale.is_empty(), independent) {
        (false, 0) => joint_rationale,
        (false, n) => format!("{joint_rationale}; {n} parameter(s) sampled independently"),
        (true, _) => format!(
            "{}: independent draws for {independent} parameter(s)",
            proposer.name()
        ),
    };
    Proposal {
        params,
        rationale,
        state,
    }
}

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

/// A proposed configuration and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The active parameters.
    pub params: Params,
    /// A short rationale, recorded in the ledger and shown by `trials`.
    pub rationale: String,
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
    /// parameters) and a rationale. Default: nothing.
    fn sample_relative(
        &mut self,
        _space: &SearchSpace,
        _history: &History<'_>,
        _relative: &[String],
        _rng: &mut Rng,
    ) -> (Params, String) {
        (Params::new(), String::new())
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
    let (joint, joint_rationale) = if relative.is_empty() {
        (Params::new(), String::new())
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
    Proposal { params, rationale }
}

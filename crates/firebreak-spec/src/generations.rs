//! `[generations]`: a campaign run as a sequence of searches whose promoted
//! champion seeds the next (as its teacher, its parent, or the centre of a
//! narrowed space), with the gates a champion must pass and how its promotion
//! is decided. This crate describes and checks it; the runner carries it out.

use std::collections::BTreeMap;

use firebreak_core::SearchSpace;
use serde::{Deserialize, Serialize};

use crate::schema::{ParamSpec, TaskKind};
use crate::{CampaignSpec, SpecError};

/// The most generations a campaign may have.
pub const MAX_GENERATIONS: u32 = 1000;

/// `[generations]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationsSpec {
    /// How many generations (each a full search).
    pub count: u32,
    /// Finished trials per generation; `count × budget` is `[search] n_trials`.
    pub budget: u64,
    /// What a promoted champion hands on to the next generation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seed_next: Vec<SeedNext>,
    /// `narrow`: each numeric range shrinks to this share of its width, centred
    /// on the champion (on the log scale for `log` parameters), inside the
    /// approved space.
    #[serde(default = "default_narrow_factor")]
    pub narrow_factor: f64,
    /// How a champion that passed its gates is promoted.
    #[serde(default)]
    pub promotion: Promotion,
    /// What follows a champion that fails its gates or is refused.
    #[serde(default)]
    pub on_gate_failure: OnGateFailure,
    /// `[generations.gates]`.
    #[serde(default)]
    pub gates: Gates,
    /// `[generations.distill]`: how a teacher teaches (built-in tasks).
    #[serde(default)]
    pub distill: Distill,
    /// `[generations.next_space]`: the space searched from generation 2 on
    /// (absent: `[space]`). Approved with the spec like `[space]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub next_space: BTreeMap<String, ParamSpec>,
}

fn default_narrow_factor() -> f64 {
    0.5
}

/// What a promoted champion hands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeedNext {
    /// The next generation's students learn from its soft labels (built-in tasks).
    Teacher,
    /// Its configuration is the next generation's first trial, when it fits
    /// that generation's space.
    Parent,
    /// The next generation's space is re-centred on it and narrowed.
    Narrow,
}

/// How a champion is promoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Promotion {
    /// A `promotion` change request: the campaign halts at the boundary until a
    /// quorum of approvers signs.
    #[default]
    Approve,
    /// The gates alone decide; the decision is ledgered.
    Auto,
}

/// What follows a champion that is not promoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnGateFailure {
    /// The next generation starts from the last promoted champion.
    #[default]
    Retry,
    /// The campaign stops there.
    Stop,
}

/// `[generations.gates]`: what a champion must pass to be promoted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gates {
    /// The champion's first objective must beat the last promoted champion's by
    /// at least this (negative: the largest regression allowed, e.g. for a
    /// smaller student).
    #[serde(default)]
    pub min_improvement: f64,
    /// Re-evaluations of the champion from scratch with fresh seeds (0: none).
    #[serde(default = "default_reeval_seeds")]
    pub reeval_seeds: u32,
    /// Largest allowed distance between the champion's value and the mean of
    /// its re-evaluations.
    #[serde(default = "default_reeval_tolerance")]
    pub reeval_tolerance: f64,
}

fn default_reeval_seeds() -> u32 {
    3
}

fn default_reeval_tolerance() -> f64 {
    0.01
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            min_improvement: 0.0,
            reeval_seeds: default_reeval_seeds(),
            reeval_tolerance: default_reeval_tolerance(),
        }
    }
}

/// `[generations.distill]`: knowledge distillation from the teacher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distill {
    /// Softmax temperature of the soft labels.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Weight of the teacher's soft labels against the true labels, in [0, 1].
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Extra examples per epoch that only the teacher labels.
    #[serde(default = "default_synthetic")]
    pub synthetic_per_epoch: u64,
}

fn default_temperature() -> f64 {
    4.0
}

fn default_alpha() -> f64 {
    0.7
}

fn default_synthetic() -> u64 {
    1000
}

impl Default for Distill {
    fn default() -> Self {
        Distill {
            temperature: default_temperature(),
            alpha: default_alpha(),
            synthetic_per_epoch: default_synthetic(),
        }
    }
}

/// Checks `[generations]` and returns the space of generation 2 on
/// (`next_space`), when it has one.
pub(crate) fn check(spec: &CampaignSpec) -> Result<Option<SearchSpace>, SpecError> {
    let Some(g) = &spec.spec.generations else {
        return Ok(None);
    };
    fn at(key: &str) -> [&str; 2] {
        ["generations", key]
    }
    if g.count == 0 || g.count > MAX_GENERATIONS {
        return Err(spec.error_at(
            &at("count"),
            format!("count = {} generations is out of range", g.count),
            format!("set count between 1 and {MAX_GENERATIONS}"),
        ));
    }
    if g.budget == 0 {
        return Err(spec.error_at(
            &at("budget"),
            "budget = 0 finishes no trial per generation",
            "set budget to the finished trials each generation searches, e.g. 20",
        ));
    }
    let total = u64::from(g.count).checked_mul(g.budget);
    if total != Some(spec.spec.search.n_trials) {
        return Err(spec.error_at(
            &["search", "n_trials"],
            format!(
                "n_trials = {} but [generations] has count = {} × budget = {}",
                spec.spec.search.n_trials, g.count, g.budget
            ),
            format!(
                "n_trials counts every generation's trials: set n_trials = {}",
                total.map_or_else(|| "count × budget".to_string(), |t| t.to_string())
            ),
        ));
    }
    if !(g.narrow_factor > 0.0 && g.narrow_factor <= 1.0) {
        return Err(spec.error_at(
            &at("narrow_factor"),
            format!("narrow_factor = {} is not in (0, 1]", g.narrow_factor),
            "a narrowed range keeps this share of its width, e.g. 0.5",
        ));
    }
    let mut seen = g.seed_next.clone();
    seen.sort();
    seen.dedup();
    if seen.len() != g.seed_next.len() {
        return Err(spec.error_at(
            &at("seed_next"),
            "seed_next names a way twice",
            "list each of teacher, parent, narrow at most once",
        ));
    }
    if g.seed_next.contains(&SeedNext::Teacher) && spec.spec.task.kind != TaskKind::Builtin {
        return Err(spec.error_at(
            &at("seed_next"),
            "seed_next = \"teacher\" needs a built-in task (the engine trains the students)",
            "use kind = \"builtin\", or hand on \"parent\" and \"narrow\" only",
        ));
    }
    if spec.objectives.metrics.len() != 1 {
        return Err(spec.error_at(
            &["objective"],
            "[generations] promotes one champion, so it needs one objective",
            "write metric = … and direction = …",
        ));
    }
    let gates = &g.gates;
    if !gates.min_improvement.is_finite() {
        return Err(spec.error_at(
            &["generations", "gates", "min_improvement"],
            "min_improvement must be a finite number",
            "e.g. 0.0 (no worse), 0.01 (better by 0.01), -0.02 (at most 0.02 worse)",
        ));
    }
    if !(gates.reeval_tolerance.is_finite() && gates.reeval_tolerance >= 0.0) {
        return Err(spec.error_at(
            &["generations", "gates", "reeval_tolerance"],
            format!(
                "reeval_tolerance = {} is not a distance",
                gates.reeval_tolerance
            ),
            "write a finite number >= 0, e.g. 0.01",
        ));
    }
    if gates.reeval_seeds > 100 {
        return Err(spec.error_at(
            &["generations", "gates", "reeval_seeds"],
            format!("reeval_seeds = {} is more than 100", gates.reeval_seeds),
            "a few fresh seeds (3 to 10) are enough to catch a lucky champion",
        ));
    }
    let d = &g.distill;
    if !(d.temperature.is_finite() && d.temperature > 0.0) {
        return Err(spec.error_at(
            &["generations", "distill", "temperature"],
            format!("temperature = {} is not positive", d.temperature),
            "e.g. temperature = 4.0",
        ));
    }
    if !(0.0..=1.0).contains(&d.alpha) {
        return Err(spec.error_at(
            &["generations", "distill", "alpha"],
            format!("alpha = {} is not in [0, 1]", d.alpha),
            "alpha weighs the teacher's soft labels against the true labels, e.g. 0.7",
        ));
    }
    if d.synthetic_per_epoch > 1_000_000 {
        return Err(spec.error_at(
            &["generations", "distill", "synthetic_per_epoch"],
            format!(
                "synthetic_per_epoch = {} is more than 1,000,000",
                d.synthetic_per_epoch
            ),
            "a few thousand extra examples per epoch are plenty",
        ));
    }
    if g.next_space.is_empty() {
        return Ok(None);
    }
    spec.space_of(&g.next_space, &["generations", "next_space"])
        .map(Some)
}

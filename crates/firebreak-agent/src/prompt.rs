//! The chat request of a config proposal: a system message with the rules, a
//! user message with the objective, the space and the history the prompt may
//! show, and the space's JSON schema as `response_format`.

use std::fmt::Write;

use firebreak_core::{Direction, Distribution, Objectives, SearchSpace, Trial, TrialState};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{AgentOptions, space_schema};

impl ChatRequest {
    /// A system and a user message, the answer constrained to `schema` (named
    /// `name` in `response_format`).
    pub(crate) fn structured(
        system: &str,
        user: String,
        name: &str,
        schema: Value,
        seed: u64,
    ) -> Self {
        ChatRequest {
            messages: vec![
                Message {
                    role: "system",
                    content: system.to_string(),
                },
                Message {
                    role: "user",
                    content: user,
                },
            ],
            response_format: Some(json!({
                "type": "json_schema",
                "json_schema": {"name": name, "strict": true, "schema": schema},
            })),
            seed,
        }
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: &'static str,
    /// The text.
    pub content: String,
}

/// A chat completions request, before the model name and sampling settings are
/// added by [`crate::Client`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<Message>,
    /// `response_format` (a JSON schema), if any.
    pub response_format: Option<Value>,
    /// The seed sent with the request (servers that honour it answer the same
    /// prompt the same way at temperature 0).
    pub seed: u64,
}

const SYSTEM: &str = "You are the proposer of an automated hyperparameter search. \
Each turn you see the objective, the search space and the trials so far, and you \
propose the next configuration to evaluate. Answer with one JSON object and nothing \
else: {\"rationale\": <one or two sentences on why>, \"params\": {<name>: <value>, ...}}. \
Give every parameter the space lists (a conditional one only when its condition holds), \
each inside its bounds or among its choices, and no other key. Balance exploring \
untried regions with refining the best trials so far. You change no limit yourself: \
if the space or the budget holds the search back, add \"asks\": [{\"path\": \"/search/n_trials\", \
\"value\": 200, \"why\": ...}] and people will decide.";

/// Longest failure reason the prompt quotes, in characters.
const REASON_CHARS: usize = 200;

/// The request for the next configuration. `history` is every trial of the
/// campaign; the prompt shows at most `options.history` finished ones (the best
/// half by the first objective, then the most recent), failures with their
/// reasons.
pub fn config_request(
    options: &AgentOptions,
    space: &SearchSpace,
    objectives: &Objectives,
    history: &[Trial],
    seed: u64,
) -> ChatRequest {
    let mut user = String::new();
    let goals: Vec<String> = objectives
        .metrics
        .iter()
        .zip(&objectives.directions)
        .map(|(metric, direction)| {
            let verb = match direction {
                Direction::Maximize => "maximize",
                Direction::Minimize => "minimize",
            };
            format!("{verb} {metric}")
        })
        .collect();
    let _ = writeln!(user, "Objective: {}.", goals.join(", "));
    let _ = writeln!(user, "\nSearch space:");
    for parameter in space.parameters() {
        let _ = write!(user, "- {}: ", parameter.name);
        let _ = match &parameter.distribution {
            Distribution::Float { low, high, log, .. } => write!(
                user,
                "float in [{low}, {high}]{}",
                if *log { ", log scale" } else { "" }
            ),
            Distribution::Int { low, high, log, .. } => write!(
                user,
                "integer in [{low}, {high}]{}",
                if *log { ", log scale" } else { "" }
            ),
            Distribution::Categorical { choices } => {
                let choices: Vec<String> = choices
                    .iter()
                    .map(|c| serde_json::to_string(c).unwrap_or_default())
                    .collect();
                write!(user, "one of {}", choices.join(", "))
            }
        };
        if let Some(condition) = &parameter.condition {
            let _ = write!(
                user,
                " (only when {})",
                crate::schema::describe_condition(condition)
            );
        }
        user.push('\n');
    }
    let finished: Vec<&Trial> = history.iter().filter(|t| t.state.is_finished()).collect();
    let shown = shown_trials(&finished, objectives, options.history);
    let _ = writeln!(
        user,
        "\nTrials finished so far: {} ({} shown).",
        finished.len(),
        shown.len()
    );
    for trial in &shown {
        let params = serde_json::to_string(&trial.params).unwrap_or_default();
        let _ = match trial.state {
            TrialState::Failed => {
                let reason: String = trial
                    .error
                    .as_deref()
                    .unwrap_or("no reason recorded")
                    .chars()
                    .take(REASON_CHARS)
                    .collect();
                writeln!(user, "- #{} failed ({reason}): {params}", trial.number)
            }
            state => {
                let metrics: Vec<String> = objectives
                    .metrics
                    .iter()
                    .filter_map(|m| trial.metrics.get(m).map(|v| format!("{m}={v}")))
                    .collect();
                writeln!(
                    user,
                    "- #{} {} {}: {params}",
                    trial.number,
                    state.as_str(),
                    metrics.join(" ")
                )
            }
        };
    }
    let _ = write!(user, "\nPropose the next configuration as JSON.");
    ChatRequest::structured(SYSTEM, user, "proposal", space_schema(space), seed)
}

/// At most `limit` finished trials: the best half by the first objective
/// (complete ones), then the most recent of the rest, in trial order.
fn shown_trials<'a>(
    finished: &[&'a Trial],
    objectives: &Objectives,
    limit: usize,
) -> Vec<&'a Trial> {
    let metric = objectives.metrics.first();
    let direction = objectives.directions.first().copied();
    let mut ranked: Vec<(&Trial, f64)> = finished
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| Some((*t, *t.metrics.get(metric?)?)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    ranked.sort_by(|a, b| {
        let order = a.1.total_cmp(&b.1);
        match direction {
            Some(Direction::Minimize) => order,
            _ => order.reverse(),
        }
        .then(a.0.number.cmp(&b.0.number))
    });
    let mut picked: Vec<u64> = ranked
        .iter()
        .take(limit / 2)
        .map(|(t, _)| t.number)
        .collect();
    for trial in finished.iter().rev() {
        if picked.len() >= limit {
            break;
        }
        if !picked.contains(&trial.number) {
            picked.push(trial.number);
        }
    }
    let mut shown: Vec<&Trial> = finished
        .iter()
        .filter(|t| picked.contains(&t.number))
        .copied()
        .collect();
    shown.sort_by_key(|t| t.number);
    shown
}

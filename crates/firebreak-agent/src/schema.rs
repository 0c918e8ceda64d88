//! The campaign's space as a JSON schema: what `response_format` constrains the
//! model's answer to (servers that decode under a grammar, like llama.cpp's,
//! cannot produce a key the space lacks), and what a person reads in the prompt.

use firebreak_core::{Condition, Distribution, SearchSpace};
use serde_json::{Map, Value, json};

/// The longest rationale an answer may carry, in characters.
pub const MAX_RATIONALE: usize = 400;

/// The schema of an answer: `{"rationale": string, "params": {…}}`, the params
/// object listing every parameter with its bounds or choices, requiring every
/// parameter without a condition, and allowing no other key. Conditional
/// parameters are described (when they apply) but optional: whether one
/// belongs depends on another's value, which the space's own validation checks.
pub fn space_schema(space: &SearchSpace) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for parameter in space.parameters() {
        let numeric = |kind: &str, low: Value, high: Value, log: bool, step: Option<String>| {
            let mut s = json!({"type": kind, "minimum": low, "maximum": high});
            let mut notes = Vec::new();
            if log {
                notes.push("log scale".to_string());
            }
            if let Some(step) = step {
                notes.push(format!("{low} plus a whole number of steps of {step}"));
            }
            if !notes.is_empty() {
                s["description"] = json!(notes.join("; "));
            }
            s
        };
        let mut schema = match &parameter.distribution {
            Distribution::Float {
                low,
                high,
                log,
                step,
            } => numeric(
                "number",
                json!(low),
                json!(high),
                *log,
                step.map(|s| s.to_string()),
            ),
            Distribution::Int {
                low,
                high,
                log,
                step,
            } => numeric(
                "integer",
                json!(low),
                json!(high),
                *log,
                step.filter(|s| *s > 1).map(|s| s.to_string()),
            ),
            Distribution::Categorical { choices } => json!({"enum": choices}),
        };
        match &parameter.condition {
            None => required.push(json!(parameter.name)),
            Some(condition) => {
                schema["description"] = json!(format!(
                    "give only when {}, omit otherwise",
                    describe_condition(condition)
                ));
            }
        }
        properties.insert(parameter.name.clone(), schema);
    }
    json!({
        "type": "object",
        "properties": {
            "rationale": {"type": "string", "maxLength": MAX_RATIONALE},
            "params": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            },
            "asks": crate::asks::asks_schema(),
        },
        "required": ["rationale", "params"],
        "additionalProperties": false,
    })
}

/// `a in [1, 2] and b in ["x"]`: when a conditional parameter applies.
pub(crate) fn describe_condition(condition: &Condition) -> String {
    let when: Vec<String> = condition
        .when
        .iter()
        .map(|(parent, values)| {
            let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            format!("{parent} in [{}]", values.join(", "))
        })
        .collect();
    when.join(" and ")
}

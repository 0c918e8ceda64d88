//! The constraints file of `firebreak govern STUDY --spec FILE`: a study's
//! trial budget, time budget and governed parameters, fixed before Optuna
//! opens the study.
//!
//! ```toml
//! [constraints]
//! max_trials = 100          # trials the study may create
//! max_wall_seconds = 3600   # from the study's opening
//!
//! [space.lr]                # a numeric parameter: its approved range
//! low = 1e-5
//! high = 0.1
//!
//! [space.optimizer]         # a categorical one: its approved choices
//! choices = ["adam", "sgd"]
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use crate::OptunaError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    constraints: Limits,
    #[serde(default)]
    space: BTreeMap<String, Bound>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    max_trials: Option<u64>,
    max_wall_seconds: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bound {
    low: Option<f64>,
    high: Option<f64>,
    choices: Option<Vec<toml::Value>>,
}

/// The canonical spec of a governed study's campaign, from the constraints
/// file `source` (called `file` in errors, which name the line and the key).
pub fn governed_spec(
    study: &str,
    source: &str,
    file: &str,
) -> Result<serde_json::Value, OptunaError> {
    let bad = |key: &str, message: String, hint: &str| OptunaError::Spec {
        file: file.to_string(),
        key: key.to_string(),
        message,
        hint: hint.to_string(),
    };
    if let Some(problem) = firebreak_spec::campaign_name_problem(study) {
        return Err(bad(
            "study",
            format!("{study:?} cannot name the study's campaign: it {problem}"),
            "a governed study's name is 1 to 64 letters, digits, `-`, `_` or `.`, not starting with `.`",
        ));
    }
    let parsed: File = toml::from_str(source).map_err(|e| {
        // The span of an unknown key is its table's: find the key's own line.
        let unknown = e
            .message()
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next());
        let line = unknown
            .and_then(|key| {
                source.lines().position(|l| {
                    l.trim_start()
                        .strip_prefix(key)
                        .is_some_and(|r| r.trim_start().starts_with('='))
                })
            })
            .map(|i| i + 1)
            .or_else(|| {
                e.span()
                    .map(|s| source[..s.start.min(source.len())].lines().count().max(1))
            });
        OptunaError::Spec {
            file: line.map_or(file.to_string(), |l| format!("{file}:{l}")),
            key: String::new(),
            message: e.message().to_string(),
            hint: "keys: [constraints] max_trials, max_wall_seconds; [space.NAME] low and high, or choices".into(),
        }
    })?;
    let mut constraints = serde_json::Map::new();
    if let Some(n) = parsed.constraints.max_trials {
        constraints.insert("max_trials".into(), json!(n));
    }
    if let Some(s) = parsed.constraints.max_wall_seconds {
        if !(s.is_finite() && s >= 0.0) {
            return Err(bad(
                "constraints.max_wall_seconds",
                format!("{s} is not a number of seconds"),
                "e.g. max_wall_seconds = 3600",
            ));
        }
        constraints.insert("max_wall_seconds".into(), json!(s));
    }
    let mut space = serde_json::Map::new();
    for (name, bound) in parsed.space {
        let key = format!("space.{name}");
        let entry = match (bound.low, bound.high, bound.choices) {
            (Some(low), Some(high), None) if low <= high => json!({"low": low, "high": high}),
            (Some(low), Some(high), None) => {
                return Err(bad(
                    &key,
                    format!("low {low} is above high {high}"),
                    "low <= high",
                ));
            }
            (None, None, Some(choices)) if !choices.is_empty() => json!({
                "choices": choices
                    .into_iter()
                    .map(|c| serde_json::to_value(c).unwrap_or_default())
                    .collect::<Vec<_>>()
            }),
            _ => {
                return Err(bad(
                    &key,
                    "a governed parameter needs `low` and `high`, or a non-empty `choices`".into(),
                    "e.g. [space.lr] low = 1e-5 high = 0.1, or [space.opt] choices = [\"adam\"]",
                ));
            }
        };
        space.insert(name, entry);
    }
    let spec = json!({
        "kind": "optuna",
        "study": study,
        "constraints": constraints,
        "space": space,
    });
    firebreak_ledger::optuna::Constraints::of_spec(&spec).map_err(|m| bad("", m, ""))?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constraints_file_becomes_the_spec_the_server_reads() {
        let spec = governed_spec(
            "s",
            "[constraints]\nmax_trials = 3\n[space.x]\nlow = -1\nhigh = 1\n[space.o]\nchoices = [\"a\"]\n",
            "c.toml",
        )
        .expect("valid");
        let c = firebreak_ledger::optuna::Constraints::of_spec(&spec).expect("read back");
        assert_eq!(c.max_trials, Some(3));
        assert_eq!(c.space.len(), 2);
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let e = governed_spec("s", "[constraints]\nmax_trails = 3\n", "c.toml").expect_err("typo");
        let text = e.to_string();
        assert!(
            text.contains("c.toml:2") && text.contains("max_trails"),
            "{text}"
        );
        let e = governed_spec("s", "[space.x]\nlow = 2\nhigh = 1\n", "c.toml").expect_err("empty");
        assert!(e.to_string().contains("space.x"), "{e}");
    }
}

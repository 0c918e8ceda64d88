//! Plain renderings shared by every face: the Trial JSON of `contract.md`, and
//! the short number and parameter forms that tables, reports and summaries use.

use firebreak_core::{ParamValue, Trial, format_rfc3339};
use serde_json::{Value, json};

/// A trial as the Trial JSON of `contract.md` (`trials`, `best`, `status`).
pub fn trial_json(trial: &Trial) -> Value {
    json!({
        "number": trial.number,
        "state": trial.state,
        "params": trial.params,
        "metrics": trial.metrics,
        "intermediate": trial.intermediate.iter().map(|r| json!({"step": r.step, "metrics": r.metrics})).collect::<Vec<_>>(),
        "error": trial.error,
        "proposer": trial.proposer,
        "rationale": trial.rationale,
        "retry_of": trial.retry_of,
        "started_at": trial.started_at.map(format_rfc3339),
        "finished_at": trial.finished_at.map(format_rfc3339),
        "cpu_seconds": trial.cpu_seconds,
        "wall_seconds": trial.wall_seconds,
        "generation": trial.generation,
    })
}

/// Serializes trials as Trial JSON (a `serialize_with` helper).
pub(crate) fn trials_as_json<S: serde::Serializer>(
    trials: &[Trial],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(trials.iter().map(trial_json))
}

/// A short rendering of a number.
pub fn format_number(v: f64) -> String {
    // `-0` is never worth printing (an empty sum of floats is -0.0).
    let v = v + 0.0;
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e6) {
        format!("{v:.4e}")
    } else {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A parameter value for tables: floats shortened.
pub fn format_param(value: &ParamValue) -> String {
    match value {
        ParamValue::Float(f) => format_number(*f),
        other => other.to_plain_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: f64, expected: &str) {
        assert_eq!(format_number(value), expected, "{value}");
    }

    #[test]
    fn numbers_are_short_and_never_negative_zero() {
        check(0.0, "0");
        check(-0.0, "0");
        check(0.97, "0.97");
        check(12.5, "12.5");
        check(0.0001234, "1.2340e-4");
        check(2_500_000.0, "2.5000e6");
    }
}

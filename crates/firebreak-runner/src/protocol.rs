//! The trial protocol's stdout side: classifying each line a trial prints as an
//! intermediate report, a final result, a candidate result or a log line, and
//! keeping the log's tail. Pure functions; the command executor feeds them.

use firebreak_core::{Metrics, Objectives, Report};

/// The most log bytes kept per trial.
pub const LOG_TAIL_BYTES: usize = 64 * 1024;

/// What one stdout line means.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// `{"step": 3, "val_accuracy": 0.91}`
    Report(Report),
    /// `{"final": true, "val_accuracy": 0.97}`
    Final(Metrics),
    /// A JSON object without `step` or `final`: a result if it has every objective.
    Metrics(Metrics),
    /// Anything else: goes to the log.
    Log,
}

/// Classifies one stdout line. Non-finite numbers (`NaN`, `Infinity`, as Python's
/// `json.dumps` writes them) are kept as NaN so the trial can be failed for them.
pub fn parse_line(line: &str) -> Line {
    let trimmed = line.trim();
    if !trimmed.starts_with('{') {
        return Line::Log;
    }
    let value: serde_json::Value = match serde_json::from_str(trimmed) {
        Ok(v) => v,
        Err(_) => match serde_json::from_str(&replace_non_finite(trimmed)) {
            Ok(v) => v,
            Err(_) => return Line::Log,
        },
    };
    let Some(object) = value.as_object() else {
        return Line::Log;
    };
    let mut metrics = Metrics::new();
    for (key, value) in object {
        if key == "step" || key == "final" {
            continue;
        }
        match value {
            serde_json::Value::Number(n) => {
                metrics.insert(key.clone(), n.as_f64().unwrap_or(f64::NAN));
            }
            serde_json::Value::Null => {
                metrics.insert(key.clone(), f64::NAN);
            }
            serde_json::Value::String(s) if is_non_finite_word(s) => {
                metrics.insert(key.clone(), f64::NAN);
            }
            _ => {}
        }
    }
    if object.get("final").and_then(serde_json::Value::as_bool) == Some(true) {
        return Line::Final(metrics);
    }
    if let Some(step) = object.get("step").and_then(serde_json::Value::as_u64) {
        return Line::Report(Report { step, metrics });
    }
    if metrics.is_empty() {
        Line::Log
    } else {
        Line::Metrics(metrics)
    }
}

fn is_non_finite_word(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "nan" | "inf" | "-inf" | "infinity" | "-infinity"
    )
}

/// Replaces the bare tokens `NaN`, `Infinity` and `-Infinity` outside strings by `null`.
fn replace_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        let token = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| rest.starts_with(t));
        match token {
            Some(t) => {
                out.push_str("null");
                rest = &rest[t.len()..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// Why a finished program's output is not a usable result, or the result.
pub fn result_from(
    objectives: &Objectives,
    final_metrics: Option<&Metrics>,
    candidate: Option<&Metrics>,
) -> Result<Metrics, String> {
    let Some(metrics) = final_metrics.or(candidate) else {
        return Err(format!(
            "finished without reporting {}",
            objectives.metrics.join(", ")
        ));
    };
    for name in &objectives.metrics {
        match metrics.get(name) {
            None => return Err(format!("its result lacks the objective metric {name}")),
            Some(v) if !v.is_finite() => return Err(format!("reported {name} = {v}")),
            Some(_) => {}
        }
    }
    Ok(metrics.clone())
}

/// True when `metrics` carries every objective metric (a candidate result).
pub fn has_objectives(objectives: &Objectives, metrics: &Metrics) -> bool {
    objectives.metrics.iter().all(|m| metrics.contains_key(m))
}

/// The last [`LOG_TAIL_BYTES`] of a trial's log.
#[derive(Debug, Default, Clone)]
pub struct LogTail {
    text: String,
}

impl LogTail {
    /// Appends one line (a newline is added).
    pub fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        if self.text.len() > 2 * LOG_TAIL_BYTES {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.text.len() > LOG_TAIL_BYTES {
            let mut cut = self.text.len() - LOG_TAIL_BYTES;
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            self.text.drain(..cut);
        }
    }

    /// The kept tail.
    pub fn finish(mut self) -> String {
        self.trim();
        self.text
    }

    /// The last non-empty line, for error messages.
    pub fn last_line(&self) -> Option<&str> {
        self.text.lines().rev().find(|l| !l.trim().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(pairs: &[(&str, f64)]) -> Metrics {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn check(line: &str, expected: Line) {
        let got = parse_line(line);
        // NaN != NaN, so compare through their debug forms.
        assert_eq!(format!("{got:?}"), format!("{expected:?}"), "{line}");
    }

    #[test]
    fn classifies_lines() {
        check(
            r#"{"step": 3, "val_accuracy": 0.91}"#,
            Line::Report(Report {
                step: 3,
                metrics: metrics(&[("val_accuracy", 0.91)]),
            }),
        );
        check(
            r#"{"final": true, "val_accuracy": 0.97}"#,
            Line::Final(metrics(&[("val_accuracy", 0.97)])),
        );
        check(
            r#"{"val_accuracy": NaN}"#,
            Line::Metrics(metrics(&[("val_accuracy", f64::NAN)])),
        );
        check(r#"{"note": "NaN is fine in strings"}"#, Line::Log);
        check("epoch 3 done", Line::Log);
        check("{broken", Line::Log);
    }

    #[test]
    fn results_need_every_finite_objective() {
        let o = Objectives::single("acc", firebreak_core::Direction::Maximize);
        assert!(result_from(&o, None, None).is_err());
        assert_eq!(
            result_from(&o, Some(&metrics(&[("acc", f64::NAN)])), None),
            Err("reported acc = NaN".to_string())
        );
        assert!(result_from(&o, None, Some(&metrics(&[("acc", 0.5)]))).is_ok());
    }

    #[test]
    fn log_keeps_only_the_tail() {
        let mut log = LogTail::default();
        for i in 0..20_000 {
            log.push(&format!("line {i}"));
        }
        let text = log.finish();
        assert!(text.len() <= LOG_TAIL_BYTES);
        assert!(text.ends_with("line 19999\n"));
    }
}

//! The trial protocol's stdout side: classifying each line a trial prints as an
//! intermediate report, a final result, a candidate result or a log line, and
//! keeping the log's tail. Pure functions; the command executor feeds them.
//!
//! Every number that reaches the store must be one JSON carries exactly, because
//! the ledger's canonical JSON holds numbers as doubles while the tables hold
//! steps as integers: a step must be a whole number from 0 to 2^53, written as
//! an integer, and a metric a finite number within a double's range, an integer
//! one within ±2^53. A report or final line that breaks this is
//! [`Line::Invalid`], and the executor fails the trial with its reason (a failing
//! trial is data). The tokens `NaN`, `Infinity` and `-Infinity` (Python's
//! `json.dumps` writes them) are read as what they say, so a reason names the
//! value the program printed.

use std::collections::BTreeMap;

use firebreak_core::{Metrics, Objectives, Report};

/// The most log bytes kept per trial.
pub const LOG_TAIL_BYTES: usize = 64 * 1024;

/// The largest step, and the largest magnitude of an integer metric, that JSON
/// carries exactly: 2^53 (every integer up to it is a double).
pub const MAX_EXACT_INTEGER: u64 = 1 << 53;

/// What one stdout line means.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// `{"step": 3, "val_accuracy": 0.91}`
    Report(Report),
    /// `{"final": true, "val_accuracy": 0.97}`
    Final(Metrics),
    /// A JSON object without `step` or `final`: a result if it has every objective.
    /// Non-finite values are kept as printed (NaN, ±inf), for the result check.
    Metrics {
        /// Every numeric member.
        metrics: Metrics,
        /// Why the line cannot be a result (a number JSON cannot carry exactly),
        /// should it carry every objective.
        invalid: Option<String>,
    },
    /// A report or final line with a step or a metric JSON cannot carry exactly,
    /// or a non-finite metric: the trial fails with this reason.
    Invalid(String),
    /// Anything else: goes to the log.
    Log,
}

/// Classifies one stdout line.
pub fn parse_line(line: &str) -> Line {
    let trimmed = line.trim();
    if !trimmed.starts_with('{') {
        return Line::Log;
    }
    let scanned = scan(trimmed);
    let Ok(serde_json::Value::Object(object)) =
        serde_json::from_str::<serde_json::Value>(&scanned.parsable)
    else {
        return Line::Log;
    };
    // The last occurrence of a name wins, as in the parsed object.
    let bare: BTreeMap<&str, &str> = scanned.bare.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let is_final = object.get("final").and_then(serde_json::Value::as_bool) == Some(true);
    let step = if is_final {
        None
    } else {
        match bare.get("step") {
            Some(token) => match step_of(token) {
                Ok(step) => Some(step),
                Err(reason) => return Line::Invalid(reason),
            },
            None => None,
        }
    };
    let mut metrics = Metrics::new();
    // The first member JSON cannot carry exactly, and the first non-finite one:
    // (name, value as written, why).
    let mut inexact: Option<(String, String, &str)> = None;
    let mut non_finite: Option<(String, String, &str)> = None;
    for (key, value) in &object {
        if key == "step" || key == "final" {
            continue;
        }
        let (number, written) = match (value, bare.get(key.as_str())) {
            (serde_json::Value::String(s), _) => match non_finite_word(s) {
                Some(v) => (Ok(v), format!("{s:?}")),
                None => continue,
            },
            (serde_json::Value::Number(_) | serde_json::Value::Null, Some(token)) => {
                (number_of(token), (*token).to_string())
            }
            _ => continue,
        };
        match number {
            Ok(v) => {
                if !v.is_finite() && non_finite.is_none() {
                    non_finite = Some((key.clone(), written, "which is not a finite number"));
                }
                metrics.insert(key.clone(), v);
            }
            Err(why) => {
                inexact.get_or_insert((key.clone(), written, why));
                metrics.insert(key.clone(), f64::NAN);
            }
        }
    }
    const HINT: &str = "; hint: print every metric as a finite JSON number (integers within ±2^53), \
         and let the program exit non-zero when its training diverges";
    if is_final || step.is_some() {
        if let Some((key, written, why)) = inexact.or(non_finite) {
            let at = step.map(|s| format!(" at step {s}")).unwrap_or_default();
            return Line::Invalid(format!("reported {key} = {written}{at}, {why}{HINT}"));
        }
        return match step {
            Some(step) => Line::Report(Report { step, metrics }),
            None => Line::Final(metrics),
        };
    }
    if metrics.is_empty() {
        Line::Log
    } else {
        Line::Metrics {
            metrics,
            invalid: inexact
                .map(|(key, written, why)| format!("reported {key} = {written}, {why}{HINT}")),
        }
    }
}

/// The step of a report, or why `token` (as written) is not one.
fn step_of(token: &str) -> Result<u64, String> {
    const HINT: &str = "; hint: report steps as whole numbers from 0 to 2^53, \
         written as integers (in Python, `int(step)`)";
    let problem = if !is_json_number(token) {
        "which is not a number"
    } else if token.starts_with('-') && token.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        "which is negative"
    } else if token.contains(['.', 'e', 'E']) {
        "which is not written as an integer"
    } else {
        match token.trim_start_matches('-').parse::<u64>() {
            Ok(step) if step <= MAX_EXACT_INTEGER => return Ok(step),
            _ => "above 2^53 = 9007199254740992, the largest step JSON carries exactly",
        }
    };
    Err(format!("reported step {token}, {problem}{HINT}"))
}

/// The value of a member written as the bare token `token`, or why JSON cannot
/// carry it exactly (`null` reads as NaN: no number).
fn number_of(token: &str) -> Result<f64, &'static str> {
    match token {
        "NaN" | "null" => return Ok(f64::NAN),
        "Infinity" => return Ok(f64::INFINITY),
        "-Infinity" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    if !token.contains(['.', 'e', 'E']) {
        let magnitude = token.trim_start_matches('-').parse::<u64>();
        return match magnitude {
            Ok(m) if m <= MAX_EXACT_INTEGER => Ok(if token.starts_with('-') {
                -(m as f64)
            } else {
                m as f64
            }),
            _ => Err("an integer beyond ±2^53 = 9007199254740992, which JSON cannot carry exactly"),
        };
    }
    match token.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err("beyond the range of a double, which JSON cannot carry"),
    }
}

/// A string a program may print for a non-finite value, read as that value.
fn non_finite_word(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "inf" | "infinity" | "+inf" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// True when `token` has JSON's number syntax: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(token: &str) -> bool {
    let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let mut rest = token.strip_prefix('-').unwrap_or(token);
    let n = digits(rest);
    if n == 0 || (n > 1 && rest.starts_with('0')) {
        return false;
    }
    rest = &rest[n..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = digits(fraction);
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    if let Some(exponent) = rest.strip_prefix(['e', 'E']) {
        let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        let n = digits(exponent);
        if n == 0 {
            return false;
        }
        rest = &exponent[n..];
    }
    rest.is_empty()
}

/// One line, read once for what serde_json does not tell: each top-level member's
/// bare token (a number, `NaN`, `Infinity`, `null`...) exactly as written, and a
/// copy serde_json parses, with the tokens it refuses (`NaN`, `±Infinity`, numbers
/// beyond a double's range) as `null`.
struct Scanned<'a> {
    parsable: String,
    bare: Vec<(String, &'a str)>,
}

fn scan(text: &str) -> Scanned<'_> {
    let bytes = text.as_bytes();
    let mut parsable = String::with_capacity(text.len());
    let mut bare = Vec::new();
    let mut depth = 0usize;
    let mut want_key = false;
    let mut key: Option<String> = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let mut end = i + 1;
                while end < bytes.len() && bytes[end] != b'"' {
                    end += if bytes[end] == b'\\' { 2 } else { 1 };
                }
                let end = (end + 1).min(bytes.len());
                let token = &text[i..end];
                if depth == 1 {
                    key = if want_key {
                        serde_json::from_str::<String>(token).ok()
                    } else {
                        None
                    };
                    want_key = false;
                }
                parsable.push_str(token);
                i = end;
            }
            c @ (b'{' | b'[' | b'}' | b']' | b',' | b':' | b' ' | b'\t' | b'\r' | b'\n') => {
                match c {
                    b'{' | b'[' => {
                        if depth == 1 {
                            key = None;
                        }
                        depth += 1;
                        want_key = depth == 1 && c == b'{';
                    }
                    b'}' | b']' => depth = depth.saturating_sub(1),
                    b',' if depth == 1 => want_key = true,
                    _ => {}
                }
                parsable.push(char::from(c));
                i += 1;
            }
            _ => {
                let end = bytes[i..]
                    .iter()
                    .position(|b| b",:{}[]\" \t\r\n".contains(b))
                    .map_or(bytes.len(), |n| i + n);
                let token = &text[i..end];
                if depth == 1
                    && !want_key
                    && let Some(name) = key.take()
                {
                    bare.push((name, token));
                }
                let refused = matches!(token, "NaN" | "Infinity" | "-Infinity")
                    || (is_json_number(token) && token.parse::<f64>().is_ok_and(f64::is_infinite));
                parsable.push_str(if refused { "null" } else { token });
                i = end;
            }
        }
    }
    Scanned { parsable, bare }
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
    if let Some(name) = objectives
        .metrics
        .iter()
        .find(|m| !metrics.contains_key(*m))
    {
        return Err(format!("its result lacks the objective metric {name}"));
    }
    // An objective first, so the reason names what the search reads.
    let objective = |name: &&String| objectives.metrics.contains(*name);
    let mut members: Vec<(&String, &f64)> = metrics.iter().collect();
    members.sort_by_key(|(name, _)| !objective(name));
    if let Some((name, value)) = members.into_iter().find(|(_, v)| !v.is_finite()) {
        // Display writes the value as it is: NaN, inf or -inf.
        return Err(format!(
            "reported {name} = {value}, which is not a finite number; hint: print every metric \
             as a finite JSON number, and let the program exit non-zero when its training diverges"
        ));
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

    /// The reason a line is invalid, or a panic naming what it was instead.
    fn invalid(line: &str) -> String {
        match parse_line(line) {
            Line::Invalid(reason) => reason,
            other => panic!("{line} is {other:?}, not invalid"),
        }
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
            Line::Metrics {
                metrics: metrics(&[("val_accuracy", f64::NAN)]),
                invalid: None,
            },
        );
        check(r#"{"note": "NaN is fine in strings"}"#, Line::Log);
        check("epoch 3 done", Line::Log);
        check("{broken", Line::Log);
        check(r#"{"loss": NaNx}"#, Line::Log);
        // Nested objects are not metrics; their numbers do not matter.
        check(
            r#"{"step": 2, "cfg": {"step": -1, "n": 18446744073709551615}, "y": -4}"#,
            Line::Report(Report {
                step: 2,
                metrics: metrics(&[("y", -4.0)]),
            }),
        );
        // The largest exact step and integer metric are fine.
        check(
            r#"{"step": 9007199254740992, "n": -9007199254740992}"#,
            Line::Report(Report {
                step: 9_007_199_254_740_992,
                metrics: metrics(&[("n", -9_007_199_254_740_992.0)]),
            }),
        );
    }

    /// Steps and metrics JSON cannot carry exactly fail the trial, naming the
    /// value as printed.
    #[test]
    fn numbers_json_cannot_carry_exactly_are_invalid() {
        let cases = [
            (
                r#"{"step": 9007199254740993, "y": 1}"#,
                "reported step 9007199254740993, above 2^53",
            ),
            (
                r#"{"step": 18446744073709551615, "y": 1}"#,
                "reported step 18446744073709551615, above 2^53",
            ),
            (
                r#"{"step": 99999999999999999999999, "y": 1}"#,
                "reported step 99999999999999999999999, above 2^53",
            ),
            (
                r#"{"step": -1, "y": 1}"#,
                "reported step -1, which is negative",
            ),
            (
                r#"{"step": 2.5, "y": 1}"#,
                "reported step 2.5, which is not written as an integer",
            ),
            (
                r#"{"step": 1e400, "y": 1}"#,
                "reported step 1e400, which is not written as an integer",
            ),
            (
                r#"{"step": NaN, "y": 1}"#,
                "reported step NaN, which is not a number",
            ),
            (
                r#"{"step": 1, "y": 9007199254740993}"#,
                "reported y = 9007199254740993 at step 1, an integer beyond ±2^53",
            ),
            (
                r#"{"final": true, "y": -18446744073709551615}"#,
                "reported y = -18446744073709551615, an integer beyond ±2^53",
            ),
            (
                r#"{"final": true, "y": 1e400}"#,
                "reported y = 1e400, beyond the range of a double",
            ),
        ];
        for (line, reason) in cases {
            let got = invalid(line);
            assert!(got.starts_with(reason), "{line}: {got}");
            assert!(got.contains("; hint: "), "{line}: {got}");
        }
        // A line that is not a report or a result keeps its numbers to itself,
        // but says why it cannot be a result.
        match parse_line(r#"{"y": 0.5, "time_ns": 1712345678901234567}"#) {
            Line::Metrics {
                metrics,
                invalid: Some(reason),
            } => {
                assert!(metrics.contains_key("y"));
                assert!(
                    reason.starts_with("reported time_ns = 1712345678901234567, an integer beyond"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    /// `Infinity` is reported as infinite, never as NaN.
    #[test]
    fn non_finite_values_are_named_as_printed() {
        let cases = [
            (
                r#"{"final": true, "loss": Infinity}"#,
                "reported loss = Infinity, which is not a finite number",
            ),
            (
                r#"{"final": true, "loss": -Infinity}"#,
                "reported loss = -Infinity, which is not a finite number",
            ),
            (
                r#"{"final": true, "loss": NaN}"#,
                "reported loss = NaN, which is not a finite number",
            ),
            (
                r#"{"step": 4, "loss": Infinity}"#,
                "reported loss = Infinity at step 4, which is not a finite number",
            ),
            (
                r#"{"final": true, "loss": "-inf"}"#,
                r#"reported loss = "-inf", which is not a finite number"#,
            ),
        ];
        for (line, reason) in cases {
            let got = invalid(line);
            assert!(got.starts_with(reason), "{line}: {got}");
        }
        check(
            r#"{"loss": Infinity, "acc": -Infinity}"#,
            Line::Metrics {
                metrics: metrics(&[("loss", f64::INFINITY), ("acc", f64::NEG_INFINITY)]),
                invalid: None,
            },
        );
    }

    #[test]
    fn results_need_every_finite_objective() {
        let o = Objectives::single("acc", firebreak_core::Direction::Maximize);
        assert!(result_from(&o, None, None).is_err());
        let reason =
            |m: &[(&str, f64)]| result_from(&o, Some(&metrics(m)), None).expect_err("not a result");
        assert!(
            reason(&[("acc", f64::NAN)]).starts_with("reported acc = NaN, which is not a finite")
        );
        assert!(reason(&[("acc", f64::INFINITY)]).starts_with("reported acc = inf, which"));
        assert!(reason(&[("acc", f64::NEG_INFINITY)]).starts_with("reported acc = -inf, which"));
        // Another metric's non-finite value fails it too, after the objective's.
        assert!(reason(&[("a", f64::INFINITY), ("acc", 0.5)]).starts_with("reported a = inf"));
        assert!(
            reason(&[("a", f64::INFINITY), ("acc", f64::NAN)]).starts_with("reported acc = NaN")
        );
        assert_eq!(
            reason(&[("b", 0.5)]),
            "its result lacks the objective metric acc"
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

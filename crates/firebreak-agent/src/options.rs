//! `[search.sampler_options]` of `sampler = "agent"`: every key, its default and
//! its check.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::AgentError;

/// What the agent proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// The next configuration of the campaign's `[space]`.
    Config,
    /// A new version of the editable files of a code task.
    Code,
}

/// The keys [`AgentOptions::from_options`] accepts.
pub const OPTION_KEYS: &[&str] = &[
    "base_url",
    "model",
    "api_key_env",
    "mode",
    "fallback",
    "max_invalid",
    "temperature",
    "max_tokens",
    "timeout",
    "retries",
    "history",
    "debug_rounds",
    "max_outstanding",
];

/// The agent proposer's settings. None of them is a secret: the API key is read
/// from the environment variable `api_key_env` names, when the client is made,
/// and is never stored, ledgered or passed to a trial.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOptions {
    /// The endpoint's base URL, up to and including `/v1`
    /// (`http://127.0.0.1:8080/v1`); requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    /// The model name sent with each request.
    pub model: String,
    /// The environment variable that holds the API key (none: no
    /// `Authorization` header, as local servers expect).
    pub api_key_env: Option<String>,
    /// Config or code proposals (default config).
    pub mode: Mode,
    /// The classic proposer that takes over after `max_invalid` invalid answers in
    /// a row (default `tpe`).
    pub fallback: String,
    /// Invalid answers in a row before the fallback proposes (default 3).
    pub max_invalid: u32,
    /// Sampling temperature (default 0.2).
    pub temperature: f64,
    /// Most tokens an answer may have (default 512).
    pub max_tokens: u32,
    /// One request's whole time limit (default 120 s).
    pub timeout: Duration,
    /// Retries of a request that failed at the transport, timed out, or got
    /// 429 or 5xx (default 3; backoff 0.5 s doubling, at most 8 s).
    pub retries: u32,
    /// How many finished trials the prompt shows: the best half and the most
    /// recent half (default 20).
    pub history: usize,
    /// Code mode: fixes asked for a failing candidate (default 2).
    pub debug_rounds: u32,
    /// Requests in flight at once over all workers (default 1).
    pub max_outstanding: u32,
}

impl AgentOptions {
    /// Reads the options; unknown keys, wrong types and out-of-range values are
    /// errors naming the key.
    pub fn from_options(options: &BTreeMap<String, serde_json::Value>) -> Result<Self, AgentError> {
        if let Some(key) = options.keys().find(|k| !OPTION_KEYS.contains(&k.as_str())) {
            return Err(AgentError::UnknownOption { key: key.clone() });
        }
        let bad = |key: &str, message: String| AgentError::BadOption {
            key: key.to_string(),
            message,
        };
        let text = |key: &str| -> Result<Option<String>, AgentError> {
            match options.get(key) {
                None => Ok(None),
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
                Some(other) => Err(bad(
                    key,
                    format!("expected a non-empty string, got {other}"),
                )),
            }
        };
        let whole = |key: &str, default: u64, max: u64| -> Result<u64, AgentError> {
            match options.get(key) {
                None => Ok(default),
                Some(v) => match v.as_u64() {
                    Some(n) if n <= max => Ok(n),
                    _ => Err(bad(
                        key,
                        format!("expected a whole number up to {max}, got {v}"),
                    )),
                },
            }
        };
        let base_url = text("base_url")?.ok_or_else(|| {
            bad(
                "base_url",
                "missing: the OpenAI-compatible endpoint, e.g. \"http://127.0.0.1:8080/v1\"".into(),
            )
        })?;
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(bad(
                "base_url",
                format!("{base_url:?} is not an http:// or https:// URL"),
            ));
        }
        let model = text("model")?
            .ok_or_else(|| bad("model", "missing: the model name the server serves".into()))?;
        let api_key_env = text("api_key_env")?;
        if let Some(name) = &api_key_env
            && !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(bad(
                "api_key_env",
                format!(
                    "{name:?} is not an environment variable's name (it must name the variable, never hold the key)"
                ),
            ));
        }
        let mode = match text("mode")?.as_deref() {
            None | Some("config") => Mode::Config,
            Some("code") => Mode::Code,
            Some(other) => return Err(bad("mode", format!("{other:?} is not config or code"))),
        };
        let fallback = text("fallback")?.unwrap_or_else(|| "tpe".to_string());
        if fallback == "agent" {
            return Err(bad(
                "fallback",
                "the fallback must be a classic proposer".into(),
            ));
        }
        let temperature = match options.get("temperature") {
            None => 0.2,
            Some(v) => match v.as_f64() {
                Some(t) if (0.0..=2.0).contains(&t) => t,
                _ => {
                    return Err(bad(
                        "temperature",
                        format!("expected a number in 0..=2, got {v}"),
                    ));
                }
            },
        };
        let timeout = match options.get("timeout") {
            None => Duration::from_secs(120),
            Some(v) => parse_duration(v).ok_or_else(|| {
                bad(
                    "timeout",
                    format!("expected seconds or a duration like \"90s\" or \"2m\", got {v}"),
                )
            })?,
        };
        let max_outstanding = whole("max_outstanding", 1, 64)? as u32;
        if max_outstanding == 0 {
            return Err(bad("max_outstanding", "must be at least 1".into()));
        }
        let max_invalid = whole("max_invalid", 3, 100)? as u32;
        if max_invalid == 0 {
            return Err(bad("max_invalid", "must be at least 1".into()));
        }
        Ok(AgentOptions {
            base_url: base_url.trim_end_matches('/').to_string(),
            model,
            api_key_env,
            mode,
            fallback,
            max_invalid,
            temperature,
            max_tokens: whole("max_tokens", 512, 1 << 20)? as u32,
            timeout,
            retries: whole("retries", 3, 20)? as u32,
            history: whole("history", 20, 1000)? as usize,
            debug_rounds: whole("debug_rounds", 2, 20)? as u32,
            max_outstanding,
        })
    }
}

/// Seconds as a number, or a string of digits followed by `s`, `m` or `h`.
fn parse_duration(value: &serde_json::Value) -> Option<Duration> {
    if let Some(seconds) = value.as_f64() {
        return (seconds > 0.0 && seconds.is_finite()).then(|| Duration::from_secs_f64(seconds));
    }
    let text = value.as_str()?.trim();
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = digits.parse().ok()?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(value: serde_json::Value) -> Result<AgentOptions, AgentError> {
        let map = value
            .as_object()
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default();
        AgentOptions::from_options(&map)
    }

    #[test]
    fn defaults_and_checks() {
        let o = options(json!({"base_url": "http://h:1/v1/", "model": "m"})).expect("valid");
        assert_eq!(o.base_url, "http://h:1/v1");
        assert_eq!(
            (o.mode, o.fallback.as_str(), o.max_invalid),
            (Mode::Config, "tpe", 3)
        );
        assert_eq!(o.timeout, Duration::from_secs(120));
        let err = |v| options(v).expect_err("an error").to_string();
        assert!(err(json!({"model": "m"})).contains("base_url"));
        assert!(err(json!({"base_url": "ftp://x", "model": "m"})).contains("not an http"));
        assert!(
            err(json!({"base_url": "http://x", "model": "m", "api_key_env": "sk-123-abc"}))
                .contains("never hold the key")
        );
        assert!(err(json!({"base_url": "http://x", "model": "m", "colour": 1})).contains("colour"));
        assert!(
            err(json!({"base_url": "http://x", "model": "m", "fallback": "agent"}))
                .contains("classic")
        );
        let o =
            options(json!({"base_url": "http://x", "model": "m", "timeout": "2m", "mode": "code"}))
                .expect("valid");
        assert_eq!((o.timeout, o.mode), (Duration::from_secs(120), Mode::Code));
    }
}

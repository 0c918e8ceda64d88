//! What an agent may ask for besides its proposal: changes of the campaign's
//! governed settings (more trials, wider bounds, a new editable file, a larger
//! token budget). An ask is only words: the runner files each as a change
//! request that people decide, exactly as a classic proposer's asks.

use serde_json::{Value, json};

/// The most asks one answer may carry.
pub const MAX_ASKS: usize = 3;

/// One ask: a new value for the spec setting at `path`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// RFC 6901 pointer into the spec, e.g. `/search/n_trials`.
    pub path: String,
    /// The value asked for.
    pub value: Value,
    /// Why, in the agent's words.
    pub why: String,
}

/// The schema of the optional `asks` member.
pub(crate) fn asks_schema() -> Value {
    json!({
        "type": "array",
        "maxItems": MAX_ASKS,
        "items": {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "value": {},
                "why": {"type": "string", "maxLength": 300},
            },
            "required": ["path", "value", "why"],
            "additionalProperties": false,
        },
    })
}

/// Reads the `asks` member of an answer (absent: none).
pub(crate) fn parse_asks(value: Option<&Value>) -> Result<Vec<Ask>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = value else {
        return Err("`asks` is not an array".into());
    };
    if items.len() > MAX_ASKS {
        return Err(format!(
            "{} asks; at most {MAX_ASKS} per answer",
            items.len()
        ));
    }
    items
        .iter()
        .map(|item| {
            let path = item["path"].as_str().filter(|p| p.starts_with('/'));
            match (path, item.get("value"), item["why"].as_str()) {
                (Some(path), Some(value), Some(why)) => Ok(Ask {
                    path: path.to_string(),
                    value: value.clone(),
                    why: why.chars().take(300).collect(),
                }),
                _ => Err(format!(
                    "ask {item} needs a `path` (a JSON pointer such as /search/n_trials), a `value` and a `why`"
                )),
            }
        })
        .collect()
}

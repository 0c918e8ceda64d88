//! Reading a config answer: the message content as JSON, each value typed by
//! its parameter's distribution. Nothing is repaired: a value of the wrong
//! type, a key the space lacks or a value outside its bounds refuses the whole
//! answer, with the reason the ledger records.

use firebreak_core::{Distribution, ParamValue, Params, SearchSpace};
use serde_json::Value;

use crate::schema::MAX_RATIONALE;

/// The parameters and rationale of a config answer's content, or why it is
/// refused. A Markdown code fence around the JSON is accepted (it is not part
/// of the proposal); everything inside must be the schema's object.
pub fn parse_config_answer(content: &str, space: &SearchSpace) -> Result<ConfigAnswer, String> {
    let text = unfence(content.trim());
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let start: String = text.chars().take(80).collect();
        format!("the answer is not JSON ({e}): {start:?}")
    })?;
    let Value::Object(answer) = value else {
        return Err("the answer is not a JSON object".into());
    };
    if let Some(key) = answer
        .keys()
        .find(|k| !["params", "rationale", "asks"].contains(&k.as_str()))
    {
        return Err(format!(
            "the answer has a key `{key}` besides rationale, params and asks"
        ));
    }
    let asks = crate::asks::parse_asks(answer.get("asks"))?;
    let rationale = match answer.get("rationale") {
        None => String::new(),
        Some(Value::String(s)) => s.chars().take(MAX_RATIONALE).collect(),
        Some(other) => return Err(format!("rationale is not a string: {other}")),
    };
    let Some(Value::Object(given)) = answer.get("params") else {
        return Err("the answer has no `params` object".into());
    };
    let mut params = Params::new();
    for (name, value) in given {
        let parameter = space
            .get(name)
            .ok_or_else(|| format!("`{name}` is not a parameter of the space"))?;
        let typed = match &parameter.distribution {
            Distribution::Float { .. } => value.as_f64().map(ParamValue::Float),
            Distribution::Int { .. } => value.as_i64().map(ParamValue::Int),
            Distribution::Categorical { choices } => {
                let given = json_value(value);
                given.and_then(|g| {
                    choices
                        .iter()
                        .find(|c| c.matches(&g) && same_kind(c, &g))
                        .cloned()
                })
            }
        };
        let typed = typed
            .ok_or_else(|| format!("`{name}` = {value} is not a value of its distribution"))?;
        params.insert(name.clone(), typed);
    }
    space
        .validate(&params)
        .map_err(|e| format!("out of the campaign's space: {e}"))?;
    Ok(ConfigAnswer {
        params,
        rationale,
        asks,
    })
}

/// A config answer read: the configuration, why, and any changes asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigAnswer {
    /// The proposed configuration, typed and inside the space.
    pub params: Params,
    /// Why, in the agent's words.
    pub rationale: String,
    /// Changes of governed settings the agent asks for.
    pub asks: Vec<crate::Ask>,
}

/// The content inside a Markdown code fence, if it is fenced.
fn unfence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

fn json_value(value: &Value) -> Option<ParamValue> {
    match value {
        Value::Bool(b) => Some(ParamValue::Bool(*b)),
        Value::String(s) => Some(ParamValue::Str(s.clone())),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(ParamValue::Int(i)),
            None => n.as_f64().map(ParamValue::Float),
        },
        _ => None,
    }
}

/// A choice and a given value are of the same kind: numbers with numbers,
/// strings with strings, booleans with booleans (so `"3"` is not the choice 3).
fn same_kind(a: &ParamValue, b: &ParamValue) -> bool {
    a.as_f64().is_some() == b.as_f64().is_some()
        && matches!(a, ParamValue::Str(_)) == matches!(b, ParamValue::Str(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_core::{Condition, Parameter};

    fn space() -> SearchSpace {
        let p = |name: &str, distribution, condition| Parameter {
            name: name.into(),
            distribution,
            condition,
        };
        SearchSpace::new(vec![
            p(
                "lr",
                Distribution::Float {
                    low: 1e-4,
                    high: 0.1,
                    log: true,
                    step: None,
                },
                None,
            ),
            p(
                "layers",
                Distribution::Int {
                    low: 1,
                    high: 4,
                    log: false,
                    step: None,
                },
                None,
            ),
            p(
                "opt",
                Distribution::Categorical {
                    choices: vec![
                        ParamValue::Str("adam".into()),
                        ParamValue::Str("sgd".into()),
                    ],
                },
                None,
            ),
            p(
                "momentum",
                Distribution::Float {
                    low: 0.0,
                    high: 0.99,
                    log: false,
                    step: None,
                },
                Some(Condition {
                    when: [("opt".to_string(), vec![ParamValue::Str("sgd".into())])].into(),
                }),
            ),
        ])
        .expect("a valid space")
    }

    fn check(content: &str, expected: Result<&str, &str>) {
        let got = parse_config_answer(content, &space());
        match (got, expected) {
            (Ok(answer), Ok(want)) => {
                assert_eq!(serde_json::to_string(&answer.params).expect("JSON"), want)
            }
            (Err(reason), Err(want)) => assert!(reason.contains(want), "{reason:?} lacks {want:?}"),
            (got, want) => panic!("{content}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn answers_are_typed_or_refused_never_repaired() {
        let ok = r#"{"layers":2,"lr":0.01,"opt":"adam"}"#;
        check(
            r#"{"rationale":"r","params":{"lr":0.01,"layers":2,"opt":"adam"}}"#,
            Ok(ok),
        );
        check(
            "```json\n{\"params\":{\"lr\":0.01,\"layers\":2,\"opt\":\"adam\"}}\n```",
            Ok(ok),
        );
        check(
            r#"{"params":{"lr":0.01,"layers":2,"opt":"sgd","momentum":0.9}}"#,
            Ok(r#"{"layers":2,"lr":0.01,"momentum":0.9,"opt":"sgd"}"#),
        );
        check("I think lr=0.01", Err("not JSON"));
        check("[1,2]", Err("not a JSON object"));
        check(
            r#"{"params":{"lr":0.5,"layers":2,"opt":"adam"}}"#,
            Err("out of the campaign's space"),
        );
        check(
            r#"{"params":{"lr":0.01,"layers":2.5,"opt":"adam"}}"#,
            Err("`layers` = 2.5"),
        );
        check(
            r#"{"params":{"lr":0.01,"layers":2,"opt":"rmsprop"}}"#,
            Err("`opt`"),
        );
        check(
            r#"{"params":{"lr":0.01,"layers":2,"opt":"adam","dropout":0.1}}"#,
            Err("`dropout` is not a parameter"),
        );
        check(
            r#"{"params":{"lr":0.01,"layers":2,"opt":"adam","momentum":0.9}}"#,
            Err("out of the campaign's space"),
        );
        check(
            r#"{"params":{"lr":0.01,"opt":"adam"}}"#,
            Err("out of the campaign's space"),
        );
        check(
            r#"{"params":{"lr":"0.01","layers":2,"opt":"adam"}}"#,
            Err("`lr`"),
        );
        check(
            r#"{"params":{"lr":0.01,"layers":2,"opt":"adam"},"extra":1}"#,
            Err("key `extra`"),
        );
        check(r#"{"rationale":"r"}"#, Err("no `params`"));
    }
}

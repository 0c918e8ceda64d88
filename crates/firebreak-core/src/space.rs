//! The search space: named parameters with distributions and activation conditions.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// A parameter's value. Categorical choices keep their TOML type, so `params` in
/// JSON show integers as integers, floats as floats, strings and booleans as such.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// A boolean choice.
    Bool(bool),
    /// An integer (int parameters and integer choices).
    Int(i64),
    /// A float (float parameters and float choices).
    Float(f64),
    /// A string choice.
    Str(String),
}

impl ParamValue {
    /// The value as a float when it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as JSON text (`0.0001`, `3`, `relu`, `true`): strings unquoted.
    /// This is the form used in the trial protocol's environment and placeholders.
    pub fn to_plain_string(&self) -> String {
        match self {
            ParamValue::Str(s) => s.clone(),
            other => serde_json::to_string(other).unwrap_or_default(),
        }
    }

    /// Loose equality used for conditions and choices: numbers compare by value.
    pub fn matches(&self, other: &ParamValue) -> bool {
        match (self.as_f64(), other.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => self == other,
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Str(s) => write!(f, "{s:?}"),
            other => f.write_str(&other.to_plain_string()),
        }
    }
}

/// A trial's parameters: name to value, active parameters only.
pub type Params = BTreeMap<String, ParamValue>;

/// The distribution a parameter is drawn from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Distribution {
    /// A float in `[low, high]`, optionally log-scaled or on a grid of `step`.
    Float {
        /// Lower bound, inclusive.
        low: f64,
        /// Upper bound, inclusive.
        high: f64,
        /// Sample on a log scale (requires `low > 0`).
        log: bool,
        /// Values are `low + k·step`.
        step: Option<f64>,
    },
    /// An integer in `[low, high]`, optionally log-scaled or on a grid of `step`.
    Int {
        /// Lower bound, inclusive.
        low: i64,
        /// Upper bound, inclusive.
        high: i64,
        /// Sample on a log scale (requires `low >= 1`).
        log: bool,
        /// Values are `low + k·step`.
        step: Option<i64>,
    },
    /// One of a list of typed choices.
    Categorical {
        /// The choices, in spec order.
        choices: Vec<ParamValue>,
    },
}

impl Distribution {
    /// Checks the distribution's own consistency.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Distribution::Float {
                low,
                high,
                log,
                step,
            } => {
                if !(low.is_finite() && high.is_finite()) {
                    return Err("low and high must be finite".into());
                }
                if low > high {
                    return Err(format!("low = {low} is greater than high = {high}"));
                }
                if *log && *low <= 0.0 {
                    return Err(format!("log = true needs low > 0, got low = {low}"));
                }
                if let Some(step) = step {
                    if *step <= 0.0 || !step.is_finite() {
                        return Err(format!("step must be positive, got {step}"));
                    }
                    if *log {
                        return Err("step and log = true cannot be combined".into());
                    }
                }
                Ok(())
            }
            Distribution::Int {
                low,
                high,
                log,
                step,
            } => {
                if low > high {
                    return Err(format!("low = {low} is greater than high = {high}"));
                }
                if *log && *low < 1 {
                    return Err(format!("log = true needs low >= 1, got low = {low}"));
                }
                if let Some(step) = step {
                    if *step <= 0 {
                        return Err(format!("step must be positive, got {step}"));
                    }
                    if *log && *step != 1 {
                        return Err("step and log = true cannot be combined".into());
                    }
                }
                Ok(())
            }
            Distribution::Categorical { choices } => {
                if choices.is_empty() {
                    return Err("choices must not be empty".into());
                }
                for (i, a) in choices.iter().enumerate() {
                    if choices[..i].iter().any(|b| a == b) {
                        return Err(format!("choice {a} is listed twice"));
                    }
                }
                Ok(())
            }
        }
    }

    /// True when `value` is a valid draw from this distribution (type, bounds, step).
    pub fn contains(&self, value: &ParamValue) -> bool {
        match (self, value) {
            (
                Distribution::Float {
                    low, high, step, ..
                },
                ParamValue::Float(_) | ParamValue::Int(_),
            ) => {
                let Some(x) = value.as_f64() else {
                    return false;
                };
                let tolerance = 1e-9 * (high - low).abs().max(1.0);
                if !(x.is_finite() && x >= low - tolerance && x <= high + tolerance) {
                    return false;
                }
                match step {
                    Some(step) => {
                        let k = (x - low) / step;
                        (k - k.round()).abs() < 1e-6
                    }
                    None => true,
                }
            }
            (
                Distribution::Int {
                    low, high, step, ..
                },
                ParamValue::Int(x),
            ) => x >= low && x <= high && step.is_none_or(|s| (x - low) % s == 0),
            (Distribution::Categorical { choices }, value) => choices.iter().any(|c| c == value),
            _ => false,
        }
    }

    /// A short human description, e.g. `float in [0.0001, 0.1] (log)`.
    pub fn describe(&self) -> String {
        match self {
            Distribution::Float {
                low,
                high,
                log,
                step,
            } => format!(
                "float in [{low}, {high}]{}{}",
                if *log { " (log)" } else { "" },
                step.map(|s| format!(" step {s}")).unwrap_or_default()
            ),
            Distribution::Int {
                low,
                high,
                log,
                step,
            } => format!(
                "int in [{low}, {high}]{}{}",
                if *log { " (log)" } else { "" },
                step.map(|s| format!(" step {s}")).unwrap_or_default()
            ),
            Distribution::Categorical { choices } => {
                let list: Vec<String> = choices.iter().map(ToString::to_string).collect();
                format!("one of [{}]", list.join(", "))
            }
        }
    }
}

/// Activates a parameter only when each named parent parameter is active and has
/// one of the listed values (all entries must hold).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Condition {
    /// Parent parameter name to the values that activate the child.
    pub when: BTreeMap<String, Vec<ParamValue>>,
}

impl Condition {
    /// True when `params` (the values drawn so far) satisfy the condition.
    pub fn holds(&self, params: &Params) -> bool {
        self.when.iter().all(|(parent, values)| {
            params
                .get(parent)
                .is_some_and(|v| values.iter().any(|w| w.matches(v)))
        })
    }
}

/// One named parameter of a search space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    /// The parameter's name, as written in the spec.
    pub name: String,
    /// Its distribution.
    pub distribution: Distribution,
    /// When present, the parameter is active only when the condition holds.
    pub condition: Option<Condition>,
}

/// An ordered set of parameters: parents come before the parameters they condition,
/// ties broken by name, so iteration order is deterministic.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SearchSpace {
    parameters: Vec<Parameter>,
}

impl SearchSpace {
    /// Builds a space, checking each distribution, that condition parents exist and
    /// are categorical or int, and that conditions have no cycles.
    pub fn new(mut parameters: Vec<Parameter>) -> Result<Self, CoreError> {
        parameters.sort_by(|a, b| a.name.cmp(&b.name));
        for (i, p) in parameters.iter().enumerate() {
            if parameters[..i].iter().any(|q| q.name == p.name) {
                return Err(invalid(&p.name, "is defined twice"));
            }
            p.distribution.check().map_err(|m| invalid(&p.name, &m))?;
            for (parent, values) in p.condition.iter().flat_map(|c| &c.when) {
                let Some(parent_param) = parameters.iter().find(|q| &q.name == parent) else {
                    return Err(invalid(
                        &p.name,
                        &format!("`when` names `{parent}`, which is not a parameter"),
                    ));
                };
                for value in values {
                    if !parent_param.distribution.contains(value) {
                        return Err(invalid(
                            &p.name,
                            &format!(
                                "`when` value {value} can never be taken by `{parent}` ({})",
                                parent_param.distribution.describe()
                            ),
                        ));
                    }
                }
            }
        }
        // Topological order (Kahn's algorithm over the name-sorted list).
        let mut ordered: Vec<Parameter> = Vec::with_capacity(parameters.len());
        let mut remaining = parameters;
        while !remaining.is_empty() {
            let ready = remaining.iter().position(|p| {
                p.condition
                    .iter()
                    .flat_map(|c| c.when.keys())
                    .all(|parent| ordered.iter().any(|q| &q.name == parent))
            });
            match ready {
                Some(i) => ordered.push(remaining.remove(i)),
                None => {
                    return Err(invalid(
                        &remaining[0].name,
                        "its `when` conditions form a cycle",
                    ));
                }
            }
        }
        Ok(SearchSpace {
            parameters: ordered,
        })
    }

    /// The parameters, parents before children.
    pub fn parameters(&self) -> &[Parameter] {
        &self.parameters
    }

    /// The parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }

    /// True when `parameter` is active given the values drawn so far.
    pub fn is_active(parameter: &Parameter, params: &Params) -> bool {
        parameter.condition.as_ref().is_none_or(|c| c.holds(params))
    }

    /// Checks that `params` holds exactly the active parameters, each inside its
    /// distribution. Proposals are validated with this, never clipped or repaired.
    pub fn validate(&self, params: &Params) -> Result<(), CoreError> {
        let mut seen = Params::new();
        for p in &self.parameters {
            let active = Self::is_active(p, &seen);
            match (active, params.get(&p.name)) {
                (true, Some(value)) => {
                    if !p.distribution.contains(value) {
                        return Err(CoreError::OutOfSpace {
                            name: p.name.clone(),
                            value: value.to_string(),
                            expected: p.distribution.describe(),
                        });
                    }
                    seen.insert(p.name.clone(), value.clone());
                }
                (true, None) => {
                    return Err(CoreError::Mismatch(format!(
                        "parameter `{}` is active but has no value",
                        p.name
                    )));
                }
                (false, Some(_)) => {
                    return Err(CoreError::Mismatch(format!(
                        "parameter `{}` is inactive (its `when` condition does not hold) but has a value",
                        p.name
                    )));
                }
                (false, None) => {}
            }
        }
        if let Some(extra) = params.keys().find(|k| self.get(k).is_none()) {
            return Err(CoreError::Mismatch(format!(
                "`{extra}` is not a parameter of the search space"
            )));
        }
        Ok(())
    }
}

fn invalid(name: &str, message: &str) -> CoreError {
    CoreError::InvalidParameter {
        name: name.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(name: &str, low: f64, high: f64) -> Parameter {
        Parameter {
            name: name.into(),
            distribution: Distribution::Float {
                low,
                high,
                log: false,
                step: None,
            },
            condition: None,
        }
    }

    fn layers() -> Parameter {
        Parameter {
            name: "n_layers".into(),
            distribution: Distribution::Int {
                low: 1,
                high: 4,
                log: false,
                step: None,
            },
            condition: None,
        }
    }

    fn width_when_deep() -> Parameter {
        let mut when = BTreeMap::new();
        when.insert(
            "n_layers".to_string(),
            vec![ParamValue::Int(3), ParamValue::Int(4)],
        );
        Parameter {
            condition: Some(Condition { when }),
            ..float("width_3", 16.0, 256.0)
        }
    }

    #[test]
    fn parents_come_before_children() {
        let space = SearchSpace::new(vec![width_when_deep(), layers(), float("a", 0.0, 1.0)])
            .expect("valid space");
        let names: Vec<&str> = space.parameters().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "n_layers", "width_3"]);
    }

    #[test]
    fn validate_rejects_inactive_and_out_of_bounds_values() {
        let space = SearchSpace::new(vec![layers(), width_when_deep()]).expect("valid space");
        let mut params = Params::new();
        params.insert("n_layers".into(), ParamValue::Int(2));
        assert!(space.validate(&params).is_ok());
        params.insert("width_3".into(), ParamValue::Float(20.0));
        assert!(matches!(
            space.validate(&params),
            Err(CoreError::Mismatch(_))
        ));
        params.insert("n_layers".into(), ParamValue::Int(3));
        assert!(space.validate(&params).is_ok());
        params.insert("n_layers".into(), ParamValue::Int(9));
        assert!(matches!(
            space.validate(&params),
            Err(CoreError::OutOfSpace { .. })
        ));
    }

    #[test]
    fn unknown_parent_and_cycles_are_errors() {
        let mut orphan = width_when_deep();
        orphan.name = "w".into();
        assert!(SearchSpace::new(vec![orphan]).is_err());
    }
}

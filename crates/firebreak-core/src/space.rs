//! The search space: named parameters with distributions and activation conditions.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
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
    /// The largest magnitude of an int parameter's bounds, 2^53: every int up to it
    /// is exact as a float, which the model-based proposers work in, and
    /// `high - low` never overflows.
    pub const MAX_INT_MAGNITUDE: i64 = 1 << 53;

    /// The most `step`s a float parameter's range may hold, 2^53.
    pub const MAX_STEPS: u64 = 1 << 53;

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
                if !(high - low).is_finite() {
                    return Err(format!(
                        "low = {} to high = {} is wider than the largest float",
                        short(*low),
                        short(*high)
                    ));
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
                    let steps = (high - low) / step;
                    if steps.is_nan() || steps > Self::MAX_STEPS as f64 {
                        return Err(format!(
                            "step = {} cuts [{}, {}] into {steps:e} steps, more than {}",
                            short(*step),
                            short(*low),
                            short(*high),
                            Self::MAX_STEPS
                        ));
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
                for (key, bound) in [("low", low), ("high", high)] {
                    if bound.unsigned_abs() > Self::MAX_INT_MAGNITUDE as u64 {
                        return Err(format!(
                            "{key} = {bound} is outside ±2^53 = ±{}, where ints stop being exact as floats",
                            Self::MAX_INT_MAGNITUDE
                        ));
                    }
                }
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
                // A set of keys with `==`'s meaning: linear, where comparing every
                // pair took minutes for a hundred thousand choices.
                let mut seen = HashSet::with_capacity(choices.len());
                for choice in choices {
                    let Some(key) = ChoiceKey::of(choice) else {
                        return Err(
                            "choice nan is not a number: it equals no value, itself included"
                                .into(),
                        );
                    };
                    if !seen.insert(key) {
                        return Err(format!("choice {choice} is listed twice"));
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

/// A hashable stand-in for a choice with `ParamValue`'s `==`: floats by their bits,
/// `-0.0` as `0.0`; NaN, equal to nothing, has none.
#[derive(Debug, PartialEq, Eq, Hash)]
enum ChoiceKey<'a> {
    Bool(bool),
    Int(i64),
    Float(u64),
    Str(&'a str),
}

impl<'a> ChoiceKey<'a> {
    fn of(value: &'a ParamValue) -> Option<Self> {
        Some(match value {
            ParamValue::Bool(b) => ChoiceKey::Bool(*b),
            ParamValue::Int(i) => ChoiceKey::Int(*i),
            ParamValue::Float(f) if f.is_nan() => return None,
            ParamValue::Float(f) => ChoiceKey::Float(if *f == 0.0 { 0 } else { f.to_bits() }),
            ParamValue::Str(s) => ChoiceKey::Str(s),
        })
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
        if let Some(pair) = parameters.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(invalid(&pair[1].name, "is defined twice"));
        }
        // Every lookup below is a binary search or a set: a space of a hundred
        // thousand parameters validates in well under a second.
        let index_of = |name: &str| {
            parameters
                .binary_search_by(|q| q.name.as_str().cmp(name))
                .ok()
        };
        let mut choice_sets: HashMap<usize, HashSet<ChoiceKey<'_>>> = HashMap::new();
        // children[i]: the parameters whose `when` names parameter i.
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); parameters.len()];
        let mut waiting: Vec<usize> = vec![0; parameters.len()];
        for (i, p) in parameters.iter().enumerate() {
            p.distribution.check().map_err(|m| invalid(&p.name, &m))?;
            for (parent, values) in p.condition.iter().flat_map(|c| &c.when) {
                let Some(j) = index_of(parent) else {
                    return Err(invalid(
                        &p.name,
                        &format!("`when` names `{parent}`, which is not a parameter"),
                    ));
                };
                let parent_param = &parameters[j];
                for value in values {
                    let possible = match &parent_param.distribution {
                        Distribution::Categorical { choices } => {
                            let set = choice_sets.entry(j).or_insert_with(|| {
                                choices.iter().filter_map(ChoiceKey::of).collect()
                            });
                            ChoiceKey::of(value).is_some_and(|key| set.contains(&key))
                        }
                        other => other.contains(value),
                    };
                    if !possible {
                        return Err(invalid(
                            &p.name,
                            &format!(
                                "`when` value {value} can never be taken by `{parent}` ({})",
                                parent_param.distribution.describe()
                            ),
                        ));
                    }
                }
                children[j].push(i);
                waiting[i] += 1;
            }
        }
        // Topological order, Kahn's algorithm taking the first ready parameter by
        // name each time: the order the name-sorted list gives, found in n log n.
        let mut ready: BinaryHeap<Reverse<usize>> = (0..parameters.len())
            .filter(|&i| waiting[i] == 0)
            .map(Reverse)
            .collect();
        let mut order: Vec<usize> = Vec::with_capacity(parameters.len());
        while let Some(Reverse(i)) = ready.pop() {
            order.push(i);
            for &child in &children[i] {
                waiting[child] -= 1;
                if waiting[child] == 0 {
                    ready.push(Reverse(child));
                }
            }
        }
        if order.len() < parameters.len() {
            let stuck = (0..parameters.len())
                .find(|&i| waiting[i] > 0)
                .map_or("", |i| parameters[i].name.as_str());
            return Err(invalid(stuck, "its `when` conditions form a cycle"));
        }
        drop(choice_sets);
        let mut slots: Vec<Option<Parameter>> = parameters.into_iter().map(Some).collect();
        let ordered = order.into_iter().filter_map(|i| slots[i].take()).collect();
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
        let mut named = 0;
        for p in &self.parameters {
            named += usize::from(params.contains_key(&p.name));
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
        if named < params.len() {
            // Some name is not a parameter: find it (a set, not a scan per name).
            let names: HashSet<&str> = self.parameters.iter().map(|p| p.name.as_str()).collect();
            if let Some(extra) = params.keys().find(|k| !names.contains(k.as_str())) {
                return Err(CoreError::Mismatch(format!(
                    "`{extra}` is not a parameter of the search space"
                )));
            }
        }
        Ok(())
    }
}

/// A float as a person writes it: `0.5`, `1e-300` (not 300 digits).
fn short(x: f64) -> String {
    if x == 0.0 || (1e-6..1e16).contains(&x.abs()) {
        x.to_string()
    } else {
        format!("{x:e}")
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
        let when = |parent: &str| {
            Some(Condition {
                when: BTreeMap::from([(parent.to_string(), vec![ParamValue::Int(1)])]),
            })
        };
        let a = Parameter {
            condition: when("b"),
            ..layers()
        };
        let b = Parameter {
            name: "b".into(),
            condition: when("a"),
            ..layers()
        };
        let a = Parameter {
            name: "a".into(),
            ..a
        };
        let error = SearchSpace::new(vec![b, a, float("c", 0.0, 1.0)]).expect_err("a cycle");
        assert_eq!(
            error.to_string(),
            "parameter `a`: its `when` conditions form a cycle"
        );
    }

    /// The order before it was found in n log n: repeatedly the first parameter by
    /// name whose parents are all placed. Proposals draw in this order, so it must
    /// not change.
    fn reference_order(mut parameters: Vec<Parameter>) -> Vec<String> {
        parameters.sort_by(|a, b| a.name.cmp(&b.name));
        let mut ordered: Vec<String> = Vec::new();
        while !parameters.is_empty() {
            let i = parameters
                .iter()
                .position(|p| {
                    p.condition
                        .iter()
                        .flat_map(|c| c.when.keys())
                        .all(|parent| ordered.contains(parent))
                })
                .expect("acyclic");
            ordered.push(parameters.remove(i).name);
        }
        ordered
    }

    #[test]
    fn the_order_of_parameters_is_unchanged_on_random_conditional_spaces() {
        let mut rng = crate::Rng::new(42);
        for _ in 0..200 {
            let n = 1 + rng.below(12) as usize;
            // Parents only among earlier indices (acyclic); names shuffled apart
            // from indices so that name order and dependency order disagree.
            let names: Vec<String> = (0..n).map(|i| format!("p{}", (i * 7 + 3) % 13)).collect();
            let mut unique = names.clone();
            unique.sort();
            unique.dedup();
            if unique.len() < n {
                continue;
            }
            let parameters: Vec<Parameter> = (0..n)
                .map(|i| {
                    let mut when = BTreeMap::new();
                    for parent in &names[..i] {
                        if rng.below(3) == 0 {
                            when.insert(parent.clone(), vec![ParamValue::Int(1)]);
                        }
                    }
                    Parameter {
                        name: names[i].clone(),
                        condition: (!when.is_empty()).then_some(Condition { when }),
                        ..layers()
                    }
                })
                .collect();
            let space = SearchSpace::new(parameters.clone()).expect("acyclic");
            let got: Vec<String> = space.parameters().iter().map(|p| p.name.clone()).collect();
            assert_eq!(got, reference_order(parameters));
        }
    }

    #[test]
    fn choices_are_distinct_by_value_and_nan_is_refused() {
        let check = |choices: Vec<ParamValue>| Distribution::Categorical { choices }.check();
        use ParamValue::{Bool, Float, Int, Str};
        assert!(check(vec![Int(1), Float(1.0), Str("1".into()), Bool(true)]).is_ok());
        assert_eq!(
            check(vec![Float(0.0), Float(-0.0)]),
            Err("choice -0.0 is listed twice".to_string())
        );
        assert_eq!(
            check(vec![Str("a".into()), Str("b".into()), Str("a".into())]),
            Err("choice \"a\" is listed twice".to_string())
        );
        assert!(check(vec![Float(f64::NAN)]).is_err());
    }

    #[test]
    fn int_bounds_beyond_2_pow_53_are_refused() {
        let int = |low, high| Distribution::Int {
            low,
            high,
            log: false,
            step: None,
        };
        assert!(int(-(1 << 53), 1 << 53).check().is_ok());
        assert_eq!(
            int(i64::MIN, i64::MAX).check(),
            Err("low = -9223372036854775808 is outside ±2^53 = ±9007199254740992, where ints stop being exact as floats".to_string())
        );
        assert!(int(0, (1 << 53) + 1).check().is_err());
    }
}

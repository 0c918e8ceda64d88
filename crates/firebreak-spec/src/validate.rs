//! Parsing and validating a spec into a [`CampaignSpec`].

use std::collections::BTreeMap;

use firebreak_core::{
    Condition, CoreError, Direction, Distribution, Objectives, Parameter, SearchSpace,
};

use crate::SpecError;
use crate::locate::{key_path_at, line_column, position_of};
use crate::schema::{Number, OneOrMany, ParamKind, ParamSpec, Spec, TaskKind, TripwireKind};

/// A parsed and validated spec, with the derived search space and objectives and the
/// source text kept for locating errors found later (for example by the runner).
#[derive(Debug, Clone)]
pub struct CampaignSpec {
    /// The spec as written, defaults filled.
    pub spec: Spec,
    /// The search space derived from `[space]`.
    pub space: SearchSpace,
    /// The objectives derived from `[objective]`.
    pub objectives: Objectives,
    file: String,
    source: String,
}

/// Placeholders a command may use besides parameter names.
pub const BUILTIN_PLACEHOLDERS: &[&str] = &["trial_number", "seed", "trial_dir", "campaign"];

impl CampaignSpec {
    /// Parses and validates `source`; `file` is the name used in error messages.
    pub fn parse(source: &str, file: &str) -> Result<Self, SpecError> {
        let spec: Spec = toml::from_str(source).map_err(|e| toml_error(&e, source, file))?;
        let mut checked = CampaignSpec {
            space: SearchSpace::default(),
            objectives: Objectives::single("", Direction::Maximize),
            spec,
            file: file.to_string(),
            source: source.to_string(),
        };
        checked.check()?;
        Ok(checked)
    }

    /// The campaign's name.
    pub fn name(&self) -> &str {
        &self.spec.campaign.name
    }

    /// The file name given to [`CampaignSpec::parse`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The canonical JSON of the spec with every default filled in: what the
    /// ledger records and hashes, and what a changed spec is compared against.
    ///
    /// Whole-valued floats are written as integers, as RFC 8785 prints them, so the
    /// value compares equal to itself after a round trip through canonical text.
    pub fn canonical_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.spec).unwrap_or(serde_json::Value::Null);
        normalize_numbers(&mut value);
        value
    }

    /// Rebuilds a spec from its canonical JSON (as stored with a campaign).
    pub fn from_canonical(value: &serde_json::Value, name: &str) -> Result<Self, SpecError> {
        let spec: Spec = serde_json::from_value(value.clone()).map_err(|e| SpecError {
            file: format!("stored spec of {name}"),
            line: 1,
            column: 1,
            key: String::new(),
            message: format!("the stored spec cannot be read: {e}"),
            hint: "the database may come from a newer firebreak".into(),
        })?;
        let text = toml::to_string(&spec).map_err(|e| SpecError {
            file: format!("stored spec of {name}"),
            line: 1,
            column: 1,
            key: String::new(),
            message: format!("the stored spec cannot be written as TOML: {e}"),
            hint: "report this as a bug".into(),
        })?;
        Self::parse(&text, &format!("stored spec of {name}"))
    }

    /// An error located at the key `path` (e.g. `["search", "sampler_options", "x"]`).
    pub fn error_at(
        &self,
        path: &[&str],
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> SpecError {
        let (line, column) = position_of(&self.source, path);
        SpecError {
            file: self.file.clone(),
            line,
            column,
            key: path.join("."),
            message: message.into(),
            hint: hint.into(),
        }
    }

    fn check(&mut self) -> Result<(), SpecError> {
        self.check_campaign()?;
        self.objectives = self.check_objective()?;
        self.space = self.check_space()?;
        self.check_search()?;
        self.check_task()?;
        self.check_constraints()?;
        self.check_governance()
    }

    fn check_campaign(&self) -> Result<(), SpecError> {
        let name = &self.spec.campaign.name;
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(self.error_at(
                &["campaign", "name"],
                format!("campaign name {name:?} is not allowed"),
                "use 1 to 64 letters, digits, `-`, `_` or `.`, e.g. name = \"digits-mlp\"",
            ));
        }
        Ok(())
    }

    fn check_objective(&self) -> Result<Objectives, SpecError> {
        let o = &self.spec.objective;
        let both = "write either `metric` and `direction`, or `metrics` and `directions`";
        let objectives = match (&o.metric, o.direction, &o.metrics, &o.directions) {
            (Some(metric), Some(direction), None, None) => {
                Objectives::single(metric.clone(), direction)
            }
            (None, None, Some(metrics), Some(directions)) => {
                if metrics.is_empty() || metrics.len() != directions.len() {
                    return Err(self.error_at(
                        &["objective", "directions"],
                        format!(
                            "{} metrics but {} directions",
                            metrics.len(),
                            directions.len()
                        ),
                        "give one direction (\"maximize\" or \"minimize\") per metric",
                    ));
                }
                Objectives {
                    metrics: metrics.clone(),
                    directions: directions.clone(),
                }
            }
            (Some(_), None, None, None) => {
                return Err(self.error_at(
                    &["objective"],
                    "`metric` has no `direction`",
                    "add direction = \"maximize\" or direction = \"minimize\"",
                ));
            }
            _ => return Err(self.error_at(&["objective"], "the objective is ambiguous", both)),
        };
        for (i, metric) in objectives.metrics.iter().enumerate() {
            if metric.is_empty() || objectives.metrics[..i].contains(metric) {
                return Err(self.error_at(
                    &["objective"],
                    format!("metric name {metric:?} is empty or repeated"),
                    "name each objective metric once, as the trial reports it",
                ));
            }
        }
        Ok(objectives)
    }

    fn check_space(&self) -> Result<SearchSpace, SpecError> {
        if self.spec.space.is_empty() {
            return Err(self.error_at(
                &["space"],
                "the search space has no parameters",
                "add at least one, e.g. lr = { type = \"float\", low = 1e-4, high = 0.1, log = true }",
            ));
        }
        let mut parameters = Vec::new();
        for (name, p) in &self.spec.space {
            parameters.push(Parameter {
                name: name.clone(),
                distribution: self.distribution(name, p)?,
                condition: p.when.as_ref().map(|when| Condition {
                    when: when
                        .iter()
                        .map(|(k, v)| {
                            let values = match v {
                                OneOrMany::One(x) => vec![x.clone()],
                                OneOrMany::Many(xs) => xs.clone(),
                            };
                            (k.clone(), values)
                        })
                        .collect(),
                }),
            });
        }
        SearchSpace::new(parameters).map_err(|e| {
            let name = match &e {
                CoreError::InvalidParameter { name, .. } | CoreError::OutOfSpace { name, .. } => {
                    name.clone()
                }
                _ => String::new(),
            };
            self.error_at(
                &["space", &name, "when"],
                e.to_string(),
                "`when` must name other parameters and values they can take, without cycles",
            )
        })
    }

    fn distribution(&self, name: &str, p: &ParamSpec) -> Result<Distribution, SpecError> {
        let at = |key: &str| ["space", name, key].map(str::to_string);
        let err = |key: &str, message: String, hint: &str| {
            let path = at(key);
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            self.error_at(&path, message, hint)
        };
        let numeric_keys_absent = p.low.is_none() && p.high.is_none() && p.step.is_none() && !p.log;
        let distribution = match p.kind {
            ParamKind::Categorical => {
                if !numeric_keys_absent {
                    return Err(err(
                        "type",
                        format!("categorical parameter `{name}` has low/high/step/log"),
                        "a categorical parameter takes only `choices` (and `when`)",
                    ));
                }
                let Some(choices) = &p.choices else {
                    return Err(err(
                        "type",
                        format!("categorical parameter `{name}` has no `choices`"),
                        "add choices = [\"a\", \"b\"]",
                    ));
                };
                Distribution::Categorical {
                    choices: choices.clone(),
                }
            }
            ParamKind::Float | ParamKind::Int => {
                if p.choices.is_some() {
                    return Err(err(
                        "choices",
                        format!(
                            "`choices` is only for categorical parameters, `{name}` is not one"
                        ),
                        "remove `choices`, or set type = \"categorical\"",
                    ));
                }
                let (Some(low), Some(high)) = (p.low, p.high) else {
                    return Err(err(
                        "type",
                        format!("parameter `{name}` needs both `low` and `high`"),
                        "add low = … and high = …",
                    ));
                };
                if p.kind == ParamKind::Float {
                    Distribution::Float {
                        low: low.as_f64(),
                        high: high.as_f64(),
                        log: p.log,
                        step: p.step.map(Number::as_f64),
                    }
                } else {
                    let int = |key: &str, n: Number| match n {
                        Number::Int(i) => Ok(i),
                        Number::Float(f) => Err(err(
                            key,
                            format!("int parameter `{name}` has a non-integer `{key}` = {f}"),
                            "write an integer, or set type = \"float\"",
                        )),
                    };
                    Distribution::Int {
                        low: int("low", low)?,
                        high: int("high", high)?,
                        log: p.log,
                        step: p.step.map(|s| int("step", s)).transpose()?,
                    }
                }
            }
        };
        distribution.check().map_err(|message| {
            let key = if message.contains("step") {
                "step"
            } else if message.contains("log") {
                "log"
            } else if message.contains("choice") {
                "choices"
            } else {
                "low"
            };
            err(
                key,
                message,
                "fix the bounds so that low <= high (and low > 0 with log = true)",
            )
        })?;
        Ok(distribution)
    }

    fn check_search(&self) -> Result<(), SpecError> {
        let s = &self.spec.search;
        if s.n_trials == 0 {
            return Err(self.error_at(
                &["search", "n_trials"],
                "n_trials = 0 runs nothing",
                "set n_trials to the number of trials to finish, e.g. n_trials = 50",
            ));
        }
        if s.parallelism == 0 {
            return Err(self.error_at(
                &["search", "parallelism"],
                "parallelism = 0 runs nothing",
                "set parallelism to the number of trials to run at once, e.g. the number of cores",
            ));
        }
        Ok(())
    }

    fn check_task(&self) -> Result<(), SpecError> {
        let t = &self.spec.task;
        let forbid = |present: bool, key: &str, kind: &str| {
            if present {
                Err(self.error_at(
                    &["task", key],
                    format!("`{key}` does not apply to a task of kind \"{kind}\""),
                    format!("remove `{key}`, or change `kind`"),
                ))
            } else {
                Ok(())
            }
        };
        match t.kind {
            TaskKind::Command => {
                forbid(t.path.is_some(), "path", "command")?;
                forbid(t.dataset.is_some(), "dataset", "command")?;
                forbid(t.model.is_some(), "model", "command")?;
                forbid(t.max_epochs.is_some(), "max_epochs", "command")?;
                forbid(t.refit, "refit", "command")?;
                let Some(command) = t.command.as_ref().filter(|c| !c.is_empty()) else {
                    return Err(self.error_at(
                        &["task"],
                        "a command task needs a non-empty `command`",
                        "add command = [\"python3\", \"train.py\", \"--lr\", \"{lr}\"]",
                    ));
                };
                for arg in command {
                    for placeholder in placeholders(arg) {
                        if !self.spec.space.contains_key(placeholder)
                            && !BUILTIN_PLACEHOLDERS.contains(&placeholder)
                        {
                            return Err(self.error_at(
                                &["task", "command"],
                                format!("placeholder `{{{placeholder}}}` names no parameter"),
                                format!(
                                    "use a parameter of [space] or one of {}",
                                    BUILTIN_PLACEHOLDERS.join(", ")
                                ),
                            ));
                        }
                    }
                }
            }
            TaskKind::Table => {
                forbid(t.command.is_some(), "command", "table")?;
                forbid(t.dataset.is_some(), "dataset", "table")?;
                forbid(t.refit, "refit", "table")?;
                if t.path.is_none() {
                    return Err(self.error_at(
                        &["task"],
                        "a table task needs `path`",
                        "add path = \"tables/cifar10.csv\"",
                    ));
                }
            }
            TaskKind::Builtin => {
                forbid(t.command.is_some(), "command", "builtin")?;
                forbid(t.path.is_some(), "path", "builtin")?;
                if t.dataset.is_none() {
                    return Err(self.error_at(
                        &["task"],
                        "a builtin task needs `dataset`",
                        "add dataset = \"digits\"",
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_constraints(&self) -> Result<(), SpecError> {
        let c = &self.spec.constraints;
        if let Some(max) = c.max_trials
            && self.spec.search.n_trials > max
        {
            return Err(self.error_at(
                &["search", "n_trials"],
                format!(
                    "n_trials = {} exceeds [constraints] max_trials = {max}",
                    self.spec.search.n_trials
                ),
                "lower n_trials, or raise max_trials (a governed change)",
            ));
        }
        let positive = |value: Option<f64>, key: &str| match value {
            Some(v) if !(v > 0.0 && v.is_finite()) => Err(self.error_at(
                &["constraints", key],
                format!("{key} = {v} must be a positive number"),
                format!("set {key} above zero, or remove it for no limit"),
            )),
            _ => Ok(()),
        };
        positive(c.max_energy_kwh, "max_energy_kwh")?;
        positive(Some(c.watts_per_core), "watts_per_core")
    }

    fn check_governance(&self) -> Result<(), SpecError> {
        let g = &self.spec.governance;
        let mut names: BTreeMap<&str, ()> = BTreeMap::new();
        for approver in &g.approvers {
            if names.insert(&approver.name, ()).is_some() {
                return Err(self.error_at(
                    &["governance", "approvers"],
                    format!("approver {:?} is listed twice", approver.name),
                    "list each person once",
                ));
            }
            if approver.name.is_empty() || approver.name.contains(':') {
                return Err(self.error_at(
                    &["governance", "approvers"],
                    format!("approver name {:?} is empty or holds a `:`", approver.name),
                    "names with `:` are reserved for local:, agent: and worker: principals",
                ));
            }
            if !is_ed25519_public_key(&approver.key) {
                return Err(self.error_at(
                    &["governance", "approvers"],
                    format!("approver {:?} has key {:?}, not an Ed25519 public key", approver.name, approver.key),
                    "write `ed25519:` and the base64 of the 32-byte key, as printed by `firebreak keys new`",
                ));
            }
            if !["approver", "researcher", "auditor", "admin"].contains(&approver.role.as_str()) {
                return Err(self.error_at(
                    &["governance", "approvers"],
                    format!(
                        "approver {:?} has unknown role {:?}",
                        approver.name, approver.role
                    ),
                    "use one of approver, researcher, auditor, admin",
                ));
            }
        }
        if let Some(quorum) = g.quorum {
            let n = g.approvers.len();
            if quorum == 0 || quorum as usize > n {
                return Err(self.error_at(
                    &["governance", "quorum"],
                    format!("quorum = {quorum} with {n} approvers listed"),
                    "set quorum between 1 and the number of approvers",
                ));
            }
        }
        for tripwire in &g.tripwires {
            let (needs, ok) = match tripwire.kind {
                TripwireKind::Threshold => (
                    "`metric` and `above` or `below`",
                    tripwire.metric.is_some()
                        && (tripwire.above.is_some() || tripwire.below.is_some()),
                ),
                TripwireKind::Rate => (
                    "`metric` and `max_delta`",
                    tripwire.metric.is_some() && tripwire.max_delta.is_some(),
                ),
                TripwireKind::Reeval => (
                    "`metric` and `tolerance`",
                    tripwire.metric.is_some() && tripwire.tolerance.is_some(),
                ),
                TripwireKind::ComputeRate => ("`max_cores`", tripwire.max_cores.is_some()),
            };
            if !ok {
                return Err(self.error_at(
                    &["governance", "tripwires"],
                    format!("a {:?} tripwire is incomplete", tripwire.kind),
                    format!("this kind needs {needs}"),
                ));
            }
        }
        Ok(())
    }
}

/// Integral floats below 2^53 become integers, as RFC 8785 writes them.
fn normalize_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64())
                && f.fract() == 0.0
                && f.abs() < 9_007_199_254_740_992.0
            {
                *value = serde_json::Value::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(normalize_numbers),
        serde_json::Value::Object(map) => map.values_mut().for_each(normalize_numbers),
        _ => {}
    }
}

/// The `{name}` placeholders in one command argument.
pub(crate) fn placeholders(arg: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        found.push(&rest[open + 1..open + close]);
        rest = &rest[open + close + 1..];
    }
    found
}

fn is_ed25519_public_key(key: &str) -> bool {
    let Some(b64) = key.strip_prefix("ed25519:") else {
        return false;
    };
    // 32 bytes are 43 base64 characters and one `=` of padding.
    b64.len() == 44
        && b64.ends_with('=')
        && b64[..43]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}

fn toml_error(error: &toml::de::Error, source: &str, file: &str) -> SpecError {
    let span = error.span().unwrap_or(0..0);
    let (line, column) = line_column(source, span.start);
    let mut key = key_path_at(source, span.start);
    let raw = error.message().trim().to_string();
    let between = |s: &str| -> Option<String> {
        let start = s.find('`')? + 1;
        let end = start + s[start..].find('`')?;
        Some(s[start..end].to_string())
    };
    let (message, hint) = if raw.starts_with("unknown field") {
        let field = between(&raw).unwrap_or_default();
        if !key.ends_with(&field) {
            key = join_key(&key, &field);
        }
        let expected = raw
            .split_once("expected ")
            .map(|(_, e)| e.trim_start_matches("one of ").to_string())
            .unwrap_or_default();
        (
            format!("unknown key `{field}`"),
            format!("check the spelling; the keys allowed here are {expected}"),
        )
    } else if raw.starts_with("missing field") {
        let field = between(&raw).unwrap_or_default();
        key = join_key(&key, &field);
        (
            format!("missing required key `{field}`"),
            format!("add `{field} = …` here (see `firebreak init` for a commented example)"),
        )
    } else if raw.starts_with("unknown variant") {
        let expected = raw
            .split_once("expected ")
            .map(|(_, e)| e.trim_start_matches("one of ").to_string())
            .unwrap_or_default();
        (raw.clone(), format!("use one of {expected}"))
    } else if let Some((what, expected)) = raw
        .strip_prefix("invalid type: ")
        .and_then(|r| r.split_once(", expected "))
    {
        (
            format!("wrong type: found {what}"),
            format!("write {}", plain_type(expected)),
        )
    } else if raw.contains("did not match any variant") {
        (
            "wrong type for this value".to_string(),
            "parameter values are strings, integers, floats or booleans; numbers are integers or floats".to_string(),
        )
    } else if raw.contains("unknown unit") || raw.contains("is not a duration") {
        (
            raw.clone(),
            "write integer seconds or a number with s, m, h or d, e.g. \"10m\"".to_string(),
        )
    } else if key.is_empty() || raw.contains("expected") || raw.contains("invalid") {
        (
            raw.clone(),
            "fix the TOML syntax at this position".to_string(),
        )
    } else {
        (
            raw.clone(),
            "check this value against `firebreak init`'s example".to_string(),
        )
    };
    SpecError {
        file: file.to_string(),
        line,
        column,
        key,
        message,
        hint,
    }
}

/// Serde's type names in words a spec author knows.
fn plain_type(expected: &str) -> String {
    match expected {
        "u64" | "u32" => "a whole number (no quotes)".to_string(),
        "i64" => "an integer (no quotes)".to_string(),
        "f64" => "a number (no quotes)".to_string(),
        "a boolean" => "true or false".to_string(),
        "a sequence" => "an array, e.g. [\"a\", \"b\"]".to_string(),
        other => other.to_string(),
    }
}

fn join_key(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

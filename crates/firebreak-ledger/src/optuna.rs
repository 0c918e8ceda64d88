//! Optuna studies as the ledger records them: the operations of Optuna's storage
//! API ([`OptunaOp`], the `data.op` of an `optuna` entry) and the state they build
//! ([`Studies`]), with the rules each operation must pass.
//!
//! The ledger is the only record of an Optuna study: `firebreak serve-optuna`
//! builds its [`Studies`] by applying every `optuna` entry in order and checks
//! each new operation with the same [`Studies::check`] before appending it, and
//! the audit's replay applies the same entries with the same rules. So a row
//! appended behind the server's back (a trial past `max_trials`, a parameter
//! outside the governed space, a change to a finished trial, a skipped id) is a
//! violation, not a state.
//!
//! A study is a campaign whose spec has `"kind": "optuna"` (`study`: the
//! Optuna name; optional `constraints` and `space`, see `docs/optuna.md`); it
//! exists once a `study_opened` entry gives it its id and directions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use firebreak_core::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An `f64` as the ledger writes it: a JSON number when finite, else the string
/// `"inf"`, `"-inf"` or `"nan"` (`-0` as `"-0"`), so every value Optuna stores
/// survives canonical JSON exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct F64(pub f64);

impl Serialize for F64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_nan() {
            s.serialize_str("nan")
        } else if v == f64::INFINITY {
            s.serialize_str("inf")
        } else if v == f64::NEG_INFINITY {
            s.serialize_str("-inf")
        } else if v == 0.0 && v.is_sign_negative() {
            s.serialize_str("-0")
        } else {
            s.serialize_f64(v)
        }
    }
}

impl<'de> Deserialize<'de> for F64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(v) => Ok(F64(v)),
            Raw::Text(t) => match t.as_str() {
                "nan" => Ok(F64(f64::NAN)),
                "inf" => Ok(F64(f64::INFINITY)),
                "-inf" => Ok(F64(f64::NEG_INFINITY)),
                "-0" => Ok(F64(-0.0)),
                other => Err(serde::de::Error::custom(format!(
                    "{other:?} is not a number (only \"inf\", \"-inf\", \"nan\" and \"-0\" are written as text)"
                ))),
            },
        }
    }
}

/// An Optuna trial state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptunaState {
    /// Being evaluated.
    Running,
    /// Finished with values.
    Complete,
    /// Stopped by a pruner.
    Pruned,
    /// Failed.
    Fail,
    /// Queued (`enqueue_trial`), not yet started.
    Waiting,
}

impl OptunaState {
    /// Complete, pruned or failed: no later change is allowed.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            OptunaState::Complete | OptunaState::Pruned | OptunaState::Fail
        )
    }
}

/// One parameter of a trial: Optuna's internal value and its distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptunaParam {
    /// The internal representation (a float; a categorical's index).
    pub value: F64,
    /// The distribution as Optuna's `distribution_to_json` wrote it.
    pub distribution: String,
}

/// A whole trial, as `trial_created` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptunaTrial {
    /// Its id, unique in the database: one more than the last trial's.
    pub trial_id: u64,
    /// Its number in the study: the count of the study's earlier trials.
    pub number: u64,
    /// Its state.
    pub state: OptunaState,
    /// Objective values (empty for none).
    #[serde(default)]
    pub values: Vec<F64>,
    /// ISO 8601 start time, `""` for none.
    #[serde(default)]
    pub datetime_start: String,
    /// ISO 8601 completion time, `""` for none.
    #[serde(default)]
    pub datetime_complete: String,
    /// Parameters by name.
    #[serde(default)]
    pub params: BTreeMap<String, OptunaParam>,
    /// User attributes: JSON texts by key.
    #[serde(default)]
    pub user_attrs: BTreeMap<String, String>,
    /// System attributes: JSON texts by key.
    #[serde(default)]
    pub system_attrs: BTreeMap<String, String>,
    /// Intermediate values by step (written as `[step, value]` pairs: JSON
    /// keys are strings).
    #[serde(default, with = "steps")]
    pub intermediate: BTreeMap<i64, F64>,
}

mod steps {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::F64;

    pub(super) fn serialize<S: Serializer>(
        map: &BTreeMap<i64, F64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<i64, F64>, D::Error> {
        Ok(Vec::<(i64, F64)>::deserialize(d)?.into_iter().collect())
    }
}

/// One operation of Optuna's storage API, the `op` of an `optuna` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OptunaOp {
    /// The campaign's study starts: its id (one more than the last study's) and
    /// its directions (`minimize`/`maximize`).
    StudyOpened {
        /// Its id.
        study_id: u64,
        /// One per objective.
        directions: Vec<String>,
        /// When, in milliseconds since the epoch (budgets in time count from it).
        at: Timestamp,
    },
    /// A study attribute was set.
    StudyAttr {
        /// True for a system attribute.
        system: bool,
        /// Its key.
        key: String,
        /// Its value, a JSON text.
        value: String,
    },
    /// The study was deleted (its entries stay; its name may be used again).
    StudyDeleted,
    /// A trial was created: running with no parameters, or from a template.
    TrialCreated {
        /// The trial.
        trial: OptunaTrial,
        /// When, in milliseconds since the epoch (budgets count from it).
        at: Timestamp,
    },
    /// A parameter of an unfinished trial was set.
    TrialParam {
        /// The trial.
        trial_id: u64,
        /// The parameter.
        name: String,
        /// Its value and distribution.
        param: OptunaParam,
    },
    /// An unfinished trial changed state (and values).
    TrialState {
        /// The trial.
        trial_id: u64,
        /// The new state.
        state: OptunaState,
        /// New values, when given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        values: Option<Vec<F64>>,
        /// ISO 8601 time of the change (the start or the completion time).
        datetime: String,
    },
    /// An intermediate value of an unfinished trial was set.
    TrialIntermediate {
        /// The trial.
        trial_id: u64,
        /// The step.
        step: i64,
        /// The value.
        value: F64,
    },
    /// A trial attribute of an unfinished trial was set.
    TrialAttr {
        /// The trial.
        trial_id: u64,
        /// True for a system attribute.
        system: bool,
        /// Its key.
        key: String,
        /// Its value, a JSON text.
        value: String,
    },
}

/// Why an operation cannot be applied; each maps onto the gRPC status the
/// Optuna client turns into the exception Optuna's own storages raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptunaError {
    /// No such study or trial (`KeyError`).
    NotFound(String),
    /// A study of that name exists (`DuplicatedStudyError`).
    Exists(String),
    /// The trial is finished (`UpdateFinishedTrialError`).
    Finished(String),
    /// The operation is malformed (`ValueError`).
    Invalid(String),
    /// A constraint of the study refuses it: the key that refuses, and why.
    Refused {
        /// The spec key, e.g. `constraints.max_trials` or `space.lr`.
        policy: String,
        /// Why, in words.
        reason: String,
    },
}

impl std::fmt::Display for OptunaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptunaError::NotFound(m)
            | OptunaError::Exists(m)
            | OptunaError::Finished(m)
            | OptunaError::Invalid(m) => f.write_str(m),
            OptunaError::Refused { policy, reason } => {
                write!(f, "refused by firebreak policy {policy}: {reason}")
            }
        }
    }
}

impl std::error::Error for OptunaError {}

/// A study's constraints, read from its campaign spec.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraints {
    /// The most trials the study may create.
    pub max_trials: Option<u64>,
    /// The longest the study may create trials for, from its opening, in ms.
    pub max_wall_ms: Option<i64>,
    /// Governed parameters: numeric bounds or allowed choices.
    pub space: BTreeMap<String, Bound>,
}

/// The values a governed parameter may take.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// A closed numeric interval.
    Range {
        /// Lowest allowed.
        low: f64,
        /// Highest allowed.
        high: f64,
    },
    /// One of these values (compared as JSON).
    Choices(Vec<serde_json::Value>),
}

impl Constraints {
    /// The constraints of an `optuna` campaign spec (its `constraints` and
    /// `space`); a malformed entry is an error naming its key.
    pub fn of_spec(spec: &serde_json::Value) -> Result<Constraints, String> {
        let mut out = Constraints::default();
        let limits = &spec["constraints"];
        if let Some(n) = limits.get("max_trials") {
            out.max_trials = Some(
                n.as_u64()
                    .ok_or("constraints.max_trials must be a whole number")?,
            );
        }
        if let Some(s) = limits.get("max_wall_seconds") {
            let s = s
                .as_f64()
                .filter(|s| *s >= 0.0)
                .ok_or("constraints.max_wall_seconds must be a number of seconds")?;
            out.max_wall_ms = Some((s * 1000.0) as i64);
        }
        if let Some(space) = spec.get("space").and_then(|s| s.as_object()) {
            for (name, bound) in space {
                let parsed = if let Some(choices) = bound.get("choices") {
                    Bound::Choices(
                        choices
                            .as_array()
                            .ok_or(format!("space.{name}.choices must be a list"))?
                            .clone(),
                    )
                } else {
                    let num = |k: &str| {
                        bound[k]
                            .as_f64()
                            .ok_or(format!("space.{name}.{k} must be a number"))
                    };
                    Bound::Range {
                        low: num("low")?,
                        high: num("high")?,
                    }
                };
                out.space.insert(name.clone(), parsed);
            }
        }
        Ok(out)
    }
}

/// A study as the entries so far describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct Study {
    /// Its campaign.
    pub campaign: String,
    /// Its Optuna name.
    pub name: String,
    /// Its id.
    pub id: u64,
    /// `minimize`/`maximize`, one per objective.
    pub directions: Vec<String>,
    /// User attributes (JSON texts).
    pub user_attrs: BTreeMap<String, String>,
    /// System attributes (JSON texts).
    pub system_attrs: BTreeMap<String, String>,
    /// Trial ids by number.
    pub trials: Vec<u64>,
    /// The distribution each parameter was first given (later ones must agree).
    pub distributions: HashMap<String, String>,
    /// When it opened (ms).
    pub opened_at: Timestamp,
    /// Its constraints, from the campaign's spec.
    pub constraints: Constraints,
}

/// Every study and trial the `optuna` entries describe.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Studies {
    /// Open studies by id.
    pub studies: BTreeMap<u64, Study>,
    /// Study ids by Optuna name.
    pub by_name: HashMap<String, u64>,
    /// Study ids by campaign.
    pub by_campaign: HashMap<String, u64>,
    /// Trials by id, with their study's id.
    pub trials: BTreeMap<u64, (u64, OptunaTrial)>,
    /// Campaigns whose study was deleted: none opens again.
    pub deleted: BTreeSet<String>,
    /// The next study id.
    pub next_study: u64,
    /// The next trial id.
    pub next_trial: u64,
}

/// An operation's own time must be within the minute before its entry's: the
/// server stamps it, then appends.
fn recent(made: Timestamp, at: Timestamp) -> Result<(), OptunaError> {
    if made > at || at - made > 60_000 {
        return Err(OptunaError::Invalid(format!(
            "the operation's time {made} is not within a minute before its entry's ({at})"
        )));
    }
    Ok(())
}

/// Reads JSON as Python's `json.dumps` writes it: standard JSON, where the bare
/// words `NaN`, `Infinity` and `-Infinity` may stand for numbers (read here as
/// the strings `"NaN"`, `"Infinity"` and `"-Infinity"`, which is enough to
/// compare two texts).
pub fn python_json(text: &str) -> Result<serde_json::Value, serde_json::Error> {
    let first = match serde_json::from_str(text) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    let mut standard = String::with_capacity(text.len() + 8);
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            in_string = c != '"' || escaped;
            escaped = c == '\\' && !escaped;
        } else if c == '"' {
            in_string = true;
        } else if let Some(word) = ["NaN", "Infinity", "-Infinity"]
            .into_iter()
            .find(|w| rest.starts_with(w))
        {
            standard.push_str(&format!("\"{word}\""));
            rest = &rest[word.len()..];
            continue;
        }
        standard.push(c);
        rest = &rest[c.len_utf8()..];
    }
    serde_json::from_str(&standard).map_err(|_| first)
}

fn json_text(what: &str, text: &str) -> Result<(), OptunaError> {
    python_json(text)
        .map(|_| ())
        .map_err(|e| OptunaError::Invalid(format!("{what} is not JSON: {e}")))
}

/// Optuna's `check_distribution_compatibility`: the same class, the same `log`
/// for numeric ones, the same choices for categorical ones.
fn compatible(old: &str, new: &str) -> Result<(), OptunaError> {
    let parse = |t: &str| {
        python_json(t)
            .map_err(|e| OptunaError::Invalid(format!("distribution {t:?} is not JSON: {e}")))
    };
    let (old, new) = (parse(old)?, parse(new)?);
    if old["name"] != new["name"] {
        return Err(OptunaError::Invalid(
            "Cannot set different distribution kind to the same parameter name.".into(),
        ));
    }
    let (a, b) = (&old["attributes"], &new["attributes"]);
    if a.get("log").is_some() && a["log"] != b["log"] {
        return Err(OptunaError::Invalid(
            "Cannot set different log configuration to the same parameter name.".into(),
        ));
    }
    if old["name"] == "CategoricalDistribution" && a["choices"] != b["choices"] {
        return Err(OptunaError::Invalid(
            "CategoricalDistribution does not support dynamic value space.".into(),
        ));
    }
    Ok(())
}

/// Checks a parameter against the study's governed space.
fn admit_param(
    constraints: &Constraints,
    name: &str,
    param: &OptunaParam,
) -> Result<(), OptunaError> {
    let Some(bound) = constraints.space.get(name) else {
        return Ok(());
    };
    let refuse = |reason: String| OptunaError::Refused {
        policy: format!("space.{name}"),
        reason,
    };
    let value = param.value.0;
    match bound {
        Bound::Range { low, high } => {
            if !(value >= *low && value <= *high) {
                return Err(refuse(format!(
                    "{name} = {value} is outside the approved range [{low}, {high}]"
                )));
            }
        }
        Bound::Choices(allowed) => {
            let dist = python_json(&param.distribution).unwrap_or_default();
            let choice = (value >= 0.0 && value.fract() == 0.0)
                .then(|| dist["attributes"]["choices"].get(value as usize))
                .flatten();
            match choice {
                Some(c) if allowed.contains(c) => {}
                Some(c) => {
                    return Err(refuse(format!(
                        "{name} = {c} is not one of the approved choices"
                    )));
                }
                None => {
                    return Err(refuse(format!(
                        "{name} is governed by a list of choices, and this is not a categorical choice"
                    )));
                }
            }
        }
    }
    Ok(())
}

impl Studies {
    /// The study of `id`, if open.
    pub fn study(&self, id: u64) -> Result<&Study, OptunaError> {
        self.studies
            .get(&id)
            .ok_or_else(|| OptunaError::NotFound(format!("No study with study_id {id} exists.")))
    }

    /// The trial of `id`, with its study's id.
    pub fn trial(&self, id: u64) -> Result<&(u64, OptunaTrial), OptunaError> {
        self.trials
            .get(&id)
            .ok_or_else(|| OptunaError::NotFound(format!("No trial with trial_id {id} exists.")))
    }

    fn unfinished(&self, id: u64) -> Result<&(u64, OptunaTrial), OptunaError> {
        let found = self.trial(id)?;
        if found.1.state.is_finished() {
            return Err(OptunaError::Finished(format!(
                "Trial#{} has already finished and can not be updated.",
                found.1.number
            )));
        }
        Ok(found)
    }

    /// The study of `campaign`, if its study is open.
    pub fn of_campaign(&self, campaign: &str) -> Option<&Study> {
        self.by_campaign
            .get(campaign)
            .and_then(|id| self.studies.get(id))
    }

    /// Whether `op`, recorded for `campaign` (whose current spec is `spec`) at
    /// `at`, obeys the rules; `Ok` means [`Studies::apply`] will take it.
    pub fn check(
        &self,
        campaign: &str,
        spec: &serde_json::Value,
        at: Timestamp,
        op: &OptunaOp,
    ) -> Result<(), OptunaError> {
        if spec["kind"] != "optuna" {
            return Err(OptunaError::Invalid(format!(
                "campaign {campaign:?} is not an Optuna study"
            )));
        }
        let name = spec["study"].as_str().unwrap_or_default();
        let opened = self.by_campaign.get(campaign).copied();
        let study = match (op, opened) {
            (
                OptunaOp::StudyOpened {
                    study_id,
                    directions,
                    at: made,
                },
                None,
            ) => {
                recent(*made, at)?;
                if self.deleted.contains(campaign) {
                    return Err(OptunaError::Invalid(format!(
                        "campaign {campaign:?} held a study that was deleted"
                    )));
                }
                if self.by_name.contains_key(name) {
                    return Err(OptunaError::Exists(format!(
                        "Another study with name '{name}' already exists."
                    )));
                }
                if *study_id != self.next_study {
                    return Err(OptunaError::Invalid(format!(
                        "study id {study_id} is not the next one ({})",
                        self.next_study
                    )));
                }
                if directions.is_empty()
                    || directions
                        .iter()
                        .any(|d| d != "minimize" && d != "maximize")
                {
                    return Err(OptunaError::Invalid(format!(
                        "directions {directions:?} must be one or more of minimize/maximize"
                    )));
                }
                Constraints::of_spec(spec).map_err(OptunaError::Invalid)?;
                return Ok(());
            }
            (OptunaOp::StudyOpened { .. }, Some(_)) => {
                return Err(OptunaError::Exists(format!(
                    "Another study with name '{name}' already exists."
                )));
            }
            (_, None) => {
                return Err(OptunaError::NotFound(format!(
                    "campaign {campaign:?} has no open study"
                )));
            }
            (_, Some(id)) => self.study(id)?,
        };
        let of_this_study = |trial_id: u64| -> Result<&OptunaTrial, OptunaError> {
            let (owner, trial) = self.unfinished(trial_id)?;
            if *owner != study.id {
                return Err(OptunaError::Invalid(format!(
                    "trial {trial_id} belongs to another study"
                )));
            }
            Ok(trial)
        };
        match op {
            OptunaOp::StudyOpened { .. } => unreachable!("handled above"),
            OptunaOp::StudyAttr { value, .. } => json_text("the attribute's value", value),
            OptunaOp::StudyDeleted => Ok(()),
            OptunaOp::TrialCreated { trial, at: made } => {
                if trial.trial_id != self.next_trial {
                    return Err(OptunaError::Invalid(format!(
                        "trial id {} is not the next one ({})",
                        trial.trial_id, self.next_trial
                    )));
                }
                if trial.number != study.trials.len() as u64 {
                    return Err(OptunaError::Invalid(format!(
                        "trial number {} is not the study's next ({})",
                        trial.number,
                        study.trials.len()
                    )));
                }
                recent(*made, at)?;
                let c = &study.constraints;
                if let Some(max) = c.max_trials
                    && study.trials.len() as u64 >= max
                {
                    return Err(OptunaError::Refused {
                        policy: "constraints.max_trials".into(),
                        reason: format!(
                            "study {:?} has {} trials, its budget is {max}",
                            study.name,
                            study.trials.len()
                        ),
                    });
                }
                if let Some(max) = c.max_wall_ms
                    && *made - study.opened_at > max
                {
                    return Err(OptunaError::Refused {
                        policy: "constraints.max_wall_seconds".into(),
                        reason: format!(
                            "study {:?} opened {} s ago, its budget is {} s",
                            study.name,
                            (*made - study.opened_at) / 1000,
                            max / 1000
                        ),
                    });
                }
                for (name, param) in &trial.params {
                    if let Some(old) = study.distributions.get(name) {
                        compatible(old, &param.distribution)?;
                    }
                    admit_param(c, name, param)?;
                }
                for text in trial.user_attrs.values().chain(trial.system_attrs.values()) {
                    json_text("an attribute's value", text)?;
                }
                Ok(())
            }
            OptunaOp::TrialParam {
                trial_id,
                name,
                param,
            } => {
                of_this_study(*trial_id)?;
                json_text("the distribution", &param.distribution)?;
                if let Some(old) = study.distributions.get(name) {
                    compatible(old, &param.distribution)?;
                }
                admit_param(&study.constraints, name, param)
            }
            OptunaOp::TrialState { trial_id, .. }
            | OptunaOp::TrialIntermediate { trial_id, .. } => of_this_study(*trial_id).map(|_| ()),
            OptunaOp::TrialAttr {
                trial_id, value, ..
            } => {
                of_this_study(*trial_id)?;
                json_text("the attribute's value", value)
            }
        }
    }

    /// Applies `op` (which [`Studies::check`] passed) for `campaign`.
    pub fn apply(&mut self, campaign: &str, spec: &serde_json::Value, op: OptunaOp) {
        if let OptunaOp::StudyOpened {
            study_id,
            directions,
            at,
        } = op
        {
            let name = spec["study"].as_str().unwrap_or_default().to_string();
            self.by_name.insert(name.clone(), study_id);
            self.by_campaign.insert(campaign.to_string(), study_id);
            self.next_study = study_id + 1;
            self.studies.insert(
                study_id,
                Study {
                    campaign: campaign.to_string(),
                    name,
                    id: study_id,
                    directions,
                    user_attrs: BTreeMap::new(),
                    system_attrs: BTreeMap::new(),
                    trials: Vec::new(),
                    distributions: HashMap::new(),
                    opened_at: at,
                    constraints: Constraints::of_spec(spec).unwrap_or_default(),
                },
            );
            return;
        }
        let Some(&study_id) = self.by_campaign.get(campaign) else {
            return;
        };
        match op {
            OptunaOp::StudyOpened { .. } => {}
            OptunaOp::StudyAttr { system, key, value } => {
                if let Some(s) = self.studies.get_mut(&study_id) {
                    let attrs = if system {
                        &mut s.system_attrs
                    } else {
                        &mut s.user_attrs
                    };
                    attrs.insert(key, value);
                }
            }
            OptunaOp::StudyDeleted => {
                if let Some(s) = self.studies.remove(&study_id) {
                    self.by_name.remove(&s.name);
                    self.by_campaign.remove(&s.campaign);
                    self.deleted.insert(s.campaign);
                    for id in s.trials {
                        self.trials.remove(&id);
                    }
                }
            }
            OptunaOp::TrialCreated { trial, .. } => {
                if let Some(s) = self.studies.get_mut(&study_id) {
                    s.trials.push(trial.trial_id);
                    for (name, p) in &trial.params {
                        s.distributions
                            .entry(name.clone())
                            .or_insert_with(|| p.distribution.clone());
                    }
                }
                self.next_trial = trial.trial_id + 1;
                self.trials.insert(trial.trial_id, (study_id, trial));
            }
            OptunaOp::TrialParam {
                trial_id,
                name,
                param,
            } => {
                if let Some(s) = self.studies.get_mut(&study_id) {
                    s.distributions
                        .entry(name.clone())
                        .or_insert_with(|| param.distribution.clone());
                }
                if let Some((_, t)) = self.trials.get_mut(&trial_id) {
                    t.params.insert(name, param);
                }
            }
            OptunaOp::TrialState {
                trial_id,
                state,
                values,
                datetime,
            } => {
                if let Some((_, t)) = self.trials.get_mut(&trial_id) {
                    t.state = state;
                    if let Some(values) = values {
                        t.values = values;
                    }
                    if state == OptunaState::Running {
                        t.datetime_start = datetime;
                    } else if state.is_finished() {
                        t.datetime_complete = datetime;
                    }
                }
            }
            OptunaOp::TrialIntermediate {
                trial_id,
                step,
                value,
            } => {
                if let Some((_, t)) = self.trials.get_mut(&trial_id) {
                    t.intermediate.insert(step, value);
                }
            }
            OptunaOp::TrialAttr {
                trial_id,
                system,
                key,
                value,
            } => {
                if let Some((_, t)) = self.trials.get_mut(&trial_id) {
                    let attrs = if system {
                        &mut t.system_attrs
                    } else {
                        &mut t.user_attrs
                    };
                    attrs.insert(key, value);
                }
            }
        }
    }
}

/// The studies `rows` describe, for display: every `optuna` entry applied in
/// order, without the rules (the audit is what checks them); an entry that
/// cannot be read is skipped.
pub fn studies_from(rows: &[crate::Entry]) -> Studies {
    #[derive(Deserialize)]
    struct Row {
        #[serde(default)]
        data: serde_json::Value,
    }
    let mut studies = Studies::default();
    let mut specs: HashMap<&str, serde_json::Value> = HashMap::new();
    for row in rows {
        if row.kind != "campaign_created" && row.kind != "optuna" {
            continue;
        }
        let Ok(op) = serde_json::from_str::<Row>(&row.payload) else {
            continue;
        };
        if row.kind == "campaign_created" {
            if op.data["spec"]["kind"] == "optuna" {
                specs.insert(&row.campaign, op.data["spec"].clone());
            }
            continue;
        }
        let (Some(spec), Ok(op)) = (
            specs.get(row.campaign.as_str()),
            serde_json::from_value::<OptunaOp>(op.data["op"].clone()),
        ) else {
            continue;
        };
        studies.apply(&row.campaign, spec, op);
    }
    studies
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> serde_json::Value {
        let mut s = serde_json::json!({"kind": "optuna", "study": "s"});
        if let (Some(s), Some(e)) = (s.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        s
    }

    fn step(studies: &mut Studies, spec: &serde_json::Value, op: OptunaOp) {
        studies.check("c", spec, 1000, &op).expect("allowed");
        studies.apply("c", spec, op);
    }

    fn new_trial(id: u64, number: u64, params: &[(&str, f64)]) -> OptunaOp {
        OptunaOp::TrialCreated {
            trial: OptunaTrial {
                trial_id: id,
                number,
                state: OptunaState::Running,
                values: vec![],
                datetime_start: String::new(),
                datetime_complete: String::new(),
                params: params
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.to_string(),
                            OptunaParam {
                                value: F64(*v),
                                distribution: r#"{"name": "FloatDistribution", "attributes": {"low": -10, "high": 10, "log": false, "step": null}}"#.into(),
                            },
                        )
                    })
                    .collect(),
                user_attrs: BTreeMap::new(),
                system_attrs: BTreeMap::new(),
                intermediate: BTreeMap::new(),
            },
            at: 1000,
        }
    }

    fn opened(spec: &serde_json::Value) -> Studies {
        let mut studies = Studies::default();
        step(
            &mut studies,
            spec,
            OptunaOp::StudyOpened {
                study_id: 0,
                directions: vec!["minimize".into()],
                at: 1000,
            },
        );
        studies
    }

    #[test]
    fn non_finite_values_survive_the_ledger_text() {
        for v in [f64::INFINITY, f64::NEG_INFINITY, -0.0, 1e-310, f64::MAX] {
            let text = serde_json::to_string(&F64(v)).expect("written");
            let back: F64 = serde_json::from_str(&text).expect("read");
            assert_eq!(back.0.to_bits(), v.to_bits(), "{text}");
        }
        let nan: F64 = serde_json::from_str("\"nan\"").expect("nan");
        assert!(nan.0.is_nan());
        assert!(serde_json::from_str::<F64>("\"1.5\"").is_err());
    }

    #[test]
    fn attribute_values_are_json_as_python_writes_it() {
        for ok in [
            "NaN",
            "-Infinity",
            "[1, Infinity, \"NaN\"]",
            "{\"a\": \"x\\\"NaN\"}",
        ] {
            assert_eq!(json_text("v", ok), Ok(()), "{ok}");
        }
        for bad in ["nan", "[1,", "\"open", "Infinit"] {
            assert!(json_text("v", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_budget_and_the_governed_space_refuse_with_their_key() {
        let spec = spec(serde_json::json!({
            "constraints": {"max_trials": 2},
            "space": {"x": {"low": -1, "high": 1}}
        }));
        let mut studies = opened(&spec);
        step(&mut studies, &spec, new_trial(0, 0, &[("x", 0.5)]));
        let outside = studies.check("c", &spec, 1000, &new_trial(1, 1, &[("x", 5.0)]));
        assert!(
            matches!(&outside, Err(OptunaError::Refused { policy, .. }) if policy == "space.x"),
            "{outside:?}"
        );
        step(&mut studies, &spec, new_trial(1, 1, &[]));
        let past = studies.check("c", &spec, 1000, &new_trial(2, 2, &[]));
        assert!(
            matches!(&past, Err(OptunaError::Refused { policy, .. }) if policy == "constraints.max_trials"),
            "{past:?}"
        );
    }

    #[test]
    fn a_finished_trial_and_a_skipped_id_are_refused() {
        let spec = spec(serde_json::json!({}));
        let mut studies = opened(&spec);
        assert!(matches!(
            studies.check("c", &spec, 1000, &new_trial(5, 0, &[])),
            Err(OptunaError::Invalid(_))
        ));
        step(&mut studies, &spec, new_trial(0, 0, &[]));
        step(
            &mut studies,
            &spec,
            OptunaOp::TrialState {
                trial_id: 0,
                state: OptunaState::Complete,
                values: Some(vec![F64(1.0)]),
                datetime: String::new(),
            },
        );
        let late = OptunaOp::TrialIntermediate {
            trial_id: 0,
            step: 1,
            value: F64(0.0),
        };
        assert!(matches!(
            studies.check("c", &spec, 1000, &late),
            Err(OptunaError::Finished(_))
        ));
    }
}

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
    /// The space of generation 2 on, from `[generations.next_space]`.
    pub next_space: Option<SearchSpace>,
    file: String,
    source: String,
}

/// Placeholders a command may use besides parameter names.
pub const BUILTIN_PLACEHOLDERS: &[&str] = &["trial_number", "seed", "trial_dir", "campaign"];

/// The longest campaign name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// The most trials evaluated at once (`[search] parallelism`): each is a worker.
pub const MAX_PARALLELISM: u32 = 1024;
/// The most trials a campaign may finish (`[search] n_trials`).
pub const MAX_TRIALS: u64 = 1_000_000_000;
/// The longest `[search] trial_timeout`: 365 days.
pub const MAX_TRIAL_TIMEOUT: u64 = 365 * 86_400;
/// The longest `[governance] request_ttl`: 3650 days.
pub const MAX_REQUEST_TTL: u64 = 3650 * 86_400;
/// The most epochs of a built-in trial (`[task] max_epochs`).
pub const MAX_EPOCHS: u32 = 100_000;

/// What is wrong with `name` as a campaign's name, if anything: it names a
/// folder under the database's trial folder, so it must be one plain path
/// component of 1 to [`MAX_NAME_LEN`] letters, digits, `-`, `_` or `.`, not
/// starting with `.`.
pub fn campaign_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("is empty".to_string())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!("is {} bytes long, over {MAX_NAME_LEN}", name.len()))
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(format!("holds the character {c:?}"))
    } else if name.starts_with('.') {
        Some(
            "starts with `.` (as a folder name, `.` and `..` point outside the campaign's own)"
                .to_string(),
        )
    } else {
        None
    }
}

impl CampaignSpec {
    /// Parses and validates `source`; `file` is the name used in error messages.
    pub fn parse(source: &str, file: &str) -> Result<Self, SpecError> {
        let spec: Spec = toml::from_str(source).map_err(|e| toml_error(&e, source, file))?;
        let mut checked = CampaignSpec {
            space: SearchSpace::default(),
            objectives: Objectives::single("", Direction::Maximize),
            next_space: None,
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
        crate::sandbox::check(self)?;
        self.check_constraints()?;
        self.check_governance()?;
        self.next_space = crate::generations::check(self)?;
        Ok(())
    }

    /// The campaign's name is a folder name under the database's trial folder
    /// (`<db>.trials/<name>`, removed when a new campaign of that name starts), so
    /// it must be one plain path component: no separator, not `.` or `..`.
    fn check_campaign(&self) -> Result<(), SpecError> {
        let name = &self.spec.campaign.name;
        if let Some(problem) = campaign_name_problem(name) {
            return Err(self.error_at(
                &["campaign", "name"],
                format!("campaign name {name:?} is not allowed: it {problem}"),
                format!(
                    "use 1 to {MAX_NAME_LEN} letters, digits, `-`, `_` or `.`, not starting with `.`, e.g. name = \"digits-mlp\""
                ),
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
        let mut seen = std::collections::BTreeSet::new();
        for metric in &objectives.metrics {
            if metric.is_empty() || !seen.insert(metric) {
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
        if self.spec.space.is_empty() && self.spec.task.kind != TaskKind::Code {
            return Err(self.error_at(
                &["space"],
                "the search space has no parameters",
                "add at least one, e.g. lr = { type = \"float\", low = 1e-4, high = 0.1, log = true }",
            ));
        }
        self.space_of(&self.spec.space, &["space"])
    }

    /// A `[space]` table in canonical JSON, as the spec's own `space` is written
    /// (what a `generation_started` entry records).
    pub fn table_json(table: &BTreeMap<String, ParamSpec>) -> serde_json::Value {
        let mut value = serde_json::to_value(table).unwrap_or(serde_json::Value::Null);
        normalize_numbers(&mut value);
        value
    }

    /// The search space of a generation: `table` is a `[space]` table (as a
    /// `generation_started` entry records it) inside the approved space.
    pub fn generation_space(
        &self,
        table: &BTreeMap<String, ParamSpec>,
    ) -> Result<SearchSpace, SpecError> {
        self.space_of(table, &["generations", "space"])
    }

    /// The search space of a `[space]`-like table found at the key path `at`.
    pub(crate) fn space_of(
        &self,
        table: &BTreeMap<String, ParamSpec>,
        at: &[&str],
    ) -> Result<SearchSpace, SpecError> {
        let mut parameters = Vec::new();
        for (name, p) in table {
            parameters.push(Parameter {
                name: name.clone(),
                distribution: self.distribution(at, name, p)?,
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
            let mut path = at.to_vec();
            path.extend([name.as_str(), "when"]);
            self.error_at(
                &path,
                e.to_string(),
                "`when` must name other parameters and values they can take, without cycles",
            )
        })
    }

    fn distribution(
        &self,
        at: &[&str],
        name: &str,
        p: &ParamSpec,
    ) -> Result<Distribution, SpecError> {
        let bounds_hint = "fix the bounds so that low <= high (and low > 0 with log = true)";
        let err = |key: &str, message: String, hint: &str| {
            let mut path = at.to_vec();
            path.extend([name, key]);
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
            let (key, hint) = if message.contains("±2^53") {
                let key = if message.starts_with("high") {
                    "high"
                } else {
                    "low"
                };
                (
                    key,
                    format!(
                        "keep int bounds within ±{}; for a wider range use type = \"float\"",
                        Distribution::MAX_INT_MAGNITUDE
                    ),
                )
            } else if message.contains("steps") {
                (
                    "step",
                    format!(
                        "use a step that cuts the range into at most {} values, or remove `step`",
                        Distribution::MAX_STEPS
                    ),
                )
            } else if message.contains("step") {
                ("step", "write a positive `step`, without log = true".into())
            } else if message.contains("log") {
                ("log", bounds_hint.into())
            } else if message.contains("choice") {
                ("choices", "list each choice once, and no `nan`".into())
            } else if message.contains("wider") {
                ("high", "narrow the range, or use log = true".into())
            } else {
                ("low", bounds_hint.into())
            };
            err(key, message, &hint)
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
        if s.n_trials > MAX_TRIALS {
            return Err(self.error_at(
                &["search", "n_trials"],
                format!(
                    "n_trials = {} is over the limit of {MAX_TRIALS}",
                    s.n_trials
                ),
                format!("set n_trials to at most {MAX_TRIALS}"),
            ));
        }
        if s.parallelism == 0 {
            return Err(self.error_at(
                &["search", "parallelism"],
                "parallelism = 0 runs nothing",
                "set parallelism to the number of trials to run at once, e.g. the number of cores",
            ));
        }
        if s.parallelism > MAX_PARALLELISM {
            return Err(self.error_at(
                &["search", "parallelism"],
                format!(
                    "parallelism = {} is over the limit of {MAX_PARALLELISM} trials at once",
                    s.parallelism
                ),
                format!("set parallelism to at most {MAX_PARALLELISM}, e.g. the number of cores"),
            ));
        }
        if let Some(timeout) = s.trial_timeout
            && timeout.0 > MAX_TRIAL_TIMEOUT
        {
            return Err(self.error_at(
                &["search", "trial_timeout"],
                format!(
                    "trial_timeout = {timeout} is longer than {}",
                    crate::Duration(MAX_TRIAL_TIMEOUT)
                ),
                format!(
                    "set trial_timeout to at most \"{}\", or remove it for no limit",
                    crate::Duration(MAX_TRIAL_TIMEOUT)
                ),
            ));
        }
        Ok(())
    }

    /// A code task: a command, a workspace, plain editable paths inside it, a
    /// dataset whose labels the engine keeps, the agent proposer in code mode,
    /// and `val_accuracy` (the engine's score) as the objective.
    fn check_code_task(&self) -> Result<(), SpecError> {
        let t = &self.spec.task;
        for (present, key) in [
            (t.path.is_some(), "path"),
            (t.model.is_some(), "model"),
            (t.max_epochs.is_some(), "max_epochs"),
            (t.refit, "refit"),
        ] {
            if present {
                return Err(self.error_at(
                    &["task", key],
                    format!("`{key}` does not apply to a task of kind \"code\""),
                    format!("remove `{key}`, or change `kind`"),
                ));
            }
        }
        if t.command.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(self.error_at(
                &["task"],
                "a code task needs a non-empty `command`",
                "add command = [\"python3\", \"train.py\"]",
            ));
        }
        if t.workspace.is_none() {
            return Err(self.error_at(
                &["task"],
                "a code task needs `workspace`, the parent program's folder",
                "add workspace = \"agent/\"",
            ));
        }
        if t.editable.is_empty() {
            return Err(self.error_at(
                &["task"],
                "a code task needs `editable`, the files the agent may replace",
                "add editable = [\"train.py\"]",
            ));
        }
        for file in &t.editable {
            let plain = !file.is_empty()
                && !file.starts_with('/')
                && file
                    .split('/')
                    .all(|part| !part.is_empty() && part != "." && part != "..");
            if !plain {
                return Err(self.error_at(
                    &["task", "editable"],
                    format!("{file:?} is not a plain relative path inside the workspace"),
                    "name files like \"train.py\" or \"src/model.py\"",
                ));
            }
        }
        if t.dataset.is_none() {
            return Err(self.error_at(
                &["task"],
                "a code task needs `dataset`: the engine scores predictions against its labels",
                "add dataset = \"digits\"",
            ));
        }
        if self.spec.search.sampler != "agent" {
            return Err(self.error_at(
                &["search", "sampler"],
                "a code task is proposed by a language-model agent",
                "set sampler = \"agent\" with [search.sampler_options] mode = \"code\"",
            ));
        }
        let metric = self.spec.objective.metric.as_deref();
        if metric != Some("val_accuracy") {
            return Err(self.error_at(
                &["objective", "metric"],
                "a code task's objective is the engine's score, `val_accuracy`",
                "set metric = \"val_accuracy\" and direction = \"maximize\"",
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
                forbid(t.workspace.is_some(), "workspace", "command")?;
                forbid(!t.editable.is_empty(), "editable", "command")?;
                forbid(t.dataset.is_some(), "dataset", "command")?;
                forbid(t.model.is_some(), "model", "command")?;
                forbid(t.max_epochs.is_some(), "max_epochs", "command")?;
                forbid(t.refit, "refit", "command")?;
                forbid(t.split_seed.is_some(), "split_seed", "command")?;
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
            TaskKind::Code => self.check_code_task()?,
            TaskKind::Table => {
                forbid(t.command.is_some(), "command", "table")?;
                forbid(t.workspace.is_some(), "workspace", "table")?;
                forbid(!t.editable.is_empty(), "editable", "table")?;
                forbid(t.dataset.is_some(), "dataset", "table")?;
                forbid(t.refit, "refit", "table")?;
                forbid(t.split_seed.is_some(), "split_seed", "table")?;
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
                forbid(t.workspace.is_some(), "workspace", "builtin")?;
                forbid(!t.editable.is_empty(), "editable", "builtin")?;
                if let Some(epochs) = t.max_epochs
                    && epochs > MAX_EPOCHS
                {
                    return Err(self.error_at(
                        &["task", "max_epochs"],
                        format!("max_epochs = {epochs} is over the limit of {MAX_EPOCHS}"),
                        format!("set max_epochs to at most {MAX_EPOCHS}"),
                    ));
                }
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
        // Name and key to the first entry (1-based) that lists them: one person
        // under two names, or one key under two names, would count twice toward a
        // quorum.
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        let mut keys: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
        for (i, approver) in g.approvers.iter().enumerate() {
            let entry = i + 1;
            if let Some(first) = names.insert(&approver.name, entry) {
                return Err(self.error_at(
                    &["governance", "approvers"],
                    format!(
                        "approver {:?} is listed twice, as entries {first} and {entry}",
                        approver.name
                    ),
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
            // Keys are canonical base64 (checked above), so equal text is equal bytes.
            if let Some((first, first_name)) = keys.insert(&approver.key, (entry, &approver.name)) {
                return Err(self.error_at(
                    &["governance", "approvers"],
                    format!(
                        "approvers {first_name:?} (entry {first}) and {:?} (entry {entry}) have the same key {:?}",
                        approver.name, approver.key
                    ),
                    "one key is one person: give each approver their own key (`firebreak keys new NAME`), and list each person once",
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
        if g.request_ttl.0 > MAX_REQUEST_TTL {
            return Err(self.error_at(
                &["governance", "request_ttl"],
                format!(
                    "request_ttl = {} is longer than {}",
                    g.request_ttl,
                    crate::Duration(MAX_REQUEST_TTL)
                ),
                format!(
                    "set request_ttl to at most \"{}\"",
                    crate::Duration(MAX_REQUEST_TTL)
                ),
            ));
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
            if tripwire.per.is_some() {
                let problem = if tripwire.kind != TripwireKind::Rate {
                    Some((
                        "`per` is only for rate tripwires",
                        "remove `per`, or set kind = \"rate\"",
                    ))
                } else if self.spec.generations.is_none() {
                    Some((
                        "per = \"generation\" needs a [generations] section",
                        "add [generations], or remove `per` to measure over `window` trials",
                    ))
                } else {
                    None
                };
                if let Some((message, hint)) = problem {
                    return Err(self.error_at(&["governance", "tripwires"], message, hint));
                }
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
    // 32 bytes are 43 base64 characters and one `=` of padding; the last
    // character's two low bits are padding and must be zero (canonical base64, as
    // the decoder demands), so one key has exactly one spelling.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |c: u8| ALPHABET.iter().position(|&a| a == c);
    b64.len() == 44
        && b64.ends_with('=')
        && b64.as_bytes()[..43].iter().all(|&c| sextet(c).is_some())
        && sextet(b64.as_bytes()[42]).is_some_and(|v| v & 0b11 == 0)
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

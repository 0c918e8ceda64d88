//! Optuna histories in and out: `firebreak import optuna --from
//! sqlite:///study.db|journal.log [--study NAME]` copies a study's trials
//! (states, values, parameters, intermediate values, attributes) into a new
//! campaign, every trial a ledgered `trial_created` and the source named with
//! its SHA-256 in the campaign's spec; `firebreak export optuna CAMPAIGN --out
//! FILE` writes the study as an Optuna journal file (`JournalFileBackend`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use firebreak_app::App;
use firebreak_ledger::hex;
use firebreak_ledger::optuna::{F64, OptunaOp, OptunaParam, OptunaState, OptunaTrial, python_json};
use firebreak_store::Store;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::OptunaError;
use crate::convert::{state_number, state_of_number};
use crate::service::{State, commit_as, new_campaign, replayed};

/// A study read from an Optuna storage, before it is ledgered.
#[derive(Debug, Default)]
struct Source {
    name: String,
    directions: Vec<String>,
    user_attrs: BTreeMap<String, String>,
    system_attrs: BTreeMap<String, String>,
    /// Trials by number (ids are given when they are ledgered).
    trials: Vec<OptunaTrial>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The new campaign.
    pub campaign: String,
    /// The study's name.
    pub study: String,
    /// How many trials it holds.
    pub trials: usize,
    /// Hex SHA-256 of the source file.
    pub sha256: String,
}

fn bad_source(from: &str, why: impl std::fmt::Display) -> OptunaError {
    OptunaError::Import(format!("{from}: {why}"))
}

fn direction_name(optuna_enum: i64) -> Option<String> {
    // Optuna's `StudyDirection`: NOT_SET 0, MINIMIZE 1, MAXIMIZE 2.
    match optuna_enum {
        1 => Some("minimize".into()),
        2 => Some("maximize".into()),
        _ => None,
    }
}

/// A number as Python's `json` module writes one (non-finite ones as words,
/// which `python_json` reads as strings).
fn num(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// A JSON value back as the text Python's `json.dumps` would write.
fn python_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) if ["NaN", "Infinity", "-Infinity"].contains(&s.as_str()) => {
            s.clone()
        }
        serde_json::Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(python_text).collect();
            format!("[{}]", inner.join(", "))
        }
        serde_json::Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}: {}",
                        serde_json::Value::from(k.as_str()),
                        python_text(v)
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        other => other.to_string(),
    }
}

fn text_map(value: &serde_json::Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), python_text(v))).collect())
        .unwrap_or_default()
}

/// The studies of an Optuna journal file, replayed as Optuna's
/// `JournalStorage` does (an operation on a missing study or a finished trial
/// is skipped, as Optuna skips it).
fn read_journal(from: &str, text: &str) -> Result<Vec<Source>, OptunaError> {
    let mut studies: BTreeMap<i64, Source> = BTreeMap::new();
    let mut next_study = 0;
    // Journal trial id -> (study id, number).
    let mut trials: Vec<(i64, usize)> = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let log =
            python_json(line).map_err(|e| bad_source(from, format!("line {}: {e}", i + 1)))?;
        let at = |what: &str| bad_source(from, format!("line {}: {what}", i + 1));
        let op = log["op_code"].as_i64().ok_or_else(|| at("no op_code"))?;
        let trial_of = |log: &serde_json::Value| -> Option<(i64, usize)> {
            let id = usize::try_from(log["trial_id"].as_i64()?).ok()?;
            trials.get(id).copied()
        };
        match op {
            0 => {
                let name = log["study_name"]
                    .as_str()
                    .ok_or_else(|| at("no study_name"))?;
                if studies.values().any(|s| s.name == name) {
                    continue;
                }
                let directions = log["directions"]
                    .as_array()
                    .ok_or_else(|| at("no directions"))?
                    .iter()
                    .map(|d| d.as_i64().and_then(direction_name))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| at("a direction is not 1 or 2"))?;
                studies.insert(
                    next_study,
                    Source {
                        name: name.to_string(),
                        directions,
                        ..Source::default()
                    },
                );
                next_study += 1;
            }
            1 => {
                if let Some(id) = log["study_id"].as_i64() {
                    studies.remove(&id);
                }
            }
            2 | 3 => {
                let key = if op == 2 { "user_attr" } else { "system_attr" };
                if let Some(s) = log["study_id"].as_i64().and_then(|id| studies.get_mut(&id)) {
                    let attrs = if op == 2 {
                        &mut s.user_attrs
                    } else {
                        &mut s.system_attrs
                    };
                    attrs.extend(text_map(&log[key]));
                }
            }
            4 => {
                let study_id = log["study_id"].as_i64().ok_or_else(|| at("no study_id"))?;
                let Some(study) = studies.get_mut(&study_id) else {
                    continue;
                };
                let distributions = log["distributions"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                let params = log["params"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                let d = distributions.get(k).and_then(|d| d.as_str());
                                Some((
                                    k.clone(),
                                    OptunaParam {
                                        value: F64(num(v)?),
                                        distribution: d?.to_string(),
                                    },
                                ))
                            })
                            .collect::<Option<BTreeMap<_, _>>>()
                    })
                    .unwrap_or(Some(BTreeMap::new()))
                    .ok_or_else(|| at("a parameter without its distribution"))?;
                let values = match (&log["values"], &log["value"]) {
                    (serde_json::Value::Array(v), _) => v.iter().filter_map(num).map(F64).collect(),
                    (_, v) => num(v).map(F64).into_iter().collect(),
                };
                let number = study.trials.len();
                study.trials.push(OptunaTrial {
                    trial_id: 0,
                    number: number as u64,
                    state: match log.get("state") {
                        Some(s) => s
                            .as_i64()
                            .and_then(state_of_number)
                            .ok_or_else(|| at("unknown state"))?,
                        None => OptunaState::Running,
                    },
                    values,
                    datetime_start: log["datetime_start"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    datetime_complete: log["datetime_complete"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    params,
                    user_attrs: text_map(&log["user_attrs"]),
                    system_attrs: text_map(&log["system_attrs"]),
                    intermediate: log["intermediate_values"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .filter_map(|(k, v)| Some((k.parse().ok()?, F64(num(v)?))))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
                trials.push((study_id, number));
            }
            5..=9 => {
                let Some((study_id, number)) = trial_of(&log) else {
                    continue;
                };
                let Some(trial) = studies
                    .get_mut(&study_id)
                    .and_then(|s| s.trials.get_mut(number))
                else {
                    continue;
                };
                if trial.state.is_finished() {
                    continue;
                }
                match op {
                    5 => {
                        let name = log["param_name"]
                            .as_str()
                            .ok_or_else(|| at("no param_name"))?;
                        let value =
                            num(&log["param_value_internal"]).ok_or_else(|| at("no value"))?;
                        let distribution = log["distribution"]
                            .as_str()
                            .ok_or_else(|| at("no distribution"))?;
                        trial.params.insert(
                            name.to_string(),
                            OptunaParam {
                                value: F64(value),
                                distribution: distribution.to_string(),
                            },
                        );
                    }
                    6 => {
                        let state = log["state"]
                            .as_i64()
                            .and_then(state_of_number)
                            .ok_or_else(|| at("unknown state"))?;
                        if state == OptunaState::Running && trial.state != OptunaState::Waiting {
                            continue;
                        }
                        trial.state = state;
                        if let Some(values) = log["values"].as_array() {
                            trial.values = values.iter().filter_map(num).map(F64).collect();
                        }
                        if let Some(t) = log["datetime_start"].as_str() {
                            trial.datetime_start = t.to_string();
                        }
                        if let Some(t) = log["datetime_complete"].as_str() {
                            trial.datetime_complete = t.to_string();
                        }
                    }
                    7 => {
                        let step = log["step"].as_i64().ok_or_else(|| at("no step"))?;
                        let value =
                            num(&log["intermediate_value"]).ok_or_else(|| at("no value"))?;
                        trial.intermediate.insert(step, F64(value));
                    }
                    8 => trial.user_attrs.extend(text_map(&log["user_attr"])),
                    _ => trial.system_attrs.extend(text_map(&log["system_attr"])),
                }
            }
            // 10: DISCARD_TRIALS, which Optuna itself skips.
            _ => {}
        }
    }
    Ok(studies.into_values().collect())
}

/// The studies of an Optuna RDB storage on SQLite (`sqlite:///PATH`).
async fn read_rdb(from: &str, path: &str) -> Result<Vec<Source>, OptunaError> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .map_err(|e| bad_source(from, e))?;
    let rows = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(sql)
                .fetch_all(&pool)
                .await
                .map_err(|e| bad_source(from, format!("{e} (is it an Optuna database?)")))
        }
    };
    let mut studies: BTreeMap<i64, Source> = BTreeMap::new();
    for r in rows("SELECT study_id, study_name FROM studies ORDER BY study_id").await? {
        studies.insert(
            r.get(0),
            Source {
                name: r.get(1),
                ..Source::default()
            },
        );
    }
    for r in rows("SELECT study_id, direction FROM study_directions ORDER BY study_id, objective")
        .await?
    {
        if let Some(s) = studies.get_mut(&r.get::<i64, _>(0)) {
            s.directions.push(r.get::<String, _>(1).to_lowercase());
        }
    }
    for (sql, system) in [
        (
            "SELECT study_id, key, value_json FROM study_user_attributes",
            false,
        ),
        (
            "SELECT study_id, key, value_json FROM study_system_attributes",
            true,
        ),
    ] {
        for r in rows(sql).await? {
            if let Some(s) = studies.get_mut(&r.get::<i64, _>(0)) {
                let attrs = if system {
                    &mut s.system_attrs
                } else {
                    &mut s.user_attrs
                };
                attrs.insert(r.get(1), r.get(2));
            }
        }
    }
    // Optuna writes naive local times; this reads them as UTC.
    let iso = |t: Option<String>| {
        t.map(|t| format!("{}+00:00", t.replace(' ', "T")))
            .unwrap_or_default()
    };
    let mut where_is: BTreeMap<i64, (i64, usize)> = BTreeMap::new();
    for r in rows(
        "SELECT trial_id, study_id, state, datetime_start, datetime_complete FROM trials ORDER BY study_id, number",
    )
    .await?
    {
        let study_id: i64 = r.get(1);
        let Some(s) = studies.get_mut(&study_id) else {
            continue;
        };
        let state = match r.get::<String, _>(2).as_str() {
            "RUNNING" => OptunaState::Running,
            "COMPLETE" => OptunaState::Complete,
            "PRUNED" => OptunaState::Pruned,
            "FAIL" => OptunaState::Fail,
            "WAITING" => OptunaState::Waiting,
            other => return Err(bad_source(from, format!("unknown trial state {other:?}"))),
        };
        where_is.insert(r.get(0), (study_id, s.trials.len()));
        s.trials.push(OptunaTrial {
            trial_id: 0,
            number: s.trials.len() as u64,
            state,
            values: Vec::new(),
            datetime_start: iso(r.get(3)),
            datetime_complete: iso(r.get(4)),
            params: BTreeMap::new(),
            user_attrs: BTreeMap::new(),
            system_attrs: BTreeMap::new(),
            intermediate: BTreeMap::new(),
        });
    }
    fn trial<'a>(
        studies: &'a mut BTreeMap<i64, Source>,
        where_is: &BTreeMap<i64, (i64, usize)>,
        id: i64,
    ) -> Option<&'a mut OptunaTrial> {
        let (study, n) = *where_is.get(&id)?;
        studies.get_mut(&study)?.trials.get_mut(n)
    }
    let special = |value: Option<f64>, kind: &str| match kind {
        "INF_POS" => f64::INFINITY,
        "INF_NEG" => f64::NEG_INFINITY,
        "NAN" => f64::NAN,
        _ => value.unwrap_or(f64::NAN),
    };
    for r in rows("SELECT trial_id, param_name, param_value, distribution_json FROM trial_params")
        .await?
    {
        if let Some(t) = trial(&mut studies, &where_is, r.get(0)) {
            t.params.insert(
                r.get(1),
                OptunaParam {
                    value: F64(r.get(2)),
                    distribution: r.get(3),
                },
            );
        }
    }
    for r in
        rows("SELECT trial_id, value, value_type FROM trial_values ORDER BY trial_id, objective")
            .await?
    {
        if let Some(t) = trial(&mut studies, &where_is, r.get(0)) {
            t.values
                .push(F64(special(r.get(1), &r.get::<String, _>(2))));
        }
    }
    for r in rows(
        "SELECT trial_id, step, intermediate_value, intermediate_value_type FROM trial_intermediate_values",
    )
    .await?
    {
        if let Some(t) = trial(&mut studies, &where_is, r.get(0)) {
            t.intermediate
                .insert(r.get(1), F64(special(r.get(2), &r.get::<String, _>(3))));
        }
    }
    for (sql, system) in [
        (
            "SELECT trial_id, key, value_json FROM trial_user_attributes",
            false,
        ),
        (
            "SELECT trial_id, key, value_json FROM trial_system_attributes",
            true,
        ),
    ] {
        for r in rows(sql).await? {
            if let Some(t) = trial(&mut studies, &where_is, r.get(0)) {
                let attrs = if system {
                    &mut t.system_attrs
                } else {
                    &mut t.user_attrs
                };
                attrs.insert(r.get(1), r.get(2));
            }
        }
    }
    pool.close().await;
    Ok(studies.into_values().collect())
}

/// Copies study `study` (or the source's only one) of the Optuna storage
/// `from` into a new campaign, as `principal`.
pub async fn import<S: Store>(
    app: &App<S>,
    from: &str,
    study: Option<&str>,
    principal: &str,
) -> Result<Imported, OptunaError> {
    let _lock = app
        .store()
        .lock_campaign(crate::WRITER_LOCK, "firebreak import optuna")
        .await?;
    let (sources, bytes) = match from.strip_prefix("sqlite:///") {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| bad_source(from, e))?;
            (read_rdb(from, path).await?, bytes)
        }
        None => {
            let bytes = std::fs::read(from).map_err(|e| bad_source(from, e))?;
            let text = String::from_utf8(bytes.clone()).map_err(|e| bad_source(from, e))?;
            (read_journal(from, &text)?, bytes)
        }
    };
    let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    let source = match study {
        Some(name) => sources.iter().find(|s| s.name == name),
        None if sources.len() == 1 => sources.first(),
        None => None,
    }
    .ok_or_else(|| {
        bad_source(
            from,
            format!(
                "{} (its studies: {})\nhint: --study NAME picks one",
                study.map_or(
                    "holds more than one study, or none".to_string(),
                    |n| format!("has no study {n:?}")
                ),
                names.join(", ")
            ),
        )
    })?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let mut state: State = replayed(app.store()).await?;
    if state.studies.by_name.contains_key(&source.name) {
        return Err(OptunaError::Import(format!(
            "a study called {:?} exists in this database already",
            source.name
        )));
    }
    let spec = serde_json::json!({
        "kind": "optuna",
        "study": source.name,
        "imported_from": {"source": from, "sha256": sha256},
    });
    let campaign = new_campaign(app.store(), &mut state, &source.name, spec).await?;
    let now = firebreak_core::Clock::now(&firebreak_core::SystemClock);
    let mut ops = vec![OptunaOp::StudyOpened {
        study_id: state.studies.next_study,
        directions: source.directions.clone(),
        at: now,
    }];
    for (system, attrs) in [(false, &source.user_attrs), (true, &source.system_attrs)] {
        ops.extend(attrs.iter().map(|(key, value)| OptunaOp::StudyAttr {
            system,
            key: key.clone(),
            value: value.clone(),
        }));
    }
    for op in ops {
        commit_as(app.store(), &mut state, &campaign, principal, op)
            .await
            .map_err(|e| OptunaError::Import(e.to_string()))?;
    }
    for trial in &source.trials {
        let op = OptunaOp::TrialCreated {
            trial: OptunaTrial {
                trial_id: state.studies.next_trial,
                ..trial.clone()
            },
            at: firebreak_core::Clock::now(&firebreak_core::SystemClock),
        };
        commit_as(app.store(), &mut state, &campaign, principal, op)
            .await
            .map_err(|e| OptunaError::Import(format!("trial {}: {e}", trial.number)))?;
    }
    Ok(Imported {
        campaign,
        study: source.name.clone(),
        trials: source.trials.len(),
        sha256,
    })
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        serde_json::Value::from(v).to_string()
    }
}

fn raw_map(map: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k.as_str())))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// The study of `campaign` as an Optuna journal file: its creation, its
/// attributes, and each trial as one `CREATE_TRIAL` carrying its final state.
pub async fn export_journal<S: Store>(store: &S, campaign: &str) -> Result<String, OptunaError> {
    let state = replayed(store).await?;
    let study = state.studies.of_campaign(campaign).ok_or_else(|| {
        OptunaError::Import(format!("campaign {campaign:?} holds no open Optuna study"))
    })?;
    let worker = "\"worker_id\":\"firebreak-export\"";
    let mut out = String::new();
    let directions: Vec<&str> = study
        .directions
        .iter()
        .map(|d| if d == "maximize" { "2" } else { "1" })
        .collect();
    let _ = writeln!(
        out,
        "{{\"op_code\":0,{worker},\"study_name\":{},\"directions\":[{}]}}",
        serde_json::Value::from(study.name.as_str()),
        directions.join(",")
    );
    for (op, attrs, key) in [
        (2, &study.user_attrs, "user_attr"),
        (3, &study.system_attrs, "system_attr"),
    ] {
        for (k, v) in attrs {
            let one = BTreeMap::from([(k.clone(), v.clone())]);
            let _ = writeln!(
                out,
                "{{\"op_code\":{op},{worker},\"study_id\":0,\"{key}\":{}}}",
                raw_map(&one)
            );
        }
    }
    for id in &study.trials {
        let Some((_, t)) = state.studies.trials.get(id) else {
            continue;
        };
        let values: Vec<String> = t.values.iter().map(|v| float(v.0)).collect();
        let (value, values) = match values.len() {
            0 => ("null".to_string(), "null".to_string()),
            1 => (values[0].clone(), "null".to_string()),
            _ => ("null".to_string(), format!("[{}]", values.join(","))),
        };
        let time = |s: &str| {
            if s.is_empty() {
                "null".to_string()
            } else {
                serde_json::Value::from(s).to_string()
            }
        };
        let distributions: BTreeMap<String, String> = t
            .params
            .iter()
            .map(|(k, p)| {
                (
                    k.clone(),
                    serde_json::Value::from(p.distribution.as_str()).to_string(),
                )
            })
            .collect();
        let params: BTreeMap<String, String> = t
            .params
            .iter()
            .map(|(k, p)| (k.clone(), float(p.value.0)))
            .collect();
        let intermediate: BTreeMap<String, String> = t
            .intermediate
            .iter()
            .map(|(k, v)| (k.to_string(), float(v.0)))
            .collect();
        let mut line = format!(
            "{{\"op_code\":4,{worker},\"study_id\":0,\"datetime_start\":{},\"state\":{},\"value\":{value},\"values\":{values}",
            time(&t.datetime_start),
            state_number(t.state)
        );
        if !t.datetime_complete.is_empty() {
            let _ = write!(
                line,
                ",\"datetime_complete\":{}",
                time(&t.datetime_complete)
            );
        }
        let _ = writeln!(
            out,
            "{line},\"distributions\":{},\"params\":{},\"user_attrs\":{},\"system_attrs\":{},\"intermediate_values\":{}}}",
            raw_map(&distributions),
            raw_map(&params),
            raw_map(&t.user_attrs),
            raw_map(&t.system_attrs),
            raw_map(&intermediate)
        );
    }
    Ok(out)
}

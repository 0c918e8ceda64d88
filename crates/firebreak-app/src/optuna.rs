//! Optuna studies (`firebreak serve-optuna`) seen as campaigns: their trials,
//! rebuilt from the `optuna` ledger entries (a study has no state table), as
//! firebreak trials, so that `status`, `trials`, `best` and the dashboard show
//! them. Objectives are named `value` (one) or `value_0`, `value_1`, …

use firebreak_core::{
    Direction, Metrics, Objectives, ParamValue, Params, Report, Trial, TrialState, parse_rfc3339,
};
use firebreak_ledger::optuna::{
    OptunaParam, OptunaState, OptunaTrial, Studies, python_json, studies_from,
};
use firebreak_store::Store;

use crate::{App, AppError};

/// An Optuna study's campaign, as the ledger describes it.
#[derive(Debug)]
pub(crate) struct StudyView {
    /// `optuna study "NAME"`, with `deleted` or `not opened yet` when so.
    pub state: String,
    pub objectives: Objectives,
    pub trials: Vec<Trial>,
    /// Optuna's trial ids, by number.
    pub ids: Vec<u64>,
    /// Its `max_trials`, else its trial count.
    pub n_trials: u64,
}

fn metric_names(objectives: usize) -> Vec<String> {
    if objectives == 1 {
        vec!["value".into()]
    } else {
        (0..objectives).map(|i| format!("value_{i}")).collect()
    }
}

fn param_value(p: &OptunaParam) -> ParamValue {
    let value = p.value.0;
    let dist = python_json(&p.distribution).unwrap_or_default();
    match dist["name"].as_str().unwrap_or_default() {
        "CategoricalDistribution" => {
            let choice = (value >= 0.0)
                .then(|| dist["attributes"]["choices"].get(value as usize))
                .flatten();
            match choice {
                Some(serde_json::Value::Bool(b)) => ParamValue::Bool(*b),
                Some(serde_json::Value::Number(n)) if n.is_i64() => {
                    ParamValue::Int(n.as_i64().unwrap_or_default())
                }
                Some(serde_json::Value::Number(n)) => {
                    ParamValue::Float(n.as_f64().unwrap_or(f64::NAN))
                }
                Some(serde_json::Value::String(s)) => ParamValue::Str(s.clone()),
                Some(other) => ParamValue::Str(other.to_string()),
                None => ParamValue::Float(value),
            }
        }
        "IntDistribution" | "IntUniformDistribution" | "IntLogUniformDistribution" => {
            ParamValue::Int(value as i64)
        }
        _ => ParamValue::Float(value),
    }
}

fn time(iso: &str) -> Option<i64> {
    // `2026-12-06T09:22:55.066000+00:00` as RFC 3339 with milliseconds.
    let (main, _) = iso.split_once('+').unwrap_or((iso, ""));
    let (seconds, fraction) = main.split_once('.').unwrap_or((main, "000"));
    parse_rfc3339(&format!("{seconds}.{:0<3.3}Z", fraction))
}

fn trial(t: &OptunaTrial, names: &[String]) -> Trial {
    let named = |values: &[f64]| -> Metrics {
        names
            .iter()
            .zip(values)
            .map(|(n, v)| (n.clone(), *v))
            .collect()
    };
    let values: Vec<f64> = t.values.iter().map(|v| v.0).collect();
    let started_at = time(&t.datetime_start);
    let finished_at = time(&t.datetime_complete);
    Trial {
        number: t.number,
        state: match t.state {
            OptunaState::Waiting => TrialState::Queued,
            OptunaState::Running => TrialState::Running,
            OptunaState::Complete => TrialState::Complete,
            OptunaState::Pruned => TrialState::Pruned,
            OptunaState::Fail => TrialState::Failed,
        },
        params: t
            .params
            .iter()
            .map(|(k, p)| (k.clone(), param_value(p)))
            .collect::<Params>(),
        metrics: named(&values),
        intermediate: t
            .intermediate
            .iter()
            .filter_map(|(step, v)| {
                Some(Report {
                    step: u64::try_from(*step).ok()?,
                    metrics: named(&[v.0]),
                })
            })
            .collect(),
        error: (t.state == OptunaState::Fail).then(|| "failed in the Optuna script".to_string()),
        proposer: "optuna".into(),
        rationale: "asked by an Optuna script through serve-optuna".into(),
        proposer_state: None,
        retry_of: None,
        started_at,
        finished_at,
        cpu_seconds: None,
        wall_seconds: started_at
            .zip(finished_at)
            .map(|(s, f)| (f - s).max(0) as f64 / 1000.0),
        generation: None,
    }
}

/// The study of `campaign` (whose spec is `spec`) among `studies`.
pub(crate) fn view(campaign: &str, spec: &serde_json::Value, studies: &Studies) -> StudyView {
    let name = spec["study"].as_str().unwrap_or_default().to_string();
    let max_trials = spec["constraints"]["max_trials"].as_u64();
    let Some(study) = studies.of_campaign(campaign) else {
        let why = if studies.deleted.contains(campaign) {
            "deleted"
        } else {
            "governed, not opened yet"
        };
        return StudyView {
            state: format!("optuna study {name:?} ({why})"),
            objectives: Objectives::single("value", Direction::Minimize),
            trials: Vec::new(),
            ids: Vec::new(),
            n_trials: max_trials.unwrap_or(0),
        };
    };
    let names = metric_names(study.directions.len());
    let objectives = Objectives {
        metrics: names.clone(),
        directions: study
            .directions
            .iter()
            .map(|d| {
                if d == "maximize" {
                    Direction::Maximize
                } else {
                    Direction::Minimize
                }
            })
            .collect(),
    };
    let trials: Vec<Trial> = study
        .trials
        .iter()
        .filter_map(|id| studies.trials.get(id))
        .map(|(_, t)| trial(t, &names))
        .collect();
    StudyView {
        state: format!("optuna study {name:?}"),
        objectives,
        ids: study.trials.clone(),
        n_trials: max_trials.unwrap_or(trials.len() as u64),
        trials,
    }
}

/// A spec section for people: `none` when absent or empty.
fn shown(section: &serde_json::Value) -> String {
    if section.as_object().is_some_and(|o| !o.is_empty()) {
        section.to_string()
    } else {
        "none".to_string()
    }
}

impl<S: Store> App<S> {
    /// The Optuna study of `campaign`, when the campaign is one.
    pub(crate) async fn optuna_study(&self, campaign: &str) -> Result<Option<StudyView>, AppError> {
        let Some(record) = self.store.campaign(campaign).await? else {
            return Ok(None);
        };
        if record.spec["kind"] != "optuna" {
            return Ok(None);
        }
        let studies = studies_from(&self.store.ledger().await?);
        Ok(Some(view(campaign, &record.spec, &studies)))
    }
}

impl<S: Store> App<S> {
    /// The audit report of an Optuna study: origin, constraints, the ledger's
    /// verification, who did what, every refusal, trials by state and the best.
    pub(crate) async fn report_optuna(
        &self,
        record: &firebreak_store::CampaignRecord,
    ) -> Result<String, AppError> {
        use std::collections::BTreeMap;
        use std::fmt::Write as _;
        let campaign = &record.name;
        let (rows, state) = self.store.ledger_and_snapshot().await?;
        let study = view(campaign, &record.spec, &studies_from(&rows));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Audit report: campaign `{campaign}`, {}\n",
            study.state
        );
        let _ = writeln!(
            out,
            "- created {} with spec hash `{}`",
            firebreak_core::format_rfc3339(record.created_at),
            record.spec_hash
        );
        let origin = &record.spec["imported_from"];
        if origin.is_object() {
            let _ = writeln!(
                out,
                "- imported from `{}` (sha256 `{}`)",
                origin["source"].as_str().unwrap_or("?"),
                origin["sha256"].as_str().unwrap_or("?")
            );
        }
        let _ = writeln!(
            out,
            "- objectives: {}",
            crate::report::objectives_text(&study.objectives)
        );
        let _ = writeln!(
            out,
            "- constraints: {}; governed space: {}",
            record
                .spec
                .get("constraints")
                .map_or("none".into(), |c| c.to_string()),
            record
                .spec
                .get("space")
                .map_or("none".into(), |c| c.to_string())
        );
        let _ = writeln!(
            out,
            "- ledger verification: {}\n",
            crate::report::verdict(&rows, &state)
        );
        let mut by: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut refusals = Vec::new();
        for e in rows.iter().filter(|e| &e.campaign == campaign) {
            let Ok(payload) = serde_json::from_str::<serde_json::Value>(&e.payload) else {
                continue;
            };
            let data = &payload["data"];
            let who = data["principal"].as_str().unwrap_or("?").to_string();
            match e.kind.as_str() {
                "optuna" => {
                    let op = data["op"]["op"].as_str().unwrap_or("?").to_string();
                    *by.entry(who).or_default().entry(op).or_default() += 1;
                }
                "denied" => refusals.push(format!(
                    "- seq {}: `{}` by {who}: {}",
                    e.seq,
                    data["action"].as_str().unwrap_or("?"),
                    data["reason"].as_str().unwrap_or("?")
                )),
                _ => {}
            }
        }
        let _ = writeln!(
            out,
            "## Who did what\n\n| principal | operations |\n|---|---|"
        );
        for (who, ops) in &by {
            let ops: Vec<String> = ops.iter().map(|(op, n)| format!("{op} {n}")).collect();
            let _ = writeln!(out, "| {who} | {} |", ops.join(", "));
        }
        let _ = writeln!(out, "\n## Refusals\n");
        if refusals.is_empty() {
            let _ = writeln!(out, "none");
        }
        for line in &refusals {
            let _ = writeln!(out, "{line}");
        }
        let c = firebreak_runner::counts_of(&study.trials);
        let _ = writeln!(
            out,
            "\n## Trials\n\n{} trials: {} complete, {} pruned, {} failed, {} running, {} waiting",
            study.trials.len(),
            c.complete,
            c.pruned,
            c.failed,
            c.running,
            c.queued
        );
        for best in study.objectives.best(&study.trials) {
            let _ = writeln!(
                out,
                "- best: trial {} · {}",
                best.number,
                best.metrics
                    .iter()
                    .map(|(k, v)| format!("{k}={}", crate::format::format_number(*v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        Ok(out)
    }

    /// Explains trial `number` of an Optuna study: who created it, under which
    /// constraints, its `optuna` entries and the inclusion proof of its
    /// creation.
    pub(crate) async fn explain_optuna(
        &self,
        record: &firebreak_store::CampaignRecord,
        number: u64,
    ) -> Result<crate::Explanation, AppError> {
        let campaign = record.name.as_str();
        let rows = self.store.ledger().await?;
        let study = view(campaign, &record.spec, &studies_from(&rows));
        let index = usize::try_from(number).unwrap_or(usize::MAX);
        let (Some(trial), Some(id)) = (study.trials.get(index), study.ids.get(index)) else {
            return Err(firebreak_store::StoreError::NoTrial {
                campaign: campaign.to_string(),
                number,
            }
            .into());
        };
        let mut created = None;
        let history: Vec<serde_json::Value> = rows
            .iter()
            .filter(|e| e.campaign == campaign && e.kind == "optuna")
            .filter_map(|e| {
                let payload: serde_json::Value = serde_json::from_str(&e.payload).ok()?;
                let op = &payload["data"]["op"];
                let of_trial = op["trial_id"].as_u64() == Some(*id)
                    || op["trial"]["trial_id"].as_u64() == Some(*id);
                if !of_trial {
                    return None;
                }
                if op["op"] == "trial_created" {
                    created = Some((e.seq, payload["data"]["principal"].clone()));
                }
                Some(serde_json::json!({"seq": e.seq, "kind": op["op"], "at": payload["at"]}))
            })
            .collect();
        let (seq, principal) = created.ok_or(AppError::NoProposal(number))?;
        let policy = format!(
            "created by {} through serve-optuna; checked by the rules the audit replays, against the study's constraints ({}) and governed space ({})",
            principal.as_str().unwrap_or("?"),
            shown(&record.spec["constraints"]),
            shown(&record.spec["space"]),
        );
        Ok(crate::Explanation {
            campaign: campaign.to_string(),
            number,
            agent: serde_json::Value::Null,
            state: trial.state,
            proposer: trial.proposer.clone(),
            rationale: trial.rationale.clone(),
            retry_of: None,
            params: trial.params.clone(),
            policy,
            ledger: history,
            proposal_inclusion: self.inclusion(&rows, seq).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn optunas_times_read_as_milliseconds() {
        assert_eq!(super::time("1970-01-01T00:00:01.250000+00:00"), Some(1250));
        assert_eq!(super::time(""), None);
    }
}

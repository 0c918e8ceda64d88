//! Reading campaigns: the list with state and progress, one campaign's status,
//! its trials and best, a trial's log; queueing a configuration a person chose
//! (`enqueue`); and checking a spec without running it (`validate`).
//!
//! A campaign's state is derived, never stored: the run lock's holder, pending
//! requests, the count of finished trials and the last run's end reason.

use std::path::Path;

use firebreak_core::{Distribution, Objectives, ParamValue, Params, Trial, format_rfc3339};
use firebreak_govern::Principal;
use firebreak_ledger::{Entry, RequestState};
use firebreak_spec::CampaignSpec;
use firebreak_store::{Counts, Store, StoreError};
use serde::Serialize;
use serde_json::{Value, json};

use crate::format::{trial_json, trials_as_json};
use crate::{App, AppError};

/// One campaign in the list of campaigns.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignListing {
    /// The campaign's name.
    pub name: String,
    /// Running (by whom), halted at a firebreak, done, or stopped (why).
    pub state: String,
    /// The campaign's `n_trials`.
    pub n_trials: u64,
    /// Its trials by state.
    pub counts: Counts,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// One campaign's state, progress and best so far.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignStatus {
    /// The campaign's name.
    pub campaign: String,
    /// Running (by whom), halted at a firebreak, done, or stopped (why).
    pub state: String,
    /// The campaign's `n_trials`.
    pub n_trials: u64,
    /// Its trials by state.
    pub counts: Counts,
    /// With `[generations]`: the current one, its state, how many there are
    /// and the last promoted champion.
    pub generations: Option<Value>,
    /// Tokens its language-model agents used (`None` when it never asked one).
    pub llm_tokens: Option<u64>,
    /// The best trial (several objectives: the Pareto set), test results joined.
    #[serde(serialize_with = "trials_as_json")]
    pub best: Vec<Trial>,
    /// The first objective's metric.
    #[serde(skip)]
    pub metric: String,
    /// The campaign's `max_llm_tokens`, if any.
    #[serde(skip)]
    pub max_llm_tokens: Option<u64>,
}

/// A campaign's trials (test results joined) and its objectives; serialises
/// as an array of Trial JSON.
#[derive(Debug, Clone)]
pub struct Trials {
    /// The campaign's objectives.
    pub objectives: Objectives,
    /// The trials, by number.
    pub trials: Vec<Trial>,
}

impl Serialize for Trials {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        trials_as_json(&self.trials, serializer)
    }
}

/// The best trial of a campaign, or with several objectives its Pareto set;
/// serialises as one Trial JSON object, or an array of them.
#[derive(Debug, Clone)]
pub struct Best(pub Trials);

impl Serialize for Best {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.trials.first() {
            Some(first) if self.0.objectives.metrics.len() == 1 => {
                trial_json(first).serialize(serializer)
            }
            _ => self.0.serialize(serializer),
        }
    }
}

impl<S: Store> App<S> {
    /// The spec in effect of `campaign` (an error naming it when there is none).
    pub async fn spec(&self, campaign: &str) -> Result<CampaignSpec, AppError> {
        let record = self
            .store
            .campaign(campaign)
            .await?
            .ok_or_else(|| StoreError::NoCampaign(campaign.to_string()))?;
        if record.spec["kind"] == "optuna" {
            return Err(AppError::Invalid(format!(
                "campaign {campaign} is an Optuna study: Optuna drives it through `firebreak serve-optuna` (docs/optuna.md); `status`, `trials`, `best` and the `audit` commands read it"
            )));
        }
        Ok(CampaignSpec::from_canonical(&record.spec, campaign)?)
    }

    /// True when `campaign` is an Optuna study's.
    async fn is_optuna(&self, campaign: &str) -> Result<bool, AppError> {
        let record = self.store.campaign(campaign).await?;
        Ok(record.is_some_and(|r| r.spec["kind"] == "optuna"))
    }

    /// An error naming `campaign` when there is none.
    pub(crate) async fn exists(&self, campaign: &str) -> Result<(), AppError> {
        self.store
            .campaign(campaign)
            .await?
            .ok_or_else(|| StoreError::NoCampaign(campaign.to_string()))?;
        Ok(())
    }

    /// The search space of `campaign`; `None` for an Optuna study, whose
    /// script defines the space as it samples.
    pub async fn space(
        &self,
        campaign: &str,
    ) -> Result<Option<firebreak_core::SearchSpace>, AppError> {
        match self.spec(campaign).await {
            Ok(spec) => Ok(Some(spec.space)),
            Err(_) if self.is_optuna(campaign).await? => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn campaign_state(
        &self,
        name: &str,
        n_trials: u64,
        finished: u64,
    ) -> Result<String, AppError> {
        if let Some(holder) = self.store.lock_holder(name).await? {
            return Ok(format!("running ({holder})"));
        }
        // Joined workers hold no lock: a run whose lease is alive is one.
        let runs = self.store.runs(name).await?;
        let now = firebreak_core::Clock::now(&firebreak_core::SystemClock);
        let live: Vec<String> = runs
            .iter()
            .filter(|r| r.live_at(now))
            .map(|r| format!("{}:{}", r.info.host, r.info.pid))
            .collect();
        if !live.is_empty() {
            return Ok(format!(
                "running ({} worker{} holding a lease: {})",
                live.len(),
                if live.len() == 1 { "" } else { "s" },
                live.join(", ")
            ));
        }
        let pending: Vec<String> = self
            .store
            .requests(Some(name))
            .await?
            .into_iter()
            .filter(|r| r.state == RequestState::Pending)
            .map(|r| format!("{} {}", r.body.id, r.body.kind))
            .collect();
        if !pending.is_empty() {
            return Ok(format!(
                "halted at a firebreak (pending: {}; `firebreak requests {name}`)",
                pending.join(", ")
            ));
        }
        if finished >= n_trials {
            return Ok("done".to_string());
        }
        Ok(match runs.last().and_then(|r| r.end_reason.as_deref()) {
            Some(reason) if reason.starts_with("limit") => format!("halted ({reason})"),
            Some(reason) => format!("stopped ({reason})"),
            None => "stopped (its last run died; `run` resumes it)".to_string(),
        })
    }

    /// Every campaign with its state and progress, by name.
    pub async fn campaigns(&self) -> Result<Vec<CampaignListing>, AppError> {
        let mut list = Vec::new();
        // Optuna studies live in the ledger alone: read it once for all.
        let mut studies = None;
        for summary in self.store.campaigns().await? {
            let name = summary.campaign.name.clone();
            if summary.campaign.spec["kind"] == "optuna" {
                if studies.is_none() {
                    let ledger = self.store.ledger().await?;
                    studies = Some(firebreak_ledger::optuna::studies_from(&ledger));
                }
                let Some(all) = studies.as_ref() else {
                    continue;
                };
                let study = crate::optuna::view(&name, &summary.campaign.spec, all);
                list.push(CampaignListing {
                    name,
                    state: study.state,
                    n_trials: study.n_trials,
                    counts: firebreak_runner::counts_of(&study.trials),
                    created_at: format_rfc3339(summary.campaign.created_at),
                });
                continue;
            }
            let n_trials = summary.campaign.spec["search"]["n_trials"]
                .as_u64()
                .unwrap_or(0);
            let counts = summary.counts;
            let state = self
                .campaign_state(&name, n_trials, counts.finished())
                .await?;
            list.push(CampaignListing {
                name,
                state,
                n_trials,
                counts,
                created_at: format_rfc3339(summary.campaign.created_at),
            });
        }
        Ok(list)
    }

    /// The campaigns with fewer finished trials than their `n_trials`, by name
    /// (the ones a worker with no campaign named serves).
    pub async fn unfinished(&self) -> Result<Vec<String>, AppError> {
        let mut open = Vec::new();
        for summary in self.store.campaigns().await? {
            if summary.campaign.spec["kind"] == "optuna" {
                // Optuna drives its studies; no worker runs them.
                continue;
            }
            let spec =
                CampaignSpec::from_canonical(&summary.campaign.spec, &summary.campaign.name)?;
            if summary.counts.finished() < spec.spec.search.n_trials {
                open.push(summary.campaign.name);
            }
        }
        Ok(open)
    }

    /// One campaign's state, progress, best so far, generations and agent tokens.
    pub async fn status(&self, name: &str) -> Result<CampaignStatus, AppError> {
        if let Some(study) = self.optuna_study(name).await? {
            let best = study
                .objectives
                .best(&study.trials)
                .into_iter()
                .cloned()
                .collect();
            return Ok(CampaignStatus {
                campaign: name.to_string(),
                state: study.state,
                n_trials: study.n_trials,
                counts: firebreak_runner::counts_of(&study.trials),
                generations: None,
                llm_tokens: None,
                best,
                metric: study.objectives.metrics[0].clone(),
                max_llm_tokens: None,
            });
        }
        let spec = self.spec(name).await?;
        let trials = self.with_tests(name).await?;
        let counts = self.store.counts(name).await?;
        let n_trials = spec.spec.search.n_trials;
        let state = self
            .campaign_state(name, n_trials, counts.finished())
            .await?;
        let best: Vec<Trial> = spec.objectives.best(&trials).into_iter().cloned().collect();
        let ledger = self.store.ledger().await?;
        let llm_tokens = llm_tokens(&ledger, name);
        // With generations: the latest one and the last promoted champion.
        let generations = match &spec.spec.generations {
            None => None,
            Some(settings) => {
                let requests = self.store.requests(Some(name)).await?;
                let gens = crate::lineage::generations(&ledger, name, &requests, &trials);
                let promoted = gens.iter().rev().find(|g| g["promoted"] == true);
                Some(json!({
                    "current": gens.last().map(|g| g["generation"].clone()),
                    "state": gens.last().map(|g| g["state"].clone()),
                    "count": settings.count,
                    "last_promoted": promoted.map(|g| json!({
                        "generation": g["generation"],
                        "champion": g["champion"],
                        "value": g["value"],
                    })),
                }))
            }
        };
        Ok(CampaignStatus {
            campaign: name.to_string(),
            state,
            n_trials,
            counts,
            generations,
            llm_tokens,
            best,
            metric: spec.objectives.metrics[0].clone(),
            max_llm_tokens: spec.spec.constraints.max_llm_tokens,
        })
    }

    /// A campaign's trials for display: the champion's test result joins its
    /// `metrics` (the Trial JSON of `contract.md`), while the stored trial, which
    /// proposers and schedulers read, never carries it.
    pub(crate) async fn with_tests(&self, campaign: &str) -> Result<Vec<Trial>, AppError> {
        let mut trials = self.store.trials(campaign).await?;
        let tests = self.store.tests(campaign).await?;
        for trial in &mut trials {
            if let Some(test) = tests.get(&trial.number) {
                trial
                    .metrics
                    .extend(test.iter().map(|(k, v)| (k.clone(), *v)));
            }
        }
        Ok(trials)
    }

    /// The campaign's trials with their test results; with `generation`, only
    /// that generation's (an error for a campaign without `[generations]`).
    pub async fn trials(
        &self,
        campaign: &str,
        generation: Option<u32>,
    ) -> Result<Trials, AppError> {
        if let Some(study) = self.optuna_study(campaign).await? {
            if generation.is_some() {
                return Err(AppError::Invalid(format!(
                    "campaign {campaign} is an Optuna study, so no trial has a generation"
                )));
            }
            return Ok(Trials {
                objectives: study.objectives,
                trials: study.trials,
            });
        }
        let spec = self.spec(campaign).await?;
        let mut trials = self.with_tests(campaign).await?;
        if let Some(generation) = generation {
            if spec.spec.generations.is_none() {
                return Err(AppError::Invalid(format!(
                    "campaign {campaign} has no [generations], so no trial has a generation"
                )));
            }
            trials.retain(|t| t.generation == Some(generation));
        }
        Ok(Trials {
            objectives: spec.objectives,
            trials,
        })
    }

    /// The best trial (several objectives: the Pareto set), of one generation
    /// with `generation`; an error when no trial is complete.
    pub async fn best(&self, campaign: &str, generation: Option<u32>) -> Result<Best, AppError> {
        let Trials { objectives, trials } = self.trials(campaign, generation).await?;
        let best: Vec<Trial> = objectives.best(&trials).into_iter().cloned().collect();
        if best.is_empty() {
            return Err(AppError::NoCompleteTrial);
        }
        Ok(Best(Trials {
            objectives,
            trials: best,
        }))
    }

    /// The stored log tail of a trial (`None` until it has finished).
    pub async fn log(&self, campaign: &str, number: u64) -> Result<Option<String>, AppError> {
        self.spec(campaign).await?;
        Ok(self.store.log(campaign, number).await?)
    }

    /// Queues a configuration `person` chose; it runs before new proposals.
    /// A float parameter given as an integer is a float; every active parameter
    /// must be inside its range. Returns the queued trial's number.
    pub async fn enqueue(
        &self,
        campaign: &str,
        person: &Principal,
        raw: Params,
    ) -> Result<u64, AppError> {
        let spec = self.spec(campaign).await?;
        let params: Params = raw
            .into_iter()
            .map(|(k, v)| {
                let is_float = matches!(
                    spec.space.get(&k).map(|p| &p.distribution),
                    Some(Distribution::Float { .. })
                );
                match v {
                    ParamValue::Int(i) if is_float => (k, ParamValue::Float(i as f64)),
                    v => (k, v),
                }
            })
            .collect();
        spec.space.validate(&params).map_err(|e| {
            AppError::Invalid(format!(
                "{e}\nhint: give every active parameter of campaign {campaign:?} a value inside its range"
            ))
        })?;
        Ok(firebreak_runner::enqueue(&self.store, campaign, person, params).await?)
    }
}

/// Each parameter's importance for the first objective, largest first and
/// summing to 1: PED-ANOVA over the complete trials, the best 10 % against all
/// (`firebreak_search::importance`).
pub fn importance(space: &firebreak_core::SearchSpace, trials: &Trials) -> Vec<(String, f64)> {
    let (Some(metric), Some(direction)) = (
        trials.objectives.metrics.first(),
        trials.objectives.directions.first(),
    ) else {
        return Vec::new();
    };
    let view: Vec<(&Params, f64)> = trials
        .trials
        .iter()
        .filter(|t| t.state == firebreak_core::TrialState::Complete)
        .filter_map(|t| Some((&t.params, *t.metrics.get(metric)?)))
        .collect();
    firebreak_search::importance(space, &view, *direction, 0.1)
}

/// Checks a spec as `run` would take it, running nothing: its proposer and
/// scheduler options, its policy (loaded from `spec_dir`, the spec file's
/// folder, and validated against the schema) and its task.
pub fn validate(spec: &mut CampaignSpec, spec_dir: &Path) -> Result<(), AppError> {
    firebreak_runner::components(spec)?;
    firebreak_runner::load_policy(spec, spec_dir)?;
    firebreak_runner::authorizer(spec)?;
    firebreak_runner::Executor::from_spec(spec, spec_dir, "trials".into())?;
    Ok(())
}

/// Tokens the campaign's agents used, from its `agent_answered` entries (`None`
/// when it never asked one).
fn llm_tokens(ledger: &[Entry], campaign: &str) -> Option<u64> {
    let mut total = None;
    for entry in ledger {
        if entry.campaign != campaign || entry.kind != "agent_answered" {
            continue;
        }
        let payload: Value = serde_json::from_str(&entry.payload).unwrap_or_default();
        let data = &payload["data"];
        let tokens = data["prompt_tokens"].as_u64().unwrap_or(0)
            + data["completion_tokens"].as_u64().unwrap_or(0);
        total = Some(total.unwrap_or(0) + tokens);
    }
    total
}

//! The JSON API under `/api/v1`: campaigns, trials, the ledger, checkpoints,
//! proofs, change requests and signed decisions, a background `audit verify`,
//! and the OpenAPI document, which utoipa derives from these handlers and the
//! schema types below (never written by hand).
//!
//! Every handler authenticates ([`Auth`]), checks the caller's role where it
//! changes something, makes one call into the application layer and returns
//! its data; no rule lives here. The schema types describe the JSON the
//! application layer writes (`contract.md`'s Trial JSON and Requests JSON);
//! a test holds each to what is really sent.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use firebreak_app::{Signer, trial_json};
use firebreak_core::{Params, TrialState};
use firebreak_govern::Principal;
use firebreak_ledger::Verdict;
use firebreak_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use crate::Shared;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorBody};
use crate::jobs::{Job, JobState};

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "firebreak", description = "firebreak's HTTP API: campaigns, trials, the tamper-evident ledger, change requests and signed decisions."),
    paths(
        health, campaigns, campaign, trials, trial, trial_log, enqueue, lineage, importance, ledger, proof,
        checkpoints, requests, request, decide, start_verify, verify_job, whoami,
        crate::events::events
    ),
    components(schemas(
        ErrorBody, Health, Counts, CampaignItem, CampaignState, TrialJson, Report, TrialPage,
        EnqueueBody, Enqueued, Importance, LedgerEntry, LedgerPage, RequestJson, DecisionJson, DecisionBody,
        JobJson, Me
    )),
    modifiers(&BearerToken),
    tags(
        (name = "campaigns", description = "Campaigns and their trials"),
        (name = "ledger", description = "The ledger, checkpoints and proofs"),
        (name = "requests", description = "Change requests and signed decisions"),
        (name = "events", description = "Live events"),
    )
)]
pub(crate) struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token from `firebreak tokens new`"))
                    .build(),
            ),
        );
    }
}

type Answer<T> = Result<Json<T>, ApiError>;

/// The server is up.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    pub(crate) status: String,
    /// firebreak's version.
    pub(crate) version: String,
}

/// Whether the server is up (no token needed).
#[utoipa::path(get, path = "/api/v1/health", tag = "campaigns", responses((status = 200, body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Me {
    /// The token's id.
    pub(crate) token: String,
    /// Who it was issued to.
    pub(crate) name: String,
    /// `auditor`, `researcher`, `approver` or `admin`.
    pub(crate) role: String,
}

/// Who the token belongs to.
#[utoipa::path(get, path = "/api/v1/me", tag = "campaigns", responses((status = 200, body = Me), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn whoami(auth: Auth) -> Json<Me> {
    Json(Me {
        token: auth.caller.token,
        name: auth.caller.name,
        role: auth.caller.role.as_str().into(),
    })
}

/// Trials by state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Counts {
    pub(crate) queued: u64,
    pub(crate) running: u64,
    pub(crate) complete: u64,
    pub(crate) pruned: u64,
    pub(crate) failed: u64,
}

/// One campaign in the list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct CampaignItem {
    /// Its name.
    pub(crate) name: String,
    /// Running (by whom), halted at a firebreak (why), done, or stopped (why).
    pub(crate) state: String,
    /// Trials it runs in all.
    pub(crate) n_trials: u64,
    pub(crate) counts: Counts,
    /// When it was created (RFC 3339).
    pub(crate) created_at: String,
    /// Change requests waiting for decisions.
    pub(crate) pending_requests: u64,
    /// The best value so far of the first objective, if any trial is complete.
    #[schema(nullable)]
    pub(crate) best: Option<f64>,
    /// The first objective's metric.
    pub(crate) metric: String,
}

fn counts(c: &firebreak_store::Counts) -> Counts {
    Counts {
        queued: c.queued,
        running: c.running,
        complete: c.complete,
        pruned: c.pruned,
        failed: c.failed,
    }
}

/// Every campaign with its state, progress, best and pending requests.
#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns", responses((status = 200, body = [CampaignItem]), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn campaigns<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    _auth: Auth,
) -> Answer<Vec<CampaignItem>> {
    Ok(Json(campaign_items(&shared).await?))
}

/// The campaign list, as the API and the dashboard show it.
pub(crate) async fn campaign_items<S: Store + Clone>(
    shared: &Shared<S>,
) -> Result<Vec<CampaignItem>, ApiError> {
    let items = shared
        .kept("campaigns".into(), || read_campaign_items(shared))
        .await?;
    Ok(items.as_ref().clone())
}

async fn read_campaign_items<S: Store + Clone>(
    shared: &Shared<S>,
) -> Result<Vec<CampaignItem>, ApiError> {
    let app = &shared.app;
    let pending = app.requests(None).await?;
    let mut items = Vec::new();
    for c in app.campaigns().await? {
        let status = app.status(&c.name).await?;
        items.push(CampaignItem {
            pending_requests: pending
                .iter()
                .filter(|r| {
                    r.body.campaign == c.name && r.state == firebreak_ledger::RequestState::Pending
                })
                .count() as u64,
            best: status
                .best
                .first()
                .and_then(|t| t.metrics.get(&status.metric))
                .copied(),
            metric: status.metric.clone(),
            name: c.name,
            state: c.state,
            n_trials: c.n_trials,
            counts: counts(&c.counts),
            created_at: c.created_at,
        });
    }
    Ok(items)
}

/// One campaign's state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct CampaignState {
    /// Its name.
    pub(crate) campaign: String,
    /// Running (by whom), halted at a firebreak (why), done, or stopped (why).
    pub(crate) state: String,
    /// Trials it runs in all.
    pub(crate) n_trials: u64,
    pub(crate) counts: Counts,
    /// The best trial (several objectives: the Pareto set).
    pub(crate) best: Vec<TrialJson>,
    /// The first objective's metric.
    pub(crate) metric: String,
    /// `minimize` or `maximize`, per objective.
    pub(crate) directions: Vec<String>,
    /// The objectives' metrics.
    pub(crate) metrics: Vec<String>,
    /// With `[generations]`: the current one and its state.
    #[schema(value_type = Option<Object>, nullable)]
    pub(crate) generations: Option<Value>,
    /// Tokens its language-model agents used.
    #[schema(nullable)]
    pub(crate) llm_tokens: Option<u64>,
}

/// A campaign's state, progress and best.
#[utoipa::path(get, path = "/api/v1/campaigns/{name}", tag = "campaigns", params(("name" = String, Path, description = "The campaign")), responses((status = 200, body = CampaignState), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn campaign<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    _auth: Auth,
    Path(name): Path<String>,
) -> Answer<CampaignState> {
    Ok(Json(campaign_state(&shared, &name).await?))
}

pub(crate) async fn campaign_state<S: Store + Clone>(
    shared: &Shared<S>,
    name: &str,
) -> Result<CampaignState, ApiError> {
    let state = shared
        .kept(format!("state/{name}"), || {
            read_campaign_state(shared, name)
        })
        .await?;
    Ok(state.as_ref().clone())
}

async fn read_campaign_state<S: Store + Clone>(
    shared: &Shared<S>,
    name: &str,
) -> Result<CampaignState, ApiError> {
    let status = shared.app.status(name).await?;
    let objectives = shared.trials(name).await?.objectives.clone();
    Ok(CampaignState {
        campaign: status.campaign,
        state: status.state,
        n_trials: status.n_trials,
        counts: counts(&status.counts),
        best: status.best.iter().map(TrialJson::of).collect(),
        metric: status.metric,
        directions: objectives
            .directions
            .iter()
            .map(|d| {
                serde_json::to_value(d)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            })
            .collect(),
        metrics: objectives.metrics.clone(),
        generations: status.generations,
        llm_tokens: status.llm_tokens,
    })
}

/// An intermediate report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct Report {
    /// The step (epoch, budget) it was made at.
    pub(crate) step: u64,
    /// Metric values.
    #[schema(value_type = Object)]
    pub(crate) metrics: Value,
}

/// A trial: `contract.md`'s Trial JSON.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct TrialJson {
    pub(crate) number: u64,
    /// `queued`, `running`, `pruned`, `complete` or `failed`.
    pub(crate) state: String,
    /// Parameter values by name.
    #[schema(value_type = Object)]
    pub(crate) params: Value,
    /// Final metrics by name.
    #[schema(value_type = Object)]
    pub(crate) metrics: Value,
    pub(crate) intermediate: Vec<Report>,
    #[schema(nullable)]
    pub(crate) error: Option<String>,
    pub(crate) proposer: String,
    pub(crate) rationale: String,
    #[schema(nullable)]
    pub(crate) retry_of: Option<u64>,
    #[schema(nullable)]
    pub(crate) started_at: Option<String>,
    #[schema(nullable)]
    pub(crate) finished_at: Option<String>,
    #[schema(nullable)]
    pub(crate) cpu_seconds: Option<f64>,
    #[schema(nullable)]
    pub(crate) wall_seconds: Option<f64>,
    #[schema(nullable)]
    pub(crate) generation: Option<u32>,
}

impl TrialJson {
    /// The application's Trial JSON, read back into the documented type (a
    /// mismatch would fail the schema test, never reach a caller silently).
    fn of(trial: &firebreak_core::Trial) -> TrialJson {
        serde_json::from_value(trial_json(trial)).unwrap_or_else(|e| TrialJson {
            number: trial.number,
            state: "failed".into(),
            params: json!({}),
            metrics: json!({}),
            intermediate: Vec::new(),
            error: Some(format!("this trial cannot be shown: {e}")),
            proposer: String::new(),
            rationale: String::new(),
            retry_of: None,
            started_at: None,
            finished_at: None,
            cpu_seconds: None,
            wall_seconds: None,
            generation: None,
        })
    }
}

/// Which trials, in which order, which page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TrialQuery {
    /// Only trials in this state.
    pub(crate) state: Option<String>,
    /// Only trials with this parameter value (`name=value`).
    pub(crate) param: Option<String>,
    /// Sort by `number` (default), `value` (the first objective) or `wall_seconds`.
    pub(crate) sort: Option<String>,
    /// Newest or largest first.
    #[serde(default)]
    pub(crate) desc: bool,
    /// Trials to skip.
    #[serde(default)]
    pub(crate) offset: u64,
    /// Trials in the page (default 50, at most 1000).
    pub(crate) limit: Option<u64>,
}

impl TrialQuery {
    /// A query from the dashboard's filter form.
    pub(crate) fn new(
        state: &str,
        sort: &str,
        desc: bool,
        param: &str,
        offset: u64,
        limit: u64,
    ) -> Self {
        let given = |s: &str| (!s.is_empty()).then(|| s.to_string());
        TrialQuery {
            state: given(state),
            param: given(param),
            sort: given(sort),
            desc,
            offset,
            limit: Some(limit),
        }
    }
}

/// A page of trials.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TrialPage {
    /// Trials that match the filter.
    pub(crate) total: u64,
    pub(crate) offset: u64,
    pub(crate) limit: u64,
    pub(crate) trials: Vec<TrialJson>,
}

/// A campaign's trials: filtered, sorted and paged.
#[utoipa::path(get, path = "/api/v1/campaigns/{name}/trials", tag = "campaigns", params(("name" = String, Path, description = "The campaign"), TrialQuery), responses((status = 200, body = TrialPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn trials<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    _auth: Auth,
    Path(name): Path<String>,
    Query(query): Query<TrialQuery>,
) -> Answer<TrialPage> {
    Ok(Json(trial_page(&shared, &name, &query).await?))
}

pub(crate) async fn trial_page<S: Store + Clone>(
    shared: &Shared<S>,
    name: &str,
    query: &TrialQuery,
) -> Result<TrialPage, ApiError> {
    let state = match query.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(serde_json::from_value::<TrialState>(json!(s)).map_err(|_| {
            ApiError::BadRequest(format!(
                "unknown state '{s}': one of queued, running, pruned, complete, failed"
            ))
        })?),
    };
    let param = match query.param.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(p.split_once('=').ok_or_else(|| {
            ApiError::BadRequest(format!("param filter '{p}' must be name=value"))
        })?),
    };
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let all = shared.trials(name).await?;
    let metric = all.objectives.metrics.first().cloned().unwrap_or_default();
    let mut chosen: Vec<&firebreak_core::Trial> = all
        .trials
        .iter()
        .filter(|t| state.is_none_or(|s| t.state == s))
        .filter(|t| {
            param.is_none_or(|(k, v)| {
                t.params
                    .get(k)
                    .is_some_and(|p| firebreak_app::format_param(p) == v || p.to_string() == v)
            })
        })
        .collect();
    match query.sort.as_deref().unwrap_or("number") {
        "number" => {}
        "value" => chosen.sort_by(|a, b| {
            let v = |t: &firebreak_core::Trial| t.metrics.get(&metric).copied();
            match (v(a), v(b)) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.number.cmp(&b.number),
            }
        }),
        "wall_seconds" => chosen.sort_by(|a, b| {
            a.wall_seconds
                .unwrap_or(f64::INFINITY)
                .total_cmp(&b.wall_seconds.unwrap_or(f64::INFINITY))
        }),
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown sort '{other}': one of number, value, wall_seconds"
            )));
        }
    }
    if query.desc {
        chosen.reverse();
    }
    let total = chosen.len() as u64;
    let trials = chosen
        .into_iter()
        .skip(query.offset.min(usize::MAX as u64) as usize)
        .take(limit as usize)
        .map(TrialJson::of)
        .collect();
    Ok(TrialPage {
        total,
        offset: query.offset,
        limit,
        trials,
    })
}

/// One trial explained: why it was proposed, what allowed it, its ledger
/// entries and the inclusion proof of its proposal.
#[utoipa::path(get, path = "/api/v1/campaigns/{name}/trials/{number}", tag = "campaigns", params(("name" = String, Path, description = "The campaign"), ("number" = u64, Path, description = "The trial")), responses((status = 200, description = "The explanation (as `firebreak explain --format json`)", body = Object), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn trial<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    _auth: Auth,
    Path((name, number)): Path<(String, u64)>,
) -> Answer<Value> {
    let explanation = shared.app.explain(&name, number).await?;
    Ok(Json(serde_json::to_value(explanation).map_err(|e| {
        ApiError::App(firebreak_app::AppError::Invalid(e.to_string()))
    })?))
}

/// A trial's log tail.
#[utoipa::path(get, path = "/api/v1/campaigns/{name}/trials/{number}/log", tag = "campaigns", params(("name" = String, Path, description = "The campaign"), ("number" = u64, Path, description = "The trial")), responses((status = 200, description = "The stored log tail (empty until the trial has finished)", body = String, content_type = "text/plain"), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn trial_log<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    _auth: Auth,
    Path((name, number)): Path<(String, u64)>,
) -> Result<String, ApiError> {
    Ok(shared.app.log(&name, number).await?.unwrap_or_default())
}

/// A configuration to queue.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct EnqueueBody {
    /// Parameter values by name; every active parameter inside its range.
    #[schema(value_type = Object)]
    pub(crate) params: Params,
}

/// The queued trial.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Enqueued {
    pub(crate) number: u64,
}

/// Queues a configuration (researchers and admins); it runs before new proposals.
#[utoipa::path(post, path = "/api/v1/campaigns/{name}/enqueue", tag = "campaigns", params(("name" = String, Path, description = "The campaign")), request_body = EnqueueBody, responses((status = 200, body = Enqueued), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn enqueue<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    auth: Auth,
    Path(name): Path<String>,
    Json(body): Json<EnqueueBody>,
) -> Answer<Enqueued> {
    auth.may_run()?;
    // A token holder acts without a key: recorded as who the token names.
    let person = Principal::Local {
        user: format!("token:{}", auth.caller.name),
    };
    let number = shared.app.enqueue(&name, &person, body.params).await?;
    Ok(Json(Enqueued { number }))
}

/// A parameter's importance.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Importance {
    /// The parameter.
    pub(crate) param: String,
    /// Its share of the importance (all parameters sum to 1).
    pub(crate) importance: f64,
}

/// Each parameter's importance for the first objective (PED-ANOVA: the best
/// 10 % of complete trials against all of them), largest first.
#[utoipa::path(get, path = "/api/v1/campaigns/{name}/importance", tag = "campaigns", params(("name" = String, Path, description = "The campaign")), responses((status = 200, body = [Importance]), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn importance<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    _auth: Auth,
    Path(name): Path<String>,
) -> Answer<Vec<Importance>> {
    Ok(Json(importances(&shared, &name).await?))
}

pub(crate) async fn importances<S: Store + Clone>(
    shared: &Shared<S>,
    name: &str,
) -> Result<Vec<Importance>, ApiError> {
    // An Optuna study's space is its script's: nothing to rank against.
    let Some(space) = shared.app.space(name).await? else {
        return Ok(Vec::new());
    };
    let trials = shared.trials(name).await?;
    Ok(firebreak_app::importance(&space, &trials)
        .into_iter()
        .map(|(param, importance)| Importance { param, importance })
        .collect())
}

/// A campaign's generations.
#[utoipa::path(get, path = "/api/v1/campaigns/{name}/lineage", tag = "campaigns", params(("name" = String, Path, description = "The campaign")), responses((status = 200, description = "As `firebreak lineage --format json`", body = Object), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn lineage<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    _auth: Auth,
    Path(name): Path<String>,
) -> Answer<Value> {
    let lineage = shared.app.lineage(&name).await?;
    Ok(Json(
        json!({"campaign": lineage.campaign, "generations": lineage.generations}),
    ))
}

/// A ledger entry.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LedgerEntry {
    pub(crate) seq: u64,
    pub(crate) campaign: String,
    pub(crate) kind: String,
    /// The canonical payload, parsed.
    #[schema(value_type = Object)]
    pub(crate) payload: Value,
    /// The entry's hash (hex).
    pub(crate) hash: String,
}

/// A page of the ledger.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LedgerPage {
    /// Entries in the whole ledger.
    pub(crate) size: u64,
    pub(crate) entries: Vec<LedgerEntry>,
}

/// Which entries.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LedgerQuery {
    /// The first sequence number (default: the newest page).
    pub(crate) from: Option<u64>,
    /// Entries in the page (default 100, at most 1000).
    pub(crate) limit: Option<u64>,
    /// Only entries of this kind.
    pub(crate) kind: Option<String>,
    /// Only entries of this campaign.
    pub(crate) campaign: Option<String>,
    /// Only entries whose payload contains this text.
    pub(crate) q: Option<String>,
}

impl LedgerQuery {
    /// A query from the dashboard's search form.
    pub(crate) fn new(from: Option<u64>, limit: u64, kind: &str, q: &str) -> Self {
        let given = |s: &str| (!s.is_empty()).then(|| s.to_string());
        LedgerQuery {
            from,
            limit: Some(limit),
            kind: given(kind),
            campaign: None,
            q: given(q),
        }
    }
}

/// Ledger entries, paged; filtered by kind, campaign or text within the page's range.
#[utoipa::path(get, path = "/api/v1/ledger", tag = "ledger", params(LedgerQuery), responses((status = 200, body = LedgerPage), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn ledger<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    _auth: Auth,
    Query(query): Query<LedgerQuery>,
) -> Answer<LedgerPage> {
    Ok(Json(ledger_page(&shared, &query).await?))
}

pub(crate) async fn ledger_page<S: Store + Clone>(
    shared: &Shared<S>,
    query: &LedgerQuery,
) -> Result<LedgerPage, ApiError> {
    let store = shared.app.store();
    let size = store.ledger_size().await?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let from = query.from.unwrap_or(size.saturating_sub(limit));
    let filtered = query.kind.is_some() || query.campaign.is_some() || query.q.is_some();
    // A filtered page scans forward from `from` until it has `limit` matches.
    let mut entries = Vec::new();
    let mut next = from;
    while next < size && (entries.len() as u64) < limit {
        let chunk = store
            .ledger_range(next, if filtered { 2000 } else { limit })
            .await?;
        let Some(last) = chunk.last() else { break };
        next = last.seq + 1;
        for e in chunk {
            let keep = query.kind.as_ref().is_none_or(|k| e.kind == *k)
                && query.campaign.as_ref().is_none_or(|c| e.campaign == *c)
                && query
                    .q
                    .as_ref()
                    .is_none_or(|q| q.is_empty() || e.payload.contains(q.as_str()));
            if keep && (entries.len() as u64) < limit {
                entries.push(LedgerEntry {
                    seq: e.seq,
                    payload: serde_json::from_str(&e.payload).unwrap_or(Value::Null),
                    hash: firebreak_ledger::hex(&e.hash),
                    campaign: e.campaign,
                    kind: e.kind,
                });
            }
        }
    }
    Ok(LedgerPage { size, entries })
}

/// The inclusion proof of one entry, against the newest signed checkpoint that covers it.
#[utoipa::path(get, path = "/api/v1/ledger/{seq}/proof", tag = "ledger", params(("seq" = u64, Path, description = "The entry")), responses((status = 200, description = "As `firebreak audit prove --format json`", body = Object), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn proof<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    _auth: Auth,
    Path(seq): Path<u64>,
) -> Answer<Value> {
    let proof = shared.app.prove(seq).await?;
    Ok(Json(json!(proof)))
}

/// Every signed checkpoint, oldest first.
#[utoipa::path(get, path = "/api/v1/checkpoints", tag = "ledger", responses((status = 200, description = "Signed checkpoints (`docs/ledger-format.md`)", body = [Object]), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn checkpoints<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    _auth: Auth,
) -> Answer<Vec<Value>> {
    let all = shared.app.store().checkpoints().await?;
    Ok(Json(all.iter().map(|c| json!(c)).collect()))
}

/// A signed decision on a request.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DecisionJson {
    /// `approve` or `reject`.
    pub(crate) decision: String,
    /// The hash of the request it decides.
    pub(crate) request: String,
    /// Who decided.
    pub(crate) by: String,
    /// Their public key (`ed25519:…`).
    pub(crate) key: String,
    pub(crate) reason: String,
    /// Base64 Ed25519 signature.
    pub(crate) signature: String,
}

/// A change request: `contract.md`'s Requests JSON.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RequestJson {
    pub(crate) id: String,
    pub(crate) campaign: String,
    /// `constraints`, `space`, `policy`, `approvers`, `evaluation`, `budget`, `tripwire` or `promotion`.
    pub(crate) kind: String,
    /// `pending`, `approved`, `rejected`, `expired` or `superseded`.
    pub(crate) state: String,
    /// The change, as an RFC 6902 patch (`op`, `path`, `value`) against the
    /// campaign's canonical spec; empty for a tripwire's request.
    #[schema(value_type = Vec<Object>)]
    pub(crate) diff: Value,
    pub(crate) requested_by: String,
    pub(crate) approvals: Vec<String>,
    pub(crate) rejections: Vec<String>,
    pub(crate) created_at: String,
    pub(crate) expires_at: String,
    pub(crate) reason: String,
    /// What justifies it (for a tripwire: the trials that tripped it).
    #[schema(value_type = Object, nullable)]
    pub(crate) evidence: Value,
    /// The request's hash: what decisions sign.
    pub(crate) hash: String,
    pub(crate) decisions: Vec<DecisionJson>,
}

impl RequestJson {
    fn of(r: &firebreak_ledger::Request) -> RequestJson {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let j = firebreak_app::request_json(r);
        RequestJson {
            id: r.body.id.clone(),
            campaign: r.body.campaign.clone(),
            kind: text(&j["kind"]),
            state: text(&j["state"]),
            diff: r.body.diff.clone(),
            requested_by: r.body.requested_by.clone(),
            approvals: r.approvals().into_iter().map(String::from).collect(),
            rejections: r.rejections().into_iter().map(String::from).collect(),
            created_at: r.body.created_at.clone(),
            expires_at: r.body.expires_at.clone(),
            reason: r.body.reason.clone(),
            evidence: j["evidence"].clone(),
            hash: r.hash.clone(),
            decisions: r
                .decisions
                .iter()
                .map(|d| DecisionJson {
                    decision: d.decision.as_str().to_string(),
                    request: d.request.clone(),
                    by: d.by.clone(),
                    key: d.key.clone(),
                    reason: d.reason.clone(),
                    signature: d.signature.clone(),
                })
                .collect(),
        }
    }
}

/// Which requests.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RequestQuery {
    /// Only this campaign's.
    pub(crate) campaign: Option<String>,
    /// Only requests in this state (`pending` for the inbox).
    pub(crate) state: Option<String>,
}

/// Change requests, oldest first.
#[utoipa::path(get, path = "/api/v1/requests", tag = "requests", params(RequestQuery), responses((status = 200, body = [RequestJson]), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn requests<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    _auth: Auth,
    Query(query): Query<RequestQuery>,
) -> Answer<Vec<RequestJson>> {
    let all = shared.app.requests(query.campaign.as_deref()).await?;
    Ok(Json(
        all.iter()
            .map(RequestJson::of)
            .filter(|r| query.state.as_ref().is_none_or(|s| r.state == *s))
            .collect(),
    ))
}

async fn find_request<S: Store + Clone>(
    shared: &Shared<S>,
    id: &str,
) -> Result<firebreak_ledger::Request, ApiError> {
    shared
        .app
        .requests(None)
        .await?
        .into_iter()
        .find(|r| r.body.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no change request '{id}'")))
}

/// One change request.
#[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "requests", params(("id" = String, Path, description = "The request")), responses((status = 200, body = RequestJson), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn request<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    _auth: Auth,
    Path(id): Path<String>,
) -> Answer<RequestJson> {
    Ok(Json(RequestJson::of(&find_request(&shared, &id).await?)))
}

/// A decision: the approver's name, the verdict, and their Ed25519 signature
/// over the decision message of `docs/ledger-format.md` (`firebreak sign`
/// prints one; the dashboard makes one in the browser).
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct DecisionBody {
    /// The approver's name, as listed in the campaign's `[governance] approvers`.
    pub(crate) by: String,
    /// `approve` or `reject`.
    pub(crate) verdict: String,
    /// Why (required for a rejection).
    #[serde(default)]
    pub(crate) reason: String,
    /// Base64 Ed25519 signature over the decision message.
    pub(crate) signature: String,
}

/// Records a signed decision (approvers and admins). The token only lets the
/// decision in: the signature decides, under every rule the CLI's `approve`
/// and `reject` follow.
#[utoipa::path(post, path = "/api/v1/requests/{id}/decision", tag = "requests", params(("id" = String, Path, description = "The request")), request_body = DecisionBody, responses((status = 200, body = RequestJson), (status = 400, body = ErrorBody), (status = 403, description = "The role may not decide, or the decision was refused (and ledgered)", body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn decide<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<DecisionBody>,
) -> Answer<RequestJson> {
    auth.may_decide()?;
    let verdict = match body.verdict.as_str() {
        "approve" => Verdict::Approve,
        "reject" => Verdict::Reject,
        other => {
            return Err(ApiError::BadRequest(format!(
                "verdict '{other}': approve or reject"
            )));
        }
    };
    if verdict == Verdict::Reject && body.reason.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "a rejection needs a reason".to_string(),
        ));
    }
    find_request(&shared, &id).await?;
    let signer = Signer::Signature {
        name: body.by,
        signature: body.signature,
    };
    let decided = shared
        .app
        .decide(&id, &signer, verdict, &body.reason)
        .await?;
    Ok(Json(RequestJson::of(&decided.request)))
}

/// A background `audit verify`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct JobJson {
    /// The job's id.
    pub(crate) id: u64,
    /// `running`, `done` or `failed`.
    pub(crate) state: String,
    /// When done: what `audit verify --format json` reports.
    #[schema(value_type = Option<Object>, nullable)]
    pub(crate) result: Option<Value>,
    /// When failed: why.
    #[schema(nullable)]
    pub(crate) error: Option<String>,
}

impl JobJson {
    fn of(id: u64, job: &Job) -> JobJson {
        let (state, result, error) = match &job.state {
            JobState::Running => ("running", None, None),
            JobState::Done(v) => ("done", Some(v.clone()), None),
            JobState::Failed(e) => ("failed", None, Some(e.clone())),
        };
        JobJson {
            id,
            state: state.into(),
            result,
            error,
        }
    }
}

/// Starts `audit verify` in the background.
#[utoipa::path(post, path = "/api/v1/verify", tag = "ledger", responses((status = 202, body = JobJson), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn start_verify<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    _auth: Auth,
) -> Result<(axum::http::StatusCode, Json<JobJson>), ApiError> {
    let (id, job) = shared.jobs.start(shared.app.clone())?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(JobJson::of(id, &job)),
    ))
}

/// A background `audit verify`'s state and result.
#[utoipa::path(get, path = "/api/v1/verify/{job}", tag = "ledger", params(("job" = u64, Path, description = "The job")), responses((status = 200, body = JobJson), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub(crate) async fn verify_job<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    _auth: Auth,
    Path(id): Path<u64>,
) -> Answer<JobJson> {
    let job = shared
        .jobs
        .get(id)
        .ok_or_else(|| ApiError::NotFound(format!("no verify job {id}")))?;
    Ok(Json(JobJson::of(id, &job)))
}

/// The OpenAPI document, as JSON.
pub(crate) fn openapi_json() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null)
}

/// Parameter names of a campaign's trials, for the dashboard's plots.
pub(crate) fn param_names(trials: &[firebreak_core::Trial]) -> Vec<String> {
    let mut names = BTreeMap::new();
    for t in trials {
        for k in t.params.keys() {
            names.insert(k.clone(), ());
        }
    }
    names.into_keys().collect()
}

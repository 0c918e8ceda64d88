//! The dashboard: server-rendered HTML pages over the same calls as the API,
//! with htmx for the trial table, uPlot for the plots, and our own
//! `dashboard.js` for live updates (the event stream), in-browser checks
//! (inclusion proofs against signed checkpoints) and signing decisions with
//! WebCrypto Ed25519 from a key file the person picks: the private key never
//! leaves the page, and the server receives only the signature.
//!
//! Pages: `/` (campaigns), `/campaigns/NAME` (plots and the trial table),
//! `/campaigns/NAME/trials/N`, `/ledger`, `/inbox` (pending requests), and
//! `/login`. Every page needs a session (signing in with an API token) and
//! carries the session's CSRF token for the script's requests. Browser
//! libraries are vendored (`assets/vendor/`, `scripts/vendor-js.sh`) and
//! served from the binary; no JavaScript build step.

use std::fmt::Write as _;

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use firebreak_app::{format_number, format_param};
use firebreak_ledger::RequestState;
use firebreak_store::Store;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Shared;
use crate::api::{LedgerQuery, TrialQuery, campaign_items, ledger_page, trial_page};
use crate::auth::{Auth, COOKIE};
use crate::error::{ApiError, Incident};

/// The dashboard's routes.
pub(crate) fn routes<S: Store + Clone>() -> Router<Shared<S>> {
    Router::new()
        .route("/", get(campaigns::<S>))
        .route("/login", get(login_form).post(login::<S>))
        .route("/logout", axum::routing::post(logout::<S>))
        .route("/campaigns/{name}", get(campaign::<S>))
        .route("/campaigns/{name}/table", get(table::<S>))
        .route("/campaigns/{name}/data", get(data::<S>))
        .route("/campaigns/{name}/trials/{number}", get(trial::<S>))
        .route("/ledger", get(ledger::<S>))
        .route("/inbox", get(inbox::<S>))
        .route("/assets/{file}", get(asset))
}

/// Escapes text for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON for a `<script type="application/json">` block: `<` escaped so the
/// data can never close the element.
fn data_json(value: &Value) -> String {
    value.to_string().replace('<', "\\u003c")
}

/// Percent-encodes a path segment.
fn seg(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A whole page around `body`.
fn page(title: &str, auth: &Auth, body: &str) -> Html<String> {
    let csrf = auth.csrf.as_deref().unwrap_or("");
    Html(format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{csrf}">
<link rel="icon" href="data:,">
<title>{title} · firebreak</title>
<link rel="stylesheet" href="/assets/uPlot.min.css">
<link rel="stylesheet" href="/assets/dashboard.css">
<script src="/assets/htmx.min.js" defer></script>
<script src="/assets/uPlot.iife.min.js" defer></script>
<script src="/assets/dashboard.js" defer></script>
</head><body>
<header><a class="brand" href="/">firebreak</a>
<nav><a href="/">Campaigns</a> <a href="/inbox" id="nav-inbox">Approvals</a> <a href="/ledger">Ledger</a></nav>
<span class="who">{who} ({role})</span>
<form method="post" action="/logout" class="logout"><input type="hidden" name="csrf" value="{csrf}"><button>Sign out</button></form>
</header>
<main>{body}</main>
</body></html>"##,
        csrf = esc(csrf),
        title = esc(title),
        who = esc(&auth.caller.name),
        role = auth.caller.role.as_str(),
    ))
}

/// A page's answer when the caller has no session: the sign-in form.
async fn session<S: Store + Clone>(
    shared: &Shared<S>,
    parts: &mut axum::http::request::Parts,
) -> Result<Auth, Response> {
    use axum::extract::FromRequestParts;
    Auth::from_request_parts(parts, shared)
        .await
        .map_err(|_| Redirect::to("/login").into_response())
}

/// An error as a small HTML page (or fragment, for htmx), its detail kept for
/// the log when it is an internal failure.
fn failure(error: ApiError) -> Response {
    let (status, message, log) = error.explain();
    let mut page = (
        status,
        Html(format!(
            "<p class=error id=error>{}</p><p><a href=\"/\">back</a></p>",
            esc(&message)
        )),
    )
        .into_response();
    if let Some(line) = log {
        page.extensions_mut().insert(Incident(line));
    }
    page
}

macro_rules! authed {
    ($shared:expr, $parts:expr) => {
        match session(&$shared, &mut $parts).await {
            Ok(auth) => auth,
            Err(response) => return response,
        }
    };
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return failure(ApiError::from(e)),
        }
    };
}

async fn login_form() -> Html<String> {
    Html(
        r##"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in · firebreak</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/dashboard.css"></head><body class="login">
<main><h1>firebreak</h1>
<form method="post" action="/login">
<label>API token <input type="password" name="token" id="token" autocomplete="off" required></label>
<button id="sign-in">Sign in</button>
<p class="hint">Make one with <code>firebreak tokens new NAME --role ROLE</code>.</p>
</form></main></body></html>"##
            .to_string(),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    Form(form): Form<LoginForm>,
) -> Response {
    use firebreak_core::Clock;
    let token = form.token.trim();
    if shared
        .app
        .authenticate(token, firebreak_core::SystemClock.now())
        .await
        .is_err()
    {
        return (
            StatusCode::UNAUTHORIZED,
            Html("<!doctype html><title>Sign in</title><p id=refused>That token is not valid (unknown, revoked or expired). <a href=\"/login\">Try again</a></p>".to_string()),
        )
            .into_response();
    }
    let Ok((id, _csrf)) = shared.sessions.open(token) else {
        return failure(ApiError::Busy("no session could be opened".into()));
    };
    let secure = if shared.secure { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{secure}");
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let form: Option<LogoutForm> = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|b| logout_form(&b));
    // The form carries the CSRF token (a plain form cannot set the header).
    if let (Some(id), Some(form)) = (crate::auth::cookie(&parts, COOKIE), form) {
        let id = id.to_string();
        parts.headers.insert(
            crate::auth::CSRF_HEADER,
            HeaderValue::from_str(&form.csrf).unwrap_or(HeaderValue::from_static("")),
        );
        if session(&shared, &mut parts).await.is_ok() {
            shared.sessions.close(&id);
        }
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "firebreak_session=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/",
        ),
    );
    response
}

fn logout_form(body: &[u8]) -> Option<LogoutForm> {
    let text = std::str::from_utf8(body).ok()?;
    let csrf = text
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == "csrf")
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    Some(LogoutForm { csrf })
}

async fn campaigns<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let auth = authed!(shared, parts);
    let items = tri!(campaign_items(&shared).await);
    let mut rows = String::new();
    for c in &items {
        let finished = c.counts.complete + c.counts.pruned + c.counts.failed;
        let _ = write!(
            rows,
            "<tr><td><a href=\"/campaigns/{link}\">{name}</a></td><td class=state>{state}</td>\
             <td><progress max=\"{n}\" value=\"{finished}\"></progress> {finished}/{n}</td>\
             <td>{best}</td><td>{pending}</td></tr>",
            link = seg(&c.name),
            name = esc(&c.name),
            state = esc(&c.state),
            n = c.n_trials,
            best = c
                .best
                .map(|b| format!("{} = {}", esc(&c.metric), format_number(b)))
                .unwrap_or_else(|| "–".into()),
            pending = if c.pending_requests > 0 {
                format!(
                    "<a href=\"/inbox\" class=pending>{}</a>",
                    c.pending_requests
                )
            } else {
                "0".into()
            },
        );
    }
    let body = format!(
        "<h1>Campaigns</h1><table id=campaigns><thead><tr><th>Campaign</th><th>State</th>\
         <th>Progress</th><th>Best</th><th>Pending requests</th></tr></thead><tbody>{rows}</tbody></table>"
    );
    page("Campaigns", &auth, &body).into_response()
}

async fn campaign<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let auth = authed!(shared, parts);
    let state = tri!(crate::api::campaign_state(&shared, &name).await);
    let data = tri!(campaign_data(&shared, &name).await);
    let metric = data["metric"].as_str().unwrap_or_default().to_string();
    let params: Vec<String> = serde_json::from_value(data["params"].clone()).unwrap_or_default();
    let importance: String = tri!(crate::api::importances(&shared, &name).await)
        .iter()
        .map(|i| {
            format!(
                "<tr><th>{}</th><td><div class=bar style=\"width:{:.1}%\"></div> {:.3}</td></tr>",
                esc(&i.param),
                i.importance * 100.0,
                i.importance
            )
        })
        .collect();
    let filter_options: String = params
        .iter()
        .map(|p| format!("<option value=\"{0}\">{0}</option>", esc(p)))
        .collect();
    let body = format!(
        r##"<h1>{title}</h1>
<p class=state id=campaign-state>{st}</p>
<p>{finished} of {n} finished · {complete} complete · {pruned} pruned · {failed} failed · {running} running</p>
<script type="application/json" id="campaign-data">{data}</script>
<section class=plots>
<figure><figcaption>Optimization history ({metric}, best so far)</figcaption><div id="plot-history"></div></figure>
<figure><figcaption>Intermediate values (pruned trials dashed)</figcaption><div id="plot-curves"></div></figure>
<figure><figcaption>Parallel coordinates</figcaption><canvas id="plot-parallel" width="900" height="320"></canvas></figure>
<figure><figcaption>Hyperparameter importance (PED-ANOVA: the best 10 % of complete trials against all)</figcaption><table id="importance">{importance}</table></figure>
<figure><figcaption>Slice: {metric} against <select id="slice-param">{filter_options}</select></figcaption><div id="plot-slice"></div></figure>
</section>
<h2>Trials</h2>
<form id="trial-filter" hx-get="/campaigns/{link}/table" hx-target="#trial-table" hx-trigger="change, submit, refresh">
<label>State <select name="state"><option value="">any</option><option value="complete">complete</option><option value="pruned">pruned</option><option value="failed">failed</option><option value="running">running</option><option value="queued">queued</option></select></label>
<label>Sort <select name="sort"><option value="number">number</option><option value="value">{metric}</option><option value="wall_seconds">wall time</option></select></label>
<label><input type="checkbox" name="desc" value="true"> descending</label>
<label>Parameter <input name="param" placeholder="name=value" size="14"></label>
</form>
<div id="trial-table" hx-get="/campaigns/{link}/table" hx-trigger="load"></div>"##,
        title = esc(&name),
        st = esc(&state.state),
        finished = state.counts.complete + state.counts.pruned + state.counts.failed,
        n = state.n_trials,
        complete = state.counts.complete,
        pruned = state.counts.pruned,
        failed = state.counts.failed,
        running = state.counts.running,
        data = data_json(&data),
        metric = esc(&metric),
        link = seg(&name),
    );
    page(&name, &auth, &body).into_response()
}

/// What the campaign page's plots draw: every finished trial's number, state,
/// first-objective value, parameters (in `params` order) and learning curve.
async fn campaign_data<S: Store + Clone>(
    shared: &Shared<S>,
    name: &str,
) -> Result<Value, ApiError> {
    let trials = shared.trials(name).await?;
    let metric = trials
        .objectives
        .metrics
        .first()
        .cloned()
        .unwrap_or_default();
    let params = crate::api::param_names(&trials.trials);
    let points: Vec<Value> = trials
        .trials
        .iter()
        .filter(|t| t.state.is_finished())
        .map(|t| {
            json!({
                "n": t.number,
                "state": t.state,
                "v": t.metrics.get(&metric),
                "p": params.iter().map(|k| t.params.get(k).map(param_number)).collect::<Vec<_>>(),
                "c": t.intermediate.iter().map(|r| json!([r.step, r.metrics.get(&metric)])).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(json!({
        "campaign": name,
        "metric": metric,
        "direction": trials.objectives.directions.first(),
        "params": params,
        "trials": points,
    }))
}

async fn data<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let _auth = authed!(shared, parts);
    match campaign_data(&shared, &name).await {
        Ok(data) => axum::Json(data).into_response(),
        Err(e) => e.into_response(),
    }
}

fn param_number(value: &firebreak_core::ParamValue) -> Value {
    use firebreak_core::ParamValue as P;
    match value {
        P::Bool(b) => json!(u8::from(*b)),
        P::Int(i) => json!(i),
        P::Float(f) => json!(f),
        P::Str(s) => json!(s),
    }
}

#[derive(Deserialize)]
struct TableQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    desc: Option<String>,
    #[serde(default)]
    param: String,
    #[serde(default)]
    offset: u64,
}

async fn table<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    Path(name): Path<String>,
    Query(q): Query<TableQuery>,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let _auth = authed!(shared, parts);
    let query = TrialQuery::new(&q.state, &q.sort, q.desc.is_some(), &q.param, q.offset, 50);
    let trials_page = tri!(trial_page(&shared, &name, &query).await);
    let all = tri!(shared.trials(&name).await);
    let metric = all.objectives.metrics.first().cloned().unwrap_or_default();
    let mut rows = String::new();
    for t in &trials_page.trials {
        let _ = write!(
            rows,
            "<tr data-number=\"{n}\"><td><a href=\"/campaigns/{link}/trials/{n}\">{n}</a></td><td class=\"st-{state}\">{state}</td><td>{value}</td><td>{params}</td><td>{wall}</td></tr>",
            n = t.number,
            link = seg(&name),
            state = esc(&t.state),
            value = t
                .metrics
                .get(&metric)
                .and_then(Value::as_f64)
                .map(format_number)
                .unwrap_or_else(|| "–".into()),
            params = esc(&t
                .params
                .as_object()
                .map(|m| m
                    .iter()
                    .map(|(k, v)| format!(
                        "{k}={}",
                        v.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| v.to_string())
                    ))
                    .collect::<Vec<_>>()
                    .join(" "))
                .unwrap_or_default()),
            wall = t
                .wall_seconds
                .map(|w| format!("{w:.1}s"))
                .unwrap_or_default(),
        );
    }
    let (total, offset) = (trials_page.total, q.offset);
    let pager = |label: &str, to: u64| {
        format!(
            "<button hx-get=\"/campaigns/{link}/table?offset={to}\" hx-include=\"#trial-filter\" hx-target=\"#trial-table\">{label}</button>",
            link = seg(&name)
        )
    };
    let mut nav = String::new();
    if offset > 0 {
        nav.push_str(&pager("← previous", offset.saturating_sub(50)));
    }
    if offset + 50 < total {
        nav.push_str(&pager("next →", offset + 50));
    }
    Html(format!(
        "<p class=count>{shown} of <span id=trial-total>{total}</span> trials from {from}</p>\
         <table id=trials><thead><tr><th>#</th><th>State</th><th>{metric}</th><th>Parameters</th><th>Wall</th></tr></thead>\
         <tbody>{rows}</tbody></table><nav class=pager>{nav}</nav>",
        shown = trials_page.trials.len(),
        from = offset,
        metric = esc(&metric),
    ))
    .into_response()
}

async fn trial<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    Path((name, number)): Path<(String, u64)>,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let auth = authed!(shared, parts);
    let explanation = tri!(shared.app.explain(&name, number).await);
    let trials = tri!(shared.trials(&name).await);
    let Some(t) = trials.trials.iter().find(|t| t.number == number) else {
        return failure(ApiError::NotFound(format!("no trial {number}")));
    };
    let log = tri!(shared.app.log(&name, number).await).unwrap_or_default();
    let params: String = t
        .params
        .iter()
        .map(|(k, v)| {
            format!(
                "<tr><th>{}</th><td>{}</td></tr>",
                esc(k),
                esc(&format_param(v))
            )
        })
        .collect();
    let metrics: String = t
        .metrics
        .iter()
        .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), format_number(*v)))
        .collect();
    let entries: String = explanation
        .ledger
        .iter()
        .map(|e| format!("<li><pre>{}</pre></li>", esc(&e.to_string())))
        .collect();
    let proof = json!(explanation.proposal_inclusion);
    let agent = if explanation.agent.is_null() {
        String::new()
    } else {
        format!(
            "<h2>Agent</h2><pre id=agent>{}</pre>",
            esc(&serde_json::to_string_pretty(&explanation.agent).unwrap_or_default())
        )
    };
    let body = format!(
        r##"<h1><a href="/campaigns/{link}">{campaign}</a> · trial {number}</h1>
<p>State <b class="st-{state}">{state}</b> · proposed by {proposer}{retry} · policy {policy}</p>
<p class=rationale>{rationale}</p>
<div class=cols><div><h2>Parameters</h2><table id=params>{params}</table></div>
<div><h2>Metrics</h2><table id=metrics>{metrics}</table></div></div>
{agent}
<h2>Inclusion proof of its proposal</h2>
<script type="application/json" id="proof-data">{proof}</script>
<p id="proof-check" class=pending>checking in the browser…</p>
<h2>Ledger entries</h2><ol class=entries>{entries}</ol>
<h2>Log tail</h2><pre id=log>{log}</pre>"##,
        link = seg(&name),
        campaign = esc(&name),
        state = t.state.as_str(),
        proposer = esc(&explanation.proposer),
        retry = t
            .retry_of
            .map(|r| format!(" · retry of {r}"))
            .unwrap_or_default(),
        policy = esc(&explanation.policy),
        rationale = esc(&explanation.rationale),
        proof = data_json(&proof),
        log = esc(&log),
    );
    page(&format!("{name} trial {number}"), &auth, &body).into_response()
}

#[derive(Deserialize)]
struct LedgerParams {
    from: Option<u64>,
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
}

async fn ledger<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    Query(p): Query<LedgerParams>,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let auth = authed!(shared, parts);
    let query = LedgerQuery::new(p.from, 50, &p.kind, &p.q);
    let entries = tri!(ledger_page(&shared, &query).await);
    let checkpoints = tri!(shared.app.store().checkpoints().await);
    let mut rows = String::new();
    for e in &entries.entries {
        let _ = write!(
            rows,
            "<tr data-seq=\"{seq}\"><td>{seq}</td><td>{campaign}</td><td>{kind}</td><td><code>{payload}</code></td></tr>",
            seq = e.seq,
            campaign = esc(&e.campaign),
            kind = esc(&e.kind),
            payload = esc(&truncate(&e.payload.to_string(), 300)),
        );
    }
    let newest = checkpoints.last().map_or_else(
        || "none yet".to_string(),
        |c| {
            format!(
                "tree size {}, root {}…, signed by {} at {}",
                c.tree_size,
                esc(&c.root[..16.min(c.root.len())]),
                esc(&c.key),
                esc(&c.at)
            )
        },
    );
    let size = entries.size;
    let first = entries.entries.first().map_or(size, |e| e.seq);
    let older = if first > 0 {
        format!(
            "<a href=\"/ledger?from={}&q={}&kind={}\">← older</a>",
            first.saturating_sub(50),
            seg(&p.q),
            seg(&p.kind)
        )
    } else {
        String::new()
    };
    let body = format!(
        r##"<h1>Ledger</h1>
<p><span id=ledger-size>{size}</span> entries · {count} checkpoints · newest: {newest}</p>
<p><button id="verify-now">Verify now</button> <span id="verify-result"></span></p>
<form method=get action="/ledger"><label>Search <input name=q value="{q}"></label> <label>Kind <input name=kind value="{kind}" size=16></label> <button>Search</button></form>
<table id=ledger><thead><tr><th>seq</th><th>campaign</th><th>kind</th><th>payload</th></tr></thead><tbody>{rows}</tbody></table>
<nav class=pager>{older} <a href="/ledger">newest</a></nav>"##,
        count = checkpoints.len(),
        q = esc(&p.q),
        kind = esc(&p.kind),
    );
    page("Ledger", &auth, &body).into_response()
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

async fn inbox<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let auth = authed!(shared, parts);
    let requests = tri!(shared.app.requests(None).await);
    let may_decide = auth.caller.role.may_decide();
    let mut cards = String::new();
    let campaigns = tri!(campaign_items(&shared).await);
    for r in requests.iter().filter(|r| r.state == RequestState::Pending) {
        let record = tri!(shared.app.store().campaign(&r.body.campaign).await);
        let diff = diff_rows(&r.body.diff, record.as_ref().map(|c| &c.spec));
        let spent = campaigns
            .iter()
            .find(|c| c.name == r.body.campaign)
            .map(|c| {
                format!(
                    "{} of {} trials finished; campaign {}",
                    c.counts.complete + c.counts.pruned + c.counts.failed,
                    c.n_trials,
                    c.state
                )
            })
            .unwrap_or_default();
        let evidence = match r.body.evidence.as_ref().filter(|e| !e.is_null()) {
            None => String::new(),
            Some(evidence) => format!(
                "<details open><summary>Evidence</summary><pre>{}</pre></details>",
                esc(&serde_json::to_string_pretty(evidence).unwrap_or_default())
            ),
        };
        let form = if may_decide {
            format!(
                r##"<form class=decide data-request="{id}" data-hash="{hash}">
<label>Approver <input name=by value="{me}" required></label>
<label>Reason <input name=reason placeholder="required to reject"></label>
<label>Key file <input type=file name=key accept=".pem,.key"></label>
<details><summary>or paste a signature from <code>firebreak sign</code></summary><input name=signature size=60></details>
<button type=submit name=verdict value=approve class=approve>Approve</button>
<button type=submit name=verdict value=reject class=reject>Reject</button>
<output class=result></output></form>"##,
                id = esc(&r.body.id),
                hash = esc(&r.hash),
                me = esc(&auth.caller.name),
            )
        } else {
            "<p class=hint>Your token's role cannot decide.</p>".into()
        };
        let _ = write!(
            cards,
            r##"<article class=request id="request-{id}"><h2>{id} · {kind} · <a href="/campaigns/{link}">{campaign}</a></h2>
<p>Asked by <b>{by}</b> at {at}; expires {expires}. Approvals so far: {approvals}</p>
<p class=reason>{reason}</p>
<table class=diff><thead><tr><th>setting</th><th>before</th><th>after</th></tr></thead><tbody>{diff}</tbody></table>
<p class=spent>Spent so far: {spent}</p>
{evidence}
<p class=hash>request hash <code>{hash}</code></p>
{form}</article>"##,
            id = esc(&r.body.id),
            kind = esc(r.body.kind.as_str()),
            link = seg(&r.body.campaign),
            campaign = esc(&r.body.campaign),
            by = esc(&r.body.requested_by),
            at = esc(&r.body.created_at),
            expires = esc(&r.body.expires_at),
            approvals = esc(&r.approvals().join(", ")),
            reason = esc(&r.body.reason),
            spent = esc(&spent),
            hash = esc(&r.hash),
        );
    }
    if cards.is_empty() {
        cards = "<p id=inbox-empty>No request is waiting for a decision.</p>".into();
    }
    let body = format!("<h1>Approvals</h1><div id=inbox>{cards}</div>");
    page("Approvals", &auth, &body).into_response()
}

/// A request's diff (an RFC 6902 patch) as rows of setting, the value in
/// effect now (read from `spec`, the campaign's canonical spec) and the value
/// asked for.
fn diff_rows(diff: &Value, spec: Option<&Value>) -> String {
    let ops = diff.as_array().cloned().unwrap_or_default();
    if ops.is_empty() {
        return "<tr><td colspan=3>no setting changes: approving lets the campaign go on</td></tr>"
            .into();
    }
    let show = |v: Option<&Value>| v.map_or("–".to_string(), |v| esc(&v.to_string()));
    ops.iter()
        .map(|op| {
            let path = op.get("path").and_then(Value::as_str).unwrap_or("");
            let after = match op.get("op").and_then(Value::as_str) {
                Some("remove") => "(removed)".to_string(),
                _ => show(op.get("value")),
            };
            format!(
                "<tr><td><code>{}</code></td><td class=before>{}</td><td class=after>{after}</td></tr>",
                esc(path),
                show(spec.and_then(|s| s.pointer(path))),
            )
        })
        .collect()
}

/// The vendored libraries and the dashboard's own script and style.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static [u8], &str) = match file.as_str() {
        "htmx.min.js" => (
            include_bytes!("../assets/vendor/htmx.min.js"),
            "text/javascript",
        ),
        "uPlot.iife.min.js" => (
            include_bytes!("../assets/vendor/uPlot.iife.min.js"),
            "text/javascript",
        ),
        "uPlot.min.css" => (include_bytes!("../assets/vendor/uPlot.min.css"), "text/css"),
        "dashboard.js" => (include_bytes!("../assets/dashboard.js"), "text/javascript"),
        "dashboard.css" => (include_bytes!("../assets/dashboard.css"), "text/css"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

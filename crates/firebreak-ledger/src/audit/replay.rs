//! The replay: every event applied in order to the state the ledger describes,
//! with the governance rules checked as they stood at each entry.
//!
//! The rules are the engine's own, applied to the record alone, so that a row
//! appended with write access to the database (correctly chained, but without
//! the approvals it needs) is a violation: a spec change is classified by
//! `classify_path` exactly as the engine files requests; a decision needs a
//! listed deciding approver, before the request expires, who did not file it
//! under any identity and whose key has not decided it already; a close needs
//! the decisions, the expiry time or the newer request it claims; and a tripped
//! campaign starts no trial in a later run until a tripwire request is approved.

use std::collections::{BTreeMap, BTreeSet};

use firebreak_core::{Metrics, Params, Timestamp, TrialState, parse_rfc3339};

use super::{Violation, violation};
use crate::entry::{Entry, Event, canonical_json, hex};
use crate::patch::apply_patch;
use crate::request::{
    EditClass, Request, RequestKind, RequestState, SignedDecision, Verdict, classify_path,
    is_person,
};

/// What the ledger says one trial is.
#[derive(Debug)]
pub(super) struct ExpectedTrial {
    pub state: TrialState,
    pub params: Params,
    pub proposer: String,
    pub rationale: String,
    pub proposer_state: Option<serde_json::Value>,
    pub retry_of: Option<u64>,
    pub metrics: Metrics,
    pub error: Option<String>,
    pub reports: Vec<(u64, Metrics)>,
    pub cpu_seconds: Option<f64>,
    pub wall_seconds: Option<f64>,
    pub last_seq: u64,
    /// The generation open when it first started.
    pub generation: Option<u32>,
}

/// What the ledger says one change request is.
#[derive(Debug)]
pub(super) struct ExpectedRequest {
    pub request: Request,
    pub filed_seq: u64,
    pub last_seq: u64,
    /// True once a `spec_changed` carried it out: an approval counts once.
    pub carried_out: bool,
}

/// What the ledger says one run is.
#[derive(Debug)]
pub(super) struct ExpectedRun {
    pub started_at: Timestamp,
    pub started_seq: u64,
    pub ended_at: Option<Timestamp>,
    pub end_reason: Option<String>,
    /// The time of the campaign's last entry while this was its latest run.
    pub last_at: Timestamp,
    pub last_seq: u64,
}

/// A campaign as the replay knows it.
#[derive(Debug)]
pub(super) struct ExpectedCampaign {
    pub spec: serde_json::Value,
    pub canonical: String,
    pub seq: u64,
    /// The seq of the tripwire request that halted the campaign, while no
    /// tripwire request has been approved since.
    pub halted_since: Option<u64>,
    /// The latest tripwire request filed.
    pub tripwire_request: Option<String>,
    pub current_run: Option<u64>,
    pub cpu_seconds: f64,
    /// Tokens the campaign's agents used (`agent_answered`).
    pub llm_tokens: u64,
    /// Its generations (`[generations]`).
    pub generations: super::GenerationState,
}

/// The state the ledger describes, built entry by entry.
#[derive(Debug, Default)]
pub(super) struct Replay {
    pub campaigns: BTreeMap<String, ExpectedCampaign>,
    pub trials: BTreeMap<(String, u64), ExpectedTrial>,
    pub requests: BTreeMap<String, ExpectedRequest>,
    pub runs: BTreeMap<(String, u64), ExpectedRun>,
    pub tests: BTreeMap<(String, u64), (Metrics, u64)>,
    /// Every hash of an agent's request or answer, with the entry naming it.
    pub agent_texts: Vec<(u64, String)>,
    /// The Optuna studies (`optuna` entries), under the server's own rules.
    pub optuna: crate::optuna::Studies,
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(text.as_bytes()))
}

/// One entry of `[governance] approvers` of a canonical spec.
struct Approver<'a> {
    name: &'a str,
    key: &'a str,
    deciding: bool,
    os_user: Option<&'a str>,
}

/// The quorum and the approvers of a canonical spec's governance.
fn governance_of(spec: &serde_json::Value) -> (usize, Vec<Approver<'_>>) {
    let governance = &spec["governance"];
    let approvers = governance["approvers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|a| {
                    Some(Approver {
                        name: a["name"].as_str()?,
                        key: a["key"].as_str()?,
                        deciding: matches!(a["role"].as_str(), None | Some("approver" | "admin")),
                        os_user: a["os_user"].as_str(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let quorum = governance["quorum"]
        .as_u64()
        .map_or(1, |q| usize::try_from(q).unwrap_or(usize::MAX));
    (quorum, approvers)
}

/// The instant a request expires, or a violation at `seq` when it cannot be read.
fn expires_at(seq: u64, request: &Request) -> Result<Timestamp, Violation> {
    parse_rfc3339(&request.body.expires_at).ok_or_else(|| {
        violation(
            seq,
            format!(
                "request {}: expires_at {:?} is not an RFC 3339 time",
                request.body.id, request.body.expires_at
            ),
        )
    })
}

impl Replay {
    /// Applies one entry, written at `at`, or names the rule it breaks.
    pub fn apply(&mut self, row: &Entry, at: Timestamp, event: Event) -> Result<(), Violation> {
        let seq = row.seq;
        let campaign = row.campaign.as_str();
        if let Event::CampaignCreated { spec, .. } = event {
            let canonical = canonical_json(&spec)
                .map_err(|e| violation(seq, format!("spec is not canonical JSON: {e}")))?;
            let created = ExpectedCampaign {
                spec,
                canonical,
                seq,
                halted_since: None,
                tripwire_request: None,
                current_run: None,
                cpu_seconds: 0.0,
                llm_tokens: 0,
                generations: Default::default(),
            };
            if self
                .campaigns
                .insert(campaign.to_string(), created)
                .is_some()
            {
                return Err(violation(
                    seq,
                    format!("campaign {campaign:?} created twice"),
                ));
            }
            return Ok(());
        }
        let Some(current) = self.campaigns.get(campaign) else {
            return Err(violation(
                seq,
                format!("campaign {campaign:?} was never created"),
            ));
        };
        if current.spec["kind"] == "optuna" {
            // An Optuna study's campaign is driven by `serve-optuna` alone: its
            // operations, and the refusals of its constraints. Its spec never
            // changes (no `spec_changed`), so its constraints are those it was
            // created with.
            return match event {
                Event::Optuna { op, .. } => {
                    let spec = &current.spec;
                    self.optuna
                        .check(campaign, spec, at, &op)
                        .map_err(|e| violation(seq, format!("optuna: {e}")))?;
                    self.optuna.apply(campaign, spec, op);
                    Ok(())
                }
                Event::Denied { .. } => Ok(()),
                other => Err(violation(
                    seq,
                    format!(
                        "campaign {campaign:?} is an Optuna study, which records no `{}` entry",
                        other.kind()
                    ),
                )),
            };
        }
        if let Some(run) = current.current_run
            && let Some(expected) = self.runs.get_mut(&(campaign.to_string(), run))
        {
            expected.last_at = expected.last_at.max(at);
        }
        match event {
            Event::CampaignCreated { .. } => unreachable!("handled above"),
            Event::RunStarted { run, .. } => self.run_started(seq, campaign, at, run),
            Event::RunEnded { run, reason } => self.run_ended(seq, campaign, at, run, reason),
            Event::Denied { .. } => Ok(()),
            Event::Optuna { .. } => Err(violation(
                seq,
                format!("campaign {campaign:?} is not an Optuna study"),
            )),
            Event::AgentAnswered {
                request_sha256,
                response_sha256,
                files,
                prompt_tokens,
                completion_tokens,
                ..
            } => {
                if let Some(c) = self.campaigns.get_mut(campaign) {
                    c.llm_tokens = c
                        .llm_tokens
                        .saturating_add(prompt_tokens)
                        .saturating_add(completion_tokens);
                }
                self.agent_texts.push((seq, request_sha256));
                self.agent_texts.extend(response_sha256.map(|h| (seq, h)));
                self.agent_texts
                    .extend(files.into_iter().flatten().map(|(_, h)| (seq, h)));
                Ok(())
            }
            Event::RequestFiled {
                request,
                hash,
                diff_hash: stated,
                ..
            } => {
                if request.campaign != campaign {
                    return Err(violation(seq, "request names another campaign"));
                }
                let filed = Request::new(request).map_err(|e| violation(seq, e.to_string()))?;
                if filed.hash != hash || filed.diff_hash != stated {
                    return Err(violation(
                        seq,
                        format!("request {}: hash does not match its body", filed.body.id),
                    ));
                }
                self.request_filed(seq, campaign, filed)
            }
            Event::RequestDecided { id, decision, .. } => {
                self.request_decided(seq, campaign, at, &id, decision)
            }
            Event::RequestClosed { id, state, .. } => {
                self.request_closed(seq, campaign, at, &id, state)
            }
            Event::SpecChanged {
                spec,
                spec_hash,
                diff,
                request,
                ..
            } => self.spec_changed(seq, campaign, spec, &spec_hash, &diff, request.as_deref()),
            Event::TrialReevaluated { cpu_seconds, .. } => {
                self.add_cpu(campaign, cpu_seconds);
                Ok(())
            }
            event @ (Event::GenerationStarted { .. }
            | Event::GenerationGated { .. }
            | Event::GenerationClosed { .. }) => self.generation_event(seq, campaign, event),
            event => self.trial_event(seq, campaign, event),
        }
    }

    fn add_cpu(&mut self, campaign: &str, cpu_seconds: Option<f64>) {
        if let Some(c) = self.campaigns.get_mut(campaign) {
            c.cpu_seconds += cpu_seconds
                .filter(|s| s.is_finite() && *s > 0.0)
                .unwrap_or(0.0);
        }
    }

    fn run_started(
        &mut self,
        seq: u64,
        campaign: &str,
        at: Timestamp,
        run: u64,
    ) -> Result<(), Violation> {
        let expected = ExpectedRun {
            started_at: at,
            started_seq: seq,
            ended_at: None,
            end_reason: None,
            last_at: at,
            last_seq: seq,
        };
        if self
            .runs
            .insert((campaign.to_string(), run), expected)
            .is_some()
        {
            return Err(violation(seq, format!("run {run} started twice")));
        }
        if let Some(c) = self.campaigns.get_mut(campaign) {
            c.current_run = Some(run);
        }
        Ok(())
    }

    fn run_ended(
        &mut self,
        seq: u64,
        campaign: &str,
        at: Timestamp,
        run: u64,
        reason: String,
    ) -> Result<(), Violation> {
        match self.runs.get_mut(&(campaign.to_string(), run)) {
            Some(expected) if expected.ended_at.is_none() => {
                expected.ended_at = Some(at);
                expected.end_reason = Some(reason);
                expected.last_seq = seq;
                Ok(())
            }
            Some(_) => Err(violation(seq, format!("run {run} ended twice"))),
            None => Err(violation(seq, format!("run {run} ended but never started"))),
        }
    }

    fn request_filed(
        &mut self,
        seq: u64,
        campaign: &str,
        request: Request,
    ) -> Result<(), Violation> {
        let id = request.body.id.clone();
        if self.requests.contains_key(&id) {
            return Err(violation(seq, format!("request {id} filed twice")));
        }
        if request.body.kind == RequestKind::Tripwire
            && let Some(c) = self.campaigns.get_mut(campaign)
        {
            c.halted_since.get_or_insert(seq);
            c.tripwire_request = Some(id.clone());
        }
        self.requests.insert(
            id,
            ExpectedRequest {
                request,
                filed_seq: seq,
                last_seq: seq,
                carried_out: false,
            },
        );
        Ok(())
    }

    /// The pending request `id` of `campaign`.
    fn open_request(
        &mut self,
        seq: u64,
        id: &str,
        campaign: &str,
    ) -> Result<&mut ExpectedRequest, Violation> {
        match self.requests.get_mut(id) {
            Some(r)
                if r.request.body.campaign == campaign
                    && r.request.state == RequestState::Pending =>
            {
                Ok(r)
            }
            Some(r) if r.request.body.campaign == campaign => Err(violation(
                seq,
                format!("request {id} is already {}", r.request.state),
            )),
            _ => Err(violation(seq, format!("request {id} was never filed"))),
        }
    }

    fn request_decided(
        &mut self,
        seq: u64,
        campaign: &str,
        at: Timestamp,
        id: &str,
        decision: SignedDecision,
    ) -> Result<(), Violation> {
        let spec = self.campaigns[campaign].spec.clone();
        let expected = self.open_request(seq, id, campaign)?;
        check_decision(seq, at, &expected.request, &decision, &spec)?;
        expected.request.decisions.push(decision);
        expected.last_seq = seq;
        Ok(())
    }

    fn request_closed(
        &mut self,
        seq: u64,
        campaign: &str,
        at: Timestamp,
        id: &str,
        state: RequestState,
    ) -> Result<(), Violation> {
        let (quorum, _) = governance_of(&self.campaigns[campaign].spec);
        let newer = self.superseding(id);
        let expected = self.open_request(seq, id, campaign)?;
        let request = &expected.request;
        let approving_keys: BTreeSet<&str> = request
            .decisions
            .iter()
            .filter(|d| d.decision == Verdict::Approve)
            .map(|d| d.key.as_str())
            .collect();
        let rejected = request
            .decisions
            .iter()
            .any(|d| d.decision == Verdict::Reject);
        let why_not = match state {
            RequestState::Approved if rejected => Some("it was rejected".to_string()),
            RequestState::Approved if approving_keys.len() < quorum.max(1) => Some(format!(
                "approvals by {} distinct key(s) do not reach the quorum of {quorum}",
                approving_keys.len()
            )),
            RequestState::Rejected if !rejected => Some("nobody rejected it".to_string()),
            RequestState::Expired if at <= expires_at(seq, request)? => Some(format!(
                "it does not expire until {}",
                request.body.expires_at
            )),
            RequestState::Superseded => match newer {
                None => Some(format!(
                    "no newer {} request of this campaign was filed",
                    request.body.kind
                )),
                Some((newer_id, by))
                    if is_person(&request.body.requested_by) && by.starts_with("agent:") =>
                {
                    Some(format!(
                        "the newer request {newer_id} is {by}'s, and an agent never closes a \
                         person's request"
                    ))
                }
                Some(_) => None,
            },
            RequestState::Pending => Some("pending is not a closed state".to_string()),
            _ => None,
        };
        if let Some(why) = why_not {
            return Err(violation(
                seq,
                format!("request {id} closed as {state}, but {why}"),
            ));
        }
        let tripwire = request.body.kind == RequestKind::Tripwire;
        expected.request.state = state;
        expected.last_seq = seq;
        if tripwire
            && state == RequestState::Approved
            && let Some(c) = self.campaigns.get_mut(campaign)
        {
            c.halted_since = None;
        }
        Ok(())
    }

    /// The newest request filed after `id` for the same campaign and kind: its
    /// id and who filed it.
    fn superseding(&self, id: &str) -> Option<(String, String)> {
        let old = self.requests.get(id)?;
        self.requests
            .values()
            .filter(|r| {
                r.filed_seq > old.filed_seq
                    && r.request.body.campaign == old.request.body.campaign
                    && r.request.body.kind == old.request.body.kind
            })
            .max_by_key(|r| r.filed_seq)
            .map(|r| {
                (
                    r.request.body.id.clone(),
                    r.request.body.requested_by.clone(),
                )
            })
    }

    fn spec_changed(
        &mut self,
        seq: u64,
        campaign: &str,
        spec: serde_json::Value,
        spec_hash: &str,
        diff: &serde_json::Value,
        request: Option<&str>,
    ) -> Result<(), Violation> {
        let canonical = canonical_json(&spec)
            .map_err(|e| violation(seq, format!("spec is not canonical JSON: {e}")))?;
        if sha256_hex(&canonical) != spec_hash {
            return Err(violation(seq, "spec_hash does not match the spec"));
        }
        let current = &self.campaigns[campaign];
        if apply_patch(&current.spec, diff).ok().as_ref() != Some(&spec) {
            return Err(violation(
                seq,
                "the patch applied to the spec in effect does not give the new spec",
            ));
        }
        let Some(ops) = diff.as_array() else {
            return Err(violation(seq, "the diff is not a JSON Patch (an array)"));
        };
        let approved_kind = match request {
            None => None,
            Some(id) => {
                let approved = self.requests.get(id).filter(|r| {
                    r.request.state == RequestState::Approved
                        && !r.carried_out
                        && r.request.body.campaign == campaign
                        && r.request.body.diff == *diff
                });
                let Some(approved) = approved else {
                    return Err(violation(
                        seq,
                        format!(
                            "spec changed under request {id}, which is not an approved request \
                             for this change (or was carried out already)"
                        ),
                    ));
                };
                Some(approved.request.body.kind)
            }
        };
        for op in ops {
            let path = op["path"].as_str().unwrap_or_default();
            // A request carries exactly the edits of its kind; free edits are
            // recorded on their own, never inside an approved change.
            let allowed = match (classify_path(path), approved_kind) {
                (EditClass::Free, None) => true,
                (EditClass::Governed(kind), Some(approved)) => kind == approved,
                _ => false,
            };
            if !allowed {
                let class = match classify_path(path) {
                    EditClass::Governed(kind) => format!("a governed setting (kind {kind})"),
                    EditClass::Free => "a setting outside governance".to_string(),
                    EditClass::Ignored => {
                        "the description, which never changes the spec in effect".to_string()
                    }
                };
                let under = match (request, approved_kind) {
                    (Some(id), Some(kind)) => format!("request {id} approved a {kind} change"),
                    _ => "no approved request".to_string(),
                };
                return Err(violation(
                    seq,
                    format!("spec_changed edits {path:?}, {class}, but {under}"),
                ));
            }
        }
        if let Some(expected) = request.and_then(|id| self.requests.get_mut(id)) {
            expected.carried_out = true;
        }
        if let Some(c) = self.campaigns.get_mut(campaign) {
            c.spec = spec;
            c.canonical = canonical;
            c.seq = seq;
        }
        Ok(())
    }

    /// The trial `number` of `campaign`, which must be in one of `from`.
    fn transition(
        &mut self,
        seq: u64,
        campaign: &str,
        number: u64,
        kind: &str,
        from: &[TrialState],
    ) -> Result<&mut ExpectedTrial, Violation> {
        let Some(t) = self.trials.get_mut(&(campaign.to_string(), number)) else {
            return Err(violation(seq, format!("trial {number} was never proposed")));
        };
        if !from.contains(&t.state) {
            return Err(violation(
                seq,
                format!("trial {number} is {} here, which allows no {kind}", t.state),
            ));
        }
        t.last_seq = seq;
        Ok(t)
    }

    /// A trial may start in a run that began while the campaign was halted by a
    /// tripwire only if a tripwire request was approved since.
    fn check_not_halted(
        &self,
        seq: u64,
        campaign: &str,
        number: u64,
        run: u64,
    ) -> Result<(), Violation> {
        let c = &self.campaigns[campaign];
        let Some(halted) = c.halted_since else {
            return Ok(());
        };
        let run_seq = self
            .runs
            .get(&(campaign.to_string(), run))
            .map_or(u64::MAX, |r| r.started_seq);
        if run_seq > halted {
            return Err(violation(
                seq,
                format!(
                    "trial {number} started in run {run}, which began while tripwire request {} \
                     halted the campaign and no tripwire request was approved",
                    c.tripwire_request.as_deref().unwrap_or("?")
                ),
            ));
        }
        Ok(())
    }

    fn trial_event(&mut self, seq: u64, campaign: &str, event: Event) -> Result<(), Violation> {
        use TrialState::{Complete, Pruned, Queued, Running};
        let kind = event.kind();
        match event {
            Event::TrialProposed {
                number,
                params,
                proposer,
                rationale,
                retry_of,
                state: proposer_state,
                ..
            } => {
                let key = (campaign.to_string(), number);
                if self.trials.contains_key(&key) {
                    return Err(violation(seq, format!("trial {number} proposed twice")));
                }
                self.trials.insert(
                    key,
                    ExpectedTrial {
                        state: Queued,
                        params,
                        proposer,
                        rationale,
                        proposer_state,
                        retry_of,
                        metrics: Metrics::new(),
                        error: None,
                        reports: Vec::new(),
                        cpu_seconds: None,
                        wall_seconds: None,
                        last_seq: seq,
                        generation: None,
                    },
                );
            }
            Event::TrialStarted { number, run, .. } => {
                self.check_not_halted(seq, campaign, number, run)?;
                let generation = self.trial_generation(seq, campaign, number)?;
                let t = self.transition(seq, campaign, number, kind, &[Queued])?;
                t.state = Running;
                if t.generation.is_none() {
                    t.generation = generation;
                }
            }
            Event::TrialRequeued { number, .. } => {
                self.transition(seq, campaign, number, kind, &[Running])?
                    .state = Queued;
            }
            Event::TrialResumed { number, run, .. } => {
                self.check_not_halted(seq, campaign, number, run)?;
                let t = self.transition(seq, campaign, number, kind, &[Pruned])?;
                t.state = Running;
                t.error = None;
                t.metrics = Metrics::new();
            }
            Event::TrialReported {
                number,
                step,
                metrics,
            } => {
                let t = self.transition(seq, campaign, number, kind, &[Running])?;
                t.reports.retain(|(s, _)| *s != step);
                t.reports.push((step, metrics));
            }
            Event::TrialFinished {
                number,
                state,
                metrics,
                error,
                cpu_seconds,
                wall_seconds,
            } => {
                if !state.is_finished() {
                    return Err(violation(
                        seq,
                        format!("trial {number} finished as {state}"),
                    ));
                }
                let t = self.transition(seq, campaign, number, kind, &[Running])?;
                t.state = state;
                t.metrics = metrics;
                t.error = error;
                t.cpu_seconds = cpu_seconds;
                t.wall_seconds = wall_seconds;
                self.add_cpu(campaign, cpu_seconds);
            }
            Event::TrialTested {
                number,
                metrics,
                cpu_seconds,
            } => {
                self.transition(seq, campaign, number, kind, &[Complete])?;
                let key = (campaign.to_string(), number);
                if self.tests.insert(key, (metrics, seq)).is_some() {
                    return Err(violation(
                        seq,
                        format!("trial {number} was evaluated on the test split twice"),
                    ));
                }
                self.add_cpu(campaign, cpu_seconds);
            }
            other => {
                return Err(violation(
                    seq,
                    format!("event {} is not replayed", other.kind()),
                ));
            }
        }
        Ok(())
    }
}

/// Checks one decision, at `at`, against the request and the campaign's
/// governance in effect.
fn check_decision(
    seq: u64,
    at: Timestamp,
    request: &Request,
    decision: &SignedDecision,
    spec: &serde_json::Value,
) -> Result<(), Violation> {
    let id = &request.body.id;
    if at > expires_at(seq, request)? {
        return Err(violation(
            seq,
            format!(
                "request {id} was decided after it expired at {}",
                request.body.expires_at
            ),
        ));
    }
    decision
        .verify(&request.hash)
        .map_err(|e| violation(seq, format!("decision on request {id}: {e}")))?;
    let (_, approvers) = governance_of(spec);
    let Some(listed) = approvers
        .iter()
        .find(|a| a.deciding && a.name == decision.by && a.key == decision.key)
    else {
        return Err(violation(
            seq,
            format!(
                "{} with key {} is not a deciding approver of the campaign",
                decision.by, decision.key
            ),
        ));
    };
    let requested_by = request.body.requested_by.as_str();
    let own = requested_by == decision.by
        || listed
            .os_user
            .is_some_and(|user| requested_by.strip_prefix("local:") == Some(user));
    if own {
        return Err(violation(
            seq,
            format!(
                "{} decided their own request {id} (filed as {requested_by})",
                decision.by
            ),
        ));
    }
    if let Some(earlier) = request
        .decisions
        .iter()
        .find(|d| d.by == decision.by || d.key == decision.key)
    {
        return Err(violation(
            seq,
            format!(
                "{} decided request {id} twice (an earlier decision by {} with key {})",
                decision.by, earlier.by, earlier.key
            ),
        ));
    }
    Ok(())
}

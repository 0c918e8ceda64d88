//! Governance at run time: the policy of the spec in effect, edited specs turned
//! into change requests, proposers' asks turned into requests, refusals recorded.

use std::path::Path;

use firebreak_govern::{Action, Authorizer, Principal, Trip, Tripwires, classify, patch_of};
use firebreak_ledger::{
    Authorization, Event, Replayed, Request, RequestKind, RequestState, apply_patch, audit,
};
use firebreak_search::ChangeAsk;
use firebreak_spec::CampaignSpec;
use firebreak_store::{CampaignRecord, RequestDraft, SpecUpdate, Store};
use serde_json::{Value, json};

use crate::{Halt, RunnerError};

/// Reads the Cedar policy file `[governance] policy` names (relative to the spec's
/// folder) into `policy_text`, so the policy is part of the canonical spec and an
/// edit of the file is a governed change.
pub fn load_policy(spec: &mut CampaignSpec, spec_dir: &Path) -> Result<(), RunnerError> {
    let governance = &mut spec.spec.governance;
    if let Some(file) = &governance.policy {
        let path = spec_dir.join(file);
        let text = std::fs::read_to_string(&path).map_err(|source| RunnerError::Io {
            context: format!("cannot read the policy {}", path.display()),
            source,
        })?;
        governance.policy_text = Some(text);
    }
    Ok(())
}

/// The authoriser of a spec's governance: its policy (the shipped default when it
/// names none) and its approvers' roles. A policy that does not parse or fit the
/// schema is a spec error at `[governance] policy`.
pub fn authorizer(spec: &CampaignSpec) -> Result<Authorizer, RunnerError> {
    let governance = &spec.spec.governance;
    if governance.policy.is_some() && governance.policy_text.is_none() {
        return Err(RunnerError::Spec(spec.error_at(
            &["governance", "policy"],
            "the policy file was not loaded",
            "load it with firebreak_runner::load_policy before opening the campaign",
        )));
    }
    Authorizer::new(
        governance.policy_text.as_deref(),
        &governance.approvers,
        spec.name(),
    )
    .map_err(|e| {
        RunnerError::Spec(spec.error_at(
            &["governance", "policy"],
            e.to_string(),
            "see docs/governance.md for the schema and the shipped default policy",
        ))
    })
}

/// The governance of the spec in effect, as the campaign needs it.
#[derive(Debug)]
pub(crate) struct Gov {
    pub authorizer: Authorizer,
    pub actor: Principal,
    pub quorum: usize,
    pub has_approvers: bool,
    pub ttl_ms: i64,
}

type Decided = Result<Authorization, (Authorization, firebreak_govern::GovernError)>;

impl Gov {
    pub fn new(spec: &CampaignSpec, actor: Principal) -> Result<Self, RunnerError> {
        let governance = &spec.spec.governance;
        Ok(Gov {
            authorizer: authorizer(spec)?,
            actor,
            quorum: governance.quorum.unwrap_or(1) as usize,
            has_approvers: !governance.approvers.is_empty(),
            ttl_ms: i64::try_from(governance.request_ttl.0.saturating_mul(1000))
                .unwrap_or(i64::MAX),
        })
    }

    /// The policy's decision on `action` with its context: every decision is
    /// taken afresh (a few microseconds), so a policy sees each proposal's
    /// parameters and proposer.
    pub fn require(&self, who: &Principal, action: Action, context: Value) -> Decided {
        self.authorizer.require(who, action, context)
    }

    pub fn tripwires(spec: &CampaignSpec) -> Tripwires {
        Tripwires::new(&spec.spec.governance.tripwires, &spec.objectives)
    }

    /// The policy's decision on asking for a change of `kind`.
    pub fn may_ask(&self, who: &Principal, kind: RequestKind) -> Authorization {
        self.authorizer.authorize(
            who,
            Action::Change(kind),
            json!({"stage": "request", "approvals": 0, "quorum": self.quorum, "kind": kind.as_str()}),
        )
    }
}

/// The context of a `propose_trial` decision: who proposed (a proposer's name,
/// `person` for a configuration a person queued, `retry`, `pbt`) and the
/// proposal's parameters as canonical JSON text (Cedar has no open records).
pub(crate) fn proposal_context(proposer: &str, params: &firebreak_core::Params) -> Value {
    let params = firebreak_ledger::canonical_json(params).unwrap_or_else(|_| "{}".to_string());
    json!({"proposer": proposer, "params": params})
}

/// Checks the whole ledger against the database, in one consistent read, and
/// returns what it says: `run`, `enqueue` and every decision act only on state
/// the ledger backs, so a row edited in the database stops them (exit 4)
/// instead of steering them.
pub async fn verify_ledger<S: Store>(store: &S) -> Result<Replayed, RunnerError> {
    let (rows, state) = store.ledger_and_snapshot().await?;
    audit(&rows, &state).map_err(RunnerError::Tampered)
}

/// Records a refusal in the ledger.
pub(crate) async fn deny<S: Store>(
    store: &S,
    campaign: &str,
    action: &str,
    principal: &Principal,
    reason: String,
    policy: Option<Authorization>,
    subject: Option<Value>,
) -> Result<(), RunnerError> {
    let event = Event::Denied {
        action: action.to_string(),
        principal: principal.id(),
        reason,
        policy,
        subject,
    };
    store.record_note(campaign, &event).await?;
    Ok(())
}

/// What bringing a campaign in line with its edited spec did.
#[derive(Debug, Default)]
pub(crate) struct Reconciled {
    /// Requests filed (`false`) or an identical pending one reused (`true`).
    pub filed: Vec<(Request, bool)>,
    /// Edits identical to a request that was rejected or expired, not filed
    /// again (only `ask_again` files them again).
    pub refused_before: Vec<Request>,
}

/// Brings a resumed campaign in line with its edited spec file: changes outside
/// governance take effect (recorded), governed ones become requests (one per kind,
/// an identical pending edit reused). An edit identical to one that was rejected
/// or expired is not filed again unless `ask_again`: re-running the same file
/// must not quietly ask the same people the same question.
pub(crate) async fn reconcile<S: Store>(
    store: &S,
    record: &mut CampaignRecord,
    file: &Value,
    gov: &Gov,
    ask_again: bool,
) -> Result<Reconciled, RunnerError> {
    let name = record.name.clone();
    let split = classify(firebreak_spec::diff(&record.submitted, file));
    if !split.free.is_empty() {
        let diff = patch_of(&split.free);
        let apply = |doc: &Value| {
            apply_patch(doc, &diff).map_err(|e| RunnerError::Io {
                context: format!("applying the edit of campaign {name:?}"),
                source: std::io::Error::other(e),
            })
        };
        let update = SpecUpdate {
            spec: apply(&record.spec)?,
            submitted: Some(apply(&record.submitted)?),
            diff: diff.clone(),
            by: gov.actor.id(),
        };
        store.change_spec(&name, &update).await?;
        *record = store
            .campaign(&name)
            .await?
            .ok_or_else(|| firebreak_store::StoreError::NoCampaign(name.clone()))?;
    }
    if split.governed.is_empty() {
        return Ok(Reconciled::default());
    }
    if !gov.has_approvers {
        return Err(RunnerError::Ungoverned {
            campaign: name,
            changes: split.governed.into_values().flatten().collect(),
        });
    }
    let earlier = store.requests(Some(&name)).await?;
    let mut done = Reconciled::default();
    for (kind, changes) in split.governed {
        let diff = patch_of(&changes);
        let hash = firebreak_ledger::diff_hash(&diff).map_err(firebreak_store::StoreError::from)?;
        let last_same = earlier
            .iter()
            .rev()
            .find(|r| r.body.kind == kind && r.diff_hash == hash);
        if let Some(last) = last_same
            && matches!(last.state, RequestState::Rejected | RequestState::Expired)
            && !ask_again
        {
            done.refused_before.push(last.clone());
            continue;
        }
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        let reason = format!("edited spec: {}", paths.join(", "));
        let filed = request(store, record, gov, &gov.actor, kind, diff, reason).await?;
        done.filed.push(filed);
    }
    Ok(done)
}

/// Files (or reuses) a request after the policy allows the principal to ask.
async fn request<S: Store>(
    store: &S,
    record: &CampaignRecord,
    gov: &Gov,
    who: &Principal,
    kind: RequestKind,
    diff: Value,
    reason: String,
) -> Result<(Request, bool), RunnerError> {
    let policy = gov.may_ask(who, kind);
    if !policy.allowed() {
        let error = firebreak_govern::GovernError::Denied {
            principal: who.id(),
            action: Action::Change(kind).id().to_string(),
            policies: policy.policies.clone(),
        };
        deny(
            store,
            &record.name,
            Action::Change(kind).id(),
            who,
            error.to_string(),
            Some(policy),
            Some(diff),
        )
        .await?;
        return Err(error.into());
    }
    let draft = RequestDraft {
        campaign: record.name.clone(),
        kind,
        diff,
        base_spec_hash: record.spec_hash.clone(),
        requested_by: who.id(),
        reason,
        ttl_ms: gov.ttl_ms,
        policy: Some(policy),
        evidence: None,
    };
    Ok(store.file_request(&draft).await?)
}

/// Turns a proposer's ask into a request; `None` when it changes nothing. On a
/// campaign without approvers the ask is recorded as refused.
pub(crate) async fn file_ask<S: Store>(
    store: &S,
    record: &CampaignRecord,
    gov: &Gov,
    proposer: &str,
    ask: &ChangeAsk,
) -> Result<Option<(Request, bool)>, RunnerError> {
    let agent = Principal::Agent {
        name: proposer.to_string(),
    };
    let (kind, diff, why) = match ask {
        ChangeAsk::Trials { n_trials, why } => (
            RequestKind::Budget,
            json!([{"op": "replace", "path": "/search/n_trials", "value": n_trials}]),
            why,
        ),
        ChangeAsk::Bounds {
            parameter,
            low,
            high,
            why,
        } => {
            let Some(current) = record.spec["space"].get(parameter) else {
                return Ok(None);
            };
            let integral = current["type"] == "int";
            let value = |v: f64| {
                if integral {
                    json!(v.round() as i64)
                } else {
                    json!(v)
                }
            };
            let pointer = |side: &str| {
                format!(
                    "/space/{}/{side}",
                    parameter.replace('~', "~0").replace('/', "~1")
                )
            };
            let mut ops = Vec::new();
            if let Some(low) = low {
                ops.push(json!({"op": "replace", "path": pointer("low"), "value": value(*low)}));
            }
            if let Some(high) = high {
                ops.push(json!({"op": "replace", "path": pointer("high"), "value": value(*high)}));
            }
            (RequestKind::Space, Value::Array(ops), why)
        }
        ChangeAsk::Setting { path, value, why } => {
            let op = if record.spec.pointer(path).is_some() {
                "replace"
            } else {
                "add"
            };
            let diff = json!([{"op": op, "path": path, "value": value}]);
            match firebreak_ledger::classify_path(path) {
                firebreak_ledger::EditClass::Governed(kind) => (kind, diff, why),
                _ => {
                    // A free setting needs no request, and an agent changes nothing
                    // itself: the ask is refused and recorded.
                    let reason = format!(
                        "an agent may ask only for governed settings; {path} is not one \
                         (a person may edit it in the spec): {why}"
                    );
                    deny(
                        store,
                        &record.name,
                        "request_change",
                        &agent,
                        reason,
                        None,
                        Some(diff),
                    )
                    .await?;
                    return Ok(None);
                }
            }
        }
    };
    if apply_patch(&record.spec, &diff).ok().as_ref() == Some(&record.spec) {
        return Ok(None);
    }
    if !gov.has_approvers {
        deny(
            store,
            &record.name,
            Action::Change(kind).id(),
            &agent,
            format!("campaign has no approvers, so its governed settings cannot change ({why})"),
            None,
            Some(diff),
        )
        .await?;
        return Ok(None);
    }
    let person_pending = store
        .requests(Some(&record.name))
        .await?
        .into_iter()
        .find(|r| {
            r.state == RequestState::Pending
                && r.body.kind == kind
                && firebreak_ledger::is_person(&r.body.requested_by)
        });
    if let Some(pending) = person_pending {
        let reason = format!(
            "{}'s {kind} request {} is pending, and an agent's ask never supersedes a person's \
             request ({why})",
            pending.body.requested_by, pending.body.id
        );
        let action = Action::Change(kind).id();
        deny(
            store,
            &record.name,
            action,
            &agent,
            reason,
            None,
            Some(diff),
        )
        .await?;
        return Ok(None);
    }
    match request(store, record, gov, &agent, kind, diff, why.clone()).await {
        Ok(filed) => Ok(Some(filed)),
        Err(RunnerError::Governance(_)) => Ok(None), // refused and recorded
        Err(other) => Err(other),
    }
}

/// Files the request a tripped tripwire raises; the campaign halts on it.
pub(crate) async fn file_trip<S: Store>(
    store: &S,
    record: &CampaignRecord,
    gov: &Gov,
    trip: Trip,
) -> Result<Halt, RunnerError> {
    let draft = RequestDraft {
        campaign: record.name.clone(),
        kind: RequestKind::Tripwire,
        diff: json!([]),
        base_spec_hash: record.spec_hash.clone(),
        requested_by: format!("tripwire:{}", trip.index),
        reason: trip.reason.clone(),
        ttl_ms: gov.ttl_ms,
        // A trip halts by code, whatever a policy says: no policy decision.
        policy: None,
        evidence: None,
    };
    let (request, _) = store.file_request(&draft).await?;
    Ok(Halt {
        request: request.body.id,
        reason: trip.reason,
    })
}

/// Files the tripwire request of a person asking a halted campaign to go on
/// after its earlier tripwire request was rejected or expired: asked on purpose
/// (`run --ask-to-resume`), never by re-running.
pub(crate) async fn ask_to_resume<S: Store>(
    store: &S,
    record: &CampaignRecord,
    gov: &Gov,
    reason: String,
) -> Result<Request, RunnerError> {
    let kind = RequestKind::Tripwire;
    Ok(
        request(store, record, gov, &gov.actor, kind, json!([]), reason)
            .await?
            .0,
    )
}

/// Queues a configuration a person chose, through the same checks as every
/// proposal: the ledger verified, the parameters checked against the space in
/// effect (as the ledger says it is) and `propose_trial` authorised by the
/// policy with the proposal in its context. A refusal is recorded and returned.
pub async fn enqueue<S: Store>(
    store: &S,
    campaign: &str,
    person: &Principal,
    params: firebreak_core::Params,
) -> Result<u64, RunnerError> {
    let replayed = verify_ledger(store).await?;
    let replayed = replayed
        .campaigns
        .get(campaign)
        .ok_or_else(|| firebreak_store::StoreError::NoCampaign(campaign.to_string()))?;
    let spec = CampaignSpec::from_canonical(&replayed.spec, campaign)?;
    // With generations, the space of the generation it would join.
    let generation = &replayed.generations;
    let space = match serde_json::from_value(generation.space.clone()) {
        Ok(table) if generation.current > 0 => spec.generation_space(&table)?,
        _ => spec.space.clone(),
    };
    space.validate(&params).map_err(|e| {
        RunnerError::Spec(spec.error_at(
            &["space"],
            format!("the configuration is out of the campaign's space: {e}"),
            "give every active parameter a value inside its range",
        ))
    })?;
    // A queued trial that no run would start is refused now, with the limit
    // that leaves no room, instead of waiting forever.
    let counts = store.counts(campaign).await?;
    let n_trials = spec.spec.search.n_trials;
    let taken = counts.finished() + counts.running + counts.queued;
    if taken >= n_trials {
        return Err(RunnerError::NoRoom {
            campaign: campaign.to_string(),
            n_trials,
            finished: counts.finished(),
            waiting: counts.running + counts.queued,
        });
    }
    let gov = Gov::new(&spec, person.clone())?;
    let context = proposal_context(crate::ENQUEUED, &params);
    let policy = match gov.require(person, Action::ProposeTrial, context) {
        Ok(policy) => policy,
        Err((decision, error)) => {
            let subject = serde_json::to_value(&params).ok();
            let action = Action::ProposeTrial.id();
            deny(
                store,
                campaign,
                action,
                person,
                error.to_string(),
                Some(decision),
                subject,
            )
            .await?;
            return Err(error.into());
        }
    };
    let trial = firebreak_store::NewTrial {
        params,
        proposer: crate::ENQUEUED.to_string(),
        rationale: format!("enqueued by {person} from the command line"),
        retry_of: None,
        priority: 1,
        number: None,
        policy: Some(policy),
        exploit: None,
        state: None,
    };
    Ok(store.enqueue(campaign, &trial).await?)
}

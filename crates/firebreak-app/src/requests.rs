//! Change requests and signed decisions: who acts ([`actor`]: a person is who
//! their key proves), the requests' JSON, and [`App::decide`], which checks a
//! decision by the campaign's policy and by the rules of deciding, then records
//! it — closing the request, and changing the spec when an approval completes
//! the quorum, in the same transaction — or ledgers the refusal.
//!
//! Every rule here acts only after the ledger verifies: a decision acts only on
//! a request, spec and approvers the ledger backs.

use std::path::{Path, PathBuf};

use firebreak_core::{Clock, SystemClock};
use firebreak_govern::{Action, GovernError, Principal, RequestOutcome};
use firebreak_ledger::{
    Event, Request, RequestKind, RequestState, SignedDecision, Verdict, apply_patch,
    public_key_string,
};
use firebreak_spec::{Approver, CampaignSpec};
use firebreak_store::{Closing, SpecUpdate, Store, StoreError};
use serde_json::{Value, json};

use crate::{App, AppError, Signed};

/// The principal behind an action: `name` with the key at `key`, checked
/// against the approvers listed in `approvers`, else the local operating-system
/// user (a name without a key is refused: a person is who their key proves).
pub fn actor(
    approvers: &[Approver],
    name: Option<&str>,
    key: Option<&Path>,
) -> Result<Principal, AppError> {
    let Some(path) = key else {
        if let Some(name) = name {
            return Err(AppError::Invalid(format!(
                "--as {name} needs --key FILE: a person is who their key proves"
            )));
        }
        return Ok(Principal::Local {
            user: firebreak_runner::os_user(),
        });
    };
    let public = public_key_string(&crate::keys::read_key(path)?.verifying_key());
    let listed = approvers
        .iter()
        .find(|a| a.key == public && name.is_none_or(|n| n == a.name))
        .ok_or_else(|| {
            AppError::Invalid(format!(
                "the key in {} ({public}) is not listed{} in the campaign's [governance] approvers",
                path.display(),
                name.map(|n| format!(" for {n}")).unwrap_or_default()
            ))
        })?;
    Ok(Principal::Human {
        name: listed.name.clone(),
        role: listed.role.clone(),
    })
}

/// A principal named without a key (a decision signed elsewhere): people by
/// their listed role, machines by their prefix.
fn named(approvers: &[Approver], name: &str) -> Principal {
    if let Some(agent) = name.strip_prefix("agent:") {
        return Principal::Agent {
            name: agent.to_string(),
        };
    }
    if let Some(worker) = name.strip_prefix("worker:") {
        let (run, slot) = worker.split_once('/').unwrap_or((worker, "0"));
        return Principal::Worker {
            run: run.parse().unwrap_or(0),
            slot: slot.parse().unwrap_or(0),
        };
    }
    if let Some(user) = name.strip_prefix("local:") {
        return Principal::Local {
            user: user.to_string(),
        };
    }
    let role = approvers
        .iter()
        .find(|a| a.name == name)
        .map_or("none".to_string(), |a| a.role.clone());
    Principal::Human {
        name: name.to_string(),
        role,
    }
}

/// The contract's JSON of a request (Requests JSON), plus its hash, reason and
/// evidence.
pub fn request_json(r: &Request) -> Value {
    json!({
        "id": r.body.id,
        "campaign": r.body.campaign,
        "kind": r.body.kind,
        "state": r.state,
        "diff": r.body.diff,
        "requested_by": r.body.requested_by,
        "approvals": r.approvals(),
        "rejections": r.rejections(),
        "created_at": r.body.created_at,
        "expires_at": r.body.expires_at,
        "reason": r.body.reason,
        "evidence": r.body.evidence,
        "hash": r.hash,
    })
}

/// Who decides, and how the decision is signed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Signer {
    /// Signed here with the private key in `path`, which must be listed in the
    /// campaign's approvers (for `name`, when given).
    KeyFile {
        /// The private key file (PKCS#8 PEM).
        path: PathBuf,
        /// The approver's name, if given.
        name: Option<String>,
    },
    /// Signed elsewhere: `name`'s base64 Ed25519 signature over the decision
    /// message (`docs/ledger-format.md`).
    Signature {
        /// Who signed.
        name: String,
        /// The signature.
        signature: String,
    },
}

/// A decision recorded on a request.
#[derive(Debug)]
pub struct Decided {
    /// The request after the decision.
    pub request: Request,
    /// Who decided.
    pub by: String,
    /// Approve or reject.
    pub verdict: Verdict,
    /// The state the decision closed the request in, if it closed it.
    pub closed: Option<RequestState>,
    /// The campaign's quorum.
    pub quorum: usize,
    /// The checkpoint signed after the decision, if one could be signed.
    pub checkpoint: Option<Signed>,
}

impl<S: Store> App<S> {
    /// Who acts on the campaign `spec` (a spec file) names, by [`actor`]:
    /// people are checked against the approvers in effect — the file's only
    /// for a new campaign — so an edited spec cannot list a new key and act
    /// with it at once.
    pub async fn actor_for(
        &self,
        spec: &CampaignSpec,
        name: Option<&str>,
        key: Option<&Path>,
    ) -> Result<Principal, AppError> {
        let approvers = match self.store.campaign(spec.name()).await? {
            Some(record) => {
                CampaignSpec::from_canonical(&record.spec, spec.name())?
                    .spec
                    .governance
                    .approvers
            }
            None => spec.spec.governance.approvers.clone(),
        };
        actor(&approvers, name, key)
    }

    /// A decision on request `id` signed here with the key in `key`, for use
    /// elsewhere (the dashboard, the API): the approver's name the campaign's
    /// approvers list for that key, and the base64 signature over the
    /// decision message. Records nothing.
    pub async fn sign_decision(
        &self,
        id: &str,
        key: &Path,
        verdict: Verdict,
        reason: &str,
    ) -> Result<(String, String), AppError> {
        let request = self
            .store
            .requests(None)
            .await?
            .into_iter()
            .find(|r| r.body.id == id)
            .ok_or_else(|| StoreError::NoRequest(id.to_string()))?;
        let record = self
            .store
            .campaign(&request.body.campaign)
            .await?
            .ok_or_else(|| StoreError::NoCampaign(request.body.campaign.clone()))?;
        let spec = CampaignSpec::from_canonical(&record.spec, &request.body.campaign)?;
        let principal = actor(&spec.spec.governance.approvers, None, Some(key))?;
        let signing = crate::keys::read_key(key)?;
        let decision =
            SignedDecision::sign(&signing, &principal.id(), verdict, &request.hash, reason);
        Ok((principal.id(), decision.signature))
    }

    /// Change requests, of one campaign or all.
    pub async fn requests(&self, campaign: Option<&str>) -> Result<Vec<Request>, AppError> {
        Ok(self.store.requests(campaign).await?)
    }

    /// Approves or rejects request `id` (with `reason`, required for a
    /// rejection by the faces), as `signer`: checked by the campaign's policy
    /// and the rules of deciding, then recorded (closing the request when it
    /// decides it, and applying an approved change); a refusal is ledgered as
    /// `denied` and is an error. A checkpoint is signed after the decision.
    pub async fn decide(
        &self,
        id: &str,
        signer: &Signer,
        verdict: Verdict,
        reason: &str,
    ) -> Result<Decided, AppError> {
        let store = &self.store;
        // A decision acts only on a request, spec and approvers the ledger backs.
        firebreak_runner::verify_ledger(store).await?;
        let request = store
            .requests(None)
            .await?
            .into_iter()
            .find(|r| r.body.id == id)
            .ok_or_else(|| StoreError::NoRequest(id.to_string()))?;
        if request.body.hash()? != request.hash {
            return Err(AppError::Tampered(format!(
                "request {id}: its stored hash does not match its body"
            )));
        }
        let campaign = request.body.campaign.clone();
        let record = store
            .campaign(&campaign)
            .await?
            .ok_or_else(|| StoreError::NoCampaign(campaign.clone()))?;
        let spec = CampaignSpec::from_canonical(&record.spec, &campaign)?;
        let approvers = &spec.spec.governance.approvers;
        let quorum = spec.spec.governance.quorum.unwrap_or(1) as usize;
        let (principal, decision) = match signer {
            Signer::Signature { name, signature } => {
                let principal = named(approvers, name);
                let key = approvers
                    .iter()
                    .find(|a| &a.name == name)
                    .map(|a| a.key.clone())
                    .unwrap_or_default();
                let decision = SignedDecision {
                    decision: verdict,
                    request: request.hash.clone(),
                    by: name.clone(),
                    key,
                    reason: reason.to_string(),
                    signature: signature.clone(),
                };
                (principal, decision)
            }
            Signer::KeyFile { path, name } => {
                let principal = actor(approvers, name.as_deref(), Some(path))?;
                let key = crate::keys::read_key(path)?;
                let decision =
                    SignedDecision::sign(&key, &principal.id(), verdict, &request.hash, reason);
                (principal, decision)
            }
        };
        let action = if verdict == Verdict::Approve {
            Action::Approve
        } else {
            Action::Reject
        };
        let authorizer = firebreak_runner::authorizer(&spec)?;
        // A request filed as the local user an approver's entry names (`os_user`)
        // is theirs too.
        let os_user = approvers
            .iter()
            .find(|a| a.name == principal.id())
            .and_then(|a| a.os_user.as_deref());
        let own_request = principal.id() == request.body.requested_by
            || os_user.is_some_and(|u| request.body.requested_by == format!("local:{u}"));
        let context = json!({
            "own_request": own_request,
            "kind": request.body.kind.as_str(),
            "request": id,
        });
        let mut policy = authorizer.authorize(&principal, action, context);
        let now = SystemClock.now();
        let mut refusal = if policy.allowed() {
            firebreak_govern::check_decision(&request, &principal, &decision, approvers, now).err()
        } else {
            Some(GovernError::Denied {
                principal: principal.id(),
                action: action.id().to_string(),
                policies: policy.policies.clone(),
            })
        };
        let mut after = request.clone();
        after.decisions.push(decision.clone());
        let outcome = firebreak_govern::outcome(&after, quorum);
        if refusal.is_none() && outcome == RequestOutcome::Approved {
            // The change would take effect now: the policy decides that too.
            let approvals = after.approvals().len();
            let context = json!({
                "stage": "apply",
                "approvals": approvals,
                "quorum": quorum,
                "kind": request.body.kind.as_str(),
            });
            let apply = Action::Change(request.body.kind);
            let applying = authorizer.authorize(&principal, apply, context);
            if !applying.allowed() {
                refusal = Some(GovernError::Denied {
                    principal: principal.id(),
                    action: apply.id().to_string(),
                    policies: applying.policies.clone(),
                });
                policy = applying;
            }
        }
        if let Some(error) = refusal {
            let denial = Event::Denied {
                action: action.id().to_string(),
                principal: principal.id(),
                reason: format!("request {id}: {error}"),
                policy: Some(policy),
                subject: serde_json::to_value(&decision).ok(),
            };
            store.record_note(&campaign, &denial).await?;
            if request.state == RequestState::Pending
                && firebreak_core::parse_rfc3339(&request.body.expires_at).is_none_or(|at| now > at)
            {
                let why = format!("its time to live ran out at {}", request.body.expires_at);
                store.close_request(id, RequestState::Expired, &why).await?;
            }
            return Err(AppError::Refused(error));
        }
        let closing = match outcome {
            RequestOutcome::Pending => None,
            RequestOutcome::Rejected => Some(Closing {
                state: RequestState::Rejected,
                reason: format!("rejected by {}: {reason}", principal.id()),
                spec: None,
            }),
            RequestOutcome::Approved => Some(Closing {
                state: RequestState::Approved,
                reason: format!("approved by {}", after.approvals().join(", ")),
                spec: approved_change(&request, &record.spec, &record.submitted, &campaign)?,
            }),
        };
        let decided = store
            .decide_request(
                id,
                &decision,
                &policy,
                request.decisions.len(),
                closing.as_ref(),
            )
            .await?;
        let checkpoint = self.sign_checkpoint().await.ok();
        Ok(Decided {
            request: decided,
            by: principal.id(),
            verdict,
            closed: closing.map(|c| c.state),
            quorum,
            checkpoint,
        })
    }
}

/// The spec change an approved request makes, checked to give a valid spec.
fn approved_change(
    request: &Request,
    spec: &Value,
    submitted: &Value,
    campaign: &str,
) -> Result<Option<SpecUpdate>, AppError> {
    // Approving a tripwire lets the campaign go on; approving a promotion
    // promotes its champion: neither changes the spec.
    if matches!(
        request.body.kind,
        RequestKind::Tripwire | RequestKind::Promotion
    ) {
        return Ok(None);
    }
    let diff = &request.body.diff;
    let apply = |doc: &Value| {
        apply_patch(doc, diff).map_err(|e| {
            AppError::Inapplicable(format!(
                "request {} no longer applies to the spec in effect: {e}",
                request.body.id
            ))
        })
    };
    let new = apply(spec)?;
    CampaignSpec::from_canonical(&new, campaign).map_err(|e| {
        AppError::Inapplicable(format!(
            "approving request {} would make the spec invalid: {e}",
            request.body.id
        ))
    })?;
    let by_person = firebreak_ledger::is_person(&request.body.requested_by);
    Ok(Some(SpecUpdate {
        spec: new,
        submitted: if by_person {
            Some(apply(submitted)?)
        } else {
            None
        },
        diff: diff.clone(),
        by: request.body.requested_by.clone(),
    }))
}

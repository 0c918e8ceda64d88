//! Governance commands: who acts (`--as NAME --key FILE`), `requests`, `approve`
//! and `reject`.

use std::path::Path;

use anyhow::anyhow;
use firebreak_core::{Clock, SystemClock};
use firebreak_govern::{Action, GovernError, Principal, RequestOutcome};
use firebreak_ledger::{
    Event, Request, RequestKind, RequestState, SignedDecision, Verdict, apply_patch,
    public_key_string,
};
use firebreak_spec::{Approver, CampaignSpec};
use firebreak_store::{AnyStore, Closing, SpecUpdate, Store, StoreError};
use serde_json::{Value, json};

use crate::output::print_rows;
use crate::{Cli, CommandResult, Decider, Failure};

/// The principal behind a command: `--as NAME --key FILE` checked against the
/// approvers listed in `approvers`, else the local operating-system user.
pub fn actor(
    approvers: &[Approver],
    name: Option<&str>,
    key: Option<&Path>,
) -> Result<Principal, Failure> {
    let Some(path) = key else {
        if let Some(name) = name {
            return Err(Failure::new(
                2,
                anyhow!("--as {name} needs --key FILE: a person is who their key proves"),
            ));
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
            Failure::new(
                2,
                anyhow!(
                    "the key in {} ({public}) is not listed{} in the campaign's [governance] approvers",
                    path.display(),
                    name.map(|n| format!(" for {n}")).unwrap_or_default()
                ),
            )
        })?;
    Ok(Principal::Human {
        name: listed.name.clone(),
        role: listed.role.clone(),
    })
}

/// A principal named on the command line without a key (`--as` with
/// `--signature`): people by their listed role, machines by their prefix.
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

/// The contract's JSON of a request, plus its hash and reason.
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

pub async fn requests(cli: &Cli, campaign: Option<&str>) -> CommandResult {
    let store = AnyStore::open_existing(&cli.storage).await?;
    let list = store.requests(campaign).await?;
    let mut rows = vec![
        [
            "id",
            "campaign",
            "kind",
            "state",
            "requested_by",
            "approvals",
            "expires_at",
            "reason",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in &list {
        rows.push(vec![
            r.body.id.clone(),
            r.body.campaign.clone(),
            r.body.kind.to_string(),
            r.state.to_string(),
            r.body.requested_by.clone(),
            r.approvals().join(" "),
            r.body.expires_at.clone(),
            r.body.reason.clone(),
        ]);
    }
    let json = Value::Array(list.iter().map(request_json).collect());
    print_rows(cli.format, &rows, &json);
    Ok(0)
}

/// `approve` and `reject`: a decision signed here with the decider's key, or a
/// signature made elsewhere (`--as NAME --signature B64`), checked by policy and by
/// the rules, then recorded (closing the request when it decides it).
pub async fn decide(cli: &Cli, decider: &Decider, verdict: Verdict, reason: &str) -> CommandResult {
    let id = decider.id.as_str();
    let store = AnyStore::open_existing(&cli.storage).await?;
    // A decision acts only on a request, spec and approvers the ledger backs.
    firebreak_runner::verify_ledger(&store).await?;
    let request = store
        .requests(None)
        .await?
        .into_iter()
        .find(|r| r.body.id == id)
        .ok_or_else(|| Failure::new(1, StoreError::NoRequest(id.to_string())))?;
    if request.body.hash()? != request.hash {
        return Err(Failure::new(
            4,
            anyhow!("request {id}: its stored hash does not match its body"),
        ));
    }
    let campaign = request.body.campaign.clone();
    let record = store
        .campaign(&campaign)
        .await?
        .ok_or_else(|| StoreError::NoCampaign(campaign.clone()))?;
    let spec = CampaignSpec::from_canonical(&record.spec, &campaign)?;
    let approvers = &spec.spec.governance.approvers;
    let quorum = spec.spec.governance.quorum.unwrap_or(1) as usize;
    // clap requires --key unless --signature, which requires --as.
    let (principal, decision) = match (&decider.key, &decider.as_name, &decider.signature) {
        (_, Some(name), Some(signature)) => {
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
        (Some(path), name, _) => {
            let principal = actor(approvers, name.as_deref(), Some(path))?;
            let key = crate::keys::read_key(path)?;
            let decision =
                SignedDecision::sign(&key, &principal.id(), verdict, &request.hash, reason);
            (principal, decision)
        }
        (None, _, _) => {
            return Err(Failure::new(
                2,
                anyhow!("give --key FILE, or --as NAME --signature B64"),
            ));
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
        return Err(Failure::new(1, anyhow!("refused: {error}")));
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
    let checkpoint = crate::commands::sign_checkpoint(&store).await;
    if !cli.quiet {
        match &closing {
            Some(c) if c.state == RequestState::Approved => println!(
                "request {id} approved ({}); the change is in effect: run the campaign again to continue",
                decided.approvals().join(", ")
            ),
            Some(_) => println!("request {id} rejected by {}", principal.id()),
            None => println!(
                "{} recorded on request {id}: {} of {quorum} approvals",
                verdict.as_str(),
                decided.approvals().len()
            ),
        }
        if let Ok(checkpoint) = checkpoint {
            println!(
                "checkpoint: tree size {}, root {}",
                checkpoint.tree_size, checkpoint.root
            );
        }
    }
    Ok(0)
}

/// The spec change an approved request makes, checked to give a valid spec.
fn approved_change(
    request: &Request,
    spec: &Value,
    submitted: &Value,
    campaign: &str,
) -> Result<Option<SpecUpdate>, Failure> {
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
            Failure::new(
                1,
                anyhow!(
                    "request {} no longer applies to the spec in effect: {e}",
                    request.body.id
                ),
            )
        })
    };
    let new = apply(spec)?;
    CampaignSpec::from_canonical(&new, campaign).map_err(|e| {
        Failure::new(
            1,
            anyhow!(
                "approving request {} would make the spec invalid: {e}",
                request.body.id
            ),
        )
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

/// The governance sections of `audit report`: constraint history, firebreaks with
/// who decided them, tripwires fired, refusals.
pub fn report_sections(
    rows: &[firebreak_ledger::Entry],
    campaign: &str,
    requests: &[Request],
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let payloads: Vec<(u64, Value)> = rows
        .iter()
        .filter(|e| e.campaign == campaign)
        .filter_map(|e| Some((e.seq, serde_json::from_str::<Value>(&e.payload).ok()?)))
        .collect();
    let _ = writeln!(out, "## Constraint history\n");
    let changes: Vec<&(u64, Value)> = payloads
        .iter()
        .filter(|(_, p)| p["kind"] == "spec_changed")
        .collect();
    if changes.is_empty() {
        let _ = writeln!(
            out,
            "The spec has not changed since the campaign was created.\n"
        );
    } else {
        let _ = writeln!(
            out,
            "| seq | at | by | request | change |\n|---|---|---|---|---|"
        );
        for (seq, p) in changes {
            let data = &p["data"];
            let ops: Vec<String> = data["diff"]
                .as_array()
                .map(|ops| {
                    ops.iter()
                        .map(|op| {
                            format!(
                                "{} `{}` = `{}`",
                                op["op"].as_str().unwrap_or_default(),
                                op["path"].as_str().unwrap_or_default(),
                                op["value"]
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| {seq} | {} | {} | {} | {} |",
                p["at"].as_str().unwrap_or_default(),
                data["by"].as_str().unwrap_or_default(),
                data["request"].as_str().unwrap_or("— (outside governance)"),
                ops.join("; ")
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "## Firebreaks\n");
    if requests.is_empty() {
        let _ = writeln!(out, "No change was requested.\n");
    } else {
        let _ = writeln!(
            out,
            "| request | kind | asked by | why | state | decisions |\n|---|---|---|---|---|---|"
        );
        for r in requests {
            let decisions: Vec<String> = r
                .decisions
                .iter()
                .map(|d| {
                    let why = if d.reason.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", d.reason.replace('|', "/").replace('\n', " "))
                    };
                    format!(
                        "{} by {} (signed, key {}){why}",
                        d.decision.as_str(),
                        d.by,
                        d.key
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                r.body.id,
                r.body.kind,
                r.body.requested_by,
                r.body.reason.replace('|', "/"),
                r.state,
                if decisions.is_empty() {
                    "—".to_string()
                } else {
                    decisions.join("; ")
                }
            );
        }
        out.push('\n');
    }
    let trips: Vec<&Request> = requests
        .iter()
        .filter(|r| r.body.kind == RequestKind::Tripwire)
        .collect();
    let _ = writeln!(out, "## Tripwires fired\n");
    if trips.is_empty() {
        let _ = writeln!(out, "None.\n");
    } else {
        for r in trips {
            let _ = writeln!(out, "- {} ({}): {}", r.body.id, r.state, r.body.reason);
        }
        out.push('\n');
    }
    let mut refusals: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for (_, p) in payloads.iter().filter(|(_, p)| p["kind"] == "denied") {
        let key = (
            p["data"]["principal"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            p["data"]["action"].as_str().unwrap_or_default().to_string(),
        );
        *refusals.entry(key).or_default() += 1;
    }
    let _ = writeln!(out, "## Refused actions\n");
    if refusals.is_empty() {
        let _ = writeln!(out, "None.\n");
    } else {
        let _ = writeln!(out, "| principal | action | times |\n|---|---|---|");
        for ((principal, action), n) in refusals {
            let _ = writeln!(out, "| {principal} | {action} | {n} |");
        }
        out.push('\n');
    }
    out
}

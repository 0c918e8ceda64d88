//! The rules of deciding on a request, enforced in code whatever the policy says.

use firebreak_core::{Timestamp, parse_rfc3339};
use firebreak_ledger::{Request, RequestState, SignedDecision, Verdict};
use firebreak_spec::Approver;

use crate::{GovernError, Principal};

/// Checks that `principal` may record `decision` on `request` at `now`: the
/// request is pending and not expired, the principal is a listed person with a
/// deciding role and the key they signed with, did not ask for the change, has not
/// decided already, and the signature is over this request's hash.
pub fn check_decision(
    request: &Request,
    principal: &Principal,
    decision: &SignedDecision,
    approvers: &[Approver],
    now: Timestamp,
) -> Result<(), GovernError> {
    let id = &request.body.id;
    let refuse = |why: String| Err(GovernError::Refused(why));
    if request.state != RequestState::Pending {
        return refuse(format!("request {id} is {}, not pending", request.state));
    }
    if parse_rfc3339(&request.body.expires_at).is_none_or(|at| now > at) {
        return refuse(format!(
            "request {id} expired at {}; ask again",
            request.body.expires_at
        ));
    }
    let name = match principal {
        Principal::Human { name, .. } => name,
        Principal::Local { .. } => {
            return refuse(format!(
                "{principal} has no key: local users may ask, never decide"
            ));
        }
        Principal::Agent { .. } | Principal::Worker { .. } => {
            return refuse(format!(
                "{principal} is automated: agents and workers never decide"
            ));
        }
    };
    let Some(listed) = approvers.iter().find(|a| &a.name == name) else {
        return refuse(format!("{name} is not listed in the campaign's approvers"));
    };
    if !matches!(listed.role.as_str(), "approver" | "admin") {
        return refuse(format!(
            "{name} has role {}; only approvers and admins decide",
            listed.role
        ));
    }
    if decision.by != *name || decision.key != listed.key {
        return refuse(format!(
            "the decision is signed as {} with key {}, but {name}'s listed key is {}",
            decision.by, decision.key, listed.key
        ));
    }
    decision.verify(&request.hash).map_err(|e| {
        GovernError::Refused(format!("not a signature on request {id} as it stands: {e}"))
    })?;
    if request.body.requested_by == *name {
        return refuse(format!(
            "{name} asked for request {id} and cannot decide it"
        ));
    }
    if let Some(user) = &listed.os_user
        && request.body.requested_by == format!("local:{user}")
    {
        return refuse(format!(
            "request {id} was filed as local:{user}, {name}'s operating-system user, \
             so {name} asked for it and cannot decide it"
        ));
    }
    if request.decisions.iter().any(|d| d.by == *name) {
        return refuse(format!("{name} has already decided request {id}"));
    }
    if request.decisions.iter().any(|d| d.key == decision.key) {
        return refuse(format!(
            "key {} has already decided request {id} (under another name)",
            decision.key
        ));
    }
    if decision.decision == Verdict::Reject && decision.reason.trim().is_empty() {
        return refuse("a rejection needs a reason".to_string());
    }
    Ok(())
}

/// Where a request stands after its decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// More approvals are needed.
    Pending,
    /// The quorum approved.
    Approved,
    /// Someone rejected.
    Rejected,
}

/// One rejection rejects; approvals with `quorum` distinct keys approve.
pub fn outcome(request: &Request, quorum: usize) -> RequestOutcome {
    let keys: std::collections::BTreeSet<&str> = request
        .decisions
        .iter()
        .filter(|d| d.decision == Verdict::Approve)
        .map(|d| d.key.as_str())
        .collect();
    if !request.rejections().is_empty() {
        RequestOutcome::Rejected
    } else if keys.len() >= quorum.max(1) {
        RequestOutcome::Approved
    } else {
        RequestOutcome::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_ledger::{RequestBody, RequestKind, SigningKey, public_key_string};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn approvers() -> Vec<Approver> {
        ["alice", "bob", "carol"]
            .iter()
            .enumerate()
            .map(|(i, name)| Approver {
                name: (*name).into(),
                key: public_key_string(&key(i as u8 + 1).verifying_key()),
                role: if *name == "carol" {
                    "researcher"
                } else {
                    "approver"
                }
                .into(),
                os_user: (*name == "alice").then(|| "ann".to_string()),
            })
            .collect()
    }

    fn request(id: &str, n_trials: u64) -> Request {
        Request::new(RequestBody {
            v: 1,
            id: id.into(),
            campaign: "c".into(),
            kind: RequestKind::Budget,
            diff: serde_json::json!([{"op": "replace", "path": "/search/n_trials", "value": n_trials}]),
            base_spec_hash: String::new(),
            requested_by: "alice".into(),
            reason: String::new(),
            created_at: "2026-11-28T00:00:00.000Z".into(),
            expires_at: "2026-11-29T00:00:00.000Z".into(),
            evidence: None,
        })
        .expect("canonical")
    }

    fn human(name: &str) -> Principal {
        Principal::Human {
            name: name.into(),
            role: "approver".into(),
        }
    }

    const NOW: Timestamp = 1_795_900_000_000; // 2026-11-28T…

    #[test]
    fn the_rules_refuse_what_they_must() {
        let list = approvers();
        let r1 = request("R1", 20);
        let sign = |seed: u8, by: &str, r: &Request| {
            SignedDecision::sign(&key(seed), by, Verdict::Approve, &r.hash, "")
        };
        let bob = sign(2, "bob", &r1);
        assert_eq!(check_decision(&r1, &human("bob"), &bob, &list, NOW), Ok(()));
        let cases: Vec<(&str, Request, Principal, SignedDecision, Timestamp)> = vec![
            (
                "own request",
                r1.clone(),
                human("alice"),
                sign(1, "alice", &r1),
                NOW,
            ),
            (
                "agent",
                r1.clone(),
                Principal::Agent { name: "tpe".into() },
                bob.clone(),
                NOW,
            ),
            (
                "local",
                r1.clone(),
                Principal::Local { user: "bob".into() },
                bob.clone(),
                NOW,
            ),
            (
                "researcher",
                r1.clone(),
                human("carol"),
                sign(3, "carol", &r1),
                NOW,
            ),
            (
                "replayed for another request",
                request("R2", 40),
                human("bob"),
                bob.clone(),
                NOW,
            ),
            (
                "expired",
                r1.clone(),
                human("bob"),
                bob.clone(),
                NOW + 86_400_000,
            ),
            (
                "someone else's key",
                r1.clone(),
                human("bob"),
                sign(1, "bob", &r1),
                NOW,
            ),
            (
                "second decision",
                {
                    let mut r = r1.clone();
                    r.decisions.push(bob.clone());
                    r
                },
                human("bob"),
                bob.clone(),
                NOW,
            ),
            (
                "filed as her own operating-system user",
                {
                    let mut r = r1.clone();
                    r.body.requested_by = "local:ann".into();
                    r.hash = r.body.hash().expect("canonical");
                    r
                },
                human("alice"),
                {
                    let mut r = r1.clone();
                    r.body.requested_by = "local:ann".into();
                    sign(1, "alice", &Request::new(r.body).expect("canonical"))
                },
                NOW,
            ),
        ];
        for (what, request, principal, decision, now) in cases {
            assert!(
                check_decision(&request, &principal, &decision, &list, now).is_err(),
                "{what} was accepted"
            );
        }
        // One key listed under two names decides once.
        let mut doubled = list.clone();
        doubled.push(Approver {
            name: "dave".into(),
            key: bob.key.clone(),
            role: "approver".into(),
            os_user: None,
        });
        let mut decided = r1.clone();
        decided.decisions.push(bob.clone());
        let dave = sign(2, "dave", &r1);
        assert!(check_decision(&decided, &human("dave"), &dave, &doubled, NOW).is_err());
        let mut approved = r1;
        approved.decisions.push(bob);
        assert_eq!(outcome(&approved, 1), RequestOutcome::Approved);
        assert_eq!(outcome(&approved, 2), RequestOutcome::Pending);
        let mut twice = approved.clone();
        let mut again = twice.decisions[0].clone();
        again.by = "alice".into();
        twice.decisions.push(again);
        assert_eq!(
            outcome(&twice, 2),
            RequestOutcome::Pending,
            "one key counted twice"
        );
    }
}

//! Cedar authorisation: the shipped policy and schema, and an [`Authorizer`] that
//! turns each decision into the [`Authorization`] the ledger records.

use std::collections::HashSet;
use std::str::FromStr;

use cedar_policy::{
    Context, Entities, Entity, PolicyId, PolicySet, Request, Schema, ValidationMode, Validator,
};
use firebreak_ledger::{Authorization, RequestKind};
use firebreak_spec::Approver;

use crate::GovernError;
use crate::principal::{Principal, uid};

/// The policy used when `[governance]` names none.
pub const DEFAULT_POLICY: &str = include_str!("../policies/default.cedar");

/// The Cedar schema policies are validated against (entity types, action ids).
pub const SCHEMA: &str = include_str!("../policies/schema.cedarschema");

/// An action that policy decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// An agent or a person proposes a trial.
    ProposeTrial,
    /// A worker starts a claimed trial.
    StartTrial,
    /// A governed change of this kind is asked for (context `stage ==
    /// "request"`) or would take effect (`stage == "apply"`, with the approvals
    /// so far and the quorum).
    Change(RequestKind),
    /// Approve a request.
    Approve,
    /// Reject a request.
    Reject,
}

impl Action {
    /// The Cedar action id.
    pub fn id(self) -> &'static str {
        match self {
            Action::ProposeTrial => "propose_trial",
            Action::StartTrial => "start_trial",
            Action::Change(kind) => match kind {
                RequestKind::Constraints => "change_constraints",
                RequestKind::Space => "change_space",
                RequestKind::Policy => "change_policy",
                RequestKind::Approvers => "change_approvers",
                RequestKind::Evaluation => "change_evaluation",
                RequestKind::Budget => "raise_budget",
                RequestKind::Tripwire => "clear_tripwire",
                RequestKind::Promotion => "promote_champion",
            },
            Action::Approve => "approve",
            Action::Reject => "reject",
        }
    }
}

/// Decides actions with a campaign's policy.
#[derive(Debug)]
pub struct Authorizer {
    policies: PolicySet,
    entities: Entities,
    campaign: cedar_policy::EntityUid,
    cedar: cedar_policy::Authorizer,
}

impl Authorizer {
    /// Builds the authoriser of `campaign` from its policy text (the shipped
    /// default when `None`) and its approvers (their roles become Cedar parents).
    /// The policy must parse, give every policy an `@id`, and validate against
    /// [`SCHEMA`].
    pub fn new(
        policy_text: Option<&str>,
        approvers: &[Approver],
        campaign: &str,
    ) -> Result<Self, GovernError> {
        let schema = schema()?;
        let policies = parse_policies(policy_text.unwrap_or(DEFAULT_POLICY), &schema)?;
        let entity_error = |e: cedar_policy::entities_errors::EntitiesError| {
            GovernError::Policy(format!("approvers as Cedar entities: {e}"))
        };
        let entities = schema
            .action_entities()
            .map_err(entity_error)?
            .add_entities(
                approvers.iter().map(|a| {
                    let parents = HashSet::from([uid("Role", &a.role)]);
                    Entity::new_no_attrs(uid("Human", &a.name), parents)
                }),
                None,
            )
            .map_err(entity_error)?;
        Ok(Authorizer {
            policies,
            entities,
            campaign: uid("Campaign", campaign),
            cedar: cedar_policy::Authorizer::new(),
        })
    }

    /// Decides `action` by `principal` with this context (a JSON object whose
    /// keys the schema gives for the action).
    pub fn authorize(
        &self,
        principal: &Principal,
        action: Action,
        context: serde_json::Value,
    ) -> Authorization {
        let deny = |policies: Vec<String>| Authorization {
            decision: "deny".into(),
            policies,
        };
        let Ok(context) = Context::from_json_value(context, None) else {
            return deny(vec!["(bad context)".into()]);
        };
        let action_uid = uid("Action", action.id());
        let Ok(request) = Request::new(
            principal.uid(),
            action_uid,
            self.campaign.clone(),
            context,
            None,
        ) else {
            return deny(vec!["(bad request)".into()]);
        };
        let response = self
            .cedar
            .is_authorized(&request, &self.policies, &self.entities);
        let mut policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        policies.sort();
        match response.decision() {
            cedar_policy::Decision::Allow => Authorization {
                decision: "allow".into(),
                policies,
            },
            cedar_policy::Decision::Deny => deny(policies),
        }
    }

    /// Like [`Authorizer::authorize`], but a deny is an error naming the policies.
    pub fn require(
        &self,
        principal: &Principal,
        action: Action,
        context: serde_json::Value,
    ) -> Result<Authorization, (Authorization, GovernError)> {
        let decision = self.authorize(principal, action, context);
        if decision.allowed() {
            Ok(decision)
        } else {
            let error = GovernError::Denied {
                principal: principal.id(),
                action: action.id().to_string(),
                policies: decision.policies.clone(),
            };
            Err((decision, error))
        }
    }
}

/// Parses a policy set, re-identifies each policy by its `@id` annotation and
/// validates the set against the schema.
fn schema() -> Result<Schema, GovernError> {
    Schema::from_cedarschema_str(SCHEMA)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| GovernError::Policy(format!("the shipped schema: {e}")))
}

fn parse_policies(text: &str, schema: &Schema) -> Result<PolicySet, GovernError> {
    let parsed = PolicySet::from_str(text).map_err(|e| GovernError::Policy(e.to_string()))?;
    let mut policies = PolicySet::new();
    for policy in parsed.policies() {
        let id = policy.annotation("id").ok_or_else(|| {
            GovernError::Policy(format!(
                "every policy needs an @id(\"…\") annotation, so decisions can name it (policy starting {:?})",
                policy.to_string().chars().take(60).collect::<String>()
            ))
        })?;
        policies
            .add(policy.new_id(PolicyId::new(id)))
            .map_err(|e| GovernError::Policy(format!("policy {id}: {e}")))?;
    }
    let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
    if !result.validation_passed() {
        let errors: Vec<String> = result.validation_errors().map(|e| e.to_string()).collect();
        return Err(GovernError::Policy(format!(
            "does not fit the schema: {}",
            errors.join("; ")
        )));
    }
    Ok(policies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn approver(name: &str, role: &str) -> Approver {
        Approver {
            name: name.into(),
            key: String::new(),
            role: role.into(),
            os_user: None,
        }
    }

    fn human(name: &str, role: &str) -> Principal {
        Principal::Human {
            name: name.into(),
            role: role.into(),
        }
    }

    /// The default policy's decisions, as a table: principal, action, context,
    /// expected decision and deciding policies.
    #[test]
    fn default_policy_decisions() {
        let authorizer = Authorizer::new(
            None,
            &[
                approver("alice", "approver"),
                approver("root", "admin"),
                approver("rita", "researcher"),
            ],
            "c",
        )
        .expect("the default policy validates");
        let agent = Principal::Agent { name: "tpe".into() };
        let worker = Principal::Worker { run: 1, slot: 0 };
        let local = Principal::Local { user: "ann".into() };
        let (alice, root, rita) = (
            human("alice", "approver"),
            human("root", "admin"),
            human("rita", "researcher"),
        );
        let ask = json!({"stage": "request", "approvals": 0, "quorum": 2, "kind": "budget"});
        let short = json!({"stage": "apply", "approvals": 1, "quorum": 2, "kind": "budget"});
        let enough = json!({"stage": "apply", "approvals": 2, "quorum": 2, "kind": "budget"});
        let theirs = json!({"own_request": false, "kind": "budget", "request": "R1"});
        let own = json!({"own_request": true, "kind": "budget", "request": "R1"});
        let budget = Action::Change(RequestKind::Budget);
        let table: Vec<(&Principal, Action, serde_json::Value, &str, &[&str])> = vec![
            (
                &agent,
                Action::ProposeTrial,
                json!({}),
                "allow",
                &["propose-within-space"],
            ),
            (
                &local,
                Action::ProposeTrial,
                json!({}),
                "allow",
                &["propose-within-space"],
            ),
            (&worker, Action::ProposeTrial, json!({}), "deny", &[]),
            (
                &worker,
                Action::StartTrial,
                json!({}),
                "allow",
                &["workers-start-trials"],
            ),
            (&agent, Action::StartTrial, json!({}), "deny", &[]),
            (&agent, budget, ask.clone(), "allow", &["anyone-may-ask"]),
            (&local, budget, ask.clone(), "allow", &["anyone-may-ask"]),
            (&worker, budget, ask, "deny", &["workers-never-ask"]),
            (&agent, budget, short, "deny", &[]),
            (&agent, budget, enough, "allow", &["changes-need-quorum"]),
            (
                &alice,
                Action::Approve,
                theirs.clone(),
                "allow",
                &["approvers-decide"],
            ),
            (
                &root,
                Action::Reject,
                theirs.clone(),
                "allow",
                &["admins-decide"],
            ),
            (&alice, Action::Approve, own, "deny", &["no-self-approval"]),
            (&rita, Action::Approve, theirs.clone(), "deny", &[]),
            (&local, Action::Approve, theirs.clone(), "deny", &[]),
            (
                &agent,
                Action::Approve,
                theirs,
                "deny",
                &["machines-never-decide"],
            ),
        ];
        for (principal, action, context, decision, policies) in table {
            let got = authorizer.authorize(principal, action, context);
            assert_eq!(
                (got.decision.as_str(), got.policies.clone()),
                (decision, policies.iter().map(ToString::to_string).collect()),
                "{principal} {}",
                action.id()
            );
        }
    }

    #[test]
    fn a_custom_policy_is_validated_and_named() {
        let deny = r#"
            @id("no-proposals")
            forbid (principal, action == Firebreak::Action::"propose_trial", resource);
        "#;
        let text = format!("{DEFAULT_POLICY}\n{deny}");
        let authorizer = Authorizer::new(Some(&text), &[], "c").expect("valid");
        let (decision, error) = authorizer
            .require(
                &Principal::Agent { name: "tpe".into() },
                Action::ProposeTrial,
                json!({}),
            )
            .expect_err("denied");
        assert_eq!(decision.policies, ["no-proposals"]);
        assert!(error.to_string().contains("no-proposals"), "{error}");
        let unnamed = "permit (principal, action, resource);";
        assert!(Authorizer::new(Some(unnamed), &[], "c").is_err());
        let misspelt = r#"@id("x") permit (principal, action == Firebreak::Action::"propose_trail", resource);"#;
        let error = Authorizer::new(Some(misspelt), &[], "c").expect_err("not in the schema");
        assert!(error.to_string().contains("schema"), "{error}");
    }
}

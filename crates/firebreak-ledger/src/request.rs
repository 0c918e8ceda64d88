//! Change requests as the ledger records them: the body that is hashed, the
//! signed decisions on it, and the exact bytes each signature covers.
//!
//! A request's hash is `SHA-256(REQUEST_DOMAIN ‖ JCS(body))`, hex. A decision's
//! signature is Ed25519 over `DECISION_DOMAIN ‖ JCS({"decision", "reason",
//! "request", "v"})` where `request` is that hash: a signature for one request can
//! never count for another, nor for a modified copy of the same one.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::checkpoint::{public_key_string, verify_signature};
use crate::entry::{canonical_json, hex};
use crate::error::LedgerError;

/// The domain separator of request hashes.
pub const REQUEST_DOMAIN: &[u8] = b"firebreak request v1\n";
/// The domain separator of decision signatures.
pub const DECISION_DOMAIN: &[u8] = b"firebreak decision v1\n";

/// What a request would change (contract: *Requests JSON*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// `[constraints]` limits.
    Constraints,
    /// Space bounds, choices, added or removed parameters.
    Space,
    /// The Cedar policy.
    Policy,
    /// Approvers and quorum.
    Approvers,
    /// Tripwires, objective, the task's evaluation settings.
    Evaluation,
    /// `n_trials`.
    Budget,
    /// A tripped tripwire asking to go on.
    Tripwire,
    /// A generation's champion asking to be promoted (`[generations]`).
    Promotion,
}

impl RequestKind {
    /// The kind's name as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Constraints => "constraints",
            RequestKind::Space => "space",
            RequestKind::Policy => "policy",
            RequestKind::Approvers => "approvers",
            RequestKind::Evaluation => "evaluation",
            RequestKind::Budget => "budget",
            RequestKind::Tripwire => "tripwire",
            RequestKind::Promotion => "promotion",
        }
    }
}

impl std::fmt::Display for RequestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an edit at one JSON pointer of a canonical spec needs: the one rule the
/// engine files requests by and the audit replays every `spec_changed` with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditClass {
    /// Takes effect at once, recorded as a request-less `spec_changed` (the
    /// sampler, the scheduler, parallelism, retries, timeouts, the seed).
    Free,
    /// Never changes the spec in effect (the description).
    Ignored,
    /// Needs an approved request of this kind.
    Governed(RequestKind),
}

/// The class of an edit at `path` (RFC 6901), by its section and key: the table
/// in `docs/governance.md`. A path that names a whole section, or the whole spec,
/// is governed by the most general kind it could touch, so no edit of a governed
/// setting can hide in a coarser patch.
pub fn classify_path(path: &str) -> EditClass {
    let mut parts = path.strip_prefix('/').unwrap_or(path).splitn(3, '/');
    let section = parts.next().unwrap_or_default();
    let key = parts.next().unwrap_or_default();
    let kind = match (section, key) {
        ("campaign", "description") => return EditClass::Ignored,
        ("" | "objective" | "task", _) | ("campaign", "" | "name") => RequestKind::Evaluation,
        ("constraints", _) | ("search", "n_trials" | "") => RequestKind::Budget,
        ("space", _) | ("generations", "next_space") => RequestKind::Space,
        ("generations", "count" | "budget") => RequestKind::Budget,
        ("governance", "approvers" | "quorum" | "request_ttl") => RequestKind::Approvers,
        ("governance", "policy" | "policy_text") => RequestKind::Policy,
        ("search", _) | ("campaign", "seed") => return EditClass::Free,
        // Anything else (a section or key no spec has) is treated as governed,
        // so an unknown path can never carry a change past the rules.
        _ => RequestKind::Evaluation,
    };
    EditClass::Governed(kind)
}

/// Prefixes of the principal ids of machines (`agent:NAME`, `worker:RUN/SLOT`,
/// `tripwire:INDEX`, `generation:K`); every other id is a person's.
const MACHINE_PREFIXES: [&str; 4] = ["agent:", "worker:", "tripwire:", "generation:"];

/// True when `principal` (a request's `requested_by`, a decision's `by`) is a
/// person: a listed name or `local:USER`, not an agent, worker, tripwire or the
/// engine filing a generation's promotion.
pub fn is_person(principal: &str) -> bool {
    !MACHINE_PREFIXES.iter().any(|p| principal.starts_with(p))
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Waiting for decisions.
    Pending,
    /// The quorum approved it; the change took effect.
    Approved,
    /// Someone rejected it.
    Rejected,
    /// Its time to live ran out.
    Expired,
    /// A newer request of the same kind replaced it.
    Superseded,
}

impl RequestState {
    /// The state's name as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Rejected => "rejected",
            RequestState::Expired => "expired",
            RequestState::Superseded => "superseded",
        }
    }
}

impl std::fmt::Display for RequestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hashed part of a request: everything a decision is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestBody {
    /// Format version, 1.
    pub v: u32,
    /// Its id, unique in the database.
    pub id: String,
    /// The campaign it would change.
    pub campaign: String,
    /// What it would change.
    pub kind: RequestKind,
    /// RFC 6902 JSON Patch against the campaign's canonical spec (empty for a
    /// tripwire: approving it lets the campaign go on).
    pub diff: serde_json::Value,
    /// Hex SHA-256 of the canonical spec the patch applies to.
    pub base_spec_hash: String,
    /// The principal who asked (`alice`, `local:ann`, `agent:tpe`, `tripwire:0`).
    pub requested_by: String,
    /// Why, in words.
    pub reason: String,
    /// When it was filed (RFC 3339).
    pub created_at: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// What the deciders should see besides the diff (a promotion: the
    /// generation, its champion, the gate results, the champion's changes from
    /// the configuration it started from). Hashed and signed with the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<serde_json::Value>,
}

impl RequestBody {
    /// Hex `SHA-256(REQUEST_DOMAIN ‖ JCS(body))`.
    ///
    /// Fails, naming the request, when the body cannot be canonicalised: its
    /// diff is JSON from outside (a spec edit, a stored record), and a hash of
    /// anything else would stand for a body nobody can reproduce.
    pub fn hash(&self) -> Result<String, LedgerError> {
        let body = canonical(&format!("the body of request {}", self.id), self)?;
        let mut hasher = Sha256::new();
        hasher.update(REQUEST_DOMAIN);
        hasher.update(body.as_bytes());
        Ok(hex(&hasher.finalize()))
    }
}

/// Hex SHA-256 of the canonical JSON of a diff: equal edits share it.
///
/// Fails when the diff cannot be canonicalised, rather than hashing `""` (which
/// would make every such diff "equal" to every other).
pub fn diff_hash(diff: &serde_json::Value) -> Result<String, LedgerError> {
    let text = canonical("a request's diff", diff)?;
    Ok(hex(&Sha256::digest(text.as_bytes())))
}

/// `canonical_json`, its failure naming `what` was being canonicalised.
fn canonical<T: Serialize>(what: &str, value: &T) -> Result<String, LedgerError> {
    canonical_json(value).map_err(|e| LedgerError::Canonical {
        what: what.to_string(),
        reason: match e {
            LedgerError::Encode(reason) => reason,
            other => other.to_string(),
        },
    })
}

/// A request with where it stands: the stored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The hashed body.
    #[serde(flatten)]
    pub body: RequestBody,
    /// `body.hash()`, what decisions sign.
    pub hash: String,
    /// Hash of the diff alone.
    pub diff_hash: String,
    /// Where it stands.
    pub state: RequestState,
    /// The signed decisions so far, in order.
    pub decisions: Vec<SignedDecision>,
}

impl Request {
    /// A new pending request with this body; fails when the body cannot be
    /// canonicalised (see [`RequestBody::hash`]).
    pub fn new(body: RequestBody) -> Result<Request, LedgerError> {
        Ok(Request {
            hash: body.hash()?,
            diff_hash: diff_hash(&body.diff)?,
            body,
            state: RequestState::Pending,
            decisions: Vec::new(),
        })
    }

    /// Names of those who approved.
    pub fn approvals(&self) -> Vec<&str> {
        self.names(Verdict::Approve)
    }

    /// Names of those who rejected.
    pub fn rejections(&self) -> Vec<&str> {
        self.names(Verdict::Reject)
    }

    fn names(&self, verdict: Verdict) -> Vec<&str> {
        self.decisions
            .iter()
            .filter(|d| d.decision == verdict)
            .map(|d| d.by.as_str())
            .collect()
    }
}

/// Approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Counts towards the quorum.
    Approve,
    /// Rejects the request at once.
    Reject,
}

impl Verdict {
    /// `approve` or `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        }
    }
}

/// A signed decision on a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedDecision {
    /// Approve or reject.
    pub decision: Verdict,
    /// The request's hash the signature covers.
    pub request: String,
    /// The approver's name in the campaign's governance.
    pub by: String,
    /// The approver's public key, `ed25519:` + base64.
    pub key: String,
    /// Why (required for a rejection; empty for an approval).
    pub reason: String,
    /// Base64 Ed25519 signature over [`decision_message`].
    pub signature: String,
}

#[derive(Serialize)]
struct DecisionMessage<'a> {
    v: u32,
    decision: Verdict,
    request: &'a str,
    reason: &'a str,
}

/// The exact bytes a decision's signature covers.
pub fn decision_message(decision: Verdict, request_hash: &str, reason: &str) -> Vec<u8> {
    let body = canonical_json(&DecisionMessage {
        v: 1,
        decision,
        request: request_hash,
        reason,
    })
    // Cannot fail: the message is an integer, a unit enum and two strings, with
    // no float to be non-finite and no map to repeat a key.
    .expect("a decision message always canonicalises");
    [DECISION_DOMAIN, body.as_bytes()].concat()
}

impl SignedDecision {
    /// Signs a decision on the request with this hash.
    pub fn sign(
        key: &SigningKey,
        by: &str,
        decision: Verdict,
        request_hash: &str,
        reason: &str,
    ) -> SignedDecision {
        let signature = key.sign(&decision_message(decision, request_hash, reason));
        SignedDecision {
            decision,
            request: request_hash.to_string(),
            by: by.to_string(),
            key: public_key_string(&key.verifying_key()),
            reason: reason.to_string(),
            signature: STANDARD.encode(signature.to_bytes()),
        }
    }

    /// Checks the signature against the key the decision names, for the request
    /// with hash `request_hash`.
    pub fn verify(&self, request_hash: &str) -> Result<(), String> {
        if self.request != request_hash {
            return Err(format!(
                "the decision is for request hash {}, not {request_hash}",
                self.request
            ));
        }
        let message = decision_message(self.decision, request_hash, &self.reason);
        if verify_signature(&self.key, &self.signature, &message)? {
            Ok(())
        } else {
            Err(format!("{}'s signature does not verify", self.by))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> RequestBody {
        RequestBody {
            v: 1,
            id: "R1".into(),
            campaign: "c".into(),
            kind: RequestKind::Budget,
            diff: serde_json::json!([{"op": "replace", "path": "/search/n_trials", "value": 20}]),
            base_spec_hash: "00".into(),
            requested_by: "agent:tpe".into(),
            reason: "results still improve".into(),
            created_at: "2026-11-28T00:00:00.000Z".into(),
            expires_at: "2026-12-05T00:00:00.000Z".into(),
            evidence: None,
        }
    }

    #[test]
    fn a_signature_counts_only_for_the_request_it_signed() {
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let hash = body().hash().expect("canonical");
        let decision = SignedDecision::sign(&key, "alice", Verdict::Approve, &hash, "");
        assert_eq!(decision.verify(&hash), Ok(()));
        let mut other = body();
        other.diff =
            serde_json::json!([{"op": "replace", "path": "/search/n_trials", "value": 40}]);
        let other_hash = other.hash().expect("canonical");
        assert!(decision.verify(&other_hash).is_err());
        let mut replayed = decision.clone();
        replayed.request = other_hash.clone();
        assert!(replayed.verify(&other_hash).is_err());
        let mut flipped = decision;
        flipped.decision = Verdict::Reject;
        assert!(flipped.verify(&hash).is_err());
    }

    #[test]
    fn a_value_that_cannot_be_canonicalised_is_an_error_naming_it() {
        // A `serde_json::Value` always canonicalises today (finite numbers,
        // string keys), so the failure is driven through the same helper with a
        // map whose key is not a string: the old code hashed "" in its place,
        // so any two such values shared one hash.
        let value = std::collections::BTreeMap::from([(vec![1u8], 0u8)]);
        let error = canonical("the diff of request R9", &value)
            .expect_err("not canonical")
            .to_string();
        assert!(error.contains("the diff of request R9"), "{error}");
        assert!(error.contains("key must be a string"), "{error}");
        assert!(error.contains("hint:"), "{error}");
    }

    #[test]
    fn equal_diffs_share_a_hash_and_different_ones_do_not() {
        let diff = body().diff;
        assert_eq!(
            diff_hash(&diff).expect("canonical"),
            diff_hash(&diff.clone()).expect("canonical")
        );
        assert_ne!(
            diff_hash(&diff).expect("canonical"),
            diff_hash(&serde_json::json!([])).expect("canonical")
        );
        let request = Request::new(body()).expect("canonical");
        assert_eq!(request.hash, body().hash().expect("canonical"));
    }

    #[test]
    fn every_path_is_classified_by_its_section_and_key() {
        let check =
            |path: &str, expected: EditClass| assert_eq!(classify_path(path), expected, "{path}");
        let governed = EditClass::Governed;
        check("/search/sampler", EditClass::Free);
        check("/search/parallelism", EditClass::Free);
        check("/campaign/seed", EditClass::Free);
        check("/campaign/description", EditClass::Ignored);
        check("/search/n_trials", governed(RequestKind::Budget));
        check("/search", governed(RequestKind::Budget));
        check("/constraints/max_trials", governed(RequestKind::Budget));
        check("/space/lr/high", governed(RequestKind::Space));
        check("/space", governed(RequestKind::Space));
        check("/governance/approvers/1", governed(RequestKind::Approvers));
        check("/governance/quorum", governed(RequestKind::Approvers));
        check("/governance/policy_text", governed(RequestKind::Policy));
        check(
            "/governance/tripwires/0/above",
            governed(RequestKind::Evaluation),
        );
        check("/governance", governed(RequestKind::Evaluation));
        check("/task/refit", governed(RequestKind::Evaluation));
        check("/objective/metric", governed(RequestKind::Evaluation));
        check("/campaign", governed(RequestKind::Evaluation));
        check("", governed(RequestKind::Evaluation));
        check("/space~1x", governed(RequestKind::Evaluation));
    }
}

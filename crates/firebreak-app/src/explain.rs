//! Explaining a trial: why it was proposed, which policy allowed it, the ledger
//! entries that name it, the inclusion proof of its proposal, and for an
//! agent's proposal the stored prompt and answer, each checked against the
//! hash the ledger holds.

use firebreak_core::{Params, Trial, TrialState};
use firebreak_store::Store;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{App, AppError, InclusionProof};

/// Why a trial exists and what vouches for it.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The campaign's name.
    pub campaign: String,
    /// The trial's number.
    pub number: u64,
    /// For an agent's proposal: the hashes ledgered for the request and the
    /// answer, whether the stored texts match them, the model, the prompt and
    /// the answer; `null` for other proposers.
    pub agent: Value,
    /// The trial's state.
    pub state: TrialState,
    /// Who proposed it.
    pub proposer: String,
    /// Why, in the proposer's words.
    pub rationale: String,
    /// The trial it retries, if it is a retry.
    pub retry_of: Option<u64>,
    /// Its parameters.
    pub params: Params,
    /// What allowed it, in words (the Cedar decision and policies).
    pub policy: String,
    /// Its ledger entries: `seq`, `kind`, `at`.
    pub ledger: Vec<Value>,
    /// The inclusion proof of its `trial_proposed` entry.
    pub proposal_inclusion: InclusionProof,
}

impl<S: Store> App<S> {
    /// Explains trial `number` of `campaign`.
    pub async fn explain(&self, campaign: &str, number: u64) -> Result<Explanation, AppError> {
        let record = self.store.campaign(campaign).await?;
        if let Some(record) = record.filter(|r| r.spec["kind"] == "optuna") {
            return self.explain_optuna(&record, number).await;
        }
        self.spec(campaign).await?;
        let trial = self.store.trial(campaign, number).await?;
        let rows = self.store.ledger().await?;
        let history: Vec<Value> = rows
            .iter()
            .filter(|e| e.campaign == campaign)
            .filter_map(|e| {
                let payload: Value = serde_json::from_str(&e.payload).ok()?;
                (payload["data"]["number"].as_u64() == Some(number))
                    .then(|| json!({"seq": e.seq, "kind": e.kind, "at": payload["at"]}))
            })
            .collect();
        let proposed = history
            .iter()
            .find(|h| h["kind"] == "trial_proposed")
            .and_then(|h| h["seq"].as_u64())
            .ok_or(AppError::NoProposal(number))?;
        let proof = self.inclusion(&rows, proposed).await?;
        let decision = rows
            .get(proposed as usize)
            .and_then(|e| serde_json::from_str::<Value>(&e.payload).ok())
            .map(|p| p["data"]["policy"].clone())
            .unwrap_or_default();
        let policy = match decision["policies"].as_array() {
            Some(ids) => format!(
                "Cedar: {} by policy {} (the proposal was first checked against the campaign's space)",
                decision["decision"].as_str().unwrap_or("?"),
                ids.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!(
                "{} (proposed by a person or a retry, or before policies were recorded)",
                trial.proposer
            ),
        };
        let agent = self.agent_exchange(&trial).await?;
        Ok(Explanation {
            campaign: campaign.to_string(),
            number,
            agent,
            state: trial.state,
            proposer: trial.proposer,
            rationale: trial.rationale,
            retry_of: trial.retry_of,
            params: trial.params,
            policy,
            ledger: history,
            proposal_inclusion: proof,
        })
    }

    /// An agent's proposal: the stored request and answer its proposer state
    /// names, each checked against the hash the ledger holds (`Null` for other
    /// proposers).
    async fn agent_exchange(&self, trial: &Trial) -> Result<Value, AppError> {
        let Some(names) = trial
            .proposer_state
            .as_ref()
            .map(|s| &s["agent"])
            .filter(|a| a.is_object())
        else {
            return Ok(Value::Null);
        };
        let mut texts = Vec::new();
        for key in ["request_sha256", "response_sha256"] {
            let text = match names[key].as_str() {
                Some(hash) => self
                    .store
                    .agent_text(hash)
                    .await?
                    .filter(|t| firebreak_agent::sha256_hex(t) == hash),
                None => None,
            };
            texts.push(text);
        }
        let parse = |t: &Option<String>| -> Value {
            t.as_deref()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default()
        };
        let request = parse(&texts[0]);
        let response = parse(&texts[1]);
        Ok(json!({
            "request_sha256": names["request_sha256"],
            "response_sha256": names["response_sha256"],
            "request_matches": texts[0].is_some(),
            "answer_matches": texts[1].is_some(),
            "tokens": names["tokens"],
            "model": request["model"],
            "prompt": request["messages"],
            "answer": response["choices"][0]["message"]["content"],
        }))
    }
}

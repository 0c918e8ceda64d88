//! The language-model agent proposer inside a run (`sampler = "agent"`).
//!
//! A request goes out with the campaign's state lock released, on a blocking
//! thread, at most `max_outstanding` at once, so other workers start and finish
//! trials while the model thinks. Every exchange is stored whole and ledgered
//! (`agent_answered`, with its token counts) before anything acts on it; a valid
//! answer becomes a proposal that is authorised like any other, an invalid one
//! is refused and never repaired, and after `max_invalid` invalid answers (or
//! failed requests) in a row the classic `fallback` proposer proposes for the
//! rest of the run (ledgered). A `kill -9` while a request is pending loses
//! nothing: nothing was recorded for it, and the next run asks again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use firebreak_agent::{AgentOptions, Client, Exchange, sha256_hex};
use firebreak_core::Params;
use firebreak_ledger::Event;
use serde_json::{Value, json};

use crate::RunnerError;

/// The agent of a campaign whose sampler is `agent`.
#[derive(Debug)]
pub(crate) struct Agent {
    pub(crate) client: Arc<Client>,
    outstanding: tokio::sync::Semaphore,
    invalid_in_row: AtomicU32,
    fallen_back: AtomicBool,
    /// Tokens used over every run (the ledger's count at open, plus this run's).
    tokens: AtomicU64,
}

/// The name agents' proposals carry as their proposer.
pub(crate) const AGENT: &str = "agent";

/// A valid answer, read: a configuration (empty for code tasks), the
/// candidate's editable files (code mode), and members of its proposer state.
#[derive(Debug, Default)]
pub(crate) struct Candidate {
    pub(crate) params: Params,
    pub(crate) rationale: String,
    pub(crate) files: BTreeMap<String, String>,
    pub(crate) extra: serde_json::Map<String, Value>,
    pub(crate) asks: Vec<firebreak_agent::Ask>,
}

/// What the runner does with one exchange.
pub(crate) enum Answer {
    /// A configuration to authorise and propose, with its rationale and the
    /// proposer state that names the exchange.
    Proposal {
        params: Params,
        rationale: String,
        state: Value,
        asks: Vec<firebreak_agent::Ask>,
    },
    /// Refused or failed: ask again, or fall back.
    Refused,
}

impl Agent {
    /// The agent for `options`, with `tokens` used before this run; reads the
    /// API key now, so a missing one stops the run before anything starts.
    pub(crate) fn new(options: &AgentOptions, tokens: u64) -> Result<Self, RunnerError> {
        Ok(Agent {
            client: Arc::new(Client::new(options)?),
            outstanding: tokio::sync::Semaphore::new(options.max_outstanding as usize),
            invalid_in_row: AtomicU32::new(0),
            fallen_back: AtomicBool::new(false),
            tokens: AtomicU64::new(tokens),
        })
    }

    pub(crate) fn options(&self) -> &AgentOptions {
        self.client.options()
    }

    /// True once the fallback proposes for the rest of the run.
    pub(crate) fn fallen_back(&self) -> bool {
        self.fallen_back.load(Ordering::SeqCst)
    }

    /// Tokens used over every run.
    pub(crate) fn tokens(&self) -> u64 {
        self.tokens.load(Ordering::SeqCst)
    }

    /// `Err(LlmBudget)` when `max_llm_tokens` is used up: no request starts.
    pub(crate) fn check_budget(&self, max: Option<u64>) -> Result<(), RunnerError> {
        match max {
            Some(max) if self.tokens() >= max => Err(RunnerError::LlmBudget(format!(
                "max_llm_tokens {max} reached ({} tokens used by the campaign's agents)",
                self.tokens()
            ))),
            _ => Ok(()),
        }
    }

    /// Sends `request` (off the async workers, within the outstanding bound).
    pub(crate) async fn exchange(
        &self,
        request: firebreak_agent::ChatRequest,
    ) -> Result<Exchange, RunnerError> {
        let _permit = self
            .outstanding
            .acquire()
            .await
            .map_err(|_| RunnerError::LlmBudget("the agent was shut down".into()))?;
        let client = self.client.clone();
        let exchange = tokio::task::spawn_blocking(move || client.chat(&request))
            .await
            .map_err(|e| RunnerError::Io {
                context: "the agent's request thread".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
        self.tokens.fetch_add(exchange.tokens(), Ordering::SeqCst);
        Ok(exchange)
    }

    /// Judges an exchange: `parsed` is what its content read as (`None` when no
    /// content came). Returns the ledger event (with the texts to store under
    /// their hashes) and what to do next. Counts invalid answers in a row; the
    /// caller asks [`Agent::fall_back`] after a refusal.
    pub(crate) fn judge(
        &self,
        exchange: &Exchange,
        parsed: Option<Result<Candidate, String>>,
    ) -> (Event, Vec<(String, String)>, Answer) {
        let request_sha256 = sha256_hex(&exchange.request);
        let response_sha256 = exchange.response.as_deref().map(sha256_hex);
        let mut texts = vec![(request_sha256.clone(), exchange.request.clone())];
        if let (Some(hash), Some(body)) = (&response_sha256, &exchange.response) {
            texts.push((hash.clone(), body.clone()));
        }
        let parsed = match parsed {
            Some(result) => result.map_err(|reason| ("invalid", reason)),
            None => Err((
                "error",
                exchange
                    .error
                    .clone()
                    .unwrap_or_else(|| "no answer".to_string()),
            )),
        };
        let mut files = None;
        let (outcome, reason, answer) = match parsed {
            Ok(candidate) => {
                self.invalid_in_row.store(0, Ordering::SeqCst);
                let mut agent = serde_json::Map::new();
                agent.insert("request_sha256".into(), json!(request_sha256));
                agent.insert("response_sha256".into(), json!(response_sha256));
                agent.insert("tokens".into(), json!(exchange.tokens()));
                if !candidate.files.is_empty() {
                    let hashes: BTreeMap<String, String> = candidate
                        .files
                        .iter()
                        .map(|(path, text)| {
                            let hash = sha256_hex(text);
                            texts.push((hash.clone(), text.clone()));
                            (path.clone(), hash)
                        })
                        .collect();
                    agent.insert("files".into(), json!(hashes));
                    files = Some(hashes);
                }
                agent.extend(candidate.extra);
                (
                    "proposal",
                    None,
                    Answer::Proposal {
                        params: candidate.params,
                        rationale: candidate.rationale,
                        state: json!({"v": 1, "agent": agent}),
                        asks: candidate.asks,
                    },
                )
            }
            Err((outcome, reason)) => {
                self.invalid_in_row.fetch_add(1, Ordering::SeqCst);
                (outcome, Some(reason), Answer::Refused)
            }
        };
        let event = Event::AgentAnswered {
            model: self.options().model.clone(),
            mode: match self.options().mode {
                firebreak_agent::Mode::Code => "code",
                _ => "config",
            }
            .to_string(),
            request_sha256,
            response_sha256,
            files,
            prompt_tokens: exchange.prompt_tokens,
            completion_tokens: exchange.completion_tokens,
            attempts: exchange.attempts,
            outcome: outcome.to_string(),
            reason,
        };
        (event, texts, answer)
    }

    /// After a refusal: true (once) when `max_invalid` refusals in a row mean the
    /// fallback proposes from now on in this run.
    pub(crate) fn fall_back(&self) -> bool {
        self.invalid_in_row.load(Ordering::SeqCst) >= self.options().max_invalid
            && !self.fallen_back.swap(true, Ordering::SeqCst)
    }
}

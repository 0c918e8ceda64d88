//! One OpenAI-compatible chat completions endpoint: `POST {base_url}/chat/completions`
//! with a bearer key from the environment, a whole-request timeout, and retries
//! with backoff for what may pass (transport errors, timeouts, 429, 5xx).

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{AgentError, AgentOptions, ChatRequest};

/// The first retry's wait; each later one doubles, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between retries (a `Retry-After` is honoured up to it too).
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// One request and its answer, as sent and received: what the store keeps whole
/// and the ledger names by hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// The request body sent (JSON text; the API key travels in a header and is
    /// never part of it).
    pub request: String,
    /// The last response body received, if any.
    pub response: Option<String>,
    /// The assistant message's content, when a well-formed answer came.
    pub content: Option<String>,
    /// Why there is no content: the transport's or the server's failure, or a
    /// malformed body.
    pub error: Option<String>,
    /// Prompt tokens, as the server counted them (0 when it did not say).
    pub prompt_tokens: u64,
    /// Completion tokens, as the server counted them.
    pub completion_tokens: u64,
    /// Requests sent (1 + retries).
    pub attempts: u32,
}

impl Exchange {
    /// Tokens the exchange used.
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// Hex SHA-256 of `text`.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A client of one endpoint. Blocking: run it off the async workers.
#[derive(Debug)]
pub struct Client {
    options: AgentOptions,
    key: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client for `options`, reading the API key from the variable
    /// `api_key_env` names (an error when it is named but unset).
    pub fn new(options: &AgentOptions) -> Result<Self, AgentError> {
        let key = match &options.api_key_env {
            None => None,
            Some(name) => Some(
                std::env::var(name)
                    .ok()
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| AgentError::MissingKey(name.clone()))?,
            ),
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(options.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Client {
            options: options.clone(),
            key,
            agent,
        })
    }

    /// The options it was made with.
    pub fn options(&self) -> &AgentOptions {
        &self.options
    }

    /// The endpoint requests go to.
    pub fn url(&self) -> String {
        format!("{}/chat/completions", self.options.base_url)
    }

    /// The request body for `request`: model, messages, sampling settings,
    /// seed and `response_format`.
    pub fn body(&self, request: &ChatRequest) -> String {
        let mut body = json!({
            "model": self.options.model,
            "messages": request.messages,
            "temperature": self.options.temperature,
            "max_tokens": self.options.max_tokens,
            "seed": request.seed,
            "stream": false,
        });
        if let Some(format) = &request.response_format {
            body["response_format"] = format.clone();
        }
        body.to_string()
    }

    /// Sends `request`, retrying what may pass; always returns what happened.
    pub fn chat(&self, request: &ChatRequest) -> Exchange {
        let body = self.body(request);
        let url = self.url();
        let mut exchange = Exchange {
            request: body,
            response: None,
            content: None,
            error: None,
            prompt_tokens: 0,
            completion_tokens: 0,
            attempts: 0,
        };
        let mut backoff = FIRST_BACKOFF;
        loop {
            exchange.attempts += 1;
            let (retry, wait) = match self.send(&url, &exchange.request) {
                Ok((200..=299, text)) => {
                    read_answer(&text, &mut exchange);
                    exchange.response = Some(text);
                    return exchange;
                }
                Ok((status, text)) => {
                    let start: String = text.chars().take(200).collect();
                    exchange.error = Some(format!("HTTP {status}: {start}"));
                    exchange.response = Some(text);
                    (status == 429 || status >= 500, None)
                }
                Err((reason, retry_after)) => {
                    exchange.error = Some(reason);
                    (true, retry_after)
                }
            };
            if !retry || exchange.attempts > self.options.retries {
                return exchange;
            }
            std::thread::sleep(wait.unwrap_or(backoff).min(MAX_BACKOFF));
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One POST: the status and body, or the transport's failure.
    fn send(&self, url: &str, body: &str) -> Result<(u16, String), (String, Option<Duration>)> {
        let mut call = self
            .agent
            .post(url)
            .header("Content-Type", "application/json");
        if let Some(key) = &self.key {
            call = call.header("Authorization", &format!("Bearer {key}"));
        }
        let mut response = call.send(body).map_err(|e| (e.to_string(), None))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| (format!("reading the answer: {e}"), retry_after))?;
        if status == 429 && retry_after.is_some() {
            return Err((
                format!("HTTP 429: {}", text.chars().take(200).collect::<String>()),
                retry_after,
            ));
        }
        Ok((status, text))
    }
}

/// Fills content and token counts from a 2xx body, or says why it is malformed.
fn read_answer(text: &str, exchange: &mut Exchange) {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        exchange.error = Some("the server's answer is not JSON".into());
        return;
    };
    let usage = &value["usage"];
    exchange.prompt_tokens = usage["prompt_tokens"].as_u64().unwrap_or(0);
    exchange.completion_tokens = usage["completion_tokens"].as_u64().unwrap_or(0);
    match value["choices"][0]["message"]["content"].as_str() {
        Some(content) => {
            exchange.content = Some(content.to_string());
            exchange.error = None;
        }
        None => {
            exchange.error = Some("the server's answer has no choices[0].message.content".into());
        }
    }
}

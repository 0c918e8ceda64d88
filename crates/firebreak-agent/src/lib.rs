//! The language-model agent proposer: what firebreak sends to an
//! OpenAI-compatible chat completions endpoint, and how it reads the answer.
//!
//! Principal types: [`AgentOptions`] (the `[search.sampler_options]` of
//! `sampler = "agent"`), [`Client`] (one endpoint: the API key read from the
//! named environment variable, timeouts, retries with backoff on 429, 5xx and
//! broken connections), [`Exchange`] (one request and its answer, byte for byte,
//! with their SHA-256 and token counts), [`config_request`] (the prompt and the
//! JSON schema of the campaign's space, sent as `response_format`) and
//! [`parse_config_answer`] (the answer read into typed parameters, or the reason
//! it is refused).
//!
//! Why a crate of its own: it is the only code that speaks HTTP to a model
//! server. It decides nothing: the runner validates every parsed proposal
//! against the space, authorises it by policy as the agent principal, ledgers
//! each exchange, and falls back to a classic proposer after too many invalid
//! answers. An invalid answer is never repaired (no clipping, no guessing of a
//! key), so what the ledger shows is what the model said.
//!
//! It does no storage and reads no file; the blocking client is meant to run off
//! the async workers (`spawn_blocking`).
#![warn(missing_docs)]

mod answer;
mod asks;
mod client;
mod code;
mod error;
mod options;
mod prompt;
mod schema;

pub use answer::{ConfigAnswer, parse_config_answer};
pub use asks::{Ask, MAX_ASKS};
pub use client::{Client, Exchange, sha256_hex};
pub use code::{CodeAnswer, CodeContext, CodeRefusal, code_request, parse_code_answer};
pub use error::AgentError;
pub use options::{AgentOptions, Mode, OPTION_KEYS};
pub use prompt::{ChatRequest, Message, config_request};
pub use schema::space_schema;

//! The crate's one error type.

/// What went wrong reading options or talking to the model server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// An option key this proposer does not know.
    #[error("the agent proposer has no option `{key}`")]
    UnknownOption {
        /// The key.
        key: String,
    },
    /// An option with a value of the wrong kind or range.
    #[error("agent option `{key}`: {message}")]
    BadOption {
        /// The key.
        key: String,
        /// What was wrong.
        message: String,
    },
    /// The environment variable `api_key_env` names is not set.
    #[error("the environment variable {0} (api_key_env) is not set")]
    MissingKey(String),
    /// No usable answer after every retry: the server was unreachable, timed
    /// out, or kept answering with an error status.
    #[error("model server {url}: {reason} (after {attempts} attempt(s))")]
    Unavailable {
        /// The endpoint.
        url: String,
        /// The last failure.
        reason: String,
        /// Requests sent.
        attempts: u32,
    },
}

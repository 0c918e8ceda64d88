//! The governance crate's error enum.

/// Why a governance action was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GovernError {
    /// A Cedar policy does not parse or does not fit the schema.
    #[error("policy: {0}")]
    Policy(String),
    /// The policy denied the action.
    #[error("denied by policy {policies}: {principal} may not {action}", policies = if .policies.is_empty() { "(no permit applies: default deny)".to_string() } else { .policies.join(", ") })]
    Denied {
        /// Who tried.
        principal: String,
        /// What.
        action: String,
        /// The deciding policies' ids.
        policies: Vec<String>,
    },
    /// A rule of deciding on requests was broken.
    #[error("{0}")]
    Refused(String),
}

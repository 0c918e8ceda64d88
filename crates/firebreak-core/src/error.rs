//! The error enum of the domain model.

/// Errors raised by domain-model operations (building a search space, checking values).
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum CoreError {
    /// A search space or parameter definition is inconsistent.
    #[error("parameter `{name}`: {message}")]
    InvalidParameter {
        /// The parameter's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A value lies outside its parameter's distribution or has the wrong type.
    #[error("parameter `{name}`: value {value} is outside its distribution ({expected})")]
    OutOfSpace {
        /// The parameter's name.
        name: String,
        /// The offending value, as JSON.
        value: String,
        /// The distribution, described.
        expected: String,
    },
    /// A parameter set names a parameter the space lacks, or lacks an active one.
    #[error("{0}")]
    Mismatch(String),
}

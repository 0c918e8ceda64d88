//! The search crate's error enum.

/// Errors building proposers and schedulers from their configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// No component of that name in this build.
    #[error("unknown {component} {name:?}")]
    Unknown {
        /// `sampler` or `scheduler`.
        component: &'static str,
        /// The name asked for.
        name: String,
        /// The names available.
        available: Vec<&'static str>,
    },
    /// An option the component does not take.
    #[error("{component} {name:?} has no option `{key}`")]
    UnknownOption {
        /// `sampler` or `scheduler`.
        component: &'static str,
        /// The component's name.
        name: String,
        /// The offending key.
        key: String,
        /// The options it takes.
        allowed: Vec<&'static str>,
    },
    /// An option with a bad value.
    #[error("option `{key}`: {message}")]
    BadOption {
        /// The option.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The component cannot work with this campaign (e.g. several objectives).
    #[error("{0}")]
    Unsupported(String),
}

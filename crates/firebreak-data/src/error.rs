//! The crate's one error type.

/// What can go wrong loading data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// No dataset has this name.
    #[error("unknown dataset `{0}`; hint: one of {list}", list = crate::DATASETS.join(", "))]
    Unknown(String),
    /// A bundled file could not be read (a damaged checkout).
    #[error("bundled dataset {name} is unreadable: {message}")]
    Corrupt {
        /// The dataset.
        name: String,
        /// What failed.
        message: String,
    },
}

//! The crate's one error type.

/// What can go wrong loading data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// No dataset has this name.
    #[error("unknown dataset `{0}`; hint: one of {list}", list = crate::DATASETS.join(", "))]
    Unknown(String),
    /// A split seed for a dataset whose splits cannot be redrawn.
    #[error(
        "dataset `{name}` has no partition to redraw with split_seed = {seed}: its test split holds harder levels than training shows\nhint: remove `split_seed` from [task]"
    )]
    NoSplitSeed {
        /// The dataset.
        name: String,
        /// The seed asked for.
        seed: u64,
    },
    /// A bundled file could not be read (a damaged checkout).
    #[error("bundled dataset {name} is unreadable: {message}")]
    Corrupt {
        /// The dataset.
        name: String,
        /// What failed.
        message: String,
    },
}

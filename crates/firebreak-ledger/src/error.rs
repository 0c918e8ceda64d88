//! The ledger crate's error enum.

/// Errors building ledger entries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// A value could not be turned into canonical JSON (e.g. a non-finite number).
    #[error("cannot encode ledger entry: {0}")]
    Encode(String),
}

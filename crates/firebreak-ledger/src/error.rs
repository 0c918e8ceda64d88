//! The ledger crate's error enum.

/// Errors building ledger entries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// A value could not be turned into canonical JSON (e.g. a non-finite number).
    #[error("cannot encode ledger entry: {0}")]
    Encode(String),
    /// A value that is hashed or signed could not be canonicalised (RFC 8785);
    /// hashing anything in its place would let two different values share a hash.
    #[error(
        "cannot canonicalise {what}: {reason}\n\
         hint: every number must be finite and fit a double, and no object may repeat a key"
    )]
    Canonical {
        /// The value, in words (e.g. `the diff of request R3`).
        what: String,
        /// The canonicaliser's reason.
        reason: String,
    },
}

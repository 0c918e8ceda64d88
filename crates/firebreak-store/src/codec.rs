//! How both stores turn values into columns and back: JSON text, SHA-256,
//! 32-byte hashes, metrics without the non-finite values no column holds, and
//! API token rows.

use firebreak_core::Metrics;
use firebreak_ledger::Hash;

use crate::StoreError;

/// A 32-byte hash column (all zeros when the column is not 32 bytes, which the
/// audit then reports as a broken chain).
pub(crate) fn to_hash(bytes: &[u8]) -> Hash {
    let mut hash = [0u8; 32];
    if bytes.len() == 32 {
        hash.copy_from_slice(bytes);
    }
    hash
}

/// A value as the JSON text a column stores.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

/// A JSON column read back; a bad one is `Corrupt`, naming its start.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{e}: {text:.80}")))
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> Hash {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

/// The finite metrics only (NaN and infinities are neither JSON nor results).
pub(crate) fn finite_metrics(metrics: &Metrics) -> Metrics {
    metrics
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// A token row read by either store (`SELECT id, name, role, hash, created_at,
/// expires_at, revoked_at`).
pub(crate) fn token_from_row<'r, R>(row: &'r R) -> Result<crate::TokenRecord, crate::StoreError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(crate::TokenRecord {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        role: row.try_get(2)?,
        hash: row.try_get(3)?,
        created_at: row.try_get(4)?,
        expires_at: row.try_get(5)?,
        revoked_at: row.try_get(6)?,
    })
}

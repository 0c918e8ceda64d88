//! The Merkle cache of the PostgreSQL store (`merkle_nodes`), as SQLite's: the
//! hash of every complete perfect subtree of `2^CACHE_LEVEL` entries and up, so
//! an inclusion proof reads at most two blocks of leaf hashes and a few cached
//! nodes instead of every leaf.
//!
//! Derived data, never trusted: a proof is only as good as its check against a
//! signed root (`verify_inclusion`), which a forged cache row fails. The cache is
//! extended inside `append_batch`'s transaction and, when it lags (entries
//! appended one by one by state changes), by the first proof that needs it, in a
//! ledger-locked transaction of its own.

use std::collections::HashMap;

use firebreak_ledger::{Hash, Node};
use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::{PgStore, to_hash};
use crate::merkle_cache::{self, CACHE_LEVEL, ProofPlan};
use crate::{LedgerProof, StoreError};

/// How many complete blocks of `2^CACHE_LEVEL` entries the cache covers. It is
/// filled in order and every level above at once, so level `j` holds exactly the
/// nodes `0..(blocks >> (j - CACHE_LEVEL))`.
async fn cached_blocks(conn: &mut PgConnection) -> Result<u64, StoreError> {
    let blocks: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM merkle_nodes WHERE level = $1")
            .bind(i64::from(CACHE_LEVEL))
            .fetch_one(&mut *conn)
            .await?;
    Ok(blocks.max(0) as u64)
}

/// Leaf hashes of entries `start..end`, `None` unless every one is there.
async fn leaf_hashes(
    conn: &mut PgConnection,
    start: u64,
    end: u64,
) -> Result<Option<Vec<Hash>>, StoreError> {
    let rows =
        sqlx::query("SELECT seq, hash FROM ledger WHERE seq >= $1 AND seq < $2 ORDER BY seq")
            .bind(start as i64)
            .bind(end as i64)
            .fetch_all(&mut *conn)
            .await?;
    let mut leaves = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<i64, _>(0)? as u64 != start + leaves.len() as u64 {
            return Ok(None);
        }
        leaves.push(to_hash(row.try_get::<&[u8], _>(1)?));
    }
    Ok((leaves.len() as u64 == end - start).then_some(leaves))
}

/// Adds the cache nodes of every complete block below `size` that it lacks, and
/// the levels above, on `conn` (inside the caller's ledger-locked transaction).
/// Leaf hashes come from `recent` (the hashes of entries `recent.0..`, just
/// appended) where it has them, else from the ledger. Does nothing when a leaf
/// row is missing (the cache stays short; proofs then use every leaf).
pub(super) async fn extend(
    conn: &mut PgConnection,
    size: u64,
    recent: Option<(u64, &[Hash])>,
) -> Result<(), StoreError> {
    let have = cached_blocks(conn).await?;
    let want = size >> CACHE_LEVEL;
    if have >= want {
        return Ok(());
    }
    let (start, end) = (have << CACHE_LEVEL, want << CACHE_LEVEL);
    let stored_until = recent.map_or(end, |(first, _)| first.clamp(start, end));
    let mut leaves: Vec<Hash> = Vec::with_capacity((end - start) as usize);
    if stored_until > start {
        match leaf_hashes(conn, start, stored_until).await? {
            Some(stored) => leaves.extend(stored),
            None => return Ok(()),
        }
    }
    if let Some((first, hashes)) = recent {
        let skip = (stored_until - first) as usize;
        let take = (end - stored_until) as usize;
        leaves.extend(hashes.iter().skip(skip).take(take));
    }
    if leaves.len() as u64 != end - start {
        return Ok(());
    }
    // A level's first new node may pair with the last cached node on its left.
    let mut left = HashMap::new();
    for node in merkle_cache::left_neighbours(have, want) {
        let hash: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT hash FROM merkle_nodes WHERE level = $1 AND idx = $2")
                .bind(i64::from(node.level))
                .bind(node.index as i64)
                .fetch_optional(&mut *conn)
                .await?;
        match hash {
            Some(hash) if hash.len() == 32 => left.insert(node, to_hash(&hash)),
            _ => return Ok(()),
        };
    }
    let Some(new_nodes) = merkle_cache::new_nodes(have, &leaves, &left) else {
        return Ok(());
    };
    let levels: Vec<i64> = new_nodes.iter().map(|n| i64::from(n.0)).collect();
    let indexes: Vec<i64> = new_nodes.iter().map(|n| n.1 as i64).collect();
    let hashes: Vec<Vec<u8>> = new_nodes.iter().map(|n| n.2.to_vec()).collect();
    sqlx::query(
        "INSERT INTO merkle_nodes (level, idx, hash) \
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[]) ON CONFLICT DO NOTHING",
    )
    .bind(levels)
    .bind(indexes)
    .bind(hashes)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl PgStore {
    /// The inclusion proof of entry `seq` in the tree of the first `tree_size`
    /// entries, from the stored leaf hashes and the Merkle cache (brought up to
    /// `tree_size` first), reading a few hundred rows at most. `None` when `seq >=
    /// tree_size`, when the ledger is shorter, or when a row it needs is missing:
    /// the caller then falls back to all leaves.
    pub async fn inclusion_proof(
        &self,
        seq: u64,
        tree_size: u64,
    ) -> Result<Option<LedgerProof>, StoreError> {
        if seq >= tree_size || tree_size > i64::MAX as u64 {
            return Ok(None);
        }
        if tree_size > self.ledger_size().await? {
            return Ok(None);
        }
        let mut conn = self.inner.pool.acquire().await?;
        if cached_blocks(&mut conn).await? < tree_size >> CACHE_LEVEL {
            let mut w = self.begin().await?;
            extend(&mut w.tx, tree_size, None).await?;
            self.commit(w).await?;
        }
        let mut plan = ProofPlan::new(seq, tree_size);
        // Cached subtrees: one lookup for all of them.
        let rows = sqlx::query(
            "SELECT m.level, m.idx, m.hash FROM merkle_nodes m \
             JOIN UNNEST($1::bigint[], $2::bigint[]) AS w(level, idx) \
               ON m.level = w.level AND m.idx = w.idx",
        )
        .bind(
            plan.cached
                .iter()
                .map(|n| i64::from(n.level))
                .collect::<Vec<_>>(),
        )
        .bind(
            plan.cached
                .iter()
                .map(|n| n.index as i64)
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let node = Node {
                level: row.try_get::<i64, _>(0)? as u32,
                index: row.try_get::<i64, _>(1)? as u64,
            };
            plan.add_cached(node, to_hash(row.try_get::<&[u8], _>(2)?));
        }
        // Smaller subtrees, and the leaf, from the leaf hashes of their blocks.
        for b in plan.blocks.clone() {
            let (start, end) = plan.block_range(b);
            let Some(leaves) = leaf_hashes(&mut conn, start, end).await? else {
                return Ok(None);
            };
            plan.add_block(b, leaves);
        }
        Ok(plan.finish())
    }

    /// How many complete blocks the Merkle cache covers (for tests).
    #[cfg(test)]
    pub(super) async fn cached_merkle_blocks(&self) -> Result<u64, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        cached_blocks(&mut conn).await
    }
}

//! The Merkle cache both stores keep (`merkle_nodes`: the hash of every complete
//! perfect subtree of `2^CACHE_LEVEL` entries and up) and inclusion proofs read
//! from it, without the SQL: which nodes a cache extension adds and which
//! cached neighbours it pairs with, and which cached nodes and blocks of leaf
//! hashes a proof needs and how they become one.
//!
//! The cache is derived data and is not trusted: a proof is only as good as its
//! check against a signed root (`verify_inclusion`), which a forged row fails.

use std::collections::HashMap;

use firebreak_ledger::{Hash, MerkleTree, Node};

use crate::LedgerProof;

/// The smallest subtrees the cache keeps: 2^8 = 256 entries. A proof reads at
/// most two blocks of that many leaf hashes; the cache holds about one row per
/// 128 entries.
pub(crate) const CACHE_LEVEL: u32 = 8;

/// The levels an extension from `have` to `want` complete blocks climbs: for
/// each, its level, the index of its first new node and how many there are.
fn climb(have: u64, want: u64) -> impl Iterator<Item = (u32, u64, u64)> {
    let mut state = Some((CACHE_LEVEL, have, want - have));
    std::iter::from_fn(move || {
        let (level, first, count) = state?;
        let (next_first, next_end) = (first / 2, (first + count) / 2);
        state = (next_end > next_first).then_some((level + 1, next_first, next_end - next_first));
        Some((level, first, count))
    })
}

/// The cached nodes an extension from `have` to `want` blocks pairs with: at
/// each level whose first new node is a right child, its left sibling.
pub(crate) fn left_neighbours(have: u64, want: u64) -> Vec<Node> {
    let levels: Vec<(u32, u64, u64)> = climb(have, want).collect();
    // The top level pairs with nothing.
    levels[..levels.len().saturating_sub(1)]
        .iter()
        .filter(|(_, first, _)| first % 2 == 1)
        .map(|&(level, first, _)| Node {
            level,
            index: first - 1,
        })
        .collect()
}

/// The nodes (level, index, hash) an extension from `have` blocks adds, from the
/// leaf hashes of the new blocks and the cached `left` neighbours; `None` when a
/// neighbour is missing (the cache then stays as it is).
pub(crate) fn new_nodes(
    have: u64,
    leaves: &[Hash],
    left: &HashMap<Node, Hash>,
) -> Option<Vec<(u32, u64, Hash)>> {
    let mut out = Vec::new();
    let mut nodes: Vec<Hash> = leaves
        .chunks_exact(1 << CACHE_LEVEL)
        .map(firebreak_ledger::root)
        .collect();
    let (mut level, mut first) = (CACHE_LEVEL, have);
    loop {
        out.extend(
            nodes
                .iter()
                .enumerate()
                .map(|(i, h)| (level, first + i as u64, *h)),
        );
        let (next_first, next_end) = (first / 2, (first + nodes.len() as u64) / 2);
        if next_end <= next_first {
            return Some(out);
        }
        if first % 2 == 1 {
            let sibling = Node {
                level,
                index: first - 1,
            };
            nodes.insert(0, *left.get(&sibling)?);
        }
        nodes = nodes
            .chunks_exact(2)
            .map(|pair| firebreak_ledger::node_hash(&pair[0], &pair[1]))
            .collect();
        level += 1;
        first = next_first;
    }
}

/// What the inclusion proof of `seq` in the tree of `tree_size` entries reads:
/// `cached` nodes from the cache, and the leaf hashes of `blocks`.
pub(crate) struct ProofPlan {
    seq: u64,
    tree_size: u64,
    needed: Vec<Node>,
    /// The cached subtrees the proof needs.
    pub cached: Vec<Node>,
    /// The blocks whose leaf hashes it needs (smaller subtrees, and the leaf).
    pub blocks: Vec<u64>,
    known: HashMap<Node, Hash>,
    leaf: Option<Hash>,
}

impl ProofPlan {
    /// The plan for entry `seq` of the tree of `tree_size` entries.
    pub(crate) fn new(seq: u64, tree_size: u64) -> Self {
        let needed = firebreak_ledger::proof_nodes(seq, tree_size);
        let cached = needed
            .iter()
            .filter(|n| n.level >= CACHE_LEVEL)
            .copied()
            .collect();
        let block = 1u64 << CACHE_LEVEL;
        let mut blocks: Vec<u64> = needed
            .iter()
            .filter(|n| n.level < CACHE_LEVEL)
            .map(|n| n.start() / block)
            .chain([seq / block])
            .collect();
        blocks.sort_unstable();
        blocks.dedup();
        ProofPlan {
            seq,
            tree_size,
            needed,
            cached,
            blocks,
            known: HashMap::new(),
            leaf: None,
        }
    }

    /// The entries `start..end` of block `b`.
    pub(crate) fn block_range(&self, b: u64) -> (u64, u64) {
        let block = 1u64 << CACHE_LEVEL;
        (b * block, ((b + 1) * block).min(self.tree_size))
    }

    /// A cached node read.
    pub(crate) fn add_cached(&mut self, node: Node, hash: Hash) {
        self.known.insert(node, hash);
    }

    /// The leaf hashes of block `b` read: the proof's small subtrees in it, and
    /// the leaf when it is there.
    pub(crate) fn add_block(&mut self, b: u64, leaves: Vec<Hash>) {
        let (start, end) = self.block_range(b);
        if (start..end).contains(&self.seq) {
            self.leaf = leaves.get((self.seq - start) as usize).copied();
        }
        let block = 1u64 << CACHE_LEVEL;
        let tree = MerkleTree::new(leaves);
        for node in self
            .needed
            .iter()
            .filter(|n| n.level < CACHE_LEVEL && n.start() / block == b)
        {
            let local = Node {
                level: node.level,
                index: node.index - (start >> node.level),
            };
            if let Some(hash) = tree.node(local) {
                self.known.insert(*node, hash);
            }
        }
    }

    /// The proof, or `None` when something it needs was not read.
    pub(crate) fn finish(self) -> Option<LedgerProof> {
        let lookup = |node: Node| self.known.get(&node).copied();
        Some(LedgerProof {
            seq: self.seq,
            tree_size: self.tree_size,
            leaf: self.leaf?,
            root: firebreak_ledger::root_from(self.tree_size, lookup)?,
            path: firebreak_ledger::inclusion_proof_from(self.seq, self.tree_size, lookup)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Extending the cache block by block gives the nodes a whole tree has, and
    /// asks only for neighbours an earlier extension wrote.
    #[test]
    fn extensions_agree_with_the_whole_tree() {
        let leaves: Vec<Hash> = (0..11u64 << CACHE_LEVEL)
            .map(|i| crate::codec::sha256(&i.to_le_bytes()))
            .collect();
        let tree = MerkleTree::new(leaves.clone());
        let mut cache: HashMap<Node, Hash> = HashMap::new();
        for (have, want) in [(0u64, 3u64), (3, 4), (4, 7), (7, 11)] {
            for node in left_neighbours(have, want) {
                assert!(cache.contains_key(&node), "{node:?} was never written");
            }
            let block = 1usize << CACHE_LEVEL;
            let new = new_nodes(
                have,
                &leaves[have as usize * block..want as usize * block],
                &cache,
            )
            .expect("neighbours cached");
            for (level, index, hash) in new {
                let node = Node { level, index };
                assert_eq!(tree.node(node), Some(hash), "{node:?}");
                cache.insert(node, hash);
            }
        }
    }
}

//! The RFC 6962 Merkle tree over the ledger's leaf hashes: the root of the first
//! `n` entries, inclusion proofs (entry `i` is in the tree of size `n`) and
//! consistency proofs (the tree of size `m` is a prefix of the tree of size `n`).
//! Proof generation follows RFC 6962 §2.1.1–2.1.2; verification follows the
//! algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2.

use sha2::{Digest, Sha256};

use crate::entry::Hash;

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The largest power of two strictly less than `n` (`n >= 2`).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The Merkle tree hash of `leaves` (already leaf-hashed). The empty tree's root
/// is `SHA-256("")`.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` in the tree of `leaves`.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 || index >= n {
        return Vec::new();
    }
    let k = split(n);
    if index < k {
        let mut path = inclusion_proof(&leaves[..k], index);
        path.push(root(&leaves[k..]));
        path
    } else {
        let mut path = inclusion_proof(&leaves[k..], index - k);
        path.push(root(&leaves[..k]));
        path
    }
}

/// A perfect subtree of the ledger's tree: the `2^level` leaves from
/// `index << level` on. Every inclusion proof and root is made of such subtrees'
/// hashes, which is what lets a store keep them instead of all leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    /// `log2` of the number of leaves it covers.
    pub level: u32,
    /// Its position among the subtrees of its level.
    pub index: u64,
}

impl Node {
    /// The first leaf it covers.
    pub fn start(&self) -> u64 {
        self.index << self.level
    }

    /// One past the last leaf it covers.
    pub fn end(&self) -> u64 {
        (self.index + 1) << self.level
    }
}

/// The perfect subtrees of leaves `start..end`, largest first, whose hashes folded
/// from the right give the RFC 6962 root of those leaves. `start` is aligned as
/// every subtree of the tree is (a multiple of the largest power of two not above
/// `end - start`).
fn cover(mut start: u64, end: u64) -> Vec<Node> {
    let mut nodes = Vec::new();
    while start < end {
        let mut level = 63 - (end - start).leading_zeros();
        if start != 0 {
            level = level.min(start.trailing_zeros());
        }
        nodes.push(Node {
            level,
            index: start >> level,
        });
        start += 1 << level;
    }
    nodes
}

/// The root of a cover from its hashes: `node_hash(h0, node_hash(h1, …))`.
fn fold(hashes: impl DoubleEndedIterator<Item = Hash>) -> Option<Hash> {
    hashes.rev().reduce(|right, left| node_hash(&left, &right))
}

/// For each element of the audit path of leaf `index` in the tree of `size`,
/// bottom up, the leaves whose root it is.
fn path_ranges(index: u64, size: u64) -> Vec<(u64, u64)> {
    let (mut low, mut high) = (0, size);
    let mut ranges = Vec::new();
    while high - low > 1 && index < size {
        let k = split((high - low) as usize) as u64;
        if index < low + k {
            ranges.push((low + k, high));
            high = low + k;
        } else {
            ranges.push((low, low + k));
            low += k;
        }
    }
    ranges.reverse();
    ranges
}

/// The perfect subtrees whose hashes make the root of the tree of `size` and the
/// audit path of leaf `index` in it (the leaf itself not included).
pub fn proof_nodes(index: u64, size: u64) -> Vec<Node> {
    let mut nodes = cover(0, size);
    for (start, end) in path_ranges(index, size) {
        nodes.extend(cover(start, end));
    }
    nodes.sort_unstable();
    nodes.dedup();
    nodes
}

/// The root of the tree of `size` from the hashes of its perfect subtrees
/// (`None` when `node` lacks one).
pub fn root_from(size: u64, node: impl Fn(Node) -> Option<Hash>) -> Option<Hash> {
    if size == 0 {
        return Some(Sha256::digest([]).into());
    }
    let hashes: Option<Vec<Hash>> = cover(0, size).into_iter().map(&node).collect();
    fold(hashes?.into_iter())
}

/// The audit path of leaf `index` in the tree of `size` (as [`inclusion_proof`]
/// gives it) from the hashes of perfect subtrees (`None` when `node` lacks one).
pub fn inclusion_proof_from(
    index: u64,
    size: u64,
    node: impl Fn(Node) -> Option<Hash>,
) -> Option<Vec<Hash>> {
    path_ranges(index, size)
        .into_iter()
        .map(|(start, end)| {
            let hashes: Option<Vec<Hash>> = cover(start, end).into_iter().map(&node).collect();
            fold(hashes?.into_iter())
        })
        .collect()
}

/// Pairs per thread below which a level of [`MerkleTree`] is hashed on one thread.
const MIN_PAIRS_PER_THREAD: usize = 8_192;

/// Every perfect subtree's hash over a list of leaves, so that the root of any
/// prefix and any inclusion proof cost a few lookups. Built on every available
/// core; about as much memory again as the leaves.
#[derive(Debug, Clone)]
pub struct MerkleTree {
    /// `levels[j][i]` is the hash of [`Node`] `{level: j, index: i}`.
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// Hashes every perfect subtree of `leaves` (already leaf-hashed).
    pub fn new(leaves: Vec<Hash>) -> MerkleTree {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut levels = vec![leaves];
        while let Some(below) = levels.last().filter(|l| l.len() >= 2) {
            let pairs = below.len() / 2;
            let mut level = vec![[0u8; 32]; pairs];
            let threads = threads.min(pairs / MIN_PAIRS_PER_THREAD).max(1);
            let hash_pairs = |out: &mut [Hash], first: usize| {
                for (i, slot) in out.iter_mut().enumerate() {
                    let pair = 2 * (first + i);
                    *slot = node_hash(&below[pair], &below[pair + 1]);
                }
            };
            if threads == 1 {
                hash_pairs(&mut level, 0);
            } else {
                let chunk = pairs.div_ceil(threads);
                std::thread::scope(|scope| {
                    for (t, out) in level.chunks_mut(chunk).enumerate() {
                        let hash_pairs = &hash_pairs;
                        scope.spawn(move || hash_pairs(out, t * chunk));
                    }
                });
            }
            levels.push(level);
        }
        MerkleTree { levels }
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.levels[0].len() as u64
    }

    /// True when there are no leaves.
    pub fn is_empty(&self) -> bool {
        self.levels[0].is_empty()
    }

    /// The leaf hashes.
    pub fn leaves(&self) -> &[Hash] {
        &self.levels[0]
    }

    /// The hash of a perfect subtree, if it lies within the leaves.
    pub fn node(&self, node: Node) -> Option<Hash> {
        let level = self.levels.get(node.level as usize)?;
        level.get(usize::try_from(node.index).ok()?).copied()
    }

    /// The root of the first `size` leaves (`None` when there are fewer).
    pub fn root(&self, size: u64) -> Option<Hash> {
        (size <= self.len())
            .then(|| root_from(size, |n| self.node(n)))
            .flatten()
    }

    /// The audit path of leaf `index` in the tree of the first `size` leaves
    /// (`None` when `size` exceeds the leaves; empty when `index >= size`).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        (size <= self.len())
            .then(|| inclusion_proof_from(index, size, |n| self.node(n)))
            .flatten()
    }
}

/// Checks that `leaf` is entry `index` of the tree of `size` with `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    expected_root: &Hash,
) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *expected_root
}

/// The proof that the tree of the first `m` leaves is a prefix of the tree of all
/// `leaves` (empty when `m` is 0 or the whole tree).
pub fn consistency_proof(leaves: &[Hash], m: usize) -> Vec<Hash> {
    if m == 0 || m >= leaves.len() {
        return Vec::new();
    }
    subproof(m, leaves, true)
}

fn subproof(m: usize, leaves: &[Hash], complete: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if complete {
            Vec::new()
        } else {
            vec![root(leaves)]
        };
    }
    let k = split(n);
    if m <= k {
        let mut proof = subproof(m, &leaves[..k], complete);
        proof.push(root(&leaves[k..]));
        proof
    } else {
        let mut proof = subproof(m - k, &leaves[k..], false);
        proof.push(root(&leaves[..k]));
        proof
    }
}

/// Checks that the tree of size `old_size` with `old_root` is a prefix of the tree
/// of size `new_size` with `new_root`.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    let mut proof: Vec<Hash> = proof.to_vec();
    if old_size.is_power_of_two() {
        proof.insert(0, *old_root);
    }
    let Some((first, rest)) = proof.split_first() else {
        return false;
    };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && fr == *old_root && sr == *new_root
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{hex, leaf_hash};

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn roots_of_small_trees() {
        // RFC 6962: the empty tree hashes the empty string.
        assert_eq!(
            hex(&root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let l = leaves(3);
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
    }

    #[test]
    fn every_inclusion_proof_verifies_and_a_wrong_one_does_not() {
        for n in 1..=40 {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let proof = inclusion_proof(&l, i);
                assert!(
                    verify_inclusion(&l[i], i as u64, n as u64, &proof, &r),
                    "n={n} i={i}"
                );
                let other = leaf_hash(b"forged");
                assert!(!verify_inclusion(&other, i as u64, n as u64, &proof, &r));
                if n > 1 {
                    assert!(!verify_inclusion(
                        &l[i],
                        ((i + 1) % n) as u64,
                        n as u64,
                        &proof,
                        &r
                    ));
                }
            }
        }
    }

    #[test]
    fn the_tree_of_subtrees_gives_the_same_roots_and_proofs() {
        for n in 0..=70 {
            let l = leaves(n);
            let tree = MerkleTree::new(l.clone());
            for size in 0..=n {
                assert_eq!(
                    tree.root(size as u64),
                    Some(root(&l[..size])),
                    "size={size}"
                );
                for i in 0..size {
                    assert_eq!(
                        tree.inclusion_proof(i as u64, size as u64),
                        Some(inclusion_proof(&l[..size], i)),
                        "size={size} i={i}"
                    );
                    let needed = proof_nodes(i as u64, size as u64);
                    assert!(needed.iter().all(|node| node.end() <= size as u64));
                    let only_needed =
                        |node: Node| needed.contains(&node).then(|| tree.node(node)).flatten();
                    assert!(inclusion_proof_from(i as u64, size as u64, only_needed).is_some());
                    assert!(root_from(size as u64, only_needed).is_some());
                }
            }
            assert_eq!(tree.root(n as u64 + 1), None);
        }
        // Large enough to hash levels on several threads.
        let l = leaves(40_000);
        let tree = MerkleTree::new(l.clone());
        assert_eq!(tree.root(40_000), Some(root(&l)));
        assert_eq!(tree.root(33_333), Some(root(&l[..33_333])));
        assert_eq!(
            tree.inclusion_proof(12_345, 39_999),
            Some(inclusion_proof(&l[..39_999], 12_345))
        );
    }

    #[test]
    fn every_consistency_proof_verifies_and_a_rewrite_does_not() {
        for n in 1..=33 {
            let l = leaves(n);
            let new_root = root(&l);
            for m in 1..=n {
                let old_root = root(&l[..m]);
                let proof = consistency_proof(&l, m);
                assert!(
                    verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof),
                    "m={m} n={n}"
                );
                // A history rewritten inside the old tree, hashes recomputed.
                let mut forged = l.clone();
                forged[m - 1] = leaf_hash(b"rewritten");
                let forged_root = root(&forged);
                let forged_proof = consistency_proof(&forged, m);
                assert!(!verify_consistency(
                    m as u64,
                    n as u64,
                    &old_root,
                    &forged_root,
                    &forged_proof
                ));
            }
        }
    }
}

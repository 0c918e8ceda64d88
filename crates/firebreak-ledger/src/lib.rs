//! The ledger of firebreak, first form: entries, their canonical bytes, the hash
//! chain, and the audit that replays the ledger against the state tables.
//!
//! Principal types: [`Event`] (what happened, the `kind` and `data` of an entry),
//! [`Entry`] (a sealed entry: sequence number, canonical payload, hash),
//! [`verify_chain`] and [`audit`] (checks), [`Violation`]; the RFC 6962 Merkle
//! tree ([`root`], [`MerkleTree`], inclusion and consistency proofs) and signed
//! [`Checkpoint`]s.
//!
//! Format (see `docs/ledger-format.md`): the payload is the RFC 8785 (JCS) canonical
//! JSON of `{"v", "seq", "prev", "campaign", "kind", "at", "data"}`; the entry hash is
//! the RFC 6962 leaf hash `SHA-256(0x00 ‖ payload)`; `prev` is the previous entry's
//! hash (64 zero hex digits for the first). The Merkle tree and the signed
//! checkpoints are built over these same leaf hashes.
//!
//! This crate does no IO: the store appends what [`Entry::seal`] builds, inside the
//! transaction of the state change it records, and hands rows and state back here
//! to be checked.
#![warn(missing_docs)]

mod audit;
mod checkpoint;
mod entry;
mod error;
mod jcs;
mod merkle;
pub mod optuna;
mod patch;
mod request;

pub use audit::{
    GenerationState, Replayed, ReplayedCampaign, RunRow, StateSnapshot, Violation, audit,
    verify_chain,
};
pub use checkpoint::{
    CHECKPOINT_DOMAIN, Checkpoint, SigningKey, VerifyingKey, parse_private_key_pem,
    parse_public_key, private_key_pem, public_key_string,
};
pub use entry::{
    Authorization, Entry, Event, Exploit, FORMAT_VERSION, GENESIS, Hash, SandboxRecord, Unsealed,
    canonical_json, hex, leaf_hash,
};
pub use error::LedgerError;
pub use merkle::{
    MerkleTree, Node, consistency_proof, inclusion_proof, inclusion_proof_from, node_hash,
    proof_nodes, root, root_from, verify_consistency, verify_inclusion,
};
pub use patch::apply_patch;
pub use request::{
    DECISION_DOMAIN, EditClass, REQUEST_DOMAIN, Request, RequestBody, RequestKind, RequestState,
    SignedDecision, Verdict, classify_path, decision_message, diff_hash, is_person,
};

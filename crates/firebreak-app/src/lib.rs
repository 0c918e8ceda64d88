//! The application layer of firebreak: every operation a user can perform —
//! validate a spec, list campaigns, status, trials and the best, logs, explain
//! a trial, enqueue, verify the ledger, inclusion and consistency proofs, sign
//! and check checkpoints, the audit report, lineage, change requests and signed
//! decisions, export — as methods of [`App`], over any
//! [`firebreak_store::Store`].
//!
//! Principal types: [`App`] (a store and where its checkpoints are published),
//! [`AppError`], and the plain data the operations return ([`CampaignListing`],
//! [`CampaignStatus`], [`Trials`], [`Explanation`], [`InclusionProof`],
//! [`Verification`], [`Decided`], [`RunSummary`], …), each serde-serialisable
//! in the JSON shape `contract.md` gives.
//!
//! Why a layer: the CLI and the server are two faces over the same calls. A
//! face parses its input, calls one method and renders what comes back; every
//! rule (which checkpoint a proof is checked against, when a ledger verifies,
//! who may decide a request and what a decision changes) lives here or below.
//! This crate never prints, never speaks HTTP and knows nothing of command-line
//! or HTTP types; it reads the environment only for the engine key's place and
//! the checkpoint folder that `contract.md` names.
//!
//! ```no_run
//! # async fn show() -> Result<(), firebreak_app::AppError> {
//! use firebreak_app::{App, checkpoint_folder};
//! use firebreak_store::AnyStore;
//!
//! let store = AnyStore::open_existing("sqlite://.firebreak/firebreak.db").await?;
//! let app = App::new(store.clone(), checkpoint_folder(&store.local_path()));
//! for campaign in app.campaigns().await? {
//!     let _ = (campaign.name, campaign.state);
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod campaigns;
mod checkpoints;
mod error;
mod explain;
mod export;
mod format;
mod keys;
mod lineage;
mod optuna;
mod proofs;
mod report;
mod requests;
mod summary;
mod tokens;
mod verify;

use std::path::PathBuf;

pub use campaigns::{Best, CampaignListing, CampaignStatus, Trials, importance, validate};
pub use checkpoints::{CHECKPOINT_DIR_ENV, Signed, checkpoint_folder, pretty as checkpoint_text};
pub use error::{AppError, ErrorKind};
pub use explain::Explanation;
pub use export::Export;
pub use format::{format_number, format_param, trial_json};
pub use keys::{engine_key, engine_key_path, new_key, random_hex, read_key, write_key};
pub use lineage::Lineage;
pub use proofs::{ConsistencyProof, InclusionProof};
pub use requests::{Decided, Signer, actor, request_json};
pub use summary::{Champion, RunSummary, all_failed};
pub use tokens::{Caller, NewToken, Role};
pub use verify::Verification;

/// The application: a store and the folder its signed checkpoints are
/// published to. Cheap to clone when the store is.
#[derive(Debug, Clone)]
pub struct App<S> {
    store: S,
    checkpoint_dir: PathBuf,
}

impl<S> App<S> {
    /// The application over `store`, publishing checkpoints to
    /// `checkpoint_dir` ([`checkpoint_folder`] gives the usual place).
    pub fn new(store: S, checkpoint_dir: PathBuf) -> Self {
        App {
            store,
            checkpoint_dir,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Where signed checkpoints are published.
    pub fn checkpoint_dir(&self) -> &std::path::Path {
        &self.checkpoint_dir
    }
}

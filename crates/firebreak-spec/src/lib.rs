//! The campaign spec: the TOML file a user writes, as documented serde types, its
//! validation with errors that name file, line, column and key with a `hint:`, and
//! its canonical JSON form (what the ledger records and hashes).
//!
//! Principal types: [`CampaignSpec`] (a parsed and validated spec), [`Spec`] (the
//! TOML schema), [`SpecError`].
//!
//! ```
//! let spec = firebreak_spec::CampaignSpec::parse(firebreak_spec::EXAMPLE_SPEC, "campaign.toml")
//!     .expect("the shipped example is valid");
//! assert_eq!(spec.spec.campaign.name, "digits-mlp");
//! ```
//!
//! Why the schema lives here and not beside each component: the spec is a
//! compatibility contract (its canonical serialization is hashed into the ledger), so
//! every key, default and doc comment sits in one place. This crate reads no files:
//! callers pass the text and the file name used in messages.
#![warn(missing_docs)]

mod diff;
mod duration;
mod error;
mod generations;
mod locate;
mod sandbox;
mod schema;
mod validate;

pub use diff::{Change, diff};
pub use duration::Duration;
pub use error::SpecError;
pub use generations::{
    Distill, Gates, GenerationsSpec, MAX_GENERATIONS, OnGateFailure, Promotion, SeedNext,
};
pub use sandbox::{SandboxSpec, parse_size};
pub use schema::{
    Approver, CampaignSection, Constraints, Governance, Number, ObjectiveSection, ParamKind,
    ParamSpec, RatePer, SearchSection, Spec, TaskKind, TaskSection, Tripwire, TripwireKind,
};
pub use validate::{
    CampaignSpec, MAX_EPOCHS, MAX_NAME_LEN, MAX_PARALLELISM, MAX_REQUEST_TTL, MAX_TRIAL_TIMEOUT,
    MAX_TRIALS, campaign_name_problem,
};

/// A commented example spec, written by `firebreak init`.
pub const EXAMPLE_SPEC: &str = include_str!("example.toml");

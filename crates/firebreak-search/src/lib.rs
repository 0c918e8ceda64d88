//! Proposers (what suggests the next trial: samplers now, LLM agents later) and
//! schedulers (what decides, from intermediate reports, whether a running trial
//! continues).
//!
//! Principal types: [`Proposer`] with [`propose`] (the driver that combines joint
//! and per-parameter sampling), [`RandomProposer`], [`GridProposer`],
//! [`EvolutionProposer`], [`TpeProposer`], [`Nsga2Proposer`], [`CmaEsProposer`], [`SobolProposer`],
//! [`GpProposer`];
//! [`Scheduler`]
//! with [`NoScheduler`], [`MedianScheduler`], [`AshaScheduler`],
//! [`HyperbandScheduler`] and [`PbtScheduler`]; [`History`], the read-only view of
//! past trials both are given; [`proposer`] and [`scheduler`] build them by name.
//!
//! The proposer contract follows Optuna's sampler: infer a joint ("relative")
//! search space once per trial and sample it jointly, fall back to per-parameter
//! ("independent") sampling for the rest, hear about every finished trial, and draw
//! every random number from the [`firebreak_core::Rng`] it is handed. Proposers and
//! schedulers never hold a storage handle and do no IO.
#![warn(missing_docs)]

mod adversary;
mod asha;
mod asks;
mod cmaes;
mod cube;
mod error;
mod evolution;
mod gp;
mod grid;
mod importance;
mod linalg;
mod median;
mod nsga2;
mod pbt;
mod proposer;
mod random;
mod registry;
mod scheduler;
mod sobol;
mod tpe;
mod tpe_columns;

pub use adversary::AdversaryProposer;
pub use asha::{AshaScheduler, Bracket, Halving, HyperbandScheduler, hyperband_brackets};
pub use asks::{ChangeAsk, suggest_changes};
pub use cmaes::{CmaEsOptions, CmaEsProposer, Independent, Restart};
pub use error::SearchError;
pub use evolution::EvolutionProposer;
pub use gp::{GpOptions, GpProposer};
pub use grid::GridProposer;
pub use importance::importance;
pub use median::MedianScheduler;
pub use nsga2::Nsga2Proposer;
pub use pbt::{PbtOptions, PbtScheduler};
pub use proposer::{History, Proposal, Proposer, propose};
pub use random::{RandomProposer, sample_uniform};
pub use registry::{Options, PROPOSERS, SCHEDULERS, proposer, scheduler};
pub use scheduler::{Decision, NoScheduler, Scheduler};
pub use sobol::{SOBOL_MAX_DIMENSIONS, SobolProposer};
pub use tpe::{TpeOptions, TpeProposer};

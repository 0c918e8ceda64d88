//! Plain domain types of firebreak: the search space and its parameters, parameter
//! values, trials and their states, objectives, intermediate reports, a seeded RNG
//! and an injectable clock.
//!
//! Principal types: [`SearchSpace`], [`Parameter`], [`Distribution`], [`ParamValue`],
//! [`Trial`], [`TrialState`], [`Objectives`], [`Rng`], [`Clock`].
//!
//! This crate does no IO: it knows nothing of SQL, HTTP, processes or the file
//! system, so every other crate can depend on it and its behaviour is fully
//! determined by its inputs. Every random draw goes through [`Rng`], seeded
//! explicitly; every timestamp comes from a [`Clock`].
#![warn(missing_docs)]

mod error;
mod objective;
mod rng;
mod space;
mod time;
mod trial;

pub use error::CoreError;
pub use objective::{Direction, Objectives};
pub use rng::{Rng, derive_seed};
pub use space::{Condition, Distribution, ParamValue, Parameter, Params, SearchSpace};
pub use time::{Clock, FixedClock, SystemClock, Timestamp, format_rfc3339, parse_rfc3339};
pub use trial::{Metrics, Report, Trial, TrialState};

//! Governance rules of firebreak, without IO: who acts ([`Principal`]), what the
//! Cedar policy allows ([`Authorizer`], with the shipped [`DEFAULT_POLICY`] and
//! [`SCHEMA`]), which edits of a spec are governed and the requests they raise
//! ([`classify`]), the rules of deciding on a request ([`check_decision`],
//! [`outcome`]), and the tripwires ([`Tripwires`]).
//!
//! Code and policy enforce the rules together: the functions here refuse
//! self-approval, a machine's approval, a second decision by one person, an
//! expired or closed request and a signature for another request, whatever the
//! policy says; the policy can only add refusals and name the rules it applied.
#![warn(missing_docs)]

mod changes;
mod error;
mod policy;
mod principal;
mod rules;
mod tripwire;

pub use changes::{Classified, classify, patch_of};
pub use error::GovernError;
pub use policy::{Action, Authorizer, DEFAULT_POLICY, SCHEMA};
pub use principal::Principal;
pub use rules::{RequestOutcome, check_decision, outcome};
pub use tripwire::{Trip, Tripwires};

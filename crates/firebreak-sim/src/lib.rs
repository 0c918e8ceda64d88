//! Simulated time: a campaign replayed on N simulated workers with a simulated
//! clock, each configuration's learning curve and cost given by a documented
//! synthetic model ([`CurveModel`]) over its final value (looked up in a benchmark
//! table, say). It exists to test schedulers' concurrency behaviour and to
//! benchmark them cheaply, as Syne Tune's simulator does; its results are never
//! real training results, and every [`SimReport`] says so ([`SimReport::LABEL`]).
//!
//! The loop is event-driven: the worker whose epoch ends first reports the value
//! of its trial's curve at that epoch to the scheduler, which lets the trial go on
//! (until `max_epochs`, when it is complete) or stops it (pruned); a free worker
//! starts the next proposal at once, so no worker idles while trials remain.
#![warn(missing_docs)]

mod curve;
mod simulate;

pub use curve::{Curve, CurveModel};
pub use simulate::{Busy, SimReport, Simulation, simulate};

//! The built-in trainer of `kind = "builtin"` trials: a point of the search space
//! is read as a [`Genome`] (an architecture and its training hyperparameters),
//! built as a burn network on the pure-Rust `flex` CPU backend, and trained on
//! one thread on a bundled dataset, reporting validation metrics every epoch and
//! checkpointing before each report. A trained network can teach another:
//! [`train_distilled`] with a [`Distill`] mixes a teacher's softened
//! predictions into the loss and adds teacher-labelled synthetic examples.
//!
//! Principal items: [`genome()`], [`Genome`], [`train()`], [`train_distilled`],
//! [`Distill`], [`EpochMetrics`], [`Control`], [`test()`], [`TrainError`].

mod alloc;
mod conv;
mod distill;
mod error;
pub mod genome;
mod net;
mod pool;
mod train;

pub use distill::Distill;
pub use error::TrainError;
pub use genome::{Genome, MODELS, genome, known_names};
pub use net::Net;
pub use train::{Control, EpochMetrics, Trained, build, test, train, train_distilled};

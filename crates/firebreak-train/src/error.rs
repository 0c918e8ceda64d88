//! The crate's one error type.

/// What can go wrong building or training a network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The point of the space does not describe a network of the model family.
    #[error("{0}")]
    Genome(String),
    /// The model family does not fit the dataset.
    #[error("{0}")]
    Unsupported(String),
    /// The distillation settings are out of range (temperature, weight).
    #[error("{0}")]
    Distill(String),
    /// Reading or writing a checkpoint failed.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
    /// Training diverged (a non-finite loss).
    #[error("training diverged at epoch {epoch}: the training loss is {loss}")]
    Diverged {
        /// The epoch.
        epoch: u32,
        /// The loss.
        loss: f64,
    },
}

//! The application layer's one error enum, [`AppError`].
//!
//! Lower crates' errors are wrapped transparently, so a face shows their
//! messages as they are; the layer's own refusals say what was wrong with the
//! value given and, where there is one, end with a `hint:` line. Faces map the
//! variants to their own codes (the CLI to exit codes, the server to HTTP
//! statuses) in one place each; [`AppError::kind`] says which class a variant is.

use std::path::PathBuf;

use firebreak_govern::GovernError;
use firebreak_ledger::LedgerError;
use firebreak_runner::RunnerError;
use firebreak_spec::SpecError;
use firebreak_store::StoreError;

/// Errors of the application layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored or given spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The runner (opening, governance, the ledger's verification) failed or refused.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// A ledger value could not be built or read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// What the person asked for is not well formed or does not apply
    /// (the message names the value and gives a hint).
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read or written.
    #[error("{context}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file holds something other than what it must.
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint file that is not one.
    #[error("{} is not a checkpoint", path.display())]
    NotACheckpoint {
        /// The file.
        path: PathBuf,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// There is no place for the engine key.
    #[error(
        "cannot place the engine key: neither FIREBREAK_ENGINE_KEY, XDG_CONFIG_HOME nor HOME is set\nhint: set FIREBREAK_ENGINE_KEY to a file path"
    )]
    NoEngineKeyPlace,
    /// `best` of a campaign without a complete trial.
    #[error("no complete trial yet")]
    NoCompleteTrial,
    /// The ledger has no entry of this sequence number.
    #[error("the ledger has no entry {seq} (it has {entries})")]
    NoEntry {
        /// The number asked for.
        seq: u64,
        /// How many entries the ledger has.
        entries: usize,
    },
    /// A trial without its `trial_proposed` entry.
    #[error(
        "trial {0} has no trial_proposed entry in the ledger\nhint: run `firebreak audit verify`"
    )]
    NoProposal(u64),
    /// A decision refused by the policy or by the rules of deciding (it is ledgered as `denied`).
    #[error("refused: {0}")]
    Refused(GovernError),
    /// An approved request cannot be carried out on the spec in effect.
    #[error("{0}")]
    Inapplicable(String),
    /// A stored record does not match what the ledger backs.
    #[error("{0}")]
    Tampered(String),
    /// The checkpoints published outside the database could not be read, so
    /// the ledger cannot be checked against them.
    #[error(transparent)]
    Unpublished(Box<AppError>),
}

/// The class of an [`AppError`], for a face to map to its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input (arguments, a spec) is wrong.
    Usage,
    /// The operation failed or was refused.
    Failed,
    /// The ledger, or a record it backs, does not verify.
    Tampered,
}

impl AppError {
    /// Which class this error is: what the person gave, what happened, or what
    /// the ledger says. Errors of lower crates are classed by the face from
    /// their own types (the CLI's mapping of `RunnerError` and `SpecError`).
    pub fn kind(&self) -> ErrorKind {
        match self {
            AppError::Spec(_) | AppError::Invalid(_) => ErrorKind::Usage,
            AppError::Tampered(_) | AppError::Unpublished(_) => ErrorKind::Tampered,
            AppError::Runner(RunnerError::Tampered(_)) => ErrorKind::Tampered,
            _ => ErrorKind::Failed,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        AppError::Io {
            context: context.into(),
            source,
        }
    }
}
